//! A small MariaDB lexer: just enough to see statement boundaries, placeholders, words,
//! variables and function calls outside string literals, quoted identifiers and ordinary
//! comments. It does not parse SQL; `check` draws its conclusions from the token stream.
//!
//! It follows the session settings pinned by [`super::SESSION_SETUP`]: backslash escapes
//! are on (no `NO_BACKSLASH_ESCAPES`) and `"…"` is a string (no `ANSI_QUOTES`).
//! Executable comments (`/*! … */`, `/*!50100 … */`, `/*M! … */`) are code to MariaDB, so
//! their contents are lexed like any other code.

/// What a token is; the text is `sql[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Keyword, unquoted identifier or number (letters, digits, `_`, `$`, non-ASCII).
    Word,
    /// A backtick-quoted identifier, backticks included.
    QuotedIdent,
    /// A `'…'` or `"…"` literal, quotes included.
    Str,
    /// A `?` parameter marker.
    Placeholder,
    /// A `;` statement separator.
    Semicolon,
    /// `@name`, `@'name'` or `@`name``: a user variable (or an account's host part).
    UserVar,
    /// `@@name`, `@@session.name`, …: a system variable.
    SysVar,
    /// Any other single ASCII byte: operators, parentheses, commas, dots.
    Punct(u8),
}

/// One token and where it sits in the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// Whitespace or a comment separates this token from the previous one.
    pub spaced: bool,
    /// The token sits inside an executable comment.
    pub in_exec_comment: bool,
}

impl Token {
    /// The token's text.
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        &sql[self.start..self.end]
    }

    /// Whether this is the word `upper` (ASCII, case-insensitive).
    pub fn is_word(&self, sql: &str, upper: &str) -> bool {
        self.kind == Kind::Word && self.text(sql).eq_ignore_ascii_case(upper)
    }
}

/// Text that cannot be lexed: a literal, identifier or comment is never closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unterminated {
    /// "string literal", "quoted identifier", "comment" or "executable comment".
    pub what: &'static str,
    /// Byte offset where it starts.
    pub offset: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Splits `sql` into tokens, skipping whitespace and ordinary comments.
///
/// Only ASCII bytes ever end a token, so every `start..end` lies on a UTF-8 boundary.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Token>, Unterminated> {
    let b = sql.as_bytes();
    let n = b.len();
    let at = |i: usize| -> u8 {
        if i < n {
            b[i]
        } else {
            0
        }
    };
    let mut out = Vec::new();
    let mut i = 0;
    let mut spaced = false;
    let mut exec_start: Option<usize> = None;
    while i < n {
        let c = b[i];
        let start = i;
        let kind = match c {
            _ if is_space(c) => {
                i += 1;
                spaced = true;
                continue;
            }
            b'#' => {
                i = find_from(b, i, b"\n").map_or(n, |p| p + 1);
                spaced = true;
                continue;
            }
            // `--` starts a comment only when followed by whitespace, a control character or
            // the end; `--1` is minus minus one.
            b'-' if at(i + 1) == b'-' && (i + 2 >= n || at(i + 2) <= b' ') => {
                i = find_from(b, i, b"\n").map_or(n, |p| p + 1);
                spaced = true;
                continue;
            }
            b'/' if at(i + 1) == b'*' => {
                let marker = if at(i + 2) == b'!' {
                    Some(i + 3)
                } else if at(i + 2) == b'M' && at(i + 3) == b'!' {
                    Some(i + 4)
                } else {
                    None
                };
                match marker {
                    Some(mut j) => {
                        while at(j).is_ascii_digit() {
                            j += 1;
                        }
                        exec_start = Some(i);
                        i = j;
                    }
                    None => {
                        let end = find_from(b, i + 2, b"*/").ok_or(Unterminated {
                            what: "comment",
                            offset: i,
                        })?;
                        i = end + 2;
                    }
                }
                spaced = true;
                continue;
            }
            b'*' if exec_start.is_some() && at(i + 1) == b'/' => {
                exec_start = None;
                i += 2;
                spaced = true;
                continue;
            }
            b'\'' | b'"' => {
                i = end_of_quoted(b, i, true).ok_or(Unterminated {
                    what: "string literal",
                    offset: start,
                })?;
                Kind::Str
            }
            b'`' => {
                i = end_of_quoted(b, i, false).ok_or(Unterminated {
                    what: "quoted identifier",
                    offset: start,
                })?;
                Kind::QuotedIdent
            }
            b'?' => {
                i += 1;
                Kind::Placeholder
            }
            b';' => {
                i += 1;
                Kind::Semicolon
            }
            b'@' if at(i + 1) == b'@' => {
                i += 2;
                loop {
                    match at(i) {
                        b'`' => {
                            i = end_of_quoted(b, i, false).ok_or(Unterminated {
                                what: "quoted identifier",
                                offset: i,
                            })?
                        }
                        x if is_word_byte(x) || x == b'.' => i += 1,
                        _ => break,
                    }
                }
                Kind::SysVar
            }
            b'@' if is_word_byte(at(i + 1)) || matches!(at(i + 1), b'\'' | b'"' | b'`') => {
                i += 1;
                if is_word_byte(at(i)) {
                    while is_word_byte(at(i)) {
                        i += 1;
                    }
                } else {
                    let quote = at(i);
                    i = end_of_quoted(b, i, quote != b'`').ok_or(Unterminated {
                        what: "quoted variable name",
                        offset: start,
                    })?;
                }
                Kind::UserVar
            }
            _ if is_word_byte(c) => {
                while i < n && is_word_byte(b[i]) {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Punct(c)
            }
        };
        out.push(Token {
            kind,
            start,
            end: i,
            spaced,
            in_exec_comment: exec_start.is_some(),
        });
        spaced = false;
    }
    match exec_start {
        Some(offset) => Err(Unterminated {
            what: "executable comment",
            offset,
        }),
        None => Ok(out),
    }
}

