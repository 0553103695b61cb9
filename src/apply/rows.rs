//! Runs of single-row inserts applied as multi-row INSERTs.
//!
//! Concurrent clients' inserts into one table share log entries (the leader batches
//! requests), and a follower catching up applies hundreds of entries in one group. Giving
//! MariaDB one statement per request costs a round trip and a statement's overhead per row;
//! one multi-row INSERT for a run of them costs one. The rows and every request's answer
//! must stay exactly what the single-row statements give, whatever run a node happened to
//! form (nodes group entries differently), so:
//! - a run is consecutive requests that each insert one row into the same table naming the
//!   same columns in the same order: `Command::Insert`, or a client's statement of the
//!   form `INSERT INTO t (…) VALUES (?, …)` alone in its request
//!   ([`sql::merge::single_row_insert`]), all of one kind;
//! - only into tables where one statement instead of many cannot show
//!   ([`sql::merge::SELECT_MERGEABLE_TABLES`]: no trigger, no generated column, no
//!   function default); a DATETIME or TIMESTAMP column whose default is the statement's
//!   time (`CURRENT_TIMESTAMP(n)`) and that the rows leave out is given explicitly, each
//!   row its own request's time, cut to the default's digits as MariaDB cuts it;
//! - when the table has an AUTO_INCREMENT column, either every row leaves it out (the rows
//!   take consecutive forced values, as their own statements would) or every row gives it
//!   as a positive integer (what MariaDB reports as that row's id); anything else (NULL
//!   or 0, which generate a value, or text) keeps the requests apart;
//! - a run's statement that fails changed nothing (InnoDB's statement rollback), and its
//!   requests are then applied one by one, each with its own error or result;
//! - runs are cut to power-of-two lengths so a table has few statement shapes to prepare,
//!   and kept within MariaDB's parameter limit and a bound on packet size.

use super::exec::Item;
use crate::command::{self, Command, Value};
use crate::sql::{self, merge::RowInsert};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::Arc;

/// Client statement texts remembered (text → its form); cleared when full.
const MAX_SHAPES: usize = 4096;

/// One request of a run.
pub(super) struct Row<'g> {
    pub(super) entry: &'g command::Entry,
    /// `Some(transaction)` for a client statement (answered as that request's batch or
    /// transaction), `None` for a structured insert.
    pub(super) client: Option<bool>,
    values: Vec<&'g Value>,
}

/// Requests to give one multi-row INSERT.
pub(super) struct Run<'g> {
    pub(super) table: String,
    pub(super) columns: Vec<String>,
    /// Columns the rows leave out whose default is the statement's time, and the
    /// fractional digits the default keeps: each row gets its own request's time.
    time: Vec<(String, u32)>,
    pub(super) rows: Vec<Row<'g>>,
}

impl Run<'_> {
    /// The multi-row statement, under the first request's timestamp (which cannot show:
    /// see the module docs).
    pub(super) fn statement(&self) -> sql::Statement {
        let columns: Vec<&str> = self
            .columns
            .iter()
            .chain(self.time.iter().map(|(c, _)| c))
            .map(String::as_str)
            .collect();
        let cells: Vec<&str> = std::iter::repeat_n("?", self.columns.len())
            .chain(std::iter::repeat_n(
                sql::merge::FROM_TIMESTAMP,
                self.time.len(),
            ))
            .collect();
        let mut params = Vec::with_capacity(self.rows.len() * columns.len());
        for row in &self.rows {
            params.extend(row.values.iter().map(|v| command::to_mysql(v)));
            params.extend(self.time.iter().map(|(_, digits)| {
                mysql_async::Value::Bytes(
                    sql::merge::timestamp_digits(row.entry.timestamp_us, *digits).into_bytes(),
                )
            }));
        }
        let timestamp = self.rows.first().map_or(0, |r| r.entry.timestamp_us);
        sql::stamped(
            sql::insert_rows(&self.table, &columns, &cells, self.rows.len(), params),
            timestamp,
        )
    }

    /// Each row's value of `column` when every row gives it as a positive integer.
    pub(super) fn explicit_ids(&self, column: &str) -> Option<Vec<u64>> {
        let at = self
            .columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(column))?;
        self.rows
            .iter()
            .map(|r| r.values.get(at).and_then(|v| positive(v)))
            .collect()
    }

    /// Whether the rows name `column`.
    pub(super) fn names(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c.eq_ignore_ascii_case(column))
    }
}

