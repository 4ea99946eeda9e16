//! Organisations: creation, lookup, and the `default` organisation that always exists.

use crate::domain::AuditAction;
use serde_json::json;
use sqlx::Row;

use super::{audit, conflict_on_unique, new_id, Store, StoreError, StoreResult};
use crate::domain::{now_micros, validate_org_slug, Actor, Org, DEFAULT_ORG_SLUG};

impl Store {
    /// Creates an organisation; `Conflict` if the slug is taken.
    pub async fn create_org(&self, slug: &str, actor: &Actor) -> StoreResult<Org> {
        validate_org_slug(slug).map_err(StoreError::InvalidReference)?;
        let org = Org {
            id: new_id(),
            slug: slug.to_string(),
            created_at: now_micros(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO orgs (id, slug, created_at) VALUES ($1, $2, $3)")
            .bind(&org.id)
            .bind(&org.slug)
            .bind(org.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, &format!("organisation {slug:?} already exists")))?;
        audit::record(
            &mut tx,
            &org.id,
            actor,
            AuditAction::OrgCreate,
            "Org",
            Some(&org.id),
            json!({"slug": slug}),
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Makes sure the `default` organisation exists; returns it and whether it was just created.
    pub async fn ensure_default_org(&self) -> StoreResult<(Org, bool)> {
        if let Some(org) = self.org_by_slug(DEFAULT_ORG_SLUG).await? {
            return Ok((org, false));
        }
        match self.create_org(DEFAULT_ORG_SLUG, &Actor::System).await {
            Ok(org) => Ok((org, true)),
            // Another process (a second replica, a CLI call) created it first.
            Err(StoreError::Conflict(_)) => {
                let org = self
                    .org_by_slug(DEFAULT_ORG_SLUG)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok((org, false))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn org_by_slug(&self, slug: &str) -> StoreResult<Option<Org>> {
        let row = sqlx::query("SELECT id, slug, created_at FROM orgs WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            Ok(Org {
                id: r.try_get("id")?,
                slug: r.try_get("slug")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// The slug of the organisation with this id.
    pub async fn org_slug(&self, org_id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query("SELECT slug FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&self.read)
            .await?
            .map(|r| r.try_get("slug"))
            .transpose()?)
    }

    /// The organisation with this slug, or `NotFound`.
    pub async fn require_org(&self, slug: &str) -> StoreResult<Org> {
        self.org_by_slug(slug).await?.ok_or(StoreError::NotFound)
    }

    pub async fn list_orgs(&self) -> StoreResult<Vec<Org>> {
        let rows = sqlx::query("SELECT id, slug, created_at FROM orgs ORDER BY slug")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Org {
                    id: r.try_get("id")?,
                    slug: r.try_get("slug")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
