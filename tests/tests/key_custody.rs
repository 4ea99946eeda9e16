//! Key custody end to end: the real control plane with `key-delivery proxy`, a real agent (its
//! relay on loopback) and a fake upstream Messages API started here. The developer-side files
//! hold only a local token; the upstream sees the real key; a streamed answer passes through
//! as it is produced; usage reaches `usage show`; a foreign token, another account's process
//! and an unreachable upstream get clear errors; a deactivation makes the relay refuse.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use palisade_tests::workstation::{
    files_containing, set_org_api_key, start_with_key_relay, Workstation,
};
use palisade_tests::{backend_tests, Backend};
use serde_json::{json, Value};

const REAL_KEY: &str = "sk-ant-api03-REAL-ORG-KEY-never-on-the-laptop";
const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Upstream {
    /// (x-api-key, had an Authorization header) of every request.
    seen: Mutex<Vec<(String, bool)>>,
    /// Holds a streamed answer after its first event until the test releases it.
    gate: tokio::sync::Notify,
}

fn sse(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

async fn upstream_messages(
    State(u): State<Arc<Upstream>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Ok(mut seen) = u.seen.lock() {
        seen.push((key, headers.contains_key("authorization")));
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req["stream"] == json!(true) {
        let first = sse(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "model": "claude-test-stream", "content": [], "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        );
        let rest = [
            sse("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            sse("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "relayed"}})),
            sse("content_block_stop", &json!({"type": "content_block_stop", "index": 0})),
            sse("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}})),
            sse("message_stop", &json!({"type": "message_stop"})),
        ]
        .concat();
        let gate = u.clone();
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
            futures::stream::once(async move {
                gate.gate.notified().await;
                Ok(rest)
            }),
        );
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap_or_default();
    }
    let answer = json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-test-json",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 11, "output_tokens": 3}});
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(answer.to_string()))
        .unwrap_or_default()
}

/// A redirect to another host: the relay must hand it back, never follow it with the key.
async fn upstream_redirect() -> Response {
    Response::builder()
        .status(307)
        .header("location", "http://127.0.0.1:9/steal")
        .body(Body::empty())
        .unwrap_or_default()
}

async fn upstream_overloaded() -> Response {
    Response::builder()
        .status(529)
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"upstream says overloaded"}}"#,
        ))
        .unwrap_or_default()
}

async fn start_upstream() -> Result<(SocketAddr, Arc<Upstream>, tokio::task::JoinHandle<()>)> {
    let state = Arc::new(Upstream::default());
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(upstream_messages))
        .route("/v1/overloaded", axum::routing::post(upstream_overloaded))
        .route("/v1/redirect", axum::routing::post(upstream_redirect))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, state, task))
}

