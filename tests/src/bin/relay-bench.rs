//! `relay-bench`: the cost of key custody. Starts the release control plane (SQLite) with
//! `key-delivery proxy`, a fake upstream Messages API in this process, and one real release
//! `palisade-agent`, then measures, against the same upstream directly and through the
//! agent's relay: the latency of a small non-streamed request, the time to the first byte of a
//! streamed answer, and the agent's resident memory while 20 streamed answers run at once.
//!
//! Run: `cargo build --release --workspace --bins && target/release/relay-bench
//! [--requests 500] [--streams 20]` (BENCHMARKS.md).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use palisade_tests::bench::{ms, pct, release_bin, rss_kib, ReleaseControlPlane};
use serde_json::{json, Value};
use tokio::process::Command;

const ORG_KEY: &str = "sk-ant-api03-bench-org-key";

/// A small non-streamed answer, or a streamed one: the first event at once, then `events`
/// more every `gap`.
async fn upstream(body: axum::body::Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req["stream"] != json!(true) {
        let answer = json!({"id": "m", "type": "message", "role": "assistant", "model": "bench",
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": 3}});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(answer.to_string()))
            .unwrap_or_default();
    }
    let events = req["bench_events"].as_u64().unwrap_or(5);
    let gap = Duration::from_millis(req["bench_gap_ms"].as_u64().unwrap_or(10));
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"bench\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n".to_owned();
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(start) }).chain(
        futures::stream::iter(0..events).then(move |i| async move {
            tokio::time::sleep(gap).await;
            Ok(format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} \"}}}}\n\n"
            ))
        }),
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// Sequential small requests to `base`; sorted latencies.
async fn latencies(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", key)
            .json(&json!({"model": "bench", "max_tokens": 1, "messages": []}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{base}: {}", r.status());
        }
        r.bytes().await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

/// Streamed answers to `base`; sorted times to the first body byte.
async fn first_bytes(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", key)
            .json(&json!({"model": "bench", "stream": true, "bench_events": 3, "bench_gap_ms": 20, "messages": []}))
            .send()
            .await?;
        let mut body = r.bytes_stream();
        body.next().await.ok_or_else(|| anyhow!("empty answer"))??;
        out.push(t.elapsed());
        while body.next().await.is_some() {}
    }
    out.sort();
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut requests = 500usize;
    let mut streams = 20usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v: usize = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value"))?
            .parse()?;
        match flag.as_str() {
            "--requests" => requests = v,
            "--streams" => streams = v,
            other => bail!("unknown flag {other} (--requests N, --streams N)"),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(axum::routing::post(upstream));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let cp = ReleaseControlPlane::start(&[]).await?;
    cp.cli(&["api-key", "set", "--org", "default"], Some(ORG_KEY))
        .await?;
    cp.cli(
        // The device enrolls with the fleet token: trusting it makes it verified (it gets the key).
        &[
            "org",
            "settings",
            "--org",
            "default",
            "--key-delivery",
            "proxy",
            "--upstream-url",
            &upstream_url,
            "--trust-mdm-identity",
            "true",
        ],
        None,
    )
    .await?;
    let http = reqwest::Client::new();
    let user = "bench@example.com";
    let r = http
        .post(format!("{}/Users", cp.scim))
        .header("authorization", format!("Bearer {}", cp.token))
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user})
                .to_string(),
        )
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("creating the user: {}", r.status());
    }
    let dir = tempfile::tempdir()?;
    let loc = |sub: &str| dir.path().join(sub).display().to_string();
    let locations = [
        "--state-dir".to_owned(),
        loc("state"),
        "--settings-dir".into(),
        loc("settings"),
        "--claude-config-dir".into(),
        loc("claude"),
    ];
    let agent = release_bin("palisade-agent");
    let out = Command::new(&agent)
        .arg("enroll")
        .args(&locations)
        .args([
            "--server",
            &cp.grpc,
            "--enroll-token",
            &cp.enroll,
            "--user",
            user,
        ])
        .output()
        .await?;
    if !out.status.success() {
        bail!("enroll: {}", String::from_utf8_lossy(&out.stderr));
    }
    let child = Command::new(&agent)
        .arg("run")
        .args(["--relay-addr", "127.0.0.1:0"])
        .args(&locations)
        .env("PALISADE_AGENT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or_else(|| anyhow!("no agent pid"))?;
    let drop_in = dir
        .path()
        .join("settings/managed-settings.d/50-palisade.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (relay, helper) = loop {
        let d: Option<Value> = std::fs::read(&drop_in)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(d) = d {
            if let (Some(u), Some(h)) = (
                d.pointer("/env/ANTHROPIC_BASE_URL").and_then(Value::as_str),
                d["apiKeyHelper"].as_str(),
            ) {
                if dir.path().join("state/upstream-key").exists() {
                    break (u.to_owned(), h.to_owned());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("the agent never pointed Claude Code at its relay");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let out = Command::new("sh").args(["-c", &helper]).output().await?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // Warm both paths (connections, pools), then measure.
    latencies(&http, &upstream_url, ORG_KEY, 20).await?;
    latencies(&http, &relay, &token, 20).await?;
    let direct = latencies(&http, &upstream_url, ORG_KEY, requests).await?;
    let relayed = latencies(&http, &relay, &token, requests).await?;
    let ttfb_direct = first_bytes(&http, &upstream_url, ORG_KEY, requests / 5).await?;
    let ttfb_relayed = first_bytes(&http, &relay, &token, requests / 5).await?;

    let idle_rss = rss_kib(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(idle_rss));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (http, relay, token) = (http.clone(), relay.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{relay}/v1/messages"))
                .header("x-api-key", token)
                .json(&json!({"model": "bench", "stream": true, "bench_events": 200, "bench_gap_ms": 10, "messages": []}))
                .send()
                .await?;
            let mut body = r.bytes_stream();
            let mut bytes = 0usize;
            while let Some(chunk) = body.next().await {
                bytes += chunk?.len();
            }
            anyhow::Ok(bytes)
        }));
    }
    let mut total = 0usize;
    for task in tasks {
        total += task.await??;
    }
    let concurrent = t.elapsed();
    sampling.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);

    let p = |v: &[Duration], q: f64| ms(pct(v, q));
    println!("| measurement | direct | through the relay |");
    println!("|---|---|---|");
    println!(
        "| small request, {requests} sequential (p50 / p99) | {} / {} | {} / {} |",
        p(&direct, 0.5),
        p(&direct, 0.99),
        p(&relayed, 0.5),
        p(&relayed, 0.99)
    );
    println!(
        "| streamed answer, time to first byte, {} runs (p50 / p99) | {} / {} | {} / {} |",
        requests / 5,
        p(&ttfb_direct, 0.5),
        p(&ttfb_direct, 0.99),
        p(&ttfb_relayed, 0.5),
        p(&ttfb_relayed, 0.99)
    );
    println!(
        "| agent RSS: idle after the above / peak with {streams} concurrent streamed answers | | {:.1} MiB / {:.1} MiB ({} KiB streamed in {:?}) |",
        idle_rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        total / 1024,
        concurrent
    );
    drop(child);
    Ok(())
}
