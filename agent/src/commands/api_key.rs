//! `palisade-agent api-key`: Claude Code's `apiKeyHelper`. Prints the key from the state
//! directory, or fails (non-zero, nothing on stdout) when the device was wiped, is not
//! enrolled, or has no key. With `--key-file <path>` it prints the developer's copy instead
//! (see [`crate::credentials::keyfile`]), or fails when that file is missing or unreadable.
//! Also builds the helper command line the drop-in carries.

use std::path::Path;

use crate::config::Paths;
use crate::credentials::keyfile::UserKeyFile;
use crate::state::{StateDir, StateError, DEVICE_FILE};

/// Why no key is served.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// A wipe happened and no policy arrived since.
    #[error("this device was deprovisioned: no API key")]
    Wiped,
    /// No `device.json`.
    #[error("this device is not enrolled: no API key")]
    NotEnrolled,
    /// Enrolled, but the organisation gave no key.
    #[error("no API key was delivered to this device")]
    NoKey,
    /// The state cannot be read.
    #[error("cannot read the API key: {0}")]
    State(#[from] StateError),
    /// The wipe left its marker: the organisation removed this person's access.
    #[error("Palisade: your access was removed by your organisation.")]
    Revoked,
    /// A local token, but the relay it works with does not answer.
    #[error(
        "the Palisade agent is not running: its key relay at {addr} does not answer ({error}); \
         start the palisade-agent service or ask your IT team"
    )]
    RelayDown {
        /// The relay's address.
        addr: std::net::SocketAddr,
        /// Why the connection failed.
        error: String,
    },
    /// Something answers at the relay's address, but it is not this computer's agent.
    #[error(
        "Palisade: the program listening at {addr} is not this computer's Palisade agent \
         ({why}); your token was not handed over. Ask your IT team."
    )]
    RelayImpostor {
        /// The relay's address.
        addr: std::net::SocketAddr,
        /// What gave it away.
        why: String,
    },
}

/// A local token is only worth printing while its relay answers, and only to the relay that
/// proves it is this computer's agent (a plain key is printed as is): a stopped agent shows up
/// in Claude Code as a helper failure naming Palisade, and a program of another account that
/// took the relay's port while the agent was down gets nothing (see `relay::token::relay_proof`).
pub fn check_relay(
    key: String,
    relay: Option<std::net::SocketAddr>,
) -> Result<String, ApiKeyError> {
    // Claude Code shows a failing helper at once (it retries an auth error with a working
    // one for minutes), and its stderr is where the developer reads why.
    if key == crate::relay::token::REVOKED_TOKEN {
        return Err(ApiKeyError::Revoked);
    }
    let Some(addr) = relay.filter(|_| key.starts_with(crate::relay::token::LOCAL_TOKEN_PREFIX))
    else {
        return Ok(key);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ApiKeyError::RelayDown {
            addr,
            error: e.to_string(),
        })?;
    runtime.block_on(challenge(&key, addr))?;
    Ok(key)
}

/// Asks the relay at `addr` for its proof on a fresh nonce and checks it against `token`.
async fn challenge(token: &str, addr: std::net::SocketAddr) -> Result<(), ApiKeyError> {
    let down = |error: String| ApiKeyError::RelayDown { addr, error };
    let impostor = |why: &str| ApiKeyError::RelayImpostor {
        addr,
        why: why.to_owned(),
    };
    let client = reqwest::Client::builder()
        // The relay is on loopback: a corporate proxy must never see this exchange.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(1))
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|e| down(e.to_string()))?;
    let nonce = hex::encode(rand::random::<[u8; 32]>());
    let url = format!(
        "http://{addr}{}?nonce={nonce}",
        crate::relay::token::PROOF_PATH
    );
    let response = client.get(url).send().await.map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            down(e.to_string())
        } else {
            impostor("it does not answer as the agent does")
        }
    })?;
    if !response.status().is_success() {
        return Err(impostor(&format!("it answered {}", response.status())));
    }
    #[derive(serde::Deserialize)]
    struct Proof {
        proof: String,
    }
    let proof: Proof = response
        .json()
        .await
        .map_err(|_| impostor("its answer is not a proof"))?;
    let expected = crate::relay::token::relay_proof(token, &nonce);
    // Not secret-dependent timing on the developer's side: the expected value is theirs.
    if proof.proof != expected {
        return Err(impostor("its proof does not match this computer's token"));
    }
    Ok(())
}

/// The key Claude Code should use.
pub fn read_api_key(state: &StateDir) -> Result<String, ApiKeyError> {
    // A status file that cannot be read does not block the key; a wipe removes it anyway.
    if let Ok(status) = state.load_status() {
        if status.wiped.is_some() {
            return Err(ApiKeyError::Wiped);
        }
    }
    // A wipe under way (or interrupted by a crash) serves nothing either.
    if state.wipe_pending() {
        return Err(ApiKeyError::Wiped);
    }
    if !state.path(DEVICE_FILE).is_file() {
        return Err(ApiKeyError::NotEnrolled);
    }
    state.load_api_key()?.ok_or(ApiKeyError::NoKey)
}

/// `<exe> api-key [--state-dir <dir>]`, quoted for the shell Claude Code runs it with.
pub fn api_key_helper_command(exe: &Path, state_dir: Option<&Path>) -> String {
    helper_command_for(exe, state_dir, cfg!(windows))
}

