//! Group membership as deltas: when a Group's members live outside its JSON, PATCH operations on
//! `members` become [`MemberChange`]s (ids to add or remove, a filter, a full replacement) that
//! the store applies as row inserts and deletes.

use std::collections::HashSet;

use serde_json::Value;

use super::context::{Ctx, MemberChange, Select};
use super::operations::PatchOpKind;
use crate::scim::error::ScimError;
use crate::scim::resource::canonicalize;
use crate::scim::schema::AttrDef;

/// Member ids out of a `members` value: an array of (or one) `{"value": "id", ...}` objects.
fn member_ids(def: &AttrDef, value: &Value) -> Result<Vec<String>, ScimError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    let mut ids: Vec<String> = Vec::new();
    // A set beside the list keeps the first-seen order without a scan per value.
    let mut seen: HashSet<String> = HashSet::with_capacity(items.len());
    for item in items {
        if item.is_null() {
            continue;
        }
        let id = match canonicalize(def, item.clone()) {
            Value::Object(m) => match m.get("value") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                _ => {
                    return Err(ScimError::invalid_value(
                        "each member must have a string 'value'",
                    ))
                }
            },
            _ => {
                return Err(ScimError::invalid_value(
                    "each member must be an object with a 'value'",
                ))
            }
        };
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

impl Ctx<'_> {
    /// Records a membership change for a Group whose members live outside the JSON.
    pub(super) fn member_change(
        &mut self,
        kind: PatchOpKind,
        select: Select<'_>,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let def = self
            .rt
            .schema
            .attr("members")
            .ok_or_else(|| ScimError::invalid_path("unknown attribute 'members'"))?;
        let change = match (kind, select) {
            (PatchOpKind::Remove, Select::Matching(f)) => {
                Some(MemberChange::RemoveMatching(f.clone()))
            }
            (PatchOpKind::Remove, Select::All) => match value {
                None | Some(Value::Null) => Some(MemberChange::RemoveAll),
                Some(v) => {
                    let ids = member_ids(def, v)?;
                    (!ids.is_empty()).then_some(MemberChange::Remove(ids))
                }
            },
            (PatchOpKind::Add, Select::All) => {
                let ids = member_ids(def, value.unwrap_or(&Value::Null))?;
                (!ids.is_empty()).then_some(MemberChange::Add(ids))
            }
            (PatchOpKind::Replace, Select::All) => match value {
                None | Some(Value::Null) => Some(MemberChange::RemoveAll),
                Some(v) => Some(MemberChange::ReplaceAll(member_ids(def, v)?)),
            },
            (PatchOpKind::Replace, Select::Matching(f)) => {
                let ids = member_ids(def, value.unwrap_or(&Value::Null))?;
                self.outcome
                    .member_changes
                    .push(MemberChange::RemoveMatching(f.clone()));
                (!ids.is_empty()).then_some(MemberChange::Add(ids))
            }
            (PatchOpKind::Add, Select::Matching(_)) => {
                return Err(ScimError::invalid_path(
                    "add members with path 'members' and a list of members",
                ))
            }
        };
        if let Some(c) = change {
            self.outcome.member_changes.push(c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{group, run};
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::filter::parse_filter;
    use crate::scim::schema::{GROUP_RESOURCE, GROUP_URN};
    use serde_json::json;

    #[test]
    pub(super) fn member_changes_when_external() {
        let (g, out) = run(
            &GROUP_RESOURCE,
            group(),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2", "display": "B"}, {"value": "u1"}]},
                {"op": "remove", "path": "members[value eq \"u3\"]"},
                {"op": "Remove", "path": "members", "value": [{"value": "u4"}, {"value": "u5"}]},
                {"op": "remove", "path": "members"},
                {"op": "replace", "path": "members", "value": [{"value": "u6"}]},
                {"op": "replace", "value": {"displayName": "Ops", "members": [{"value": "u7", "display": "G"}]}},
                {"op": "add", "value": {"members": [{"value": "u8"}]}},
                {"op": "add", "path": "members", "value": []},
                {"op": "remove", "path": "members", "value": []},
            ]),
            true,
        )
        .unwrap();
        assert_eq!(
            out.member_changes,
            vec![
                MemberChange::Add(vec!["u1".into(), "u2".into()]),
                MemberChange::RemoveMatching(parse_filter("value eq \"u3\"").unwrap()),
                MemberChange::Remove(vec!["u4".into(), "u5".into()]),
                MemberChange::RemoveAll,
                MemberChange::ReplaceAll(vec!["u6".into()]),
                MemberChange::ReplaceAll(vec!["u7".into()]),
                MemberChange::Add(vec!["u8".into()]),
            ]
        );
        assert_eq!(
            g,
            json!({"schemas": [GROUP_URN], "id": "g1", "displayName": "Ops"})
        );

        for bad in [
            json!([{"display": "x"}]),
            json!([{"value": 5}]),
            json!(["u1"]),
            json!(3),
            json!([{"value": ""}]),
        ] {
            let e = run(
                &GROUP_RESOURCE,
                group(),
                json!([{"op": "add", "path": "members", "value": bad}]),
                true,
            )
            .unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{bad}");
        }
        let e = run(
            &GROUP_RESOURCE,
            group(),
            json!([{"op": "replace", "path": "members[value eq \"a\"].value", "value": "b"}]),
            true,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::Mutability));
    }

    #[test]
    fn large_member_lists_are_deduplicated_in_order() {
        let n = 60_000;
        let members: Vec<Value> = (0..n)
            .flat_map(|i| {
                [
                    json!({"value": format!("u{i}")}),
                    json!({"value": format!("u{i}")}),
                ]
            })
            .collect();
        let (_, out) = run(
            &GROUP_RESOURCE,
            group(),
            json!([{"op": "add", "path": "members", "value": members.clone()}]),
            true,
        )
        .unwrap();
        let expected: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
        assert_eq!(
            out.member_changes,
            vec![MemberChange::Add(expected.clone())]
        );
        // Inline (not external): the same dedupe through the JSON member list, then removal.
        let (g, _) = run(
            &GROUP_RESOURCE,
            group(),
            json!([
                {"op": "add", "path": "members", "value": members.clone()},
                {"op": "add", "path": "members", "value": members},
                {"op": "remove", "path": "members", "value": [{"value": "u0"}, {"value": "u59999"}]},
            ]),
            false,
        )
        .unwrap();
        let ids: Vec<&str> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), n - 2);
        assert_eq!(ids.first(), Some(&"u1"));
        assert_eq!(ids.last(), Some(&"u59998"));
    }
}
