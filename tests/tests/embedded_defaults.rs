//! The embedded default works with no extra step: `serve` on a fresh SQLite database with no
//! secrets key configured generates one (0600, beside the database), the CLI uses the same
//! key to store an API key, and a real agent receives it. A CLI given another key is refused
//! and changes nothing.

use anyhow::{ensure, Context, Result};
use palisade_tests::workstation::{api_key_set, use_helper_delivery, Workstation};
use palisade_tests::{create_user, Backend, ControlPlane};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_needs_no_secrets_key_by_hand() -> Result<()> {
    let cp = ControlPlane::start(Backend::Sqlite, &["--keepalive-seconds", "1"]).await?;
    let db_file = cp
        .db
        .url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p).to_owned())
        .context("a SQLite URL")?;
    let key_file = std::path::Path::new(&db_file)
        .parent()
        .context("the database's directory")?
        .join("secrets.key");
    ensure!(
        cp.stdout().contains("Secrets key generated at"),
        "serve says it made a key:\n{}",
        cp.stdout()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "{} has mode {mode:o}", key_file.display());
    }

    // Another key is refused before anything is written.
    let wrong = tempfile::NamedTempFile::new()?;
    std::fs::write(wrong.path(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
    let out = api_key_set(
        &cp,
        "sk-ant-wrong",
        None,
        &["--secrets-key-file", &wrong.path().display().to_string()],
    )
    .await?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("not the key"),
        "{err}"
    );

    // The CLI finds the generated key by itself; the agent gets the API key.
    let out = api_key_set(&cp, "sk-ant-embedded-key-1", None, &[]).await?;
    ensure!(
        out.status.success(),
        "api-key set with the generated key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use_helper_delivery(&cp).await?;
    create_user(&cp.scim(), "solo@example.com").await?;
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "solo@example.com").await?;
    w.start()?;
    w.wait_for("the API key on the laptop", |w| {
        w.state().join("api-key").exists()
    })
    .await?;
    let served = w.api_key().await?;
    ensure!(
        String::from_utf8_lossy(&served.stdout).trim() == "sk-ant-embedded-key-1",
        "the helper prints the stored key: {}",
        String::from_utf8_lossy(&served.stderr)
    );
    w.stop().await;
    Ok(())
}
