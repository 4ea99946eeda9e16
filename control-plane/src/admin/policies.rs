//! Org defaults and group policies: read them, preview what a change would do (which keys of
//! whose effective policy change, how many people and devices), and save it. Saving goes
//! through the store's writes, which record the change event in their transaction, so the
//! agents of everyone affected receive it by themselves.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{AdminError, AdminResult, Capability, FieldError, Principal};
use crate::distribution::compute;
use crate::domain::AuditAction;
use crate::store::{Store, UserPolicyInputs};
use palisade_policy::{Policy, PolicyErrors, Scope};

/// What a policy change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTarget {
    /// The organisation's defaults.
    Defaults,
    /// One group's override (by id).
    Group(String),
}

/// A stored policy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    /// `defaults`, or the group's id.
    pub target: String,
    /// The group's name (absent for the defaults).
    pub group: Option<String>,
    /// The policy (version 2 form); absent when a group has no override.
    #[schema(value_type = Option<Object>)]
    pub policy: Option<Value>,
}

/// What saving a policy would change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// People whose effective policy depends on this policy (active members of the group, or
    /// everyone for the defaults).
    pub people_affected: usize,
    /// Of those, people whose effective policy would change.
    pub people_changed: usize,
    /// Live devices of the people who change: the agents that receive a new version.
    pub devices_changed: usize,
    /// Effective-policy keys that change for at least one person, sorted.
    pub changed_keys: Vec<String>,
    /// Up to 20 people who change, with their changed keys.
    pub examples: Vec<PersonChange>,
    /// Whether the change was saved (false for a preview).
    pub saved: bool,
}

/// One person's changed keys.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonChange {
    pub user_name: String,
    pub changed_keys: Vec<String>,
}

/// A group as the policies page lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupSummary {
    pub id: String,
    pub display_name: String,
    pub members: usize,
    /// Whether the group overrides the org defaults.
    pub has_policy: bool,
}

/// One page of the organisation's groups, oldest first.
pub async fn list_groups(
    store: &Store,
    who: &Principal,
    cursor: Option<&str>,
    limit: Option<usize>,
) -> AdminResult<super::Page<GroupSummary>> {
    who.require(Capability::View)?;
    let offset: i64 = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => super::decode_cursor(c, 1)?[0]
            .parse()
            .map_err(|_| AdminError::invalid("cursor", "not a cursor this API returned"))?,
        None => 0,
    };
    let size = super::page_size(limit);
    let (groups, total) = store.page_groups(&who.org_id, offset, size as i64).await?;
    let mut items = Vec::with_capacity(groups.len());
    for g in &groups {
        items.push(GroupSummary {
            id: g.id.clone(),
            display_name: g.display_name.clone(),
            members: store.group_member_ids(&g.id).await?.len(),
            has_policy: store.group_policy(&g.id).await?.is_some(),
        });
    }
    let next = offset + groups.len() as i64;
    Ok(super::Page {
        items,
        next_cursor: (next < total && !groups.is_empty())
            .then(|| super::encode_cursor(&[&next.to_string()])),
    })
}

/// The org defaults.
pub async fn defaults(store: &Store, who: &Principal) -> AdminResult<PolicyView> {
    who.require(Capability::View)?;
    let settings = store.org_settings(&who.org_id).await?;
    Ok(PolicyView {
        target: "defaults".to_owned(),
        group: None,
        policy: Some(settings.default_policy),
    })
}

/// A group's override.
pub async fn group_policy(
    store: &Store,
    who: &Principal,
    group_id: &str,
) -> AdminResult<PolicyView> {
    who.require(Capability::View)?;
    let group = store
        .get_group(&who.org_id, group_id)
        .await?
        .ok_or(AdminError::NotFound("group"))?;
    Ok(PolicyView {
        target: group.id.clone(),
        group: Some(group.display_name),
        policy: store.group_policy(&group.id).await?,
    })
}

/// One saved version of a policy, from the audit trail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyVersion {
    /// When it was saved (RFC 3339).
    pub at: String,
    /// Who saved it.
    pub actor: String,
    /// From where (console and API changes).
    pub source: String,
    /// The policy as saved (absent: a group's override was removed).
    #[schema(value_type = Option<Object>)]
    pub policy: Option<Value>,
}

