//! One request through the relay: find the local token (`x-api-key` or `Authorization:
//! Bearer`, as Claude Code sends its helper's output), check it and the client's account,
//! refuse when access was taken away, otherwise forward to the upstream with the real key and
//! stream the answer back unchanged while metering its usage. Bodies and credential headers
//! are never logged.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use super::usage::ResponseMeter;
use super::{peer, Access, Relay};

/// The largest request body forwarded (a Messages request with images stays far below).
const MAX_REQUEST_BODY: usize = 64 << 20;

/// Headers that belong to one connection, never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// An error in the Messages API's shape, which Claude Code shows.
fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// The local token the request carries.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
}

/// Whether a path may be put under the upstream's base: absolute, and without empty, `.` or
/// `..` segments (percent-encoded ones included).
fn safe_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    rest.split('/').all(|segment| {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        decoded != "." && decoded != ".." && !segment.contains('\\')
    }) && !path.contains("//")
}

/// Whether a request is a Messages API call whose answer reports usage (the path without its
/// query; `count_tokens` generates nothing).
fn metered(method: &axum::http::Method, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    method == axum::http::Method::POST && path == "/v1/messages"
}

/// Answers `nonce=HEX` with the proof that this relay derives the developer's token.
fn prove(relay: &Relay, query: &str) -> Response {
    let nonce = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("nonce="))
        .filter(|n| super::token::valid_nonce(n));
    let Some(nonce) = nonce else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Palisade: a relay proof needs nonce=<32 to 128 hex digits>.",
        );
    };
    match relay.local_token() {
        Some(token) => {
            axum::Json(json!({"proof": super::token::relay_proof(&token, nonce)})).into_response()
        }
        None => api_error(
            StatusCode::FORBIDDEN,
            "permission_error",
            &super::Refusal::NotEnrolled.message(),
        ),
    }
}

