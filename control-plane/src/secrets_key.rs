//! Where the secrets key comes from: `--secrets-key-file`, else `PALISADE_SECRETS_KEY`, else —
//! for the embedded SQLite store — `secrets.key` beside the database, generated (0600) on
//! first use so the default install works with no extra step. The database remembers which key
//! sealed it, so a process given a different key refuses to start instead of writing values
//! nobody can read.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::crypto::SecretsKey;
use crate::store::{sqlite_data_dir, Store, StoreError};

/// Environment variable holding the base64 32-byte key that encrypts secrets at rest.
pub const SECRETS_KEY_ENV: &str = "PALISADE_SECRETS_KEY";
/// The generated key's file name, in the SQLite database's directory.
pub const GENERATED_KEY_FILE: &str = "secrets.key";

/// Where the key came from, for the operator's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Environment,
    /// Generated beside the database by this process.
    Generated(PathBuf),
    /// Generated beside the database earlier.
    DataDirectory(PathBuf),
}

/// The configured secrets key, if any, checked against the one `store` was sealed with: the
/// explicit file, the environment, or the key beside a SQLite database (created when missing
/// and the database has none recorded). PostgreSQL deployments (several replicas) must give
/// every replica the same key, so none is generated for them.
pub async fn load(
    file: Option<&Path>,
    database_url: &str,
    store: &Store,
) -> anyhow::Result<Option<(SecretsKey, KeySource)>> {
    let Some((key, source)) = find(file, database_url, store).await? else {
        return Ok(None);
    };
    match store.bind_secrets_key(&key).await {
        Ok(()) => Ok(Some((key, source))),
        Err(StoreError::Conflict(_)) => bail!(
            "the secrets key ({}) is not the key this database's secrets were sealed with; \
             give every replica and the CLI the same key (--secrets-key-file or {SECRETS_KEY_ENV})",
            describe(&source)
        ),
        Err(e) => Err(e.into()),
    }
}

async fn find(
    file: Option<&Path>,
    database_url: &str,
    store: &Store,
) -> anyhow::Result<Option<(SecretsKey, KeySource)>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the secrets key file {}", path.display()))?;
        let key = SecretsKey::from_base64(&text)
            .with_context(|| format!("the secrets key in {}", path.display()))?;
        return Ok(Some((key, KeySource::File(path.to_owned()))));
    }
    if let Ok(text) = std::env::var(SECRETS_KEY_ENV) {
        let key = SecretsKey::from_base64(&text).with_context(|| SECRETS_KEY_ENV.to_string())?;
        return Ok(Some((key, KeySource::Environment)));
    }
    let Some(dir) = sqlite_data_dir(database_url) else {
        return Ok(None);
    };
    let path = dir.join(GENERATED_KEY_FILE);
    let mut generated = false;
    if !path.exists() {
        if store.secrets_key_recorded().await? {
            bail!(
                "this database's secrets were sealed with a key that is not at {}: give that key \
                 with --secrets-key-file or {SECRETS_KEY_ENV}",
                path.display()
            );
        }
        generated = create_if_missing(&dir, &path)?;
    }
    check_private(&path)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the secrets key {}", path.display()))?;
    let key = SecretsKey::from_base64(&text)
        .with_context(|| format!("the secrets key in {}", path.display()))?;
    Ok(Some((
        key,
        if generated {
            KeySource::Generated(path)
        } else {
            KeySource::DataDirectory(path)
        },
    )))
}

/// A short description of where the key came from.
pub fn describe(source: &KeySource) -> String {
    match source {
        KeySource::File(p) => format!("from {}", p.display()),
        KeySource::Environment => format!("from {SECRETS_KEY_ENV}"),
        KeySource::Generated(p) => format!("generated now at {}", p.display()),
        KeySource::DataDirectory(p) => format!("from {}", p.display()),
    }
}

/// Writes a fresh key to `path` unless it exists; `true` if this call created it. The key is
/// written to a private temporary file and hard-linked into place, so a concurrent reader
/// sees either no file or the whole key, and two processes starting together agree.
fn create_if_missing(dir: &Path, path: &Path) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let tmp = dir.join(format!(".{GENERATED_KEY_FILE}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(SecretsKey::generate_base64().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("writing the secrets key {}", path.display())),
    }
}

/// Refuses a key file others can read (it decrypts every API key and client secret).
fn check_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the secrets key {} can be read by other users (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(url: &str) -> Store {
        Store::connect(url).await.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_key_is_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}/sub/palisade.db", dir.path().display());
        let s = store(&url).await;
        let first = load(None, &url, &s)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let Some((key, KeySource::Generated(path))) = first else {
            panic!("no key generated: {first:?}");
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load(None, &url, &s)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let Some((same, KeySource::DataDirectory(_))) = again else {
            panic!("not reused: {again:?}");
        };
        let sealed = key.encrypt("x");
        assert_eq!(same.decrypt(&sealed).as_deref(), Ok("x"));

        // Another key for the same database is refused; a lost key file is not regenerated.
        let other = dir.path().join("other.key");
        std::fs::write(&other, SecretsKey::generate_base64()).unwrap_or_else(|e| panic!("{e}"));
        let err = load(Some(&other), &url, &s)
            .await
            .err()
            .map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("not the key")));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let err = load(None, &url, &s).await.err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("sealed with a key that is not at")));
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}/palisade.db", dir.path().display());
        let s = store(&url).await;
        load(None, &url, &s)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let path = dir.path().join(GENERATED_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = load(None, &url, &s).await.err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("chmod 600")));
    }
}
