//! Canonical SCIM resource JSON: attribute names in their schema spelling, string booleans
//! coerced, nulls and read-only or unknown attributes dropped, types and required attributes checked.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::schema::{AttrDef, AttrType, Mutability, Resolved, ResourceType, SCIM1_CORE_URN};

/// Renames the keys of `value` (an attribute's value, single or multi-valued) to the schema's
/// spelling, recursively through sub-attributes, and drops keys the schema does not know and
/// JSON nulls. Values are not type-checked here (see [`check_value`]).
pub fn canonicalize(def: &AttrDef, value: Value) -> Value {
    match value {
        Value::Array(items) if def.multi_valued => Value::Array(
            items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(|v| canonicalize_single(def, v))
                .collect(),
        ),
        other => canonicalize_single(def, other),
    }
}

fn canonicalize_single(def: &AttrDef, value: Value) -> Value {
    match (def.ty, value) {
        (AttrType::Complex, Value::Object(map)) => {
            let mut out = Map::new();
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                if let Some(sub) = def.sub(&k) {
                    out.insert(sub.name.to_string(), canonicalize(sub, v));
                }
            }
            Value::Object(out)
        }
        (AttrType::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s),
        },
        (_, v) => v,
    }
}

/// Checks that `value` has the attribute's type (after [`canonicalize`]).
pub fn check_value(def: &AttrDef, value: &Value, path: &str) -> Result<(), ScimError> {
    if def.multi_valued {
        let Value::Array(items) = value else {
            return Err(ScimError::invalid_value(format!(
                "'{path}' must be an array"
            )));
        };
        for item in items {
            check_single(def, item, path)?;
        }
        return Ok(());
    }
    check_single(def, value, path)
}

fn check_single(def: &AttrDef, value: &Value, path: &str) -> Result<(), ScimError> {
    let ok = match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => value.is_string(),
        AttrType::DateTime => value
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        AttrType::Boolean => value.is_boolean(),
        AttrType::Integer => value.is_i64() || value.is_u64(),
        AttrType::Decimal => value.is_number(),
        AttrType::Complex => {
            let Value::Object(map) = value else {
                return Err(ScimError::invalid_value(format!(
                    "'{path}' must be an object"
                )));
            };
            for (k, v) in map {
                if let Some(sub) = def.sub(k) {
                    check_value(sub, v, &format!("{path}.{}", sub.name))?;
                }
            }
            true
        }
    };
    if ok {
        Ok(())
    } else {
        let expected = match def.ty {
            AttrType::String | AttrType::Reference | AttrType::Binary => "a string",
            AttrType::DateTime => "an RFC 3339 date-time string",
            AttrType::Boolean => "a boolean",
            AttrType::Integer => "an integer",
            AttrType::Decimal => "a number",
            AttrType::Complex => "an object",
        };
        Err(ScimError::invalid_value(format!(
            "'{path}' must be {expected}"
        )))
    }
}

/// Turns a client's resource document (POST or PUT body, or the result of a PATCH) into the
/// canonical stored form: core attributes at the top level, each extension's attributes under
/// its URN, `schemas` listing the core URN and the extensions present. Read-only attributes
/// (`id`, `meta`, `groups`, member `display`) and unknown attributes are dropped, as RFC 7643
/// §2.2 allows; `password` is dropped because Palisade never authenticates users itself.
pub fn canonical_resource(rt: &ResourceType, body: Value) -> Result<Value, ScimError> {
    let Value::Object(input) = body else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    if let Some(schemas) = input
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
    {
        let Value::Array(list) = schemas else {
            return Err(ScimError::invalid_syntax(
                "'schemas' must be an array of URNs",
            ));
        };
        let names_core = list.iter().filter_map(Value::as_str).any(|u| {
            u.eq_ignore_ascii_case(rt.schema.id) || u.eq_ignore_ascii_case(SCIM1_CORE_URN)
        });
        if !names_core {
            return Err(ScimError::invalid_syntax(format!(
                "'schemas' must include {}",
                rt.schema.id
            )));
        }
    } else {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' is required and must include {}",
            rt.schema.id
        )));
    }

    let mut out = Map::new();
    for (key, value) in input {
        if value.is_null() || key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        match rt.resolve(&key) {
            Some((Resolved::Core(def), None)) => put_attr(&mut out, def, value, def.name)?,
            Some((Resolved::Core(def), Some(sub))) => {
                // A dotted key at the top level ("name.givenName"): merge into the parent.
                if let Some(sub_def) = def.sub(sub) {
                    let parent = out
                        .entry(def.name.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(m) = parent {
                        if !value.is_null() {
                            m.insert(sub_def.name.to_string(), canonicalize(sub_def, value));
                        }
                    }
                }
            }
            Some((Resolved::ExtensionObject(schema), _)) => {
                let Value::Object(ext) = value else {
                    return Err(ScimError::invalid_syntax(format!(
                        "'{}' must be an object",
                        schema.id
                    )));
                };
                let target = out
                    .entry(schema.id.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                for (k, v) in ext {
                    if let (Some(def), Value::Object(t)) = (schema.attr(&k), &mut *target) {
                        if !v.is_null() && def.mutability != Mutability::ReadOnly {
                            let v = canonicalize(def, v);
                            check_value(def, &v, &format!("{}:{}", schema.id, def.name))?;
                            t.insert(def.name.to_string(), v);
                        }
                    }
                }
            }
            Some((Resolved::Extension(schema, def), sub)) => {
                let target = out
                    .entry(schema.id.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(t) = target {
                    match sub.and_then(|s| def.sub(s)) {
                        Some(sub_def) => {
                            let parent = t
                                .entry(def.name.to_string())
                                .or_insert_with(|| Value::Object(Map::new()));
                            if let Value::Object(p) = parent {
                                p.insert(sub_def.name.to_string(), canonicalize(sub_def, value));
                            }
                        }
                        None if sub.is_none() => {
                            let v = canonicalize(def, value);
                            check_value(def, &v, &format!("{}:{}", schema.id, def.name))?;
                            t.insert(def.name.to_string(), v);
                        }
                        None => {}
                    }
                }
            }
            None => {
                tracing::debug!(attribute = %key, "ignoring unknown attribute");
            }
        }
    }
    // Empty extension objects and empty complex values carry nothing.
    out.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));

    for def in rt.schema.attributes.iter().filter(|a| a.required) {
        let present = match out.get(def.name) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
            None => false,
        };
        if !present {
            return Err(ScimError::invalid_value(format!(
                "'{}' is required",
                def.name
            )));
        }
    }

    let mut schemas = vec![Value::String(rt.schema.id.to_string())];
    for ext in rt.extensions {
        if out.contains_key(ext.id) {
            schemas.push(Value::String(ext.id.to_string()));
        }
    }
    out.insert("schemas".to_string(), Value::Array(schemas));
    Ok(Value::Object(out))
}

