//! Applying parsed PATCH operations to a canonical User or Group: dispatch by path or by a
//! path-less value's keys, mutability checks, single-valued and complex attributes, and the final
//! clean-up (empty values dropped, required attributes checked, `schemas` recomputed).

use serde_json::{Map, Value};

use super::context::{Ctx, PatchOutcome, Select};
use super::multi_valued::{apply_elements, apply_whole_multi};
use super::operations::{PatchOpKind, PatchOperation};
use super::path::{
    container_attr, container_mut, object_entry, resolve_name, Container, Resolution, Target,
};
use super::values::{complex_delta, complex_object, is_members, merge_delta, unwrap_single};
use crate::scim::error::ScimError;
use crate::scim::filter::PatchPath;
use crate::scim::resource::{canonicalize, check_value};
use crate::scim::schema::{AttrDef, AttrType, Mutability, ResourceType};

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
    use super::super::parse_patch_request;
    use super::super::test_util::{body, group, patch_user, run, user, user_err};
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{
        ENTERPRISE_USER_URN, GROUP_RESOURCE, GROUP_URN, USER_RESOURCE, USER_URN,
    };
    use serde_json::json;

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
}
