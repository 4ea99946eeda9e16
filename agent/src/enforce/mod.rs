//! Keeps the agent's drop-in file, `managed-settings.d/50-palisade.json`, equal to the policy
//! it enforces: renders it, writes it atomically only when the bytes differ, and puts it back
//! after someone else changed or removed it (compared by content and mode, never by
//! timestamps, so the agent's own writes are never mistaken for tampering).
//!
//! Enforcement on disk also needs: [`atomic`] (crash-safe, change-only file replacement),
//! [`watch`] (`notify` watches: tamper, enrollment) and [`sources`] (higher-precedence managed
//! sources and other warnings).

pub mod atomic;
pub mod sources;
pub mod watch;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::enforce::atomic::write_if_changed;
use crate::link::messages::TamperKind;
use palisade_policy::render::{DROP_IN_DIR, DROP_IN_FILE};
use palisade_policy::{render_bytes, Policy, RenderOptions};

/// Mode of the drop-in file: Claude Code runs as the user and must read it.
pub const DROP_IN_MODE: u32 = 0o644;
/// Mode of `managed-settings.d` when the agent creates it.
pub const DROP_IN_DIR_MODE: u32 = 0o755;

/// `<settings_dir>/managed-settings.d/50-palisade.json`.
pub fn drop_in_path(settings_dir: &Path) -> PathBuf {
    settings_dir.join(DROP_IN_DIR).join(DROP_IN_FILE)
}

/// Why a policy could not be put on disk.
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// The drop-in writer.
#[derive(Debug)]
pub struct Enforcer {
    dir: PathBuf,
    file: PathBuf,
    opts: RenderOptions,
    desired: Option<Vec<u8>>,
}

impl Enforcer {
    /// An enforcer for `<settings_dir>/managed-settings.d/50-palisade.json`. Nothing is
    /// written until [`Enforcer::apply`].
    pub fn new(settings_dir: &Path, opts: RenderOptions) -> Enforcer {
        let file = drop_in_path(settings_dir);
        Enforcer {
            dir: settings_dir.join(DROP_IN_DIR),
            file,
            opts,
            desired: None,
        }
    }

    /// The drop-in file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The render options (with the `apiKeyHelper` command).
    pub fn options(&self) -> &RenderOptions {
        &self.opts
    }

    /// Sets the `apiKeyHelper` command, from the next [`Enforcer::apply`].
    pub fn set_helper(&mut self, helper: String) {
        self.opts.api_key_helper = Some(helper);
    }

    /// Sets where Claude Code sends its requests (the relay), from the next [`Enforcer::apply`].
    pub fn set_base_url(&mut self, base_url: Option<String>) {
        self.opts.base_url = base_url;
    }

    /// Sets the announcement rendered with the next [`Enforcer::apply`].
    pub fn set_announcement(&mut self, announcement: Option<String>) {
        self.opts.announcement = announcement;
    }

    /// The bytes the file must hold, once a policy was applied.
    pub fn desired(&self) -> Option<&[u8]> {
        self.desired.as_deref()
    }

    /// Renders `policy` (a [`Policy`] holds only checked values) and writes it if the file
    /// differs. Returns whether the file was written. On error the file and the enforced
    /// content stay as they were.
    pub fn apply(&mut self, policy: &Policy) -> Result<bool, EnforceError> {
        let bytes = render_bytes(policy, &self.opts);
        let written = self.write(&bytes)?;
        self.desired = Some(bytes);
        Ok(written)
    }

    /// Puts the enforced content back if the file was changed or removed. `Ok(None)` when
    /// nothing was enforced yet or the file is intact.
    pub fn restore(&mut self) -> Result<Option<TamperKind>, EnforceError> {
        let Some(bytes) = self.desired.clone() else {
            return Ok(None);
        };
        let kind = match fs::symlink_metadata(&self.file) {
            Ok(_) => TamperKind::Modified,
            Err(_) => TamperKind::Deleted,
        };
        Ok(self.write(&bytes)?.then_some(kind))
    }

    fn write(&self, bytes: &[u8]) -> Result<bool, EnforceError> {
        create_dir(&self.dir).map_err(|source| EnforceError::Write {
            path: self.dir.clone(),
            source,
        })?;
        write_if_changed(&self.file, bytes, DROP_IN_MODE).map_err(|source| EnforceError::Write {
            path: self.file.clone(),
            source,
        })
    }
}

#[cfg(unix)]
fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DROP_IN_DIR_MODE)
        .create(dir)
}

#[cfg(not(unix))]
fn create_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::TargetOs;

    fn opts() -> RenderOptions {
        RenderOptions {
            api_key_helper: Some("/bin/palisade-agent api-key".into()),
            os: TargetOs::Linux,
            ..RenderOptions::default()
        }
    }

    fn policy() -> Policy {
        let mut p = Policy::new();
        p.set("permissions.deny", serde_json::json!(["Bash"]))
            .unwrap();
        p
    }

    #[test]
    fn apply_writes_rendered_bytes_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mut e = Enforcer::new(tmp.path(), opts());
        assert_eq!(e.restore().unwrap(), None, "nothing enforced yet");
        assert!(e.apply(&policy()).unwrap());
        let on_disk = fs::read(e.path()).unwrap();
        assert_eq!(on_disk, render_bytes(&policy(), &opts()));
        assert!(
            !e.apply(&policy()).unwrap(),
            "unchanged content is not rewritten"
        );
        assert_eq!(e.restore().unwrap(), None);
    }

    #[test]
    fn restore_after_edit_delete_and_directory_removal() {
        let tmp = tempfile::tempdir().unwrap();
        let mut e = Enforcer::new(tmp.path(), opts());
        e.apply(&policy()).unwrap();
        let good = fs::read(e.path()).unwrap();

        fs::write(e.path(), b"{}\n").unwrap();
        assert_eq!(e.restore().unwrap(), Some(TamperKind::Modified));
        assert_eq!(fs::read(e.path()).unwrap(), good);

        fs::remove_file(e.path()).unwrap();
        assert_eq!(e.restore().unwrap(), Some(TamperKind::Deleted));
        assert_eq!(fs::read(e.path()).unwrap(), good);

        fs::remove_dir_all(tmp.path().join(DROP_IN_DIR)).unwrap();
        assert_eq!(e.restore().unwrap(), Some(TamperKind::Deleted));
        assert_eq!(fs::read(e.path()).unwrap(), good);
    }

    #[cfg(unix)]
    #[test]
    fn mode_change_is_tampering() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mut e = Enforcer::new(tmp.path(), opts());
        e.apply(&policy()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(e.path()), DROP_IN_MODE);
        fs::set_permissions(e.path(), fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(e.restore().unwrap(), Some(TamperKind::Modified));
        assert_eq!(mode(e.path()), DROP_IN_MODE);
    }
}
