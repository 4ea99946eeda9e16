//! The agent's gRPC edge, and the only module that knows the protobuf types: proto ↔ plain
//! conversions ([`policy_from_pb`], [`server_event`], `From<AgentEvent>`), the
//! TLS channel (rustls; a pinned CA is the only one trusted, otherwise the Mozilla roots),
//! the enrollment calls (`enroll.rs`), and the `StreamPolicy` call ([`PolicyStream`]) with the
//! classification of its refusals ([`StreamError`]).

mod enroll;

pub use enroll::{
    enroll, poll_sign_in, start_sign_in, Credential, DeviceFacts, Enrollment, Poll, SignIn,
};

use std::error::Error as StdError;
use std::net::IpAddr;
use std::time::Duration;

use palisade_proto::v1 as pb;
use palisade_proto::{DEVICE_REVOKED, DEVICE_STATUS_TRAILER};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::codegen::http::Uri;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::link::messages::{AgentEvent, KeyDelivery, OfflineRule, ServerEvent, Snapshot};
use palisade_policy::{Policy, PolicyErrors, SCHEMA_VERSION};
use serde_json::{json, Value};

/// This agent's version, sent in `Hello` and `EnrollRequest`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);
// Dead peers are noticed by the kernel, without waking the agent.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 4;

// ---------------------------------------------------------------------------------------------
// Conversions.

/// A protobuf message that cannot become a plain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// `PolicySnapshot.policy` is absent.
    #[error("the snapshot carries no policy")]
    MissingPolicy,
    /// A schema-1 policy whose level is unspecified.
    #[error("the security level is unspecified")]
    UnspecifiedSecurityLevel,
    /// A schema-1 level this agent does not know.
    #[error("unknown security level {0} (is the agent older than the control plane?)")]
    UnknownSecurityLevel(i32),
    /// The policy document breaks the policy rules, or uses a schema or key this agent does
    /// not know (the message says to upgrade the agent).
    #[error("invalid policy: {0}")]
    Policy(PolicyErrors),
    /// `OFFLINE_RULE_UNSPECIFIED`.
    #[error("the offline rule is unspecified")]
    UnspecifiedOfflineRule,
    /// A rule this agent does not know.
    #[error("unknown offline rule {0} (is the agent older than the control plane?)")]
    UnknownOfflineRule(i32),
    /// A key delivery this agent does not know.
    #[error("unknown key delivery {0} (is the agent older than the control plane?)")]
    UnknownKeyDelivery(i32),
    /// The relay's upstream is not an http(s) URL.
    #[error("the relay's upstream URL is malformed")]
    BadUpstream,
}

/// The policy of a snapshot: the schema-2 document, checked against the same key table the
/// control plane used; or, from a control plane of schema 1, the six fields, migrated.
pub fn policy_from_pb(p: pb::Policy) -> Result<Policy, ConvertError> {
    if p.schema >= 2 {
        return Policy::from_wire(p.schema, &p.document).map_err(ConvertError::Policy);
    }
    let level = match pb::SecurityLevel::try_from(p.security_level) {
        Ok(pb::SecurityLevel::Unspecified) => return Err(ConvertError::UnspecifiedSecurityLevel),
        Ok(pb::SecurityLevel::Minimal) => "minimal",
        Ok(pb::SecurityLevel::Moderate) => "moderate",
        Ok(pb::SecurityLevel::Strict) => "strict",
        Ok(pb::SecurityLevel::Paranoid) => "paranoid",
        Err(_) => return Err(ConvertError::UnknownSecurityLevel(p.security_level)),
    };
    let optional = |l: Option<pb::StringList>| l.map_or(Value::Null, |l| json!(l.values));
    let v1 = json!({
        "schema": 1,
        "blocked_tools": p.blocked_tools,
        "security_level": level,
        "blocked_write_paths": p.blocked_write_paths,
        "allowed_skills": optional(p.allowed_skills),
        "blocked_mcp_servers": p.blocked_mcp_servers,
        "allowed_web_domains": optional(p.allowed_web_domains),
    });
    // A schema-1 control plane sends the level alone: add its bundle, as a schema-2 one does.
    Policy::from_value(&v1)
        .map(|loaded| palisade_policy::effective(&loaded.policy, &[]))
        .map_err(ConvertError::Policy)
}

