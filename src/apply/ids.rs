//! AUTO_INCREMENT values as replicated state: the applier forces every value a statement
//! generates (`SET insert_id`) from a counter of its own instead of letting each server's
//! InnoDB choose.
//!
//! InnoDB's counter is a property of one server that never goes back. An interactive
//! transaction the MySQL front end runs on its node (see `apply::tentative`) takes values
//! from that node's counter and rolls back; a retried apply attempt does the same. If the
//! applier then let InnoDB choose, that node would store other ids than the rest of the
//! cluster. So the counters live here, are changed only by what entries do — alike on
//! every node — and are committed with the applied position (`_wolfscale.autoinc`).
//!
//! Rules, the same on every node:
//! - Before an INSERT or REPLACE into a table with an AUTO_INCREMENT column, the next
//!   value is forced; a table without a recorded counter starts after its largest value.
//! - After a plain insert that leaves the column out, the counter moves past the rows it
//!   reported; after any other statement into the table (explicit ids, IGNORE, ON
//!   DUPLICATE KEY UPDATE, REPLACE, INSERT … SELECT, or a value other than the forced
//!   one) it moves past the table's largest value, so an explicit id is never handed out
//!   again — as InnoDB does.
//! - DELETE never moves a counter back (InnoDB's persistent counter does not either).
//! - A schema change that creates, drops, truncates or sets `AUTO_INCREMENT =` a table
//!   takes the table's counter from InnoDB right after it (no interactive transaction can
//!   have taken a value in between: the change runs under the DDL gate with the node's
//!   open transactions rolled back); a rename moves the counter with the table.

use super::counters::Counters;
use crate::sql::autoinc::{self, InsertTarget};
use crate::sql::session;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::Arc;

/// Most statement shapes remembered (statement text → target); cleared when full.
const MAX_SHAPES: usize = 4096;

/// A value to force for the statement about to run.
#[derive(Debug, Clone)]
pub(super) struct Forced {
    target: Arc<InsertTarget>,
    column: String,
    value: u64,
    /// Forced with the session's `SET insert_id` (which outlives the statement) rather
    /// than inside the statement ([`sql::with_insert_id`](crate::sql::with_insert_id)).
    session: bool,
}

impl Forced {
    /// The value the statement's first generated id must take.
    pub(super) fn value(&self) -> u64 {
        self.value
    }

    /// Forces the value for the next statement on the session instead: for a statement
    /// that cannot carry it itself.
    pub(super) async fn on_session(&mut self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        conn.exec_drop(session::SET_INSERT_ID, (self.value,))
            .await?;
        self.session = true;
        Ok(())
    }
}

/// The applier's AUTO_INCREMENT counters (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Ids {
    /// Table → next value, including this group's statements.
    next: Counters,
    /// As of the last commit.
    committed: Counters,
    /// Table → its AUTO_INCREMENT column; `None` until read (again after DDL).
    columns: Option<HashMap<String, String>>,
    shapes: HashMap<String, Option<Arc<InsertTarget>>>,
}

impl Ids {
    /// Starts from the counters stored with the applied position.
    pub(super) fn load(&mut self, stored: Counters) {
        self.committed = stored.clone();
        self.next = stored;
        self.columns = None;
    }

    /// The counters to store with the position being committed, as JSON.
    pub(super) fn json(&self) -> String {
        serde_json::to_string(&self.next).unwrap_or_else(|_| "{}".to_string())
    }

    /// The group committed: its counters are the stored ones now.
    pub(super) fn commit(&mut self) {
        self.committed.clone_from(&self.next);
    }

    /// The group was rolled back: forget what it moved.
    pub(super) fn rollback(&mut self) {
        self.next.clone_from(&self.committed);
        self.columns = None;
    }

    fn shape(&mut self, sql: &str) -> Option<Arc<InsertTarget>> {
        if !autoinc::may_insert(sql) {
            return None;
        }
        if let Some(known) = self.shapes.get(sql) {
            return known.clone();
        }
        if self.shapes.len() >= MAX_SHAPES {
            self.shapes.clear();
        }
        let target = autoinc::insert_target(sql).map(Arc::new);
        self.shapes.insert(sql.to_string(), target.clone());
        target
    }

    async fn column_of(
        &mut self,
        conn: &mut Conn,
        table: &str,
    ) -> Result<Option<String>, mysql_async::Error> {
        if self.columns.is_none() {
            let rows: Vec<(String, String)> = conn.query(autoinc::SELECT_AUTOINC_COLUMNS).await?;
            self.columns = Some(rows.into_iter().collect());
        }
        Ok(self.columns.as_ref().and_then(|c| c.get(table).cloned()))
    }

