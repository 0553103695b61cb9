//! The one list of constructs refused in replicated SQL because their result can differ
//! between nodes, with the reason shown to the client. `check` applies it; each entry has
//! its own test below.

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sql::{check_deterministic, SqlError};

    /// Asserts that `sql` is refused as non-deterministic, naming `name`.
    pub(crate) fn assert_refused(name: &str, sql: &str) {
        match check_deterministic(sql) {
            Err(SqlError::NonDeterministic { construct, .. }) => {
                assert_eq!(construct, name, "{sql}")
            }
            other => panic!("{sql}: expected {name} to be refused, got {other:?}"),
        }
    }

    /// One test per [`NON_DETERMINISTIC`] entry; `COVERED` lets a test check that no
    /// entry lacks one.
    macro_rules! refused {
        ($($test:ident: $name:literal => $sql:literal;)*) => {
            $( #[test] fn $test() { assert_refused($name, $sql); } )*
            const COVERED: &[&str] = &[$($name),*];
        };
    }

    refused! {
        refuses_uuid: "UUID()" => "INSERT INTO t (id) VALUES (UUID())";
        refuses_uuid_short: "UUID_SHORT()" => "INSERT INTO t (id) VALUES (uuid_short ())";
        refuses_sys_guid: "SYS_GUID()" => "UPDATE t SET g = SYS_GUID() WHERE id = 1";
        refuses_rand_without_seed: "RAND() without a seed" => "UPDATE t SET r = rand( ) WHERE id = 1";
        refuses_random_bytes: "RANDOM_BYTES()" => "INSERT INTO t (b) VALUES (RANDOM_BYTES(16))";
        refuses_sysdate: "SYSDATE()" => "INSERT INTO t (at) VALUES (SysDate())";
        refuses_connection_id: "CONNECTION_ID()" => "INSERT INTO t (c) VALUES (CONNECTION_ID())";
        refuses_user: "USER()" => "INSERT INTO t (u) VALUES (USER())";
        refuses_current_user: "CURRENT_USER" => "INSERT INTO t (u) VALUES (CURRENT_USER)";
        refuses_session_user: "SESSION_USER()" => "INSERT INTO t (u) VALUES (SESSION_USER())";
        refuses_system_user: "SYSTEM_USER()" => "INSERT INTO t (u) VALUES (SYSTEM_USER())";
        refuses_current_role: "CURRENT_ROLE" => "INSERT INTO t (r) VALUES (CURRENT_ROLE())";
        refuses_last_insert_id: "LAST_INSERT_ID()" => "INSERT INTO child (parent) VALUES (LAST_INSERT_ID())";
        refuses_row_count: "ROW_COUNT()" => "INSERT INTO t (n) VALUES (ROW_COUNT())";
        refuses_found_rows: "FOUND_ROWS()" => "INSERT INTO t (n) VALUES (FOUND_ROWS())";
        refuses_lastval: "LASTVAL()" => "INSERT INTO t (n) VALUES (LASTVAL(s))";
        refuses_previous_value_for: "PREVIOUS VALUE FOR" => "INSERT INTO t (n) VALUES (PREVIOUS VALUE FOR s)";
        refuses_nextval: "NEXTVAL()" => "INSERT INTO t (n) VALUES (NEXTVAL(s))";
        refuses_next_value_for: "NEXT VALUE FOR" => "INSERT INTO t (n) VALUES (next value for s)";
        refuses_get_lock: "GET_LOCK()" => "INSERT INTO t (n) SELECT GET_LOCK('x', 10)";
        refuses_release_lock: "RELEASE_LOCK()" => "INSERT INTO t (n) VALUES (RELEASE_LOCK('x'))";
        refuses_release_all_locks: "RELEASE_ALL_LOCKS()" => "INSERT INTO t (n) VALUES (RELEASE_ALL_LOCKS())";
        refuses_is_free_lock: "IS_FREE_LOCK()" => "INSERT INTO t (n) VALUES (IS_FREE_LOCK('x'))";
        refuses_is_used_lock: "IS_USED_LOCK()" => "INSERT INTO t (n) VALUES (IS_USED_LOCK('x'))";
        refuses_sleep: "SLEEP()" => "UPDATE t SET a = SLEEP(5) WHERE id = 1";
        refuses_benchmark: "BENCHMARK()" => "UPDATE t SET a = BENCHMARK(1000, MD5('x')) WHERE id = 1";
        refuses_load_file: "LOAD_FILE()" => "UPDATE t SET b = LOAD_FILE('/etc/passwd') WHERE id = 1";
        refuses_master_pos_wait: "MASTER_POS_WAIT()" => "INSERT INTO t (n) VALUES (MASTER_POS_WAIT('f', 4))";
        refuses_master_gtid_wait: "MASTER_GTID_WAIT()" => "INSERT INTO t (n) VALUES (MASTER_GTID_WAIT('0-1-1'))";
        refuses_version: "VERSION()" => "INSERT INTO t (v) VALUES (VERSION())";
        refuses_system_variables: "@@variable" => "INSERT INTO t (h, s) VALUES (@@hostname, @@global.server_id)";
        refuses_user_variables: "@variable" => "INSERT INTO t (a) VALUES (@x)";
        refuses_into_outfile: "INTO OUTFILE" => "SELECT * FROM t INTO OUTFILE '/tmp/x'";
        refuses_into_dumpfile: "INTO DUMPFILE" => "SELECT b FROM t INTO DUMPFILE '/tmp/x'";
        refuses_load_data: "LOAD DATA" => "LOAD DATA INFILE '/tmp/x' INTO TABLE t";
        refuses_load_xml: "LOAD XML" => "LOAD XML INFILE '/tmp/x' INTO TABLE t";
        refuses_temporary_tables: "TEMPORARY table" => "CREATE TEMPORARY TABLE t (a INT)";
        refuses_limit_without_order_by: "LIMIT without ORDER BY" => "DELETE FROM t WHERE a < 5 LIMIT 10";
    }

    #[test]
    fn every_rule_has_a_test() {
        for rule in NON_DETERMINISTIC {
            assert!(COVERED.contains(&rule.name), "no test for {}", rule.name);
        }
        let mut names: Vec<_> = NON_DETERMINISTIC.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            NON_DETERMINISTIC.len(),
            "rule names are unique"
        );
    }
}
