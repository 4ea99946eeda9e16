//! The real Claude Code client as an offline test oracle for the managed settings Palisade renders.
//!
//! [`ClaudeCode::run`] runs the pinned client (`tests/claude-code`, installed by
//! `tests/setup-test-deps.sh`) with a settings directory bind-mounted over `/etc/claude-code` in
//! a private mount namespace (`unshare -m`, so root only), a throwaway `HOME`/`TMPDIR`/work
//! directory, and `ANTHROPIC_BASE_URL` pointing at a [`FakeApi`] that records every request and
//! answers from a script of [`Reply`]s. Nothing leaves the machine. The result holds the
//! stream-json events (the `init` event lists the tools, MCP servers, permission mode and key
//! source), the requests the fake API saw (the `tools` array, `x-api-key`, `model`) and stderr.
//! [`ClaudeCode::doctor`] runs `claude doctor` (offline) and parses its `Invalid settings` lines.
//!
//! ```ignore
//! let Some(cc) = ClaudeCode::find_or_skip()? else { return Ok(()) };
//! let settings = SettingsDir::with_drop_in(&json!({"permissions": {"deny": ["*"]}}))?;
//! let run = cc.run(settings.path(), RunOptions::new()).await?;
//! assert!(run.init()?.tools.is_empty());
//! ```
//!
//! Facts this harness relies on (Claude Code 2.1.332): with `ANTHROPIC_BASE_URL` set the client
//! only sends `POST /v1/messages?beta=true` (one per model turn; every turn carries a `tools`
//! array, empty when every tool is denied), `HEAD /api/hello` at most; `ENABLE_TOOL_SEARCH=false`
//! puts every tool in that array; in `-p` mode a tool that would need a prompt is refused, so use
//! [`RunOptions::skip_permissions`] to see only what deny rules stop.
//!
//! Concurrency: several tests (processes) may run at once. `/etc/claude-code` must exist to be
//! mounted over; when it does not, the first run creates it (empty) and leaves a marker file, and
//! the last run to finish removes it again. Runs hold a shared `flock` on [`ETC_LOCK`] while
//! their namespace uses the directory; creating and removing take it exclusively. A directory
//! that existed before is never touched.
//!
//! Missing client, `unshare` or root: [`ClaudeCode::find`] is an error; [`ClaudeCode::find_or_skip`]
//! prints why and gives `None`, except with the `CI` environment variable set (non-empty), where
//! it is an error too, so these tests never pass by skipping in CI.
//! `PALISADE_CLAUDE_CODE_BIN` overrides the client's path.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use rustix::fs::{flock, FlockOperation};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The client version `tests/claude-code/package.json` pins; [`ClaudeCode::find`] checks it.
pub const PINNED_VERSION: &str = "2.1.332";

/// The managed settings directory of Claude Code on Linux (fixed; no variable moves it).
pub const MANAGED_DIR: &str = "/etc/claude-code";

/// Held shared by every run while its namespace uses [`MANAGED_DIR`], exclusively while the
/// directory is created or removed.
pub const ETC_LOCK: &str = "/tmp/.palisade-claude-code-etc.lock";

/// Exists while [`MANAGED_DIR`] is a directory a test run created (and may remove).
const ETC_CREATED_MARKER: &str = "/tmp/.palisade-claude-code-etc.created";

/// The drop-in file Palisade's agent writes; [`SettingsDir::with_drop_in`] uses this name.
pub const PALISADE_DROP_IN: &str = "50-palisade.json";

/// Default limit for one client run (the machines running the tests are often loaded).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// `PATH` the client gets unless [`RunOptions::env`] sets one (no per-user shims: `HOME` is a
/// throwaway directory, so a pyenv shim would not work).
const CLIENT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell run inside the new mount namespace: `$0` is the settings directory, `$@` the client
/// and its arguments. The mount is read-only so the client cannot change the test's files.
const MOUNT_AND_EXEC: &str = "mount --bind \"$0\" /etc/claude-code \
    && mount -o remount,bind,ro /etc/claude-code && exec \"$@\"";

// ---------------------------------------------------------------------------------------------
// Locating the client
// ---------------------------------------------------------------------------------------------

/// The pinned Claude Code client, ready to run.
#[derive(Clone, Debug)]
pub struct ClaudeCode {
    bin: PathBuf,
    unshare: PathBuf,
    python: Option<PathBuf>,
}

/// Whether this run must not skip: `CI` is set and not empty.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// `tests/claude-code` in the source tree.
pub fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("claude-code")
}

/// Where `npm ci --prefix tests/claude-code` puts the native client for this machine.
pub fn default_binary() -> PathBuf {
    let platform = match std::env::consts::ARCH {
        "aarch64" => "claude-code-linux-arm64",
        _ => "claude-code-linux-x64",
    };
    client_dir()
        .join("node_modules/@anthropic-ai")
        .join(platform)
        .join("claude")
}

/// The stdio MCP server script the tests use ([`McpServer::test`]).
pub fn test_mcp_server_script() -> PathBuf {
    client_dir().join("mcp_server.py")
}

