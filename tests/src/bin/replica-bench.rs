//! Benchmark: two control-plane replicas on one PostgreSQL, as behind a load balancer. A real
//! agent streams from replica B while the IdP talks to replica A; measured from the SCIM
//! response on A: a membership change until the agent on B has the new rule on disk, and a
//! deactivation until the agent on B has deleted the API key. Replica B learns of A's commits
//! only through the database (LISTEN/NOTIFY on the change feed).
//!
//! Run: `cargo build --release --workspace --bins && target/release/replica-bench
//! [--rounds 30]` (BENCHMARKS.md). Needs PostgreSQL (`PALISADE_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use palisade_tests::bench::{ms, pct};
use palisade_tests::{Backend, ControlPlane};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn release_bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/release")
        .join(name)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<Duration> {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_micros(250)).await;
    }
    Ok(t.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut rounds = 30usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--rounds" => {
                rounds = it
                    .next()
                    .ok_or_else(|| anyhow!("--rounds needs a value"))?
                    .parse()?
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if std::env::var_os("PALISADE_CONTROL_PLANE_BIN").is_none() {
        std::env::set_var(
            "PALISADE_CONTROL_PLANE_BIN",
            release_bin("palisade-control-plane"),
        );
    }
    let agent = release_bin("palisade-agent");
    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("secrets.key");
    std::fs::write(&key_file, SECRETS_KEY)?;
    let key_arg = key_file.display().to_string();
    let a = ControlPlane::start(Backend::Postgres, &["--secrets-key-file", &key_arg])
        .await
        .context("replica A (cargo build --release --workspace --bins)")?;
    let b = a.start_replica().await.context("replica B")?;

    // An organisation API key, so that deactivation has a key file to delete.
    let mut set_key = Command::new(palisade_tests::binary_path())
        .args([
            "api-key",
            "set",
            "--org",
            "default",
            "--database-url",
            &a.db.url,
        ])
        .env("PALISADE_SECRETS_KEY", SECRETS_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    set_key
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin"))?
        .write_all(b"sk-ant-replica-bench\n")
        .await?;
    let out = set_key.wait_with_output().await?;
    if !out.status.success() {
        bail!("api-key set: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The workstations enroll with the fleet token: trust it, so they are verified and get the key.
    a.cli_ok(&[
        "org",
        "settings",
        "--org",
        "default",
        "--trust-mdm-identity",
        "true",
    ])
    .await?;
    let group = a
        .scim()
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Bench"}),
        )
        .await?;
    group.expect(201)?;
    let gid = group.body["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no group id"))?
        .to_string();
    let policy = dir.path().join("bench.json");
    std::fs::write(&policy, r#"{"blocked_tools": ["WebFetch"]}"#)?;
    a.cli_ok(&[
        "policy",
        "set-group",
        "--org",
        "default",
        "--group",
        "Bench",
        "--file",
        &policy.display().to_string(),
    ])
    .await?;
    let enroll_token = a
        .enroll_token
        .clone()
        .ok_or_else(|| anyhow!("no enrollment token"))?;

    let mut change = Vec::new();
    let mut wipe = Vec::new();
    for round in 0..rounds {
        let user = format!("replica-{round}@example.com");
        let created = a
            .scim()
            .post(
                "/Users",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user}),
            )
            .await?;
        created.expect(201)?;
        let uid = created.body["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no user id"))?
            .to_string();
        let ws = tempfile::tempdir()?;
        std::fs::create_dir_all(ws.path().join("claude"))?;
        let loc = |sub: &str| ws.path().join(sub).display().to_string();
        let locations = [
            "--state-dir".to_string(),
            loc("state"),
            "--settings-dir".into(),
            loc("settings"),
            "--claude-config-dir".into(),
            loc("claude"),
        ];
        let out = Command::new(&agent)
            .arg("enroll")
            .args(&locations)
            .args(["--server", &b.grpc_url, "--enroll-token", &enroll_token])
            .args(["--user", &user])
            .output()
            .await?;
        if !out.status.success() {
            bail!("enroll: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut child = Command::new(&agent)
            .arg("run")
            .args(["--relay-addr", "127.0.0.1:0"])
            .args(&locations)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let key = ws.path().join("state").join("api-key");
        let drop_in = ws
            .path()
            .join("settings/managed-settings.d/50-palisade.json");
        wait_until("the API key from replica B", || key.exists()).await?;

        a.scim()
            .patch_ops(
                &format!("/Groups/{gid}"),
                json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
            )
            .await?
            .expect(200)?;
        change.push(
            wait_until("the group rule via replica B", || {
                std::fs::read_to_string(&drop_in).is_ok_and(|t| t.contains("WebFetch"))
            })
            .await?,
        );

        a.scim()
            .patch_ops(
                &format!("/Users/{uid}"),
                json!([{"op": "replace", "path": "active", "value": false}]),
            )
            .await?
            .expect(200)?;
        wipe.push(wait_until("the wipe via replica B", || !key.exists()).await?);
        let _ = child.kill().await;
        let _ = child.wait().await;
    }
    change.sort();
    wipe.sort();
    println!(
        "replicas: 2 on one PostgreSQL; {rounds} rounds, real agent on replica B, SCIM on replica A"
    );
    println!(
        "  group membership change -> rule on disk via B: p50 {} / p99 {} / max {}",
        ms(pct(&change, 0.5)),
        ms(pct(&change, 0.99)),
        ms(pct(&change, 1.0))
    );
    println!(
        "  deactivation -> API key gone via B:            p50 {} / p99 {} / max {}",
        ms(pct(&wipe, 0.5)),
        ms(pct(&wipe, 0.99)),
        ms(pct(&wipe, 1.0))
    );
    Ok(())
}
