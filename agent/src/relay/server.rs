//! Serving the relay's connections with hyper's server, HTTP/1.1 only (what Claude Code speaks
//! to a plain `http://` base URL; sniffing for cleartext HTTP/2 would wait for a first byte with
//! no timeout), with the limits a root process listening to every local account needs: a connection that sends no request head within [`HEAD_TIMEOUT`] — a slow one, or a
//! kept-alive one left idle — is closed, so no local process can hold the relay's connection
//! slots by opening connections and saying nothing.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

use super::peer::PeerListener;

/// How long a connection may take to send a request head, and how long a kept-alive one may sit
/// idle between requests. Claude Code opens a new connection when the old one was closed.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on every connection `listener` lets in, until the runtime stops.
pub async fn serve(mut listener: PeerListener, app: axum::Router) -> Infallible {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(true);
    loop {
        let (io, peer) = listener.accept().await;
        // The handler learns who is on the other end as axum's `ConnectInfo`.
        let service = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let builder = builder.clone();
        tokio::spawn(async move {
            let served = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "relay: a connection ended with an error");
            }
        });
    }
}
