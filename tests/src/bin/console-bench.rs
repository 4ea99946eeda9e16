//! `console-bench`: the admin console and API at size. Starts the release control plane on
//! SQLite, provisions `--members` people over SCIM, fills the audit trail to `--audit` events
//! (written straight into the database: the SCIM writes add their own), then times console
//! pages and API lists (first and deep pages, searches, filters) — sequential requests, client
//! side on loopback, so the figure is the server's time plus a loopback round trip — and
//! finally exports an audit trail of `--export-rows` events while sampling the server's
//! resident memory.
//!
//! Run: `cargo build --release --workspace --bins && target/release/console-bench
//! [--members 10000] [--audit 100000] [--export-rows 1000000] [--requests 200]`
//! (BENCHMARKS.md).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use palisade_tests::bench::{ms, pct, rss_kib, ReleaseControlPlane};
use serde_json::{json, Value};
use sqlx::Connection;

fn arg(name: &str, default: usize) -> Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| anyhow!("{name} needs a number"))?
            .parse()
            .with_context(|| name.to_string()),
        None => Ok(default),
    }
}

/// Provisions `n` people over SCIM, 8 requests at a time.
async fn provision(cp: &ReleaseControlPlane, n: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let results: Vec<Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let url = format!("{}/Users", cp.scim);
            let token = cp.token.clone();
            async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", "application/scim+json")
                    .json(
                        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                  "userName": format!("user-{i:05}@example.com")}),
                    )
                    .send()
                    .await?;
                if r.status() != 201 {
                    bail!("SCIM create: {}", r.status());
                }
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Adds audit events until the organisation has `total`, in multi-row inserts.
async fn fill_audit(cp: &ReleaseControlPlane, total: usize) -> Result<()> {
    let mut conn = sqlx::SqliteConnection::connect(&cp.db_url).await?;
    let org: String = sqlx::query_scalar("SELECT id FROM orgs WHERE slug = 'default'")
        .fetch_one(&mut conn)
        .await?;
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&mut conn)
        .await?;
    let mut next = usize::try_from(have).unwrap_or(0);
    let actions = [
        "device.warning",
        "group.policy.set",
        "user.update",
        "signin",
        "device.nack",
    ];
    let start_at: i64 = 1_780_000_000_000_000;
    while next < total {
        let batch = (total - next).min(500);
        let mut sql = String::from(
            "INSERT INTO audit_events (id, org_id, at, actor, action, resource_type, resource_id, detail, source) VALUES ",
        );
        for i in 0..batch {
            let n = next + i;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('bench-{n:08}', '{org}', {}, 'person:user-{:05}@example.com', '{}', 'User', 'u-{}', '{{\"n\":{n}}}', '10.0.0.{}')",
                start_at + n as i64 * 1000,
                n % 10_000,
                actions[n % actions.len()],
                n % 10_000,
                n % 250
            ));
        }
        let mut tx = conn.begin().await?;
        sqlx::query(&sql).execute(&mut *tx).await?;
        tx.commit().await?;
        next += batch;
    }
    conn.close().await?;
    Ok(())
}

