//! The audit trail: one event per change, written in the same transaction as the change.

use crate::domain::AuditAction;
use serde_json::Value;
use sqlx::{Any, Row, Transaction};

use super::{new_id, Store, StoreResult};
use crate::domain::{now_micros, Actor, Micros};

/// One recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub org_id: String,
    pub at: Micros,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: Value,
}

/// Records an event inside the caller's transaction, so it commits or rolls back with the change.
pub(crate) async fn record(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    actor: &Actor,
    action: AuditAction,
    resource_type: &str,
    resource_id: Option<&str>,
    detail: Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, at, actor, action, resource_type, resource_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(org_id)
    .bind(now_micros())
    .bind(actor.audit_name())
    .bind(action.as_str())
    .bind(resource_type)
    .bind(resource_id)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Records an event that is not part of another change (a sign-in, a refused sign-in).
    pub async fn record_audit(
        &self,
        org_id: &str,
        actor: &Actor,
        action: AuditAction,
        resource_type: &str,
        resource_id: Option<&str>,
        detail: Value,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        record(
            &mut tx,
            org_id,
            actor,
            action,
            resource_type,
            resource_id,
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit events of one resource (or of the whole organisation), oldest first.
    pub async fn audit_events(
        &self,
        org_id: &str,
        resource_id: Option<&str>,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = match resource_id {
            Some(rid) => {
                sqlx::query(
                    "SELECT id, org_id, at, actor, action, resource_type, resource_id, detail FROM audit_events \
                     WHERE org_id = $1 AND resource_id = $2 ORDER BY at, id",
                )
                .bind(org_id)
                .bind(rid)
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, org_id, at, actor, action, resource_type, resource_id, detail FROM audit_events \
                     WHERE org_id = $1 ORDER BY at, id",
                )
                .bind(org_id)
                .fetch_all(&self.read)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    resource_type: r.try_get("resource_type")?,
                    resource_id: r.try_get("resource_id")?,
                    detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                })
            })
            .collect()
    }
}
