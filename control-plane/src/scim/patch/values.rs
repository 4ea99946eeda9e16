//! Shaping the values a PATCH writes: unwrapping single values, complex-value deltas and merges,
//! canonical elements of multi-valued attributes, elements built from value filters, the one
//! `primary`, and hashable value keys that keep large multi-valued changes linear.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::scim::error::ScimError;
use crate::scim::filter::{CompareOp, Filter};
use crate::scim::resource::{canonicalize, check_value};
use crate::scim::schema::{AttrDef, AttrType, Mutability};

/// A single value out of what a client sent for a single-valued target: arrays give their first
/// element (Entra's `"value": [{"value": "id"}]` for `manager`); null or `[]` give `None`.
pub(super) fn unwrap_single(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => items.first().filter(|v| !v.is_null()).cloned(),
        other => Some(other.clone()),
    }
}

/// The object a client sent for one complex value; a bare string means `{"value": s}` when the
/// attribute has a `value` sub-attribute (Entra sends the manager's id that way).
pub(super) fn complex_object(
    def: &AttrDef,
    value: Value,
    path: &str,
) -> Result<Map<String, Value>, ScimError> {
    match value {
        Value::Object(m) => Ok(m),
        Value::String(s) if def.sub("value").is_some() => {
            let mut m = Map::new();
            m.insert("value".to_string(), Value::String(s));
            Ok(m)
        }
        _ => Err(ScimError::invalid_value(format!(
            "'{path}' must be an object"
        ))),
    }
}

/// Sub-attributes to set and to clear (explicit nulls) from one complex value; unknown and
/// read-only sub-attributes are ignored.
pub(super) fn complex_delta(
    def: &AttrDef,
    obj: Map<String, Value>,
    path: &str,
) -> Result<(Map<String, Value>, Vec<&'static str>), ScimError> {
    let mut sets = Map::new();
    let mut clears = Vec::new();
    for (k, v) in obj {
        let Some(sub) = def.sub(&k) else { continue };
        if sub.mutability == Mutability::ReadOnly && !is_members(def) {
            continue;
        }
        if v.is_null() {
            clears.push(sub.name);
            continue;
        }
        let v = canonicalize(sub, v);
        check_value(sub, &v, &format!("{path}.{}", sub.name))?;
        sets.insert(sub.name.to_string(), v);
    }
    Ok((sets, clears))
}

/// Merges a delta into a complex value. When `value` changes and the client did not send a new
/// `$ref`, the old `$ref` and server-derived (read-only) sub-attributes are dropped as stale.
pub(super) fn merge_delta(
    def: &AttrDef,
    obj: &mut Map<String, Value>,
    sets: Map<String, Value>,
    clears: &[&str],
) {
    let value_changed = sets
        .get("value")
        .is_some_and(|v| obj.get("value") != Some(v));
    if value_changed {
        for sub in def.sub_attributes {
            let derived =
                sub.name == "$ref" || (sub.mutability == Mutability::ReadOnly && !is_members(def));
            if derived && !sets.contains_key(sub.name) {
                obj.remove(sub.name);
            }
        }
    }
    for c in clears {
        obj.remove(*c);
    }
    for (k, v) in sets {
        obj.insert(k, v);
    }
}

pub(super) fn is_members(def: &AttrDef) -> bool {
    def.name == "members"
}

/// Canonical, type-checked elements for a multi-valued attribute (a lone object counts as one);
/// read-only sub-attributes, null and empty elements are dropped.
pub(super) fn multi_values(
    def: &AttrDef,
    value: &Value,
    path: &str,
) -> Result<Vec<Value>, ScimError> {
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    let Value::Array(items) = canonicalize(def, Value::Array(items)) else {
        return Err(ScimError::invalid_value(format!(
            "'{path}' must be an array"
        )));
    };
    let items: Vec<Value> = items
        .into_iter()
        .map(|v| strip_read_only_subs(def, v))
        .filter(|v| !matches!(v, Value::Object(m) if m.is_empty()))
        .collect();
    check_value(def, &Value::Array(items.clone()), path)?;
    Ok(items)
}

fn strip_read_only_subs(def: &AttrDef, value: Value) -> Value {
    match value {
        Value::Object(mut m) if def.ty == AttrType::Complex && !is_members(def) => {
            m.retain(|k, _| {
                def.sub(k)
                    .is_none_or(|s| s.mutability != Mutability::ReadOnly)
            });
            Value::Object(m)
        }
        other => other,
    }
}

