//! Users: create, read, look up by indexed attributes, replace with optimistic concurrency,
//! soft-delete (the row and its audit history stay; the userName becomes free again).

use crate::domain::AuditAction;
use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::changes::{record_input_change, InputChange};
use super::devices::revoke_user_devices;
use super::{audit, conflict_on_unique, new_id, placeholders, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Actor, GroupRef, User, UserWrite};

const USER_COLUMNS: &str =
    "id, org_id, user_name, external_id, active, primary_role, attributes, version, created_at, updated_at";

/// Which users a listing asks the database for (the SCIM edge filters further in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSelection {
    All,
    UserName(String),
    ExternalId(String),
    Id(String),
}

fn user_from_row(r: &AnyRow) -> StoreResult<User> {
    let attributes: String = r.try_get("attributes")?;
    let active: i64 = r.try_get("active")?;
    Ok(User {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        user_name: r.try_get("user_name")?,
        external_id: r.try_get("external_id")?,
        active: active != 0,
        primary_role: r.try_get("primary_role")?,
        attributes: serde_json::from_str(&attributes)
            .map_err(|e| StoreError::Corrupt(format!("user attributes: {e}")))?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn user_name_key(user_name: &str) -> String {
    user_name.to_lowercase()
}

fn taken(user_name: &str) -> String {
    format!("userName {user_name:?} is already in use")
}

impl Store {
    pub async fn create_user(
        &self,
        org_id: &str,
        actor: &Actor,
        new: UserWrite,
    ) -> StoreResult<User> {
        let now = now_micros();
        let user = User {
            id: new_id(),
            org_id: org_id.to_string(),
            user_name: new.user_name,
            external_id: new.external_id,
            active: new.active,
            primary_role: new.primary_role,
            attributes: new.attributes,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        // Creates go through the group-commit writer (see batch.rs).
        let (reply, answer) = tokio::sync::oneshot::channel();
        let user_name_key = user_name_key(&user.user_name);
        let job = super::batch::CreateJob {
            org_id: org_id.to_string(),
            actor: actor.clone(),
            user,
            user_name_key,
            primary_email_key: new
                .primary_email
                .as_deref()
                .map(str::to_lowercase)
                .unwrap_or_default(),
            reply,
        };
        self.creates
            .send(job)
            .await
            .map_err(|_| StoreError::Failed("the store is shutting down".to_string()))?;
        answer
            .await
            .map_err(|_| StoreError::Failed("the store is shutting down".to_string()))?
    }

    /// A live (not deleted) user of the organisation.
    pub async fn get_user(&self, org_id: &str, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Live users matching the selection, in stable order (creation time, then id).
    pub async fn select_users(
        &self,
        org_id: &str,
        selection: &UserSelection,
    ) -> StoreResult<Vec<User>> {
        let base =
            format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND deleted_at IS NULL");
        let order = "ORDER BY created_at, id";
        let rows = match selection {
            UserSelection::All => {
                sqlx::query(&format!("{base} {order}"))
                    .bind(org_id)
                    .fetch_all(&self.read)
                    .await?
            }
            UserSelection::UserName(n) => {
                sqlx::query(&format!("{base} AND user_name_key = $2 {order}"))
                    .bind(org_id)
                    .bind(user_name_key(n))
                    .fetch_all(&self.read)
                    .await?
            }
            UserSelection::ExternalId(x) => {
                sqlx::query(&format!("{base} AND external_id = $2 {order}"))
                    .bind(org_id)
                    .bind(x)
                    .fetch_all(&self.read)
                    .await?
            }
            UserSelection::Id(id) => {
                sqlx::query(&format!("{base} AND id = $2 {order}"))
                    .bind(org_id)
                    .bind(id)
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(user_from_row).collect()
    }

    /// Like [`Store::select_users`] for an indexed selection, with each user's groups fetched
    /// in the same query (one round trip for the common `userName eq` lookup).
    pub async fn select_users_with_groups(
        &self,
        org_id: &str,
        selection: &UserSelection,
    ) -> StoreResult<Vec<(User, Vec<GroupRef>)>> {
        let (clause, arg) = match selection {
            UserSelection::All => ("", None),
            UserSelection::UserName(n) => ("AND u.user_name_key = $2", Some(user_name_key(n))),
            UserSelection::ExternalId(x) => ("AND u.external_id = $2", Some(x.clone())),
            UserSelection::Id(id) => ("AND u.id = $2", Some(id.clone())),
        };
        let columns: String = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, g.id AS group_id, g.display_name AS group_display_name FROM users u \
             LEFT JOIN group_members m ON m.user_id = u.id \
             LEFT JOIN scim_groups g ON g.id = m.group_id AND g.deleted_at IS NULL \
             WHERE u.org_id = $1 AND u.deleted_at IS NULL {clause} \
             ORDER BY u.created_at, u.id, g.display_name_key, g.id"
        );
        let mut q = sqlx::query(&sql).bind(org_id);
        if let Some(a) = arg {
            q = q.bind(a);
        }
        let mut out: Vec<(User, Vec<GroupRef>)> = Vec::new();
        for r in q.fetch_all(&self.read).await? {
            let id: String = r.try_get("id")?;
            if out.last().is_none_or(|(u, _)| u.id != id) {
                out.push((user_from_row(&r)?, Vec::new()));
            }
            let group_id: Option<String> = r.try_get("group_id")?;
            let display: Option<String> = r.try_get("group_display_name")?;
            if let (Some(group_id), Some(display_name), Some((_, groups))) =
                (group_id, display, out.last_mut())
            {
                groups.push(GroupRef {
                    group_id,
                    display_name,
                });
            }
        }
        Ok(out)
    }

    /// One page of all live users in stable order, and the total count.
    /// One page of the organisation's people ordered by userName, those whose userName starts
    /// with `prefix` (any case), after the userName key `after`: an indexed range read.
    pub async fn search_users(
        &self,
        org_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let lo = user_name_key(prefix);
        // Every key starting with `lo` sorts below `lo` + the largest character.
        let hi = format!("{lo}\u{10FFFF}");
        let after = after.map(str::to_owned).unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND deleted_at IS NULL \
             AND user_name_key >= $2 AND user_name_key < $3 AND user_name_key > $4 \
             ORDER BY user_name_key LIMIT $5"
        ))
        .bind(org_id)
        .bind(&lo)
        .bind(&hi)
        .bind(&after)
        .bind(limit.min(1000) as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn page_users(
        &self,
        org_id: &str,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<User>, i64)> {
        let total: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM users WHERE org_id = $1 AND deleted_at IS NULL")
                .bind(org_id)
                .fetch_one(&self.read)
                .await?
                .try_get("n")?;
        if limit <= 0 {
            return Ok((Vec::new(), total));
        }
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(org_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.read)
        .await?;
        Ok((
            rows.iter().map(user_from_row).collect::<StoreResult<_>>()?,
            total,
        ))
    }

    /// Replaces a user's attributes if its version is still `expected_version`.
    /// `VersionConflict` if another write got there first; `NotFound` if it is gone.
    #[allow(clippy::too_many_arguments)] // one call site per SCIM verb; a builder would add nothing
    pub async fn replace_user(
        &self,
        org_id: &str,
        id: &str,
        actor: &Actor,
        expected_version: i64,
        update: UserWrite,
        action: AuditAction,
        detail: Value,
    ) -> StoreResult<User> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET user_name = $1, user_name_key = $2, external_id = $3, active = $4, primary_role = $5, \
             attributes = $6, version = version + 1, updated_at = $7, primary_email_key = $11 \
             WHERE org_id = $8 AND id = $9 AND version = $10 AND deleted_at IS NULL",
        )
        .bind(&update.user_name)
        .bind(user_name_key(&update.user_name))
        .bind(&update.external_id)
        .bind(i64::from(update.active))
        .bind(&update.primary_role)
        .bind(update.attributes.to_string())
        .bind(now)
        .bind(org_id)
        .bind(id)
        .bind(expected_version)
        .bind(
            update
                .primary_email
                .as_deref()
                .map(str::to_lowercase)
                .unwrap_or_default(),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, &taken(&update.user_name)))?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query(
                "SELECT version FROM users WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(if exists.is_some() {
                StoreError::VersionConflict
            } else {
                StoreError::NotFound
            });
        }
        // Deprovisioning: a deactivated user's devices are revoked in the same transaction.
        let revoked = if update.active {
            record_input_change(&mut tx, org_id, InputChange::Users(vec![id.to_string()])).await?;
            Vec::new()
        } else {
            revoke_user_devices(&mut tx, id, "deactivated").await?
        };
        let mut detail = detail;
        if let (false, Value::Object(m)) = (update.active, &mut detail) {
            m.insert("devicesRevoked".to_string(), json!(revoked));
        }
        audit::record(&mut tx, org_id, actor, action, "User", Some(id), detail).await?;
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let user = user_from_row(&row)?;
        tx.commit().await?;
        self.committed_change();
        Ok(user)
    }

    /// Removes a user from SCIM: hidden from reads, taken out of its groups, its userName freed.
    /// The row stays so that its audit history keeps a subject.
    pub async fn delete_user(&self, org_id: &str, id: &str, actor: &Actor) -> StoreResult<()> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET deleted_at = $1, updated_at = $1, version = version + 1 WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL")
            .bind(now)
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let groups: Vec<String> =
            sqlx::query("SELECT group_id FROM group_members WHERE user_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("group_id"))
                .collect::<Result<_, _>>()?;
        sqlx::query("DELETE FROM group_members WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for gid in &groups {
            sqlx::query(
                "UPDATE scim_groups SET version = version + 1, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(gid)
            .execute(&mut *tx)
            .await?;
        }
        let revoked = revoke_user_devices(&mut tx, id, "deleted").await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::UserDelete,
            "User",
            Some(id),
            json!({"removedFromGroups": groups, "devicesRevoked": revoked}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(())
    }

    /// The groups each of the given users belongs to, for their read-only `groups` attribute.
    pub async fn groups_of_users(
        &self,
        user_ids: &[&str],
    ) -> StoreResult<HashMap<String, Vec<GroupRef>>> {
        let mut out: HashMap<String, Vec<GroupRef>> = HashMap::new();
        // Bounded IN lists keep every statement within both engines' parameter limits.
        for chunk in user_ids.chunks(500) {
            let sql = format!(
                "SELECT m.user_id, g.id, g.display_name FROM group_members m JOIN scim_groups g ON g.id = m.group_id \
                 WHERE m.user_id IN ({}) AND g.deleted_at IS NULL ORDER BY g.display_name_key, g.id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.read).await? {
                let uid: String = r.try_get("user_id")?;
                out.entry(uid).or_default().push(GroupRef {
                    group_id: r.try_get("id")?,
                    display_name: r.try_get("display_name")?,
                });
            }
        }
        Ok(out)
    }
}
