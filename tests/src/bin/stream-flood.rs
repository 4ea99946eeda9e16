//! `stream-flood`: one unauthenticated connection opens many `Enroll` streams and never sends
//! their bodies; prints the server's resident memory before, during and after, and what the
//! server did with the streams.
//!
//! Run: `cargo build -p palisade-control-plane -p palisade-tests --bins &&
//!       target/debug/stream-flood --streams 20000` (`PALISADE_CONTROL_PLANE_BIN` picks the
//! server binary; see BENCHMARKS.md).

use anyhow::{anyhow, bail, Result};
use palisade_tests::{h2raw, Backend, ControlPlane};

#[tokio::main]
async fn main() -> Result<()> {
    let mut streams: Vec<u64> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--streams" => streams.push(
                it.next()
                    .ok_or_else(|| anyhow!("--streams needs a value"))?
                    .parse()?,
            ),
            other => bail!("unknown flag {other}; flags: --streams N (repeatable)"),
        }
    }
    if streams.is_empty() {
        streams = vec![20_000, 60_000];
    }
    println!("| streams on one connection | refused (RST_STREAM) | GOAWAY | RSS before | during | 3 s after close |");
    println!("|---|---|---|---|---|---|");
    for n in streams {
        // A fresh server per size, so one flood's leftovers do not hide the next one's.
        let cp = ControlPlane::start(Backend::Sqlite, &[]).await?;
        let pid = cp.pid().ok_or_else(|| anyhow!("no server process"))?;
        let r = h2raw::enroll_stream_flood(&cp.grpc_addr(), pid, n).await?;
        let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        println!(
            "| {n} (sent {}) | {} | {} | {} | {} | {} |",
            r.outcome.opened,
            r.outcome.refused,
            r.outcome
                .goaway
                .map_or_else(|| "no".to_string(), |c| format!("code {c}")),
            mib(r.baseline_kib),
            mib(r.peak_kib),
            mib(r.after_kib)
        );
    }
    Ok(())
}
