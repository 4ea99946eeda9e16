//! Groups and their members. Membership changes are row inserts and deletes with an atomic
//! version bump, never a read-modify-write of a member list, so concurrent changes all land
//! and a change costs the same whatever the group's size.

use crate::domain::AuditAction;
use std::collections::HashSet;

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::changes::{record_input_change, InputChange};
use super::devices::revoke_user_devices;
use super::{audit, conflict_on_unique, new_id, placeholders, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Actor, Group, GroupMember, GroupWrite, MembershipChange};

const GROUP_COLUMNS: &str =
    "id, org_id, display_name, external_id, attributes, version, created_at, updated_at";

/// Which groups a listing asks the database for (the SCIM edge filters further in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSelection {
    All,
    DisplayName(String),
    ExternalId(String),
    Id(String),
}

fn group_from_row(r: &AnyRow) -> StoreResult<Group> {
    let attributes: String = r.try_get("attributes")?;
    Ok(Group {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        display_name: r.try_get("display_name")?,
        external_id: r.try_get("external_id")?,
        attributes: serde_json::from_str(&attributes)
            .map_err(|e| StoreError::Corrupt(format!("group attributes: {e}")))?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn display_name_key(name: &str) -> String {
    name.to_lowercase()
}

fn taken(name: &str) -> String {
    format!("a group named {name:?} already exists")
}

impl Store {
    pub async fn create_group(
        &self,
        org_id: &str,
        actor: &Actor,
        new: GroupWrite,
        members: &[String],
    ) -> StoreResult<Group> {
        let now = now_micros();
        let group = Group {
            id: new_id(),
            org_id: org_id.to_string(),
            display_name: new.display_name,
            external_id: new.external_id,
            attributes: new.attributes,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO scim_groups ({GROUP_COLUMNS}, display_name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&group.id)
        .bind(org_id)
        .bind(&group.display_name)
        .bind(&group.external_id)
        .bind(group.attributes.to_string())
        .bind(group.version)
        .bind(group.created_at)
        .bind(group.updated_at)
        .bind(display_name_key(&group.display_name))
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, &taken(&group.display_name)))?;
        let skipped = insert_members(&mut tx, org_id, &group.id, members, now).await?;
        let unknown: HashSet<&String> = skipped.iter().collect();
        let added: Vec<String> = members
            .iter()
            .filter(|m| !unknown.contains(m))
            .cloned()
            .collect();
        record_input_change(&mut tx, org_id, InputChange::Users(added)).await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::GroupCreate,
            "Group",
            Some(&group.id),
            json!({"displayName": group.display_name, "members": members, "unknownMembersSkipped": skipped}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(group)
    }

    pub async fn get_group(&self, org_id: &str, id: &str) -> StoreResult<Option<Group>> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    /// Live groups matching the selection, in stable order (creation time, then id).
    pub async fn select_groups(
        &self,
        org_id: &str,
        selection: &GroupSelection,
    ) -> StoreResult<Vec<Group>> {
        let base = format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE org_id = $1 AND deleted_at IS NULL"
        );
        let order = "ORDER BY created_at, id";
        let (clause, arg) = match selection {
            GroupSelection::All => ("", None),
            GroupSelection::DisplayName(n) => {
                ("AND display_name_key = $2", Some(display_name_key(n)))
            }
            GroupSelection::ExternalId(x) => ("AND external_id = $2", Some(x.clone())),
            GroupSelection::Id(id) => ("AND id = $2", Some(id.clone())),
        };
        let sql = format!("{base} {clause} {order}");
        let mut q = sqlx::query(&sql).bind(org_id);
        if let Some(a) = arg {
            q = q.bind(a);
        }
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(group_from_row)
            .collect()
    }

    /// One page of all live groups in stable order, and the total count.
    pub async fn page_groups(
        &self,
        org_id: &str,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<Group>, i64)> {
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM scim_groups WHERE org_id = $1 AND deleted_at IS NULL",
        )
        .bind(org_id)
        .fetch_one(&self.read)
        .await?
        .try_get("n")?;
        if limit <= 0 {
            return Ok((Vec::new(), total));
        }
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(org_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.read)
        .await?;
        Ok((
            rows.iter()
                .map(group_from_row)
                .collect::<StoreResult<_>>()?,
            total,
        ))
    }

    /// The group's members with their userNames, in a stable order.
    pub async fn group_members(&self, group_id: &str) -> StoreResult<Vec<GroupMember>> {
        let rows = sqlx::query(
            "SELECT u.id, u.user_name FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = $1 ORDER BY m.added_at, u.id",
        )
        .bind(group_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GroupMember {
                    user_id: r.try_get("id")?,
                    user_name: r.try_get("user_name")?,
                })
            })
            .collect()
    }

    /// Updates a group: optionally its attributes (checked against `expected_version`, which is
    /// also enforced when given alone, for `If-Match`), then each membership change in order.
    /// Everything commits together or not at all.
    #[allow(clippy::too_many_arguments)] // one call site per SCIM verb; a builder would add nothing
    pub async fn update_group(
        &self,
        org_id: &str,
        id: &str,
        actor: &Actor,
        expected_version: Option<i64>,
        write: Option<GroupWrite>,
        changes: &[MembershipChange],
        mut detail: Value,
    ) -> StoreResult<Group> {
        let now = now_micros();
        let mut skipped: Vec<String> = Vec::new();
        let mut tx = self.begin_write().await?;
        // A new displayName reorders the member's groups (merge order, which group's key wins).
        let renamed = match &write {
            Some(w) => sqlx::query(
                "SELECT display_name FROM scim_groups WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("display_name"))
            .transpose()?
            .is_some_and(|old| old != w.display_name),
            None => false,
        };
        let done = match &write {
            Some(w) => {
                sqlx::query(
                    "UPDATE scim_groups SET display_name = $1, display_name_key = $2, external_id = $3, attributes = $4, \
                     version = version + 1, updated_at = $5 \
                     WHERE org_id = $6 AND id = $7 AND deleted_at IS NULL AND ($8 < 0 OR version = $8)",
                )
                .bind(&w.display_name)
                .bind(display_name_key(&w.display_name))
                .bind(&w.external_id)
                .bind(w.attributes.to_string())
                .bind(now)
                .bind(org_id)
                .bind(id)
                .bind(expected_version.unwrap_or(-1))
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_on_unique(e, &taken(&w.display_name)))?
            }
            None => {
                sqlx::query(
                    "UPDATE scim_groups SET version = version + 1, updated_at = $1 \
                     WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL AND ($4 < 0 OR version = $4)",
                )
                .bind(now)
                .bind(org_id)
                .bind(id)
                .bind(expected_version.unwrap_or(-1))
                .execute(&mut *tx)
                .await?
            }
        };
        if done.rows_affected() == 0 {
            let exists = sqlx::query(
                "SELECT id FROM scim_groups WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
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
        let mut added: Vec<String> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        for change in changes {
            match change {
                MembershipChange::Add(ids) => {
                    let unknown = insert_members(&mut tx, org_id, id, ids, now).await?;
                    let unknown_set: HashSet<&String> = unknown.iter().collect();
                    added.extend(ids.iter().filter(|i| !unknown_set.contains(i)).cloned());
                    skipped.extend(unknown);
                }
                MembershipChange::Remove(ids) => {
                    removed.extend(ids.iter().cloned());
                    for chunk in ids.chunks(MEMBER_CHUNK) {
                        let sql = format!(
                            "DELETE FROM group_members WHERE group_id = $1 AND user_id IN ({})",
                            placeholders(2, chunk.len())
                        );
                        let mut q = sqlx::query(&sql).bind(id);
                        for uid in chunk {
                            q = q.bind(uid);
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                MembershipChange::RemoveAll => {
                    removed.extend(member_ids(&mut tx, id).await?);
                    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                MembershipChange::ReplaceAll(ids) => {
                    removed.extend(member_ids(&mut tx, id).await?);
                    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let unknown = insert_members(&mut tx, org_id, id, ids, now).await?;
                    let unknown_set: HashSet<&String> = unknown.iter().collect();
                    added.extend(ids.iter().filter(|i| !unknown_set.contains(i)).cloned());
                    skipped.extend(unknown);
                }
            }
        }
        if !skipped.is_empty() {
            if let Value::Object(m) = &mut detail {
                m.insert("unknownMembersSkipped".to_string(), json!(skipped));
            }
        }
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::GroupUpdate,
            "Group",
            Some(id),
            detail,
        )
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let group = group_from_row(&row)?;
        deprovision_groupless(&mut tx, org_id, &removed, actor).await?;
        let mut touched = added;
        touched.extend(removed);
        touched.sort();
        touched.dedup();
        record_input_change(&mut tx, org_id, InputChange::Users(touched)).await?;
        if renamed {
            record_input_change(&mut tx, org_id, InputChange::Group(id.to_string())).await?;
        }
        tx.commit().await?;
        self.committed_change();
        Ok(group)
    }

    /// Removes a group from SCIM and its memberships; the row stays for the audit history.
    pub async fn delete_group(&self, org_id: &str, id: &str, actor: &Actor) -> StoreResult<()> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE scim_groups SET deleted_at = $1, updated_at = $1 WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL")
            .bind(now)
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let former_members = member_ids(&mut tx, id).await?;
        let removed = sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        deprovision_groupless(&mut tx, org_id, &former_members, actor).await?;
        record_input_change(&mut tx, org_id, InputChange::Users(former_members)).await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::GroupDelete,
            "Group",
            Some(id),
            json!({"membersRemoved": removed.rows_affected()}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(())
    }
}

/// Adds members that are not there yet. Ids that name no live user of the organisation are
/// skipped and returned (IdPs and conformance suites add members the server may not know; the
/// caller records them in the audit trail rather than failing the whole change).
async fn insert_members(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    group_id: &str,
    user_ids: &[String],
    now: i64,
) -> StoreResult<Vec<String>> {
    let mut unique: Vec<&String> = user_ids.iter().collect();
    unique.sort();
    unique.dedup();
    let mut skipped = Vec::new();
    // Two statements per chunk (one lookup, one multi-row insert) rather than a round trip per
    // member: adding tens of thousands of members in one PATCH stays linear and quick.
    for chunk in unique.chunks(MEMBER_CHUNK) {
        let sql = format!(
            "SELECT id FROM users WHERE org_id = $1 AND deleted_at IS NULL AND id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(org_id);
        for uid in chunk {
            q = q.bind(*uid);
        }
        let found: HashSet<String> = q
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut known: Vec<&String> = Vec::with_capacity(chunk.len());
        for uid in chunk {
            if found.contains(*uid) {
                known.push(uid);
            } else {
                skipped.push((*uid).clone());
            }
        }
        if known.is_empty() {
            continue;
        }
        // ($1 = group, $2 = time, then one parameter per member.)
        let rows = (0..known.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO group_members (group_id, user_id, added_at) VALUES {rows} ON CONFLICT DO NOTHING"
        );
        let mut q = sqlx::query(&sql).bind(group_id).bind(now);
        for uid in known {
            q = q.bind(uid);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(skipped)
}

/// Members per statement: well under SQLite's and PostgreSQL's bound-parameter limits.
const MEMBER_CHUNK: usize = 1000;

/// Ids of a group's current members, inside a transaction.
async fn member_ids(tx: &mut Transaction<'_, Any>, group_id: &str) -> StoreResult<Vec<String>> {
    sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1")
        .bind(group_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("user_id")?))
        .collect()
}

/// When the organisation requires it, deprovisions users that the transaction left in no group:
/// their devices are revoked in the same transaction, audited as the change's `actor`. Returns
/// (user id, revoked device ids).
async fn deprovision_groupless(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    candidates: &[String],
    actor: &Actor,
) -> StoreResult<Vec<(String, Vec<String>)>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let required: Option<i64> =
        sqlx::query("SELECT deprovision_without_groups FROM org_settings WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("deprovision_without_groups"))
            .transpose()?;
    if required != Some(1) {
        return Ok(Vec::new());
    }
    // Who is still in some live group, a chunk at a time (not one query per candidate).
    let mut unique: Vec<&String> = candidates.iter().collect();
    unique.sort();
    unique.dedup();
    let mut still_members: HashSet<String> = HashSet::new();
    for chunk in unique.chunks(MEMBER_CHUNK) {
        let sql = format!(
            "SELECT DISTINCT m.user_id FROM group_members m JOIN scim_groups g ON g.id = m.group_id AND g.deleted_at IS NULL WHERE m.user_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for uid in chunk {
            q = q.bind(*uid);
        }
        for row in q.fetch_all(&mut **tx).await? {
            still_members.insert(row.try_get("user_id")?);
        }
    }
    let mut out = Vec::new();
    for user_id in unique {
        if still_members.contains(user_id) {
            continue;
        }
        let devices =
            revoke_user_devices(tx, user_id, "removed from the last synced group").await?;
        audit::record(
            tx,
            org_id,
            actor,
            AuditAction::UserDeprovision,
            "User",
            Some(user_id),
            json!({"reason": "removed from the last synced group", "devicesRevoked": devices}),
        )
        .await?;
        out.push((user_id.clone(), devices));
    }
    Ok(out)
}
