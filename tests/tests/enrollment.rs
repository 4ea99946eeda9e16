//! End-to-end: every way to enroll binds the device to a proven person. With the real binaries
//! on SQLite and PostgreSQL: an MDM-token device gets the policy but no API key until its person
//! confirms it; an activation code works once; nobody deprovisioned can enroll by any method;
//! every refusal looks the same; enrollment tokens expire and rotate; re-enrolling the same
//! machine renews its device; an enrollment racing a deactivation never leaves a live device.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use palisade_proto::v1 as pb;
use palisade_tests::workstation::{
    invite_code, secrets_key_file, set_org_api_key, use_helper_delivery, Workstation, WAIT,
};
use palisade_tests::{backend_tests, Backend, ControlPlane};
use serde_json::{json, Value};

async fn start_cp(backend: Backend) -> Result<ControlPlane> {
    let key = secrets_key_file()?;
    ControlPlane::start(backend, &["--secrets-key-file", &key]).await
}

fn user_body(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "active": true
    })
}

async fn create_user(cp: &ControlPlane, user_name: &str) -> Result<String> {
    let r = cp.scim().post("/Users", &user_body(user_name)).await?;
    r.expect(201)?;
    r.body["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no id"))
}

async fn deactivate(cp: &ControlPlane, id: &str) -> Result<()> {
    cp.scim()
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await?
        .expect(200)?;
    Ok(())
}

fn devices(listing: &str) -> Result<Vec<Value>> {
    listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

async fn device_list(cp: &ControlPlane) -> Result<Vec<Value>> {
    devices(
        &cp.cli_ok(&["device", "list", "--org", "default", "--json"])
            .await?,
    )
}

async fn grpc(
    cp: &ControlPlane,
) -> Result<pb::agent_service_client::AgentServiceClient<tonic::transport::Channel>> {
    Ok(pb::agent_service_client::AgentServiceClient::connect(cp.grpc_url.clone()).await?)
}

fn enroll_request(token: &str, user: &str) -> pb::EnrollRequest {
    pb::EnrollRequest {
        enroll_token: token.into(),
        user_name: user.into(),
        hostname: "race-host".into(),
        os: "linux".into(),
        agent_version: "test".into(),
        ..Default::default()
    }
}

/// MDM method: policy at once, no key until the person confirms; the drop-in tells them where.
async fn mdm_device_is_unverified(backend: Backend) -> Result<()> {
    let cp = start_cp(backend).await?;
    create_user(&cp, "mdm@example.com").await?;
    set_org_api_key(&cp, "sk-ant-mdm-key").await?;
    let token = cp.enroll_token.clone().ok_or_else(|| anyhow!("no token"))?;
    let mut w = Workstation::new()?;
    let out = w.enroll(&cp, &token, "mdm@example.com").await?;
    if !out.status.success() {
        bail!("enroll: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("not yet confirmed"));
    w.start()?;
    w.wait_for("the policy with a confirmation announcement", |w| {
        w.drop_in()
            .and_then(|d| d["companyAnnouncements"][0].as_str().map(str::to_string))
            .is_some_and(|a| a.contains("/enroll/device/verify?device="))
    })
    .await?;
    // The policy is enforced; the key never arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !w.state().join("api-key").exists(),
        "no key for an unverified device"
    );
    assert!(!w.api_key().await?.status.success());
    let listed = device_list(&cp).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["identity"], "unverified", "{listed:?}");
    assert_eq!(listed[0]["method"], "mdm-token");
    let status = w.command("status").arg("--json").output().await?;
    let status: Value = serde_json::from_slice(&status.stdout)?;
    assert!(
        status.to_string().contains("/enroll/device/verify"),
        "status names the confirmation page: {status}"
    );

    // Re-running the MDM enrollment is a no-op locally...
    let again = w.enroll(&cp, &token, "mdm@example.com").await?;
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already enrolled"));
    // ...and with the local enrollment gone, the server renews the same device (installation key).
    w.stop().await;
    std::fs::remove_file(w.state().join("device.json"))?;
    let again = w.enroll(&cp, &token, "mdm@example.com").await?;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let relisted = device_list(&cp).await?;
    assert_eq!(
        relisted.len(),
        1,
        "the same machine is one device: {relisted:?}"
    );
    assert_eq!(relisted[0]["id"], listed[0]["id"]);

    // An organisation that trusts its MDM's identity gets verified devices (and the key).
    cp.cli_ok(&[
        "org",
        "settings",
        "--org",
        "default",
        "--trust-mdm-identity",
        "true",
    ])
    .await?;
    create_user(&cp, "trusted@example.com").await?;
    let mut t = Workstation::new()?;
    let out = t.enroll(&cp, &token, "trusted@example.com").await?;
    assert!(out.status.success());
    t.start()?;
    t.wait_for("the key for a trusted MDM device", |w| {
        w.state().join("api-key").exists()
    })
    .await?;
    Ok(())
}

/// An activation code enrolls exactly its person, verified, once.
async fn activation_code_works_once(backend: Backend) -> Result<()> {
    let cp = start_cp(backend).await?;
    create_user(&cp, "code@example.com").await?;
    set_org_api_key(&cp, "sk-ant-code-key").await?;
    use_helper_delivery(&cp).await?;
    let code = invite_code(&cp, "code@example.com").await?;
    let listed = cp.cli_ok(&["invite", "list", "--org", "default"]).await?;
    assert!(!listed.contains(&code), "list never shows codes");
    assert!(listed.contains("open"));

    let mut w = Workstation::new()?;
    let out = w.enroll_with_code(&cp, &code).await?;
    if !out.status.success() {
        bail!("enroll --code: {}", String::from_utf8_lossy(&out.stderr));
    }
    w.start()?;
    w.wait_for("the key", |w| w.state().join("api-key").exists())
        .await?;
    let key = w.api_key().await?;
    assert_eq!(
        String::from_utf8_lossy(&key.stdout).trim(),
        "sk-ant-code-key"
    );
    let d = device_list(&cp).await?;
    assert_eq!(d[0]["identity"], "verified");
    assert_eq!(d[0]["method"], "activation-code");
    assert_eq!(d[0]["userName"], "code@example.com");

    // Used: a second machine cannot use it.
    let other = Workstation::new()?;
    let out = other.enroll_with_code(&cp, &code).await?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("enrollment refused"));
    assert!(cp
        .cli_ok(&["invite", "list", "--org", "default"])
        .await?
        .contains("used"));

    // Revoked and expired codes are refused the same way.
    let revoked = invite_code(&cp, "code@example.com").await?;
    cp.cli_ok(&["invite", "revoke", "--org", "default", &revoked[..14]])
        .await?;
    let out = other.enroll_with_code(&cp, &revoked).await?;
    assert!(!out.status.success());
    let short = cp
        .cli_ok(&[
            "invite",
            "create",
            "--org",
            "default",
            "--user",
            "code@example.com",
            "--expires-in",
            "1s",
        ])
        .await?;
    let short = short.lines().last().unwrap_or_default().trim().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = other.enroll_with_code(&cp, &short).await?;
    assert!(!out.status.success(), "an expired code is refused");
    assert!(!other.state().join("device.json").exists());
    Ok(())
}

