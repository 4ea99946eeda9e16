//! Conditions an administrator should see, reported as `SettingsWarning`s and in
//! `status.json`:
//!
//! - a higher-precedence managed source that makes Claude Code ignore the file source, and
//!   so the agent's drop-in: the macOS managed preferences domain
//!   (`/Library/Managed Preferences/com.anthropic.claudecode.plist`) or the Windows policy
//!   value `HKLM\SOFTWARE\Policies\ClaudeCode\Settings` (`reg query`);
//! - another drop-in that sorts after the agent's and can override its scalar keys;
//! - blocked write paths written for another platform, which the renderer leaves out.
//!
//! A base `managed-settings.json` is not reported: drop-ins merge with it. Server-managed
//! settings (claude.ai admin console) leave no trace on disk the agent could check.

use std::path::Path;

use crate::messages::Warning;
use crate::policy::Policy;
use crate::settings::{self, TargetOs};

/// macOS managed preferences file of Claude Code.
pub const MACOS_MANAGED_PLIST: &str = "/Library/Managed Preferences/com.anthropic.claudecode.plist";
/// Directory of MDM-managed preferences; per-user domains live in `<user>/` below it.
pub const MACOS_MANAGED_PREFERENCES_DIR: &str = "/Library/Managed Preferences";
/// File name of Claude Code's managed preferences domain.
pub const MACOS_PLIST_NAME: &str = "com.anthropic.claudecode.plist";

/// Windows policy key holding the `Settings` value.
pub const WINDOWS_POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\ClaudeCode";

/// Warning code: macOS MDM preferences outrank the file.
pub const CODE_MDM_PREFERENCES: &str = "mdm_managed_preferences";
/// Warning code: Windows HKLM policy outranks the file.
pub const CODE_WINDOWS_HKLM: &str = "windows_hklm_policy";
/// Warning code: a later drop-in can override the agent's scalars.
pub const CODE_LATER_DROP_IN: &str = "later_drop_in";
/// Warning code: write paths of another platform were left out.
pub const CODE_INAPPLICABLE_PATHS: &str = "inapplicable_write_paths";
/// Warning code: tamper protection is off.
pub const CODE_NO_TAMPER_WATCH: &str = "tamper_watch_unavailable";

/// Every warning for this machine and policy, sorted.
pub async fn detect(settings_dir: &Path, policy: Option<&Policy>, os: TargetOs) -> Vec<Warning> {
    let mut out = Vec::new();
    if cfg!(target_os = "macos") {
        out.extend(macos_preferences(Path::new(MACOS_MANAGED_PLIST)));
        out.extend(macos_user_preferences(Path::new(
            MACOS_MANAGED_PREFERENCES_DIR,
        )));
    }
    if cfg!(windows) {
        out.extend(windows_hklm().await);
    }
    out.extend(later_drop_ins(settings_dir));
    if let Some(p) = policy {
        out.extend(inapplicable_paths(p, os));
    }
    out.sort();
    out
}

/// The MDM warning if `plist` exists.
pub fn macos_preferences(plist: &Path) -> Option<Warning> {
    plist.exists().then(|| Warning {
        code: CODE_MDM_PREFERENCES.to_owned(),
        detail: format!(
            "{} exists: Claude Code takes managed settings from MDM and ignores \
             managed-settings.json and its drop-ins, including Palisade's",
            plist.display()
        ),
    })
}

/// The MDM warning for per-user managed preferences (`<dir>/<user>/com.anthropic.claudecode.plist`),
/// which outrank the file source for that user.
pub fn macos_user_preferences(dir: &Path) -> Option<Warning> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut users: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(MACOS_PLIST_NAME).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if users.is_empty() {
        return None;
    }
    users.sort();
    Some(Warning {
        code: CODE_MDM_PREFERENCES.to_owned(),
        detail: format!(
            "per-user managed preferences {MACOS_PLIST_NAME} exist for {} under {}: for those users \
             Claude Code takes managed settings from MDM and ignores Palisade's drop-in",
            users.join(", "),
            dir.display()
        ),
    })
}

