//! Helpers shared by the PATCH modules' unit tests: request bodies, sample resources, and running
//! a PATCH end to end (parse, then apply).

use serde_json::{json, Value};

use super::{apply_patch, parse_patch_request, PatchOutcome};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::schema::{ResourceType, GROUP_URN, PATCH_OP_URN, USER_RESOURCE, USER_URN};

pub(super) fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_URN], "Operations": ops})
}

pub(super) fn user() -> Value {
    json!({
        "schemas": [USER_URN],
        "id": "u1",
        "userName": "ada@example.com",
        "active": true,
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
    })
}

pub(super) fn group() -> Value {
    json!({"schemas": [GROUP_URN], "id": "g1", "displayName": "Eng"})
}

pub(super) fn run(
    rt: &ResourceType,
    mut res: Value,
    ops: Value,
    external: bool,
) -> Result<(Value, PatchOutcome), ScimError> {
    let ops = parse_patch_request(&body(ops))?;
    let outcome = apply_patch(rt, &mut res, &ops, external)?;
    Ok((res, outcome))
}

pub(super) fn patch_user(res: Value, ops: Value) -> Value {
    run(&USER_RESOURCE, res, ops, false).unwrap().0
}

pub(super) fn user_err(res: Value, ops: Value) -> ScimType {
    let e = run(&USER_RESOURCE, res, ops, false).unwrap_err();
    assert_eq!(e.status.as_u16(), 400, "{e:?}");
    e.scim_type.unwrap()
}
