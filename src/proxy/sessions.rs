//! The live connections of this node's front end, by the connection id the handshake
//! sent (what `CONNECTION_ID()` answers and `KILL` names, as the `mariadb` CLI's Ctrl-C
//! does), and how a statement under way is interrupted.
//!
//! A statement is interrupted by `KILL QUERY` from another connection of the same user,
//! or by its own `SET STATEMENT max_statement_time = … FOR` limit:
//! - a read outside a transaction runs on the read pool: its future is dropped, which
//!   kills it on MariaDB (`apply::read`), and the client gets 1317 at once;
//! - a statement of an interactive transaction runs on that transaction's own MariaDB
//!   connection: `KILL QUERY` is sent to that connection's thread, MariaDB stops the
//!   statement (and undoes it) and the transaction goes on, as in MariaDB;
//! - a write handed to the log, or a COMMIT, cannot be taken back: it runs to its end and
//!   its client gets its real result.
//!
//! `KILL CONNECTION` also ends the connection: its open transaction is rolled back and
//! its client sees the connection closed (a write already handed to the log still
//! applies, as after any disconnect).
//!
//! The `KILL QUERY` sent to MariaDB is the only statement the front end sends on a
//! connection of its own: the read pool and the transactions' pool serve clients.

use super::wire::MyError;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long sending a `KILL QUERY` to MariaDB may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a statement ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// `KILL QUERY` or `KILL CONNECTION` from a client.
    Killed,
    /// Its `SET STATEMENT max_statement_time` ran out.
    TimedOut,
}

impl Interrupt {
    /// What the client of the interrupted statement gets, as from MariaDB.
    pub fn error(self) -> MyError {
        match self {
            Interrupt::Killed => MyError::new(1317, "Query execution was interrupted"),
            Interrupt::TimedOut => MyError::new(
                1969,
                "Query execution was interrupted (max_statement_time exceeded)",
            ),
        }
    }
}

/// The live connections of one front end.
pub struct Sessions {
    open: Mutex<HashMap<u32, Arc<Entry>>>,
    killer: Killer,
}

