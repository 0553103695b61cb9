//! What one client statement asks of the front end. Reads, writes and schema changes are
//! told apart by the same parser as the HTTP API (`sql::statement_kind`, then
//! `sql::check_read` / `command::prepare` on the way in); the session statements drivers
//! and tools send (SET, BEGIN/COMMIT, USE, SHOW WARNINGS) are recognised here and never
//! reach MariaDB or the log.

use super::wire::MyError;
use crate::sql::{self, StatementKind};

/// What to do with one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A read, run on this node's MariaDB.
    Read(String),
    /// A write (INSERT/UPDATE/DELETE/REPLACE), through the log.
    Write(String),
    /// A schema change, through the log (applied alone).
    Ddl(String),
    /// `BEGIN`, `START TRANSACTION [READ ONLY | READ WRITE]`.
    Begin {
        /// `READ ONLY` was given.
        read_only: bool,
    },
    /// `COMMIT [WORK]`.
    Commit,
    /// `ROLLBACK [WORK]`.
    Rollback,
    /// `SET …`: the assignments, in order.
    Set(Vec<Assignment>),
    /// `USE db`.
    Use(String),
    /// `SAVEPOINT x`, `ROLLBACK [WORK] TO [SAVEPOINT] x`, `RELEASE SAVEPOINT x`. Nothing
    /// to undo while transactions only read; certified transactions record them.
    Savepoint(String),
    /// `SHOW WARNINGS` / `SHOW ERRORS`: about this session, answered by the front end.
    ShowWarnings,
    /// Nothing but comments: an OK.
    Empty,
    /// Refused, with the error to send.
    Refuse(MyError),
}

/// One `name = value` of a SET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// What is set: a system variable (lower case, scope dropped), `names`, or a user
    /// variable with its `@`.
    pub name: String,
    /// The value as written (quotes removed from a literal), lower case kept as written.
    pub value: String,
}

/// Classifies one statement from COM_QUERY or COM_STMT_PREPARE.
pub fn classify(text: &str) -> Action {
    let text = unwrap_executable_comments(text);
    let text = text.trim().trim_end_matches(';').trim_end();
    let kind = match sql::statement_kind(text) {
        Ok(k) => k,
        Err(sql::SqlError::Empty) => return Action::Empty,
        Err(e) => return Action::Refuse(MyError::refused(e.to_string())),
    };
    match kind {
        StatementKind::Read => {
            let words = words(text, 3);
            if matches!(words.first().map(String::as_str), Some("show"))
                && matches!(
                    words.get(1).map(String::as_str),
                    Some("warnings" | "errors")
                )
            {
                return Action::ShowWarnings;
            }
            Action::Read(text.to_string())
        }
        StatementKind::Write => Action::Write(text.to_string()),
        StatementKind::Ddl => Action::Ddl(text.to_string()),
        StatementKind::Other => session(text),
    }
}

/// `SELECT LAST_INSERT_ID()` (optionally `AS label`): the column label it answers with.
/// The front end answers it from the connection's own last generated id.
pub fn last_insert_id_query(sql: &str) -> Option<String> {
    let w = words(sql, 6);
    let is_call = |s: &str| s.replace(' ', "").eq_ignore_ascii_case("last_insert_id()");
    match w.as_slice() {
        [select, call] if select == "select" && is_call(call) => Some("LAST_INSERT_ID()".into()),
        [select, call, r#as, label] if select == "select" && is_call(call) && r#as == "as" => {
            Some(label.trim_matches('`').to_string())
        }
        _ => None,
    }
}

/// The statement with every executable comment (`/*! … */`, `/*!50100 … */`,
/// `/*M! … */`) replaced by its content, as the MariaDB this front end stands for would
/// read it (dump files and sysbench write `/*! ENGINE = InnoDB */`). The front end
/// decides once, and every node then runs the same text; MariaDB itself deciding per
/// node, by its version, is what the SQL rules refuse.
fn unwrap_executable_comments(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("/*!") && !text.contains("/*M!") {
        return std::borrow::Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'#' => i = text[i..].find('\n').map_or(b.len(), |n| i + n),
            b'-' if text[i..].starts_with("-- ") => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n)
            }
            b'/' if text[i..].starts_with("/*") => {
                let open = if text[i..].starts_with("/*!") {
                    Some(3)
                } else if text[i..].starts_with("/*M!") {
                    Some(4)
                } else {
                    None
                };
                let Some(end) = text[i + 2..].find("*/").map(|n| i + 2 + n) else {
                    // Unterminated: left for the SQL rules to refuse.
                    return std::borrow::Cow::Borrowed(text);
                };
                if let Some(open) = open {
                    let body = text[i + open..end].trim_start_matches(|c: char| c.is_ascii_digit());
                    out.push_str(&text[copied..i]);
                    out.push(' ');
                    out.push_str(body.trim());
                    out.push(' ');
                    copied = end + 2;
                }
                i = end + 2;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied.min(text.len())..]);
    std::borrow::Cow::Owned(out)
}

