//! `palisade-agent enroll`: trades an organisation enrollment token and the user's userName
//! for a device credential (gRPC `Enroll`) and saves the enrollment in `device.json` (and a
//! copy of the pinned CA in `ca.pem`). A running `run` notices the new `device.json` and
//! connects.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};

use crate::config::Paths;
use crate::grpc::{self, ClientError, ServerTarget};
use crate::now_unix_ms;
use crate::state::{Device, StateDir};

/// What `enroll` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollArgs {
    /// `--server`.
    pub server: String,
    /// `--enroll-token`.
    pub enroll_token: String,
    /// `--user`.
    pub user: String,
    /// `--ca-cert`.
    pub ca_cert: Option<PathBuf>,
}

/// Enrolls and saves the device.
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

    let enrollment = grpc::enroll(&target, &args.enroll_token, &args.user, &hostname())
        .await
        .map_err(|e| match e {
            ClientError::Refused { code, message } => anyhow!(
                "enrollment refused by {}: {message} (gRPC status {code:?})",
                target.url()
            ),
            other => anyhow!(other),
        })?;

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
    };
    state.save_device(&device)?;
    Ok(device)
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
            enroll_token: "t".into(),
            user: "u".into(),
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
