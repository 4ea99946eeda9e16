//! The store-wide change feed that keeps replicas in step: one counter orders every recorded
//! policy-input change, every stored policy version and every device revocation; each write
//! transaction that advances it also notifies, on PostgreSQL, the channel [`CHANGE_CHANNEL`]
//! (delivered at commit, dropped on rollback), and after commit wakes this process's
//! distributor. Each control-plane process follows the counter from a cursor
//! (`distribution::Distributor::run_catch_up`), woken by the notification on PostgreSQL and by
//! a short poll on SQLite, whose other writers are CLI processes.
//!
//! Policy-input changes are an outbox: [`record_input_change`] is the one way a write says
//! "these people's policy may have changed"; `distribution` claims, recomputes and deletes them.

use sqlx::postgres::PgListener;
use sqlx::{Any, Row, Transaction};

use super::{Backend, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Micros};

/// The PostgreSQL `LISTEN`/`NOTIFY` channel of the change feed.
pub const CHANGE_CHANNEL: &str = "palisade_changes";

/// A device revoked at a given point of the change sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedDevice {
    /// The device.
    pub device_id: String,
    /// Its user.
    pub user_id: String,
    /// Why (`deactivated`, `deleted`, ...).
    pub reason: String,
    /// Where in the change sequence.
    pub seq: i64,
}

/// The revocation reason of a row with `revoked_at` and `revoked_reason`: `None` while live.
pub(crate) fn revocation_of(r: &sqlx::any::AnyRow) -> StoreResult<Option<String>> {
    let revoked_at: Option<i64> = r.try_get("revoked_at")?;
    let reason: Option<String> = r.try_get("revoked_reason")?;
    Ok(revoked_at.map(|_| reason.unwrap_or_else(|| "revoked".to_string())))
}

/// Takes the next change sequence number inside `tx` (locking the counter row until commit, so
/// sequence order is commit order on PostgreSQL).
pub(crate) async fn next_change_seq(tx: &mut Transaction<'_, Any>) -> StoreResult<i64> {
    Ok(sqlx::query(
        "UPDATE counters SET value = value + 1 WHERE name = 'policy_change' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?
    .try_get("value")?)
}

/// On PostgreSQL, queues a notification on [`CHANGE_CHANNEL`], sent when `tx` commits.
pub(crate) async fn notify_change(tx: &mut Transaction<'_, Any>) -> StoreResult<()> {
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANGE_CHANNEL)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Whose policy inputs a write changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputChange {
    /// Every user of the organisation (its default policy, settings or API key).
    Org,
    /// The current members of a group (its policy, role, API key or name).
    Group(String),
    /// These users (membership added or removed, activation, profile).
    Users(Vec<String>),
}

/// A recorded, not yet applied policy-input change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInputChange {
    pub seq: i64,
    pub org_id: String,
    pub change: InputChange,
}