fn find_in(dirs: &str, name: &str) -> Option<PathBuf> {
    std::env::split_paths(dirs)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl ClaudeCode {
    /// The pinned client, or why it cannot run here (missing install, wrong version, no
    /// `unshare`, not root).
    pub fn find() -> Result<ClaudeCode> {
        let bin = std::env::var_os("PALISADE_CLAUDE_CODE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(default_binary);
        if !bin.is_file() {
            bail!(
                "Claude Code client not found at {} (run tests/setup-test-deps.sh, which runs \
                 `npm ci --prefix tests/claude-code`)",
                bin.display()
            );
        }
        if !rustix::process::geteuid().is_root() {
            bail!("the Claude Code client tests need root (they bind-mount over {MANAGED_DIR} in a private mount namespace)");
        }
        let unshare = find_in(CLIENT_PATH, "unshare")
            .ok_or_else(|| anyhow!("`unshare` not found (apt-get install util-linux)"))?;
        if find_in(CLIENT_PATH, "mount").is_none() {
            bail!("`mount` not found (apt-get install mount)");
        }
        let out = std::process::Command::new(&bin)
            .arg("--version")
            .env("DISABLE_AUTOUPDATER", "1")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} --version", bin.display()))?;
        let version = String::from_utf8_lossy(&out.stdout);
        if !version.trim_start().starts_with(PINNED_VERSION) {
            bail!(
                "{} is version {:?}, the tests pin {PINNED_VERSION} (run tests/setup-test-deps.sh)",
                bin.display(),
                version.trim()
            );
        }
        let python = find_in(CLIENT_PATH, "python3");
        Ok(ClaudeCode {
            bin,
            unshare,
            python,
        })
    }

    /// [`ClaudeCode::find`], except that outside CI a missing prerequisite prints why and gives
    /// `None` (skip the test). In CI (`CI` set) it is an error.
    ///
    /// ```ignore
    /// let Some(cc) = ClaudeCode::find_or_skip()? else { return Ok(()) };
    /// ```
    pub fn find_or_skip() -> Result<Option<ClaudeCode>> {
        match ClaudeCode::find() {
            Ok(cc) => Ok(Some(cc)),
            Err(e) if in_ci() => Err(e.context("Claude Code client test cannot run in CI")),
            Err(e) => {
                eprintln!("SKIPPING Claude Code client test: {e:#}");
                Ok(None)
            }
        }
    }

    /// The client binary.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// Runs `claude -p <prompt> --output-format stream-json --verbose <args>` with `settings_dir`
    /// as `/etc/claude-code`. A non-zero exit is not an error (see [`RunResult::status`]); a
    /// timeout is, and its message holds what the client printed so far.
    pub async fn run(&self, settings_dir: &Path, opts: RunOptions) -> Result<RunResult> {
        let settings_dir = settings_dir
            .canonicalize()
            .with_context(|| format!("settings directory {}", settings_dir.display()))?;
        let run_dir = tempfile::Builder::new()
            .prefix("palisade-claude-code-")
            .tempdir()
            .context("creating the run directory")?;
        let home = run_dir.path().join("home");
        let tmp = run_dir.path().join("tmp");
        std::fs::create_dir_all(home.join(".claude")).context("creating HOME")?;
        std::fs::create_dir_all(&tmp).context("creating TMPDIR")?;
        let workdir = match &opts.workdir {
            Some(w) => w
                .canonicalize()
                .with_context(|| format!("work directory {}", w.display()))?,
            None => {
                let w = run_dir.path().join("work");
                std::fs::create_dir_all(&w).context("creating the work directory")?;
                w.canonicalize()?
            }
        };

        // ~/.claude.json: onboarding done, the work directory trusted, user MCP servers.
        let mut claude_json = json!({
            "hasCompletedOnboarding": true,
            "numStartups": 5,
            "projects": { workdir.display().to_string(): {
                "hasTrustDialogAccepted": true,
                "hasCompletedProjectOnboarding": true,
            }},
        });
        if !opts.user_mcp_servers.is_empty() {
            claude_json["mcpServers"] = self.mcp_config(&opts.user_mcp_servers, run_dir.path())?;
        }
        if let Some(extra) = &opts.user_config {
            let Some(extra) = extra.as_object() else {
                bail!("RunOptions::user_config must be a JSON object");
            };
            for (k, v) in extra {
                claude_json[k.as_str()] = v.clone();
            }
        }
        write_json(&home.join(".claude.json"), &claude_json)?;
        write_files(&home, &opts.home_files)?;
        write_files(&workdir, &opts.work_files)?;

        let mut user_settings = opts.user_settings.clone();
        if !opts.project_mcp_servers.is_empty() {
            let servers = self.mcp_config(&opts.project_mcp_servers, run_dir.path())?;
            write_json(
                &workdir.join(".mcp.json"),
                &json!({ "mcpServers": servers }),
            )?;
            let s = user_settings.get_or_insert_with(|| json!({}));
            match s.as_object_mut() {
                Some(o) => {
                    o.entry("enableAllProjectMcpServers").or_insert(json!(true));
                }
                None => bail!("RunOptions::user_settings must be a JSON object"),
            }
        }
        if let Some(s) = &user_settings {
            write_json(&home.join(".claude/settings.json"), s)?;
        }

        let api = FakeApi::start(opts.replies.clone()).await?;
        let mut args: Vec<String> = vec![
            "-p".into(),
            opts.prompt.clone(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
        ];
        let mut env = self.base_env(&home, &tmp, &api);
        if opts.skip_permissions {
            args.push("--dangerously-skip-permissions".into());
            env.insert("IS_SANDBOX".into(), "1".into());
        }
        args.extend(opts.args.iter().cloned());
        env.extend(opts.env.iter().cloned());

        let out = self
            .spawn_in_namespace(&settings_dir, &workdir, &env, &args, opts.timeout)
            .await?;
        let requests = api.requests();
        drop(api);

        let events: Vec<Value> = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        let init = events
            .iter()
            .find(|e| e["type"] == "system" && e["subtype"] == "init")
            .map(InitEvent::from_json);
        Ok(RunResult {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
            events,
            init,
            requests,
            home,
            workdir,
            run_dir,
        })
    }

    /// `claude doctor` with `settings_dir` as `/etc/claude-code` (works offline), and the
    /// entries of its `Invalid settings` section.
    pub async fn doctor(&self, settings_dir: &Path) -> Result<DoctorReport> {
        let settings_dir = settings_dir
            .canonicalize()
            .with_context(|| format!("settings directory {}", settings_dir.display()))?;
        let run_dir = tempfile::Builder::new()
            .prefix("palisade-claude-doctor-")
            .tempdir()
            .context("creating the run directory")?;
        let home = run_dir.path().join("home");
        let tmp = run_dir.path().join("tmp");
        let work = run_dir.path().join("work");
        for d in [&home, &tmp, &work] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let work = work.canonicalize()?;
        write_json(
            &home.join(".claude.json"),
            &json!({
                "hasCompletedOnboarding": true,
                "projects": { work.display().to_string(): { "hasTrustDialogAccepted": true } },
            }),
        )?;
        let api = FakeApi::start(Vec::new()).await?;
        let env = self.base_env(&home, &tmp, &api);
        let out = self
            .spawn_in_namespace(
                &settings_dir,
                &work,
                &env,
                &["doctor".to_owned()],
                DEFAULT_TIMEOUT,
            )
            .await?;
        let invalid = parse_doctor_invalid(&out.stdout);
        Ok(DoctorReport {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
            invalid,
        })
    }

    fn base_env(&self, home: &Path, tmp: &Path, api: &FakeApi) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("PATH", CLIENT_PATH.to_owned()),
            ("HOME", home.display().to_string()),
            ("TMPDIR", tmp.display().to_string()),
            ("ANTHROPIC_BASE_URL", api.url()),
            ("ENABLE_TOOL_SEARCH", "false".to_owned()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
            ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ] {
            env.insert(k.to_owned(), v);
        }
        env
    }

    fn mcp_config(&self, servers: &[McpServer], run_dir: &Path) -> Result<Value> {
        let mut map = serde_json::Map::new();
        for s in servers {
            let mut server_env: serde_json::Map<String, Value> = s
                .env
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            server_env.insert(
                "MCP_LOG".into(),
                Value::String(mcp_log_path(run_dir, &s.name).display().to_string()),
            );
            let command = s.resolved_command(self.python.as_deref());
            map.insert(
                s.name.clone(),
                json!({
                    "type": "stdio",
                    "command": command[0],
                    "args": &command[1..],
                    "env": server_env,
                }),
            );
        }
        Ok(Value::Object(map))
    }

    async fn spawn_in_namespace(
        &self,
        settings_dir: &Path,
        cwd: &Path,
        env: &BTreeMap<String, String>,
        args: &[String],
        timeout: Duration,
    ) -> Result<ProcessOutput> {
        let _etc = tokio::task::spawn_blocking(EtcGuard::acquire)
            .await
            .context("joining the /etc/claude-code lock task")??;
        let mut cmd = Command::new(&self.unshare);
        cmd.args(["-m", "--propagation", "private", "sh", "-c", MOUNT_AND_EXEC])
            .arg(settings_dir)
            .arg(&self.bin)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} under unshare", self.bin.display()))?;
        let pid = child.id();
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr pipe"))?;
        let out_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf).await;
            buf
        });
        let err_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf).await;
            buf
        });
        let waited = tokio::time::timeout(timeout, child.wait()).await;
        // The client's children (MCP servers, Bash) share its process group: end them all.
        if let Some(pgid) = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let status = match waited {
            Ok(status) => Some(status.context("waiting for the client")?),
            Err(_) => {
                let _ = child.kill().await;
                None
            }
        };
        let collect = |t: tokio::task::JoinHandle<Vec<u8>>| async move {
            match tokio::time::timeout(Duration::from_secs(10), t).await {
                Ok(Ok(buf)) => String::from_utf8_lossy(&buf).into_owned(),
                _ => String::new(),
            }
        };
        let stdout = collect(out_task).await;
        let stderr = collect(err_task).await;
        match status {
            Some(status) => Ok(ProcessOutput {
                status,
                stdout,
                stderr,
            }),
            None => bail!(
                "Claude Code did not finish within {timeout:?} (args {args:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                tail(&stdout, 4000),
                tail(&stderr, 4000)
            ),
        }
    }
}

