//! What any peer of the agents' gRPC port may hold before it has authenticated: a global
//! connection limit, a deadline for a connection's first request (covers the TLS and HTTP/2
//! handshakes), a deadline on `Enroll`, and a per-source-address `Enroll` rate limit. HTTP/2
//! stream, header and message limits are set on the server builder in `app.rs` from the same
//! [`GrpcLimits`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::Connected;
use tonic::Status;

/// The methods an unauthenticated peer can make the server work for: each gets the deadline;
/// the first two, which may write, also the per-address rate (polling a sign-in only reads, and
/// agents behind one NAT poll every few seconds).
pub const ENROLL_PATH: &str = "/palisade.v1.AgentService/Enroll";
pub const START_SIGN_IN_PATH: &str = "/palisade.v1.AgentService/StartSignIn";
pub const POLL_SIGN_IN_PATH: &str = "/palisade.v1.AgentService/PollSignIn";

/// Limits of the gRPC listener.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimits {
    /// Connections held at once, all peers together; the next one is closed at accept.
    pub max_connections: usize,
    /// HTTP/2 streams one connection may have open (an agent uses one).
    pub max_streams_per_connection: u32,
    /// Time a new connection has to send its first request (TLS and HTTP/2 handshakes included).
    pub handshake_timeout: Duration,
    /// Time an `Enroll` may take, from its headers to its answer (a body that never arrives).
    pub enroll_timeout: Duration,
    /// Largest message an agent may send.
    pub max_message_bytes: usize,
    /// Largest HTTP/2 header list a peer may send.
    pub max_header_list_bytes: u32,
    /// Sustained `Enroll` calls per second per source address (IPv6: per /64); 0 disables.
    pub enroll_rate_per_second: u32,
    /// `Enroll` calls a source address may burst above the sustained rate.
    pub enroll_rate_burst: u32,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        GrpcLimits {
            max_connections: 60_000,
            max_streams_per_connection: 64,
            handshake_timeout: Duration::from_secs(10),
            enroll_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            max_header_list_bytes: 16 * 1024,
            enroll_rate_per_second: 10,
            enroll_rate_burst: 100,
        }
    }
}

/// What the server knows of a connection; every request of it carries a copy.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// Set by the first request; disarms the handshake deadline.
    first_request: Arc<AtomicBool>,
}

/// An accepted connection: it holds one of the global connection permits until dropped, and
/// fails its reads once the handshake deadline passes without a request.
pub struct GuardedConn {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    deadline: Option<Pin<Box<Sleep>>>,
    info: PeerInfo,
}

impl Connected for GuardedConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for GuardedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = this.deadline.as_mut() {
            if this.info.first_request.load(Ordering::Relaxed) {
                this.deadline = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                // Failing the read makes hyper (or the TLS acceptor) drop the connection.
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request within the handshake timeout",
                )));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Accepts connections while fewer than `limits.max_connections` are open; beyond that each
/// new connection is closed at once (the kernel's backlog is not left to fill).
pub fn guarded_incoming(
    listener: TcpListener,
    limits: GrpcLimits,
) -> impl futures::Stream<Item = std::io::Result<GuardedConn>> + Send + 'static {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    futures::stream::unfold(
        (listener, permits, 0u64),
        move |(listener, permits, mut refused)| async move {
            loop {
                let (io, remote) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a gRPC connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(%remote, refused, "gRPC connection limit reached; closing new connections");
                    }
                    drop(io);
                    continue;
                };
                let _ = io.set_nodelay(true);
                let conn = GuardedConn {
                    io,
                    _permit: permit,
                    deadline: Some(Box::pin(tokio::time::sleep(limits.handshake_timeout))),
                    info: PeerInfo {
                        remote: Some(remote),
                        first_request: Arc::new(AtomicBool::new(false)),
                    },
                };
                return Some((Ok(conn), (listener, permits, refused)));
            }
        },
    )
}

/// Tower layer: marks connections as past their handshake, and bounds `Enroll` (rate per
/// source address, deadline). Matching the method path keeps this out of the handler.
#[derive(Clone)]
pub struct LimitsLayer {
    enroll_limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    enroll_timeout: Duration,
}

impl LimitsLayer {
    pub fn new(limits: &GrpcLimits) -> LimitsLayer {
        let enroll_limiter = NonZeroU32::new(limits.enroll_rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.enroll_rate_burst).unwrap_or(rate);
            let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ));
            // Forget addresses whose buckets are full again, so the map stays small. The
            // task ends with the last handle.
            let weak = Arc::downgrade(&limiter);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(l) = weak.upgrade() else { return };
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            });
            limiter
        });
        LimitsLayer {
            enroll_limiter,
            enroll_timeout: limits.enroll_timeout,
        }
    }
}

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = LimitsService<S>;
    fn layer(&self, inner: S) -> LimitsService<S> {
        LimitsService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LimitsService<S> {
    inner: S,
    layer: LimitsLayer,
}

/// The rate-limit key: the address, or its /64 for IPv6 (one host holds a whole /64).
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

impl<S, B> tower::Service<http::Request<B>> for LimitsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let peer = req.extensions().get::<PeerInfo>().cloned();
        if let Some(p) = &peer {
            p.first_request.store(true, Ordering::Relaxed);
        }
        // The inner service was made ready by poll_ready; keep that one, leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = req.uri().path();
        if path != ENROLL_PATH && path != START_SIGN_IN_PATH && path != POLL_SIGN_IN_PATH {
            return Box::pin(inner.call(req));
        }
        let rate_limited = path != POLL_SIGN_IN_PATH;
        if let (true, Some(limiter), Some(ip)) = (
            rate_limited,
            &self.layer.enroll_limiter,
            peer.as_ref().and_then(|p| p.remote).map(|a| a.ip()),
        ) {
            if limiter.check_key(&rate_key(ip)).is_err() {
                tracing::debug!(%ip, "enrollment rate limit exceeded");
                let status = Status::resource_exhausted(
                    "too many enrollment attempts from this address; retry later",
                );
                return Box::pin(futures::future::ready(Ok(status.into_http())));
            }
        }
        let deadline = self.layer.enroll_timeout;
        Box::pin(async move {
            match tokio::time::timeout(deadline, inner.call(req)).await {
                Ok(r) => r,
                Err(_) => Ok(Status::deadline_exceeded(
                    "the enrollment request did not complete in time",
                )
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(rate_key(a), rate_key(b));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(rate_key(m), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
