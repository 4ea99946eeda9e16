//! The admin API end to end, with the real control plane (SQLite and PostgreSQL) and a real
//! agent: tokens minted by the CLI and the API, shown once and revocable; roles enforced on
//! every mutating route the OpenAPI document lists; a group policy previewed and then saved
//! through the API reaching the agent's settings file; a device revoked through the API wiping
//! its agent; the audit trail naming the token and the source address, filtered, paged and
//! exported; bad input answered with a clear error that changes nothing.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};
use palisade_tests::workstation::Workstation;
use palisade_tests::{backend_tests, create_group, create_user, Backend, ControlPlane};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// An API client holding one bearer token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(cp: &ControlPlane, token: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: cp.root_url.clone(),
            token: token.to_owned(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| anyhow!("{path}: not JSON ({e}): {text}"))?
        };
        Ok((status, value))
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let (status, v) = self.call(Method::GET, path, None).await?;
        ensure!(status == StatusCode::OK, "GET {path}: {status} {v}");
        Ok(v)
    }

    async fn text(&self, path: &str) -> Result<(StatusCode, String)> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok((resp.status(), resp.text().await?))
    }
}

/// Waits until `palisade-agent status` reports the wipe.
async fn wait_wiped(w: &Workstation) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = w.command("status").arg("--json").output().await?;
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !status["wiped"].is_null() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the agent did not wipe: {status}\n{}", w.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn audit_count(api: &Api) -> Result<usize> {
    let (_, body) = api.text("/api/v1/audit/export?format=jsonl").await?;
    Ok(body.lines().count())
}

