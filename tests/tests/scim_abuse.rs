//! Limits against abuse: body size, filter length and nesting, count cap, rate limiting, and
//! attempts to get around authentication with encoded or dotted paths.

use std::time::Duration;

use anyhow::{bail, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use palisade_tests::*;
use serde_json::json;

backend_tests! {
    body_limit => body_limit_sqlite, body_limit_postgres;
    filter_limits => filter_limits_sqlite, filter_limits_postgres;
    count_cap => count_cap_sqlite, count_cap_postgres;
    rate_limit => rate_limit_sqlite, rate_limit_postgres;
    path_auth_bypass => path_auth_bypass_sqlite, path_auth_bypass_postgres;
    plaintext_non_loopback_refused => plaintext_non_loopback_refused_sqlite, plaintext_non_loopback_refused_postgres;
}

const MIB: usize = 1024 * 1024;

async fn body_limit(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();

    // Just over 1 MiB of valid JSON: 413 with a SCIM body, nothing created.
    let mut big = user("big@example.com");
    big["displayName"] = json!("x".repeat(MIB + 16));
    let r = scim.post("/Users", &big).await?;
    r.expect_error(413, None)?;
    let r = scim
        .get_q("/Users", &[("filter", "userName eq \"big@example.com\"")])
        .await?;
    check_eq(r.total()?, 0, "413 created nothing", &r)?;

    // Also for PATCH and .search, and when sent without Content-Length (chunked).
    let id = create_user(&scim, "small@example.com").await?;
    let p = patch_body(
        json!([{"op": "replace", "path": "displayName", "value": "y".repeat(MIB + 16)}]),
    );
    scim.patch(&format!("/Users/{id}"), &p)
        .await?
        .expect_error(413, None)?;
    scim.post("/Users/.search", &json!({"schemas": [SEARCH_URN], "filter": format!("userName eq \"{}\"", "z".repeat(MIB + 16))})).await?.expect_error(413, None)?;
    let mut chunked = Vec::new();
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 64 * 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let auth = format!("Bearer {}", cp.token);
    let r = raw_http(
        &cp.addr,
        "POST",
        "/scim/v2/Users",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/scim+json"),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunked,
    )
    .await?;
    if r.status != 413 {
        bail!("chunked body over 1 MiB: expected 413, got {r:?}");
    }

    // Below the limit is processed normally.
    let mut ok = user("under@example.com");
    ok["nickName"] = json!("n".repeat(MIB / 2));
    let r = scim.post("/Users", &ok).await?;
    check(
        r.status != 413,
        "a 512 KiB body is under the 1 MiB limit",
        &r,
    )?;

    // The server is still healthy.
    let (s, _) = cp.get_root("/healthz").await?;
    if s != 200 {
        bail!("/healthz after oversized bodies: {s}");
    }
    Ok(())
}

async fn filter_limits(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    create_user(&scim, "f@example.com").await?;

    // Length.
    let long = format!("userName eq \"{}\"", "a".repeat(4097));
    scim.get_q("/Users", &[("filter", &long)])
        .await?
        .expect_error(400, Some("invalidFilter"))?;
    scim.post(
        "/Users/.search",
        &json!({"schemas": [SEARCH_URN], "filter": long}),
    )
    .await?
    .expect_error(400, Some("invalidFilter"))?;
    let ok_len = format!("userName eq \"{}\"", "a".repeat(3500));
    let r = scim.get_q("/Users", &[("filter", &ok_len)]).await?;
    check_eq(r.total()?, 0, "a 3.5 KB filter is within the limit", &r)?;

    // Nesting: modest depth is fine, beyond 32 is invalidFilter.
    let nest = |depth: usize| {
        format!(
            "{}userName eq \"f@example.com\"{}",
            "(".repeat(depth),
            ")".repeat(depth)
        )
    };
    let r = scim.get_q("/Users", &[("filter", &nest(10))]).await?;
    check_eq(r.total()?, 1, "10 levels of parentheses", &r)?;
    let nots = |depth: usize| {
        format!(
            "{}userName eq \"f@example.com\"{}",
            "not (".repeat(depth),
            ")".repeat(depth)
        )
    };
    let r = scim.get_q("/Users", &[("filter", &nots(10))]).await?;
    check_eq(r.total()?, 1, "not applied 10 times is the identity", &r)?;
    for f in [
        nest(40),
        nest(1500),
        nots(40),
        nots(600),
        format!(
            "emails[{}type eq \"work\"{}]",
            "(".repeat(100),
            ")".repeat(100)
        ),
    ] {
        scim.get_q("/Users", &[("filter", &f)])
            .await?
            .expect_error(400, Some("invalidFilter"))?;
        scim.post(
            "/Users/.search",
            &json!({"schemas": [SEARCH_URN], "filter": f}),
        )
        .await?
        .expect_error(400, Some("invalidFilter"))?;
    }
    // Unbalanced deep input must also fail cleanly.
    scim.get_q("/Users", &[("filter", &"(".repeat(3000))])
        .await?
        .expect_error(400, Some("invalidFilter"))?;
    // Long and/or chains are length-bounded, not a crash.
    let chain = vec!["userName eq \"x\""; 400].join(" or ");
    scim.get_q("/Users", &[("filter", &chain)])
        .await?
        .expect_error(400, Some("invalidFilter"))?;
    // Deeply nested PATCH paths too.
    let id = create_user(&scim, "p@example.com").await?;
    let deep_path = format!(
        "emails[{}type eq \"work\"{}].value",
        "(".repeat(2000),
        ")".repeat(2000)
    );
    let r = scim
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": deep_path, "value": "x"}]),
        )
        .await?;
    r.expect_error(400, None)?;

    let (s, _) = cp.get_root("/healthz").await?;
    if s != 200 {
        bail!("/healthz after hostile filters: {s}");
    }
    scim.get("/Users").await?.expect(200)?;
    Ok(())
}

