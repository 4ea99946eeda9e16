//! The rule of every kind of policy entry: what is accepted, its one canonical spelling, and a
//! message naming the problem when it is not. Each validator returns the normalized entry, so
//! that equal rules written differently merge and hash as one.
//!
//! Messages name the value in double quotes; the caller prefixes the key and index.

pub mod domain;
pub mod mcp;
pub mod names;
pub mod path;
pub mod permission;

/// A validator: the normalized entry, or what is wrong with it.
pub type Check = fn(&str) -> Result<String, String>;

/// `s` in double quotes, with control characters, quotes and (only then) backslashes escaped,
/// so that a Windows path reads `"C:\dir"` rather than `"C:\\dir"`.
pub fn quote(s: &str) -> String {
    let needs_escape = s.chars().any(|c| c.is_control() || c == '"');
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if needs_escape && (c.is_control() || c == '"' || c == '\\') {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Levenshtein distance, for "did you mean" hints on short names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            let deletion = prev[j + 1] + 1;
            let insertion = cur[j] + 1;
            cur.push(substitution.min(deletion).min(insertion));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Refuses empty text, surrounding whitespace, control characters and text over `max` bytes:
/// the common floor of every string entry.
pub fn plain_text(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("empty {what}"));
    }
    if value.len() > max {
        return Err(format!("{} is longer than {max} bytes", quote(value)));
    }
    if value.trim() != value {
        return Err(format!("{}: leading or trailing whitespace", quote(value)));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{}: control characters are not allowed",
            quote(value)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("C:\\dir"), "\"C:\\dir\"");
        assert_eq!(quote("a\nb\\c"), "\"a\\nb\\\\c\"");
        assert_eq!(quote("say \"x\""), "\"say \\\"x\\\"\"");
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("bsh", "bash"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn plain_text_floor() {
        assert!(plain_text("x", "ok", 10).is_ok());
        assert!(plain_text("x", "", 10).unwrap_err().contains("empty x"));
        assert!(plain_text("x", " a", 10)
            .unwrap_err()
            .contains("whitespace"));
        assert!(plain_text("x", "a\u{7}", 10)
            .unwrap_err()
            .contains("control"));
        assert!(plain_text("x", "abcdefghijk", 10)
            .unwrap_err()
            .contains("longer"));
    }
}