/// A value MariaDB stores in an integer column as that positive integer.
fn positive(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok().filter(|n| *n > 0),
        Value::UInt(n) => Some(*n).filter(|n| *n > 0),
        Value::Text(t)
            if !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()) =>
        {
            t.parse::<u64>().ok().filter(|n| *n > 0)
        }
        _ => None,
    }
}

/// Which tables may take multi-row INSERTs, read once per schema version, and the forms
/// of client statements seen.
#[derive(Debug, Default)]
pub(super) struct Mergeable {
    /// Table → its columns whose default is the statement's time (see [`Run`]).
    tables: Option<HashMap<String, Vec<(String, u32)>>>,
    shapes: HashMap<String, Option<Arc<RowInsert>>>,
    /// Items from the head of the current group not to merge again: a run that failed.
    skip_until: usize,
}

/// What a request inserts, when it is one row a run may take.
struct Key<'g> {
    entry: &'g command::Entry,
    table: &'g str,
    columns: Vec<&'g str>,
    client: Option<bool>,
    /// The client statement's text: a run's client statements are all the same text.
    text: Option<&'g str>,
    values: Vec<&'g Value>,
}

impl Mergeable {
    /// A schema change ran or the position was read again: read the tables again.
    pub(super) fn forget(&mut self) {
        self.tables = None;
    }

    /// A new group starts.
    pub(super) fn start_group(&mut self) {
        self.skip_until = 0;
    }

    /// The run's statement failed: apply the items before `end` (an index into the group)
    /// one by one.
    pub(super) fn failed(&mut self, end: usize) {
        self.skip_until = end;
    }

    /// The time-default columns of `table` when it may take multi-row INSERTs.
    async fn allows(
        &mut self,
        conn: &mut Conn,
        table: &str,
    ) -> Result<Option<&[(String, u32)]>, mysql_async::Error> {
        if self.tables.is_none() {
            let names: Vec<String> = conn.query(sql::merge::SELECT_MERGEABLE_TABLES).await?;
            let mut tables: HashMap<String, Vec<(String, u32)>> =
                names.into_iter().map(|n| (n, Vec::new())).collect();
            let time: Vec<(String, String, String)> =
                conn.query(sql::merge::SELECT_TIME_DEFAULTS).await?;
            for (table, column, default) in time {
                let digits = sql::merge::time_default_digits(&default);
                match (tables.get_mut(&table), digits) {
                    (Some(columns), Some(d)) => columns.push((column, d)),
                    // A default this build does not read keeps the table out.
                    (Some(_), None) => {
                        tables.remove(&table);
                    }
                    (None, _) => {}
                }
            }
            self.tables = Some(tables);
        }
        Ok(self
            .tables
            .as_ref()
            .and_then(|t| t.get(table))
            .map(Vec::as_slice))
    }

    fn shape(&mut self, text: &str) -> Option<Arc<RowInsert>> {
        if let Some(known) = self.shapes.get(text) {
            return known.clone();
        }
        if self.shapes.len() >= MAX_SHAPES {
            self.shapes.clear();
        }
        let shape = sql::merge::single_row_insert(text).map(Arc::new);
        self.shapes.insert(text.to_string(), shape.clone());
        shape
    }

