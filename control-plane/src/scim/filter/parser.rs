//! The filter parser: a recursive-descent parser over the lexer's tokens that builds the
//! [`Filter`] AST for `filter=` (RFC 7644 §3.4.2.2) and PATCH `path`s (§3.5.2), with hard length
//! and nesting limits and error details that point at the offending token.

use serde_json::{Number, Value};

use super::ast::{check_attr_name, AttrPath, CompareOp, Filter, PatchPath};
use super::lexer::{char_pos, snippet, tokenize, Tok, Token};
use super::{MAX_FILTER_DEPTH, MAX_FILTER_LEN};
use crate::scim::error::ScimError;

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
    in_value_path: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, start: usize) -> Result<Self, String> {
        Ok(Parser {
            input,
            tokens: tokenize(input, start)?,
            next: 0,
            depth: 0,
            in_value_path: false,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => Some(w),
            _ => None,
        }
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        self.peek_word().is_some_and(|w| w.eq_ignore_ascii_case(kw))
    }

    fn advance(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.next);
        if t.is_some() {
            self.next += 1;
        }
        t
    }

    /// Describes the next token (or the end) for an error detail.
    fn describe_next(&self) -> String {
        match self.peek() {
            None => "the end of the filter".to_string(),
            Some(t) => {
                let text = match &t.tok {
                    Tok::LParen => "'('".to_string(),
                    Tok::RParen => "')'".to_string(),
                    Tok::LBracket => "'['".to_string(),
                    Tok::RBracket => "']'".to_string(),
                    Tok::Str(s) => format!("\"{}\"", snippet(s)),
                    Tok::Word(w) => format!("'{}'", snippet(w)),
                };
                format!("{text} at position {}", char_pos(self.input, t.pos))
            }
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            Err(format!("the filter nests parentheses, 'not' and value paths deeper than {MAX_FILTER_DEPTH} levels"))
        } else {
            Ok(())
        }
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), String> {
        match self.peek() {
            Some(t) if &t.tok == want => {
                self.next += 1;
                Ok(())
            }
            _ => Err(format!(
                "expected {what} but found {}",
                self.describe_next()
            )),
        }
    }

    /// `or` chains, built iteratively (left-associative).
    fn parse_or(&mut self) -> Result<Filter, String> {
        let mut left = self.parse_and()?;
        while self.peek_keyword("or") {
            self.next += 1;
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `and` chains, built iteratively (left-associative).
    fn parse_and(&mut self) -> Result<Filter, String> {
        let mut left = self.parse_unary()?;
        while self.peek_keyword("and") {
            self.next += 1;
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Filter, String> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::LParen) => {
                self.enter()?;
                self.next += 1;
                let inner = self.parse_or()?;
                self.expect(&Tok::RParen, "')'")?;
                self.leave();
                Ok(inner)
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => {
                self.enter()?;
                self.next += 1;
                let inner = self.parse_unary()?;
                self.leave();
                Ok(Filter::Not(Box::new(inner)))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") => {
                Err(format!(
                    "expected an attribute name, '(' or 'not' but found {}",
                    self.describe_next()
                ))
            }
            Some(Tok::Word(_)) => self.parse_attr_expr(),
            _ => Err(format!(
                "expected an attribute name, '(' or 'not' but found {}",
                self.describe_next()
            )),
        }
    }

    fn parse_path(&mut self) -> Result<AttrPath, String> {
        let Some(Token {
            tok: Tok::Word(w),
            pos,
        }) = self.advance()
        else {
            return Err(format!(
                "expected an attribute name but found {}",
                self.describe_next()
            ));
        };
        let pos = *pos;
        AttrPath::parse(w)
            .map_err(|e| format!("{} at position {}", e.detail, char_pos(self.input, pos)))
    }

    fn parse_attr_expr(&mut self) -> Result<Filter, String> {
        let path = self.parse_path()?;
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LBracket,
                ..
            })
        ) {
            return self.parse_value_path(path);
        }
        self.parse_comparison(path)
    }

    /// `attr[valFilter]`, and the non-standard `attr[valFilter].sub op value` that some clients
    /// send, read as `attr[valFilter and sub op value]`.
    fn parse_value_path(&mut self, path: AttrPath) -> Result<Filter, String> {
        if self.in_value_path {
            return Err(format!(
                "value filters cannot be nested (found {})",
                self.describe_next()
            ));
        }
        if path.sub.is_some() {
            return Err(format!(
                "a value filter must follow an attribute name, not the sub-attribute '{path}'"
            ));
        }
        self.enter()?;
        self.next += 1;
        self.in_value_path = true;
        let inner = self.parse_or()?;
        self.expect(&Tok::RBracket, "']' closing the value filter")?;
        self.in_value_path = false;
        self.leave();
        let inner = match self.peek_word().and_then(|w| w.strip_prefix('.')) {
            Some(sub) => {
                let sub = sub.to_string();
                self.next += 1;
                check_attr_name(&sub, &sub).map_err(|e| e.detail)?;
                let tail = self.parse_comparison(AttrPath {
                    urn: None,
                    name: sub,
                    sub: None,
                })?;
                Filter::And(Box::new(inner), Box::new(tail))
            }
            None => inner,
        };
        Ok(Filter::ValuePath(path, Box::new(inner)))
    }

    fn parse_comparison(&mut self, path: AttrPath) -> Result<Filter, String> {
        let Some(op_word) = self.peek_word() else {
            return Err(format!(
                "expected an operator after '{path}' but found {}",
                self.describe_next()
            ));
        };
        if op_word.eq_ignore_ascii_case("pr") {
            self.next += 1;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_word(op_word) else {
            return Err(format!(
                "unknown operator {} after '{path}'; expected one of eq, ne, co, sw, ew, gt, ge, lt, le, pr",
                self.describe_next()
            ));
        };
        self.next += 1;
        let value = match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Word(w)) => bare_literal(w),
            _ => {
                return Err(format!(
                    "expected a value after '{path} {}' but found {}",
                    op.as_str(),
                    self.describe_next()
                ))
            }
        };
        self.next += 1;
        Ok(Filter::Compare(path, op, value))
    }
}

