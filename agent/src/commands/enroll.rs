//! `palisade-agent enroll`: binds this device to a proven person and saves the enrollment in
//! `device.json` (and a copy of the pinned CA in `ca.pem`). Three ways:
//! - `--login`: prints a sign-in URL and a code, opens the browser where it can, and waits
//!   while the person signs in with the organisation's IdP on the control plane and confirms
//!   the device (on an enrolled, unverified device this confirms it instead);
//! - `--code C`: a per-user activation code from the administrator;
//! - `--enroll-token T --user U`: the MDM fleet token plus the person the MDM names; the
//!   device stays unverified (policy, no API key) until that person confirms it.
//!
//! Every way sends the machine's installation key, so running it again renews the same device.
//! A running `run` notices the new `device.json` and connects.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use crate::config::Paths;
use crate::link::grpc::{self, ClientError, Credential, DeviceFacts, Poll, ServerTarget};
use crate::now_unix_ms;
use crate::state::{Device, StateDir};

/// How the device proves its person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Interactive sign-in with the organisation's IdP.
    Login {
        /// The organisation's slug.
        org: String,
        /// Try to open the sign-in page in a browser.
        open_browser: bool,
    },
    /// A per-user activation code.
    Code(String),
    /// The MDM fleet token and the person MDM names.
    FleetToken {
        /// The organisation's enrollment token.
        token: String,
        /// The person's userName.
        user: String,
    },
}

/// What `enroll` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollArgs {
    /// `--server`.
    pub server: String,
    /// How.
    pub method: Method,
    /// `--ca-cert`.
    pub ca_cert: Option<PathBuf>,
}

fn refusal(target: &ServerTarget, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Refused { code, message } => anyhow!(
            "enrollment refused by {}: {message} (gRPC status {code:?})",
            target.url()
        ),
        other => anyhow!(other),
    }
}

/// Enrolls (or confirms) and saves the device.
pub async fn enroll(paths: &Paths, args: &EnrollArgs) -> anyhow::Result<Device> {
    let ca_pem = match &args.ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?,
        ),
        None => None,
    };
    let target = ServerTarget::new(&args.server, ca_pem.clone())?;
    let state = StateDir::new(&paths.state_dir);
    // Fail on an unwritable state directory before using up anything on the server.
    state.ensure().with_context(|| {
        format!(
            "cannot use the state directory {}",
            paths.state_dir.display()
        )
    })?;
    let facts = DeviceFacts {
        hostname: hostname(),
        install_key: crate::link::install_key::load_or_create(&state)
            .context("cannot create the installation key")?,
    };
    let existing = state
        .load_device()
        .ok()
        .flatten()
        .filter(|d| d.server_url == target.url());

    let enrollment = match &args.method {
        Method::FleetToken { token, user } => {
            // MDM runs this on every check-in: the same person on the same server is a no-op.
            if let Some(d) = existing.filter(|d| d.user_name.eq_ignore_ascii_case(user)) {
                println!(
                    "already enrolled as {} (device {}); nothing to do",
                    d.user_name, d.device_id
                );
                return Ok(d);
            }
            let credential = Credential::FleetToken {
                token: token.clone(),
                user_name: user.clone(),
            };
            grpc::enroll(&target, &credential, &facts)
                .await
                .map_err(|e| refusal(&target, e))?
        }
        Method::Code(code) => {
            grpc::enroll(&target, &Credential::ActivationCode(code.clone()), &facts)
                .await
                .map_err(|e| refusal(&target, e))?
        }
        Method::Login { org, open_browser } => {
            let confirming = existing.as_ref().filter(|d| !d.verified);
            let enrollment = sign_in(
                &target,
                org,
                &facts,
                confirming.map(|d| d.device_credential.as_str()),
                *open_browser,
            )
            .await?;
            if let (Some(d), true) = (confirming, enrollment.device_credential.is_empty()) {
                let device = Device {
                    verified: true,
                    ..d.clone()
                };
                state.save_device(&device)?;
                println!("this device is now confirmed as {}'s", device.user_name);
                return Ok(device);
            }
            enrollment
        }
    };
    if enrollment.device_credential.is_empty() {
        bail!("the control plane returned no device credential");
    }
    let ca_cert_path = match &ca_pem {
        Some(pem) => Some(state.save_ca(pem)?),
        None => None,
    };
    let device = Device {
        server_url: target.url().to_owned(),
        device_id: enrollment.device_id,
        device_credential: enrollment.device_credential,
        user_name: enrollment.user_name,
        org: enrollment.org_slug,
        ca_cert_path,
        enrolled_at_unix_ms: now_unix_ms(),
        verified: enrollment.verified,
    };
    state.save_device(&device)?;
    Ok(device)
}

