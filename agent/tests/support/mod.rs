//! Test harness for the agent's end-to-end tests: a scripted, in-process fake control plane
//! (a tonic `AgentService` on 127.0.0.1:0) and helpers that run the real `palisade-agent`
//! binary with temporary directories and poll the file system.
// Test scaffolding: a failed unwrap is a failed test.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_agent::link::messages::OfflineRule;
use palisade_agent::{api_key_helper_command, render_bytes, Policy, RenderOptions};
use palisade_proto::v1 as pb;
use palisade_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use palisade_proto::{DEVICE_REVOKED, DEVICE_STATUS_TRAILER};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub const BIN: &str = env!("CARGO_BIN_EXE_palisade-agent");
pub const TOKEN: &str = "enroll-token-good";
pub const USER: &str = "alice@example.com";
pub const DEVICE_ID: &str = "device-0001";
pub const CREDENTIAL: &str = "device-credential-0001";
pub const ORG: &str = "acme";
pub const API_KEY: &str = "sk-ant-api03-test-key";

/// How long any single expectation may take.
pub const WAIT: Duration = Duration::from_secs(45);

// ---------------------------------------------------------------------------------------------
// Fake control plane.

/// How the fake answers `StreamPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Revoked,
    Unauthenticated,
    Unavailable,
}

/// What the fake saw.
#[derive(Debug, Clone)]
pub enum Seen {
    Connected { authorization: Option<String> },
    Message(pb::AgentMessage),
    Disconnected,
}

type Outbound = mpsc::UnboundedSender<Result<pb::ServerMessage, Status>>;

struct Inner {
    mode: Mutex<Mode>,
    current: Mutex<Option<Outbound>>,
    seen: mpsc::UnboundedSender<Seen>,
    connections: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeService(Arc<Inner>);

#[tonic::async_trait]
impl AgentService for FakeService {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let r = request.into_inner();
        if r.enroll_token != TOKEN {
            return Err(Status::permission_denied(
                "enrollment token is invalid, expired or revoked",
            ));
        }
        if r.user_name != USER {
            return Err(Status::not_found(format!(
                "no active user `{}` in organisation {ORG}",
                r.user_name
            )));
        }
        assert!(!r.hostname.is_empty() && !r.agent_version.is_empty());
        Ok(Response::new(pb::EnrollResponse {
            device_id: DEVICE_ID.into(),
            device_credential: CREDENTIAL.into(),
            org_slug: ORG.into(),
            user_name: USER.into(),
            verified: true,
        }))
    }

    async fn start_sign_in(
        &self,
        _request: Request<pb::StartSignInRequest>,
    ) -> Result<Response<pb::StartSignInResponse>, Status> {
        Err(Status::unimplemented("the fake server has no sign-in"))
    }

    async fn poll_sign_in(
        &self,
        _request: Request<pb::PollSignInRequest>,
    ) -> Result<Response<pb::PollSignInResponse>, Status> {
        Err(Status::unimplemented("the fake server has no sign-in"))
    }

    type StreamPolicyStream =
        Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send + 'static>>;

    async fn stream_policy(
        &self,
        request: Request<tonic::Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::StreamPolicyStream>, Status> {
        let inner = self.0.clone();
        inner.connections.fetch_add(1, Ordering::SeqCst);
        let mode = *inner.mode.lock().unwrap();
        match mode {
            Mode::Accept => {}
            Mode::Revoked => {
                let mut status = Status::permission_denied("device revoked");
                status
                    .metadata_mut()
                    .insert(DEVICE_STATUS_TRAILER, DEVICE_REVOKED.parse().unwrap());
                return Err(status);
            }
            Mode::Unauthenticated => {
                return Err(Status::unauthenticated("unknown device credential"))
            }
            Mode::Unavailable => return Err(Status::unavailable("control plane in maintenance")),
        }
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if authorization.as_deref() != Some(&format!("Bearer {CREDENTIAL}")) {
            return Err(Status::unauthenticated("unknown device credential"));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        *inner.current.lock().unwrap() = Some(tx.clone());
        let _ = inner.seen.send(Seen::Connected { authorization });
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let _ = inner.seen.send(Seen::Message(msg));
            }
            let _ = inner.seen.send(Seen::Disconnected);
            let mut current = inner.current.lock().unwrap();
            if current.as_ref().is_some_and(|c| c.same_channel(&tx)) {
                *current = None;
            }
            // Dropping the last sender ends the response stream.
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub tls: bool,
    svc: FakeService,
    seen: mpsc::UnboundedReceiver<Seen>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        FakeServer::start_with(None).await
    }

    /// TLS with this certificate chain and key (PEM).
    pub async fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> FakeServer {
        FakeServer::start_with(Some((cert_pem.to_vec(), key_pem.to_vec()))).await
    }

    async fn start_with(tls: Option<(Vec<u8>, Vec<u8>)>) -> FakeServer {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let svc = FakeService(Arc::new(Inner {
            mode: Mutex::new(Mode::Accept),
            current: Mutex::new(None),
            seen: seen_tx,
            connections: AtomicUsize::new(0),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let mut builder = tonic::transport::Server::builder();
        let is_tls = tls.is_some();
        if let Some((cert, key)) = tls {
            builder = builder
                .tls_config(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(cert, key)),
                )
                .unwrap();
        }
        let router = builder.add_service(AgentServiceServer::new(svc.clone()));
        let handle = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stop.await;
                })
                .await;
        });
        FakeServer {
            addr,
            tls: is_tls,
            svc,
            seen,
            shutdown: Some(shutdown),
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.svc.0.mode.lock().unwrap() = mode;
    }

