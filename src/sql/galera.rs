//! Galera's own limits on replicated schema changes, checked at admission when the leader
//! applies into a node of a Galera cluster (`database.galera`): every table has a primary
//! key, and no schema change removes one. MariaDB Galera Cluster's "known limitations"
//! list more, and the rest is already refused for every cluster by [`super::check`]:
//! engines other than InnoDB, `LOCK TABLES` / `UNLOCK TABLES` / `FLUSH`, `GET_LOCK()` and
//! the other lock functions, XA transactions, `LOAD DATA`. What admission cannot see
//! (write-set size limits, tables made outside WolfScale) is not checked here.

use super::check::{creates_program, parser_text, single, SqlError};
use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement, TableConstraint};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// Whether the server is a node of a Galera cluster: `1` (ON) or `0`.
pub const WSREP_ON: &str = "SELECT @@GLOBAL.wsrep_on";

const NEEDS_KEY: &str = "Galera needs a primary key on every table: it cannot replicate a DELETE on a table without one, and such a table's rows can differ in order between its nodes; declare a PRIMARY KEY (several columns are fine)";

/// Checks a schema change that [`super::check_ddl`] accepted against Galera's rules.
///
/// # Errors
/// [`SqlError::Galera`] naming the rule; a lexing error for text `check_ddl` would refuse.
pub fn check_galera_ddl(sql: &str) -> Result<(), SqlError> {
    let (text, toks) = single(sql)?;
    // Stored programs hold only statements admitted as writes or reads.
    if creates_program(text, &toks) {
        return Ok(());
    }
    // `check_ddl` parsed the same text; what the parser cannot read is refused there.
    let Ok(mut list) = Parser::parse_sql(&MySqlDialect {}, &parser_text(text, &toks)) else {
        return Ok(());
    };
    match list.pop() {
        Some(Statement::CreateTable(create)) => {
            // LIKE copies the source's keys; CREATE … SELECT is refused for everyone.
            if create.like.is_some() || create.clone.is_some() {
                return Ok(());
            }
            let in_column = create.columns.iter().any(|c| {
                c.options
                    .iter()
                    .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
            });
            let in_table = create.constraints.iter().any(is_primary_key);
            if in_column || in_table {
                Ok(())
            } else {
                Err(refused("CREATE TABLE without a PRIMARY KEY"))
            }
        }
        Some(Statement::AlterTable(alter)) => {
            let drops = alter.operations.iter().any(|op| match op {
                AlterTableOperation::DropPrimaryKey { .. } => true,
                AlterTableOperation::DropIndex { name }
                | AlterTableOperation::DropConstraint { name, .. } => {
                    name.value.eq_ignore_ascii_case("PRIMARY")
                }
                _ => false,
            });
            // `DROP PRIMARY KEY, ADD PRIMARY KEY (…)` replaces the key in one statement.
            let adds = alter.operations.iter().any(|op| {
                matches!(op, AlterTableOperation::AddConstraint { constraint, .. } if is_primary_key(constraint))
            });
            if drops && !adds {
                Err(refused("ALTER TABLE … DROP PRIMARY KEY"))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn is_primary_key(c: &TableConstraint) -> bool {
    matches!(
        c,
        TableConstraint::PrimaryKey(_) | TableConstraint::PrimaryKeyUsingIndex(_)
    )
}

fn refused(construct: &'static str) -> SqlError {
    SqlError::Galera {
        construct,
        reason: NEEDS_KEY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{check_ddl, check_write};

    /// The code a schema change gets from `check_ddl` and then the Galera rules.
    fn galera(sql: &str) -> &'static str {
        match check_ddl(sql).and_then(check_galera_ddl) {
            Ok(()) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn create_table_needs_a_primary_key() {
        for sql in [
            "CREATE TABLE t (id INT, v TEXT)",
            "CREATE TABLE t (id INT NOT NULL UNIQUE, v TEXT)",
            "CREATE TABLE t (id INT UNIQUE KEY, v TEXT)",
            "CREATE TABLE IF NOT EXISTS t (id INT, UNIQUE KEY u (id)) ENGINE=InnoDB",
            "CREATE OR REPLACE TABLE t (a INT, b INT, KEY (a))",
        ] {
            assert_eq!(galera(sql), "galera_unsupported", "{sql}");
            // Without Galera the same statement is admitted.
            assert!(check_ddl(sql).is_ok(), "{sql}");
        }
        let e = check_galera_ddl("CREATE TABLE t (id INT)").unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("CREATE TABLE without a PRIMARY KEY") && message.contains("Galera"),
            "{message}"
        );
    }

    #[test]
    fn create_table_with_a_primary_key_passes() {
        for sql in [
            "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
            // In a column definition, KEY alone means PRIMARY KEY.
            "CREATE TABLE t (id INT KEY, v TEXT)",
            "CREATE TABLE t (id INT NOT NULL, PRIMARY KEY USING BTREE (id))",
            "CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT, v TEXT, PRIMARY KEY (id))",
            "CREATE TABLE t (a INT, b INT, CONSTRAINT pk PRIMARY KEY (a, b)) ENGINE=InnoDB",
            "CREATE TABLE `quoted` (`id` INT NOT NULL, PRIMARY KEY (`id`));",
            "CREATE TABLE t2 LIKE t",
            "CREATE INDEX i ON t (v)",
            "DROP TABLE t",
            "TRUNCATE TABLE t",
            "ALTER TABLE t ADD COLUMN w INT",
            "CREATE VIEW v AS SELECT id FROM t",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = 'x'",
        ] {
            assert_eq!(galera(sql), "ok", "{sql}");
        }
    }

    #[test]
    fn dropping_the_primary_key_is_refused() {
        for sql in [
            "ALTER TABLE t DROP PRIMARY KEY",
            "ALTER TABLE t ADD COLUMN w INT, DROP PRIMARY KEY",
            "ALTER TABLE t DROP INDEX `PRIMARY`",
            "ALTER TABLE t DROP CONSTRAINT `PRIMARY`",
        ] {
            assert_eq!(galera(sql), "galera_unsupported", "{sql}");
        }
        assert_eq!(
            galera("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, v)"),
            "ok"
        );
        assert_eq!(galera("ALTER TABLE t DROP INDEX i"), "ok");
    }

    /// Galera's other documented limits are refused for every cluster already; these
    /// guard that they stay refused.
    #[test]
    fn galera_limits_refused_for_everyone() {
        for sql in [
            "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=MyISAM",
            "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=Aria",
        ] {
            assert_eq!(
                check_ddl(sql).unwrap_err().code(),
                "not_replicable",
                "{sql}"
            );
        }
        for sql in [
            // The parser cannot read ALTER TABLE … ENGINE: refused as unsupported_sql.
            "ALTER TABLE t ENGINE=MyISAM",
            "LOCK TABLES t WRITE",
            "UNLOCK TABLES",
            "FLUSH TABLES t WITH READ LOCK",
            "XA START 'x'",
        ] {
            assert!(check_ddl(sql).is_err(), "{sql}");
            assert!(check_write(sql, 0).is_err(), "{sql}");
        }
        for sql in [
            "INSERT INTO t (id, n) VALUES (1, GET_LOCK('x', 1))",
            "UPDATE t SET n = RELEASE_LOCK('x') WHERE id = 1",
            "UPDATE t SET n = IS_USED_LOCK('x') WHERE id = 1",
            "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
        ] {
            assert!(check_write(sql, 0).is_err(), "{sql}");
        }
    }
}
