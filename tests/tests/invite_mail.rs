//! End-to-end: with an SMTP relay configured, `invite create` mails the person their activation
//! code and the enroll command (a small SMTP sink stands in for the relay); a relay that is
//! down leaves the printed code valid and says so; without an email address nothing is sent.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use palisade_tests::{run_scenario, Backend, ControlPlane};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Accepts SMTP sessions on 127.0.0.1 and keeps each message's envelope and data.
struct SmtpSink {
    port: u16,
    messages: Arc<Mutex<Vec<(String, String)>>>,
}

impl SmtpSink {
    async fn start() -> Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let store = messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let (mut rcpt, mut data, mut in_data) = (String::new(), String::new(), false);
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                if let Ok(mut m) = store.lock() {
                                    m.push((rcpt.clone(), data.clone()));
                                }
                                let _ = write.write_all(b"250 queued\r\n").await;
                            } else {
                                data.push_str(&line);
                                data.push('\n');
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "RCPT" => {
                                rcpt = line.clone();
                                b"250 ok\r\n"
                            }
                            "DATA" => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        Ok(SmtpSink { port, messages })
    }
}

async fn invitation_is_emailed(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let r = cp
        .scim()
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mia",
                    "emails": [{"primary": true, "value": "Mia@Example.com"}]}),
        )
        .await?;
    r.expect(201)?;
    cp.scim()
        .post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "noemail"}))
        .await?
        .expect(201)?;
    let sink = SmtpSink::start().await?;
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let mail = |user: &'static str, url: String| {
        let cp = &cp;
        async move {
            cp.cli(&[
                "--smtp-url",
                &url,
                "--smtp-from",
                "Palisade <it@example.com>",
                "--public-grpc-url",
                "https://palisade.example.com:50051",
                "invite",
                "create",
                "--org",
                "default",
                "--user",
                user,
            ])
            .await
        }
    };
    let out = mail("mia", smtp.clone()).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let code = stdout.lines().last().unwrap_or_default().trim().to_string();
    assert!(
        code.starts_with("pal_act_"),
        "the code is the last line: {stdout}"
    );
    assert!(
        stdout.contains("invitation emailed to mia@example.com"),
        "{stdout}"
    );
    let messages = sink
        .messages
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .clone();
    assert_eq!(messages.len(), 1);
    let (rcpt, data) = &messages[0];
    assert!(rcpt.to_lowercase().contains("mia@example.com"), "{rcpt}");
    // Quoted-printable may wrap long lines; undo soft breaks before looking for the command.
    let text = data.replace("=\n", "");
    assert!(text.contains(&code), "the code is in the mail: {text}");
    assert!(text.contains("palisade-agent enroll --server https://palisade.example.com:50051"));

    // No address: printed, not mailed.
    let out = mail("noemail", smtp.clone()).await?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no email address"));
    assert_eq!(
        sink.messages.lock().map_err(|_| anyhow!("poisoned"))?.len(),
        1
    );

    // Relay down: the code is still printed (and works); the failure is said.
    let dead = TcpListener::bind("127.0.0.1:0").await?;
    let dead_url = format!("smtp://127.0.0.1:{}", dead.local_addr()?.port());
    drop(dead);
    let out = mail("mia", dead_url).await?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not sent"));
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .starts_with("pal_act_"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_is_emailed_sqlite() {
    run_scenario(
        "invitation_is_emailed_sqlite",
        invitation_is_emailed(Backend::Sqlite),
    )
    .await
}