/// The wire form of `policy` (what the control plane sends; used by tests and fakes).
pub fn policy_to_pb(policy: &Policy) -> pb::Policy {
    pb::Policy {
        security_level: pb::SecurityLevel::Unspecified as i32,
        schema: SCHEMA_VERSION,
        document: policy.canonical_json(),
        ..pb::Policy::default()
    }
}

fn offline_rule(raw: i32) -> Result<OfflineRule, ConvertError> {
    match pb::OfflineRule::try_from(raw) {
        Ok(pb::OfflineRule::KeepLast) => Ok(OfflineRule::KeepLast),
        Ok(pb::OfflineRule::Lockdown) => Ok(OfflineRule::Lockdown),
        Ok(pb::OfflineRule::Unspecified) => Err(ConvertError::UnspecifiedOfflineRule),
        Err(_) => Err(ConvertError::UnknownOfflineRule(raw)),
    }
}

/// An unknown delivery (from a newer control plane) is refused rather than guessed: guessing
/// `helper` would hand the developer the key the organisation meant to keep from them.
fn key_delivery(raw: i32) -> Result<KeyDelivery, ConvertError> {
    match pb::KeyDelivery::try_from(raw) {
        Ok(pb::KeyDelivery::Unspecified | pb::KeyDelivery::Helper) => Ok(KeyDelivery::Helper),
        Ok(pb::KeyDelivery::Proxy) => Ok(KeyDelivery::Proxy),
        Err(_) => Err(ConvertError::UnknownKeyDelivery(raw)),
    }
}

/// The relay's upstream: empty is the Anthropic API; otherwise an http(s) URL.
fn upstream_url(raw: &str) -> Result<Option<String>, ConvertError> {
    let url = raw.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let ok = url.len() <= 2048
        && (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(Some(url.trim_end_matches('/').to_owned()))
    } else {
        Err(ConvertError::BadUpstream)
    }
}

/// A deadline of 0 (or less) means the server set none.
fn deadline(raw: i64) -> Option<i64> {
    (raw > 0).then_some(raw)
}

impl TryFrom<pb::PolicySnapshot> for Snapshot {
    type Error = ConvertError;

    fn try_from(s: pb::PolicySnapshot) -> Result<Snapshot, ConvertError> {
        let policy = policy_from_pb(s.policy.ok_or(ConvertError::MissingPolicy)?)?;
        Ok(Snapshot {
            version: s.version,
            nonce: s.nonce,
            policy,
            valid_until_unix_ms: deadline(s.valid_until_unix_ms),
            offline_rule: offline_rule(s.offline_rule)?,
            api_key: s
                .api_key
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty()),
            policy_sha256: s.policy_sha256,
            device_unverified: s.device_unverified,
            confirm_url: Some(s.confirm_url.trim().to_owned())
                .filter(|u| !u.is_empty() && u.len() <= 2048 && u.starts_with("http")),
            key_delivery: key_delivery(s.key_delivery)?,
            upstream_url: upstream_url(&s.upstream_url)?,
        })
    }
}

/// The plain form of a server message; `None` for an empty (or, from a newer server,
/// unknown) message, which the agent ignores.
pub fn server_event(msg: pb::ServerMessage) -> Option<ServerEvent> {
    Some(match msg.message? {
        pb::server_message::Message::Snapshot(s) => {
            let (version, nonce) = (s.version, s.nonce.clone());
            match Snapshot::try_from(s) {
                Ok(snapshot) => ServerEvent::Snapshot(snapshot),
                Err(e) => ServerEvent::InvalidSnapshot {
                    version,
                    nonce,
                    error: e.to_string(),
                },
            }
        }
        pb::server_message::Message::Keepalive(k) => ServerEvent::Keepalive {
            valid_until_unix_ms: deadline(k.valid_until_unix_ms),
            server_time_unix_ms: deadline(k.server_time_unix_ms),
        },
        pb::server_message::Message::Deprovision(d) => {
            ServerEvent::Deprovision { reason: d.reason }
        }
    })
}

