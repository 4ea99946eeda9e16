//! `palisade-agent status [--json]`: what the state directory says about this device —
//! enrollment, the applied policy (from `policy.json`), the connection and offline deadline,
//! warnings and wipe (from `status.json`, written by `run`). Never prints a secret.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Paths;
use crate::link::messages::{OfflineRule, TamperRecord, Warning, WipeRecord};
use crate::state::{StateDir, StateError};

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// `device.json` exists and reads.
    pub enrolled: bool,
    /// The server's id for the device.
    pub device_id: Option<String>,
    /// The user's userName.
    pub user_name: Option<String>,
    /// The organisation.
    pub org: Option<String>,
    /// The control plane.
    pub server_url: Option<String>,
    /// The pinned CA, if any.
    pub ca_cert_path: Option<String>,
    /// Version of the policy on disk (0: none).
    pub applied_version: u64,
    /// The server's SHA-256 of that policy.
    pub policy_sha256: Option<String>,
    /// When it was applied (Unix ms).
    pub policy_applied_at_unix_ms: Option<i64>,
    /// `run` holds a policy stream open.
    pub connected: bool,
    /// Last message from the control plane (Unix ms).
    pub last_contact_unix_ms: Option<i64>,
    /// When the offline rule applies (Unix ms, local clock).
    pub offline_deadline_unix_ms: Option<i64>,
    /// The offline rule.
    pub offline_rule: Option<OfflineRule>,
    /// The deadline passed and the lockdown policy is on disk.
    pub offline_lockdown: bool,
    /// A wipe happened (and no policy arrived since).
    pub wiped: bool,
    /// Whether the person is proven (`false`: MDM enrollment waiting for them to confirm).
    pub verified: bool,
    /// Where the person confirms this device, while unverified.
    pub confirm_url: Option<String>,
    /// The key relay (proxy delivery): its address and what it does with a request.
    pub relay: Option<String>,
    /// The wipe's details.
    pub wipe: Option<WipeRecord>,
    /// A wipe was started and not yet recorded (the agent is doing it, or crashed and the
    /// next `run` finishes it); `wiped` turns true only once the files are gone.
    pub wipe_pending: bool,
    /// Conditions an administrator should see.
    pub warnings: Vec<Warning>,
    /// Last error of `run`.
    pub last_error: Option<String>,
    /// Last restored tamper event.
    pub last_tamper: Option<TamperRecord>,
    /// Tamper events restored.
    pub tamper_count: u64,
    /// The agent's drop-in file.
    pub settings_file: String,
    /// The state directory.
    pub state_dir: String,
    /// When `run` last wrote its status (Unix ms).
    pub status_updated_at_unix_ms: Option<i64>,
    /// Files that could not be read.
    pub errors: Vec<String>,
}

