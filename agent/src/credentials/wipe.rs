//! Deprovisioning: removes the API key, the device credential (and the cached policy and
//! pinned CA that belong to that enrollment) and Claude Code's stored login for the OS user:
//! `<claude-config-dir>/.credentials.json` and, on macOS, the Keychain items (services
//! `Claude Code-credentials` and `Claude Code`) through `/usr/bin/security`.
//!
//! The run loop does a wipe in this order, each step safe to repeat: it saves
//! `wipe-pending.json` in the state directory, (a) writes the lockdown policy, (b) removes the
//! files here, (c) records the wipe in `status.json`, then removes `wipe-pending.json`. A crash
//! (`kill -9`) anywhere leaves the marker, and the next start finishes the wipe before
//! anything else. [`crash_point`] is the test hook that proves it.
//!
//! Something already absent is neither "removed" nor "failed". The API key goes first (the
//! developer's key files under `<state-dir>-keys`, then the state directory's copy): it is what
//! a running Claude Code session uses next. `.credentials.json` is removed relative to the
//! Claude directory opened without following a symlink ([`crate::platform::userdir`]), and only
//! when it is the developer's (or root's): a symlinked `~/.claude` is reported, not followed.

use std::path::{Path, PathBuf};

use crate::credentials::keyfile;
use crate::link::messages::WipeRecord;
use crate::state::{
    self, StateDir, API_KEY_FILE, CA_FILE, DEVICE_FILE, POLICY_FILE, UPSTREAM_KEY_FILE,
};

/// Claude Code's `/login` credentials file inside its config directory.
pub const CREDENTIALS_FILE: &str = ".credentials.json";

/// macOS Keychain services Claude Code stores logins under (current, then the older API-key
/// item).
pub const KEYCHAIN_SERVICES: [&str; 2] = ["Claude Code-credentials", "Claude Code"];

/// The macOS Keychain tool.
pub const SECURITY_TOOL: &str = "/usr/bin/security";

/// `security` exits with this when no item matches (errSecItemNotFound).
const SECURITY_NOT_FOUND: i32 = 44;

/// Upper bound of items deleted per service (each call deletes one match).
const MAX_KEYCHAIN_ITEMS: usize = 16;

/// The environment variable of the crash test hook: set to a step's name, the agent aborts
/// right after that step. Only tests set it; unset (always, in production) it does nothing,
/// and an abort is no worse than the `kill -9` the wipe is built to survive.
pub const TEST_CRASH_ENV: &str = "PALISADE_AGENT_TEST_CRASH_AT";

/// The steps [`crash_point`] knows, in order: marker saved, (a) lockdown written, (b) files
/// removed, (c) wipe recorded.
pub const CRASH_STEPS: [&str; 4] = [
    "wipe-pending",
    "wipe-lockdown",
    "wipe-removed",
    "wipe-recorded",
];

/// Test hook: aborts the process (no cleanup, like `kill -9`) when [`TEST_CRASH_ENV`] names
/// `step`.
pub fn crash_point(step: &str) {
    if std::env::var_os(TEST_CRASH_ENV).is_some_and(|v| v == step) {
        tracing::error!(
            step,
            "{TEST_CRASH_ENV}: test hook aborting the agent after {step}"
        );
        std::process::abort();
    }
}

/// Removes the files of a wipe into `record` (the Keychain is [`wipe_keychain`]); state files
/// named in `keep` stay (a new enrollment found when an interrupted wipe is finished).
pub fn remove_files(
    state: &StateDir,
    claude_config_dir: &Path,
    keep: &[&str],
    record: &mut WipeRecord,
) {
    let (removed, failed) = keyfile::remove_all(&keyfile::keys_root(state.root()));
    record
        .removed
        .extend(removed.iter().map(|p| p.display().to_string()));
    record.failed.extend(failed);
    remove_state_file(state, API_KEY_FILE, record);
    remove_state_file(state, UPSTREAM_KEY_FILE, record);
    // The relay's token secret and usage counters belong to this enrollment: a later one
    // starts with new tokens and new counters (never reporting this person's usage as its own).
    remove_state_file(state, crate::relay::token::RELAY_SECRET_FILE, record);
    remove_state_file(state, crate::relay::usage::USAGE_FILE, record);
    remove_credentials(claude_config_dir, record);
    for name in [DEVICE_FILE, POLICY_FILE, CA_FILE] {
        if !keep.contains(&name) {
            remove_state_file(state, name, record);
        }
    }
}

fn remove_state_file(state: &StateDir, name: &str, record: &mut WipeRecord) {
    let path = state.path(name);
    match state::remove_file(&path) {
        Ok(true) => record.removed.push(path.display().to_string()),
        Ok(false) => {}
        Err(e) => record.failed.push(e.to_string()),
    }
}

