//! `AgentService` implementation: enrollment, and one task per connected stream that sends
//! snapshots newer than what the agent applied, keepalives with the validity deadline, and
//! deprovisioning; it records ACKs, NACKs, tamper and wipe reports.

use std::pin::Pin;
use std::time::Duration;

use palisade_proto::v1 as pb;
use palisade_proto::v1::agent_message::Message as AgentMsg;
use palisade_proto::v1::server_message::Message as ServerMsg;
use palisade_proto::{DEVICE_REVOKED, DEVICE_STATUS_TRAILER};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::progress::ProgressRecorder;
use super::reports::{self, Coalescer, OwnedReport, ReportLimiter};
use crate::distribution::hub::Wakeup;
use crate::distribution::Distributor;
use crate::domain::{now_micros, DeviceAuth};
use crate::store::{DeviceReport, StoreError};
use palisade_policy::Policy;

/// Timing of the policy stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// How often an idle stream carries a keepalive (and the refreshed validity deadline).
    pub keepalive: Duration,
    /// How long an agent waits for the first message before the server gives up on it.
    pub hello_timeout: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            keepalive: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(30),
        }
    }
}

/// The service, shared by every connection.
#[derive(Clone)]
pub struct AgentGrpc {
    pub(super) distributor: Distributor,
    settings: StreamSettings,
    progress: ProgressRecorder,
    /// The control plane's public HTTP base URL, for the sign-in pages' links.
    pub(super) public_url: String,
    reports: ReportLimiter,
    /// Turns true when the control plane begins to shut down: every stream then ends with
    /// UNAVAILABLE so its agent reconnects (with jitter) to another replica.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl AgentGrpc {
    pub fn new(
        distributor: Distributor,
        settings: StreamSettings,
        public_url: String,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> AgentGrpc {
        let progress = ProgressRecorder::spawn(distributor.store.clone());
        AgentGrpc {
            distributor,
            settings,
            progress,
            public_url,
            reports: ReportLimiter::new(),
            stopping,
        }
    }
}

pub(super) fn internal(e: StoreError) -> Status {
    tracing::error!(error = %e, "store failure while serving an agent");
    Status::internal("internal error; retry later")
}

pub(super) fn bearer<T>(req: &Request<T>) -> Option<String> {
    let v = req.metadata().get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The answer to a revoked device: PERMISSION_DENIED plus a trailer the agent recognises.
fn revoked_status(reason: &str) -> Status {
    let mut status = Status::permission_denied(format!(
        "this device was revoked ({reason}); the agent must wipe"
    ));
    status.metadata_mut().insert(
        DEVICE_STATUS_TRAILER,
        MetadataValue::from_static(DEVICE_REVOKED),
    );
    status
}

/// Resolves once the control plane begins to shut down.
async fn until_stopping(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

fn unix_ms(micros: i64) -> i64 {
    micros / 1000
}

type ServerStream = Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentGrpc {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        self.enroll_rpc(request).await
    }

    async fn start_sign_in(
        &self,
        request: Request<pb::StartSignInRequest>,
    ) -> Result<Response<pb::StartSignInResponse>, Status> {
        self.start_sign_in_rpc(request).await
    }

    async fn poll_sign_in(
        &self,
        request: Request<pb::PollSignInRequest>,
    ) -> Result<Response<pb::PollSignInResponse>, Status> {
        self.poll_sign_in_rpc(request).await
    }

    type StreamPolicyStream = ServerStream;

    async fn stream_policy(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<ServerStream>, Status> {
        let credential =
            bearer(&request).ok_or_else(|| Status::unauthenticated("missing device credential"))?;
        let device = self
            .distributor
            .store
            .authenticate_device(&credential)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::unauthenticated("unknown device credential; enroll again"))?;
        if let Some(reason) = &device.revoked_reason {
            // A revoked credential can reconnect in a loop: its reconnections share the
            // device's report budget, and the store coalesces the rows.
            if !self.reports.allow(&device.device_id) {
                return Err(revoked_status(reason));
            }
            if let Err(e) = self
                .distributor
                .store
                .record_device_report(&device.device_id, DeviceReport::RefusedRevoked)
                .await
            {
                tracing::error!(error = %e, "recording a revoked device's reconnection failed");
            }
            return Err(revoked_status(reason));
        }
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let session = Session {
            grpc: self.clone(),
            device,
            tx,
            reports: std::sync::Mutex::new(Coalescer::default()),
            usage: std::sync::Mutex::new(None),
        };
        tokio::spawn(session.run(inbound));
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as ServerStream
        ))
    }
}

/// One connected stream.
struct Session {
    grpc: AgentGrpc,
    device: DeviceAuth,
    tx: mpsc::Sender<Result<pb::ServerMessage, Status>>,
    /// Reports gathered since the last flush (the session's own task is the only user).
    reports: std::sync::Mutex<Coalescer>,
    /// The latest usage report since the last flush (cumulative: it supersedes earlier ones).
    usage: std::sync::Mutex<Option<crate::domain::usage::UsageReport>>,
}

