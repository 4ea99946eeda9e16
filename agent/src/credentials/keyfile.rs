//! The developer's copy of the API key, for Claude Code's `apiKeyHelper`.
//!
//! The agent runs as root and its state directory is 0700, but Claude Code runs the helper as
//! the developer. So the agent also writes the key to a file the developer owns, in a tree
//! next to the state directory (never inside a directory the developer controls the path of):
//!
//! | path | owner | mode |
//! |---|---|---|
//! | `<state-dir>-keys/` | the agent | 0711: anyone may traverse, nobody else may list or write |
//! | `<state-dir>-keys/<uid>/` | the agent | 0711 |
//! | `<state-dir>-keys/<uid>/api-key` | the developer | 0600, the key only |
//!
//! Both directories are the agent's: the developer can reach their file but cannot create,
//! rename or replace anything in the tree (a directory, FIFO or symlink planted at the key's
//! path), so every path root uses there is root's own. The developer is the owner of the Claude
//! config directory (`--claude-config-dir`, their `~/.claude`) as seen without following a
//! symlink ([`crate::platform::userdir`]), or of its parent when it does not exist yet; a
//! symlinked `~/.claude` names no developer. The key file is created under a temporary name,
//! handed over with `fchown` on its descriptor and renamed into place. When the agent already
//! runs as the developer (tests, a per-user agent) nothing is chowned.
//!
//! On Windows the developer is the owner SID of the Claude config directory (a person's
//! account: SYSTEM or Administrators as owner is refused), and access lists take the place of
//! modes and owners (see [`crate::platform::acl`]):
//!
//! | path | DACL (protected) |
//! |---|---|
//! | `<state-dir>-keys\` | SYSTEM and Administrators only |
//! | `<state-dir>-keys\<SID>\` | the same, plus read for the developer, inherited by the file |
//! | `<state-dir>-keys\<SID>\api-key` | inherited at creation: nothing wider ever exists |
//!
//! The state directory keeps its own `api-key` (read by `api-key` without `--key-file`).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::enforce::atomic;
use crate::state::API_KEY_FILE;

/// Appended to the state directory's name to form the key tree's root.
pub const KEYS_DIR_SUFFIX: &str = "-keys";
/// Mode of the key tree's root.
pub const KEYS_DIR_MODE: u32 = 0o711;
/// Mode of a user's directory in it (the agent's: the developer only traverses it).
pub const USER_DIR_MODE: u32 = 0o711;
/// Mode of a user's key file.
pub const KEY_FILE_MODE: u32 = 0o600;

/// `<state-dir>-keys`: a sibling of the state directory, which stays 0700.
pub fn keys_root(state_dir: &Path) -> PathBuf {
    match state_dir.file_name() {
        Some(name) => {
            let mut name = OsString::from(name);
            name.push(KEYS_DIR_SUFFIX);
            state_dir.with_file_name(name)
        }
        None => state_dir.join(format!("keys{KEYS_DIR_SUFFIX}")),
    }
}

/// Whom a key file is for: a user id and group id.
#[cfg(unix)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Whom a key file is for: the developer's account SID.
#[cfg(not(unix))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Security identifier (`S-1-5-21-...`).
    pub sid: String,
}

impl Owner {
    /// The name of the owner's directory in the key tree: the uid, or the SID.
    pub fn dir_name(&self) -> String {
        #[cfg(unix)]
        return self.uid.to_string();
        #[cfg(not(unix))]
        return self.sid.clone();
    }
}

#[cfg(test)]
impl Owner {
    /// An owner that is not the account running the tests.
    pub(crate) fn someone_else() -> Owner {
        #[cfg(unix)]
        return Owner {
            uid: 4242,
            gid: 4242,
        };
        #[cfg(not(unix))]
        return Owner {
            sid: "S-1-5-21-1-2-3-4242".to_owned(),
        };
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(unix)]
        return write!(f, "uid {}", self.uid);
        #[cfg(not(unix))]
        return write!(f, "{}", self.sid);
    }
}

