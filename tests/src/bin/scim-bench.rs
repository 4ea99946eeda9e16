//! `scim-bench`: measures the control plane's SCIM throughput and latency against the real
//! release binary: user creates/s and `userName eq` lookups/s with concurrent clients at a given
//! population, and the cost of a member add to a small versus a large group.
//! `--mode enroll-flood` instead measures SCIM PATCH latency alone and under a flood of
//! concurrent Enroll calls with bad tokens (unauthenticated callers must not slow SCIM down).
//!
//! Run: `cargo build --release -p palisade-control-plane -p palisade-tests &&
//!       target/release/scim-bench --backend sqlite` (see BENCHMARKS.md).

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

struct Args {
    backend: String,
    users: usize,
    clients: usize,
    lookups: usize,
    big_group: usize,
    binary: String,
    pg_admin_url: String,
    mode: String,
    flood: usize,
    patches: usize,
    server_args: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        backend: "sqlite".into(),
        users: 100_000,
        clients: 16,
        lookups: 50_000,
        big_group: 10_000,
        binary: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/palisade-control-plane"
        )
        .into(),
        pg_admin_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        mode: "full".into(),
        flood: 256,
        patches: 500,
        server_args: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => a.backend = val()?,
            "--users" => a.users = val()?.parse()?,
            "--clients" => a.clients = val()?.parse()?,
            "--lookups" => a.lookups = val()?.parse()?,
            "--big-group" => a.big_group = val()?.parse()?,
            "--binary" => a.binary = val()?,
            "--pg-admin-url" => a.pg_admin_url = val()?,
            "--mode" => a.mode = val()?,
            "--flood" => a.flood = val()?.parse()?,
            "--patches" => a.patches = val()?.parse()?,
            "--server-arg" => a.server_args.push(val()?),
            other => bail!("unknown flag {other}; flags: --backend sqlite|postgres --users N --clients N --lookups N --big-group N --binary PATH --mode full|enroll-flood --flood N --patches N --server-arg ARG (repeatable)"),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// CPU time (user + system) the process has used so far, from /proc (Linux only; zero elsewhere).
fn cpu_time(pid: Option<u32>) -> Duration {
    let Some(pid) = pid else {
        return Duration::ZERO;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Server {
    child: tokio::process::Child,
    base: String,
    token: String,
    grpc: String,
}

async fn start_server(binary: &str, url: &str, extra: &[String]) -> Result<Server> {
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--database-url",
            url,
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--scim-rate-limit",
            "0",
        ])
        .args(extra)
        .env("PALISADE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {binary} (build it with cargo build --release -p palisade-control-plane)"
            )
        })?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut token = None;
    let mut grpc = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??
        else {
            break;
        };
        if let Some(t) = line
            .strip_prefix("SCIM bearer token")
            .and_then(|l| l.split("(shown once): ").nth(1))
        {
            token = Some(t.trim().to_string());
        }
        if let Some(g) = line.strip_prefix("gRPC agent endpoint: ") {
            grpc = Some(g.trim().to_string());
        }
        if let Some(b) = line.strip_prefix("SCIM base URL: ") {
            let token =
                token.ok_or_else(|| anyhow!("the store was not empty: no token printed"))?;
            return Ok(Server {
                child,
                base: b.trim().to_string(),
                token,
                grpc: grpc.ok_or_else(|| anyhow!("no gRPC endpoint printed"))?,
            });
        }
    }
    bail!("server did not print its base URL")
}