impl Session {
    async fn send(&self, m: ServerMsg) -> bool {
        self.tx
            .send(Ok(pb::ServerMessage { message: Some(m) }))
            .await
            .is_ok()
    }

    async fn run(self, inbound: Streaming<pb::AgentMessage>) {
        self.serve(inbound).await;
        // Whatever way the stream ended, gathered reports are written.
        self.flush_reports().await;
    }

    fn coalescer(&self) -> std::sync::MutexGuard<'_, Coalescer> {
        self.reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn flush_reports(&self) {
        let writes = self.coalescer().flush();
        if !writes.is_empty() {
            reports::write(&self.grpc.distributor.store, &self.device.device_id, writes).await;
        }
        let usage = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(report) = usage {
            let d = &self.device;
            if let Err(e) = self
                .grpc
                .distributor
                .store
                .record_usage(&d.org_id, &d.user_id, &d.device_id, &report)
                .await
            {
                tracing::error!(device_id = %d.device_id, error = %e, "recording usage failed");
            }
        }
    }

    /// Takes one report: counted against the device's budget, written now if it is the first
    /// of its kind in a while, gathered otherwise.
    async fn report(&self, report: OwnedReport) {
        let allowed = self.grpc.reports.allow(&self.device.device_id);
        let now = self.coalescer().add(report, allowed);
        if let Some(write) = now {
            tracing::warn!(device_id = %self.device.device_id, report = ?write.0, "agent report (repeats within the flush interval are counted in its audit entry)");
            reports::write(
                &self.grpc.distributor.store,
                &self.device.device_id,
                vec![write],
            )
            .await;
        }
    }

