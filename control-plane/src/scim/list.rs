//! Listing resources: filter parsing and index pushdown, in-memory filtering, sorting, paging
//! and the ListResponse envelope (RFC 7644 §3.4.2).

use serde_json::{json, Value};

use super::error::ScimError;
use super::filter::{self, AttrPath, Filter};
use super::render::project;
use super::request::{ListParams, SortOrder};
use super::schema::{ResourceType, LIST_RESPONSE_URN};

/// A parsed and validated filter, if the request had one.
pub fn parse_filter(rt: &ResourceType, params: &ListParams) -> Result<Option<Filter>, ScimError> {
    match params.filter.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            let f = filter::parse_filter(text)?;
            filter::validate(rt, &f)?;
            Ok(Some(f))
        }
    }
}

/// The page size to use: the client's `count` (negative means 0), capped at `max_results`.
pub fn effective_count(params: &ListParams, max_results: i64) -> i64 {
    params
        .count
        .map(|c| c.max(0))
        .unwrap_or(max_results)
        .min(max_results)
}

/// Finds an `attr eq "value"` conjunct that an index can answer: the filter is that term, or an
/// `and` whose one side is. The full filter is still evaluated on what the index returns.
pub fn pushdown<'f>(f: &'f Filter, attr: &str) -> Option<&'f str> {
    if let Some(v) = filter::as_eq_on(f, attr) {
        return Some(v);
    }
    match f {
        Filter::And(a, b) => pushdown(a, attr).or_else(|| pushdown(b, attr)),
        _ => None,
    }
}

/// Whether the filter or the sort key mentions this attribute (so its data must be loaded).
pub fn mentions(f: Option<&Filter>, sort_by: Option<&str>, attr: &str) -> bool {
    fn walk(f: &Filter, attr: &str) -> bool {
        match f {
            Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => {
                p.name.eq_ignore_ascii_case(attr)
            }
            Filter::And(a, b) | Filter::Or(a, b) => walk(a, attr) || walk(b, attr),
            Filter::Not(x) => walk(x, attr),
        }
    }
    f.is_some_and(|f| walk(f, attr))
        || sort_by.is_some_and(|s| {
            s.split('.')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(attr))
        })
}

/// Filters, sorts and pages rendered resources held in memory; returns the page and the total.
pub fn filter_sort_page(
    rt: &ResourceType,
    mut resources: Vec<Value>,
    f: Option<&Filter>,
    params: &ListParams,
    count: i64,
) -> Result<(Vec<Value>, usize), ScimError> {
    if let Some(f) = f {
        resources.retain(|r| filter::matches(rt, f, r));
    }
    if let Some(sort_by) = params.sort_by.as_deref() {
        let path = AttrPath::parse(sort_by)
            .map_err(|_| ScimError::invalid_value(format!("cannot sort by {sort_by:?}")))?;
        if rt.resolve(&path.full_name()).is_none() {
            return Err(ScimError::invalid_value(format!(
                "cannot sort by unknown attribute {sort_by:?}"
            )));
        }
        // A stable sort keeps creation order among equal keys, so paging stays deterministic.
        resources.sort_by(|a, b| {
            let o = filter::compare_by(rt, &path, a, b);
            if params.sort_order == SortOrder::Descending {
                o.reverse()
            } else {
                o
            }
        });
    }
    let total = resources.len();
    let skip = usize::try_from(params.start_index - 1).unwrap_or(0);
    let take = usize::try_from(count).unwrap_or(0);
    let page = resources.into_iter().skip(skip).take(take).collect();
    Ok((page, total))
}

/// The ListResponse envelope, with each resource projected.
pub fn list_response(
    rt: &ResourceType,
    page: Vec<Value>,
    total: usize,
    params: &ListParams,
) -> Value {
    let resources: Vec<Value> = page
        .into_iter()
        .map(|r| project(rt, r, &params.attributes, &params.excluded_attributes))
        .collect();
    json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": total,
        "startIndex": params.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