async fn run_concurrently<F, Fut>(
    clients: usize,
    total: usize,
    op: F,
) -> Result<(Duration, Vec<Duration>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let next = next.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((elapsed, all))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let pg_db = format!("palisade_bench_{}", std::process::id());
    let url = match args.backend.as_str() {
        "sqlite" => format!("sqlite://{}/bench.db", dir.path().display()),
        "postgres" => {
            let admin = sqlx::PgPool::connect(&args.pg_admin_url)
                .await
                .context("connecting to PostgreSQL")?;
            sqlx::query(&format!("CREATE DATABASE {pg_db}"))
                .execute(&admin)
                .await?;
            let base = args
                .pg_admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&args.pg_admin_url);
            format!("{base}/{pg_db}")
        }
        other => bail!("unknown backend {other}"),
    };
    let server = start_server(&args.binary, &url, &args.server_args).await?;
    if args.mode == "enroll-flood" {
        let r = enroll_flood(&args, &server).await;
        drop(server);
        drop_pg(&args, &pg_db).await;
        return r;
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let auth = format!("Bearer {}", server.token);
    let base = server.base.clone();

    // 1. Creates.
    let pid = server.child.id();
    let cpu0 = cpu_time(pid);
    let (c, a, b) = (client.clone(), auth.clone(), base.clone());
    let (elapsed, lat) = run_concurrently(args.clients, args.users, move |i| {
        let (c, a, b) = (c.clone(), a.clone(), b.clone());
        async move {
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("bench-{i}@example.com"),
                "name": {"givenName": "Bench", "familyName": format!("User {i}")}, "emails": [{"value": format!("bench-{i}@example.com"), "type": "work", "primary": true}],
                "active": true, "externalId": format!("ext-{i}")});
            let r = c.post(format!("{b}/Users")).header("authorization", a).header("content-type", "application/scim+json").body(body.to_string()).send().await?;
            if r.status().as_u16() != 201 {
                bail!("create {i}: {}", r.status());
            }
            Ok(())
        }
    })
    .await?;
    let cpu1 = cpu_time(pid);
    println!(
        "| {} | creates | {} users, {} clients | {:.0}/s | p50 {} ms | p99 {} ms | {:.0} µs |",
        args.backend,
        args.users,
        args.clients,
        args.users as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        (cpu1 - cpu0).as_secs_f64() * 1e6 / args.users as f64
    );

    // 2. userName eq lookups at that population.
    let (c, a, b, n) = (client.clone(), auth.clone(), base.clone(), args.users);
    let (elapsed, lat) = run_concurrently(args.clients, args.lookups, move |i| {
        let (c, a, b) = (c.clone(), a.clone(), b.clone());
        async move {
            let target = (i * 7919) % n;
            let r = c
                .get(format!("{b}/Users"))
                .query(&[(
                    "filter",
                    format!("userName eq \"BENCH-{target}@example.com\""),
                )])
                .header("authorization", a)
                .send()
                .await?;
            let v: Value = r.json().await?;
            if v["totalResults"] != 1 {
                bail!("lookup {target}: {v}");
            }
            Ok(())
        }
    })
    .await?;
    println!(
        "| {} | userName eq lookups | {} users, {} clients | {:.0}/s | p50 {} ms | p99 {} ms | {:.0} µs |",
        args.backend,
        args.users,
        args.clients,
        args.lookups as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        (cpu_time(pid) - cpu1).as_secs_f64() * 1e6 / args.lookups as f64
    );

    // 3. Member add to a 10-member group versus a big group.
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        let mut start = 1;
        while ids.len() < args.big_group + 400 {
            let r: Value = client
                .get(format!("{base}/Users"))
                .query(&[
                    ("startIndex", start.to_string()),
                    ("count", "1000".into()),
                    ("attributes", "id".into()),
                ])
                .header("authorization", &auth)
                .send()
                .await?
                .json()
                .await?;
            let page = r["Resources"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            start += page.len();
            ids.extend(
                page.iter()
                    .filter_map(|u| u["id"].as_str().map(str::to_string)),
            );
        }
        ids
    };
    if ids.len() < args.big_group + 400 {
        bail!(
            "need at least {} users for the group benchmark",
            args.big_group + 400
        );
    }
    let mut report = Vec::new();
    for (label, size) in [("small", 10usize), ("large", args.big_group)] {
        let r: Value = client.post(format!("{base}/Groups")).header("authorization", &auth).header("content-type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("bench-{label}")}).to_string()).send().await?.json().await?;
        let gid = r["id"]
            .as_str()
            .ok_or_else(|| anyhow!("group create: {r}"))?
            .to_string();
        for chunk in ids[..size].chunks(1000) {
            let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
            let resp = client.patch(format!("{base}/Groups/{gid}")).header("authorization", &auth).header("content-type", "application/scim+json")
                .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": members}]}).to_string()).send().await?;
            if !resp.status().is_success() {
                bail!("seeding group: {}", resp.status());
            }
        }
        let mut lat = Vec::new();
        for extra in &ids[args.big_group..args.big_group + 200] {
            let t = Instant::now();
            let resp = client.patch(format!("{base}/Groups/{gid}")).header("authorization", &auth).header("content-type", "application/scim+json")
                .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": extra}]}]}).to_string()).send().await?;
            if resp.status().as_u16() != 200 {
                bail!("member add: {}", resp.status());
            }
            lat.push(t.elapsed());
        }
        lat.sort();
        report.push(format!(
            "| {} | member add (1 user) | group of {}, sequential | | p50 {} ms | p99 {} ms | |",
            args.backend,
            size,
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        ));
    }
    for line in report {
        println!("{line}");
    }
    drop(server.child);
    drop_pg(&args, &pg_db).await;
    Ok(())
}

