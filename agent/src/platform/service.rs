//! `palisade-agent run` as a Windows service.
//!
//! The MSI (`packaging/windows/`) installs the service `PalisadeAgent` with the command line
//! `palisade-agent.exe run --windows-service`, as LocalSystem, started automatically. With
//! that flag `run` hands itself to the service control manager; a process the manager did
//! not start gets [`Launch::Console`] back and `run` refuses with a clear message. Without the
//! flag `run` is a console program stopped by Ctrl-C (an explicit flag rather than a probe:
//! probing the manager from a console costs seconds under some Windows emulations).
//!
//! As a service, the agent:
//! - reports `Running` as soon as it is up, accepts Stop and Shutdown, and turns either into
//!   the same clean shutdown that Ctrl-C or SIGTERM give the console program;
//! - logs to `<state-dir's parent>\logs\palisade-agent.log` (a service has no console), in a
//!   directory with the state directory's access list, kept to one previous file of
//!   [`LOG_ROTATE_BYTES`];
//! - reports `Stopped` with exit code 0, or service-specific code 1 when `run` failed (so the
//!   MSI's recovery settings restart it).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// The service's name in the service control manager (`sc query PalisadeAgent`).
pub const SERVICE_NAME: &str = "PalisadeAgent";

/// Size at which the service log is moved to `palisade-agent.log.1` when the service starts.
pub const LOG_ROTATE_BYTES: u64 = 10 << 20;

/// How `run` was launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Started by the service control manager; the service has run and stopped.
    Service,
    /// Not started by the service control manager: run as a console program.
    Console,
}

/// The service's log file for a state directory: `<parent>/logs/palisade-agent.log`.
pub fn log_file(state_dir: &Path) -> PathBuf {
    state_dir
        .parent()
        .unwrap_or(state_dir)
        .join("logs")
        .join("palisade-agent.log")
}

/// Runs the agent as a Windows service if the service control manager started this process,
/// and returns once the service has stopped; otherwise returns [`Launch::Console`] at once.
#[cfg(windows)]
pub fn run_as_service(config: Config) -> anyhow::Result<Launch> {
    windows::run_as_service(config)
}

/// Not Windows: always a console program.
#[cfg(not(windows))]
pub fn run_as_service(_config: Config) -> anyhow::Result<Launch> {
    Ok(Launch::Console)
}

