//! Index pushdown: recognises the filters (`<attr> eq "<string>"`) that the list handlers can
//! answer with an indexed store lookup instead of a scan and in-memory match.

use serde_json::Value;

use super::ast::{CompareOp, Filter};
use crate::scim::schema::{GROUP_URN, USER_URN};

/// If the filter is exactly `<attr> eq "<string>"` (case-insensitively named) return the string value; used for index pushdown.
/// `attr` may name a sub-attribute (`name.givenName`); a core schema URN prefix on the filter's path is accepted.
pub fn as_eq_on<'f>(f: &'f Filter, attr: &str) -> Option<&'f str> {
    let Filter::Compare(path, CompareOp::Eq, Value::String(s)) = f else {
        return None;
    };
    let core_urn = match &path.urn {
        None => true,
        Some(u) => u.eq_ignore_ascii_case(USER_URN) || u.eq_ignore_ascii_case(GROUP_URN),
    };
    let named = match (&path.sub, attr.split_once('.')) {
        (None, None) => path.name.eq_ignore_ascii_case(attr),
        (Some(sub), Some((name, want_sub))) => {
            path.name.eq_ignore_ascii_case(name) && sub.eq_ignore_ascii_case(want_sub)
        }
        _ => false,
    };
    (core_urn && named).then_some(s.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::parse_filter;
    use super::*;

    #[test]
    fn as_eq_on_extracts_simple_equality() {
        let f = parse_filter(r#"userName eq "bjensen""#).unwrap();
        assert_eq!(as_eq_on(&f, "userName"), Some("bjensen"));
        assert_eq!(as_eq_on(&f, "username"), Some("bjensen"));
        assert_eq!(as_eq_on(&f, "externalId"), None);
        let f = parse_filter(r#"UserName EQ "x""#).unwrap();
        assert_eq!(as_eq_on(&f, "userName"), Some("x"));
        let f =
            parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#).unwrap();
        assert_eq!(as_eq_on(&f, "userName"), Some("x"));
        let f = parse_filter("externalId eq jyoung").unwrap();
        assert_eq!(as_eq_on(&f, "externalId"), Some("jyoung"));
        let f = parse_filter(r#"name.givenName eq "B""#).unwrap();
        assert_eq!(as_eq_on(&f, "name.givenName"), Some("B"));
        assert_eq!(as_eq_on(&f, "name"), None);
        for other in [
            r#"userName ne "x""#,
            r#"userName co "x""#,
            "userName eq 5",
            "userName eq null",
            r#"userName eq "x" and active eq true"#,
            r#"not (userName eq "x")"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x""#,
        ] {
            assert_eq!(
                as_eq_on(&parse_filter(other).unwrap(), "userName"),
                None,
                "{other}"
            );
        }
    }
}
