//! What a MariaDB error code means for replication (DESIGN invariant 7): a deterministic
//! error is the entry's result, the same on every node; a transient one is retried and
//! never skipped. Also which DDL errors mean "this schema change was already applied".
//! Pure functions of the server's error number; the applier decides what to do.

/// How the applier must treat a failed statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Deterministic: a table, column, database or routine does not exist.
    NotFound,
    /// Deterministic: a key, foreign key, NOT NULL or CHECK constraint, or an object that
    /// already exists.
    Conflict,
    /// Deterministic: the statement or its data is wrong (syntax, unknown column, value out
    /// of range, data too long, …).
    Invalid,
    /// Retry with backoff and report the node DEGRADED meanwhile: the connection (every
    /// client-side 2xxx code), the server, locks, resources, privileges. Only codes listed
    /// as transient land here: any other server error is the entry's result, and a node
    /// whose result differs from the leader's finds out through outcome agreement
    /// (DIVERGED) instead of one bad statement stalling the whole cluster.
    Transient,
}

impl ErrorClass {
    /// Whether every node gets the same error, so it is the entry's recorded result.
    pub fn is_deterministic(self) -> bool {
        self != ErrorClass::Transient
    }

    /// The HTTP status for a deterministic result (404, 409, 400); `None` when transient.
    pub fn http_status(self) -> Option<u16> {
        match self {
            ErrorClass::NotFound => Some(404),
            ErrorClass::Conflict => Some(409),
            ErrorClass::Invalid => Some(400),
            ErrorClass::Transient => None,
        }
    }

    /// Stable code for API error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorClass::NotFound => "not_found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Invalid => "invalid",
            ErrorClass::Transient => "unavailable",
        }
    }
}