struct ProcessOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn write_files(base: &Path, files: &[(String, String)]) -> Result<()> {
    for (rel, content) in files {
        if Path::new(rel).is_absolute() || rel.split('/').any(|c| c == "..") {
            bail!("{rel:?} must be a relative path inside {}", base.display());
        }
        let p = base.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn mcp_log_path(run_dir: &Path, server: &str) -> PathBuf {
    let safe: String = server
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    run_dir.join(format!("mcp-{safe}.log"))
}

// ---------------------------------------------------------------------------------------------
// /etc/claude-code: create when missing, remove when the last run that needs it is done
// ---------------------------------------------------------------------------------------------

/// A shared lock on [`ETC_LOCK`]: [`MANAGED_DIR`] exists and nobody removes it meanwhile.
struct EtcGuard {
    lock: File,
}

impl EtcGuard {
    fn acquire() -> Result<EtcGuard> {
        loop {
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(ETC_LOCK)
                .with_context(|| format!("opening {ETC_LOCK}"))?;
            // Usually the directory is there: a shared lock is enough, and runs stay parallel.
            flock(&lock, FlockOperation::LockShared)
                .with_context(|| format!("locking {ETC_LOCK} (shared)"))?;
            if Path::new(MANAGED_DIR).is_dir() {
                return Ok(EtcGuard { lock });
            }
            flock(&lock, FlockOperation::Unlock)
                .with_context(|| format!("unlocking {ETC_LOCK}"))?;
            flock(&lock, FlockOperation::LockExclusive)
                .with_context(|| format!("locking {ETC_LOCK}"))?;
            match std::fs::metadata(MANAGED_DIR) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!("{MANAGED_DIR} exists and is not a directory"),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    std::fs::create_dir(MANAGED_DIR)
                        .with_context(|| format!("creating {MANAGED_DIR}"))?;
                    std::fs::write(ETC_CREATED_MARKER, b"created by palisade-tests\n")
                        .with_context(|| format!("writing {ETC_CREATED_MARKER}"))?;
                }
                Err(e) => return Err(e).with_context(|| format!("inspecting {MANAGED_DIR}")),
            }
            // Downgrading is not atomic: another run may have removed the directory in between.
            flock(&lock, FlockOperation::LockShared)
                .with_context(|| format!("locking {ETC_LOCK} (shared)"))?;
            if Path::new(MANAGED_DIR).is_dir() {
                return Ok(EtcGuard { lock });
            }
        }
    }
}

