//! Crash-safe replacement of a small file, done only when its content (or mode) differs.
//!
//! [`write_if_changed`] writes the new content to a temporary file in the target's directory,
//! fsyncs it, renames it over the target and (on Unix) fsyncs the directory. A reader (Claude
//! Code reloading its managed settings) therefore sees either the old or the new file, never a
//! partial one. The temporary name starts with `.` and ends with `.tmp`, so it never matches
//! the `managed-settings.d/*.json` glob.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Replaces `path` with `bytes` unless it already holds exactly these bytes (and, on Unix,
/// has permission bits `mode`). Returns whether the file was written.
///
/// - The parent directory must exist; it is not created.
/// - A symlink or any non-regular file at `path` is replaced by a regular file, never
///   written through.
/// - On error the target is left as it was (old content or absent) and the temporary file
///   is removed. An error from the final directory fsync is reported even though the new
///   content is already in place: its durability is then not guaranteed, and the caller
///   should retry.
/// - `mode` is applied exactly (not filtered by the umask) on Unix and ignored on Windows.
///   On Windows the rename may fail while another process holds the target open without
///   delete sharing; the caller retries.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    if is_current(path, bytes, mode) {
        return Ok(false);
    }
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };

    let (tmp_path, file) = create_temp(dir, file_name, mode)?;
    if let Err(err) = fill_and_rename(file, &tmp_path, path, bytes) {
        // Best effort: the temporary file may already be gone (for example when the rename
        // half-succeeded on an exotic filesystem); the original error is what matters.
        let _ = fs::remove_file(&tmp_path);
        return Err(err);
    }
    sync_dir(dir)?;
    Ok(true)
}

/// Replaces `path` with `bytes`, mode `mode`, always (no comparison with the current file),
/// and on Unix hands the new file to `owner` (uid, gid) through its open descriptor
/// (`fchown`) before the rename, so the file appears with its final owner and no path is
/// ever followed. Meant for a directory another user can write to (their own key directory):
/// the current file is never opened, so a symlink, FIFO or device planted there can neither
/// redirect nor block the write. `owner` is ignored on Windows.
pub fn replace_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (tmp_path, file) = create_temp(dir, file_name, mode)?;
    let result =
        set_owner(&file, owner).and_then(|()| fill_and_rename(file, &tmp_path, path, bytes));
    if let Err(err) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(err);
    }
    sync_dir(dir)
}