/// The developer's key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeyFile {
    root: PathBuf,
    owner: Owner,
}

impl UserKeyFile {
    /// The key file under `keys_root` for `owner`.
    pub fn new(keys_root: impl Into<PathBuf>, owner: Owner) -> UserKeyFile {
        UserKeyFile {
            root: keys_root.into(),
            owner,
        }
    }

    /// The key file of the owner of `claude_config_dir` (or of its parent when it does not
    /// exist), next to `state_dir`.
    pub fn for_developer(state_dir: &Path, claude_config_dir: &Path) -> io::Result<UserKeyFile> {
        let owner = developer(claude_config_dir)?;
        Ok(UserKeyFile::new(keys_root(state_dir), owner))
    }

    /// Whom the file belongs to.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The key tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<uid>` (Unix) or `<root>\\<SID>` (Windows).
    pub fn dir(&self) -> PathBuf {
        self.root.join(self.owner.dir_name())
    }

    /// `<root>/<uid>/api-key`: what the `apiKeyHelper` command reads.
    pub fn path(&self) -> PathBuf {
        self.dir().join(API_KEY_FILE)
    }

    /// Writes the key (the key only, no newline), creating and fixing the directories, and
    /// removes any other user's key file (the developer changed).
    pub fn save(&self, key: &str) -> io::Result<()> {
        let dir = self.dir();
        let chown = prepare_dirs(&self.root, &dir, &self.owner)?;
        atomic::replace_owned(&self.path(), key.trim().as_bytes(), KEY_FILE_MODE, chown)
            .map_err(|e| with_path(&self.path(), e))?;
        // The file inherited its directory's list; setting it explicitly as well means a
        // volume or policy that does not apply inheritance still gets the right one.
        #[cfg(not(unix))]
        crate::platform::acl::restrict(
            &self.path(),
            &crate::platform::acl::developer_dir_sddl(&self.owner.sid),
        )
        .map_err(|e| with_path(&self.path(), e))?;
        let (_, failed) = remove_key_files(&self.root, Some(&dir));
        match failed.into_iter().next() {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(()),
        }
    }
}

/// Removes every user's key file under `keys_root`; returns the removed paths and the
/// failures. A missing tree removes nothing.
pub fn remove_all(keys_root: &Path) -> (Vec<PathBuf>, Vec<String>) {
    remove_key_files(keys_root, None)
}

fn remove_key_files(keys_root: &Path, keep: Option<&Path>) -> (Vec<PathBuf>, Vec<String>) {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    let entries = match fs::read_dir(keys_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (removed, failed),
        Err(e) => {
            failed.push(format!("{}: {e}", keys_root.display()));
            return (removed, failed);
        }
    };
    for entry in entries {
        let dir = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                failed.push(format!("{}: {e}", keys_root.display()));
                continue;
            }
        };
        if keep == Some(dir.as_path()) {
            continue;
        }
        let file = dir.join(API_KEY_FILE);
        match fs::remove_file(&file) {
            Ok(()) => removed.push(file),
            // Not a directory, or no key in it.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) => {}
            Err(e) => failed.push(format!("{}: {e}", file.display())),
        }
    }
    removed.sort();
    (removed, failed)
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The owner of the Claude config directory (or of its parent when it does not exist), seen
/// without following a symlink: a symlinked `~/.claude` would otherwise make the link's target
/// (another user's tree, or root's) decide whose key file root writes.
#[cfg(unix)]
fn developer(claude_config_dir: &Path) -> io::Result<Owner> {
    match crate::platform::userdir::UserDir::open_or_parent(claude_config_dir) {
        Ok(Some(dir)) => {
            let (uid, gid) = dir.owner();
            Ok(Owner { uid, gid })
        }
        Ok(None) => Err(with_path(
            claude_config_dir,
            io::Error::new(io::ErrorKind::NotFound, "neither it nor its parent exists"),
        )),
        Err(e) => Err(e.into_io()),
    }
}

