//! Abuse of the agents' gRPC port, by an unauthenticated peer and by a hostile holder of one
//! device credential: stream floods, bodies that never arrive, silent connections, connection
//! floods, oversized messages, Enroll floods, and report floods. Assertions are on refusals,
//! memory and row counts, with generous bounds; never on how fast something happened.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use palisade_proto::v1 as pb;
use palisade_proto::v1::agent_service_client::AgentServiceClient;
use palisade_tests::h2raw::{self, RawH2};
use palisade_tests::{backend_tests, run_scenario, Backend, ControlPlane};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

async fn client(cp: &ControlPlane) -> Result<AgentServiceClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(cp.grpc_url.clone())?
        .connect()
        .await?;
    Ok(AgentServiceClient::new(channel))
}

fn bad_enroll(hostname: String) -> pb::EnrollRequest {
    pb::EnrollRequest {
        enroll_token: "pal_enroll_not-a-real-token".into(),
        user_name: "nobody@example.com".into(),
        hostname,
        os: "linux".into(),
        agent_version: "test".into(),
        ..Default::default()
    }
}

/// One connection opens 20,000 Enroll streams and never sends their bodies. The server must
/// refuse streams beyond its per-connection limit and stay within a few MB of where it was
/// (before the limit it grew by ~174 MB and kept it).
async fn stream_flood() -> Result<()> {
    let cp = ControlPlane::start(Backend::Sqlite, &[]).await?;
    let pid = cp.pid().ok_or_else(|| anyhow!("no server process"))?;
    // Warm up the paths a flood touches, so the baseline includes their one-time allocations.
    let mut c = client(&cp).await?;
    let _ = c.enroll(bad_enroll("warm-up".into())).await;
    let report = h2raw::enroll_stream_flood(&cp.grpc_addr(), pid, 20_000).await?;
    eprintln!("stream flood: {report:?}");
    let o = &report.outcome;
    if o.refused == 0 && o.goaway.is_none() {
        bail!(
            "the server took all {} streams of one connection: {report:?}",
            o.opened
        );
    }
    let growth_peak = report.peak_kib.saturating_sub(report.baseline_kib);
    let growth_after = report.after_kib.saturating_sub(report.baseline_kib);
    if growth_peak > 30 * 1024 || growth_after > 30 * 1024 {
        bail!(
            "the server grew by {growth_peak} KiB during the flood and kept {growth_after} KiB: {report:?}"
        );
    }
    // And it still serves.
    let status = c
        .enroll(bad_enroll("after".into()))
        .await
        .err()
        .ok_or_else(|| anyhow!("a bad token enrolled"))?;
    if status.code() != tonic::Code::Unauthenticated {
        bail!("after the flood: {status:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_flood_is_refused_and_memory_bounded() {
    run_scenario("stream_flood", stream_flood()).await
}

/// An Enroll whose body never arrives gets an answer (the Enroll deadline, 10 s by default)
/// instead of holding its stream forever.
async fn enroll_body_never_sent() -> Result<()> {
    let cp = ControlPlane::start(Backend::Sqlite, &[]).await?;
    let mut conn = RawH2::connect(&cp.grpc_addr()).await?;
    let headers = h2raw::grpc_headers("/palisade.v1.AgentService/Enroll", &cp.grpc_addr());
    conn.open_streams(1, &headers).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while conn.outcome.responses == 0 && conn.outcome.resets == 0 && !conn.outcome.closed {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "an Enroll without a body was still pending after 40 s: {:?}",
                conn.outcome
            );
        }
        conn.settle(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_without_body_is_cut_off() {
    run_scenario("enroll_without_body", enroll_body_never_sent()).await
}

/// A TCP connection that never says anything is closed (handshake timeout, 10 s by default).
async fn silent_connection() -> Result<()> {
    let cp = ControlPlane::start(Backend::Sqlite, &[]).await?;
    let mut tcp = tokio::net::TcpStream::connect(cp.grpc_addr()).await?;
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // the server's SETTINGS
            }
        }
    })
    .await;
    if closed.is_err() {
        bail!("a connection that sent nothing was still open after 40 s");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed() {
    run_scenario("silent_connection", silent_connection()).await
}

/// Beyond `--grpc-max-connections`, new connections are closed at once; those held stay.
async fn connection_limit() -> Result<()> {
    let cp = ControlPlane::start(
        Backend::Sqlite,
        &[
            "--grpc-max-connections",
            "4",
            "--grpc-handshake-timeout-seconds",
            "120",
        ],
    )
    .await?;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(RawH2::connect(&cp.grpc_addr()).await?);
    }
    let mut extra = tokio::net::TcpStream::connect(cp.grpc_addr()).await?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(20), extra.read(&mut buf))
        .await
        .context("the connection over the limit was not closed")?;
    if !matches!(n, Ok(0) | Err(_)) {
        bail!("the connection over the limit was served: {n:?}");
    }
    for h in &mut held {
        h.settle(Duration::from_millis(100)).await;
        if h.outcome.closed {
            bail!("a connection within the limit was closed");
        }
    }
    // A slot freed is a slot available again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = client(&cp).await?;
    let status = c
        .enroll(bad_enroll("x".into()))
        .await
        .err()
        .ok_or_else(|| anyhow!("a bad token enrolled"))?;
    if status.code() != tonic::Code::Unauthenticated {
        bail!("within the limit again: {status:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed() {
    run_scenario("connection_limit", connection_limit()).await
}

/// A message larger than the agents' limit (64 KiB) is refused before the handler sees it.
async fn oversized_message() -> Result<()> {
    let cp = ControlPlane::start(Backend::Sqlite, &[]).await?;
    let mut c = client(&cp).await?;
    let status = c
        .enroll(bad_enroll("h".repeat(200 * 1024)))
        .await
        .err()
        .ok_or_else(|| anyhow!("a bad token enrolled"))?;
    if !matches!(
        status.code(),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    ) {
        bail!("a 200 KiB Enroll was decoded: {status:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused() {
    run_scenario("oversized_message", oversized_message()).await
}

/// Enroll is rate limited per source address (default 10/s, burst 100): a flood of guesses
/// from one address is mostly answered RESOURCE_EXHAUSTED without touching the store.
async fn enroll_rate_limit() -> Result<()> {
    let cp = ControlPlane::start(Backend::Sqlite, &[]).await?;
    let mut c = client(&cp).await?;
    let (mut limited, mut refused) = (0, 0);
    for i in 0..400 {
        match c.enroll(bad_enroll(format!("guess-{i}"))).await {
            Ok(_) => bail!("a bad token enrolled"),
            Err(s) if s.code() == tonic::Code::ResourceExhausted => limited += 1,
            Err(s) if s.code() == tonic::Code::Unauthenticated => refused += 1,
            Err(s) => bail!("unexpected answer: {s:?}"),
        }
    }
    if limited == 0 || refused == 0 || refused > 300 {
        bail!("400 guesses from one address: {refused} checked, {limited} rate limited");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_is_rate_limited_per_address() {
    run_scenario("enroll_rate_limit", enroll_rate_limit()).await
}

const REPORTS: u64 = 100_000;

/// A hostile device sends 100,000 tamper reports over one stream: the audit trail gains a
/// bounded number of rows, and their counts account for every report (accepted + dropped).
async fn report_flood(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let user = "hostile@example.com";
    cp.scim()
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user, "active": true}),
        )
        .await?
        .expect(201)?;
    let mut c = client(&cp).await?;
    let enrolled = c
        .enroll(pb::EnrollRequest {
            enroll_token: cp
                .enroll_token
                .clone()
                .ok_or_else(|| anyhow!("no enrollment token"))?,
            user_name: user.into(),
            hostname: "hostile".into(),
            os: "linux".into(),
            agent_version: "test".into(),
            ..Default::default()
        })
        .await?
        .into_inner();

    let started = std::time::Instant::now();
    let messages = futures::stream::iter(
        std::iter::once(pb::agent_message::Message::Hello(pb::Hello::default()))
            .chain((0..REPORTS).map(|i| {
                pb::agent_message::Message::Tamper(pb::TamperReport {
                    path: format!(
                        "/etc/claude-code/managed-settings.d/50-palisade.json#{}",
                        i % 3
                    ),
                    kind: "modified".into(),
                    ..Default::default()
                })
            }))
            .map(|m| pb::AgentMessage { message: Some(m) }),
    );
    let mut req = tonic::Request::new(messages);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", enrolled.device_credential).parse()?,
    );
    let mut replies = c.stream_policy(req).await?.into_inner();
    // The server ends its side once it has read our whole stream and written the reports.
    tokio::time::timeout(Duration::from_secs(240), async {
        while let Ok(Some(_)) = replies.message().await {}
    })
    .await
    .context("the server did not finish reading 100,000 reports within 240 s")?;
    let elapsed = started.elapsed();

    let trail = cp
        .cli_ok(&["audit", "--org", "default", "--user", user, "--json"])
        .await?;
    let tampers: Vec<Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == "device.tamper")
        .collect();
    let sum = |k: &str| {
        tampers
            .iter()
            .map(|e| e["detail"][k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let (accepted, dropped) = (sum("count"), sum("dropped"));
    eprintln!(
        "{REPORTS} reports in {elapsed:?} → {} audit rows, {accepted} accepted, {dropped} dropped",
        tampers.len()
    );
    if tampers.is_empty() || tampers.len() > 20 {
        bail!(
            "{REPORTS} tamper reports made {} audit rows (bound: 20)",
            tampers.len()
        );
    }
    if accepted + dropped != REPORTS {
        bail!("the rows account for {accepted} accepted + {dropped} dropped, not {REPORTS}: {tampers:?}");
    }
    // The per-device budget: a burst of 50, then 10/s.
    let budget = 50 + 10 * (elapsed.as_secs() + 2);
    if accepted == 0 || accepted > budget {
        bail!("{accepted} reports accepted in {elapsed:?} (budget {budget})");
    }
    // The Devices page and API count every report, accepted or dropped.
    let token = cp
        .cli_ok(&[
            "api-token",
            "create",
            "--org",
            "default",
            "--role",
            "read-only",
            "--label",
            "t",
        ])
        .await?;
    let token = token.lines().last().unwrap_or_default().trim().to_owned();
    let devices: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/devices", cp.root_url))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let device = &devices["items"][0];
    if device["tamper_events"].as_u64() != Some(REPORTS) || !device["last_tamper_at"].is_string() {
        bail!("the device shows {device} after {REPORTS} tamper reports");
    }
    Ok(())
}

backend_tests! {
    report_flood => report_flood_is_coalesced_sqlite, report_flood_is_coalesced_postgres;
}
