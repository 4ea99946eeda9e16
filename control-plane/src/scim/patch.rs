//! SCIM PATCH (RFC 7644 §3.5.2): parses PatchOp request bodies and applies their operations to a
//! canonical resource, accepting the shapes Okta and Microsoft Entra send (capitalised ops, string
//! booleans, path-less multi-attribute values, value-path targets on absent arrays, member removal
//! by value list). Group membership changes can be returned instead of applied, so the store can
//! turn them into row inserts and deletes.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{parse_patch_path, CompareOp, Filter, PatchPath};
use super::resource::{canonicalize, check_value};
use super::schema::{
    AttrDef, AttrType, Mutability, Resolved, ResourceType, SchemaDef, PATCH_OP_URN,
};

/// The three PATCH operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

/// One parsed entry of `Operations`.
#[derive(Debug, Clone)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Parses a PatchOp request body: `schemas` must contain
/// `urn:ietf:params:scim:api:messages:2.0:PatchOp` (400 invalidSyntax otherwise), `Operations` a
/// non-empty array (keys case-insensitive: "operations", "Op", "Path", "Value"). Ops are
/// case-insensitive (Entra sends "Add", "Replace", "Remove"). remove without path -> 400 noTarget;
/// add/replace without value -> 400 invalidSyntax; bad path -> 400 invalidPath; unknown op -> 400
/// invalidSyntax. An empty or null `path` counts as no path.
pub fn parse_patch_request(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let Value::Object(map) = body else {
        return Err(ScimError::invalid_syntax(
            "the PATCH body must be a JSON object",
        ));
    };
    let has_urn = match get_ci(map, "schemas") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|u| u.eq_ignore_ascii_case(PATCH_OP_URN)),
        _ => false,
    };
    if !has_urn {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must be an array including {PATCH_OP_URN}"
        )));
    }
    let ops = match get_ci(map, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => {
            return Err(ScimError::invalid_syntax(
                "'Operations' must be a non-empty array",
            ))
        }
    };
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(i, op))
        .collect()
}

fn parse_operation(index: usize, op: &Value) -> Result<PatchOperation, ScimError> {
    let Value::Object(map) = op else {
        return Err(ScimError::invalid_syntax(format!(
            "Operations[{index}] must be an object"
        )));
    };
    let kind = match get_ci(map, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => PatchOpKind::Add,
        Some(s) if s.eq_ignore_ascii_case("remove") => PatchOpKind::Remove,
        Some(s) if s.eq_ignore_ascii_case("replace") => PatchOpKind::Replace,
        Some(_) => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{index}].op must be one of add, remove, replace"
            )))
        }
        None => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{index}].op is required"
            )))
        }
    };
    let path = match get_ci(map, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(parse_patch_path(s.trim()).map_err(|e| ScimError::invalid_path(e.detail))?)
        }
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "Operations[{index}].path must be a string"
            )))
        }
    };
    let value = get_ci(map, "value").cloned();
    match kind {
        PatchOpKind::Remove if path.is_none() => {
            return Err(ScimError::no_target(format!(
                "Operations[{index}]: remove requires a path"
            )))
        }
        PatchOpKind::Add | PatchOpKind::Replace if value.is_none() => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{index}]: {} requires a value",
                kind_name(kind)
            )))
        }
        PatchOpKind::Add | PatchOpKind::Replace
            if path.is_none() && !matches!(value, Some(Value::Object(_))) =>
        {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{index}]: without a path, value must be an object of attributes"
            )))
        }
        _ => {}
    }
    Ok(PatchOperation {
        op: kind,
        path,
        value,
    })
}

/// Group membership changes, returned instead of applied when `members_external` is true so the
/// store can apply them as row inserts/deletes (no read-modify-write of a member list).
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Add these member ids (already-present ids are the store's no-op).
    Add(Vec<String>),
    /// Remove these member ids (absent ids are a no-op).
    Remove(Vec<String>),
    /// Remove the members matching this filter (relative to one member: `value eq "id"`).
    RemoveMatching(Filter),
    /// Remove every member.
    RemoveAll,
    /// Make the member list exactly these ids.
    ReplaceAll(Vec<String>),
}

/// What applying a PATCH produced besides the modified resource.
#[derive(Debug, Default)]
pub struct PatchOutcome {
    /// Membership changes in request order (only when `members_external` is true).
    pub member_changes: Vec<MemberChange>,
}

/// Applies the operations, in order, to `resource` (canonical JSON: core attrs at top level in
/// schema spelling, extension attrs under the extension URN key, plus "schemas"). All-or-nothing:
/// on error the caller discards the copy. Afterwards empty complex values and extension objects
/// are dropped, required attributes are checked (400 invalidValue) and `schemas` is recomputed.
pub fn apply_patch(
    rt: &ResourceType,
    resource: &mut Value,
    ops: &[PatchOperation],
    members_external: bool,
) -> Result<PatchOutcome, ScimError> {
    let Value::Object(res) = resource else {
        tracing::error!("apply_patch called on a non-object resource");
        return Err(ScimError::internal());
    };
    let mut ctx = Ctx {
        rt,
        members_external,
        outcome: PatchOutcome::default(),
    };
    for op in ops {
        ctx.apply(res, op)?;
    }
    finish(rt, res)?;
    Ok(ctx.outcome)
}

fn kind_name(kind: PatchOpKind) -> &'static str {
    match kind {
        PatchOpKind::Add => "add",
        PatchOpKind::Remove => "remove",
        PatchOpKind::Replace => "replace",
    }
}

/// Case-insensitive key lookup (exact spelling first).
fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Where an attribute lives in the canonical resource.
#[derive(Debug, Clone, Copy)]
enum Container {
    /// The top level (common and core attributes).
    Core,
    /// The object under an extension's URN.
    Ext(&'static SchemaDef),
}

#[derive(Debug, Clone, Copy)]
struct Target {
    container: Container,
    def: &'static AttrDef,
}

impl Target {
    fn label(&self) -> String {
        match self.container {
            Container::Core => self.def.name.to_string(),
            Container::Ext(s) => format!("{}:{}", s.id, self.def.name),
        }
    }
}

/// What a name (path or path-less value key) resolved to.
enum Resolution {
    /// An attribute, with the `.sub` suffix the name carried.
    Attr(Target, Option<String>),
    /// A schema URN on its own: its value is an object of that schema's attributes.
    Object(Container),
}

/// Resolves a possibly URN-prefixed, possibly dotted name. A bare name that is not a common or
/// core attribute resolves in the extensions (Entra's `manager`).
fn resolve_name(rt: &ResourceType, raw: &str) -> Option<Resolution> {
    match rt.resolve(raw) {
        Some((Resolved::Core(def), sub)) => Some(Resolution::Attr(
            Target {
                container: Container::Core,
                def,
            },
            sub.map(str::to_string),
        )),
        Some((Resolved::Extension(schema, def), sub)) => Some(Resolution::Attr(
            Target {
                container: Container::Ext(schema),
                def,
            },
            sub.map(str::to_string),
        )),
        Some((Resolved::ExtensionObject(schema), _)) => {
            Some(Resolution::Object(Container::Ext(schema)))
        }
        None if raw.eq_ignore_ascii_case(rt.schema.id) => Some(Resolution::Object(Container::Core)),
        None if !raw.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) => {
            let (name, sub) = match raw.split_once('.') {
                Some((n, s)) => (n, Some(s.to_string())),
                None => (raw, None),
            };
            rt.extensions.iter().find_map(|schema| {
                schema.attr(name).map(|def| {
                    Resolution::Attr(
                        Target {
                            container: Container::Ext(schema),
                            def,
                        },
                        sub.clone(),
                    )
                })
            })
        }
        None => None,
    }
}