/// `(code, class)` for every error number this build recognises; everything else is
/// [`ErrorClass::Transient`]. Keep one test per row.
#[rustfmt::skip]
const CLASSES: &[(u16, ErrorClass)] = &[
    // Missing objects.
    (1008, ErrorClass::NotFound),  // ER_DB_DROP_EXISTS: can't drop database, doesn't exist
    (1049, ErrorClass::NotFound),  // ER_BAD_DB_ERROR: unknown database
    (1051, ErrorClass::NotFound),  // ER_BAD_TABLE_ERROR: unknown table
    (1091, ErrorClass::NotFound),  // ER_CANT_DROP_FIELD_OR_KEY: doesn't exist
    (1146, ErrorClass::NotFound),  // ER_NO_SUCH_TABLE
    (1305, ErrorClass::NotFound),  // ER_SP_DOES_NOT_EXIST: function/procedure
    (1360, ErrorClass::NotFound),  // ER_TRG_DOES_NOT_EXIST
    (1176, ErrorClass::NotFound),  // ER_KEY_DOES_NOT_EXISTS: key in USE/FORCE INDEX
    (4091, ErrorClass::NotFound),  // ER_UNKNOWN_SEQUENCES
    (4092, ErrorClass::NotFound),  // ER_UNKNOWN_VIEW
    (1109, ErrorClass::NotFound),  // ER_UNKNOWN_TABLE: in MULTI DELETE, in information_schema
    // Constraints and existing objects.
    (1007, ErrorClass::Conflict),  // ER_DB_CREATE_EXISTS
    (1022, ErrorClass::Conflict),  // ER_DUP_KEY
    (1048, ErrorClass::Conflict),  // ER_BAD_NULL_ERROR: column cannot be null
    (1050, ErrorClass::Conflict),  // ER_TABLE_EXISTS_ERROR
    (1060, ErrorClass::Conflict),  // ER_DUP_FIELDNAME: duplicate column name
    (1061, ErrorClass::Conflict),  // ER_DUP_KEYNAME
    (1062, ErrorClass::Conflict),  // ER_DUP_ENTRY
    (1068, ErrorClass::Conflict),  // ER_MULTIPLE_PRI_KEY
    (1169, ErrorClass::Conflict),  // ER_DUP_UNIQUE
    (1216, ErrorClass::Conflict),  // ER_NO_REFERENCED_ROW
    (1217, ErrorClass::Conflict),  // ER_ROW_IS_REFERENCED
    (1304, ErrorClass::Conflict),  // ER_SP_ALREADY_EXISTS
    (1359, ErrorClass::Conflict),  // ER_TRG_ALREADY_EXISTS
    (1451, ErrorClass::Conflict),  // ER_ROW_IS_REFERENCED_2
    (1452, ErrorClass::Conflict),  // ER_NO_REFERENCED_ROW_2
    (1557, ErrorClass::Conflict),  // ER_FOREIGN_DUPLICATE_KEY
    (1586, ErrorClass::Conflict),  // ER_DUP_ENTRY_WITH_KEY_NAME
    (1826, ErrorClass::Conflict),  // ER_FK_DUP_NAME
    (4025, ErrorClass::Conflict),  // ER_CONSTRAINT_FAILED: CHECK constraint
    // Wrong statement or data.
    (1052, ErrorClass::Invalid),   // ER_NON_UNIQ_ERROR: ambiguous column
    (1054, ErrorClass::Invalid),   // ER_BAD_FIELD_ERROR: unknown column
    (1064, ErrorClass::Invalid),   // ER_PARSE_ERROR: syntax
    (1066, ErrorClass::Invalid),   // ER_NONUNIQ_TABLE: not unique table/alias
    (1067, ErrorClass::Invalid),   // ER_INVALID_DEFAULT
    (1072, ErrorClass::Invalid),   // ER_KEY_COLUMN_DOES_NOT_EXITS
    (1110, ErrorClass::Invalid),   // ER_FIELD_SPECIFIED_TWICE
    (1136, ErrorClass::Invalid),   // ER_WRONG_VALUE_COUNT_ON_ROW
    (1166, ErrorClass::Invalid),   // ER_WRONG_COLUMN_NAME
    (1241, ErrorClass::Invalid),   // ER_OPERAND_COLUMNS
    (1242, ErrorClass::Invalid),   // ER_SUBQUERY_NO_1_ROW
    (1264, ErrorClass::Invalid),   // ER_WARN_DATA_OUT_OF_RANGE
    (1265, ErrorClass::Invalid),   // WARN_DATA_TRUNCATED
    (1292, ErrorClass::Invalid),   // ER_TRUNCATED_WRONG_VALUE
    (1364, ErrorClass::Invalid),   // ER_NO_DEFAULT_FOR_FIELD
    (1365, ErrorClass::Invalid),   // ER_DIVISION_BY_ZERO
    (1366, ErrorClass::Invalid),   // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
    (1406, ErrorClass::Invalid),   // ER_DATA_TOO_LONG
    (1416, ErrorClass::Invalid),   // ER_CANT_CREATE_GEOMETRY_OBJECT
    (1690, ErrorClass::Invalid),   // ER_DATA_OUT_OF_RANGE: BIGINT UNSIGNED value
    (1059, ErrorClass::Invalid),   // ER_TOO_LONG_IDENT
    (1103, ErrorClass::Invalid),   // ER_WRONG_TABLE_NAME: e.g. trailing space, too long
    (1215, ErrorClass::Invalid),   // ER_CANNOT_ADD_FOREIGN
    (1300, ErrorClass::Invalid),   // ER_INVALID_CHARACTER_STRING
    // Wrong statement or definition, found by the bad-input suite (tests/it/bad_input): a
    // property of the statement and the schema, never of the server's state, so every node
    // gets it. Unknown, these stalled the applier for good and made reads 503.
    (1074, ErrorClass::Invalid),   // ER_TOO_BIG_FIELDLENGTH: VARCHAR(100000)
    (1075, ErrorClass::Invalid),   // ER_WRONG_AUTO_KEY: AUTO_INCREMENT not a key
    (1089, ErrorClass::Invalid),   // ER_WRONG_SUB_KEY: bad prefix key length
    (1090, ErrorClass::Invalid),   // ER_CANT_REMOVE_ALL_FIELDS
    (1093, ErrorClass::Invalid),   // ER_UPDATE_TABLE_USED: target also a subquery source
    (1111, ErrorClass::Invalid),   // ER_INVALID_GROUP_FUNC_USE
    (1116, ErrorClass::Invalid),   // ER_TOO_MANY_TABLES: more than 61 in a join
    (1139, ErrorClass::Invalid),   // ER_REGEXP_ERROR
    (1170, ErrorClass::Invalid),   // ER_BLOB_KEY_WITHOUT_LENGTH
    (1191, ErrorClass::Invalid),   // ER_FT_MATCHING_KEY_NOT_FOUND: MATCH without FULLTEXT
    (1210, ErrorClass::Invalid),   // ER_WRONG_ARGUMENTS
    (1221, ErrorClass::Invalid),   // ER_WRONG_USAGE: e.g. ROLLUP and ORDER BY
    (1222, ErrorClass::Invalid),   // ER_WRONG_NUMBER_OF_COLUMNS_IN_SELECT: UNION arity
    (1283, ErrorClass::Invalid),   // ER_BAD_FT_COLUMN
    (1291, ErrorClass::Invalid),   // ER_DUPLICATED_VALUE_IN_TYPE: ENUM('x', 'x')
    (1347, ErrorClass::Invalid),   // ER_WRONG_OBJECT: e.g. a table where a view is needed
    (1426, ErrorClass::Invalid),   // ER_TOO_BIG_PRECISION: DECIMAL(100)
    (1439, ErrorClass::Invalid),   // ER_TOO_BIG_DISPLAYWIDTH
    (1493, ErrorClass::Invalid),   // ER_RANGE_NOT_INCREASING_ERROR: partition bounds
    (1582, ErrorClass::Invalid),   // ER_WRONG_PARAMCOUNT_TO_NATIVE_FCT: CONCAT()
    (1747, ErrorClass::Invalid),   // ER_PARTITION_CLAUSE_ON_NONPARTITIONED
    (1791, ErrorClass::Invalid),   // ER_UNKNOWN_EXPLAIN_FORMAT
    (1901, ErrorClass::Invalid),   // ER_GENERATED_COLUMN_FUNCTION_IS_NOT_ALLOWED
    (4010, ErrorClass::Invalid),   // ER_DUP_WINDOW_NAME
    (4015, ErrorClass::Invalid),   // ER_WRONG_PLACEMENT_OF_WINDOW_FUNCTION
    (4036, ErrorClass::Invalid),   // ER_JSON_NOT_JSON_CHR
    (4037, ErrorClass::Invalid),   // ER_JSON_EOS
    (4038, ErrorClass::Invalid),   // ER_JSON_SYNTAX
    (4039, ErrorClass::Invalid),   // ER_JSON_ESCAPING
    (4040, ErrorClass::Invalid),   // ER_JSON_DEPTH: a fixed nesting limit
    (4041, ErrorClass::Invalid),   // ER_JSON_PATH_EOS
    (4042, ErrorClass::Invalid),   // ER_JSON_PATH_SYNTAX
    (4085, ErrorClass::Invalid),   // ER_SEQUENCE_INVALID_DATA: bad sequence options
    (4089, ErrorClass::Invalid),   // ER_NOT_SEQUENCE: NEXTVAL of a table
    (4099, ErrorClass::Invalid),   // ER_WRONG_NUMBER_OF_VALUES_IN_TVC
    (4124, ErrorClass::Invalid),   // ER_VERS_NOT_VERSIONED: FOR SYSTEM_TIME on a plain table
    // Statements every node refuses the same way; before outcome agreement each of these
    // stalled the whole cluster (issue 12).
    (1235, ErrorClass::Invalid),   // ER_NOT_SUPPORTED_YET: e.g. LIMIT in an IN subquery
    (1630, ErrorClass::NotFound),  // ER_FUNC_INEXISTENT_NAME_COLLISION: `SYSDATE`(6)
    (1644, ErrorClass::Invalid),   // ER_SIGNAL_EXCEPTION: SIGNAL in a trigger
    // Transient: the server, the connection, locks, resources, privileges.
    (1021, ErrorClass::Transient), // ER_DISK_FULL
    (1030, ErrorClass::Transient), // ER_GET_ERRNO: storage engine error
    (1037, ErrorClass::Transient), // ER_OUTOFMEMORY
    (1038, ErrorClass::Transient), // ER_OUT_OF_SORTMEMORY
    (1040, ErrorClass::Transient), // ER_CON_COUNT_ERROR: too many connections
    (1041, ErrorClass::Transient), // ER_OUT_OF_RESOURCES
    (1044, ErrorClass::Transient), // ER_DBACCESS_DENIED_ERROR: grants may differ per node
    (1045, ErrorClass::Transient), // ER_ACCESS_DENIED_ERROR
    (1053, ErrorClass::Transient), // ER_SERVER_SHUTDOWN
    (1114, ErrorClass::Transient), // ER_RECORD_FILE_FULL: table full (disk or tablespace)
    (1135, ErrorClass::Transient), // ER_CANT_CREATE_THREAD
    (1142, ErrorClass::Transient), // ER_TABLEACCESS_DENIED_ERROR
    (1143, ErrorClass::Transient), // ER_COLUMNACCESS_DENIED_ERROR
    (1153, ErrorClass::Transient), // ER_NET_PACKET_TOO_LARGE: max_allowed_packet per node
    (1158, ErrorClass::Transient), // ER_NET_READ_ERROR
    (1159, ErrorClass::Transient), // ER_NET_READ_INTERRUPTED
    (1160, ErrorClass::Transient), // ER_NET_ERROR_ON_WRITE
    (1161, ErrorClass::Transient), // ER_NET_WRITE_INTERRUPTED
    (1180, ErrorClass::Transient), // ER_ERROR_DURING_COMMIT
    (1181, ErrorClass::Transient), // ER_ERROR_DURING_ROLLBACK
    (1203, ErrorClass::Transient), // ER_TOO_MANY_USER_CONNECTIONS
    (1205, ErrorClass::Transient), // ER_LOCK_WAIT_TIMEOUT
    (1206, ErrorClass::Transient), // ER_LOCK_TABLE_FULL
    (1213, ErrorClass::Transient), // ER_LOCK_DEADLOCK
    (1226, ErrorClass::Transient), // ER_USER_LIMIT_REACHED
    (1227, ErrorClass::Transient), // ER_SPECIFIC_ACCESS_DENIED_ERROR
    (1290, ErrorClass::Transient), // ER_OPTION_PREVENTS_STATEMENT: e.g. read_only
    (1317, ErrorClass::Transient), // ER_QUERY_INTERRUPTED
    (1637, ErrorClass::Transient), // ER_TOO_MANY_CONCURRENT_TRXS
    (1792, ErrorClass::Transient), // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    (1927, ErrorClass::Transient), // ER_CONNECTION_KILLED
    (1969, ErrorClass::Transient), // ER_STATEMENT_TIMEOUT: max_statement_time per node
    (2002, ErrorClass::Transient), // CR_CONNECTION_ERROR
    (2003, ErrorClass::Transient), // CR_CONN_HOST_ERROR
    (2006, ErrorClass::Transient), // CR_SERVER_GONE_ERROR
    (2013, ErrorClass::Transient), // CR_SERVER_LOST
    (2055, ErrorClass::Transient), // CR_SERVER_LOST_EXTENDED
];