/// Reads the state directory.
pub fn gather(paths: &Paths) -> StatusReport {
    let state = StateDir::new(&paths.state_dir);
    let mut errors = Vec::new();
    let mut note = |e: StateError| errors.push(e.to_string());
    let device = state.load_device().unwrap_or_else(|e| {
        note(e);
        None
    });
    let cached = state.load_policy().unwrap_or_else(|e| {
        note(e);
        None
    });
    let status = state.load_status().unwrap_or_else(|e| {
        note(e);
        Default::default()
    });
    StatusReport {
        enrolled: device.is_some(),
        device_id: device.as_ref().map(|d| d.device_id.clone()),
        user_name: device.as_ref().map(|d| d.user_name.clone()),
        org: device.as_ref().map(|d| d.org.clone()),
        server_url: device.as_ref().map(|d| d.server_url.clone()),
        ca_cert_path: device
            .as_ref()
            .and_then(|d| d.ca_cert_path.as_ref())
            .map(|p| p.display().to_string()),
        applied_version: cached
            .as_ref()
            .map_or(status.applied_version, |c| c.version),
        policy_sha256: cached
            .as_ref()
            .map(|c| c.sha256.clone())
            .or(status.policy_sha256.clone()),
        policy_applied_at_unix_ms: cached.as_ref().map(|c| c.applied_at_unix_ms),
        connected: status.connected,
        last_contact_unix_ms: status.last_contact_unix_ms,
        offline_deadline_unix_ms: cached
            .as_ref()
            .and_then(|c| c.offline_deadline_unix_ms)
            .or(status.offline_deadline_unix_ms),
        offline_rule: cached
            .as_ref()
            .map(|c| c.offline_rule)
            .or(status.offline_rule),
        offline_lockdown: status.offline_lockdown,
        wiped: status.wiped.is_some(),
        verified: device.as_ref().is_some_and(|d| d.verified) && !status.device_unverified,
        confirm_url: status
            .confirm_url
            .clone()
            .filter(|_| status.device_unverified),
        relay: status.relay.clone(),
        wipe: status.wiped,
        wipe_pending: state.wipe_pending(),
        warnings: status.warnings,
        last_error: status.last_error,
        last_tamper: status.last_tamper,
        tamper_count: status.tamper_count,
        settings_file: crate::enforce::drop_in_path(&paths.settings_dir)
            .display()
            .to_string(),
        state_dir: paths.state_dir.display().to_string(),
        status_updated_at_unix_ms: (status.updated_at_unix_ms > 0)
            .then_some(status.updated_at_unix_ms),
        errors,
    }
}

fn time(ms: Option<i64>) -> String {
    ms.map(format_utc).unwrap_or_else(|| "never".to_owned())
}

