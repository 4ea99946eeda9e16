//! Rendering domain users and groups as SCIM resources (with `id`, `meta`, `groups`, `members`),
//! ETags, and the `attributes`/`excludedAttributes` projection.

use serde_json::{json, Map, Value};

use super::schema::{AttrDef, Resolved, ResourceType, Returned};
use crate::domain::{to_rfc3339, Group, GroupMember, GroupRef, User};

/// The weak ETag of a resource version, also its `meta.version`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match`/`If-None-Match` header value names this version (`*` names any).
pub fn etag_matches(header: &str, version: i64) -> bool {
    let current = etag(version);
    header.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag == current
            || tag.trim_start_matches("W/") == current.trim_start_matches("W/")
    })
}

fn meta(resource_type: &str, created: i64, modified: i64, location: String, version: i64) -> Value {
    json!({
        "resourceType": resource_type,
        "created": to_rfc3339(created),
        "lastModified": to_rfc3339(modified),
        "location": location,
        "version": etag(version),
    })
}

/// A user as a SCIM resource. `groups` is included when known.
pub fn user_json(base_url: &str, user: &User, groups: Option<&[GroupRef]>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(user.id));
    if let Value::Object(attrs) = &user.attributes {
        for (k, v) in attrs {
            out.insert(k.clone(), v.clone());
        }
    }
    // The indexed columns are the truth for these.
    out.insert("userName".into(), json!(user.user_name));
    out.insert("active".into(), json!(user.active));
    match &user.external_id {
        Some(x) => out.insert("externalId".into(), json!(x)),
        None => out.remove("externalId"),
    };
    if let Some(groups) = groups {
        let list: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "value": g.group_id,
                    "$ref": format!("{base_url}/Groups/{}", g.group_id),
                    "display": g.display_name,
                    "type": "direct",
                })
            })
            .collect();
        out.insert("groups".into(), Value::Array(list));
    }
    out.insert(
        "meta".into(),
        meta(
            "User",
            user.created_at,
            user.updated_at,
            format!("{base_url}/Users/{}", user.id),
            user.version,
        ),
    );
    Value::Object(out)
}

/// A group as a SCIM resource. `members` is included when loaded.
pub fn group_json(base_url: &str, group: &Group, members: Option<&[GroupMember]>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(group.id));
    if let Value::Object(attrs) = &group.attributes {
        for (k, v) in attrs {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("displayName".into(), json!(group.display_name));
    match &group.external_id {
        Some(x) => out.insert("externalId".into(), json!(x)),
        None => out.remove("externalId"),
    };
    if let Some(members) = members {
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                json!({
                    "value": m.user_id,
                    "$ref": format!("{base_url}/Users/{}", m.user_id),
                    "display": m.user_name,
                    "type": "User",
                })
            })
            .collect();
        out.insert("members".into(), Value::Array(list));
    }
    out.insert(
        "meta".into(),
        meta(
            "Group",
            group.created_at,
            group.updated_at,
            format!("{base_url}/Groups/{}", group.id),
            group.version,
        ),
    );
    Value::Object(out)
}

/// Whether a projection could need this top-level attribute (so callers can skip loading
/// members of a large group when `excludedAttributes=members`).
pub fn wants_attribute(
    rt: &ResourceType,
    name: &str,
    attributes: &[String],
    excluded: &[String],
) -> bool {
    let names = |list: &[String]| -> Vec<&'static str> {
        list.iter()
            .filter_map(|a| match rt.resolve(a) {
                Some((Resolved::Core(def), _)) => Some(def.name),
                _ => None,
            })
            .collect()
    };
    if !attributes.is_empty() {
        return names(attributes)
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name));
    }
    // Excluding a sub-attribute ("members.display") still needs the attribute.
    !excluded.iter().any(|a| matches!(rt.resolve(a), Some((Resolved::Core(def), None)) if def.name.eq_ignore_ascii_case(name)))
}

/// Applies `attributes` (keep only these, plus those always returned) or `excludedAttributes`
/// (drop these, unless always returned) to a rendered resource (RFC 7644 §3.9).
pub fn project(
    rt: &ResourceType,
    resource: Value,
    attributes: &[String],
    excluded: &[String],
) -> Value {
    let Value::Object(mut map) = resource else {
        return resource;
    };
    if !attributes.is_empty() {
        let mut out = Map::new();
        for key in ["schemas", "id"] {
            if let Some(v) = map.get(key) {
                out.insert(key.to_string(), v.clone());
            }
        }
        for a in attributes {
            copy_path(rt, &map, &mut out, a);
        }
        return Value::Object(out);
    }
    for a in excluded {
        remove_path(rt, &mut map, a);
    }
    Value::Object(map)
}

fn never_removed(def: &AttrDef) -> bool {
    def.returned == Returned::Always || def.name == "id"
}

