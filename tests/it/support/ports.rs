//! Free loopback ports for servers the tests start (MariaDB now, WolfScale nodes later).
//! It only hands out numbers; it does not own the sockets the servers bind.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{LazyLock, Mutex, MutexGuard};

/// Ports held by live reservations in this test binary. The kernel only knows about ports
/// that are bound right now; this set also covers a server that is down for a restart.
static RESERVED: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Mutex::default);

fn reserved() -> MutexGuard<'static, HashSet<u16>> {
    // A test that panicked while holding the lock leaves the set intact: keep using it.
    RESERVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A port that no other reservation in this binary holds, released on drop. Another
/// process may still take it between the probe and the server's bind: callers retry on
/// "address in use".
#[derive(Debug)]
pub struct PortReservation {
    port: u16,
}

impl PortReservation {
    /// Asks the kernel for a free port on `host` (bind to port 0) that is not reserved yet.
    ///
    /// # Errors
    /// The bind fails (e.g. `host` is not a local address), or 100 probes in a row hit
    /// reserved ports.
    pub fn new(host: Ipv4Addr) -> io::Result<Self> {
        for _ in 0..100 {
            let port = TcpListener::bind((host, 0))?.local_addr()?.port();
            if reserved().insert(port) {
                return Ok(PortReservation { port });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no unreserved free port found on {host}"),
        ))
    }

    /// The reserved port number.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortReservation {
    fn drop(&mut self) {
        reserved().remove(&self.port);
    }
}
