//! Helpers shared by the applier scenarios: a `[database]` config pointing at a private
//! server, and synthetic openraft entries carrying commands.

use std::time::Duration;

use wolfscale::apply::{Backoff, MariaDbApplier, Outcome};
use wolfscale::command::{self, Command, Ident, SqlStatement, Value};
use wolfscale::config::DatabaseConfig;
use wolfscale::consensus::{Entry, Request, Requests};

use crate::support::MariaDb;

/// A leader timestamp (2024-11-26 04:44:26.123456 UTC).
pub const TS: u64 = 1_732_596_266_123_456;

/// `[database]` for root on a private server.
pub fn config(db: &MariaDb, database: &str) -> DatabaseConfig {
    DatabaseConfig {
        host: db.host().to_string(),
        port: db.port(),
        user: "root".into(),
        password: None,
        password_file: None,
        database: database.into(),
        pool_size: 4,
        connect_timeout_ms: 5000,
        galera: Default::default(),
    }
}

/// An applier on `database` of `db`, retrying quickly.
pub async fn applier(db: &MariaDb, database: &str) -> anyhow::Result<MariaDbApplier> {
    let mut a = MariaDbApplier::connect(&config(db, database), None).await?;
    a.set_backoff(Backoff {
        min: Duration::from_millis(20),
        max: Duration::from_millis(200),
    });
    Ok(a)
}

/// A normal entry at `index` (term 1, leader 1).
pub fn entry(index: u64, e: &command::Entry) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(Requests::one(Request {
            payload: e.encode(),
        })),
    }
}

/// A blank (leader change) entry at `index`.
pub fn blank(index: u64) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Blank,
    }
}

/// Numbers `commands` from `first` on.
pub fn entries(first: u64, commands: &[command::Entry]) -> Vec<Entry> {
    commands
        .iter()
        .enumerate()
        .map(|(i, c)| entry(first + i as u64, c))
        .collect()
}

pub fn ident(name: &str) -> Ident {
    Ident::column(name).expect("test identifier is valid")
}

pub fn ddl(ts: u64, statement: &str) -> command::Entry {
    command::Entry {
        timestamp_us: ts,
        ids: vec![],
        command: Command::Ddl {
            statement: statement.into(),
        },
    }
}

pub fn insert(ts: u64, table: &str, values: &[(&str, Value)], ids: Vec<u64>) -> command::Entry {
    command::Entry {
        timestamp_us: ts,
        ids,
        command: Command::Insert {
            table: Ident::table(table).expect("test table name is valid"),
            values: values.iter().map(|(c, v)| (ident(c), v.clone())).collect(),
        },
    }
}

pub fn sql(ts: u64, statements: &[(&str, Vec<Value>)], transaction: bool) -> command::Entry {
    command::Entry {
        timestamp_us: ts,
        ids: vec![],
        command: Command::Sql {
            statements: statements
                .iter()
                .map(|(s, p)| SqlStatement {
                    sql: s.to_string(),
                    params: p.clone(),
                })
                .collect(),
            transaction,
        },
    }
}

/// Applies and returns the outcomes.
pub async fn apply(a: &mut MariaDbApplier, entries: Vec<Entry>) -> anyhow::Result<Vec<Outcome>> {
    Ok(a.apply_entries(entries).await?)
}

/// The failure code of an outcome, if it failed.
pub fn failed_code(o: &Outcome) -> Option<u16> {
    match o {
        Outcome::Failed { failure, .. } => Some(failure.code),
        _ => None,
    }
}
