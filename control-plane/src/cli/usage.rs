//! `usage show`: who used the organisation's key, from the counters agents' relays report —
//! per person (optionally only a group's members) and per group.

use anyhow::Context;
use clap::Subcommand;

use super::admin::{parse_duration_secs, require_group};
use super::find_org;
use crate::domain::now_micros;
use crate::domain::usage::{day_of, UsageTotals};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Requests and tokens per person and per group (relay key delivery only).
    Show {
        #[arg(long)]
        org: String,
        /// Only the members of this group (by displayName).
        #[arg(long)]
        group: Option<String>,
        /// How far back, in whole UTC days (rounded up), e.g. 7d, 30d, 36h; today counts as one.
        #[arg(long, default_value = "30d")]
        since: String,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
}

pub async fn usage(store: &Store, cmd: UsageCommand) -> anyhow::Result<()> {
    let UsageCommand::Show {
        org,
        group,
        since,
        json,
    } = cmd;
    // Whole UTC days, rounded up: `36h` covers today and yesterday.
    let secs = parse_duration_secs(&since).with_context(|| format!("--since {since:?}"))?;
    let days = ((secs + 86_399) / 86_400).max(1);
    let since_day = day_of(now_micros()) - days + 1;
    let o = find_org(store, &org).await?;
    let group_id = match &group {
        Some(name) => Some(require_group(store, &o.id, &org, name).await?.id),
        None => None,
    };
    let people = store
        .usage_by_person(&o.id, since_day, group_id.as_deref())
        .await?;
    let groups = store
        .usage_by_group(&o.id, since_day, group_id.as_deref())
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "org": org, "days": days, "group": group, "people": people, "groups": groups,
            }))?
        );
        return Ok(());
    }
    println!(
        "usage of {org} over the last {days} day(s){}",
        group
            .map(|g| format!(", members of {g:?}"))
            .unwrap_or_default()
    );
    table("person", &people);
    println!();
    table("group", &groups);
    Ok(())
}

fn table(what: &str, rows: &[UsageTotals]) {
    println!(
        "{what:<32} {:>7} {:>9} {:>13} {:>13} {:>13} {:>13}",
        "devices", "requests", "input", "output", "cache write", "cache read"
    );
    if rows.is_empty() {
        println!("(no usage reported)");
    }
    for r in rows {
        println!(
            "{:<32} {:>7} {:>9} {:>13} {:>13} {:>13} {:>13}",
            r.name,
            r.devices,
            r.requests,
            r.input_tokens,
            r.output_tokens,
            r.cache_creation_input_tokens,
            r.cache_read_input_tokens
        );
    }
}
