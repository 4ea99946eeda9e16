//! A real OpenID Provider for the end-to-end tests: panva's `oidc-provider` (Node) from `tests/oidc-provider/`.
//!
//! [`TestOp::start`] installs the provider's npm packages once (`npm ci`, guarded against
//! parallel test processes), runs `node server.mjs` on `127.0.0.1:0`, waits for its
//! `ISSUER http://127.0.0.1:PORT` line and kills the provider on drop. [`login_over_http`] signs
//! in through the provider's login form with a plain HTTP client (no browser) and hands back the
//! redirect to the relying party's callback, unfollowed.
//!
//! The login form (see `tests/oidc-provider/README.md`): `GET /interaction/{uid}` shows
//! `<form method="post" action="/interaction/{uid}/login">` with the fields `login` (the account's
//! `preferred_username`, `email` or `sub`) and `password`, and a submit button with id `submit`.
//! Consent is given automatically. A wrong password answers 401 with the form again and
//! `<p id="error">`.
//!
//! Environment: `PALISADE_NODE` and `PALISADE_NPM` override the `node` and `npm` commands.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::LOCATION;
use reqwest::{StatusCode, Url};
use serde::Serialize;

// Generous: on the 2-core CI machine the provider starts while every other test runs too (a
// fresh-clone run once needed more than 30 s). It bounds a wait, it measures nothing.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(600);
/// A lock directory older than this is taken to be left by a killed process.
const STALE_LOCK: Duration = Duration::from_secs(900);
const MAX_HOPS: usize = 20;

/// Which claims the ID token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimsMode {
    /// email, email_verified, name, preferred_username, groups (and upn) are in the ID token and
    /// in userinfo, like Entra ID or an Okta custom authorization server.
    Rich,
    /// The ID token carries only `sub` and the protocol claims; the rest come from userinfo
    /// alone, like Okta's org authorization server.
    Thin,
}

/// A confidential web client (authorization code + PKCE; client_secret_basic or _post).
#[derive(Debug, Clone, Serialize)]
pub struct OpClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout (`/session/end`) may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
}

impl OpClient {
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        OpClient {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            post_logout_redirect_uris: Vec::new(),
        }
    }
}

/// A person who can sign in. `login` in the form matches `preferred_username`, `email` or `sub`.
#[derive(Debug, Clone, Serialize)]
pub struct OpAccount {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub preferred_username: String,
    pub name: String,
    pub groups: Vec<String>,
    pub password: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
}

impl OpAccount {
    /// An account with a verified email; preferred_username is the email's local part.
    pub fn new(sub: &str, email: &str, password: &str) -> Self {
        let local = email.split('@').next().unwrap_or(email);
        OpAccount {
            sub: sub.to_owned(),
            email: email.to_owned(),
            email_verified: true,
            preferred_username: local.to_owned(),
            name: local.to_owned(),
            groups: Vec::new(),
            password: password.to_owned(),
            upn: None,
        }
    }

    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }
}

/// The provider's configuration, written as JSON for `server.mjs --config`.
#[derive(Debug, Clone, Serialize)]
pub struct OpConfig {
    pub mode: ClaimsMode,
    pub clients: Vec<OpClient>,
    pub accounts: Vec<OpAccount>,
}

impl OpConfig {
    pub fn new(mode: ClaimsMode) -> Self {
        OpConfig {
            mode,
            clients: Vec::new(),
            accounts: Vec::new(),
        }
    }

    pub fn client(mut self, client: OpClient) -> Self {
        self.clients.push(client);
        self
    }

    pub fn account(mut self, account: OpAccount) -> Self {
        self.accounts.push(account);
        self
    }
}

/// A running provider; killed on drop.
pub struct TestOp {
    child: Child,
    // Kept open: the provider runs with --watch-stdin and exits when it closes, so it also dies
    // when the test process is killed before Drop runs.
    _stdin: Option<ChildStdin>,
    issuer: String,
    stderr: std::sync::Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl fmt::Debug for TestOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestOp")
            .field("issuer", &self.issuer)
            .field("pid", &self.child.id())
            .finish()
    }
}

/// `tests/oidc-provider/`.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

fn node() -> String {
    std::env::var("PALISADE_NODE").unwrap_or_else(|_| "node".to_owned())
}

fn npm() -> String {
    std::env::var("PALISADE_NPM").unwrap_or_else(|_| "npm".to_owned())
}

/// npm writes `node_modules/.package-lock.json` last; it must be newer than `package-lock.json`.
fn node_modules_ready(dir: &Path) -> bool {
    let mtime = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
    let (Some(installed), Some(wanted)) = (
        mtime(dir.join("node_modules/.package-lock.json")),
        mtime(dir.join("package-lock.json")),
    ) else {
        return false;
    };
    installed >= wanted
        && dir
            .join("node_modules/oidc-provider/package.json")
            .is_file()
}