/// The relay's one handler (every method and path).
pub async fn handle(
    State(relay): State<Relay>,
    ConnectInfo(client): ConnectInfo<peer::Peer>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    // Claude Code's reachability probe (sent without a key) is answered here: the relay is
    // what it reaches, and nothing unauthenticated is ever forwarded with the key.
    if parts.method == axum::http::Method::HEAD && parts.uri.path() == "/api/hello" {
        return StatusCode::OK.into_response();
    }

    // The helper's challenge, before it hands Claude Code the token (see `token::relay_proof`).
    if parts.method == axum::http::Method::GET && parts.uri.path() == super::token::PROOF_PATH {
        return prove(&relay, parts.uri.query().unwrap_or(""));
    }

    // The path goes under the upstream's base as it is: no dot segments (which would leave a
    // gateway's prefix or dodge the meter), nothing but an absolute path.
    if !safe_path(parts.uri.path()) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Palisade: the relay forwards absolute paths without `.` or `..` segments only.",
        );
    }

    // Refused access is said first, token or not: after a wipe the developer's token is
    // gone with the secret, and the message is what they must see.
    let (key, upstream) = match relay.access() {
        Access::Serving { key, upstream } => (key, upstream),
        Access::Refusing(why) => {
            return api_error(StatusCode::FORBIDDEN, "permission_error", &why.message());
        }
    };
    let binding = super::read(&relay.shared.binding).clone();
    // This device's token, and on Linux its developer's account on the other end.
    {
        let Some(binding) = &binding else {
            return api_error(
                StatusCode::FORBIDDEN,
                "permission_error",
                &super::Refusal::NotEnrolled.message(),
            );
        };
        let valid = presented_token(&parts.headers).is_some_and(|t| {
            super::read(&relay.shared.secret).verify(t, &binding.device_id, &binding.developer)
        });
        if !valid {
            tracing::debug!(path = %parts.uri.path(), "relay: refused a request without this device's local token");
            return api_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "Palisade: this request does not carry this computer's local token \
                 (apiKeyHelper `palisade-agent api-key`); the organisation's key is used only through it.",
            );
        }
        if let Some(uid) = binding.developer_uid {
            // Unknown owner (the lookup failed) is refused too: on Linux the check is the
            // binding, not a best effort.
            if client.uid != Some(uid) {
                tracing::warn!(
                    owner = ?client.uid,
                    developer = uid,
                    "relay: refused a local token presented by another account"
                );
                return api_error(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    "Palisade: this local token belongs to another account on this computer.",
                );
            }
        }
    }
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "Palisade: the request body is too large or was cut off.",
            );
        }
    };
    let meter = metered(&parts.method, &path_and_query).then(|| request_model(&body));
    let url = format!("{}{}", upstream.trim_end_matches('/'), path_and_query);
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || n == "x-api-key"
            || n == "authorization"
            || n == "content-length"
            || n == "accept-encoding"
            || n == "expect"
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    // Uncompressed answers, so that the meter can read their `usage`.
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    match HeaderValue::from_str(&key) {
        Ok(mut v) => {
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-api-key"), v);
        }
        Err(_) => {
            tracing::error!("relay: the stored API key is not a valid header value");
            return api_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "Palisade: the organisation's API key on this computer is malformed.",
            );
        }
    }
    let sent = relay
        .shared
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream_response = match sent {
        Ok(r) => r,
        Err(e) => {
            // The error names the upstream and the cause, never a header.
            let cause = e.without_url().to_string();
            tracing::warn!(%upstream, error = %cause, "relay: upstream unreachable");
            return api_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!("Palisade: the upstream {upstream} could not be reached: {cause}"),
            );
        }
    };
    let status = upstream_response.status();
    tracing::debug!(method = %parts.method, path = %parts.uri.path(), status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "relayed");
    let mut response = Response::builder().status(status);
    if let Some(h) = response.headers_mut() {
        for (name, value) in upstream_response.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                h.append(name.clone(), value.clone());
            }
        }
    }
    let content_type = upstream_response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut guard = meter
        .filter(|_| status.is_success())
        .map(|request_model| MeterGuard {
            relay: relay.clone(),
            meter: ResponseMeter::new(&content_type),
            request_model,
        });
    let stream = upstream_response.bytes_stream().map(move |chunk| {
        if let (Ok(bytes), Some(g)) = (&chunk, guard.as_mut()) {
            g.meter.feed(bytes);
        }
        chunk.map_err(std::io::Error::other)
    });
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| {
            api_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "Palisade: bad upstream answer",
            )
        })
}

/// The `model` a Messages request names (used when the answer names none).
fn request_model(body: &Bytes) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Records one answer's usage when its body is done with (finished, or dropped because the
/// client went away).
struct MeterGuard {
    relay: Relay,
    meter: ResponseMeter,
    request_model: String,
}

impl Drop for MeterGuard {
    fn drop(&mut self) {
        self.meter.finish();
        let model = if self.meter.model.is_empty() {
            &self.request_model
        } else {
            &self.meter.model
        };
        self.relay.record(model, &self.meter.tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer pal_local_ab"),
        );
        assert_eq!(presented_token(&h), Some("pal_local_ab"));
        h.insert("x-api-key", HeaderValue::from_static("pal_local_cd"));
        assert_eq!(presented_token(&h), Some("pal_local_cd"));
    }

    #[test]
    fn paths_stay_under_the_upstream_base() {
        assert!(safe_path("/v1/messages"));
        assert!(safe_path("/v1/messages/count_tokens"));
        for bad in [
            "*",
            "v1/messages",
            "/v1/./messages",
            "/v1/../admin",
            "/v1/%2e%2e/x",
            "//evil.example/x",
            "/v1/a\\b",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn only_messages_calls_are_metered() {
        let post = axum::http::Method::POST;
        assert!(metered(&post, "/v1/messages"));
        assert!(metered(&post, "/v1/messages?beta=true"));
        assert!(!metered(&post, "/v1/messages/count_tokens"));
        assert!(metered(&post, "/v1/messages/"));
        assert!(!metered(&axum::http::Method::HEAD, "/api/hello"));
    }
}