/// An attribute of a container (case-insensitive).
fn container_attr(rt: &ResourceType, container: Container, name: &str) -> Option<&'static AttrDef> {
    match container {
        Container::Core => rt.core_attr(name),
        Container::Ext(schema) => schema.attr(name),
    }
}

/// The map holding a container's attributes; created (or reset, if corrupt) when `create`.
fn container_mut(
    res: &mut Map<String, Value>,
    container: Container,
    create: bool,
) -> Option<&mut Map<String, Value>> {
    match container {
        Container::Core => Some(res),
        Container::Ext(schema) => {
            if !create {
                return res.get_mut(schema.id).and_then(Value::as_object_mut);
            }
            let slot = res
                .entry(schema.id.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut()
        }
    }
}

/// The object stored under `name`, created (or reset, if not an object) when absent.
fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    name: &str,
) -> Option<&'a mut Map<String, Value>> {
    let slot = map
        .entry(name.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The array stored under `name`, created (or reset, if not an array) when absent.
fn array_entry<'a>(map: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Vec<Value>> {
    let slot = map
        .entry(name.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
}

/// A single value out of what a client sent for a single-valued target: arrays give their first
/// element (Entra's `"value": [{"value": "id"}]` for `manager`); null or `[]` give `None`.
fn unwrap_single(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => items.first().filter(|v| !v.is_null()).cloned(),
        other => Some(other.clone()),
    }
}