/// A lock shared by every test process: a directory created atomically, removed on drop.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: PathBuf, timeout: Duration) -> Result<DirLock> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match fs::create_dir(&path) {
                Ok(()) => return Ok(DirLock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > STALE_LOCK) {
                        eprintln!("removing stale lock {}", path.display());
                        let _ = fs::remove_dir(&path);
                        continue;
                    }
                    if std::time::Instant::now() > deadline {
                        bail!("timed out waiting for the lock {}", path.display());
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// Runs `npm ci` in `tests/oidc-provider` unless its node_modules is already installed. Safe to
/// call from many threads and processes at once: one installs, the others wait.
pub fn ensure_npm_packages() -> Result<()> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let dir = provider_dir();
    if node_modules_ready(&dir) {
        return Ok(());
    }
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let _lock = DirLock::acquire(dir.join(".npm-ci.lock"), NPM_CI_TIMEOUT)?;
    if node_modules_ready(&dir) {
        return Ok(());
    }
    eprintln!("running `npm ci` in {}", dir.display());
    let out = Command::new(npm())
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "running `{} ci` in {} (is Node.js installed? see tests/setup-test-deps.sh)",
                npm(),
                dir.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "`npm ci` in {} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !node_modules_ready(&dir) {
        bail!(
            "`npm ci` in {} succeeded but node_modules is incomplete",
            dir.display()
        );
    }
    Ok(())
}

impl TestOp {
    /// Starts a provider with `config` on a free port of 127.0.0.1.
    pub fn start(config: &OpConfig) -> Result<TestOp> {
        ensure_npm_packages()?;
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let config_path = dir.path().join("op.json");
        fs::write(&config_path, serde_json::to_vec_pretty(config)?)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut child = Command::new(node())
            .arg(provider_dir().join("server.mjs"))
            .args(["--port", "0", "--watch-stdin", "--config"])
            .arg(&config_path)
            .current_dir(provider_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{} server.mjs` (is Node.js installed?)", node()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let stderr_pipe = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr pipe"))?;

        let stderr = std::sync::Arc::new(Mutex::new(String::new()));
        let stderr_buf = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                // eprintln! is captured per test by libtest and nextest alike.
                eprintln!("[op] {line}");
                if let Ok(mut b) = stderr_buf.lock() {
                    b.push_str(&line);
                    b.push('\n');
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(issuer) = line.trim_end().strip_prefix("ISSUER ") {
                    let _ = tx.send(issuer.to_owned());
                    break;
                }
                line.clear();
            }
            // Keep draining so the provider never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });

        let mut op = TestOp {
            child,
            _stdin: stdin,
            issuer: String::new(),
            stderr,
            _dir: dir,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(issuer) => op.issuer = issuer,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                let status = op.child.try_wait().ok().flatten();
                bail!(
                    "oidc-provider printed no `ISSUER …` line within {STARTUP_TIMEOUT:?} (exit status {status:?})\n--- stderr ---\n{}",
                    op.stderr()
                );
            }
        }
        Ok(op)
    }

    /// `http://127.0.0.1:PORT`, exactly as the discovery document's `issuer`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// What the provider wrote to stderr so far (one line per request, refused logins, errors).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for TestOp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reqwest client for [`login_over_http`]: a cookie store and no automatic redirects. Use ONE
/// such client for the whole flow (RP start, provider login, RP callback) so it carries the
/// RP's session cookie as a browser would.
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the reqwest client")
}

/// [`http_client`] on a caller's cookie jar, e.g. to seed or inspect the RP's session cookie:
/// `jar.add_cookie_str("rp_session=…; Path=/", &rp_url)`, `jar.cookies(&rp_url)`.
pub fn http_client_with_jar(jar: std::sync::Arc<reqwest::cookie::Jar>) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the reqwest client")
}

/// The provider refused the login: wrong password or unknown login.
#[derive(Debug, Clone)]
pub struct LoginRefused {
    pub status: StatusCode,
    /// The text of the page's `<p id="error">`.
    pub message: String,
}

impl fmt::Display for LoginRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the provider refused the login ({}): {}",
            self.status, self.message
        )
    }
}

impl std::error::Error for LoginRefused {}

/// The redirect to the relying party's callback that ended the provider's part of the flow.
#[derive(Debug)]
pub struct CallbackRedirect {
    /// The absolute callback URL (the `Location`), e.g. `…/callback?code=…&state=…&iss=…`.
    pub url: Url,
    /// The provider's redirect response itself (status 303 or 302).
    pub response: reqwest::Response,
}

impl CallbackRedirect {
    /// A query parameter of the callback URL.
    pub fn param(&self, name: &str) -> Option<String> {
        query_param(&self.url, name)
    }

    pub fn code(&self) -> Option<String> {
        self.param("code")
    }

    pub fn state(&self) -> Option<String> {
        self.param("state")
    }

