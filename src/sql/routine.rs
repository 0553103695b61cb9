//! Stored-program bodies (triggers, procedures, functions), which the SQL parser cannot
//! read: their header is skipped with the lexer, and the body is admitted by a small
//! allow-list grammar — `BEGIN … END`, `IF … THEN … [ELSEIF …] [ELSE …] END IF`, `DECLARE`
//! of local variables, `SET` of a local variable, a parameter or a `NEW.` column,
//! `SIGNAL SQLSTATE`, `RETURN`, and INSERT/UPDATE/DELETE/REPLACE/SELECT statements, each
//! held to the same rules as a replicated write. Everything else (loops, cursors,
//! handlers, labels, dynamic SQL, `SET` of a session or user variable, …) is refused with
//! its name: a trigger body runs on the applier's session on every node.

use super::admit::{admit, admit_expr, Mode};
use super::check::SqlError;
use super::lex::{Kind, Token};
use std::collections::BTreeSet;

/// The kind of stored program a CREATE makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Program {
    /// `CREATE TRIGGER`.
    Trigger,
    /// `CREATE PROCEDURE`.
    Procedure,
    /// `CREATE FUNCTION`.
    Function,
}

/// Admits `CREATE [OR REPLACE] [DEFINER = …] {TRIGGER|PROCEDURE|FUNCTION} …`: `object` is
/// the index of the object keyword in `toks`.
///
/// # Errors
/// The first construct of the body that is not allowed, or a header it cannot follow.
pub(crate) fn admit_program(
    sql: &str,
    toks: &[Token],
    object: usize,
    program: Program,
) -> Result<(), SqlError> {
    let mut locals = BTreeSet::new();
    let body = match program {
        Program::Trigger => trigger_body(sql, toks, object)?,
        Program::Procedure | Program::Function => {
            routine_body(sql, toks, object, program, &mut locals)?
        }
    };
    let mut walker = Body {
        sql,
        toks,
        pos: body,
        locals,
        program,
    };
    walker.statement()?;
    if walker.pos != toks.len() {
        return Err(walker.unexpected("after the body"));
    }
    Ok(())
}

fn header_error(what: &str) -> SqlError {
    SqlError::Unparsable {
        statement: "CREATE …".to_string(),
        detail: what.to_string(),
    }
}

/// `name {BEFORE|AFTER} {INSERT|UPDATE|DELETE} ON table FOR EACH ROW [{FOLLOWS|PRECEDES}
/// other]`: returns where the body starts.
fn trigger_body(sql: &str, toks: &[Token], object: usize) -> Result<usize, SqlError> {
    let row = toks
        .windows(3)
        .position(|w| {
            w[0].is_word(sql, "FOR") && w[1].is_word(sql, "EACH") && w[2].is_word(sql, "ROW")
        })
        .filter(|&p| p > object)
        .ok_or_else(|| header_error("expected FOR EACH ROW in the trigger header"))?;
    let mut pos = row + 3;
    if toks
        .get(pos)
        .is_some_and(|t| t.is_word(sql, "FOLLOWS") || t.is_word(sql, "PRECEDES"))
    {
        pos += 2;
    }
    Ok(pos)
}

/// `name ( params ) [RETURNS type] [characteristics]`: records the parameters as locals
/// and returns where the body starts.
fn routine_body(
    sql: &str,
    toks: &[Token],
    object: usize,
    program: Program,
    locals: &mut BTreeSet<String>,
) -> Result<usize, SqlError> {
    let open = (object + 1..toks.len())
        .find(|&i| toks[i].kind == Kind::Punct(b'('))
        .ok_or_else(|| header_error("expected a parameter list"))?;
    let mut depth = 0usize;
    let mut close = None;
    let mut expect_name = true;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Punct(b'(') => {
                depth += 1;
                if depth == 1 {
                    expect_name = true;
                    continue;
                }
            }
            Kind::Punct(b')') => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            Kind::Punct(b',') if depth == 1 => {
                expect_name = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && expect_name {
            let word = ident(sql, t);
            if let Some(w) = word {
                let upper = w.to_ascii_uppercase();
                if !matches!(upper.as_str(), "IN" | "OUT" | "INOUT") {
                    locals.insert(w.to_ascii_lowercase());
                    expect_name = false;
                }
            }
        }
    }
    let close = close.ok_or_else(|| header_error("the parameter list is never closed"))?;
    let mut pos = close + 1;
    // Everything up to the first word that starts a statement is RETURNS and the
    // characteristics (`CHARACTER SET` inside a type is not a SET statement).
    while let Some(t) = toks.get(pos) {
        let starts = STATEMENT_STARTS.iter().any(|w| t.is_word(sql, w));
        let charset = t.is_word(sql, "SET")
            && pos > 0
            && (toks[pos - 1].is_word(sql, "CHARACTER") || toks[pos - 1].is_word(sql, "CHARSET"));
        if starts && !charset {
            break;
        }
        pos += 1;
    }
    if program == Program::Function && !toks[close..pos].iter().any(|t| t.is_word(sql, "RETURNS")) {
        return Err(header_error("a function needs RETURNS"));
    }
    Ok(pos)
}

