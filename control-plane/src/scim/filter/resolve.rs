//! Attribute resolution for filters: where a filter's attribute path points in a resource type's
//! schema (core, extension, or a sub-attribute of one element), and how to read its values out of
//! canonical resource JSON.

use serde_json::{Map, Value};

use super::ast::AttrPath;
use super::lexer::snippet;
use crate::scim::schema::{AttrDef, AttrType, Resolved, ResourceType, SchemaDef};

/// Where a filter's attribute path points.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    /// The top-level attribute (or, inside a value filter, the sub-attribute of the element).
    pub(super) top: &'static AttrDef,
    pub(super) sub: Option<&'static AttrDef>,
    /// The extension whose URN key holds the attribute, if any.
    ext: Option<&'static SchemaDef>,
}

/// The context paths are resolved in: a whole resource, or one element of a complex attribute.
#[derive(Clone, Copy)]
pub(super) enum Ctx<'r> {
    Resource(&'r ResourceType),
    Element(&'r AttrDef),
}

pub(super) fn resolve_target(rt: &ResourceType, path: &AttrPath) -> Result<Target, String> {
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

pub(super) fn resolve_ctx(ctx: Ctx<'_>, path: &AttrPath) -> Result<Target, String> {
    match ctx {
        Ctx::Resource(rt) => resolve_target(rt, path),
        Ctx::Element(def) => resolve_in_element(def, path),
    }
}

/// Case-insensitive key lookup (exact spelling first: canonical resources use the schema's).
pub(super) fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
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
    pub(super) fn top_values<'a>(&self, json: &'a Value) -> Vec<&'a Value> {
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
    pub(super) fn compare_def(&self) -> Option<&'static AttrDef> {
        match self.sub {
            Some(sub) => Some(sub),
            None if self.top.ty == AttrType::Complex => self.top.sub("value"),
            None => Some(self.top),
        }
    }

    /// The values `pr` looks at.
    pub(super) fn present_values<'a>(&self, json: &'a Value) -> Vec<&'a Value> {
        match self.sub {
            Some(sub) => self.sub_values(json, sub),
            None => self.top_values(json),
        }
    }

    /// The values a comparison looks at, with the definition they are compared under.
    pub(super) fn compare_values<'a>(
        &self,
        json: &'a Value,
    ) -> Option<(&'static AttrDef, Vec<&'a Value>)> {
        let def = self.compare_def()?;
        if self.sub.is_some() || self.top.ty == AttrType::Complex {
            Some((def, self.sub_values(json, def)))
        } else {
            Some((def, self.top_values(json)))
        }
    }
}
