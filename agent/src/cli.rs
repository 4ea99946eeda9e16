//! The command line (clap): `enroll`, `run`, `status`, `api-key`, each with the location
//! flags `--settings-dir`, `--state-dir`, `--claude-config-dir` and `--config`, which can also
//! come from the environment (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    Overrides, ENV_CLAUDE_CONFIG_DIR, ENV_CONFIG, ENV_SETTINGS_DIR, ENV_STATE_DIR,
};

/// Palisade workstation agent: applies the organisation's Claude Code policy on this machine.
#[derive(Debug, Parser)]
#[command(name = "palisade-agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll this device as a proven person: `--login` (sign in with your organisation's
    /// account in a browser), `--code` (an activation code from your administrator), or
    /// `--enroll-token` with `--user` (MDM; the person confirms the device later).
    #[command(group(clap::ArgGroup::new("how").required(true).args(["login", "code", "enroll_token"])))]
    Enroll {
        /// Control plane gRPC URL, e.g. https://palisade.example.com:50051 (http:// only to
        /// a loopback address).
        #[arg(long, value_name = "URL")]
        server: String,
        /// Sign in with your organisation's identity provider: prints a link and a code, then
        /// waits while you confirm the device in the browser. On an enrolled device that is
        /// not yet confirmed, this confirms it.
        #[arg(long)]
        login: bool,
        /// The organisation to sign in to (with --login).
        #[arg(
            long,
            value_name = "SLUG",
            default_value = "default",
            requires = "login"
        )]
        org: String,
        /// Do not try to open a browser (with --login); the link is printed either way.
        #[arg(long, requires = "login")]
        no_browser: bool,
        /// A one-time activation code from your administrator.
        #[arg(
            long,
            value_name = "CODE",
            env = "PALISADE_AGENT_ACTIVATION_CODE",
            hide_env_values = true
        )]
        code: Option<String>,
        /// Organisation enrollment token (MDM), with --user.
        #[arg(
            long = "enroll-token",
            value_name = "TOKEN",
            env = "PALISADE_AGENT_ENROLL_TOKEN",
            hide_env_values = true,
            requires = "user"
        )]
        enroll_token: Option<String>,
        /// The person's userName in the identity provider (with --enroll-token), e.g. from an
        /// MDM variable such as Jamf's $EMAIL.
        #[arg(long, value_name = "USERNAME", requires = "enroll_token")]
        user: Option<String>,
        /// PEM file of the only CA to trust for the server (default: the Mozilla root set; a
        /// private CA must be given here).
        #[arg(long = "ca-cert", value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// Where things are.
        #[command(flatten)]
        locations: Locations,
    },
    /// Stream the policy and keep Claude Code's managed settings in line (the service).
    Run {
        /// Run under the Windows service control manager (the MSI registers the service as
        /// `palisade-agent.exe run --windows-service`); without it, `run` is a console program.
        #[cfg(windows)]
        #[arg(long = "windows-service")]
        windows_service: bool,
        /// Where the key relay listens (loopback only), or `off`. With the organisation's
        /// proxy key delivery Claude Code is pointed at it.
        #[arg(long, value_name = "ADDR|off", env = "PALISADE_AGENT_RELAY_ADDR", default_value = crate::relay::DEFAULT_RELAY_ADDR, value_parser = parse_relay_addr)]
        relay_addr: RelayAddr,
        /// Where things are.
        #[command(flatten)]
        locations: Locations,
    },
    /// Show enrollment, applied policy, connection, warnings and wipe state.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Where things are.
        #[command(flatten)]
        locations: Locations,
    },
    /// Print the API key (Claude Code's apiKeyHelper); exits non-zero with nothing on stdout
    /// when there is none.
    ApiKey {
        /// Read the key from this per-user file (what the agent writes into apiKeyHelper on
        /// Unix) instead of the state directory; no config file or state is read then.
        #[arg(long = "key-file", value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// The agent's key relay (written by the agent with proxy key delivery): a local token
        /// is printed only while the relay answers, so that a stopped agent fails here with a
        /// message naming Palisade instead of as a bare connection error in Claude Code.
        #[arg(long, value_name = "ADDR")]
        relay: Option<std::net::SocketAddr>,
        /// Where things are.
        #[command(flatten)]
        locations: Locations,
    },
}

impl Command {
    /// The location flags of any subcommand.
    pub fn locations(&self) -> &Locations {
        match self {
            Command::Enroll { locations, .. }
            | Command::Run { locations, .. }
            | Command::Status { locations, .. }
            | Command::ApiKey { locations, .. } => locations,
        }
    }
}

