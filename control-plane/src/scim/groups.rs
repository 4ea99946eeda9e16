//! `/Groups` handlers: create, read, list and search, replace, patch, delete. Membership
//! changes go to the store as row-level changes, never as a rewritten member list.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::error::ScimError;
use super::filter::{as_eq_on, matches_element};
use super::list::{
    effective_count, filter_sort_page, list_response, mentions, parse_filter, pushdown,
};
use super::patch::{apply_patch, parse_patch_request, MemberChange};
use super::render::{etag_matches, group_json, project, wants_attribute};
use super::request::{projection_from_query, ListParams, ScimJson};
use super::resource::canonical_resource;
use super::retry_pause;
use super::schema::GROUP_RESOURCE;
use super::users::{changed_attributes, check_if_match, contended, not_modified};
use super::{
    if_match, if_none_match, off_runtime, query_pairs, scim_response, Caller, ScimState,
    WRITE_RETRIES,
};
use crate::domain::{Group, GroupWrite, MembershipChange};
use crate::store::{GroupSelection, StoreError};

/// Splits a canonical group document into columns, member ids (if the document lists members)
/// and the remaining attribute document. Public for the fuzz targets only.
#[doc(hidden)]
pub fn group_write(mut doc: Value) -> Result<(GroupWrite, Option<Vec<String>>), ScimError> {
    let display_name = doc
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::invalid_value("'displayName' is required"))?
        .to_string();
    if display_name.len() > 512 {
        return Err(ScimError::invalid_value(
            "'displayName' is longer than 512 bytes",
        ));
    }
    let external_id = doc
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let members = match doc.get("members") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|m| {
                    m.get("value")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            ScimError::invalid_value("every member needs a string 'value'")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(ScimError::invalid_value("'members' must be an array")),
    };
    if let Value::Object(m) = &mut doc {
        for k in ["displayName", "externalId", "members"] {
            m.remove(k);
        }
    }
    Ok((
        GroupWrite {
            display_name,
            external_id,
            attributes: doc,
        },
        members,
    ))
}

/// The document a PATCH operates on (members excluded: they are handled as row changes).
fn patchable(group: &Group) -> Value {
    let mut doc = group.attributes.clone();
    if let Value::Object(m) = &mut doc {
        m.insert("displayName".into(), json!(group.display_name));
        if let Some(x) = &group.external_id {
            m.insert("externalId".into(), json!(x));
        }
    }
    doc
}

fn column_doc(w: &GroupWrite) -> Value {
    let mut d = w.attributes.clone();
    if let Value::Object(m) = &mut d {
        m.insert("displayName".into(), json!(w.display_name));
        if let Some(x) = &w.external_id {
            m.insert("externalId".into(), json!(x));
        }
    }
    d
}