/// `<claude-config-dir>/.credentials.json`, through the directory opened without following a
/// symlink, and only the developer's (or root's) file.
#[cfg(unix)]
fn remove_credentials(claude_config_dir: &Path, record: &mut WipeRecord) {
    let path = claude_config_dir.join(CREDENTIALS_FILE);
    let result = crate::platform::userdir::UserDir::open(claude_config_dir)
        .and_then(|dir| dir.map_or(Ok(false), |d| d.remove_file(CREDENTIALS_FILE)));
    match result {
        Ok(true) => record.removed.push(path.display().to_string()),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "Claude Code's credentials not removed");
            record.failed.push(e.to_string());
        }
    }
}

#[cfg(not(unix))]
fn remove_credentials(claude_config_dir: &Path, record: &mut WipeRecord) {
    let path = claude_config_dir.join(CREDENTIALS_FILE);
    match state::remove_file(&path) {
        Ok(true) => record.removed.push(path.display().to_string()),
        Ok(false) => {}
        Err(e) => record.failed.push(e.to_string()),
    }
}

/// The user's login keychain next to `claude_config_dir` (`<home>/.claude` →
/// `<home>/Library/Keychains/login.keychain-db`), when it exists. The agent runs as root, so
/// without it `security` would search root's keychains.
/// No component below the home may be a symlink: root's `security` would otherwise act on
/// whatever keychain the developer's link names.
pub fn user_login_keychain(claude_config_dir: &Path) -> Option<PathBuf> {
    let home = claude_config_dir.parent()?;
    let library = home.join("Library");
    let keychains = library.join("Keychains");
    let keychain = keychains.join("login.keychain-db");
    let real = |p: &Path, dir: bool| {
        std::fs::symlink_metadata(p).is_ok_and(|m| {
            let t = m.file_type();
            !t.is_symlink() && if dir { t.is_dir() } else { t.is_file() }
        })
    };
    (real(&library, true) && real(&keychains, true) && real(&keychain, false)).then_some(keychain)
}