/// `<exe> api-key --key-file <path>`, quoted for the shell Claude Code runs it with.
pub fn api_key_file_helper_command(exe: &Path, key_file: &Path) -> String {
    file_helper_command_for(exe, key_file, cfg!(windows))
}

/// The helper the agent writes: the developer's key file when there is one (Unix), else the
/// state directory (`--state-dir` only when it is not the default).
pub fn helper_for(exe: &Path, paths: &Paths, key_file: Option<&UserKeyFile>) -> String {
    match key_file {
        Some(k) => api_key_file_helper_command(exe, &k.path()),
        None => api_key_helper_command(
            exe,
            (!paths.state_dir_is_default).then_some(paths.state_dir.as_path()),
        ),
    }
}

fn file_helper_command_for(exe: &Path, key_file: &Path, windows: bool) -> String {
    let mut cmd = quote(&exe.to_string_lossy(), windows);
    cmd.push_str(" api-key --key-file ");
    cmd.push_str(&quote(&key_file.to_string_lossy(), windows));
    cmd
}

fn helper_command_for(exe: &Path, state_dir: Option<&Path>, windows: bool) -> String {
    let mut cmd = quote(&exe.to_string_lossy(), windows);
    cmd.push_str(" api-key");
    if let Some(dir) = state_dir {
        cmd.push_str(" --state-dir ");
        cmd.push_str(&quote(&dir.to_string_lossy(), windows));
    }
    cmd
}

fn quote(arg: &str, windows: bool) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/\\._-:+=@,%".contains(c));
    if plain {
        arg.to_owned()
    } else if windows {
        format!("\"{}\"", arg.replace('"', "\\\""))
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::messages::WipeRecord;
    use crate::state::Status;
    use std::path::PathBuf;

    #[test]
    fn helper_command_quotes_when_needed() {
        let exe = PathBuf::from("/usr/local/bin/palisade-agent");
        assert_eq!(
            helper_command_for(&exe, None, false),
            "/usr/local/bin/palisade-agent api-key"
        );
        assert_eq!(
            helper_command_for(&exe, Some(Path::new("/tmp/it's state")), false),
            "/usr/local/bin/palisade-agent api-key --state-dir '/tmp/it'\\''s state'"
        );
        assert_eq!(
            file_helper_command_for(&exe, Path::new("/var/lib/palisade-agent-keys/1000/api-key"), false),
            "/usr/local/bin/palisade-agent api-key --key-file /var/lib/palisade-agent-keys/1000/api-key"
        );
        assert_eq!(
            file_helper_command_for(&exe, Path::new("/tmp/a b/api-key"), false),
            "/usr/local/bin/palisade-agent api-key --key-file '/tmp/a b/api-key'"
        );
        let win = PathBuf::from(r"C:\Program Files\Palisade\palisade-agent.exe");
        assert_eq!(
            helper_command_for(&win, None, true),
            r#""C:\Program Files\Palisade\palisade-agent.exe" api-key"#
        );
    }

    #[test]
    fn a_local_token_needs_its_relay() {
        // Something that accepts connections and answers garbage is not the relay.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = listener.local_addr().unwrap();
        let squatter = std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = r#"{"proof":"00"}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        });
        let token = "pal_local_ab".to_owned();
        let e = check_relay(token.clone(), Some(up)).unwrap_err();
        assert!(matches!(e, ApiKeyError::RelayImpostor { .. }), "{e}");
        assert!(
            e.to_string().contains("not this computer's Palisade agent"),
            "{e}"
        );
        squatter.join().unwrap();
        assert_eq!(check_relay(token.clone(), None).unwrap(), token);
        let e = check_relay(token, Some(up)).unwrap_err().to_string();
        assert!(e.contains("Palisade agent is not running"), "{e}");
        assert!(matches!(
            check_relay(crate::relay::token::REVOKED_TOKEN.into(), None),
            Err(ApiKeyError::Revoked)
        ));
        // A plain key (helper delivery) is printed whatever the relay does.
        assert_eq!(
            check_relay("sk-ant-1".into(), Some(up)).unwrap(),
            "sk-ant-1"
        );
    }

    #[test]
    fn key_is_served_only_when_enrolled_and_not_wiped() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        assert!(matches!(
            read_api_key(&state),
            Err(ApiKeyError::NotEnrolled)
        ));
        std::fs::write(state.path(DEVICE_FILE), b"{}").unwrap();
        assert!(matches!(read_api_key(&state), Err(ApiKeyError::NoKey)));
        state.save_api_key("sk-ant-1").unwrap();
        assert_eq!(read_api_key(&state).unwrap(), "sk-ant-1");
        // A wipe marked as started (the agent may have crashed before removing the key).
        state
            .save_pending_wipe(&crate::state::PendingWipe::default())
            .unwrap();
        assert!(matches!(read_api_key(&state), Err(ApiKeyError::Wiped)));
        state.remove(crate::state::WIPE_PENDING_FILE).unwrap();
        assert_eq!(read_api_key(&state).unwrap(), "sk-ant-1");
        state
            .save_status(&Status {
                wiped: Some(WipeRecord::default()),
                ..Status::default()
            })
            .unwrap();
        assert!(matches!(read_api_key(&state), Err(ApiKeyError::Wiped)));
    }
}
