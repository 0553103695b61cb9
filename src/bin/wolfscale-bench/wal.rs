//! The WAL benchmark: appenders on tokio tasks against a write + fdatasync baseline.

use anyhow::Context;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wolfscale::config::WalConfig;
use wolfscale::wal::{Preallocate, Record, Wal, WalOptions};

#[derive(Default)]
struct Outcome {
    appends: u64,
    payload_bytes: u64,
    written_bytes: u64,
    syncs: u64,
    sync_nanos: u64,
    batches: u64,
    secs: f64,
    base_bytes: u64,
    base_syncs: u64,
    base_secs: f64,
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `appenders` tasks appending one `payload` record at a time for `secs`.
fn drive(
    rt: &tokio::runtime::Runtime,
    wal: &Wal,
    payload: &bytes::Bytes,
    appenders: usize,
    secs: f64,
) -> anyhow::Result<u64> {
    let order = Arc::new(Mutex::new(()));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..appenders {
            let (wal, order, payload) = (wal.clone(), order.clone(), payload.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let fut = {
                        let _g = order.lock().expect("lsn order lock is never poisoned");
                        let lsn = wal.next_lsn();
                        wal.append(vec![Record::new(lsn, 1, payload.clone())])
                    };
                    fut.await?;
                    n += 1;
                }
                anyhow::Ok(n)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await??;
        }
        anyhow::Ok(total)
    })
}

/// One case: `ROUNDS` alternating slices of WAL appends and of the baseline (write +
/// fdatasync of the WAL's mean bytes per sync from the slice just before), so that both
/// see the same disk conditions on a shared machine.
fn measure(
    dir: &Path,
    size: usize,
    appenders: usize,
    fsync: bool,
    prealloc: Preallocate,
    secs: f64,
) -> anyhow::Result<Outcome> {
    const ROUNDS: u32 = 4;
    let wal_dir = dir.join("wal");
    let _ = std::fs::remove_dir_all(&wal_dir);
    let opts = WalOptions {
        fsync,
        preallocate: prealloc,
        ..WalOptions::from(&WalConfig::default())
    };
    let wal = Wal::open(&wal_dir, opts).context("open wal")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let payload = bytes::Bytes::from(noise(size, size as u64));
    // Warm-up outside the clock: creates (and preallocates) the first segment.
    wal.append_blocking(vec![Record::new(1, 1, payload.clone())])?;
    let base_path = dir.join("baseline.dat");
    let mut base = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&base_path)?;
    let mut o = Outcome::default();
    let slice = secs / f64::from(ROUNDS);
    for _ in 0..ROUNDS {
        let m0 = wal.metrics();
        let started = Instant::now();
        let n = drive(&rt, &wal, &payload, appenders, slice)?;
        o.secs += started.elapsed().as_secs_f64();
        let m1 = wal.metrics();
        o.appends += n;
        o.payload_bytes += n * size as u64;
        o.written_bytes += m1.bytes - m0.bytes;
        o.syncs += m1.syncs - m0.syncs;
        o.sync_nanos += m1.sync_nanos - m0.sync_nanos;
        o.batches += m1.batches - m0.batches;
        if fsync {
            // The baseline writes, per fdatasync, what the WAL made durable per sync.
            let batch = ((m1.bytes - m0.bytes) / (m1.syncs - m0.syncs).max(1)).max(1);
            let buf = noise(batch as usize, 7);
            let deadline = Instant::now() + Duration::from_secs_f64(slice);
            let started = Instant::now();
            while Instant::now() < deadline {
                base.write_all(&buf)?;
                base.sync_data()?;
                o.base_bytes += buf.len() as u64;
                o.base_syncs += 1;
            }
            o.base_secs += started.elapsed().as_secs_f64();
        }
    }
    wal.close().context("close wal")?;
    drop(base);
    std::fs::remove_file(&base_path)?;
    let _ = std::fs::remove_dir_all(&wal_dir);
    Ok(o)
}

fn prealloc_name(p: Preallocate) -> &'static str {
    match p {
        Preallocate::None => "none",
        Preallocate::Fallocate => "fallocate",
        Preallocate::ZeroFill => "zero-fill",
    }
}

/// Runs the whole matrix and prints one line per case.
pub fn run(dir: &Path, secs: f64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    println!(
        "wal benchmark in {} ({secs} s per case in 4 slices alternating with the baseline, \
         batch_size 1000, segment 64 MiB, lz4 on, incompressible payloads; rec/sync = records \
         per fdatasync (fsync off: per write); busy = share of the time spent in fdatasync)",
        dir.display()
    );
    println!(
        "{:>6} {:>5} {:>5} {:>10} | {:>11} {:>9} {:>9} {:>8} {:>9} {:>5} | {:>10} {:>9} {:>6}",
        "size",
        "tasks",
        "fsync",
        "prealloc",
        "appends/s",
        "MB/s",
        "disk MB/s",
        "syncs/s",
        "rec/sync",
        "busy",
        "base MB/s",
        "base sync",
        "ratio"
    );
    for size in [100usize, 4096] {
        for appenders in [1usize, 16, 256] {
            for (fsync, prealloc) in [
                (true, Preallocate::Fallocate),
                (true, Preallocate::ZeroFill),
                (true, Preallocate::None),
                (false, Preallocate::Fallocate),
            ] {
                let o = measure(dir, size, appenders, fsync, prealloc, secs)?;
                let disk = o.written_bytes as f64 / o.secs;
                let mut line = format!(
                    "{:>6} {:>5} {:>5} {:>10} | {:>11.0} {:>9.2} {:>9.2} {:>8.0} {:>9.1} {:>4.0}% |",
                    size,
                    appenders,
                    if fsync { "on" } else { "off" },
                    prealloc_name(prealloc),
                    o.appends as f64 / o.secs,
                    o.payload_bytes as f64 / o.secs / 1e6,
                    disk / 1e6,
                    o.syncs as f64 / o.secs,
                    o.appends as f64 / if fsync { o.syncs } else { o.batches }.max(1) as f64,
                    o.sync_nanos as f64 / 1e9 / o.secs * 100.0,
                );
                if fsync {
                    let bb = o.base_bytes as f64 / o.base_secs;
                    let bs = o.base_syncs as f64 / o.base_secs;
                    line.push_str(&format!(
                        " {:>10.2} {:>9.0} {:>6.2}",
                        bb / 1e6,
                        bs,
                        disk / bb
                    ));
                }
                println!("{line}");
            }
        }
    }
    // Leaves a directory the caller made; removes only an empty one this run created.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Opens a WAL in `dir` and tries two appends, printing each outcome.
pub fn probe(dir: &Path) -> anyhow::Result<()> {
    let wal = Wal::open(dir, WalOptions::from(&WalConfig::default())).context("open wal")?;
    for i in 1..=2 {
        let lsn = wal.next_lsn();
        match wal.append_blocking(vec![Record::new(lsn, 1, b"probe".to_vec())]) {
            Ok(()) => println!("append {i}: ok"),
            Err(e) => println!("append {i}: error: {e}"),
        }
    }
    match wal.close() {
        Ok(()) => println!("close: ok"),
        Err(e) => println!("close: error: {e}"),
    }
    Ok(())
}