/// On macOS, deletes every Keychain item of [`KEYCHAIN_SERVICES`]; elsewhere nothing.
pub async fn wipe_keychain(claude_config_dir: &Path, record: &mut WipeRecord) {
    if !cfg!(target_os = "macos") {
        return;
    }
    let keychain = user_login_keychain(claude_config_dir);
    for service in KEYCHAIN_SERVICES {
        match delete_generic_passwords(Path::new(SECURITY_TOOL), service, keychain.as_deref()).await
        {
            Ok(0) => {}
            Ok(n) => record
                .removed
                .push(format!("keychain:{service} ({n} item{})", plural(n))),
            Err(e) => record.failed.push(format!("keychain:{service}: {e}")),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Runs `<tool> delete-generic-password -s <service> [keychain]` until it reports that no
/// item is left; returns how many were deleted. A missing item is not an error.
pub async fn delete_generic_passwords(
    tool: &Path,
    service: &str,
    keychain: Option<&Path>,
) -> Result<usize, String> {
    let mut deleted = 0;
    while deleted < MAX_KEYCHAIN_ITEMS {
        let mut cmd = tokio::process::Command::new(tool);
        cmd.arg("delete-generic-password").arg("-s").arg(service);
        if let Some(k) = keychain {
            cmd.arg(k);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let output = cmd
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
        match output.status.code() {
            Some(0) => deleted += 1,
            Some(SECURITY_NOT_FOUND) => return Ok(deleted),
            _ => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(format!("{} ({})", stderr.trim(), output.status));
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_what_exists_and_skips_what_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("state"));
        state.save_api_key("k").unwrap();
        state.ensure().unwrap();
        std::fs::write(state.path(DEVICE_FILE), b"{}").unwrap();
        let claude = tmp.path().join(".claude");
        std::fs::create_dir_all(&claude).unwrap();
        std::fs::write(claude.join(CREDENTIALS_FILE), b"{}").unwrap();
        let user_key = keyfile::UserKeyFile::new(
            keyfile::keys_root(state.root()),
            keyfile::Owner::someone_else(),
        );
        std::fs::create_dir_all(user_key.dir()).unwrap();
        std::fs::write(user_key.path(), b"k").unwrap();

        let mut record = WipeRecord::default();
        remove_files(&state, &claude, &[], &mut record);
        assert!(record.failed.is_empty(), "{:?}", record.failed);
        assert_eq!(record.removed.len(), 4, "{:?}", record.removed);
        assert_eq!(
            record.removed[0],
            user_key.path().display().to_string(),
            "user key first"
        );
        assert_eq!(
            record.removed[1],
            state.path(API_KEY_FILE).display().to_string()
        );
        assert!(!user_key.path().exists());
        assert!(!state.path(API_KEY_FILE).exists());
        assert!(!state.path(DEVICE_FILE).exists());
        assert!(!claude.join(CREDENTIALS_FILE).exists());

        let mut again = WipeRecord::default();
        remove_files(&state, &claude, &[], &mut again);
        assert!(again.removed.is_empty() && again.failed.is_empty());

        // `keep` keeps a newer enrollment.
        std::fs::write(state.path(DEVICE_FILE), b"{}").unwrap();
        let mut kept = WipeRecord::default();
        remove_files(&state, &claude, &[DEVICE_FILE], &mut kept);
        assert!(state.path(DEVICE_FILE).exists());
    }

    /// `~/.claude` as a symlink to another tree: the credentials there are not removed (before,
    /// root deleted them through the link), and the refusal is reported.
    #[cfg(unix)]
    #[test]
    fn credentials_behind_a_symlinked_claude_dir_are_left() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("state"));
        let victim = tmp.path().join("victim/.claude");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join(CREDENTIALS_FILE), b"{}").unwrap();
        let claude = tmp.path().join("home/.claude");
        std::fs::create_dir_all(claude.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &claude).unwrap();

        let mut record = WipeRecord::default();
        remove_files(&state, &claude, &[], &mut record);
        assert!(victim.join(CREDENTIALS_FILE).exists());
        assert_eq!(record.failed.len(), 1, "{:?}", record.failed);
        assert!(record.failed[0].contains("symlink"), "{:?}", record.failed);
    }

    /// Root only: credentials owned by another user than the Claude directory's owner are
    /// left (only root can have put them there; they are not the developer's to lose).
    #[cfg(unix)]
    #[test]
    fn another_users_credentials_are_left() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("state"));
        let claude = tmp.path().join("home/.claude");
        std::fs::create_dir_all(&claude).unwrap();
        let creds = claude.join(CREDENTIALS_FILE);
        std::fs::write(&creds, b"{}").unwrap();
        if std::fs::metadata(&creds).unwrap().uid() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        std::os::unix::fs::chown(&claude, Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(&creds, Some(65534), Some(65534)).unwrap();
        let mut record = WipeRecord::default();
        remove_files(&state, &claude, &[], &mut record);
        assert!(creds.exists());
        assert!(
            record.failed.iter().any(|f| f.contains("65534")),
            "{:?}",
            record.failed
        );

        std::os::unix::fs::chown(&creds, Some(1000), Some(1000)).unwrap();
        let mut record = WipeRecord::default();
        remove_files(&state, &claude, &[], &mut record);
        assert!(!creds.exists(), "the developer's own file goes");
    }

    #[test]
    fn crash_points_are_inert_without_the_variable() {
        // The test process does not set it; every step returns.
        assert!(std::env::var_os(TEST_CRASH_ENV).is_none());
        for step in CRASH_STEPS {
            crash_point(step);
        }
    }

    #[test]
    fn keychain_is_found_next_to_the_claude_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let claude = tmp.path().join(".claude");
        assert_eq!(user_login_keychain(&claude), None);
        let kc = tmp.path().join("Library/Keychains/login.keychain-db");
        std::fs::create_dir_all(kc.parent().unwrap()).unwrap();
        std::fs::write(&kc, b"").unwrap();
        assert_eq!(user_login_keychain(&claude), Some(kc.clone()));

        // A symlinked keychain (say, to the System keychain) is not handed to `security`.
        #[cfg(unix)]
        {
            let other = tmp.path().join("other.keychain-db");
            std::fs::write(&other, b"").unwrap();
            std::fs::remove_file(&kc).unwrap();
            std::os::unix::fs::symlink(&other, &kc).unwrap();
            assert_eq!(user_login_keychain(&claude), None);
        }
    }

    /// A stand-in for `security`: deletes one "item" per call from a counter file and exits
    /// 44 when none is left.
    #[cfg(unix)]
    fn fake_security(dir: &Path, items: u32, fail: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let counter = dir.join("count");
        std::fs::write(&counter, items.to_string()).unwrap();
        let script = dir.join("security");
        let body = if fail {
            "echo 'security: SecKeychainSearchCopyNext: denied' >&2; exit 1".to_owned()
        } else {
            format!(
                "echo \"$@\" >> {log}\nn=$(cat {c})\nif [ \"$n\" -eq 0 ]; then exit 44; fi\n\
                 echo $((n-1)) > {c}\nexit 0",
                c = counter.display(),
                log = dir.join("args").display()
            )
        };
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn deletes_every_matching_item() {
        let tmp = tempfile::tempdir().unwrap();
        let tool = fake_security(tmp.path(), 2, false);
        let n = delete_generic_passwords(&tool, "Claude Code-credentials", Some(Path::new("/k")))
            .await
            .unwrap();
        assert_eq!(n, 2);
        let args = std::fs::read_to_string(tmp.path().join("args")).unwrap();
        assert!(
            args.starts_with("delete-generic-password -s Claude Code-credentials /k"),
            "{args}"
        );
        // Nothing left: not an error.
        assert_eq!(
            delete_generic_passwords(&tool, "Claude Code", None)
                .await
                .unwrap(),
            0
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn reports_a_failing_tool() {
        let tmp = tempfile::tempdir().unwrap();
        let tool = fake_security(tmp.path(), 0, true);
        let err = delete_generic_passwords(&tool, "Claude Code", None)
            .await
            .unwrap_err();
        assert!(err.contains("denied"), "{err}");
        let missing = delete_generic_passwords(&tmp.path().join("absent"), "x", None)
            .await
            .unwrap_err();
        assert!(missing.contains("cannot run"), "{missing}");
    }
}
