//! AUTO_INCREMENT counters put back where the stored position left them.
//!
//! InnoDB hands out AUTO_INCREMENT values as statements run and never takes them back on
//! rollback. An apply attempt that does not commit — the node or MariaDB killed between
//! apply and commit, a lost connection, a retried transient error — therefore leaves this
//! node's counters ahead of every other node's, and re-applying the same entries would
//! store different ids. So `_wolfscale` records every counter with each commit
//! ([`crate::sql::position::UPDATE_POSITION`]), and before entries are applied again the
//! counters are set back to those values. This also corrects a restored dump, whose
//! `CREATE TABLE … AUTO_INCREMENT=` is read outside the dump's consistent snapshot.

use crate::sql::position;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::BTreeMap;

/// Table name → next AUTO_INCREMENT value.
pub(super) type Counters = BTreeMap<String, u64>;

/// Parses the `autoinc` column (`NULL` when no table had a counter).
pub(super) fn parse(json: Option<&str>) -> Result<Counters, String> {
    match json {
        None => Ok(Counters::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| format!("autoinc is not a JSON object of table counters: {e}")),
    }
}

/// Sets every counter that differs from `stored` back to the stored value. A table the
/// position does not know (created after it, or outside WolfScale) is left alone. Any
/// error is returned: the caller retries and reports DEGRADED with it, since applying on
/// with a counter other nodes do not have would hand out different ids.
pub(super) async fn restore(conn: &mut Conn, stored: &Counters) -> Result<(), mysql_async::Error> {
    if stored.is_empty() {
        return Ok(());
    }
    let now: Vec<(String, u64)> = conn.query(position::SELECT_AUTOINC).await?;
    for (table, current) in now {
        let Some(&want) = stored.get(&table) else {
            continue;
        };
        if want == current {
            continue;
        }
        match conn.query_drop(position::set_autoinc(&table, want)).await {
            Ok(()) => tracing::info!(
                table = %table,
                from = current,
                to = want,
                "auto_increment counter set back to the applied position"
            ),
            Err(e) => {
                tracing::warn!(
                    table = %table,
                    error = %e,
                    "cannot set the auto_increment counter back; not applying until it is"
                );
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_counters_parse() {
        assert_eq!(parse(None), Ok(Counters::new()));
        let c = parse(Some(r#"{"a":6, "we`ird":1}"#)).expect("valid");
        assert_eq!(c.get("a"), Some(&6));
        assert_eq!(c.get("we`ird"), Some(&1));
        assert!(parse(Some("[1]")).is_err());
        assert!(parse(Some(r#"{"a":-1}"#)).is_err());
    }
}
