//! The identity subcommands: `oidc set|show` (the organisation's IdP for sign-in), `invite
//! create|list|revoke` (per-user activation codes) and `device list`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;

use super::admin::parse_duration_secs;
use super::find_org;
use crate::admin::settings::{self, SignInChange};
use crate::admin::{AdminRole, Principal};
use crate::crypto::SecretsKey;
use crate::domain::{now_micros, to_rfc3339, Actor, OidcConfig};
use crate::store::{Store, StoreError};
use crate::web::signin::callback_url;

#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// Connect the organisation's identity provider (OpenID Connect) for sign-in.
    Set {
        #[arg(long)]
        org: String,
        /// The issuer URL, exactly as the provider's discovery document states it.
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// File holding the client secret (stored encrypted with the secrets key).
        #[arg(long)]
        client_secret_file: PathBuf,
        /// The claim that names the person: email, preferred_username, sub or upn.
        #[arg(long, default_value = "email")]
        claim: String,
        /// The provisioned attribute it is matched against: userName, email or externalId.
        #[arg(long = "match", default_value = "userName")]
        match_attribute: String,
    },
    /// Show the organisation's sign-in configuration and the redirect URL to register.
    Show {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Mint a one-time activation code for one person; the code is the last line printed.
    Create {
        #[arg(long)]
        org: String,
        /// The person's userName.
        #[arg(long)]
        user: String,
        /// Lifetime such as 7d, 12h (at most 30d).
        #[arg(long, default_value = "7d")]
        expires_in: String,
    },
    /// List activation codes (never the codes themselves).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke an unused activation code by id or prefix.
    Revoke {
        #[arg(long)]
        org: String,
        id_or_prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List the organisation's devices, verified or not.
    List {
        #[arg(long)]
        org: String,
        /// Only this person's devices.
        #[arg(long)]
        user: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// The public base URL used in printed links.
pub(super) fn base_url(public_url: Option<&str>) -> String {
    public_url
        .unwrap_or("http://127.0.0.1:8080")
        .trim_end_matches('/')
        .to_string()
}

pub async fn oidc(
    store: &Store,
    secrets: Option<SecretsKey>,
    public_url: Option<&str>,
    cmd: OidcCommand,
) -> anyhow::Result<()> {
    match cmd {
        OidcCommand::Set {
            org,
            issuer,
            client_id,
            client_secret_file,
            claim,
            match_attribute,
        } => {
            let o = find_org(store, &org).await?;
            let secret = std::fs::read_to_string(&client_secret_file).with_context(|| {
                format!(
                    "reading the client secret from {}",
                    client_secret_file.display()
                )
            })?;
            if secret.trim().is_empty() {
                bail!("{} is empty", client_secret_file.display());
            }
            let who = Principal {
                org_id: o.id.clone(),
                role: AdminRole::Owner,
                actor: Actor::operator(),
                user_id: None,
            };
            let change = SignInChange {
                issuer,
                client_id,
                client_secret: Some(secret),
                claim: Some(claim),
                match_attribute: Some(match_attribute),
            };
            settings::set_sign_in(store, secrets.as_ref(), &who, &change).await?;
            let config = store
                .oidc_config(&o.id)
                .await?
                .ok_or_else(|| anyhow!("the sign-in configuration was not stored"))?;
            print_oidc(&config, public_url);
        }
        OidcCommand::Show { org } => {
            let o = find_org(store, &org).await?;
            let config = store
                .oidc_config(&o.id)
                .await?
                .ok_or_else(|| anyhow!("sign-in is not configured for {org:?}; use `oidc set`"))?;
            print_oidc(&config, public_url);
        }
    }
    Ok(())
}

fn print_oidc(config: &OidcConfig, public_url: Option<&str>) {
    println!("issuer: {}", config.issuer);
    println!("client id: {}", config.client_id);
    println!("client secret: (stored encrypted)");
    println!(
        "person: the {} claim matched against {}",
        config.claim.as_str(),
        config.match_attribute.as_str()
    );
    println!("redirect URL to register at the identity provider:");
    println!("{}", callback_url(&base_url(public_url)));
}

pub async fn invite(
    store: &Store,
    mailer: Option<&crate::mail::Mailer>,
    grpc_url: &str,
    cmd: InviteCommand,
) -> anyhow::Result<()> {
    match cmd {
        InviteCommand::Create {
            org,
            user,
            expires_in,
        } => {
            let o = find_org(store, &org).await?;
            let secs = parse_duration_secs(&expires_in)?;
            if secs > 30 * 24 * 3600 {
                bail!("an activation code lives at most 30d");
            }
            let u = store
                .user_by_user_name(&o.id, &user)
                .await?
                .ok_or_else(|| anyhow!("no user {user:?} in organisation {org:?}"))?;
            let (invite, code) = store
                .create_invite(
                    &o.id,
                    &u.id,
                    now_micros() + secs.saturating_mul(1_000_000),
                    &Actor::operator(),
                )
                .await
                .map_err(|e| match e {
                    StoreError::InvalidReference(m) => anyhow!(m),
                    other => other.into(),
                })?;
            let command = format!("sudo palisade-agent enroll --server {grpc_url} --code {code}");
            let expires = to_rfc3339(invite.expires_at);
            println!(
                "activation code for {} (single use, expires {expires}); on their computer run:",
                invite.user_name
            );
            println!("  {command}");
            if let Some(mailer) = mailer {
                match store.primary_email_of(&u.id).await? {
                    Some(to) => {
                        let sent = mailer
                            .send(&crate::mail::Invitation {
                                to: &to,
                                user_name: &invite.user_name,
                                code: &code,
                                command: &command,
                                expires: &expires,
                            })
                            .await;
                        match sent {
                            Ok(()) => println!("invitation emailed to {to}"),
                            // The code is still valid and printed below: say so, don't fail.
                            Err(e) => eprintln!("warning: the invitation email was not sent: {e}"),
                        }
                    }
                    None => eprintln!(
                        "warning: {} has no email address; the invitation was not emailed",
                        invite.user_name
                    ),
                }
            }
            println!("{code}");
        }
        InviteCommand::List { org } => {
            let o = find_org(store, &org).await?;
            println!(
                "{:<36}  {:<14}  {:<24}  {:<24}  {:<10}  USER",
                "ID", "PREFIX", "CREATED", "EXPIRES", "STATE"
            );
            let now = now_micros();
            for i in store.list_invites(&o.id).await? {
                let state = if i.revoked_at.is_some() {
                    "revoked"
                } else if i.used_at.is_some() {
                    "used"
                } else if i.expires_at <= now {
                    "expired"
                } else {
                    "open"
                };
                println!(
                    "{:<36}  {:<14}  {:<24}  {:<24}  {:<10}  {}",
                    i.id,
                    i.prefix,
                    to_rfc3339(i.created_at),
                    to_rfc3339(i.expires_at),
                    state,
                    i.user_name
                );
            }
        }
        InviteCommand::Revoke { org, id_or_prefix } => {
            let o = find_org(store, &org).await?;
            let i = store
                .revoke_invite(&o.id, &id_or_prefix, &Actor::operator())
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => anyhow!("no activation code {id_or_prefix:?}"),
                    StoreError::Ambiguous(m) => anyhow!(m),
                    other => other.into(),
                })?;
            println!("revoked {} ({}, {})", i.id, i.prefix, i.user_name);
        }
    }
    Ok(())
}

pub async fn device(store: &Store, cmd: DeviceCommand) -> anyhow::Result<()> {
    let DeviceCommand::List { org, user, json } = cmd;
    let o = find_org(store, &org).await?;
    let mut devices = store.list_devices(&o.id).await?;
    if let Some(u) = &user {
        devices.retain(|d| d.user_name.eq_ignore_ascii_case(u));
    }
    if !json {
        println!(
            "{:<36}  {:<24}  {:<10}  {:<15}  {:<20}  {:<9}  HOSTNAME",
            "ID", "USER", "IDENTITY", "METHOD", "LAST SEEN", "STATE"
        );
    }
    for d in devices {
        let identity = if d.verified { "verified" } else { "unverified" };
        let state = if d.revoked_at.is_some() {
            if d.wiped_at.is_some() {
                "wiped"
            } else {
                "revoked"
            }
        } else {
            "live"
        };
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "id": d.id, "userName": d.user_name, "identity": identity, "verified": d.verified,
                    "method": d.enroll_method, "hostname": d.hostname, "os": d.os,
                    "agentVersion": d.agent_version, "enrolledAt": to_rfc3339(d.enrolled_at),
                    "lastSeenAt": d.last_seen_at.map(to_rfc3339), "appliedVersion": d.applied_version,
                    "state": state, "revokedReason": d.revoked_reason,
                })
            );
        } else {
            println!(
                "{:<36}  {:<24}  {:<10}  {:<15}  {:<20}  {:<9}  {}",
                d.id,
                d.user_name,
                identity,
                if d.enroll_method.is_empty() {
                    "-"
                } else {
                    &d.enroll_method
                },
                d.last_seen_at
                    .map(to_rfc3339)
                    .unwrap_or_else(|| "-".to_string()),
                state,
                d.hostname
            );
        }
    }
    Ok(())
}