impl From<AgentEvent> for pb::AgentMessage {
    fn from(event: AgentEvent) -> pb::AgentMessage {
        use pb::agent_message::Message;
        let message = match event {
            AgentEvent::Ack { version, nonce } => Message::Ack(pb::Ack { version, nonce }),
            AgentEvent::Nack {
                version,
                nonce,
                error,
            } => Message::Nack(pb::Nack {
                version,
                nonce,
                error,
            }),
            AgentEvent::Tamper(t) => Message::Tamper(pb::TamperReport {
                path: t.path,
                kind: t.kind.as_str().to_owned(),
                detected_at_unix_ms: t.detected_at_unix_ms,
                restored_at_unix_ms: t.restored_at_unix_ms,
            }),
            AgentEvent::Wipe(w) => Message::Wipe(pb::WipeReport {
                removed: w.removed,
                failed: w.failed,
                wiped_at_unix_ms: w.wiped_at_unix_ms,
            }),
            AgentEvent::Warning(w) => Message::Warning(pb::SettingsWarning {
                code: w.code,
                detail: w.detail,
            }),
            AgentEvent::Usage(u) => Message::Usage(pb::UsageReport {
                epoch: u.epoch,
                counters: u
                    .counters
                    .into_iter()
                    .map(|(day, model, t)| pb::UsageCounter {
                        day,
                        model,
                        requests: t.requests,
                        input_tokens: t.input_tokens,
                        output_tokens: t.output_tokens,
                        cache_creation_input_tokens: t.cache_creation_input_tokens,
                        cache_read_input_tokens: t.cache_read_input_tokens,
                    })
                    .collect(),
            }),
        };
        pb::AgentMessage {
            message: Some(message),
        }
    }
}

fn hello(last_applied_version: u64) -> pb::AgentMessage {
    pb::AgentMessage {
        message: Some(pb::agent_message::Message::Hello(pb::Hello {
            last_applied_version,
            agent_version: AGENT_VERSION.to_owned(),
            os: std::env::consts::OS.to_owned(),
        })),
    }
}

// ---------------------------------------------------------------------------------------------
// Connection.

/// A failure to reach or use the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL does not parse or has an unsupported scheme.
    #[error("invalid server URL `{url}`: {message}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// `http://` to a host that is not a loopback address.
    #[error(
        "refusing plaintext http:// to `{host}`: only loopback addresses may be reached \
         without TLS; use https://"
    )]
    PlaintextNotLoopback {
        /// The host.
        host: String,
    },
    /// The CA certificate or TLS configuration is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// No connection could be made (DNS, TCP, TLS handshake, timeout).
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The server.
        url: String,
        /// The cause, with its sources.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{message} (gRPC status {code:?})")]
    Refused {
        /// The gRPC code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
}

/// The control plane's address and the CA to trust for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTarget {
    url: String,
    ca_pem: Option<Vec<u8>>,
}

