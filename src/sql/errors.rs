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
    /// Retry with backoff and report the node DEGRADED meanwhile: the connection, the
    /// server, locks, resources, privileges or a code this build does not know. Unknown
    /// codes land here on purpose: stalling visibly is recoverable, while skipping an entry
    /// that another node applied is not.
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

/// The class of MariaDB error number `code`; unknown numbers are transient.
pub fn classify(code: u16) -> ErrorClass {
    CLASSES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(ErrorClass::Transient, |(_, class)| *class)
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

/// Whether error `code` from re-applying an in-flight DDL entry means it already took
/// effect before the crash. Only for that re-apply: on a first apply these are ordinary
/// deterministic results.
pub fn ddl_already_applied(code: u16) -> bool {
    ALREADY_APPLIED.contains(&code)
}