/// An unquoted value: true, false, null (any case), a JSON number, or else (Entra sends
/// `externalId eq jyoung`) the word itself as a string.
fn bare_literal(w: &str) -> Value {
    match w.to_ascii_lowercase().as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" => return Value::Null,
        _ => {}
    }
    match serde_json::from_str::<Number>(w) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(w.to_string()),
    }
}

/// Parses a filter (RFC 7644 §3.4.2.2). Errors are 400 `invalidFilter`.
pub fn parse_filter(input: &str) -> Result<Filter, ScimError> {
    parse_filter_inner(input).map_err(ScimError::invalid_filter)
}

fn parse_filter_inner(input: &str) -> Result<Filter, String> {
    if input.len() > MAX_FILTER_LEN {
        return Err(format!("the filter is longer than {MAX_FILTER_LEN} bytes"));
    }
    let mut p = Parser::new(input, 0)?;
    if p.tokens.is_empty() {
        return Err("the filter is empty".to_string());
    }
    let f = p.parse_or()?;
    if p.peek().is_some() {
        return Err(format!(
            "unexpected {}; expected 'and', 'or' or the end of the filter",
            p.describe_next()
        ));
    }
    Ok(f)
}

/// Parses a PATCH operation's `path`. Errors are 400 `invalidPath`.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, ScimError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ScimError::invalid_path("the path is empty"));
    }
    if s.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_path(format!(
            "the path is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let Some(open) = s.find('[') else {
        return Ok(PatchPath {
            attr: AttrPath::parse(s)?,
            filter: None,
            sub_attr: None,
        });
    };
    let attr = AttrPath::parse(s[..open].trim_end())?;
    if attr.sub.is_some() {
        return Err(ScimError::invalid_path(format!(
            "a value filter must follow an attribute name, not the sub-attribute '{attr}'"
        )));
    }
    let (filter, sub_attr) = parse_patch_filter(s, open)
        .map_err(|d| ScimError::invalid_path(format!("invalid path: {d}")))?;
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_attr,
    })
}