/// The relay's address, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayAddr(pub Option<std::net::SocketAddr>);

fn parse_relay_addr(text: &str) -> Result<RelayAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(RelayAddr(None));
    }
    let addr: std::net::SocketAddr = text
        .parse()
        .map_err(|e| format!("{text:?}: {e} (expected 127.0.0.1:PORT or off)"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr}: the relay listens on a loopback address only"
        ));
    }
    Ok(RelayAddr(Some(addr)))
}

/// Where things are; every subcommand takes these.
#[derive(Debug, Clone, Default, Args)]
pub struct Locations {
    /// Directory holding Claude Code's managed-settings.json and managed-settings.d/.
    #[arg(long, value_name = "DIR", env = ENV_SETTINGS_DIR)]
    pub settings_dir: Option<PathBuf>,
    /// The agent's state directory (device credential, API key, policy cache).
    #[arg(long, value_name = "DIR", env = ENV_STATE_DIR)]
    pub state_dir: Option<PathBuf>,
    /// The user's Claude Code directory (~/.claude, as CLAUDE_CONFIG_DIR would move it).
    #[arg(long, value_name = "DIR", env = ENV_CLAUDE_CONFIG_DIR)]
    pub claude_config_dir: Option<PathBuf>,
    /// Config file (TOML).
    #[arg(long, value_name = "FILE", env = ENV_CONFIG)]
    pub config: Option<PathBuf>,
}

impl From<&Locations> for Overrides {
    fn from(l: &Locations) -> Overrides {
        Overrides {
            config: l.config.clone(),
            settings_dir: l.settings_dir.clone(),
            state_dir: l.state_dir.clone(),
            claude_config_dir: l.claude_config_dir.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_takes_the_locations() {
        for sub in [
            vec![
                "enroll",
                "--server",
                "https://x",
                "--enroll-token",
                "t",
                "--user",
                "u",
            ],
            vec!["run"],
            vec!["status", "--json"],
            vec!["api-key"],
        ] {
            let mut argv = vec!["palisade-agent"];
            argv.extend(sub);
            argv.extend([
                "--settings-dir",
                "/s",
                "--state-dir",
                "/st",
                "--claude-config-dir",
                "/c",
                "--config",
                "/a.toml",
            ]);
            let cli = Cli::try_parse_from(&argv).unwrap();
            let l = cli.command.locations();
            assert_eq!(l.settings_dir, Some(PathBuf::from("/s")));
            assert_eq!(l.state_dir, Some(PathBuf::from("/st")));
            assert_eq!(l.claude_config_dir, Some(PathBuf::from("/c")));
            assert_eq!(l.config, Some(PathBuf::from("/a.toml")));
        }
    }

    #[test]
    fn enroll_arguments() {
        let cli = Cli::try_parse_from([
            "palisade-agent",
            "enroll",
            "--server",
            "https://cp:50051",
            "--enroll-token",
            "tok",
            "--user",
            "alice@example.com",
            "--ca-cert",
            "/ca.pem",
        ])
        .unwrap();
        match cli.command {
            Command::Enroll {
                server,
                enroll_token,
                user,
                ca_cert,
                ..
            } => {
                assert_eq!(server, "https://cp:50051");
                assert_eq!(enroll_token.as_deref(), Some("tok"));
                assert_eq!(user.as_deref(), Some("alice@example.com"));
                assert_eq!(ca_cert, Some(PathBuf::from("/ca.pem")));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["palisade-agent", "enroll", "--user", "u"]).is_err());
        // One way only, and the token needs its person.
        for bad in [
            vec!["enroll", "--server", "https://x"],
            vec!["enroll", "--server", "https://x", "--login", "--code", "c"],
            vec!["enroll", "--server", "https://x", "--enroll-token", "t"],
        ] {
            let mut argv = vec!["palisade-agent"];
            argv.extend(bad.iter().copied());
            assert!(Cli::try_parse_from(&argv).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from([
            "palisade-agent",
            "enroll",
            "--server",
            "https://x",
            "--login",
            "--org",
            "acme",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Enroll { login: true, ref org, .. } if org == "acme")
        );
    }

    #[test]
    fn api_key_takes_a_key_file() {
        let cli =
            Cli::try_parse_from(["palisade-agent", "api-key", "--key-file", "/k/1000/api-key"])
                .unwrap();
        match cli.command {
            Command::ApiKey { key_file, .. } => {
                assert_eq!(key_file, Some(PathBuf::from("/k/1000/api-key")));
            }
            other => panic!("{other:?}"),
        }
    }
}