/// The first `n` words of `text`, lower case.
fn words(text: &str, n: usize) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_ascii_lowercase)
        .collect()
}

fn session(text: &str) -> Action {
    let w = words(text, 4);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["begin"] | ["begin", "work"] => Action::Begin { read_only: false },
        ["start", "transaction", rest @ ..] => {
            let lower = text.to_ascii_lowercase();
            let _ = rest;
            Action::Begin {
                read_only: lower.contains("read only"),
            }
        }
        ["commit"] | ["commit", "work"] => Action::Commit,
        ["rollback"] | ["rollback", "work"] => Action::Rollback,
        ["savepoint", ..]
        | ["release", "savepoint", ..]
        | ["rollback", "to", ..]
        | ["rollback", "work", "to", ..] => Action::Savepoint(text.to_string()),
        ["use", db] => Action::Use(db.trim_matches('`').to_string()),
        // No table locks are ever held here (LOCK TABLES is refused): nothing to release.
        ["unlock", "tables" | "table"] => Action::Empty,
        ["set", ..] => match parse_set(&text[3..]) {
            Ok(a) => Action::Set(a),
            Err(m) => Action::Refuse(MyError::refused(m)),
        },
        [verb, ..] => Action::Refuse(MyError::unsupported(format!(
            "`{}` is not accepted by WolfScale's MySQL front end: it runs reads (SELECT, SHOW, \
             DESCRIBE, EXPLAIN), writes (INSERT, UPDATE, DELETE, REPLACE), schema changes of \
             the replicated database, and the session statements SET, BEGIN, COMMIT, \
             ROLLBACK and USE",
            verb.to_ascii_uppercase()
        ))),
        [] => Action::Empty,
    }
}

/// Parses the list after `SET`: `[GLOBAL|SESSION|LOCAL] name = value, …`, `@@[session.]name
/// = value`, `@user = value`, `NAMES x [COLLATE y]`, `CHARACTER SET x`,
/// `[SESSION] TRANSACTION …`.
fn parse_set(list: &str) -> Result<Vec<Assignment>, String> {
    let mut out = Vec::new();
    for part in split_top(list) {
        let part = part.trim();
        let lower = part.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("names ") {
            let charset = rest.split_whitespace().next().unwrap_or_default();
            out.push(Assignment {
                name: "names".into(),
                value: unquote(charset),
            });
            continue;
        }
        if let Some(rest) = lower
            .strip_prefix("character set ")
            .or_else(|| lower.strip_prefix("charset "))
        {
            out.push(Assignment {
                name: "names".into(),
                value: unquote(rest.trim()),
            });
            continue;
        }
        let body = ["global ", "session ", "local "]
            .iter()
            .find_map(|p| lower.strip_prefix(p).map(|_| &part[p.len()..]))
            .unwrap_or(part)
            .trim();
        if body.to_ascii_lowercase().starts_with("transaction ") {
            out.push(Assignment {
                name: "transaction".into(),
                value: body["transaction ".len()..].trim().to_ascii_lowercase(),
            });
            continue;
        }
        let (name, value) = body
            .split_once(":=")
            .or_else(|| body.split_once('='))
            .ok_or_else(|| {
                format!("cannot read the assignment `{part}` (expected name = value)")
            })?;
        let name = name.trim();
        let name = if name.starts_with("@@") {
            let bare = name.trim_start_matches("@@");
            let lower = bare.to_ascii_lowercase();
            ["session.", "local.", "global."]
                .iter()
                .find_map(|p| lower.strip_prefix(p).map(str::to_string))
                .unwrap_or(lower)
        } else if name.starts_with('@') {
            name.to_string()
        } else {
            name.trim_matches('`').to_ascii_lowercase()
        };
        if name.is_empty() {
            return Err(format!("cannot read the assignment `{part}`"));
        }
        out.push(Assignment {
            name,
            value: unquote(value.trim()),
        });
    }
    Ok(out)
}

