//! The filter lexer: splits filter (and PATCH path) text into tokens with their byte positions,
//! decoding string literals as JSON strings; plus the helpers that quote user text in errors.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    Word(String),
}

#[derive(Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    /// Byte offset in the input.
    pub(super) pos: usize,
}

/// Shortens user text echoed in error details.
pub(super) fn snippet(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// 1-based character position of a byte offset, for error details.
pub(super) fn char_pos(input: &str, byte: usize) -> usize {
    input.get(..byte).map_or(byte, |p| p.chars().count()) + 1
}

fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"')
}

pub(super) fn tokenize(input: &str, start: usize) -> Result<Vec<Token>, String> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = start;
    while let Some(c) = input.get(i..).and_then(|rest| rest.chars().next()) {
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            _ => None,
        };
        if let Some(tok) = simple {
            tokens.push(Token { tok, pos: i });
            i += 1;
        } else if c.is_whitespace() {
            i += c.len_utf8();
        } else if c == '"' {
            let mut j = i + 1;
            loop {
                match bytes.get(j) {
                    None => {
                        return Err(format!(
                            "unterminated string starting at position {}",
                            char_pos(input, i)
                        ));
                    }
                    Some(b'\\') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            let literal = &input[i..=j];
            let s: String = serde_json::from_str(literal).map_err(|_| {
                format!(
                    "invalid string literal {} at position {} (strings are JSON strings: escape '\"' and '\\')",
                    snippet(literal),
                    char_pos(input, i)
                )
            })?;
            tokens.push(Token {
                tok: Tok::Str(s),
                pos: i,
            });
            i = j + 1;
        } else {
            let len: usize = input[i..]
                .chars()
                .take_while(|&c| !is_delim(c))
                .map(char::len_utf8)
                .sum();
            tokens.push(Token {
                tok: Tok::Word(input[i..i + len].to_string()),
                pos: i,
            });
            i += len;
        }
    }
    Ok(tokens)
}
