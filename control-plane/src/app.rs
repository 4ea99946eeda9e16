//! The control-plane server: builds the HTTP application (health, readiness, SCIM), binds it
//! with or without TLS, and serves until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::distribution::Distributor;
use crate::domain::Actor;
use crate::grpc::{limits, AgentGrpc, GrpcLimits, StreamSettings};
use crate::scim::{self, error::ScimError, ScimSettings, ScimState, SCIM_PREFIX};
use crate::secrets_key;
use crate::store::Store;
use crate::web::{self, WebState};
use palisade_proto::v1::agent_service_server::AgentServiceServer;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database_url: String,
    pub http_addr: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve plaintext on a non-loopback address (a TLS-terminating proxy is in front).
    pub allow_plaintext: bool,
    pub scim: ScimSettings,
    /// Address of the gRPC listener for agents.
    pub grpc_addr: SocketAddr,
    /// Key that encrypts API keys at rest; without it API keys cannot be set or delivered.
    /// The secrets key's file (else `PALISADE_SECRETS_KEY`, else the generated key beside a
    /// SQLite database: see [`crate::secrets_key`]).
    pub secrets_key_file: Option<PathBuf>,
    pub stream: StreamSettings,
    /// The public base URL of the HTTP port (sign-in pages, the IdP callback); default: the
    /// bound address.
    pub public_url: Option<String>,
    /// What an unauthenticated peer of the gRPC port may hold.
    pub grpc_limits: GrpcLimits,
    /// How long a shutdown may take before remaining connections are dropped.
    pub drain: std::time::Duration,
}

/// Refuses configurations that would expose credentials in clear text.
pub fn check_transport(config: &ServeConfig) -> anyhow::Result<()> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(_), None) | (None, Some(_)) => {
            bail!("--tls-cert and --tls-key must be given together")
        }
        (Some(_), Some(_)) => Ok(()),
        (None, None) if config.allow_plaintext => Ok(()),
        (None, None) => {
            for (what, addr) in [("HTTP", config.http_addr), ("gRPC", config.grpc_addr)] {
                if !addr.ip().is_loopback() {
                    bail!(
                        "refusing to serve plaintext {what} on non-loopback address {addr}: bearer tokens and device credentials would cross the network in clear. \
                         Give --tls-cert and --tls-key, or --allow-plaintext if a TLS-terminating proxy is in front"
                    );
                }
            }
            Ok(())
        }
    }
}

