//! The floor under TLS's cost: one rustls client and one server connection talking
//! through memory (no sockets, no runtime), timing what a record costs to seal on one
//! side and open on the other, per cipher suite. Whatever the transport does beyond this
//! per record is overhead that could be removed; this much cannot, short of sending
//! fewer records.

use anyhow::{Context, Result};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConnection, Connection, ServerConnection, SupportedCipherSuite};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;
use wolfscale::config::TlsConfig;
use wolfscale::tls::Material;

/// The ring provider with only `suite` (the nodes run ring; see `wolfscale::tls`).
#[allow(deprecated)]
fn provider(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![suite];
    Arc::new(p)
}

/// A handshaken client/server pair over the node certificates in `files`, restricted to
/// `suite`.
fn pair(files: &TlsConfig, suite: SupportedCipherSuite) -> Result<(Connection, Connection)> {
    let m = Material::load(files)?;
    let server = rustls::ServerConfig::builder_with_provider(provider(suite))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())?;
    let client = rustls::ClientConfig::builder_with_provider(provider(suite))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(m.roots.clone())
        .with_no_client_auth();
    let name = wolfscale::tls::server_name("127.0.0.1:1")?;
    let mut c = Connection::Client(ClientConnection::new(Arc::new(client), name)?);
    let mut s = Connection::Server(ServerConnection::new(Arc::new(server))?);
    let mut buf = Vec::new();
    for _ in 0..10 {
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok((c, s));
        }
        transfer(&mut c, &mut s, &mut buf)?;
        transfer(&mut s, &mut c, &mut buf)?;
    }
    anyhow::bail!("in-memory TLS handshake did not finish")
}

/// Moves every pending TLS byte from `from` to `to` and lets `to` process it.
fn transfer(from: &mut Connection, to: &mut Connection, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    while from.wants_write() {
        from.write_tls(buf)?;
    }
    let mut rd = buf.as_slice();
    while !rd.is_empty() {
        to.read_tls(&mut rd)?;
        to.process_new_packets()?;
    }
    Ok(())
}

/// Nanoseconds to seal a `size`-byte record on one side and open it on the other
/// (the plaintext copied in and out, as the transport does), averaged over `n`.
fn per_record(c: &mut Connection, s: &mut Connection, size: usize, n: usize) -> Result<f64> {
    let payload = vec![0x5au8; size];
    let mut out = vec![0u8; size];
    let mut buf = Vec::with_capacity(size + 64);
    let mut one = |c: &mut Connection, s: &mut Connection| -> Result<()> {
        c.writer().write_all(&payload)?;
        transfer(c, s, &mut buf)?;
        s.reader()
            .read_exact(&mut out)
            .context("read the record back")
    };
    for _ in 0..n / 10 {
        one(c, s)?;
    }
    let t = Instant::now();
    for _ in 0..n {
        one(c, s)?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e9 / n as f64)
}

/// Prints the per-record cost of each TLS 1.3 suite for the record sizes the benchmark's
/// calls send, and what the negotiated default costs per echo call (two records, one
/// each way).
pub fn run(files: &TlsConfig, plain_cpu_us_per_call: Option<f64>) -> Result<()> {
    use rustls::crypto::ring::cipher_suite as cs;
    let suites = [
        ("AES-128-GCM", cs::TLS13_AES_128_GCM_SHA256),
        ("AES-256-GCM", cs::TLS13_AES_256_GCM_SHA384),
        ("CHACHA20-POLY1305", cs::TLS13_CHACHA20_POLY1305_SHA256),
    ];
    println!("record floor (rustls in memory, one thread; seal + open of one record):");
    let sizes = [128usize, 1024, 16 * 1024];
    let mut echo_ns = None;
    for (name, suite) in suites {
        let (mut c, mut s) = pair(files, suite)?;
        let mut cells = Vec::new();
        for size in sizes {
            let n = (20_000_000 / (size + 200)).max(1000);
            let ns = per_record(&mut c, &mut s, size, n)?;
            cells.push(format!(
                "{size:>6} B {:>6.2} µs ({:>5.2} GB/s)",
                ns / 1e3,
                size as f64 / ns
            ));
            if size == 1024 && wolfscale_default(&c) == Some(suite.suite()) {
                echo_ns = Some(2.0 * ns);
            }
        }
        println!("  {name:<18} {}", cells.join("   "));
    }
    if let (Some(ns), Some(plain)) = (echo_ns, plain_cpu_us_per_call) {
        println!(
            "  the nodes' suite, one 1 KiB echo call (two records): {:.2} µs = {:.1} % of a plain \
             call's {plain:.1} µs CPU",
            ns / 1e3,
            ns / 1e3 / plain * 100.0
        );
    }
    Ok(())
}

/// The suite a node would negotiate (the first of its provider's list that `c` shares).
fn wolfscale_default(c: &Connection) -> Option<rustls::CipherSuite> {
    let first = wolfscale::tls::cipher_suites().first()?.suite();
    c.negotiated_cipher_suite()
        .filter(|s| s.suite() == first)
        .map(|s| s.suite())
}