    /// `error` (e.g. `access_denied`) when the provider sent an error response instead of a code.
    pub fn error(&self) -> Option<String> {
        self.param("error")
    }
}

/// A query parameter of `url`.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Signs in like a browser without a browser. Starting at `start_url` (the provider's
/// authorization URL, or an RP URL that redirects there), follows every redirect, fills the
/// provider's login form with `login` and `password` when it appears, and stops at the first
/// redirect whose `Location` starts with `redirect_uri_prefix` (the RP's callback), which it
/// returns without following it.
///
/// `client` must keep cookies and not follow redirects itself: build it with [`http_client`].
/// To finish the RP's side, request `redirect.url` with the same client, so the RP's own session
/// cookie (set at the RP's start URL) goes along. When the provider already has a session for
/// this client's cookie jar, no form is shown and `login`/`password` go unused.
///
/// A refused login fails with a [`LoginRefused`] inside the `anyhow::Error`
/// (`err.downcast_ref::<LoginRefused>()`).
pub async fn login_over_http(
    client: &reqwest::Client,
    start_url: &str,
    redirect_uri_prefix: &str,
    login: &str,
    password: &str,
) -> Result<CallbackRedirect> {
    let mut url = Url::parse(start_url).with_context(|| format!("parsing {start_url}"))?;
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let mut posted = false;
    for _ in 0..MAX_HOPS {
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .ok_or_else(|| anyhow!("{status} from {url} without Location"))?
                .to_str()
                .context("non-ASCII Location")?;
            let next = url
                .join(location)
                .with_context(|| format!("bad Location {location:?} from {url}"))?;
            if next.as_str().starts_with(redirect_uri_prefix) {
                return Ok(CallbackRedirect {
                    url: next,
                    response,
                });
            }
            url = next;
            response = client
                .get(url.clone())
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            continue;
        }
        let body = response
            .text()
            .await
            .with_context(|| format!("reading the page at {url}"))?;
        if posted && (status == StatusCode::UNAUTHORIZED || body.contains("id=\"error\"")) {
            return Err(LoginRefused {
                status,
                message: error_text(&body).unwrap_or_else(|| body.clone()),
            }
            .into());
        }
        if !status.is_success() {
            bail!("{status} from {url}:\n{body}");
        }
        let Some(action) = form_action(&body) else {
            bail!("{url} answered {status} with neither a redirect nor the login form:\n{body}");
        };
        if posted {
            bail!("the login form came back after a successful post at {url}:\n{body}");
        }
        let target = url
            .join(&action)
            .with_context(|| format!("bad form action {action:?}"))?;
        response = client
            .post(target.clone())
            .form(&[("login", login), ("password", password)])
            .send()
            .await
            .with_context(|| format!("POST {target}"))?;
        url = target;
        posted = true;
    }
    bail!("more than {MAX_HOPS} hops without reaching {redirect_uri_prefix}")
}

fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let form = &form[..form.find('>')?];
    let start = form.find("action=\"")? + "action=\"".len();
    let end = start + form[start..].find('"')?;
    Some(unescape(&form[start..end]))
}

fn error_text(html: &str) -> Option<String> {
    let start = html.find("id=\"error\">")? + "id=\"error\">".len();
    let end = start + html[start..].find('<')?;
    Some(unescape(&html[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A stand-in for an RP's callback: answers `200 signed in` to every request on
/// `http://127.0.0.1:PORT/`, so a browser that follows the provider's redirect lands on a page,
/// and keeps each request's head (request line and headers) for [`CallbackSink::requests`].
/// Stops when dropped.
pub struct CallbackSink {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackSink {
    /// Binds 127.0.0.1:0; call inside a tokio runtime.
    pub async fn start() -> Result<CallbackSink> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the callback sink")?;
        let addr = listener.local_addr()?;
        let requests = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut read = 0;
                    // Read the request head; the body (if any) is ignored.
                    while read < buf.len() {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => read += n,
                        }
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..read]);
                    let head = head.split("\r\n\r\n").next().unwrap_or_default().to_owned();
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(head);
                    }
                    let body = "<!DOCTYPE html><html><head><title>signed in</title></head><body><p id=\"done\">signed in</p></body></html>";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(CallbackSink {
            addr,
            requests,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/callback`: register this as the client's redirect URI.
    pub fn redirect_uri(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The heads of the requests received so far, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for CallbackSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_login_form() {
        let html = r#"<p id="error">Invalid login or password.</p>
<form id="login-form" method="post" action="/interaction/a-B_1/login" autocomplete="off">"#;
        assert_eq!(
            form_action(html).as_deref(),
            Some("/interaction/a-B_1/login")
        );
        assert_eq!(
            error_text(html).as_deref(),
            Some("Invalid login or password.")
        );
        assert_eq!(form_action("<p>nothing</p>"), None);
    }
}
