//! What a session `SET` may change. A setting that would change how a write applies
//! (`time_zone`, `foreign_key_checks`, a character set other than UTF-8, …) is not
//! carried into the log, so it is refused with a clear error, never ignored; `sql_mode`
//! is kept for the session's reads, and its writes are refused while it is set;
//! setting one back to its own current value (`SET sql_mode = @OLD_SQL_MODE` after
//! `SET @OLD_SQL_MODE = @@sql_mode`, as dump files do) changes nothing and is accepted.

use super::statement::Assignment;
use super::wire::MyError;
use crate::service::Consistency;
use std::collections::HashMap;

/// What one accepted assignment does to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `autocommit` on or off.
    Autocommit(bool),
    /// `wolfscale_consistency`: how fresh this session's reads are.
    Consistency(Consistency),
    /// `sql_mode` for this session's reads (`None`: the server's again). Writes are
    /// refused while it is set: the log does not carry it.
    SqlMode(Option<String>),
    /// A user variable saving a setting's current value (`@saved = @@name`).
    UserVar(String, String),
    /// Accepted; nothing to change (client-side settings, UTF-8 character sets).
    None,
}

/// Settings that only concern the client connection or single-statement reads.
const HARMLESS: &[&str] = &[
    "sql_notes",
    "sql_warnings",
    "sql_quote_show_create",
    "net_read_timeout",
    "net_write_timeout",
    "wait_timeout",
    "interactive_timeout",
    "net_buffer_length",
    "transaction",
    "tx_isolation",
    "transaction_isolation",
    "session_track_schema",
    "session_track_state_change",
    "session_track_system_variables",
    "session_track_transaction_info",
];

/// Settings whose value on the connection decides what the client's bytes mean.
const CHARSETS: &[&str] = &[
    "names",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
];

/// Checks every assignment of one SET; all are accepted or none.
///
/// # Errors
/// The first assignment that cannot be honoured, with why.
pub fn apply(
    assignments: &[Assignment],
    user_vars: &HashMap<String, String>,
) -> Result<Vec<Effect>, MyError> {
    let mut vars = user_vars.clone();
    let mut out = Vec::new();
    for a in assignments {
        let effect = one(a, &vars)?;
        if let Effect::UserVar(name, value) = &effect {
            vars.insert(name.clone(), value.clone());
        }
        out.push(effect);
    }
    Ok(out)
}

/// A value with user variables replaced by what they hold (`@@name` when they saved a
/// setting), lower case.
fn resolve(value: &str, vars: &HashMap<String, String>) -> String {
    let v = value.trim().to_ascii_lowercase();
    if v.starts_with('@') && !v.starts_with("@@") {
        return vars.get(&v).cloned().unwrap_or_else(|| "null".into());
    }
    for scope in ["@@session.", "@@local."] {
        if let Some(rest) = v.strip_prefix(scope) {
            return format!("@@{rest}");
        }
    }
    v
}

fn utf8(v: &str) -> bool {
    v == "default"
        || ["utf8mb4", "utf8mb3", "utf8"]
            .iter()
            .any(|c| v == *c || v.starts_with(&format!("{c}_")))
}