#[cfg(unix)]
fn set_owner(file: &File, owner: Option<(u32, u32)>) -> io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::fchown(file, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn set_owner(_file: &File, _owner: Option<(u32, u32)>) -> io::Result<()> {
    Ok(())
}

/// True when `path` is a regular file (not a symlink) with exactly `bytes` and, on Unix,
/// permission bits `mode`. Any error reading it counts as "not current".
fn is_current(path: &Path, bytes: &[u8], mode: u32) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() || meta.len() != bytes.len() as u64 {
        return false;
    }
    if !mode_matches(&meta, mode) {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    // Read at most one byte more than expected, in case the file grew meanwhile.
    let mut current = Vec::with_capacity(bytes.len());
    match file.take(bytes.len() as u64 + 1).read_to_end(&mut current) {
        Ok(_) => current == bytes,
        Err(_) => false,
    }
}

#[cfg(unix)]
fn mode_matches(meta: &fs::Metadata, mode: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777 == mode & 0o7777
}

#[cfg(not(unix))]
fn mode_matches(_meta: &fs::Metadata, _mode: u32) -> bool {
    true
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates a new, exclusive temporary file next to the target.
fn create_temp(dir: &Path, file_name: &std::ffi::OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last_err = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = OsString::from(".");
        name.push(file_name);
        name.push(format!(".{}.{nanos:08x}{n}.tmp", std::process::id()));
        let tmp_path = dir.join(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        set_create_mode(&mut options, mode);
        match options.open(&tmp_path) {
            Ok(file) => {
                if let Err(err) = set_exact_mode(&file, mode) {
                    drop(file);
                    let _ = fs::remove_file(&tmp_path);
                    return Err(err);
                }
                return Ok((tmp_path, file));
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last_err = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not create a temporary file")))
}

#[cfg(unix)]
fn set_create_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode & 0o7777);
}

#[cfg(not(unix))]
fn set_create_mode(_options: &mut OpenOptions, _mode: u32) {}

/// The umask filtered the creation mode; set the exact bits.
#[cfg(unix)]
fn set_exact_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
}

#[cfg(not(unix))]
fn set_exact_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

fn fill_and_rename(mut file: File, tmp_path: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp_path, target)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_then_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("50-palisade.json");
        assert!(write_if_changed(&target, b"{}\n", 0o644).unwrap());
        assert_eq!(fs::read(&target).unwrap(), b"{}\n");
        let before = fs::metadata(&target).unwrap().modified().unwrap();

        assert!(!write_if_changed(&target, b"{}\n", 0o644).unwrap());
        assert_eq!(fs::metadata(&target).unwrap().modified().unwrap(), before);

        assert!(write_if_changed(&target, b"{\"a\": 1}\n", 0o644).unwrap());
        assert_eq!(fs::read(&target).unwrap(), b"{\"a\": 1}\n");
        assert_eq!(entries(dir.path()), vec!["50-palisade.json"]);
    }

    #[test]
    fn same_length_different_content_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.json");
        assert!(write_if_changed(&target, b"aaaa", 0o644).unwrap());
        assert!(write_if_changed(&target, b"aaab", 0o644).unwrap());
        assert_eq!(fs::read(&target).unwrap(), b"aaab");
    }

    #[test]
    fn path_without_file_name_is_rejected() {
        let err = write_if_changed(Path::new(""), b"x", 0o644).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn missing_parent_fails_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("absent").join("f.json");
        let err = write_if_changed(&target, b"x", 0o644).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn directory_at_target_fails_and_cleans_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"keep").unwrap();
        assert!(write_if_changed(&target, b"x", 0o644).is_err());
        assert!(target.is_dir());
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"keep");
        assert_eq!(entries(dir.path()), vec!["f.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn applies_exact_mode_and_fixes_a_changed_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.json");
        assert!(write_if_changed(&target, b"x", 0o640).unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&target), 0o640);

        fs::set_permissions(&target, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(write_if_changed(&target, b"x", 0o640).unwrap());
        assert_eq!(mode(&target), 0o640);
        assert!(!write_if_changed(&target, b"x", 0o640).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"x").unwrap();
        let target = dir.path().join("f.json");
        std::os::unix::fs::symlink(&outside, &target).unwrap();

        // Same bytes through the link still count as changed: the link itself is replaced.
        assert!(write_if_changed(&target, b"x", 0o644).unwrap());
        assert!(fs::symlink_metadata(&target).unwrap().file_type().is_file());
        assert!(write_if_changed(&target, b"new", 0o644).unwrap());
        assert_eq!(fs::read(&outside).unwrap(), b"x");
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    /// Makes a directory unwritable, even for root (who ignores mode bits): mode 0555 first,
    /// then, if writing still works, the immutable attribute via `chattr +i`. Undone on drop.
    #[cfg(unix)]
    struct ReadOnlyDir {
        path: PathBuf,
        immutable: bool,
    }

    #[cfg(unix)]
    impl ReadOnlyDir {
        /// `None` when the directory cannot be made read-only here.
        fn new(path: &Path) -> Option<ReadOnlyDir> {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(path, fs::Permissions::from_mode(0o555)).unwrap();
            let mut guard = ReadOnlyDir {
                path: path.to_owned(),
                immutable: false,
            };
            if guard.writable() {
                let ok = std::process::Command::new("chattr")
                    .arg("+i")
                    .arg(path)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                guard.immutable = ok;
                if !ok || guard.writable() {
                    return None;
                }
            }
            Some(guard)
        }

        fn writable(&self) -> bool {
            let probe = self.path.join(".probe");
            let ok = File::create(&probe).is_ok();
            let _ = fs::remove_file(&probe);
            ok
        }
    }

    #[cfg(unix)]
    impl Drop for ReadOnlyDir {
        fn drop(&mut self) {
            use std::os::unix::fs::PermissionsExt;
            if self.immutable {
                let _ = std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(&self.path)
                    .status();
            }
            let _ = fs::set_permissions(&self.path, fs::Permissions::from_mode(0o755));
        }
    }

    #[cfg(unix)]
    #[test]
    fn read_only_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("50-palisade.json");
        assert!(write_if_changed(&target, b"old\n", 0o644).unwrap());

        let Some(guard) = ReadOnlyDir::new(dir.path()) else {
            eprintln!("skipped: cannot make a directory read-only here");
            return;
        };
        let err = write_if_changed(&target, b"new\n", 0o644).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ),
            "unexpected error {err:?}"
        );
        // Unchanged content is still detected without writing.
        assert!(!write_if_changed(&target, b"old\n", 0o644).unwrap());
        drop(guard);

        assert_eq!(fs::read(&target).unwrap(), b"old\n");
        assert_eq!(entries(dir.path()), vec!["50-palisade.json"]);
    }
}