impl Drop for EtcGuard {
    fn drop(&mut self) {
        // Only the last holder gets the exclusive lock; it removes what a test run created.
        if flock(&self.lock, FlockOperation::NonBlockingLockExclusive).is_ok()
            && Path::new(ETC_CREATED_MARKER).exists()
        {
            // Fails (and the directory stays) when someone put files in it meanwhile.
            let _ = std::fs::remove_dir(MANAGED_DIR);
            let _ = std::fs::remove_file(ETC_CREATED_MARKER);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Settings directories
// ---------------------------------------------------------------------------------------------

/// A temporary managed-settings directory (what gets mounted over `/etc/claude-code`).
#[derive(Debug)]
pub struct SettingsDir {
    dir: tempfile::TempDir,
}

impl SettingsDir {
    /// An empty directory: no managed settings at all.
    pub fn empty() -> Result<SettingsDir> {
        let dir = tempfile::Builder::new()
            .prefix("palisade-managed-")
            .tempdir()
            .context("creating a settings directory")?;
        Ok(SettingsDir { dir })
    }

    /// A directory holding only `managed-settings.d/50-palisade.json` with `settings`.
    pub fn with_drop_in(settings: &Value) -> Result<SettingsDir> {
        let d = SettingsDir::empty()?;
        d.write_drop_in(PALISADE_DROP_IN, settings)?;
        Ok(d)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `managed-settings.d/<file_name>`.
    pub fn write_drop_in(&self, file_name: &str, settings: &Value) -> Result<()> {
        let d = self.dir.path().join("managed-settings.d");
        std::fs::create_dir_all(&d).context("creating managed-settings.d")?;
        write_json(&d.join(file_name), settings)
    }

    /// Writes the base file `managed-settings.json`.
    pub fn write_base(&self, settings: &Value) -> Result<()> {
        write_json(&self.dir.path().join("managed-settings.json"), settings)
    }

    /// Writes any file (e.g. invalid JSON, or `managed-mcp.json`) relative to the directory.
    pub fn write_raw(&self, rel_path: &str, text: &str) -> Result<()> {
        let p = self.dir.path().join(rel_path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    }
}

// ---------------------------------------------------------------------------------------------
// Run options
// ---------------------------------------------------------------------------------------------

/// A stdio MCP server configured for the client (by the user in `~/.claude.json`, or by the
/// project in `.mcp.json`). The harness adds `MCP_LOG` to its environment so
/// [`RunResult::mcp_server_started`] can tell whether the client ever started it.
#[derive(Clone, Debug)]
pub struct McpServer {
    pub name: String,
    /// Program and arguments. `None` = the test server `python3 tests/claude-code/mcp_server.py`
    /// (see [`McpServer::command_line`]).
    pub command: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
}

impl McpServer {
    /// The test server (`tests/claude-code/mcp_server.py`, one tool: `mcp__<name>__echo`) under
    /// the name `name`.
    pub fn test(name: &str) -> McpServer {
        McpServer {
            name: name.to_owned(),
            command: None,
            env: Vec::new(),
        }
    }

    /// Any stdio server: `command[0]` is the program.
    pub fn command(name: &str, command: &[&str]) -> McpServer {
        McpServer {
            name: name.to_owned(),
            command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
            env: Vec::new(),
        }
    }

    /// The command line exactly as written into the client's config: what a
    /// `deniedMcpServers`/`allowedMcpServers` `serverCommand` entry must equal.
    pub fn command_line(&self) -> Vec<String> {
        self.resolved_command(find_in(CLIENT_PATH, "python3").as_deref())
    }

    fn resolved_command(&self, python: Option<&Path>) -> Vec<String> {
        match &self.command {
            Some(c) if !c.is_empty() => c.clone(),
            _ => vec![
                python.map_or_else(|| "python3".to_owned(), |p| p.display().to_string()),
                test_mcp_server_script().display().to_string(),
            ],
        }
    }

    /// The name of the server's tool as the model sees it (`mcp__<name>__echo` for the test server).
    pub fn tool_name(&self, tool: &str) -> String {
        format!("mcp__{}__{}", self.name, tool)
    }
}

/// How to run the client. `RunOptions::new()` = prompt `hi`, no scripted replies (the fake API
/// answers `done`), no MCP servers, [`DEFAULT_TIMEOUT`].
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub prompt: String,
    /// Extra client arguments after `-p … --output-format stream-json --verbose`.
    pub args: Vec<String>,
    /// Extra environment (over the harness's: PATH, HOME, TMPDIR, ANTHROPIC_BASE_URL,
    /// ENABLE_TOOL_SEARCH=false, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, DISABLE_AUTOUPDATER=1).
    /// Nothing else is inherited; in particular no ANTHROPIC_API_KEY unless set here.
    pub env: Vec<(String, String)>,
    pub user_mcp_servers: Vec<McpServer>,
    /// Written to `<workdir>/.mcp.json`; the user settings then get
    /// `enableAllProjectMcpServers: true` (unless they set it) so no approval prompt is needed.
    pub project_mcp_servers: Vec<McpServer>,
    /// `~/.claude/settings.json`.
    pub user_settings: Option<Value>,
    /// What the fake API answers to the model turns, in order.
    pub replies: Vec<Reply>,
    pub timeout: Duration,
    /// `--dangerously-skip-permissions` (with `IS_SANDBOX=1`, which the client needs as root):
    /// then only deny rules stop a tool, nothing waits for a prompt.
    pub skip_permissions: bool,
    /// Use this (existing) directory as the trusted work directory instead of a fresh one.
    pub workdir: Option<PathBuf>,
    /// Top-level keys merged into `~/.claude.json` (over the harness's onboarding/trust keys).
    pub user_config: Option<Value>,
    /// Files written under the throwaway HOME before the run: (path relative to HOME, content),
    /// e.g. `(".claude/skills/x/SKILL.md", …)`.
    pub home_files: Vec<(String, String)>,
    /// Files written under the work directory before the run.
    pub work_files: Vec<(String, String)>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            prompt: "hi".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            user_mcp_servers: Vec::new(),
            project_mcp_servers: Vec::new(),
            user_settings: None,
            replies: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            skip_permissions: false,
            workdir: None,
            user_config: None,
            home_files: Vec::new(),
            work_files: Vec::new(),
        }
    }
}

impl RunOptions {
    pub fn new() -> RunOptions {
        RunOptions::default()
    }
    pub fn prompt(mut self, prompt: &str) -> Self {
        self.prompt = prompt.to_owned();
        self
    }
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
    /// Shorthand for `env("ANTHROPIC_API_KEY", key)`.
    pub fn api_key(self, key: &str) -> Self {
        self.env("ANTHROPIC_API_KEY", key)
    }
    pub fn user_mcp(mut self, server: McpServer) -> Self {
        self.user_mcp_servers.push(server);
        self
    }
    pub fn project_mcp(mut self, server: McpServer) -> Self {
        self.project_mcp_servers.push(server);
        self
    }
    pub fn user_settings(mut self, settings: Value) -> Self {
        self.user_settings = Some(settings);
        self
    }
    pub fn reply(mut self, reply: Reply) -> Self {
        self.replies.push(reply);
        self
    }
    /// Scripts one `tool_use` of `name` with `input`, then the turn after it ends with `done`.
    pub fn tool_use(self, name: &str, input: Value) -> Self {
        self.reply(Reply::tool_use(name, input))
    }
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn skip_permissions(mut self) -> Self {
        self.skip_permissions = true;
        self
    }
    pub fn workdir(mut self, dir: &Path) -> Self {
        self.workdir = Some(dir.to_owned());
        self
    }
    /// Merges the top-level keys of `config` (an object) into `~/.claude.json`.
    pub fn user_config(mut self, config: Value) -> Self {
        self.user_config = Some(config);
        self
    }
    /// Writes `content` to `$HOME/<rel_path>` before the run.
    pub fn home_file(mut self, rel_path: &str, content: &str) -> Self {
        self.home_files
            .push((rel_path.to_owned(), content.to_owned()));
        self
    }
    /// A user skill `~/.claude/skills/<name>/SKILL.md`.
    pub fn user_skill(self, name: &str) -> Self {
        let body = format!("---\nname: {name}\ndescription: A test skill\n---\nSay hi.\n");
        self.home_file(&format!(".claude/skills/{name}/SKILL.md"), &body)
    }
    /// Writes `content` to `<workdir>/<rel_path>` before the run.
    pub fn work_file(mut self, rel_path: &str, content: &str) -> Self {
        self.work_files
            .push((rel_path.to_owned(), content.to_owned()));
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// One MCP server as the `init` event reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpServerStatus {
    pub name: String,
    /// `connected`, `failed`, `pending`, ...
    pub status: String,
    /// `user`, `project`, `dynamic`, ...
    pub source: Option<String>,
}

/// The stream-json `init` event (first line of the output).
#[derive(Clone, Debug)]
pub struct InitEvent {
    /// Tool names as the client reports them (note: `Task` here is `Agent` in the request).
    pub tools: Vec<String>,
    /// Servers the client tried; a server blocked by policy is absent.
    pub mcp_servers: Vec<McpServerStatus>,
    /// `default`, `auto`, `bypassPermissions`, `dontAsk`, `plan`, `acceptEdits`.
    pub permission_mode: String,
    /// `ANTHROPIC_API_KEY`, `apiKeyHelper`, `none`, ...
    pub api_key_source: String,
    pub model: String,
    /// Skills the session can use (bundled ones included).
    pub skills: Vec<String>,
    pub sandbox_enabled: Option<bool>,
    pub raw: Value,
}

fn str_field(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl InitEvent {
    fn from_json(e: &Value) -> InitEvent {
        let mcp_servers = e["mcp_servers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| McpServerStatus {
                        name: str_field(s, "name"),
                        status: str_field(s, "status"),
                        source: s["source"].as_str().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        InitEvent {
            tools: string_list(&e["tools"]),
            mcp_servers,
            permission_mode: str_field(e, "permissionMode"),
            api_key_source: str_field(e, "apiKeySource"),
            model: str_field(e, "model"),
            skills: string_list(&e["skills"]),
            sandbox_enabled: e["sandbox_enabled"].as_bool(),
            raw: e.clone(),
        }
    }

    /// The status of MCP server `name`, `None` when the client did not list it (blocked).
    pub fn mcp_status(&self, name: &str) -> Option<&str> {
        self.mcp_servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.status.as_str())
    }

    pub fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t == name)
    }
}

/// A `tool_result` the client sent back for a scripted `tool_use`.
#[derive(Clone, Debug)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
    /// The result's text (text blocks joined with newlines).
    pub text: String,
    pub is_error: bool,
}

/// An entry the client reported as invalid (and dropped or replaced by its restrictive value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The file, as the client sees it (`/etc/claude-code/managed-settings.d/50-palisade.json`).
    pub file: String,
    /// Dotted key, e.g. `permissions.deny` or `cleanupPeriodDays`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} › {}: {}", self.file, self.key, self.message)
    }
}

