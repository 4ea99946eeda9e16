//! Paths in read-deny, write-deny and extra-directory lists, and how each is written in Claude
//! Code's two conventions: permission rules (`//abs`, `~/home`, `**/pattern`, a Windows drive
//! `C:` as `/c`) and sandbox rules (a plain absolute path, `~/home`).

use super::quote;

/// The platform the settings are rendered for (it decides which paths apply and how they are
/// written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetOs {
    /// Linux and WSL.
    Linux,
    /// macOS.
    MacOs,
    /// Native Windows.
    Windows,
}

impl TargetOs {
    /// The platform this binary was built for.
    pub fn current() -> TargetOs {
        if cfg!(windows) {
            TargetOs::Windows
        } else if cfg!(target_os = "macos") {
            TargetOs::MacOs
        } else {
            TargetOs::Linux
        }
    }

    /// `linux`, `macos` or `windows`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetOs::Linux => "linux",
            TargetOs::MacOs => "macos",
            TargetOs::Windows => "windows",
        }
    }

    /// Parses [`TargetOs::as_str`].
    pub fn parse(name: &str) -> Option<TargetOs> {
        [TargetOs::Linux, TargetOs::MacOs, TargetOs::Windows]
            .into_iter()
            .find(|os| os.as_str() == name)
    }
}

/// A parsed path entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec {
    /// `/a/b` (no parts: the root).
    Unix(Vec<String>),
    /// `C:\a\b`.
    Windows { drive: char, parts: Vec<String> },
    /// `~/a/b` (no parts: the whole home directory).
    Home(Vec<String>),
    /// `**/name`: a file or directory of that name anywhere (permission rules only).
    Anywhere(String),
}

/// Which spellings a list accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    /// Deny lists: absolute, home and `**/name` entries.
    Deny,
    /// Directories (grants): absolute and home entries.
    Directory,
}

impl PathSpec {
    /// Parses and checks one entry.
    pub fn parse(raw: &str, usage: PathUse) -> Result<PathSpec, String> {
        let q = quote(raw);
        if raw.is_empty() {
            return Err("empty path".to_owned());
        }
        if raw.len() > 1024 {
            return Err(format!("{q} is longer than 1024 bytes"));
        }
        if raw.trim() != raw {
            return Err(format!("{q}: leading or trailing whitespace"));
        }
        if raw.chars().any(char::is_control) {
            return Err(format!("{q}: control characters are not allowed"));
        }
        if raw.starts_with("\\\\") {
            return Err(format!(
                "{q}: UNC and device paths are not supported; use a drive path like C:\\dir"
            ));
        }
        if let Some(name) = raw.strip_prefix("**/") {
            if usage == PathUse::Directory {
                return Err(format!("{q}: a directory must be absolute or under ~/"));
            }
            if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
                return Err(format!(
                    "{q}: write **/<name> for a file or directory name anywhere (one component)"
                ));
            }
            return Ok(PathSpec::Anywhere(name.to_owned()));
        }
        if raw == "~" {
            return Ok(PathSpec::Home(Vec::new()));
        }
        if let Some(rest) = raw.strip_prefix("~/") {
            return Ok(PathSpec::Home(components(raw, rest, &['/'], false)?));
        }
        let mut chars = raw.chars();
        if let (Some(letter), Some(':')) = (chars.next(), chars.next()) {
            if letter.is_ascii_alphabetic() {
                let body = raw.get(2..).unwrap_or_default();
                if !body.starts_with(['\\', '/']) {
                    return Err(format!(
                        "{q} is drive-relative; give an absolute path like {}:\\dir",
                        letter.to_ascii_uppercase()
                    ));
                }
                return Ok(PathSpec::Windows {
                    drive: letter.to_ascii_uppercase(),
                    parts: components(raw, body, &['/', '\\'], true)?,
                });
            }
        }
        if raw.starts_with('/') {
            return Ok(PathSpec::Unix(components(raw, raw, &['/'], false)?));
        }
        if raw.starts_with('~') {
            return Err(format!(
                "{q}: only your own home (~/...) is supported, not ~user"
            ));
        }
        let hint = match usage {
            PathUse::Deny => "(/dir, C:\\dir, ~/dir or **/name)",
            PathUse::Directory => "(/dir, C:\\dir or ~/dir)",
        };
        Err(format!("{q} is relative; give an absolute path {hint}"))
    }

    /// The one canonical spelling: `/a/b`, `C:\a\b`, `~/a/b`, `**/name`.
    pub fn canonical(&self) -> String {
        match self {
            PathSpec::Unix(parts) => format!("/{}", parts.join("/")),
            PathSpec::Windows { drive, parts } => format!("{drive}:\\{}", parts.join("\\")),
            PathSpec::Home(parts) if parts.is_empty() => "~".to_owned(),
            PathSpec::Home(parts) => format!("~/{}", parts.join("/")),
            PathSpec::Anywhere(name) => format!("**/{name}"),
        }
    }

    /// Whether the entry means anything on `os` (`C:\x` only on Windows, `/x` everywhere else).
    pub fn applies_to(&self, os: TargetOs) -> bool {
        match self {
            PathSpec::Unix(_) => os != TargetOs::Windows,
            PathSpec::Windows { .. } => os == TargetOs::Windows,
            PathSpec::Home(_) | PathSpec::Anywhere(_) => true,
        }
    }

    /// True for `/` and `C:\`: a rule on everything.
    pub fn is_root(&self) -> bool {
        matches!(self, PathSpec::Unix(p) | PathSpec::Windows { parts: p, .. } if p.is_empty())
    }

    /// Permission-rule specifiers covering the path and everything under it, e.g.
    /// `["//a/b", "//a/b/**"]`. Empty for a root: Claude Code's `//**` matches nothing
    /// (anthropics/claude-code#52123), so the caller denies the bare tool instead.
    pub fn rule_specifiers(&self) -> Vec<String> {
        let base = match self {
            _ if self.is_root() => return Vec::new(),
            PathSpec::Unix(parts) => format!("//{}", parts.join("/")),
            PathSpec::Windows { drive, parts } => {
                format!("//{}/{}", drive.to_ascii_lowercase(), parts.join("/"))
            }
            PathSpec::Home(parts) if parts.is_empty() => return vec!["~/**".to_owned()],
            PathSpec::Home(parts) => format!("~/{}", parts.join("/")),
            PathSpec::Anywhere(name) => return vec![format!("**/{name}"), format!("**/{name}/**")],
        };
        vec![base.clone(), format!("{base}/**")]
    }

    /// The path as the sandbox writes it (plain absolute or `~/`); `None` for `**/name`, which
    /// the sandbox cannot express.
    pub fn sandbox_path(&self) -> Option<String> {
        match self {
            PathSpec::Anywhere(_) => None,
            other => Some(other.canonical()),
        }
    }
}

