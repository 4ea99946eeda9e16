//! End-to-end tests of the real `palisade-agent` binary for issue 8, "a hostile laptop gets
//! nowhere": a developer without admin rights who controls their home directory (and so
//! `~/.claude`) must not be able to turn the root agent's file operations against it, block
//! enforcement, or stop a wipe by crashing it. Also: every state file is 0600 and the state
//! directory 0700. The control plane is the scripted fake in `tests/support/`.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod support;

#[cfg(unix)]
use std::path::Path;

use palisade_agent::link::messages::OfflineRule;
use palisade_agent::Policy;
use serde_json::json;
use support::*;

fn policy_v1() -> Policy {
    policy_of(json!({"permissions": {"deny": ["Bash"]}, "security_level": "strict"}))
}

fn policy_v2() -> Policy {
    policy_of(json!({"permissions": {"deny": ["WebFetch"]}, "security_level": "moderate"}))
}

/// Enrolls, starts `run` (with `env`), applies v1 with the API key and waits for the ACK and
/// the drop-in.
async fn enrolled_with_policy(
    server: &mut FakeServer,
    dirs: &Dirs,
    env: &[(&str, &str)],
) -> Running {
    enroll(dirs, server).await;
    let agent = Running::start_with_env(dirs, env);
    assert_eq!(server.expect_hello().await.last_applied_version, 0);
    server.send(snapshot(
        1,
        &policy_v1(),
        Some(API_KEY),
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 1);
    let expected = dirs.expected(&policy_v1());
    agent
        .wait_until("the v1 drop-in", || {
            read(&dirs.drop_in()).as_ref() == Some(&expected)
        })
        .await;
    agent
}

fn has_warning(dirs: &Dirs, code: &str) -> bool {
    dirs.status_json()["warnings"]
        .as_array()
        .is_some_and(|w| w.iter().any(|w| w["code"] == code))
}

/// A directory where the developer's key file goes (the developer could plant one while
/// their key directory was theirs) makes the key unwritable: the policy must still apply and
/// be ACKed, and the key failure is reported as a warning, which clears once it is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_key_file_does_not_block_the_policy() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let agent = enrolled_with_policy(&mut server, &dirs, &[]).await;
    let Some(key) = dirs.user_key_file() else {
        eprintln!("skipped: no developer key file on this platform");
        return;
    };
    std::fs::remove_file(key.path()).unwrap();
    std::fs::create_dir(key.path()).unwrap();
    std::fs::write(key.path().join("keep"), b"x").unwrap();

    server.send(snapshot(
        2,
        &policy_v2(),
        Some("sk-ant-api03-rotated"),
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 2);
    let warning = server.expect_warning("api_key_unavailable").await;
    assert!(
        warning.detail.contains(&key.path().display().to_string()),
        "{}",
        warning.detail
    );
    let expected = dirs.expected(&policy_v2());
    assert_eq!(read(&dirs.drop_in()), Some(expected));
    agent
        .wait_until("the warning in status.json", || {
            has_warning(&dirs, "api_key_unavailable")
        })
        .await;
    assert_eq!(dirs.status_json()["applied_version"], 2);

    // Fixed: the next snapshot writes the key and the warning goes.
    std::fs::remove_dir_all(key.path()).unwrap();
    server.send(snapshot(
        3,
        &policy_v2(),
        Some("sk-ant-api03-rotated"),
        far_future(),
        OfflineRule::KeepLast,
    ));
    assert_eq!(server.expect_ack().await.version, 3);
    agent
        .wait_until("the warning to clear", || {
            !has_warning(&dirs, "api_key_unavailable")
        })
        .await;
    assert_eq!(read(&key.path()).unwrap(), b"sk-ant-api03-rotated");
}

/// `~/.claude` replaced by a symlink to another tree (another user's, or root's): the agent
/// does not take the link's target as the developer, and the wipe does not delete the
/// credentials the link points at.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_claude_dir_is_not_followed() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let victim = dirs.root.join("victim").join(".claude");
    std::fs::create_dir_all(&victim).unwrap();
    let victim_credentials = victim.join(".credentials.json");
    std::fs::write(&victim_credentials, b"{\"claudeAiOauth\": {}}").unwrap();
    std::fs::remove_dir(&dirs.claude).unwrap();
    std::os::unix::fs::symlink(&victim, &dirs.claude).unwrap();
    assert!(
        dirs.user_key_file().is_none(),
        "no developer behind a symlink"
    );

    let agent = enrolled_with_policy(&mut server, &dirs, &[]).await;
    assert!(
        agent.log().contains("symlink"),
        "the refusal is logged: {}",
        agent.log()
    );
    agent
        .wait_until("the refusal reported as a warning", || {
            has_warning(&dirs, "claude_config_dir_refused")
        })
        .await;
    server.send(deprovision("user deactivated in the IdP"));
    let report = server.expect_wipe().await;
    assert!(
        victim_credentials.exists(),
        "the wipe followed the symlink and deleted {}",
        victim_credentials.display()
    );
    assert!(
        report.failed.iter().any(|f| f.contains("symlink")),
        "{:?}",
        report.failed
    );
    assert!(!dirs.state_file("api-key").exists());
    assert!(std::fs::symlink_metadata(&dirs.claude)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Every file the agent writes in its state directory is 0600 and every directory 0700, after
/// enrollment, a policy with an API key and a wipe-free run; the developer's key tree is
/// root's (0711 directories) with a 0600 file.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_0600_and_state_dirs_0700() {
    use std::os::unix::fs::MetadataExt;
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    let agent = enrolled_with_policy(&mut server, &dirs, &[]).await;
    agent
        .wait_until("status.json", || dirs.state_file("status.json").exists())
        .await;

    fn walk(dir: &Path, found: &mut Vec<(String, u32)>) {
        let mode = std::fs::symlink_metadata(dir).unwrap().mode() & 0o7777;
        found.push((dir.display().to_string(), mode));
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(&path, found);
            } else {
                assert!(meta.is_file(), "{} is not a regular file", path.display());
                found.push((path.display().to_string(), meta.mode() & 0o7777));
            }
        }
    }
    let mut found = Vec::new();
    walk(&dirs.state, &mut found);
    let names: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    for name in ["device.json", "policy.json", "api-key", "status.json"] {
        let path = dirs.state_file(name).display().to_string();
        assert!(names.contains(&path.as_str()), "{path} missing: {names:?}");
    }
    for (path, mode) in &found {
        let want = if Path::new(path).is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(*mode, want, "{path} has mode {mode:o}");
    }

    if let Some(key) = dirs.user_key_file() {
        let meta = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.uid(), m.mode() & 0o7777)
        };
        let me = std::fs::metadata(&dirs.root).unwrap().uid();
        assert_eq!(meta(key.root()), (me, 0o711));
        assert_eq!(meta(&key.dir()), (me, 0o711), "the agent keeps the key dir");
        assert_eq!(meta(&key.path()).1, 0o600);
    }
}