/// Words that start a statement in a body (allowed or not, so the header ends there).
const STATEMENT_STARTS: &[&str] = &[
    "BEGIN",
    "RETURN",
    "SET",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "SELECT",
    "IF",
    "DECLARE",
    "SIGNAL",
    "RESIGNAL",
    "CALL",
    "WHILE",
    "LOOP",
    "REPEAT",
    "CASE",
    "WITH",
    "LEAVE",
    "ITERATE",
    "OPEN",
    "FETCH",
    "CLOSE",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "COMMIT",
    "ROLLBACK",
    "START",
    "LOCK",
    "UNLOCK",
    "DO",
    "FLUSH",
    "GRANT",
    "REVOKE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "LOAD",
    "KILL",
    "VALUES",
];

fn ident(sql: &str, t: &Token) -> Option<String> {
    match t.kind {
        Kind::Word => Some(t.text(sql).to_string()),
        Kind::QuotedIdent => super::unquote_ident(t.text(sql)),
        _ => None,
    }
}

struct Body<'a> {
    sql: &'a str,
    toks: &'a [Token],
    pos: usize,
    locals: BTreeSet<String>,
    program: Program,
}

impl Body<'_> {
    fn word(&self, upper: &str) -> bool {
        self.toks
            .get(self.pos)
            .is_some_and(|t| t.is_word(self.sql, upper))
    }

    fn expect_word(&mut self, upper: &str) -> Result<(), SqlError> {
        if self.word(upper) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {upper}")))
        }
    }

    fn unexpected(&self, what: &str) -> SqlError {
        let found = self
            .toks
            .get(self.pos)
            .map_or("the end".to_string(), |t| format!("`{}`", t.text(self.sql)));
        SqlError::Unparsable {
            statement: "stored-program body".to_string(),
            detail: format!("{what}, found {found}"),
        }
    }

    /// The text from token `from` up to (not including) token `to`.
    fn text(&self, from: usize, to: usize) -> &str {
        if from >= to {
            return "";
        }
        &self.sql[self.toks[from].start..self.toks[to - 1].end]
    }

    /// Tokens up to the next `;` at this nesting level, or the end, or one of `stops` at
    /// parenthesis depth 0.
    fn until(&self, stops: &[&str]) -> usize {
        let mut depth = 0i32;
        let mut i = self.pos;
        while let Some(t) = self.toks.get(i) {
            match t.kind {
                Kind::Punct(b'(') => depth += 1,
                Kind::Punct(b')') => depth -= 1,
                Kind::Semicolon if depth == 0 => return i,
                Kind::Word if depth == 0 && stops.iter().any(|s| t.is_word(self.sql, s)) => {
                    return i
                }
                _ => {}
            }
            i += 1;
        }
        i
    }

    fn statement(&mut self) -> Result<(), SqlError> {
        let Some(first) = self.toks.get(self.pos).copied() else {
            return Err(self.unexpected("expected a statement"));
        };
        let upper = first.text(self.sql).to_ascii_uppercase();
        if first.kind != Kind::Word {
            return Err(self.unexpected("expected a statement"));
        }
        // A label (`name: BEGIN`) only serves loops, which are refused.
        if self.toks.get(self.pos + 1).map(|t| t.kind) == Some(Kind::Punct(b':')) {
            return Err(not_allowed(
                "a label",
                "labels serve loops, which are not replicated",
            ));
        }
        match upper.as_str() {
            "BEGIN" => self.block(),
            "IF" => self.if_statement(),
            "DECLARE" => self.declare(),
            "SET" => self.set(),
            "SIGNAL" => self.signal(),
            "RETURN" if self.program == Program::Function => {
                self.pos += 1;
                let end = self.until(&[]);
                admit_expr(self.text(self.pos, end))?;
                self.pos = end;
                Ok(())
            }
            "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "SELECT" => {
                let end = self.until(&[]);
                admit(self.text(self.pos, end), Mode::Body)?;
                self.pos = end;
                Ok(())
            }
            other => Err(not_allowed(
                other,
                "stored-program bodies may use BEGIN … END, IF, DECLARE, SET of a local variable or NEW column, SIGNAL, RETURN, INSERT, UPDATE, DELETE, REPLACE and SELECT",
            )),
        }
    }

    /// `BEGIN [NOT ATOMIC] statement; … END`.
    fn block(&mut self) -> Result<(), SqlError> {
        self.expect_word("BEGIN")?;
        if self.word("NOT") {
            self.pos += 1;
            self.expect_word("ATOMIC")?;
        }
        self.list(&["END"])?;
        self.expect_word("END")
    }

    /// Statements separated by `;` until one of `ends`.
    fn list(&mut self, ends: &[&str]) -> Result<(), SqlError> {
        loop {
            if ends.iter().any(|e| self.word(e)) {
                return Ok(());
            }
            if self.pos >= self.toks.len() {
                return Err(self.unexpected(&format!("expected {}", ends.join(" or "))));
            }
            self.statement()?;
            match self.toks.get(self.pos).map(|t| t.kind) {
                Some(Kind::Semicolon) => self.pos += 1,
                _ => return Err(self.unexpected("expected `;` after a statement")),
            }
        }
    }

    /// `IF cond THEN … {ELSEIF cond THEN …} [ELSE …] END IF`.
    fn if_statement(&mut self) -> Result<(), SqlError> {
        self.expect_word("IF")?;
        loop {
            let then = self.until(&["THEN"]);
            admit_expr(self.text(self.pos, then))?;
            self.pos = then;
            self.expect_word("THEN")?;
            self.list(&["ELSEIF", "ELSE", "END"])?;
            if self.word("ELSEIF") {
                self.pos += 1;
                continue;
            }
            if self.word("ELSE") {
                self.pos += 1;
                self.list(&["END"])?;
            }
            self.expect_word("END")?;
            return self.expect_word("IF");
        }
    }

    /// `DECLARE name [, name] type [DEFAULT expr]`; cursors, handlers and conditions are
    /// refused.
    fn declare(&mut self) -> Result<(), SqlError> {
        self.expect_word("DECLARE")?;
        let end = self.until(&[]);
        let words: Vec<&Token> = self.toks[self.pos..end].iter().collect();
        if words.iter().any(|t| {
            ["CURSOR", "HANDLER", "CONDITION"]
                .iter()
                .any(|w| t.is_word(self.sql, w))
        }) {
            return Err(not_allowed(
                "DECLARE of a cursor, handler or condition",
                "only local variables may be declared in a replicated stored program",
            ));
        }
        // Names come first, comma-separated.
        let mut i = self.pos;
        while let Some(t) = self.toks.get(i) {
            if let Some(name) = ident(self.sql, t) {
                self.locals.insert(name.to_ascii_lowercase());
            }
            if self.toks.get(i + 1).map(|t| t.kind) == Some(Kind::Punct(b',')) {
                i += 2;
            } else {
                break;
            }
        }
        if let Some(d) = (self.pos..end).find(|&k| self.toks[k].is_word(self.sql, "DEFAULT")) {
            admit_expr(self.text(d + 1, end))?;
        }
        self.pos = end;
        Ok(())
    }

    /// `SET target = expr [, target = expr]`: targets are locals, parameters or `NEW.col`.
    fn set(&mut self) -> Result<(), SqlError> {
        self.expect_word("SET")?;
        let end = self.until(&[]);
        // Split the assignments on top-level commas.
        let mut depth = 0i32;
        let mut start = self.pos;
        let mut parts = Vec::new();
        for k in self.pos..end {
            match self.toks[k].kind {
                Kind::Punct(b'(') => depth += 1,
                Kind::Punct(b')') => depth -= 1,
                Kind::Punct(b',') if depth == 0 => {
                    parts.push((start, k));
                    start = k + 1;
                }
                _ => {}
            }
        }
        parts.push((start, end));
        for (from, to) in parts {
            let eq = (from..to)
                .find(|&k| self.toks[k].kind == Kind::Punct(b'='))
                .ok_or_else(|| self.unexpected("expected `=` in SET"))?;
            let target = self.text(from, eq);
            self.settable(target, from, eq)?;
            admit_expr(self.text(eq + 1, to))?;
        }
        self.pos = end;
        Ok(())
    }

    fn settable(&self, target: &str, from: usize, eq: usize) -> Result<(), SqlError> {
        let toks = &self.toks[from..eq];
        let new_column = self.program == Program::Trigger
            && toks.len() == 3
            && toks[0].is_word(self.sql, "NEW")
            && toks[1].kind == Kind::Punct(b'.')
            && matches!(toks[2].kind, Kind::Word | Kind::QuotedIdent);
        let local = toks.len() == 1
            && ident(self.sql, &toks[0])
                .is_some_and(|n| self.locals.contains(&n.to_ascii_lowercase()));
        if new_column || local {
            return Ok(());
        }
        Err(not_allowed(
            format!("SET {target}"),
            "a stored program may set only its local variables, parameters and NEW columns: a session or user variable set by a trigger would change the applier's session on every node",
        ))
    }

    /// `SIGNAL SQLSTATE [VALUE] 'xxxxx' [SET MESSAGE_TEXT = '…', …]`: a deterministic
    /// error, the same on every node.
    fn signal(&mut self) -> Result<(), SqlError> {
        self.expect_word("SIGNAL")?;
        self.expect_word("SQLSTATE")?;
        if self.word("VALUE") {
            self.pos += 1;
        }
        let end = self.until(&[]);
        let literal_only = self.toks[self.pos..end].iter().all(|t| {
            matches!(t.kind, Kind::Str | Kind::Punct(b'=') | Kind::Punct(b','))
                || (t.kind == Kind::Word
                    && ["SET", "MESSAGE_TEXT", "MYSQL_ERRNO"]
                        .iter()
                        .any(|w| t.is_word(self.sql, w))
                    || t.text(self.sql).bytes().all(|b| b.is_ascii_digit()))
        });
        if !literal_only {
            return Err(not_allowed(
                "SIGNAL with computed values",
                "SIGNAL may carry only literal SQLSTATE, MESSAGE_TEXT and MYSQL_ERRNO values",
            ));
        }
        self.pos = end;
        Ok(())
    }
}

