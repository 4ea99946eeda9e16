//! Usage counters reported by agents' relays, and the totals per person and group. A report
//! is folded in with "the largest value wins" per (device, epoch, day, model): reports are
//! cumulative, so a repeated one changes nothing and a lost one is made good by the next.

use sqlx::Row;

use super::{Store, StoreResult};
use crate::domain::now_micros;
use crate::domain::usage::{UsageReport, UsageTotals};

/// The counter columns, in the order reports and totals carry them.
const COUNTERS: [&str; 5] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
];

/// Keeps the larger of the stored and the reported value of a column.
fn larger(column: &str) -> String {
    format!(
        "{column} = CASE WHEN excluded.{column} > usage_counters.{column} THEN excluded.{column} ELSE usage_counters.{column} END"
    )
}

/// Counter epochs kept per device: an agent starts a new one only when its counters are lost,
/// so more means a hostile device trying to grow the table; the oldest rows go.
const EPOCHS_PER_DEVICE: i64 = 4;

impl Store {
    /// Folds a device's report into its counters, in one transaction; a device's rows of all
    /// but its latest [`EPOCHS_PER_DEVICE`] epochs are dropped.
    pub async fn record_usage(
        &self,
        org_id: &str,
        user_id: &str,
        device_id: &str,
        report: &UsageReport,
    ) -> StoreResult<()> {
        if report.counters.is_empty() {
            return Ok(());
        }
        let update = COUNTERS
            .iter()
            .map(|c| larger(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO usage_counters (device_id, epoch, day, model, org_id, user_id, requests, input_tokens, output_tokens, \
             cache_creation_input_tokens, cache_read_input_tokens, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (device_id, epoch, day, model) DO UPDATE SET {update}, updated_at = excluded.updated_at"
        );
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        for c in &report.counters {
            sqlx::query(&sql)
                .bind(device_id)
                .bind(&report.epoch)
                .bind(c.day)
                .bind(&c.model)
                .bind(org_id)
                .bind(user_id)
                .bind(c.requests)
                .bind(c.input_tokens)
                .bind(c.output_tokens)
                .bind(c.cache_creation_input_tokens)
                .bind(c.cache_read_input_tokens)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "DELETE FROM usage_counters WHERE device_id = $1 AND epoch NOT IN \
             (SELECT epoch FROM usage_counters WHERE device_id = $1 GROUP BY epoch \
              ORDER BY MAX(updated_at) DESC, epoch LIMIT $2)",
        )
        .bind(device_id)
        .bind(EPOCHS_PER_DEVICE)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Totals per person of the organisation from `since_day` on (only people with usage),
    /// optionally only the members of one group; largest number of tokens first.
    pub async fn usage_by_person(
        &self,
        org_id: &str,
        since_day: i64,
        group_id: Option<&str>,
    ) -> StoreResult<Vec<UsageTotals>> {
        self.usage_totals(
            "u.user_name",
            "JOIN users u ON u.id = c.user_id",
            "c.user_id IN (SELECT user_id FROM group_members WHERE group_id = $3)",
            org_id,
            since_day,
            group_id,
        )
        .await
    }

    /// Totals per group of the organisation from `since_day` on: each group's current members'
    /// usage (a person in two groups counts in both), optionally of one group only.
    pub async fn usage_by_group(
        &self,
        org_id: &str,
        since_day: i64,
        group_id: Option<&str>,
    ) -> StoreResult<Vec<UsageTotals>> {
        self.usage_totals(
            "g.display_name",
            "JOIN group_members m ON m.user_id = c.user_id \
             JOIN scim_groups g ON g.id = m.group_id AND g.deleted_at IS NULL",
            "g.id = $3",
            org_id,
            since_day,
            group_id,
        )
        .await
    }

    /// The counters from `since_day` on summed per `name` (a column of `joins`), with
    /// `group_filter` (on `$3`) applied when a group is given; largest number of tokens first.
    async fn usage_totals(
        &self,
        name: &str,
        joins: &str,
        group_filter: &str,
        org_id: &str,
        since_day: i64,
        group_id: Option<&str>,
    ) -> StoreResult<Vec<UsageTotals>> {
        let sums = COUNTERS
            .iter()
            .map(|c| format!("CAST(SUM(c.{c}) AS BIGINT) AS {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = if group_id.is_some() {
            format!("AND {group_filter}")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {name} AS name, COUNT(DISTINCT c.device_id) AS devices, {sums} \
             FROM usage_counters c {joins} \
             WHERE c.org_id = $1 AND c.day >= $2 {filter} \
             GROUP BY {name} ORDER BY SUM(c.input_tokens) + SUM(c.output_tokens) DESC, {name}"
        );
        let mut q = sqlx::query(&sql).bind(org_id).bind(since_day);
        if let Some(g) = group_id {
            q = q.bind(g);
        }
        q.fetch_all(&self.read).await?.iter().map(totals).collect()
    }
}

fn totals(r: &sqlx::any::AnyRow) -> StoreResult<UsageTotals> {
    Ok(UsageTotals {
        name: r.try_get("name")?,
        devices: r.try_get("devices")?,
        requests: r.try_get("requests")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        cache_creation_input_tokens: r.try_get("cache_creation_input_tokens")?,
        cache_read_input_tokens: r.try_get("cache_read_input_tokens")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::usage::UsageCounter;
    use crate::domain::{Actor, UserWrite};
    use serde_json::json;

    fn report(epoch: &str, day: i64, requests: i64, input: i64) -> UsageReport {
        UsageReport {
            epoch: epoch.into(),
            counters: vec![UsageCounter {
                day,
                model: "m".into(),
                requests,
                input_tokens: input,
                output_tokens: 1,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
            }],
        }
    }

    /// Reports are cumulative: a repeated or older one changes nothing, a newer one raises the
    /// totals; a device keeps its latest four epochs only.
    #[tokio::test]
    async fn reports_fold_in_by_largest_value_and_epochs_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("u.db").display()))
            .await
            .unwrap();
        let (org, _) = store.ensure_default_org().await.unwrap();
        let user = store
            .create_user(
                &org.id,
                &Actor::System,
                UserWrite {
                    user_name: "u@example.com".into(),
                    external_id: None,
                    active: true,
                    primary_role: None,
                    primary_email: None,
                    attributes: json!({"userName": "u@example.com"}),
                },
            )
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO devices (id, org_id, user_id, credential_sha256, hostname, os, agent_version, enrolled_at) \
             VALUES ('d1', $1, $2, 'c', 'h', 'linux', 't', 0)",
        )
        .bind(&org.id)
        .bind(&user.id)
        .execute(&store.write)
        .await
        .unwrap();
        let today = crate::domain::usage::day_of(now_micros());
        let totals = |s: &Store| {
            let s = s.clone();
            let org = org.id.clone();
            async move { s.usage_by_person(&org, today - 30, None).await.unwrap() }
        };
        store
            .record_usage(&org.id, &user.id, "d1", &report("e1", today, 2, 20))
            .await
            .unwrap();
        store
            .record_usage(&org.id, &user.id, "d1", &report("e1", today, 2, 20))
            .await
            .unwrap();
        store
            .record_usage(&org.id, &user.id, "d1", &report("e1", today, 1, 10))
            .await
            .unwrap();
        let t = totals(&store).await;
        assert_eq!((t[0].requests, t[0].input_tokens), (2, 20));
        store
            .record_usage(&org.id, &user.id, "d1", &report("e1", today, 5, 50))
            .await
            .unwrap();
        assert_eq!(totals(&store).await[0].requests, 5);
        for epoch in ["e2", "e3", "e4", "e5", "e6"] {
            store
                .record_usage(&org.id, &user.id, "d1", &report(epoch, today, 1, 1))
                .await
                .unwrap();
        }
        let epochs: i64 = sqlx::query(
            "SELECT COUNT(DISTINCT epoch) AS n FROM usage_counters WHERE device_id = 'd1'",
        )
        .fetch_one(&store.read)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
        assert_eq!(epochs, EPOCHS_PER_DEVICE);
        store.close().await;
    }
}