async fn drop_pg(args: &Args, pg_db: &str) {
    if args.backend == "postgres" {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(admin) = sqlx::PgPool::connect(&args.pg_admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"))
                .execute(&admin)
                .await;
        }
    }
}

/// Sequential SCIM PATCHes of one user; their latencies, sorted.
async fn patch_latencies(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    id: &str,
    n: usize,
) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": format!("Flood {i}")}]});
        let t = Instant::now();
        let r = client
            .patch(format!("{base}/Users/{id}"))
            .header("authorization", auth)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await?;
        if r.status().as_u16() != 200 {
            bail!("PATCH: {}", r.status());
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok(lat)
}

/// SCIM PATCH p50/p99 alone, then while `args.flood` tasks send Enroll calls with bad tokens
/// as fast as they are answered (over 8 connections).
async fn enroll_flood(args: &Args, server: &Server) -> Result<()> {
    use palisade_proto::v1 as pb;
    use palisade_proto::v1::agent_service_client::AgentServiceClient;
    let client = reqwest::Client::new();
    let auth = format!("Bearer {}", server.token);
    let base = server.base.trim_end_matches('/').to_string();
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "flood@example.com", "active": true});
    let r: Value = client
        .post(format!("{base}/Users"))
        .header("authorization", &auth)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await?
        .json()
        .await?;
    let id = r["id"]
        .as_str()
        .ok_or_else(|| anyhow!("user create: {r}"))?
        .to_string();
    let quiet = patch_latencies(&client, &base, &auth, &id, args.patches).await?;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(
            tonic::transport::Endpoint::from_shared(server.grpc.clone())?
                .connect()
                .await?,
        );
    }
    let mut tasks = Vec::new();
    for i in 0..args.flood {
        let mut c = AgentServiceClient::new(channels[i % channels.len()].clone());
        let (stop, calls, limited) = (stop.clone(), calls.clone(), limited.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = c
                    .enroll(pb::EnrollRequest {
                        enroll_token: format!("pal_enroll_guess{i}x{n}"),
                        user_name: "flood@example.com".into(),
                        hostname: "flood".into(),
                        os: "linux".into(),
                        agent_version: "bench".into(),
                        ..Default::default()
                    })
                    .await;
                calls.fetch_add(1, Ordering::Relaxed);
                if let Err(s) = r {
                    if s.code() == tonic::Code::ResourceExhausted {
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let calls0 = calls.load(Ordering::Relaxed);
    let flooded = patch_latencies(&client, &base, &auth, &id, args.patches).await?;
    let rate = (calls.load(Ordering::Relaxed) - calls0) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "| {} | SCIM PATCH, quiet | {} sequential | p50 {} ms | p99 {} ms |",
        args.backend,
        args.patches,
        ms(percentile(&quiet, 0.5)),
        ms(percentile(&quiet, 0.99))
    );
    println!(
        "| {} | SCIM PATCH, {} concurrent bad Enrolls ({:.0} answered/s, {} rate limited) | {} sequential | p50 {} ms | p99 {} ms |",
        args.backend,
        args.flood,
        rate,
        limited.load(Ordering::Relaxed),
        args.patches,
        ms(percentile(&flooded, 0.5)),
        ms(percentile(&flooded, 0.99))
    );
    Ok(())
}