/// The HTTP application: `/healthz`, `/readyz`, the SCIM API and the sign-in pages.
pub fn http_app(store: Store, settings: ScimSettings, web: WebState) -> Router {
    let max_body = settings.max_body_bytes;
    let state = ScimState::new(store.clone(), settings);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(store.clone()))
        .nest(SCIM_PREFIX, scim::router(state))
        .merge(crate::api::router(store.clone(), web.secrets.clone()))
        .merge(web::router(web))
        .fallback(|| async { ScimError::not_found("not found") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
}

async fn readyz(State(store): State<Store>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

/// Connects the store, makes sure the default organisation exists (minting and printing its
/// first SCIM token on a brand-new store), binds, prints the SCIM base URL and serves until
/// `shutdown` completes.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    check_transport(&config)?;
    let store = Store::connect(&config.database_url)
        .await
        .context("opening the database")?;
    let secrets = match secrets_key::load(
        config.secrets_key_file.as_deref(),
        &config.database_url,
        &store,
    )
    .await?
    {
        Some((key, source)) => {
            if let secrets_key::KeySource::Generated(path) = &source {
                println!(
                    "Secrets key generated at {} (0600): back it up with the database; without it the stored API keys and client secrets cannot be read.",
                    path.display()
                );
            }
            Some(key)
        }
        None => {
            tracing::warn!("no secrets key (--secrets-key-file or PALISADE_SECRETS_KEY): API keys and sign-in client secrets cannot be stored");
            None
        }
    };
    let (org, created) = store
        .ensure_default_org()
        .await
        .context("creating the default organisation")?;
    if created {
        let token = store
            .create_scim_token(
                &org.id,
                "initial token (printed at first start)",
                &Actor::System,
            )
            .await
            .context("minting the first SCIM token")?;
        println!(
            "SCIM bearer token for organisation \"{}\" (shown once): {}",
            org.slug, token.secret
        );
    }

    if created {
        let (token, enroll) = store
            .create_enroll_token(&org.id, None, &Actor::System)
            .await
            .context("minting the first enrollment token")?;
        println!(
            "Agent enrollment token for organisation \"{}\" (shown once): {}",
            org.slug, enroll
        );
        println!(
            "The enrollment token expires {}; replace it with `enroll-token rotate --org {}`.",
            token
                .expires_at
                .map(crate::domain::to_rfc3339)
                .unwrap_or_default(),
            org.slug
        );
    }
    // Users stored before sign-in existed get their primary email indexed for matching.
    match store
        .backfill_primary_emails(crate::scim::users::primary_email)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(users = n, "indexed primary emails for sign-in matching"),
        Err(e) => tracing::warn!(error = %e, "indexing primary emails failed"),
    }

    let listener = std::net::TcpListener::bind(config.http_addr)
        .with_context(|| format!("binding {}", config.http_addr))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let grpc_listener = std::net::TcpListener::bind(config.grpc_addr)
        .with_context(|| format!("binding {}", config.grpc_addr))?;
    grpc_listener.set_nonblocking(true)?;
    let grpc_local = grpc_listener.local_addr()?;
    let tls = config.tls_cert.is_some();
    let settings = ScimSettings {
        tls,
        ..config.scim.clone()
    };
    let scheme = if tls { "https" } else { "http" };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local}"));
    let web_state = WebState::new(store.clone(), secrets.clone(), &public_url)?;
    let app = http_app(store.clone(), settings, web_state);
    println!("gRPC agent endpoint: {scheme}://{grpc_local}");
    println!("Sign-in pages: {public_url}/enroll/device");
    println!("Admin console: {public_url}/console (first sign-in: `admin login-link`)");
    println!("Admin API: {scheme}://{local}/api/v1 (OpenAPI: /api/v1/openapi.json)");
    // Last: scripts (and the test harnesses) read up to this line and may then close stdout.
    println!("SCIM base URL: {scheme}://{local}{SCIM_PREFIX}");
    tracing::info!(%local, %grpc_local, tls, backend = ?store.backend(), "control plane listening");

    // One shutdown signal fans out to every listener and background task.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let distributor = Distributor::new(store.clone(), secrets);
    tokio::spawn(distributor.clone().run_input_changes(stop_rx.clone()));
    tokio::spawn(distributor.clone().run_catch_up(stop_rx.clone()));
    tokio::spawn(crate::admin::audit::run_retention(store.clone()));

    let lim = config.grpc_limits;
    let grpc_service =
        palisade_proto::v1::agent_service_server::AgentServiceServer::new(AgentGrpc::new(
            distributor,
            config.stream,
            public_url.clone(),
            stop_rx.clone(),
        ))
        .max_decoding_message_size(lim.max_message_bytes);
    // HTTP/2 bounds for peers that have not authenticated: few streams per connection (an
    // agent uses one; without a limit one connection held 20,000 pending Enrolls), small
    // header lists, and a GOAWAY for a peer that keeps making the server reset streams.
    let mut grpc_builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        .max_concurrent_streams(lim.max_streams_per_connection)
        .http2_max_header_list_size(lim.max_header_list_bytes)
        .http2_max_pending_accept_reset_streams(Some(64))
        .http2_max_local_error_reset_streams(Some(1024));
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let cert_pem =
            std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        grpc_builder = grpc_builder
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem)),
            )
            .context("configuring TLS for gRPC")?;
    }
    let grpc_incoming =
        limits::guarded_incoming(tokio::net::TcpListener::from_std(grpc_listener)?, lim);
    // `grpc.health.v1` for load balancers and Kubernetes probes: SERVING while this replica
    // takes agents, NOT_SERVING from the moment it begins to drain.
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AgentServiceServer<AgentGrpc>>().await;
    {
        let health = health.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            stop.await;
            health
                .set_not_serving::<AgentServiceServer<AgentGrpc>>()
                .await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        });
    }
    let grpc_task = tokio::spawn(
        grpc_builder
            .layer(limits::LimitsLayer::new(&lim))
            .add_service(health_service)
            .add_service(grpc_service)
            .serve_with_incoming_shutdown(grpc_incoming, stopped(stop_rx.clone())),
    );

    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let http_task: tokio::task::JoinHandle<std::io::Result<()>> =
        match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let tls_config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "loading TLS certificate {} and key {}",
                            cert.display(),
                            key.display()
                        )
                    })?;
                let handle = axum_server::Handle::new();
                let h = handle.clone();
                let stop = stopped(stop_rx.clone());
                let drain = config.drain;
                tokio::spawn(async move {
                    stop.await;
                    h.graceful_shutdown(Some(drain));
                });
                tokio::spawn(
                    axum_server::from_tcp_rustls(listener, tls_config)
                        .handle(handle)
                        .serve(service),
                )
            }
            _ => {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let stop = stopped(stop_rx.clone());
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(stop)
                        .await
                })
            }
        };

    // Serve until asked to stop (or a listener fails), then drain for at most `drain`: the
    // listeners stop accepting, every agent stream is told to reconnect (to another replica
    // behind the balancer), in-flight HTTP requests finish; what is left after that is cut.
    let mut grpc_task = grpc_task;
    let mut http_task = http_task;
    let failed = tokio::select! {
        _ = stopped(stop_rx.clone()) => None,
        r = &mut grpc_task => Some(("gRPC", joined(r))),
        r = &mut http_task => Some(("HTTP", joined(r))),
    };
    if let Some((which, result)) = failed {
        grpc_task.abort();
        http_task.abort();
        store.close().await;
        return match result {
            Ok(()) => Err(anyhow::anyhow!("the {which} server stopped unexpectedly")),
            Err(e) => Err(e.context(format!("the {which} server failed"))),
        };
    }
    tracing::info!(
        drain_seconds = config.drain.as_secs_f64(),
        "draining connections"
    );
    let drained = tokio::time::timeout(config.drain, async {
        if let Ok(Err(e)) = (&mut grpc_task).await {
            tracing::error!(error = %e, "gRPC server failed while draining");
        }
        if let Ok(Err(e)) = (&mut http_task).await {
            tracing::error!(error = %e, "HTTP server failed while draining");
        }
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => {
            tracing::warn!(
                drain_seconds = config.drain.as_secs_f64(),
                "drain time over; closing the connections still open"
            );
            grpc_task.abort();
            http_task.abort();
        }
    }
    // Pending writes of the background tasks get a moment; the pool is closed either way.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), store.close()).await;
    tracing::info!("stopped");
    Ok(())
}

/// A server task's outcome, whether it panicked or returned an error.
fn joined<E>(r: Result<Result<(), E>, tokio::task::JoinError>) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    Ok(r??)
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