/// The interactive sign-in: show the link and code, then poll until the person confirms.
async fn sign_in(
    target: &ServerTarget,
    org: &str,
    facts: &DeviceFacts,
    device_credential: Option<&str>,
    open_browser: bool,
) -> anyhow::Result<grpc::Enrollment> {
    let started = grpc::start_sign_in(target, org, facts, device_credential)
        .await
        .map_err(|e| refusal(target, e))?;
    println!("To enroll this device, open this page and sign in with your organisation's account:");
    println!("{}", started.verification_uri_complete);
    println!(
        "Check that the page shows the code {} (or enter it at {}).",
        started.user_code, started.verification_uri
    );
    println!(
        "Waiting for you to confirm (the code expires in {} minutes)...",
        started.expires_in.as_secs() / 60
    );
    if open_browser {
        try_open_browser(&started.verification_uri_complete);
    }
    let deadline = Instant::now() + started.expires_in;
    let mut interval = started.interval;
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() > deadline {
            bail!("the sign-in code expired; run the command again");
        }
        match grpc::poll_sign_in(target, &started.device_code, facts).await {
            Ok(Poll::Pending) => {}
            Ok(Poll::SlowDown) => interval += Duration::from_secs(5),
            Ok(Poll::Done(e)) => return Ok(e),
            Err(ClientError::Unreachable { .. }) => {} // keep waiting through a network blip
            Err(e) => return Err(refusal(target, e)),
        }
    }
}

/// Best effort: the person can always copy the printed link. Never as another user (sudo).
fn try_open_browser(url: &str) {
    // Only a web page: the URL comes from the server and is handed to the desktop's opener.
    let plain = url.starts_with("https://") || url.starts_with("http://");
    if !plain || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return;
    }
    if std::env::var_os("SUDO_USER").is_some() || std::env::var_os("PALISADE_NO_BROWSER").is_some()
    {
        return;
    }
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        "xdg-open"
    } else {
        return;
    };
    let _ = std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// This machine's name, for the server's device list.
pub fn hostname() -> String {
    let from_env = std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|h| !h.trim().is_empty());
    if let Some(h) = from_env {
        return h.trim().to_owned();
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        if !h.trim().is_empty() {
            return h.trim().to_owned();
        }
    }
    std::process::Command::new("hostname")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }

    #[tokio::test]
    async fn bad_inputs_fail_before_any_network() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths {
            settings_dir: tmp.path().join("s"),
            state_dir: tmp.path().join("state"),
            claude_config_dir: tmp.path().join("c"),
            state_dir_is_default: false,
        };
        let args = EnrollArgs {
            server: "http://cp.example.com:1".into(),
            method: Method::FleetToken {
                token: "t".into(),
                user: "u".into(),
            },
            ca_cert: None,
        };
        let err = enroll(&paths, &args).await.unwrap_err().to_string();
        assert!(err.contains("plaintext"), "{err}");

        let args = EnrollArgs {
            server: "https://cp.example.com:1".into(),
            ca_cert: Some(tmp.path().join("missing.pem")),
            ..args
        };
        let err = format!("{:#}", enroll(&paths, &args).await.unwrap_err());
        assert!(err.contains("missing.pem"), "{err}");
        assert!(!paths.state_dir.exists());
    }
}