async fn admin_api_end_to_end(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &["--keepalive-seconds", "1"]).await?;
    let scim = cp.scim();
    let alice = create_user(&scim, "alice@example.com").await?;
    let bob = create_user(&scim, "bob@example.com").await?;
    create_user(&scim, "carol@example.com").await?;
    let eng = create_group(&scim, "Engineering", &[&alice]).await?;

    // No token, a wrong one: 401 in the API's error shape, with a bearer challenge.
    let anonymous = Api::new(&cp, "");
    let resp = reqwest::get(format!("{}/api/v1/members", cp.root_url)).await?;
    ensure!(resp.status() == StatusCode::UNAUTHORIZED);
    ensure!(resp.headers().contains_key("www-authenticate"));
    let body: Value = resp.json().await?;
    ensure!(body["error"]["code"] == "unauthenticated", "{body}");
    let (status, _) = Api::new(&cp, "pal_admin_forged")
        .call(Method::GET, "/api/v1/members", None)
        .await?;
    ensure!(status == StatusCode::UNAUTHORIZED);
    drop(anonymous);

    // An admin token from the CLI; it mints a read-only one through the API, shown once.
    let admin = Api::new(&cp, &cp.create_api_token("admin", "ops").await?);
    let (status, created) = admin
        .call(
            Method::POST,
            "/api/v1/api-tokens",
            Some(&json!({"label": "dashboard", "role": "read-only"})),
        )
        .await?;
    ensure!(status == StatusCode::CREATED, "{status} {created}");
    let ro_secret = created["secret"].as_str().unwrap_or_default().to_owned();
    ensure!(ro_secret.starts_with("pal_admin_"), "{created}");
    let listed = admin.get("/api/v1/api-tokens").await?;
    ensure!(
        !listed.to_string().contains(&ro_secret),
        "a list shows no secret"
    );
    let read_only = Api::new(&cp, &ro_secret);

    // Members: paged by cursor and searched by the start of the userName.
    let page1 = admin.get("/api/v1/members?limit=2").await?;
    let names = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["user_name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    ensure!(
        names(&page1) == ["alice@example.com", "bob@example.com"],
        "{page1}"
    );
    let cursor = page1["next_cursor"]
        .as_str()
        .ok_or_else(|| anyhow!("no cursor: {page1}"))?;
    let page2 = admin
        .get(&format!("/api/v1/members?limit=2&cursor={cursor}"))
        .await?;
    ensure!(
        names(&page2) == ["carol@example.com"] && page2["next_cursor"].is_null(),
        "{page2}"
    );
    let found = read_only.get("/api/v1/members?q=BO").await?;
    ensure!(names(&found) == ["bob@example.com"], "{found}");
    ensure!(found["items"][0]["groups"] == json!([]));
    let detail = read_only.get(&format!("/api/v1/members/{alice}")).await?;
    ensure!(detail["groups"] == json!(["Engineering"]), "{detail}");

    // A real agent for alice.
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "alice@example.com").await?;
    w.start()?;
    w.wait_for("the first policy", |w| w.drop_in().is_some())
        .await?;

    // Preview a group policy: what changes, for whom; nothing is saved.
    let policy = json!({"permissions": {"deny": ["WebFetch"]}});
    let path = format!("/api/v1/groups/{eng}/policy");
    let before = audit_count(&admin).await?;
    let (status, preview) = read_only
        .call(Method::PUT, &format!("{path}?dry_run=true"), Some(&policy))
        .await?;
    ensure!(
        status == StatusCode::OK,
        "a read-only token may preview: {status} {preview}"
    );
    ensure!(
        preview["people_changed"] == 1
            && preview["devices_changed"] == 1
            && preview["saved"] == false
            && preview["changed_keys"] == json!(["permissions.deny"])
            && preview["examples"][0]["user_name"] == "alice@example.com",
        "{preview}"
    );
    ensure!(
        admin.get(&path).await?["policy"].is_null(),
        "a preview saves nothing"
    );
    ensure!(
        audit_count(&admin).await? == before,
        "a preview writes no audit event"
    );

    // Invalid policies: a clear error naming the key, and nothing changes.
    for bad in [
        json!({"permissions": {"deny": "WebFetch"}}),
        json!({"no_such_key": 1}),
        json!([1]),
    ] {
        let (status, err) = admin.call(Method::PUT, &path, Some(&bad)).await?;
        ensure!(
            status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {status} {err}"
        );
        ensure!(
            err["error"]["code"] == "invalid"
                && !err["error"]["details"].as_array().is_none_or(Vec::is_empty),
            "{err}"
        );
    }
    let (status, err) = admin.call(Method::PUT, &path, None).await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY,
        "no body: {status} {err}"
    );
    ensure!(
        audit_count(&admin).await? == before,
        "failed writes change nothing"
    );

    // Saved by the admin token: the agent's settings file changes by itself.
    let (status, saved) = admin.call(Method::PUT, &path, Some(&policy)).await?;
    ensure!(
        status == StatusCode::OK && saved["saved"] == true,
        "{status} {saved}"
    );
    w.wait_for("the group policy in the drop-in", |w| {
        w.drop_in()
            .and_then(|d| d.pointer("/permissions/deny").cloned())
            .is_some_and(|deny| deny.to_string().contains("WebFetch"))
    })
    .await?;

    // The org defaults saved through the API reach the agent too, and removing the group's
    // override takes its rule away again.
    let (status, saved) = admin
        .call(
            Method::PUT,
            "/api/v1/policies/defaults",
            Some(&json!({"permissions": {"deny": ["WebSearch"]}})),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && saved["saved"] == true,
        "{status} {saved}"
    );
    let denies = |w: &Workstation| {
        w.drop_in()
            .and_then(|d| d.pointer("/permissions/deny").cloned())
            .map(|d| d.to_string())
            .unwrap_or_default()
    };
    w.wait_for("the defaults in the drop-in", |w| {
        denies(w).contains("WebSearch") && denies(w).contains("WebFetch")
    })
    .await?;

    // The history names who saved which version.
    let history = read_only.get(&format!("{path}/history")).await?;
    ensure!(
        history[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("api-token:ops"))
            && history[0]["policy"] == policy
            && history[0]["source"] == "127.0.0.1",
        "{history}"
    );

    let (status, removed) = admin.call(Method::DELETE, &path, None).await?;
    ensure!(status == StatusCode::OK, "{status} {removed}");
    w.wait_for("the group's rule gone from the drop-in", |w| {
        denies(w).contains("WebSearch") && !denies(w).contains("WebFetch")
    })
    .await?;
    let (status, _) = admin.call(Method::PUT, &path, Some(&policy)).await?;
    ensure!(status == StatusCode::OK);
    // Settled (the person's new version is written and delivered) before counting the trail.
    w.wait_for("the group's rule back", |w| denies(w).contains("WebFetch"))
        .await?;

    // Read-only: every mutating route the OpenAPI document lists answers 403 and changes
    // nothing.
    let doc = read_only.get("/api/v1/openapi.json").await?;
    ensure!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    let before = audit_count(&admin).await?;
    let mut mutating = 0;
    for (route, methods) in doc["paths"]
        .as_object()
        .ok_or_else(|| anyhow!("no paths"))?
    {
        for method in methods
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let method: Method = method.to_uppercase().parse()?;
            if method == Method::GET {
                continue;
            }
            mutating += 1;
            let concrete = route.replace("{id}", if route.contains("groups") { &eng } else { "x" });
            // A body each route accepts, so the answer is about the role, not the input.
            let body = match route.as_str() {
                "/api/v1/api-tokens" => json!({"label": "x", "role": "admin"}),
                "/api/v1/scim-tokens" => json!({"label": "x"}),
                "/api/v1/invites" => json!({"user": "alice@example.com"}),
                _ => json!({}),
            };
            let (status, err) = read_only
                .call(method.clone(), &concrete, Some(&body))
                .await?;
            ensure!(
                status == StatusCode::FORBIDDEN && err["error"]["code"] == "forbidden",
                "read-only {method} {concrete}: {status} {err}"
            );
        }
    }
    ensure!(
        mutating >= 8,
        "the document lists the mutating routes ({mutating})"
    );
    let after = audit_count(&admin).await?;
    ensure!(
        after == before,
        "refused calls change nothing: {}",
        admin.text("/api/v1/audit?limit=5").await?.1
    );

    // Revoke alice's device through the API: the agent wipes.
    let devices = read_only.get("/api/v1/devices").await?;
    let device = devices["items"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no device: {devices}"))?
        .to_owned();
    let (status, revoked) = admin
        .call(
            Method::POST,
            &format!("/api/v1/devices/{device}/revoke"),
            Some(&json!({"reason": "laptop lost"})),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && revoked["revoked_reason"] == "laptop lost",
        "{status} {revoked}"
    );
    wait_wiped(&w).await?;

    // The audit trail names the token and the source address; filters and export agree.
    let by_token = admin.get("/api/v1/audit?action=device.revoke").await?;
    let event = &by_token["items"][0];
    ensure!(
        event["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("api-token:ops ("))
            && event["source"] == "127.0.0.1"
            && event["resource_id"] == device,
        "{by_token}"
    );
    let actor = event["actor"].as_str().unwrap_or_default().to_owned();
    let mine = admin
        .get(&format!(
            "/api/v1/audit?actor={}",
            palisade_tests::enc(&actor)
        ))
        .await?;
    let actions: Vec<&str> = mine["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        actions
            == [
                "device.revoke",
                "group.policy.set",
                "group.policy.set",
                "org.policy.set-default",
                "group.policy.set",
                "api-token.create"
            ],
        "newest first, only this actor's: {actions:?}"
    );
    let about_bob = admin.get("/api/v1/audit?person=bob@example.com").await?;
    ensure!(
        about_bob["items"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|e| e["resource_id"] == bob)),
        "{about_bob}"
    );
    let paged = admin.get("/api/v1/audit?limit=1").await?;
    ensure!(paged["items"].as_array().map(Vec::len) == Some(1) && paged["next_cursor"].is_string());
    let (status, csv) = read_only
        .text("/api/v1/audit/export?action=device.")
        .await?;
    ensure!(status == StatusCode::OK, "{status} {csv}");
    let mut lines = csv.lines();
    ensure!(
        lines.next() == Some("id,at,actor,source,action,resource_type,resource_id,detail"),
        "{csv}"
    );
    ensure!(
        csv.contains("device.revoke")
            && csv.contains("laptop lost")
            && !csv.contains("group.policy.set"),
        "{csv}"
    );
    for bad in [
        "/api/v1/audit?since=yesterday",
        "/api/v1/audit?cursor=%21%21",
        "/api/v1/audit/export?format=xml",
        "/api/v1/members?limit=x",
    ] {
        let (status, err) = admin.call(Method::GET, bad, None).await?;
        ensure!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{bad}: {status}"
        );
        ensure!(err["error"]["code"] == "invalid", "{bad}: {err}");
    }

    // Settings: unknown fields and bad values refused whole; a good change applied.
    let (status, _) = admin
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&json!({"audit_retention_days": 30, "nonsense": 1})),
        )
        .await?;
    ensure!(status == StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&json!({"audit_retention_days": 30, "offline_rule": "sometimes"})),
        )
        .await?;
    ensure!(status == StatusCode::UNPROCESSABLE_ENTITY);
    ensure!(
        admin.get("/api/v1/settings").await?["audit_retention_days"] == 90,
        "nothing changed"
    );
    let (status, s) = admin
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&json!({"audit_retention_days": 30})),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && s["audit_retention_days"] == 30,
        "{s}"
    );

    // A revoked token stops at its next request.
    let tokens = admin.get("/api/v1/api-tokens").await?;
    let ro_id = tokens
        .as_array()
        .and_then(|a| a.iter().find(|t| t["label"] == "dashboard"))
        .and_then(|t| t["id"].as_str())
        .ok_or_else(|| anyhow!("{tokens}"))?
        .to_owned();
    let (status, _) = admin
        .call(Method::DELETE, &format!("/api/v1/api-tokens/{ro_id}"), None)
        .await?;
    ensure!(status == StatusCode::OK);
    let (status, _) = read_only.call(Method::GET, "/api/v1/members", None).await?;
    ensure!(status == StatusCode::UNAUTHORIZED);

    // An unknown route is a 404 in the same shape.
    let (status, err) = admin
        .call(Method::GET, "/api/v1/nothing-here", None)
        .await?;
    ensure!(
        status == StatusCode::NOT_FOUND && err["error"]["code"] == "not_found",
        "{err}"
    );
    w.stop().await;
    Ok(())
}