fn one(a: &Assignment, vars: &HashMap<String, String>) -> Result<Effect, MyError> {
    let name = a.name.to_ascii_lowercase();
    let value = resolve(&a.value, vars);
    if name.starts_with('@') {
        // Only saving a setting's current value: anything else would be a value the
        // nodes that run later reads and writes never see.
        if value.starts_with("@@") && !value.contains(|c: char| c.is_whitespace()) {
            return Ok(Effect::UserVar(name, value));
        }
        return Err(MyError::unsupported(format!(
            "user variables are not kept by WolfScale's MySQL front end (statements run on \
             other connections, and writes on every node): `SET {}` is refused; bind the \
             value as a statement parameter instead",
            a.name
        )));
    }
    // Setting a variable to its own current value changes nothing.
    if value == format!("@@{name}") {
        return Ok(Effect::None);
    }
    if CHARSETS.contains(&name.as_str()) {
        let also_ok = name == "character_set_results" && (value == "binary" || value == "null");
        if utf8(&value) || value == "@@character_set_client" || also_ok {
            return Ok(Effect::None);
        }
        return Err(MyError::new(
            1115,
            format!(
                "WolfScale's MySQL front end speaks UTF-8 only (utf8mb4): `{}` = `{}` is refused",
                a.name, a.value
            ),
        ));
    }
    match name.as_str() {
        "sql_mode" => match value.as_str() {
            "default" | "@@global.sql_mode" => Ok(Effect::SqlMode(None)),
            _ if a.value.trim().starts_with('@') => Err(MyError::unsupported(format!(
                "`SET sql_mode = {}`: only a literal mode, DEFAULT or a saved value can be set",
                a.value
            ))),
            _ => Ok(Effect::SqlMode(Some(a.value.clone()))),
        },
        "autocommit" => match value.as_str() {
            "1" | "on" | "true" => Ok(Effect::Autocommit(true)),
            "0" | "off" | "false" => Ok(Effect::Autocommit(false)),
            _ => Err(MyError::new(
                1231,
                format!(
                    "Variable 'autocommit' can't be set to the value of '{}'",
                    a.value
                ),
            )),
        },
        "wolfscale_consistency" => match value.as_str() {
            "none" => Ok(Effect::Consistency(Consistency::None)),
            "weak" => Ok(Effect::Consistency(Consistency::Weak)),
            "linearizable" => Ok(Effect::Consistency(Consistency::Linearizable)),
            _ => Err(MyError::new(
                1231,
                format!(
                    "Variable 'wolfscale_consistency' can't be set to the value of '{}' \
                     (none, weak or linearizable)",
                    a.value
                ),
            )),
        },
        n if HARMLESS.contains(&n) => Ok(Effect::None),
        _ => Err(MyError::unsupported(format!(
            "`SET {}` is refused: WolfScale applies every write on every node under the \
             cluster's own settings and does not carry session settings into its log, so \
             this setting cannot take effect (only UTF-8 character sets, autocommit, \
             wolfscale_consistency and client-side settings such as net_read_timeout can be set)",
            a.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Result<Vec<Effect>, MyError> {
        let a: Vec<Assignment> = pairs
            .iter()
            .map(|(n, v)| Assignment {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect();
        apply(&a, &HashMap::new())
    }

    #[test]
    fn utf8_character_sets_and_autocommit_are_accepted() {
        assert_eq!(
            set(&[("names", "utf8mb4")]).expect("names"),
            vec![Effect::None]
        );
        assert_eq!(
            set(&[("character_set_results", "NULL")]).expect("results"),
            vec![Effect::None]
        );
        assert_eq!(
            set(&[("autocommit", "0")]).expect("autocommit"),
            vec![Effect::Autocommit(false)]
        );
        assert_eq!(
            set(&[("wolfscale_consistency", "linearizable")]).expect("consistency"),
            vec![Effect::Consistency(Consistency::Linearizable)]
        );
    }

    #[test]
    fn settings_that_change_writes_are_refused() {
        for (n, v) in [
            ("time_zone", "+05:00"),
            ("foreign_key_checks", "0"),
            ("names", "latin1"),
        ] {
            let e = set(&[(n, v)]).expect_err(n);
            assert!(e.message.contains(n), "{}", e.message);
        }
        // All or nothing: the accepted first assignment does not count either.
        assert!(set(&[("autocommit", "1"), ("time_zone", "+01:00")]).is_err());
    }

    #[test]
    fn sql_mode_is_kept_for_reads_until_reset() {
        assert_eq!(
            set(&[("sql_mode", "ANSI_QUOTES")]).expect("set"),
            vec![Effect::SqlMode(Some("ANSI_QUOTES".into()))]
        );
        assert_eq!(
            set(&[("sql_mode", "DEFAULT")]).expect("reset"),
            vec![Effect::SqlMode(None)]
        );
        assert!(set(&[("sql_mode", "@x")]).is_err());
    }

    #[test]
    fn saving_and_restoring_a_setting_is_no_change() {
        let effects = set(&[
            ("@old_sql_mode", "@@SQL_MODE"),
            ("sql_mode", "@OLD_SQL_MODE"),
            ("@saved_cs_client", "@@character_set_client"),
            ("character_set_client", "@saved_cs_client"),
        ])
        .expect("dump header");
        assert_eq!(effects[1], Effect::None);
        assert!(set(&[("@x", "5")]).is_err());
    }
}