/// `YYYY-MM-DD HH:MM:SS UTC` (no time-zone database: it would link CoreFoundation on macOS).
pub fn format_utc(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// The human-readable form.
pub fn render_text(r: &StatusReport) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<18}{v}");
    };
    if r.enrolled {
        line(
            "enrolled:",
            format!("yes (device {})", or_dash(&r.device_id)),
        );
        line(
            "user:",
            format!("{} (org {})", or_dash(&r.user_name), or_dash(&r.org)),
        );
        let pin = r
            .ca_cert_path
            .as_ref()
            .map(|p| format!(" (CA pinned: {p})"))
            .unwrap_or_default();
        line("server:", format!("{}{pin}", or_dash(&r.server_url)));
        if r.verified {
            line("identity:", "verified".to_owned());
        } else {
            line(
                "identity:",
                match &r.confirm_url {
                    Some(url) => format!(
                        "not yet confirmed by its person: no API key until they open {url} and confirm (or run `palisade-agent enroll --login`)"
                    ),
                    None => "not yet confirmed by its person: no API key until they run `palisade-agent enroll --login`".to_owned(),
                },
            );
        }
    } else {
        line("enrolled:", "no".to_owned());
    }
    if let Some(relay) = &r.relay {
        line("key relay:", relay.clone());
    }
    if r.applied_version > 0 {
        line(
            "policy:",
            format!(
                "version {} (sha256 {}), applied {}",
                r.applied_version,
                or_dash(&r.policy_sha256),
                time(r.policy_applied_at_unix_ms)
            ),
        );
    } else {
        line("policy:", "none applied".to_owned());
    }
    line("settings file:", r.settings_file.clone());
    line(
        "connection:",
        format!(
            "{}, last contact {}",
            if r.connected {
                "connected"
            } else {
                "not connected"
            },
            time(r.last_contact_unix_ms)
        ),
    );
    let rule = r.offline_rule.map(|o| o.as_str()).unwrap_or("-");
    let lock = if r.offline_lockdown {
        " — PASSED: lockdown policy in force"
    } else {
        ""
    };
    line(
        "offline deadline:",
        format!("{} (rule {rule}){lock}", time(r.offline_deadline_unix_ms)),
    );
    match &r.wipe {
        Some(w) => line(
            "wiped:",
            format!(
                "YES at {} ({}); removed {}{}",
                time(Some(w.wiped_at_unix_ms)),
                w.reason,
                if w.removed.is_empty() {
                    "nothing".to_owned()
                } else {
                    w.removed.join(", ")
                },
                if w.failed.is_empty() {
                    String::new()
                } else {
                    format!("; FAILED: {}", w.failed.join(", "))
                }
            ),
        ),
        None if r.wipe_pending => line(
            "wiped:",
            "IN PROGRESS (started, not finished: `run` finishes it)".to_owned(),
        ),
        None => line("wiped:", "no".to_owned()),
    }
    if r.warnings.is_empty() {
        line("warnings:", "none".to_owned());
    } else {
        for (i, w) in r.warnings.iter().enumerate() {
            let key = if i == 0 { "warnings:" } else { "" };
            line(key, format!("[{}] {}", w.code, w.detail));
        }
    }
    if let Some(t) = &r.last_tamper {
        line(
            "tamper:",
            format!(
                "{} restored, last {} at {}",
                r.tamper_count,
                t.kind.as_str(),
                time(Some(t.detected_at_unix_ms))
            ),
        );
    }
    if let Some(e) = &r.last_error {
        line("last error:", e.clone());
    }
    for e in &r.errors {
        line("unreadable:", e.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CachedPolicy, Device, Status};
    use palisade_policy::Policy;

    fn paths(root: &std::path::Path) -> Paths {
        Paths {
            settings_dir: root.join("settings"),
            state_dir: root.join("state"),
            claude_config_dir: root.join("claude"),
            state_dir_is_default: false,
        }
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_795_379_930_141), "2026-11-22 20:38:50 UTC");
        assert_eq!(format_utc(-1_000), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn empty_state_is_not_enrolled() {
        let tmp = tempfile::tempdir().unwrap();
        let r = gather(&paths(tmp.path()));
        assert!(!r.enrolled && !r.wiped && !r.connected);
        assert_eq!(r.applied_version, 0);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let text = render_text(&r);
        assert!(text.contains("enrolled:         no"), "{text}");
    }

    #[test]
    fn report_combines_files_and_hides_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        let state = StateDir::new(&p.state_dir);
        state
            .save_device(&Device {
                server_url: "https://cp:1".into(),
                device_id: "d1".into(),
                device_credential: "SECRET".into(),
                user_name: "alice".into(),
                org: "acme".into(),
                ca_cert_path: None,
                enrolled_at_unix_ms: 1,
                verified: true,
            })
            .unwrap();
        state.save_api_key("sk-SECRET").unwrap();
        state
            .save_policy(&CachedPolicy {
                device_id: "d1".into(),
                version: 4,
                policy: Policy::default(),
                valid_until_unix_ms: Some(2_000_000_000_000),
                offline_deadline_unix_ms: Some(2_000_000_000_000),
                offline_rule: OfflineRule::Lockdown,
                sha256: "abc".into(),
                applied_at_unix_ms: 1_700_000_000_000,
                key_delivery: Default::default(),
                upstream_url: None,
            })
            .unwrap();
        state
            .save_status(&Status {
                connected: true,
                warnings: vec![Warning {
                    code: "later_drop_in".into(),
                    detail: "90-x.json".into(),
                }],
                ..Status::default()
            })
            .unwrap();
        let r = gather(&p);
        assert!(r.enrolled && r.connected);
        assert_eq!(r.applied_version, 4);
        assert_eq!(r.offline_rule, Some(OfflineRule::Lockdown));
        let json = serde_json::to_string(&r).unwrap();
        let text = render_text(&r);
        for out in [&json, &text] {
            assert!(!out.contains("SECRET"), "{out}");
        }
        assert!(text.contains("version 4"), "{text}");
        assert!(text.contains("[later_drop_in]"), "{text}");
        assert!(text.contains("rule lockdown"), "{text}");
    }
}
