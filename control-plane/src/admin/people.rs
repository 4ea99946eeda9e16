//! Members: the searchable list, one person's page (groups, devices, the effective policy and
//! where each rule comes from), and a person's own page ("me").

use serde::Serialize;
use serde_json::Value;

use super::{decode_cursor, encode_cursor, page_size, time, AdminError, AdminResult, Capability};
use super::{Page, Principal};
use crate::distribution::{compute, overrides};
use crate::domain::{Device, User};
use crate::roles::{effective_roles, Role};
use crate::store::{Store, UserPolicyInputs};
use palisade_policy::{explain, GroupPolicy};

/// A person in the member list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberSummary {
    pub id: String,
    pub user_name: String,
    pub active: bool,
    pub groups: Vec<String>,
    /// Devices enrolled and not revoked.
    pub devices: usize,
}

/// A device as the console and the API show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub user_id: String,
    pub user_name: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub verified: bool,
    pub enroll_method: String,
    pub enrolled_at: String,
    pub last_seen_at: Option<String>,
    /// The policy version the agent applied last.
    pub applied_version: Option<i64>,
    /// The version the person's agents should hold now.
    pub current_version: Option<i64>,
    /// Whether the agent applied the current version.
    pub up_to_date: bool,
    pub last_error: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
    pub wiped_at: Option<String>,
    /// How often the agent reported restoring tampered settings, and when last.
    pub tamper_events: i64,
    pub last_tamper_at: Option<String>,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> DeviceView {
        DeviceView {
            id: d.id.clone(),
            user_id: d.user_id.clone(),
            user_name: d.user_name.clone(),
            hostname: d.hostname.clone(),
            os: d.os.clone(),
            agent_version: d.agent_version.clone(),
            verified: d.verified,
            enroll_method: d.enroll_method.clone(),
            enrolled_at: time(d.enrolled_at),
            last_seen_at: d.last_seen_at.map(time),
            applied_version: d.applied_version,
            current_version: d.current_version,
            up_to_date: d.current_version.is_some() && d.applied_version == d.current_version,
            last_error: d.last_error.clone(),
            revoked_at: d.revoked_at.map(time),
            revoked_reason: d.revoked_reason.clone(),
            wiped_at: d.wiped_at.map(time),
            tamper_events: d.tamper_count,
            last_tamper_at: d.last_tamper_at.map(time),
        }
    }
}

/// One person's page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberDetail {
    pub id: String,
    pub user_name: String,
    pub active: bool,
    /// Palisade roles (from the IdP's groups and primary role).
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub devices: Vec<DeviceView>,
    /// The effective policy (version 2 form).
    #[schema(value_type = Object)]
    pub policy: Value,
    /// The version agents hold now; absent before the first delivery.
    pub version: Option<i64>,
    /// Each key of the effective policy: its value, merge rule and the sources that set it.
    #[schema(value_type = Vec<Object>)]
    pub explanation: Value,
    /// `organisation`, `group` or absent: which key the person's agents get.
    pub api_key: Option<String>,
}

/// Searches members by the start of their userName, ordered by userName.
pub async fn list_members(
    store: &Store,
    who: &Principal,
    prefix: &str,
    cursor: Option<&str>,
    limit: Option<usize>,
) -> AdminResult<Page<MemberSummary>> {
    who.require(Capability::View)?;
    if prefix.chars().count() > 256 {
        return Err(AdminError::invalid("q", "at most 256 characters"));
    }
    let after = cursor
        .filter(|c| !c.is_empty())
        .map(|c| decode_cursor(c, 1))
        .transpose()?;
    let size = page_size(limit);
    let mut users = store
        .search_users(
            &who.org_id,
            prefix,
            after.as_ref().map(|a| a[0].as_str()),
            size + 1,
        )
        .await?;
    let more = users.len() > size;
    users.truncate(size);
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let groups = store.groups_of_users(&ids).await?;
    let devices = store.live_device_counts(&ids).await?;
    let next_cursor = more
        .then(|| {
            users
                .last()
                .map(|u| encode_cursor(&[&u.user_name.to_lowercase()]))
        })
        .flatten();
    let items = users
        .iter()
        .map(|u| MemberSummary {
            id: u.id.clone(),
            user_name: u.user_name.clone(),
            active: u.active,
            groups: groups
                .get(&u.id)
                .map(|gs| gs.iter().map(|g| g.display_name.clone()).collect())
                .unwrap_or_default(),
            devices: devices.get(&u.id).copied().unwrap_or(0),
        })
        .collect();
    Ok(Page { items, next_cursor })
}

/// One person's page (admins), or their own (any member: see [`me`]).
pub async fn member(store: &Store, who: &Principal, user_id: &str) -> AdminResult<MemberDetail> {
    if who.user_id.as_deref() != Some(user_id) {
        who.require(Capability::View)?;
    }
    let user = store
        .get_user(&who.org_id, user_id)
        .await?
        .ok_or(AdminError::NotFound("member"))?;
    detail(store, &user).await
}

/// The signed-in person's own page.
pub async fn me(store: &Store, who: &Principal) -> AdminResult<MemberDetail> {
    let Some(user_id) = who.user_id.as_deref() else {
        return Err(AdminError::NotFound(
            "person (this principal is not a person)",
        ));
    };
    member(store, who, user_id).await
}

async fn detail(store: &Store, user: &User) -> AdminResult<MemberDetail> {
    let inputs = store
        .user_policy_inputs(&user.id)
        .await?
        .ok_or(AdminError::NotFound("member"))?;
    let computed = compute(&inputs)?;
    let explanation = explanation(&inputs)?;
    let stored = store.stored_user_policy(&user.id).await?;
    let devices = store.devices_of_user(&user.id).await?;
    Ok(MemberDetail {
        id: user.id.clone(),
        user_name: user.user_name.clone(),
        active: user.active,
        roles: roles_of(&inputs).iter().map(|r| r.to_string()).collect(),
        groups: inputs
            .groups
            .iter()
            .map(|g| g.display_name.clone())
            .collect(),
        devices: devices.iter().map(DeviceView::from).collect(),
        policy: computed.policy.to_value(),
        version: stored.map(|s| s.version),
        explanation,
        api_key: computed.api_key_ref.as_ref().map(|r| {
            if r.starts_with('#') {
                "organisation".to_owned()
            } else {
                "group".to_owned()
            }
        }),
    })
}

/// Where each key of a person's effective policy comes from.
pub fn explanation(inputs: &UserPolicyInputs) -> AdminResult<Value> {
    let (defaults, groups) = overrides(inputs)?;
    let groups: Vec<GroupPolicy<'_>> = groups
        .iter()
        .map(|(g, p)| GroupPolicy {
            group: g,
            policy: p,
        })
        .collect();
    Ok(explain(&defaults, &groups).to_value()["keys"].clone())
}

/// A person's Palisade roles.
pub fn roles_of(inputs: &UserPolicyInputs) -> std::collections::BTreeSet<Role> {
    effective_roles(
        inputs
            .primary_role
            .as_deref()
            .and_then(|r| r.parse::<Role>().ok()),
        &inputs
            .groups
            .iter()
            .filter_map(|g| g.role.as_deref().and_then(|r| r.parse::<Role>().ok()))
            .collect::<Vec<_>>(),
    )
}