impl Sessions {
    /// No connection yet; `KILL QUERY` reaches MariaDB with `mariadb` (the node's own
    /// connection options).
    pub fn new(mariadb: Option<mysql_async::Opts>) -> Sessions {
        Sessions {
            open: Mutex::new(HashMap::new()),
            killer: Killer { opts: mariadb },
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Arc<Entry>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers connection `id` until the returned handle is dropped.
    pub fn register(self: &Arc<Self>, id: u32) -> Registered {
        let entry = Arc::new(Entry {
            id,
            user: Mutex::new(None),
            running: Mutex::new(None),
            close: CancellationToken::new(),
        });
        self.lock().insert(id, entry.clone());
        Registered {
            entry,
            sessions: self.clone(),
        }
    }

    /// Connection `id`, if it is open.
    pub fn get(&self, id: u32) -> Option<Arc<Entry>> {
        self.lock().get(&id).cloned()
    }

    /// What sends `KILL QUERY` to MariaDB.
    pub fn killer(&self) -> &Killer {
        &self.killer
    }
}

/// A registered connection; dropping it removes it from [`Sessions`].
pub struct Registered {
    entry: Arc<Entry>,
    sessions: Arc<Sessions>,
}

impl Registered {
    /// The connection's entry.
    pub fn entry(&self) -> &Arc<Entry> {
        &self.entry
    }

    /// All connections.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.entry.id);
    }
}

/// One open connection, as other connections see it.
pub struct Entry {
    id: u32,
    /// Who logged in (`None` until then).
    user: Mutex<Option<Vec<u8>>>,
    /// The statement under way, if it can be interrupted.
    running: Mutex<Option<Running>>,
    /// Cancelled by `KILL CONNECTION`: the connection ends.
    close: CancellationToken,
}

struct Running {
    token: CancellationToken,
    /// The MariaDB thread the statement runs on, when it runs on a connection of its own.
    thread: Option<u32>,
    why: Option<Interrupt>,
}

impl Entry {
    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user who logged in on it.
    pub fn user(&self) -> Option<Vec<u8>> {
        self.user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records who logged in (at login and COM_CHANGE_USER).
    pub fn set_user(&self, user: &[u8]) {
        *self.user.lock().unwrap_or_else(PoisonError::into_inner) = Some(user.to_vec());
    }

    /// Cancelled when `KILL CONNECTION` ends this connection.
    pub fn closed(&self) -> CancellationToken {
        self.close.clone()
    }

    /// Ends the connection.
    pub fn close(&self) {
        self.close.cancel();
    }

    /// A statement starts: from now until [`Entry::finish`], it can be interrupted.
    pub fn start(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.running() = Some(Running {
            token: token.clone(),
            thread: None,
            why: None,
        });
        token
    }

    /// The statement ended; whether it was interrupted meanwhile.
    pub fn finish(&self) -> Option<Interrupt> {
        self.running().take().and_then(|r| r.why)
    }

    /// Why the statement under way was interrupted, if it was.
    pub fn interrupted(&self) -> Option<Interrupt> {
        self.running().as_ref().and_then(|r| r.why)
    }

    /// Interrupts the statement under way (if any, and only once): its token is
    /// cancelled, and the MariaDB thread it runs on, if it has one of its own, is
    /// returned for the caller to send `KILL QUERY` to.
    pub fn interrupt(&self, why: Interrupt) -> Option<u32> {
        let mut running = self.running();
        let r = running.as_mut()?;
        if r.why.is_some() {
            return None;
        }
        r.why = Some(why);
        r.token.cancel();
        r.thread
    }

    /// The statement under way now runs on MariaDB thread `thread` (`None`: no longer).
    /// Answers why, if it was interrupted already (then it must not start).
    fn on_thread(&self, thread: Option<u32>) -> Option<Interrupt> {
        let mut running = self.running();
        let r = running.as_mut()?;
        r.thread = thread;
        r.why
    }
}

/// Sends `KILL QUERY` to MariaDB on a connection of its own.
pub struct Killer {
    opts: Option<mysql_async::Opts>,
}

impl Killer {
    /// Stops the statement MariaDB thread `thread` runs (its connection stays open).
    pub async fn kill_query(&self, thread: u32) {
        let Some(opts) = self.opts.clone() else {
            tracing::warn!(
                thread,
                "cannot stop a statement: no mariadb connection options"
            );
            return;
        };
        let kill = async {
            let mut conn = mysql_async::Conn::new(opts).await?;
            // Already ended (1094, unknown thread): nothing left to stop.
            let sent = conn
                .query_drop(crate::sql::session::kill_query(thread))
                .await;
            conn.disconnect().await?;
            match sent {
                Err(mysql_async::Error::Server(e)) if e.code == 1094 => Ok(()),
                other => other,
            }
        };
        match tokio::time::timeout(KILL_TIMEOUT, kill).await {
            Ok(Ok(())) => tracing::debug!(thread, "statement killed on mariadb"),
            Ok(Err(e)) => tracing::warn!(thread, error = %e, "cannot kill a statement on mariadb"),
            Err(_) => tracing::warn!(thread, "killing a statement on mariadb timed out"),
        }
    }
}

/// How the statement under way on one connection may be interrupted: by `token`
/// (cancelled by a `KILL`), and at `deadline` (its `max_statement_time`).
pub struct Watch<'a> {
    /// The connection.
    pub entry: &'a Entry,
    /// Cancelled when the statement is interrupted.
    pub token: CancellationToken,
    /// When `max_statement_time` runs out.
    pub deadline: Option<Instant>,
    /// For a statement on a thread of its own.
    pub killer: &'a Killer,
}

impl Watch<'_> {
    /// Runs `work`, which may be dropped part way (a read on the read pool, opening a
    /// transaction): an interruption drops it.
    ///
    /// # Errors
    /// Why it was interrupted.
    pub async fn droppable<F: Future>(&self, work: F) -> Result<F::Output, Interrupt> {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            out = work => Ok(out),
            _ = self.token.cancelled() => Err(self.entry.interrupted().unwrap_or(Interrupt::Killed)),
            _ = deadline => {
                self.entry.interrupt(Interrupt::TimedOut);
                Err(self.entry.interrupted().unwrap_or(Interrupt::TimedOut))
            }
        }
    }

    /// Runs `work`, a statement on MariaDB thread `thread` (an interactive transaction's
    /// connection), to its end: an interruption meanwhile sends `KILL QUERY` to that
    /// thread, so MariaDB ends the statement with 1317 and undoes it.
    ///
    /// # Errors
    /// Why, when it was interrupted before it started (then it did not run).
    pub async fn on_thread<F: Future>(&self, thread: u32, work: F) -> Result<F::Output, Interrupt> {
        if let Some(why) = self.entry.on_thread(Some(thread)) {
            self.entry.on_thread(None);
            return Err(why);
        }
        tokio::pin!(work);
        // Without a deadline the timer is never armed (and never polled).
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let timer = tokio::time::sleep_until(self.deadline.unwrap_or(far).into());
        tokio::pin!(timer);
        let mut armed = self.deadline.is_some();
        let out = loop {
            tokio::select! {
                out = &mut work => break out,
                () = &mut timer, if armed => {
                    armed = false;
                    if let Some(thread) = self.entry.interrupt(Interrupt::TimedOut) {
                        self.killer.kill_query(thread).await;
                    }
                }
            }
        };
        self.entry.on_thread(None);
        Ok(out)
    }

    /// Why the statement was interrupted, if it was.
    pub fn interrupted(&self) -> Option<Interrupt> {
        self.entry.interrupted()
    }
}
