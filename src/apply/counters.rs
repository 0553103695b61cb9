//! The AUTO_INCREMENT counters `_wolfscale` stores with each commit
//! ([`crate::sql::position::UPDATE_POSITION`]): what the applier forces generated values
//! from (see `ids`). A restored dump carries them with its position, so its
//! `CREATE TABLE … AUTO_INCREMENT=` (read outside the dump's snapshot) does not matter.

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
