//! A simulated workstation for end-to-end tests: its own state, settings and `~/.claude`
//! directories, and the real `palisade-agent` binary run against them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::ControlPlane;

/// How long a workstation waits for what it expects.
pub const WAIT: Duration = Duration::from_secs(20);

/// A new single-use activation code for `user` (the last line `invite create` prints).
pub async fn invite_code(cp: &ControlPlane, user: &str) -> Result<String> {
    let out = cp
        .cli_ok(&["invite", "create", "--org", "default", "--user", user])
        .await?;
    out.lines()
        .last()
        .map(|l| l.trim().to_string())
        .filter(|l| l.starts_with("pal_act_"))
        .ok_or_else(|| anyhow!("invite create printed no code: {out}"))
}

pub fn agent_binary() -> PathBuf {
    if let Ok(p) = std::env::var("PALISADE_AGENT_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/palisade-agent")
}

/// One simulated workstation: its own state, settings and ~/.claude directories.
pub struct Workstation {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Workstation {
    pub fn new() -> Result<Workstation> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("claude"))?;
        Ok(Workstation { dir, child: None })
    }
    /// The workstation's root directory (state, settings and the developer's files).
    pub fn root(&self) -> &std::path::Path {
        self.dir.path()
    }
    /// The uid the agent takes for the developer: the owner of the Claude config directory,
    /// or of its parent while it does not exist.
    #[cfg(unix)]
    pub fn developer_uid(&self) -> Result<u32> {
        use std::os::unix::fs::MetadataExt;
        let claude = self.claude();
        let probe = if claude.exists() {
            claude
        } else {
            self.dir.path().to_path_buf()
        };
        Ok(std::fs::metadata(probe)?.uid())
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn settings(&self) -> PathBuf {
        self.dir.path().join("settings")
    }
    pub fn claude(&self) -> PathBuf {
        self.dir.path().join("claude")
    }
    pub fn drop_in_path(&self) -> PathBuf {
        self.settings()
            .join("managed-settings.d")
            .join("50-palisade.json")
    }
    pub fn locations(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.state().display().to_string(),
            "--settings-dir".into(),
            self.settings().display().to_string(),
            "--claude-config-dir".into(),
            self.claude().display().to_string(),
        ]
    }
    pub fn command(&self, sub: &str) -> Command {
        let mut c = Command::new(agent_binary());
        c.arg(sub)
            .args(self.locations())
            .env("PALISADE_AGENT_LOG", "debug")
            .stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PALISADE_AGENT_") && k != "PALISADE_AGENT_LOG" {
                c.env_remove(k);
            }
        }
        c
    }
    /// `enroll --code`.
    pub async fn enroll_with_code(
        &self,
        cp: &ControlPlane,
        code: &str,
    ) -> Result<std::process::Output> {
        self.enroll_with_code_at(&cp.grpc_url, code).await
    }
    /// `enroll --code` against `server` (a load balancer in front of the control plane).
    pub async fn enroll_with_code_at(
        &self,
        server: &str,
        code: &str,
    ) -> Result<std::process::Output> {
        Ok(self
            .command("enroll")
            .args(["--server", server, "--code", code])
            .output()
            .await?)
    }
    /// `enroll --enroll-token --user` (the MDM method).
    pub async fn enroll(
        &self,
        cp: &ControlPlane,
        token: &str,
        user: &str,
    ) -> Result<std::process::Output> {
        Ok(self
            .command("enroll")
            .args([
                "--server",
                &cp.grpc_url,
                "--enroll-token",
                token,
                "--user",
                user,
            ])
            .output()
            .await?)
    }
    /// Enrolls as a verified device of `user` with a fresh activation code.
    pub async fn enroll_ok(&self, cp: &ControlPlane, user: &str) -> Result<()> {
        let code = invite_code(cp, user).await?;
        let out = self.enroll_with_code(cp, &code).await?;
        if !out.status.success() {
            bail!(
                "enroll failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
    pub fn start(&mut self) -> Result<()> {
        self.start_with_env(&[])
    }
    /// `run` with extra environment variables (e.g. `SSL_CERT_FILE` for the relay's upstream).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        let log = std::fs::File::create(self.dir.path().join("agent.log"))?;
        let child = self
            .command("run")
            .envs(env.iter().copied())
            .args(["--relay-addr", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting palisade-agent run")?;
        self.child = Some(child);
        Ok(())
    }
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
    pub fn drop_in(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.drop_in_path()).ok()?;
        serde_json::from_str(&text).ok()
    }
    pub fn deny_rules(&self) -> Vec<String> {
        self.drop_in()
            .and_then(|v| v.pointer("/permissions/deny").cloned())
            .and_then(|d| d.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect()
    }
    /// Polls the drop-in until `pred` holds.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Workstation) -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if pred(self) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "timed out waiting for {what}; drop-in: {:?}\n--- agent log ---\n{}",
            self.drop_in(),
            self.log()
        )
    }
    pub async fn api_key(&self) -> Result<std::process::Output> {
        Ok(self.command("api-key").output().await?)
    }
}

/// The secrets key the end-to-end tests start the control plane with.
pub const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A file holding [`SECRETS_KEY`], for `--secrets-key-file`.
pub fn secrets_key_file() -> Result<String> {
    // One file per call: scenarios of one test process run at once and must not share it.
    let path = std::env::temp_dir().join(format!(
        "palisade-e2e-secrets-{}-{}.key",
        std::process::id(),
        crate::random_hex()
    ));
    std::fs::write(&path, SECRETS_KEY)?;
    Ok(path.display().to_string())
}

/// Stores the organisation's API key with `api-key set` (read from standard input).
pub async fn set_org_api_key(cp: &ControlPlane, key: &str) -> Result<()> {
    set_api_key(cp, None, key).await
}

/// Switches the default organisation to helper key delivery (`apiKeyHelper` prints the real
/// key): for tests about what the key reaches, not how it is kept (new organisations relay).
pub async fn use_helper_delivery(cp: &ControlPlane) -> Result<()> {
    cp.cli_ok(&[
        "org",
        "settings",
        "--org",
        "default",
        "--key-delivery",
        "helper",
    ])
    .await?;
    Ok(())
}

/// Stores the API key of the organisation (`group` None) or of a group with `api-key set`.
pub async fn set_api_key(cp: &ControlPlane, group: Option<&str>, key: &str) -> Result<()> {
    let mut extra = Vec::new();
    if let Some(g) = group {
        extra.extend(["--group", g]);
    }
    let out = api_key_set(cp, key, Some(SECRETS_KEY), &extra).await?;
    if !out.status.success() {
        bail!("api-key set: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs `api-key set --org default` with `key` on stdin, no `PALISADE_*` variable but
/// `PALISADE_SECRETS_KEY` = `secrets` when given, and `extra` arguments; its output.
pub async fn api_key_set(
    cp: &ControlPlane,
    key: &str,
    secrets: Option<&str>,
    extra: &[&str],
) -> Result<std::process::Output> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = Command::new(crate::binary_path());
    cmd.args([
        "api-key",
        "set",
        "--org",
        "default",
        "--database-url",
        &cp.db.url,
    ])
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PALISADE_") {
            cmd.env_remove(k);
        }
    }
    if let Some(s) = secrets {
        cmd.env("PALISADE_SECRETS_KEY", s);
    }
    let mut child = cmd.spawn()?;
    {
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        stdin.write_all(format!("{key}\n").as_bytes()).await?;
    }
    Ok(child.wait_with_output().await?)
}

/// A control plane whose organisation keeps `key` on the laptops: proxy key delivery to
/// `upstream_url`, plus any further `org settings` flags in `extra` (keepalives every second).
pub async fn start_with_key_relay(
    backend: crate::Backend,
    key: &str,
    upstream_url: &str,
    extra: &[&str],
) -> Result<ControlPlane> {
    let secrets = secrets_key_file()?;
    let cp = ControlPlane::start(
        backend,
        &["--secrets-key-file", &secrets, "--keepalive-seconds", "1"],
    )
    .await?;
    set_org_api_key(&cp, key).await?;
    let mut args = vec![
        "org",
        "settings",
        "--org",
        "default",
        "--key-delivery",
        "proxy",
        "--upstream-url",
        upstream_url,
    ];
    args.extend_from_slice(extra);
    cp.cli_ok(&args).await?;
    Ok(cp)
}

/// Every regular file under `dir` (not under `skip`, symlinks not followed) that holds
/// `needle`: where a secret must not be.
pub fn files_containing(dir: &Path, needle: &str, skip: Option<&Path>) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if skip.is_some_and(|s| p.starts_with(s)) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && std::fs::read(&p)
                    .map(|b| String::from_utf8_lossy(&b).contains(needle))
                    .unwrap_or(false)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}