/// Policy as code: a folder applied by the CLI; a dry run and a bad file change nothing.
async fn policy_apply_from_a_folder(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let alice = create_user(&scim, "alice@example.com").await?;
    let eng = create_group(&scim, "Engineering", &[&alice]).await?;
    let ops = create_group(&scim, "Ops", &[]).await?;
    let admin = Api::new(&cp, &cp.create_api_token("read-only", "check").await?);
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("groups"))?;
    std::fs::write(
        dir.path().join("defaults.toml"),
        "security_level = \"moderate\"\n",
    )?;
    std::fs::write(
        dir.path().join("groups/Engineering.json"),
        r#"{"permissions": {"deny": ["WebFetch"]}}"#,
    )?;
    let d = dir.path().display().to_string();
    let apply = |extra: &'static [&'static str]| {
        let mut args = vec!["policy", "apply", "--org", "default", "--dir", &d];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = apply(&["--dry-run"]);
    let out = cp
        .cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    ensure!(
        out.contains("~ group \"Engineering\"")
            && out.contains("permissions.deny: (unset) -> [\"WebFetch\"]")
            && out.contains("for 1 of 1 people")
            && out.contains("dry run: nothing saved"),
        "{out}"
    );
    ensure!(admin.get(&format!("/api/v1/groups/{eng}/policy")).await?["policy"].is_null());

    // One bad file: nothing applied, and it says why.
    std::fs::write(dir.path().join("groups/Nobody.json"), "{}")?;
    let args = apply(&[]);
    let bad = cp
        .cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    ensure!(
        !bad.status.success()
            && String::from_utf8_lossy(&bad.stderr).contains("no group \"Nobody\"")
    );
    ensure!(admin.get(&format!("/api/v1/groups/{eng}/policy")).await?["policy"].is_null());
    std::fs::remove_file(dir.path().join("groups/Nobody.json"))?;

    let out = cp
        .cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    ensure!(out.contains("applied 2 change(s)"), "{out}");
    ensure!(
        admin.get(&format!("/api/v1/groups/{eng}/policy")).await?["policy"]
            == json!({"permissions": {"deny": ["WebFetch"]}})
    );
    ensure!(
        admin.get("/api/v1/policies/defaults").await?["policy"]
            == json!({"security_level": "moderate"})
    );
    let again = cp
        .cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    ensure!(again.contains("no change"), "idempotent: {again}");

    // --prune removes overrides of groups without a file.
    let (status, _) = Api::new(&cp, &cp.create_api_token("admin", "ops").await?)
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{ops}/policy"),
            Some(&json!({"permissions": {"deny": ["Bash"]}})),
        )
        .await?;
    ensure!(status == StatusCode::OK);
    let args = apply(&["--prune"]);
    let out = cp
        .cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    ensure!(out.contains("Ops\" (no file: removed)"), "{out}");
    ensure!(admin.get(&format!("/api/v1/groups/{ops}/policy")).await?["policy"].is_null());
    Ok(())
}

