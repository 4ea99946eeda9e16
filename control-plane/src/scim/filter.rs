//! SCIM filter expressions (RFC 7644 §3.4.2.2), PATCH paths (§3.5.2) and sortBy ordering: parsing
//! with hard size and nesting limits, validation against a resource type's schema, and evaluation
//! against canonical resource JSON (per-attribute case rules, any-match on multi-valued
//! attributes, chronological dateTime comparison, and the quirks real identity providers send).

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Number, Value};

use super::error::ScimError;
use super::schema::{AttrDef, AttrType, Resolved, ResourceType, SchemaDef, GROUP_URN, USER_URN};

/// Longest filter (or PATCH path) accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

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
    /// [`ResourceType::resolve`] takes.
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
fn check_attr_name(name: &str, whole: &str) -> Result<(), ScimError> {
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
    fn from_word(w: &str) -> Option<CompareOp> {
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

    fn as_str(self) -> &'static str {
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

    fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether an ordering of attribute value against filter value satisfies the operator
    /// (for eq, ne, gt, ge, lt, le).
    fn accepts(self, ord: Ordering) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    Word(String),
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    /// Byte offset in the input.
    pos: usize,
}

/// Shortens user text echoed in error details.
fn snippet(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// 1-based character position of a byte offset, for error details.
fn char_pos(input: &str, byte: usize) -> usize {
    input.get(..byte).map_or(byte, |p| p.chars().count()) + 1
}

fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"')
}

fn tokenize(input: &str, start: usize) -> Result<Vec<Token>, String> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = start;
    while let Some(c) = input.get(i..).and_then(|rest| rest.chars().next()) {
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            _ => None,
        };
        if let Some(tok) = simple {
            tokens.push(Token { tok, pos: i });
            i += 1;
        } else if c.is_whitespace() {
            i += c.len_utf8();
        } else if c == '"' {
            let mut j = i + 1;
            loop {
                match bytes.get(j) {
                    None => {
                        return Err(format!(
                            "unterminated string starting at position {}",
                            char_pos(input, i)
                        ));
                    }
                    Some(b'\\') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            let literal = &input[i..=j];
            let s: String = serde_json::from_str(literal).map_err(|_| {
                format!(
                    "invalid string literal {} at position {} (strings are JSON strings: escape '\"' and '\\')",
                    snippet(literal),
                    char_pos(input, i)
                )
            })?;
            tokens.push(Token {
                tok: Tok::Str(s),
                pos: i,
            });
            i = j + 1;
        } else {
            let len: usize = input[i..]
                .chars()
                .take_while(|&c| !is_delim(c))
                .map(char::len_utf8)
                .sum();
            tokens.push(Token {
                tok: Tok::Word(input[i..i + len].to_string()),
                pos: i,
            });
            i += len;
        }
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

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

/// A PATCH path (RFC 7644 §3.5.2): attrPath, or attrPath[valFilter], or attrPath[valFilter].subAttr
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub_attr: Option<String>,
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

// ---------------------------------------------------------------------------------------------
// Attribute resolution
// ---------------------------------------------------------------------------------------------

/// Where a filter's attribute path points.
#[derive(Debug, Clone, Copy)]
struct Target {
    /// The top-level attribute (or, inside a value filter, the sub-attribute of the element).
    top: &'static AttrDef,
    sub: Option<&'static AttrDef>,
    /// The extension whose URN key holds the attribute, if any.
    ext: Option<&'static SchemaDef>,
}

/// The context paths are resolved in: a whole resource, or one element of a complex attribute.
#[derive(Clone, Copy)]
enum Ctx<'r> {
    Resource(&'r ResourceType),
    Element(&'r AttrDef),
}

fn resolve_target(rt: &ResourceType, path: &AttrPath) -> Result<Target, String> {
    let full = path.full_name();
    let (top, ext) = match rt.resolve(&full) {
        Some((Resolved::Core(def), None)) => (def, None),
        Some((Resolved::Extension(schema, def), None)) => (def, Some(schema)),
        Some((Resolved::ExtensionObject(schema), _)) => {
            return Err(format!(
                "'{}' names a schema extension, not an attribute",
                schema.id
            ));
        }
        Some((_, Some(_))) => {
            return Err(format!(
                "'{}' is not a valid attribute path",
                snippet(&full)
            ))
        }
        None => {
            // Unprefixed names that are not core attributes fall back to the extensions.
            let found = match path.urn {
                None => rt
                    .extensions
                    .iter()
                    .find_map(|s| s.attr(&path.name).map(|a| (a, Some(*s)))),
                Some(_) => None,
            };
            match found {
                Some(f) => f,
                None => {
                    return Err(format!(
                        "unknown attribute '{}' for resource type {}",
                        snippet(&full),
                        rt.name
                    ));
                }
            }
        }
    };
    let sub = match &path.sub {
        Some(s) => Some(
            top.sub(s)
                .ok_or_else(|| format!("'{}' has no sub-attribute '{}'", top.name, snippet(s)))?,
        ),
        None => None,
    };
    Ok(Target { top, sub, ext })
}

fn resolve_in_element(def: &AttrDef, path: &AttrPath) -> Result<Target, String> {
    if path.urn.is_some() || path.sub.is_some() {
        return Err(format!(
            "'{path}' inside a value filter on '{}' must name one of its sub-attributes",
            def.name
        ));
    }
    let top = def.sub(&path.name).ok_or_else(|| {
        format!(
            "'{}' has no sub-attribute '{}'",
            def.name,
            snippet(&path.name)
        )
    })?;
    Ok(Target {
        top,
        sub: None,
        ext: None,
    })
}

fn resolve_ctx(ctx: Ctx<'_>, path: &AttrPath) -> Result<Target, String> {
    match ctx {
        Ctx::Resource(rt) => resolve_target(rt, path),
        Ctx::Element(def) => resolve_in_element(def, path),
    }
}

/// Case-insensitive key lookup (exact spelling first: canonical resources use the schema's).
fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Pushes a value, or each element of an array, skipping nulls.
fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Null => {}
        Value::Array(items) => out.extend(items.iter().filter(|i| !i.is_null())),
        other => out.push(other),
    }
}

impl Target {
    /// The JSON value of the top-level attribute in `json` (a resource or an element).
    fn raw<'a>(&self, json: &'a Value) -> Option<&'a Value> {
        let container = match self.ext {
            Some(schema) => get_ci(json.as_object()?, schema.id)?,
            None => json,
        };
        get_ci(container.as_object()?, self.top.name)
    }

    /// The attribute's values (multi-valued attributes flattened).
    fn top_values<'a>(&self, json: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        if let Some(raw) = self.raw(json) {
            flatten(raw, &mut out);
        }
        out
    }

    fn sub_values<'a>(&self, json: &'a Value, sub: &AttrDef) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for element in self.top_values(json) {
            if let Some(v) = element.as_object().and_then(|m| get_ci(m, sub.name)) {
                flatten(v, &mut out);
            }
        }
        out
    }

    /// The definition values are compared under: the sub-attribute, or a complex attribute's
    /// `value` sub-attribute, or the attribute itself. `None` for a complex attribute without `value`.
    fn compare_def(&self) -> Option<&'static AttrDef> {
        match self.sub {
            Some(sub) => Some(sub),
            None if self.top.ty == AttrType::Complex => self.top.sub("value"),
            None => Some(self.top),
        }
    }

    /// The values `pr` looks at.
    fn present_values<'a>(&self, json: &'a Value) -> Vec<&'a Value> {
        match self.sub {
            Some(sub) => self.sub_values(json, sub),
            None => self.top_values(json),
        }
    }

    /// The values a comparison looks at, with the definition they are compared under.
    fn compare_values<'a>(&self, json: &'a Value) -> Option<(&'static AttrDef, Vec<&'a Value>)> {
        let def = self.compare_def()?;
        if self.sub.is_some() || self.top.ty == AttrType::Complex {
            Some((def, self.sub_values(json, def)))
        } else {
            Some((def, self.top_values(json)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Whether a canonical resource matches a filter. Never fails: an unknown attribute is treated
/// as missing (run [`validate`] first to reject it).
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
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Numbers, leniently: numeric strings count.
fn as_number(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse::<Number>().ok(),
        _ => None,
    }
}

fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => match (a.as_u64(), b.as_u64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
    }
}

/// RFC 3339 date-times; also, leniently, a date-time without offset or a bare date (as UTC).
fn as_datetime(v: &Value) -> Option<DateTime<Utc>> {
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
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn fold(s: String, case_exact: bool) -> String {
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

// ---------------------------------------------------------------------------------------------
// Index pushdown and sorting
// ---------------------------------------------------------------------------------------------

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
    use super::super::error::ScimType;
    use super::super::schema::{
        Mutability, Returned, Uniqueness, ENTERPRISE_USER_URN, GROUP_RESOURCE, USER_RESOURCE,
    };
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> AttrPath {
        AttrPath::parse(s).unwrap()
    }

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

    fn user() -> Value {
        json!({
            "schemas": [USER_URN, ENTERPRISE_USER_URN],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "JYoung",
            "userName": "Bjensen@Example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs Jensen",
            "nickName": "",
            "title": "Tour Guide",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [],
            "meta": {
                "resourceType": "User",
                "created": "2024-01-23T04:56:22Z",
                "lastModified": "2024-05-13T04:42:34+02:00",
                "version": "W/\"a330bc54f0671c9\""
            },
            ENTERPRISE_USER_URN: {
                "department": "R&D",
                "employeeNumber": "00042",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
            }
        })
    }

    fn m(filter: &str) -> bool {
        let f = parse_filter(filter).unwrap();
        validate(&USER_RESOURCE, &f).unwrap();
        matches(&USER_RESOURCE, &f, &user())
    }

    fn filter_err(filter: &str) -> ScimError {
        let e = parse_filter(filter).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}: {e}");
        assert_eq!(e.status.as_u16(), 400);
        e
    }

    fn validate_err(rt: &ResourceType, filter: &str) -> ScimError {
        let f = parse_filter(filter).unwrap();
        let e = validate(rt, &f).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}: {e}");
        e
    }

    fn path_err(path: &str) -> ScimError {
        let e = parse_patch_path(path).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{path}: {e}");
        e
    }

    // --- AttrPath ----------------------------------------------------------------------------

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

    // --- Parsing -----------------------------------------------------------------------------

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

    // --- Validation --------------------------------------------------------------------------

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

    // --- Evaluation --------------------------------------------------------------------------

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

    // --- Pushdown and sorting ----------------------------------------------------------------

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