fn copy_path(
    rt: &ResourceType,
    from: &Map<String, Value>,
    to: &mut Map<String, Value>,
    path: &str,
) {
    match rt.resolve(path) {
        Some((Resolved::Core(def), sub)) => copy_attr(from, to, def, sub),
        Some((Resolved::Extension(schema, def), sub)) => {
            if let Some(Value::Object(ext)) = from.get(schema.id) {
                let target = to
                    .entry(schema.id.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(t) = target {
                    copy_attr(ext, t, def, sub);
                    if t.is_empty() {
                        to.remove(schema.id);
                    }
                }
            }
        }
        Some((Resolved::ExtensionObject(schema), _)) => {
            if let Some(v) = from.get(schema.id) {
                to.insert(schema.id.to_string(), v.clone());
            }
        }
        None => {}
    }
}

fn copy_attr(
    from: &Map<String, Value>,
    to: &mut Map<String, Value>,
    def: &AttrDef,
    sub: Option<&str>,
) {
    let Some(value) = from.get(def.name) else {
        return;
    };
    let Some(sub) = sub.and_then(|s| def.sub(s)) else {
        to.insert(def.name.to_string(), value.clone());
        return;
    };
    let pick = |v: &Value| -> Option<Value> {
        let m = v.as_object()?;
        let mut kept = Map::new();
        if let Some(x) = m.get(sub.name) {
            kept.insert(sub.name.to_string(), x.clone());
        }
        Some(Value::Object(kept))
    };
    let projected = match value {
        Value::Array(items) => Value::Array(items.iter().filter_map(pick).collect()),
        other => match pick(other) {
            Some(v) => v,
            None => return,
        },
    };
    match (to.get_mut(def.name), projected) {
        (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
        (Some(Value::Array(existing)), Value::Array(new)) if existing.len() == new.len() => {
            for (e, n) in existing.iter_mut().zip(new) {
                if let (Value::Object(e), Value::Object(n)) = (e, n) {
                    e.extend(n);
                }
            }
        }
        (_, projected) => {
            to.insert(def.name.to_string(), projected);
        }
    }
}

fn remove_path(rt: &ResourceType, map: &mut Map<String, Value>, path: &str) {
    match rt.resolve(path) {
        Some((Resolved::Core(def), None)) if !never_removed(def) => {
            map.remove(def.name);
        }
        Some((Resolved::Core(def), Some(sub))) => remove_sub(map, def, sub),
        Some((Resolved::Extension(schema, def), sub)) => {
            if let Some(Value::Object(ext)) = map.get_mut(schema.id) {
                match sub {
                    None => {
                        ext.remove(def.name);
                    }
                    Some(sub) => remove_sub(ext, def, sub),
                }
            }
        }
        Some((Resolved::ExtensionObject(schema), _)) => {
            map.remove(schema.id);
        }
        _ => {}
    }
}

fn remove_sub(map: &mut Map<String, Value>, def: &AttrDef, sub: &str) {
    let Some(sub) = def.sub(sub) else { return };
    if never_removed(sub) {
        return;
    }
    match map.get_mut(def.name) {
        Some(Value::Array(items)) => {
            for i in items {
                if let Value::Object(m) = i {
                    m.remove(sub.name);
                }
            }
        }
        Some(Value::Object(m)) => {
            m.remove(sub.name);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::{GROUP_RESOURCE, USER_RESOURCE};
    use super::*;

    #[test]
    fn etags() {
        assert_eq!(etag(3), "W/\"3\"");
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"3\"", 3));
        assert!(etag_matches("W/\"1\", W/\"3\"", 3));
        assert!(etag_matches("*", 9));
        assert!(!etag_matches("W/\"2\"", 3));
    }

    #[test]
    fn projection() {
        let r = json!({"schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x", "type": "work"}], "meta": {"resourceType": "User"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "costCenter": "1"}});
        let p = project(
            &USER_RESOURCE,
            r.clone(),
            &[
                "userName".into(),
                "name.givenName".into(),
                "emails.value".into(),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department".into(),
            ],
            &[],
        );
        assert_eq!(
            p,
            json!({"schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "A"}, "emails": [{"value": "a@x"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}})
        );
        let p = project(
            &USER_RESOURCE,
            r,
            &[],
            &["name".into(), "id".into(), "emails.type".into()],
        );
        assert!(p.get("name").is_none());
        assert_eq!(p["id"], "1");
        assert_eq!(p["emails"], json!([{"value": "a@x"}]));
        assert!(!wants_attribute(
            &GROUP_RESOURCE,
            "members",
            &[],
            &["members".into()]
        ));
        assert!(wants_attribute(
            &GROUP_RESOURCE,
            "members",
            &[],
            &["members.display".into()]
        ));
        assert!(!wants_attribute(
            &GROUP_RESOURCE,
            "members",
            &["displayName".into()],
            &[]
        ));
    }
}