fn parse_patch_filter(s: &str, open: usize) -> Result<(Filter, Option<String>), String> {
    let mut p = Parser::new(s, open)?;
    p.expect(&Tok::LBracket, "'['")?;
    p.enter()?;
    p.in_value_path = true;
    let filter = p.parse_or()?;
    p.expect(&Tok::RBracket, "']' closing the value filter")?;
    let sub_attr = match p.peek_word() {
        Some(w) => match w.strip_prefix('.') {
            Some(sub) => {
                let sub = sub.to_string();
                p.next += 1;
                check_attr_name(&sub, &sub).map_err(|e| e.detail)?;
                Some(sub)
            }
            None => {
                return Err(format!(
                    "expected '.subAttribute' or the end after ']' but found {}",
                    p.describe_next()
                ))
            }
        },
        None => None,
    };
    if p.peek().is_some() {
        return Err(format!(
            "unexpected {} after the value filter",
            p.describe_next()
        ));
    }
    Ok((filter, sub_attr))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{p, user};
    use super::super::{matches, validate};
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{Resolved, ENTERPRISE_USER_URN, USER_RESOURCE};
    use serde_json::json;

    fn cmp(path: &str, op: CompareOp, v: Value) -> Filter {
        Filter::Compare(p(path), op, v)
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn filter_err(filter: &str) -> ScimError {
        let e = parse_filter(filter).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}: {e}");
        assert_eq!(e.status.as_u16(), 400);
        e
    }

    fn path_err(path: &str) -> ScimError {
        let e = parse_patch_path(path).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{path}: {e}");
        e
    }

    #[test]
    fn parses_every_operator_case_insensitively() {
        for (w, op) in [
            ("eq", CompareOp::Eq),
            ("NE", CompareOp::Ne),
            ("Co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("EW", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("gE", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("LE", CompareOp::Le),
        ] {
            assert_eq!(
                parse_filter(&format!("title {w} \"x\"")).unwrap(),
                cmp("title", op, json!("x"))
            );
        }
        assert_eq!(
            parse_filter("title PR").unwrap(),
            Filter::Present(p("title"))
        );
        assert_eq!(
            parse_filter("title pr AND userName Eq \"a\"").unwrap(),
            and(
                Filter::Present(p("title")),
                cmp("userName", CompareOp::Eq, json!("a"))
            )
        );
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let a = || cmp("a", CompareOp::Eq, json!(1));
        let b = || cmp("b", CompareOp::Eq, json!(2));
        let c = || cmp("c", CompareOp::Eq, json!(3));
        assert_eq!(
            parse_filter("a eq 1 or b eq 2 and c eq 3").unwrap(),
            or(a(), and(b(), c()))
        );
        assert_eq!(
            parse_filter("a eq 1 and b eq 2 or c eq 3").unwrap(),
            or(and(a(), b()), c())
        );
        assert_eq!(
            parse_filter("(a eq 1 or b eq 2) and c eq 3").unwrap(),
            and(or(a(), b()), c())
        );
        assert_eq!(
            parse_filter("not (a eq 1) and b eq 2").unwrap(),
            and(not(a()), b())
        );
        assert_eq!(
            parse_filter("NOT(a eq 1 or b eq 2)").unwrap(),
            not(or(a(), b()))
        );
        assert_eq!(
            parse_filter("a eq 1 and b eq 2 and c eq 3").unwrap(),
            and(and(a(), b()), c())
        );
        assert_eq!(
            parse_filter("a eq 1 or b eq 2 or c eq 3").unwrap(),
            or(or(a(), b()), c())
        );
        assert_eq!(parse_filter("  ((a eq 1))  ").unwrap(), a());
    }

    #[test]
    fn parses_literals() {
        let v = |s: &str| match parse_filter(&format!("title eq {s}")).unwrap() {
            Filter::Compare(_, _, v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            v(r#""a \"quoted\" \\ slash""#),
            json!("a \"quoted\" \\ slash")
        );
        assert_eq!(v(r#""caf\u00e9""#), json!("café"));
        assert_eq!(
            v(r#""naïve (x) [y] and or""#),
            json!("naïve (x) [y] and or")
        );
        assert_eq!(v(r#""""#), json!(""));
        assert_eq!(v("42"), json!(42));
        assert_eq!(v("-7"), json!(-7));
        assert_eq!(v("3.25"), json!(3.25));
        assert_eq!(v("-0.5e2"), json!(-50.0));
        assert_eq!(v("true"), json!(true));
        assert_eq!(v("FALSE"), json!(false));
        assert_eq!(v("Null"), Value::Null);
        // Entra's unquoted values.
        assert_eq!(v("jyoung"), json!("jyoung"));
        assert_eq!(v("2819c223-7f76"), json!("2819c223-7f76"));
        assert_eq!(v("0042"), json!("0042"));
        assert_eq!(v("a@b.c"), json!("a@b.c"));
    }

    #[test]
    fn parses_value_paths_and_urn_paths() {
        assert_eq!(
            parse_filter(r#"emails[type eq "work" and primary eq true]"#).unwrap(),
            Filter::ValuePath(
                p("emails"),
                Box::new(and(
                    cmp("type", CompareOp::Eq, json!("work")),
                    cmp("primary", CompareOp::Eq, json!(true))
                ))
            )
        );
        assert_eq!(
            parse_filter(r#"emails[type eq "work"].value eq "a@x""#).unwrap(),
            Filter::ValuePath(
                p("emails"),
                Box::new(and(
                    cmp("type", CompareOp::Eq, json!("work")),
                    cmp("value", CompareOp::Eq, json!("a@x"))
                ))
            )
        );
        assert_eq!(
            parse_filter(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#
            )
            .unwrap(),
            cmp(
                &format!("{ENTERPRISE_USER_URN}:department"),
                CompareOp::Eq,
                json!("R&D")
            )
        );
        assert_eq!(
            parse_filter(r#"userName eq "a" and emails[value co "@x"] or title pr"#).unwrap(),
            or(
                and(
                    cmp("userName", CompareOp::Eq, json!("a")),
                    Filter::ValuePath(
                        p("emails"),
                        Box::new(cmp("value", CompareOp::Co, json!("@x")))
                    )
                ),
                Filter::Present(p("title"))
            )
        );
    }

    #[test]
    fn rejects_bad_filters_with_invalid_filter() {
        assert!(filter_err("").detail.contains("empty"));
        assert!(filter_err("   ").detail.contains("empty"));
        assert!(filter_err(r#"userName xx "a""#)
            .detail
            .contains("unknown operator"));
        assert!(filter_err(r#"userName eq "a" garbage"#)
            .detail
            .contains("unexpected"));
        assert!(filter_err(r#"userName eq "a")"#)
            .detail
            .contains("unexpected"));
        assert!(filter_err(r#"(userName eq "a""#).detail.contains("')'"));
        assert!(filter_err(r#"userName eq "a"#)
            .detail
            .contains("unterminated"));
        assert!(filter_err(r#"userName eq "bad \q escape""#)
            .detail
            .contains("invalid string"));
        assert!(filter_err("userName eq")
            .detail
            .contains("expected a value"));
        assert!(filter_err("userName")
            .detail
            .contains("expected an operator"));
        assert!(filter_err(r#"userName eq "a" and"#)
            .detail
            .contains("expected an attribute"));
        assert!(filter_err(r#"and userName eq "a""#)
            .detail
            .contains("expected an attribute"));
        assert!(filter_err(r#""a" eq userName"#)
            .detail
            .contains("expected an attribute"));
        filter_err(r#"userName eq ("a")"#);
        filter_err(r#"emails[type eq "work""#);
        filter_err(r#"emails[]"#);
        assert!(filter_err(r#"emails[type eq "work" and x[y eq 1]]"#)
            .detail
            .contains("nested"));
        filter_err(r#"name.givenName[value eq "x"]"#);
        filter_err(r#"emails[type eq "work"].value"#);
        filter_err(r#"emails[type eq "work"] eq "x""#);
        filter_err(r#"user$name eq "a""#);
        filter_err("not");
        filter_err("()");
    }

    #[test]
    fn enforces_length_and_depth_limits_without_overflowing() {
        let e = filter_err(&"(".repeat(100_000));
        assert!(e.detail.contains("longer"));
        let e = filter_err(&format!("{}a pr{}", "(".repeat(1000), ")".repeat(1000)));
        assert!(e.detail.contains("deeper"));
        let e = filter_err(&format!("{}a pr{}", "not (".repeat(33), ")".repeat(33)));
        assert!(e.detail.contains("deeper"));
        filter_err(&"not ".repeat(1000));
        filter_err(&"[".repeat(4000));
        // Exactly at the limit is fine.
        let ok = format!(
            "{}title pr{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert_eq!(parse_filter(&ok).unwrap(), Filter::Present(p("title")));
        let too_deep = format!(
            "{}title pr{}",
            "(".repeat(MAX_FILTER_DEPTH + 1),
            ")".repeat(MAX_FILTER_DEPTH + 1)
        );
        filter_err(&too_deep);
        // Long flat chains parse, validate, evaluate and drop without recursing per term.
        for kw in ["and", "or"] {
            let mut chain = String::from("title pr");
            while chain.len() + 12 < MAX_FILTER_LEN {
                chain.push_str(&format!(" {kw} title pr"));
            }
            let f = parse_filter(&chain).unwrap();
            validate(&USER_RESOURCE, &f).unwrap();
            assert!(matches(&USER_RESOURCE, &f, &user()));
        }
        let mut chain = String::from("a eq 1");
        while chain.len() + 12 < MAX_FILTER_LEN {
            chain.push_str(" and a eq 1");
        }
        assert!(parse_filter(&chain).is_ok());
        filter_err(&format!("{chain}{}", " and a eq 1".repeat(10)));
    }

    #[test]
    fn deep_chains_do_not_overflow_a_small_stack() {
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let chain = format!(
                    "title pr{}",
                    " and title pr".repeat((MAX_FILTER_LEN - 8) / 13)
                );
                let f = parse_filter(&chain).unwrap();
                validate(&USER_RESOURCE, &f).unwrap();
                matches(&USER_RESOURCE, &f, &user())
            })
            .unwrap();
        assert!(handle.join().unwrap());
    }

    // --- PATCH paths -------------------------------------------------------------------------

    #[test]
    fn parses_patch_paths() {
        assert_eq!(
            parse_patch_path("name.givenName").unwrap(),
            PatchPath {
                attr: p("name.givenName"),
                filter: None,
                sub_attr: None
            }
        );
        assert_eq!(parse_patch_path(" active ").unwrap().attr, p("active"));
        assert_eq!(
            parse_patch_path(r#"members[value eq "2819c223"]"#).unwrap(),
            PatchPath {
                attr: p("members"),
                filter: Some(cmp("value", CompareOp::Eq, json!("2819c223"))),
                sub_attr: None
            }
        );
        assert_eq!(
            parse_patch_path(r#"emails[type eq "work"].value"#).unwrap(),
            PatchPath {
                attr: p("emails"),
                filter: Some(cmp("type", CompareOp::Eq, json!("work"))),
                sub_attr: Some("value".into())
            }
        );
        assert_eq!(
            parse_patch_path(r#"emails[type eq "work" and primary eq true].display"#)
                .unwrap()
                .filter,
            Some(and(
                cmp("type", CompareOp::Eq, json!("work")),
                cmp("primary", CompareOp::Eq, json!(true))
            ))
        );
        let mgr =
            parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .unwrap();
        assert_eq!(mgr.attr.urn.as_deref(), Some(ENTERPRISE_USER_URN));
        assert_eq!(mgr.attr.name, "manager");
        assert!(
            matches!(USER_RESOURCE.resolve(&mgr.attr.full_name()), Some((Resolved::Extension(_, a), None)) if a.name == "manager")
        );
        let mv = parse_patch_path(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(mv.attr.sub.as_deref(), Some("value"));
        let ext =
            parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").unwrap();
        assert!(matches!(
            USER_RESOURCE.resolve(&ext.attr.full_name()),
            Some((Resolved::ExtensionObject(_), None))
        ));
        let core = parse_patch_path(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"]"#,
        )
        .unwrap();
        assert_eq!(core.attr.name, "emails");
        // Unquoted values as Entra sends them.
        assert_eq!(
            parse_patch_path("members[value eq 2819c223]")
                .unwrap()
                .filter,
            Some(cmp("value", CompareOp::Eq, json!("2819c223")))
        );
    }

    #[test]
    fn rejects_bad_patch_paths_with_invalid_path() {
        path_err("");
        path_err("   ");
        path_err("a.b.c");
        path_err("na me");
        path_err(r#"emails[type eq "work""#);
        path_err(r#"emails[type eq "work"]]"#);
        path_err("emails[]");
        path_err(r#"[type eq "work"]"#);
        path_err(r#"name.givenName[value eq "x"]"#);
        path_err(r#"emails[type eq "work"]value"#);
        path_err(r#"emails[type eq "work"].value.x"#);
        path_err(r#"emails[type eq "work"].value extra"#);
        path_err(r#"emails[type xx "work"]"#);
        path_err(r#"emails[type eq "work" and x[y eq 1]]"#);
        path_err(&format!(
            "emails[{}type pr{}]",
            "(".repeat(40),
            ")".repeat(40)
        ));
        path_err(&"a".repeat(MAX_FILTER_LEN + 1));
        path_err(&format!("emails[{}]", "(".repeat(100_000)));
    }
}
