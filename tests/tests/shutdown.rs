//! Stopping the control plane the way systemd and Kubernetes do (SIGTERM), with a real agent
//! connected through a load balancer to two replicas: the stopping replica tells its agent
//! streams to go away and the agent resumes on the other replica; an in-flight SCIM request
//! is finished and answered; the process exits as soon as nothing is left, and a request that
//! never completes is cut when the drain time is over.

use std::time::Duration;

use anyhow::{ensure, Result};
use palisade_tests::failover::Failover;
use palisade_tests::workstation::{invite_code, Workstation};
use palisade_tests::{backend_tests, create_user, Backend, ControlPlane};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DRAIN_SECONDS: u64 = 4;

/// Opens a SCIM `POST /Users` on `cp` and sends its headers and the first half of the body.
async fn half_sent_create(cp: &ControlPlane, user_name: &str) -> Result<(TcpStream, Vec<u8>)> {
    let body = serde_json::to_vec(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true
    }))?;
    let mut conn = TcpStream::connect(&cp.addr).await?;
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        cp.addr,
        cp.token,
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    let half = body.len() / 2;
    conn.write_all(&body[..half]).await?;
    conn.flush().await?;
    Ok((conn, body[half..].to_vec()))
}

async fn sigterm_drains_and_agents_move(backend: Backend) -> Result<()> {
    let drain = DRAIN_SECONDS.to_string();
    let mut a = ControlPlane::start(
        backend,
        &["--keepalive-seconds", "1", "--drain-seconds", &drain],
    )
    .await?;
    let mut b = a.start_replica().await?;
    let balancer = Failover::start(vec![a.grpc_addr(), b.grpc_addr()]).await?;
    create_user(&a.scim(), "mover@example.com").await?;
    let code = invite_code(&a, "mover@example.com").await?;
    let mut w = Workstation::new()?;
    let out = w.enroll_with_code_at(&balancer.url(), &code).await?;
    ensure!(
        out.status.success(),
        "enrolling through the balancer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.start()?;
    w.wait_for("the first policy (from replica A)", |w| {
        w.drop_in().is_some()
    })
    .await?;

    // A SCIM request is half-way in when SIGTERM arrives; the rest follows after it.
    let (mut slow, rest) = half_sent_create(&a, "late@example.com").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(async move {
        let outcome = a.terminate(Duration::from_secs(DRAIN_SECONDS + 10)).await;
        (a, outcome)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    slow.write_all(&rest).await?;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer[..n]);
    ensure!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight SCIM request was answered: {answer}"
    );
    drop(slow);
    let (a, outcome) = stopping.await?;
    let (_, status) = outcome?;
    ensure!(status.success(), "replica A exited with {status}");
    ensure!(
        a.stderr().contains("all connections drained"),
        "replica A left nothing to cut:\n{}",
        a.stderr()
    );

    // The agent is on replica B now: a change made there reaches it, and the user created
    // during the drain is stored.
    b.scim()
        .get("/Users?filter=userName%20eq%20%22late%40example.com%22")
        .await?
        .expect(200)?;
    let policy = tempfile::Builder::new().suffix(".json").tempfile()?;
    std::fs::write(policy.path(), r#"{"blocked_tools": ["WebFetch"]}"#)?;
    b.cli_ok(&[
        "policy",
        "set-default",
        "--org",
        "default",
        "--file",
        &policy.path().display().to_string(),
    ])
    .await?;
    w.wait_for("a change through replica B", |w| {
        w.deny_rules().iter().any(|r| r == "WebFetch")
    })
    .await?;

    // A request that never completes does not hold the process past the drain time.
    let (_stuck, _) = half_sent_create(&b, "never@example.com").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (took, status) = b.terminate(Duration::from_secs(DRAIN_SECONDS + 10)).await?;
    ensure!(status.success(), "replica B exited with {status}");
    ensure!(
        b.stderr().contains("drain time over"),
        "replica B cut what was left after {took:?}:\n{}",
        b.stderr()
    );
    w.stop().await;
    Ok(())
}

backend_tests! {
    sigterm_drains_and_agents_move => sigterm_drains_sqlite, sigterm_drains_postgres;
}

/// `grpc.health.v1` on the agents' port answers SERVING for the server and the agent service,
/// as load balancers and Kubernetes probes ask it, and NOT_FOUND for a service it lacks.
async fn grpc_health_reports_serving(backend: Backend) -> Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let cp = ControlPlane::start(backend, &[]).await?;
    let channel = tonic::transport::Endpoint::from_shared(cp.grpc_url.clone())?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel);
    for service in ["", "palisade.v1.AgentService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        ensure!(
            status == ServingStatus::Serving as i32,
            "{service:?}: status {status}"
        );
    }
    let missing = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await;
    ensure!(
        missing.is_err_and(|s| s.code() == tonic::Code::NotFound),
        "an unknown service is NOT_FOUND"
    );
    Ok(())
}

backend_tests! {
    grpc_health_reports_serving => grpc_health_sqlite, grpc_health_postgres;
}
