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
    /// `KILL [QUERY | CONNECTION] id`: of a connection of this front end (the id its
    /// handshake sent).
    Kill {
        /// `KILL CONNECTION` (or plain `KILL`): the connection ends too.
        connection: bool,
        /// The connection id.
        id: u32,
    },
    /// `SET STATEMENT max_statement_time = s FOR <read>`: the read, interrupted with
    /// 1969 when it runs longer than `max_time` (`None`: 0, no limit).
    Limited {
        /// The limit.
        max_time: Option<std::time::Duration>,
        /// The read (never another `Limited`).
        inner: Box<Action>,
    },
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

/// A value of this connection the front end answers itself: MariaDB's own would be that
/// of whichever pooled connection ran the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionValue {
    /// `LAST_INSERT_ID()`: the first id this connection's last insert generated.
    LastInsertId,
    /// `CONNECTION_ID()`: the id the handshake sent, which `KILL` takes.
    ConnectionId,
}

/// `SELECT LAST_INSERT_ID()` or `SELECT CONNECTION_ID()` (optionally `AS label`): which
/// one, and the column label it answers with.
pub fn session_value_query(sql: &str) -> Option<(SessionValue, String)> {
    let w = words(sql, 6);
    let call = |s: &str| match s.replace(' ', "").to_ascii_lowercase().as_str() {
        "last_insert_id()" => Some((SessionValue::LastInsertId, "LAST_INSERT_ID()")),
        "connection_id()" => Some((SessionValue::ConnectionId, "CONNECTION_ID()")),
        _ => None,
    };
    match w.as_slice() {
        [select, f] if select == "select" => call(f).map(|(v, l)| (v, l.to_string())),
        [select, f, r#as, label] if select == "select" && r#as == "as" => {
            call(f).map(|(v, _)| (v, label.trim_matches('`').to_string()))
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
        ["kill", ..] => kill(text),
        ["set", "statement", ..] => set_statement(text),
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

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] id`.
fn kill(text: &str) -> Action {
    let w = words(text, 6);
    let mut rest: Vec<&str> = w.iter().skip(1).map(String::as_str).collect();
    if matches!(rest.first(), Some(&("hard" | "soft"))) {
        rest.remove(0);
    }
    let connection = match rest.first() {
        Some(&"query") => {
            rest.remove(0);
            false
        }
        Some(&"connection") => {
            rest.remove(0);
            true
        }
        _ => true,
    };
    match rest.as_slice() {
        [id] => match id.parse::<u32>() {
            Ok(id) => Action::Kill { connection, id },
            Err(_) => Action::Refuse(MyError::unsupported(format!(
                "`KILL` takes a connection id (a number, as SHOW PROCESSLIST or \
                 CONNECTION_ID() of that connection gives it), not `{id}`"
            ))),
        },
        ["id", ..] => Action::Refuse(MyError::unsupported(
            "`KILL QUERY ID` is not supported by WolfScale's MySQL front end: statements \
             have no query id here; use KILL QUERY with the connection id",
        )),
        ["user", ..] => Action::Refuse(MyError::unsupported(
            "`KILL … USER` is not supported by WolfScale's MySQL front end; kill each \
             connection by its id",
        )),
        _ => Action::Refuse(MyError::refused(format!(
            "cannot read `{text}`: expected KILL [QUERY | CONNECTION] <connection id>"
        ))),
    }
}

/// `SET STATEMENT var = value [, …] FOR statement`: only `max_statement_time`, only for
/// a read (a write runs on every node, where the client's limit cannot apply alike).
fn set_statement(text: &str) -> Action {
    let body = strip_word(text.trim_start(), "set")
        .and_then(|b| strip_word(b.trim_start(), "statement"))
        .map(str::trim_start);
    let Some((list, inner)) = body.and_then(split_for) else {
        return Action::Refuse(MyError::refused(
            "cannot read the SET STATEMENT: expected SET STATEMENT var = value FOR statement"
                .to_string(),
        ));
    };
    let assignments = match parse_set(list) {
        Ok(a) => a,
        Err(m) => return Action::Refuse(MyError::refused(m)),
    };
    let mut max_time = None;
    for a in assignments {
        if a.name != "max_statement_time" {
            return Action::Refuse(MyError::unsupported(format!(
                "`SET STATEMENT {} = …` is refused: WolfScale's MySQL front end takes only \
                 max_statement_time there",
                a.name
            )));
        }
        let seconds: f64 = match a.value.trim().parse() {
            Ok(s) if (0.0..1e9).contains(&s) => s,
            _ => {
                return Action::Refuse(MyError::new(
                    1232,
                    format!(
                        "Incorrect argument type to variable 'max_statement_time': {}",
                        a.value
                    ),
                ))
            }
        };
        max_time = (seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds));
    }
    match classify(inner) {
        read @ Action::Read(_) => Action::Limited {
            max_time,
            inner: Box::new(read),
        },
        Action::Refuse(e) => Action::Refuse(e),
        _ => Action::Refuse(MyError::unsupported(
            "`SET STATEMENT max_statement_time … FOR` is accepted for reads only: a write runs \
             on every node through the log, where one client's time limit cannot apply alike",
        )),
    }
}

/// `text` after its leading word `word` (any letter case), if it starts with it.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    head.eq_ignore_ascii_case(word).then(|| &text[word.len()..])
}

/// Splits `a = 1, b = 'x' FOR statement` at the first `FOR` outside quotes and
/// parentheses.
fn split_for(s: &str) -> Option<(&str, &str)> {
    let (mut depth, mut quote) = (0i32, None::<char>);
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, 'f' | 'F') if depth == 0 => {
                let word = s.get(i..i + 3).unwrap_or_default();
                let before = i == 0 || bytes[i - 1].is_ascii_whitespace();
                let after = bytes.get(i + 3).is_some_and(u8::is_ascii_whitespace);
                if word.eq_ignore_ascii_case("for") && before && after {
                    return Some((s[..i].trim(), s[i + 3..].trim()));
                }
            }
            _ => {}
        }
    }
    None
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
    fn kill_takes_a_connection_id() {
        let kill = |text| classify(text);
        assert_eq!(
            kill("KILL QUERY 7"),
            Action::Kill {
                connection: false,
                id: 7
            }
        );
        assert_eq!(
            kill("kill 8;"),
            Action::Kill {
                connection: true,
                id: 8
            }
        );
        assert_eq!(
            kill("KILL HARD CONNECTION 9"),
            Action::Kill {
                connection: true,
                id: 9
            }
        );
        for refused in ["KILL QUERY ID 5", "KILL USER app", "KILL QUERY x", "KILL"] {
            assert!(matches!(kill(refused), Action::Refuse(_)), "{refused}");
        }
    }

    #[test]
    fn set_statement_limits_a_read_only() {
        assert_eq!(
            classify("SET STATEMENT max_statement_time = 0.5 FOR SELECT SLEEP(1)"),
            Action::Limited {
                max_time: Some(std::time::Duration::from_millis(500)),
                inner: Box::new(Action::Read("SELECT SLEEP(1)".into())),
            }
        );
        assert_eq!(
            classify("set statement max_statement_time=0 for select 'for x'"),
            Action::Limited {
                max_time: None,
                inner: Box::new(Action::Read("select 'for x'".into())),
            }
        );
        for refused in [
            "SET STATEMENT max_statement_time = 1 FOR DELETE FROM t",
            "SET STATEMENT sql_mode = '' FOR SELECT 1",
            "SET STATEMENT max_statement_time = -1 FOR SELECT 1",
            "SET STATEMENT max_statement_time = 1",
            "\u{3000}SET\u{a0}STATEMENT é = 1 FOR SELECT 1",
            "SET\u{2003}STATEMENTé FOR SELECT 1",
        ] {
            assert!(matches!(classify(refused), Action::Refuse(_)), "{refused}");
        }
        assert!(matches!(
            classify("  \n SET STATEMENT max_statement_time = 1 FOR SELECT 1"),
            Action::Limited { .. }
        ));
    }

    #[test]
    fn connection_id_and_last_insert_id_are_answered_here() {
        assert_eq!(
            session_value_query("SELECT CONNECTION_ID()"),
            Some((SessionValue::ConnectionId, "CONNECTION_ID()".into()))
        );
        assert_eq!(
            session_value_query("select last_insert_id() as `id`"),
            Some((SessionValue::LastInsertId, "id".into()))
        );
        assert_eq!(session_value_query("SELECT CONNECTION_ID() + 1"), None);
    }

    #[test]
    fn other_statements_are_refused_with_a_reason() {
        let Action::Refuse(e) = classify("LOCK TABLES t WRITE") else {
            panic!("LOCK TABLES must be refused")
        };
        assert_eq!(e.code, 1235);
        assert!(e.message.contains("LOCK"), "{}", e.message);
    }
}