    /// The row `item` inserts, if a run may take it.
    fn key<'g>(&mut self, item: &'g Item) -> Option<(Key<'g>, Option<Arc<RowInsert>>)> {
        let entry = item.request()?;
        match &entry.command {
            Command::Insert { table, values } => Some((
                Key {
                    entry,
                    table: table.as_str(),
                    columns: values.iter().map(|(c, _)| c.as_str()).collect(),
                    client: None,
                    text: None,
                    values: values.iter().map(|(_, v)| v).collect(),
                },
                None,
            )),
            Command::Sql {
                statements,
                transaction,
            } => {
                let [statement] = statements.as_slice() else {
                    return None;
                };
                let shape = self.shape(&statement.sql)?;
                if shape.columns.len() != statement.params.len() {
                    return None;
                }
                Some((
                    Key {
                        entry,
                        table: "",
                        columns: Vec::new(),
                        client: Some(*transaction),
                        text: Some(statement.sql.as_str()),
                        values: statement.params.iter().collect(),
                    },
                    Some(shape),
                ))
            }
            _ => None,
        }
    }

    /// The run to give one statement, starting at `group[at]`: at least two requests, or
    /// `None`.
    pub(super) async fn run_at<'g>(
        &mut self,
        conn: &mut Conn,
        group: &'g [Item],
        at: usize,
    ) -> Result<Option<Run<'g>>, mysql_async::Error> {
        if at < self.skip_until {
            return Ok(None);
        }
        let Some((first, shape)) = group.get(at).and_then(|i| self.key(i)) else {
            return Ok(None);
        };
        let (table, columns): (String, Vec<String>) = match &shape {
            Some(s) => (s.table.clone(), s.columns.clone()),
            None => (
                first.table.to_string(),
                first.columns.iter().map(|c| c.to_string()).collect(),
            ),
        };
        let Some(time) = self.allows(conn, &table).await? else {
            return Ok(None);
        };
        let time: Vec<(String, u32)> = time
            .iter()
            .filter(|(c, _)| !columns.iter().any(|n| n.eq_ignore_ascii_case(c)))
            .cloned()
            .collect();
        let width = (columns.len() + time.len()).max(1);
        // One parameter is the timestamp, one the forced id.
        let max_rows = ((sql::merge::MAX_PARAMS - 2) / width).max(1);
        let mut bytes = values_bytes(&first.values);
        let mut rows = Vec::new();
        let same = |k: &Key<'_>| {
            k.client.is_some() == first.client.is_some()
                && k.text == first.text
                && k.table == first.table
                && k.columns == first.columns
        };
        rows.push(Row {
            entry: first.entry,
            client: first.client,
            values: first.values.clone(),
        });
        for item in &group[at + 1..] {
            let Some((next, _)) = self.key(item).filter(|(k, _)| same(k)) else {
                break;
            };
            bytes += values_bytes(&next.values);
            if rows.len() == max_rows || bytes > sql::merge::MAX_BYTES {
                break;
            }
            rows.push(Row {
                entry: next.entry,
                client: next.client,
                values: next.values,
            });
        }
        let len = power_of_two_at_most(rows.len());
        if len < 2 {
            return Ok(None);
        }
        rows.truncate(len);
        Ok(Some(Run {
            table,
            columns,
            time,
            rows,
        }))
    }
}

/// Bytes the values bind, roughly.
fn values_bytes(values: &[&Value]) -> usize {
    values
        .iter()
        .map(|v| match v {
            Value::Number(t) | Value::Text(t) => t.len() + 4,
            Value::Bytes(b) => b.len() + 4,
            _ => 9,
        })
        .sum()
}

/// The largest power of two not above `n` (0 for 0).
fn power_of_two_at_most(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_cut_to_powers_of_two() {
        let cuts: Vec<usize> = [0, 1, 2, 3, 4, 5, 7, 8, 9, 511, 512, 1000, 1024]
            .into_iter()
            .map(power_of_two_at_most)
            .collect();
        assert_eq!(cuts, [0, 1, 2, 2, 4, 4, 4, 8, 8, 256, 512, 512, 1024]);
    }

    #[test]
    fn explicit_ids_are_positive_integers_only() {
        assert_eq!(positive(&Value::Int(5)), Some(5));
        assert_eq!(positive(&Value::UInt(7)), Some(7));
        assert_eq!(positive(&Value::Text("0042".into())), Some(42));
        for not in [
            Value::Int(0),
            Value::Int(-3),
            Value::Null,
            Value::Text(String::new()),
            Value::Text("4a".into()),
            Value::Text("+4".into()),
            Value::Number("4.5".into()),
            Value::Bytes(b"4".to_vec()),
        ] {
            assert_eq!(positive(&not), None, "{not:?}");
        }
    }
}
