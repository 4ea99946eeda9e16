//! Where the agent keeps things: platform defaults, the TOML config file, and the resolution
//! order flag > environment > config file > default.
//!
//! | setting | flag | environment | config key | default |
//! |---|---|---|---|---|
//! | config file | `--config` | `PALISADE_AGENT_CONFIG` | | [`default_config_file`] |
//! | Claude Code settings dir | `--settings-dir` | `PALISADE_AGENT_SETTINGS_DIR` | `settings_dir` | [`default_settings_dir`] |
//! | state dir | `--state-dir` | `PALISADE_AGENT_STATE_DIR` | `state_dir` | [`default_state_dir`] |
//! | the user's `~/.claude` | `--claude-config-dir` | `PALISADE_AGENT_CLAUDE_CONFIG_DIR` | `claude_config_dir` | `$CLAUDE_CONFIG_DIR`, else `~/.claude` |
//!
//! A missing config file at the default location is fine; a missing file named explicitly is
//! an error. Unknown keys are errors (a typo must not silently fall back to a default).
//! Relative paths are made absolute against the current directory, so that the
//! `apiKeyHelper` command written into the settings works from any directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Environment variable naming the config file.
pub const ENV_CONFIG: &str = "PALISADE_AGENT_CONFIG";
/// Environment variable for the Claude Code managed settings directory.
pub const ENV_SETTINGS_DIR: &str = "PALISADE_AGENT_SETTINGS_DIR";
/// Environment variable for the state directory.
pub const ENV_STATE_DIR: &str = "PALISADE_AGENT_STATE_DIR";
/// Environment variable for the user's Claude Code config directory.
pub const ENV_CLAUDE_CONFIG_DIR: &str = "PALISADE_AGENT_CLAUDE_CONFIG_DIR";
/// Environment variable for the log filter (`tracing` env-filter syntax).
pub const ENV_LOG: &str = "PALISADE_AGENT_LOG";

/// The agent's config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Directory holding `managed-settings.json` and `managed-settings.d/`.
    pub settings_dir: Option<PathBuf>,
    /// The agent's state directory.
    pub state_dir: Option<PathBuf>,
    /// The OS user's Claude Code config directory (`~/.claude`). A system service should set
    /// it: the service's own home is not the developer's.
    pub claude_config_dir: Option<PathBuf>,
    /// Log filter, for example `info` or `palisade_agent=debug`.
    pub log: Option<String>,
}

