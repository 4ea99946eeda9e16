//! Test harness: starts the real control-plane binary on a fresh database and talks to it over HTTP.
//!
//! The binary is NOT built here: run `cargo build -p palisade-control-plane` before the tests
//! (the project's test command is `cargo build -p palisade-control-plane && cargo nextest run
//! --workspace`). `PALISADE_CONTROL_PLANE_BIN` overrides the binary's path.
//!
//! Every scenario runs on both stores: SQLite (a file in a fresh temporary directory) and
//! PostgreSQL (a fresh database `palisade_t_<hex>` on `postgres://postgres@127.0.0.1:5432`,
//! overridable with `PALISADE_TEST_POSTGRES`). When PostgreSQL is unreachable the PostgreSQL
//! variants FAIL with a message saying so; they never skip silently.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use serde_json;

pub mod browser;
pub mod claude_code;
pub mod failover;
pub mod h2raw;
pub mod oidc;
pub mod pki;
pub mod workstation;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const SCIM1_CORE_URN: &str = "urn:scim:schemas:core:1.0";

/// What a successful Group PATCH (without projection parameters) answers.
pub const GROUP_PATCH_STATUS: u16 = 200;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Generates one `#[tokio::test]` per backend for each `async fn scenario(Backend) -> Result<()>`:
///
/// ```ignore
/// backend_tests! {
///     user_crud => user_crud_sqlite, user_crud_postgres;
/// }
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($($scenario:ident => $sqlite:ident, $postgres:ident;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $sqlite() {
                $crate::run_scenario(stringify!($sqlite), $scenario($crate::Backend::Sqlite)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $postgres() {
                $crate::run_scenario(stringify!($postgres), $scenario($crate::Backend::Postgres)).await
            }
        )+
    };
}

/// Runs a scenario with an overall timeout and turns an `Err` into a test failure.
pub async fn run_scenario<F: Future<Output = Result<()>>>(name: &str, f: F) {
    match tokio::time::timeout(SCENARIO_TIMEOUT, f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("scenario {name} failed: {e:#}"),
        Err(_) => panic!("scenario {name} did not finish within {SCENARIO_TIMEOUT:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database; dropped (best effort) when the last handle goes away.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>, // (admin url, database name)
}

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestDb({:?}, {})", self.backend, self.url)
    }
}

fn postgres_server() -> String {
    std::env::var("PALISADE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// 64 random bits as hex, from the std hasher's random keys, the time and a counter.
pub fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

impl TestDb {
    pub async fn create(backend: Backend) -> Result<Arc<TestDb>> {
        match backend {
            Backend::Sqlite => {
                let dir =
                    tempfile::tempdir().context("creating a temporary directory for SQLite")?;
                let path = dir.path().join("palisade.db");
                let url = format!("sqlite://{}", path.display());
                Ok(Arc::new(TestDb {
                    backend,
                    url,
                    _dir: Some(dir),
                    pg: None,
                }))
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let server = postgres_server();
                let admin = format!("{server}/postgres");
                let name = format!("palisade_t_{}", random_hex());
                let mut conn = sqlx::PgConnection::connect(&admin).await.with_context(|| {
                    format!(
                        "PostgreSQL is required for the *_postgres tests but {admin} is unreachable \
                         (start it with .ci/run, or set PALISADE_TEST_POSTGRES)"
                    )
                })?;
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .with_context(|| format!("creating database {name} on {admin}"))?;
                let _ = conn.close().await;
                let url = format!("{server}/{name}");
                Ok(Arc::new(TestDb {
                    backend,
                    url,
                    _dir: None,
                    pg: Some((admin, name)),
                }))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime: use a throwaway runtime on its own thread.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// Path of the control-plane binary (built beforehand by `cargo build -p palisade-control-plane`).
pub fn binary_path() -> PathBuf {
    if let Ok(p) = std::env::var("PALISADE_CONTROL_PLANE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    target.join("debug").join("palisade-control-plane")
}

fn checked_binary() -> Result<PathBuf> {
    let bin = binary_path();
    if !bin.is_file() {
        bail!(
            "control-plane binary not found at {}: build it first with `cargo build -p palisade-control-plane` \
             (the test command is `cargo build -p palisade-control-plane && cargo nextest run --workspace`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs the binary with `args` (nothing added) and returns its output; fails after 60 s.
pub async fn run_cli(args: &[&str]) -> Result<Output> {
    run_cli_env(args, &[]).await
}

/// Like [`run_cli`] with extra environment variables.
pub async fn run_cli_env(args: &[&str], envs: &[(&str, &str)]) -> Result<Output> {
    let bin = checked_binary()?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PALISADE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            anyhow!(
                "`palisade-control-plane {}` did not finish within {CLI_TIMEOUT:?}",
                args.join(" ")
            )
        })?
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(out)
}

/// Formats an [`Output`] for failure messages.
pub fn describe_output(args: &[&str], out: &Output) -> String {
    format!(
        "`palisade-control-plane {}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The server and CLI get no `PALISADE_*` settings from the test's environment.
fn clear_palisade_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PALISADE_") {
            cmd.env_remove(k);
        }
    }
}

/// A running `palisade-control-plane serve`, killed (SIGKILL) on drop.
pub struct ControlPlane {
    child: Option<Child>,
    pub db: Arc<TestDb>,
    args: Vec<String>,
    /// `http://127.0.0.1:<port>/scim/v2`
    pub base_url: String,
    /// `http://127.0.0.1:<port>`
    pub root_url: String,
    /// `127.0.0.1:<port>`
    pub addr: String,
    /// The default organisation's token printed on the first start.
    pub token: String,
    /// The token line printed by the latest start, if any (only the first start prints one).
    pub printed_token: Option<String>,
    /// `http://127.0.0.1:<port>`: the agents' gRPC endpoint.
    pub grpc_url: String,
    /// The default organisation's enrollment token printed on the first start.
    pub enroll_token: Option<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl ControlPlane {
    /// Starts the server on a fresh database of `backend`. Unless `extra_args` sets them, the
    /// rate limit is raised far above what any test sends (`--scim-rate-limit/--scim-rate-burst`).
    pub async fn start(backend: Backend, extra_args: &[&str]) -> Result<ControlPlane> {
        let db = TestDb::create(backend).await?;
        let mut args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        if !args.iter().any(|a| a.starts_with("--scim-rate-limit")) {
            args.extend(["--scim-rate-limit".into(), "100000".into()]);
        }
        if !args.iter().any(|a| a.starts_with("--scim-rate-burst")) {
            args.extend(["--scim-rate-burst".into(), "100000".into()]);
        }
        let mut cp = ControlPlane {
            child: None,
            db,
            args,
            base_url: String::new(),
            root_url: String::new(),
            addr: String::new(),
            token: String::new(),
            printed_token: None,
            grpc_url: String::new(),
            enroll_token: None,
            stdout: Default::default(),
            stderr: Default::default(),
        };
        cp.spawn().await?;
        cp.token = cp.printed_token.clone().ok_or_else(|| {
            anyhow!(
                "first start on an empty store printed no `SCIM bearer token for organisation \"default\" (shown once): <token>` line\n\
                 --- stdout ---\n{}\n--- stderr ---\n{}",
                cp.stdout(),
                cp.stderr()
            )
        })?;
        Ok(cp)
    }

    /// Starts another control-plane process on the same database, with the same arguments: a
    /// replica behind the same load balancer. It prints no first-start tokens; the first
    /// replica's are copied.
    pub async fn start_replica(&self) -> Result<ControlPlane> {
        let mut replica = ControlPlane {
            child: None,
            db: self.db.clone(),
            args: self.args.clone(),
            base_url: String::new(),
            root_url: String::new(),
            addr: String::new(),
            token: self.token.clone(),
            printed_token: None,
            grpc_url: String::new(),
            enroll_token: None,
            stdout: Default::default(),
            stderr: Default::default(),
        };
        replica.spawn().await?;
        replica.enroll_token = self.enroll_token.clone();
        Ok(replica)
    }

    async fn spawn(&mut self) -> Result<()> {
        let bin = checked_binary()?;
        let mut cmd = Command::new(&bin);
        cmd.args([
            "serve",
            "--database-url",
            &self.db.url,
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(&self.args);
        if !self.args.iter().any(|a| a.starts_with("--grpc-addr")) {
            cmd.args(["--grpc-addr", "127.0.0.1:0"]);
        }
        clear_palisade_env(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let err = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr pipe"))?;
        self.stdout = Default::default();
        self.stderr = Default::default();
        self.child = Some(child);

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stdout_buf = self.stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut b) = stdout_buf.lock() {
                    b.push_str(&line);
                    b.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        let stderr_buf = self.stderr.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut b) = stderr_buf.lock() {
                            // Keep the head and a bounded tail; logs can be long.
                            if b.len() > 4_000_000 {
                                let cut = b.len() - 2_000_000;
                                let cut = (cut..b.len())
                                    .find(|i| b.is_char_boundary(*i))
                                    .unwrap_or(b.len());
                                b.replace_range(..cut, "[…]\n");
                            }
                            b.push_str(&String::from_utf8_lossy(&chunk[..n]));
                        }
                    }
                }
            }
        });

        const TOKEN_PREFIX: &str = "SCIM bearer token for organisation \"default\" (shown once): ";
        const BASE_PREFIX: &str = "SCIM base URL: ";
        const ENROLL_PREFIX: &str =
            "Agent enrollment token for organisation \"default\" (shown once): ";
        const GRPC_PREFIX: &str = "gRPC agent endpoint: ";
        let mut token = None;
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(line)) => {
                    let line = line.trim();
                    if let Some(t) = line.strip_prefix(TOKEN_PREFIX) {
                        token = Some(t.trim().to_string());
                    } else if let Some(t) = line.strip_prefix(ENROLL_PREFIX) {
                        self.enroll_token = Some(t.trim().to_string());
                    } else if let Some(g) = line.strip_prefix(GRPC_PREFIX) {
                        self.grpc_url = g.trim().to_string();
                    } else if let Some(u) = line.strip_prefix(BASE_PREFIX) {
                        let base = u.trim().trim_end_matches('/').to_string();
                        let root = base
                            .strip_suffix("/scim/v2")
                            .ok_or_else(|| anyhow!("base URL {base:?} does not end in /scim/v2"))?
                            .to_string();
                        self.addr = root.strip_prefix("http://").unwrap_or(&root).to_string();
                        self.base_url = base;
                        self.root_url = root;
                        self.printed_token = token;
                        // Keep draining stdout in the background thread (it owns the pipe).
                        return Ok(());
                    }
                }
                Ok(None) => {
                    let status = self.child.as_mut().and_then(|c| c.wait().ok());
                    // Give the stderr thread a moment to collect the last lines.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    bail!(
                        "control plane exited before printing `SCIM base URL: …` (status {status:?}); args {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        self.args,
                        self.stdout(),
                        self.stderr()
                    );
                }
                Err(_) => bail!(
                    "control plane printed no `SCIM base URL: …` line within {STARTUP_TIMEOUT:?}; args {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.args,
                    self.stdout(),
                    self.stderr()
                ),
            }
        }
    }

    /// SIGKILLs the server (no graceful shutdown) and waits for it to die.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9`, then starts the server again on the same database with the same arguments.
    /// `token` keeps the first start's token; `printed_token` tells whether this start printed one.
    pub async fn restart_after_kill9(&mut self) -> Result<()> {
        self.kill9();
        self.spawn().await
    }

    /// Sends SIGTERM (as systemd and Kubernetes stop a service) and waits up to `within` for
    /// the process to exit: how long it took and its exit status. A server still running
    /// after `within` is killed and reported as an error.
    pub async fn terminate(
        &mut self,
        within: Duration,
    ) -> Result<(Duration, std::process::ExitStatus)> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("the control plane is not running"))?;
        let started = std::time::Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !sent.success() {
            bail!("kill -TERM failed");
        }
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((started.elapsed(), status));
            }
            if started.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "still running {within:?} after SIGTERM\n--- stderr ---\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's process id (for `/proc` measurements), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `127.0.0.1:<port>` of the gRPC endpoint.
    pub fn grpc_addr(&self) -> String {
        self.grpc_url
            .strip_prefix("http://")
            .unwrap_or(&self.grpc_url)
            .to_string()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A SCIM client with the default organisation's first token.
    pub fn scim(&self) -> Scim {
        Scim::new(&self.base_url, Some(&self.token))
    }

    /// A SCIM client with another token (or none).
    pub fn scim_with(&self, token: Option<&str>) -> Scim {
        Scim::new(&self.base_url, token)
    }

    /// Runs a CLI subcommand against this server's database (`--database-url` appended).
    pub async fn cli(&self, args: &[&str]) -> Result<Output> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--database-url", &self.db.url]);
        run_cli(&all).await
    }

    /// Runs a CLI subcommand that must succeed; returns its stdout.
    pub async fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args).await?;
        if !out.status.success() {
            bail!("{}", describe_output(args, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `api-token create` for the default organisation: the admin API token (the last line).
    pub async fn create_api_token(&self, role: &str, label: &str) -> Result<String> {
        let out = self
            .cli_ok(&[
                "api-token",
                "create",
                "--org",
                "default",
                "--role",
                role,
                "--label",
                label,
            ])
            .await?;
        out.lines()
            .last()
            .map(str::to_owned)
            .filter(|t| t.starts_with("pal_admin_"))
            .ok_or_else(|| anyhow!("no token in {out:?}"))
    }

    /// `org create <slug>`.
    pub async fn create_org(&self, slug: &str) -> Result<()> {
        self.cli_ok(&["org", "create", slug]).await.map(|_| ())
    }

    /// `scim-token create --org <org> --label <label>`: the token (stdout must be only the token).
    pub async fn create_token(&self, org: &str, label: &str) -> Result<String> {
        let out = self
            .cli_ok(&["scim-token", "create", "--org", org, "--label", label])
            .await?;
        let token = out.trim();
        if token.is_empty() || token.contains(char::is_whitespace) {
            bail!("`scim-token create` must print only the token on stdout, got {out:?}");
        }
        Ok(token.to_string())
    }

    /// A plain GET outside SCIM (e.g. `/healthz`), returning status and body.
    pub async fn get_root(&self, path: &str) -> Result<(u16, String)> {
        let r = http_client()
            .get(format!("{}{path}", self.root_url))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------------------------------------
// SCIM client
// ---------------------------------------------------------------------------------------------

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_else(|e| panic!("building the HTTP client: {e}"))
}

/// Percent-encodes a query value (spaces as `%20`, as IdPs send them).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `path?k=v&…` with encoded values.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{}", q.join("&"))
}

/// A SCIM client bound to a base URL and (optionally) a bearer token.
#[derive(Clone)]
pub struct Scim {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    user_agent: Option<String>,
}

impl Scim {
    pub fn new(base: &str, token: Option<&str>) -> Scim {
        Scim {
            http: http_client(),
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            user_agent: None,
        }
    }

    /// The same client sending `User-Agent: ua` (reqwest sends none by default).
    pub fn with_user_agent(mut self, ua: &str) -> Scim {
        self.user_agent = Some(ua.to_string());
        self
    }

    pub async fn get(&self, path: &str) -> Result<Resp> {
        self.send(Method::GET, path, None, &[]).await
    }
    pub async fn get_q(&self, path: &str, params: &[(&str, &str)]) -> Result<Resp> {
        self.send(Method::GET, &with_query(path, params), None, &[])
            .await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Result<Resp> {
        self.send(Method::POST, path, Some(body), &[]).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Result<Resp> {
        self.send(Method::PUT, path, Some(body), &[]).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Resp> {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }
    /// PATCH with a PatchOp envelope around `ops`.
    pub async fn patch_ops(&self, path: &str, ops: Value) -> Result<Resp> {
        self.patch(path, &patch_body(ops)).await
    }
    pub async fn delete(&self, path: &str) -> Result<Resp> {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Sends a JSON body as `application/scim+json` (unless `headers` sets a Content-Type).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Resp> {
        let bytes = match body {
            Some(b) => Some(serde_json::to_vec(b)?),
            None => None,
        };
        self.send_raw(method, path, bytes, headers).await
    }

    /// Sends raw bytes. A body gets `Content-Type: application/scim+json` unless `headers` has one.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Resp> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut rb = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(ua) = &self.user_agent {
            rb = rb.header("User-Agent", ua);
        }
        let has_ct = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        let has_accept = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
        if !has_accept {
            rb = rb.header("Accept", "application/scim+json");
        }
        if let Some(b) = body {
            if !has_ct {
                rb = rb.header("Content-Type", "application/scim+json");
            }
            rb = rb.body(b);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.with_context(|| format!("{method} {url}"))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r
            .text()
            .await
            .with_context(|| format!("reading the body of {method} {url}"))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                anyhow!(
                    "{method} {url} -> {status}: body is not JSON ({e}): {}",
                    truncate(&text, 2000)
                )
            })?
        };
        let resp = Resp {
            method: method.to_string(),
            url,
            status,
            headers,
            text,
            body,
        };
        if !resp.text.trim().is_empty() {
            let ct = resp.header("content-type").unwrap_or_default();
            if !ct.to_ascii_lowercase().starts_with("application/scim+json") {
                bail!("response Content-Type must be application/scim+json, got {ct:?}\n{resp}");
            }
        }
        Ok(resp)
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A SCIM response: status, headers and the parsed JSON body (`Null` when empty).
pub struct Resp {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl fmt::Display for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} -> {}",
            self.method,
            truncate(&self.url, 300),
            self.status
        )?;
        for (k, v) in &self.headers {
            writeln!(f, "  {k}: {}", v.to_str().unwrap_or("<binary>"))?;
        }
        write!(f, "  {}", truncate(&self.text, 3000))
    }
}

impl fmt::Debug for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Fails unless the status is `status`.
    pub fn expect(&self, status: u16) -> Result<&Resp> {
        if self.status != status {
            bail!("expected status {status}, got:\n{self}");
        }
        Ok(self)
    }

    /// A successful Group PATCH without `attributes`/`excludedAttributes`: 204 and no body.
    pub fn expect_group_patch(&self) -> Result<&Resp> {
        if self.status != GROUP_PATCH_STATUS || (GROUP_PATCH_STATUS == 204 && !self.text.is_empty())
        {
            bail!("a Group PATCH without attributes/excludedAttributes must answer {GROUP_PATCH_STATUS} No Content, got:\n{self}");
        }
        Ok(self)
    }

    /// Fails unless this is a SCIM Error with `status` (and `scim_type`, when given).
    pub fn expect_error(&self, status: u16, scim_type: Option<&str>) -> Result<&Resp> {
        self.expect(status)?;
        let ct = self.header("content-type").unwrap_or_default();
        if !ct.to_ascii_lowercase().starts_with("application/scim+json") {
            bail!("error response must be application/scim+json, got {ct:?}:\n{self}");
        }
        let schemas = self.body["schemas"].as_array().cloned().unwrap_or_default();
        if !schemas.iter().any(|s| s == ERROR_URN) {
            bail!("error body must list schema {ERROR_URN}:\n{self}");
        }
        if self.body["status"] != json!(status.to_string()) {
            bail!("error body must carry \"status\": \"{status}\" (a string):\n{self}");
        }
        if self.body["detail"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty())
        {
            bail!("error body must carry a non-empty \"detail\":\n{self}");
        }
        if let Some(t) = scim_type {
            if self.body["scimType"] != json!(t) {
                bail!("error body must carry \"scimType\": \"{t}\":\n{self}");
            }
        }
        Ok(self)
    }

    /// The resource's `id`.
    pub fn id(&self) -> Result<String> {
        self.body["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("response has no string \"id\":\n{self}"))
    }

    /// Validates a ListResponse and returns its `Resources` (absent means none).
    pub fn list(&self) -> Result<Vec<Value>> {
        self.expect(200)?;
        let b = &self.body;
        if !b["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == LIST_URN))
        {
            bail!("not a ListResponse (schemas must contain {LIST_URN}):\n{self}");
        }
        for k in ["totalResults", "startIndex", "itemsPerPage"] {
            if !b[k].is_u64() {
                bail!(
                    "ListResponse \"{k}\" must be a non-negative integer (not a string):\n{self}"
                );
            }
        }
        let res = match &b["Resources"] {
            Value::Null => vec![],
            Value::Array(a) => a.clone(),
            _ => bail!("ListResponse \"Resources\" must be an array:\n{self}"),
        };
        if b["itemsPerPage"].as_u64() != Some(res.len() as u64) {
            bail!(
                "itemsPerPage must equal the number of Resources ({}):\n{self}",
                res.len()
            );
        }
        Ok(res)
    }

    pub fn total(&self) -> Result<u64> {
        self.body["totalResults"]
            .as_u64()
            .ok_or_else(|| anyhow!("no integer totalResults:\n{self}"))
    }

    /// `id`s of the listed resources, in order.
    pub fn list_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .list()?
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect())
    }
}

