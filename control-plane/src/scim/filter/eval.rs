//! Filter evaluation: in-memory matching of a filter against canonical resource JSON (or one
//! element of a multi-valued attribute), with per-attribute case rules, any-match on multi-valued
//! attributes, chronological dateTime comparison and the lenient scalar readings IdPs need.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Number, Value};

use super::ast::{CompareOp, Filter};
use super::resolve::{resolve_ctx, resolve_target, Ctx};
use crate::scim::schema::{AttrDef, AttrType, ResourceType};

/// Whether a canonical resource matches a filter. Never fails: an unknown attribute is treated
/// as missing (run [`validate`](fn@super::validate) first to reject it).
pub fn matches(rt: &ResourceType, f: &Filter, resource: &Value) -> bool {
    eval(Ctx::Resource(rt), f, resource)
}

/// Evaluate a filter whose paths are relative to one element of a multi-valued complex attribute
/// (used by PATCH value paths like members[value eq "x"]); `def` is that attribute's definition.
pub fn matches_element(def: &AttrDef, f: &Filter, element: &Value) -> bool {
    eval(Ctx::Element(def), f, element)
}

fn eval(ctx: Ctx<'_>, f: &Filter, json: &Value) -> bool {
    match f {
        Filter::And(..) => chain_terms(f, true).into_iter().all(|t| eval(ctx, t, json)),
        Filter::Or(..) => chain_terms(f, false)
            .into_iter()
            .any(|t| eval(ctx, t, json)),
        Filter::Not(inner) => !eval(ctx, inner, json),
        Filter::Present(path) => match resolve_ctx(ctx, path) {
            Ok(t) => t.present_values(json).into_iter().any(is_present),
            Err(_) => false,
        },
        Filter::Compare(path, op, value) => {
            let Ok(target) = resolve_ctx(ctx, path) else {
                return *op == CompareOp::Ne;
            };
            if value.is_null() {
                let present = target.present_values(json).into_iter().any(is_present);
                return match op {
                    CompareOp::Eq => !present,
                    CompareOp::Ne => present,
                    _ => false,
                };
            }
            let Some((def, values)) = target.compare_values(json) else {
                return false;
            };
            if values.is_empty() {
                return *op == CompareOp::Ne;
            }
            values
                .into_iter()
                .any(|v| compare_value(def, *op, v, value))
        }
        Filter::ValuePath(path, inner) => {
            let Ctx::Resource(rt) = ctx else {
                return false;
            };
            let Ok(target) = resolve_target(rt, path) else {
                return false;
            };
            target.top_values(json).into_iter().any(|element| {
                element.is_object() && eval(Ctx::Element(target.top), inner, element)
            })
        }
    }
}

/// The terms of a left-deep `and` (or `or`) chain, left to right, collected without recursion.
fn chain_terms(f: &Filter, and: bool) -> Vec<&Filter> {
    let mut terms = Vec::new();
    let mut cur = f;
    loop {
        match (cur, and) {
            (Filter::And(l, r), true) | (Filter::Or(l, r), false) => {
                terms.push(&**r);
                cur = l;
            }
            _ => {
                terms.push(cur);
                break;
            }
        }
    }
    terms.reverse();
    terms
}

/// `pr`: not null, not an empty string, array or object.
fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

/// Booleans, leniently: `"True"`/`"false"` strings count (IdPs send them).
pub(super) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Numbers, leniently: numeric strings count.
pub(super) fn as_number(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse::<Number>().ok(),
        _ => None,
    }
}

pub(super) fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => match (a.as_u64(), b.as_u64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
    }
}

