//! The command line: `serve`, `org`, `scim-token`, `policy`, `role-map`, `enroll-token`,
//! `api-key`, `oidc`, `invite`, `device` and `audit` subcommands, as operators script them.

mod admin;
mod api_tokens;
mod console;
mod identity;
mod policy_apply;
mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{self, ServeConfig};
use crate::domain::{to_rfc3339, Actor};
use crate::scim::ScimSettings;
use crate::store::{default_database_url, Store, StoreError};

#[derive(Debug, Parser)]
#[command(
    name = "palisade-control-plane",
    version,
    about = "Palisade control plane: SCIM 2.0 for your IdP, policy for Claude Code"
)]
pub struct Cli {
    /// Database URL: sqlite://<path> (created if missing) or postgres://user@host:port/db.
    /// Defaults to palisade.db in the platform data directory.
    #[arg(long, global = true, env = "PALISADE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Log format (logs go to standard error).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PALISADE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// File holding the base64 32-byte key that encrypts API keys at rest (alternatively
    /// PALISADE_SECRETS_KEY holds the key itself).
    #[arg(long, global = true, env = "PALISADE_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,

    /// The control plane's public HTTP base URL (sign-in pages and the IdP redirect URL), e.g.
    /// https://palisade.example.com. Default for `serve`: the bound HTTP address.
    #[arg(long, global = true, env = "PALISADE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// SMTP relay for invitation emails, e.g. smtp://relay:25, smtps://user:pass@relay:465 or
    /// smtp://relay:587?tls=required; without it `invite create` only prints the code.
    #[arg(long, global = true, env = "PALISADE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of invitation emails, e.g. "Palisade <it@example.com>".
    #[arg(long, global = true, env = "PALISADE_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// The agents' gRPC URL as laptops reach it, for printed enroll commands.
    #[arg(long, global = true, env = "PALISADE_PUBLIC_GRPC_URL")]
    pub public_grpc_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    Serve(ServeArgs),
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage SCIM bearer tokens.
    #[command(subcommand, name = "scim-token")]
    ScimToken(TokenCommand),
    /// The admin console: a one-time owner sign-in link.
    #[command(subcommand)]
    Admin(console::ConsoleCommand),
    /// Manage admin API tokens (the REST API under /api/v1).
    #[command(subcommand, name = "api-token")]
    ApiToken(api_tokens::ApiTokenCommand),
    /// Set and inspect policies.
    #[command(subcommand)]
    Policy(admin::PolicyCommand),
    /// Map IdP groups to Palisade roles.
    #[command(subcommand, name = "role-map")]
    RoleMap(admin::RoleMapCommand),
    /// Manage agent enrollment tokens.
    #[command(subcommand, name = "enroll-token")]
    EnrollToken(admin::EnrollTokenCommand),
    /// Store the Anthropic API key delivered to agents.
    #[command(subcommand, name = "api-key")]
    ApiKey(admin::ApiKeyCommand),
    /// Show the audit trail of an organisation, a user (with their devices) or a group.
    Audit(admin::AuditArgs),
    /// API usage through agents' relays, per person and group.
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    /// Sign-in with the organisation's identity provider (OpenID Connect).
    #[command(subcommand)]
    Oidc(identity::OidcCommand),
    /// Per-user activation codes for enrolling a device.
    #[command(subcommand)]
    Invite(identity::InviteCommand),
    /// Enrolled devices.
    #[command(subcommand)]
    Device(identity::DeviceCommand),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address for HTTP (SCIM, health). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", env = "PALISADE_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "PALISADE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "PALISADE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow plaintext on a non-loopback address (only behind a TLS-terminating proxy).
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Public SCIM base URL used in meta.location, e.g. https://palisade.example.com/scim/v2.
    #[arg(long, env = "PALISADE_PUBLIC_SCIM_URL")]
    pub public_scim_url: Option<String>,
    /// Sustained SCIM requests per second per token (0 disables the limit).
    #[arg(long, default_value_t = 200)]
    pub scim_rate_limit: u32,
    /// SCIM requests a token may burst above the sustained rate.
    #[arg(long, default_value_t = 400)]
    pub scim_rate_burst: u32,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most resources in one list response (filter.maxResults).
    #[arg(long, default_value_t = 1000)]
    pub max_results: i64,
    /// Address for the agents' gRPC policy stream. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:50051", env = "PALISADE_GRPC_ADDR")]
    pub grpc_addr: SocketAddr,
    /// Seconds between keepalives on an idle policy stream.
    #[arg(long, default_value_t = 30)]
    pub keepalive_seconds: u64,
    /// gRPC connections held at once (all peers); further ones are closed at accept.
    #[arg(long, default_value_t = 60_000)]
    pub grpc_max_connections: usize,
    /// HTTP/2 streams one gRPC connection may have open (an agent uses one).
    #[arg(long, default_value_t = 64)]
    pub grpc_max_streams: u32,
    /// Seconds a new gRPC connection has to make its first request (TLS and HTTP/2 handshakes).
    #[arg(long, default_value_t = 10)]
    pub grpc_handshake_timeout_seconds: u64,
    /// Seconds an Enroll call may take from its headers to its answer.
    #[arg(long, default_value_t = 10)]
    pub enroll_timeout_seconds: u64,
    /// Sustained Enroll calls per second per source address (IPv6: per /64); 0 disables.
    #[arg(long, default_value_t = 10)]
    pub enroll_rate_limit: u32,
    /// Enroll calls a source address may burst above the sustained rate.
    #[arg(long, default_value_t = 100)]
    pub enroll_rate_burst: u32,
    /// Seconds to drain on SIGTERM: agent streams are told to reconnect elsewhere at once,
    /// in-flight HTTP requests may finish; whatever is left after this is closed.
    #[arg(long, default_value_t = 10, env = "PALISADE_DRAIN_SECONDS")]
    pub drain_seconds: u64,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation.
    Create { slug: String },
    /// List organisations.
    List,
    /// Change an organisation's agent rules.
    Settings(admin::OrgSettingsArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a SCIM token; prints only the token.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        label: String,
    },
    /// List an organisation's tokens (never their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a token by id or prefix; the next request with it gets 401.
    Revoke {
        #[arg(long)]
        org: String,
        id_or_prefix: String,
    },
}

