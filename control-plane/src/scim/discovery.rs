//! Discovery endpoints: `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4),
//! and the answers for the optional endpoints Palisade does not offer (`/Me`, `/Bulk`, root search).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::error::ScimError;
use super::list::{effective_count, parse_filter};
use super::render::project;
use super::request::{ListParams, ScimJson};
use super::schema::{
    all_schemas, resource_type_json, schema_json, GROUP_RESOURCE, LIST_RESPONSE_URN, USER_RESOURCE,
};
use super::{groups, scim_response, users, Caller, ScimState};

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

/// `POST /.search` (RFC 7644 §3.4.3): Users then Groups that match, paged as one list. A filter
/// naming an attribute one resource type lacks matches nothing of that type; `sortBy` orders
/// within each type.
pub async fn root_search(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    let params = ListParams::from_search_body(&body)?;
    let count = effective_count(&params, state.settings.max_results);
    let user_filter_ok = parse_filter(&USER_RESOURCE, &params);
    let group_filter_ok = parse_filter(&GROUP_RESOURCE, &params);
    if let (Err(e), Err(_)) = (&user_filter_ok, &group_filter_ok) {
        return Err(e.clone());
    }
    // Totals first (count=0 pages cost one COUNT or one filter pass).
    let totals = ListParams {
        count: Some(0),
        start_index: 1,
        ..params.clone()
    };
    let user_total = match user_filter_ok {
        Ok(_) => users::user_page(&state, &caller, &totals).await?.1,
        Err(_) => 0,
    };
    let group_total = match group_filter_ok {
        Ok(_) => groups::group_page(&state, &caller, &totals).await?.1,
        Err(_) => 0,
    };
    let start = usize::try_from(params.start_index).unwrap_or(1).max(1);
    let want = usize::try_from(count).unwrap_or(0);
    let mut resources: Vec<Value> = Vec::new();
    if want > 0 && start <= user_total {
        let p = ListParams {
            count: Some(count),
            ..params.clone()
        };
        for r in users::user_page(&state, &caller, &p).await?.0 {
            resources.push(project(
                &USER_RESOURCE,
                r,
                &params.attributes,
                &params.excluded_attributes,
            ));
        }
    }
    let remaining = want.saturating_sub(resources.len());
    if remaining > 0 && group_total > 0 {
        let group_start = start.saturating_sub(user_total).max(1);
        if group_start <= group_total {
            let p = ListParams {
                count: Some(i64::try_from(remaining).unwrap_or(0)),
                start_index: i64::try_from(group_start).unwrap_or(1),
                ..params.clone()
            };
            for r in groups::group_page(&state, &caller, &p).await?.0 {
                resources.push(project(
                    &GROUP_RESOURCE,
                    r,
                    &params.attributes,
                    &params.excluded_attributes,
                ));
            }
        }
    }
    Ok(scim_response(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE_URN],
            "totalResults": user_total + group_total,
            "startIndex": params.start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    ))
}
