//! The durable store: SQLite (embedded default, WAL) or PostgreSQL, through one set of portable
//! queries on sqlx's `Any` driver. Every write is one transaction that also records its audit event.

mod api_tokens;
mod audit;
mod batch;
mod changes;
mod devices;
mod enrollment;
mod grants;
mod groups;
mod invites;
mod key_check;
mod login_links;
mod orgs;
mod policies;
mod secrets;
mod signin;
mod tokens;
mod usage;
mod users;

pub use api_tokens::{ApiToken, NewApiToken, API_TOKEN_PREFIX};
pub use audit::{AuditCursor, AuditEvent, AuditFilter};
pub use changes::{ChangeListener, InputChange, PendingInputChange, RevokedDevice, CHANGE_CHANNEL};
pub use devices::{
    DeviceReport, DeviceStanding, FleetCounts, ReportTally, DEFAULT_ENROLL_TOKEN_LIFETIME_MICROS,
    ENROLL_TOKEN_PREFIX, REPORT_COALESCE_WINDOW_MICROS,
};
pub use enrollment::{EnrollContext, EnrollRefusal, EnrollTokenCheck, DEVICE_CREDENTIAL_PREFIX};
pub use grants::{
    normalise_user_code, PollOutcome, StartedGrant, DEVICE_CODE_PREFIX, GRANT_LIFETIME_MICROS,
    POLL_INTERVAL_SECONDS,
};
pub use groups::GroupSelection;
pub use invites::ACTIVATION_CODE_PREFIX;
pub use login_links::{RedeemedLink, LOGIN_LINK_LIFETIME, LOGIN_LINK_PREFIX};
pub use policies::{
    ComputedPolicy, KeyDelivery, OfflineRule, OrgSettings, StoredUserPolicy, UserGroupInput,
    UserPolicyInputs,
};
pub use tokens::{AuthenticatedToken, NewScimToken, SCIM_TOKEN_PREFIX};
pub use users::UserSelection;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the store layer. Callers branch on these; `Database` carries detail for the log only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule (userName, group displayName, org slug) was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row changed since the caller read it (optimistic concurrency); re-read and retry.
    #[error("version conflict")]
    VersionConflict,
    /// The request named something that does not exist or cannot be used (e.g. a member id).
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    /// An id-or-prefix matched several rows.
    #[error("ambiguous: {0}")]
    Ambiguous(String),
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write failed for a reason already logged where it happened.
    #[error("write failed: {0}")]
    Failed(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A connected, migrated store.
#[derive(Clone, Debug)]
pub struct Store {
    /// Writes go through this pool. On SQLite it holds a single connection: SQLite has one
    /// writer at a time anyway, and queueing in the pool avoids SQLITE_BUSY upgrade failures.
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
    /// The PostgreSQL URL, for the change-feed listener's own connection.
    postgres_url: Option<String>,
    /// Bumped after each commit of this process that advanced the change sequence, so that
    /// this process's distributor looks at once instead of at its next poll.
    committed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    creates: tokio::sync::mpsc::Sender<batch::CreateJob>,
    /// Read connections unauthenticated callers (`Enroll` token checks) may use at once, so a
    /// flood of them queues here and leaves the rest of the read pool to SCIM and agents.
    unauthenticated_reads: std::sync::Arc<tokio::sync::Semaphore>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The default embedded database: `palisade.db` in the platform data directory.
pub fn default_database_url() -> Option<String> {
    let dirs = directories::ProjectDirs::from("dev", "Palisade", "palisade-control-plane")?;
    let path = dirs.data_dir().join("palisade.db");
    Some(format!("sqlite://{}", path.display()))
}

/// The directory of a SQLite database URL (where its generated secrets key lives); `None`
/// for PostgreSQL or a URL that names no file.
pub fn sqlite_data_dir(url: &str) -> Option<PathBuf> {
    let (backend, normalised) = normalise_url(url).ok()?;
    if backend != Backend::Sqlite {
        return None;
    }
    let file = sqlite_file(&normalised);
    Some(match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

impl Store {
    /// Connects to `url` (`sqlite://<path>` or `postgres://…`), creating the SQLite file and its
    /// directory if needed, and migrates the schema.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalise_url(url)?;
        let (write, read) = match backend {
            Backend::Sqlite => {
                // The database holds hashed credentials and encrypted API keys: owner-only
                // from the first byte (created 0600 before SQLite opens it), and the WAL and
                // shared-memory files SQLite creates beside it are tightened as well.
                let file = sqlite_file(&url);
                private_file(&file, true)?;
                let write = sqlite_pool(&url, 1).await?;
                let read = sqlite_pool(&url, 8).await?;
                for suffix in ["-wal", "-shm"] {
                    let mut side = file.clone().into_os_string();
                    side.push(suffix);
                    private_file(Path::new(&side), false)?;
                }
                (write, read)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(24)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        MIGRATOR.run(&write).await?;
        let (committed, _) = tokio::sync::watch::channel(0);
        let creates = batch::spawn_create_writer(write.clone(), backend);
        Ok(Store {
            write,
            read,
            backend,
            postgres_url: (backend == Backend::Postgres).then(|| url.clone()),
            committed: std::sync::Arc::new(committed),
            creates,
            unauthenticated_reads: std::sync::Arc::new(tokio::sync::Semaphore::new(2)),
        })
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken
    /// (waiting up to busy_timeout) before the first read, so a transaction that reads then
    /// writes cannot fail with "database is locked" when another process (the CLI) wrote between.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        begin_write(&self.write, self.backend).await
    }

    /// Waits for one of the few read connections unauthenticated callers may use at once
    /// (token, code and grant look-ups); hold the permit for the query.
    pub(crate) async fn unauthenticated_read(
        &self,
    ) -> StoreResult<tokio::sync::SemaphorePermit<'_>> {
        self.unauthenticated_reads
            .acquire()
            .await
            .map_err(|_| StoreError::Failed("the store is closing".into()))
    }

    /// Watches this process's commits that advanced the change sequence (the value only counts
    /// them; the change sequence in the store says what changed).
    pub fn watch_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Says, after a commit that advanced the change sequence, that there is something to see.
    pub(crate) fn committed_change(&self) {
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Answers whether the database is reachable (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

async fn sqlite_pool(url: &str, max: u32) -> StoreResult<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL: readers never block the writer. synchronous=NORMAL in WAL mode keeps every
                // committed transaction across a process crash (kill -9); only an OS crash or power
                // loss can drop the last commits. busy_timeout covers the migrator and CLI processes.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// Recognises the engine and, for SQLite, makes sure the file can be created.
fn normalise_url(url: &str) -> StoreResult<(Backend, String)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(StoreError::InvalidUrl(
            "expected sqlite://<path> or postgres://user@host:port/database".to_string(),
        ));
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::InvalidUrl(
            "an in-memory SQLite database would lose everything at exit; name a file".to_string(),
        ));
    }
    let file = PathBuf::from_str(path).map_err(|_| StoreError::InvalidUrl(url.to_string()))?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| {
            StoreError::InvalidUrl(format!(
                "cannot create database directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let mut params: Vec<String> = query
        .map(|q| q.split('&').map(str::to_string).collect())
        .unwrap_or_default();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc".to_string());
    }
    Ok((
        Backend::Sqlite,
        format!("sqlite://{}?{}", path, params.join("&")),
    ))
}

/// The file of a normalised `sqlite://<path>?…` URL.
fn sqlite_file(url: &str) -> PathBuf {
    let rest = url.strip_prefix("sqlite://").unwrap_or(url);
    PathBuf::from(rest.split_once('?').map_or(rest, |(p, _)| p))
}

/// Makes `file` readable and writable by its owner only; creates it (empty, 0600) first when
/// `create` is set and it does not exist.
fn private_file(file: &Path, create: bool) -> StoreResult<()> {
    let fail = |e: std::io::Error| {
        StoreError::InvalidUrl(format!(
            "cannot restrict database file {}: {e}",
            file.display()
        ))
    };
    if create && !file.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(file) {
            Ok(_) => {}
            // Another process created it in between: tightened below.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
    }
    #[cfg(unix)]
    if file.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// See [`Store::begin_write`].
pub(crate) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// A fresh random identifier for a row (UUID v4, lower-case hex with dashes).
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with the given message.
pub(crate) fn conflict_on_unique(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(what.to_string());
        }
    }
    StoreError::Database(e)
}

/// Builds `$1, $2, …` placeholders starting at `start`.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_urls() {
        assert_eq!(
            normalise_url("postgres://u@h/db").unwrap().0,
            Backend::Postgres
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.db");
        let (b, u) = normalise_url(&format!("sqlite://{}", p.display())).unwrap();
        assert_eq!(b, Backend::Sqlite);
        assert!(u.ends_with("?mode=rwc"));
        assert!(p.parent().unwrap().is_dir());
        assert!(normalise_url("mysql://x").is_err());
        assert!(normalise_url("sqlite::memory:").is_err());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sqlite_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let store = Store::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.ensure_default_org().await.unwrap();
        for name in ["p.db", "p.db-wal", "p.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name} has mode {mode:o}");
        }
        store.close().await;
    }

    /// Upgrading keeps what an existing organisation had: an org created before migration 0007
    /// (with no settings row, so the old default) keeps helper delivery; a new org gets proxy.
    #[tokio::test]
    async fn an_upgrade_keeps_helper_delivery_for_existing_orgs() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("u.db").display());
        sqlx::any::install_default_drivers();
        let (_, normalised) = normalise_url(&url).unwrap();
        let pool = sqlite_pool(&normalised, 1).await.unwrap();
        let before_0007 = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                MIGRATOR
                    .migrations
                    .iter()
                    .filter(|m| m.version < 7)
                    .cloned()
                    .collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before_0007.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO orgs (id, slug, created_at) VALUES ('old', 'old', 0)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let store = Store::connect(&url).await.unwrap();
        let old = store.org_settings("old").await.unwrap();
        assert_eq!(old.key_delivery, KeyDelivery::Helper);
        let helper_defaults = OrgSettings {
            key_delivery: KeyDelivery::Helper,
            ..OrgSettings::default()
        };
        assert_eq!(old.delivery(), helper_defaults.delivery());
        let new = store
            .create_org("new", &crate::domain::Actor::System)
            .await
            .unwrap();
        assert_eq!(
            store.org_settings(&new.id).await.unwrap().key_delivery,
            KeyDelivery::Proxy
        );
        store.close().await;
    }

    /// A bad enrollment token is refused while another transaction holds the (single) SQLite
    /// writer: the token check reads, it does not queue for the writer.
    #[tokio::test]
    async fn bad_enroll_token_does_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("e.db");
        let store = Store::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.ensure_default_org().await.unwrap();
        let held = store.begin_write().await.unwrap();
        let info = crate::domain::DeviceInfo {
            hostname: "h".into(),
            os: "linux".into(),
            agent_version: "t".into(),
        };
        for token in ["pal_enroll_unknown", "garbage"] {
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                store.enroll_with_token(
                    token,
                    "u@example.com",
                    &EnrollContext {
                        info: &info,
                        install_key: None,
                        source: "test",
                    },
                ),
            )
            .await
            .expect("a bad token waited for the writer")
            .unwrap();
            assert_eq!(r, Err(EnrollRefusal::InvalidToken));
        }
        drop(held);
        store.close().await;
    }
}
