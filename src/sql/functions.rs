//! Which built-in functions client SQL may call. Replicated SQL (writes, schema changes,
//! stored-program and view bodies) may call only [`DETERMINISTIC`] functions: given the
//! session every applier pins ([`super::SESSION_SETUP`]: the leader's timestamp, UTC, one
//! `sql_mode`, one character set, AUTO_INCREMENT by one), each returns the same value on
//! every node. Anything else — including names this list has never heard of, quoted or
//! not, and stored functions — is refused. Reads run on one node only and are held to
//! [`READ_REFUSED`], a short list of functions with effects outside the query.

/// Built-ins whose result depends only on their arguments and the pinned session. Upper
/// case; looked up case-insensitively after unquoting.
#[rustfmt::skip]
pub const DETERMINISTIC: &[&str] = &[
    // Numbers.
    "ABS", "ACOS", "ASIN", "ATAN", "ATAN2", "CEIL", "CEILING", "CONV", "COS", "COT", "CRC32",
    "CRC32C", "DEGREES", "EXP", "FLOOR", "GREATEST", "LEAST", "LN", "LOG", "LOG10", "LOG2",
    "MOD", "OCT", "PI", "POW", "POWER", "RADIANS", "ROUND", "SIGN", "SIN", "SQRT", "TAN",
    "TRUNCATE", "BIT_COUNT", "INTERVAL",
    // Strings.
    "ASCII", "BIN", "BIT_LENGTH", "CHAR", "CHAR_LENGTH", "CHARACTER_LENGTH", "CHR", "CONCAT",
    "CONCAT_WS", "ELT", "EXPORT_SET", "FIELD", "FIND_IN_SET", "FORMAT", "FROM_BASE64",
    "TO_BASE64", "HEX", "UNHEX", "INSERT", "INSTR", "LCASE", "LOWER", "UCASE", "UPPER", "LEFT",
    "RIGHT", "LENGTH", "LENGTHB", "OCTET_LENGTH", "LOCATE", "POSITION", "LPAD", "RPAD",
    "LTRIM", "RTRIM", "TRIM", "MAKE_SET", "MID", "SUBSTR", "SUBSTRING", "SUBSTRING_INDEX",
    "ORD", "QUOTE", "REPEAT", "REPLACE", "REVERSE", "SOUNDEX", "SPACE", "STRCMP",
    "REGEXP_REPLACE", "REGEXP_SUBSTR", "REGEXP_INSTR", "NATURAL_SORT_KEY", "CONVERT", "CAST",
    "WEIGHT_STRING", "BINARY", "COLLATION", "CHARSET", "COERCIBILITY",
    // Dates and times: NOW() and friends read the leader's timestamp (`SET timestamp`), the
    // zone is pinned to UTC and day and month names to `lc_time_names = en_US`.
    "NOW", "CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP", "CURDATE", "CURRENT_DATE",
    "CURTIME", "CURRENT_TIME", "UTC_DATE", "UTC_TIME", "UTC_TIMESTAMP", "UNIX_TIMESTAMP",
    "FROM_UNIXTIME", "DATE", "TIME", "TIMESTAMP", "YEAR", "MONTH", "DAY", "DAYOFMONTH",
    "DAYOFWEEK", "DAYOFYEAR", "WEEKDAY", "WEEK", "WEEKOFYEAR", "YEARWEEK", "HOUR", "MINUTE",
    "SECOND", "MICROSECOND", "QUARTER", "DAYNAME", "MONTHNAME", "DATE_ADD", "DATE_SUB",
    "ADDDATE", "SUBDATE", "ADDTIME", "SUBTIME", "DATEDIFF", "TIMEDIFF", "TIMESTAMPADD",
    "TIMESTAMPDIFF", "DATE_FORMAT", "TIME_FORMAT", "STR_TO_DATE", "MAKEDATE", "MAKETIME",
    "PERIOD_ADD", "PERIOD_DIFF", "SEC_TO_TIME", "TIME_TO_SEC", "TO_DAYS", "TO_SECONDS",
    "FROM_DAYS", "LAST_DAY", "EXTRACT",
    // Control flow.
    "IF", "IFNULL", "NULLIF", "COALESCE", "ISNULL", "NVL", "NVL2",
    // JSON.
    "JSON_ARRAY", "JSON_ARRAY_APPEND", "JSON_ARRAY_INSERT", "JSON_COMPACT", "JSON_CONTAINS",
    "JSON_CONTAINS_PATH", "JSON_DEPTH", "JSON_DETAILED", "JSON_EQUALS", "JSON_EXISTS",
    "JSON_EXTRACT", "JSON_INSERT", "JSON_KEYS", "JSON_LENGTH", "JSON_LOOSE", "JSON_MERGE",
    "JSON_MERGE_PATCH", "JSON_MERGE_PRESERVE", "JSON_NORMALIZE", "JSON_OBJECT",
    "JSON_OVERLAPS", "JSON_QUERY", "JSON_QUOTE", "JSON_REMOVE", "JSON_REPLACE", "JSON_SEARCH",
    "JSON_SET", "JSON_TYPE", "JSON_UNQUOTE", "JSON_VALID", "JSON_VALUE",
    // Hashes and network addresses.
    "MD5", "SHA", "SHA1", "SHA2", "INET_ATON", "INET_NTOA", "INET6_ATON", "INET6_NTOA",
    "IS_IPV4", "IS_IPV6", "IS_IPV4_COMPAT", "IS_IPV4_MAPPED",
    // Aggregates whose value does not depend on the order rows are read in (GROUP_CONCAT
    // and JSON_ARRAYAGG do, and are left out).
    "COUNT", "SUM", "MIN", "MAX", "AVG", "BIT_AND", "BIT_OR", "BIT_XOR",
    // ON DUPLICATE KEY UPDATE's new-row value, and a column's default.
    "VALUES", "VALUE", "DEFAULT",
];