async fn count_cap(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let r = scim.get("/ServiceProviderConfig").await?;
    r.expect(200)?;
    let max = r.body["filter"]["maxResults"]
        .as_u64()
        .filter(|m| *m > 0)
        .ok_or_else(|| anyhow::anyhow!("filter.maxResults missing:\n{r}"))? as usize;
    if max > 5000 {
        bail!("filter.maxResults = {max}: too large to verify the cap in a test (and a risky page size)");
    }

    // maxResults + 3 users, created 8 at a time.
    let n = max + 3;
    stream::iter(0..n)
        .map(|i| {
            let scim = scim.clone();
            async move { create_user(&scim, &format!("cap-{i:05}@example.com")).await }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;

    for q in [
        format!("/Users?count={}", max + 500),
        format!("/Users?count={}", u32::MAX),
        "/Users".to_string(),
    ] {
        let r = scim.get(&q).await?;
        let res = r.list()?;
        check_eq(r.total()?, n as u64, "totalResults counts everything", &r)?;
        check(
            res.len() <= max,
            &format!(
                "{q}: at most filter.maxResults ({max}) resources, got {}",
                res.len()
            ),
            &r,
        )?;
        if q.contains("count=") {
            check_eq(
                res.len(),
                max,
                "an over-large count is capped at maxResults",
                &r,
            )?;
        }
    }
    let r = scim
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH_URN], "count": max * 10}),
        )
        .await?;
    check_eq(r.list()?.len(), max, ".search count capped", &r)?;
    // The remainder is reachable by paging.
    let r = scim
        .get(&format!("/Users?startIndex={}&count={}", max + 1, max))
        .await?;
    check_eq(r.list()?.len(), 3, "the last page", &r)?;
    Ok(())
}

async fn rate_limit(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(
        backend,
        &["--scim-rate-limit", "5", "--scim-rate-burst", "5"],
    )
    .await?;
    let second = cp.create_token("default", "second credential").await?;
    let scim = cp.scim();

    // The burst is allowed, then 429 with Retry-After and a SCIM body.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..30 {
        let r = scim.get("/Users").await?;
        statuses.push(r.status);
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let Some(r) = limited else {
        bail!("30 back-to-back requests at 5 req/s (burst 5) were never limited: {statuses:?}")
    };
    if statuses.iter().filter(|s| **s == 200).count() < 4 {
        bail!("the first requests of the burst must succeed: {statuses:?}");
    }
    r.expect_error(429, None)?;
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("429 needs an integer Retry-After:\n{r}"))?;
    check(
        (1..=60).contains(&retry),
        "Retry-After is a sensible number of seconds",
        &r,
    )?;

    // The limit is per credential: another token of the same org is not limited.
    let other = cp.scim_with(Some(&second));
    other.get("/Users").await?.expect(200)?;

    // Writes are limited too and a limited write does nothing.
    let r = scim.post("/Users", &user("limited@example.com")).await?;
    if r.status == 429 {
        let r2 = other
            .get_q(
                "/Users",
                &[("filter", "userName eq \"limited@example.com\"")],
            )
            .await?;
        check_eq(r2.total()?, 0, "a 429 write created nothing", &r2)?;
    }

    // After Retry-After the credential works again.
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(300)).await;
    scim.get("/Users").await?.expect(200)?;

    // Sustained 2 req/s (under the limit) is never limited.
    for _ in 0..5 {
        other.get("/ServiceProviderConfig").await?.expect(200)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Health endpoints are not behind the SCIM limiter.
    for _ in 0..20 {
        let (s, _) = cp.get_root("/healthz").await?;
        if s != 200 {
            bail!("/healthz must not be rate limited: {s}");
        }
    }
    Ok(())
}