    async fn serve(&self, mut inbound: Streaming<pb::AgentMessage>) {
        let d = &self.grpc.distributor;
        let device_id = self.device.device_id.clone();
        let user_id = self.device.user_id.clone();
        // The agent speaks first: Hello with the version it applied.
        let hello =
            match tokio::time::timeout(self.grpc.settings.hello_timeout, inbound.next()).await {
                Ok(Some(Ok(pb::AgentMessage {
                    message: Some(AgentMsg::Hello(h)),
                }))) => h,
                Ok(Some(Ok(_))) => {
                    let _ = self
                        .tx
                        .send(Err(Status::invalid_argument(
                            "the first message must be Hello",
                        )))
                        .await;
                    return;
                }
                _ => return,
            };
        let (_registration, mut wakeups) = d.hub.register(&user_id, &device_id);
        self.grpc.progress.seen(&device_id);
        let mut last_sent = hello.last_applied_version;
        let mut pending_nonce = String::new();
        // Recompute on connect: it repairs any change this process missed while the agent was away.
        if let Err(e) = d.recompute_user(&user_id).await {
            tracing::error!(error = %e, "recompute on connect failed");
        }
        match self.send_if_newer(&mut last_sent, &mut pending_nonce).await {
            Ok(true) | Ok(false) => {}
            Err(()) => return,
        }
        let mut keepalive = tokio::time::interval(self.grpc.settings.keepalive);
        keepalive.tick().await;
        let mut flush = tokio::time::interval(reports::FLUSH_INTERVAL);
        flush.tick().await;
        let mut deprovisioned = false;
        let stopping = until_stopping(self.grpc.stopping.clone());
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => {
                    self.flush_reports().await;
                    let _ = self
                        .tx
                        .send(Err(Status::unavailable(
                            "the control plane is shutting down; reconnect",
                        )))
                        .await;
                    return;
                }
                w = wakeups.recv() => match w {
                    Some(Wakeup::PolicyChanged) if !deprovisioned => {
                        match self.send_if_newer(&mut last_sent, &mut pending_nonce).await {
                            Err(()) => return,
                            Ok(true) => {}
                            // Nothing newer: the wake-up may stand for a revocation whose own
                            // wake-up was dropped (a full queue); the device's row settles it.
                            Ok(false) => match d.store.device_revocation(&device_id).await {
                                Ok(Some(reason)) => {
                                    deprovisioned = true;
                                    if !self.send(ServerMsg::Deprovision(pb::Deprovision { reason })).await { return; }
                                }
                                Ok(None) => {}
                                Err(e) => tracing::warn!(%device_id, error = %e, "cannot read the device's revocation"),
                            },
                        }
                    }
                    Some(Wakeup::Deprovision { reason }) if !deprovisioned => {
                        deprovisioned = true;
                        if !self.send(ServerMsg::Deprovision(pb::Deprovision { reason })).await { return; }
                    }
                    Some(_) => {}
                    None => return,
                },
                m = inbound.next() => match m {
                    Some(Ok(pb::AgentMessage { message: Some(msg) })) => {
                        if self.handle(msg, &pending_nonce).await.is_err() { return; }
                        if deprovisioned { /* keep reading until the wipe report or the agent hangs up */ }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::debug!(%device_id, error = %e, "agent stream ended with an error");
                        return;
                    }
                    None => return,
                },
                _ = flush.tick() => self.flush_reports().await,
                _ = keepalive.tick() => {
                    if deprovisioned { continue; }
                    let valid_until = self.valid_until().await;
                    let ka = pb::Keepalive { valid_until_unix_ms: valid_until, server_time_unix_ms: unix_ms(now_micros()) };
                    if !self.send(ServerMsg::Keepalive(ka)).await { return; }
                }
            }
        }
    }

    async fn valid_until(&self) -> i64 {
        let grace = self
            .grpc
            .distributor
            .store
            .org_settings(&self.device.org_id)
            .await
            .map(|s| s.offline_grace_seconds)
            .unwrap_or(7 * 24 * 3600);
        unix_ms(now_micros()) + grace.saturating_mul(1000)
    }

    /// Sends the stored policy if it is newer than what the agent has. `Err` when the stream is gone.
    async fn send_if_newer(&self, last_sent: &mut u64, nonce: &mut String) -> Result<bool, ()> {
        let d = &self.grpc.distributor;
        let stored = match d.store.stored_user_policy(&self.device.user_id).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(false),
            Err(e) => {
                tracing::error!(error = %e, "reading a stored policy failed");
                return Ok(false);
            }
        };
        let version = u64::try_from(stored.version).unwrap_or(0);
        if version <= *last_sent {
            return Ok(false);
        }
        // A stored schema-1 policy (written before an upgrade) is migrated on the way out.
        let policy = match Policy::from_value(&stored.policy) {
            Ok(loaded) => loaded.policy,
            Err(e) => {
                tracing::error!(error = %e, "stored policy is corrupt");
                return Ok(false);
            }
        };
        let settings = d
            .store
            .org_settings(&self.device.org_id)
            .await
            .unwrap_or_default();
        // Read now, not at connection: the device may have been verified since (its person
        // confirmed it) and the key goes only to a verified device of a person who is active
        // right now — an enrollment that raced a deactivation must never receive it.
        let standing = match d.store.device_standing(&self.device.device_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "checking the device before sending a snapshot failed");
                return Ok(false);
            }
        };
        let key_allowed = standing.verified && standing.live && standing.user_active;
        let api_key = if key_allowed {
            d.api_key_for(&stored.org_id, stored.api_key_ref.as_deref())
                .await
        } else {
            None
        };
        *nonce = uuid::Uuid::new_v4().simple().to_string();
        let snapshot = pb::PolicySnapshot {
            version,
            nonce: nonce.clone(),
            policy: Some(convert::policy(&policy)),
            valid_until_unix_ms: unix_ms(now_micros())
                + settings.offline_grace_seconds.saturating_mul(1000),
            offline_rule: convert::offline_rule(settings.offline_rule) as i32,
            key_delivery: convert::key_delivery(settings.key_delivery) as i32,
            upstream_url: settings.upstream_url.clone().unwrap_or_default(),
            api_key,
            policy_sha256: stored.policy_sha256,
            device_unverified: !standing.verified,
            confirm_url: if standing.verified {
                String::new()
            } else {
                format!(
                    "{}/enroll/device/verify?device={}",
                    self.grpc.public_url.trim_end_matches('/'),
                    self.device.device_id
                )
            },
        };
        if !self.send(ServerMsg::Snapshot(snapshot)).await {
            return Err(());
        }
        *last_sent = version;
        Ok(true)
    }

    async fn handle(&self, msg: AgentMsg, pending_nonce: &str) -> Result<(), ()> {
        let id = &self.device.device_id;
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        // Logged at debug per report: a flood must not flood the log either; the audit row
        // carries the count.
        let report = match msg {
            AgentMsg::Ack(a) if a.nonce == pending_nonce => {
                self.grpc.progress.applied(id, as_i64(a.version));
                return Ok(());
            }
            AgentMsg::Nack(n) if n.nonce == pending_nonce => {
                tracing::debug!(device_id = %id, version = n.version, error = %n.error, "agent rejected a policy");
                OwnedReport::Rejected {
                    version: as_i64(n.version),
                    error: n.error,
                }
            }
            // A reply to an older snapshot is superseded (xDS nonce rule).
            AgentMsg::Ack(_) | AgentMsg::Nack(_) | AgentMsg::Hello(_) => return Ok(()),
            AgentMsg::Tamper(t) => {
                tracing::debug!(device_id = %id, path = %t.path, kind = %t.kind, "agent restored tampered settings");
                OwnedReport::Tampered {
                    path: t.path,
                    kind: t.kind,
                }
            }
            AgentMsg::Wipe(w) => {
                tracing::info!(device_id = %id, removed = w.removed.len(), failed = w.failed.len(), "agent wiped");
                OwnedReport::Wiped {
                    removed: w.removed,
                    failed: w.failed,
                }
            }
            AgentMsg::Usage(u) => {
                match super::usage::checked(u) {
                    Ok(report) => {
                        *self
                            .usage
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report);
                    }
                    Err(error) => {
                        tracing::debug!(device_id = %id, %error, "refused a usage report");
                    }
                }
                return Ok(());
            }
            AgentMsg::Warning(w) => {
                tracing::debug!(device_id = %id, code = %w.code, detail = %w.detail, "agent warning");
                OwnedReport::Warning {
                    code: w.code,
                    detail: w.detail,
                }
            }
        };
        self.report(report).await;
        Ok(())
    }
}
