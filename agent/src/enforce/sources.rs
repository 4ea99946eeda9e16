//! Conditions an administrator should see, reported as `SettingsWarning`s and in
//! `status.json`:
//!
//! - a higher-precedence managed source that makes Claude Code ignore the file source, and
//!   so the agent's drop-in: server-managed settings from the claude.ai admin console (cached
//!   by Claude Code in `<claude-config-dir>/remote-settings.json`), the macOS managed
//!   preferences domain (`/Library/Managed Preferences/[<user>/]com.anthropic.claudecode.plist`)
//!   or the Windows policy value `HKLM\SOFTWARE\Policies\ClaudeCode\Settings` (`reg query`);
//! - another drop-in that sorts after the agent's and can override its scalar keys;
//! - paths written for another platform, which the renderer leaves out;
//! - an installed Claude Code older than the policy's `claude_code.required_minimum_version`
//!   (Claude Code would refuse to start). Only system-wide npm installs are looked at
//!   ([`CLAUDE_CODE_PACKAGES`]): root never reads a version from a path the developer controls.
//!
//! A base `managed-settings.json` is not reported: drop-ins merge with it.
//!
//! Claude Code keeps the server-managed settings it fetched (at start, then hourly) in
//! `remote-settings.json` in its config directory and, when that object has any key, uses
//! it instead of every file, plist and registry source (anthropics/claude-code#53662). An
//! empty object or an unreadable file delivers nothing and is not reported.

use std::path::Path;

use crate::link::messages::Warning;
use palisade_policy::Policy;
use palisade_policy::TargetOs;

/// macOS managed preferences file of Claude Code.
pub const MACOS_MANAGED_PLIST: &str = "/Library/Managed Preferences/com.anthropic.claudecode.plist";
/// Directory of MDM-managed preferences; per-user domains live in `<user>/` below it.
pub const MACOS_MANAGED_PREFERENCES_DIR: &str = "/Library/Managed Preferences";
/// File name of Claude Code's managed preferences domain.
pub const MACOS_PLIST_NAME: &str = "com.anthropic.claudecode.plist";

/// Claude Code's cache of server-managed settings, in its config directory.
pub const REMOTE_SETTINGS_FILE: &str = "remote-settings.json";

/// Windows policy key holding the `Settings` value.
pub const WINDOWS_POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\ClaudeCode";

/// Warning code: server-managed settings (claude.ai admin console) outrank the file.
pub const CODE_SERVER_MANAGED: &str = "server_managed_settings";
/// Warning code: macOS MDM preferences outrank the file.
pub const CODE_MDM_PREFERENCES: &str = "mdm_managed_preferences";
/// Warning code: Windows HKLM policy outranks the file.
pub const CODE_WINDOWS_HKLM: &str = "windows_hklm_policy";
/// Warning code: a later drop-in can override the agent's scalars.
pub const CODE_LATER_DROP_IN: &str = "later_drop_in";
/// Warning code: write paths of another platform were left out.
pub const CODE_INAPPLICABLE_PATHS: &str = "inapplicable_write_paths";
/// Warning code: the API key could not be written or removed (the policy still applied).
pub const CODE_API_KEY_UNAVAILABLE: &str = "api_key_unavailable";
/// The key relay cannot run (proxy key delivery then delivers no key).
pub const CODE_RELAY_UNAVAILABLE: &str = "relay_unavailable";
/// Warning code: the Claude config directory is a symlink (or not a directory): not followed.
pub const CODE_CLAUDE_DIR_REFUSED: &str = "claude_config_dir_refused";
/// Warning code: the installed Claude Code is older than the policy requires.
pub const CODE_CLAUDE_CODE_TOO_OLD: &str = "claude_code_too_old";

/// `package.json` of system-wide npm installs of Claude Code (root-owned locations).
pub const CLAUDE_CODE_PACKAGES: &[&str] = if cfg!(windows) {
    &[r"C:\Program Files\nodejs\node_modules\@anthropic-ai\claude-code\package.json"]
} else {
    &[
        "/usr/lib/node_modules/@anthropic-ai/claude-code/package.json",
        "/usr/local/lib/node_modules/@anthropic-ai/claude-code/package.json",
        "/opt/homebrew/lib/node_modules/@anthropic-ai/claude-code/package.json",
    ]
};

/// Warning code: tamper protection is off.
pub const CODE_NO_TAMPER_WATCH: &str = "tamper_watch_unavailable";

