//! Filter validation: checks a parsed filter against a resource type's schema (known attributes,
//! operators that fit the attribute's type, value filters only on complex attributes).

use serde_json::Value;

use super::ast::{AttrPath, CompareOp, Filter};
use super::resolve::{resolve_ctx, resolve_target, Ctx, Target};
use crate::scim::error::ScimError;
use crate::scim::schema::{AttrType, ResourceType};

/// Checks a filter against a resource type's schema: unknown attributes or sub-attributes,
/// operators that do not apply to the attribute's type (gt/ge/lt/le on booleans, binaries and
/// complex attributes; co/sw/ew on booleans), and misplaced value filters give 400 `invalidFilter`.
pub fn validate(rt: &ResourceType, f: &Filter) -> Result<(), ScimError> {
    // An explicit stack: no recursion, whatever the shape of the tree.
    let mut stack: Vec<(&Filter, Ctx<'_>)> = vec![(f, Ctx::Resource(rt))];
    while let Some((f, ctx)) = stack.pop() {
        match f {
            Filter::And(l, r) | Filter::Or(l, r) => {
                stack.push((r, ctx));
                stack.push((l, ctx));
            }
            Filter::Not(inner) => stack.push((inner, ctx)),
            Filter::Present(path) => {
                resolve_ctx(ctx, path).map_err(ScimError::invalid_filter)?;
            }
            Filter::Compare(path, op, value) => {
                let target = resolve_ctx(ctx, path).map_err(ScimError::invalid_filter)?;
                check_operator(&target, path, *op, value).map_err(ScimError::invalid_filter)?;
            }
            Filter::ValuePath(path, inner) => {
                let Ctx::Resource(rt) = ctx else {
                    return Err(ScimError::invalid_filter(format!(
                        "value filters cannot be nested ('{path}')"
                    )));
                };
                let target = resolve_target(rt, path).map_err(ScimError::invalid_filter)?;
                if target.sub.is_some() {
                    return Err(ScimError::invalid_filter(format!(
                        "a value filter must follow an attribute name, not the sub-attribute '{path}'"
                    )));
                }
                if target.top.ty != AttrType::Complex {
                    return Err(ScimError::invalid_filter(format!(
                        "'{}' is not a complex attribute; value filters apply to complex attributes",
                        target.top.name
                    )));
                }
                stack.push((inner, Ctx::Element(target.top)));
            }
        }
    }
    Ok(())
}

fn check_operator(
    target: &Target,
    path: &AttrPath,
    op: CompareOp,
    value: &Value,
) -> Result<(), String> {
    let op_s = op.as_str();
    if value.is_null() && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        return Err(format!(
            "'{path} {op_s} null': null can only be compared with eq or ne"
        ));
    }
    if target.sub.is_none() && target.top.ty == AttrType::Complex && op.is_ordering() {
        return Err(format!(
            "'{path}' is a complex attribute; {op_s} needs a sub-attribute"
        ));
    }
    let Some(def) = target.compare_def() else {
        return Err(format!(
            "'{path}' is a complex attribute; compare one of its sub-attributes instead"
        ));
    };
    match def.ty {
        AttrType::Boolean if !matches!(op, CompareOp::Eq | CompareOp::Ne) => Err(format!(
            "'{path}' is a boolean; only eq, ne and pr apply to it"
        )),
        AttrType::Binary if op.is_ordering() => {
            Err(format!("'{path}' is binary; {op_s} does not apply to it"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_filter;
    use super::super::test_util::p;
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

    fn validate_err(rt: &ResourceType, filter: &str) -> ScimError {
        let f = parse_filter(filter).unwrap();
        let e = validate(rt, &f).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}: {e}");
        e
    }

    #[test]
    fn validates_attributes_and_operators_against_the_schema() {
        for ok in [
            r#"userName eq "a""#,
            r#"UserName EQ "a""#,
            r#"name.givenName sw "B""#,
            r#"emails.value co "@""#,
            r#"emails co "@""#,
            r#"emails[type eq "work" and primary eq true]"#,
            r#"meta.created gt "2024-01-01T00:00:00Z""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a""#,
            r#"department eq "R&D""#,
            r#"active eq "true""#,
            r#"active ne false"#,
            r#"id pr and externalId eq null"#,
            r#"manager eq "x""#,
        ] {
            let f = parse_filter(ok).unwrap();
            validate(&USER_RESOURCE, &f).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert!(validate_err(&USER_RESOURCE, r#"nosuch eq "a""#)
            .detail
            .contains("unknown attribute"));
        assert!(validate_err(&USER_RESOURCE, r#"name.nosuch eq "a""#)
            .detail
            .contains("sub-attribute"));
        assert!(validate_err(&USER_RESOURCE, r#"emails[nosuch eq "a"]"#)
            .detail
            .contains("sub-attribute"));
        assert!(validate_err(&USER_RESOURCE, r#"active gt true"#)
            .detail
            .contains("boolean"));
        assert!(validate_err(&USER_RESOURCE, r#"emails.primary le true"#)
            .detail
            .contains("boolean"));
        assert!(validate_err(&USER_RESOURCE, r#"active co "t""#)
            .detail
            .contains("boolean"));
        assert!(validate_err(&USER_RESOURCE, r#"emails gt "a""#)
            .detail
            .contains("complex"));
        assert!(validate_err(&USER_RESOURCE, r#"name eq "a""#)
            .detail
            .contains("complex"));
        assert!(
            validate_err(&USER_RESOURCE, r#"x509Certificates.value gt "a""#)
                .detail
                .contains("binary")
        );
        assert!(validate_err(&USER_RESOURCE, r#"userName[value eq "a"]"#)
            .detail
            .contains("not a complex"));
        assert!(validate_err(&USER_RESOURCE, r#"userName co null"#)
            .detail
            .contains("null"));
        assert!(
            validate_err(&USER_RESOURCE, r#"urn:example:foo:userName eq "a""#)
                .detail
                .contains("unknown")
        );
        validate_err(
            &USER_RESOURCE,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User eq "a""#,
        );
        validate_err(&USER_RESOURCE, r#"emails[urn:x:type eq "work"]"#);
        // Groups know neither User attributes nor the enterprise extension.
        validate_err(&GROUP_RESOURCE, r#"userName eq "a""#);
        validate_err(&GROUP_RESOURCE, r#"department eq "a""#);
        validate_err(
            &GROUP_RESOURCE,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:displayName eq "a""#,
        );
        let f = parse_filter(r#"members[value eq "x"] and displayName eq "Admins""#).unwrap();
        validate(&GROUP_RESOURCE, &f).unwrap();
        // A nested value path built by hand is rejected too.
        let nested = Filter::ValuePath(
            p("emails"),
            Box::new(Filter::ValuePath(
                p("type"),
                Box::new(Filter::Present(p("x"))),
            )),
        );
        assert_eq!(
            validate(&USER_RESOURCE, &nested).unwrap_err().scim_type,
            Some(ScimType::InvalidFilter)
        );
    }
}