    async fn after_max(
        conn: &mut Conn,
        table: &str,
        column: &str,
    ) -> Result<u64, mysql_async::Error> {
        let next: Option<u64> = conn
            .query_first(autoinc::next_after_max(table, column))
            .await?;
        Ok(next.unwrap_or(1))
    }

    /// The AUTO_INCREMENT column of `table`, if it has one.
    pub(super) async fn auto_column(
        &mut self,
        conn: &mut Conn,
        table: &str,
    ) -> Result<Option<String>, mysql_async::Error> {
        self.column_of(conn, table).await
    }

    /// The value `sql` must generate first, when it inserts into a table with an
    /// AUTO_INCREMENT column: the caller forces it (in the statement, or with
    /// [`Forced::on_session`]) and passes it to [`Ids::after`].
    pub(super) async fn before(
        &mut self,
        conn: &mut Conn,
        sql: &str,
    ) -> Result<Option<Forced>, mysql_async::Error> {
        let Some(target) = self.shape(sql) else {
            return Ok(None);
        };
        let Some(column) = self.column_of(conn, &target.table).await? else {
            return Ok(None);
        };
        let value = match self.next.get(&target.table) {
            Some(&v) => v,
            None => Self::after_max(conn, &target.table, &column).await?,
        };
        Ok(Some(Forced {
            target,
            column,
            value,
            session: false,
        }))
    }

    /// Moves the counter past what the statement did: `done` is its affected rows and
    /// generated id when it succeeded, `None` when it failed (the forced value is
    /// cleared so it cannot reach another statement).
    pub(super) async fn after(
        &mut self,
        conn: &mut Conn,
        forced: Forced,
        done: Option<(u64, Option<u64>)>,
    ) -> Result<(), mysql_async::Error> {
        let Some((affected, last_id)) = done else {
            if forced.session {
                conn.exec_drop(session::SET_INSERT_ID, (0u64,)).await?;
            }
            return Ok(());
        };
        let table = forced.target.table.clone();
        let next = if forced.target.generates_all(&forced.column) && last_id == Some(forced.value) {
            forced.value.saturating_add(affected)
        } else {
            // A session value may not have been used: clear it.
            if forced.session && last_id != Some(forced.value) {
                conn.exec_drop(session::SET_INSERT_ID, (0u64,)).await?;
            }
            let seen = Self::after_max(conn, &table, &forced.column).await?;
            seen.max(forced.value)
        };
        let entry = self.next.entry(table).or_insert(next);
        *entry = (*entry).max(next);
        Ok(())
    }

    /// After an interactive transaction replayed (committed or not): every table one of
    /// its statements inserts into keeps its counter past its largest value.
    pub(super) async fn after_statements<'a>(
        &mut self,
        conn: &mut Conn,
        sqls: impl Iterator<Item = &'a str>,
    ) -> Result<(), mysql_async::Error> {
        let mut tables: Vec<String> = sqls
            .filter_map(|s| self.shape(s))
            .map(|t| t.table.clone())
            .collect();
        tables.sort();
        tables.dedup();
        for table in tables {
            let Some(column) = self.column_of(conn, &table).await? else {
                continue;
            };
            let seen = Self::after_max(conn, &table, &column).await?;
            let entry = self.next.entry(table).or_insert(seen);
            *entry = (*entry).max(seen);
        }
        Ok(())
    }

    /// After a schema change `ddl` ran: counters of tables it created, dropped, truncated
    /// or reset start from InnoDB's value; renamed tables keep theirs.
    pub(super) async fn after_ddl(
        &mut self,
        conn: &mut Conn,
        ddl: &str,
    ) -> Result<(), mysql_async::Error> {
        self.columns = None;
        self.shapes.clear();
        let change = autoinc::ddl_counters(ddl);
        for (old, new) in change.renamed {
            if let Some(v) = self.next.remove(&old) {
                self.next.insert(new, v);
            }
        }
        for table in change.fresh {
            let now: Option<u64> = conn
                .exec_first(autoinc::SELECT_TABLE_AUTOINC, (table.as_str(),))
                .await?;
            match now {
                Some(v) => self.next.insert(table, v),
                None => self.next.remove(&table),
            };
        }
        Ok(())
    }
}