fn components(
    raw: &str,
    body: &str,
    separators: &[char],
    windows: bool,
) -> Result<Vec<String>, String> {
    let q = quote(raw);
    let mut parts = Vec::new();
    for part in body.split(separators).filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(format!("{q}: . and .. components are not allowed"));
        }
        if part.contains(['*', '?', '[', ']']) {
            return Err(format!(
                "{q}: glob characters (* ? [ ]) are not supported; give the directory \
                 (everything under it is covered) or **/<name>"
            ));
        }
        if !windows && part.contains('\\') {
            return Err(format!("{q}: backslashes are not allowed in a Unix path"));
        }
        if windows && part.contains(['<', '>', ':', '"', '|']) {
            return Err(format!(
                "{q}: characters < > : \" | are not valid in a Windows path"
            ));
        }
        parts.push(part.to_owned());
    }
    Ok(parts)
}

/// Validator for deny lists: the canonical spelling.
pub fn deny_path(raw: &str) -> Result<String, String> {
    PathSpec::parse(raw, PathUse::Deny).map(|p| p.canonical())
}

/// Validator for directories.
pub fn directory(raw: &str) -> Result<String, String> {
    PathSpec::parse(raw, PathUse::Directory).map(|p| p.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_spellings() {
        for (raw, canonical) in [
            ("/", "/"),
            ("/etc/", "/etc"),
            ("//etc//x", "/etc/x"),
            ("C:\\", "C:\\"),
            ("c:/Users/x/", "C:\\Users\\x"),
            ("D:/mixed\\seps", "D:\\mixed\\seps"),
            ("~/.ssh/", "~/.ssh"),
            ("~", "~"),
            ("**/.env", "**/.env"),
            ("/home/a b/(x)", "/home/a b/(x)"),
        ] {
            assert_eq!(deny_path(raw).as_deref(), Ok(canonical), "{raw}");
            assert_eq!(deny_path(canonical).as_deref(), Ok(canonical), "idempotent");
        }
    }

    #[test]
    fn refused() {
        for (raw, why) in [
            ("", "empty path"),
            ("etc", "is relative"),
            ("./x", "is relative"),
            ("~bob/x", "not ~user"),
            ("/a/../b", ". and .."),
            ("/a/*", "glob characters"),
            ("/a\\b", "backslashes"),
            (" /a", "whitespace"),
            ("/a\nb", "control"),
            ("C:", "drive-relative"),
            ("C:x", "drive-relative"),
            ("\\\\server\\share", "UNC"),
            ("C:\\a|b", "not valid in a Windows path"),
            ("**/", "one component"),
            ("**/a/b", "one component"),
        ] {
            let e = deny_path(raw).unwrap_err();
            assert!(e.contains(why), "{raw:?}: {e}");
        }
        assert!(directory("**/x")
            .unwrap_err()
            .contains("absolute or under ~/"));
    }

    #[test]
    fn rule_and_sandbox_forms() {
        let p = |s| PathSpec::parse(s, PathUse::Deny).unwrap();
        assert_eq!(p("/etc").rule_specifiers(), ["//etc", "//etc/**"]);
        assert_eq!(
            p("C:\\Users\\x").rule_specifiers(),
            ["//c/Users/x", "//c/Users/x/**"]
        );
        assert_eq!(p("~/.ssh").rule_specifiers(), ["~/.ssh", "~/.ssh/**"]);
        assert_eq!(p("**/.env").rule_specifiers(), ["**/.env", "**/.env/**"]);
        assert!(p("/").rule_specifiers().is_empty());
        assert!(p("C:\\").is_root());
        assert_eq!(p("C:\\Users").sandbox_path().as_deref(), Some("C:\\Users"));
        assert_eq!(p("**/.env").sandbox_path(), None);
        assert!(p("/x").applies_to(TargetOs::MacOs));
        assert!(!p("/x").applies_to(TargetOs::Windows));
        assert!(!p("C:\\x").applies_to(TargetOs::Linux));
        assert!(p("~/x").applies_to(TargetOs::Windows));
    }
}