/// Every warning for this machine and policy, sorted.
pub async fn detect(
    settings_dir: &Path,
    claude_config_dir: &Path,
    policy: Option<&Policy>,
    os: TargetOs,
) -> Vec<Warning> {
    let mut out = Vec::new();
    out.extend(server_managed(claude_config_dir));
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
        let packages: Vec<&Path> = CLAUDE_CODE_PACKAGES.iter().map(Path::new).collect();
        out.extend(claude_code_too_old(p, &packages));
    }
    out.sort();
    out
}

/// The installed Claude Code versions older than the policy's minimum, from the first
/// readable `package.json` of `packages`.
pub fn claude_code_too_old(policy: &Policy, packages: &[&Path]) -> Option<Warning> {
    use palisade_policy::rules::names::parse_version;
    let minimum = policy.text("claude_code.required_minimum_version")?;
    let wanted = parse_version(minimum).ok()?;
    for package in packages {
        let Ok(text) = std::fs::read_to_string(package) else {
            continue;
        };
        let Some(installed) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("version").and_then(|v| v.as_str()).map(str::to_owned))
        else {
            continue;
        };
        let Ok(have) = parse_version(&installed) else {
            continue;
        };
        return (have < wanted).then(|| Warning {
            code: CODE_CLAUDE_CODE_TOO_OLD.to_owned(),
            detail: format!(
                "Claude Code {installed} ({}) is older than the policy's required minimum \
                 {minimum}: it will refuse to start until it is updated",
                package.display()
            ),
        });
    }
    None
}

/// The server-managed warning if `<claude_config_dir>/remote-settings.json` holds a
/// non-empty JSON object.
pub fn server_managed(claude_config_dir: &Path) -> Option<Warning> {
    let path = claude_config_dir.join(REMOTE_SETTINGS_FILE);
    let bytes = read_remote_settings(claude_config_dir)?;
    let text = String::from_utf8_lossy(&bytes);
    let value: serde_json::Value =
        serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    let object = value.as_object().filter(|o| !o.is_empty())?;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    const SHOWN: usize = 8;
    let mut listed = keys
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        listed.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    Some(Warning {
        code: CODE_SERVER_MANAGED.to_owned(),
        detail: format!(
            "{} holds server-managed settings from the claude.ai admin console ({listed}): \
             Claude Code applies them and ignores managed-settings.json and its drop-ins, \
             including Palisade's; remove them in the console (Admin Settings > Claude Code > \
             Managed settings) to let Palisade's policy apply",
            path.display()
        ),
    })
}

/// Most of `remote-settings.json` the agent reads; a larger file is not inspected.
const REMOTE_SETTINGS_LIMIT: u64 = 1 << 20;

/// `remote-settings.json`, read as root from the developer's directory without following a
/// symlink (at `~/.claude` or at the file), and only when the developer owns it: a link to a
/// root-only file must not be parsed and its keys sent to the control plane.
#[cfg(unix)]
fn read_remote_settings(claude_config_dir: &Path) -> Option<Vec<u8>> {
    match crate::platform::userdir::UserDir::open(claude_config_dir) {
        Ok(Some(dir)) => dir.read_file(REMOTE_SETTINGS_FILE, REMOTE_SETTINGS_LIMIT),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "server-managed settings not looked at");
            None
        }
    }
}

#[cfg(not(unix))]
fn read_remote_settings(claude_config_dir: &Path) -> Option<Vec<u8>> {
    read_user_file(
        &claude_config_dir.join(REMOTE_SETTINGS_FILE),
        REMOTE_SETTINGS_LIMIT,
    )
}

/// Reads a regular file in a directory the developer controls, as the (privileged) agent:
/// opened without blocking, so a FIFO planted in its place cannot hang the agent, refused
/// unless it is a regular file, and read up to `limit` bytes.
#[cfg(not(unix))]
fn read_user_file(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    let file = options.open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > limit {
        tracing::debug!(path = %path.display(), "not a regular file of a sane size: not read");
        return None;
    }
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).ok()?;
    Some(bytes)
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
    let dir = settings_dir.join(palisade_policy::render::DROP_IN_DIR);
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut later: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.ends_with(".json")
                && !name.starts_with('.')
                && name.as_str() > palisade_policy::render::DROP_IN_FILE
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
            palisade_policy::render::DROP_IN_FILE
        ),
    })
}