/// The element a value filter describes when it is a conjunction of `sub eq value` terms
/// (`type eq "work" and primary eq true`); `None` for any other filter.
pub(super) fn element_from_filter(def: &AttrDef, filter: &Filter) -> Option<Map<String, Value>> {
    fn walk(def: &AttrDef, f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::And(a, b) => walk(def, a, out) && walk(def, b, out),
            Filter::Compare(path, CompareOp::Eq, v) if path.urn.is_none() && !v.is_null() => {
                // `type` relative to the element; `emails.type` spelled out in full also works.
                let name = match &path.sub {
                    None => path.name.as_str(),
                    Some(s) if path.name.eq_ignore_ascii_case(def.name) => s.as_str(),
                    Some(_) => return false,
                };
                let Some(sub) = def.sub(name) else {
                    return false;
                };
                if sub.ty == AttrType::Complex || sub.multi_valued {
                    return false;
                }
                let v = canonicalize(sub, v.clone());
                if let Some(prev) = out.get(sub.name) {
                    return *prev == v;
                }
                out.insert(sub.name.to_string(), v);
                true
            }
            _ => false,
        }
    }
    let mut out = Map::new();
    walk(def, filter, &mut out).then_some(out)
}

/// After elements `touched` of a multi-valued attribute were written, keeps at most one
/// `primary: true` (the last written), as RFC 7644 §3.5.2 asks.
pub(super) fn enforce_one_primary(items: &mut [Value], touched: &[usize]) {
    let keeper = touched.iter().rev().copied().find(|&i| {
        items
            .get(i)
            .is_some_and(|v| v.get("primary") == Some(&Value::Bool(true)))
    });
    let Some(keeper) = keeper else { return };
    for (i, item) in items.iter_mut().enumerate() {
        if let Value::Object(m) = item {
            if i != keeper && m.get("primary") == Some(&Value::Bool(true)) {
                m.insert("primary".to_string(), Value::Bool(false));
            }
        }
    }
}

/// A hashable key with the equality of `Value`'s `==`: objects compare whatever their key order
/// (serde_json maps compare as maps), so keys are written sorted. Lets set lookups replace
/// pairwise scans, which made large multi-valued changes quadratic.
pub(super) fn value_key(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    let _ = write!(out, "{k:?}:");
                    if let Some(inner) = m.get(k.as_str()) {
                        write(inner, out);
                    }
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for i in items {
                    write(i, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => {
                let _ = write!(out, "{other}");
            }
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// A key under which two `value` sub-attribute values are equal exactly when [`same_value`]
/// says so (strings fold ASCII case unless the sub-attribute is caseExact).
pub(super) fn same_value_key(sub: Option<&AttrDef>, v: &Value) -> String {
    match v {
        Value::String(s) if !sub.is_some_and(|s| s.case_exact) => {
            format!("s{}", s.to_ascii_lowercase())
        }
        Value::String(s) => format!("s{s}"),
        other => format!("j{}", value_key(other)),
    }
}

/// Compares two values of a `value` sub-attribute, following its caseExact.
#[cfg(test)]
fn same_value(sub: Option<&AttrDef>, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !sub.is_some_and(|s| s.case_exact) => {
            x.eq_ignore_ascii_case(y)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    #[test]
    fn value_keys_agree_with_equality() {
        let values = [
            json!(null),
            json!(1),
            json!(1.0),
            json!("1"),
            json!("A"),
            json!("a"),
            json!(true),
            json!([1, 2]),
            json!([2, 1]),
            json!({"a": 1, "b": [1, {"c": "x"}]}),
            json!({"b": [1, {"c": "x"}], "a": 1}),
            json!({"a": 1}),
            json!({"a\",\"b": 1}),
            json!({"a": "\",\"b"}),
        ];
        let value_sub = GROUP_RESOURCE
            .schema
            .attr("members")
            .and_then(|d| d.sub("value"));
        let email_value = USER_RESOURCE
            .schema
            .attr("emails")
            .and_then(|d| d.sub("value"));
        for a in &values {
            for b in &values {
                assert_eq!(value_key(a) == value_key(b), a == b, "{a} vs {b}");
                for sub in [value_sub, email_value, None] {
                    assert_eq!(
                        same_value_key(sub, a) == same_value_key(sub, b),
                        same_value(sub, a, b),
                        "{a} vs {b}"
                    );
                }
            }
        }
    }
}
