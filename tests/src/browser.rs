//! Headless Chromium for the end-to-end tests: chromedriver on a free port, driven with fantoccini.
//!
//! [`Browser::start`] runs `chromedriver --port=N` and opens a WebDriver session on
//! `/usr/bin/chromium --headless=new` with a fresh profile directory. Dropping the [`Browser`]
//! kills chromedriver and every Chromium process that uses that profile; [`Browser::close`] ends
//! the session politely first.
//!
//! Missing chromedriver or Chromium: with the `CI` environment variable set (non-empty) that is
//! an error, so browser tests never pass by skipping in CI; otherwise [`Browser::start_or_skip`]
//! prints the reason and returns `None`. Install them with `tests/setup-test-deps.sh`.
//!
//! Environment: `PALISADE_CHROMEDRIVER` (default: `chromedriver` on PATH) and
//! `PALISADE_CHROMIUM` (default `/usr/bin/chromium`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::{ClientBuilder, Locator};
use reqwest::Url;
use serde_json::json;

const DRIVER_STARTUP: Duration = Duration::from_secs(30);

/// A headless Chromium session. `client` is the fantoccini client.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    profile: tempfile::TempDir,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver_pid", &self.driver.id())
            .field("profile", &self.profile.path())
            .finish()
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether this run must not skip browser tests: `CI` is set and not empty.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// chromedriver and Chromium, or why they are missing.
fn locate() -> std::result::Result<(PathBuf, PathBuf), String> {
    let driver_name =
        std::env::var("PALISADE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let chromium = PathBuf::from(
        std::env::var("PALISADE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
    );
    let driver = find_on_path(&driver_name).ok_or_else(|| {
        format!("`{driver_name}` not found on PATH (run tests/setup-test-deps.sh, or apt-get install chromium-driver)")
    })?;
    if !chromium.is_file() {
        return Err(format!(
            "Chromium not found at {} (run tests/setup-test-deps.sh, or apt-get install chromium)",
            chromium.display()
        ));
    }
    Ok((driver, chromium))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Fails when either is missing.
    pub async fn start() -> Result<Browser> {
        let (driver_path, chromium) = locate().map_err(|reason| anyhow!(reason))?;
        let profile = tempfile::Builder::new()
            .prefix("palisade-chromium-")
            .tempdir()
            .context("creating the Chromium profile directory")?;
        let port = free_port()?;
        let mut driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", driver_path.display()))?;

        let webdriver = format!("http://127.0.0.1:{port}");
        if let Err(e) = wait_for_driver(&webdriver, &mut driver).await {
            let _ = driver.kill();
            let _ = driver.wait();
            return Err(e);
        }

        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1280,900",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
        {
            Ok(client) => client,
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                bail!(
                    "opening a WebDriver session on {webdriver} with {}: {e}",
                    chromium.display()
                );
            }
        };
        Ok(Browser {
            client,
            driver,
            profile,
        })
    }

    /// [`Browser::start`], except that outside CI a missing chromedriver or Chromium prints why
    /// and gives `None` (skip the test). In CI (`CI` set) it is an error.
    ///
    /// ```ignore
    /// let Some(browser) = Browser::start_or_skip().await? else { return Ok(()) };
    /// ```
    pub async fn start_or_skip() -> Result<Option<Browser>> {
        if let Err(reason) = locate() {
            if in_ci() {
                bail!("browser test cannot run in CI: {reason}");
            }
            eprintln!("SKIPPING browser test: {reason}");
            return Ok(None);
        }
        Browser::start().await.map(Some)
    }

    /// Polls the current URL until it starts with `prefix`; returns it.
    pub async fn wait_for_url_prefix(&self, prefix: &str, timeout: Duration) -> Result<Url> {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self
                .client
                .current_url()
                .await
                .context("reading the current URL")?;
            if url.as_str().starts_with(prefix) {
                return Ok(url);
            }
            if Instant::now() > deadline {
                let source = self.client.source().await.unwrap_or_default();
                bail!("the browser is at {url}, not {prefix}…, after {timeout:?}; page:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in on the test provider's login page (see `crate::oidc`): opens `start_url`, fills
    /// `login` and `password`, presses `submit` and waits until the browser is on a URL that
    /// starts with `redirect_uri_prefix`, which it returns (with `code`, `state` and `iss`).
    pub async fn login_to_op(
        &self,
        start_url: &str,
        redirect_uri_prefix: &str,
        login: &str,
        password: &str,
    ) -> Result<Url> {
        self.fill_login(start_url, login, password).await?;
        self.wait_for_url_prefix(redirect_uri_prefix, Duration::from_secs(20))
            .await
    }

    /// Opens `start_url`, fills the provider's login form and submits it, without waiting for
    /// where it goes (a refused login stays on the form with `#error`).
    pub async fn fill_login(&self, start_url: &str, login: &str, password: &str) -> Result<()> {
        self.client
            .goto(start_url)
            .await
            .with_context(|| format!("opening {start_url}"))?;
        self.fill_login_on_current_page(login, password).await
    }

    /// Waits for the provider's login form on the page the browser is on (it got there by
    /// following a relying party's redirect), fills it and submits it.
    pub async fn fill_login_on_current_page(&self, login: &str, password: &str) -> Result<()> {
        let c = &self.client;
        let field = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("login"))
            .await
            .context("waiting for the login form")?;
        field.send_keys(login).await.context("typing the login")?;
        c.find(Locator::Id("password"))
            .await
            .context("finding the password field")?
            .send_keys(password)
            .await
            .context("typing the password")?;
        c.find(Locator::Id("submit"))
            .await
            .context("finding the submit button")?
            .click()
            .await
            .context("pressing submit")?;
        Ok(())
    }

    /// Ends the WebDriver session (Chromium exits), then chromedriver.
    pub async fn close(self) -> Result<()> {
        let result = self.client.clone().close().await;
        drop(self);
        result.map_err(|e| anyhow!("closing the WebDriver session: {e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_processes_using(self.profile.path());
    }
}

/// Kills the processes (Chromium and its helpers) whose command line names `profile`, a
/// directory unique to one [`Browser`]. Linux only; elsewhere a no-op.
fn kill_processes_using(profile: &Path) {
    let needle = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes())
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn wait_for_driver(webdriver: &str, driver: &mut Child) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + DRIVER_STARTUP;
    loop {
        if let Some(status) = driver.try_wait()? {
            bail!("chromedriver exited with {status} before it was ready");
        }
        if let Ok(resp) = http.get(format!("{webdriver}/status")).send().await {
            if resp.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("chromedriver at {webdriver} not ready after {DRIVER_STARTUP:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
