//! Browser sessions: `tower-sessions` with its records kept in Palisade's own database (so
//! every replica behind a load balancer sees the same session), and the cookie rules —
//! `HttpOnly`, `SameSite=Lax`, `Secure` whenever the public URL is HTTPS, expiry on inactivity.

use async_trait::async_trait;
use time::Duration;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::store::Store;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "palisade_session";
/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::minutes(30);

/// [`SessionStore`] over the control plane's store (`web_sessions`).
#[derive(Clone, Debug)]
pub struct DbSessionStore {
    store: Store,
}

impl DbSessionStore {
    pub fn new(store: Store) -> DbSessionStore {
        DbSessionStore { store }
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A colliding 128-bit id is astronomically unlikely; still, never overwrite one.
        while self
            .store
            .load_web_session(&record.id.to_string())
            .await
            .map_err(backend)?
            .is_some()
        {
            record.id = Id::default();
        }
        self.save(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(backend)?;
        let expires = record.expiry_date.unix_timestamp_nanos() / 1000;
        let expires = i64::try_from(expires).map_err(backend)?;
        self.store
            .save_web_session(&record.id.to_string(), &data, expires)
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(data) = self
            .store
            .load_web_session(&id.to_string())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data = serde_json::from_str(&data).map_err(backend)?;
        // The row's own expiry is enforced by the query; the record's is refreshed by the layer.
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date: time::OffsetDateTime::now_utc() + IDLE_TIMEOUT,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .delete_web_session(&id.to_string())
            .await
            .map_err(backend)
    }
}

/// The session layer for the control plane's pages. `secure`: the public URL is HTTPS.
pub fn layer(store: Store, secure: bool) -> SessionManagerLayer<DbSessionStore> {
    SessionManagerLayer::new(DbSessionStore::new(store))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(IDLE_TIMEOUT))
}