/// Records, inside the write's transaction `tx`, that `change` may have changed policies of
/// `org_id`, on the change sequence (and notifies at commit). Empty user lists record nothing.
pub(crate) async fn record_input_change(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    change: InputChange,
) -> StoreResult<()> {
    let (scope, subject) = match &change {
        InputChange::Org => ("org", String::new()),
        InputChange::Group(id) => ("group", id.clone()),
        InputChange::Users(ids) if ids.is_empty() => return Ok(()),
        InputChange::Users(ids) => (
            "users",
            serde_json::to_string(ids).map_err(|e| StoreError::Failed(e.to_string()))?,
        ),
    };
    let seq = next_change_seq(tx).await?;
    sqlx::query(
        "INSERT INTO policy_input_changes (seq, org_id, scope, subject, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(seq)
    .bind(org_id)
    .bind(scope)
    .bind(subject)
    .bind(now_micros())
    .execute(&mut **tx)
    .await?;
    notify_change(tx).await
}

fn pending_from_row(r: &sqlx::any::AnyRow) -> StoreResult<PendingInputChange> {
    let scope: String = r.try_get("scope")?;
    let subject: String = r.try_get("subject")?;
    let change = match scope.as_str() {
        "org" => InputChange::Org,
        "group" => InputChange::Group(subject),
        "users" => InputChange::Users(
            serde_json::from_str(&subject)
                .map_err(|e| StoreError::Corrupt(format!("policy input change: {e}")))?,
        ),
        other => {
            return Err(StoreError::Corrupt(format!(
                "policy input change of unknown scope {other:?}"
            )))
        }
    };
    Ok(PendingInputChange {
        seq: r.try_get("seq")?,
        org_id: r.try_get("org_id")?,
        change,
    })
}

/// Wakes its owner when another process advanced the change feed (PostgreSQL only).
pub struct ChangeListener {
    listener: PgListener,
}

impl ChangeListener {
    /// Waits for the next notification. After a lost connection sqlx reconnects and listens
    /// again; what was sent meanwhile is lost, which is why callers also poll, slowly.
    pub async fn changed(&mut self) -> StoreResult<()> {
        self.listener.recv().await?;
        Ok(())
    }
}

impl Store {
    /// A listener on the change feed on PostgreSQL; `None` on SQLite.
    pub async fn listen_for_changes(&self) -> StoreResult<Option<ChangeListener>> {
        let Some(url) = self.postgres_url.as_deref() else {
            return Ok(None);
        };
        debug_assert_eq!(self.backend, Backend::Postgres);
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(Some(ChangeListener { listener }))
    }

    /// Claims up to `limit` pending policy-input changes (unclaimed, or whose lease ran out) for
    /// `owner` until `lease_until`, oldest first. Concurrent claimers never get the same row:
    /// the update re-checks the lease of each row it locks.
    pub async fn claim_input_changes(
        &self,
        owner: &str,
        lease_until: Micros,
        limit: i64,
    ) -> StoreResult<Vec<PendingInputChange>> {
        let now = now_micros();
        // A read first: the worker looks often, and most looks find nothing to take the
        // write lock for.
        let claimable = sqlx::query(
            "SELECT seq FROM policy_input_changes WHERE claimed_until IS NULL OR claimed_until < $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        if claimable.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "UPDATE policy_input_changes SET claimed_by = $1, claimed_until = $2 \
             WHERE (claimed_until IS NULL OR claimed_until < $3) AND seq IN \
             (SELECT seq FROM policy_input_changes WHERE claimed_until IS NULL OR claimed_until < $3 ORDER BY seq LIMIT $4) \
             RETURNING seq, org_id, scope, subject",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = rows
            .iter()
            .map(pending_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|c| c.seq);
        Ok(out)
    }

    /// How many policy-input changes are recorded and not yet applied (for health and tests).
    pub async fn pending_input_changes(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM policy_input_changes")
                .fetch_one(&self.read)
                .await?
                .try_get("n")?,
        )
    }

    /// The users a claimed change names who have a stored policy (an enrolled device): only
    /// theirs need recomputing; everyone else's is computed at enrollment or connection.
    pub async fn users_of_input_change(
        &self,
        change: &PendingInputChange,
    ) -> StoreResult<Vec<String>> {
        let ids: Vec<String> = match &change.change {
            InputChange::Org => sqlx::query(
                "SELECT p.user_id FROM user_policies p JOIN users u ON u.id = p.user_id \
                 WHERE p.org_id = $1 AND u.deleted_at IS NULL",
            )
            .bind(&change.org_id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| r.try_get("user_id"))
            .collect::<Result<_, _>>()?,
            InputChange::Group(group_id) => sqlx::query(
                "SELECT m.user_id FROM group_members m JOIN user_policies p ON p.user_id = m.user_id \
                 WHERE m.group_id = $1",
            )
            .bind(group_id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| r.try_get("user_id"))
            .collect::<Result<_, _>>()?,
            InputChange::Users(ids) => return self.users_with_policies(ids).await,
        };
        Ok(ids)
    }

    /// Deletes applied policy-input changes.
    pub async fn finish_input_changes(&self, seqs: &[i64]) -> StoreResult<()> {
        for chunk in seqs.chunks(500) {
            let sql = format!(
                "DELETE FROM policy_input_changes WHERE seq IN ({})",
                super::placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q.bind(*s);
            }
            let mut tx = self.begin_write().await?;
            q.execute(&mut *tx).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Devices revoked after `after_seq`, in sequence order (at most `limit`).
    pub async fn devices_revoked_since(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<RevokedDevice>> {
        sqlx::query(
            "SELECT id, user_id, revoked_at, revoked_reason, revoked_seq FROM devices \
             WHERE revoked_seq > $1 ORDER BY revoked_seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            Ok(RevokedDevice {
                device_id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                reason: revocation_of(r)?.unwrap_or_else(|| "revoked".to_string()),
                seq: r.try_get("revoked_seq")?,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, GroupWrite, UserWrite};
    use serde_json::json;

    async fn store() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let store = Store::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let (org, _) = store.ensure_default_org().await.unwrap();
        (dir, store, org.id)
    }

    fn group(name: &str) -> GroupWrite {
        GroupWrite {
            display_name: name.into(),
            external_id: None,
            attributes: json!({}),
        }
    }

    /// A write records its change in its own transaction: a write that fails records nothing,
    /// and one that commits records exactly what it touched.
    #[tokio::test]
    async fn changes_are_recorded_with_their_write_or_not_at_all() {
        let (_dir, store, org) = store().await;
        let user = store
            .create_user(
                &org,
                &Actor::System,
                UserWrite {
                    user_name: "a@example.com".into(),
                    external_id: None,
                    active: true,
                    primary_role: None,
                    primary_email: None,
                    attributes: json!({"userName": "a@example.com"}),
                },
            )
            .await
            .unwrap();
        // A new user has no device, hence no policy: nothing to recompute.
        assert_eq!(store.pending_input_changes().await.unwrap(), 0);
        let g = store
            .create_group(
                &org,
                &Actor::System,
                group("Eng"),
                std::slice::from_ref(&user.id),
            )
            .await
            .unwrap();
        assert_eq!(store.pending_input_changes().await.unwrap(), 1);
        // The same displayName again: refused, and no change recorded.
        let dup = store
            .create_group(
                &org,
                &Actor::System,
                group("eng"),
                std::slice::from_ref(&user.id),
            )
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        assert_eq!(store.pending_input_changes().await.unwrap(), 1);
        store
            .set_group_policy(&org, &g.id, Some(&json!({})), &Actor::System)
            .await
            .unwrap();
        store
            .set_group_role(&org, &g.id, Some("security"), &Actor::System)
            .await
            .unwrap();
        let claimed = store
            .claim_input_changes("a", now_micros() + 60_000_000, 10)
            .await
            .unwrap();
        let kinds: Vec<_> = claimed.iter().map(|c| c.change.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                InputChange::Users(vec![user.id.clone()]),
                InputChange::Group(g.id.clone()),
                InputChange::Group(g.id.clone()),
            ]
        );
        assert!(claimed.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(claimed.iter().all(|c| c.org_id == org));
        store
            .finish_input_changes(&claimed.iter().map(|c| c.seq).collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(store.pending_input_changes().await.unwrap(), 0);
        store.close().await;
    }

    /// A claim is exclusive while its lease holds, and taken again once it ran out (its owner
    /// died mid-way), so no recorded change is lost or applied by two owners at once.
    #[tokio::test]
    async fn claims_are_leases() {
        let (_dir, store, org) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        record_input_change(&mut tx, &org, InputChange::Org)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let now = now_micros();
        let a = store
            .claim_input_changes("a", now + 60_000_000, 10)
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        let b = store
            .claim_input_changes("b", now + 60_000_000, 10)
            .await
            .unwrap();
        assert!(b.is_empty(), "claimed twice: {b:?}");
        // "a" dies; its lease is rewritten to have run out.
        sqlx::query("UPDATE policy_input_changes SET claimed_until = $1")
            .bind(now - 1)
            .execute(&store.write)
            .await
            .unwrap();
        let b = store
            .claim_input_changes("b", now + 60_000_000, 10)
            .await
            .unwrap();
        assert_eq!(b, a);
        store.close().await;
    }
}
