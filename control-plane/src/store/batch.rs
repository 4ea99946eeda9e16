//! Group commit for user creation. An IdP's initial import sends many creates at once; they
//! queue here and each queued batch shares one transaction, so the commit (and on SQLite the
//! single writer's round trips) is paid once per batch rather than once per user. A duplicate
//! userName fails only its own create: the insert uses `ON CONFLICT DO NOTHING`, so the
//! transaction is never aborted by it.

use crate::domain::AuditAction;
use serde_json::json;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{audit, begin_write, Backend, StoreError, StoreResult};
use crate::domain::{Actor, User};

/// Largest number of creates committed together.
const MAX_BATCH: usize = 128;

/// One create waiting for its batch.
pub(crate) struct CreateJob {
    pub org_id: String,
    pub actor: Actor,
    pub user: User,
    pub user_name_key: String,
    pub primary_email_key: String,
    pub reply: oneshot::Sender<StoreResult<User>>,
}

/// Starts the batching writer; it stops when every sender is dropped.
/// A new user has no device and so no policy to recompute: creates record no change.
pub(crate) fn spawn_create_writer(write: AnyPool, backend: Backend) -> mpsc::Sender<CreateJob> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(run(write, backend, rx));
    tx
}

async fn run(write: AnyPool, backend: Backend, mut rx: mpsc::Receiver<CreateJob>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        match commit(&write, backend, &jobs).await {
            Ok(inserted) => {
                for (job, ok) in jobs.into_iter().zip(inserted) {
                    let result = if ok {
                        Ok(job.user)
                    } else {
                        Err(StoreError::Conflict(format!(
                            "userName {:?} is already in use",
                            job.user.user_name
                        )))
                    };
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, creates = jobs.len(), "a batch of user creates failed; none was applied");
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Failed(
                        "the database rejected the write".to_string(),
                    )));
                }
            }
        }
    }
}

/// Inserts every job's user and audit event in one transaction; says which were inserted.
async fn commit(write: &AnyPool, backend: Backend, jobs: &[CreateJob]) -> StoreResult<Vec<bool>> {
    let mut tx = begin_write(write, backend).await?;
    let mut inserted = Vec::with_capacity(jobs.len());
    for job in jobs {
        let u = &job.user;
        let done = sqlx::query(
            "INSERT INTO users (id, org_id, user_name, external_id, active, primary_role, attributes, version, created_at, updated_at, user_name_key, primary_email_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .bind(&u.id)
        .bind(&job.org_id)
        .bind(&u.user_name)
        .bind(&u.external_id)
        .bind(i64::from(u.active))
        .bind(&u.primary_role)
        .bind(u.attributes.to_string())
        .bind(u.version)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(&job.user_name_key)
        .bind(&job.primary_email_key)
        .execute(&mut *tx)
        .await?;
        let ok = done.rows_affected() == 1;
        if ok {
            audit::record(
                &mut tx,
                &job.org_id,
                &job.actor,
                AuditAction::UserCreate,
                "User",
                Some(&u.id),
                json!({"userName": u.user_name, "active": u.active, "externalId": u.external_id}),
            )
            .await?;
        }
        inserted.push(ok);
    }
    tx.commit().await?;
    Ok(inserted)
}