async fn windows_hklm() -> Option<Warning> {
    let output = tokio::process::Command::new("reg")
        .args(["query", WINDOWS_POLICY_KEY, "/v", "Settings"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    match output {
        Ok(status) if status.success() => Some(Warning {
            code: CODE_WINDOWS_HKLM.to_owned(),
            detail: format!(
                "{WINDOWS_POLICY_KEY}\\Settings is set: Claude Code takes managed settings \
                 from the registry and ignores managed-settings.json and its drop-ins, \
                 including Palisade's"
            ),
        }),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "cannot run reg query");
            None
        }
    }
}

/// Drop-ins whose name sorts after the agent's: their scalars win over the agent's.
pub fn later_drop_ins(settings_dir: &Path) -> Option<Warning> {
    let dir = settings_dir.join(settings::DROP_IN_DIR);
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut later: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.ends_with(".json")
                && !name.starts_with('.')
                && name.as_str() > settings::DROP_IN_FILE
        })
        .collect();
    if later.is_empty() {
        return None;
    }
    later.sort();
    Some(Warning {
        code: CODE_LATER_DROP_IN.to_owned(),
        detail: format!(
            "{} in {} sort after {}: their scalar settings override Palisade's",
            later.join(", "),
            dir.display(),
            settings::DROP_IN_FILE
        ),
    })
}

/// Blocked write paths of the other platform's flavour.
pub fn inapplicable_paths(policy: &Policy, os: TargetOs) -> Option<Warning> {
    let paths = settings::inapplicable_write_paths(policy, os);
    (!paths.is_empty()).then(|| Warning {
        code: CODE_INAPPLICABLE_PATHS.to_owned(),
        detail: format!(
            "blocked_write_paths not written on this {os:?} machine: {}",
            paths.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn per_user_managed_preferences_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(macos_user_preferences(dir.path()).is_none());
        std::fs::create_dir_all(dir.path().join("alice")).unwrap();
        assert!(
            macos_user_preferences(dir.path()).is_none(),
            "a user dir without the plist"
        );
        std::fs::write(dir.path().join("alice").join(MACOS_PLIST_NAME), b"<plist/>").unwrap();
        let w = macos_user_preferences(dir.path()).unwrap();
        assert_eq!(w.code, CODE_MDM_PREFERENCES);
        assert!(w.detail.contains("alice"), "{}", w.detail);
        assert!(macos_user_preferences(&dir.path().join("missing")).is_none());
    }

    use super::*;

    #[test]
    fn plist_presence_is_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let plist = tmp.path().join("com.anthropic.claudecode.plist");
        assert_eq!(macos_preferences(&plist), None);
        std::fs::write(&plist, b"<plist/>").unwrap();
        let w = macos_preferences(&plist).unwrap();
        assert_eq!(w.code, CODE_MDM_PREFERENCES);
    }

    #[test]
    fn base_file_and_earlier_drop_ins_are_fine_later_ones_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(later_drop_ins(tmp.path()), None, "no directory");
        let dir = tmp.path().join(settings::DROP_IN_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(tmp.path().join("managed-settings.json"), b"{}").unwrap();
        for name in [
            "10-mdm.json",
            settings::DROP_IN_FILE,
            ".90-x.json.tmp",
            "README",
        ] {
            std::fs::write(dir.join(name), b"{}").unwrap();
        }
        assert_eq!(later_drop_ins(tmp.path()), None);
        std::fs::write(dir.join("90-override.json"), b"{}").unwrap();
        let w = later_drop_ins(tmp.path()).unwrap();
        assert_eq!(w.code, CODE_LATER_DROP_IN);
        assert!(w.detail.contains("90-override.json"), "{}", w.detail);
    }

    #[tokio::test]
    async fn other_platform_paths_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let p = Policy {
            blocked_write_paths: vec!["/etc".into(), "C:\\Users\\x".into()],
            ..Policy::default()
        };
        let w = detect(tmp.path(), Some(&p), TargetOs::Linux).await;
        assert!(
            w.iter()
                .any(|w| w.code == CODE_INAPPLICABLE_PATHS && w.detail.contains("C:\\Users\\x")),
            "{w:?}"
        );
        assert_eq!(
            inapplicable_paths(&Policy::default(), TargetOs::Linux),
            None
        );
    }
}
