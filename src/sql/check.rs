//! Classifying client SQL before it may enter the log: one statement per string, the right
//! kind for the route (schema change, write, read), placeholders matching the parameters,
//! and nothing whose result differs between nodes ([`NON_DETERMINISTIC`], the one list).
//! It does not run SQL and does not decide HTTP routing.

use super::lex::{tokenize, Kind, Token};

/// Why a client statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// Nothing but whitespace and comments.
    #[error("the statement is empty")]
    Empty,
    /// A literal, quoted identifier or comment is never closed.
    #[error("unterminated {what} starting at byte {offset}")]
    Unterminated {
        /// What was left open.
        what: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// More than one statement in one string.
    #[error("only one statement per string: `;` at byte {offset} is followed by more SQL (send a list of statements instead)")]
    MultipleStatements {
        /// Where the separating `;` is.
        offset: usize,
    },
    /// `/write/ddl` got something other than a schema change.
    #[error("`{verb}` is not a schema change: DDL must start with CREATE, ALTER, DROP, RENAME or TRUNCATE")]
    NotDdl {
        /// The statement's first word.
        verb: String,
    },
    /// A schema change outside what the cluster replicates.
    #[error("`{verb} {object}` is not replicated: DDL may create, alter or drop tables, indexes, views, triggers, functions, procedures and sequences of the replicated database")]
    UnsupportedDdl {
        /// CREATE, ALTER, DROP or RENAME.
        verb: String,
        /// The kind of object, e.g. DATABASE or USER.
        object: String,
    },
    /// A write route got something other than INSERT, UPDATE, DELETE or REPLACE.
    #[error("`{verb}` is not a write: statements must be INSERT, UPDATE, DELETE or REPLACE (schema changes go to /write/ddl)")]
    NotWrite {
        /// The statement's first word.
        verb: String,
    },
    /// The read route got something that is not a plain read.
    #[error("`{verb}` is not a read: queries must be SELECT, SHOW, DESCRIBE, EXPLAIN or WITH … SELECT without INTO")]
    NotRead {
        /// The offending word.
        verb: String,
    },
    /// A construct whose result differs between nodes (see [`NON_DETERMINISTIC`]).
    #[error("{construct} cannot be replicated: {reason}")]
    NonDeterministic {
        /// The rule's name, e.g. `UUID()`.
        construct: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// The number of `?` markers and of parameters differ.
    #[error(
        "the statement has {placeholders} `?` placeholder(s) but {params} parameter(s) were given"
    )]
    ParamCount {
        /// `?` markers outside literals and comments.
        placeholders: usize,
        /// Parameters supplied.
        params: usize,
    },
}

impl SqlError {
    /// Stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            SqlError::Empty | SqlError::Unterminated { .. } => "invalid_sql",
            SqlError::MultipleStatements { .. } => "multiple_statements",
            SqlError::NotDdl { .. } => "not_ddl",
            SqlError::UnsupportedDdl { .. } => "unsupported_ddl",
            SqlError::NotWrite { .. } => "not_write",
            SqlError::NotRead { .. } => "not_read",
            SqlError::NonDeterministic { .. } => "non_deterministic",
            SqlError::ParamCount { .. } => "param_count",
        }
    }
}

/// How a statement would be treated, by its first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// CREATE, ALTER, DROP, RENAME, TRUNCATE: goes to `/write/ddl`, applied alone.
    Ddl,
    /// INSERT, UPDATE, DELETE, REPLACE: may be replicated in a batch.
    Write,
    /// SELECT, SHOW, DESCRIBE, DESC, EXPLAIN, WITH, VALUES: served locally, never logged.
    Read,
    /// Anything else (SET, CALL, LOCK, BEGIN, GRANT, …): never accepted.
    Other,
}

