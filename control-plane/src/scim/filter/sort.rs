//! sortBy ordering (RFC 7644 §3.4.2.3): compares two resources by one attribute under its type
//! and caseExact, using the primary (else first) value of a multi-valued attribute.

use std::cmp::Ordering;

use serde_json::Value;

use super::ast::AttrPath;
use super::eval::{as_bool, as_datetime, as_number, as_text, cmp_numbers, fold};
use super::resolve::{get_ci, resolve_target, Target};
use crate::scim::schema::{AttrDef, AttrType, ResourceType};

/// Ordering of two resources by an attribute, for sortBy: uses the attribute's type and caseExact; missing values sort last.
/// For a multi-valued attribute the primary value (else the first) is used (RFC 7644 §3.4.2.3).
/// The order is ascending; a caller sorting descending should keep missing values last itself.
/// An attribute the resource type does not know leaves the order unchanged (`Equal`).
pub fn compare_by(rt: &ResourceType, path: &AttrPath, a: &Value, b: &Value) -> Ordering {
    let Ok(target) = resolve_target(rt, path) else {
        return Ordering::Equal;
    };
    let Some(def) = target.compare_def() else {
        return Ordering::Equal;
    };
    match (sort_key(&target, def, a), sort_key(&target, def, b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => order_values(def, x, y),
    }
}

fn sort_key<'a>(target: &Target, def: &AttrDef, json: &'a Value) -> Option<&'a Value> {
    let values = target.top_values(json);
    let element = values
        .iter()
        .copied()
        .find(|v| {
            v.as_object()
                .and_then(|m| get_ci(m, "primary"))
                .and_then(as_bool)
                == Some(true)
        })
        .or_else(|| values.first().copied())?;
    let v = if std::ptr::eq(def, target.top) {
        element
    } else {
        get_ci(element.as_object()?, def.name)?
    };
    (!v.is_null()).then_some(v)
}

fn order_values(def: &AttrDef, a: &Value, b: &Value) -> Ordering {
    let typed = match def.ty {
        AttrType::Boolean => match (as_bool(a), as_bool(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => None,
        },
        AttrType::Integer | AttrType::Decimal => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => cmp_numbers(&x, &y),
            _ => None,
        },
        AttrType::DateTime => match (as_datetime(a), as_datetime(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => None,
        },
        _ => None,
    };
    if let Some(o) = typed {
        return o;
    }
    match (as_text(a), as_text(b)) {
        (Some(x), Some(y)) => {
            let exact =
                def.case_exact || (def.ty != AttrType::String && def.ty != AttrType::Reference);
            fold(x, exact).cmp(&fold(y, exact))
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::p;
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_URN, USER_RESOURCE};
    use serde_json::json;

    #[test]
    fn compare_by_orders_by_type_and_case() {
        let a = json!({"userName": "alice", "externalId": "b", "meta": {"created": "2024-01-02T00:00:00+05:00"}, "emails": [{"value": "z@x"}, {"value": "a@x", "primary": true}]});
        let b = json!({"userName": "Bob", "externalId": "B", "meta": {"created": "2024-01-01T21:00:00Z"}, "emails": [{"value": "m@x"}]});
        let none = json!({"userName": "carol"});
        let by = |path: &str, x: &Value, y: &Value| compare_by(&USER_RESOURCE, &p(path), x, y);
        assert_eq!(by("userName", &a, &b), Ordering::Less); // case-insensitive: alice < bob
        assert_eq!(by("USERNAME", &b, &a), Ordering::Greater);
        assert_eq!(by("externalId", &a, &b), Ordering::Greater); // case-exact: "b" > "B"
                                                                 // 2024-01-02T00:00+05:00 is 2024-01-01T19:00Z, before b's 21:00Z.
        assert_eq!(by("meta.created", &a, &b), Ordering::Less);
        assert_eq!(by("meta.created", &a, &none), Ordering::Less); // missing sorts last
        assert_eq!(by("meta.created", &none, &b), Ordering::Greater);
        assert_eq!(by("meta.created", &none, &none), Ordering::Equal);
        assert_eq!(by("emails", &a, &b), Ordering::Less); // primary "a@x" < "m@x"
        assert_eq!(by("emails.value", &a, &b), Ordering::Less);
        assert_eq!(by("nosuch", &a, &b), Ordering::Equal);
        let t = json!({"userName": "t", "active": true});
        let f = json!({"userName": "f", "active": false});
        assert_eq!(by("active", &f, &t), Ordering::Less);
        let mut list = [none.clone(), b.clone(), a.clone()];
        list.sort_by(|x, y| by("userName", x, y));
        assert_eq!(
            list.iter()
                .map(|v| v["userName"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["alice", "Bob", "carol"]
        );
        let dept = |d: &str| json!({"userName": "x", ENTERPRISE_USER_URN: {"department": d}});
        assert_eq!(by("department", &dept("a"), &dept("B")), Ordering::Less);
    }
}