/// The class of MariaDB error number `code`. Client-side codes (2000–2999, and 0 for
/// errors that never reached the server) are transient; a server code not in the table is
/// [`ErrorClass::Invalid`]: the statement's result, checked against the leader's outcome
/// by outcome agreement.
pub fn classify(code: u16) -> ErrorClass {
    let unlisted = if code == 0 || (2000..3000).contains(&code) {
        ErrorClass::Transient
    } else {
        ErrorClass::Invalid
    };
    CLASSES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(unlisted, |(_, class)| *class)
}

/// Like [`classify`], refined by the server's message where the number alone is
/// ambiguous: 1005 (can't create table) and 1025 (error on rename) carry the storage
/// engine's errno, which is deterministic for a malformed (150) or duplicate (121) foreign
/// key and transient otherwise (e.g. 28, no space left). The applier should call this one.
pub fn classify_error(code: u16, message: &str) -> ErrorClass {
    match code {
        1005 | 1025 if message.contains("errno: 150") => ErrorClass::Invalid,
        1005 | 1025 if message.contains("errno: 121") => ErrorClass::Conflict,
        // Any other storage-engine errno (28: no space left, …) is about the server.
        1005 | 1025 => ErrorClass::Transient,
        _ => classify(code),
    }
}

/// The SQLSTATE MariaDB sends with error numbers a client is likely to meet from a
/// replicated statement; drivers map some of them to exception types.
#[rustfmt::skip]
const SQLSTATES: &[(u16, &str)] = &[
    (1022, "23000"), (1044, "42000"), (1045, "28000"), (1046, "3D000"), (1048, "23000"),
    (1049, "42000"), (1050, "42S01"), (1051, "42S02"), (1052, "23000"), (1054, "42S22"),
    (1060, "42S21"), (1061, "42000"), (1062, "23000"), (1064, "42000"), (1068, "42000"),
    (1091, "42000"), (1109, "42S02"), (1136, "21S01"), (1142, "42000"), (1146, "42S02"),
    (1149, "42000"), (1169, "23000"), (1213, "40001"), (1216, "23000"), (1217, "23000"),
    (1264, "22003"), (1292, "22007"), (1304, "42000"), (1305, "42000"), (1365, "22012"),
    (1406, "22001"), (1451, "23000"), (1452, "23000"), (1557, "23000"), (1586, "23000"),
    (1690, "22003"),
    // MariaDB's own numbers (above MySQL 5.6's 1885).
    (1916, "22003"), (1917, "22003"), (1918, "22007"), (1921, "22007"), (1927, "70100"),
    (1932, "42S02"), (1965, "42S02"), (1969, "70100"), (1970, "42000"), (1971, "42000"),
    (1978, "22007"), (4025, "23000"), (4089, "42S02"), (4090, "42S02"), (4091, "42S02"),
    (4092, "42S02"), (4159, "42000"), (4192, "70100"),
];

