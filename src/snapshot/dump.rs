//! Taking a snapshot: one consistent read view of the replicated database, written as a
//! snapshot file while the applier keeps applying.
//!
//! Under the applier's DDL gate (so no DDL entry runs meanwhile) the dump opens
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT`, reads `_wolfscale`'s position in that
//! view, reads every definition (`SHOW CREATE …`) and opens every table once, which holds
//! its metadata lock until the dump ends: a later DDL entry waits for the dump instead of
//! changing a table under the read view. Then the gate is released and rows are read in
//! primary-key order, in the same view, while writes continue. Rows stream through a
//! bounded channel to a blocking writer thread that compresses and checksums them: the
//! database is never held in memory.

use super::format::{
    encode_item, Cell, Footer, FormatError, Header, Item, ObjectDef, Position, SequenceDef,
    TableCount, TableDef, Writer, Written, VERSION,
};
use super::{Database, Error};
use crate::sql::{position, snapshot as q};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use std::io::BufWriter;
use tokio::sync::mpsc;

/// Encoded items are handed to the writer thread in pieces of about this size.
const SEND_BYTES: usize = 256 * 1024;

/// What a dump wrote.
#[derive(Debug)]
pub(super) struct Dumped {
    pub(super) header: Header,
    pub(super) footer: Footer,
    pub(super) written: Written,
}

enum Chunk {
    Items(Vec<u8>),
    Finish(Footer),
}

/// Writes a consistent copy of `db` into `file` (fsync'd when this returns).
pub(super) async fn dump(db: &Database, file: std::fs::File) -> Result<Dumped, Error> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(8);
    let writer = tokio::task::spawn_blocking(move || -> Result<Written, FormatError> {
        let mut w = Writer::new(BufWriter::with_capacity(1 << 20, file))?;
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Chunk::Items(bytes) => w.push_encoded(&bytes)?,
                Chunk::Finish(footer) => {
                    let (out, written) = w.finish(&footer)?;
                    let file = out.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    return Ok(written);
                }
            }
        }
        Err(FormatError::Io(std::io::Error::other(
            "the dump stopped before its footer",
        )))
    });
    match produce(db, &tx).await {
        Ok((header, footer)) => {
            let sent = tx.send(Chunk::Finish(footer.clone())).await.is_ok();
            drop(tx);
            let written = writer
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
            if !sent {
                return Err(Error::Io(std::io::Error::other("snapshot writer stopped")));
            }
            Ok(Dumped {
                header,
                footer,
                written,
            })
        }
        Err(e) => {
            drop(tx);
            // The writer's own error (say, a full disk) is the cause when it stopped first.
            match writer.await {
                Ok(Err(w)) => Err(Error::Format(w)),
                _ => Err(e),
            }
        }
    }
}

/// Batches encoded items for the writer thread.
struct Out<'a> {
    tx: &'a mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl Out<'_> {
    async fn item(&mut self, item: &Item) -> Result<(), Error> {
        encode_item(item, &mut self.buf)?;
        if self.buf.len() >= SEND_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(SEND_BYTES + 4096));
        self.tx
            .send(Chunk::Items(bytes))
            .await
            .map_err(|_| Error::Io(std::io::Error::other("snapshot writer stopped")))
    }
}

async fn produce(db: &Database, tx: &mpsc::Sender<Chunk>) -> Result<(Header, Footer), Error> {
    let mut conn = db.connect().await?;
    let r = produce_on(&mut conn, db, tx).await;
    if r.is_ok() {
        // A failed goodbye on a finished read changes nothing.
        let _ = conn.disconnect().await;
    }
    r
}

/// Everything the replicated database defines, read under the DDL gate.
struct Catalogue {
    tables: Vec<(TableDef, Vec<String>)>,
    sequences: Vec<(String, String)>,
    views: Vec<ObjectDef>,
    routines: Vec<ObjectDef>,
    triggers: Vec<ObjectDef>,
}

type PositionRow = (
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<String>,
    Option<u64>,
    Option<String>,
);

async fn produce_on(
    conn: &mut Conn,
    db: &Database,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(Header, Footer), Error> {
    conn.query_drop(q::REPEATABLE_READ).await?;
    conn.query_drop(q::PATIENT_SESSION).await?;
    let (version, pos, cat) = {
        let _gate = db.ddl_gate.read().await;
        conn.query_drop(q::START_CONSISTENT).await?;
        let version: Option<String> = conn.query_first(q::SELECT_VERSION).await?;
        let pos: Option<PositionRow> = conn.query_first(position::SELECT_POSITION).await?;
        let cat = catalogue(conn).await?;
        (version, pos, cat)
    };
    let (index, term, node, membership, ddl, autoinc) = pos.ok_or_else(|| {
        Error::Invalid("`_wolfscale` has no position row; has the applier started?".into())
    })?;
    let applied = match (index, term, node) {
        (Some(index), Some(term), Some(node)) => Some(Position { index, term, node }),
        (None, _, _) => None,
        _ => {
            return Err(Error::Invalid(
                "`_wolfscale` holds an incomplete position".into(),
            ))
        }
    };
    let header = Header {
        version: VERSION,
        database: db.name.clone(),
        applied,
        membership_json: membership.unwrap_or_default(),
        ddl_in_flight: ddl,
        autoinc_json: autoinc,
        created_ms: super::now_ms(),
        server_version: version.unwrap_or_default(),
    };
    let mut out = Out {
        tx,
        buf: Vec::with_capacity(SEND_BYTES + 4096),
    };
    out.item(&Item::Header(header.clone())).await?;
    let mut footer = Footer::default();
    for (def, key) in cat.tables {
        let rows = copy_rows(conn, &mut out, def, &key).await?;
        footer.rows += rows.rows;
        footer.tables.push(rows);
    }
    for (name, create) in cat.sequences {
        let next: Option<i64> = conn.query_first(q::select_sequence_next(&name)).await?;
        out.item(&Item::Sequence(SequenceDef {
            name,
            create,
            next: next.unwrap_or(1),
        }))
        .await?;
        footer.sequences += 1;
    }
    for v in cat.views {
        out.item(&Item::View(v)).await?;
        footer.views += 1;
    }
    for r in cat.routines {
        out.item(&Item::Routine(r)).await?;
        footer.routines += 1;
    }
    for t in cat.triggers {
        out.item(&Item::Trigger(t)).await?;
        footer.triggers += 1;
    }
    out.send().await?;
    conn.query_drop(q::END_READ).await?;
    Ok((header, footer))
}

/// Column `i` of a `SHOW` row as text.
fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i) {
        Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

async fn show(conn: &mut Conn, sql: String, col: usize, what: &str) -> Result<Row, Error> {
    let row: Option<Row> = conn.query_first(sql).await?;
    match row {
        Some(r) if text(&r, col).is_some() => Ok(r),
        _ => Err(Error::Unsupported(format!(
            "cannot read the definition of {what}: the database account needs SHOW VIEW / \
             SELECT privileges on it (or to be its definer)"
        ))),
    }
}

async fn catalogue(conn: &mut Conn) -> Result<Catalogue, Error> {
    let listed: Vec<(String, String, Option<String>)> = conn.query(q::LIST_TABLES).await?;
    let mut cat = Catalogue {
        tables: Vec::new(),
        sequences: Vec::new(),
        views: Vec::new(),
        routines: Vec::new(),
        triggers: Vec::new(),
    };
    for (name, kind, engine) in listed {
        if q::is_position_table(&name) {
            continue;
        }
        match kind.as_str() {
            "VIEW" => {
                let row =
                    show(conn, q::show_create_view(&name), 1, &format!("view {name}")).await?;
                cat.views.push(ObjectDef {
                    name,
                    kind: String::new(),
                    sql_mode: String::new(),
                    create: q::strip_definer(&text(&row, 1).unwrap_or_default()),
                });
            }
            "SEQUENCE" => {
                let row = show(
                    conn,
                    q::show_create_table(&name),
                    1,
                    &format!("sequence {name}"),
                )
                .await?;
                conn.query_drop(q::touch(&name)).await?;
                cat.sequences
                    .push((name, text(&row, 1).unwrap_or_default()));
            }
            _ => {
                if !engine
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case("InnoDB"))
                {
                    tracing::warn!(
                        table = %name,
                        engine = engine.as_deref().unwrap_or("?"),
                        "table is not InnoDB: its rows in the snapshot may not match the snapshot's position"
                    );
                }
                let row = show(
                    conn,
                    q::show_create_table(&name),
                    1,
                    &format!("table {name}"),
                )
                .await?;
                let cols: Vec<(String, Option<String>)> =
                    conn.exec(q::LIST_COLUMNS, (name.as_str(),)).await?;
                let columns: Vec<String> = cols
                    .into_iter()
                    .filter(|(_, generated)| generated.as_deref() != Some("ALWAYS"))
                    .map(|(c, _)| c)
                    .collect();
                let key: Vec<String> = conn.exec(q::LIST_PRIMARY_KEY, (name.as_str(),)).await?;
                conn.query_drop(q::touch(&name)).await?;
                cat.tables.push((
                    TableDef {
                        create: text(&row, 1).unwrap_or_default(),
                        name,
                        columns,
                    },
                    key,
                ));
            }
        }
    }
    let routines: Vec<(String, String)> = conn.query(q::LIST_ROUTINES).await?;
    for (name, kind) in routines {
        let Some(sql) = q::show_create_routine(&kind, &name) else {
            continue;
        };
        let what = format!("{} {name}", kind.to_lowercase());
        let row = show(conn, sql, 2, &what).await?;
        cat.routines.push(ObjectDef {
            sql_mode: text(&row, 1).unwrap_or_default(),
            create: q::strip_definer(&text(&row, 2).unwrap_or_default()),
            name,
            kind,
        });
    }
    let triggers: Vec<String> = conn.query(q::LIST_TRIGGERS).await?;
    for name in triggers {
        let row = show(
            conn,
            q::show_create_trigger(&name),
            2,
            &format!("trigger {name}"),
        )
        .await?;
        cat.triggers.push(ObjectDef {
            sql_mode: text(&row, 1).unwrap_or_default(),
            create: q::strip_definer(&text(&row, 2).unwrap_or_default()),
            name,
            kind: String::new(),
        });
    }
    Ok(cat)
}

/// Streams one table's rows, in primary-key order, into the file.
async fn copy_rows(
    conn: &mut Conn,
    out: &mut Out<'_>,
    def: TableDef,
    key: &[String],
) -> Result<TableCount, Error> {
    let sql = q::select_rows(&def.name, &def.columns, key);
    let name = def.name.clone();
    out.item(&Item::Table(def)).await?;
    let mut count = 0u64;
    let mut batch: Vec<Vec<Cell>> = Vec::new();
    let mut weight = 0usize;
    let mut result = conn.exec_iter(sql.as_str(), ()).await?;
    while let Some(row) = result.next().await? {
        let cells: Vec<Cell> = row.unwrap().into_iter().map(Cell::from).collect();
        weight += cells.iter().map(Cell::weight).sum::<usize>();
        batch.push(cells);
        count += 1;
        if weight >= SEND_BYTES / 2 {
            out.item(&Item::Rows(std::mem::take(&mut batch))).await?;
            weight = 0;
        }
    }
    drop(result);
    if !batch.is_empty() {
        out.item(&Item::Rows(batch)).await?;
    }
    Ok(TableCount { name, rows: count })
}