impl Cli {
    fn database_url(&self) -> anyhow::Result<String> {
        self.database_url
            .clone()
            .or_else(default_database_url)
            .ok_or_else(|| anyhow!("no --database-url given and no platform data directory found"))
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url()?;
    let key_file = cli.secrets_key_file.clone();
    // Only the commands that seal or open secrets look for the key (and, on SQLite, make one).
    let secrets = |store: Store| {
        let (key_file, url) = (key_file.clone(), url.clone());
        async move {
            let key = crate::secrets_key::load(key_file.as_deref(), &url, &store)
                .await?
                .map(|(k, _)| k);
            anyhow::Ok((store, key))
        }
    };
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig {
                database_url: url,
                http_addr: args.http_addr,
                tls_cert: args.tls_cert,
                tls_key: args.tls_key,
                allow_plaintext: args.allow_plaintext,
                scim: ScimSettings {
                    max_results: args.max_results.max(1),
                    max_body_bytes: args.max_body_bytes,
                    rate_per_second: args.scim_rate_limit,
                    rate_burst: args.scim_rate_burst,
                    public_base_url: args.public_scim_url,
                    tls: false,
                },
                grpc_addr: args.grpc_addr,
                secrets_key_file: cli.secrets_key_file.clone(),
                stream: crate::grpc::StreamSettings {
                    keepalive: std::time::Duration::from_secs(args.keepalive_seconds.max(1)),
                    ..Default::default()
                },
                public_url: cli.public_url.clone(),
                drain: std::time::Duration::from_secs(args.drain_seconds),
                grpc_limits: crate::grpc::GrpcLimits {
                    max_connections: args.grpc_max_connections.max(1),
                    max_streams_per_connection: args.grpc_max_streams.max(1),
                    handshake_timeout: std::time::Duration::from_secs(
                        args.grpc_handshake_timeout_seconds.max(1),
                    ),
                    enroll_timeout: std::time::Duration::from_secs(
                        args.enroll_timeout_seconds.max(1),
                    ),
                    enroll_rate_per_second: args.enroll_rate_limit,
                    enroll_rate_burst: args.enroll_rate_burst,
                    ..Default::default()
                },
            };
            app::serve(config, app::shutdown_signal()).await
        }
        Command::Org(cmd) => {
            let store = open(&url).await?;
            store.ensure_default_org().await?;
            match cmd {
                OrgCommand::Create { slug } => {
                    let org =
                        store
                            .create_org(&slug, &Actor::operator())
                            .await
                            .map_err(|e| match e {
                                StoreError::Conflict(m) | StoreError::InvalidReference(m) => {
                                    anyhow!(m)
                                }
                                other => other.into(),
                            })?;
                    println!("{}", org.slug);
                }
                OrgCommand::Settings(args) => admin::org_settings(&store, args).await?,
                OrgCommand::List => {
                    for org in store.list_orgs().await? {
                        println!("{}\t{}\t{}", org.slug, org.id, to_rfc3339(org.created_at));
                    }
                }
            }
            Ok(())
        }
        Command::Policy(cmd) => admin::policy(&open(&url).await?, cmd).await,
        Command::RoleMap(cmd) => admin::role_map(&open(&url).await?, cmd).await,
        Command::EnrollToken(cmd) => admin::enroll_token(&open(&url).await?, cmd).await,
        Command::Audit(args) => admin::audit(&open(&url).await?, args).await,
        Command::Usage(cmd) => usage::usage(&open(&url).await?, cmd).await,
        Command::Oidc(cmd) => {
            let store = open(&url).await?;
            let (store, key) = match cmd {
                identity::OidcCommand::Set { .. } => secrets(store).await?,
                identity::OidcCommand::Show { .. } => (store, None),
            };
            identity::oidc(&store, key, cli.public_url.as_deref(), cmd).await
        }
        Command::Invite(cmd) => {
            let grpc = cli
                .public_grpc_url
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:50051".to_string());
            let mailer = match (&cli.smtp_url, &cli.smtp_from) {
                (Some(u), Some(f)) => Some(crate::mail::Mailer::new(u, f)?),
                (Some(_), None) => {
                    anyhow::bail!("--smtp-url needs --smtp-from (the sender address)")
                }
                _ => None,
            };
            identity::invite(&open(&url).await?, mailer.as_ref(), &grpc, cmd).await
        }
        Command::Device(cmd) => identity::device(&open(&url).await?, cmd).await,
        Command::ApiKey(cmd) => {
            let (store, key) = secrets(open(&url).await?).await?;
            admin::api_key(&store, key, cmd).await
        }
        Command::Admin(cmd) => {
            console::admin(&open(&url).await?, cli.public_url.as_deref(), cmd).await
        }
        Command::ApiToken(cmd) => api_tokens::api_token(&open(&url).await?, cmd).await,
        Command::ScimToken(cmd) => {
            let store = open(&url).await?;
            store.ensure_default_org().await?;
            match cmd {
                TokenCommand::Create { org, label } => {
                    let org = find_org(&store, &org).await?;
                    let t = store
                        .create_scim_token(&org.id, &label, &Actor::operator())
                        .await
                        .map_err(|e| match e {
                            StoreError::InvalidReference(m) => anyhow!(m),
                            other => other.into(),
                        })?;
                    println!("{}", t.secret);
                }
                TokenCommand::List { org } => {
                    let org = find_org(&store, &org).await?;
                    println!(
                        "{:<36}  {:<16}  {:<24}  {:<24}  {:<24}  LABEL",
                        "ID", "PREFIX", "CREATED", "LAST USED", "REVOKED"
                    );
                    for t in store.list_scim_tokens(&org.id).await? {
                        let opt =
                            |t: Option<i64>| t.map(to_rfc3339).unwrap_or_else(|| "-".to_string());
                        println!(
                            "{:<36}  {:<16}  {:<24}  {:<24}  {:<24}  {}",
                            t.id,
                            t.prefix,
                            to_rfc3339(t.created_at),
                            opt(t.last_used_at),
                            opt(t.revoked_at),
                            t.label
                        );
                    }
                }
                TokenCommand::Revoke { org, id_or_prefix } => {
                    let org = find_org(&store, &org).await?;
                    let t = store
                        .revoke_scim_token(&org.id, &id_or_prefix, &Actor::operator())
                        .await
                        .map_err(|e| match e {
                            StoreError::NotFound => {
                                anyhow!("no token {id_or_prefix:?} in organisation {:?}", org.slug)
                            }
                            StoreError::Ambiguous(m) => anyhow!(m),
                            other => other.into(),
                        })?;
                    println!("revoked {} ({}, {})", t.id, t.prefix, t.label);
                }
            }
            Ok(())
        }
    }
}

async fn open(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url).await.context("opening the database")?;
    store.ensure_default_org().await?;
    Ok(store)
}

pub(crate) async fn find_org(store: &Store, slug: &str) -> anyhow::Result<crate::domain::Org> {
    store
        .org_by_slug(slug)
        .await?
        .ok_or_else(|| anyhow!("no organisation {slug:?} (create it with `org create {slug}`)"))
}