/// Enrollment tokens and invitations through the API: shown once, and they really enroll.
async fn enrollment_credentials_through_the_api(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    create_user(&cp.scim(), "erin@example.com").await?;
    let admin = Api::new(&cp, &cp.create_api_token("admin", "ops").await?);
    let (status, invite) = admin
        .call(
            Method::POST,
            "/api/v1/invites",
            Some(&json!({"user": "erin@example.com"})),
        )
        .await?;
    ensure!(status == StatusCode::CREATED, "{status} {invite}");
    let code = invite["secret"].as_str().unwrap_or_default().to_owned();
    let listed = admin.get("/api/v1/invites").await?;
    ensure!(
        !listed.to_string().contains(&code) && listed[0]["user_name"] == "erin@example.com",
        "{listed}"
    );
    let w = Workstation::new()?;
    let out = w.enroll_with_code(&cp, &code).await?;
    ensure!(
        out.status.success(),
        "the API's code enrolls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (body, field) in [
        (json!({"user": "nobody@example.com"}), "user"),
        (
            json!({"user": "erin@example.com", "expires_in_days": 9999}),
            "expires_in_days",
        ),
    ] {
        let (status, err) = admin
            .call(Method::POST, "/api/v1/invites", Some(&body))
            .await?;
        ensure!(
            status == StatusCode::UNPROCESSABLE_ENTITY && err["error"]["field"] == field,
            "{err}"
        );
    }
    let (status, token) = admin
        .call(
            Method::POST,
            "/api/v1/enroll-tokens",
            Some(&json!({"expires_in_days": 10})),
        )
        .await?;
    ensure!(
        status == StatusCode::CREATED && token["secret"].is_string(),
        "{token}"
    );
    let id = token["id"].as_str().unwrap_or_default().to_owned();
    let (status, revoked) = admin
        .call(Method::DELETE, &format!("/api/v1/enroll-tokens/{id}"), None)
        .await?;
    ensure!(
        status == StatusCode::OK && revoked["revoked_at"].is_string(),
        "{revoked}"
    );
    Ok(())
}