/// Wraps operations in a PatchOp message.
pub fn patch_body(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

/// A minimal user.
pub fn user(user_name: &str) -> Value {
    json!({"schemas": [USER_URN], "userName": user_name, "active": true})
}

pub async fn create_user(scim: &Scim, user_name: &str) -> Result<String> {
    scim.post("/Users", &user(user_name))
        .await?
        .expect(201)?
        .id()
}

pub async fn create_user_body(scim: &Scim, body: &Value) -> Result<String> {
    scim.post("/Users", body).await?.expect(201)?.id()
}

pub async fn create_group(scim: &Scim, display_name: &str, members: &[&str]) -> Result<String> {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    scim.post(
        "/Groups",
        &json!({"schemas": [GROUP_URN], "displayName": display_name, "members": members}),
    )
    .await?
    .expect(201)?
    .id()
}

/// Member ids of a Group resource (absent `members` means none).
pub fn member_ids(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// GETs a group and returns its member ids.
pub async fn group_members(scim: &Scim, gid: &str) -> Result<BTreeSet<String>> {
    let r = scim.get(&format!("/Groups/{gid}")).await?;
    r.expect(200)?;
    Ok(member_ids(&r.body))
}

pub fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

/// Fails with `msg` and the response unless `cond`.
pub fn check(cond: bool, msg: &str, r: &Resp) -> Result<()> {
    if !cond {
        bail!("{msg}\n{r}");
    }
    Ok(())
}

/// Fails unless `a == b`, showing both and the response.
pub fn check_eq<T: PartialEq + fmt::Debug>(a: T, b: T, msg: &str, r: &Resp) -> Result<()> {
    if a != b {
        bail!("{msg}: {a:?} != {b:?}\n{r}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP (for paths a URL library would normalise, and for requests without any User-Agent)
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends one HTTP/1.1 request with the request target exactly as given (no normalisation),
/// only the headers given (plus Host, Connection: close and, unless a Transfer-Encoding header is
/// given, Content-Length), and the body bytes verbatim; reads the answer.
pub async fn raw_http(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<RawResp> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let mut req =
            format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        let chunked = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
        if !chunked && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        // The server may answer early (413) and stop reading: keep what it sent.
        let written = async {
            s.write_all(req.as_bytes()).await?;
            s.write_all(body).await?;
            s.flush().await
        }
        .await;
        let mut buf = Vec::new();
        // The server may close after answering; a reset after the answer is fine.
        let _ = s.read_to_end(&mut buf).await;
        if buf.is_empty() {
            written.with_context(|| format!("sending {method} {target}"))?;
        }
        parse_raw(&buf).with_context(|| {
            format!(
                "parsing the answer to {method} {target}: {:?}",
                truncate(&String::from_utf8_lossy(&buf), 500)
            )
        })
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| anyhow!("{method} {target}: no answer within 30 s"))?
}

fn parse_raw(buf: &[u8]) -> Result<RawResp> {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut rest = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(nl) = rest[i..].windows(2).position(|w| w == b"\r\n") {
            let size_str = String::from_utf8_lossy(&rest[i..i + nl]).into_owned();
            let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("0").trim(), 16)
                .unwrap_or(0);
            i += nl + 2;
            if size == 0 || i + size > rest.len() {
                break;
            }
            out.extend_from_slice(&rest[i..i + size]);
            i += size + 2;
        }
        rest = out;
    }
    Ok(RawResp {
        status,
        headers,
        body: String::from_utf8_lossy(&rest).into_owned(),
    })
}

/// Helpers the benchmark binaries share.
pub mod bench {
    use std::time::Duration;

    /// The `p` quantile (0.0 to 1.0) of `sorted`, nearest rank; zero when empty.
    pub fn pct(sorted: &[Duration], p: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
    }

    /// A process's resident memory in KiB (0 when it cannot be read).
    pub fn rss_kib(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// `12.3 ms`.
    pub fn ms(d: Duration) -> String {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }

    use std::path::PathBuf;
    use std::process::Stdio;
    use std::time::Instant;

    use anyhow::{anyhow, bail, Context, Result};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::process::Command;

    /// The secrets key the benchmarks start the control plane with.
    pub const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    /// A release binary of the workspace (`cargo build --release --workspace --bins`).
    pub fn release_bin(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release")
            .join(name)
    }

    /// The release control plane on a fresh SQLite database, with what its first start printed.
    pub struct ReleaseControlPlane {
        _child: tokio::process::Child,
        pub db_url: String,
        pub scim: String,
        pub token: String,
        pub grpc: String,
        pub enroll: String,
        _dir: tempfile::TempDir,
    }

    impl ReleaseControlPlane {
        /// `serve` on free loopback ports, with `extra` flags.
        pub async fn start(extra: &[&str]) -> Result<ReleaseControlPlane> {
            let dir = tempfile::tempdir()?;
            let db_url = format!("sqlite://{}/bench.db", dir.path().display());
            let mut child = Command::new(release_bin("palisade-control-plane"))
                .args([
                    "serve",
                    "--database-url",
                    &db_url,
                    "--http-addr",
                    "127.0.0.1:0",
                ])
                .args(["--grpc-addr", "127.0.0.1:0"])
                .args(extra)
                .env("PALISADE_SECRETS_KEY", SECRETS_KEY)
                .env("PALISADE_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context(
                    "starting the release control plane (cargo build --release --workspace --bins)",
                )?;
            let mut lines =
                BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?).lines();
            let (mut token, mut grpc, mut enroll) = (None, None, None);
            while let Some(line) =
                tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??
            {
                let shown = |prefix: &str| {
                    line.strip_prefix(prefix)
                        .and_then(|l| l.split("(shown once): ").nth(1))
                        .map(|t| t.trim().to_owned())
                };
                if let Some(t) = shown("SCIM bearer token") {
                    token = Some(t);
                } else if let Some(t) = shown("Agent enrollment token") {
                    enroll = Some(t);
                } else if let Some(g) = line.strip_prefix("gRPC agent endpoint: ") {
                    grpc = Some(g.trim().to_owned());
                } else if let Some(s) = line.strip_prefix("SCIM base URL: ") {
                    return Ok(ReleaseControlPlane {
                        _child: child,
                        db_url,
                        scim: s.trim().to_owned(),
                        token: token.ok_or_else(|| anyhow!("no SCIM token"))?,
                        grpc: grpc.ok_or_else(|| anyhow!("no gRPC endpoint"))?,
                        enroll: enroll.ok_or_else(|| anyhow!("no enrollment token"))?,
                        _dir: dir,
                    });
                }
            }
            bail!("the control plane did not start")
        }

        /// The server's process id (for its memory).
        pub fn pid(&self) -> Option<u32> {
            self._child.id()
        }

        /// `scheme://host:port` of its HTTP port.
        pub fn root(&self) -> String {
            self.scim.trim_end_matches("/scim/v2").to_owned()
        }

        /// Runs a CLI command against its database; its standard output.
        pub async fn cli_stdout(&self, args: &[&str]) -> Result<String> {
            let out = Command::new(release_bin("palisade-control-plane"))
                .args(args)
                .args(["--database-url", &self.db_url])
                .env("PALISADE_SECRETS_KEY", SECRETS_KEY)
                .env("PALISADE_LOG", "warn")
                .output()
                .await?;
            if !out.status.success() {
                bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }

        /// Runs a CLI command against its database (`stdin` piped in); how long it took.
        pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<Duration> {
            let t = Instant::now();
            let mut child = Command::new(release_bin("palisade-control-plane"))
                .args(args)
                .args(["--database-url", &self.db_url])
                .env("PALISADE_SECRETS_KEY", SECRETS_KEY)
                .env("PALISADE_LOG", "warn")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(text.as_bytes()).await?;
            }
            let out = child.wait_with_output().await?;
            if !out.status.success() {
                bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(t.elapsed())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Large PATCH fixtures (the scim_large_patch test and patch-bench)
// ---------------------------------------------------------------------------------------------

/// As many members as fit in a large-PATCH scenario, with 5-character ids, in a body under the 1 MiB limit.
pub const LARGE_PATCH_MEMBERS: usize = 58_000;

/// A short, unique user id (`m` + 4 base-36 digits), so ~58,000 member values fit in 1 MiB.
pub fn short_user_id(i: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("m");
    let mut n = i;
    let mut d = [b'0'; 4];
    for slot in d.iter_mut().rev() {
        *slot = DIGITS[n % 36];
        n /= 36;
    }
    s.push_str(&String::from_utf8_lossy(&d));
    s
}

/// Inserts the users straight into the database: creating 58,000 users over SCIM would take
/// minutes in a debug build, and what is under test is the PATCH, not user creation.
pub async fn seed_users_sql(cp: &ControlPlane, ids: &[String]) -> Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&cp.db.url)
        .await
        .context("connecting to the test database")?;
    let org: String = {
        use sqlx::Row;
        sqlx::query("SELECT id FROM orgs WHERE slug = 'default'")
            .fetch_one(&pool)
            .await?
            .try_get("id")?
    };
    for chunk in ids.chunks(1000) {
        let rows = (0..chunk.len())
            .map(|i| {
                format!(
                    "(${}, $1, ${}, ${}, 1, '{{}}', 1, 0, 0)",
                    3 * i + 2,
                    3 * i + 3,
                    3 * i + 4
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO users (id, org_id, user_name, user_name_key, active, attributes, version, created_at, updated_at) VALUES {rows}"
        );
        let mut q = sqlx::query(&sql).bind(&org);
        for id in chunk {
            let name = format!("{id}@example.com");
            q = q.bind(id.clone()).bind(name.clone()).bind(name);
        }
        q.execute(&pool).await.context("seeding users")?;
    }
    if cp.db.backend == Backend::Postgres {
        // A bulk load leaves PostgreSQL without statistics until autovacuum runs (up to a
        // minute later); without them it plans the member lookups as sequential scans.
        sqlx::query("ANALYZE users").execute(&pool).await?;
    }
    pool.close().await;
    Ok(())
}

pub fn add_members_body(ids: &[String]) -> Value {
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    patch_body(json!([{"op": "add", "path": "members", "value": members}]))
}
