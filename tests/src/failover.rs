//! A TCP load balancer for tests, as a fleet's balancer in front of control-plane replicas
//! behaves: each new connection goes to the first backend that accepts it, so when one
//! replica stops, agents that reconnect land on the next.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};

/// A running balancer; dropping it stops accepting (open connections run on).
pub struct Failover {
    pub addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Failover {
    /// Listens on a free loopback port and forwards to `backends` (`host:port`), in order.
    pub async fn start(backends: Vec<String>) -> Result<Failover> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backends = Arc::new(backends);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let backends = backends.clone();
                tokio::spawn(async move {
                    for backend in backends.iter() {
                        if let Ok(mut server) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                });
            }
        });
        Ok(Failover { addr, accept })
    }

    /// `http://127.0.0.1:<port>`, for an agent's `--server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Failover {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