/// The last `limit` saved versions of `target`, newest first (each can be restored by saving
/// it again).
pub async fn history(
    store: &Store,
    who: &Principal,
    target: &PolicyTarget,
    limit: usize,
) -> AdminResult<Vec<PolicyVersion>> {
    who.require(Capability::ViewAudit)?;
    let (resource, action, field) = match target {
        PolicyTarget::Defaults => (who.org_id.clone(), "org.", "defaultPolicy"),
        PolicyTarget::Group(id) => {
            store
                .get_group(&who.org_id, id)
                .await?
                .ok_or(AdminError::NotFound("group"))?;
            (id.clone(), "group.policy.set", "policy")
        }
    };
    let filter = crate::store::AuditFilter {
        action: Some(action.to_owned()),
        resource_id: Some(resource),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut after = None;
    // Settings changes that kept the defaults are skipped: only versions that differ count.
    while out.len() < limit {
        let events = store
            .audit_page(&who.org_id, &filter, after.as_ref(), 100)
            .await?;
        let Some(last) = events.last() else { break };
        after = Some(crate::store::AuditCursor {
            at: last.at,
            id: last.id.clone(),
        });
        for e in &events {
            if !matches!(
                e.action.as_str(),
                "org.policy.set-default" | "org.settings.set" | "group.policy.set"
            ) {
                continue;
            }
            let policy = e.detail.get(field).cloned().filter(|p| !p.is_null());
            let same_as_newer = out.last().is_some_and(|v: &PolicyVersion| {
                v.policy == policy && e.action == "org.settings.set"
            });
            if !same_as_newer && out.len() < limit {
                out.push(PolicyVersion {
                    at: super::time(e.at),
                    actor: e.actor.clone(),
                    source: e.source.clone(),
                    policy,
                });
            }
        }
        if events.len() < 100 {
            break;
        }
    }
    Ok(out)
}

/// Checks `document` as a policy for `target` (group policies may not set org-only keys).
pub fn validate(target: &PolicyTarget, document: &Value) -> AdminResult<Policy> {
    let loaded = Policy::from_value(document).map_err(policy_errors)?;
    let scope = match target {
        PolicyTarget::Defaults => Scope::Org,
        PolicyTarget::Group(_) => Scope::Group,
    };
    loaded.policy.check_scope(scope).map_err(policy_errors)?;
    Ok(loaded.policy)
}

fn policy_errors(errors: PolicyErrors) -> AdminError {
    let details: Vec<FieldError> = errors
        .errors()
        .iter()
        .map(|e| FieldError {
            field: e.key_name().map(str::to_owned),
            message: e.to_string(),
        })
        .collect();
    AdminError::Invalid {
        field: details.first().and_then(|d| d.field.clone()),
        message: format!("not a valid policy: {errors}"),
        details,
    }
}

/// Previews, and unless `dry_run` saves, `document` (None: remove a group's override) as the
/// policy of `target`. The preview is computed from the inputs as they are now.
pub async fn set_policy(
    store: &Store,
    who: &Principal,
    target: &PolicyTarget,
    document: Option<&Value>,
    dry_run: bool,
) -> AdminResult<Preview> {
    who.require(if dry_run {
        Capability::View
    } else {
        Capability::EditPolicy
    })?;
    let policy = match (target, document) {
        (_, Some(d)) => Some(validate(target, d)?.to_value()),
        (PolicyTarget::Group(_), None) => None,
        (PolicyTarget::Defaults, None) => {
            return Err(AdminError::invalid(
                "policy",
                "the defaults cannot be removed",
            ))
        }
    };
    let group = match target {
        PolicyTarget::Group(id) => Some(
            store
                .get_group(&who.org_id, id)
                .await?
                .ok_or(AdminError::NotFound("group"))?,
        ),
        PolicyTarget::Defaults => None,
    };
    let people = match &group {
        Some(g) => store.group_member_ids(&g.id).await?,
        None => store.org_user_ids(&who.org_id).await?,
    };
    let mut preview = preview(store, &people, target, policy.as_ref()).await?;
    if dry_run {
        return Ok(preview);
    }
    match &group {
        Some(g) => {
            store
                .set_group_policy(&who.org_id, &g.id, policy.as_ref(), &who.actor)
                .await?
        }
        None => {
            let mut settings = store.org_settings(&who.org_id).await?;
            settings.default_policy = policy.unwrap_or_else(|| Value::Object(Default::default()));
            store
                .set_org_settings(
                    &who.org_id,
                    &settings,
                    &who.actor,
                    AuditAction::OrgPolicySetDefault,
                )
                .await?;
        }
    }
    preview.saved = true;
    Ok(preview)
}

/// What replacing `target`'s policy with `policy` does to `people`.
async fn preview(
    store: &Store,
    people: &[String],
    target: &PolicyTarget,
    policy: Option<&Value>,
) -> AdminResult<Preview> {
    let mut changed_keys: BTreeSet<String> = BTreeSet::new();
    let mut examples = Vec::new();
    let mut changed_people: Vec<String> = Vec::new();
    let mut affected = 0;
    for chunk in people.chunks(500) {
        for inputs in store.user_policy_inputs_many(chunk).await? {
            if !inputs.active {
                continue;
            }
            affected += 1;
            let before = compute(&inputs)?.policy.to_value();
            let after = compute(&with_policy(inputs.clone(), target, policy))?
                .policy
                .to_value();
            let keys = diff_keys(&before, &after);
            if keys.is_empty() {
                continue;
            }
            changed_keys.extend(keys.iter().cloned());
            if examples.len() < 20 {
                examples.push(PersonChange {
                    user_name: inputs.user_name.clone(),
                    changed_keys: keys,
                });
            }
            changed_people.push(inputs.user_id.clone());
        }
    }
    let ids: Vec<&str> = changed_people.iter().map(String::as_str).collect();
    let devices_changed = store.live_device_counts(&ids).await?.values().sum();
    Ok(Preview {
        people_affected: affected,
        people_changed: changed_people.len(),
        devices_changed,
        changed_keys: changed_keys.into_iter().collect(),
        examples,
        saved: false,
    })
}

fn with_policy(
    mut inputs: UserPolicyInputs,
    target: &PolicyTarget,
    policy: Option<&Value>,
) -> UserPolicyInputs {
    match target {
        PolicyTarget::Defaults => {
            inputs.settings.default_policy = policy
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
        }
        PolicyTarget::Group(id) => {
            for g in inputs.groups.iter_mut().filter(|g| &g.group_id == id) {
                g.policy = policy.cloned();
            }
        }
    }
    inputs
}

/// The dotted keys whose values differ between two policies in version 2 form.
pub fn diff_keys(before: &Value, after: &Value) -> Vec<String> {
    let flat_before = flatten(before);
    let flat_after = flatten(after);
    let names: BTreeSet<&String> = flat_before.keys().chain(flat_after.keys()).collect();
    names
        .into_iter()
        .filter(|k| flat_before.get(*k) != flat_after.get(*k))
        .cloned()
        .collect()
}

fn flatten(v: &Value) -> BTreeMap<String, &Value> {
    let mut out = BTreeMap::new();
    if let Value::Object(top) = v {
        for (k, inner) in top {
            match inner {
                Value::Object(section) if !section.is_empty() => {
                    for (k2, v2) in section {
                        out.insert(format!("{k}.{k2}"), v2);
                    }
                }
                other => {
                    out.insert(k.clone(), other);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_name_the_changed_keys() {
        let a = json!({"security_level": "moderate", "permissions": {"deny": ["Bash"]}});
        let b = json!({"security_level": "moderate", "permissions": {"deny": ["Bash", "WebFetch"]}, "models": {"allow": ["x"]}});
        assert_eq!(diff_keys(&a, &b), vec!["models.allow", "permissions.deny"]);
        assert!(diff_keys(&a, &a).is_empty());
    }

    #[test]
    fn group_policies_may_not_set_org_only_keys() {
        let err = validate(
            &PolicyTarget::Group("g".into()),
            &json!({"nonsense_key": 1}),
        )
        .unwrap_err();
        match err {
            AdminError::Invalid { details, .. } => assert!(!details.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(validate(
            &PolicyTarget::Defaults,
            &json!({"security_level": "strict"})
        )
        .is_ok());
    }
}