/// The crash test hook's steps, in the wipe's order.
const CRASH_STEPS: [&str; 4] = [
    "wipe-pending",
    "wipe-lockdown",
    "wipe-removed",
    "wipe-recorded",
];

/// Deprovisions an agent that aborts right after `step`, checks what the crash left (which
/// shows the order), restarts it and checks that the wipe was finished.
async fn crash_during_wipe_then_resume(step: &str) {
    assert!(CRASH_STEPS.contains(&step));
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    std::fs::write(dirs.credentials(), b"{\"claudeAiOauth\": {}}").unwrap();
    let mut agent = enrolled_with_policy(
        &mut server,
        &dirs,
        &[("PALISADE_AGENT_TEST_CRASH_AT", step)],
    )
    .await;
    let user_key = dirs.user_key_file().map(|k| k.path());
    let lockdown = dirs.expected(&palisade_agent::lockdown());

    server.send(deprovision("user deactivated in the IdP"));
    let exit = agent.wait_exit().await;
    assert!(!exit.success(), "{step}: the agent should have aborted");
    assert!(
        agent.log().contains(step),
        "{step}: the hook logs its step: {}",
        agent.log()
    );
    let key_present = dirs.state_file("api-key").exists();
    let drop_in_locked = read(&dirs.drop_in()).as_ref() == Some(&lockdown);
    let recorded = dirs.status_json()["wiped"].is_object();
    match step {
        "wipe-pending" => {
            assert!(key_present && !drop_in_locked && !recorded, "{step}")
        }
        "wipe-lockdown" => {
            assert!(drop_in_locked, "{step}: lockdown first");
            assert!(key_present && !recorded, "{step}: then the files");
        }
        "wipe-removed" => {
            assert!(drop_in_locked && !key_present, "{step}");
            assert!(!dirs.credentials().exists(), "{step}");
            assert!(!recorded, "{step}: recorded last");
        }
        _ => assert!(drop_in_locked && !key_present && recorded, "{step}"),
    }

    let status: serde_json::Value =
        serde_json::from_str(&cli(&dirs, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["wipe_pending"], true, "{step}: {status}");
    assert_eq!(status["wiped"], recorded, "{step}: {status}");
    let out = cli(&dirs, &["api-key"]).await;
    assert!(
        out.stdout.is_empty(),
        "{step}: no key while a wipe is pending"
    );

    // The next start finishes the wipe before anything else.
    let connections = server.connections();
    let agent = Running::start(&dirs);
    agent
        .wait_until("the wipe recorded and no longer pending", || {
            dirs.status_json()["wiped"].is_object()
                && !dirs.state_file("wipe-pending.json").exists()
        })
        .await;
    for gone in [
        dirs.state_file("api-key"),
        dirs.state_file("device.json"),
        dirs.state_file("policy.json"),
        dirs.credentials(),
    ]
    .into_iter()
    .chain(user_key)
    {
        assert!(!gone.exists(), "{step}: {} still exists", gone.display());
    }
    agent
        .wait_until("the lockdown policy", || {
            read(&dirs.drop_in()).as_ref() == Some(&lockdown)
        })
        .await;
    let status: serde_json::Value =
        serde_json::from_str(&cli(&dirs, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["wiped"], true, "{step}: {status}");
    assert_eq!(status["wipe_pending"], false, "{step}: {status}");
    assert_eq!(status["enrolled"], false, "{step}: {status}");
    assert!(
        status["wipe"]["reason"]
            .as_str()
            .unwrap()
            .contains("deprovisioned"),
        "{step}: {status}"
    );
    let out = cli(&dirs, &["api-key"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stdout.is_empty());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        server.connections(),
        connections,
        "{step}: a wiped agent does not reconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_resumes_after_a_crash_once_marked_pending() {
    crash_during_wipe_then_resume("wipe-pending").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_resumes_after_a_crash_after_the_lockdown() {
    crash_during_wipe_then_resume("wipe-lockdown").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_resumes_after_a_crash_after_the_removal() {
    crash_during_wipe_then_resume("wipe-removed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_resumes_after_a_crash_after_the_record() {
    crash_during_wipe_then_resume("wipe-recorded").await;
}

/// A crash during a wipe, then an `enroll` before the agent restarts: the restart finishes the
/// old wipe but keeps the new enrollment, which connects and asks for everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_wipe_keeps_an_enrollment_made_after_the_crash() {
    let mut server = FakeServer::start().await;
    let dirs = Dirs::new();
    std::fs::write(dirs.credentials(), b"{}").unwrap();
    let mut agent = enrolled_with_policy(
        &mut server,
        &dirs,
        &[("PALISADE_AGENT_TEST_CRASH_AT", "wipe-lockdown")],
    )
    .await;
    server.send(deprovision("user deactivated in the IdP"));
    assert!(!agent.wait_exit().await.success());
    assert!(
        dirs.state_file("device.json").exists(),
        "crashed before (b)"
    );

    // A new enrollment lands while the agent is down (another device id).
    let path = dirs.state_file("device.json");
    let mut device: serde_json::Value = serde_json::from_slice(&read(&path).unwrap()).unwrap();
    device["device_id"] = "device-0002".into();
    std::fs::write(&path, serde_json::to_vec(&device).unwrap()).unwrap();

    let agent = Running::start(&dirs);
    assert_eq!(
        server.expect_hello().await.last_applied_version,
        0,
        "the new enrollment connects and asks for everything"
    );
    agent
        .wait_until("the old wipe finished", || {
            !dirs.state_file("wipe-pending.json").exists()
        })
        .await;
    assert!(!dirs.credentials().exists());
    assert!(!dirs.state_file("api-key").exists());
    assert!(!dirs.state_file("policy.json").exists());
    let kept: serde_json::Value = serde_json::from_slice(&read(&path).unwrap()).unwrap();
    assert_eq!(kept["device_id"], "device-0002");
    assert!(dirs.status_json()["wiped"].is_object());
}