fn find_from(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// End (exclusive) of the quoted token opening at `open`; a doubled quote stands for
/// itself, and in strings a backslash escapes the next byte.
fn end_of_quoted(b: &[u8], open: usize, backslash: bool) -> Option<usize> {
    let quote = b[open];
    let mut j = open + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if backslash => j += 2,
            x if x == quote => {
                if b.get(j + 1) == Some(&quote) {
                    j += 2;
                } else {
                    return Some(j + 1);
                }
            }
            _ => j += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds(sql: &str) -> Vec<(Kind, String)> {
        tokenize(sql)
            .expect("test input lexes")
            .iter()
            .map(|t| (t.kind, t.text(sql).to_string()))
            .collect()
    }

    fn words(sql: &str) -> Vec<String> {
        kinds(sql)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Word)
            .map(|(_, t)| t)
            .collect()
    }

    #[test]
    fn strings_hide_their_contents() {
        assert_eq!(words("SELECT 'UUID()' , \"RAND()\""), ["SELECT"]);
        assert_eq!(words(r"SELECT 'it''s \' UUID()' x"), ["SELECT", "x"]);
        assert_eq!(words(r#"SELECT "a "" \" b" y"#), ["SELECT", "y"]);
    }

    #[test]
    fn backtick_identifiers_double_their_quote() {
        let k = kinds("SELECT `a``b; -- c` FROM t");
        assert_eq!(k[1], (Kind::QuotedIdent, "`a``b; -- c`".to_string()));
        assert_eq!(k.len(), 4);
    }

    #[test]
    fn ordinary_comments_are_skipped() {
        assert_eq!(
            words("SELECT /* UUID() */ 1 -- RAND()\n, 2 # SLEEP(1)\n, 3"),
            ["SELECT", "1", "2", "3"]
        );
        // `--` followed by end of input is a comment too.
        assert_eq!(words("SELECT 1 --"), ["SELECT", "1"]);
    }

    #[test]
    fn double_dash_without_space_is_not_a_comment() {
        let k = kinds("SELECT 1--1");
        assert_eq!(k.len(), 5);
        assert_eq!(k[2], (Kind::Punct(b'-'), "-".to_string()));
    }

    #[test]
    fn executable_comments_are_code() {
        assert_eq!(words("SELECT /*! UUID() */ 1"), ["SELECT", "UUID", "1"]);
        assert_eq!(
            words("SELECT /*!50100 SLEEP(1) */ 1"),
            ["SELECT", "SLEEP", "1", "1"]
        );
        assert_eq!(
            words("SELECT /*M!100100 RAND() */ 1"),
            ["SELECT", "RAND", "1"]
        );
        let t = tokenize("SELECT /*! x */ y").expect("lexes");
        assert!(t[1].in_exec_comment && !t[2].in_exec_comment);
    }

    #[test]
    fn variables_and_placeholders() {
        let k = kinds("SELECT @a, @`b c`, @'d', @@hostname, @@session.sql_mode, ?");
        let got: Vec<Kind> = k.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            got,
            [
                Kind::Word,
                Kind::UserVar,
                Kind::Punct(b','),
                Kind::UserVar,
                Kind::Punct(b','),
                Kind::UserVar,
                Kind::Punct(b','),
                Kind::SysVar,
                Kind::Punct(b','),
                Kind::SysVar,
                Kind::Punct(b','),
                Kind::Placeholder
            ]
        );
        assert_eq!(k[9].1, "@@session.sql_mode");
    }

    #[test]
    fn unterminated_constructs_are_errors() {
        for (sql, what) in [
            ("SELECT 'abc", "string literal"),
            ("SELECT 'abc\\'", "string literal"),
            ("SELECT `abc", "quoted identifier"),
            ("SELECT /* abc", "comment"),
            ("SELECT /*! abc", "executable comment"),
            ("SELECT \"abc", "string literal"),
        ] {
            assert_eq!(tokenize(sql).expect_err(sql).what, what, "{sql}");
        }
    }

    #[test]
    fn non_ascii_stays_inside_words() {
        assert_eq!(words("SELECT naïve, 表"), ["SELECT", "naïve", "表"]);
    }

    proptest! {
        #[test]
        fn never_panics_on_random_text(s in "\\PC*") {
            let _ = tokenize(&s);
        }

        #[test]
        fn never_panics_on_sql_shaped_noise(s in "[-'\"`/*!M#;?@\\\\ \nabcU()0-9]{0,64}") {
            if let Ok(toks) = tokenize(&s) {
                for t in toks {
                    prop_assert!(t.start < t.end && t.end <= s.len());
                    let _ = t.text(&s);
                }
            }
        }
    }
}