#[cfg(windows)]
#[allow(unsafe_code)] // `define_windows_service!` expands to the FFI entry point.
mod windows {
    use std::ffi::OsString;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use anyhow::Context as _;
    use windows_service::service::{
        ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus,
        ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_dispatcher;

    use super::{log_file, Launch, LOG_ROTATE_BYTES, SERVICE_NAME};
    use crate::config::Config;

    /// `StartServiceCtrlDispatcherW` failing this way means "not started as a service".
    const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;

    /// What `service_main` needs, handed over from `run_as_service` (the dispatcher calls
    /// `service_main` on its own thread with no way to pass arguments).
    static CONFIG: OnceLock<Config> = OnceLock::new();
    /// The outcome of `run`, handed back to `run_as_service`.
    static OUTCOME: Mutex<Option<Result<(), String>>> = Mutex::new(None);

    windows_service::define_windows_service!(ffi_service_main, service_main);

    pub fn run_as_service(config: Config) -> anyhow::Result<Launch> {
        let _ = CONFIG.set(config);
        match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
            Ok(()) => {
                let outcome = OUTCOME.lock().map(|mut o| o.take()).unwrap_or(None);
                match outcome {
                    Some(Err(e)) => Err(anyhow::anyhow!(e)),
                    _ => Ok(Launch::Service),
                }
            }
            Err(windows_service::Error::Winapi(e))
                if e.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) =>
            {
                Ok(Launch::Console)
            }
            Err(e) => Err(e).context("cannot connect to the service control manager"),
        }
    }

    fn service_main(_arguments: Vec<OsString>) {
        let outcome = match CONFIG.get() {
            Some(config) => run_service(config.clone()).map_err(|e| format!("{e:#}")),
            None => Err("the service started without its configuration".to_owned()),
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "the service stopped on an error");
        }
        if let Ok(mut slot) = OUTCOME.lock() {
            *slot = Some(outcome);
        }
    }

    fn status(state: ServiceState, exit_code: ServiceExitCode) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code,
            checkpoint: 0,
            wait_hint: if state == ServiceState::StopPending {
                Duration::from_secs(10)
            } else {
                Duration::ZERO
            },
            process_id: None,
        }
    }

    fn run_service(config: Config) -> anyhow::Result<()> {
        let log_error = init_file_logging(&config).err();
        let paths = config.paths;
        let stop = Arc::new(tokio::sync::Notify::new());
        let stop_requested = stop.clone();
        let handle = service_control_handler::register(SERVICE_NAME, move |control| {
            match control {
                ServiceControl::Stop | ServiceControl::Shutdown => {
                    // A permit is stored if `run` is not waiting yet: the stop is not lost.
                    stop_requested.notify_one();
                    ServiceControlHandlerResult::NoError
                }
                ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
                _ => ServiceControlHandlerResult::NotImplemented,
            }
        })
        .context("cannot register the service control handler")?;
        handle
            .set_service_status(status(ServiceState::Running, ServiceExitCode::Win32(0)))
            .context("cannot report the service as running")?;
        if let Some(e) = log_error {
            tracing::warn!(error = %e, "cannot open the service log file");
        }
        tracing::info!(service = SERVICE_NAME, "running as a Windows service");
        // The service uses the default relay address (or PALISADE_AGENT_RELAY_ADDR).
        let relay_addr = std::env::var("PALISADE_AGENT_RELAY_ADDR")
            .ok()
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .or_else(|| crate::relay::DEFAULT_RELAY_ADDR.parse().ok())
            .filter(|a| a.ip().is_loopback());
        let result = crate::run::run_blocking(paths, relay_addr, async move {
            stop.notified().await;
            tracing::info!("stop requested by the service control manager");
        });
        let exit_code = match &result {
            Ok(()) => ServiceExitCode::Win32(0),
            Err(_) => ServiceExitCode::ServiceSpecific(1),
        };
        let _ = handle.set_service_status(status(ServiceState::Stopped, exit_code));
        result
    }

    /// Logs to the service log file (created with a private access list, rotated once).
    fn init_file_logging(config: &Config) -> anyhow::Result<()> {
        let file = log_file(&config.paths.state_dir);
        let dir = file
            .parent()
            .context("the log file has no directory")?
            .to_owned();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // A new directory inherits ProgramData's list, which lets Users read: restricted too.
        crate::platform::acl::keep_private(&dir, &crate::platform::acl::private_dir_sddl())
            .with_context(|| format!("restricting {}", dir.display()))?;
        if std::fs::metadata(&file).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
            let _ = std::fs::rename(&file, file.with_extension("log.1"));
        }
        let writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("opening {}", file.display()))?;
        tracing_subscriber::fmt()
            .with_env_filter(config.log_filter())
            .with_writer(Mutex::new(writer))
            .with_ansi(false)
            .with_target(false)
            .try_init()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_sits_next_to_the_state_directory() {
        assert_eq!(
            log_file(Path::new("/ProgramData/Palisade/state")),
            PathBuf::from("/ProgramData/Palisade/logs/palisade-agent.log")
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_run_is_always_a_console_program() {
        let config = Config {
            paths: crate::config::Paths {
                settings_dir: "/s".into(),
                state_dir: "/st".into(),
                claude_config_dir: "/c".into(),
                state_dir_is_default: false,
            },
            log: None,
        };
        assert_eq!(run_as_service(config).unwrap(), Launch::Console);
    }
}