/// Values given on the command line or in the environment (clap merges the two).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--settings-dir`.
    pub settings_dir: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--claude-config-dir`.
    pub claude_config_dir: Option<PathBuf>,
}

/// The resolved locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Directory holding `managed-settings.json` and `managed-settings.d/`.
    pub settings_dir: PathBuf,
    /// The agent's state directory.
    pub state_dir: PathBuf,
    /// The user's Claude Code config directory.
    pub claude_config_dir: PathBuf,
    /// Whether `state_dir` is the platform default (the `apiKeyHelper` command then needs no
    /// `--state-dir`).
    pub state_dir_is_default: bool,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Locations.
    pub paths: Paths,
    /// Log filter from the config file, if any.
    pub log: Option<String>,
}

impl Config {
    /// The log filter: `PALISADE_AGENT_LOG`, else `log` from the config file, else
    /// `info,notify=warn` (also when the given filter does not parse).
    pub fn log_filter(&self) -> tracing_subscriber::EnvFilter {
        std::env::var(ENV_LOG)
            .ok()
            .or_else(|| self.log.clone())
            .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info,notify=warn"))
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`FileConfig`].
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No home directory to default `claude_config_dir` to.
    #[error(
        "cannot find the user's Claude Code directory: set --claude-config-dir, \
         {ENV_CLAUDE_CONFIG_DIR} or claude_config_dir in the config file"
    )]
    NoClaudeConfigDir,
    /// A path could not be made absolute.
    #[error("cannot resolve {path}: {source}")]
    Absolute {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `/etc/palisade/agent.toml`, `/Library/Application Support/Palisade/agent.toml`, or
/// `%ProgramData%\Palisade\agent.toml`.
pub fn default_config_file() -> PathBuf {
    system_config_dir().join("agent.toml")
}

fn system_config_dir() -> PathBuf {
    if cfg!(windows) {
        program_data().join("Palisade")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Palisade")
    } else {
        PathBuf::from("/etc/palisade")
    }
}

fn program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}

/// Where Claude Code reads managed settings: `/etc/claude-code`,
/// `/Library/Application Support/ClaudeCode`, or `C:\Program Files\ClaudeCode`.
pub fn default_settings_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\Program Files\ClaudeCode")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/ClaudeCode")
    } else {
        PathBuf::from("/etc/claude-code")
    }
}

/// `/var/lib/palisade-agent`, `/Library/Application Support/Palisade/state`, or
/// `%ProgramData%\Palisade\state`.
pub fn default_state_dir() -> PathBuf {
    if cfg!(windows) {
        program_data().join("Palisade").join("state")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Palisade/state")
    } else {
        PathBuf::from("/var/lib/palisade-agent")
    }
}

/// `$CLAUDE_CONFIG_DIR`, else `<home>/.claude`.
pub fn default_claude_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::BaseDirs::new().map(|b| b.home_dir().join(".claude"))
}

/// Parses a config file's text.
pub fn parse_file_config(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Reads the config file named by `explicit`, or the default one if it exists.
pub fn load_file_config(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_owned(), true),
        None => (default_config_file(), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_file_config(&path, &text),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Applies flag/env > file > default.
pub fn resolve(overrides: &Overrides) -> Result<Config, ConfigError> {
    let file = load_file_config(overrides.config.as_deref())?;
    merge(overrides, file, default_claude_config_dir())
}

/// The pure part of [`resolve`].
pub fn merge(
    overrides: &Overrides,
    file: FileConfig,
    default_claude: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    let settings_dir = overrides
        .settings_dir
        .clone()
        .or(file.settings_dir)
        .unwrap_or_else(default_settings_dir);
    let state_dir = overrides
        .state_dir
        .clone()
        .or(file.state_dir)
        .unwrap_or_else(default_state_dir);
    let claude_config_dir = overrides
        .claude_config_dir
        .clone()
        .or(file.claude_config_dir)
        .or(default_claude)
        .ok_or(ConfigError::NoClaudeConfigDir)?;
    let state_dir = absolute(&state_dir)?;
    let state_dir_is_default = state_dir == default_state_dir();
    Ok(Config {
        paths: Paths {
            settings_dir: absolute(&settings_dir)?,
            state_dir,
            claude_config_dir: absolute(&claude_config_dir)?,
            state_dir_is_default,
        },
        log: file.log,
    })
}

fn absolute(path: &Path) -> Result<PathBuf, ConfigError> {
    std::path::absolute(path).map_err(|source| ConfigError::Absolute {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let file = FileConfig {
            settings_dir: Some("/file/settings".into()),
            state_dir: Some("/file/state".into()),
            claude_config_dir: None,
            log: Some("debug".into()),
        };
        let overrides = Overrides {
            state_dir: Some("/flag/state".into()),
            ..Overrides::default()
        };
        let cfg = merge(&overrides, file, Some("/home/u/.claude".into())).unwrap();
        assert_eq!(cfg.paths.settings_dir, PathBuf::from("/file/settings"));
        assert_eq!(cfg.paths.state_dir, PathBuf::from("/flag/state"));
        assert_eq!(
            cfg.paths.claude_config_dir,
            PathBuf::from("/home/u/.claude")
        );
        assert!(!cfg.paths.state_dir_is_default);
        assert_eq!(cfg.log.as_deref(), Some("debug"));
    }

    #[test]
    fn defaults_apply() {
        let cfg = merge(
            &Overrides::default(),
            FileConfig::default(),
            Some("/h/.claude".into()),
        )
        .unwrap();
        assert_eq!(cfg.paths.settings_dir, default_settings_dir());
        assert_eq!(cfg.paths.state_dir, default_state_dir());
        assert!(cfg.paths.state_dir_is_default);
        if cfg!(target_os = "linux") {
            assert_eq!(default_settings_dir(), PathBuf::from("/etc/claude-code"));
            assert_eq!(
                default_state_dir(),
                PathBuf::from("/var/lib/palisade-agent")
            );
            assert_eq!(
                default_config_file(),
                PathBuf::from("/etc/palisade/agent.toml")
            );
        }
    }

    #[test]
    fn missing_claude_dir_is_an_error() {
        let err = merge(&Overrides::default(), FileConfig::default(), None).unwrap_err();
        assert!(matches!(err, ConfigError::NoClaudeConfigDir));
    }

    #[test]
    fn relative_paths_become_absolute() {
        let overrides = Overrides {
            state_dir: Some("rel/state".into()),
            ..Overrides::default()
        };
        let cfg = merge(&overrides, FileConfig::default(), Some("c".into())).unwrap();
        assert!(cfg.paths.state_dir.is_absolute());
        assert!(cfg.paths.state_dir.ends_with("rel/state"));
        assert!(cfg.paths.claude_config_dir.is_absolute());
    }

    #[test]
    fn file_parsing_rejects_unknown_keys() {
        let p = Path::new("agent.toml");
        let ok = parse_file_config(p, "state_dir = \"/s\"\nlog = \"info\"\n").unwrap();
        assert_eq!(ok.state_dir, Some(PathBuf::from("/s")));
        let err = parse_file_config(p, "state_directory = \"/s\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("state_directory"), "{msg}");
        assert!(msg.contains("agent.toml"), "{msg}");
    }

    #[test]
    fn explicit_missing_file_is_an_error_default_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            load_file_config(Some(&missing)),
            Err(ConfigError::Read { .. })
        ));
        let present = dir.path().join("agent.toml");
        std::fs::write(&present, "settings_dir = \"/x\"\n").unwrap();
        assert_eq!(
            load_file_config(Some(&present)).unwrap().settings_dir,
            Some(PathBuf::from("/x"))
        );
    }
}