/// What one client run did.
pub struct RunResult {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Every stream-json line that parsed as JSON, in order.
    pub events: Vec<Value>,
    pub init: Option<InitEvent>,
    /// Every request the fake API received, in order.
    pub requests: Vec<RecordedRequest>,
    /// The throwaway HOME (kept until the result is dropped).
    pub home: PathBuf,
    /// The trusted work directory the client ran in.
    pub workdir: PathBuf,
    run_dir: tempfile::TempDir,
}

impl fmt::Debug for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunResult")
            .field("status", &self.status)
            .field("init", &self.init)
            .field("requests", &self.requests.len())
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

impl RunResult {
    /// The `init` event, or an error showing what the client printed instead.
    pub fn init(&self) -> Result<&InitEvent> {
        self.init.as_ref().ok_or_else(|| {
            anyhow!(
                "the client printed no init event (exit {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.status.code(),
                tail(&self.stdout, 4000),
                tail(&self.stderr, 4000)
            )
        })
    }

    /// The client exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The model turns: `/v1/messages` requests carrying a `tools` array.
    pub fn turns(&self) -> impl Iterator<Item = &RecordedRequest> {
        self.requests.iter().filter(|r| r.is_turn())
    }

    /// The first model turn, or an error showing stderr.
    pub fn first_turn(&self) -> Result<&RecordedRequest> {
        self.turns().next().ok_or_else(|| {
            anyhow!(
                "the fake API saw no model turn (exit {:?}, {} requests)\n--- stderr ---\n{}",
                self.status.code(),
                self.requests.len(),
                tail(&self.stderr, 4000)
            )
        })
    }