#[cfg(not(unix))]
fn developer(claude_config_dir: &Path) -> io::Result<Owner> {
    let owned = if claude_config_dir.exists() {
        claude_config_dir
    } else {
        claude_config_dir.parent().ok_or_else(|| {
            with_path(
                claude_config_dir,
                io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            )
        })?
    };
    let sid = crate::platform::acl::owner_sid(owned).map_err(|e| with_path(owned, e))?;
    if !crate::platform::acl::is_personal_sid(&sid) {
        return Err(with_path(
            owned,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "is owned by {sid}, not a person's account: cannot tell whose API key file \
                     to write (run Claude Code once as the developer, or point \
                     claude_config_dir at their directory)"
                ),
            ),
        ));
    }
    Ok(Owner { sid })
}

/// Creates and fixes the root and the owner's directory; returns the (uid, gid) the key file
/// must be handed to, when the agent is not the owner.
#[cfg(unix)]
fn prepare_dirs(root: &Path, dir: &Path, owner: &Owner) -> io::Result<Option<(u32, u32)>> {
    let agent = ensure_root(root)?;
    ensure_user_dir(dir, &agent)?;
    Ok((owner.uid != agent.uid).then_some((owner.uid, owner.gid)))
}

/// Creates the root and the owner's directory and gives them their access lists (checked
/// first, so an unchanged tree costs two reads). The key file inherits the directory's.
#[cfg(not(unix))]
fn prepare_dirs(root: &Path, dir: &Path, owner: &Owner) -> io::Result<Option<(u32, u32)>> {
    use crate::platform::acl;
    ensure_real_dir(root)?;
    acl::keep_private(root, &acl::private_dir_sddl()).map_err(|e| with_path(root, e))?;
    ensure_real_dir(dir)?;
    let readable_by_owner = acl::dacl_sddl(dir).is_ok_and(|sddl| {
        acl::broad_grants(&sddl).is_empty()
            && acl::allow_entries(&sddl)
                .iter()
                .any(|e| e.sid.eq_ignore_ascii_case(&owner.sid))
    });
    if !readable_by_owner {
        acl::restrict_dir_and_files(dir, &acl::developer_dir_sddl(&owner.sid))
            .map_err(|e| with_path(dir, e))?;
    }
    Ok(None)
}

/// Creates `dir` if needed; refuses anything but a real directory (a symlink or junction
/// planted there is not followed).
#[cfg(not(unix))]
fn ensure_real_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_dir() => Ok(()),
        Ok(_) => Err(with_path(
            dir,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| with_path(dir, e))
        }
        Err(e) => Err(with_path(dir, e)),
    }
}

/// Creates the root 0711 (owned by the agent) or fixes its mode; returns its owner, the
/// agent's own user. A root that is not a real directory is refused.
#[cfg(unix)]
fn ensure_root(root: &Path) -> io::Result<Owner> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let meta = match fs::symlink_metadata(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(KEYS_DIR_MODE).create(root) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(with_path(root, e)),
            }
            fs::symlink_metadata(root).map_err(|e| with_path(root, e))?
        }
        other => other.map_err(|e| with_path(root, e))?,
    };
    if !meta.file_type().is_dir() {
        return Err(with_path(
            root,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        ));
    }
    if meta.mode() & 0o7777 != KEYS_DIR_MODE {
        fs::set_permissions(root, fs::Permissions::from_mode(KEYS_DIR_MODE))
            .map_err(|e| with_path(root, e))?;
    }
    Ok(Owner {
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// Creates `<root>/<uid>` 0711 owned by the agent (`agent`, the root's owner); takes back and
/// narrows an existing one (earlier versions gave it to the developer). Its entry is in the
/// agent's root, which nobody else can write, so the path operations here cannot be
/// redirected.
#[cfg(unix)]
fn ensure_user_dir(dir: &Path, agent: &Owner) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let meta = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(USER_DIR_MODE).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(with_path(dir, e)),
            }
            fs::symlink_metadata(dir).map_err(|e| with_path(dir, e))?
        }
        other => other.map_err(|e| with_path(dir, e))?,
    };
    if !meta.file_type().is_dir() {
        return Err(with_path(
            dir,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        ));
    }
    if meta.uid() != agent.uid || meta.gid() != agent.gid {
        std::os::unix::fs::chown(dir, Some(agent.uid), Some(agent.gid))
            .map_err(|e| with_path(dir, e))?;
    }
    if meta.mode() & 0o7777 != USER_DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(USER_DIR_MODE))
            .map_err(|e| with_path(dir, e))?;
    }
    Ok(())
}

