//! The developer's Claude config directory (`~/.claude`), opened by the root agent without
//! following anything the developer could have planted (Unix only).
//!
//! The developer can rename, replace and symlink anything in their home. A root process that
//! resolved `~/.claude/.credentials.json` by path would follow a symlinked `~/.claude` into
//! `/root/.claude` or another user's home, and take that tree's owner as "the developer". So:
//!
//! - the path is walked one component at a time with `openat`; the last component
//!   (`~/.claude` itself) is opened with `O_NOFOLLOW`, and a symlink there is refused
//!   ([`UserDirError::Symlink`]); a symlink in a parent is followed only when root made it in
//!   a directory only root can write (`/var` → `private/var` on macOS), never when a user could
//!   have;
//! - the developer is the owner of that opened directory (its `fstat`, which is the `lstat`
//!   of the path);
//! - files in it are removed with `unlinkat` and read with `openat(O_NOFOLLOW | O_NONBLOCK)`
//!   relative to the opened handle, after checking their type and owner, so a path swapped
//!   after the check can still only name something inside the developer's own directory.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;

/// Why the developer's directory, or a file in it, was not used.
#[derive(Debug, thiserror::Error)]
pub enum UserDirError {
    /// A symlink where a real directory or file must be: not followed.
    #[error("{path} is a symlink: not followed (the agent runs as root and does not act on what a link points at)")]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Something other than what was expected is there.
    #[error("{path}: {why}: left alone")]
    Refused {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The entry.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl UserDirError {
    fn io(path: &Path, errno: Errno) -> UserDirError {
        UserDirError::Io {
            path: path.to_owned(),
            source: errno.into(),
        }
    }

    /// The same error as an `io::Error` (kind `InvalidData` for a refusal), for callers that
    /// report I/O errors.
    pub fn into_io(self) -> io::Error {
        match self {
            UserDirError::Io { path, source } => {
                io::Error::new(source.kind(), format!("{}: {source}", path.display()))
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// An opened directory of the developer's, and its owner.
#[derive(Debug)]
pub struct UserDir {
    fd: OwnedFd,
    path: PathBuf,
    uid: u32,
    gid: u32,
}

impl UserDir {
    /// Opens `path` as described in the module documentation; `Ok(None)` when it does not
    /// exist.
    pub fn open(path: &Path) -> Result<Option<UserDir>, UserDirError> {
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => (parent, name),
            _ => {
                return Err(UserDirError::Refused {
                    path: path.to_owned(),
                    why: "not a directory below another one".into(),
                })
            }
        };
        let parent_fd = match walk(parent)? {
            Some(fd) => fd,
            None => return Ok(None),
        };
        match open_last(&parent_fd, name, path)? {
            Some(fd) => UserDir::from_fd(fd, path).map(Some),
            None => Ok(None),
        }
    }

    /// Opens `path`, or its parent when `path` does not exist (the developer has not run Claude
    /// Code yet: their home tells who they are). `Ok(None)` when neither exists.
    pub fn open_or_parent(path: &Path) -> Result<Option<UserDir>, UserDirError> {
        if let Some(dir) = UserDir::open(path)? {
            return Ok(Some(dir));
        }
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => UserDir::open(parent),
            _ => Ok(None),
        }
    }

    fn from_fd(fd: OwnedFd, path: &Path) -> Result<UserDir, UserDirError> {
        let st = rustix::fs::fstat(&fd).map_err(|e| UserDirError::io(path, e))?;
        Ok(UserDir {
            fd,
            path: path.to_owned(),
            uid: st.st_uid,
            gid: st.st_gid,
        })
    }

    /// The directory's path (as given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's owner (uid, gid): the developer.
    pub fn owner(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    /// Removes the entry `name`: a regular file owned by the directory's owner or by root, or a
    /// symlink (the link itself: `unlinkat` never follows it). `Ok(false)` when absent;
    /// anything else (a directory, a FIFO, another user's file) is refused and left.
    pub fn remove_file(&self, name: &str) -> Result<bool, UserDirError> {
        let path = self.path.join(name);
        let st = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(UserDirError::io(&path, e)),
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        if !matches!(kind, FileType::RegularFile | FileType::Symlink) {
            return Err(UserDirError::Refused {
                path,
                why: format!("not a regular file ({kind:?})"),
            });
        }
        if st.st_uid != self.uid && st.st_uid != 0 {
            return Err(UserDirError::Refused {
                path,
                why: format!(
                    "owned by uid {}, not by the directory's owner (uid {})",
                    st.st_uid, self.uid
                ),
            });
        }
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(UserDirError::io(&path, e)),
        }
    }

    /// Reads the regular file `name` owned by the directory's owner, up to `limit` bytes,
    /// without following a symlink or blocking on a FIFO; `None` for anything else.
    pub fn read_file(&self, name: &str, limit: u64) -> Option<Vec<u8>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty()).ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
        let size_ok = u64::try_from(st.st_size).is_ok_and(|n| n <= limit);
        if !regular || !size_ok || st.st_uid != self.uid {
            tracing::debug!(
                path = %self.path.join(name).display(),
                "not a regular file of the developer's of a sane size: not read"
            );
            return None;
        }
        let mut bytes = Vec::new();
        File::from(fd).take(limit).read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }
}

/// Opens the directory `path` component by component; `Ok(None)` when a component is missing.
fn walk(path: &Path) -> Result<Option<OwnedFd>, UserDirError> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut walked = PathBuf::new();
    let mut fd: Option<OwnedFd> = None;
    for component in path.components() {
        let name: &OsStr = match component {
            Component::RootDir => {
                walked.push("/");
                fd = Some(
                    open_at(None, "/", dir_flags, &walked)?
                        .ok_or_else(|| UserDirError::io(&walked, Errno::NOENT))?,
                );
                continue;
            }
            Component::CurDir => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(name) => name,
            Component::Prefix(_) => {
                return Err(UserDirError::Refused {
                    path: path.to_owned(),
                    why: "unsupported path prefix".into(),
                })
            }
        };
        walked.push(name);
        let next = match fd.as_ref() {
            Some(dir) => {
                let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(UserDirError::io(&walked, e)),
                };
                let follow = FileType::from_raw_mode(st.st_mode) == FileType::Symlink;
                if follow && !trusted_link(dir, &st) {
                    return Err(UserDirError::Symlink { path: walked });
                }
                let flags = if follow {
                    dir_flags
                } else {
                    dir_flags | OFlags::NOFOLLOW
                };
                open_at(Some(dir), name, flags, &walked)?
            }
            None => open_at(None, name, dir_flags | OFlags::NOFOLLOW, &walked)?,
        };
        match next {
            Some(next) => fd = Some(next),
            None => return Ok(None),
        }
    }
    match fd {
        Some(fd) => Ok(Some(fd)),
        // A relative path with no component: the working directory.
        None => open_at(None, ".", dir_flags, path),
    }
}

