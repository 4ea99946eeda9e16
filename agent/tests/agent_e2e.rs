//! End-to-end tests of the real `palisade-agent` binary against a scripted in-process fake
//! control plane: enrollment, snapshots (ACK/NACK), API key, tamper restore, deprovisioning
//! and revocation wipes, the cached policy at restart, the offline rule, TLS with a pinned CA.
//! Every wait polls the file system or the fake's inbox with a generous timeout; nothing here
//! asserts on latency.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use palisade_agent::link::messages::OfflineRule;
use palisade_agent::Policy;
use serde_json::json;
use support::*;

fn policy_v1() -> Policy {
    policy_of(json!({
        "permissions": {"deny": ["Bash", "WebFetch"]},
        "security_level": "strict",
        "files": {"deny_write": ["/etc/ssh"]},
    }))
}

fn policy_v3() -> Policy {
    policy_of(json!({
        "permissions": {"deny": ["Bash"]},
        "security_level": "moderate",
        "skills": {"allowed": ["pdf"]},
    }))
}

/// Enrolls, starts `run`, applies `policy` as version 1 with the API key, and waits for the ACK.
async fn running_with_policy(
    server: &mut FakeServer,
    dirs: &Dirs,
    policy: &Policy,
    rule: OfflineRule,
    valid_until: i64,
) -> Running {
    enroll(dirs, server).await;
    let agent = Running::start(dirs);
    let hello = server.expect_hello().await;
    assert_eq!(hello.last_applied_version, 0);
    server.send(snapshot(1, policy, Some(API_KEY), valid_until, rule));
    let ack = server.expect_ack().await;
    assert_eq!((ack.version, ack.nonce.as_str()), (1, "nonce-1"));
    let expected = dirs.expected(policy);
    agent
        .wait_until("the v1 drop-in", || {
            read(&dirs.drop_in()).as_ref() == Some(&expected)
        })
        .await;
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_apply_ack_nack_and_api_key() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    enroll(&dirs, &server).await;

    // The state directory is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dirs.state), 0o700);
        assert_eq!(mode(&dirs.state_file("device.json")), 0o600);
    }
    let device: serde_json::Value =
        serde_json::from_slice(&read(&dirs.state_file("device.json")).unwrap()).unwrap();
    assert_eq!(device["device_id"], DEVICE_ID);
    assert_eq!(device["user_name"], USER);
    assert_eq!(device["org"], ORG);
    assert_eq!(device["server_url"], server.url());

    // Running as root (the production setup), the developer is someone else: the owner of
    // the Claude config directory gets the key file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(&dirs.root).unwrap().uid() == 0 {
            std::os::unix::fs::chown(&dirs.claude, Some(65534), Some(65534)).unwrap();
        }
    }
    let agent = Running::start(&dirs);
    let auth = server
        .expect("a connection", |s| match s {
            Seen::Connected { authorization } => Some(authorization.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        auth.as_deref(),
        Some(format!("Bearer {CREDENTIAL}").as_str())
    );
    let hello = server.expect_hello().await;
    assert_eq!(hello.last_applied_version, 0);

    // Version 1: applied, ACKed, key stored and served.
    server.send(snapshot(
        1,
        &policy_v1(),
        Some(API_KEY),
        far_future(),
        OfflineRule::KeepLast,
    ));
    let ack = server.expect_ack().await;
    assert_eq!((ack.version, ack.nonce.as_str()), (1, "nonce-1"));
    let v1 = dirs.expected(&policy_v1());
    assert_eq!(read(&dirs.drop_in()), Some(v1.clone()));
    let on_disk: serde_json::Value = serde_json::from_slice(&v1).unwrap();
    let helper = on_disk["apiKeyHelper"].as_str().unwrap();
    // On Unix the helper reads the developer's own key file; elsewhere the state directory.
    match dirs.user_key_file() {
        Some(k) => {
            assert!(
                helper.ends_with(&format!("api-key --key-file {}", k.path().display())),
                "{helper}"
            );
            assert_eq!(read(&k.path()), Some(API_KEY.as_bytes().to_vec()));
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
                assert_eq!(mode(k.root()), 0o711);
                assert_eq!(mode(&k.dir()), 0o711, "the agent's, traversable");
                assert_eq!(mode(&k.path()), 0o600);
                let owner = std::fs::metadata(&dirs.claude).unwrap().uid();
                assert_eq!(std::fs::metadata(k.path()).unwrap().uid(), owner);
            }
            let out = cli(
                &dirs,
                &["api-key", "--key-file", &k.path().display().to_string()],
            )
            .await;
            assert_eq!(out.code, Some(0), "{}", out.stderr);
            assert_eq!(out.stdout, format!("{API_KEY}\n"));
        }
        None => assert!(
            helper.ends_with(&format!("api-key --state-dir {}", dirs.state.display())),
            "{helper}"
        ),
    }
    assert_eq!(
        read(&dirs.state_file("api-key")),
        Some(API_KEY.as_bytes().to_vec())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dirs.state_file("api-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = cli(&dirs, &["api-key"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, format!("{API_KEY}\n"));

    let out = cli(&dirs, &["status", "--json"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["device_id"], DEVICE_ID);
    assert_eq!(status["applied_version"], 1);
    assert_eq!(status["policy_sha256"], "sha-1");
    assert_eq!(status["connected"], true);
    assert_eq!(status["wiped"], false);
    assert!(!out.stdout.contains(CREDENTIAL) && !out.stdout.contains(API_KEY));
    let text = cli(&dirs, &["status"]).await.stdout;
    assert!(text.contains("version 1"), "{text}");

    // Version 2 is invalid: NACKed with the reason, version 1 stays.
    let mut bad = palisade_agent::link::grpc::policy_to_pb(&Policy::new());
    bad.document = r#"{"permissions":{"deny":["bash"]}}"#.into();
    server.send(snapshot_of(
        2,
        bad,
        Some("sk-other"),
        far_future(),
        OfflineRule::KeepLast,
    ));
    let nack = server.expect_nack().await;
    assert_eq!((nack.version, nack.nonce.as_str()), (2, "nonce-2"));
    assert!(
        nack.error.contains("did you mean \"Bash\""),
        "{}",
        nack.error
    );
    assert_eq!(read(&dirs.drop_in()), Some(v1));
    assert_eq!(
        read(&dirs.state_file("api-key")),
        Some(API_KEY.as_bytes().to_vec())
    );
    let cached: serde_json::Value =
        serde_json::from_slice(&read(&dirs.state_file("policy.json")).unwrap()).unwrap();
    assert_eq!(cached["version"], 1);

    // Version 3 carries no key: the key file goes and the helper fails.
    server.send(snapshot(
        3,
        &policy_v3(),
        None,
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 3);
    assert_eq!(read(&dirs.drop_in()), Some(dirs.expected(&policy_v3())));
    assert!(!dirs.state_file("api-key").exists());
    let out = cli(&dirs, &["api-key"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    if let Some(k) = dirs.user_key_file() {
        assert!(!k.path().exists());
        let out = cli(
            &dirs,
            &["api-key", "--key-file", &k.path().display().to_string()],
        )
        .await;
        assert_ne!(out.code, Some(0));
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_refusals_show_the_server_message() {
    let server = FakeServer::start().await;
    let dirs = Dirs::new();
    let url = server.url();
    let out = cli(
        &dirs,
        &[
            "enroll",
            "--server",
            &url,
            "--enroll-token",
            "wrong",
            "--user",
            USER,
        ],
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("enrollment token is invalid, expired or revoked"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("PermissionDenied"), "{}", out.stderr);

    let out = cli(
        &dirs,
        &[
            "enroll",
            "--server",
            &url,
            "--enroll-token",
            TOKEN,
            "--user",
            "mallory@example.com",
        ],
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("no active user `mallory@example.com`"),
        "{}",
        out.stderr
    );
    assert!(!dirs.state_file("device.json").exists());

    // Plaintext is for loopback only.
    let out = cli(
        &dirs,
        &[
            "enroll",
            "--server",
            "http://cp.example.com:50051",
            "--enroll-token",
            TOKEN,
            "--user",
            USER,
        ],
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("only loopback"), "{}", out.stderr);

    // Nothing listening.
    let out = cli(
        &dirs,
        &[
            "enroll",
            "--server",
            "http://127.0.0.1:1",
            "--enroll-token",
            TOKEN,
            "--user",
            USER,
        ],
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_is_restored_and_reported() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let agent = running_with_policy(
        &mut server,
        &dirs,
        &policy_v1(),
        OfflineRule::KeepLast,
        far_future(),
    )
    .await;
    let good = dirs.expected(&policy_v1());
    let drop_in = dirs.drop_in();

    // An edit.
    std::fs::write(&drop_in, b"{}\n").unwrap();
    let report = server.expect_tamper().await;
    assert_eq!(report.kind, "modified");
    assert_eq!(report.path, drop_in.display().to_string());
    assert!(report.restored_at_unix_ms >= report.detected_at_unix_ms);
    agent
        .wait_until("restore after edit", || {
            read(&drop_in).as_ref() == Some(&good)
        })
        .await;

    // A deletion.
    std::fs::remove_file(&drop_in).unwrap();
    assert_eq!(server.expect_tamper().await.kind, "deleted");
    agent
        .wait_until("restore after delete", || {
            read(&drop_in).as_ref() == Some(&good)
        })
        .await;

    // The whole drop-in directory, moved away in one step (an `rm -rf` races the restore).
    let dir = drop_in.parent().unwrap();
    std::fs::rename(dir, dir.with_file_name("moved-away")).unwrap();
    assert_eq!(server.expect_tamper().await.kind, "deleted");
    agent
        .wait_until("restore after rmdir", || {
            read(&drop_in).as_ref() == Some(&good)
        })
        .await;

    // Another drop-in sorting after ours is reported, not touched.
    let later = drop_in.with_file_name("90-override.json");
    std::fs::write(&later, b"{\"permissions\": {}}\n").unwrap();
    server.send(snapshot(
        2,
        &policy_v3(),
        Some(API_KEY),
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 2);
    let warning = server.expect_warning("later_drop_in").await;
    assert!(
        warning.detail.contains("90-override.json"),
        "{}",
        warning.detail
    );
    assert!(later.exists());

    // While the control plane is unreachable, a tamper is restored at once and reported later.
    server.set_mode(Mode::Unavailable);
    server.kick(tonic::Status::unavailable("restarting"));
    agent
        .wait_until("the agent to notice the disconnect", || {
            dirs.status_json()["connected"] == false
        })
        .await;
    let good = dirs.expected(&policy_v3());
    std::fs::write(&drop_in, b"{\"permissions\": {\"allow\": [\"Bash\"]}}\n").unwrap();
    agent
        .wait_until("restore while offline", || {
            read(&drop_in).as_ref() == Some(&good)
        })
        .await;
    agent
        .wait_until("the offline tamper in status.json", || {
            dirs.status_json()["tamper_count"].as_u64() >= Some(4)
        })
        .await;
    server.set_mode(Mode::Accept);
    let hello = server.expect_hello().await;
    assert_eq!(
        hello.last_applied_version, 2,
        "resumes from the applied version"
    );
    assert_eq!(server.expect_tamper().await.kind, "modified");
    drop(agent);
}

/// Server-managed settings cached by Claude Code outrank the drop-in: reported at the next
/// snapshot, and gone from the warnings once the cache is empty again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_managed_settings_are_reported() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let agent = running_with_policy(
        &mut server,
        &dirs,
        &policy_v1(),
        OfflineRule::KeepLast,
        far_future(),
    )
    .await;
    let has_warning = |dirs: &Dirs| {
        dirs.status_json()["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["code"] == "server_managed_settings"))
    };
    assert!(!has_warning(&dirs));

    let cache = dirs.claude.join("remote-settings.json");
    std::fs::write(&cache, br#"{"permissions":{"deny":["WebFetch"]}}"#).unwrap();
    server.send(snapshot(
        2,
        &policy_v3(),
        Some(API_KEY),
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 2);
    let warning = server.expect_warning("server_managed_settings").await;
    assert!(
        warning.detail.contains("remote-settings.json"),
        "{}",
        warning.detail
    );
    assert!(warning.detail.contains("permissions"), "{}", warning.detail);
    agent
        .wait_until("the warning in status.json", || has_warning(&dirs))
        .await;
    let out = cli(&dirs, &["status"]).await;
    assert!(
        out.stdout.contains("server_managed_settings"),
        "{}",
        out.stdout
    );

    // Claude Code caches `{}` when the console has nothing: the file source applies again.
    std::fs::write(&cache, b"{}").unwrap();
    server.send(snapshot(
        3,
        &policy_v1(),
        Some(API_KEY),
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 3);
    agent
        .wait_until("the warning to clear", || !has_warning(&dirs))
        .await;
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovision_wipes_and_stays_locked_down() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    std::fs::write(dirs.credentials(), b"{\"claudeAiOauth\": {}}").unwrap();
    let agent = running_with_policy(
        &mut server,
        &dirs,
        &policy_v1(),
        OfflineRule::KeepLast,
        far_future(),
    )
    .await;
    assert!(dirs.state_file("api-key").exists());
    let user_key = dirs.user_key_file().map(|k| k.path());
    if let Some(k) = &user_key {
        assert!(k.exists());
    }

    server.send(deprovision("user deactivated in the IdP"));
    let report = server.expect_wipe().await;
    let removed = report.removed.join("\n");
    for gone in [
        dirs.state_file("api-key"),
        dirs.state_file("device.json"),
        dirs.credentials(),
    ]
    .into_iter()
    .chain(user_key)
    {
        assert!(!gone.exists(), "{} still exists", gone.display());
        assert!(removed.contains(&gone.display().to_string()), "{removed}");
    }
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.wiped_at_unix_ms > 0);
    let lockdown = dirs.expected(&palisade_agent::lockdown());
    assert_eq!(read(&dirs.drop_in()), Some(lockdown.clone()));

    let out = cli(&dirs, &["api-key"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("deprovisioned"), "{}", out.stderr);
    let status: serde_json::Value =
        serde_json::from_str(&cli(&dirs, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["wiped"], true);
    assert_eq!(status["enrolled"], false);

    // The agent stays up guarding the lockdown file, and does not reconnect.
    std::fs::write(dirs.drop_in(), b"{}\n").unwrap();
    agent
        .wait_until("lockdown restored", || {
            read(&dirs.drop_in()).as_ref() == Some(&lockdown)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.connections(), 1, "no reconnection after a wipe");
    let mut agent = agent;
    assert!(agent.is_running());

    // A clean stop on SIGTERM.
    #[cfg(unix)]
    assert!(agent.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_at_connect_wipes_the_same_way() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    std::fs::write(dirs.credentials(), b"{}").unwrap();
    let mut agent = running_with_policy(
        &mut server,
        &dirs,
        &policy_v1(),
        OfflineRule::KeepLast,
        far_future(),
    )
    .await;
    agent.kill().await;

    // Revoked while the agent was off.
    server.set_mode(Mode::Revoked);
    let agent = Running::start(&dirs);
    agent
        .wait_until("the wipe", || {
            !dirs.state_file("api-key").exists()
                && !dirs.state_file("device.json").exists()
                && !dirs.credentials().exists()
        })
        .await;
    let lockdown = dirs.expected(&palisade_agent::lockdown());
    agent
        .wait_until("the lockdown policy", || {
            read(&dirs.drop_in()).as_ref() == Some(&lockdown)
        })
        .await;
    agent
        .wait_until("the wipe in status.json", || {
            dirs.status_json()["wiped"].is_object()
        })
        .await;
    let wiped = &dirs.status_json()["wiped"];
    assert!(
        wiped["reason"].as_str().unwrap().contains("revoked"),
        "{wiped}"
    );
    let out = cli(&dirs, &["api-key"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stdout.is_empty());

    // Still wiped after a restart: lockdown at start, no connection attempt.
    let connections = server.connections();
    drop(agent);
    std::fs::remove_file(dirs.drop_in()).unwrap();
    let agent = Running::start(&dirs);
    agent
        .wait_until("lockdown at restart", || {
            read(&dirs.drop_in()).as_ref() == Some(&lockdown)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.connections(), connections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_applies_the_cached_policy_before_connecting() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let mut agent = running_with_policy(
        &mut server,
        &dirs,
        &policy_v1(),
        OfflineRule::KeepLast,
        far_future(),
    )
    .await;
    agent.kill().await;
    server.stop().await;

    // Server down, drop-in gone: the cache alone brings the policy back.
    std::fs::remove_file(dirs.drop_in()).unwrap();
    let agent = Running::start(&dirs);
    let good = dirs.expected(&policy_v1());
    agent
        .wait_until("the cached policy", || {
            read(&dirs.drop_in()).as_ref() == Some(&good)
        })
        .await;
    agent
        .wait_until("a failed connection in status.json", || {
            dirs.status_json()["last_error"].is_string()
        })
        .await;
    assert_eq!(dirs.status_json()["connected"], false);
    assert_eq!(dirs.status_json()["applied_version"], 1);
    let out = cli(&dirs, &["api-key"]).await;
    assert_eq!(
        out.stdout,
        format!("{API_KEY}\n"),
        "the key is served offline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_deadline_with_lockdown_rule_locks_down_until_contact() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let valid_until = now_ms() + 2_000;
    let agent = running_with_policy(
        &mut server,
        &dirs,
        &policy_v1(),
        OfflineRule::Lockdown,
        valid_until,
    )
    .await;

    // No keepalive: past the deadline the lockdown policy is written.
    let lockdown = dirs.expected(&palisade_agent::lockdown());
    agent
        .wait_until("the offline lockdown", || {
            read(&dirs.drop_in()).as_ref() == Some(&lockdown)
        })
        .await;
    assert!(now_ms() >= valid_until);
    agent
        .wait_until("offline_lockdown in status.json", || {
            dirs.status_json()["offline_lockdown"] == true
        })
        .await;
    // The API key stays: this is not a deprovisioning.
    assert!(dirs.state_file("api-key").exists());

    // The silent stream is abandoned; the new one asks for a full snapshot.
    let hello = server.expect_hello().await;
    assert_eq!(hello.last_applied_version, 0);
    server.send(snapshot(
        1,
        &policy_v1(),
        Some(API_KEY),
        far_future(),
        OfflineRule::Lockdown,
    ));
    assert_eq!(server.expect_ack().await.version, 1);
    let good = dirs.expected(&policy_v1());
    agent
        .wait_until("the policy back", || {
            read(&dirs.drop_in()).as_ref() == Some(&good)
        })
        .await;

    // Keepalives keep moving the deadline, so a connected agent never reaches it.
    server.send(keepalive(now_ms() + 1_500));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.send(keepalive(now_ms() + 1_500));
    }
    assert_eq!(read(&dirs.drop_in()), Some(good));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_deadline_with_keep_last_rule_keeps_the_policy() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let agent = running_with_policy(
        &mut server,
        &dirs,
        &policy_v1(),
        OfflineRule::KeepLast,
        now_ms() + 1_000,
    )
    .await;
    // After the deadline the silent stream is replaced; the policy stays.
    let hello = server.expect_hello().await;
    assert_eq!(hello.last_applied_version, 1);
    assert_eq!(read(&dirs.drop_in()), Some(dirs.expected(&policy_v1())));
    assert_eq!(dirs.status_json()["offline_lockdown"], false);
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_backs_off_without_wiping() {
    let server = FakeServer::start().await;
    let dirs = Dirs::new();
    enroll(&dirs, &server).await;
    server.set_mode(Mode::Unauthenticated);
    let agent = Running::start(&dirs);
    agent
        .wait_until("the error in status.json", || {
            dirs.status_json()["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("enroll again"))
        })
        .await;
    agent
        .wait_until("a retry", || server.connections() >= 2)
        .await;
    assert!(dirs.state_file("device.json").exists());
    assert!(dirs.status_json()["wiped"].is_null());
    assert!(
        agent.log().contains("palisade-agent enroll"),
        "{}",
        agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_before_enrollment_waits_then_connects() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let agent = Running::start(&dirs);
    agent
        .wait_until("the agent's status file", || {
            dirs.state_file("status.json").exists()
        })
        .await;
    assert!(
        !dirs.drop_in().exists(),
        "nothing is written without a policy"
    );
    enroll(&dirs, &server).await;
    let hello = server.expect_hello().await;
    assert_eq!(hello.last_applied_version, 0);
    server.send(snapshot(
        1,
        &policy_v1(),
        None,
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 1);
    let good = dirs.expected(&policy_v1());
    agent
        .wait_until("the policy", || {
            read(&dirs.drop_in()).as_ref() == Some(&good)
        })
        .await;
}

/// `openssl` makes a CA and a server certificate for 127.0.0.1.
fn make_pki(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for ca in ["ca", "other-ca"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_pinned_ca() {
    let dirs = Dirs::new();
    let pki = dirs.root.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let cert = std::fs::read(pki.join("server.pem")).unwrap();
    let key = std::fs::read(pki.join("server.key")).unwrap();
    let mut server = FakeServer::start_tls(&cert, &key).await;
    let url = server.url();
    assert!(url.starts_with("https://"));

    // Another CA is not trusted: the pin replaces the system roots.
    let other = pki.join("other-ca.pem").display().to_string();
    let out = cli(
        &dirs,
        &[
            "enroll",
            "--server",
            &url,
            "--enroll-token",
            TOKEN,
            "--user",
            USER,
            "--ca-cert",
            &other,
        ],
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);

    let ca = pki.join("ca.pem").display().to_string();
    let out = cli(
        &dirs,
        &[
            "enroll",
            "--server",
            &url,
            "--enroll-token",
            TOKEN,
            "--user",
            USER,
            "--ca-cert",
            &ca,
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let device: serde_json::Value =
        serde_json::from_slice(&read(&dirs.state_file("device.json")).unwrap()).unwrap();
    let pinned = device["ca_cert_path"].as_str().unwrap().to_owned();
    assert_eq!(pinned, dirs.state_file("ca.pem").display().to_string());

    // `run` uses the state's copy of the CA (the original may go away).
    std::fs::remove_file(pki.join("ca.pem")).unwrap();
    let agent = Running::start(&dirs);
    assert_eq!(server.expect_hello().await.last_applied_version, 0);
    server.send(snapshot(
        1,
        &policy_v1(),
        Some(API_KEY),
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 1);
    drop(agent);
}