/// Functions a read may not call: they take locks, advance sequences, read the server's
/// files or wait on replication — effects beyond returning rows.
#[rustfmt::skip]
pub const READ_REFUSED: &[&str] = &[
    "LOAD_FILE", "GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS", "IS_FREE_LOCK",
    "IS_USED_LOCK", "NEXTVAL", "SETVAL", "MASTER_POS_WAIT", "MASTER_GTID_WAIT", "BENCHMARK",
    "SYS_EXEC", "SYS_EVAL",
];

/// Whether replicated SQL may call `name` with `args` arguments. `RAND` is deterministic
/// only with a seed.
pub fn replicable(name: &str, args: usize) -> bool {
    let upper = name.to_ascii_uppercase();
    if upper == "RAND" {
        return args > 0;
    }
    DETERMINISTIC.contains(&upper.as_str())
}

/// Whether a read may call `name`.
pub fn readable(name: &str) -> bool {
    !READ_REFUSED.contains(&name.to_ascii_uppercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_upper_case_and_distinct() {
        for list in [DETERMINISTIC, READ_REFUSED] {
            let mut seen = std::collections::BTreeSet::new();
            for f in list {
                assert_eq!(*f, f.to_ascii_uppercase());
                assert!(seen.insert(*f), "{f} listed twice");
            }
        }
    }

    #[test]
    fn non_deterministic_built_ins_are_not_listed() {
        for f in [
            "UUID",
            "UUID_SHORT",
            "SYSDATE",
            "RANDOM_BYTES",
            "ENCRYPT",
            "PASSWORD",
            "USER",
            "CURRENT_USER",
            "CONNECTION_ID",
            "LAST_INSERT_ID",
            "ROW_COUNT",
            "FOUND_ROWS",
            "GROUP_CONCAT",
            "JSON_ARRAYAGG",
            "JSON_OBJECTAGG",
            "NEXTVAL",
            "LASTVAL",
            "SETVAL",
            "SLEEP",
            "GET_LOCK",
            "VERSION",
            "DATABASE",
            "SCHEMA",
            "LOAD_FILE",
            "CONVERT_TZ",
            "COMPRESS",
            "AES_ENCRYPT",
            "ROW_NUMBER",
            "RANK",
            "BENCHMARK",
        ] {
            assert!(!replicable(f, 1), "{f}");
        }
    }

    #[test]
    fn rand_needs_a_seed() {
        assert!(!replicable("rand", 0));
        assert!(replicable("RAND", 1));
        assert!(replicable("now", 0));
    }

    #[test]
    fn reads_refuse_side_effects_only() {
        assert!(!readable("load_file"));
        assert!(!readable("NEXTVAL"));
        assert!(readable("SLEEP"));
        assert!(readable("UUID"));
    }
}