/// RFC 3339 date-times; also, leniently, a date-time without offset or a bare date (as UTC).
pub(super) fn as_datetime(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(dt.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

/// The text of a scalar, for string comparison (numbers and booleans leniently as written).
pub(super) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn fold(s: String, case_exact: bool) -> String {
    if case_exact {
        s
    } else {
        s.to_lowercase()
    }
}

fn compare_text(op: CompareOp, a: &Value, b: &Value, case_exact: bool) -> bool {
    let (Some(a), Some(b)) = (as_text(a), as_text(b)) else {
        return false;
    };
    let (a, b) = (fold(a, case_exact), fold(b, case_exact));
    match op {
        CompareOp::Co => a.contains(&b),
        CompareOp::Sw => a.starts_with(&b),
        CompareOp::Ew => a.ends_with(&b),
        _ => op.accepts(a.cmp(&b)),
    }
}

/// One attribute value against the filter's value, under the attribute's definition.
fn compare_value(def: &AttrDef, op: CompareOp, attr: &Value, filter: &Value) -> bool {
    if op == CompareOp::Ne {
        return !compare_value(def, CompareOp::Eq, attr, filter);
    }
    match def.ty {
        AttrType::Boolean => match (as_bool(attr), as_bool(filter)) {
            (Some(a), Some(b)) => op == CompareOp::Eq && a == b,
            _ => false,
        },
        AttrType::Integer | AttrType::Decimal => {
            if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                return compare_text(op, attr, filter, true);
            }
            match (as_number(attr), as_number(filter)) {
                (Some(a), Some(b)) => cmp_numbers(&a, &b).is_some_and(|o| op.accepts(o)),
                _ => false,
            }
        }
        AttrType::DateTime => {
            if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                if let (Some(a), Some(b)) = (as_datetime(attr), as_datetime(filter)) {
                    return op.accepts(a.cmp(&b));
                }
            }
            compare_text(op, attr, filter, true)
        }
        AttrType::Complex => false,
        AttrType::String | AttrType::Reference | AttrType::Binary => compare_text(
            op,
            attr,
            filter,
            def.case_exact || def.ty == AttrType::Binary,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::user;
    use super::super::{parse_filter, validate};
    use super::*;
    use crate::scim::schema::{Mutability, Returned, Uniqueness, GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    fn m(filter: &str) -> bool {
        let f = parse_filter(filter).unwrap();
        validate(&USER_RESOURCE, &f).unwrap();
        matches(&USER_RESOURCE, &f, &user())
    }

    #[test]
    fn string_operators_follow_case_exactness() {
        // userName, displayName, emails.value: case-insensitive.
        assert!(m(r#"userName eq "bjensen@example.com""#));
        assert!(m(r#"USERNAME eq "BJENSEN@EXAMPLE.COM""#));
        assert!(m(r#"displayName eq "babs jensen""#));
        assert!(m(r#"emails.value eq "BJENSEN@example.com""#));
        // id, externalId: case-exact.
        assert!(m(r#"externalId eq "JYoung""#));
        assert!(!m(r#"externalId eq "jyoung""#));
        assert!(!m(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        assert!(m(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
        assert!(m(r#"userName co "JENSEN@""#));
        assert!(!m(r#"userName co "smith""#));
        assert!(m(r#"userName sw "bj""#));
        assert!(!m(r#"userName sw "jensen""#));
        assert!(m(r#"userName ew ".COM""#));
        assert!(!m(r#"userName ew ".org""#));
        assert!(m(r#"externalId sw "JY""#));
        assert!(!m(r#"externalId sw "jy""#));
        assert!(m(r#"userName ne "someone@else""#));
        assert!(!m(r#"userName ne "BJENSEN@example.com""#));
        assert!(m(r#"title gt "A""#));
        assert!(m(r#"title ge "tour guide""#));
        assert!(m(r#"title le "tour guide""#));
        assert!(!m(r#"title lt "tour guide""#));
        assert!(m(r#"title lt "Z""#));
        assert!(!m(r#"title gt "Z""#));
    }

    #[test]
    fn unquoted_entra_values_compare_as_strings() {
        assert!(m("externalId eq JYoung"));
        assert!(!m("externalId eq jyoung"));
        assert!(m(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 00042"
        ));
        let u = json!({"userName": "u", "externalId": "12345"});
        let f = parse_filter("externalId eq 12345").unwrap();
        assert!(matches(&USER_RESOURCE, &f, &u));
    }

    #[test]
    fn present_missing_and_null() {
        assert!(m("title pr"));
        assert!(!m("nickName pr")); // empty string
        assert!(!m("phoneNumbers pr")); // empty array
        assert!(!m("locale pr")); // missing
        assert!(m("emails pr"));
        assert!(m("emails.type pr"));
        assert!(!m("emails.display pr"));
        assert!(m("name pr"));
        assert!(m("meta.created pr"));
        assert!(m(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr"
        ));
        // ne on a missing attribute is true; everything else on it is false.
        assert!(m(r#"locale ne "en""#));
        assert!(!m(r#"locale eq "en""#));
        assert!(!m(r#"locale co "e""#));
        assert!(!m(r#"locale gt "a""#));
        assert!(m(r#"name.middleName ne "x""#));
        assert!(m(r#"emails.display ne "x""#));
        assert!(m("locale eq null"));
        assert!(!m("title eq null"));
        assert!(m("title ne null"));
        assert!(!m("locale ne null"));
    }

    #[test]
    fn logical_operators() {
        assert!(m(r#"userName eq "bjensen@example.com" and active eq true"#));
        assert!(!m(
            r#"userName eq "bjensen@example.com" and active eq false"#
        ));
        assert!(m(r#"userName eq "nobody" or active eq true"#));
        assert!(!m(r#"userName eq "nobody" or active eq false"#));
        assert!(m(r#"not (userName eq "nobody")"#));
        assert!(!m(r#"not (userName eq "bjensen@example.com")"#));
        assert!(m(r#"userName eq "nobody" and title pr or title pr"#));
        assert!(!m(r#"userName eq "nobody" and (title pr or title pr)"#));
        assert!(m(r#"not (not (title pr))"#));
    }

    #[test]
    fn booleans_compare_leniently() {
        assert!(m("active eq true"));
        assert!(m("active EQ TRUE"));
        assert!(m(r#"active eq "true""#));
        assert!(m(r#"active eq "True""#));
        assert!(!m(r#"active eq "False""#));
        assert!(m("active ne false"));
        assert!(!m("active eq false"));
        assert!(!m(r#"active eq "maybe""#));
        // A stored string boolean also compares as a boolean.
        let u = json!({"userName": "u", "active": "False"});
        assert!(matches(
            &USER_RESOURCE,
            &parse_filter("active eq false").unwrap(),
            &u
        ));
    }

    #[test]
    fn multi_valued_attributes_match_any_value() {
        assert!(m(r#"emails.value eq "babs@jensen.org""#));
        assert!(m(r#"emails.value eq "bjensen@example.com""#));
        assert!(!m(r#"emails.value eq "other@x.org""#));
        assert!(m(r#"emails co "@jensen.org""#)); // compares the value sub-attribute
        assert!(m(r#"emails eq "BABS@jensen.org""#));
        assert!(m(r#"emails.type eq "home""#));
        assert!(m(
            r#"emails.type eq "work" and emails.value ew "jensen.org""#
        )); // different elements
        assert!(m(r#"emails.value ne "babs@jensen.org""#)); // any value differs
        assert!(m(r#"emails.primary eq true"#));
    }

    #[test]
    fn value_paths_match_within_one_element() {
        assert!(m(r#"emails[type eq "work" and primary eq true]"#));
        assert!(m(r#"emails[type eq "work" and value co "example.com"]"#));
        assert!(!m(r#"emails[type eq "work" and value ew "jensen.org"]"#)); // not the same element
        assert!(m(r#"emails[type eq "home" or primary eq true]"#));
        assert!(m(r#"emails[not (type eq "work")]"#));
        assert!(!m(r#"emails[type eq "other"]"#));
        assert!(m(r#"emails[TYPE eq "WORK"]"#)); // type is case-insensitive
        assert!(!m(r#"phoneNumbers[type eq "work"]"#));
        assert!(!m(r#"ims[type pr]"#)); // missing attribute
        assert!(m(
            r#"emails[type eq "work"].value eq "bjensen@example.com""#
        ));
        assert!(!m(r#"emails[type eq "work"].value eq "babs@jensen.org""#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[displayName sw "john"]"#
        ));
        assert!(m(
            r#"userName pr and emails[primary eq true] and not (emails[type eq "other"])"#
        ));
    }

    #[test]
    fn datetimes_compare_chronologically() {
        assert!(m(r#"meta.created gt "2024-01-01T00:00:00Z""#));
        assert!(m(r#"meta.created eq "2024-01-23T05:56:22+01:00""#)); // same instant, other offset
        assert!(m(r#"meta.created ge "2024-01-23T04:56:22Z""#));
        assert!(m(r#"meta.created le "2024-01-23T04:56:22.000Z""#));
        assert!(!m(r#"meta.created lt "2024-01-23T04:56:22Z""#));
        assert!(m(r#"meta.created lt "2024-01-23T04:56:23Z""#));
        // 04:42:34+02:00 is 02:42:34Z: before 03:00Z although the text sorts after it.
        assert!(m(r#"meta.lastModified lt "2024-05-13T03:00:00Z""#));
        assert!(!m(r#"meta.lastModified gt "2024-05-13T03:00:00Z""#));
        assert!(m(r#"meta.lastModified gt "2024-05-13""#));
        assert!(m(r#"meta.created sw "2024-01""#));
        assert!(m(r#"meta.created gt "2024-01-23T04:56:21.999999Z""#));
    }

    #[test]
    fn enterprise_extension_paths() {
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d""#
        ));
        assert!(!m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales""#
        ));
        assert!(m(
            r#"URN:IETF:params:scim:schemas:extension:enterprise:2.0:User:Department eq "R&D""#
        ));
        assert!(m(r#"department eq "R&D""#)); // unprefixed falls back to the extension
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        ));
        assert!(m(r#"manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen@example.com""#
        ));
        assert!(!m(r#"costCenter pr"#));
    }

    #[test]
    fn numbers_compare_numerically() {
        static SUBS: &[AttrDef] = &[
            AttrDef {
                name: "count",
                ty: AttrType::Integer,
                multi_valued: false,
                required: false,
                case_exact: false,
                mutability: Mutability::ReadWrite,
                returned: Returned::Default,
                uniqueness: Uniqueness::None,
                sub_attributes: &[],
                canonical_values: &[],
                reference_types: &[],
                description: "",
            },
            AttrDef {
                name: "ratio",
                ty: AttrType::Decimal,
                multi_valued: false,
                required: false,
                case_exact: false,
                mutability: Mutability::ReadWrite,
                returned: Returned::Default,
                uniqueness: Uniqueness::None,
                sub_attributes: &[],
                canonical_values: &[],
                reference_types: &[],
                description: "",
            },
        ];
        static DEF: AttrDef = AttrDef {
            name: "stats",
            ty: AttrType::Complex,
            multi_valued: true,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            sub_attributes: SUBS,
            canonical_values: &[],
            reference_types: &[],
            description: "",
        };
        let el = json!({"count": 10, "ratio": 0.5});
        let t = |f: &str| matches_element(&DEF, &parse_filter(f).unwrap(), &el);
        assert!(t("count eq 10"));
        assert!(t("count eq 10.0"));
        assert!(t("count gt 9") && !t("count gt 10") && t("count ge 10"));
        assert!(t("count lt 11") && !t("count lt 10") && t("count le 10"));
        assert!(t("count gt -1"));
        assert!(t("count gt 9.5"));
        assert!(t("count ne 11"));
        assert!(t(r#"count eq "10""#)); // numeric string, leniently
        assert!(!t(r#"count eq "ten""#));
        assert!(t("ratio lt 1") && t("ratio eq 0.5") && t("ratio gt 0.25"));
        assert!(t("count sw 1"));
        assert!(!t("missing eq 1"));
    }

    #[test]
    fn groups_and_elements() {
        let g = json!({
            "displayName": "Admins",
            "members": [{"value": "2819c223", "type": "User"}, {"value": "abc", "type": "Group"}]
        });
        let gm = |f: &str| matches(&GROUP_RESOURCE, &parse_filter(f).unwrap(), &g);
        assert!(gm(r#"displayName eq "admins""#));
        assert!(gm(r#"members[value eq "2819c223"]"#));
        assert!(gm(r#"members.value eq "abc""#));
        assert!(gm(r#"members[type eq "group" and value eq "abc"]"#));
        assert!(!gm(r#"members[type eq "user" and value eq "abc"]"#));
        assert!(gm(r#"members eq "abc""#));

        let members = GROUP_RESOURCE.core_attr("members").unwrap();
        let f = parse_filter(r#"value eq "2819c223""#).unwrap();
        assert!(matches_element(
            members,
            &f,
            &json!({"value": "2819c223", "display": "Babs"})
        ));
        assert!(!matches_element(members, &f, &json!({"value": "other"})));
        assert!(!matches_element(members, &f, &json!("2819c223")));
        assert!(!matches_element(
            members,
            &parse_filter(r#"nosuch eq "x""#).unwrap(),
            &json!({"value": "x"})
        ));
        let f = parse_filter(r#"Value eq "x" and not (type eq "group")"#).unwrap();
        assert!(matches_element(
            members,
            &f,
            &json!({"value": "x", "type": "User"})
        ));
        assert!(!matches_element(
            members,
            &f,
            &json!({"value": "x", "type": "Group"})
        ));
    }
}