/// The object a client sent for one complex value; a bare string means `{"value": s}` when the
/// attribute has a `value` sub-attribute (Entra sends the manager's id that way).
fn complex_object(
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
fn complex_delta(
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
fn merge_delta(
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

fn is_members(def: &AttrDef) -> bool {
    def.name == "members"
}

/// Canonical, type-checked elements for a multi-valued attribute (a lone object counts as one);
/// read-only sub-attributes, null and empty elements are dropped.
fn multi_values(def: &AttrDef, value: &Value, path: &str) -> Result<Vec<Value>, ScimError> {
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
fn element_from_filter(def: &AttrDef, filter: &Filter) -> Option<Map<String, Value>> {
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
fn enforce_one_primary(items: &mut [Value], touched: &[usize]) {
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
fn value_key(value: &Value) -> String {
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
fn same_value_key(sub: Option<&AttrDef>, v: &Value) -> String {
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

/// Member ids out of a `members` value: an array of (or one) `{"value": "id", ...}` objects.
fn member_ids(def: &AttrDef, value: &Value) -> Result<Vec<String>, ScimError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    let mut ids: Vec<String> = Vec::new();
    // A set beside the list keeps the first-seen order without a scan per value.
    let mut seen: HashSet<String> = HashSet::with_capacity(items.len());
    for item in items {
        if item.is_null() {
            continue;
        }
        let id = match canonicalize(def, item.clone()) {
            Value::Object(m) => match m.get("value") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                _ => {
                    return Err(ScimError::invalid_value(
                        "each member must have a string 'value'",
                    ))
                }
            },
            _ => {
                return Err(ScimError::invalid_value(
                    "each member must be an object with a 'value'",
                ))
            }
        };
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

struct Ctx<'a> {
    rt: &'a ResourceType,
    members_external: bool,
    outcome: PatchOutcome,
}

/// Which elements of a multi-valued attribute an operation addresses.
#[derive(Clone, Copy)]
enum Select<'f> {
    All,
    Matching(&'f Filter),
}

impl Ctx<'_> {
    fn apply(
        &mut self,
        res: &mut Map<String, Value>,
        op: &PatchOperation,
    ) -> Result<(), ScimError> {
        match &op.path {
            None => {
                if op.op == PatchOpKind::Remove {
                    return Err(ScimError::no_target("remove requires a path"));
                }
                match &op.value {
                    Some(Value::Object(obj)) => {
                        self.apply_object(res, op.op, Container::Core, obj, true)
                    }
                    _ => Err(ScimError::invalid_syntax(
                        "without a path, value must be an object of attributes",
                    )),
                }
            }
            Some(path) => self.apply_path(res, op.op, path, op.value.as_ref()),
        }
    }

    /// A path-less value, or the value of a path naming a schema URN: an object of attributes
    /// (plain, dotted or URN-prefixed names at the top level, plain or dotted inside a URN).
    /// Unknown and read-only attributes are ignored.
    fn apply_object(
        &mut self,
        res: &mut Map<String, Value>,
        kind: PatchOpKind,
        container: Container,
        obj: &Map<String, Value>,
        top_level: bool,
    ) -> Result<(), ScimError> {
        for (key, value) in obj {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            // Entra sends value paths as keys of a path-less value
            // (`{"emails[type eq \"work\"].value": "x"}`): apply each as if it were the path.
            if top_level && key.contains('[') {
                let path = crate::scim::filter::parse_patch_path(key)?;
                self.apply_path(res, kind, &path, Some(value))?;
                continue;
            }
            let resolved = if top_level {
                resolve_name(self.rt, key)
            } else {
                let (name, sub) = match key.split_once('.') {
                    Some((n, s)) => (n, Some(s.to_string())),
                    None => (key.as_str(), None),
                };
                container_attr(self.rt, container, name)
                    .map(|def| Resolution::Attr(Target { container, def }, sub))
            };
            match resolved {
                None => tracing::debug!(attribute = %key, "PATCH: ignoring unknown attribute"),
                Some(Resolution::Object(inner)) => match value {
                    Value::Object(m) if top_level => {
                        self.apply_object(res, kind, inner, m, false)?
                    }
                    Value::Null if kind == PatchOpKind::Replace => {
                        if let Container::Ext(schema) = inner {
                            res.remove(schema.id);
                        }
                    }
                    Value::Null => {}
                    _ => {
                        return Err(ScimError::invalid_value(format!(
                            "'{key}' must be an object of attributes"
                        )))
                    }
                },
                Some(Resolution::Attr(target, sub)) => {
                    if target.def.mutability == Mutability::ReadOnly
                        || target.def.name == "password"
                    {
                        continue;
                    }
                    let sub_def = match sub {
                        None => None,
                        Some(s) => match target.def.sub(&s) {
                            Some(d) if d.mutability == Mutability::ReadWrite => Some(d),
                            _ => continue,
                        },
                    };
                    if self.members_external && is_members(target.def) {
                        if sub_def.is_none() {
                            self.member_change(kind, Select::All, Some(value))?;
                        }
                        continue;
                    }
                    self.apply_target(res, kind, target, Select::All, sub_def, Some(value))?;
                }
            }
        }
        Ok(())
    }

    fn apply_path(
        &mut self,
        res: &mut Map<String, Value>,
        kind: PatchOpKind,
        path: &PatchPath,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let attr = &path.attr;
        let mut raw = attr.full_name();
        if attr.urn.is_none() && attr.name.eq_ignore_ascii_case("schemas") {
            return Err(ScimError::mutability("'schemas' cannot be modified"));
        }
        if let Some(sub) = &attr.sub {
            raw.push('.');
            raw.push_str(sub);
        }
        let Some(resolved) = resolve_name(self.rt, &raw) else {
            return Err(ScimError::invalid_path(format!(
                "unknown attribute '{raw}'"
            )));
        };
        let (target, path_sub) = match resolved {
            Resolution::Attr(t, s) => (t, s),
            Resolution::Object(container) => {
                if path.filter.is_some() || path.sub_attr.is_some() {
                    return Err(ScimError::invalid_path(format!(
                        "'{raw}' names a schema, not an attribute"
                    )));
                }
                return match (kind, container, value) {
                    (PatchOpKind::Remove, Container::Ext(schema), _) => {
                        res.remove(schema.id);
                        Ok(())
                    }
                    (PatchOpKind::Remove, Container::Core, _) => {
                        Err(ScimError::invalid_path("the core schema cannot be removed"))
                    }
                    (_, _, Some(Value::Object(m))) => {
                        self.apply_object(res, kind, container, m, false)
                    }
                    (_, _, Some(Value::Null)) => Ok(()),
                    _ => Err(ScimError::invalid_value(format!(
                        "the value for '{raw}' must be an object of attributes"
                    ))),
                };
            }
        };
        let def = target.def;
        let select = match &path.filter {
            Some(f) => {
                if !def.multi_valued {
                    return Err(ScimError::invalid_path(format!(
                        "a value filter applies only to a multi-valued attribute: '{raw}'"
                    )));
                }
                Select::Matching(f)
            }
            None => Select::All,
        };
        let sub_name = match (path_sub, &path.sub_attr) {
            (Some(_), Some(_)) => {
                return Err(ScimError::invalid_path(format!("invalid path '{raw}'")))
            }
            (Some(s), None) => Some(s),
            (None, s) => s.clone(),
        };
        let sub = match &sub_name {
            None => None,
            Some(s) => Some(def.sub(s).ok_or_else(|| {
                ScimError::invalid_path(format!("'{}' has no sub-attribute '{s}'", target.label()))
            })?),
        };
        if def.mutability == Mutability::ReadOnly {
            return Err(ScimError::mutability(format!(
                "'{}' is read-only",
                target.label()
            )));
        }
        if let Some(sub) = sub {
            if sub.mutability == Mutability::ReadOnly || sub.mutability == Mutability::Immutable {
                return Err(ScimError::mutability(format!(
                    "'{}.{}' cannot be modified",
                    target.label(),
                    sub.name
                )));
            }
        }
        if def.name == "password" {
            // Accepted and never stored: Palisade does not authenticate users itself.
            return Ok(());
        }
        if self.members_external && is_members(def) {
            return self.member_change(kind, select, value);
        }
        self.apply_target(res, kind, target, select, sub, value)
    }

    /// Records a membership change for a Group whose members live outside the JSON.
    fn member_change(
        &mut self,
        kind: PatchOpKind,
        select: Select<'_>,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let def = self
            .rt
            .schema
            .attr("members")
            .ok_or_else(|| ScimError::invalid_path("unknown attribute 'members'"))?;
        let change = match (kind, select) {
            (PatchOpKind::Remove, Select::Matching(f)) => {
                Some(MemberChange::RemoveMatching(f.clone()))
            }
            (PatchOpKind::Remove, Select::All) => match value {
                None | Some(Value::Null) => Some(MemberChange::RemoveAll),
                Some(v) => {
                    let ids = member_ids(def, v)?;
                    (!ids.is_empty()).then_some(MemberChange::Remove(ids))
                }
            },
            (PatchOpKind::Add, Select::All) => {
                let ids = member_ids(def, value.unwrap_or(&Value::Null))?;
                (!ids.is_empty()).then_some(MemberChange::Add(ids))
            }
            (PatchOpKind::Replace, Select::All) => match value {
                None | Some(Value::Null) => Some(MemberChange::RemoveAll),
                Some(v) => Some(MemberChange::ReplaceAll(member_ids(def, v)?)),
            },
            (PatchOpKind::Replace, Select::Matching(f)) => {
                let ids = member_ids(def, value.unwrap_or(&Value::Null))?;
                self.outcome
                    .member_changes
                    .push(MemberChange::RemoveMatching(f.clone()));
                (!ids.is_empty()).then_some(MemberChange::Add(ids))
            }
            (PatchOpKind::Add, Select::Matching(_)) => {
                return Err(ScimError::invalid_path(
                    "add members with path 'members' and a list of members",
                ))
            }
        };
        if let Some(c) = change {
            self.outcome.member_changes.push(c);
        }
        Ok(())
    }

    /// Applies one operation to a resolved attribute (and optional element selection and
    /// sub-attribute) inside the resource JSON.
    fn apply_target(
        &mut self,
        res: &mut Map<String, Value>,
        kind: PatchOpKind,
        target: Target,
        select: Select<'_>,
        sub: Option<&'static AttrDef>,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let def = target.def;
        let label = target.label();
        if def.multi_valued {
            return match (select, sub) {
                (Select::All, None) => apply_whole_multi(res, kind, target, value, &label),
                _ => apply_elements(res, kind, target, select, sub, value, &label),
            };
        }
        if kind == PatchOpKind::Remove {
            if let Some(container) = container_mut(res, target.container, false) {
                match sub {
                    None => {
                        container.remove(def.name);
                    }
                    Some(s) => {
                        if let Some(Value::Object(obj)) = container.get_mut(def.name) {
                            obj.remove(s.name);
                            if obj.is_empty() {
                                container.remove(def.name);
                            }
                        }
                    }
                }
            }
            return Ok(());
        }
        // add and replace on a single-valued attribute (RFC 7644: a complex value's
        // sub-attributes are merged, for replace as for add).
        let value = match value.and_then(unwrap_single) {
            Some(v) => v,
            None if kind == PatchOpKind::Replace => {
                return self.apply_target(res, PatchOpKind::Remove, target, select, sub, None);
            }
            None => return Ok(()),
        };
        match sub {
            Some(s) => {
                let v = canonicalize(s, value);
                let sub_label = format!("{label}.{}", s.name);
                check_value(s, &v, &sub_label)?;
                let mut sets = Map::new();
                sets.insert(s.name.to_string(), v);
                let container =
                    container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
                let obj = object_entry(container, def.name).ok_or_else(ScimError::internal)?;
                merge_delta(def, obj, sets, &[]);
            }
            None if def.ty == AttrType::Complex => {
                let obj = complex_object(def, value, &label)?;
                let (sets, clears) = complex_delta(def, obj, &label)?;
                let container =
                    container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
                let obj = object_entry(container, def.name).ok_or_else(ScimError::internal)?;
                merge_delta(def, obj, sets, &clears);
                if obj.is_empty() {
                    container.remove(def.name);
                }
            }
            None => {
                let v = canonicalize(def, value);
                check_value(def, &v, &label)?;
                let container =
                    container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
                container.insert(def.name.to_string(), v);
            }
        }
        Ok(())
    }
}

/// add / replace / remove on a whole multi-valued attribute (no filter, no sub-attribute).
fn apply_whole_multi(
    res: &mut Map<String, Value>,
    kind: PatchOpKind,
    target: Target,
    value: Option<&Value>,
    label: &str,
) -> Result<(), ScimError> {
    let def = target.def;
    match kind {
        PatchOpKind::Remove => {
            let Some(container) = container_mut(res, target.container, false) else {
                return Ok(());
            };
            match value {
                None | Some(Value::Null) => {
                    container.remove(def.name);
                }
                Some(v) => {
                    // Entra: remove only the listed values, never the whole attribute.
                    let given = multi_values(def, v, label)?;
                    let value_sub = def.sub("value");
                    // A given element with a `value` removes the elements with the same value;
                    // one without removes the elements equal to it as a whole.
                    let mut by_value: HashSet<String> = HashSet::new();
                    let mut whole: HashSet<String> = HashSet::new();
                    for g in &given {
                        match g.get("value") {
                            Some(gv) => by_value.insert(same_value_key(value_sub, gv)),
                            None => whole.insert(value_key(g)),
                        };
                    }
                    if let Some(Value::Array(items)) = container.get_mut(def.name) {
                        items.retain(|item| {
                            let value_hit = item.get("value").is_some_and(|iv| {
                                by_value.contains(&same_value_key(value_sub, iv))
                            });
                            !(value_hit || (!whole.is_empty() && whole.contains(&value_key(item))))
                        });
                        if items.is_empty() {
                            container.remove(def.name);
                        }
                    }
                }
            }
        }
        PatchOpKind::Add => {
            let new = multi_values(def, value.unwrap_or(&Value::Null), label)?;
            if new.is_empty() {
                return Ok(());
            }
            let container =
                container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
            let items = array_entry(container, def.name).ok_or_else(ScimError::internal)?;
            let members = is_members(def);
            // The first index of each element, and of each member `value`, so that a duplicate
            // is found by lookup rather than by a scan of the list per added value.
            let mut whole: HashMap<String, usize> = HashMap::with_capacity(items.len());
            let mut by_value: HashMap<String, usize> = HashMap::new();
            for (i, existing) in items.iter().enumerate() {
                whole.entry(value_key(existing)).or_insert(i);
                if let Some(ev) = existing.get("value").filter(|_| members) {
                    by_value.entry(value_key(ev)).or_insert(i);
                }
            }
            let mut touched = Vec::new();
            for v in new {
                let key = value_key(&v);
                let value_key_of_v = v.get("value").filter(|_| members).map(value_key);
                let dup_whole = whole.get(&key).copied();
                let dup_value = value_key_of_v
                    .as_ref()
                    .and_then(|k| by_value.get(k).copied());
                let dup = match (dup_whole, dup_value) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match dup {
                    Some(i) => touched.push(i),
                    None => {
                        let i = items.len();
                        items.push(v);
                        whole.entry(key).or_insert(i);
                        if let Some(k) = value_key_of_v {
                            by_value.entry(k).or_insert(i);
                        }
                        touched.push(i);
                    }
                }
            }
            enforce_one_primary(items, &touched);
        }
        PatchOpKind::Replace => {
            let mut new: Vec<Value> = Vec::new();
            let mut seen: HashSet<String> = HashSet::new();
            for v in multi_values(def, value.unwrap_or(&Value::Null), label)? {
                if seen.insert(value_key(&v)) {
                    new.push(v);
                }
            }
            let container =
                container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
            if new.is_empty() {
                container.remove(def.name);
                return Ok(());
            }
            let touched: Vec<usize> = (0..new.len()).collect();
            enforce_one_primary(&mut new, &touched);
            container.insert(def.name.to_string(), Value::Array(new));
        }
    }
    Ok(())
}

/// Operations on selected elements of a multi-valued attribute (`emails[type eq "work"]`,
/// `emails[type eq "work"].value`, `emails.value`).
fn apply_elements(
    res: &mut Map<String, Value>,
    kind: PatchOpKind,
    target: Target,
    select: Select<'_>,
    sub: Option<&'static AttrDef>,
    value: Option<&Value>,
    label: &str,
) -> Result<(), ScimError> {
    let def = target.def;
    let selected = |items: &[Value]| -> Vec<usize> {
        items
            .iter()
            .enumerate()
            .filter(|(_, v)| match select {
                Select::All => true,
                Select::Matching(f) => super::filter::matches_element(def, f, v),
            })
            .map(|(i, _)| i)
            .collect()
    };
    let value = match kind {
        PatchOpKind::Remove => None,
        _ => match value.and_then(unwrap_single) {
            Some(v) => Some(v),
            None if kind == PatchOpKind::Replace => {
                return apply_elements(res, PatchOpKind::Remove, target, select, sub, None, label)
            }
            None => return Ok(()),
        },
    };
    let Some(value) = value else {
        // remove
        let Some(container) = container_mut(res, target.container, false) else {
            return Ok(());
        };
        let Some(Value::Array(items)) = container.get_mut(def.name) else {
            return Ok(());
        };
        let hit = selected(items);
        match sub {
            Some(s) => {
                for i in &hit {
                    if let Some(Value::Object(m)) = items.get_mut(*i) {
                        m.remove(s.name);
                    }
                }
                items.retain(|v| !matches!(v, Value::Object(m) if m.is_empty()));
            }
            None => {
                let hit: HashSet<usize> = hit.into_iter().collect();
                let mut i = 0;
                items.retain(|_| {
                    let keep = !hit.contains(&i);
                    i += 1;
                    keep
                });
            }
        }
        if items.is_empty() {
            container.remove(def.name);
        }
        return Ok(());
    };

    // add / replace: what to write into each selected element.
    let (sets, clears) = match sub {
        Some(s) => {
            let v = canonicalize(s, value);
            check_value(s, &v, &format!("{label}.{}", s.name))?;
            let mut sets = Map::new();
            sets.insert(s.name.to_string(), v);
            (sets, Vec::new())
        }
        None => complex_delta(def, complex_object(def, value, label)?, label)?,
    };
    let template = match select {
        Select::All => Some(Map::new()),
        Select::Matching(f) => element_from_filter(def, f),
    };
    let container = container_mut(res, target.container, true).ok_or_else(ScimError::internal)?;
    let items = array_entry(container, def.name).ok_or_else(ScimError::internal)?;
    let hit = selected(items);
    let mut touched = Vec::new();
    if hit.is_empty() {
        // Entra targets elements that do not exist yet: build one from the filter's eq terms.
        let Some(mut element) = template else {
            let no_target =
                ScimError::no_target(format!("no value of '{label}' matches the filter"));
            if items.is_empty() {
                container.remove(def.name);
            }
            return Err(no_target);
        };
        merge_delta(def, &mut element, sets, &clears);
        if !element.is_empty() {
            items.push(Value::Object(element));
            touched.push(items.len() - 1);
        }
    } else {
        for i in hit {
            let Some(Value::Object(m)) = items.get_mut(i) else {
                continue;
            };
            if kind == PatchOpKind::Replace && sub.is_none() {
                // The matched record is replaced; the filter's eq terms stay unless overridden.
                let mut fresh = template.clone().unwrap_or_default();
                merge_delta(def, &mut fresh, sets.clone(), &clears);
                *m = fresh;
            } else {
                merge_delta(def, m, sets.clone(), &clears);
            }
            touched.push(i);
        }
    }
    enforce_one_primary(items, &touched);
    check_value(def, &Value::Array(items.clone()), label)?;
    if items.is_empty() {
        container.remove(def.name);
    }
    Ok(())
}

/// Drops empty complex values and extension objects, checks required attributes and recomputes
/// `schemas`.
fn finish(rt: &ResourceType, res: &mut Map<String, Value>) -> Result<(), ScimError> {
    for ext in rt.extensions {
        if let Some(Value::Object(m)) = res.get_mut(ext.id) {
            m.retain(|_, v| !matches!(v, Value::Object(o) if o.is_empty()) && !v.is_null());
        }
    }
    res.retain(|k, v| {
        k == "schemas" || (!matches!(v, Value::Object(o) if o.is_empty()) && !v.is_null())
    });
    for def in rt.schema.attributes.iter().filter(|a| a.required) {
        let present = match res.get(def.name) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        };
        if !present {
            return Err(ScimError::invalid_value(format!(
                "'{}' is required and cannot be removed or emptied",
                def.name
            )));
        }
    }
    let mut schemas = vec![Value::String(rt.schema.id.to_string())];
    for ext in rt.extensions {
        if res.contains_key(ext.id) {
            schemas.push(Value::String(ext.id.to_string()));
        }
    }
    res.insert("schemas".to_string(), Value::Array(schemas));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::error::ScimType;
    use super::super::filter::parse_filter;
    use super::super::schema::{
        ENTERPRISE_USER_URN, GROUP_RESOURCE, GROUP_URN, USER_RESOURCE, USER_URN,
    };
    use super::*;
    use serde_json::json;

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_URN], "Operations": ops})
    }

    fn user() -> Value {
        json!({
            "schemas": [USER_URN],
            "id": "u1",
            "userName": "ada@example.com",
            "active": true,
            "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
        })
    }

    fn group() -> Value {
        json!({"schemas": [GROUP_URN], "id": "g1", "displayName": "Eng"})
    }

    fn run(
        rt: &ResourceType,
        mut res: Value,
        ops: Value,
        external: bool,
    ) -> Result<(Value, PatchOutcome), ScimError> {
        let ops = parse_patch_request(&body(ops))?;
        let outcome = apply_patch(rt, &mut res, &ops, external)?;
        Ok((res, outcome))
    }

    fn patch_user(res: Value, ops: Value) -> Value {
        run(&USER_RESOURCE, res, ops, false).unwrap().0
    }

    fn user_err(res: Value, ops: Value) -> ScimType {
        let e = run(&USER_RESOURCE, res, ops, false).unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{e:?}");
        e.scim_type.unwrap()
    }

    fn parse_err(b: Value) -> ScimType {
        let e = parse_patch_request(&b).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        e.scim_type.unwrap()
    }

    #[test]
    fn parses_case_insensitive_keys_and_ops() {
        let ops = parse_patch_request(&json!({
            "schemas": ["URN:ietf:params:scim:api:messages:2.0:PatchOp"],
            "operations": [
                {"Op": "Add", "Path": "displayName", "Value": "A"},
                {"op": "REPLACE", "value": {"active": false}},
                {"op": "remove", "path": "emails[type eq \"work\"].value"},
                {"op": "replace", "path": "", "value": {"title": "x"}},
            ]
        }))
        .unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].op, PatchOpKind::Add);
        assert_eq!(ops[0].value, Some(json!("A")));
        assert_eq!(ops[1].op, PatchOpKind::Replace);
        assert!(ops[1].path.is_none() && ops[3].path.is_none());
        assert_eq!(ops[2].op, PatchOpKind::Remove);
        let p = ops[2].path.as_ref().unwrap();
        assert_eq!(p.attr.name, "emails");
        assert!(p.filter.is_some());
        assert_eq!(p.sub_attr.as_deref(), Some("value"));
    }

    #[test]
    fn rejects_malformed_requests() {
        let ok_op = json!([{"op": "add", "path": "title", "value": "x"}]);
        assert_eq!(
            parse_err(json!({"Operations": ok_op})),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(json!({"schemas": [USER_URN], "Operations": ok_op})),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(json!({"schemas": PATCH_OP_URN, "Operations": ok_op})),
            ScimType::InvalidSyntax
        );
        assert_eq!(parse_err(body(json!([]))), ScimType::InvalidSyntax);
        assert_eq!(
            parse_err(body(json!({"op": "add"}))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(json!({"schemas": [PATCH_OP_URN]})),
            ScimType::InvalidSyntax
        );
        assert_eq!(parse_err(json!([1, 2])), ScimType::InvalidSyntax);
        assert_eq!(parse_err(json!(null)), ScimType::InvalidSyntax);
        assert_eq!(
            parse_err(body(json!([{"op": "move", "path": "title", "value": "x"}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(body(json!([{"path": "title", "value": "x"}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(body(json!([{"op": 1, "path": "title", "value": "x"}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(parse_err(body(json!(["add"]))), ScimType::InvalidSyntax);
        assert_eq!(
            parse_err(body(json!([{"op": "remove"}]))),
            ScimType::NoTarget
        );
        assert_eq!(
            parse_err(body(json!([{"op": "Remove", "value": {"title": "x"}}]))),
            ScimType::NoTarget
        );
        assert_eq!(
            parse_err(body(json!([{"op": "add", "path": "title"}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(body(json!([{"op": "replace"}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(body(json!([{"op": "replace", "value": "x"}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(body(json!([{"op": "replace", "value": null}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(body(json!([{"op": "add", "value": [1]}]))),
            ScimType::InvalidSyntax
        );
        assert_eq!(
            parse_err(body(
                json!([{"op": "add", "path": "emails[type eq", "value": "x"}])
            )),
            ScimType::InvalidPath
        );
        assert_eq!(
            parse_err(body(json!([{"op": "add", "path": 5, "value": "x"}]))),
            ScimType::InvalidPath
        );
        assert_eq!(
            parse_err(body(json!([{"op": "add", "path": {"a": 1}, "value": "x"}]))),
            ScimType::InvalidPath
        );
    }

    #[test]
    fn add_with_path_simple_complex_and_multi_valued() {
        let u = patch_user(
            user(),
            json!([
                {"op": "add", "path": "title", "value": "Engineer"},
                {"op": "add", "path": "name", "value": {"familyName": "Lovelace", "Formatted": "Ada L"}},
                {"op": "add", "path": "name", "value": {"familyName": "King"}},
                {"op": "add", "path": "name.givenName", "value": "Ada"},
                {"op": "add", "path": "emails", "value": [{"value": "a@x.org", "type": "work"}]},
                {"op": "add", "path": "emails", "value": [{"Value": "a@x.org", "Type": "work"}, {"value": "b@y.org", "type": "home"}]},
                {"op": "add", "path": "phoneNumbers", "value": {"value": "+1", "type": "work"}},
            ]),
        );
        assert_eq!(u["title"], "Engineer");
        assert_eq!(
            u["name"],
            json!({"familyName": "King", "formatted": "Ada L", "givenName": "Ada"})
        );
        assert_eq!(
            u["emails"],
            json!([{"value": "a@x.org", "type": "work"}, {"value": "b@y.org", "type": "home"}])
        );
        assert_eq!(u["phoneNumbers"], json!([{"value": "+1", "type": "work"}]));
        assert_eq!(u["id"], "u1");
        assert_eq!(u["schemas"], json!([USER_URN]));
    }

    #[test]
    fn enterprise_extension_paths_and_entra_manager() {
        let u = patch_user(
            user(),
            json!([
                {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
                {"op": "Add", "path": "manager", "value": [{"$ref": null, "value": "m1"}]},
            ]),
        );
        assert_eq!(
            u[ENTERPRISE_USER_URN],
            json!({"department": "R&D", "manager": {"value": "m1"}})
        );
        assert_eq!(u["schemas"], json!([USER_URN, ENTERPRISE_USER_URN]));

        let mut with_ref = user();
        with_ref[ENTERPRISE_USER_URN] =
            json!({"manager": {"value": "m1", "$ref": "../Users/m1", "displayName": "Boss"}});
        let u = patch_user(
            with_ref.clone(),
            json!([{"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m2"}]),
        );
        assert_eq!(
            u[ENTERPRISE_USER_URN]["manager"],
            json!({"value": "m2"}),
            "stale $ref and displayName dropped"
        );
        let u = patch_user(
            with_ref.clone(),
            json!([{"op": "add", "path": "manager.value", "value": "m1"}]),
        );
        assert_eq!(
            u[ENTERPRISE_USER_URN]["manager"]["$ref"], "../Users/m1",
            "unchanged value keeps $ref"
        );
        let u = patch_user(
            with_ref,
            json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
        );
        assert!(u.get(ENTERPRISE_USER_URN).is_none());
        assert_eq!(u["schemas"], json!([USER_URN]));
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "add", "path": "manager.displayName", "value": "x"}])
            ),
            ScimType::Mutability
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "add", "path": "manager", "value": 5}])
            ),
            ScimType::InvalidValue
        );
    }

    #[test]
    fn pathless_values_with_plain_dotted_and_urn_keys() {
        let u = patch_user(
            user(),
            json!([{"op": "replace", "value": {"active": false}}]),
        );
        assert_eq!(u["active"], false);
        let u = patch_user(
            user(),
            json!([{"op": "replace", "value": {
                "displayName": "Ada",
                "name.givenName": "Ada",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "CC1", "manager": {"value": "m"}},
                "urn:ietf:params:scim:schemas:core:2.0:User:nickName": "ada",
                "active": "False",
                "id": "evil", "meta": {"created": "2000-01-01T00:00:00Z"}, "groups": [{"value": "g"}],
                "schemas": ["urn:other"], "x-unknown": {"deep": [1]}, "name.nosuch": 1, "password": "pw",
            }}]),
        );
        assert_eq!(u["displayName"], "Ada");
        assert_eq!(u["name"], json!({"givenName": "Ada"}));
        assert_eq!(u["nickName"], "ada");
        assert_eq!(u["active"], false);
        assert_eq!(
            u[ENTERPRISE_USER_URN],
            json!({"employeeNumber": "42", "costCenter": "CC1", "manager": {"value": "m"}})
        );
        assert_eq!(u["id"], "u1");
        assert_eq!(u["meta"]["created"], "2024-01-01T00:00:00Z");
        assert!(
            u.get("groups").is_none()
                && u.get("x-unknown").is_none()
                && u.get("password").is_none()
        );
        assert_eq!(u["schemas"], json!([USER_URN, ENTERPRISE_USER_URN]));

        let (g, out) = run(
            &GROUP_RESOURCE,
            group(),
            json!([{"op": "replace", "value": {"id": "g1", "displayName": "New"}}]),
            true,
        )
        .unwrap();
        assert_eq!(
            g,
            json!({"schemas": [GROUP_URN], "id": "g1", "displayName": "New"})
        );
        assert!(out.member_changes.is_empty());
        assert_eq!(
            user_err(user(), json!([{"op": "add", "value": {"active": "nope"}}])),
            ScimType::InvalidValue
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "add", "value": {ENTERPRISE_USER_URN: "x"}}])
            ),
            ScimType::InvalidValue
        );
    }

    #[test]
    fn explicit_paths_to_read_only_or_unknown_attributes_fail() {
        for path in ["id", "meta.created", "meta", "groups", "schemas", "ID"] {
            assert_eq!(
                user_err(
                    user(),
                    json!([{"op": "replace", "path": path, "value": "x"}])
                ),
                ScimType::Mutability,
                "{path}"
            );
            assert_eq!(
                user_err(user(), json!([{"op": "remove", "path": path}])),
                ScimType::Mutability,
                "{path}"
            );
        }
        for path in [
            "nosuch",
            "name.nosuch",
            "displayName.x",
            "urn:example:x:foo",
            "title[value eq \"x\"]",
            "name[givenName eq \"y\"]",
        ] {
            assert_eq!(
                user_err(user(), json!([{"op": "add", "path": path, "value": "x"}])),
                ScimType::InvalidPath,
                "{path}"
            );
        }
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "add", "path": "emails[type eq \"work\"].nosuch", "value": "x"}])
            ),
            ScimType::InvalidPath
        );
    }

    #[test]
    fn replace_with_path() {
        let mut u0 = user();
        u0["emails"] = json!([
            {"value": "a@x.org", "type": "work", "primary": true},
            {"value": "b@x.org", "type": "home"},
        ]);
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "displayName", "value": "Ada"}]),
        );
        assert_eq!(u["displayName"], "Ada");
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails", "value": [{"value": "c@x.org"}]}]),
        );
        assert_eq!(u["emails"], json!([{"value": "c@x.org"}]));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "w@x.org"}]),
        );
        assert_eq!(
            u["emails"][0],
            json!({"value": "w@x.org", "type": "work", "primary": true})
        );
        assert_eq!(u["emails"][1], json!({"value": "b@x.org", "type": "home"}));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "h@x.org"}}]),
        );
        assert_eq!(u["emails"][1], json!({"type": "home", "value": "h@x.org"}));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "true"}]),
        );
        assert_eq!(u["emails"][0]["primary"], false, "only one primary");
        assert_eq!(u["emails"][1]["primary"], true);
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": "A"}}]),
        );
        assert_eq!(
            u["name"],
            json!({"givenName": "A"}),
            "replace on an absent attribute adds"
        );
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": "title", "value": null}]),
        );
        assert!(u.get("title").is_none());
        assert_eq!(
            user_err(
                u0.clone(),
                json!([{"op": "replace", "path": "emails[type co \"other\"]", "value": {"value": "z"}}])
            ),
            ScimType::NoTarget
        );
        let u = patch_user(
            u0.clone(),
            json!([{"op": "add", "path": "emails[type eq \"home\" or type eq \"x\"].value", "value": "z"}]),
        );
        assert_eq!(u["emails"][1]["value"], "z");
        assert_eq!(
            user_err(
                u0,
                json!([{"op": "add", "path": "emails[type eq \"x\" or type eq \"y\"].value", "value": "z"}])
            ),
            ScimType::NoTarget
        );
    }

    #[test]
    fn value_path_on_absent_array_creates_element() {
        let u = patch_user(
            user(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}]),
        );
        assert_eq!(u["emails"], json!([{"type": "work", "value": "a@b.c"}]));
        let u = patch_user(
            u,
            json!([
                {"op": "Add", "path": "emails[type eq \"home\" and primary eq true].value", "value": "h@b.c"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"]", "value": {"value": "+44"}},
                {"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Paris"},
            ]),
        );
        assert_eq!(
            u["emails"][1],
            json!({"type": "home", "primary": true, "value": "h@b.c"})
        );
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "mobile", "value": "+44"}])
        );
        assert_eq!(
            u["addresses"],
            json!([{"type": "work", "locality": "Paris"}])
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "replace", "path": "emails[type ne \"work\"].value", "value": "x"}])
            ),
            ScimType::NoTarget
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": 7}])
            ),
            ScimType::InvalidValue
        );
    }

    #[test]
    fn remove_semantics() {
        let mut u0 = user();
        u0["title"] = json!("T");
        u0["name"] = json!({"givenName": "A", "familyName": "L"});
        u0["emails"] = json!([
            {"value": "a@x.org", "type": "work"},
            {"value": "b@x.org", "type": "home"},
            {"value": "c@x.org", "type": "work"},
        ]);
        let u = patch_user(
            u0.clone(),
            json!([{"op": "remove", "path": "title"}, {"op": "remove", "path": "name.givenName"}]),
        );
        assert!(u.get("title").is_none());
        assert_eq!(u["name"], json!({"familyName": "L"}));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}]),
        );
        assert!(u.get("name").is_none());
        let u = patch_user(u0.clone(), json!([{"op": "remove", "path": "emails"}]));
        assert!(u.get("emails").is_none());
        let u = patch_user(
            u0.clone(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
        );
        assert_eq!(u["emails"], json!([{"value": "b@x.org", "type": "home"}]));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"].value"}]),
        );
        assert_eq!(
            u["emails"],
            json!([{"type": "work"}, {"value": "b@x.org", "type": "home"}, {"type": "work"}])
        );
        let u = patch_user(
            u0.clone(),
            json!([{"op": "Remove", "path": "emails", "value": [{"value": "A@x.org"}, {"value": "zzz"}]}]),
        );
        assert_eq!(
            u["emails"].as_array().unwrap().len(),
            2,
            "only the listed value is removed"
        );
        // Absent targets: no-op success.
        let u = patch_user(
            user(),
            json!([
                {"op": "remove", "path": "nickName"},
                {"op": "remove", "path": "emails[type eq \"work\"]"},
                {"op": "remove", "path": "name.givenName"},
                {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"},
                {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
                {"op": "remove", "path": "password"},
            ]),
        );
        assert_eq!(
            u,
            json!({"schemas": [USER_URN], "id": "u1", "userName": "ada@example.com", "active": true,
            "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"}})
        );
        // Required attributes cannot be removed or blanked: 400 invalidValue.
        assert_eq!(
            user_err(user(), json!([{"op": "remove", "path": "userName"}])),
            ScimType::InvalidValue
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "replace", "path": "userName", "value": " "}])
            ),
            ScimType::InvalidValue
        );
        assert_eq!(
            user_err(
                user(),
                json!([{"op": "replace", "path": "userName", "value": null}])
            ),
            ScimType::InvalidValue
        );
        let e = run(
            &GROUP_RESOURCE,
            group(),
            json!([{"op": "remove", "path": "displayName"}]),
            true,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn string_booleans_and_type_checks() {
        let u = patch_user(
            user(),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        );
        assert_eq!(u["active"], false);
        let u = patch_user(
            u,
            json!([{"op": "Replace", "path": "active", "value": "TRUE"}]),
        );
        assert_eq!(u["active"], true);
        for (path, value) in [
            ("active", json!("maybe")),
            ("active", json!(1)),
            ("displayName", json!(5)),
            ("displayName", json!({"a": 1})),
            ("emails", json!("x@y")),
            ("emails", json!([{"value": 1}])),
            ("emails", json!([{"primary": "yes"}])),
            ("name", json!({"givenName": ["x"]})),
            ("name", json!(true)),
            (
                "name.givenName",
                json!({"deep": {"er": [1, 2, {"x": null}]}}),
            ),
        ] {
            assert_eq!(
                user_err(user(), json!([{"op": "add", "path": path, "value": value}])),
                ScimType::InvalidValue,
                "{path}"
            );
        }
    }

    #[test]
    fn password_is_accepted_and_not_stored() {
        let u = patch_user(
            user(),
            json!([{"op": "replace", "path": "password", "value": "hunter2"}, {"op": "replace", "value": {"password": "x"}}]),
        );
        assert!(u.get("password").is_none());
    }

    #[test]
    fn member_changes_when_external() {
        let (g, out) = run(
            &GROUP_RESOURCE,
            group(),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2", "display": "B"}, {"value": "u1"}]},
                {"op": "remove", "path": "members[value eq \"u3\"]"},
                {"op": "Remove", "path": "members", "value": [{"value": "u4"}, {"value": "u5"}]},
                {"op": "remove", "path": "members"},
                {"op": "replace", "path": "members", "value": [{"value": "u6"}]},
                {"op": "replace", "value": {"displayName": "Ops", "members": [{"value": "u7", "display": "G"}]}},
                {"op": "add", "value": {"members": [{"value": "u8"}]}},
                {"op": "add", "path": "members", "value": []},
                {"op": "remove", "path": "members", "value": []},
            ]),
            true,
        )
        .unwrap();
        assert_eq!(
            out.member_changes,
            vec![
                MemberChange::Add(vec!["u1".into(), "u2".into()]),
                MemberChange::RemoveMatching(parse_filter("value eq \"u3\"").unwrap()),
                MemberChange::Remove(vec!["u4".into(), "u5".into()]),
                MemberChange::RemoveAll,
                MemberChange::ReplaceAll(vec!["u6".into()]),
                MemberChange::ReplaceAll(vec!["u7".into()]),
                MemberChange::Add(vec!["u8".into()]),
            ]
        );
        assert_eq!(
            g,
            json!({"schemas": [GROUP_URN], "id": "g1", "displayName": "Ops"})
        );

        for bad in [
            json!([{"display": "x"}]),
            json!([{"value": 5}]),
            json!(["u1"]),
            json!(3),
            json!([{"value": ""}]),
        ] {
            let e = run(
                &GROUP_RESOURCE,
                group(),
                json!([{"op": "add", "path": "members", "value": bad}]),
                true,
            )
            .unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{bad}");
        }
        let e = run(
            &GROUP_RESOURCE,
            group(),
            json!([{"op": "replace", "path": "members[value eq \"a\"].value", "value": "b"}]),
            true,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::Mutability));
    }

    #[test]
    fn members_in_json_when_not_external() {
        let mut g0 = group();
        g0["members"] = json!([{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]);
        let (g, out) = run(
            &GROUP_RESOURCE,
            g0.clone(),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1", "display": "A"}, {"value": "u4"}]},
                {"op": "Remove", "path": "members", "value": [{"value": "u2"}, {"value": "u3"}]},
                {"op": "remove", "path": "members[value eq \"u1\"]"},
            ]),
            false,
        )
        .unwrap();
        assert!(out.member_changes.is_empty());
        assert_eq!(g["members"], json!([{"value": "u4"}]));
        let (g, _) = run(
            &GROUP_RESOURCE,
            g0,
            json!([{"op": "remove", "path": "members"}]),
            false,
        )
        .unwrap();
        assert!(g.get("members").is_none());
    }

    #[test]
    fn add_primary_demotes_existing_primary() {
        let mut u0 = user();
        u0["emails"] = json!([{"value": "a@x.org", "primary": true}]);
        let u = patch_user(
            u0,
            json!([{"op": "add", "path": "emails", "value": [{"value": "b@x.org", "primary": "True"}]}]),
        );
        assert_eq!(
            u["emails"],
            json!([{"value": "a@x.org", "primary": false}, {"value": "b@x.org", "primary": true}])
        );
    }

    #[test]
    fn odd_shapes_never_panic() {
        let values = [
            json!(null),
            json!(0),
            json!(-1.5),
            json!("s"),
            json!(true),
            json!([]),
            json!([null]),
            json!([1, "a", null, {}]),
            json!({}),
            json!({"value": null}),
            json!({"value": {"value": {"value": [[[[{"a": {"b": {"c": {}}}}]]]]}}}),
            json!([{"value": [{"value": [{}]}]}]),
            json!({"members": 5, "emails": {"x": 1}, "name": [[1]], ENTERPRISE_USER_URN: [1]}),
        ];
        let paths = [
            json!(null),
            json!("members"),
            json!("members[value eq \"x\"]"),
            json!("emails"),
            json!("emails[type eq \"work\"].value"),
            json!("emails.value"),
            json!("name"),
            json!("name.givenName"),
            json!("active"),
            json!("manager"),
            json!(ENTERPRISE_USER_URN),
            json!(USER_URN),
            json!("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName"),
            json!("x509Certificates[value pr]"),
        ];
        let mut deep = json!("leaf");
        for _ in 0..64 {
            deep = json!({"value": [deep]});
        }
        let mut count = 0;
        for rt in [&USER_RESOURCE, &GROUP_RESOURCE] {
            let base = if rt.name == "User" { user() } else { group() };
            for op in ["add", "replace", "remove"] {
                for path in &paths {
                    for value in values.iter().chain(std::iter::once(&deep)) {
                        for external in [false, true] {
                            let mut o = json!({"op": op, "value": value});
                            if !path.is_null() {
                                o["path"] = path.clone();
                            }
                            match run(rt, base.clone(), json!([o]), external) {
                                Ok((res, _)) => assert!(res["schemas"].is_array()),
                                Err(e) => assert_eq!(e.status.as_u16(), 400, "{o} -> {e:?}"),
                            }
                            count += 1;
                        }
                    }
                }
            }
        }
        assert!(count > 1000);
        // A corrupt stored resource is an internal error, never a panic.
        let ops = parse_patch_request(&body(json!([{"op": "add", "path": "title", "value": "x"}])))
            .unwrap();
        assert_eq!(
            apply_patch(&USER_RESOURCE, &mut json!([1]), &ops, false)
                .unwrap_err()
                .status
                .as_u16(),
            500
        );
        let mut odd = json!({"schemas": [USER_URN], "userName": "a", "emails": "notarray", "name": 3, ENTERPRISE_USER_URN: 7});
        let ops = parse_patch_request(&body(json!([
            {"op": "add", "path": "emails", "value": [{"value": "a@b"}]},
            {"op": "add", "path": "name.givenName", "value": "x"},
            {"op": "add", "path": "manager", "value": "m"},
        ])))
        .unwrap();
        apply_patch(&USER_RESOURCE, &mut odd, &ops, false).unwrap();
        assert_eq!(odd["emails"], json!([{"value": "a@b"}]));
        assert_eq!(odd[ENTERPRISE_USER_URN]["manager"]["value"], "m");
    }

    #[test]
    fn pathless_replace_of_extension_and_path_naming_a_urn() {
        let mut u0 = user();
        u0[ENTERPRISE_USER_URN] = json!({"department": "D", "division": "V"});
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "path": ENTERPRISE_USER_URN, "value": {"department": "E", "Division": null}}]),
        );
        assert_eq!(u[ENTERPRISE_USER_URN], json!({"department": "E"}));
        let u = patch_user(
            u0.clone(),
            json!([{"op": "replace", "value": {ENTERPRISE_USER_URN: null}}]),
        );
        assert!(u.get(ENTERPRISE_USER_URN).is_none());
        assert_eq!(u["schemas"], json!([USER_URN]));
        let u = patch_user(
            u0,
            json!([{"op": "add", "value": {USER_URN: {"title": "T", "name.familyName": "F"}}}]),
        );
        assert_eq!(u["title"], "T");
        assert_eq!(u["name"]["familyName"], "F");
        assert_eq!(
            user_err(user(), json!([{"op": "remove", "path": USER_URN}])),
            ScimType::InvalidPath
        );
    }

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

    #[test]
    fn large_member_lists_are_deduplicated_in_order() {
        let n = 60_000;
        let members: Vec<Value> = (0..n)
            .flat_map(|i| {
                [
                    json!({"value": format!("u{i}")}),
                    json!({"value": format!("u{i}")}),
                ]
            })
            .collect();
        let (_, out) = run(
            &GROUP_RESOURCE,
            group(),
            json!([{"op": "add", "path": "members", "value": members.clone()}]),
            true,
        )
        .unwrap();
        let expected: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
        assert_eq!(
            out.member_changes,
            vec![MemberChange::Add(expected.clone())]
        );
        // Inline (not external): the same dedupe through the JSON member list, then removal.
        let (g, _) = run(
            &GROUP_RESOURCE,
            group(),
            json!([
                {"op": "add", "path": "members", "value": members.clone()},
                {"op": "add", "path": "members", "value": members},
                {"op": "remove", "path": "members", "value": [{"value": "u0"}, {"value": "u59999"}]},
            ]),
            false,
        )
        .unwrap();
        let ids: Vec<&str> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), n - 2);
        assert_eq!(ids.first(), Some(&"u1"));
        assert_eq!(ids.last(), Some(&"u59998"));
    }
}