/// How a [`Rule`] recognises its construct in the token stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// A call `NAME(`, with optional whitespace or comments before `(`.
    Call(&'static str),
    /// A call with no argument at all, `NAME()`.
    CallWithoutArgs(&'static str),
    /// The word anywhere, with or without parentheses.
    Word(&'static str),
    /// Any of these word sequences.
    Phrases(&'static [&'static [&'static str]]),
    /// `@@name`.
    SystemVariable,
    /// `@name` (but not the host part of an account such as `'u'@'h'`).
    UserVariable,
    /// `LIMIT` or `FETCH FIRST|NEXT` in a query block that has no `ORDER BY` before it.
    LimitWithoutOrderBy,
}

/// One construct refused in replicated SQL, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The name shown to the client, e.g. `UUID()`.
    pub name: &'static str,
    /// How it is recognised.
    pub pattern: Pattern,
    /// Why it cannot be replicated, and what to use instead.
    pub reason: &'static str,
}

const RANDOM: &str = "returns a different value on every node; generate the value in the application or ask for a Snowflake ID";
const SESSION: &str =
    "reads session state that is not replicated: each node applies entries on its own connections";
const ACCOUNT: &str =
    "depends on the connection's account, which is the applier's own and may differ per node";
const LOCKS: &str =
    "user-level locks belong to one server and one session, so nodes see different results";
const STALL: &str = "stalls the applier on every node; it has no effect on data";
const FILES: &str = "touches a file on each node's own server, whose contents differ per node";
const SERVER: &str = "depends on the server it runs on, which differs between nodes";

/// Every construct refused in replicated SQL (DDL and writes); reads are never checked.
/// Keep one test per entry (see the tests below).
#[rustfmt::skip]
pub const NON_DETERMINISTIC: &[Rule] = &[
    Rule { name: "UUID()", pattern: Pattern::Call("UUID"), reason: RANDOM },
    Rule { name: "UUID_SHORT()", pattern: Pattern::Call("UUID_SHORT"), reason: RANDOM },
    Rule { name: "SYS_GUID()", pattern: Pattern::Call("SYS_GUID"), reason: RANDOM },
    Rule {
        name: "RAND() without a seed",
        pattern: Pattern::CallWithoutArgs("RAND"),
        reason: "returns a different value on every node; pass a constant seed, RAND(42), or compute the value in the application",
    },
    Rule { name: "RANDOM_BYTES()", pattern: Pattern::Call("RANDOM_BYTES"), reason: RANDOM },
    Rule {
        name: "SYSDATE()",
        pattern: Pattern::Call("SYSDATE"),
        reason: "reads each node's clock when it runs; use NOW(), which every node takes from the leader's timestamp",
    },
    Rule { name: "CONNECTION_ID()", pattern: Pattern::Call("CONNECTION_ID"), reason: SESSION },
    Rule { name: "USER()", pattern: Pattern::Call("USER"), reason: ACCOUNT },
    Rule { name: "CURRENT_USER", pattern: Pattern::Word("CURRENT_USER"), reason: ACCOUNT },
    Rule { name: "SESSION_USER()", pattern: Pattern::Call("SESSION_USER"), reason: ACCOUNT },
    Rule { name: "SYSTEM_USER()", pattern: Pattern::Call("SYSTEM_USER"), reason: ACCOUNT },
    Rule { name: "CURRENT_ROLE", pattern: Pattern::Word("CURRENT_ROLE"), reason: ACCOUNT },
    Rule { name: "LAST_INSERT_ID()", pattern: Pattern::Call("LAST_INSERT_ID"), reason: SESSION },
    Rule { name: "ROW_COUNT()", pattern: Pattern::Call("ROW_COUNT"), reason: SESSION },
    Rule { name: "FOUND_ROWS()", pattern: Pattern::Call("FOUND_ROWS"), reason: SESSION },
    Rule { name: "LASTVAL()", pattern: Pattern::Call("LASTVAL"), reason: SESSION },
    Rule {
        name: "PREVIOUS VALUE FOR",
        pattern: Pattern::Phrases(&[&["PREVIOUS", "VALUE", "FOR"]]),
        reason: SESSION,
    },
    Rule {
        name: "NEXTVAL()",
        pattern: Pattern::Call("NEXTVAL"),
        reason: "a sequence's cache is lost when a node restarts, so nodes can hand out different values; use AUTO_INCREMENT or a Snowflake ID",
    },
    Rule {
        name: "NEXT VALUE FOR",
        pattern: Pattern::Phrases(&[&["NEXT", "VALUE", "FOR"]]),
        reason: "a sequence's cache is lost when a node restarts, so nodes can hand out different values; use AUTO_INCREMENT or a Snowflake ID",
    },
    Rule { name: "GET_LOCK()", pattern: Pattern::Call("GET_LOCK"), reason: LOCKS },
    Rule { name: "RELEASE_LOCK()", pattern: Pattern::Call("RELEASE_LOCK"), reason: LOCKS },
    Rule { name: "RELEASE_ALL_LOCKS()", pattern: Pattern::Call("RELEASE_ALL_LOCKS"), reason: LOCKS },
    Rule { name: "IS_FREE_LOCK()", pattern: Pattern::Call("IS_FREE_LOCK"), reason: LOCKS },
    Rule { name: "IS_USED_LOCK()", pattern: Pattern::Call("IS_USED_LOCK"), reason: LOCKS },
    Rule { name: "SLEEP()", pattern: Pattern::Call("SLEEP"), reason: STALL },
    Rule { name: "BENCHMARK()", pattern: Pattern::Call("BENCHMARK"), reason: STALL },
    Rule { name: "LOAD_FILE()", pattern: Pattern::Call("LOAD_FILE"), reason: FILES },
    Rule { name: "MASTER_POS_WAIT()", pattern: Pattern::Call("MASTER_POS_WAIT"), reason: SERVER },
    Rule { name: "MASTER_GTID_WAIT()", pattern: Pattern::Call("MASTER_GTID_WAIT"), reason: SERVER },
    Rule {
        name: "VERSION()",
        pattern: Pattern::Call("VERSION"),
        reason: "nodes may run different MariaDB versions, e.g. during a rolling upgrade",
    },
    Rule {
        name: "@@variable",
        pattern: Pattern::SystemVariable,
        reason: "server and session variables differ between nodes (@@hostname, @@server_id, …) or are not replicated",
    },
    Rule {
        name: "@variable",
        pattern: Pattern::UserVariable,
        reason: "user variables are session state that is not replicated; pass the value as a parameter",
    },
    Rule { name: "INTO OUTFILE", pattern: Pattern::Phrases(&[&["INTO", "OUTFILE"]]), reason: FILES },
    Rule { name: "INTO DUMPFILE", pattern: Pattern::Phrases(&[&["INTO", "DUMPFILE"]]), reason: FILES },
    Rule { name: "LOAD DATA", pattern: Pattern::Phrases(&[&["LOAD", "DATA"]]), reason: FILES },
    Rule { name: "LOAD XML", pattern: Pattern::Phrases(&[&["LOAD", "XML"]]), reason: FILES },
    Rule {
        name: "TEMPORARY table",
        pattern: Pattern::Phrases(&[
            &["CREATE", "TEMPORARY"],
            &["CREATE", "OR", "REPLACE", "TEMPORARY"],
            &["DROP", "TEMPORARY"],
        ]),
        reason: SESSION,
    },
    Rule {
        name: "LIMIT without ORDER BY",
        pattern: Pattern::LimitWithoutOrderBy,
        reason: "which rows it picks depends on each node's storage order; add an ORDER BY on a unique key",
    },
];

/// Checks a `/write/ddl` statement; returns it without a trailing `;`.
///
/// # Errors
/// Anything but one supported, deterministic schema change without placeholders.
pub fn check_ddl(sql: &str) -> Result<&str, SqlError> {
    let (text, toks) = single(sql)?;
    let verb = first_word(text, &toks);
    if kind_of(&verb) != StatementKind::Ddl {
        return Err(SqlError::NotDdl { verb });
    }
    if !verb.eq_ignore_ascii_case("TRUNCATE") {
        check_ddl_object(text, &toks, &verb)?;
    }
    placeholders_match(&toks, 0)?;
    deterministic(text, &toks)?;
    Ok(text)
}

/// Checks one statement of a `/write/sql` batch; returns it without a trailing `;`.
///
/// # Errors
/// Anything but one deterministic INSERT/UPDATE/DELETE/REPLACE with `params` placeholders.
pub fn check_write(sql: &str, params: usize) -> Result<&str, SqlError> {
    let (text, toks) = single(sql)?;
    let verb = first_word(text, &toks);
    if kind_of(&verb) != StatementKind::Write {
        return Err(SqlError::NotWrite { verb });
    }
    placeholders_match(&toks, params)?;
    deterministic(text, &toks)?;
    Ok(text)
}

/// Checks a `/query` statement: one plain read with `params` placeholders and no `INTO`.
/// Determinism is not checked: reads are never replicated. Run it in a read-only
/// transaction anyway, since a stored function called by a SELECT could write.
///
/// # Errors
/// Anything but one read statement.
pub fn check_read(sql: &str, params: usize) -> Result<&str, SqlError> {
    let (text, toks) = single(sql)?;
    let verb = first_word(text, &toks);
    if kind_of(&verb) != StatementKind::Read {
        return Err(SqlError::NotRead { verb });
    }
    if let Some(t) = toks.iter().find(|t| t.is_word(text, "INTO")) {
        return Err(SqlError::NotRead {
            verb: format!("{verb} … {}", t.text(text)),
        });
    }
    placeholders_match(&toks, params)?;
    Ok(text)
}

/// The kind of one statement, by its first word (after comments and opening parentheses).
///
/// # Errors
/// An empty, unterminated or multi-statement string.
pub fn statement_kind(sql: &str) -> Result<StatementKind, SqlError> {
    let (text, toks) = single(sql)?;
    Ok(kind_of(&first_word(text, &toks)))
}

/// Checks `sql` against every [`NON_DETERMINISTIC`] rule; the first construct found, in
/// text order, is reported.
///
/// # Errors
/// [`SqlError::NonDeterministic`] naming the construct, or a lexing error.
pub fn check_deterministic(sql: &str) -> Result<(), SqlError> {
    let toks = lex(sql)?;
    deterministic(sql, &toks)
}

fn lex(sql: &str) -> Result<Vec<Token>, SqlError> {
    tokenize(sql).map_err(|u| SqlError::Unterminated {
        what: u.what,
        offset: u.offset,
    })
}

/// Lexes `sql`, refuses more than one statement, and cuts one trailing `;` (with the
/// whitespace and comments after it).
fn single(sql: &str) -> Result<(&str, Vec<Token>), SqlError> {
    let mut toks = lex(sql)?;
    if toks.is_empty() {
        return Err(SqlError::Empty);
    }
    if let Some(pos) = toks.iter().position(|t| t.kind == Kind::Semicolon) {
        let semi = toks[pos];
        // A `;` inside `/*! … */` cannot be cut without leaving the comment open.
        if pos + 1 != toks.len() || semi.in_exec_comment {
            return Err(SqlError::MultipleStatements { offset: semi.start });
        }
        toks.pop();
        if toks.is_empty() {
            return Err(SqlError::Empty);
        }
        let text = sql[..semi.start].trim_end();
        return Ok((text, toks));
    }
    Ok((sql.trim_end(), toks))
}

fn first_word(sql: &str, toks: &[Token]) -> String {
    toks.iter()
        .find(|t| t.kind != Kind::Punct(b'('))
        .map(|t| t.text(sql).chars().take(32).collect())
        .unwrap_or_default()
}

fn kind_of(verb: &str) -> StatementKind {
    let v = verb.to_ascii_uppercase();
    match v.as_str() {
        "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE" => StatementKind::Ddl,
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" => StatementKind::Write,
        "SELECT" | "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" | "WITH" | "VALUES" => {
            StatementKind::Read
        }
        _ => StatementKind::Other,
    }
}

const DDL_OBJECTS: &[&str] = &[
    "TABLE",
    "TABLES",
    "INDEX",
    "VIEW",
    "TRIGGER",
    "FUNCTION",
    "PROCEDURE",
    "SEQUENCE",
];
const OTHER_OBJECTS: &[&str] = &[
    "DATABASE",
    "SCHEMA",
    "USER",
    "ROLE",
    "SERVER",
    "EVENT",
    "TABLESPACE",
    "LOGFILE",
    "PACKAGE",
];

/// Finds the object keyword among the first words (after OR REPLACE, DEFINER, ONLINE,
/// UNIQUE and the like) and refuses objects outside the replicated database.
fn check_ddl_object(sql: &str, toks: &[Token], verb: &str) -> Result<(), SqlError> {
    for t in toks.iter().skip(1).take(24) {
        if t.kind != Kind::Word {
            continue;
        }
        let w = t.text(sql);
        if DDL_OBJECTS.iter().any(|o| w.eq_ignore_ascii_case(o)) {
            return Ok(());
        }
        if OTHER_OBJECTS.iter().any(|o| w.eq_ignore_ascii_case(o)) {
            return Err(SqlError::UnsupportedDdl {
                verb: verb.to_ascii_uppercase(),
                object: w.to_ascii_uppercase(),
            });
        }
    }
    let object = toks
        .get(1)
        .map(|t| t.text(sql).chars().take(32).collect::<String>())
        .unwrap_or_default();
    Err(SqlError::UnsupportedDdl {
        verb: verb.to_ascii_uppercase(),
        object,
    })
}

fn placeholders_match(toks: &[Token], params: usize) -> Result<(), SqlError> {
    let placeholders = toks.iter().filter(|t| t.kind == Kind::Placeholder).count();
    if placeholders == params {
        Ok(())
    } else {
        Err(SqlError::ParamCount {
            placeholders,
            params,
        })
    }
}

/// Words after which `NAME (` names a table, index or routine instead of calling a
/// function: `INSERT INTO user (a)`, `KEY uuid (c)`, `CREATE FUNCTION sleep(…)`.
/// Backticks always make a name a name.
const NAME_BEFORE: &[&str] = &[
    "INTO",
    "TABLE",
    "INSERT",
    "REPLACE",
    "IGNORE",
    "DELAYED",
    "LOW_PRIORITY",
    "HIGH_PRIORITY",
    "REFERENCES",
    "KEY",
    "INDEX",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "CONSTRAINT",
    "EXISTS",
    "FUNCTION",
    "PROCEDURE",
    "VIEW",
    "TRIGGER",
    "WITH",
    "RECURSIVE",
];

fn is_name_position(sql: &str, toks: &[Token], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).map(|p| toks[p]) else {
        return false;
    };
    if prev.kind == Kind::Punct(b'.') {
        return true;
    }
    if NAME_BEFORE.iter().any(|w| prev.is_word(sql, w)) {
        return true;
    }
    // `CREATE INDEX i ON t (c)`: the table after ON.
    prev.is_word(sql, "ON")
        && toks[i.saturating_sub(6)..i - 1]
            .iter()
            .any(|t| t.is_word(sql, "INDEX") || t.is_word(sql, "KEY"))
}

fn matches_at(rule: &Rule, sql: &str, toks: &[Token], i: usize) -> bool {
    let t = toks[i];
    let next = |k: usize| toks.get(i + k).map(|t| t.kind);
    match rule.pattern {
        Pattern::Call(name) => {
            t.is_word(sql, name)
                && next(1) == Some(Kind::Punct(b'('))
                && !is_name_position(sql, toks, i)
        }
        Pattern::CallWithoutArgs(name) => {
            t.is_word(sql, name)
                && next(1) == Some(Kind::Punct(b'('))
                && next(2) == Some(Kind::Punct(b')'))
                && !is_name_position(sql, toks, i)
        }
        Pattern::Word(name) => {
            // `DEFINER = CURRENT_USER` names the applier's account, the same on every node.
            let definer = i >= 2
                && toks[i - 1].kind == Kind::Punct(b'=')
                && toks[i - 2].is_word(sql, "DEFINER");
            t.is_word(sql, name) && !definer
        }
        Pattern::Phrases(phrases) => phrases.iter().any(|words| {
            words
                .iter()
                .enumerate()
                .all(|(k, w)| toks.get(i + k).is_some_and(|t| t.is_word(sql, w)))
        }),
        Pattern::SystemVariable => t.kind == Kind::SysVar,
        Pattern::UserVariable => {
            // `'user'@'host'` and `root@localhost`: an account, not a variable.
            let account = i >= 1
                && !t.spaced
                && matches!(toks[i - 1].kind, Kind::Word | Kind::Str | Kind::QuotedIdent);
            t.kind == Kind::UserVar && !account
        }
        // Handled by the scan, which needs the query-block context.
        Pattern::LimitWithoutOrderBy => false,
    }
}

fn limit_rule() -> &'static Rule {
    NON_DETERMINISTIC
        .iter()
        .find(|r| r.pattern == Pattern::LimitWithoutOrderBy)
        .expect("NON_DETERMINISTIC holds the LIMIT rule")
}

fn deterministic(sql: &str, toks: &[Token]) -> Result<(), SqlError> {
    // One "ORDER BY seen" flag per parenthesis depth; a new query block resets it.
    let mut ordered = vec![false];
    for (i, t) in toks.iter().enumerate() {
        for rule in NON_DETERMINISTIC {
            if matches_at(rule, sql, toks, i) {
                return Err(SqlError::NonDeterministic {
                    construct: rule.name,
                    reason: rule.reason,
                });
            }
        }
        let top = ordered.len() - 1;
        match t.kind {
            Kind::Punct(b'(') => ordered.push(false),
            Kind::Punct(b')') if top > 0 => {
                ordered.pop();
            }
            Kind::Word => {
                let w = t.text(sql);
                let next_is = |u: &str| toks.get(i + 1).is_some_and(|n| n.is_word(sql, u));
                if w.eq_ignore_ascii_case("ORDER") && next_is("BY") {
                    ordered[top] = true;
                } else if [
                    "SELECT",
                    "UNION",
                    "EXCEPT",
                    "INTERSECT",
                    "UPDATE",
                    "DELETE",
                    "INSERT",
                    "REPLACE",
                ]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
                {
                    ordered[top] = false;
                } else if (w.eq_ignore_ascii_case("LIMIT")
                    || (w.eq_ignore_ascii_case("FETCH") && (next_is("FIRST") || next_is("NEXT"))))
                    && !ordered[top]
                {
                    let rule = limit_rule();
                    return Err(SqlError::NonDeterministic {
                        construct: rule.name,
                        reason: rule.reason,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}
