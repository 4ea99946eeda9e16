//! The control-plane server: builds the HTTP application (health, readiness, SCIM), binds it
//! with or without TLS, and serves until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::domain::Actor;
use crate::scim::{self, error::ScimError, ScimSettings, ScimState, SCIM_PREFIX};
use crate::store::Store;

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
}

/// Refuses configurations that would expose credentials in clear text.
pub fn check_transport(config: &ServeConfig) -> anyhow::Result<()> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(_), None) | (None, Some(_)) => bail!("--tls-cert and --tls-key must be given together"),
        (Some(_), Some(_)) => Ok(()),
        (None, None) if config.http_addr.ip().is_loopback() || config.allow_plaintext => Ok(()),
        (None, None) => bail!(
            "refusing to serve plaintext HTTP on non-loopback address {}: SCIM bearer tokens would cross the network in clear. \
             Give --tls-cert and --tls-key, or --allow-plaintext if a TLS-terminating proxy is in front",
            config.http_addr
        ),
    }
}

/// The HTTP application: `/healthz`, `/readyz` and the SCIM API.
pub fn http_app(store: Store, settings: ScimSettings) -> Router {
    let max_body = settings.max_body_bytes;
    let state = ScimState::new(store.clone(), settings);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(store))
        .nest(SCIM_PREFIX, scim::router(state))
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
    let (org, created) = store
        .ensure_default_org()
        .await
        .context("creating the default organisation")?;
    if created {
        let token = store
            .create_scim_token(
                &org.id,
                "initial token (printed at first start)",
                &Actor::Cli,
            )
            .await
            .context("minting the first SCIM token")?;
        println!(
            "SCIM bearer token for organisation \"{}\" (shown once): {}",
            org.slug, token.secret
        );
    }

    let listener = std::net::TcpListener::bind(config.http_addr)
        .with_context(|| format!("binding {}", config.http_addr))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let tls = config.tls_cert.is_some();
    let settings = ScimSettings {
        tls,
        ..config.scim.clone()
    };
    let app = http_app(store.clone(), settings);
    let scheme = if tls { "https" } else { "http" };
    println!("SCIM base URL: {scheme}://{local}{SCIM_PREFIX}");
    tracing::info!(%local, tls, backend = ?store.backend(), "control plane listening");

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
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, tls_config)
                .handle(handle)
                .serve(app.into_make_service())
                .await?;
        }
        _ => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    store.close().await;
    Ok(())
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

/// Shared handle type for callers that embed the server (tests, benchmarks).
pub type SharedStore = Arc<Store>;