/// A symlink root made in a directory only root can write: the administrator's, not the
/// developer's, so following it is as safe as the path the agent was configured with.
fn trusted_link(dir: &OwnedFd, link: &Stat) -> bool {
    let Ok(dir_st) = rustix::fs::fstat(dir) else {
        return false;
    };
    let writable_by_others =
        Mode::from_raw_mode(dir_st.st_mode).intersects(Mode::WGRP | Mode::WOTH);
    link.st_uid == 0 && dir_st.st_uid == 0 && !writable_by_others
}

/// Opens the last component, `~/.claude` itself: never through a symlink.
fn open_last(parent: &OwnedFd, name: &OsStr, path: &Path) -> Result<Option<OwnedFd>, UserDirError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(classify(parent, name, path, e)),
    }
}

fn open_at(
    dir: Option<&OwnedFd>,
    name: impl AsRef<OsStr>,
    flags: OFlags,
    path: &Path,
) -> Result<Option<OwnedFd>, UserDirError> {
    let name = name.as_ref();
    let result = match dir {
        Some(dir) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        None => rustix::fs::openat(CWD, name, flags, Mode::empty()),
    };
    match result {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(match dir {
            Some(dir) => classify(dir, name, path, e),
            None => UserDirError::io(path, e),
        }),
    }
}

