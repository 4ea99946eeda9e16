//! The record of which secrets key sealed the database (see `cli::secrets`).

use sqlx::Row;

use super::{Store, StoreError, StoreResult};
use crate::crypto::SecretsKey;
use crate::domain::now_micros;

/// The plaintext sealed in the check row.
const CHECK_VALUE: &str = "palisade secrets key check v1";

impl Store {
    /// Whether a secrets key has been recorded for this database.
    pub async fn secrets_key_recorded(&self) -> StoreResult<bool> {
        Ok(
            sqlx::query("SELECT 1 AS one FROM secrets_key_check WHERE id = 1")
                .fetch_optional(&self.read)
                .await?
                .is_some(),
        )
    }

    /// Records `key` as the database's secrets key if none is recorded yet; otherwise
    /// `Err(Conflict)` unless it is that key.
    pub async fn bind_secrets_key(&self, key: &SecretsKey) -> StoreResult<()> {
        let existing = sqlx::query("SELECT sealed FROM secrets_key_check WHERE id = 1")
            .fetch_optional(&self.read)
            .await?;
        let sealed: String = match existing {
            Some(r) => r.try_get("sealed")?,
            None => {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO secrets_key_check (id, sealed, created_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(key.encrypt(CHECK_VALUE))
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
                // Another process may have recorded its key first: check against the row.
                let r = sqlx::query("SELECT sealed FROM secrets_key_check WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                r.try_get("sealed")?
            }
        };
        match key.decrypt(&sealed) {
            Ok(v) if v == CHECK_VALUE => Ok(()),
            _ => Err(StoreError::Conflict(
                "the secrets key is not the one this database was sealed with".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::crypto::SecretsKey;
    use crate::store::{Store, StoreError};

    #[tokio::test]
    async fn the_first_key_is_recorded_and_another_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}/k.db", dir.path().display());
        let store = Store::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let key = |t: String| SecretsKey::from_base64(&t).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (
            key(SecretsKey::generate_base64()),
            key(SecretsKey::generate_base64()),
        );
        store
            .bind_secrets_key(&a)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .bind_secrets_key(&a)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            store.bind_secrets_key(&b).await,
            Err(StoreError::Conflict(_))
        ));
    }
}