impl ServerTarget {
    /// Checks the URL (`https://`, or `http://` to a loopback host) and the CA PEM.
    pub fn new(url: &str, ca_pem: Option<Vec<u8>>) -> Result<ServerTarget, ClientError> {
        let invalid = |message: &str| ClientError::InvalidUrl {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|e| ClientError::InvalidUrl {
            url: url.to_owned(),
            message: format!("{e}"),
        })?;
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => {
                if !is_loopback(host) {
                    return Err(ClientError::PlaintextNotLoopback {
                        host: host.to_owned(),
                    });
                }
            }
            _ => {
                return Err(invalid(
                    "the scheme must be https:// (or http:// on loopback)",
                ))
            }
        }
        if let Some(pem) = &ca_pem {
            let text = String::from_utf8_lossy(pem);
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(ClientError::Tls(
                    "the CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                ));
            }
        }
        Ok(ServerTarget {
            url: url.trim_end_matches('/').to_owned(),
            ca_pem,
        })
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| ClientError::InvalidUrl {
                url: self.url.clone(),
                message: error_chain(&e),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .tcp_keepalive(Some(TCP_KEEPALIVE))
            .tcp_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL))
            .tcp_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES))
            .user_agent(format!("palisade-agent/{AGENT_VERSION}"))
            .map_err(|e| ClientError::Tls(error_chain(&e)))?;
        if self.url.starts_with("https://") {
            let tls = match &self.ca_pem {
                // Pinned: this CA only, not the public roots.
                Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| ClientError::Tls(error_chain(&e)))?;
        }
        Ok(endpoint)
    }

    async fn connect(&self) -> Result<Channel, ClientError> {
        self.endpoint()?
            .connect()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.url.clone(),
                message: error_chain(&e),
            })
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An error and its sources, `a: b: c`, skipping repeats.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

fn refused(status: tonic::Status) -> ClientError {
    let message = if status.message().is_empty() {
        format!("the server refused the request ({})", status.code())
    } else {
        status.message().to_owned()
    };
    ClientError::Refused {
        code: status.code(),
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// The policy stream.

/// Why a stream could not be opened or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// `PERMISSION_DENIED` with `palisade-device-status: revoked`: wipe.
    Revoked(String),
    /// `UNAUTHENTICATED`: the server does not know this credential (re-enroll). Not a wipe.
    Unauthenticated(String),
    /// Anything else: retry with backoff.
    Failed(String),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Revoked(m) => write!(f, "device revoked by the control plane: {m}"),
            StreamError::Unauthenticated(m) => write!(
                f,
                "the control plane does not recognise this device's credential ({m}); \
                 enroll again with `palisade-agent enroll`"
            ),
            StreamError::Failed(m) => f.write_str(m),
        }
    }
}

/// Sorts a refusal into wipe / re-enroll / retry, following the stream contract in
/// `agent.proto`.
pub fn classify(status: &tonic::Status) -> StreamError {
    let revoked = status
        .metadata()
        .get(DEVICE_STATUS_TRAILER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(DEVICE_REVOKED));
    let message = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{} ({:?})", status.message(), status.code())
    };
    match status.code() {
        tonic::Code::PermissionDenied if revoked => StreamError::Revoked(message),
        tonic::Code::Unauthenticated => StreamError::Unauthenticated(message),
        _ => StreamError::Failed(message),
    }
}

/// An open `StreamPolicy` call.
pub struct PolicyStream {
    tx: Option<mpsc::UnboundedSender<pb::AgentMessage>>,
    rx: tonic::Streaming<pb::ServerMessage>,
}

impl std::fmt::Debug for PolicyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStream")
            .field("sending", &self.tx.is_some())
            .finish()
    }
}

/// Connects, opens `StreamPolicy` with the device credential and sends `Hello`.
pub async fn open_stream(
    target: ServerTarget,
    device_credential: String,
    last_applied_version: u64,
) -> Result<PolicyStream, StreamError> {
    let channel = target
        .connect()
        .await
        .map_err(|e| StreamError::Failed(e.to_string()))?;
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(hello(last_applied_version))
        .map_err(|_| StreamError::Failed("internal: request stream closed".into()))?;
    let mut request = tonic::Request::new(UnboundedReceiverStream::new(rx));
    let bearer = MetadataValue::try_from(format!("Bearer {device_credential}")).map_err(|_| {
        StreamError::Unauthenticated("the stored device credential is not a valid header".into())
    })?;
    request.metadata_mut().insert("authorization", bearer);
    let response = client
        .stream_policy(request)
        .await
        .map_err(|s| classify(&s))?;
    Ok(PolicyStream {
        tx: Some(tx),
        rx: response.into_inner(),
    })
}