/// Reads a key file for `api-key --key-file`: the trimmed key, or an error when the file is
/// missing, unreadable or blank.
pub fn read_key_file(path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(path).map_err(|e| with_path(path, e))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(with_path(
            path,
            io::Error::new(io::ErrorKind::InvalidData, "no API key in the file"),
        ));
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_root_is_a_sibling_of_the_state_dir() {
        assert_eq!(
            keys_root(Path::new("/var/lib/palisade-agent")),
            PathBuf::from("/var/lib/palisade-agent-keys")
        );
        assert_eq!(
            keys_root(Path::new("/var/lib/palisade-agent/")),
            PathBuf::from("/var/lib/palisade-agent-keys")
        );
        assert_eq!(keys_root(Path::new("/")), PathBuf::from("/keys-keys"));
    }

    #[cfg(unix)]
    fn meta(p: &Path) -> (u32, u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    }

    #[cfg(unix)]
    #[test]
    fn same_user_writes_without_chown_and_serves_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let claude = tmp.path().join("home/.claude");
        fs::create_dir_all(&claude).unwrap();
        let state = tmp.path().join("state");
        let key = UserKeyFile::for_developer(&state, &claude).unwrap();
        let (me, my_gid, _) = meta(tmp.path());
        assert_eq!(
            key.owner(),
            &Owner {
                uid: me,
                gid: my_gid
            }
        );
        assert_eq!(
            key.path(),
            tmp.path().join(format!("state-keys/{me}/api-key"))
        );

        key.save("sk-ant-1\n").unwrap();
        assert_eq!(fs::read(key.path()).unwrap(), b"sk-ant-1");
        assert_eq!(meta(key.root()), (me, my_gid, KEYS_DIR_MODE));
        assert_eq!(meta(&key.dir()).2, USER_DIR_MODE);
        assert_eq!(meta(&key.path()).2, KEY_FILE_MODE);
        assert_eq!(read_key_file(&key.path()).unwrap(), "sk-ant-1");

        // Wider modes are narrowed again on the next save.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(key.root(), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(key.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(key.path(), fs::Permissions::from_mode(0o644)).unwrap();
        key.save("sk-ant-2").unwrap();
        assert_eq!(meta(key.root()).2, KEYS_DIR_MODE);
        assert_eq!(meta(&key.dir()).2, USER_DIR_MODE);
        assert_eq!(meta(&key.path()).2, KEY_FILE_MODE);
        assert_eq!(read_key_file(&key.path()).unwrap(), "sk-ant-2");

        let (removed, failed) = remove_all(key.root());
        assert_eq!(removed, vec![key.path()]);
        assert!(failed.is_empty(), "{failed:?}");
        assert!(read_key_file(&key.path()).is_err());
        assert_eq!(remove_all(key.root()), (vec![], vec![]));
        assert_eq!(remove_all(&tmp.path().join("absent")), (vec![], vec![]));
    }

    #[test]
    fn missing_claude_dir_falls_back_to_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let owner = developer(&tmp.path().join(".claude"));
        assert!(owner.is_ok(), "{owner:?}");
        assert!(developer(&tmp.path().join("no/.claude")).is_err());
    }

    #[test]
    fn blank_or_missing_key_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("api-key");
        assert!(read_key_file(&file).is_err());
        fs::write(&file, " \n").unwrap();
        assert!(read_key_file(&file).is_err());
        fs::write(&file, "sk-ant-3\n").unwrap();
        assert_eq!(read_key_file(&file).unwrap(), "sk-ant-3");
    }

    /// Root only: the file, its directory and the root belong to whom they should.
    #[cfg(unix)]
    #[test]
    fn root_hands_the_file_to_the_developer() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let claude = tmp.path().join("home/.claude");
        fs::create_dir_all(&claude).unwrap();
        let (me, _, _) = meta(tmp.path());
        if me != 0 || std::os::unix::fs::chown(&claude, Some(12345), Some(23456)).is_err() {
            eprintln!("skipped: needs root");
            return;
        }
        let state = tmp.path().join("state");
        let key = UserKeyFile::for_developer(&state, &claude).unwrap();
        assert_eq!(
            key.owner(),
            &Owner {
                uid: 12345,
                gid: 23456
            }
        );
        assert_eq!(key.path(), tmp.path().join("state-keys/12345/api-key"));
        key.save("sk-ant-dev").unwrap();
        assert_eq!(
            meta(key.root()),
            (0, fs::metadata(tmp.path()).unwrap().gid(), 0o711)
        );
        let root_gid = fs::metadata(key.root()).unwrap().gid();
        // The directory is root's: the developer can reach the file, not plant anything next
        // to it.
        assert_eq!(meta(&key.dir()), (0, root_gid, 0o711));
        assert_eq!(meta(&key.path()), (12345, 23456, 0o600));
        assert_eq!(fs::read(key.path()).unwrap(), b"sk-ant-dev");
        // No temporary file left behind.
        assert_eq!(fs::read_dir(key.dir()).unwrap().count(), 1);

        // A directory an earlier version gave to the developer is taken back.
        std::os::unix::fs::chown(key.dir(), Some(12345), Some(23456)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(key.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        key.save("sk-ant-dev2").unwrap();
        assert_eq!(meta(&key.dir()), (0, root_gid, 0o711));
        assert_eq!(meta(&key.path()), (12345, 23456, 0o600));

        // Another developer takes the machine: the first one's key goes.
        std::os::unix::fs::chown(&claude, Some(12346), Some(23456)).unwrap();
        let other = UserKeyFile::for_developer(&state, &claude).unwrap();
        other.save("sk-ant-other").unwrap();
        assert!(!key.path().exists());
        assert_eq!(meta(&other.path()), (12346, 23456, 0o600));

        // A symlink planted at the key's place is replaced, not followed.
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"keep").unwrap();
        fs::remove_file(other.path()).unwrap();
        std::os::unix::fs::symlink(&outside, other.path()).unwrap();
        other.save("sk-ant-3").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert_eq!(meta(&outside).0, 0);
        assert!(fs::symlink_metadata(other.path()).unwrap().is_file());
        assert_eq!(meta(&other.path()), (12346, 23456, 0o600));

        let (removed, failed) = remove_all(key.root());
        assert_eq!(removed, vec![other.path()]);
        assert!(failed.is_empty(), "{failed:?}");
    }

    /// Root only: a `~/.claude` that is a symlink to another user's (or root's) directory
    /// names no developer; before, the link's target's owner got the key file.
    #[cfg(unix)]
    #[test]
    fn a_symlinked_claude_dir_names_no_developer() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim/.claude");
        fs::create_dir_all(&victim).unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(&home).unwrap();
        let claude = home.join(".claude");
        std::os::unix::fs::symlink(&victim, &claude).unwrap();
        if meta(tmp.path()).0 == 0 {
            std::os::unix::fs::chown(&victim, Some(65534), Some(65534)).unwrap();
            std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
            std::os::unix::fs::lchown(&claude, Some(1000), Some(1000)).unwrap();
        }
        let err = UserKeyFile::for_developer(&tmp.path().join("state"), &claude).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        // With the link gone and no directory yet, the home's owner is the developer.
        fs::remove_file(&claude).unwrap();
        let key = UserKeyFile::for_developer(&tmp.path().join("state"), &claude).unwrap();
        assert_eq!(key.owner().uid, meta(&home).0);
    }
}