/// `O_NOFOLLOW` on a symlink fails with `ELOOP` (Linux, macOS) or, with `O_DIRECTORY`, may
/// fail with `ENOTDIR`: look at the entry to say which.
fn classify(dir: &OwnedFd, name: &OsStr, path: &Path, e: Errno) -> UserDirError {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            UserDirError::Symlink {
                path: path.to_owned(),
            }
        }
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            UserDirError::Refused {
                path: path.to_owned(),
                why: "not a directory".into(),
            }
        }
        _ => UserDirError::io(path, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt};

    #[test]
    fn opens_a_real_directory_and_reports_its_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let claude = tmp.path().join("home/.claude");
        fs::create_dir_all(&claude).unwrap();
        let dir = UserDir::open(&claude).unwrap().unwrap();
        let meta = fs::metadata(&claude).unwrap();
        assert_eq!(dir.owner(), (meta.uid(), meta.gid()));
        assert!(UserDir::open(&tmp.path().join("home/absent"))
            .unwrap()
            .is_none());
        assert!(UserDir::open(&tmp.path().join("no/such/.claude"))
            .unwrap()
            .is_none());
        let parent = UserDir::open_or_parent(&tmp.path().join("home/absent"))
            .unwrap()
            .unwrap();
        assert_eq!(parent.path(), tmp.path().join("home"));
    }

    #[test]
    fn a_symlinked_dir_or_parent_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("victim/.claude");
        fs::create_dir_all(&target).unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(&home).unwrap();
        symlink(&target, home.join(".claude")).unwrap();
        let err = UserDir::open(&home.join(".claude")).unwrap_err();
        assert!(matches!(err, UserDirError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(UserDir::open_or_parent(&home.join(".claude")).is_err());

        // A link in a parent made by someone else than root: refused too.
        let link = tmp.path().join("home2");
        symlink(tmp.path().join("victim"), &link).unwrap();
        let as_root = fs::symlink_metadata(&link).unwrap().uid() == 0;
        if as_root {
            // Root's link in root's 0700 directory is the administrator's: followed.
            assert!(UserDir::open(&link.join(".claude")).unwrap().is_some());
            std::os::unix::fs::lchown(&link, Some(1000), Some(1000)).unwrap();
        }
        let err = UserDir::open(&link.join(".claude")).unwrap_err();
        assert!(matches!(err, UserDirError::Symlink { .. }), "{err}");
        if as_root {
            // Root's link, but in a directory a user can write: refused.
            std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
            assert!(UserDir::open(&link.join(".claude")).is_err());
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        }

        fs::write(home.join("file"), b"x").unwrap();
        assert!(matches!(
            UserDir::open(&home.join("file")),
            Err(UserDirError::Refused { .. })
        ));
    }

    #[test]
    fn removes_files_and_links_but_not_what_links_point_at() {
        let tmp = tempfile::tempdir().unwrap();
        let claude = tmp.path().join(".claude");
        fs::create_dir_all(&claude).unwrap();
        let dir = UserDir::open(&claude).unwrap().unwrap();
        fs::write(claude.join("f"), b"x").unwrap();
        assert!(dir.remove_file("f").unwrap());
        assert!(!dir.remove_file("f").unwrap());

        let outside = tmp.path().join("outside");
        fs::write(&outside, b"keep").unwrap();
        symlink(&outside, claude.join("l")).unwrap();
        assert!(dir.remove_file("l").unwrap());
        assert_eq!(fs::read(&outside).unwrap(), b"keep");

        fs::create_dir(claude.join("d")).unwrap();
        assert!(matches!(
            dir.remove_file("d"),
            Err(UserDirError::Refused { .. })
        ));
        assert!(claude.join("d").is_dir());
    }

    #[test]
    fn reads_only_regular_files_of_the_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let claude = tmp.path().join(".claude");
        fs::create_dir_all(&claude).unwrap();
        let dir = UserDir::open(&claude).unwrap().unwrap();
        fs::write(claude.join("r"), b"{}").unwrap();
        assert_eq!(dir.read_file("r", 10).as_deref(), Some(&b"{}"[..]));
        assert_eq!(dir.read_file("r", 1), None, "too large");
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"secret").unwrap();
        symlink(&outside, claude.join("l")).unwrap();
        assert_eq!(dir.read_file("l", 100), None);
        assert_eq!(dir.read_file("absent", 100), None);
    }

    /// Root only: a file in the developer's directory owned by someone else is neither read
    /// nor removed.
    #[test]
    fn another_users_file_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let claude = tmp.path().join(".claude");
        fs::create_dir_all(&claude).unwrap();
        let file = claude.join(".credentials.json");
        fs::write(&file, b"{}").unwrap();
        if fs::metadata(&file).unwrap().uid() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        std::os::unix::fs::chown(&claude, Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        let dir = UserDir::open(&claude).unwrap().unwrap();
        assert_eq!(dir.owner(), (1000, 1000));
        assert_eq!(dir.read_file(".credentials.json", 100), None);
        let err = dir.remove_file(".credentials.json").unwrap_err();
        assert!(err.to_string().contains("65534"), "{err}");
        assert!(file.exists());
        // The developer's own file, or root's, goes.
        std::os::unix::fs::chown(&file, Some(1000), Some(1000)).unwrap();
        assert_eq!(
            dir.read_file(".credentials.json", 100).as_deref(),
            Some(&b"{}"[..])
        );
        assert!(dir.remove_file(".credentials.json").unwrap());
    }
}
