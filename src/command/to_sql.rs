//! The statements every node runs for a [`Command`]: its names and values bound to the
//! parameterised statements [`crate::sql`] builds. No SQL text is made here; a client's
//! own statements are passed on as written.

use super::{Column, Command, Value};
use crate::sql::{self, Binding, Statement};

/// The parameter for a command value.
pub fn to_mysql(value: &Value) -> mysql_async::Value {
    match value {
        Value::Null => mysql_async::Value::NULL,
        Value::Bool(b) => mysql_async::Value::Int(i64::from(*b)),
        Value::Int(n) => mysql_async::Value::Int(*n),
        Value::UInt(n) => mysql_async::Value::UInt(*n),
        // Sent as text: MariaDB converts decimal text to the column's type exactly.
        Value::Number(t) | Value::Text(t) => mysql_async::Value::Bytes(t.as_bytes().to_vec()),
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
    }
}

/// The statements of a command that binds the leader's timestamp into each statement
/// ([`sql::stamped`]): the single statement of `Insert`, `Update` or `Delete`. `None` for
/// DDL and client SQL batches, which run after a session [`sql::set_timestamp`] instead
/// (client SQL is run as written, and DDL is not prepared).
pub fn stamped_statements(command: &Command, timestamp_us: u64) -> Option<Vec<Statement>> {
    match command {
        Command::Insert { .. } | Command::Update { .. } | Command::Delete { .. } => Some(
            statements(command)
                .into_iter()
                .map(|s| sql::stamped(s, timestamp_us))
                .collect(),
        ),
        Command::Ddl { .. }
        | Command::Sql { .. }
        | Command::CheckBarrier { .. }
        | Command::Outcomes { .. }
        | Command::Certified { .. } => None,
    }
}

/// The statements every node runs for `command`, in order.
pub fn statements(command: &Command) -> Vec<Statement> {
    match command {
        Command::Insert { table, values } => vec![sql::insert(table.as_str(), bind(values))],
        Command::Update {
            table,
            set,
            where_key,
        } => vec![sql::update(table.as_str(), bind(set), bind(where_key))],
        Command::Delete { table, where_key } => {
            vec![sql::delete(table.as_str(), bind(where_key))]
        }
        Command::Ddl { statement } => vec![Statement {
            sql: statement.clone(),
            params: Vec::new(),
        }],
        Command::Sql { statements, .. } => statements
            .iter()
            .map(|s| client_statement(&s.sql, &s.params))
            .collect(),
        // A barrier runs nothing; the applier takes its snapshot after the commit.
        Command::CheckBarrier { .. } => Vec::new(),
        // Bookkeeping of the applier: no SQL.
        Command::Outcomes { .. } => Vec::new(),
        Command::Certified { steps, .. } => steps
            .iter()
            .map(|s| client_statement(&s.sql, &s.params))
            .collect(),
    }
}

/// A client's statement as written, with its parameters bound.
pub fn client_statement(sql: &str, params: &[Value]) -> Statement {
    Statement {
        sql: sql.to_string(),
        params: params.iter().map(to_mysql).collect(),
    }
}