async fn path_auth_bypass(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let id = create_user(&scim, "secret.user@example.com").await?;
    let g = create_group(&scim, "Secret Group", &[&id]).await?;

    let targets = vec![
        "/scim/v2/%2e%2e/healthz".to_string(),
        "/scim/v2/%2E%2E/healthz".to_string(),
        "/scim/v2/Users/..%2f..%2fhealthz".to_string(),
        "/scim/v2/Users/..%2F..%2Fhealthz".to_string(),
        "/scim//v2/Users".to_string(),
        "/scim/v2//Users".to_string(),
        "//scim/v2/Users".to_string(),
        "/scim/v2/Users/".to_string(),
        "/scim/v2/./Users".to_string(),
        "/scim/v2/%2e/Users".to_string(),
        "/scim/v2/Users/../Users".to_string(),
        "/scim/v2/%55sers".to_string(),
        "/scim/%76%32/Users".to_string(),
        "/scim/v2/Users%2f".to_string(),
        "/scim/v2/Users;/healthz".to_string(),
        "/healthz/../scim/v2/Users".to_string(),
        "/healthz/%2e%2e/scim/v2/Users".to_string(),
        "/readyz/..%2fscim/v2/Users".to_string(),
        "/healthz%2f..%2fscim/v2/Users".to_string(),
        "/SCIM/V2/Users".to_string(),
        format!("/scim/v2/Users/{id}"),
        format!("/scim/v2/Users/{id}/"),
        format!("/scim/v2/Users/%2e%2e/Users/{id}"),
        format!("/scim/v2/Groups/{g}"),
        format!("/scim/v2/healthz/../Groups/{g}"),
        "/scim/v2/Users?access_token=x".to_string(),
        format!("/scim/v2/Users/{id}?filter=userName%20pr"),
        "/scim/v2/ResourceTypes/../Users".to_string(),
    ];
    let mut failures = Vec::new();
    for t in &targets {
        for method in ["GET", "DELETE"] {
            let r = raw_http(&cp.addr, method, t, &[], b"").await?;
            let leaked = r.body.contains("secret.user@example.com")
                || r.body.contains("Secret Group")
                || r.body.contains(&id);
            if !(r.status == 401 || r.status == 404) || leaked {
                failures.push(format!(
                    "  {method} {t} -> {} {}",
                    r.status,
                    truncate(&r.body, 300)
                ));
            }
        }
    }
    // Same with a header that looks like auth but is not a valid bearer token.
    for t in ["/scim/v2/Users", "/scim/v2/%2e%2e/scim/v2/Users"] {
        let r = raw_http(&cp.addr, "GET", t, &[("Authorization", "Bearer ")], b"").await?;
        if !(r.status == 401 || r.status == 404) || r.body.contains("secret.user@example.com") {
            failures.push(format!(
                "  GET {t} with an empty bearer -> {} {}",
                r.status,
                truncate(&r.body, 300)
            ));
        }
    }
    if !failures.is_empty() {
        bail!(
            "unauthenticated requests must get 401 or 404 and no data:\n{}",
            failures.join("\n")
        );
    }
    // Nothing was deleted by those attempts.
    scim.get(&format!("/Users/{id}")).await?.expect(200)?;
    scim.get(&format!("/Groups/{g}")).await?.expect(200)?;
    Ok(())
}

/// Binding a non-loopback address without TLS is refused unless `--allow-plaintext` is given.
async fn plaintext_non_loopback_refused(backend: Backend) -> Result<()> {
    let db = TestDb::create(backend).await?;
    let args = [
        "serve",
        "--database-url",
        db.url.as_str(),
        "--http-addr",
        "0.0.0.0:0",
        "--grpc-addr",
        "127.0.0.1:0",
    ];
    let mut cmd = tokio::process::Command::new(binary_path());
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PALISADE_") {
            cmd.env_remove(k);
        }
    }
    match tokio::time::timeout(Duration::from_secs(15), cmd.output()).await {
        Err(_) => bail!("`serve --http-addr 0.0.0.0:0` without TLS or --allow-plaintext kept running instead of refusing"),
        Ok(out) => {
            let out = out?;
            if out.status.success() {
                bail!("`serve --http-addr 0.0.0.0:0` without TLS must exit with an error: {}", describe_output(&args, &out));
            }
            if String::from_utf8_lossy(&out.stdout).contains("SCIM base URL") {
                bail!("refused plaintext bind must not announce a base URL: {}", describe_output(&args, &out));
            }
        }
    }
    Ok(())
}