/// A real HTTP CONNECT proxy (tinyproxy from Debian, installed by `tests/setup-test-deps.sh`)
/// on its own port, allowed to tunnel to `connect_port`.
struct Tinyproxy {
    child: std::process::Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Tinyproxy {
    fn start(connect_port: u16) -> Result<Tinyproxy> {
        let dir = tempfile::tempdir()?;
        // tinyproxy drops to `nobody`, which must be able to write its log.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let conf = dir.path().join("tinyproxy.conf");
        let log = dir.path().join("tinyproxy.log");
        std::fs::write(
            &conf,
            format!(
                "User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\n\
                 ConnectPort {connect_port}\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 20\n",
                log.display()
            ),
        )?;
        let child = std::process::Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting tinyproxy (tests/setup-test-deps.sh installs it)")?;
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("tinyproxy did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Tinyproxy {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay URL the drop-in points Claude Code at.
fn relay_url(w: &Workstation) -> Option<String> {
    w.drop_in()?
        .pointer("/env/ANTHROPIC_BASE_URL")?
        .as_str()
        .map(str::to_owned)
}

/// What the developer's helper prints.
async fn helper_output(w: &Workstation) -> Result<String> {
    let d = w.drop_in().ok_or_else(|| anyhow!("no drop-in"))?;
    let helper = d["apiKeyHelper"]
        .as_str()
        .ok_or_else(|| anyhow!("no apiKeyHelper: {d}"))?;
    let out = tokio::process::Command::new("sh")
        .args(["-c", helper])
        .output()
        .await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn messages_body(stream: bool) -> Value {
    json!({"model": "claude-test", "max_tokens": 16, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn the_relay_keeps_the_key(backend: Backend) -> Result<()> {
    let (upstream_addr, upstream, upstream_task) = start_upstream().await?;
    let cp =
        start_with_key_relay(backend, REAL_KEY, &format!("http://{upstream_addr}"), &[]).await?;
    let scim = cp.scim();
    let uid = palisade_tests::create_user(&scim, "keyholder@example.com").await?;
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "keyholder@example.com").await?;
    w.start()?;
    w.wait_for("the relay in the drop-in", |w| relay_url(w).is_some())
        .await?;
    let relay = relay_url(&w).ok_or_else(|| anyhow!("no relay URL"))?;
    assert!(relay.starts_with("http://127.0.0.1:"), "{relay}");

    // The helper prints a local token; no developer-side file holds the key.
    let token = helper_output(&w).await?;
    assert!(token.starts_with("pal_local_"), "helper printed {token:?}");
    let state = w.state();
    let leaks = files_containing(w.root(), REAL_KEY, Some(&state));
    assert!(
        leaks.is_empty(),
        "the real key is in developer-side files: {leaks:?}"
    );
    assert!(
        std::fs::read_to_string(state.join("upstream-key"))?.contains(REAL_KEY),
        "the agent keeps the key in its state directory"
    );

    // Redirects are not followed here either: what the relay answers is what is checked.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // A streamed answer passes through as it is produced: the first event arrives while the
    // upstream still holds the rest (a buffering relay would wait for the whole answer).
    let resp = http
        .post(format!("{relay}/v1/messages?beta=true"))
        .header("x-api-key", &token)
        .header("authorization", format!("Bearer {token}"))
        .json(&messages_body(true))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(WAIT, body.next())
        .await
        .context("the first event never arrived: the relay buffers")?
        .ok_or_else(|| anyhow!("empty answer"))??;
    assert!(
        String::from_utf8_lossy(&first).contains("message_start"),
        "{first:?}"
    );
    upstream.gate.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk?);
    }
    assert!(String::from_utf8_lossy(&rest).contains("relayed"));

    // A JSON answer, then the upstream's own error, passed through unchanged.
    let resp = http
        .post(format!("{relay}/v1/messages"))
        .header("x-api-key", &token)
        .json(&messages_body(false))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await?["usage"]["input_tokens"], 11);
    let resp = http
        .post(format!("{relay}/v1/overloaded"))
        .header("x-api-key", &token)
        .json(&messages_body(false))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 529);
    assert!(resp.text().await?.contains("upstream says overloaded"));

    // A redirect comes back as it is: the relay never follows one with the key.
    let resp = http
        .post(format!("{relay}/v1/redirect"))
        .header("x-api-key", &token)
        .json(&messages_body(false))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("http://127.0.0.1:9/steal")
    );
    // Dot segments would leave the upstream's base (or dodge the meter): refused. Sent raw,
    // since HTTP clients normalise them away.
    for path in ["/v1/./messages", "/v1/../v1/messages"] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = relay.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {token}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            )
            .as_bytes(),
        )
        .await?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }

    // The upstream saw the real key, never the token or an Authorization header.
    let seen = upstream.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|(k, auth)| k == REAL_KEY && !auth),
        "{seen:?}"
    );

    // `status` says what the relay does.
    let status = w.command("status").arg("--json").output().await?;
    let status: Value = serde_json::from_slice(&status.stdout)?;
    let shown = status["relay"].as_str().unwrap_or_default();
    assert!(
        shown.starts_with(&relay)
            && shown.contains(&format!("forwarding to http://{upstream_addr}")),
        "status: {status}"
    );

    // Claude Code's reachability probe is answered by the relay itself, without a token.
    let probe = http.head(format!("{relay}/api/hello")).send().await?;
    assert_eq!(probe.status(), 200);

    // No token, someone else's token: refused before the upstream.
    for bad in [None, Some("sk-ant-api03-personal"), Some("pal_local_00ff")] {
        let mut req = http
            .post(format!("{relay}/v1/messages"))
            .json(&messages_body(false));
        if let Some(t) = bad {
            req = req.header("x-api-key", t);
        }
        let resp = req.send().await?;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(resp.text().await?.contains("Palisade"));
    }
    // Another account on this computer presenting the developer's token (Linux checks the
    // client socket's owner).
    if cfg!(target_os = "linux") && w.developer_uid()? == 0 {
        let out = tokio::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
            ])
            .args([
                "-H",
                &format!("x-api-key: {token}"),
                "-H",
                "content-type: application/json",
            ])
            .args([
                "--data",
                &messages_body(false).to_string(),
                &format!("{relay}/v1/messages"),
            ])
            .output()
            .await?;
        // Closed at accept (curl reports 000) or refused: never forwarded.
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            code == "000" || code == "403",
            "another uid's request: {out:?}"
        );
    }
    let seen = upstream.seen.lock().map(|s| s.len()).unwrap_or_default();
    assert_eq!(seen, 2, "refused requests reached the upstream");
    let log = w.log();
    assert!(
        !log.contains(REAL_KEY) && !log.contains(&token),
        "a credential is in the agent's log"
    );

    // Usage reaches the control plane: 2 requests, 30 + 11 input and 7 + 3 output tokens.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = cp
            .cli_ok(&[
                "usage", "show", "--org", "default", "--since", "1d", "--json",
            ])
            .await?;
        let v: Value = serde_json::from_str(&out)?;
        let person = &v["people"][0];
        if person["requests"] == json!(2) {
            assert_eq!(person["name"], "keyholder@example.com", "{v}");
            assert_eq!(person["input_tokens"], 41, "{v}");
            assert_eq!(person["output_tokens"], 10, "{v}");
            assert_eq!(person["devices"], 1, "{v}");
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("usage never reached the control plane: {v}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Rotation: the admin stores a new key; the relay forwards with it, the token stays.
    const ROTATED: &str = "sk-ant-api03-ROTATED-ORG-KEY";
    set_org_api_key(&cp, ROTATED).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = http
            .post(format!("{relay}/v1/messages"))
            .header("x-api-key", &token)
            .json(&messages_body(false))
            .send()
            .await?;
        assert_eq!(resp.status(), 200);
        let last = upstream
            .seen
            .lock()
            .ok()
            .and_then(|s| s.last().map(|(k, _)| k.clone()));
        if last.as_deref() == Some(ROTATED) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the rotated key never reached the relay (last seen {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        helper_output(&w).await?,
        token,
        "rotation changed the token"
    );

    // The agent stopped: the helper fails with a message naming Palisade (what Claude Code
    // shows), not a silent connection error.
    w.stop().await;
    let d = w.drop_in().ok_or_else(|| anyhow!("no drop-in"))?;
    let helper = d["apiKeyHelper"].as_str().unwrap_or_default().to_owned();
    let out = tokio::process::Command::new("sh")
        .args(["-c", &helper])
        .output()
        .await?;
    assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Palisade agent is not running"),
        "{out:?}"
    );
    // Another program takes the relay's port while the agent is down and answers like a relay
    // (any account can bind a loopback port): it cannot prove it derives the token, so the
    // helper hands it nothing and says why.
    let relay_addr: SocketAddr = relay.trim_start_matches("http://").parse()?;
    let squatter = tokio::net::TcpListener::bind(relay_addr).await?;
    let squatter_task = tokio::spawn(async move {
        let app = axum::Router::new()
            .fallback(|| async { axum::Json(json!({"proof": "00".repeat(32)})) });
        let _ = axum::serve(squatter, app).await;
    });
    let out = tokio::process::Command::new("sh")
        .args(["-c", &helper])
        .output()
        .await?;
    squatter_task.abort();
    let _ = squatter_task.await;
    assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not this computer's Palisade agent"),
        "{out:?}"
    );
    w.start()?;
    w.wait_for("the relay back", |w| {
        relay_url(w).is_some_and(|u| u != relay)
    })
    .await?;
    let relay = relay_url(&w).ok_or_else(|| anyhow!("no relay URL"))?;
    // A connection that never sends a request is closed after the relay's head timeout
    // (30 s), so idle connections cannot hold its slots; the rest of the test runs meanwhile.
    let idle_addr: SocketAddr = relay.trim_start_matches("http://").parse()?;
    let idle = tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let mut conn = tokio::net::TcpStream::connect(idle_addr).await?;
        let opened = tokio::time::Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut buf)).await;
        anyhow::Ok((read.is_ok(), opened.elapsed()))
    });

    // The upstream down: a clear error naming Palisade, not a hang.
    upstream_task.abort();
    let _ = upstream_task.await;
    let resp = http
        .post(format!("{relay}/v1/messages"))
        .header("x-api-key", &token)
        .json(&messages_body(false))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(resp.text().await?.contains("could not be reached"));

    // Deactivation: the relay refuses at once, and the token is gone with the rest.
    scim.patch_ops(
        &format!("/Users/{uid}"),
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await?
    .expect(200)?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = http
            .post(format!("{relay}/v1/messages"))
            .header("x-api-key", &token)
            .json(&messages_body(false))
            .send()
            .await?;
        if resp.status() == StatusCode::FORBIDDEN {
            assert!(resp
                .text()
                .await?
                .contains("your access was removed by your organisation"));
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the relay still answers {} after deactivation",
                resp.status()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.wait_for("the wipe", |w| !w.state().join("upstream-key").exists())
        .await?;
    let after = helper_output(&w).await?;
    assert!(
        after != token && (after.is_empty() || after == "pal_local_revoked"),
        "the token survived the wipe: {after:?}"
    );
    let (closed, after) = idle.await??;
    assert!(
        closed && after >= Duration::from_secs(25),
        "an idle connection was closed: {closed}, after {after:?}"
    );
    w.stop().await;
    Ok(())
}

/// The control plane unreachable past the grace under the `lockdown` offline rule: the relay
/// refuses as the settings lock down (contact coming back lifts both through the same path,
/// `agent_e2e.rs` checks the lifting for the settings).
async fn the_offline_rule_applies_to_the_relay(backend: Backend) -> Result<()> {
    let (upstream_addr, _upstream, _task) = start_upstream().await?;
    let mut cp = start_with_key_relay(
        backend,
        REAL_KEY,
        &format!("http://{upstream_addr}"),
        &["--offline-rule", "lockdown", "--offline-grace", "3s"],
    )
    .await?;
    palisade_tests::create_user(&cp.scim(), "away@example.com").await?;
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "away@example.com").await?;
    w.start()?;
    w.wait_for("the relay in the drop-in", |w| relay_url(w).is_some())
        .await?;
    let relay = relay_url(&w).ok_or_else(|| anyhow!("no relay URL"))?;
    let token = helper_output(&w).await?;
    let http = reqwest::Client::new();
    let ask = || {
        http.post(format!("{relay}/v1/messages"))
            .header("x-api-key", &token)
            .json(&messages_body(false))
            .send()
    };
    assert_eq!(ask().await?.status(), 200);
    cp.kill9();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = ask().await?;
        if resp.status() == StatusCode::FORBIDDEN {
            assert!(resp.text().await?.contains("has not reached"));
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the relay kept serving past the offline deadline");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.stop().await;
    Ok(())
}

/// The upstream over TLS: the relay checks its certificate against the OS trust store (here a
/// test CA handed to the agent through `SSL_CERT_FILE`, which the native-roots loader reads)
/// and speaks HTTP/2 when the upstream offers it; without that CA the upstream is refused;
/// with `HTTPS_PROXY` the relay tunnels through the corporate proxy (Debian's tinyproxy).
async fn the_relay_speaks_tls_and_http2(backend: Backend) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = tempfile::tempdir()?;
    let (ca, cert, server_key) = palisade_tests::pki::make_pki(pki.path(), "upstream")?;
    let versions: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = versions.clone();
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let key = req
                    .headers()
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if let Ok(mut s) = seen.lock() {
                    s.push(format!("{:?} {key}", req.version()));
                }
                axum::Json(json!({"type": "message", "model": "tls", "content": [],
                    "usage": {"input_tokens": 1, "output_tokens": 1}}))
            }
        }),
    );
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &server_key).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum_server::from_tcp_rustls(listener, tls)
            .serve(app.into_make_service())
            .await;
    });

    let cp = start_with_key_relay(backend, REAL_KEY, &format!("https://{addr}"), &[]).await?;
    palisade_tests::create_user(&cp.scim(), "tls@example.com").await?;
    let proxy = Tinyproxy::start(addr.port())?;
    let http = reqwest::Client::new();
    let mut outcomes = Vec::new();
    // Trusted directly; not trusted; trusted through the corporate proxy (HTTPS_PROXY).
    let cases: [(bool, Option<&str>); 3] = [(true, None), (false, None), (true, Some(&proxy.url))];
    for (trust, via) in cases {
        let mut w = Workstation::new()?;
        w.enroll_ok(&cp, "tls@example.com").await?;
        let mut env: Vec<(&str, &str)> = Vec::new();
        if trust {
            env.push(("SSL_CERT_FILE", &ca));
        }
        if let Some(p) = via {
            env.push(("HTTPS_PROXY", p));
        }
        w.start_with_env(&env)?;
        w.wait_for("the relay in the drop-in", |w| relay_url(w).is_some())
            .await?;
        let relay = relay_url(&w).ok_or_else(|| anyhow!("no relay URL"))?;
        let token = helper_output(&w).await?;
        let resp = http
            .post(format!("{relay}/v1/messages"))
            .header("x-api-key", &token)
            .json(&messages_body(false))
            .send()
            .await?;
        outcomes.push((resp.status(), resp.text().await?));
        w.stop().await;
    }
    server.abort();
    assert_eq!(outcomes[0].0, StatusCode::OK, "{outcomes:?}");
    assert_eq!(outcomes[1].0, StatusCode::BAD_GATEWAY, "{outcomes:?}");
    assert!(
        outcomes[1].1.contains("could not be reached"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2].0, StatusCode::OK, "{outcomes:?}");
    let seen = versions.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(seen, vec![format!("HTTP/2.0 {REAL_KEY}"); 2], "{seen:?}");
    let log = proxy.log();
    assert!(
        log.contains("CONNECT") && log.contains(&addr.port().to_string()),
        "the relay did not tunnel through the proxy:\n{log}"
    );
    Ok(())
}

backend_tests! {
    the_relay_speaks_tls_and_http2 => the_relay_speaks_tls_and_http2_sqlite, the_relay_speaks_tls_and_http2_postgres;
    the_relay_keeps_the_key => the_relay_keeps_the_key_sqlite, the_relay_keeps_the_key_postgres;
    the_offline_rule_applies_to_the_relay => the_offline_rule_applies_to_the_relay_sqlite, the_offline_rule_applies_to_the_relay_postgres;
}