/// `requests` sequential GETs of `path`; sorted latencies (every answer must be 200).
async fn time_get(http: &reqwest::Client, url: &str, requests: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        let r = http.get(url).send().await?;
        let status = r.status();
        r.bytes().await?;
        if status != 200 {
            bail!("GET {url}: {status}");
        }
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

/// A cursor `pages` pages into a list (following `next_cursor`).
async fn deep_cursor(http: &reqwest::Client, url: &str, pages: usize) -> Result<String> {
    let mut cursor = String::new();
    for _ in 0..pages {
        let sep = if url.contains('?') { '&' } else { '?' };
        let page: Value = http
            .get(format!("{url}{sep}limit=200&cursor={cursor}"))
            .send()
            .await?
            .json()
            .await?;
        cursor = page["next_cursor"]
            .as_str()
            .ok_or_else(|| anyhow!("the list ended early: {page}"))?
            .to_owned();
    }
    Ok(cursor)
}

#[tokio::main]
async fn main() -> Result<()> {
    let members = arg("--members", 10_000)?;
    let audit = arg("--audit", 100_000)?;
    let export_rows = arg("--export-rows", 1_000_000)?;
    let requests = arg("--requests", 200)?;
    let cp = ReleaseControlPlane::start(&[
        "--scim-rate-limit",
        "1000000",
        "--scim-rate-burst",
        "1000000",
    ])
    .await?;
    let root = cp.root();
    let pid = cp.pid().ok_or_else(|| anyhow!("no server pid"))?;

    let t = Instant::now();
    provision(&cp, members).await?;
    println!(
        "provisioned {members} people over SCIM in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    fill_audit(&cp, audit).await?;
    println!("audit trail: {audit} events");

    let token = cp
        .cli_stdout(&[
            "api-token",
            "create",
            "--org",
            "default",
            "--role",
            "admin",
            "--label",
            "bench",
        ])
        .await?;
    let token = token.lines().last().unwrap_or_default().trim().to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    let api = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let link = cp
        .cli_stdout(&[
            "--public-url",
            &root,
            "admin",
            "login-link",
            "--org",
            "default",
        ])
        .await?;
    let console = reqwest::Client::builder().cookie_store(true).build()?;
    let signed_in = console
        .get(link.lines().last().unwrap_or_default().trim())
        .send()
        .await?;
    if !signed_in.url().path().starts_with("/console") {
        bail!("the login link did not sign in: {}", signed_in.url());
    }

    let members_deep = deep_cursor(
        &api,
        &format!("{root}/api/v1/members"),
        (members / 200).saturating_sub(1).clamp(1, 40),
    )
    .await?;
    let audit_deep = deep_cursor(
        &api,
        &format!("{root}/api/v1/audit"),
        100.min((audit / 200).saturating_sub(1)).max(1),
    )
    .await?;
    let cases: Vec<(&str, &reqwest::Client, String)> = vec![
        ("console: overview", &console, format!("{root}/console")),
        (
            "console: members, first page",
            &console,
            format!("{root}/console/members"),
        ),
        (
            "console: members, search",
            &console,
            format!("{root}/console/members?q=user-0999"),
        ),
        (
            "console: audit, first page",
            &console,
            format!("{root}/console/audit"),
        ),
        (
            "console: audit, action filter",
            &console,
            format!("{root}/console/audit?action=device."),
        ),
        (
            "API: members, first page",
            &api,
            format!("{root}/api/v1/members"),
        ),
        (
            "API: members, deep page",
            &api,
            format!("{root}/api/v1/members?cursor={members_deep}"),
        ),
        (
            "API: audit, first page",
            &api,
            format!("{root}/api/v1/audit"),
        ),
        (
            "API: audit, deep page",
            &api,
            format!("{root}/api/v1/audit?cursor={audit_deep}"),
        ),
        (
            "API: audit, actor filter",
            &api,
            format!("{root}/api/v1/audit?actor=person:user-04242@example.com"),
        ),
        (
            "API: devices, first page",
            &api,
            format!("{root}/api/v1/devices"),
        ),
    ];
    println!("\n| page ({members} members, {audit} audit events) | p50 | p95 | max |");
    println!("|---|---|---|---|");
    for (name, http, url) in &cases {
        let l = time_get(http, url, requests).await?;
        println!(
            "| {name} | {} | {} | {} |",
            ms(pct(&l, 0.5)),
            ms(pct(&l, 0.95)),
            ms(pct(&l, 1.0))
        );
    }

    // Export: fill to `export_rows`, then stream it while sampling the server's memory.
    fill_audit(&cp, export_rows).await?;
    let before = rss_kib(pid);
    let peak_watch = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watch = peak_watch.clone();
    let sampler = tokio::spawn(async move {
        loop {
            watch.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let t = Instant::now();
    let mut body = api
        .get(format!("{root}/api/v1/audit/export?format=csv"))
        .send()
        .await?
        .bytes_stream();
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let took = t.elapsed();
    sampler.abort();
    let peak = peak_watch.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "\naudit export: {} rows ({:.0} MiB CSV) in {:.1} s ({:.0} rows/s); server RSS {:.1} MiB before, peak {:.1} MiB during",
        lines.saturating_sub(1),
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    Ok(())
}
