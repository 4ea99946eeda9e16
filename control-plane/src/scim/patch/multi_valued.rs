//! PATCH on multi-valued attributes: whole-attribute add (deduplicated), replace and remove (by
//! listed values, as Entra sends), and operations on the elements a value filter selects,
//! creating the element a filter describes when none matches.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::context::Select;
use super::operations::PatchOpKind;
use super::path::{array_entry, container_mut, Target};
use super::values::{
    complex_delta, complex_object, element_from_filter, enforce_one_primary, is_members,
    merge_delta, multi_values, same_value_key, unwrap_single, value_key,
};
use crate::scim::error::ScimError;
use crate::scim::filter::matches_element;
use crate::scim::resource::{canonicalize, check_value};
use crate::scim::schema::AttrDef;

/// add / replace / remove on a whole multi-valued attribute (no filter, no sub-attribute).
pub(super) fn apply_whole_multi(
    res: &mut Map<String, Value>,
    kind: PatchOpKind,
    target: Target,
    value: Option<&Value>,
    label: &str,
) -> Result<(), ScimError> {
    let def = target.def;
    match kind {
        PatchOpKind::Remove => {
            let Some(container) = container_mut(res, target.container, false) else {
                return Ok(());
            };
            match value {
                None | Some(Value::Null) => {
                    container.remove(def.name);
                }
                Some(v) => {
                    // Entra: remove only the listed values, never the whole attribute.
                    let given = multi_values(def, v, label)?;
                    let value_sub = def.sub("value");
                    // A given element with a `value` removes the elements with the same value;
                    // one without removes the elements equal to it as a whole.
                    let mut by_value: HashSet<String> = HashSet::new();
                    let mut whole: HashSet<String> = HashSet::new();
                    for g in &given {
                        match g.get("value") {
                            Some(gv) => by_value.insert(same_value_key(value_sub, gv)),
                            None => whole.insert(value_key(g)),
                        };
                    }
                    if let Some(Value::Array(items)) = container.get_mut(def.name) {
                        items.retain(|item| {
                            let value_hit = item.get("value").is_some_and(|iv| {
                                by_value.contains(&same_value_key(value_sub, iv))
                            });
                            !(value_hit || (!whole.is_empty() && whole.contains(&value_key(item))))
                        });
                        if items.is_empty() {
                            container.remove(def.name);
                        }
                    }
                }
            }
        }
        PatchOpKind::Add => {
            let new = multi_values(def, value.unwrap_or(&Value::Null), label)?;
            if new.is_empty() {
                return Ok(());
            }
            let container =
                container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
            let items = array_entry(container, def.name).ok_or_else(ScimError::internal)?;
            let members = is_members(def);
            // The first index of each element, and of each member `value`, so that a duplicate
            // is found by lookup rather than by a scan of the list per added value.
            let mut whole: HashMap<String, usize> = HashMap::with_capacity(items.len());
            let mut by_value: HashMap<String, usize> = HashMap::new();
            for (i, existing) in items.iter().enumerate() {
                whole.entry(value_key(existing)).or_insert(i);
                if let Some(ev) = existing.get("value").filter(|_| members) {
                    by_value.entry(value_key(ev)).or_insert(i);
                }
            }
            let mut touched = Vec::new();
            for v in new {
                let key = value_key(&v);
                let value_key_of_v = v.get("value").filter(|_| members).map(value_key);
                let dup_whole = whole.get(&key).copied();
                let dup_value = value_key_of_v
                    .as_ref()
                    .and_then(|k| by_value.get(k).copied());
                let dup = match (dup_whole, dup_value) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match dup {
                    Some(i) => touched.push(i),
                    None => {
                        let i = items.len();
                        items.push(v);
                        whole.entry(key).or_insert(i);
                        if let Some(k) = value_key_of_v {
                            by_value.entry(k).or_insert(i);
                        }
                        touched.push(i);
                    }
                }
            }
            enforce_one_primary(items, &touched);
        }
        PatchOpKind::Replace => {
            let mut new: Vec<Value> = Vec::new();
            let mut seen: HashSet<String> = HashSet::new();
            for v in multi_values(def, value.unwrap_or(&Value::Null), label)? {
                if seen.insert(value_key(&v)) {
                    new.push(v);
                }
            }
            let container =
                container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
            if new.is_empty() {
                container.remove(def.name);
                return Ok(());
            }
            let touched: Vec<usize> = (0..new.len()).collect();
            enforce_one_primary(&mut new, &touched);
            container.insert(def.name.to_string(), Value::Array(new));
        }
    }
    Ok(())
}

