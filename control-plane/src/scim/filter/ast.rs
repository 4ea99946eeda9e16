//! The filter AST: attribute paths, comparison operators, filter expressions and PATCH paths,
//! as the parser builds them and validation, evaluation and PATCH consume them.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use super::lexer::snippet;
use crate::scim::error::ScimError;

/// An attribute path as written: optional schema URN, attribute name, optional sub-attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses `name`, `name.sub`, `urn:…:name` or `urn:…:name.sub`. The URN runs up to the last
    /// `:` (URNs contain dots, as in `2.0`). Errors are `invalidPath`; the filter parser reports
    /// them as `invalidFilter`.
    pub fn parse(s: &str) -> Result<AttrPath, ScimError> {
        if s.is_empty() {
            return Err(ScimError::invalid_path("empty attribute path"));
        }
        let is_urn = s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
        let (urn, rest) = match s.rfind(':') {
            Some(i) if is_urn => (Some(&s[..i]), &s[i + 1..]),
            _ => (None, s),
        };
        if urn.is_some_and(|u| u.len() <= 4 || u.chars().any(|c| c.is_whitespace())) {
            return Err(ScimError::invalid_path(format!(
                "'{}' is not a valid schema URN prefix",
                snippet(s)
            )));
        }
        if rest.is_empty() {
            return Err(ScimError::invalid_path(format!(
                "'{}' has no attribute name after the schema URN",
                snippet(s)
            )));
        }
        let (name, sub) = match rest.split_once('.') {
            Some((n, sub)) => (n, Some(sub)),
            None => (rest, None),
        };
        check_attr_name(name, s)?;
        if let Some(sub) = sub {
            check_attr_name(sub, s)?;
        }
        Ok(AttrPath {
            urn: urn.map(str::to_string),
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    }

    /// The attribute's name with its URN prefix but without the sub-attribute: the form
    /// [`ResourceType::resolve`](crate::scim::schema::ResourceType::resolve) takes.
    pub fn full_name(&self) -> String {
        match &self.urn {
            Some(urn) => format!("{urn}:{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        write!(f, "{}", self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA` (RFC 7643 §2.1), plus `$ref`.
pub(super) fn check_attr_name(name: &str, whole: &str) -> Result<(), ScimError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '$');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(())
    } else if name.is_empty() {
        Err(ScimError::invalid_path(format!(
            "'{}' has an empty attribute name",
            snippet(whole)
        )))
    } else {
        Err(ScimError::invalid_path(format!(
            "'{}' is not a valid attribute name (in '{}')",
            snippet(name),
            snippet(whole)
        )))
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub(super) fn from_word(w: &str) -> Option<CompareOp> {
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    pub(super) fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether an ordering of attribute value against filter value satisfies the operator
    /// (for eq, ne, gt, ge, lt, le).
    pub(super) fn accepts(self, ord: Ordering) -> bool {
        match self {
            CompareOp::Eq => ord == Ordering::Equal,
            CompareOp::Ne => ord != Ordering::Equal,
            CompareOp::Gt => ord == Ordering::Greater,
            CompareOp::Ge => ord != Ordering::Less,
            CompareOp::Lt => ord == Ordering::Less,
            CompareOp::Le => ord != Ordering::Greater,
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    /// The value is a string, number, boolean or null.
    Compare(AttrPath, CompareOp, Value),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// emails[type eq "work" and value co "@x"]; inner paths are relative to the element.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH path (RFC 7644 §3.5.2): attrPath, or attrPath[valFilter], or attrPath[valFilter].subAttr
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub_attr: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::super::test_util::p;
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::ENTERPRISE_USER_URN;

    #[test]
    fn attr_path_parses_names_subs_and_urns() {
        assert_eq!(
            p("userName"),
            AttrPath {
                urn: None,
                name: "userName".into(),
                sub: None
            }
        );
        assert_eq!(
            p("name.givenName"),
            AttrPath {
                urn: None,
                name: "name".into(),
                sub: Some("givenName".into())
            }
        );
        let e = p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
        assert_eq!(e.urn.as_deref(), Some(ENTERPRISE_USER_URN));
        assert_eq!(e.name, "manager");
        assert_eq!(e.sub.as_deref(), Some("value"));
        assert_eq!(e.full_name(), format!("{ENTERPRISE_USER_URN}:manager"));
        assert_eq!(
            e.to_string(),
            format!("{ENTERPRISE_USER_URN}:manager.value")
        );
        assert_eq!(p("name.givenName").full_name(), "name");
        assert_eq!(p("members.$ref").sub.as_deref(), Some("$ref"));
        assert_eq!(
            p("URN:ietf:params:scim:schemas:core:2.0:User:userName").name,
            "userName"
        );
        for bad in [
            "",
            "a.b.c",
            "1abc",
            "user name",
            "urn:x:",
            "emails[",
            "na!me",
            ".value",
            "name.",
        ] {
            let e = AttrPath::parse(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad}");
        }
    }
}
