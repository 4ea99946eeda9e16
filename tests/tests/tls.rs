//! TLS: the control plane serves SCIM over HTTPS and the agents' gRPC over TLS (rustls) with a
//! certificate from files; an agent that pins the issuing CA enrolls and receives its policy,
//! one that pins another CA is refused; a plaintext client gets nothing.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use palisade_tests::pki::make_pki;
use palisade_tests::{backend_tests, Backend, ControlPlane};
use serde_json::json;

fn agent_binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/palisade-agent")
}

async fn tls_end_to_end(backend: Backend) -> Result<()> {
    let pki = tempfile::tempdir()?;
    let (ca, cert, key) = make_pki(pki.path(), "good")?;
    let (other_ca, _, _) = make_pki(pki.path(), "other")?;
    let cp = ControlPlane::start(backend, &["--tls-cert", &cert, "--tls-key", &key]).await?;
    assert!(cp.base_url.starts_with("https://"), "{}", cp.base_url);
    assert!(cp.grpc_url.starts_with("https://"), "{}", cp.grpc_url);

    // SCIM over HTTPS with the CA trusted.
    let ca_pem = std::fs::read(&ca)?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem)?)
        .build()?;
    let r = client
        .post(format!("{}/Users", cp.base_url))
        .bearer_auth(&cp.token)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "tls@example.com"}).to_string())
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    // A client that does not trust the CA fails the handshake; plaintext HTTP gets no answer.
    assert!(reqwest::Client::new()
        .get(format!("{}/ServiceProviderConfig", cp.base_url))
        .send()
        .await
        .is_err());
    let plain = cp.base_url.replacen("https://", "http://", 1);
    let plain_ok = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("{plain}/ServiceProviderConfig"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    assert!(
        !plain_ok,
        "plaintext must not be served when TLS is configured"
    );

    // An agent pinning another CA is refused; one pinning the right CA enrolls and gets its policy.
    let token = cp
        .enroll_token
        .clone()
        .ok_or_else(|| anyhow!("no enrollment token"))?;
    let ws = tempfile::tempdir()?;
    let loc = |s: &str| ws.path().join(s).display().to_string();
    let locations = [
        "--state-dir".to_string(),
        loc("state"),
        "--settings-dir".into(),
        loc("settings"),
        "--claude-config-dir".into(),
        loc("claude"),
    ];
    let enroll = |ca: &str| {
        let mut c = tokio::process::Command::new(agent_binary());
        c.arg("enroll").args(&locations).args([
            "--server",
            &cp.grpc_url,
            "--enroll-token",
            &token,
            "--user",
            "tls@example.com",
            "--ca-cert",
            ca,
        ]);
        c
    };
    let bad = enroll(&other_ca).output().await?;
    assert!(
        !bad.status.success(),
        "an agent pinning another CA must be refused"
    );
    let good = enroll(&ca).output().await?;
    assert!(
        good.status.success(),
        "enroll over TLS: {}",
        String::from_utf8_lossy(&good.stderr)
    );
    let mut run = tokio::process::Command::new(agent_binary())
        .arg("run")
        .args(["--relay-addr", "127.0.0.1:0"])
        .args(&locations)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let drop_in = ws
        .path()
        .join("settings/managed-settings.d/50-palisade.json");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !drop_in.exists() {
        if tokio::time::Instant::now() > deadline {
            bail!("the agent never wrote its drop-in over TLS");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = run.kill().await;
    Ok(())
}

backend_tests! {
    tls_end_to_end => tls_end_to_end_sqlite, tls_end_to_end_postgres;
}
