//! An explicit transaction of one connection (`BEGIN` … `COMMIT`, or `autocommit=0`).
//! Its reads run on this node's MariaDB like any other read; a write inside it is
//! refused with a clear error until certified transactions (issue 15) record the
//! transaction's statements here and send them to the log as one
//! `Command::Certified` entry at COMMIT. Nothing is ever silently autocommitted.

use super::wire::MyError;
use crate::command::WriteRequest;

/// The open transaction of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// `START TRANSACTION READ ONLY`.
    pub read_only: bool,
}

impl Transaction {
    /// A transaction opened by BEGIN / START TRANSACTION.
    pub fn begin(read_only: bool) -> Transaction {
        Transaction { read_only }
    }

    /// A write inside this transaction: the error the client gets (nothing was written).
    /// Issue 15 replaces this with recording the statement for certification.
    pub fn write(&mut self, _request: &WriteRequest) -> MyError {
        if self.read_only {
            return MyError::new(1792, "Cannot execute statement in a READ ONLY transaction");
        }
        MyError::unsupported(
            "WolfScale's MySQL front end does not run writes inside an explicit transaction \
             yet (BEGIN … COMMIT): nothing was written; send the write outside the \
             transaction, with autocommit on",
        )
    }

    /// A write with `autocommit=0` and no BEGIN: refused like one inside a transaction.
    pub fn implicit_write() -> MyError {
        MyError::unsupported(
            "WolfScale's MySQL front end does not run writes with autocommit=0 yet (each \
             write would have to wait for COMMIT): nothing was written; SET autocommit=1",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{DdlRequest, Wait};

    #[test]
    fn writes_inside_a_transaction_are_refused_with_the_reason() {
        let w = WriteRequest::Ddl(DdlRequest {
            ddl: "CREATE TABLE t (a INT)".into(),
            wait: Wait::Quorum,
        });
        let e = Transaction::begin(true).write(&w);
        assert_eq!((e.kind as u16, e.kind.sqlstate()), (1792, b"25006"));
        let e = Transaction::begin(false).write(&w);
        assert_eq!(e.kind as u16, 1235);
        assert!(e.message.contains("nothing was written"), "{}", e.message);
    }
}
