//! `palisade-agent`: parses the command line, sets up logging and runs one subcommand (the
//! work is in the library; see `lib.rs`).
#![forbid(unsafe_code)]

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use palisade_agent::cli::{Cli, Command};
use palisade_agent::commands::{api_key, enroll, status};
use palisade_agent::config::{self, Config, Overrides};
use palisade_agent::credentials::keyfile;
#[cfg(windows)]
use palisade_agent::platform::service::{self, Launch};
use palisade_agent::state::StateDir;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `api-key --key-file`: runs as the developer, who may not read the config file or the
    // state directory; the file is all it needs.
    if let Command::ApiKey {
        key_file: Some(path),
        relay,
        ..
    } = &cli.command
    {
        return print_key(
            keyfile::read_key_file(path)
                .map_err(|e| e.to_string())
                .and_then(|k| api_key::check_relay(k, *relay).map_err(|e| e.to_string())),
        );
    }
    let config = match config::resolve(&Overrides::from(cli.command.locations())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `api-key` runs inside Claude Code on every TTL: no runtime, no logging setup.
    if let Command::ApiKey { relay, .. } = cli.command {
        return serve_api_key(&config, relay);
    }
    // Started by the Windows service control manager: it runs (and logs) as a service.
    #[cfg(windows)]
    if let Command::Run {
        windows_service: true,
        ..
    } = cli.command
    {
        return match service::run_as_service(config) {
            Ok(Launch::Service) => ExitCode::SUCCESS,
            Ok(Launch::Console) => {
                eprintln!(
                    "palisade-agent: --windows-service: not started by the service control \
                     manager (start the PalisadeAgent service, or run without the flag)"
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("palisade-agent: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("palisade-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("palisade-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Enroll {
            server,
            login,
            org,
            no_browser,
            code,
            enroll_token,
            user,
            ca_cert,
            ..
        } => {
            let method = match (login, code, enroll_token, user) {
                (true, _, _, _) => enroll::Method::Login {
                    org,
                    open_browser: !no_browser,
                },
                (false, Some(code), _, _) => enroll::Method::Code(code.trim().to_owned()),
                (false, None, Some(token), Some(user)) => {
                    enroll::Method::FleetToken { token, user }
                }
                _ => anyhow::bail!("give --login, --code, or --enroll-token with --user"),
            };
            let args = enroll::EnrollArgs {
                server,
                method,
                ca_cert,
            };
            let device = enroll::enroll(&config.paths, &args).await?;
            println!(
                "enrolled device {} for {} (org {}) with {}{}",
                device.device_id,
                device.user_name,
                device.org,
                device.server_url,
                if device.verified {
                    ""
                } else {
                    "; not yet confirmed by its person: it gets the policy but no API key until they confirm (see `palisade-agent status`)"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { relay_addr, .. } => {
            palisade_agent::run::run(config.paths, relay_addr.0, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, .. } => {
            let report = status::gather(&config.paths);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", status::render_text(&report));
            }
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::ApiKey { relay, .. } => Ok(serve_api_key(&config, relay)),
    }
}

fn serve_api_key(config: &Config, relay: Option<std::net::SocketAddr>) -> ExitCode {
    let state = StateDir::new(&config.paths.state_dir);
    print_key(api_key::read_api_key(&state).and_then(|k| api_key::check_relay(k, relay)))
}

/// Prints the key and succeeds, or prints the error on standard error only and fails.
fn print_key<E: std::fmt::Display>(key: Result<String, E>) -> ExitCode {
    match key {
        Ok(key) => {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{key}").and_then(|()| out.flush()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    tracing_subscriber::fmt()
        .with_env_filter(config.log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Completes on SIGTERM or Ctrl-C (SIGINT). As a Windows service, `service` passes its own
/// future (the service control manager's stop request) to `palisade_agent::run::run` instead.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}
