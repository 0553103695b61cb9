//! Request JSON → `Command` validation: the bytes a client sends to a write route (byte 0
//! picks the route), through serde and `command::prepare`, as the API does. Checks: no
//! panic; an accepted entry round-trips through the log codec; every statement built
//! from validated names is one statement whose `?` count matches its parameters under
//! our own SQL checker (a name can never break out of its quoting). The rest of the input
//! is also fed to `Entry::decode`, the decoder the applier runs on log bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use wolfscale::command::{self, Command, Entry, WriteRequest};

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    if let Ok(entry) = Entry::decode(body) {
        assert_eq!(Entry::decode(&entry.encode()), Ok(entry));
    }
    let request = match route % 6 {
        0 => parse(body).map(WriteRequest::Insert),
        1 => parse(body).map(WriteRequest::Update),
        2 => parse(body).map(WriteRequest::Delete),
        3 => parse(body).map(WriteRequest::Ddl),
        4 => parse(body).map(WriteRequest::Sql),
        _ => {
            if let Some(q) = parse::<wolfscale::api::QueryRequest>(body) {
                let _ = wolfscale::sql::check_read(&q.sql, q.params.len());
            }
            None
        }
    };
    let Some(request) = request else {
        return;
    };
    let mut next = 1u64;
    let Ok(entry) = command::prepare(request, 1_700_000_000_000_000, &mut || {
        next += 1;
        next
    }) else {
        return;
    };
    assert_eq!(Entry::decode(&entry.encode()).as_ref(), Ok(&entry));
    let built = matches!(
        entry.command,
        Command::Insert { .. } | Command::Update { .. } | Command::Delete { .. }
    );
    if built {
        for st in wolfscale::sql::statements(&entry.command) {
            if let Err(e) = wolfscale::sql::check_write(&st.sql, st.params.len()) {
                panic!("built statement {:?} fails our own checker: {e}", st.sql);
            }
        }
    }
});