fn put_attr(
    out: &mut Map<String, Value>,
    def: &'static AttrDef,
    value: Value,
    name: &str,
) -> Result<(), ScimError> {
    if def.mutability == Mutability::ReadOnly || def.name == "password" {
        return Ok(());
    }
    let value = canonicalize(def, value);
    check_value(def, &value, name)?;
    let value = strip_read_only_subs(def, value);
    if let (Some(Value::Object(existing)), Value::Object(new)) = (out.get_mut(def.name), &value) {
        // A dotted key may have arrived first ("name.givenName" before "name").
        for (k, v) in new {
            existing.insert(k.clone(), v.clone());
        }
        return Ok(());
    }
    out.insert(def.name.to_string(), value);
    Ok(())
}

/// Drops read-only sub-attributes (such as a member's `display`) that a client echoed back.
fn strip_read_only_subs(def: &AttrDef, value: Value) -> Value {
    if def.ty != AttrType::Complex {
        return value;
    }
    let strip = |v: Value| match v {
        Value::Object(mut m) => {
            m.retain(|k, _| {
                def.sub(k)
                    .is_none_or(|s| s.mutability != Mutability::ReadOnly || def.name == "members")
            });
            Value::Object(m)
        }
        other => other,
    };
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
        other => strip(other),
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ENTERPRISE_USER_URN, GROUP_RESOURCE, USER_RESOURCE};
    use super::*;
    use serde_json::json;

    #[test]
    fn canonicalises_names_booleans_nulls_and_extensions() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_URN],
            "UserName": "ada@example.com",
            "active": "True",
            "id": "client-chosen",
            "password": "hunter2",
            "nickName": null,
            "roles": [],
            "name": {"GivenName": "Ada", "familyName": null},
            "emails": [{"Value": "ada@example.com", "Primary": "true", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Department": "R&D", "manager": {"value": "m1", "$ref": null}},
            "x-unknown": 1
        });
        let r = canonical_resource(&USER_RESOURCE, body).unwrap();
        assert_eq!(r["userName"], "ada@example.com");
        assert_eq!(r["active"], true);
        assert!(
            r.get("id").is_none() && r.get("password").is_none() && r.get("x-unknown").is_none()
        );
        assert!(r.get("nickName").is_none());
        assert_eq!(r["name"], json!({"givenName": "Ada"}));
        assert_eq!(r["emails"][0]["primary"], true);
        assert_eq!(r[ENTERPRISE_USER_URN]["department"], "R&D");
        assert_eq!(r[ENTERPRISE_USER_URN]["manager"], json!({"value": "m1"}));
        assert_eq!(
            r["schemas"],
            json!([
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE_USER_URN
            ])
        );
    }

    #[test]
    fn rejects_missing_required_and_wrong_types() {
        let e = canonical_resource(
            &USER_RESOURCE,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
        )
        .unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        let e = canonical_resource(&USER_RESOURCE, json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "active": "maybe"})).unwrap_err();
        assert_eq!(
            e.scim_type,
            Some(super::super::error::ScimType::InvalidValue)
        );
        let e = canonical_resource(
            &GROUP_RESOURCE,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "displayName": "x"}),
        )
        .unwrap_err();
        assert_eq!(
            e.scim_type,
            Some(super::super::error::ScimType::InvalidSyntax)
        );
    }

    #[test]
    fn accepts_scim1_core_urn_and_dotted_keys() {
        let r = canonical_resource(
            &USER_RESOURCE,
            json!({"schemas": ["urn:scim:schemas:core:1.0"], "userName": "b", "name.familyName": "Lovelace"}),
        )
        .unwrap();
        assert_eq!(r["name"]["familyName"], "Lovelace");
    }
}