/// A deprovisioned person cannot come back by any method, and every refusal looks the same.
async fn deprovisioned_cannot_enroll(backend: Backend) -> Result<()> {
    let cp = start_cp(backend).await?;
    let id = create_user(&cp, "gone@example.com").await?;
    let code = invite_code(&cp, "gone@example.com").await?;
    deactivate(&cp, &id).await?;
    let token = cp.enroll_token.clone().ok_or_else(|| anyhow!("no token"))?;
    let mut client = grpc(&cp).await?;
    let refusals = [
        client
            .enroll(enroll_request(&token, "gone@example.com"))
            .await,
        client
            .enroll(enroll_request(&token, "nobody@example.com"))
            .await,
        client
            .enroll(enroll_request("pal_enroll_bogus", "gone@example.com"))
            .await,
        client
            .enroll(pb::EnrollRequest {
                activation_code: code.clone(),
                hostname: "h".into(),
                ..Default::default()
            })
            .await,
        client
            .enroll(pb::EnrollRequest {
                activation_code: "pal_act_guessed".into(),
                hostname: "h".into(),
                ..Default::default()
            })
            .await,
    ];
    let mut seen = Vec::new();
    for r in refusals {
        let status = match r {
            Ok(_) => bail!("an enrollment of a deprovisioned or unknown person succeeded"),
            Err(s) => s,
        };
        seen.push((status.code(), status.message().to_string()));
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "identical refusals: {seen:?}"
    );
    assert_eq!(seen[0].0, tonic::Code::Unauthenticated);
    assert!(device_list(&cp).await?.is_empty());
    // Deprovisioned by removal from the last synced group (the user row stays active): an
    // activation code minted before, and the fleet token, are refused the same way.
    cp.cli_ok(&[
        "org",
        "settings",
        "--org",
        "default",
        "--deprovision-without-groups",
        "true",
    ])
    .await?;
    let ex = create_user(&cp, "ex@example.com").await?;
    let g = cp
        .scim()
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng",
                    "members": [{"value": ex}]}),
        )
        .await?;
    g.expect(201)?;
    let gid = g.body["id"].as_str().unwrap_or_default().to_string();
    let ex_code = invite_code(&cp, "ex@example.com").await?;
    cp.scim()
        .patch_ops(
            &format!("/Groups/{gid}"),
            json!([{"op": "remove", "path": format!("members[value eq \"{ex}\"]")}]),
        )
        .await?
        .expect_group_patch()?;
    for r in [
        client
            .enroll(enroll_request(&token, "ex@example.com"))
            .await,
        client
            .enroll(pb::EnrollRequest {
                activation_code: ex_code,
                hostname: "h".into(),
                ..Default::default()
            })
            .await,
    ] {
        match r {
            Ok(_) => bail!("a person removed from their last group enrolled"),
            Err(s) => assert_eq!((s.code(), s.message().to_string()), seen[0]),
        }
    }
    assert!(device_list(&cp).await?.is_empty());
    // The invitation of someone deprovisioned cannot even be minted.
    assert!(
        cp.cli(&[
            "invite",
            "create",
            "--org",
            "default",
            "--user",
            "gone@example.com"
        ])
        .await?
        .status
        .code()
            != Some(0)
    );
    Ok(())
}