fn bind(columns: &[Column]) -> Vec<Binding<'_>> {
    columns
        .iter()
        .map(|(c, v)| (c.as_str(), to_mysql(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{strategies, Ident, SqlStatement};
    use proptest::prelude::*;

    fn cols(pairs: &[(&str, Value)]) -> Vec<Column> {
        pairs
            .iter()
            .map(|(n, v)| (Ident::column(n).expect("valid"), v.clone()))
            .collect()
    }

    #[test]
    fn row_commands_bind_names_and_values() {
        let table = Ident::table("users").expect("valid");
        let st = statements(&Command::Update {
            table: table.clone(),
            set: cols(&[("name", Value::Text("Bob".into())), ("n", Value::Null)]),
            where_key: cols(&[("id", Value::Int(1)), ("deleted", Value::Null)]),
        });
        assert_eq!(
            st[0].sql,
            "UPDATE `users` SET `name`=?,`n`=? WHERE `id`=? AND `deleted` IS NULL"
        );
        assert_eq!(
            st[0].params,
            [
                mysql_async::Value::Bytes(b"Bob".to_vec()),
                mysql_async::Value::NULL,
                mysql_async::Value::Int(1)
            ]
        );
        let st = statements(&Command::Insert {
            table: table.clone(),
            values: cols(&[("na`me", Value::Text("Alice".into()))]),
        });
        assert_eq!(st[0].sql, "INSERT INTO `users` (`na``me`) VALUES (?)");
        let st = statements(&Command::Delete {
            table,
            where_key: cols(&[("id", Value::UInt(u64::MAX))]),
        });
        assert_eq!(st[0].sql, "DELETE FROM `users` WHERE `id`=?");
        assert_eq!(st[0].params, [mysql_async::Value::UInt(u64::MAX)]);
    }

    #[test]
    fn command_statements() {
        let ddl = Command::Ddl {
            statement: "DROP TABLE t".into(),
        };
        assert_eq!(
            statements(&ddl),
            [Statement {
                sql: "DROP TABLE t".into(),
                params: vec![]
            }]
        );
        let batch = Command::Sql {
            statements: vec![
                SqlStatement {
                    sql: "INSERT INTO t (a) VALUES (?)".into(),
                    params: vec![Value::Bool(true)],
                },
                SqlStatement {
                    sql: "DELETE FROM t WHERE a = 0".into(),
                    params: vec![],
                },
            ],
            transaction: true,
        };
        let st = statements(&batch);
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].params, [mysql_async::Value::Int(1)]);
        assert_eq!(st[1].params(), mysql_async::Params::Empty);
        assert_eq!(
            st[0].params(),
            mysql_async::Params::Positional(vec![mysql_async::Value::Int(1)])
        );
    }

    #[test]
    fn values_map_exactly() {
        assert_eq!(
            to_mysql(&Value::Int(i64::MIN)),
            mysql_async::Value::Int(i64::MIN)
        );
        assert_eq!(
            to_mysql(&Value::UInt(18446744073709551615)),
            mysql_async::Value::UInt(u64::MAX)
        );
        assert_eq!(
            to_mysql(&Value::Number("123456789012345678901234567890".into())),
            mysql_async::Value::Bytes(b"123456789012345678901234567890".to_vec())
        );
        assert_eq!(to_mysql(&Value::Bool(false)), mysql_async::Value::Int(0));
        assert_eq!(
            to_mysql(&Value::Bytes(vec![0, 255, b'\''])),
            mysql_async::Value::Bytes(vec![0, 255, b'\''])
        );
        assert_eq!(
            to_mysql(&Value::Text("a\0'\\".into())),
            mysql_async::Value::Bytes(b"a\0'\\".to_vec())
        );
        assert_eq!(to_mysql(&Value::Null), mysql_async::Value::NULL);
    }

    #[test]
    fn stamped_statements_bind_the_timestamp_first() {
        let table = Ident::table("t").expect("valid");
        let insert = Command::Insert {
            table: table.clone(),
            values: cols(&[("a", Value::Int(7))]),
        };
        let st = stamped_statements(&insert, 1_732_596_266_123_456).expect("insert is stamped");
        assert_eq!(st.len(), 1);
        assert_eq!(
            st[0].sql,
            "SET STATEMENT timestamp = CAST(? AS DECIMAL(20,6)) FOR INSERT INTO `t` (`a`) VALUES (?)"
        );
        assert_eq!(
            st[0].params,
            vec![
                mysql_async::Value::Bytes(b"1732596266.123456".to_vec()),
                mysql_async::Value::Int(7)
            ]
        );
        let key = cols(&[("id", Value::Int(1))]);
        for c in [
            Command::Update {
                table: table.clone(),
                set: cols(&[("a", Value::Null)]),
                where_key: key.clone(),
            },
            Command::Delete {
                table: table.clone(),
                where_key: key,
            },
        ] {
            let st = stamped_statements(&c, 9).expect("stamped");
            assert!(st[0]
                .sql
                .starts_with("SET STATEMENT timestamp = CAST(? AS DECIMAL(20,6)) FOR "));
            assert_eq!(st[0].sql.matches('?').count(), st[0].params.len());
        }
        for unstamped in [
            Command::Ddl {
                statement: "CREATE TABLE x (a INT)".into(),
            },
            Command::Sql {
                statements: vec![],
                transaction: true,
            },
            Command::CheckBarrier { id: 1 },
        ] {
            assert!(stamped_statements(&unstamped, 1).is_none(), "{unstamped:?}");
        }
    }

    proptest! {
        #[test]
        fn a_row_command_binds_one_parameter_per_marker(cmd in strategies::command()) {
            if matches!(cmd, Command::Insert { .. } | Command::Update { .. } | Command::Delete { .. }) {
                let st = statements(&cmd);
                prop_assert_eq!(st.len(), 1);
                let marks = crate::sql::placeholders(&st[0].sql).expect("generated SQL lexes");
                prop_assert_eq!(marks, st[0].params.len());
                let (values, key): (&[Column], &[Column]) = match &cmd {
                    Command::Insert { values, .. } => (values, &[]),
                    Command::Update { set, where_key, .. } => (set, where_key),
                    Command::Delete { where_key, .. } => (&[], where_key),
                    _ => unreachable!("only row commands reach here"),
                };
                // Every value in order, but a NULL key, which becomes `IS NULL` in the text.
                let expected: Vec<mysql_async::Value> = values
                    .iter()
                    .chain(key.iter().filter(|(_, v)| *v != Value::Null))
                    .map(|(_, v)| to_mysql(v))
                    .collect();
                prop_assert_eq!(&st[0].params, &expected);
            }
        }
    }
}