    pub fn connections(&self) -> usize {
        self.svc.0.connections.load(Ordering::SeqCst)
    }

    /// Sends to the most recent open stream.
    pub fn send(&self, msg: pb::ServerMessage) {
        let current = self.svc.0.current.lock().unwrap();
        let tx = current.as_ref().expect("no open policy stream");
        tx.send(Ok(msg)).expect("policy stream closed");
    }

    /// Ends the most recent stream with an error status.
    pub fn kick(&self, status: Status) {
        if let Some(tx) = self.svc.0.current.lock().unwrap().take() {
            let _ = tx.send(Err(status));
        }
    }

    /// The next thing seen that `f` accepts, skipping others; panics after [`WAIT`].
    pub async fn expect<T>(&mut self, what: &str, mut f: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(seen)) => {
                    if let Some(t) = f(&seen) {
                        return t;
                    }
                    skipped.push(seen);
                }
                Ok(None) => panic!("fake server gone while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; saw {skipped:#?}"),
            }
        }
    }

    pub async fn expect_hello(&mut self) -> pb::Hello {
        self.expect("Hello", |s| match s {
            Seen::Message(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Hello(h)),
            }) => Some(h.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_ack(&mut self) -> pb::Ack {
        self.expect("Ack", |s| match s {
            Seen::Message(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Ack(a)),
            }) => Some(a.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_nack(&mut self) -> pb::Nack {
        self.expect("Nack", |s| match s {
            Seen::Message(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Nack(n)),
            }) => Some(n.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_tamper(&mut self) -> pb::TamperReport {
        self.expect("TamperReport", |s| match s {
            Seen::Message(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Tamper(t)),
            }) => Some(t.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_wipe(&mut self) -> pb::WipeReport {
        self.expect("WipeReport", |s| match s {
            Seen::Message(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Wipe(w)),
            }) => Some(w.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_warning(&mut self, code: &str) -> pb::SettingsWarning {
        self.expect(&format!("SettingsWarning {code}"), |s| match s {
            Seen::Message(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Warning(w)),
            }) if w.code == code => Some(w.clone()),
            _ => None,
        })
        .await
    }

    /// Stops serving (after the agents using it were stopped, or their streams kicked).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut *Box::pin(handle))
                .await
                .is_err()
            {
                // A stream still open holds graceful shutdown; the listener is closed anyway.
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.

/// A policy from its JSON form (panics on an invalid one: tests write valid ones).
pub fn policy_of(v: serde_json::Value) -> Policy {
    Policy::from_value(&v).expect("a valid test policy").policy
}

pub fn snapshot(
    version: u64,
    policy: &Policy,
    api_key: Option<&str>,
    valid_until_unix_ms: i64,
    rule: OfflineRule,
) -> pb::ServerMessage {
    let wire = palisade_agent::link::grpc::policy_to_pb(policy);
    snapshot_of(version, wire, api_key, valid_until_unix_ms, rule)
}

/// A snapshot carrying `policy` as is on the wire (for invalid ones).
pub fn snapshot_of(
    version: u64,
    policy: pb::Policy,
    api_key: Option<&str>,
    valid_until_unix_ms: i64,
    rule: OfflineRule,
) -> pb::ServerMessage {
    let offline_rule = match rule {
        OfflineRule::KeepLast => pb::OfflineRule::KeepLast,
        OfflineRule::Lockdown => pb::OfflineRule::Lockdown,
    };
    pb::ServerMessage {
        message: Some(pb::server_message::Message::Snapshot(pb::PolicySnapshot {
            version,
            nonce: format!("nonce-{version}"),
            policy: Some(policy),
            valid_until_unix_ms,
            offline_rule: offline_rule as i32,
            api_key: api_key.map(str::to_owned),
            policy_sha256: format!("sha-{version}"),
            ..Default::default()
        })),
    }
}

pub fn keepalive(valid_until_unix_ms: i64) -> pb::ServerMessage {
    pb::ServerMessage {
        message: Some(pb::server_message::Message::Keepalive(pb::Keepalive {
            valid_until_unix_ms,
            server_time_unix_ms: now_ms(),
        })),
    }
}

pub fn deprovision(reason: &str) -> pb::ServerMessage {
    pb::ServerMessage {
        message: Some(pb::server_message::Message::Deprovision(pb::Deprovision {
            reason: reason.into(),
        })),
    }
}

pub fn now_ms() -> i64 {
    palisade_agent::now_unix_ms()
}

/// A deadline far enough away not to matter in a test.
pub fn far_future() -> i64 {
    now_ms() + 3_600_000
}

// ---------------------------------------------------------------------------------------------
// The real agent.

/// Temporary settings, state and Claude Code directories, and an empty config file.
pub struct Dirs {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub settings: PathBuf,
    pub state: PathBuf,
    pub claude: PathBuf,
    pub config: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let claude = root.join("home").join(".claude");
        std::fs::create_dir_all(&claude).unwrap();
        let config = root.join("agent.toml");
        std::fs::write(&config, "# empty: everything comes from flags\n").unwrap();
        Dirs {
            settings: root.join("claude-code"),
            state: root.join("state"),
            claude,
            config,
            root,
            _tmp: tmp,
        }
    }

    pub fn location_args(&self) -> Vec<String> {
        let s = |p: &Path| p.display().to_string();
        vec![
            "--settings-dir".into(),
            s(&self.settings),
            "--state-dir".into(),
            s(&self.state),
            "--claude-config-dir".into(),
            s(&self.claude),
            "--config".into(),
            s(&self.config),
        ]
    }

    pub fn drop_in(&self) -> PathBuf {
        palisade_agent::enforce::drop_in_path(&self.settings)
    }

    pub fn state_file(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }

    pub fn credentials(&self) -> PathBuf {
        self.claude.join(".credentials.json")
    }

    /// The developer's key file the agent writes (Unix), next to the state directory.
    pub fn user_key_file(&self) -> Option<palisade_agent::credentials::keyfile::UserKeyFile> {
        palisade_agent::credentials::keyfile::UserKeyFile::for_developer(&self.state, &self.claude)
            .ok()
    }

    /// The `apiKeyHelper` the agent must write.
    pub fn helper(&self, exe: &Path) -> String {
        match self.user_key_file() {
            Some(k) => palisade_agent::api_key_file_helper_command(exe, &k.path()),
            None => api_key_helper_command(exe, Some(&self.state)),
        }
    }

    /// What the agent must write for `policy`.
    pub fn expected(&self, policy: &Policy) -> Vec<u8> {
        let exe = std::fs::canonicalize(BIN).unwrap();
        let opts = RenderOptions {
            api_key_helper: Some(self.helper(&exe)),
            ..RenderOptions::default()
        };
        render_bytes(policy, &opts)
    }

    pub fn status_json(&self) -> serde_json::Value {
        std::fs::read(self.state_file("status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Output of a short command.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `palisade-agent <args> <locations>` to completion.
pub async fn cli(dirs: &Dirs, args: &[&str]) -> Output {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .args(dirs.location_args())
        .env_remove("PALISADE_AGENT_ENROLL_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("palisade-agent did not finish")
        .expect("cannot run palisade-agent");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn enroll(dirs: &Dirs, server: &FakeServer) {
    let out = cli(
        dirs,
        &[
            "enroll",
            "--server",
            &server.url(),
            "--enroll-token",
            TOKEN,
            "--user",
            USER,
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "enroll failed: {}", out.stderr);
    assert!(out.stdout.contains(DEVICE_ID), "{}", out.stdout);
}

/// A running `palisade-agent run`, killed on drop.
pub struct Running {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Running {
    pub fn start(dirs: &Dirs) -> Running {
        Running::start_with_env(dirs, &[])
    }

    /// Like [`Running::start`] with extra environment variables (the crash test hook). The
    /// working directory is the test's temporary root, so a core dump stays in it.
    pub fn start_with_env(dirs: &Dirs, env: &[(&str, &str)]) -> Running {
        let n = std::fs::read_dir(&dirs.root)
            .map(|d| d.count())
            .unwrap_or(0);
        let log = dirs.root.join(format!("agent-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(BIN)
            .arg("run")
            .args(["--relay-addr", "127.0.0.1:0"])
            .args(dirs.location_args())
            .env("PALISADE_AGENT_LOG", "palisade_agent=debug,info")
            .env_remove("PALISADE_AGENT_TEST_CRASH_AT")
            .envs(env.iter().copied())
            .current_dir(&dirs.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start palisade-agent run");
        Running { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `cond` until it holds; panics with the agent's log after [`WAIT`].
    pub async fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond() {
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; agent log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (an unclean stop, like a crash).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then waits for a clean exit.
    #[cfg(unix)]
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("agent already gone");
        let ok = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("agent did not stop on SIGTERM")
            .unwrap()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to end on its own (the crash hook aborts it).
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("the agent did not exit; log:\n{}", self.log()),
        }
    }
}

pub fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}