/// Settings changed through the API reach the agent by themselves (key delivery switches the
/// laptop's settings file between the relay and the helper), and the sign-in configuration is
/// validated field by field, stored without echoing its secret, and readable without it.
async fn settings_and_sign_in_through_the_api(backend: Backend) -> Result<()> {
    let secrets = palisade_tests::workstation::secrets_key_file()?;
    let cp = ControlPlane::start(
        backend,
        &["--secrets-key-file", &secrets, "--keepalive-seconds", "1"],
    )
    .await?;
    palisade_tests::workstation::set_org_api_key(&cp, "sk-ant-api03-settings-test").await?;
    create_user(&cp.scim(), "dana@example.com").await?;
    let admin = Api::new(&cp, &cp.create_api_token("admin", "ops").await?);
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "dana@example.com").await?;
    w.start()?;
    let base_url = |w: &Workstation| {
        w.drop_in()
            .and_then(|d| d.pointer("/env/ANTHROPIC_BASE_URL").cloned())
    };
    w.wait_for("the relay's base URL (proxy delivery)", |w| {
        base_url(w).is_some()
    })
    .await?;
    let (status, body) = admin
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&json!({"key_delivery": "helper"})),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && body["key_delivery"] == "helper",
        "{status} {body}"
    );
    w.wait_for("the helper without the relay", |w| {
        w.drop_in().is_some() && base_url(w).is_none()
    })
    .await?;

    // Sign-in: every bad field reported at once, nothing stored.
    let (status, err) = admin
        .call(
            Method::PUT,
            "/api/v1/sign-in",
            Some(&json!({"issuer": "ftp://idp.example.com", "client_id": "", "claim": "nickname"})),
        )
        .await?;
    let fields: Vec<&str> = err["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY
            && ["issuer", "client_id", "claim", "client_secret"]
                .iter()
                .all(|f| fields.contains(f)),
        "{status} {err}"
    );
    ensure!(admin.get("/api/v1/sign-in").await?.is_null());
    let secret = "oidc-client-secret-91b2";
    let (status, saved) = admin
        .call(
            Method::PUT,
            "/api/v1/sign-in",
            Some(&json!({"issuer": "https://login.example.com/", "client_id": "palisade", "client_secret": secret})),
        )
        .await?;
    ensure!(
        status == StatusCode::OK
            && saved["claim"] == "email"
            && saved["match_attribute"] == "userName"
            && !saved.to_string().contains(secret),
        "{status} {saved}"
    );
    let read = admin.get("/api/v1/sign-in").await?;
    ensure!(
        read["issuer"] == "https://login.example.com/" && !read.to_string().contains(secret),
        "{read}"
    );
    let trail = admin
        .text("/api/v1/audit/export?format=jsonl&action=oidc.set")
        .await?
        .1;
    ensure!(
        trail.lines().count() == 1 && trail.contains("api-token:ops") && !trail.contains(secret),
        "{trail}"
    );
    w.stop().await;
    Ok(())
}

backend_tests! {
    settings_and_sign_in_through_the_api => settings_api_sqlite, settings_api_postgres;
    enrollment_credentials_through_the_api => enrollment_api_sqlite, enrollment_api_postgres;
    admin_api_end_to_end => admin_api_sqlite, admin_api_postgres;
    policy_apply_from_a_folder => policy_apply_sqlite, policy_apply_postgres;
}
