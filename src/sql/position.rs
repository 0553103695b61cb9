//! The applier's own bookkeeping SQL: the `_wolfscale` table inside the replicated
//! database, which holds the applied log position, the membership in force and the DDL
//! in-flight marker, always in row `id = 1`. Kept here because all SQL text lives in
//! `sql`; the applier runs it.

use super::quote_ident;

/// Name of the position table inside the replicated database. It travels with every dump
/// of that database, so a restored copy knows which log index it reflects.
pub const POSITION_TABLE: &str = "_wolfscale";

/// Creates the replicated database if it does not exist yet.
pub fn create_database(name: &str) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        quote_ident(name)
    )
}

/// Creates the position table. InnoDB is explicit: its updates must commit or roll back
/// with the entries' effects.
pub const CREATE_POSITION_TABLE: &str = "CREATE TABLE IF NOT EXISTS `_wolfscale` (\
     `id` TINYINT UNSIGNED NOT NULL PRIMARY KEY, \
     `applied_index` BIGINT UNSIGNED NULL, \
     `applied_term` BIGINT UNSIGNED NULL, \
     `applied_node` BIGINT UNSIGNED NULL, \
     `membership` LONGTEXT NULL, \
     `ddl_in_flight` BIGINT UNSIGNED NULL, \
     `autoinc` LONGTEXT NULL\
     ) ENGINE=InnoDB";

/// Adds the AUTO_INCREMENT counters column to a position table made by an older build (or
/// restored from an older dump); a no-op when it exists.
pub const ADD_AUTOINC_COLUMN: &str =
    "ALTER TABLE `_wolfscale` ADD COLUMN IF NOT EXISTS `autoinc` LONGTEXT NULL";

/// Adds the single position row (nothing applied yet) unless it exists.
pub const INSERT_POSITION_ROW: &str = "INSERT IGNORE INTO `_wolfscale` (`id`) VALUES (1)";

/// Reads the position row: index, term, node, membership JSON, DDL in flight, counters.
pub const SELECT_POSITION: &str = "SELECT `applied_index`, `applied_term`, `applied_node`, \
     `membership`, `ddl_in_flight`, `autoinc` FROM `_wolfscale` WHERE `id` = 1";

/// Records a new applied position and membership, clears the DDL marker and stores the
/// applier's AUTO_INCREMENT counters as of this commit (a JSON object, table name → next
/// value); parameters: index, term, node, membership JSON, counters JSON, then the index
/// the applier believes is stored (NULL for none). The update is conditional on the
/// previous index: when it changes no row, the position moved underneath (a COMMIT whose
/// answer was lost, a restored dump) and the group must not commit a second time.
pub const UPDATE_POSITION: &str = "UPDATE `_wolfscale` SET `applied_index` = ?, \
     `applied_term` = ?, `applied_node` = ?, `membership` = ?, `ddl_in_flight` = NULL, \
     `autoinc` = ? WHERE `id` = 1 AND `applied_index` <=> ?";

/// The AUTO_INCREMENT counters of the database now: table name, next value.
pub const SELECT_AUTOINC: &str = "SELECT `TABLE_NAME`, `AUTO_INCREMENT` \
     FROM `information_schema`.`TABLES` WHERE `TABLE_SCHEMA` = DATABASE() \
     AND `AUTO_INCREMENT` IS NOT NULL";

/// Sets `table`'s AUTO_INCREMENT counter to `next` (InnoDB takes it down to `next` as long
/// as no row holds a value at or above it).
pub fn set_autoinc(table: &str, next: u64) -> String {
    format!("ALTER TABLE {} AUTO_INCREMENT = {next}", quote_ident(table))
}

/// Marks the DDL entry at the given index as started (committed before the DDL runs).
pub const MARK_DDL_IN_FLIGHT: &str = "UPDATE `_wolfscale` SET `ddl_in_flight` = ? WHERE `id` = 1";

/// Starts an applier transaction.
pub const BEGIN: &str = "START TRANSACTION";
/// Starts a client read: a stored function called by a SELECT cannot write.
pub const BEGIN_READ_ONLY: &str = "START TRANSACTION READ ONLY";
/// Commits the current transaction.
pub const COMMIT: &str = "COMMIT";
/// Rolls the current transaction back.
pub const ROLLBACK: &str = "ROLLBACK";
/// The applier's own savepoint; client transactions may not use the name.
pub const SAVEPOINT_NAME: &str = "wolfscale_entry";
/// Marks the start of an all-or-nothing batch inside a group transaction.
pub const SAVEPOINT: &str = "SAVEPOINT `wolfscale_entry`";
/// Undoes a failed all-or-nothing batch, keeping the rest of the group.
pub const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT `wolfscale_entry`";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{statement_kind, StatementKind};

    #[test]
    fn database_name_is_quoted() {
        assert_eq!(
            create_database("my`app"),
            "CREATE DATABASE IF NOT EXISTS `my``app` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        );
    }

    #[test]
    fn statements_are_single_and_name_the_table() {
        for s in [
            CREATE_POSITION_TABLE,
            INSERT_POSITION_ROW,
            SELECT_POSITION,
            UPDATE_POSITION,
            MARK_DDL_IN_FLIGHT,
            ADD_AUTOINC_COLUMN,
        ] {
            assert!(s.contains(&quote_ident(POSITION_TABLE)), "{s}");
            assert!(statement_kind(s).is_ok(), "{s}");
        }
        assert_eq!(statement_kind(SELECT_POSITION), Ok(StatementKind::Read));
        assert_eq!(UPDATE_POSITION.matches('?').count(), 6);
        assert_eq!(MARK_DDL_IN_FLIGHT.matches('?').count(), 1);
        assert_eq!(statement_kind(SELECT_AUTOINC), Ok(StatementKind::Read));
    }

    #[test]
    fn counter_reset_quotes_the_table() {
        assert_eq!(
            set_autoinc("a`b", 42),
            "ALTER TABLE `a``b` AUTO_INCREMENT = 42"
        );
        assert!(statement_kind(&set_autoinc("t", 1)).is_ok());
    }
}