/// Enrollment tokens expire and rotate with an overlap.
async fn enrollment_tokens_expire_and_rotate(backend: Backend) -> Result<()> {
    let cp = start_cp(backend).await?;
    create_user(&cp, "t@example.com").await?;
    assert!(
        cp.stdout().contains("The enrollment token expires"),
        "the first token's expiry is printed"
    );
    let listed = cp
        .cli_ok(&["enroll-token", "list", "--org", "default"])
        .await?;
    assert!(
        !listed.contains("never"),
        "the first token expires: {listed}"
    );
    let mut client = grpc(&cp).await?;
    let short = cp
        .cli_ok(&[
            "enroll-token",
            "create",
            "--org",
            "default",
            "--expires-in",
            "1s",
        ])
        .await?
        .trim()
        .to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(client
        .enroll(enroll_request(&short, "t@example.com"))
        .await
        .is_err());

    let old = cp.enroll_token.clone().ok_or_else(|| anyhow!("no token"))?;
    let new = cp
        .cli_ok(&[
            "enroll-token",
            "rotate",
            "--org",
            "default",
            "--overlap",
            "1h",
        ])
        .await?
        .trim()
        .to_string();
    // During the overlap both work.
    client.enroll(enroll_request(&old, "t@example.com")).await?;
    client.enroll(enroll_request(&new, "t@example.com")).await?;
    let newer = cp
        .cli_ok(&[
            "enroll-token",
            "rotate",
            "--org",
            "default",
            "--overlap",
            "0",
        ])
        .await?
        .trim()
        .to_string();
    assert!(client
        .enroll(enroll_request(&old, "t@example.com"))
        .await
        .is_err());
    assert!(client
        .enroll(enroll_request(&new, "t@example.com"))
        .await
        .is_err());
    client
        .enroll(enroll_request(&newer, "t@example.com"))
        .await?;
    let too_long = cp
        .cli(&[
            "enroll-token",
            "create",
            "--org",
            "default",
            "--expires-in",
            "400d",
        ])
        .await?;
    assert!(!too_long.status.success());
    Ok(())
}

/// Many enrollments racing a deactivation: afterwards the person has no live device, and no
/// stream ever carried their key after the deactivation.
async fn enroll_racing_deactivation(backend: Backend) -> Result<()> {
    let cp = start_cp(backend).await?;
    for round in 0..3 {
        let name = format!("racer{round}@example.com");
        let id = create_user(&cp, &name).await?;
        let token = cp.enroll_token.clone().ok_or_else(|| anyhow!("no token"))?;
        let mut tasks = Vec::new();
        for _ in 0..24 {
            let url = cp.grpc_url.clone();
            let req = enroll_request(&token, &name);
            tasks.push(tokio::spawn(async move {
                let mut c = pb::agent_service_client::AgentServiceClient::connect(url).await?;
                anyhow::Ok(c.enroll(req).await.is_ok())
            }));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        deactivate(&cp, &id).await?;
        for t in tasks {
            let _ = t.await?;
        }
        let live: Vec<Value> = device_list(&cp)
            .await?
            .into_iter()
            .filter(|d| d["userName"] == name.as_str() && d["state"] == "live")
            .collect();
        assert!(
            live.is_empty(),
            "round {round}: live devices of a deactivated user: {live:?}"
        );
    }
    let _ = WAIT;
    Ok(())
}

backend_tests! {
    mdm_device_is_unverified => mdm_device_is_unverified_sqlite, mdm_device_is_unverified_postgres;
    activation_code_works_once => activation_code_works_once_sqlite, activation_code_works_once_postgres;
    deprovisioned_cannot_enroll => deprovisioned_cannot_enroll_sqlite, deprovisioned_cannot_enroll_postgres;
    enrollment_tokens_expire_and_rotate => enrollment_tokens_expire_and_rotate_sqlite, enrollment_tokens_expire_and_rotate_postgres;
    enroll_racing_deactivation => enroll_racing_deactivation_sqlite, enroll_racing_deactivation_postgres;
}