    /// The tool names the first model turn offered (the request's `tools` array).
    pub fn offered_tools(&self) -> Result<Vec<String>> {
        Ok(self.first_turn()?.tool_names().unwrap_or_default())
    }

    /// Every `tool_result` the client produced, matched with the `tool_use` it answers.
    pub fn tool_results(&self) -> Vec<ToolResult> {
        let mut uses: BTreeMap<String, (String, Value)> = BTreeMap::new();
        let mut results = Vec::new();
        for e in &self.events {
            let Some(content) = e["message"]["content"].as_array() else {
                continue;
            };
            for block in content {
                match block["type"].as_str() {
                    Some("tool_use") if e["type"] == "assistant" => {
                        uses.insert(
                            str_field(block, "id"),
                            (str_field(block, "name"), block["input"].clone()),
                        );
                    }
                    Some("tool_result") if e["type"] == "user" => {
                        let id = str_field(block, "tool_use_id");
                        let (name, input) = uses.get(&id).cloned().unwrap_or_default();
                        results.push(ToolResult {
                            tool_use_id: id,
                            name,
                            input,
                            text: content_text(&block["content"]),
                            is_error: block["is_error"].as_bool().unwrap_or(false),
                        });
                    }
                    _ => {}
                }
            }
        }
        results
    }

    /// The first `tool_result` for a scripted `tool_use` of `name`.
    pub fn tool_result_for(&self, name: &str) -> Option<ToolResult> {
        self.tool_results().into_iter().find(|r| r.name == name)
    }

