//! A deliberately rude HTTP/2 client for abuse tests: it writes frames by hand, so it can open
//! more streams than the server allows (a real client library would queue them) and leave
//! their bodies unsent. It also reads a process's resident memory from `/proc`.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
/// RST_STREAM / GOAWAY error code for a stream the server would not take.
pub const REFUSED_STREAM: u32 = 0x7;

/// What the server did to a flood of streams.
#[derive(Debug, Default, Clone)]
pub struct FloodOutcome {
    /// Streams the client managed to write HEADERS for.
    pub opened: u64,
    /// RST_STREAM frames, by any error code.
    pub resets: u64,
    /// RST_STREAM frames with REFUSED_STREAM.
    pub refused: u64,
    /// Response HEADERS frames (answers, e.g. a deadline or a refusal in gRPC terms).
    pub responses: u64,
    /// The error code of a GOAWAY, if the server sent one.
    pub goaway: Option<u32>,
    /// The server closed the connection.
    pub closed: bool,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = Vec::with_capacity(9 + len);
    f.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK "literal header field without indexing, new name", no Huffman (lengths < 127).
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// The header block of a gRPC call to `path`, without its body.
pub fn grpc_headers(path: &str, authority: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.push(0x83); // :method POST (static table 3)
    b.push(0x86); // :scheme http (static table 6)
    literal(&mut b, ":path", path);
    literal(&mut b, ":authority", authority);
    literal(&mut b, "content-type", "application/grpc");
    literal(&mut b, "te", "trailers");
    b
}

/// A raw HTTP/2 connection after the preface and SETTINGS exchange.
pub struct RawH2 {
    write: tokio::net::tcp::OwnedWriteHalf,
    /// Frames the reader task saw: (type, flags, stream, payload).
    frames: mpsc::UnboundedReceiver<(u8, u8, u32, Vec<u8>)>,
    acks: mpsc::UnboundedReceiver<Vec<u8>>,
    next_stream: u32,
    pub outcome: FloodOutcome,
}

impl RawH2 {
    /// Connects to `addr` (`host:port`) and sends the client preface and an empty SETTINGS.
    pub async fn connect(addr: &str) -> Result<RawH2> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (mut read, mut write) = tcp.into_split();
        write.write_all(PREFACE).await?;
        write.write_all(&frame(SETTINGS, 0, 0, &[])).await?;
        let (tx, frames) = mpsc::unbounded_channel();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut head = [0u8; 9];
            loop {
                if read.read_exact(&mut head).await.is_err() {
                    return;
                }
                let len = (usize::from(head[0]) << 16)
                    | (usize::from(head[1]) << 8)
                    | usize::from(head[2]);
                let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let mut payload = vec![0u8; len];
                if read.read_exact(&mut payload).await.is_err() {
                    return;
                }
                // SETTINGS and PING need answers; the writer owner sends them.
                if head[3] == SETTINGS && head[4] & ACK == 0 {
                    let _ = ack_tx.send(frame(SETTINGS, ACK, 0, &[]));
                }
                if head[3] == PING && head[4] & ACK == 0 {
                    let _ = ack_tx.send(frame(PING, ACK, 0, &payload));
                }
                if tx.send((head[3], head[4], stream, payload)).is_err() {
                    return;
                }
            }
        });
        let mut conn = RawH2 {
            write,
            frames,
            acks,
            next_stream: 1,
            outcome: FloodOutcome::default(),
        };
        // Wait for the server's SETTINGS so its limits are in force, and acknowledge them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ack = tokio::time::timeout_at(deadline, conn.acks.recv())
                .await
                .map_err(|_| anyhow!("the server sent no SETTINGS"))?
                .ok_or_else(|| anyhow!("the server closed the connection during the handshake"))?;
            conn.write.write_all(&ack).await?;
            if ack.get(3) == Some(&SETTINGS) {
                break;
            }
        }
        Ok(conn)
    }

    /// Opens `n` streams with `headers` and no body. Stops early if the server closes.
    pub async fn open_streams(&mut self, n: u64, headers: &[u8]) -> Result<()> {
        let mut batch = Vec::new();
        let before = self.outcome.opened;
        for i in 0..n {
            batch.extend_from_slice(&frame(HEADERS, END_HEADERS, self.next_stream, headers));
            self.next_stream += 2;
            if batch.len() > 64 * 1024 || i + 1 == n {
                self.answer_control_frames().await;
                if self.write.write_all(&batch).await.is_err() {
                    self.outcome.closed = true;
                    return Ok(());
                }
                self.outcome.opened = before + i + 1;
                batch.clear();
                self.collect();
            }
        }
        Ok(())
    }

    async fn answer_control_frames(&mut self) {
        while let Ok(ack) = self.acks.try_recv() {
            if self.write.write_all(&ack).await.is_err() {
                self.outcome.closed = true;
            }
        }
    }

    /// Tallies the frames read so far.
    pub fn collect(&mut self) {
        loop {
            match self.frames.try_recv() {
                Ok((kind, _flags, _stream, payload)) => self.tally(kind, &payload),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.outcome.closed = true;
                    return;
                }
            }
        }
    }

    fn tally(&mut self, kind: u8, payload: &[u8]) {
        let code = |at: usize| {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match kind {
            RST_STREAM => {
                self.outcome.resets += 1;
                if code(0) == Some(REFUSED_STREAM) {
                    self.outcome.refused += 1;
                }
            }
            GOAWAY => self.outcome.goaway = code(4).or(Some(0)),
            HEADERS => self.outcome.responses += 1,
            _ => {}
        }
    }

    /// Reads frames for `d` (answering pings), then tallies them.
    pub async fn settle(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            self.answer_control_frames().await;
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some((kind, _flags, _stream, payload))) => self.tally(kind, &payload),
                Ok(None) => {
                    self.outcome.closed = true;
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Resident memory of the server around a stream flood.
#[derive(Debug, Clone)]
pub struct FloodReport {
    pub baseline_kib: u64,
    /// While the flooding connection is still open.
    pub peak_kib: u64,
    /// A few seconds after the flooding connection closed.
    pub after_kib: u64,
    pub outcome: FloodOutcome,
}

/// Opens `streams` `Enroll` streams without bodies on one connection to `grpc_addr`
/// (`host:port`) and samples the resident memory of `pid` before, during and after.
pub async fn enroll_stream_flood(grpc_addr: &str, pid: u32, streams: u64) -> Result<FloodReport> {
    let baseline_kib = rss_kib(pid)?;
    let mut conn = RawH2::connect(grpc_addr).await?;
    let headers = grpc_headers("/palisade.v1.AgentService/Enroll", grpc_addr);
    conn.open_streams(streams, &headers).await?;
    conn.settle(Duration::from_secs(2)).await;
    let peak_kib = rss_kib(pid)?;
    let outcome = conn.outcome.clone();
    drop(conn);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_kib = rss_kib(pid)?;
    Ok(FloodReport {
        baseline_kib,
        peak_kib,
        after_kib,
        outcome,
    })
}