impl PolicyStream {
    /// Queues a message on the stream; false when the stream is gone.
    pub fn send(&self, event: AgentEvent) -> bool {
        match &self.tx {
            Some(tx) => tx.send(event.into()).is_ok(),
            None => false,
        }
    }

    /// Ends the agent's side of the call (the server then ends its side).
    pub fn close_send(&mut self) {
        self.tx = None;
    }

    /// The next server message; `Ok(None)` when the server ended the stream. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<ServerEvent>, StreamError> {
        loop {
            match self.rx.message().await {
                Ok(Some(msg)) => {
                    if let Some(event) = server_event(msg) {
                        return Ok(Some(event));
                    }
                }
                Ok(None) => return Ok(None),
                Err(status) => return Err(classify(&status)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::messages::{TamperKind, TamperRecord, Warning, WipeRecord};

    /// A schema-1 policy, as an older control plane sends it.
    fn pb_policy() -> pb::Policy {
        pb::Policy {
            blocked_tools: vec!["Bash".into()],
            security_level: pb::SecurityLevel::Strict as i32,
            blocked_write_paths: vec!["/etc".into()],
            allowed_skills: Some(pb::StringList { values: vec![] }),
            blocked_mcp_servers: vec!["github".into()],
            allowed_web_domains: None,
            ..pb::Policy::default()
        }
    }

    #[test]
    fn schema_one_policies_are_migrated() {
        let p = policy_from_pb(pb_policy()).unwrap();
        assert_eq!(p.strings("permissions.deny"), Some(vec!["Bash"]));
        assert_eq!(p.level(), palisade_policy::SecurityLevel::Strict);
        assert_eq!(p.strings("skills.allowed"), Some(vec![]));
        assert_eq!(p.strings("files.deny_write"), Some(vec!["/etc"]));
        assert_eq!(p.get("network.allowed_domains"), None);
        assert!(
            p.on("permissions.managed_rules_only"),
            "the strict bundle is added"
        );
    }

    #[test]
    fn schema_two_round_trips() {
        let lock = palisade_policy::lockdown();
        assert_eq!(policy_from_pb(policy_to_pb(&lock)).unwrap(), lock);
    }

    #[test]
    fn a_newer_policy_is_refused_with_an_upgrade_hint() {
        let mut p = policy_to_pb(&palisade_policy::lockdown());
        p.document = r#"{"permissions":{"deny":["Bash"]},"quantum":{"lock":true}}"#.into();
        match policy_from_pb(p.clone()) {
            Err(ConvertError::Policy(e)) => {
                assert!(e.to_string().contains("quantum: unknown key"), "{e}");
                assert!(e.to_string().contains("upgrade palisade-agent"), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
        p.schema = SCHEMA_VERSION + 1;
        p.document = "{}".into();
        assert!(matches!(policy_from_pb(p), Err(ConvertError::Policy(_))));
    }

    #[test]
    fn unknown_or_unspecified_enums_are_refused() {
        let mut p = pb_policy();
        p.security_level = 0;
        assert_eq!(
            policy_from_pb(p.clone()),
            Err(ConvertError::UnspecifiedSecurityLevel)
        );
        p.security_level = 42;
        assert_eq!(
            policy_from_pb(p),
            Err(ConvertError::UnknownSecurityLevel(42))
        );
        assert_eq!(offline_rule(0), Err(ConvertError::UnspecifiedOfflineRule));
        assert_eq!(offline_rule(9), Err(ConvertError::UnknownOfflineRule(9)));
        assert_eq!(offline_rule(2), Ok(OfflineRule::Lockdown));
    }

    #[test]
    fn snapshot_conversion() {
        let s = pb::PolicySnapshot {
            version: 7,
            nonce: "n7".into(),
            policy: Some(pb_policy()),
            valid_until_unix_ms: 0,
            offline_rule: pb::OfflineRule::KeepLast as i32,
            api_key: Some("  ".into()),
            policy_sha256: "ab".into(),
            device_unverified: true,
            confirm_url: "https://cp.example/enroll/device/verify?device=d1".into(),
            ..pb::PolicySnapshot::default()
        };
        let snap = Snapshot::try_from(s.clone()).unwrap();
        assert_eq!(snap.version, 7);
        assert_eq!(snap.valid_until_unix_ms, None);
        assert_eq!(snap.api_key, None, "a blank key is no key");
        assert!(snap.device_unverified);
        assert_eq!(
            snap.confirm_url.as_deref(),
            Some("https://cp.example/enroll/device/verify?device=d1")
        );
        assert_eq!(snap.offline_rule, OfflineRule::KeepLast);

        let bad = pb::ServerMessage {
            message: Some(pb::server_message::Message::Snapshot(pb::PolicySnapshot {
                policy: None,
                ..s
            })),
        };
        match server_event(bad) {
            Some(ServerEvent::InvalidSnapshot {
                version,
                nonce,
                error,
            }) => {
                assert_eq!((version, nonce.as_str()), (7, "n7"));
                assert!(error.contains("no policy"), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(server_event(pb::ServerMessage { message: None }), None);
    }

    #[test]
    fn agent_events_convert() {
        use pb::agent_message::Message;
        let m: pb::AgentMessage = AgentEvent::Tamper(TamperRecord {
            path: "/x".into(),
            kind: TamperKind::Deleted,
            detected_at_unix_ms: 1,
            restored_at_unix_ms: 2,
        })
        .into();
        match m.message {
            Some(Message::Tamper(t)) => assert_eq!(t.kind, "deleted"),
            other => panic!("{other:?}"),
        }
        let m: pb::AgentMessage = AgentEvent::Wipe(WipeRecord {
            removed: vec!["a".into()],
            ..WipeRecord::default()
        })
        .into();
        assert!(matches!(m.message, Some(Message::Wipe(w)) if w.removed == ["a"]));
        let m: pb::AgentMessage = AgentEvent::Warning(Warning {
            code: "c".into(),
            detail: "d".into(),
        })
        .into();
        assert!(matches!(m.message, Some(Message::Warning(w)) if w.code == "c"));
    }

    #[test]
    fn refusals_are_classified() {
        let mut revoked = tonic::Status::permission_denied("device revoked");
        revoked
            .metadata_mut()
            .insert(DEVICE_STATUS_TRAILER, DEVICE_REVOKED.parse().unwrap());
        assert!(matches!(classify(&revoked), StreamError::Revoked(_)));
        // PERMISSION_DENIED without the trailer is not a wipe.
        assert!(matches!(
            classify(&tonic::Status::permission_denied("nope")),
            StreamError::Failed(_)
        ));
        assert!(matches!(
            classify(&tonic::Status::unauthenticated("who?")),
            StreamError::Unauthenticated(_)
        ));
        assert!(matches!(
            classify(&tonic::Status::unavailable("down")),
            StreamError::Failed(_)
        ));
    }

    #[test]
    fn urls_are_checked() {
        assert!(ServerTarget::new("https://cp.example.com:50051", None).is_ok());
        assert!(ServerTarget::new("http://127.0.0.1:50051", None).is_ok());
        assert!(ServerTarget::new("http://localhost:1", None).is_ok());
        assert!(ServerTarget::new("http://[::1]:1", None).is_ok());
        assert!(matches!(
            ServerTarget::new("http://cp.example.com:50051", None),
            Err(ClientError::PlaintextNotLoopback { .. })
        ));
        assert!(matches!(
            ServerTarget::new("ftp://x", None),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            ServerTarget::new("not a url", None),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            ServerTarget::new("https://x", Some(b"garbage".to_vec())),
            Err(ClientError::Tls(_))
        ));
    }
}