fn not_allowed(construct: impl Into<String>, reason: &'static str) -> SqlError {
    SqlError::NotReplicable {
        construct: construct.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::check_ddl;

    fn code(sql: &str) -> &'static str {
        match check_ddl(sql) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn deterministic_bodies_pass() {
        for sql in [
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = NEW.a + 1",
            "CREATE DEFINER=`app`@`localhost` TRIGGER `tr` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1",
            "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO audit (note) VALUES (CONCAT('ins ', NEW.id))",
            "CREATE TRIGGER v BEFORE INSERT ON t FOR EACH ROW BEGIN IF NEW.x < 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative'; ELSEIF NEW.x > 10 THEN SET NEW.x = 10; ELSE SET NEW.y = NOW(); END IF; END",
            "CREATE TRIGGER c AFTER INSERT ON orders FOR EACH ROW BEGIN DECLARE n INT DEFAULT 1; SET n = n + NEW.qty; UPDATE stats SET total = total + n WHERE id = 1; END",
            "CREATE PROCEDURE p() BEGIN END",
            "CREATE PROCEDURE p_count() SELECT COUNT(*) FROM t_types",
            "CREATE PROCEDURE p(IN a INT, b VARCHAR(10)) BEGIN SET a = a + 1; INSERT INTO t VALUES (a, b); END",
            "CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
            "CREATE FUNCTION f(s VARCHAR(10)) RETURNS VARCHAR(20) CHARACTER SET utf8mb4 DETERMINISTIC RETURN CONCAT(s, s)",
        ] {
            assert_eq!(code(sql), "ok", "{sql}");
        }
    }

    #[test]
    fn session_changes_and_unknown_constructs_are_refused() {
        for (sql, want) in [
            ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET time_zone = '+05:00'", "not_replicable"),
            ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @@session.sql_mode = ''", "non_deterministic"),
            ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET SESSION time_zone = '+05:00'; END", "not_replicable"),
            ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.r = `RAND`()", "non_deterministic"),
            ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.r = uuid_short()", "non_deterministic"),
            ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN WHILE 1 DO SET NEW.a = 1; END WHILE; END", "not_replicable"),
            ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN DECLARE c CURSOR FOR SELECT a FROM u; END", "not_replicable"),
            ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW DELETE FROM u WHERE a = 1 LIMIT 1", "non_deterministic"),
            ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO other.u VALUES (1)", "other_database"),
            ("CREATE PROCEDURE p() BEGIN CALL q(); END", "not_replicable"),
            ("CREATE PROCEDURE p() BEGIN PREPARE s FROM 'SELECT 1'; END", "not_replicable"),
            ("CREATE FUNCTION f() RETURNS INT RETURN UUID_SHORT()", "non_deterministic"),
            ("CREATE FUNCTION f() RETURNS INT RETURN nosuch(1)", "non_deterministic"),
        ] {
            assert_eq!(code(sql), want, "{sql}");
        }
    }
}
