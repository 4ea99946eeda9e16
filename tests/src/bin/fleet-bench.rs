//! `fleet-bench`: measures policy distribution against the real release control plane, with
//! simulated agents that are real gRPC streams holding real device credentials, and with one
//! real `palisade-agent`:
//! - the time for a group policy change (CLI) to be ACKed by every simulated agent;
//! - the time from a SCIM deprovisioning response to the Deprovision message (simulated) and to
//!   the API key file gone on disk (real agent), p50/p99;
//! - the real agent's idle RSS and context switches over an idle window.
//!
//! Run: `cargo build --release --workspace --bins && target/release/fleet-bench` (BENCHMARKS.md).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use palisade_proto::v1 as pb;
use palisade_proto::v1::agent_message::Message as AgentMsg;
use palisade_proto::v1::agent_service_client::AgentServiceClient;
use palisade_proto::v1::server_message::Message as ServerMsg;
use palisade_tests::bench::{ms, pct, release_bin, ReleaseControlPlane};
use serde_json::{json, Value};

use tokio::process::Command;

struct Args {
    agents: usize,
    rounds: usize,
    deprovisions: usize,
    real_deprovisions: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        agents: 1000,
        rounds: 10,
        deprovisions: 50,
        real_deprovisions: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v: usize = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value"))?
            .parse()?;
        match flag.as_str() {
            "--agents" => a.agents = v,
            "--rounds" => a.rounds = v,
            "--deprovisions" => a.deprovisions = v,
            "--real-deprovisions" => a.real_deprovisions = v,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Signed milliseconds from `from` to `to` (negative: `to` happened first).
fn signed_ms(from: Instant, to: Instant) -> f64 {
    if to >= from {
        to.duration_since(from).as_secs_f64() * 1000.0
    } else {
        -(from.duration_since(to).as_secs_f64() * 1000.0)
    }
}

fn pct_f(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

type ControlPlane = ReleaseControlPlane;

/// The release control plane; 1,050 simulated devices enroll from this one address, so
/// neither SCIM nor enrollment is rate limited.
async fn start_control_plane() -> Result<ControlPlane> {
    ReleaseControlPlane::start(&["--scim-rate-limit", "0", "--enroll-rate-limit", "0"]).await
}

async fn cli(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> Result<Duration> {
    cp.cli(args, stdin).await
}

#[derive(Default)]
struct AgentLog {
    /// version → when the simulated agent ACKed it
    acked: HashMap<u64, Instant>,
    deprovisioned: Option<Instant>,
}

type Logs = Arc<Mutex<Vec<AgentLog>>>;

/// One simulated agent: its own connection and stream; ACKs every snapshot.
async fn simulated_agent(grpc: String, credential: String, index: usize, logs: Logs) -> Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(grpc)?
        .connect()
        .await?;
    let mut client = AgentServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AgentMessage>(8);
    tx.send(pb::AgentMessage {
        message: Some(AgentMsg::Hello(pb::Hello {
            last_applied_version: 0,
            agent_version: "bench".into(),
            os: "linux".into(),
        })),
    })
    .await?;
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {credential}").parse()?);
    let mut inbound = client.stream_policy(req).await?.into_inner();
    while let Some(msg) = inbound.message().await? {
        match msg.message {
            Some(ServerMsg::Snapshot(s)) => {
                tx.send(pb::AgentMessage {
                    message: Some(AgentMsg::Ack(pb::Ack {
                        version: s.version,
                        nonce: s.nonce,
                    })),
                })
                .await?;
                if let Ok(mut l) = logs.lock() {
                    l[index].acked.insert(s.version, Instant::now());
                }
            }
            Some(ServerMsg::Deprovision(_)) => {
                if let Ok(mut l) = logs.lock() {
                    l[index].deprovisioned = Some(Instant::now());
                }
                return Ok(());
            }
            _ => {}
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let cp = start_control_plane().await?;
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", cp.token);
    let n = args.agents + args.deprovisions;

    // Users, one group holding the fleet, an organisation API key.
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let r: Value = http
            .post(format!("{}/Users", cp.scim))
            .header("authorization", &auth)
            .header("content-type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("agent-{i}@example.com")}).to_string())
            .send()
            .await?
            .json()
            .await?;
        ids.push(
            r["id"]
                .as_str()
                .ok_or_else(|| anyhow!("create user: {r}"))?
                .to_string(),
        );
    }
    let members: Vec<Value> = ids[..args.agents]
        .iter()
        .map(|id| json!({"value": id}))
        .collect();
    let g: Value = http
        .post(format!("{}/Groups", cp.scim))
        .header("authorization", &auth)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Fleet", "members": members}).to_string())
        .send()
        .await?
        .json()
        .await?;
    if g["id"].as_str().is_none() {
        bail!("group create: {g}");
    }
    cli(
        &cp,
        &["api-key", "set", "--org", "default"],
        Some("sk-ant-bench-key\n"),
    )
    .await?;
    // Simulated devices enroll with the fleet token: trust it, so they are verified and get the key.
    cli(
        &cp,
        &[
            "org",
            "settings",
            "--org",
            "default",
            "--trust-mdm-identity",
            "true",
        ],
        None,
    )
    .await?;

    // Enroll every simulated device (real credentials) and open its stream.
    let channel = tonic::transport::Endpoint::from_shared(cp.grpc.clone())?
        .connect()
        .await?;
    let mut enroller = AgentServiceClient::new(channel);
    let logs: Logs = Arc::new(Mutex::new((0..n).map(|_| AgentLog::default()).collect()));
    for i in 0..n {
        let e = enroller
            .enroll(pb::EnrollRequest {
                enroll_token: cp.enroll.clone(),
                user_name: format!("agent-{i}@example.com"),
                hostname: format!("sim-{i}"),
                os: "linux".into(),
                agent_version: "bench".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let (grpc, logs) = (cp.grpc.clone(), logs.clone());
        tokio::spawn(async move {
            if let Err(e) = simulated_agent(grpc, e.device_credential, i, logs).await {
                eprintln!("simulated agent {i}: {e:#}");
            }
        });
    }
    let all_have = |logs: &Logs, version: u64| -> Option<Instant> {
        let l = logs.lock().ok()?;
        let mut latest = None::<Instant>;
        for a in l.iter().take(args.agents) {
            let t = a.acked.get(&version)?;
            latest = Some(latest.map_or(*t, |x| x.max(*t)));
        }
        latest
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while all_have(&logs, 1).is_none() {
        if Instant::now() > deadline {
            bail!("not every simulated agent got its first snapshot");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{} simulated agents connected and ACKed version 1",
        args.agents
    );

    // Fan-out: a group policy change until every agent ACKed it.
    let files = tempfile::tempdir()?;
    let mut fanout = Vec::new();
    let mut cli_times = Vec::new();
    for round in 0..args.rounds {
        let file = files.path().join(format!("p{round}.json"));
        let tools = if round % 2 == 0 {
            r#"["Bash", "WebFetch"]"#
        } else {
            r#"["Bash"]"#
        };
        std::fs::write(&file, format!(r#"{{"blocked_tools": {tools}}}"#))?;
        let version = 2 + round as u64;
        let t0 = Instant::now();
        let cli_time = cli(
            &cp,
            &[
                "policy",
                "set-group",
                "--org",
                "default",
                "--group",
                "Fleet",
                "--file",
                &file.display().to_string(),
            ],
            None,
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let done = loop {
            if let Some(t) = all_have(&logs, version) {
                break t;
            }
            if Instant::now() > deadline {
                bail!("round {round}: not every agent ACKed version {version}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        fanout.push(done.duration_since(t0));
        cli_times.push(cli_time);
    }
    fanout.sort();
    cli_times.sort();
    println!(
        "| group policy change → ACKed by all {} agents (from CLI start) | {} rounds | p50 {} | max {} | CLI process p50 {} |",
        args.agents,
        args.rounds,
        ms(pct(&fanout, 0.5)),
        ms(pct(&fanout, 1.0)),
        ms(pct(&cli_times, 0.5))
    );

    // Deprovisioning with 1,000 connected: SCIM response → Deprovision message at the agent.
    let mut from_response: Vec<f64> = Vec::new();
    let mut from_request: Vec<f64> = Vec::new();
    for k in 0..args.deprovisions {
        let i = args.agents + k;
        let sent = Instant::now();
        let r = http
            .patch(format!("{}/Users/{}", cp.scim, ids[i]))
            .header("authorization", &auth)
            .header("content-type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]}).to_string())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("deactivate: {}", r.status());
        }
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(10);
        loop {
            let got = logs.lock().ok().and_then(|l| l[i].deprovisioned);
            if let Some(t) = got {
                from_response.push(signed_ms(t0, t));
                from_request.push(signed_ms(sent, t));
                break;
            }
            if Instant::now() > deadline {
                bail!("agent {i} was not told to wipe");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    from_response.sort_by(f64::total_cmp);
    from_request.sort_by(f64::total_cmp);
    println!(
        "| SCIM deactivate → Deprovision at simulated agent ({} connected) | {} users | from response p50 {:.1} ms, p99 {:.1} ms | from request sent p50 {:.1} ms, p99 {:.1} ms |",
        n,
        args.deprovisions,
        pct_f(&from_response, 0.5),
        pct_f(&from_response, 0.99),
        pct_f(&from_request, 0.5),
        pct_f(&from_request, 0.99)
    );

    real_agent(&cp, &http, &auth, args.real_deprovisions).await?;
    Ok(())
}

/// One real agent per round: deprovisioning until its key file is gone; then idle RSS.
async fn real_agent(
    cp: &ControlPlane,
    http: &reqwest::Client,
    auth: &str,
    rounds: usize,
) -> Result<()> {
    let agent = release_bin("palisade-agent");
    let mut lat: Vec<(f64, f64)> = Vec::new();
    let mut idle_report = None;
    for round in 0..rounds {
        let user = format!("real-{round}@example.com");
        let r: Value = http
            .post(format!("{}/Users", cp.scim))
            .header("authorization", auth)
            .header("content-type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user}).to_string())
            .send()
            .await?
            .json()
            .await?;
        let uid = r["id"]
            .as_str()
            .ok_or_else(|| anyhow!("create: {r}"))?
            .to_string();
        let dir = tempfile::tempdir()?;
        let loc = |sub: &str| dir.path().join(sub).display().to_string();
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
            .args([
                "--server",
                &cp.grpc,
                "--enroll-token",
                &cp.enroll,
                "--user",
                &user,
            ])
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
        let key = dir.path().join("state").join("api-key");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !key.exists() {
            if Instant::now() > deadline {
                bail!("the real agent never received its API key");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if round == 0 {
            // Tamper: edit or delete the drop-in, time until the agent has restored its bytes.
            let drop_in = dir
                .path()
                .join("settings/managed-settings.d/50-palisade.json");
            let good = std::fs::read(&drop_in)?;
            let mut restore = Vec::new();
            for i in 0..40 {
                let t = Instant::now();
                if i % 2 == 0 {
                    std::fs::write(&drop_in, b"{\"permissions\": {\"allow\": [\"Bash\"]}}")?;
                } else {
                    std::fs::remove_file(&drop_in)?;
                }
                loop {
                    if std::fs::read(&drop_in).ok().as_deref() == Some(&good[..]) {
                        restore.push(t.elapsed());
                        break;
                    }
                    if t.elapsed() > Duration::from_secs(10) {
                        bail!("the real agent did not restore its drop-in");
                    }
                    tokio::time::sleep(Duration::from_micros(250)).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            restore.sort();
            println!(
                "| tampered drop-in (edit or delete) → restored, 1 real agent | 40 tampers | p50 {} | p99 {} |",
                ms(pct(&restore, 0.5)),
                ms(pct(&restore, 0.99))
            );
            if let Some(pid) = child.id() {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let before = proc_status(pid);
                tokio::time::sleep(Duration::from_secs(10)).await;
                let after = proc_status(pid);
                idle_report = Some((after.0, after.1.saturating_sub(before.1)));
            }
        }
        let sent = Instant::now();
        let resp = http
            .patch(format!("{}/Users/{uid}", cp.scim))
            .header("authorization", auth)
            .header("content-type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}).to_string())
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("deactivate: {}", resp.status());
        }
        let t0 = Instant::now();
        while key.exists() {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("the real agent did not wipe its key");
            }
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
        let gone = Instant::now();
        lat.push((signed_ms(t0, gone), signed_ms(sent, gone)));
        let _ = child.kill().await;
    }
    let mut resp: Vec<f64> = lat.iter().map(|l| l.0).collect();
    let mut req: Vec<f64> = lat.iter().map(|l| l.1).collect();
    resp.sort_by(f64::total_cmp);
    req.sort_by(f64::total_cmp);
    println!(
        "| SCIM deactivate → API key file gone (1 real agent) | {} rounds | from response p50 {:.1} ms, p99 {:.1} ms | from request sent p50 {:.1} ms, p99 {:.1} ms |",
        rounds,
        pct_f(&resp, 0.5),
        pct_f(&resp, 0.99),
        pct_f(&req, 0.5),
        pct_f(&req, 0.99)
    );
    if let Some((rss_kib, switches)) = idle_report {
        println!(
            "| real agent idle, connected | RSS {:.1} MiB | {} context switches in 10 s idle |",
            rss_kib as f64 / 1024.0,
            switches
        );
    }
    Ok(())
}

/// (VmRSS in KiB, voluntary + involuntary context switches summed over all threads).
fn proc_status(pid: u32) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let mut switches = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
                for l in s.lines() {
                    if l.starts_with("voluntary_ctxt_switches:")
                        || l.starts_with("nonvoluntary_ctxt_switches:")
                    {
                        switches += l
                            .split_whitespace()
                            .nth(1)
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                    }
                }
            }
        }
    }
    (rss, switches)
}
