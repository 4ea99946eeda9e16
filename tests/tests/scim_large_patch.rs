//! A 1 MiB PATCH adding ~58,000 members applies them all, and two such PATCHes running at once
//! do not stall other requests: `/healthz` keeps answering while they run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use palisade_tests::*;

backend_tests! {
    large_member_patch => large_member_patch_sqlite, large_member_patch_postgres;
}

async fn large_member_patch(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let ids: Vec<String> = (0..LARGE_PATCH_MEMBERS).map(short_user_id).collect();
    seed_users_sql(&cp, &ids).await?;
    let body = add_members_body(&ids);
    let size = body.to_string().len();
    if !(1_000_000..1024 * 1024).contains(&size) {
        bail!("the PATCH body should be just under 1 MiB, is {size} bytes");
    }

    // One PATCH: every member lands.
    let g1 = create_group(&scim, "big-one", &[]).await?;
    scim.patch(&format!("/Groups/{g1}"), &body)
        .await?
        .expect_group_patch()?;
    let members = group_members(&scim, &g1).await?;
    if members.len() != LARGE_PATCH_MEMBERS || !ids.iter().all(|id| members.contains(id)) {
        bail!(
            "expected all {LARGE_PATCH_MEMBERS} members after the PATCH, found {}",
            members.len()
        );
    }

    // Two at once, on two other groups, while /healthz is polled. The bound is a wide
    // correctness check (a stalled runtime answers after the PATCHes, many seconds later), not
    // a performance target: the measured figures are in BENCHMARKS.md.
    let g2 = create_group(&scim, "big-two", &[]).await?;
    let g3 = create_group(&scim, "big-three", &[]).await?;
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = Arc::clone(&done);
        let root = cp.root_url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut worst = Duration::ZERO;
            let mut answered = 0usize;
            while !done.load(Ordering::Relaxed) {
                let start = Instant::now();
                let r = client.get(format!("{root}/healthz")).send().await?;
                let status = r.status().as_u16();
                r.text().await?;
                if status != 200 {
                    bail!("/healthz answered {status} during the PATCHes");
                }
                worst = worst.max(start.elapsed());
                answered += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, anyhow::Error>((worst, answered))
        })
    };
    // Let the poller send its first request before the PATCHes start.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (p2, p3) = {
        let s2 = cp.scim();
        let s3 = cp.scim();
        let (b2, b3) = (body.clone(), body.clone());
        let (u2, u3) = (format!("/Groups/{g2}"), format!("/Groups/{g3}"));
        tokio::join!(async move { s2.patch(&u2, &b2).await }, async move {
            s3.patch(&u3, &b3).await
        },)
    };
    done.store(true, Ordering::Relaxed);
    let (worst, answered) = poller.await??;
    p2?.expect_group_patch()?;
    p3?.expect_group_patch()?;
    if answered == 0 {
        bail!("/healthz was never answered while the PATCHes ran");
    }
    if worst > Duration::from_secs(2) {
        bail!("/healthz took {worst:?} while two large PATCHes ran: the runtime was stalled");
    }
    for g in [&g2, &g3] {
        let n = group_members(&scim, g).await?.len();
        if n != LARGE_PATCH_MEMBERS {
            bail!("expected {LARGE_PATCH_MEMBERS} members in group {g}, found {n}");
        }
    }
    Ok(())
}
