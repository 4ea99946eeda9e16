//! Reading SCIM requests: the JSON body (content type, size, syntax) and list parameters
//! (`filter`, paging, sorting, attribute selection) from a query string or a `.search` body.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::Value;

use super::error::{ScimError, ScimType};

/// Bodies above this size are parsed on the blocking pool.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// A SCIM request body: `application/scim+json` or `application/json` (with any parameters),
/// or no content type at all (some IdPs omit it). Anything else is 415.
pub struct ScimJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimJson {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    "request body exceeds the maximum size",
                )
            } else {
                ScimError::invalid_syntax("could not read the request body")
            }
        })?;
        if bytes.is_empty() {
            return Err(ScimError::invalid_syntax("the request body is empty"));
        }
        let bytes_len = bytes.len();
        let parse = move || {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}"))
            })
        };
        // Small bodies parse in microseconds; only large ones are worth a thread hop.
        let value = if bytes_len > INLINE_PARSE_BYTES {
            super::off_runtime(parse).await??
        } else {
            parse()?
        };
        Ok(ScimJson(value))
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ScimError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/scim+json" || essence == "application/json" {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            format!("unsupported content type {essence:?}; send application/scim+json"),
        ))
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// List and projection parameters (RFC 7644 §3.4.2, §3.4.3, §3.9).
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    /// 1-based; values below 1 mean 1.
    pub start_index: i64,
    /// `None` when the client gave none.
    pub count: Option<i64>,
    pub sort_by: Option<String>,
    pub sort_order: SortOrder,
    pub attributes: Vec<String>,
    pub excluded_attributes: Vec<String>,
}

fn split_attrs(s: &str) -> Vec<String> {
    s.split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect()
}

fn parse_int(name: &str, value: &str) -> Result<i64, ScimError> {
    value.trim().parse::<i64>().map_err(|_| {
        ScimError::bad_request(
            ScimType::InvalidValue,
            format!("'{name}' must be an integer"),
        )
    })
}

fn parse_sort_order(value: &str) -> Result<SortOrder, ScimError> {
    match value.to_ascii_lowercase().as_str() {
        "ascending" => Ok(SortOrder::Ascending),
        "descending" => Ok(SortOrder::Descending),
        _ => Err(ScimError::invalid_value(
            "'sortOrder' must be \"ascending\" or \"descending\"",
        )),
    }
}

impl ListParams {
    /// From a query string's decoded pairs (names case-insensitive).
    pub fn from_query(pairs: &[(String, String)]) -> Result<ListParams, ScimError> {
        let mut p = ListParams {
            start_index: 1,
            ..Default::default()
        };
        for (k, v) in pairs {
            match k.to_ascii_lowercase().as_str() {
                "filter" => p.filter = Some(v.clone()),
                "startindex" => p.start_index = parse_int("startIndex", v)?,
                "count" => p.count = Some(parse_int("count", v)?),
                "sortby" => p.sort_by = Some(v.clone()),
                "sortorder" => p.sort_order = parse_sort_order(v)?,
                "attributes" => p.attributes = split_attrs(v),
                "excludedattributes" => p.excluded_attributes = split_attrs(v),
                _ => {}
            }
        }
        p.start_index = p.start_index.max(1);
        Ok(p)
    }

    /// From a `POST /.search` SearchRequest body (numbers may arrive as strings).
    pub fn from_search_body(body: &Value) -> Result<ListParams, ScimError> {
        let Value::Object(map) = body else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        let mut p = ListParams {
            start_index: 1,
            ..Default::default()
        };
        let as_int = |name: &str, v: &Value| -> Result<i64, ScimError> {
            match v {
                Value::Number(n) => n.as_i64().ok_or_else(|| {
                    ScimError::invalid_value(format!("'{name}' must be an integer"))
                }),
                Value::String(s) => parse_int(name, s),
                _ => Err(ScimError::invalid_value(format!(
                    "'{name}' must be an integer"
                ))),
            }
        };
        let as_list = |name: &str, v: &Value| -> Result<Vec<String>, ScimError> {
            match v {
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_string).ok_or_else(|| {
                            ScimError::invalid_value(format!("'{name}' must list strings"))
                        })
                    })
                    .collect(),
                Value::String(s) => Ok(split_attrs(s)),
                _ => Err(ScimError::invalid_value(format!(
                    "'{name}' must be an array of strings"
                ))),
            }
        };
        let as_str = |name: &str, v: &Value| -> Result<String, ScimError> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be a string")))
        };
        for (k, v) in map {
            if v.is_null() {
                continue;
            }
            match k.to_ascii_lowercase().as_str() {
                "filter" => p.filter = Some(as_str("filter", v)?),
                "startindex" => p.start_index = as_int("startIndex", v)?,
                "count" => p.count = Some(as_int("count", v)?),
                "sortby" => p.sort_by = Some(as_str("sortBy", v)?),
                "sortorder" => p.sort_order = parse_sort_order(&as_str("sortOrder", v)?)?,
                "attributes" => p.attributes = as_list("attributes", v)?,
                "excludedattributes" => p.excluded_attributes = as_list("excludedAttributes", v)?,
                _ => {}
            }
        }
        p.start_index = p.start_index.max(1);
        Ok(p)
    }
}

/// Only `attributes`/`excludedAttributes` from a query (for single-resource requests).
pub fn projection_from_query(pairs: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let mut attrs = Vec::new();
    let mut excluded = Vec::new();
    for (k, v) in pairs {
        match k.to_ascii_lowercase().as_str() {
            "attributes" => attrs = split_attrs(v),
            "excludedattributes" => excluded = split_attrs(v),
            _ => {}
        }
    }
    (attrs, excluded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn query_parameters() {
        let p = ListParams::from_query(&q(&[
            ("startIndex", "0"),
            ("COUNT", "5"),
            ("attributes", "userName, emails"),
        ]))
        .unwrap();
        assert_eq!(p.start_index, 1);
        assert_eq!(p.count, Some(5));
        assert_eq!(p.attributes, vec!["userName", "emails"]);
        assert!(ListParams::from_query(&q(&[("count", "ten")])).is_err());
        assert!(ListParams::from_query(&q(&[("sortOrder", "up")])).is_err());
    }

    #[test]
    fn search_body() {
        let p = ListParams::from_search_body(&json!({"schemas": [], "filter": "userName eq \"a\"", "startIndex": "2", "count": 3, "excludedAttributes": ["members"]})).unwrap();
        assert_eq!(p.start_index, 2);
        assert_eq!(p.count, Some(3));
        assert_eq!(p.excluded_attributes, vec!["members"]);
        assert!(ListParams::from_search_body(&json!([1])).is_err());
    }
}
