//! The installation key: 256 random bits the agent creates once in its root-only state
//! directory and sends with every enrollment. The control plane keeps its hash, so the same
//! machine enrolling again (MDM re-running the enroll command, a reinstall that kept the
//! state) renews its device instead of adding a second one. It identifies the machine, not the
//! person, and survives a wipe.

use std::fs;
use std::io;

use base64::Engine as _;
use rand::RngCore;

use crate::state::{StateDir, StateError, FILE_MODE};

/// The file, inside the state directory.
pub const INSTALL_KEY_FILE: &str = "install-key";

/// The machine's installation key, created on first use.
pub fn load_or_create(state: &StateDir) -> Result<String, StateError> {
    let path = state.path(INSTALL_KEY_FILE);
    let io_err = |source: io::Error| StateError::Io {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) if is_well_formed(text.trim()) => return Ok(text.trim().to_owned()),
        Ok(_) => tracing::warn!(path = %path.display(), "replacing a malformed installation key"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    state.ensure()?;
    crate::enforce::atomic::write_if_changed(&path, key.as_bytes(), FILE_MODE).map_err(io_err)?;
    Ok(key)
}

fn is_well_formed(key: &str) -> bool {
    key.len() == 43
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("state"));
        let a = load_or_create(&state).unwrap();
        let b = load_or_create(&state).unwrap();
        assert_eq!(a, b);
        assert!(is_well_formed(&a));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(state.path(INSTALL_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(state.path(INSTALL_KEY_FILE), "junk").unwrap();
        assert_ne!(load_or_create(&state).unwrap(), a);
    }
}