    /// The first `tool_result` for `name`, or an error listing what the client did.
    pub fn expect_tool_result(&self, name: &str) -> Result<ToolResult> {
        self.tool_result_for(name).ok_or_else(|| {
            anyhow!(
                "no tool_result for {name}; results: {:?}\n--- stderr ---\n{}",
                self.tool_results(),
                tail(&self.stderr, 4000)
            )
        })
    }

    /// The final `result` event.
    pub fn result_event(&self) -> Option<&Value> {
        self.events.iter().rev().find(|e| e["type"] == "result")
    }

    /// Events `{"type":"system","subtype":<subtype>}` (e.g. `permission_denied`, `informational`).
    pub fn system_events<'a>(&'a self, subtype: &'a str) -> impl Iterator<Item = &'a Value> {
        self.events
            .iter()
            .filter(move |e| e["type"] == "system" && e["subtype"] == subtype)
    }

    /// Invalid managed entries the client named on stderr.
    pub fn invalid_settings(&self) -> Vec<InvalidSetting> {
        parse_stderr_invalid(&self.stderr)
    }

    /// Whether the client ever started MCP server `name` (configured through this run).
    pub fn mcp_server_started(&self, name: &str) -> bool {
        mcp_log_path(self.run_dir.path(), name).exists()
    }
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `claude doctor`'s output.
#[derive(Debug)]
pub struct DoctorReport {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The `Invalid settings` section (empty when there is none).
    pub invalid: Vec<InvalidSetting>,
}

/// Parses doctor's `Invalid settings` section:
/// `- /etc/claude-code/managed-settings.d/50-palisade.json › cleanupPeriodDays: Failed schema validation. …`
pub fn parse_doctor_invalid(stdout: &str) -> Vec<InvalidSetting> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in stdout.lines() {
        if line.trim() == "Invalid settings" {
            in_section = true;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some(entry) = line.strip_prefix("- ") else {
            if line.trim().is_empty() {
                in_section = false;
            }
            continue;
        };
        let Some((file, rest)) = entry.split_once(" › ") else {
            continue;
        };
        let (key, message) = rest.split_once(": ").unwrap_or((rest, ""));
        out.push(InvalidSetting {
            file: file.trim().to_owned(),
            key: key.trim().to_owned(),
            message: message.trim().to_owned(),
        });
    }
    out
}

/// Parses the warning a run prints on stderr:
/// `Managed settings contain invalid entries (…):` then lines
/// `  /etc/claude-code/managed-settings.d/50-palisade.json (cleanupPeriodDays): Failed …`
pub fn parse_stderr_invalid(stderr: &str) -> Vec<InvalidSetting> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in stderr.lines() {
        if line.starts_with("Managed settings contain invalid entries") {
            in_block = true;
            continue;
        }
        if !in_block {
            continue;
        }
        if !line.starts_with(' ') {
            in_block = false;
            continue;
        }
        let entry = line.trim();
        let Some((file, rest)) = entry.split_once(" (") else {
            continue;
        };
        let Some((key, message)) = rest.split_once("): ") else {
            continue;
        };
        out.push(InvalidSetting {
            file: file.to_owned(),
            key: key.to_owned(),
            message: message.to_owned(),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The fake Anthropic API
// ---------------------------------------------------------------------------------------------

/// One scripted answer of the fake API to a model turn.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A text block; ends the turn (`stop_reason: end_turn`).
    Text(String),
    /// A `tool_use` block; the client runs (or refuses) the tool and sends a `tool_result`.
    ToolUse { name: String, input: Value },
    /// An HTTP error with an Anthropic error body (e.g. 401 `authentication_error`).
    Error {
        status: u16,
        error_type: String,
        message: String,
    },
}

impl Reply {
    pub fn text(text: &str) -> Reply {
        Reply::Text(text.to_owned())
    }
    pub fn tool_use(name: &str, input: Value) -> Reply {
        Reply::ToolUse {
            name: name.to_owned(),
            input,
        }
    }
    pub fn error(status: u16, error_type: &str, message: &str) -> Reply {
        Reply::Error {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// The answer once the script is used up.
const DEFAULT_REPLY_TEXT: &str = "done";

/// A request the fake API received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names in lower case; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Null` when empty; `{"raw": text}` when not JSON).
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn x_api_key(&self) -> Option<&str> {
        self.header("x-api-key")
    }
    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
    }
    pub fn model(&self) -> Option<&str> {
        self.body["model"].as_str()
    }
    /// The names in the body's `tools` array (`None` when the body has none).
    pub fn tool_names(&self) -> Option<Vec<String>> {
        self.body["tools"].as_array().map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
    }
    /// A model turn: `POST /v1/messages…` (not count_tokens) with a `tools` array.
    pub fn is_turn(&self) -> bool {
        self.method == "POST"
            && self.path.starts_with("/v1/messages")
            && !self.path.contains("count_tokens")
            && self.body.get("tools").is_some()
    }
}

struct ApiState {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    counter: AtomicU64,
}

/// A fake Anthropic Messages API on `127.0.0.1:<free port>`: records every request and answers
/// model turns from a script ([`Reply`]s in order, then `done`). Streams SSE when the request
/// says `"stream": true`. Stops when dropped.
pub struct FakeApi {
    addr: SocketAddr,
    state: Arc<ApiState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeApi").field("addr", &self.addr).finish()
    }
}

impl FakeApi {
    pub async fn start(replies: Vec<Reply>) -> Result<FakeApi> {
        let state = Arc::new(ApiState {
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake Anthropic API")?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle_api).with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeApi {
            addr,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://127.0.0.1:<port>` (the value for `ANTHROPIC_BASE_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Appends replies to the script.
    pub fn push_replies(&self, replies: impl IntoIterator<Item = Reply>) {
        if let Ok(mut q) = self.state.replies.lock() {
            q.extend(replies);
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

async fn handle_api(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut header_map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        header_map
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let body_json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&body) }))
    };
    let req = RecordedRequest {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: header_map,
        body: body_json,
    };
    let is_turn = req.is_turn();
    let is_messages = req.method == "POST" && req.path.starts_with("/v1/messages");
    let is_count = req.path.contains("count_tokens");
    let stream = req.body["stream"].as_bool().unwrap_or(false);
    let model = req.model().unwrap_or("claude-test").to_owned();
    if let Ok(mut r) = state.requests.lock() {
        r.push(req);
    }

    if method == Method::HEAD || method == Method::GET {
        return respond(StatusCode::OK, "application/json", "{}".to_owned());
    }
    if !is_messages {
        return respond(
            StatusCode::NOT_FOUND,
            "application/json",
            json!({"type": "error", "error": {"type": "not_found_error", "message": "not found"}})
                .to_string(),
        );
    }
    if is_count {
        return respond(
            StatusCode::OK,
            "application/json",
            json!({"input_tokens": 10}).to_string(),
        );
    }
    let reply = if is_turn {
        state.replies.lock().ok().and_then(|mut q| q.pop_front())
    } else {
        None
    }
    .unwrap_or_else(|| Reply::text(DEFAULT_REPLY_TEXT));
    let n = state.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let (content, stop_reason) = match reply {
        Reply::Text(text) => (json!([{"type": "text", "text": text}]), "end_turn"),
        Reply::ToolUse { name, input } => (
            json!([{"type": "tool_use", "id": format!("toolu_{n:04}"), "name": name, "input": input}]),
            "tool_use",
        ),
        Reply::Error {
            status,
            error_type,
            message,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return respond(
                code,
                "application/json",
                json!({"type": "error", "error": {"type": error_type, "message": message}})
                    .to_string(),
            );
        }
    };
    let message = json!({
        "id": format!("msg_{n:04}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    });
    if stream {
        respond(StatusCode::OK, "text/event-stream", sse_body(&message))
    } else {
        respond(StatusCode::OK, "application/json", message.to_string())
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}

/// The Messages API streaming events for a complete `message`.
fn sse_body(message: &Value) -> String {
    let mut events: Vec<(&str, Value)> = Vec::new();
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    events.push((
        "message_start",
        json!({"type": "message_start", "message": start}),
    ));
    let blocks = message["content"].as_array().cloned().unwrap_or_default();
    for (i, block) in blocks.iter().enumerate() {
        if block["type"] == "tool_use" {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block":
                    {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}),
            ));
            events.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta":
                    {"type": "input_json_delta", "partial_json": block["input"].to_string()}}),
            ));
        } else {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block":
                    {"type": "text", "text": ""}}),
            ));
            events.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta":
                    {"type": "text_delta", "text": block["text"]}}),
            ));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    events.push((
        "message_delta",
        json!({"type": "message_delta", "delta":
            {"stop_reason": message["stop_reason"], "stop_sequence": null},
            "usage": {"output_tokens": 5}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_doctor_invalid_section() {
        let out = "Claude Code doctor\n\nInvalid settings\n\
            - /etc/claude-code/managed-settings.d/50-palisade.json › cleanupPeriodDays: Failed schema validation. This field was ignored.\n\
            - /etc/claude-code/managed-settings.d/50-palisade.json › permissions.deny: \"deny\" was present but invalid (expected array) and was ignored; it cannot take effect until it is fixed.\n\
            \nRemote Control\n- Not connected\n";
        let inv = parse_doctor_invalid(out);
        assert_eq!(inv.len(), 2, "{inv:?}");
        assert_eq!(inv[0].key, "cleanupPeriodDays");
        assert_eq!(
            inv[0].file,
            "/etc/claude-code/managed-settings.d/50-palisade.json"
        );
        assert_eq!(inv[1].key, "permissions.deny");
        assert!(inv[1].message.contains("(expected array)"));
    }

    #[test]
    fn parses_stderr_invalid_block() {
        let err = "Managed settings contain invalid entries (remaining valid policies are still enforced):\n  \
            /etc/claude-code/managed-settings.d/50-palisade.json (cleanupPeriodDays): Failed schema validation. This field was ignored.\n\
            something else\n";
        let inv = parse_stderr_invalid(err);
        assert_eq!(inv.len(), 1, "{inv:?}");
        assert_eq!(inv[0].key, "cleanupPeriodDays");
        assert_eq!(
            inv[0].message,
            "Failed schema validation. This field was ignored."
        );
    }

    #[test]
    fn sse_body_carries_tool_input() {
        let msg = json!({"id": "m", "content": [{"type": "tool_use", "id": "t", "name": "Read",
            "input": {"file_path": "/x"}}], "stop_reason": "tool_use"});
        let body = sse_body(&msg);
        assert!(body.starts_with("event: message_start\n"));
        assert!(body.contains(r#"\"file_path\":\"/x\""#), "{body}");
        assert!(body.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }
}
