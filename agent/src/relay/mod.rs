//! The local relay: key custody on the laptop. With the organisation's `key-delivery = proxy`
//! the agent (root/SYSTEM) keeps the API key and Claude Code talks to this loopback endpoint
//! (`env.ANTHROPIC_BASE_URL` in the drop-in) with a local token from its `apiKeyHelper`; the
//! relay checks the token, puts the real key in its place and forwards to the organisation's
//! upstream, passing streamed answers through as they arrive and counting the tokens each
//! answer reports. Deprovisioning, an unconfirmed device or the offline lockdown switch it to
//! refusing at once, with a message Claude Code shows.
//!
//! - [`token`]: the local token, bound to this device, its developer and a secret that each
//!   wipe replaces;
//! - [`forward`]: the request handler (check, swap, forward, meter);
//! - [`usage`]: reading `usage` from answers and the cumulative counters reported upstream;
//! - [`peer`]: on Linux, the uid owning a loopback client socket;
//! - [`server`]: hyper's server on the accepted connections, with the timeouts.

pub mod forward;
pub mod peer;
pub mod server;
pub mod token;
pub mod usage;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use token::TokenSecret;
use usage::{day_of_unix_ms, Tokens, UsageCounters};

/// Where the relay listens unless told otherwise (loopback only).
pub const DEFAULT_RELAY_ADDR: &str = "127.0.0.1:47913";
/// The upstream when the organisation names none.
pub const ANTHROPIC_API: &str = "https://api.anthropic.com";

/// Why the relay does not forward right now (the message is what Claude Code shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No enrollment (or not yet a first policy).
    NotEnrolled,
    /// The person was deprovisioned or the device revoked.
    Deprovisioned,
    /// The offline deadline passed under the `lockdown` rule.
    OfflineLockdown,
    /// The person has not confirmed this (MDM-enrolled) device.
    Unverified {
        /// Where they confirm it.
        confirm_url: Option<String>,
    },
    /// The organisation gave this person no key.
    NoKey,
    /// The organisation delivers the key with the helper instead.
    HelperDelivery,
}

impl Refusal {
    /// The message Claude Code shows the developer.
    pub fn message(&self) -> String {
        match self {
            Refusal::NotEnrolled => "Palisade: this computer is not enrolled with your organisation; \
                run `palisade-agent enroll` or ask your IT team."
                .to_owned(),
            Refusal::Deprovisioned => {
                "Palisade: your access was removed by your organisation.".to_owned()
            }
            Refusal::OfflineLockdown => "Palisade: this computer has not reached your organisation's \
                control plane for too long; access resumes when it reconnects."
                .to_owned(),
            Refusal::Unverified { confirm_url } => match confirm_url {
                Some(url) => format!(
                    "Palisade: confirm that this computer is yours to use your organisation's API key: {url}"
                ),
                None => "Palisade: this computer waits for its person to confirm it.".to_owned(),
            },
            Refusal::NoKey => {
                "Palisade: your organisation has not set an API key for you.".to_owned()
            }
            Refusal::HelperDelivery => "Palisade: your organisation delivers its key through \
                apiKeyHelper, not this relay."
                .to_owned(),
        }
    }
}

/// What the relay does with a request that carries a valid local token.
#[derive(Clone, PartialEq, Eq)]
pub enum Access {
    /// Forward to `upstream` with `key`.
    Serving {
        /// The organisation's (or group's) key.
        key: String,
        /// Base URL of the upstream API.
        upstream: String,
    },
    /// Refuse.
    Refusing(Refusal),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Serving { upstream, .. } => write!(f, "Serving {{ upstream: {upstream:?} }}"),
            Access::Refusing(r) => write!(f, "Refusing({r:?})"),
        }
    }
}

/// Whose token the relay accepts: this device's developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// This device.
    pub device_id: String,
    /// The developer's account as the token names it (uid or SID; `self` when the agent runs
    /// as the developer).
    pub developer: String,
    /// On Linux, the uid a client socket must belong to.
    pub developer_uid: Option<u32>,
}

