//! `palisade-control-plane api-token create|list|revoke`: admin API tokens from the server's
//! shell (the first one, for automation set up before anyone signs in to the console).

use anyhow::anyhow;
use clap::Subcommand;

use super::find_org;
use crate::admin::AdminRole;
use crate::domain::{to_rfc3339, Actor};
use crate::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Mint an admin API token; prints it, shown once, as the last line.
    Create {
        #[arg(long)]
        org: String,
        /// What it acts as: admin, security or read-only.
        #[arg(long)]
        role: String,
        /// What it is for (shown in lists and as the actor in the audit trail).
        #[arg(long)]
        label: String,
    },
    /// List the organisation's tokens (never their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a token by id or prefix; its next request gets 401.
    Revoke {
        #[arg(long)]
        org: String,
        id_or_prefix: String,
    },
}

pub async fn api_token(store: &Store, cmd: ApiTokenCommand) -> anyhow::Result<()> {
    match cmd {
        ApiTokenCommand::Create { org, role, label } => {
            let org = find_org(store, &org).await?;
            let role = AdminRole::for_token(&role)
                .ok_or_else(|| anyhow!("--role {role:?}: expected admin, security or read-only"))?;
            let t = store
                .create_api_token(&org.id, &label, role.as_str(), &Actor::operator())
                .await
                .map_err(|e| match e {
                    StoreError::InvalidReference(m) => anyhow!(m),
                    other => other.into(),
                })?;
            eprintln!(
                "admin API token {} ({}, role {}) for organisation {:?}; shown once:",
                t.token.id, t.token.prefix, t.token.role, org.slug
            );
            println!("{}", t.secret);
        }
        ApiTokenCommand::List { org } => {
            let org = find_org(store, &org).await?;
            println!(
                "{:<36}  {:<18}  {:<10}  {:<24}  {:<24}  {:<24}  LABEL",
                "ID", "PREFIX", "ROLE", "CREATED", "LAST USED", "REVOKED"
            );
            let opt = |t: Option<i64>| t.map(to_rfc3339).unwrap_or_else(|| "-".to_string());
            for t in store.list_api_tokens(&org.id).await? {
                println!(
                    "{:<36}  {:<18}  {:<10}  {:<24}  {:<24}  {:<24}  {}",
                    t.id,
                    t.prefix,
                    t.role,
                    to_rfc3339(t.created_at),
                    opt(t.last_used_at),
                    opt(t.revoked_at),
                    t.label
                );
            }
        }
        ApiTokenCommand::Revoke { org, id_or_prefix } => {
            let org = find_org(store, &org).await?;
            let t = store
                .revoke_api_token(&org.id, &id_or_prefix, &Actor::operator())
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => {
                        anyhow!(
                            "no API token {id_or_prefix:?} in organisation {:?}",
                            org.slug
                        )
                    }
                    StoreError::Ambiguous(m) => anyhow!(m),
                    other => other.into(),
                })?;
            println!("revoked {} ({}, {})", t.id, t.prefix, t.label);
        }
    }
    Ok(())
}