async fn load(state: &ScimState, caller: &Caller, id: &str) -> Result<Group, ScimError> {
    state
        .store
        .get_group(&caller.org_id, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group with id {id:?}")))
}

async fn render(
    state: &ScimState,
    caller: &Caller,
    group: &Group,
    with_members: bool,
) -> Result<Value, ScimError> {
    let members = if with_members {
        Some(state.store.group_members(&group.id).await?)
    } else {
        None
    };
    Ok(group_json(&caller.base_url, group, members.as_deref()))
}

fn respond(
    status: StatusCode,
    body: Value,
    attrs: &[String],
    excluded: &[String],
    location: bool,
) -> Response {
    let loc = body
        .pointer("/meta/location")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut response = scim_response(status, &project(&GROUP_RESOURCE, body, attrs, excluded));
    if location {
        if let Some(v) = loc.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    response
}

pub async fn list(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Response, ScimError> {
    let params = ListParams::from_query(&query_pairs(q.as_deref())?)?;
    list_groups(&state, &caller, params).await
}

pub async fn search(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    let params = ListParams::from_search_body(&body)?;
    list_groups(&state, &caller, params).await
}

async fn list_groups(
    state: &ScimState,
    caller: &Caller,
    params: ListParams,
) -> Result<Response, ScimError> {
    let (page, total) = group_page(state, caller, &params).await?;
    Ok(scim_response(
        StatusCode::OK,
        &list_response(&GROUP_RESOURCE, page, total, &params),
    ))
}

/// One page of groups matching the parameters (not yet projected), and the total.
pub(crate) async fn group_page(
    state: &ScimState,
    caller: &Caller,
    params: &ListParams,
) -> Result<(Vec<Value>, usize), ScimError> {
    let params = params.clone();
    let rt = &GROUP_RESOURCE;
    let f = parse_filter(rt, &params)?;
    let count = effective_count(&params, state.settings.max_results);
    let want_members = wants_attribute(
        rt,
        "members",
        &params.attributes,
        &params.excluded_attributes,
    );
    let (groups, total): (Vec<Group>, usize) = if f.is_none() && params.sort_by.is_none() {
        let (groups, total) = state
            .store
            .page_groups(&caller.org_id, params.start_index - 1, count)
            .await?;
        (groups, usize::try_from(total).unwrap_or(0))
    } else {
        let selection = match f.as_ref() {
            Some(f) => {
                if let Some(v) = pushdown(f, "displayName") {
                    GroupSelection::DisplayName(v.to_string())
                } else if let Some(v) = pushdown(f, "externalId") {
                    GroupSelection::ExternalId(v.to_string())
                } else if let Some(v) = pushdown(f, "id") {
                    GroupSelection::Id(v.to_string())
                } else {
                    GroupSelection::All
                }
            }
            None => GroupSelection::All,
        };
        let candidates = state
            .store
            .select_groups(&caller.org_id, &selection)
            .await?;
        let need_members = mentions(f.as_ref(), params.sort_by.as_deref(), "members");
        let mut rendered = Vec::with_capacity(candidates.len());
        for g in &candidates {
            rendered.push(render(state, caller, g, need_members).await?);
        }
        // Filtering and sorting every group in memory is CPU work: off the async workers.
        let sort_params = params.clone();
        let filter = f.clone();
        let (page, total) = off_runtime(move || {
            filter_sort_page(rt, rendered, filter.as_ref(), &sort_params, count)
        })
        .await??;
        let ids: Vec<&str> = page
            .iter()
            .filter_map(|v| v.get("id").and_then(Value::as_str))
            .collect();
        let groups = ids
            .iter()
            .filter_map(|id| candidates.iter().find(|g| g.id == *id).cloned())
            .collect();
        (groups, total)
    };
    let mut page = Vec::with_capacity(groups.len());
    for g in &groups {
        page.push(render(state, caller, g, want_members).await?);
    }
    Ok((page, total))
}

pub async fn create(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    let (write, members) =
        off_runtime(move || group_write(canonical_resource(&GROUP_RESOURCE, body)?)).await??;
    let group = state
        .store
        .create_group(
            &caller.org_id,
            &caller.actor,
            write,
            &members.unwrap_or_default(),
        )
        .await?;
    let (attrs, excluded) = projection_from_query(&query_pairs(q.as_deref())?);
    let body = render(&state, &caller, &group, true).await?;
    Ok(respond(StatusCode::CREATED, body, &attrs, &excluded, true))
}

pub async fn fetch(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let group = load(&state, &caller, &id).await?;
    if if_none_match(&headers).is_some_and(|h| etag_matches(&h, group.version)) {
        return Ok(not_modified(group.version));
    }
    let (attrs, excluded) = projection_from_query(&query_pairs(q.as_deref())?);
    let with_members = wants_attribute(&GROUP_RESOURCE, "members", &attrs, &excluded);
    let body = render(&state, &caller, &group, with_members).await?;
    Ok(respond(StatusCode::OK, body, &attrs, &excluded, false))
}

/// PUT replaces the group's attributes. A `members` list, when present, replaces the
/// membership; when absent the membership is kept, because an IdP renaming a group must not
/// silently empty it (and so lift every restriction the group carries).
pub async fn replace(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    let (write, members) =
        off_runtime(move || group_write(canonical_resource(&GROUP_RESOURCE, body)?)).await??;
    let changes: Vec<MembershipChange> = members
        .map(MembershipChange::ReplaceAll)
        .into_iter()
        .collect();
    for attempt in 0..WRITE_RETRIES {
        let current = load(&state, &caller, &id).await?;
        let pinned = check_if_match(&headers, current.version)?;
        let detail = json!({"changed": changed_attributes(&patchable(&current), &column_doc(&write)), "membership": describe(&changes), "via": "PUT"});
        match state
            .store
            .update_group(
                &caller.org_id,
                &id,
                &caller.actor,
                Some(current.version),
                Some(write.clone()),
                &changes,
                detail,
            )
            .await
        {
            Ok(group) => {
                let (attrs, excluded) = projection_from_query(&query_pairs(q.as_deref())?);
                let body = render(
                    &state,
                    &caller,
                    &group,
                    wants_attribute(&GROUP_RESOURCE, "members", &attrs, &excluded),
                )
                .await?;
                return Ok(respond(StatusCode::OK, body, &attrs, &excluded, false));
            }
            Err(StoreError::VersionConflict) if pinned.is_none() => retry_pause(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(contended())
}

fn describe(changes: &[MembershipChange]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| match c {
                MembershipChange::Add(ids) => json!({"add": ids}),
                MembershipChange::Remove(ids) => json!({"remove": ids}),
                MembershipChange::RemoveAll => json!({"removeAll": true}),
                MembershipChange::ReplaceAll(ids) => json!({"replaceAll": ids}),
            })
            .collect(),
    )
}

/// Turns the PATCH engine's member changes into row changes; a filtered removal other than
/// `value eq "id"` is evaluated against the current members (read once per request: the
/// changes are not applied until the store runs them all, so every filter sees the same list).
async fn membership_changes(
    state: &ScimState,
    group_id: &str,
    changes: Vec<MemberChange>,
) -> Result<Vec<MembershipChange>, ScimError> {
    let mut out = Vec::with_capacity(changes.len());
    let mut members: Option<Arc<Vec<Value>>> = None;
    for change in changes {
        out.push(match change {
            MemberChange::Add(ids) => MembershipChange::Add(ids),
            MemberChange::Remove(ids) => MembershipChange::Remove(ids),
            MemberChange::RemoveAll => MembershipChange::RemoveAll,
            MemberChange::ReplaceAll(ids) => MembershipChange::ReplaceAll(ids),
            MemberChange::RemoveMatching(f) => match as_eq_on(&f, "value") {
                Some(id) => MembershipChange::Remove(vec![id.to_string()]),
                None => {
                    let def = GROUP_RESOURCE
                        .schema
                        .attr("members")
                        .ok_or_else(ScimError::internal)?;
                    let list = match &members {
                        Some(list) => Arc::clone(list),
                        None => {
                            let loaded: Vec<Value> = state
                                .store
                                .group_members(group_id)
                                .await?
                                .into_iter()
                                .map(|m| json!({"value": m.user_id, "display": m.user_name, "type": "User"}))
                                .collect();
                            let list = Arc::new(loaded);
                            members = Some(Arc::clone(&list));
                            list
                        }
                    };
                    // Evaluating a filter over a large group is CPU work: off the async workers.
                    let ids = off_runtime(move || {
                        list.iter()
                            .filter(|m| matches_element(def, &f, m))
                            .filter_map(|m| m.get("value").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect::<Vec<String>>()
                    })
                    .await?;
                    MembershipChange::Remove(ids)
                }
            },
        });
    }
    Ok(out)
}

/// PATCH answers 200 with the group. Its `members` are left out unless the request asks for
/// them with `attributes`, so that a membership change costs the same for a group of ten or of
/// ten thousand; `GET /Groups/{id}` lists them.
pub async fn patch(
    State(state): State<ScimState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ScimError> {
    // Parsing and applying a PATCH is CPU work proportional to its size (a 1 MiB body can list
    // ~60,000 members): off the async workers, so other requests are not held up.
    let ops = Arc::new(off_runtime(move || parse_patch_request(&body)).await??);
    let (attrs, excluded) = projection_from_query(&query_pairs(q.as_deref())?);
    for attempt in 0..WRITE_RETRIES {
        let current = load(&state, &caller, &id).await?;
        let pinned = check_if_match(&headers, current.version)?;
        let before = patchable(&current);
        let ops = Arc::clone(&ops);
        let (outcome, write, changed) = off_runtime(move || -> Result<_, ScimError> {
            let mut doc = before.clone();
            let outcome = apply_patch(&GROUP_RESOURCE, &mut doc, &ops, true)?;
            let (write, _) = group_write(canonical_resource(&GROUP_RESOURCE, doc)?)?;
            let changed = changed_attributes(&before, &column_doc(&write));
            Ok((outcome, write, changed))
        })
        .await??;
        let changes = membership_changes(&state, &id, outcome.member_changes).await?;
        // Attribute changes are checked against the version read; membership-only changes are
        // row operations that need no such check (unless the client pinned a version).
        let (expected, write) = if changed.is_empty() {
            (pinned, None)
        } else {
            (Some(current.version), Some(write))
        };
        let detail = json!({"changed": changed, "membership": describe(&changes), "via": "PATCH"});
        match state
            .store
            .update_group(
                &caller.org_id,
                &id,
                &caller.actor,
                expected,
                write,
                &changes,
                detail,
            )
            .await
        {
            Ok(group) => {
                let with_members = attrs.iter().any(|a| {
                    a.eq_ignore_ascii_case("members")
                        || a.to_ascii_lowercase().starts_with("members.")
                });
                let body = render(&state, &caller, &group, with_members).await?;
                return Ok(respond(StatusCode::OK, body, &attrs, &excluded, false));
            }
            Err(StoreError::VersionConflict) if expected.is_some() && pinned.is_none() => {
                retry_pause(attempt).await
            }
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
        .delete_group(&caller.org_id, &id, &caller.actor)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ScimError::not_found(format!("no group with id {id:?}")),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
