//! Discovery endpoints: `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4),
//! and the answers for the optional endpoints Palisade does not offer (`/Me`, `/Bulk`, root search).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::error::ScimError;
use super::schema::{
    all_schemas, resource_type_json, schema_json, GROUP_RESOURCE, LIST_RESPONSE_URN, USER_RESOURCE,
};
use super::{scim_response, Caller, ScimState};

fn list_of(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

pub async fn service_provider_config(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let s = &state.settings;
    scim_response(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/palisade-dev/palisade#scim",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": s.max_results},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with a Palisade SCIM token (palisade-control-plane scim-token create)",
                "primary": true,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{}/ServiceProviderConfig", caller.base_url),
            },
        }),
    )
}

pub async fn resource_types(Extension(caller): Extension<Caller>) -> Response {
    let list = [&USER_RESOURCE, &GROUP_RESOURCE]
        .iter()
        .map(|rt| resource_type_json(rt, &caller.base_url))
        .collect();
    scim_response(StatusCode::OK, &list_of(list))
}

pub async fn resource_type(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    [&USER_RESOURCE, &GROUP_RESOURCE]
        .iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(&name))
        .map(|rt| scim_response(StatusCode::OK, &resource_type_json(rt, &caller.base_url)))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name:?}")))
}

pub async fn schemas(Extension(caller): Extension<Caller>) -> Response {
    let list = all_schemas()
        .iter()
        .map(|s| schema_json(s, &caller.base_url))
        .collect();
    scim_response(StatusCode::OK, &list_of(list))
}

pub async fn schema(
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    all_schemas()
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .map(|s| scim_response(StatusCode::OK, &schema_json(s, &caller.base_url)))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id:?}")))
}

pub async fn me() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "/Me is not supported: SCIM tokens belong to an identity provider, not a user",
    )
}

pub async fn bulk() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "bulk operations are not supported (see ServiceProviderConfig)",
    )
}

pub async fn root_search() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "search across resource types is not supported; use /Users/.search or /Groups/.search",
    )
}
