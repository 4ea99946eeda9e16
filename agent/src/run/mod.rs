//! `palisade-agent run`: the long-lived loop that keeps Claude Code's managed settings equal
//! to the user's effective policy.
//!
//! One task owns all state and waits, without polling, on four things: the shutdown future,
//! file-system signals (tamper, enrollment), the policy stream ([`Link`]: idle, waiting to
//! retry, connecting, up, closing), and the offline deadline. In order:
//!
//! 1. At start the cached last good policy (`policy.json`) is written before any connection
//!    (the lockdown policy instead after a wipe, or when the offline deadline already passed
//!    under the `lockdown` rule). Without a cache nothing is written.
//! 2. With a `device.json`, the agent opens `StreamPolicy` (Bearer credential, `Hello` with
//!    the last applied version); without one it watches the state directory for `enroll`.
//! 3. A snapshot is validated, the drop-in written only if its bytes change, its API key
//!    stored (or removed), the cache saved, then ACKed; an invalid snapshot is NACKed and the
//!    last good policy stays. The policy goes first so that nothing about the key (a file the
//!    developer planted, a full disk) can hold enforcement back: a key failure is a
//!    `SettingsWarning`, not a NACK. Keepalives move the deadline.
//! 4. Past the deadline without contact, `lockdown` writes [`Policy::lockdown`] until the
//!    next contact; `keep_last` keeps the policy. A stream silent past the deadline is
//!    treated as dead and reopened.
//! 5. Failures are retried with full-jitter backoff ([`Backoff`]); `UNAUTHENTICATED` too, but
//!    logged as "enroll again". `Deprovision`, or a refusal marked revoked, wipes
//!    ([`crate::credentials::wipe`]: marker, lockdown policy, files, record, in that order; a
//!    wipe interrupted by a crash is finished at the next start), reports (if the stream is up)
//!    and stays idle, guarding the lockdown file, until `enroll` writes a new `device.json`.
//! 6. A change to the drop-in by anyone else is undone and reported (queued while offline).
//!
//! [`run`] takes the shutdown future as a parameter, so `main` (SIGTERM, Ctrl-C) and a
//! Windows service wrapper (the service control manager's stop request) stop it the same way.

mod link;
mod relaying;
mod snapshot;
mod wiping;

use link::{Link, LinkEvent};
use relaying::{usage_event, usage_recorded};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::{Instant, Sleep};

use crate::config::Paths;
use crate::credentials::keyfile::{self, UserKeyFile};
use crate::credentials::wipe;
use crate::enforce::sources;
use crate::enforce::watch::{Pending, Signal, Watches};
use crate::enforce::Enforcer;
use crate::link::backoff::{Backoff, HEALTHY_AFTER};
use crate::link::grpc::{self, PolicyStream, ServerTarget, StreamError};
use crate::link::messages::{
    AgentEvent, KeyDelivery, OfflineRule, ServerEvent, Snapshot, TamperRecord, UsageSnapshot,
    Warning, WipeRecord,
};
use crate::relay::token::TokenSecret;
use crate::relay::usage::{UsageCounters, USAGE_FILE};
use crate::relay::{Access, Binding, Refusal, Relay};
use crate::state::{
    CachedPolicy, Device, PendingWipe, StateDir, Status, API_KEY_FILE, CA_FILE, DEVICE_FILE,
    UPSTREAM_KEY_FILE, WIPE_PENDING_FILE,
};
use crate::{helper_for, now_unix_ms};
use palisade_policy::{RenderOptions, TargetOs};

/// Reports kept while offline; the oldest are dropped beyond this.
const OUTBOX_LIMIT: usize = 100;
/// How long a closing stream may take to deliver the `WipeReport`.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// A keepalive alone rewrites `status.json` at most this often (its last-contact time).
const STATUS_REFRESH_MS: i64 = 60_000;
/// How long after the relay counted usage the counters are saved and reported (one report
/// covers every request of that window; an idle relay causes no wake-up at all).
const USAGE_FLUSH_AFTER: Duration = Duration::from_secs(2);

