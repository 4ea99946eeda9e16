//! Key custody with the real Claude Code client (pinned 2.1.332): the real agent writes the
//! drop-in for `key-delivery proxy`, the client runs against exactly that directory, and its
//! requests go through the agent's relay to a fake upstream Messages API. The upstream sees
//! the organisation's key; the client, its environment and every developer-side file only ever
//! hold the local token; the answer streams back; usage at the control plane matches what the
//! upstream reported; after a SCIM deactivation the client is refused with the message the
//! developer must see.

use std::time::Duration;

use anyhow::{ensure, Result};
use palisade_tests::claude_code::{ClaudeCode, FakeApi, Reply, RunOptions};
use palisade_tests::workstation::{files_containing, start_with_key_relay, Workstation};
use palisade_tests::Backend;
use serde_json::{json, Value};

const ORG_KEY: &str = "sk-ant-api03-ORG-KEY-kept-by-the-agent";
const WAIT: Duration = Duration::from_secs(30);

/// POSTs to /v1/messages the upstream received.
fn message_calls(api: &FakeApi) -> usize {
    api.requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path.starts_with("/v1/messages"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_uses_the_key_only_through_the_relay() -> Result<()> {
    let Some(cc) = ClaudeCode::find_or_skip()? else {
        return Ok(());
    };
    let upstream = FakeApi::start(vec![Reply::text("answered through the relay")]).await?;
    let cp = start_with_key_relay(Backend::Sqlite, ORG_KEY, &upstream.url(), &[]).await?;
    let scim = cp.scim();
    let uid = palisade_tests::create_user(&scim, "relayed@example.com").await?;
    let mut ws = Workstation::new()?;
    ws.enroll_ok(&cp, "relayed@example.com").await?;
    ws.start()?;
    ws.wait_for("the relay in the drop-in", |w| {
        w.drop_in()
            .is_some_and(|d| d.pointer("/env/ANTHROPIC_BASE_URL").is_some())
    })
    .await?;

    let r = cc
        .run(&ws.settings(), RunOptions::new().prompt("say hello"))
        .await?;
    ensure!(
        r.success(),
        "the client failed:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    // The client went through the relay (the harness's own API, which its environment points
    // at, got no call: the managed env wins), with the helper's local token.
    ensure!(
        message_calls_of(&r) == 0,
        "the client bypassed the relay: {:?}",
        r.requests
    );
    ensure!(
        r.init()?.api_key_source == "apiKeyHelper",
        "key source: {}",
        r.init()?.api_key_source
    );
    let calls = upstream.requests();
    let turns: Vec<_> = calls
        .iter()
        .filter(|q| q.method == "POST" && q.path.starts_with("/v1/messages"))
        .collect();
    ensure!(!turns.is_empty(), "the upstream got no call: {calls:?}");
    for t in &turns {
        ensure!(
            t.x_api_key() == Some(ORG_KEY) && t.bearer().is_none(),
            "the upstream must see the org key and no bearer: {:?}",
            t.headers
        );
    }
    let text = r.result_event().map(Value::to_string).unwrap_or_default();
    ensure!(
        text.contains("answered through the relay"),
        "the streamed answer did not arrive: {text}"
    );
    // No trace of the key where the developer's account can look.
    ensure!(!r.stdout.contains(ORG_KEY) && !r.stderr.contains(ORG_KEY));
    let in_home = files_containing(&r.home, ORG_KEY, None);
    ensure!(
        in_home.is_empty(),
        "the key is in the client's home: {in_home:?}"
    );
    let state = ws.state();
    let on_laptop = files_containing(ws.root(), ORG_KEY, Some(&state));
    ensure!(
        on_laptop.is_empty(),
        "the key is in developer-side files: {on_laptop:?}"
    );

    // Usage at the control plane equals what the upstream reported (10 in, 5 out per call).
    let n = message_calls(&upstream) as i64;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = cp
            .cli_ok(&["usage", "show", "--org", "default", "--json"])
            .await?;
        let v: Value = serde_json::from_str(&out)?;
        let p = &v["people"][0];
        if p["requests"] == json!(n) {
            ensure!(p["input_tokens"] == json!(10 * n), "{v}");
            ensure!(p["output_tokens"] == json!(5 * n), "{v}");
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "usage never matched {n} calls: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deactivated: the next run is refused with the organisation's message, and the upstream
    // hears nothing more.
    scim.patch_ops(
        &format!("/Users/{uid}"),
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await?
    .expect(200)?;
    ws.wait_for("the wipe", |w| !w.state().join("upstream-key").exists())
        .await?;
    let before = message_calls(&upstream);
    let r = cc
        .run(&ws.settings(), RunOptions::new().prompt("say hello again"))
        .await?;
    let shown = format!("{}\n{}", r.stdout, r.stderr);
    ensure!(
        shown.contains("your access was removed by your organisation"),
        "the client did not show the refusal:\n{shown}"
    );
    ensure!(
        message_calls(&upstream) == before,
        "a request reached the upstream after deactivation"
    );
    ws.stop().await;
    drop(cp);
    Ok(())
}

/// POSTs to /v1/messages the harness's own fake API (the client's environment) received.
fn message_calls_of(r: &palisade_tests::claude_code::RunResult) -> usize {
    r.requests
        .iter()
        .filter(|q| q.method == "POST" && q.path.starts_with("/v1/messages"))
        .count()
}