/// Operations on selected elements of a multi-valued attribute (`emails[type eq "work"]`,
/// `emails[type eq "work"].value`, `emails.value`).
pub(super) fn apply_elements(
    res: &mut Map<String, Value>,
    kind: PatchOpKind,
    target: Target,
    select: Select<'_>,
    sub: Option<&'static AttrDef>,
    value: Option<&Value>,
    label: &str,
) -> Result<(), ScimError> {
    let def = target.def;
    let selected = |items: &[Value]| -> Vec<usize> {
        items
            .iter()
            .enumerate()
            .filter(|(_, v)| match select {
                Select::All => true,
                Select::Matching(f) => matches_element(def, f, v),
            })
            .map(|(i, _)| i)
            .collect()
    };
    let value = match kind {
        PatchOpKind::Remove => None,
        _ => match value.and_then(unwrap_single) {
            Some(v) => Some(v),
            None if kind == PatchOpKind::Replace => {
                return apply_elements(res, PatchOpKind::Remove, target, select, sub, None, label)
            }
            None => return Ok(()),
        },
    };
    let Some(value) = value else {
        // remove
        let Some(container) = container_mut(res, target.container, false) else {
            return Ok(());
        };
        let Some(Value::Array(items)) = container.get_mut(def.name) else {
            return Ok(());
        };
        let hit = selected(items);
        match sub {
            Some(s) => {
                for i in &hit {
                    if let Some(Value::Object(m)) = items.get_mut(*i) {
                        m.remove(s.name);
                    }
                }
                items.retain(|v| !matches!(v, Value::Object(m) if m.is_empty()));
            }
            None => {
                let hit: HashSet<usize> = hit.into_iter().collect();
                let mut i = 0;
                items.retain(|_| {
                    let keep = !hit.contains(&i);
                    i += 1;
                    keep
                });
            }
        }
        if items.is_empty() {
            container.remove(def.name);
        }
        return Ok(());
    };

    // add / replace: what to write into each selected element.
    let (sets, clears) = match sub {
        Some(s) => {
            let v = canonicalize(s, value);
            check_value(s, &v, &format!("{label}.{}", s.name))?;
            let mut sets = Map::new();
            sets.insert(s.name.to_string(), v);
            (sets, Vec::new())
        }
        None => complex_delta(def, complex_object(def, value, label)?, label)?,
    };
    let template = match select {
        Select::All => Some(Map::new()),
        Select::Matching(f) => element_from_filter(def, f),
    };
    let container = container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
    let items = array_entry(container, def.name).ok_or_else(ScimError::internal)?;
    let hit = selected(items);
    let mut touched = Vec::new();
    if hit.is_empty() {
        // Entra targets elements that do not exist yet: build one from the filter's eq terms.
        let Some(mut element) = template else {
            let no_target =
                ScimError::no_target(format!("no value of '{label}' matches the filter"));
            if items.is_empty() {
                container.remove(def.name);
            }
            return Err(no_target);
        };
        merge_delta(def, &mut element, sets, &clears);
        if !element.is_empty() {
            items.push(Value::Object(element));
            touched.push(items.len() - 1);
        }
    } else {
        for i in hit {
            let Some(Value::Object(m)) = items.get_mut(i) else {
                continue;
            };
            if kind == PatchOpKind::Replace && sub.is_none() {
                // The matched record is replaced; the filter's eq terms stay unless overridden.
                let mut fresh = template.clone().unwrap_or_default();
                merge_delta(def, &mut fresh, sets.clone(), &clears);
                *m = fresh;
            } else {
                merge_delta(def, m, sets.clone(), &clears);
            }
            touched.push(i);
        }
    }
    enforce_one_primary(items, &touched);
    check_value(def, &Value::Array(items.clone()), label)?;
    if items.is_empty() {
        container.remove(def.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{group, patch_user, run, user, user_err};
    use crate::scim::error::ScimType;
    use crate::scim::schema::GROUP_RESOURCE;
    use serde_json::json;

    #[test]
    fn replace_with_path() {
        let mut u0 = user();
        u0["emails"] = json!([
            {"value": "a@x.org", "type": "work", "primary": true},
            {"value": "b@x.org", "type": "home"},
        ]);
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "displayName", "value": "Ada"}]),
        );
        assert_eq!(u["displayName"], "Ada");
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails", "value": [{"value": "c@x.org"}]}]),
        );
        assert_eq!(u["emails"], json!([{"value": "c@x.org"}]));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "w@x.org"}]),
        );
        assert_eq!(
            u["emails"][0],
            json!({"value": "w@x.org", "type": "work", "primary": true})
        );
        assert_eq!(u["emails"][1], json!({"value": "b@x.org", "type": "home"}));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "h@x.org"}}]),
        );
        assert_eq!(u["emails"][1], json!({"type": "home", "value": "h@x.org"}));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "true"}]),
        );
        assert_eq!(u["emails"][0]["primary"], false, "only one primary");
        assert_eq!(u["emails"][1]["primary"], true);
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": "A"}}]),
        );
        assert_eq!(
            u["name"],
            json!({"givenName": "A"}),
            "replace on an absent attribute adds"
        );
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "title", "value": null}]),
        );
        assert!(u.get("title").is_none());
        assert_eq!(
            user_err(
                u0.clone(),
                json!([{"op": "replace", "path": "emails[type co \"other\"]", "value": {"value": "z"}}])
            ),
            ScimType::NoTarget
        );
        let u = patch_user(
            u0.clone(),
            json!([{"op": "add", "path": "emails[type eq \"home\" or type eq \"x\"].value", "value": "z"}]),
        );
        assert_eq!(u["emails"][1]["value"], "z");
        assert_eq!(
            user_err(
                u0,
                json!([{"op": "add", "path": "emails[type eq \"x\" or type eq \"y\"].value", "value": "z"}])
            ),
            ScimType::NoTarget
        );
    }

    #[test]
    fn value_path_on_absent_array_creates_element() {
        let u = patch_user(
            user(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}]),
        );
        assert_eq!(u["emails"], json!([{"type": "work", "value": "a@b.c"}]));
        let u = patch_user(
            u,
            json!([
                {"op": "Add", "path": "emails[type eq \"home\" and primary eq true].value", "value": "h@b.c"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"]", "value": {"value": "+44"}},
                {"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Paris"},
            ]),
        );
        assert_eq!(
            u["emails"][1],
            json!({"type": "home", "primary": true, "value": "h@b.c"})
        );
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "mobile", "value": "+44"}])
        );
        assert_eq!(
            u["addresses"],
            json!([{"type": "work", "locality": "Paris"}])
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "replace", "path": "emails[type ne \"work\"].value", "value": "x"}])
            ),
            ScimType::NoTarget
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": 7}])
            ),
            ScimType::InvalidValue
        );
    }

    #[test]
    fn members_in_json_when_not_external() {
        let mut g0 = group();
        g0["members"] = json!([{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]);
        let (g, out) = run(
            &GROUP_RESOURCE,
            g0.clone(),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1", "display": "A"}, {"value": "u4"}]},
                {"op": "Remove", "path": "members", "value": [{"value": "u2"}, {"value": "u3"}]},
                {"op": "remove", "path": "members[value eq \"u1\"]"},
            ]),
            false,
        )
        .unwrap();
        assert!(out.member_changes.is_empty());
        assert_eq!(g["members"], json!([{"value": "u4"}]));
        let (g, _) = run(
            &GROUP_RESOURCE,
            g0,
            json!([{"op": "remove", "path": "members"}]),
            false,
        )
        .unwrap();
        assert!(g.get("members").is_none());
    }

    #[test]
    fn add_primary_demotes_existing_primary() {
        let mut u0 = user();
        u0["emails"] = json!([{"value": "a@x.org", "primary": true}]);
        let u = patch_user(
            u0,
            json!([{"op": "add", "path": "emails", "value": [{"value": "b@x.org", "primary": "True"}]}]),
        );
        assert_eq!(
            u["emails"],
            json!([{"value": "a@x.org", "primary": false}, {"value": "b@x.org", "primary": true}])
        );
    }
}