/// Splits on commas outside quotes and parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['\'', '"', '`'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> Vec<(String, String)> {
        match classify(text) {
            Action::Set(a) => a.into_iter().map(|a| (a.name, a.value)).collect(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn reads_writes_and_ddl_follow_the_sql_parser() {
        assert_eq!(classify("SELECT 1;"), Action::Read("SELECT 1".into()));
        assert_eq!(classify("show tables"), Action::Read("show tables".into()));
        assert_eq!(
            classify("INSERT INTO t VALUES (1)"),
            Action::Write("INSERT INTO t VALUES (1)".into())
        );
        assert_eq!(
            classify("CREATE TABLE t (id INT PRIMARY KEY)"),
            Action::Ddl("CREATE TABLE t (id INT PRIMARY KEY)".into())
        );
        assert_eq!(classify("SHOW WARNINGS"), Action::ShowWarnings);
        assert_eq!(classify("-- nothing"), Action::Empty);
        assert!(matches!(classify("SELECT 1; SELECT 2"), Action::Refuse(_)));
    }

    #[test]
    fn transactions_and_use() {
        assert_eq!(classify("BEGIN"), Action::Begin { read_only: false });
        assert_eq!(
            classify("START TRANSACTION READ ONLY"),
            Action::Begin { read_only: true }
        );
        assert_eq!(classify("commit;"), Action::Commit);
        assert_eq!(classify("ROLLBACK"), Action::Rollback);
        assert_eq!(classify("USE `app`"), Action::Use("app".into()));
        assert_eq!(classify("UNLOCK TABLES"), Action::Empty);
        assert_eq!(
            classify("ROLLBACK TO SAVEPOINT sp"),
            Action::Savepoint("ROLLBACK TO SAVEPOINT sp".into())
        );
    }

    #[test]
    fn set_statements_are_read_into_assignments() {
        assert_eq!(
            set("SET NAMES utf8mb4"),
            vec![("names".into(), "utf8mb4".into())]
        );
        assert_eq!(
            set("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'"),
            vec![("names".into(), "utf8mb4".into())]
        );
        assert_eq!(
            set("SET autocommit=1"),
            vec![("autocommit".into(), "1".into())]
        );
        assert_eq!(
            set("SET @@session.sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE', time_zone='+00:00'"),
            vec![
                ("sql_mode".into(), "STRICT_TRANS_TABLES,NO_ZERO_DATE".into()),
                ("time_zone".into(), "+00:00".into())
            ]
        );
        assert_eq!(
            set("/*!40101 SET @saved_cs_client = @@character_set_client */;"),
            vec![("@saved_cs_client".into(), "@@character_set_client".into())]
        );
        assert_eq!(
            set("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            vec![(
                "transaction".into(),
                "isolation level read committed".into()
            )]
        );
    }

    #[test]
    fn executable_comments_are_read_as_their_content() {
        assert_eq!(
            classify("CREATE TABLE t (id INT PRIMARY KEY) /*! ENGINE = innodb */"),
            Action::Ddl("CREATE TABLE t (id INT PRIMARY KEY)  ENGINE = innodb".into())
        );
        assert_eq!(
            classify("/*!40101 SET NAMES utf8mb4 */;"),
            Action::Set(vec![Assignment {
                name: "names".into(),
                value: "utf8mb4".into()
            }])
        );
        // Inside literals and ordinary comments nothing changes.
        assert_eq!(
            classify("SELECT '/*! x */' /* plain */"),
            Action::Read("SELECT '/*! x */' /* plain */".into())
        );
        assert_eq!(
            unwrap_executable_comments("SELECT 1 /*M!100000 + 1 */ -- /*! no */"),
            "SELECT 1  + 1  -- /*! no */"
        );
    }

    #[test]
    fn other_statements_are_refused_with_a_reason() {
        let Action::Refuse(e) = classify("LOCK TABLES t WRITE") else {
            panic!("LOCK TABLES must be refused")
        };
        assert_eq!(e.kind as u16, 1235);
        assert!(e.message.contains("LOCK"), "{}", e.message);
    }
}
