//! `patch-bench`: times a 1 MiB SCIM PATCH adding ~58,000 members to a group, alone and two at
//! once, and how long `/healthz` takes to answer while they run (a stalled runtime shows here).
//!
//! Run: `cargo build --release -p palisade-control-plane -p palisade-tests --bins &&
//!       target/release/patch-bench --backend sqlite` (see BENCHMARKS.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use palisade_tests::*;

/// Polls `/healthz` every 10 ms until `done`; returns each answer's latency.
async fn poll_healthz(root: String, done: Arc<AtomicBool>) -> Result<Vec<Duration>> {
    let client = reqwest::Client::new();
    let mut latencies = Vec::new();
    while !done.load(Ordering::Relaxed) {
        let start = Instant::now();
        let r = client.get(format!("{root}/healthz")).send().await?;
        r.text().await?;
        latencies.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(latencies)
}

fn worst(l: &[Duration]) -> Duration {
    l.iter().copied().max().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let backend = match args
        .iter()
        .position(|a| a == "--backend")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
    {
        None | Some("sqlite") => Backend::Sqlite,
        Some("postgres") => Backend::Postgres,
        Some(other) => bail!("unknown backend {other:?}: sqlite or postgres"),
    };
    if std::env::var_os("PALISADE_CONTROL_PLANE_BIN").is_none() {
        std::env::set_var(
            "PALISADE_CONTROL_PLANE_BIN",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/release/palisade-control-plane"
            ),
        );
    }
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let ids: Vec<String> = (0..LARGE_PATCH_MEMBERS).map(short_user_id).collect();
    seed_users_sql(&cp, &ids).await?;
    let body = add_members_body(&ids);
    println!(
        "backend {backend:?}: PATCH of {} bytes adding {} members",
        body.to_string().len(),
        ids.len()
    );

    // One PATCH, /healthz polled meanwhile.
    let g1 = create_group(&scim, "bench-one", &[]).await?;
    let done = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_healthz(cp.root_url.clone(), Arc::clone(&done)));
    let start = Instant::now();
    scim.patch(&format!("/Groups/{g1}"), &body)
        .await?
        .expect_group_patch()?;
    let one = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let h1 = poller.await??;
    let n = group_members(&scim, &g1).await?.len();
    println!(
        "one PATCH: {:.2} s ({n} members applied); /healthz worst {} over {} requests",
        one.as_secs_f64(),
        bench::ms(worst(&h1)),
        h1.len()
    );

    // Two at once.
    let g2 = create_group(&scim, "bench-two", &[]).await?;
    let g3 = create_group(&scim, "bench-three", &[]).await?;
    let done = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_healthz(cp.root_url.clone(), Arc::clone(&done)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let (s2, s3) = (cp.scim(), cp.scim());
    let (u2, u3) = (format!("/Groups/{g2}"), format!("/Groups/{g3}"));
    let (r2, r3) = tokio::join!(s2.patch(&u2, &body), s3.patch(&u3, &body));
    let two = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let h2 = poller.await??;
    r2?.expect_group_patch()?;
    r3?.expect_group_patch()?;
    println!(
        "two PATCHes at once: {:.2} s for both; /healthz worst {} over {} requests",
        two.as_secs_f64(),
        bench::ms(worst(&h2)),
        h2.len()
    );
    Ok(())
}