type ConnectFuture = Pin<Box<dyn Future<Output = Result<PolicyStream, StreamError>> + Send>>;

/// Runs the agent until `shutdown` completes. Errors only when it cannot start (the state
/// directory cannot be created or read); everything later is logged, retried and reported.
/// The relay listens on `relay_addr` (loopback only; `None`: no relay, and proxy key delivery
/// then serves no key at all rather than hand it to the developer's account).
pub async fn run(
    paths: Paths,
    relay_addr: Option<std::net::SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot locate the agent's own binary")?;
    let (user_key, developer_warning) = developer_key_file(&paths);
    let helper = helper_for(&exe, &paths, user_key.as_ref());
    let pending = Arc::new(Pending::default());
    let mut agent = Agent::start(paths, helper, user_key, pending.clone(), relay_addr).await?;
    if let Some(w) = developer_warning {
        agent.developer_warning = Some(w);
        agent.refresh_warnings(&mut Link::Idle).await;
    }
    let mut link = agent.initial_link();
    tokio::pin!(shutdown);
    loop {
        let deadline = agent.deadline();
        // Unbiased: a storm of file events cannot starve the stream, nor the reverse.
        tokio::select! {
            () = &mut shutdown => break,
            batch = pending.wait() => agent.on_signals(&batch, &mut link),
            event = link.next() => agent.on_link(event, &mut link).await,
            () = sleep_until(deadline) => agent.on_deadline(&mut link),
            () = usage_recorded(agent.relay.as_ref()) => agent.arm_usage_flush(),
            () = sleep_until(agent.usage_flush_at) => agent.flush_usage(&link),
        }
    }
    agent.stop();
    Ok(())
}

/// Builds the agent's single-threaded runtime and runs [`run`] on it: for callers that are not
/// async themselves, such as a Windows service's main function, whose stop request completes
/// `shutdown`.
pub fn run_blocking(
    paths: Paths,
    relay_addr: Option<std::net::SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(paths, relay_addr, shutdown))
}

