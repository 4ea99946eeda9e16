//! `/Users` handlers: create, read, list and search, replace, patch, delete.

use crate::domain::AuditAction;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::error::ScimError;
use super::list::{
    effective_count, filter_sort_page, list_response, mentions, parse_filter, pushdown,
};
use super::patch::{apply_patch, parse_patch_request};
use super::render::{etag_matches, project, user_json, wants_attribute};
use super::request::{projection_from_query, ListParams, ScimJson};
use super::resource::canonical_resource;
use super::retry_pause;
use super::schema::USER_RESOURCE;
use super::{
    if_match, if_none_match, off_runtime, query_pairs, scim_response, Caller, ScimState,
    WRITE_RETRIES,
};
use crate::domain::{parse_role, GroupRef, User, UserWrite};
use crate::store::{StoreError, UserSelection};

/// Attributes held in indexed columns rather than in the attribute document.
const COLUMN_ATTRIBUTES: [&str; 3] = ["userName", "externalId", "active"];

/// Splits a canonical user document into indexed columns and the remaining attribute document.
/// Public for the fuzz targets only.
#[doc(hidden)]
pub fn user_write(mut doc: Value) -> Result<UserWrite, ScimError> {
    let user_name = doc
        .get("userName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::invalid_value("'userName' is required"))?
        .to_string();
    if user_name.len() > 512 {
        return Err(ScimError::invalid_value(
            "'userName' is longer than 512 bytes",
        ));
    }
    let external_id = doc
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
    let primary_role = primary_role(&doc)?;
    let primary_email = primary_email(&doc);
    if let Value::Object(m) = &mut doc {
        for k in COLUMN_ATTRIBUTES {
            m.remove(k);
        }
    }
    Ok(UserWrite {
        user_name,
        external_id,
        active,
        primary_role,
        primary_email,
        attributes: doc,
    })
}

/// `emails[primary eq true].value`, or the first email's value: what a sign-in's email claim
/// is matched against.
pub fn primary_email(doc: &Value) -> Option<String> {
    let Some(Value::Array(emails)) = doc.get("emails") else {
        return None;
    };
    emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .map(str::to_string)
}

/// The Palisade role named by `roles[primary eq true].value` (or by the only role given).
fn primary_role(doc: &Value) -> Result<Option<String>, ScimError> {
    let Some(Value::Array(roles)) = doc.get("roles") else {
        return Ok(None);
    };
    let chosen = roles
        .iter()
        .find(|r| r.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| {
            if roles.len() == 1 {
                roles.first()
            } else {
                None
            }
        });
    let Some(value) = chosen.and_then(|r| r.get("value")).and_then(Value::as_str) else {
        return Ok(None);
    };
    parse_role(value).map(|r| Some(r.to_string())).ok_or_else(|| {
        ScimError::invalid_value(format!(
            "primary role {value:?} is not a Palisade role; use one of admin, security, developer, read-only"
        ))
    })
}

/// The attribute document with the column attributes put back in.
fn with_columns(
    attributes: &Value,
    user_name: &str,
    active: bool,
    external_id: Option<&String>,
) -> Value {
    let mut doc = attributes.clone();
    if let Value::Object(m) = &mut doc {
        m.insert("userName".into(), json!(user_name));
        m.insert("active".into(), json!(active));
        if let Some(x) = external_id {
            m.insert("externalId".into(), json!(x));
        }
    }
    doc
}

/// The document a PATCH operates on: the stored attributes with the column attributes put back.
fn patchable(user: &User) -> Value {
    with_columns(
        &user.attributes,
        &user.user_name,
        user.active,
        user.external_id.as_ref(),
    )
}

/// A write's whole document, to compare with [`patchable`] for the audit trail.
fn column_doc(w: &UserWrite) -> Value {
    with_columns(
        &w.attributes,
        &w.user_name,
        w.active,
        w.external_id.as_ref(),
    )
}

/// Names of the attributes that differ between two documents, for the audit trail.
pub(crate) fn changed_attributes(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<String> = o
        .keys()
        .chain(n.keys())
        .filter(|k| o.get(*k) != n.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn audit_action(old_active: bool, new_active: bool) -> AuditAction {
    match (old_active, new_active) {
        (true, false) => AuditAction::UserDeactivate,
        (false, true) => AuditAction::UserReactivate,
        _ => AuditAction::UserUpdate,
    }
}

async fn groups_for(
    state: &ScimState,
    ids: &[&str],
) -> Result<HashMap<String, Vec<GroupRef>>, ScimError> {
    Ok(state.store.groups_of_users(ids).await?)
}

async fn render_one(state: &ScimState, caller: &Caller, user: &User) -> Result<Value, ScimError> {
    let groups = groups_for(state, &[&user.id]).await?;
    Ok(user_json(
        &caller.base_url,
        user,
        Some(groups.get(&user.id).map(Vec::as_slice).unwrap_or(&[])),
    ))
}

/// Adds each user's `groups` to rendered users that lack it.
async fn attach_groups(state: &ScimState, page: &mut [Value]) -> Result<(), ScimError> {
    let ids: Vec<String> = page
        .iter()
        .filter_map(|u| u.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let groups = groups_for(state, &refs).await?;
    for u in page.iter_mut() {
        let Some(id) = u.get("id").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let list: Vec<Value> = groups
            .get(&id)
            .map(|gs| {
                gs.iter()
                    .map(|g| json!({"value": g.group_id, "$ref": u["meta"]["location"].as_str().map(|l| l.replace(&format!("/Users/{id}"), &format!("/Groups/{}", g.group_id))), "display": g.display_name, "type": "direct"}))
                    .collect()
            })
            .unwrap_or_default();
        if let Value::Object(m) = u {
            m.insert("groups".into(), Value::Array(list));
        }
    }
    Ok(())
}

fn single(
    status: StatusCode,
    body: Value,
    query: Option<&str>,
    location: bool,
) -> Result<Response, ScimError> {
    let (attrs, excluded) = projection_from_query(&query_pairs(query)?);
    let loc = body
        .pointer("/meta/location")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut response = scim_response(status, &project(&USER_RESOURCE, body, &attrs, &excluded));
    if location {
        if let Some(v) = loc.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(response)
}

pub async fn list(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Response, ScimError> {
    let params = ListParams::from_query(&query_pairs(q.as_deref())?)?;
    list_users(&state, &caller, params).await
}

pub async fn search(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    let params = ListParams::from_search_body(&body)?;
    list_users(&state, &caller, params).await
}

async fn list_users(
    state: &ScimState,
    caller: &Caller,
    params: ListParams,
) -> Result<Response, ScimError> {
    let (page, total) = user_page(state, caller, &params).await?;
    Ok(scim_response(
        StatusCode::OK,
        &list_response(&USER_RESOURCE, page, total, &params),
    ))
}

/// One page of users matching the parameters (not yet projected), and the total.
pub(crate) async fn user_page(
    state: &ScimState,
    caller: &Caller,
    params: &ListParams,
) -> Result<(Vec<Value>, usize), ScimError> {
    let params = params.clone();
    let rt = &USER_RESOURCE;
    let f = parse_filter(rt, &params)?;
    let count = effective_count(&params, state.settings.max_results);
    let want_groups = wants_attribute(
        rt,
        "groups",
        &params.attributes,
        &params.excluded_attributes,
    );
    let (mut page, total) = if f.is_none() && params.sort_by.is_none() {
        let (users, total) = state
            .store
            .page_users(&caller.org_id, params.start_index - 1, count)
            .await?;
        let page: Vec<Value> = users
            .iter()
            .map(|u| user_json(&caller.base_url, u, None))
            .collect();
        (page, usize::try_from(total).unwrap_or(0))
    } else {
        let selection = match f.as_ref() {
            Some(f) => {
                if let Some(v) = pushdown(f, "userName") {
                    UserSelection::UserName(v.to_string())
                } else if let Some(v) = pushdown(f, "externalId") {
                    UserSelection::ExternalId(v.to_string())
                } else if let Some(v) = pushdown(f, "id") {
                    UserSelection::Id(v.to_string())
                } else {
                    UserSelection::All
                }
            }
            None => UserSelection::All,
        };
        let rendered: Vec<Value> = if selection == UserSelection::All {
            let users = state.store.select_users(&caller.org_id, &selection).await?;
            let mut rendered: Vec<Value> = users
                .iter()
                .map(|u| user_json(&caller.base_url, u, None))
                .collect();
            if mentions(f.as_ref(), params.sort_by.as_deref(), "groups") {
                attach_groups(state, &mut rendered).await?;
            }
            rendered
        } else {
            let found = state
                .store
                .select_users_with_groups(&caller.org_id, &selection)
                .await?;
            found
                .iter()
                .map(|(u, g)| user_json(&caller.base_url, u, Some(g)))
                .collect()
        };
        // Filtering and sorting every user in memory is CPU work: off the async workers.
        let sort_params = params.clone();
        off_runtime(move || filter_sort_page(rt, rendered, f.as_ref(), &sort_params, count))
            .await??
    };
    if want_groups && page.first().is_some_and(|u| u.get("groups").is_none()) {
        attach_groups(state, &mut page).await?;
    }
    Ok((page, total))
}

pub async fn create(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    let write =
        off_runtime(move || user_write(canonical_resource(&USER_RESOURCE, body)?)).await??;
    let user = state
        .store
        .create_user(&caller.org_id, &caller.actor, write)
        .await?;
    single(
        StatusCode::CREATED,
        user_json(&caller.base_url, &user, Some(&[])),
        q.as_deref(),
        true,
    )
}

async fn load(state: &ScimState, caller: &Caller, id: &str) -> Result<User, ScimError> {
    state
        .store
        .get_user(&caller.org_id, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no user with id {id:?}")))
}

pub async fn fetch(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let user = load(&state, &caller, &id).await?;
    if if_none_match(&headers).is_some_and(|h| etag_matches(&h, user.version)) {
        return Ok(not_modified(user.version));
    }
    single(
        StatusCode::OK,
        render_one(&state, &caller, &user).await?,
        q.as_deref(),
        false,
    )
}

pub(crate) fn not_modified(version: i64) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(&super::render::etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

pub(crate) fn check_if_match(headers: &HeaderMap, version: i64) -> Result<Option<i64>, ScimError> {
    match if_match(headers) {
        None => Ok(None),
        Some(h) if etag_matches(&h, version) => Ok(Some(version)),
        Some(_) => Err(ScimError::precondition_failed(
            "If-Match does not match the resource's current version",
        )),
    }
}

pub async fn replace(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    let write =
        off_runtime(move || user_write(canonical_resource(&USER_RESOURCE, body)?)).await??;
    for attempt in 0..WRITE_RETRIES {
        let current = load(&state, &caller, &id).await?;
        let pinned = check_if_match(&headers, current.version)?;
        let detail = json!({
            "changed": changed_attributes(&patchable(&current), &column_doc(&write)),
            "active": write.active,
            "via": "PUT",
        });
        let action = audit_action(current.active, write.active);
        match state
            .store
            .replace_user(
                &caller.org_id,
                &id,
                &caller.actor,
                current.version,
                write.clone(),
                action,
                detail,
            )
            .await
        {
            Ok(user) => {
                return single(
                    StatusCode::OK,
                    render_one(&state, &caller, &user).await?,
                    q.as_deref(),
                    false,
                )
            }
            Err(StoreError::VersionConflict) if pinned.is_none() => retry_pause(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(contended())
}

pub(crate) fn contended() -> ScimError {
    tracing::warn!("gave up a write after repeated concurrent modifications");
    ScimError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "the resource is being modified concurrently; retry",
    )
    .with_retry_after(1)
}

pub async fn patch(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    // Parsing and applying a PATCH is CPU work proportional to its size: off the async workers.
    let ops = Arc::new(off_runtime(move || parse_patch_request(&body)).await??);
    for attempt in 0..WRITE_RETRIES {
        let current = load(&state, &caller, &id).await?;
        let pinned = check_if_match(&headers, current.version)?;
        let before = patchable(&current);
        let ops = Arc::clone(&ops);
        let (write, changed) = off_runtime(move || -> Result<_, ScimError> {
            let mut doc = before.clone();
            apply_patch(&USER_RESOURCE, &mut doc, &ops, false)?;
            let write = user_write(canonical_resource(&USER_RESOURCE, doc)?)?;
            let changed = changed_attributes(&before, &column_doc(&write));
            Ok((write, changed))
        })
        .await??;
        let detail = json!({"changed": changed, "active": write.active, "via": "PATCH"});
        let action = audit_action(current.active, write.active);
        match state
            .store
            .replace_user(
                &caller.org_id,
                &id,
                &caller.actor,
                current.version,
                write,
                action,
                detail,
            )
            .await
        {
            Ok(user) => {
                return single(
                    StatusCode::OK,
                    render_one(&state, &caller, &user).await?,
                    q.as_deref(),
                    false,
                )
            }
            Err(StoreError::VersionConflict) if pinned.is_none() => retry_pause(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(contended())
}

pub async fn delete(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    if if_match(&headers).is_some() {
        let current = load(&state, &caller, &id).await?;
        check_if_match(&headers, current.version)?;
    }
    state
        .store
        .delete_user(&caller.org_id, &id, &caller.actor)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ScimError::not_found(format!("no user with id {id:?}")),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_role_rules() {
        assert_eq!(
            primary_role(&json!({"roles": [{"value": "Admin", "primary": true}, {"value": "x"}]}))
                .unwrap(),
            Some("admin".into())
        );
        assert_eq!(
            primary_role(&json!({"roles": [{"value": "security"}]})).unwrap(),
            Some("security".into())
        );
        assert_eq!(primary_role(&json!({"roles": []})).unwrap(), None);
        assert_eq!(
            primary_role(&json!({"roles": [{"value": "a"}, {"value": "b"}]})).unwrap(),
            None
        );
        assert!(primary_role(&json!({"roles": [{"value": "owner", "primary": true}]})).is_err());
    }
}
