//! Who is on the other end of a loopback TCP connection. On Linux the kernel lists every TCP
//! socket with its owner's uid in `/proc/net/tcp`: the relay finds the client's socket (its
//! local address is the connection's peer address, its remote address the relay's) and so
//! refuses a local token presented by another account's process. Elsewhere no such table is
//! readable without privileges the agent does not ask for; the token's secrecy (a file only
//! its developer can read) is the binding there.

use std::net::SocketAddr;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A client connection as the relay knows it: its address and, on Linux, the uid owning its
/// socket — looked up once when it is accepted (a `/proc/net/tcp` read costs about a
/// millisecond; Claude Code keeps its connections, so requests pay nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The uid owning the client socket, when it can be known.
    pub uid: Option<u32>,
}

/// Connections the relay keeps open at once; more wait to be accepted, so that no local
/// process can make the root agent run out of descriptors.
const MAX_CONNECTIONS: usize = 256;

/// The relay's listener: a loopback TCP listener whose accepted connections carry [`Peer`].
/// On Linux a connection from an account that is neither the developer's nor root's is closed
/// at once, before it can hold anything.
pub struct PeerListener {
    listener: TcpListener,
    relay: super::Relay,
    slots: Arc<Semaphore>,
}

impl PeerListener {
    /// Wraps a bound listener of `relay`.
    pub fn new(listener: TcpListener, relay: super::Relay) -> PeerListener {
        PeerListener {
            listener,
            relay,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }
}

/// An accepted connection, holding its slot until it closes.
pub struct PeerStream {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl PeerListener {
    /// The next connection allowed in, with who is on the other end (waits for a free slot).
    pub async fn accept(&mut self) -> (PeerStream, Peer) {
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                // The semaphore is never closed; wait rather than spin if it were.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            match self.listener.accept().await {
                Ok((io, addr)) => {
                    let uid = io
                        .local_addr()
                        .ok()
                        .and_then(|local| owner_uid(addr, local));
                    if let (Some(developer), Some(owner)) = (self.relay.developer_uid(), uid) {
                        if owner != developer && owner != 0 {
                            tracing::warn!(
                                owner,
                                developer,
                                "relay: closed a connection from another account"
                            );
                            continue;
                        }
                    }
                    return (io_with(io, slot), Peer { addr, uid });
                }
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::debug!(error = %e, "relay: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

fn io_with(io: TcpStream, slot: OwnedSemaphorePermit) -> PeerStream {
    PeerStream { io, _slot: slot }
}

/// The uid owning the client socket of the connection `peer` → `local`, when it can be known.
#[cfg(target_os = "linux")]
pub fn owner_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let table = match peer {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    find_owner(&text, peer, local)
}

/// Not available on this platform.
#[cfg(not(target_os = "linux"))]
pub fn owner_uid(_peer: SocketAddr, _local: SocketAddr) -> Option<u32> {
    None
}

/// The uid in a `/proc/net/tcp`-style table of the socket whose local address is `peer` and
/// remote address is `local`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn find_owner(table: &str, peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let want_local = encode(peer)?;
    let want_remote = encode(local)?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid ...
        let (l, r, uid) = (cols.get(1)?, cols.get(2)?, cols.get(7)?);
        (l.eq_ignore_ascii_case(&want_local) && r.eq_ignore_ascii_case(&want_remote))
            .then(|| uid.parse().ok())
            .flatten()
    })
}

/// An address as the kernel prints it: each 32-bit word of the address in host (little-endian)
/// byte order, then the port.
fn encode(addr: SocketAddr) -> Option<String> {
    let words: Vec<u8> = match addr {
        SocketAddr::V4(a) => a.ip().octets().to_vec(),
        SocketAddr::V6(a) => a.ip().octets().to_vec(),
    };
    if !cfg!(target_endian = "little") {
        return None;
    }
    let mut hex = String::new();
    for word in words.chunks(4) {
        for b in word.iter().rev() {
            hex.push_str(&format!("{b:02X}"));
        }
    }
    Some(format!("{hex}:{:04X}", addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_client_socket_in_the_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:B86B 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 123 1 0 20 4 30 10 -1\n\
   1: 0100007F:1F90 0100007F:B86B 01 00000000:00000000 00:00000000 00000000     0        0 124 1 0 20 4 30 10 -1\n";
        let peer: SocketAddr = "127.0.0.1:47211".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(find_owner(table, peer, local), Some(1000));
        assert_eq!(find_owner(table, local, peer), Some(0));
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(find_owner(table, other, local), None);
    }

    /// A real connection on this machine: the client socket is ours.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_real_loopback_connection_belongs_to_this_process_uid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        use std::os::unix::fs::MetadataExt;
        let me = tempfile::tempfile().unwrap().metadata().unwrap().uid();
        assert_eq!(owner_uid(peer, local), Some(me));
    }
}