/// The developer's key file, or `None` when no developer is found (the helper then reads the
/// state directory, which only works for the agent's own user).
/// On Unix, a Claude config directory that was refused (a symlink, not a directory) is also
/// reported as a `SettingsWarning`: it is what a developer tampering with `~/.claude` looks like.
fn developer_key_file(paths: &Paths) -> (Option<UserKeyFile>, Option<Warning>) {
    match UserKeyFile::for_developer(&paths.state_dir, &paths.claude_config_dir) {
        Ok(k) => {
            tracing::info!(key_file = %k.path().display(), owner = %k.owner(), "API key helper reads the developer's key file");
            (Some(k), None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => (None, None),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot find the owner of the Claude config directory: the API key helper \
                 reads the state directory, which only the agent's user can"
            );
            let refused = cfg!(unix) && e.kind() == std::io::ErrorKind::InvalidData;
            let warning = refused.then(|| Warning {
                code: sources::CODE_CLAUDE_DIR_REFUSED.to_owned(),
                detail: format!(
                    "the Claude config directory was refused ({e}): no developer key file, and \
                     the wipe will not remove credentials through it"
                ),
            });
            (None, warning)
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Agent {
    paths: Paths,
    state: StateDir,
    /// The developer's copy of the API key (Unix).
    user_key: Option<UserKeyFile>,
    enforcer: Enforcer,
    watches: Option<Watches>,
    device: Option<Device>,
    cached: Option<CachedPolicy>,
    status: Status,
    outbox: VecDeque<AgentEvent>,
    backoff: Backoff,
    /// Local clock minus server clock, from the last keepalive.
    clock_skew_ms: i64,
    /// The deadline passed and was handled; cleared by the next contact.
    expired: bool,
    offline_lockdown: bool,
    wiped: bool,
    /// Why the last snapshot's API key could not be stored or removed, reported with the
    /// other warnings until a later snapshot succeeds.
    key_warning: Option<Warning>,
    /// Why no developer was found, when `~/.claude` was refused.
    developer_warning: Option<Warning>,
    /// The `apiKeyHelper` command without the relay check.
    helper: String,
    /// Where the relay listens once an organisation asks for it (`None`: never).
    relay_addr: Option<std::net::SocketAddr>,
    /// The local relay (key custody): started the first time a policy asks for proxy delivery,
    /// so that a helper-delivery machine opens no port.
    relay: Option<Relay>,
    /// Why the relay is not listening.
    relay_warning: Option<Warning>,
    /// The organisation's key as last delivered (the relay forwards with it).
    api_key: Option<String>,
    /// When the relay's counters are next saved and reported.
    usage_flush_at: Option<Instant>,
}

impl Agent {
    async fn start(
        paths: Paths,
        helper: String,
        user_key: Option<UserKeyFile>,
        signals: Arc<Pending>,
        relay_addr: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<Agent> {
        let state = StateDir::new(&paths.state_dir);
        state.ensure().with_context(|| {
            format!(
                "cannot use the state directory {}",
                paths.state_dir.display()
            )
        })?;

        let status = state.load_status().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring unreadable status file");
            Status::default()
        });
        let device = match state.load_device() {
            Ok(d) => d,
            Err(e) if e.is_permission_denied() => return Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the enrollment; enroll again");
                None
            }
        };
        let cached = state.load_policy().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring unreadable policy cache");
            None
        });
        let opts = RenderOptions {
            api_key_helper: Some(helper.clone()),
            ..RenderOptions::default()
        };
        let enforcer = Enforcer::new(&paths.settings_dir, opts);
        let watches = match Watches::new(&paths.settings_dir, &paths.state_dir, signals) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch files: tamper protection is off");
                None
            }
        };
        let wiped = status.wiped.is_some();
        let mut agent = Agent {
            paths,
            state,
            user_key,
            enforcer,
            watches,
            device,
            cached,
            status,
            outbox: VecDeque::new(),
            backoff: Backoff::default(),
            clock_skew_ms: 0,
            expired: false,
            offline_lockdown: false,
            wiped,
            key_warning: None,
            developer_warning: None,
            helper,
            relay_addr,
            relay: None,
            relay_warning: None,
            api_key: None,
            usage_flush_at: None,
        };
        agent.resume_wipe().await;
        agent.apply_at_start();
        agent.status.connected = false;
        agent.status.pid = Some(std::process::id());
        agent.refresh_warnings(&mut Link::Idle).await;
        agent.save_status();
        Ok(agent)
    }

    /// Puts the cached (or lockdown) policy on disk before any connection.
    fn apply_at_start(&mut self) {
        if self.wiped {
            tracing::warn!("this device was wiped: keeping the lockdown policy until re-enrolled");
            self.write_lockdown();
        } else if let Some(cached) = self.cached.clone() {
            let relayed = cached.key_delivery == KeyDelivery::Proxy && self.ensure_relay();
            self.set_delivery(relayed);
            let key_file = if relayed {
                UPSTREAM_KEY_FILE
            } else {
                API_KEY_FILE
            };
            self.api_key = std::fs::read_to_string(self.state.path(key_file))
                .ok()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty());
            let past_deadline = cached
                .offline_deadline_unix_ms
                .is_some_and(|d| now_unix_ms() >= d);
            if past_deadline && cached.offline_rule == OfflineRule::Lockdown {
                tracing::warn!(
                    version = cached.version,
                    "the cached policy's offline deadline has passed (rule lockdown): \
                     writing the lockdown policy until the control plane answers"
                );
                self.expired = true;
                self.offline_lockdown = true;
                self.write_lockdown();
            } else {
                match self.enforcer.apply(&cached.policy) {
                    Ok(written) => tracing::info!(
                        version = cached.version,
                        written,
                        "applied the cached policy"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot write the cached policy");
                        self.status.last_error = Some(e.to_string());
                    }
                }
                self.expired = past_deadline;
            }
        } else {
            tracing::info!("no cached policy: nothing written until the first snapshot");
        }
        self.sync_policy_status();
        self.arm_watches();
    }

    fn initial_link(&mut self) -> Link {
        if self.device.is_none() {
            tracing::info!(
                state_dir = %self.paths.state_dir.display(),
                "not enrolled: waiting for `palisade-agent enroll`"
            );
        }
        self.connect()
    }

    /// Starts connecting, or idles (watching for an enrollment) without a device.
    fn connect(&mut self) -> Link {
        let Some(device) = &self.device else {
            self.watch_state(true);
            return Link::Idle;
        };
        let ca = match &device.ca_cert_path {
            Some(path) => match std::fs::read(path) {
                Ok(pem) => Some(pem),
                Err(e) => {
                    let msg = format!("cannot read the pinned CA {}: {e}", path.display());
                    return self.retry_later(msg);
                }
            },
            None => None,
        };
        let target = match ServerTarget::new(&device.server_url, ca) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("unusable enrollment ({e}); enroll again");
                tracing::error!("{msg}");
                self.status.last_error = Some(msg);
                self.save_status();
                self.watch_state(true);
                return Link::Idle;
            }
        };
        let version = self.hello_version();
        tracing::debug!(server = target.url(), version, "connecting");
        Link::Connecting(Box::pin(grpc::open_stream(
            target,
            device.device_credential.clone(),
            version,
        )))
    }

    fn retry_later(&mut self, error: String) -> Link {
        let delay = self.backoff.next_delay();
        tracing::warn!(
            error = %error,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "policy stream unavailable"
        );
        self.status.connected = false;
        self.status.last_error = Some(error);
        self.save_status();
        Link::Waiting(Box::pin(tokio::time::sleep(delay)))
    }

    /// The version announced in `Hello`: 0 (send everything) when the policy on disk is not
    /// the cached one, or the cache belongs to an earlier enrollment.
    fn hello_version(&self) -> u64 {
        if self.wiped || self.offline_lockdown {
            return 0;
        }
        match (&self.cached, &self.device) {
            (Some(c), Some(d)) if c.device_id == d.device_id => c.version,
            _ => 0,
        }
    }

    /// When the offline rule is due, on this machine's clock.
    fn deadline(&self) -> Option<Instant> {
        if self.expired || self.wiped {
            return None;
        }
        let deadline = self.cached.as_ref()?.offline_deadline_unix_ms?;
        let remaining = u64::try_from(deadline.saturating_sub(now_unix_ms())).unwrap_or(0);
        Some(Instant::now() + Duration::from_millis(remaining))
    }

    // -----------------------------------------------------------------------------------------
    // Stream events.

    async fn on_link(&mut self, event: LinkEvent, link: &mut Link) {
        match event {
            LinkEvent::Retry => *link = self.connect(),
            LinkEvent::Connected(stream) => self.on_connected(stream, link),
            LinkEvent::ConnectFailed(e) => self.on_stream_error(e, link).await,
            LinkEvent::Ended(error) => {
                if link.was_healthy() {
                    self.backoff.reset();
                }
                let error = error
                    .unwrap_or_else(|| StreamError::Failed("the server ended the stream".into()));
                self.on_stream_error(error, link).await;
            }
            LinkEvent::Message(event) => {
                if let Link::Up { healthy, .. } = link {
                    *healthy = true;
                }
                self.on_message(event, link).await;
            }
            LinkEvent::Closed => {
                tracing::debug!("policy stream closed");
                *link = Link::Idle;
            }
        }
    }

    fn on_connected(&mut self, stream: PolicyStream, link: &mut Link) {
        let server = self.device.as_ref().map(|d| d.server_url.clone());
        tracing::info!(
            server = server.as_deref().unwrap_or(""),
            "policy stream open"
        );
        for warning in &self.status.warnings {
            stream.send(AgentEvent::Warning(warning.clone()));
        }
        // Cumulative counters: the latest set stands for every report missed while offline.
        if let Some(relay) = &self.relay {
            let counters = relay.usage();
            if !counters.counters.is_empty() {
                stream.send(usage_event(&counters));
            }
        }
        while let Some(event) = self.outbox.pop_front() {
            if !stream.send(event.clone()) {
                self.outbox.push_front(event);
                break;
            }
        }
        self.status.connected = true;
        self.status.last_error = None;
        self.save_status();
        *link = Link::Up {
            stream,
            since: Instant::now(),
            healthy: false,
        };
    }

    async fn on_stream_error(&mut self, error: StreamError, link: &mut Link) {
        self.status.connected = false;
        match error {
            StreamError::Revoked(_) => {
                tracing::warn!(%error, "wiping this device");
                *link = Link::Idle;
                self.wipe(error.to_string(), link).await;
            }
            StreamError::Unauthenticated(_) => {
                tracing::error!(%error, "not wiping; retrying with backoff");
                *link = self.retry_later(error.to_string());
            }
            StreamError::Failed(_) => *link = self.retry_later(error.to_string()),
        }
    }

    async fn on_message(&mut self, event: ServerEvent, link: &mut Link) {
        self.status.last_contact_unix_ms = Some(now_unix_ms());
        match event {
            ServerEvent::Snapshot(snapshot) => {
                let reply = self.apply_snapshot(snapshot);
                send(link, reply);
                // The watches were armed after the write: a change made in between raised no
                // event, so the file is compared once now (a no-op when it is ours).
                self.check_drop_in(now_unix_ms(), link);
                self.refresh_warnings(link).await;
            }
            ServerEvent::InvalidSnapshot {
                version,
                nonce,
                error,
            } => {
                tracing::warn!(version, %error, "refusing a snapshot; keeping the last good policy");
                self.status.last_error = Some(format!("policy version {version} refused: {error}"));
                send(
                    link,
                    AgentEvent::Nack {
                        version,
                        nonce,
                        error,
                    },
                );
            }
            ServerEvent::Keepalive {
                valid_until_unix_ms,
                server_time_unix_ms,
            } => {
                let lifted = self.on_keepalive(valid_until_unix_ms, server_time_unix_ms);
                let recent = now_unix_ms().saturating_sub(self.status.updated_at_unix_ms)
                    < STATUS_REFRESH_MS;
                if recent && !lifted {
                    return;
                }
                // Sources outside the agent's watches (server-managed settings fetched by
                // Claude Code, MDM profiles) are looked at again at most once a minute.
                self.refresh_warnings(link).await;
            }
            ServerEvent::Deprovision { reason } => {
                tracing::warn!(%reason, "deprovisioned by the control plane: wiping");
                self.wipe(format!("deprovisioned: {reason}"), link).await;
            }
        }
        self.save_status();
    }

    /// Moves the deadline; returns whether an offline lockdown was lifted.
    fn on_keepalive(&mut self, valid_until: Option<i64>, server_time: Option<i64>) -> bool {
        if let Some(server_now) = server_time {
            self.clock_skew_ms = now_unix_ms().saturating_sub(server_now);
        }
        self.expired = false;
        let skew = self.clock_skew_ms;
        if let Some(cached) = &mut self.cached {
            if valid_until.is_some() {
                cached.valid_until_unix_ms = valid_until;
            }
            let old = cached.offline_deadline_unix_ms;
            cached.offline_deadline_unix_ms =
                cached.valid_until_unix_ms.map(|v| v.saturating_add(skew));
            let persist = self.offline_lockdown
                || should_persist_deadline(old, cached.offline_deadline_unix_ms, now_unix_ms());
            if persist {
                if let Err(e) = self.state.save_policy(cached) {
                    tracing::warn!(error = %e, "cannot save the new deadline");
                }
            }
        }
        let mut lifted = false;
        if self.offline_lockdown {
            // Contact is back and no newer snapshot came: the cached policy is current.
            if let Some(cached) = self.cached.clone() {
                match self.enforcer.apply(&cached.policy) {
                    Ok(_) => {
                        tracing::info!(
                            version = cached.version,
                            "contact restored: lockdown lifted"
                        );
                        self.offline_lockdown = false;
                        lifted = true;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot restore the cached policy"),
                }
                self.arm_watches();
            }
        }
        self.sync_policy_status();
        lifted
    }

    fn on_deadline(&mut self, link: &mut Link) {
        self.expired = true;
        let Some(rule) = self.cached.as_ref().map(|c| c.offline_rule) else {
            return;
        };
        match rule {
            OfflineRule::Lockdown if !self.offline_lockdown && !self.wiped => {
                tracing::warn!(
                    "no contact with the control plane before the policy's deadline \
                     (rule lockdown): writing the lockdown policy"
                );
                self.offline_lockdown = true;
                self.write_lockdown();
            }
            OfflineRule::Lockdown => {}
            OfflineRule::KeepLast => tracing::warn!(
                "no contact with the control plane before the policy's deadline \
                 (rule keep_last): keeping the last policy"
            ),
        }
        if matches!(link, Link::Up { .. }) {
            tracing::warn!("the policy stream stayed silent past the deadline: reconnecting");
            self.status.connected = false;
            *link = self.connect();
        }
        self.sync_policy_status();
        self.save_status();
    }

    // -----------------------------------------------------------------------------------------
    // Wipe.

    fn on_signals(&mut self, batch: &[Signal], link: &mut Link) {
        let detected = batch
            .iter()
            .filter_map(|s| match s {
                Signal::DropIn { at_unix_ms } => Some(*at_unix_ms),
                Signal::Enrollment => None,
            })
            .min();
        if let Some(detected_at) = detected {
            self.check_drop_in(detected_at, link);
        }
        if batch.contains(&Signal::Enrollment) {
            self.check_enrollment(link);
        }
    }

    fn check_drop_in(&mut self, detected_at: i64, link: &mut Link) {
        match self.enforcer.restore() {
            Ok(Some(kind)) => {
                let record = TamperRecord {
                    path: self.enforcer.path().display().to_string(),
                    kind,
                    detected_at_unix_ms: detected_at,
                    restored_at_unix_ms: now_unix_ms(),
                };
                tracing::warn!(
                    path = %record.path,
                    kind = kind.as_str(),
                    "the policy file was changed by someone else: restored"
                );
                self.status.last_tamper = Some(record.clone());
                self.status.tamper_count = self.status.tamper_count.saturating_add(1);
                self.save_status();
                self.report(AgentEvent::Tamper(record), link);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot restore the policy file");
                self.status.last_error = Some(format!("cannot restore the policy file: {e}"));
                self.save_status();
            }
        }
        self.arm_watches();
    }

    fn check_enrollment(&mut self, link: &mut Link) {
        if self.device.is_some() {
            return;
        }
        match self.state.load_device() {
            Ok(Some(device)) => {
                tracing::info!(
                    device_id = %device.device_id,
                    user = %device.user_name,
                    "enrolled: connecting"
                );
                self.device = Some(device);
                self.watch_state(false);
                self.backoff.reset();
                *link = self.connect();
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the new enrollment yet"),
        }
    }

    /// Sends a report now, or keeps it for the next stream.
    fn report(&mut self, event: AgentEvent, link: &Link) {
        if link.stream().is_some_and(|s| s.send(event.clone())) {
            return;
        }
        if self.outbox.len() >= OUTBOX_LIMIT {
            self.outbox.pop_front();
        }
        self.outbox.push_back(event);
    }

    async fn refresh_warnings(&mut self, link: &mut Link) {
        let policy = self.cached.as_ref().map(|c| &c.policy);
        let mut warnings = sources::detect(
            &self.paths.settings_dir,
            &self.paths.claude_config_dir,
            policy,
            TargetOs::current(),
        )
        .await;
        warnings.extend(self.key_warning.clone());
        warnings.extend(self.developer_warning.clone());
        warnings.extend(self.relay_warning.clone());
        if self.watches.is_none() {
            warnings.push(Warning {
                code: sources::CODE_NO_TAMPER_WATCH.to_owned(),
                detail: "the agent cannot watch its settings file: changes are not undone".into(),
            });
        }
        warnings.sort();
        if warnings == self.status.warnings {
            return;
        }
        for w in warnings
            .iter()
            .filter(|w| !self.status.warnings.contains(w))
        {
            tracing::warn!(code = %w.code, "{}", w.detail);
            if let Some(stream) = link.stream() {
                stream.send(AgentEvent::Warning(w.clone()));
            }
        }
        self.status.warnings = warnings;
        self.save_status();
    }

    // -----------------------------------------------------------------------------------------
    // Helpers.

    fn arm_watches(&mut self) {
        if let Some(w) = &mut self.watches {
            if let Err(e) = w.arm_drop_in() {
                tracing::warn!(error = %e, "cannot watch the policy file");
            }
        }
    }

    fn watch_state(&mut self, on: bool) {
        if let Some(w) = &mut self.watches {
            if let Err(e) = w.watch_state(on) {
                tracing::warn!(error = %e, "cannot watch the state directory for enrollment");
            }
        }
    }

    fn sync_policy_status(&mut self) {
        let s = &mut self.status;
        match &self.cached {
            Some(c) => {
                s.applied_version = c.version;
                s.policy_sha256 = Some(c.sha256.clone());
                s.offline_deadline_unix_ms = c.offline_deadline_unix_ms;
                s.offline_rule = Some(c.offline_rule);
            }
            None => {
                s.applied_version = 0;
                s.policy_sha256 = None;
                s.offline_deadline_unix_ms = None;
                s.offline_rule = None;
            }
        }
        s.offline_lockdown = self.offline_lockdown;
        self.sync_relay();
    }

    fn save_status(&mut self) {
        self.status.updated_at_unix_ms = now_unix_ms();
        if let Err(e) = self.state.save_status(&self.status) {
            tracing::warn!(error = %e, "cannot save status");
        }
    }

    fn stop(&mut self) {
        tracing::info!("stopping");
        self.status.connected = false;
        self.status.pid = None;
        self.status.relay = None;
        self.save_status();
    }
}

/// Whether a moved deadline is worth rewriting `policy.json` for. Keepalives move it every
/// few seconds; the copy on disk only matters after a restart, where a deadline that is a
/// little early is safe. So: when it moved by a tenth of the time left, and at least a minute.
fn should_persist_deadline(saved: Option<i64>, new: Option<i64>, now: i64) -> bool {
    match (saved, new) {
        (Some(saved), Some(new)) => {
            let remaining = new.saturating_sub(now).max(0);
            new.saturating_sub(saved).abs() >= (remaining / 10).max(60_000)
        }
        (None, None) => false,
        _ => true,
    }
}

fn joined(failed: Vec<String>) -> Result<(), String> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

fn send(link: &Link, event: AgentEvent) {
    if let Some(stream) = link.stream() {
        stream.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_persisted_when_it_moved_enough() {
        let now = 1_000_000_000;
        let week = 7 * 24 * 3_600_000;
        // A 30 s keepalive step on a week of grace: not worth a write.
        assert!(!should_persist_deadline(
            Some(now + week - 30_000),
            Some(now + week),
            now
        ));
        // A day's movement on a week: yes.
        assert!(should_persist_deadline(
            Some(now + week - 86_400_000),
            Some(now + week),
            now
        ));
        // Short grace: a minute's movement is enough.
        assert!(should_persist_deadline(
            Some(now + 60_000),
            Some(now + 120_000),
            now
        ));
        assert!(!should_persist_deadline(
            Some(now + 90_000),
            Some(now + 120_000),
            now
        ));
        assert!(should_persist_deadline(None, Some(now), now));
        assert!(should_persist_deadline(Some(now), None, now));
        assert!(!should_persist_deadline(None, None, now));
    }

    #[test]
    fn the_run_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let paths = Paths {
            settings_dir: "/nonexistent/s".into(),
            state_dir: "/nonexistent/st".into(),
            claude_config_dir: "/nonexistent/c".into(),
            state_dir_is_default: false,
        };
        // Built, never polled: a multi-threaded service wrapper may spawn it.
        let fut = run(paths, None, std::future::pending::<()>());
        assert_send(&fut);
    }
}
