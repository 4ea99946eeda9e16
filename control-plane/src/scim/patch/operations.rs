//! The PATCH request model: the PatchOp body (`schemas`, `Operations`) parsed into typed
//! operations, with the case-insensitive keys and ops IdPs send and a 400 for every malformed part.

use serde_json::{Map, Value};

use crate::scim::error::ScimError;
use crate::scim::filter::{parse_patch_path, PatchPath};
use crate::scim::schema::PATCH_OP_URN;

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

#[cfg(test)]
mod tests {
    use super::super::test_util::body;
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::USER_URN;
    use serde_json::json;

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
}
