//! Where a PATCH path (or a path-less value's key) points: resolution of a possibly URN-prefixed,
//! possibly dotted name to an attribute of the core schema or an extension, and access to the
//! JSON object (top level or extension object) that holds it.

use serde_json::{Map, Value};

use crate::scim::schema::{AttrDef, Resolved, ResourceType, SchemaDef};

/// Where an attribute lives in the canonical resource.
#[derive(Debug, Clone, Copy)]
pub(super) enum Container {
    /// The top level (common and core attributes).
    Core,
    /// The object under an extension's URN.
    Ext(&'static SchemaDef),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub(super) container: Container,
    pub(super) def: &'static AttrDef,
}

impl Target {
    pub(super) fn label(&self) -> String {
        match self.container {
            Container::Core => self.def.name.to_string(),
            Container::Ext(s) => format!("{}:{}", s.id, self.def.name),
        }
    }
}

/// What a name (path or path-less value key) resolved to.
pub(super) enum Resolution {
    /// An attribute, with the `.sub` suffix the name carried.
    Attr(Target, Option<String>),
    /// A schema URN on its own: its value is an object of that schema's attributes.
    Object(Container),
}

/// Resolves a possibly URN-prefixed, possibly dotted name. A bare name that is not a common or
/// core attribute resolves in the extensions (Entra's `manager`).
pub(super) fn resolve_name(rt: &ResourceType, raw: &str) -> Option<Resolution> {
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
pub(super) fn container_attr(
    rt: &ResourceType,
    container: Container,
    name: &str,
) -> Option<&'static AttrDef> {
    match container {
        Container::Core => rt.core_attr(name),
        Container::Ext(schema) => schema.attr(name),
    }
}

/// The map holding a container's attributes; created (or reset, if corrupt) when `create`.
pub(super) fn container_mut(
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
pub(super) fn object_entry<'a>(
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
pub(super) fn array_entry<'a>(
    map: &'a mut Map<String, Value>,
    name: &str,
) -> Option<&'a mut Vec<Value>> {
    let slot = map
        .entry(name.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{patch_user, user, user_err};
    use crate::scim::error::ScimType;
    use crate::scim::schema::{ENTERPRISE_USER_URN, USER_URN};
    use serde_json::json;

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
}
