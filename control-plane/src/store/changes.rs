//! The store-wide change feed that keeps replicas in step: one counter orders every stored
//! policy version and every device revocation; each write transaction that advances it also
//! notifies, on PostgreSQL, the channel [`CHANGE_CHANNEL`] (delivered at commit, dropped on
//! rollback). Each control-plane process follows the counter from a cursor
//! (`distribution::Distributor::run_catch_up`), woken by the notification on PostgreSQL and by
//! a short poll on SQLite, whose other writers are CLI processes.

use sqlx::postgres::PgListener;
use sqlx::{Any, Row, Transaction};

use super::{Backend, Store, StoreResult};

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
