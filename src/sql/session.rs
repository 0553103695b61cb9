//! Session statements: the per-statement time limit a client read runs under, the
//! `KILL QUERY` that stops a read whose client gave up, and the forced AUTO_INCREMENT
//! value of a replayed interactive transaction.

use std::time::Duration;

/// Sets the session's `max_statement_time` to `limit` (rounded up to the millisecond, at
/// least 1 ms): MariaDB then aborts any statement of this session that runs longer.
pub fn max_statement_time(limit: Duration) -> String {
    let ms = limit.as_millis().max(1);
    format!(
        "SET SESSION max_statement_time = {}.{:03}",
        ms / 1000,
        ms % 1000
    )
}

/// Stops the statement running on connection `id`; the connection itself stays open.
pub fn kill_query(id: u32) -> String {
    format!("KILL QUERY {id}")
}

/// Ends connection `id` (and rolls back its transaction): how the applier frees the locks
/// of the MySQL front end's local transactions (`apply::tentative`).
pub fn kill_connection(id: u32) -> String {
    format!("KILL CONNECTION {id}")
}

/// Opens a front-end transaction that may write (locally, never committed): every read
/// sees one snapshot taken now.
pub const BEGIN_LOCAL: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT";

/// Opens a `READ ONLY` front-end transaction on one snapshot.
pub const BEGIN_LOCAL_READ_ONLY: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";

/// The applier's session: lock waits of none for a row lock and five seconds for a
/// table's metadata lock (only the front end's local transactions can hold either — reads
/// use snapshots — and when a wait ends, the applier kills them and retries, see
/// `apply::tentative`); and `autocommit = 0`, so the first statement of a group opens its
/// transaction without a `START TRANSACTION` round trip of its own, and nothing the
/// applier runs is committed but by its explicit `COMMIT`.
pub const APPLIER_SESSION: &str =
    "SET SESSION innodb_lock_wait_timeout = 0, lock_wait_timeout = 5, autocommit = 0";

/// Makes the session's next AUTO_INCREMENT value the bound parameter (0: MariaDB's own
/// counter again), as statement-based replication does: a replayed INSERT generates the
/// id the client was told, or conflicts.
pub const SET_INSERT_ID: &str = "SET SESSION insert_id = ?";

/// Sets a read connection's `sql_mode` to a client session's (parameter: the mode).
pub const SET_SQL_MODE: &str = "SET SESSION sql_mode = ?";

/// Gives a read connection the server's `sql_mode` back.
pub const RESET_SQL_MODE: &str = "SET SESSION sql_mode = @@GLOBAL.sql_mode";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_time_is_seconds_with_milliseconds() {
        assert_eq!(
            max_statement_time(Duration::from_millis(500)),
            "SET SESSION max_statement_time = 0.500"
        );
        assert_eq!(
            max_statement_time(Duration::from_secs(30)),
            "SET SESSION max_statement_time = 30.000"
        );
        assert_eq!(
            max_statement_time(Duration::from_micros(10)),
            "SET SESSION max_statement_time = 0.001"
        );
        assert_eq!(kill_query(42), "KILL QUERY 42");
        assert_eq!(kill_connection(7), "KILL CONNECTION 7");
    }
}