/// Path entries of the other platform's flavour.
pub fn inapplicable_paths(policy: &Policy, os: TargetOs) -> Option<Warning> {
    let paths = palisade_policy::inapplicable_paths(policy, os);
    (!paths.is_empty()).then(|| Warning {
        code: CODE_INAPPLICABLE_PATHS.to_owned(),
        detail: format!(
            "paths not written on this {} machine: {}",
            os.as_str(),
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
    fn server_managed_settings_with_keys_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(REMOTE_SETTINGS_FILE);
        assert_eq!(server_managed(tmp.path()), None, "no file");
        for nothing in ["{}", "", "not json", "[1]", "null", "\u{feff}{}"] {
            std::fs::write(&file, nothing).unwrap();
            assert_eq!(
                server_managed(tmp.path()),
                None,
                "{nothing:?} delivers nothing"
            );
        }
        std::fs::write(
            &file,
            "\u{feff}{\"permissions\":{\"deny\":[\"Bash\"]},\"model\":\"opus\"}",
        )
        .unwrap();
        let w = server_managed(tmp.path()).unwrap();
        assert_eq!(w.code, CODE_SERVER_MANAGED);
        assert!(w.detail.contains("model, permissions"), "{}", w.detail);
        assert!(w.detail.contains(REMOTE_SETTINGS_FILE), "{}", w.detail);

        let many: serde_json::Map<String, serde_json::Value> = (0..10)
            .map(|i| (format!("k{i}"), serde_json::Value::Bool(true)))
            .collect();
        std::fs::write(&file, serde_json::to_vec(&many).unwrap()).unwrap();
        let w = server_managed(tmp.path()).unwrap();
        assert!(w.detail.contains("and 2 more"), "{}", w.detail);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_directory_in_place_of_the_cache_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(REMOTE_SETTINGS_FILE);
        let status = std::process::Command::new("mkfifo")
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success());
        // Would block forever on a blocking open of a FIFO with no writer.
        assert_eq!(server_managed(tmp.path()), None);
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        assert_eq!(server_managed(tmp.path()), None);
    }

    /// A symlink at `remote-settings.json` or at the Claude directory is not followed: root
    /// would otherwise parse any file the link names and report its keys.
    #[cfg(unix)]
    #[test]
    fn a_symlinked_cache_or_claude_dir_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("root-only.json");
        std::fs::write(&outside, br#"{"secretKey": 1}"#).unwrap();
        let claude = tmp.path().join(".claude");
        std::fs::create_dir(&claude).unwrap();
        std::os::unix::fs::symlink(&outside, claude.join(REMOTE_SETTINGS_FILE)).unwrap();
        assert_eq!(server_managed(&claude), None);

        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join(REMOTE_SETTINGS_FILE), br#"{"model": "x"}"#).unwrap();
        assert!(server_managed(&real).is_some());
        let linked = tmp.path().join("linked");
        std::os::unix::fs::symlink(&real, &linked).unwrap();
        assert_eq!(server_managed(&linked), None);
    }

    #[tokio::test]
    async fn detect_includes_server_managed_settings() {
        let settings = tempfile::tempdir().unwrap();
        let claude = tempfile::tempdir().unwrap();
        std::fs::write(
            claude.path().join(REMOTE_SETTINGS_FILE),
            br#"{"permissions":{"deny":["WebFetch"]}}"#,
        )
        .unwrap();
        let w = detect(settings.path(), claude.path(), None, TargetOs::Linux).await;
        assert!(w.iter().any(|w| w.code == CODE_SERVER_MANAGED), "{w:?}");
    }

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
        let dir = tmp.path().join(palisade_policy::render::DROP_IN_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(tmp.path().join("managed-settings.json"), b"{}").unwrap();
        for name in [
            "10-mdm.json",
            palisade_policy::render::DROP_IN_FILE,
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

    #[test]
    fn an_old_claude_code_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let package = tmp.path().join("package.json");
        let mut p = Policy::new();
        assert_eq!(claude_code_too_old(&p, &[&package]), None, "no minimum");
        p.set(
            "claude_code.required_minimum_version",
            serde_json::json!("2.1.240"),
        )
        .unwrap();
        assert_eq!(claude_code_too_old(&p, &[&package]), None, "not installed");
        std::fs::write(&package, r#"{"version":"2.1.197"}"#).unwrap();
        let w = claude_code_too_old(&p, &[&package]).unwrap();
        assert_eq!(w.code, CODE_CLAUDE_CODE_TOO_OLD);
        assert!(
            w.detail.contains("2.1.197") && w.detail.contains("2.1.240"),
            "{}",
            w.detail
        );
        std::fs::write(&package, r#"{"version":"2.1.332"}"#).unwrap();
        assert_eq!(claude_code_too_old(&p, &[&package]), None, "new enough");
    }

    #[tokio::test]
    async fn other_platform_paths_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = Policy::new();
        p.set(
            "files.deny_write",
            serde_json::json!(["/etc", "C:\\Users\\x"]),
        )
        .unwrap();
        let w = detect(tmp.path(), tmp.path(), Some(&p), TargetOs::Linux).await;
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