/// The SQLSTATE of MariaDB error number `code`: its own for the numbers listed above,
/// the general `HY000` otherwise.
pub fn sqlstate(code: u16) -> &'static str {
    SQLSTATES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("HY000", |(_, state)| state)
}

/// Error numbers that, when a DDL entry recorded as in flight is re-applied after a crash,
/// mean its effect is already there (created, dropped, renamed, column or key added or
/// removed). The applier counts that entry as applied.
#[rustfmt::skip]
const ALREADY_APPLIED: &[u16] = &[
    1007, // database exists
    1008, // database does not exist
    1050, // table or view exists
    1051, // unknown table (already dropped)
    1060, // duplicate column (already added)
    1061, // duplicate key name (already added)
    1068, // multiple primary key (already added)
    1091, // can't drop column or key (already dropped)
    1146, // no such table (already renamed or dropped)
    1304, // routine exists
    1305, // routine does not exist
    1359, // trigger exists
    1360, // trigger does not exist
    1826, // duplicate foreign key name (already added)
    4091, // unknown sequence
    4092, // unknown view
];

/// Whether error `code` (with the server's `message`) from re-applying an in-flight DDL
/// entry means it already took effect before the crash. Only for that re-apply: on a first
/// apply these are ordinary deterministic results. A foreign key added twice is 1005 with
/// errno 121, told apart by the message.
pub fn ddl_already_applied(code: u16, message: &str) -> bool {
    ALREADY_APPLIED.contains(&code) || (code == 1005 && message.contains("errno: 121"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::{Conflict, Invalid, NotFound, Transient};

    /// One test per code, written independently of `CLASSES`.
    macro_rules! classes {
        ($($test:ident: $code:literal => $class:ident;)*) => {
            $( #[test] fn $test() { assert_eq!(classify($code), $class); } )*
            const EXPECTED: &[(u16, ErrorClass)] = &[$(($code, $class)),*];
        };
    }

    classes! {
        db_drop_missing_1008: 1008 => NotFound;
        unknown_database_1049: 1049 => NotFound;
        unknown_table_1051: 1051 => NotFound;
        cant_drop_missing_1091: 1091 => NotFound;
        no_such_table_1146: 1146 => NotFound;
        routine_missing_1305: 1305 => NotFound;
        trigger_missing_1360: 1360 => NotFound;
        key_missing_1176: 1176 => NotFound;
        unknown_sequence_4091: 4091 => NotFound;
        unknown_view_4092: 4092 => NotFound;
        unknown_table_in_1109: 1109 => NotFound;
        db_exists_1007: 1007 => Conflict;
        dup_key_1022: 1022 => Conflict;
        not_null_1048: 1048 => Conflict;
        table_exists_1050: 1050 => Conflict;
        dup_column_1060: 1060 => Conflict;
        dup_key_name_1061: 1061 => Conflict;
        dup_entry_1062: 1062 => Conflict;
        multiple_primary_1068: 1068 => Conflict;
        dup_unique_1169: 1169 => Conflict;
        fk_no_parent_old_1216: 1216 => Conflict;
        fk_referenced_old_1217: 1217 => Conflict;
        routine_exists_1304: 1304 => Conflict;
        trigger_exists_1359: 1359 => Conflict;
        fk_referenced_1451: 1451 => Conflict;
        fk_no_parent_1452: 1452 => Conflict;
        fk_dup_key_1557: 1557 => Conflict;
        dup_entry_key_name_1586: 1586 => Conflict;
        fk_dup_name_1826: 1826 => Conflict;
        check_constraint_4025: 4025 => Conflict;
        ambiguous_column_1052: 1052 => Invalid;
        bad_field_1054: 1054 => Invalid;
        syntax_1064: 1064 => Invalid;
        nonunique_table_1066: 1066 => Invalid;
        invalid_default_1067: 1067 => Invalid;
        key_column_missing_1072: 1072 => Invalid;
        field_twice_1110: 1110 => Invalid;
        value_count_1136: 1136 => Invalid;
        wrong_column_name_1166: 1166 => Invalid;
        operand_columns_1241: 1241 => Invalid;
        subquery_rows_1242: 1242 => Invalid;
        out_of_range_1264: 1264 => Invalid;
        data_truncated_1265: 1265 => Invalid;
        wrong_value_1292: 1292 => Invalid;
        no_default_1364: 1364 => Invalid;
        division_by_zero_1365: 1365 => Invalid;
        wrong_string_value_1366: 1366 => Invalid;
        data_too_long_1406: 1406 => Invalid;
        bad_geometry_1416: 1416 => Invalid;
        data_out_of_range_1690: 1690 => Invalid;
        too_long_ident_1059: 1059 => Invalid;
        wrong_table_name_1103: 1103 => Invalid;
        cannot_add_foreign_1215: 1215 => Invalid;
        invalid_character_string_1300: 1300 => Invalid;
        too_big_field_length_1074: 1074 => Invalid;
        wrong_auto_key_1075: 1075 => Invalid;
        wrong_sub_key_1089: 1089 => Invalid;
        cant_remove_all_fields_1090: 1090 => Invalid;
        update_table_used_1093: 1093 => Invalid;
        invalid_group_func_use_1111: 1111 => Invalid;
        too_many_tables_1116: 1116 => Invalid;
        regexp_error_1139: 1139 => Invalid;
        blob_key_without_length_1170: 1170 => Invalid;
        ft_matching_key_not_found_1191: 1191 => Invalid;
        wrong_arguments_1210: 1210 => Invalid;
        wrong_usage_1221: 1221 => Invalid;
        union_column_count_1222: 1222 => Invalid;
        bad_ft_column_1283: 1283 => Invalid;
        duplicated_value_in_type_1291: 1291 => Invalid;
        wrong_object_1347: 1347 => Invalid;
        too_big_precision_1426: 1426 => Invalid;
        too_big_display_width_1439: 1439 => Invalid;
        range_not_increasing_1493: 1493 => Invalid;
        native_function_param_count_1582: 1582 => Invalid;
        partition_clause_on_plain_table_1747: 1747 => Invalid;
        unknown_explain_format_1791: 1791 => Invalid;
        function_not_allowed_in_column_1901: 1901 => Invalid;
        duplicate_window_name_4010: 4010 => Invalid;
        window_function_placement_4015: 4015 => Invalid;
        json_not_json_char_4036: 4036 => Invalid;
        json_end_of_text_4037: 4037 => Invalid;
        json_syntax_4038: 4038 => Invalid;
        json_escaping_4039: 4039 => Invalid;
        json_depth_4040: 4040 => Invalid;
        json_path_end_4041: 4041 => Invalid;
        json_path_syntax_4042: 4042 => Invalid;
        sequence_invalid_data_4085: 4085 => Invalid;
        not_a_sequence_4089: 4089 => Invalid;
        tvc_value_count_4099: 4099 => Invalid;
        not_system_versioned_4124: 4124 => Invalid;
        disk_full_1021: 1021 => Transient;
        engine_errno_1030: 1030 => Transient;
        out_of_memory_1037: 1037 => Transient;
        out_of_sort_memory_1038: 1038 => Transient;
        too_many_connections_1040: 1040 => Transient;
        out_of_resources_1041: 1041 => Transient;
        db_access_denied_1044: 1044 => Transient;
        access_denied_1045: 1045 => Transient;
        server_shutdown_1053: 1053 => Transient;
        table_full_1114: 1114 => Transient;
        cant_create_thread_1135: 1135 => Transient;
        table_access_denied_1142: 1142 => Transient;
        column_access_denied_1143: 1143 => Transient;
        packet_too_large_1153: 1153 => Transient;
        net_read_1158: 1158 => Transient;
        net_read_interrupted_1159: 1159 => Transient;
        net_write_1160: 1160 => Transient;
        net_write_interrupted_1161: 1161 => Transient;
        commit_error_1180: 1180 => Transient;
        rollback_error_1181: 1181 => Transient;
        too_many_user_connections_1203: 1203 => Transient;
        lock_wait_timeout_1205: 1205 => Transient;
        lock_table_full_1206: 1206 => Transient;
        deadlock_1213: 1213 => Transient;
        user_limit_1226: 1226 => Transient;
        specific_access_denied_1227: 1227 => Transient;
        read_only_1290: 1290 => Transient;
        query_interrupted_1317: 1317 => Transient;
        too_many_trxs_1637: 1637 => Transient;
        read_only_trx_1792: 1792 => Transient;
        connection_killed_1927: 1927 => Transient;
        statement_timeout_1969: 1969 => Transient;
        cant_connect_2002: 2002 => Transient;
        cant_connect_host_2003: 2003 => Transient;
        server_gone_2006: 2006 => Transient;
        server_lost_2013: 2013 => Transient;
        server_lost_extended_2055: 2055 => Transient;
        not_supported_yet_1235: 1235 => Invalid;
        name_collision_1630: 1630 => NotFound;
        signal_1644: 1644 => Invalid;
    }

    #[test]
    fn table_and_tests_agree() {
        assert_eq!(CLASSES.len(), EXPECTED.len(), "every table row has a test");
        for (code, class) in CLASSES {
            assert!(
                EXPECTED.contains(&(*code, *class)),
                "code {code} has no test"
            );
        }
        let mut codes: Vec<u16> = CLASSES.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CLASSES.len(), "no code is listed twice");
    }

    #[test]
    fn unlisted_server_codes_are_results_client_codes_transient() {
        for code in [1, 999, 1999, 3000, 4161, 65535] {
            assert_eq!(classify(code), Invalid, "{code}");
        }
        for code in [0, 2000, 2026, 2999] {
            assert_eq!(classify(code), Transient, "{code}");
        }
    }

    #[test]
    fn sqlstates_are_five_characters_and_default_to_hy000() {
        assert_eq!(sqlstate(1062), "23000");
        assert_eq!(sqlstate(1146), "42S02");
        assert_eq!(sqlstate(1064), "42000");
        assert_eq!(sqlstate(9999), "HY000");
        let mut codes: Vec<u16> = SQLSTATES.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), SQLSTATES.len(), "no code is listed twice");
        assert!(SQLSTATES.iter().all(|(_, s)| s.len() == 5));
    }

    #[test]
    fn http_statuses() {
        assert_eq!(classify(1146).http_status(), Some(404));
        assert_eq!(classify(1062).http_status(), Some(409));
        assert_eq!(classify(1452).http_status(), Some(409));
        assert_eq!(classify(1064).http_status(), Some(400));
        assert_eq!(classify(1213).http_status(), None);
        assert!(classify(1062).is_deterministic());
        assert!(!classify(2013).is_deterministic());
        assert_eq!(classify(1146).code(), "not_found");
        assert_eq!(classify(1062).code(), "conflict");
        assert_eq!(classify(1406).code(), "invalid");
        assert_eq!(classify(1205).code(), "unavailable");
    }

    #[test]
    fn ddl_already_applied_codes() {
        for code in [
            1007, 1008, 1050, 1051, 1060, 1061, 1068, 1091, 1146, 1304, 1305, 1359, 1360, 1826,
            4091, 4092,
        ] {
            assert!(ddl_already_applied(code, ""), "{code}");
            assert!(
                classify(code).is_deterministic(),
                "{code} is deterministic too"
            );
        }
        for code in [1062, 1064, 1054, 1213, 2013, 1021, 1005] {
            assert!(!ddl_already_applied(code, "boom"), "{code}");
        }
        // MariaDB 10.11's answer to adding foreign key `fk` a second time.
        let dup_fk =
            "Can't create table `app`.`p` (errno: 121 \"Duplicate key on write or update\")";
        assert!(ddl_already_applied(1005, dup_fk));
    }

    #[test]
    fn engine_errno_refines_1005_and_1025() {
        let malformed = "Can't create table `app`.`c` (errno: 150 \"Foreign key constraint is incorrectly formed\")";
        assert_eq!(classify_error(1005, malformed), Invalid);
        assert_eq!(classify_error(1025, malformed), Invalid);
        let dup = "Can't create table `app`.`p` (errno: 121 \"Duplicate key on write or update\")";
        assert_eq!(classify_error(1005, dup), Conflict);
        let full = "Can't create table `app`.`p` (errno: 28 \"No space left on device\")";
        assert_eq!(classify_error(1005, full), Transient);
        assert_eq!(
            classify_error(1062, "Duplicate entry '1' for key 'PRIMARY'"),
            Conflict
        );
        assert_eq!(classify_error(1213, "Deadlock found"), Transient);
    }
}
