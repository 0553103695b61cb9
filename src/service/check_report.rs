//! What `POST /check` answers and `wolfscale check` prints: per table, whether every
//! node holds the same rows at the check's LSN, and where not, which nodes differ and the
//! primary-key ranges and keys that differ. Built by `node::check`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The result of one divergence check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckReport {
    /// The check's id (also in every node's log).
    pub id: u64,
    /// The LSN of its barrier: every node was compared as of this entry.
    pub lsn: u64,
    /// The node that ran it.
    pub coordinator: String,
    /// When it started, ms since the Unix epoch.
    pub started_ms: u64,
    /// How long it took, in ms.
    pub elapsed_ms: u64,
    /// The members compared.
    pub nodes: Vec<String>,
    /// Members that could not be compared, and why.
    #[serde(default)]
    pub unchecked: Vec<NodeProblem>,
    /// Every table found on any compared node, by name.
    pub tables: Vec<TableCheck>,
}

impl CheckReport {
    /// Tables that are not identical on every compared node.
    pub fn differing(&self) -> impl Iterator<Item = &TableCheck> {
        self.tables.iter().filter(|t| !t.identical)
    }

    /// True when every member was compared and every table is identical.
    pub fn identical(&self) -> bool {
        self.unchecked.is_empty() && self.differing().next().is_none()
    }

    /// One line for logs and `/status`.
    pub fn summary(&self) -> CheckSummary {
        CheckSummary {
            id: self.id,
            lsn: self.lsn,
            finished_ms: self.started_ms + self.elapsed_ms,
            identical: self.identical(),
            tables: self.tables.len() as u64,
            differing_tables: self.differing().map(|t| t.table.clone()).collect(),
            unchecked: self.unchecked.iter().map(|p| p.node.clone()).collect(),
            error: None,
        }
    }
}

/// A member left out of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeProblem {
    /// Its name.
    pub node: String,
    /// Why.
    pub error: String,
}

/// One table's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableCheck {
    /// The table.
    pub table: String,
    /// Same columns and same rows on every compared node.
    pub identical: bool,
    /// Rows on each node that has it (for a differing table, as far as counted).
    pub rows: BTreeMap<String, u64>,
    /// Nodes that do not have the table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_on: Vec<String>,
    /// Nodes whose columns (names, types, nullability, collation, order) or primary key
    /// differ from the majority's; rows are not compared then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_differs_on: Vec<String>,
    /// Nodes whose rows differ from the majority's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differing_nodes: Vec<String>,
    /// Key ranges that differ, in key order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<RangeDiff>,
    /// More ranges differ than are listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Anything else worth knowing: no primary key (whole-table checksum only), a node's
    /// error while checksumming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A primary-key range whose rows differ between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RangeDiff {
    /// The range as SQL over the key columns, e.g. `id = 7` or `id > 5 AND id <= 900`.
    pub range: String,
    /// Nodes whose rows in the range differ from the majority's.
    pub nodes: Vec<String>,
    /// The differing rows, when the range was narrowed down to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<RowDiff>,
}

/// One row that differs on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowDiff {
    /// The row's key, e.g. `id = 7`.
    pub key: String,
    /// The node that differs from the majority.
    pub node: String,
    /// How.
    pub kind: RowDiffKind,
}

/// How a row differs on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RowDiffKind {
    /// The majority has the row; this node does not.
    Missing,
    /// This node has a row the majority does not.
    Extra,
    /// Both have the row, with different values.
    Changed,
}

/// The last check as `/status` shows it (`last_check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckSummary {
    /// The check's id.
    pub id: u64,
    /// Its barrier's LSN (0 when it failed before one was written).
    pub lsn: u64,
    /// When it ended, ms since the Unix epoch.
    pub finished_ms: u64,
    /// Every member compared, every table identical.
    pub identical: bool,
    /// Tables compared.
    pub tables: u64,
    /// Tables that differ.
    #[serde(default)]
    pub differing_tables: Vec<String>,
    /// Members not compared.
    #[serde(default)]
    pub unchecked: Vec<String>,
    /// Why the check could not run, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The report as `wolfscale check` prints it: a header, one line per table, and under a
/// differing table its ranges and rows.
pub fn check_text(r: &CheckReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "check {} at lsn {} from {}: {} node(s) compared ({}) in {} ms",
        r.id,
        r.lsn,
        r.coordinator,
        r.nodes.len(),
        r.nodes.join(", "),
        r.elapsed_ms
    );
    for p in &r.unchecked {
        let _ = writeln!(s, "NOT COMPARED {}: {}", p.node, p.error);
    }
    for t in &r.tables {
        let rows: Vec<String> = t.rows.iter().map(|(n, c)| format!("{n}={c}")).collect();
        if t.identical {
            let count = t.rows.values().next().copied().unwrap_or(0);
            let _ = write!(s, "{}: identical ({count} rows)", t.table);
        } else if t.missing_on.is_empty()
            && t.schema_differs_on.is_empty()
            && t.differing_nodes.is_empty()
        {
            // Only an error, no difference found: say so rather than "differs".
            let _ = write!(s, "{}: NOT COMPARED", t.table);
        } else {
            let _ = write!(s, "{}: DIFFERS (rows: {})", t.table, rows.join(" "));
        }
        if let Some(note) = &t.note {
            let _ = write!(s, " [{note}]");
        }
        s.push('\n');
        if !t.missing_on.is_empty() {
            let _ = writeln!(s, "  table missing on: {}", t.missing_on.join(", "));
        }
        if !t.schema_differs_on.is_empty() {
            let _ = writeln!(
                s,
                "  columns or primary key differ on: {}",
                t.schema_differs_on.join(", ")
            );
        }
        if !t.differing_nodes.is_empty() {
            let _ = writeln!(s, "  rows differ on: {}", t.differing_nodes.join(", "));
        }
        for d in &t.ranges {
            let _ = writeln!(s, "  range {} differs on {}", d.range, d.nodes.join(", "));
            for row in &d.rows {
                let kind = match row.kind {
                    RowDiffKind::Missing => "missing",
                    RowDiffKind::Extra => "extra",
                    RowDiffKind::Changed => "changed",
                };
                let _ = writeln!(s, "    {}: {kind} on {}", row.key, row.node);
            }
        }
        if t.truncated {
            let _ = writeln!(s, "  (more differing ranges not listed)");
        }
    }
    let differing = r.differing().count();
    let _ = write!(
        s,
        "{} table(s): {} identical, {differing} differ",
        r.tables.len(),
        r.tables.len() - differing
    );
    s
}
