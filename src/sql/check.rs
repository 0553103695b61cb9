//! Classifying client SQL before it may enter the log: one statement per string, the right
//! kind for the route (schema change, write, read), placeholders matching the parameters,
//! nothing whose result differs between nodes ([`NON_DETERMINISTIC`], the one list), and no
//! write or schema change naming the applier's position table. It does not run SQL and
//! does not decide HTTP routing.

use super::admit::{admit, Mode};
use super::lex::{tokenize, Kind, Token};
use super::routine::{admit_program, Program};
use super::rules::{Pattern, Rule, NON_DETERMINISTIC};

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
    /// A write or schema change names the applier's position table.
    #[error("`{name}` is WolfScale's own position table: writes and schema changes may not name it (reading it is fine)")]
    Reserved {
        /// The name as written.
        name: String,
    },
    /// WolfScale's parser cannot read the statement; only what it reads completely is
    /// admitted.
    #[error("WolfScale cannot read `{statement}`…: {detail}. Only statements it can parse completely are accepted (see the README's table of accepted SQL)")]
    Unparsable {
        /// The statement's first words.
        statement: String,
        /// Where the parser stopped.
        detail: String,
    },
    /// A function that is not on the allow-list of deterministic built-ins.
    #[error("`{name}()` cannot be replicated: it is not on WolfScale's list of functions that return the same value on every node (stored functions included); compute the value in the application and pass it as a parameter")]
    FunctionNotAllowed {
        /// The function's name, upper case.
        name: String,
    },
    /// A construct refused by the parse-based admission, and why.
    #[error("{construct} cannot be replicated: {reason}")]
    NotReplicable {
        /// What was found.
        construct: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// A name qualified by a database: statements work on the replicated database only.
    #[error("`{name}` names another database: statements sent through WolfScale work on the replicated database only; name objects without a database qualifier")]
    OtherDatabase {
        /// The qualified name.
        name: String,
    },
    /// An executable comment (`/*! … */`, `/*!50100 … */`, `/*M! … */`).
    #[error("executable comment at byte {offset}: MariaDB runs its content or not depending on each server's version, so nodes could differ; remove the comment markers (keep the content) or the comment")]
    ExecutableComment {
        /// Where it starts.
        offset: usize,
    },
    /// A schema change Galera cannot replicate, refused when the leader applies into a
    /// Galera cluster (`database.galera`).
    #[error("{construct} is refused: this cluster applies into Galera, and {reason}")]
    Galera {
        /// The rule, e.g. `CREATE TABLE without a PRIMARY KEY`.
        construct: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// A statement reaches into one of MariaDB's system schemas (`mysql.user`, …).
    #[error("`{name}` is a MariaDB system schema: statements sent through WolfScale work on the replicated database only")]
    SystemSchema {
        /// The schema name as written.
        name: String,
    },
}

impl SqlError {
    /// Whether the statement was refused because its result would differ between nodes.
    pub fn is_non_deterministic(&self) -> bool {
        matches!(
            self,
            SqlError::NonDeterministic { .. } | SqlError::FunctionNotAllowed { .. }
        )
    }

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
            SqlError::Reserved { .. } => "reserved_name",
            SqlError::SystemSchema { .. } => "system_schema",
            SqlError::Unparsable { .. } => "unsupported_sql",
            SqlError::FunctionNotAllowed { .. } => "non_deterministic",
            SqlError::NotReplicable { .. } => "not_replicable",
            SqlError::OtherDatabase { .. } => "other_database",
            SqlError::ExecutableComment { .. } => "executable_comment",
            SqlError::Galera { .. } => "galera_unsupported",
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

/// Checks a `/write/ddl` statement; returns it without a trailing `;`.
///
/// # Errors
/// Anything but one supported, deterministic schema change without placeholders that
/// leaves the position table (`_wolfscale`) alone.
pub fn check_ddl(sql: &str) -> Result<&str, SqlError> {
    let (text, toks) = single(sql)?;
    let verb = first_word(text, &toks);
    if kind_of(&verb) != StatementKind::Ddl {
        return Err(SqlError::NotDdl { verb });
    }
    let object = if verb.eq_ignore_ascii_case("TRUNCATE") {
        None
    } else {
        Some(check_ddl_object(text, &toks, &verb)?)
    };
    untouchable(text, &toks)?;
    no_executable_comment(&toks)?;
    outside_system_schemas(text, &toks, SYSTEM_SCHEMAS)?;
    placeholders_match(&toks, 0)?;
    deterministic(text, &toks)?;
    let program = object.and_then(|(at, word)| {
        let kind = match word.as_str() {
            "TRIGGER" => Program::Trigger,
            "PROCEDURE" => Program::Procedure,
            "FUNCTION" => Program::Function,
            _ => return None,
        };
        Some((at, kind))
    });
    match program {
        Some((at, kind)) if verb.eq_ignore_ascii_case("CREATE") => {
            admit_program(text, &toks, at, kind)?
        }
        _ => admit(&parser_text(text, &toks), Mode::Ddl)?,
    }
    Ok(text)
}

/// Checks one statement of a `/write/sql` batch; returns it without a trailing `;`.
///
/// # Errors
/// Anything but one deterministic INSERT/UPDATE/DELETE/REPLACE with `params` placeholders
/// that does not name the position table (`_wolfscale`).
pub fn check_write(sql: &str, params: usize) -> Result<&str, SqlError> {
    let (text, toks) = single(sql)?;
    let verb = first_word(text, &toks);
    if kind_of(&verb) != StatementKind::Write {
        return Err(SqlError::NotWrite { verb });
    }
    untouchable(text, &toks)?;
    no_executable_comment(&toks)?;
    outside_system_schemas(text, &toks, SYSTEM_SCHEMAS)?;
    placeholders_match(&toks, params)?;
    deterministic(text, &toks)?;
    admit(text, Mode::Write)?;
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
    // information_schema is fine to read (table lists, column types); the others hold
    // accounts, password hashes and server internals.
    no_executable_comment(&toks)?;
    outside_system_schemas(text, &toks, &SYSTEM_SCHEMAS[1..])?;
    placeholders_match(&toks, params)?;
    match verb.to_ascii_uppercase().as_str() {
        "SHOW" => show_allowed(text, &toks)?,
        "DESCRIBE" | "DESC" => {}
        _ => admit(text, Mode::Read)?,
    }
    Ok(text)
}

/// What one statement of an interactive (certified) transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertifiedKind {
    /// A SELECT whose rows every node reads again and compares.
    Read,
    /// An INSERT, UPDATE, DELETE or REPLACE admitted as for `/write/sql`.
    Write,
    /// `SAVEPOINT x`, `ROLLBACK TO [SAVEPOINT] x` or `RELEASE SAVEPOINT x`.
    Savepoint,
}

/// Checks one statement of an interactive transaction that every node will replay and
/// compare (`Command::Certified`); returns it without a trailing `;`.
///
/// A read is held to the rules of replicated code, not only to those of `/query`: every
/// node must compute the same rows from the same state, so its functions must be
/// deterministic, and a LIMIT needs an ORDER BY (which rows a bare LIMIT returns depends
/// on each node's plan). Row order does not matter: the digest ignores it.
///
/// # Errors
/// Anything but a SELECT (`FOR UPDATE` and `LOCK IN SHARE MODE` included), a write
/// accepted by [`check_write`], or a savepoint statement on a name other than the
/// applier's own.
pub fn check_certified_step(sql: &str, params: usize) -> Result<(&str, CertifiedKind), SqlError> {
    let (text, toks) = single(sql)?;
    let verb = first_word(text, &toks).to_ascii_uppercase();
    match verb.as_str() {
        "SAVEPOINT" | "RELEASE" | "ROLLBACK" => {
            savepoint_statement(text, &toks)?;
            Ok((text, CertifiedKind::Savepoint))
        }
        "SELECT" | "WITH" => {
            if let Some(t) = toks.iter().find(|t| t.is_word(text, "INTO")) {
                return Err(SqlError::NotRead {
                    verb: format!("{verb} … {}", t.text(text)),
                });
            }
            no_executable_comment(&toks)?;
            outside_system_schemas(text, &toks, SYSTEM_SCHEMAS)?;
            placeholders_match(&toks, params)?;
            deterministic(text, &toks)?;
            super::admit::admit_certified_read(text)?;
            Ok((text, CertifiedKind::Read))
        }
        _ if kind_of(&verb) == StatementKind::Write => {
            Ok((check_write(sql, params)?, CertifiedKind::Write))
        }
        _ => Err(SqlError::NotReplicable {
            construct: verb,
            reason: "is not accepted inside a transaction that writes: use SELECT, INSERT, UPDATE, DELETE, REPLACE and savepoints",
        }),
    }
}

/// `SAVEPOINT x`, `ROLLBACK [WORK] TO [SAVEPOINT] x`, `RELEASE SAVEPOINT x`, where `x` is
/// not the applier's own savepoint.
fn savepoint_statement(sql: &str, toks: &[Token]) -> Result<(), SqlError> {
    no_executable_comment(toks)?;
    let words: Vec<&Token> = toks.iter().collect();
    let is = |i: usize, w: &str| words.get(i).is_some_and(|t| t.is_word(sql, w));
    let name_at = if is(0, "SAVEPOINT") {
        1
    } else if is(0, "RELEASE") && is(1, "SAVEPOINT") {
        2
    } else if is(0, "ROLLBACK") {
        let mut i = 1;
        if is(i, "WORK") {
            i += 1;
        }
        if !is(i, "TO") {
            return Err(SqlError::NotReplicable {
                construct: "ROLLBACK".into(),
                reason: "inside a statement list: roll the transaction back by not committing it; only ROLLBACK TO a savepoint is a step",
            });
        }
        i += 1;
        if is(i, "SAVEPOINT") {
            i += 1;
        }
        i
    } else {
        usize::MAX
    };
    let bad = || {
        SqlError::NotReplicable {
        construct: sql.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        reason: "is not a savepoint statement: use SAVEPOINT x, ROLLBACK TO SAVEPOINT x or RELEASE SAVEPOINT x",
    }
    };
    let name = words.get(name_at).ok_or_else(bad)?;
    if words.len() != name_at + 1 {
        return Err(bad());
    }
    let unquoted = match name.kind {
        Kind::Word => name.text(sql).to_string(),
        Kind::QuotedIdent => super::unquote_ident(name.text(sql)).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if unquoted.eq_ignore_ascii_case(super::position::SAVEPOINT_NAME) {
        return Err(SqlError::NotReplicable {
            construct: format!("savepoint {unquoted}"),
            reason: "is the name of the applier's own savepoint; choose another name",
        });
    }
    Ok(())
}

/// MariaDB's own schemas; `information_schema` first (reads may use it).
const SYSTEM_SCHEMAS: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

/// Refuses a qualified name (`schema.table`, bare or quoted, any case, spaces or comments
/// around the dot) whose qualifier is one of `schemas`: writes through the API must not
/// create accounts or change grants on every node, and reads must not reveal them.
fn outside_system_schemas(sql: &str, toks: &[Token], schemas: &[&str]) -> Result<(), SqlError> {
    for pair in toks.windows(2) {
        if pair[1].kind != Kind::Punct(b'.') {
            continue;
        }
        let text = pair[0].text(sql);
        let name = match pair[0].kind {
            Kind::Word => Some(text.to_string()),
            Kind::QuotedIdent => super::unquote_ident(text),
            _ => None,
        };
        if name.is_some_and(|n| schemas.iter().any(|s| n.eq_ignore_ascii_case(s))) {
            return Err(SqlError::SystemSchema {
                name: text.to_string(),
            });
        }
    }
    Ok(())
}

/// The kind of one statement, by its first word (after comments and opening parentheses).
///
/// # Errors
/// An empty, unterminated or multi-statement string.
pub fn statement_kind(sql: &str) -> Result<StatementKind, SqlError> {
    let (text, toks) = single(sql)?;
    Ok(kind_of(&first_word(text, &toks)))
}

/// The number of `?` placeholders of one statement (outside literals and comments), for
/// a front end that prepares a statement before its values arrive.
///
/// # Errors
/// An empty, unterminated or multi-statement string.
pub fn placeholders(sql: &str) -> Result<usize, SqlError> {
    let (_, toks) = single(sql)?;
    Ok(toks.iter().filter(|t| t.kind == Kind::Placeholder).count())
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
pub(super) fn single(sql: &str) -> Result<(&str, Vec<Token>), SqlError> {
    let mut toks = lex(sql)?;
    if toks.is_empty() {
        return Err(SqlError::Empty);
    }
    // A stored program's compound body separates its statements with `;`: only a last
    // `;` is cut, and the body grammar (`routine`) refuses anything after its end.
    let first = if creates_program(sql, &toks) {
        toks.len() - 1
    } else {
        0
    };
    if let Some(pos) = toks
        .iter()
        .skip(first)
        .position(|t| t.kind == Kind::Semicolon)
        .map(|p| p + first)
    {
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

/// `CREATE … TRIGGER|PROCEDURE|FUNCTION` (with OR REPLACE, DEFINER and the like between).
pub(super) fn creates_program(sql: &str, toks: &[Token]) -> bool {
    toks.first().is_some_and(|t| t.is_word(sql, "CREATE"))
        && toks.iter().take(12).any(|t| {
            ["TRIGGER", "PROCEDURE", "FUNCTION"]
                .iter()
                .any(|w| t.is_word(sql, w))
        })
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
fn check_ddl_object(sql: &str, toks: &[Token], verb: &str) -> Result<(usize, String), SqlError> {
    for (i, t) in toks.iter().enumerate().skip(1).take(24) {
        // Words after `=` are values (`DEFINER = user@host`, `ALGORITHM = MERGE`).
        if t.kind != Kind::Word || toks[i - 1].kind == Kind::Punct(b'=') {
            continue;
        }
        let w = t.text(sql);
        if DDL_OBJECTS.iter().any(|o| w.eq_ignore_ascii_case(o)) {
            return Ok((i, w.to_ascii_uppercase()));
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

/// Refuses executable comments: their content runs or not depending on each server's
/// version (`/*!50100 … */`), and the parser would read them as plain comments.
fn no_executable_comment(toks: &[Token]) -> Result<(), SqlError> {
    match toks.iter().find(|t| t.in_exec_comment) {
        Some(t) => Err(SqlError::ExecutableComment { offset: t.start }),
        None => Ok(()),
    }
}

/// The statement as given to the parser: `DEFINER = account`, `ALGORITHM = x` and `SQL
/// SECURITY x` before the object keyword are cut (the parser does not know MariaDB's
/// account syntax); the stored text keeps them.
pub(super) fn parser_text(sql: &str, toks: &[Token]) -> String {
    let object = toks
        .iter()
        .position(|t| DDL_OBJECTS.iter().any(|o| t.is_word(sql, o)))
        .unwrap_or(0);
    let mut cut: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < object {
        let t = toks[i];
        let assigned = toks.get(i + 1).map(|n| n.kind) == Some(Kind::Punct(b'='));
        if (t.is_word(sql, "DEFINER") || t.is_word(sql, "ALGORITHM")) && assigned {
            // The value: one name, optionally `@host`, or CURRENT_USER[()].
            let mut end = i + 2;
            if toks
                .get(end)
                .is_some_and(|v| v.is_word(sql, "CURRENT_USER"))
            {
                end += 1;
                if toks.get(end).map(|t| t.kind) == Some(Kind::Punct(b'('))
                    && toks.get(end + 1).map(|t| t.kind) == Some(Kind::Punct(b')'))
                {
                    end += 2;
                }
            } else {
                end += 1;
                if toks
                    .get(end)
                    .is_some_and(|h| h.kind == Kind::UserVar && !h.spaced)
                {
                    end += 1;
                }
            }
            let end = end.min(object);
            cut.push((t.start, toks[end - 1].end));
            i = end;
            continue;
        }
        // `CREATE FULLTEXT|SPATIAL INDEX`: the parser knows only plain and UNIQUE.
        if (t.is_word(sql, "FULLTEXT") || t.is_word(sql, "SPATIAL"))
            && toks.get(i + 1).is_some_and(|n| n.is_word(sql, "INDEX"))
        {
            cut.push((t.start, t.end));
            i += 1;
            continue;
        }
        if t.is_word(sql, "SQL") && toks.get(i + 1).is_some_and(|n| n.is_word(sql, "SECURITY")) {
            let end = (i + 3).min(object);
            cut.push((t.start, toks[end - 1].end));
            i = end;
            continue;
        }
        i += 1;
    }
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (from, to) in cut {
        out.push_str(&sql[last..from]);
        out.push(' ');
        last = to;
    }
    out.push_str(&sql[last..]);
    out
}

/// `SHOW` subjects a client may read: definitions and settings of the replicated
/// database. Grants, the process list, replication and server internals are refused.
const SHOW_SUBJECTS: &[&[&str]] = &[
    &["TABLES"],
    &["FULL", "TABLES"],
    &["COLUMNS"],
    &["FULL", "COLUMNS"],
    &["FIELDS"],
    &["FULL", "FIELDS"],
    &["INDEX"],
    &["INDEXES"],
    &["KEYS"],
    &["CREATE", "TABLE"],
    &["CREATE", "VIEW"],
    &["CREATE", "TRIGGER"],
    &["CREATE", "PROCEDURE"],
    &["CREATE", "FUNCTION"],
    &["CREATE", "SEQUENCE"],
    &["CREATE", "DATABASE"],
    &["CREATE", "SCHEMA"],
    &["TABLE", "STATUS"],
    &["TRIGGERS"],
    &["VARIABLES"],
    &["SESSION", "VARIABLES"],
    &["GLOBAL", "VARIABLES"],
    &["WARNINGS"],
    &["ERRORS"],
    &["COUNT"],
    &["DATABASES"],
    &["SCHEMAS"],
    &["COLLATION"],
    &["CHARACTER", "SET"],
    &["CHARSET"],
    &["ENGINES"],
    &["PROCEDURE", "STATUS"],
    &["FUNCTION", "STATUS"],
];

fn show_allowed(sql: &str, toks: &[Token]) -> Result<(), SqlError> {
    let words = &toks[1..];
    let ok = SHOW_SUBJECTS.iter().any(|subject| {
        subject.len() <= words.len() && subject.iter().zip(words).all(|(w, t)| t.is_word(sql, w))
    });
    if ok {
        return Ok(());
    }
    let subject: String = words
        .iter()
        .take(2)
        .map(|t| t.text(sql))
        .collect::<Vec<_>>()
        .join(" ");
    Err(SqlError::NotRead {
        verb: format!("SHOW {subject}"),
    })
}

/// Refuses a name, bare or quoted, in any letter case, equal to the position table's:
/// a client that deleted its row or dropped it would make every node re-apply the log or
/// stall for good. A string literal with that text is data, not a name.
fn untouchable(sql: &str, toks: &[Token]) -> Result<(), SqlError> {
    let reserved = super::position::POSITION_TABLE;
    for t in toks {
        let text = t.text(sql);
        let name = match t.kind {
            Kind::Word => Some(text.to_string()),
            Kind::QuotedIdent => super::unquote_ident(text),
            _ => None,
        };
        if name.is_some_and(|n| n.eq_ignore_ascii_case(reserved)) {
            return Err(SqlError::Reserved {
                name: text.to_string(),
            });
        }
    }
    Ok(())
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
            names(sql, &t, name)
                && next(1) == Some(Kind::Punct(b'('))
                && !is_name_position(sql, toks, i)
        }
        Pattern::CallWithoutArgs(name) => {
            names(sql, &t, name)
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

/// Whether `t` is the name `upper`, bare or backtick-quoted: MariaDB calls the built-in
/// for `` `UUID`() `` just as for `UUID()`.
fn names(sql: &str, t: &Token, upper: &str) -> bool {
    match t.kind {
        Kind::Word => t.is_word(sql, upper),
        Kind::QuotedIdent => {
            super::unquote_ident(t.text(sql)).is_some_and(|n| n.eq_ignore_ascii_case(upper))
        }
        _ => false,
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
        // Every rule starts at a word or a variable; skip the rest cheaply.
        let candidates = if matches!(
            t.kind,
            Kind::Word | Kind::QuotedIdent | Kind::SysVar | Kind::UserVar
        ) {
            NON_DETERMINISTIC
        } else {
            &[]
        };
        for rule in candidates {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::sql::rules::tests::assert_refused;

    #[test]
    fn error_names_the_construct_and_says_why() {
        let e = check_write("INSERT INTO t (id) VALUES (UUID())", 0).expect_err("refused");
        assert_eq!(e.code(), "non_deterministic");
        let msg = e.to_string();
        assert!(msg.starts_with("UUID() cannot be replicated: "), "{msg}");
        assert!(msg.contains("Snowflake"), "{msg}");
    }

    #[test]
    fn ddl_is_checked_for_determinism_too() {
        let e =
            check_ddl("ALTER TABLE t ADD COLUMN u CHAR(36) DEFAULT (UUID())").expect_err("refused");
        assert_eq!(e.code(), "non_deterministic");
        let e = check_ddl("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.r = RAND()")
            .expect_err("refused");
        assert_eq!(e.code(), "non_deterministic");
    }

    #[test]
    fn writes_and_ddl_may_not_name_the_position_table() {
        for sql in [
            "DELETE FROM _wolfscale",
            "DELETE FROM `_wolfscale` WHERE id = 1",
            "UPDATE app._WOLFSCALE SET applied_index = 0",
            "UPDATE t, `_Wolfscale` SET t.a = 1",
            "INSERT INTO t (a) SELECT applied_index FROM _wolfscale",
            "DELETE FROM t WHERE a = 1 /*! OR a IN (SELECT id FROM _wolfscale) */",
        ] {
            let e = check_write(sql, 0).expect_err(sql);
            assert_eq!(e.code(), "reserved_name", "{sql}");
        }
        for sql in [
            "DROP TABLE _wolfscale",
            "TRUNCATE `_wolfscale`",
            "RENAME TABLE t TO _wolfscale",
            "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW DELETE FROM _wolfscale",
        ] {
            let e = check_ddl(sql).expect_err(sql);
            assert_eq!(e.code(), "reserved_name", "{sql}");
            assert!(e.to_string().contains("position table"), "{e}");
        }
        // As data, or as part of another name, or read: fine.
        assert!(check_write("INSERT INTO t (a) VALUES ('_wolfscale')", 0).is_ok());
        assert!(check_write("INSERT INTO `_wolfscale_x` (a) VALUES (1)", 0).is_ok());
        assert!(check_ddl("CREATE TABLE wolfscale (a INT)").is_ok());
        assert!(check_read("SELECT applied_index FROM _wolfscale", 0).is_ok());
    }

    #[test]
    fn system_schemas_are_out_of_reach() {
        for sql in [
            "INSERT INTO mysql.user (User) VALUES ('x')",
            "UPDATE `mysql`.`global_priv` SET Priv = '{}' WHERE User = 'root'",
            "DELETE FROM MySQL . db WHERE 1 = 1 ORDER BY Db",
            "INSERT INTO t SELECT * FROM performance_schema.threads",
            "REPLACE INTO t (a) SELECT User FROM mysql /* c */ .user",
            "INSERT INTO t SELECT 1 FROM information_schema.tables",
        ] {
            let e = check_write(sql, 0).expect_err(sql);
            assert_eq!(e.code(), "system_schema", "{sql}");
        }
        for sql in [
            "CREATE TABLE mysql.evil (a INT)",
            "DROP TABLE sys.x",
            "CREATE VIEW v AS SELECT * FROM mysql.user",
        ] {
            let e = check_ddl(sql).expect_err(sql);
            assert_eq!(e.code(), "system_schema", "{sql}");
        }
        for sql in [
            "SELECT authentication_string FROM mysql.user",
            "SELECT * FROM `performance_schema`.`accounts`",
            "SELECT * FROM sys.session",
        ] {
            let e = check_read(sql, 0).expect_err(sql);
            assert_eq!(e.code(), "system_schema", "{sql}");
        }
        // Reading information_schema is allowed; names and strings that merely contain
        // the words are not qualified names.
        check_read("SELECT table_name FROM information_schema.tables", 0).expect("is");
        check_write("INSERT INTO t (mysql, sys) VALUES ('mysql.user', ?)", 1).expect("data");
        check_write("UPDATE t SET t.v = ? WHERE t.id = ?", 2).expect("t.col");
        check_read("SELECT mysql FROM t", 0).expect("a column called mysql");
    }

    #[test]
    fn rand_with_a_seed_is_deterministic() {
        assert!(check_write("UPDATE t SET r = RAND(42) WHERE id = 1", 0).is_ok());
        assert!(check_write("UPDATE t SET r = RAND(?) WHERE id = 1", 1).is_ok());
    }

    #[test]
    fn deterministic_time_functions_pass() {
        // NOW() and friends read the leader's timestamp set with `SET timestamp`.
        for sql in [
            "INSERT INTO t (a, b, c) VALUES (NOW(), CURRENT_TIMESTAMP, UNIX_TIMESTAMP())",
            "INSERT INTO t (a) VALUES (NOW(6))",
            "UPDATE t SET d = CURDATE(), u = UTC_TIMESTAMP() WHERE id = 1",
        ] {
            assert_eq!(check_write(sql, 0), Ok(sql));
        }
    }

    #[test]
    fn calls_match_across_case_spaces_and_comments() {
        for sql in [
            "INSERT INTO t (a) VALUES (uuid())",
            "INSERT INTO t (a) VALUES (Uuid  ())",
            "INSERT INTO t (a) VALUES (UUID\n())",
            "INSERT INTO t (a) VALUES (UUID/* c */())",
            "INSERT INTO t (a) VALUES (UUID -- c\n ())",
        ] {
            assert_refused("UUID()", sql);
        }
    }

    #[test]
    fn functions_inside_literals_and_comments_are_ignored() {
        for sql in [
            "INSERT INTO t (a) VALUES ('UUID()')",
            "INSERT INTO t (a) VALUES (\"SLEEP(1)\")",
            "INSERT INTO t (a) VALUES ('it''s RAND()')",
            r"INSERT INTO t (a) VALUES ('\' UUID() \'')",
            "INSERT INTO t (a) VALUES (1) /* UUID() */",
            "INSERT INTO t (a) VALUES (1) -- SYSDATE()",
            "INSERT INTO t (a) VALUES (1) # @@hostname",
            "INSERT INTO t (`UUID()`, `@x`) VALUES (1, 2)",
            "INSERT INTO t (a) VALUES ('LIMIT 5')",
        ] {
            assert_eq!(check_write(sql, 0), Ok(sql));
        }
    }

    #[test]
    fn executable_comments_are_checked() {
        assert_refused("UUID()", "INSERT INTO t (a) VALUES (1 /*! + UUID() */)");
        assert_refused(
            "SLEEP()",
            "INSERT INTO t (a) VALUES (1 /*!50100 + SLEEP(1) */)",
        );
        assert_refused(
            "RAND() without a seed",
            "INSERT INTO t (a) VALUES (1 /*M!100100 + RAND() */)",
        );
    }

    #[test]
    fn names_that_look_like_functions_are_names() {
        for sql in [
            "INSERT INTO user (a) VALUES (1)",
            "INSERT version (a) VALUES (1)",
            "INSERT IGNORE INTO sleep (a) VALUES (1)",
            "REPLACE INTO uuid (a) VALUES (1)",
            "INSERT INTO `user` (`uuid`) VALUES (1)",
        ] {
            assert_eq!(check_write(sql, 0), Ok(sql));
        }
        for sql in [
            "CREATE TABLE user (id INT, uuid BINARY(16), KEY uuid (uuid))",
            "CREATE TABLE IF NOT EXISTS version (id INT)",
            "CREATE INDEX i ON user (a)",
            "CREATE UNIQUE INDEX i ON version (a)",
            "ALTER TABLE t ADD UNIQUE sleep (a)",
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY user (a) REFERENCES user (id)",
            "CREATE FUNCTION sleep (x INT) RETURNS INT DETERMINISTIC RETURN x + 1",
            "CREATE VIEW user (a) AS SELECT a FROM t",
        ] {
            assert_eq!(check_ddl(sql), Ok(sql));
        }
    }

    #[test]
    fn accounts_are_not_user_variables() {
        for sql in [
            "CREATE DEFINER='app'@'%' VIEW v AS SELECT a FROM t",
            "CREATE DEFINER=`app`@`localhost` VIEW v AS SELECT a FROM t",
            "CREATE DEFINER=app@localhost VIEW v AS SELECT a FROM t",
            "CREATE DEFINER = CURRENT_USER VIEW v AS SELECT a FROM t",
            "CREATE DEFINER = user@localhost TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
        ] {
            assert_eq!(check_ddl(sql), Ok(sql));
        }
        assert_refused("@variable", "INSERT INTO t (a) VALUES (1 + @`x`)");
        assert_refused("@variable", "INSERT INTO t (a) VALUES (@'x')");
    }

    #[test]
    fn limit_needs_order_by_in_its_own_query_block() {
        // Ordered LIMITs pass the lexer's rule but not the parse-based admission, which
        // refuses every plan-dependent write (issue 12).
        for refused in [
            "DELETE FROM t WHERE a < 5 ORDER BY id LIMIT 10",
            "UPDATE t SET a = 1 ORDER BY id LIMIT 1",
            "INSERT INTO t (a) SELECT a FROM u ORDER BY id LIMIT 3",
            "INSERT INTO t (a) SELECT GROUP_CONCAT(x ORDER BY y LIMIT 2) FROM u",
            "DELETE FROM t WHERE id IN (SELECT id FROM (SELECT id FROM u ORDER BY id LIMIT 5) x)",
        ] {
            let toks = lex(refused).expect("lexes");
            assert_eq!(deterministic(refused, &toks), Ok(()), "{refused}");
            assert_eq!(
                check_write(refused, 0).map_err(|e| e.code()),
                Err("not_replicable"),
                "{refused}"
            );
        }
        for bad in [
            "UPDATE t SET a = 1 LIMIT 1",
            "DELETE FROM t WHERE id IN (SELECT id FROM (SELECT id FROM u LIMIT 5) x)",
            "DELETE FROM t WHERE id IN (SELECT id FROM u ORDER BY id) LIMIT 1",
            "INSERT INTO t (a) SELECT a FROM u ORDER BY a LIMIT 1 UNION SELECT b FROM v LIMIT 1",
            "INSERT INTO t (a) SELECT a FROM u FETCH FIRST 3 ROWS ONLY",
            "INSERT INTO t (a) SELECT GROUP_CONCAT(x LIMIT 2) FROM u",
        ] {
            assert_refused("LIMIT without ORDER BY", bad);
        }
    }

    #[test]
    fn temporary_tables_are_refused_in_every_form() {
        for sql in [
            "CREATE TEMPORARY TABLE t (a INT)",
            "create or replace temporary table t (a INT)",
            "DROP TEMPORARY TABLE t",
        ] {
            assert_refused("TEMPORARY table", sql);
        }
        // A column called `temporary` is fine.
        assert!(check_write("UPDATE t SET temporary = 1 WHERE id = 1", 0).is_ok());
    }

    #[test]
    fn ddl_verbs_and_objects() {
        for sql in [
            "CREATE TABLE t (id BIGINT PRIMARY KEY)",
            "create table t (id int)",
            "CREATE OR REPLACE TABLE t (id INT)",
            "ALTER TABLE t ADD COLUMN email VARCHAR(255)",
            "DROP TABLE IF EXISTS t, u",
            "RENAME TABLE a TO b, c TO d",
            "TRUNCATE t",
            "TRUNCATE TABLE t",
            "CREATE UNIQUE INDEX i ON t (a)",
            "CREATE FULLTEXT INDEX i ON t (a)",
            "DROP INDEX i ON t",
            "CREATE OR REPLACE ALGORITHM=MERGE VIEW v AS SELECT a FROM t",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = NEW.a + 1",
            "CREATE SEQUENCE s START WITH 1",
            "DROP PROCEDURE IF EXISTS p",
            "/* why */ -- because\n CREATE TABLE t (a INT)",
        ] {
            assert_eq!(check_ddl(sql), Ok(sql), "{sql}");
        }
        // What the parser cannot read, and executable comments, are refused.
        for (sql, code) in [
            (
                "ALTER ONLINE IGNORE TABLE t ADD INDEX (a)",
                "unsupported_sql",
            ),
            ("/*!40101 CREATE TABLE t (a INT) */", "executable_comment"),
            ("ALTER TABLE t ENGINE=MyISAM", "unsupported_sql"),
            ("CREATE TABLE m (a INT) ENGINE=MyISAM", "not_replicable"),
        ] {
            assert_eq!(check_ddl(sql).map_err(|e| e.code()), Err(code), "{sql}");
        }
    }

    #[test]
    fn ddl_trailing_semicolon_is_cut() {
        assert_eq!(check_ddl("DROP TABLE t ;  -- done\n"), Ok("DROP TABLE t"));
        assert_eq!(check_ddl("DROP TABLE t;"), Ok("DROP TABLE t"));
    }

    #[test]
    fn not_ddl_is_refused() {
        for (sql, verb) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("SELECT 1", "SELECT"),
            ("GRANT ALL ON *.* TO x", "GRANT"),
            ("SET GLOBAL read_only = 1", "SET"),
            ("(SELECT 1)", "SELECT"),
        ] {
            assert_eq!(
                check_ddl(sql),
                Err(SqlError::NotDdl {
                    verb: verb.to_string()
                }),
                "{sql}"
            );
        }
    }

    #[test]
    fn ddl_outside_the_replicated_database_is_refused() {
        for (sql, object) in [
            ("CREATE DATABASE other", "DATABASE"),
            ("DROP SCHEMA app", "SCHEMA"),
            ("CREATE USER 'x'@'%' IDENTIFIED BY 'p'", "USER"),
            ("RENAME USER a TO b", "USER"),
            (
                "CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t",
                "EVENT",
            ),
            ("CREATE ROLE r", "ROLE"),
            ("ALTER DATABASE app CHARACTER SET utf8mb4", "DATABASE"),
        ] {
            match check_ddl(sql) {
                Err(e @ SqlError::UnsupportedDdl { .. }) => {
                    assert_eq!(e.code(), "unsupported_ddl");
                    assert!(e.to_string().contains(object), "{sql}: {e}");
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
    }

    #[test]
    fn ddl_takes_no_placeholders() {
        assert_eq!(
            check_ddl("CREATE TABLE t (a INT DEFAULT ?)"),
            Err(SqlError::ParamCount {
                placeholders: 1,
                params: 0
            })
        );
    }

    #[test]
    fn multiple_statements_are_refused() {
        for sql in [
            "CREATE TABLE a (x INT); DROP TABLE b",
            "INSERT INTO t VALUES (1);INSERT INTO t VALUES (2)",
            "INSERT INTO t VALUES (1) /*! ; DROP TABLE t */",
            "INSERT INTO t VALUES (1) /*! ; */",
            "INSERT INTO t VALUES (1);;",
        ] {
            assert!(
                matches!(
                    check_deterministic(sql).and_then(|()| check_write(sql, 0)),
                    Err(SqlError::MultipleStatements { .. })
                ),
                "{sql}"
            );
        }
        // `;` inside literals, identifiers and comments does not separate statements.
        for sql in [
            "INSERT INTO t (a) VALUES ('a;b')",
            "INSERT INTO `t;x` (a) VALUES (1)",
            "INSERT INTO t (a) VALUES (1) /* ; DROP TABLE t */",
            "INSERT INTO t (a) VALUES (1) -- ; DROP TABLE t",
        ] {
            assert_eq!(check_write(sql, 0), Ok(sql));
        }
    }

    #[test]
    fn empty_and_unterminated_statements_are_invalid_sql() {
        for sql in ["", "   ", "-- nothing\n", "/* nothing */", ";"] {
            assert_eq!(check_write(sql, 0), Err(SqlError::Empty), "{sql:?}");
        }
        let e = check_write("INSERT INTO t VALUES ('abc", 0).expect_err("unterminated");
        assert_eq!(
            e,
            SqlError::Unterminated {
                what: "string literal",
                offset: 22
            }
        );
        assert_eq!(e.code(), "invalid_sql");
    }

    #[test]
    fn writes_only_on_the_write_path() {
        for sql in [
            "INSERT INTO t (a) VALUES (?)",
            "REPLACE INTO t (a) VALUES (?)",
            "UPDATE t SET a = ? WHERE id = 1",
            "DELETE FROM t WHERE a = ?",
        ] {
            assert_eq!(check_write(sql, 1), Ok(sql));
        }
        for sql in [
            "SELECT 1",
            "SET @@global.x = 1",
            "CALL p()",
            "LOCK TABLES t WRITE",
            "BEGIN",
            "COMMIT",
            "DROP TABLE t",
            "HANDLER t OPEN",
            "DO 1",
        ] {
            let e = check_write(sql, 0).expect_err(sql);
            assert_eq!(e.code(), "not_write", "{sql}");
        }
    }

    #[test]
    fn placeholders_must_match_params() {
        assert_eq!(
            check_write("INSERT INTO t (a, b) VALUES (?, ?)", 1),
            Err(SqlError::ParamCount {
                placeholders: 2,
                params: 1
            })
        );
        // A `?` in a literal or comment is not a marker.
        assert!(check_write("INSERT INTO t (a, b) VALUES ('?', ?) /* ? */", 1).is_ok());
    }

    #[test]
    fn reads_only_on_the_read_path() {
        for sql in [
            "SELECT * FROM t WHERE id = ?",
            "(SELECT a FROM t) UNION (SELECT b FROM u)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SHOW TABLES",
            "EXPLAIN SELECT 1",
            "SELECT UUID(), @@hostname",
        ] {
            let params = usize::from(sql.contains('?'));
            assert_eq!(check_read(sql, params), Ok(sql));
        }
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SELECT a INTO @x FROM t",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "DROP TABLE t",
        ] {
            assert_eq!(
                check_read(sql, 0).expect_err(sql).code(),
                "not_read",
                "{sql}"
            );
        }
    }

    #[test]
    fn statement_kinds() {
        assert_eq!(
            statement_kind("  alter TABLE t ENGINE=InnoDB"),
            Ok(StatementKind::Ddl)
        );
        assert_eq!(
            statement_kind("replace t VALUES (1)"),
            Ok(StatementKind::Write)
        );
        assert_eq!(statement_kind("desc t"), Ok(StatementKind::Read));
        assert_eq!(statement_kind("SET x = 1"), Ok(StatementKind::Other));
        assert_eq!(statement_kind("  "), Err(SqlError::Empty));
    }

    fn sql_string(content: &str) -> String {
        format!("'{}'", content.replace('\\', "\\\\").replace('\'', "''"))
    }

    proptest! {
        #[test]
        fn functions_in_literals_never_count(
            pre in "[a-zA-Z0-9 ()@;?_.,'\"`\\\\-]{0,30}",
            rule in 0..NON_DETERMINISTIC.len(),
            post in "[a-zA-Z0-9 ()@;?_.,'\"`\\\\-]{0,30}",
        ) {
            let hidden = format!("{pre} {} UUID() @x @@h RAND() LIMIT 1 {post}", NON_DETERMINISTIC[rule].name);
            let sql = format!("INSERT INTO t (a) VALUES ({})", sql_string(&hidden));
            prop_assert_eq!(check_write(&sql, 0), Ok(sql.as_str()));
            let dq = format!("INSERT INTO t (a) VALUES (\"{}\")", hidden.replace('\\', "\\\\").replace('"', "\"\""));
            prop_assert_eq!(check_write(&dq, 0), Ok(dq.as_str()));
            let bq = format!("INSERT INTO t (`{}`) VALUES (1)", hidden.replace('`', "``"));
            prop_assert_eq!(check_write(&bq, 0), Ok(bq.as_str()));
        }

        #[test]
        fn functions_in_comments_never_count(
            body in "[a-zA-Z0-9 ()@;?_.,'\"`\\\\-]{0,40}",
            rule in 0..NON_DETERMINISTIC.len(),
        ) {
            let hidden = format!("{body} {} UUID() SLEEP(1)", NON_DETERMINISTIC[rule].name);
            for sql in [
                format!("INSERT INTO t (a) VALUES (1) /* {hidden} */"),
                format!("INSERT INTO t (a) VALUES (1) -- {hidden}\n"),
                format!("INSERT INTO t (a) VALUES (1) # {hidden}\n"),
                format!("INSERT INTO t (a) VALUES (1) /*{hidden}*/"),
            ] {
                prop_assert_eq!(check_write(&sql, 0), Ok(sql.trim_end()));
            }
        }

        #[test]
        fn checks_never_panic(s in "\\PC{0,200}", n in 0usize..4) {
            let _ = check_ddl(&s);
            let _ = check_write(&s, n);
            let _ = check_read(&s, n);
            let _ = statement_kind(&s);
        }
    }
}