struct Shared {
    /// Notified each time usage is counted (the agent then reports it shortly).
    recorded: tokio::sync::Notify,
    access: RwLock<Access>,
    binding: RwLock<Option<Binding>>,
    secret: RwLock<TokenSecret>,
    usage: Mutex<UsageCounters>,
    client: reqwest::Client,
    local_addr: SocketAddr,
}

/// A handle on the running relay. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Relay {
    /// Binds `addr` (which must be a loopback address) and serves on the current runtime (call
    /// it from within one).
    pub fn start(
        addr: SocketAddr,
        secret: TokenSecret,
        usage: UsageCounters,
    ) -> std::io::Result<Relay> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the relay listens on loopback only, not {addr}"),
            ));
        }
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let local_addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            // Never follow a redirect: reqwest keeps `x-api-key` on a redirect to another host,
            // which would hand the key to whoever the upstream (or an open redirect) names.
            // A 3xx goes back to the client unchanged.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(std::io::Error::other)?;
        let relay = Relay {
            shared: Arc::new(Shared {
                recorded: tokio::sync::Notify::new(),
                access: RwLock::new(Access::Refusing(Refusal::NotEnrolled)),
                binding: RwLock::new(None),
                secret: RwLock::new(secret),
                usage: Mutex::new(usage),
                client,
                local_addr,
            }),
        };
        let app = axum::Router::new()
            .fallback(forward::handle)
            .with_state(relay.clone());
        let relay_for_accept = relay.clone();
        tokio::spawn(async move {
            let listener = peer::PeerListener::new(listener, relay_for_accept);
            server::serve(listener, app).await
        });
        tracing::info!(addr = %local_addr, "relay listening");
        Ok(relay)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The base URL Claude Code is given.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.local_addr)
    }

    /// What the relay does from now on.
    pub fn set_access(&self, access: Access) {
        let mut current = write(&self.shared.access);
        if *current != access {
            tracing::info!(access = ?access, "relay access changed");
            *current = access;
        }
    }

    /// On Linux, the uid whose connections the relay accepts (besides root's).
    fn developer_uid(&self) -> Option<u32> {
        read(&self.shared.binding)
            .as_ref()
            .and_then(|b| b.developer_uid)
    }

    /// What the relay does now.
    pub fn access(&self) -> Access {
        read(&self.shared.access).clone()
    }

    /// Accepts the tokens of this device's developer (`None`: no enrollment, no token).
    pub fn bind(&self, binding: Option<Binding>) {
        *write(&self.shared.binding) = binding;
    }

    /// Replaces the token secret (after a wipe: every token issued before stops working).
    pub fn set_secret(&self, secret: TokenSecret) {
        *write(&self.shared.secret) = secret;
    }

    /// The developer's local token, while enrolled.
    pub fn local_token(&self) -> Option<String> {
        let binding = read(&self.shared.binding).clone()?;
        Some(read(&self.shared.secret).token(&binding.device_id, &binding.developer))
    }

    /// The counters, when they changed since the last call (which marks them reported).
    pub fn usage_if_changed(&self) -> Option<UsageCounters> {
        let mut u = self
            .shared
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !u.dirty {
            return None;
        }
        u.dirty = false;
        Some(u.clone())
    }

    /// The counters as they are.
    pub fn usage(&self) -> UsageCounters {
        self.shared
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Starts counters over (a new enrollment).
    pub fn reset_usage(&self) {
        *self
            .shared
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = UsageCounters::new_epoch();
    }

    fn record(&self, model: &str, tokens: &Tokens) {
        let day = day_of_unix_ms(crate::now_unix_ms());
        self.shared
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(day, model, tokens);
        self.shared.recorded.notify_one();
    }

    /// Completes once usage was counted since the last time it completed.
    pub async fn usage_recorded(&self) {
        self.shared.recorded.notified().await;
    }
}
