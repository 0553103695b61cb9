//! Snowflake IDs: 64-bit, roughly time-ordered identifiers that any node can generate
//! without asking the others (the leader puts them into log entries so every replica stores
//! the same value).
//!
//! Layout, most significant bit first: 1 bit always 0 (so an ID fits a signed `BIGINT`),
//! 41 bits of milliseconds since [`EPOCH_UNIX_MS`], 10 bits of node number, 12 bits of
//! sequence. This module owns the layout, the generator and its clock; it does not decide
//! which node number a node gets (that is configuration) nor how IDs reach the log.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The custom epoch, 2024-01-01T00:00:00Z in Unix milliseconds: IDs stay small and the
/// 41-bit range lasts until 2093-09-06.
pub const EPOCH_UNIX_MS: u64 = 1_704_067_200_000;
/// Largest node number (10 bits).
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
/// Largest sequence number within one millisecond (12 bits).
pub const MAX_SEQUENCE: u16 = (1 << SEQUENCE_BITS) - 1;
/// Largest timestamp field: milliseconds since the epoch (41 bits).
pub const MAX_TIMESTAMP: u64 = (1 << 41) - 1;
/// Most IDs one call to [`Generator::next_batch`] hands out (`GET /id?count=N`).
pub const MAX_BATCH: usize = 10_000;
/// How far the clock may go back before the generator fails instead of waiting.
pub const DEFAULT_MAX_BACKWARDS: Duration = Duration::from_secs(5);

const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const NODE_SHIFT: u32 = SEQUENCE_BITS;
const TIMESTAMP_SHIFT: u32 = SEQUENCE_BITS + NODE_BITS;
const SEQUENCE_SPAN: u64 = MAX_SEQUENCE as u64 + 1;

/// Why an ID could not be made, decoded or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("node number {node} is out of range: Snowflake node numbers are 0 to {MAX_NODE}")]
    NodeOutOfRange { node: u16 },
    #[error("sequence {sequence} is out of range: at most {MAX_SEQUENCE}")]
    SequenceOutOfRange { sequence: u16 },
    /// The clock is further behind the last issued ID than the generator's bound; the
    /// caller should retry later or report the node's clock as broken.
    #[error(
        "the clock went backwards by {by:?}, more than the {bound:?} the ID generator waits for"
    )]
    ClockWentBackwards { by: Duration, bound: Duration },
    #[error("time {unix_ms} ms is before the Snowflake epoch 2024-01-01T00:00:00Z")]
    BeforeEpoch { unix_ms: u64 },
    /// The 41-bit timestamp has run out: IDs need a new epoch or layout.
    #[error("time {unix_ms} ms is past the end of the 41-bit Snowflake range (2093-09-06)")]
    EpochExhausted { unix_ms: u64 },
    #[error("{raw} is not a Snowflake ID: its top bit must be 0")]
    TopBitSet { raw: u64 },
    #[error("{input:?} is not a Snowflake ID: expected a decimal number")]
    NotANumber { input: String },
    #[error("asked for {requested} IDs at once; at most {MAX_BATCH} per request")]
    BatchTooLarge { requested: usize },
}

/// A Snowflake ID; the invariant "top bit is 0" holds for every value, so it converts to
/// `i64` losslessly. Serialized as a plain number: JavaScript's `JSON.parse` loses precision
/// above 2^53, which every ID made since 2024-01-26 exceeds, so JS clients must read IDs as
/// `BigInt` (or the API must send them as strings).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u64", into = "u64")]
pub struct SnowflakeId(u64);

impl SnowflakeId {
    /// The raw value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The value as MariaDB's signed `BIGINT` stores it (always non-negative).
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).expect("a SnowflakeId never has its top bit set")
    }
}

impl TryFrom<u64> for SnowflakeId {
    type Error = IdError;

    fn try_from(raw: u64) -> Result<Self, IdError> {
        if raw > i64::MAX as u64 {
            return Err(IdError::TopBitSet { raw });
        }
        Ok(Self(raw))
    }
}

impl From<SnowflakeId> for u64 {
    fn from(id: SnowflakeId) -> u64 {
        id.0
    }
}

impl fmt::Display for SnowflakeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SnowflakeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let raw = s
            .parse::<u64>()
            .map_err(|_| IdError::NotANumber { input: s.into() })?;
        Self::try_from(raw)
    }
}

/// The three fields of an ID, with the timestamp as Unix milliseconds (not epoch-relative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub timestamp_ms: u64,
    pub node: u16,
    pub sequence: u16,
}

/// Splits an ID into its fields; total, because every `SnowflakeId` has a valid layout.
pub fn decode(id: SnowflakeId) -> Parts {
    Parts {
        timestamp_ms: (id.0 >> TIMESTAMP_SHIFT) + EPOCH_UNIX_MS,
        node: ((id.0 >> NODE_SHIFT) & u64::from(MAX_NODE)) as u16,
        sequence: (id.0 & u64::from(MAX_SEQUENCE)) as u16,
    }
}

/// Builds an ID from its fields.
///
/// # Errors
/// A timestamp outside the epoch's 41-bit range, a node above 1023 or a sequence above 4095.
pub fn encode(parts: Parts) -> Result<SnowflakeId, IdError> {
    let ts = epoch_ms(parts.timestamp_ms)?;
    if parts.node > MAX_NODE {
        return Err(IdError::NodeOutOfRange { node: parts.node });
    }
    if parts.sequence > MAX_SEQUENCE {
        return Err(IdError::SequenceOutOfRange {
            sequence: parts.sequence,
        });
    }
    Ok(SnowflakeId(pack(ts, parts.node, u64::from(parts.sequence))))
}

fn pack(epoch_ms: u64, node: u16, sequence: u64) -> u64 {
    (epoch_ms << TIMESTAMP_SHIFT) | (u64::from(node) << NODE_SHIFT) | sequence
}

fn epoch_ms(unix_ms: u64) -> Result<u64, IdError> {
    let ts = unix_ms
        .checked_sub(EPOCH_UNIX_MS)
        .ok_or(IdError::BeforeEpoch { unix_ms })?;
    if ts > MAX_TIMESTAMP {
        return Err(IdError::EpochExhausted { unix_ms });
    }
    Ok(ts)
}

/// Where the generator reads the time; injectable so tests can stop it or turn it back.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> u64;
}

/// The system wall clock, the production [`Clock`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        // A clock before 1970 reads as 0, which the generator reports as `BeforeEpoch`.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that only moves when told to, for deterministic tests here and in other modules.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `unix_ms`.
    pub fn new(unix_ms: u64) -> Self {
        Self(AtomicU64::new(unix_ms))
    }

    /// Sets the time, forwards or backwards.
    pub fn set(&self, unix_ms: u64) {
        self.0.store(unix_ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The outcome of one non-blocking attempt to take an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Issued(SnowflakeId),
    /// No ID can be issued before this much time passes: the millisecond's 4096 sequence
    /// numbers are used up, or the clock is behind the last issued ID.
    WouldWait(Duration),
}

/// A run of consecutive IDs `first..first + count`, or how long to wait for one.
enum Reserved {
    Range { first: u64, count: u64 },
    Wait(Duration),
}

/// Issues IDs for one node number: unique and strictly increasing across all callers of
/// the same generator, and never reissued when the clock goes back. Share it via `Arc`.
///
/// IDs are unique across restarts only if the clock does not go back across the restart.
//
// The state is one AtomicU64 holding the last issued ID, updated by a compare-and-swap
// loop. An ID packs exactly the (timestamp, sequence) state a Snowflake generator needs,
// so no lock is required: `try_next` never blocks, nothing can be poisoned, and contention
// costs a retry, not a context switch.
#[derive(Debug)]
pub struct Generator {
    node: u16,
    clock: Arc<dyn Clock>,
    max_backwards: Duration,
    last: AtomicU64,
}

impl Generator {
    /// A generator on the system clock.
    ///
    /// # Errors
    /// [`IdError::NodeOutOfRange`] when `node` exceeds 1023.
    pub fn new(node: u16) -> Result<Self, IdError> {
        Self::with_clock(node, Arc::new(SystemClock))
    }

    /// A generator reading `clock`, for tests.
    ///
    /// # Errors
    /// [`IdError::NodeOutOfRange`] when `node` exceeds 1023.
    pub fn with_clock(node: u16, clock: Arc<dyn Clock>) -> Result<Self, IdError> {
        if node > MAX_NODE {
            return Err(IdError::NodeOutOfRange { node });
        }
        let max_backwards = DEFAULT_MAX_BACKWARDS;
        // "Timestamp 0, sequence 0 already issued": the epoch's first millisecond is past.
        Ok(Self {
            node,
            clock,
            max_backwards,
            last: AtomicU64::new(pack(0, node, 0)),
        })
    }

    /// Sets how far back the clock may go before calls fail instead of waiting.
    pub fn max_backwards(mut self, bound: Duration) -> Self {
        self.max_backwards = bound;
        self
    }

    /// This generator's node number.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// Takes the next ID if one is available now; never sleeps.
    ///
    /// # Errors
    /// The clock went back by more than the bound, or is outside the epoch's range.
    pub fn try_next(&self) -> Result<Attempt, IdError> {
        Ok(match self.try_reserve(1)? {
            Reserved::Range { first, .. } => Attempt::Issued(SnowflakeId(first)),
            Reserved::Wait(d) => Attempt::WouldWait(d),
        })
    }

    /// Takes the next ID, sleeping the thread while it must wait. Not for async code.
    ///
    /// # Errors
    /// As [`Generator::try_next`].
    pub fn next_blocking(&self) -> Result<SnowflakeId, IdError> {
        loop {
            match self.try_next()? {
                Attempt::Issued(id) => return Ok(id),
                Attempt::WouldWait(d) => std::thread::sleep(d),
            }
        }
    }

    /// Takes the next ID, yielding to the runtime while it must wait.
    ///
    /// # Errors
    /// As [`Generator::try_next`].
    pub async fn next(&self) -> Result<SnowflakeId, IdError> {
        loop {
            match self.try_next()? {
                Attempt::Issued(id) => return Ok(id),
                Attempt::WouldWait(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Takes `n` increasing IDs, reserving each millisecond's run in one step.
    ///
    /// # Errors
    /// [`IdError::BatchTooLarge`] above [`MAX_BATCH`]; otherwise as [`Generator::try_next`].
    pub async fn next_batch(&self, n: usize) -> Result<Vec<SnowflakeId>, IdError> {
        if n > MAX_BATCH {
            return Err(IdError::BatchTooLarge { requested: n });
        }
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            let want = (n - ids.len()).min(SEQUENCE_SPAN as usize) as u64;
            match self.try_reserve(want)? {
                Reserved::Range { first, count } => {
                    ids.extend((first..first + count).map(SnowflakeId))
                }
                Reserved::Wait(d) => tokio::time::sleep(d).await,
            }
        }
        Ok(ids)
    }

    /// Reserves up to `want` (1..=4096) consecutive IDs in the current millisecond.
    fn try_reserve(&self, want: u64) -> Result<Reserved, IdError> {
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            // Read the clock after loading `last`: any ID another caller issued from a later
            // clock reading is then already visible, so `now < last_ts` means a real step back.
            let now = epoch_ms(self.clock.now_unix_ms())?;
            let (last_ts, last_seq) = (last >> TIMESTAMP_SHIFT, last & u64::from(MAX_SEQUENCE));
            let (ts, first_seq) = if now > last_ts {
                (now, 0)
            } else {
                // Clock on or behind the last ID's millisecond: keep that timestamp and use its
                // remaining sequence numbers; once they are gone, wait for the clock to pass it.
                let behind = Duration::from_millis(last_ts - now);
                if behind > self.max_backwards {
                    return Err(IdError::ClockWentBackwards {
                        by: behind,
                        bound: self.max_backwards,
                    });
                }
                if last_seq == u64::from(MAX_SEQUENCE) {
                    if !behind.is_zero() {
                        tracing::debug!(behind_ms = last_ts - now, "clock behind last id; waiting");
                    }
                    return Ok(Reserved::Wait(behind + Duration::from_millis(1)));
                }
                (last_ts, last_seq + 1)
            };
            let count = want.min(SEQUENCE_SPAN - first_seq);
            let first = pack(ts, self.node, first_seq);
            let new_last = first + count - 1;
            match self.last.compare_exchange_weak(
                last,
                new_last,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Reserved::Range { first, count }),
                Err(current) => last = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;

    /// 2025-06-01T00:00:00Z: well inside the range, so tests can move back and forth.
    const T0: u64 = 1_748_736_000_000;

    fn manual(node: u16, at: u64) -> (Arc<ManualClock>, Generator) {
        let clock = Arc::new(ManualClock::new(at));
        let generator = Generator::with_clock(node, clock.clone()).expect("node is in range");
        (clock, generator)
    }

    fn issued(generator: &Generator) -> SnowflakeId {
        match generator.try_next() {
            Ok(Attempt::Issued(id)) => id,
            other => panic!("expected an ID, got {other:?}"),
        }
    }

    fn parts(timestamp_ms: u64, node: u16, sequence: u16) -> Parts {
        Parts {
            timestamp_ms,
            node,
            sequence,
        }
    }

    #[test]
    fn layout_matches_the_documented_bits() {
        let id = encode(parts(EPOCH_UNIX_MS + 1, 1, 1)).unwrap();
        assert_eq!(id.as_u64(), (1 << 22) | (1 << 12) | 1);
        let max = encode(parts(EPOCH_UNIX_MS + MAX_TIMESTAMP, MAX_NODE, MAX_SEQUENCE)).unwrap();
        assert_eq!(max.as_u64(), i64::MAX as u64);
        assert_eq!(max.as_i64(), i64::MAX);
    }

    #[test]
    fn encode_rejects_each_out_of_range_field() {
        assert_eq!(
            encode(parts(EPOCH_UNIX_MS - 1, 0, 0)),
            Err(IdError::BeforeEpoch {
                unix_ms: EPOCH_UNIX_MS - 1
            })
        );
        let past = EPOCH_UNIX_MS + MAX_TIMESTAMP + 1;
        assert_eq!(
            encode(parts(past, 0, 0)),
            Err(IdError::EpochExhausted { unix_ms: past })
        );
        assert_eq!(
            encode(parts(T0, 1024, 0)),
            Err(IdError::NodeOutOfRange { node: 1024 })
        );
        assert_eq!(
            encode(parts(T0, 0, 4096)),
            Err(IdError::SequenceOutOfRange { sequence: 4096 })
        );
    }

    #[test]
    fn generator_refuses_node_numbers_above_1023() {
        assert_eq!(
            Generator::new(1024).unwrap_err(),
            IdError::NodeOutOfRange { node: 1024 }
        );
        assert_eq!(Generator::new(MAX_NODE).unwrap().node(), 1023);
        let message = IdError::NodeOutOfRange { node: 1024 }.to_string();
        assert!(message.contains("0 to 1023"), "{message}");
    }

    #[test]
    fn generator_fails_outside_the_epoch_range() {
        let (clock, generator) = manual(0, EPOCH_UNIX_MS - 5);
        assert_eq!(
            generator.try_next(),
            Err(IdError::BeforeEpoch {
                unix_ms: EPOCH_UNIX_MS - 5
            })
        );
        let past = EPOCH_UNIX_MS + MAX_TIMESTAMP + 1;
        clock.set(past);
        assert_eq!(
            generator.try_next(),
            Err(IdError::EpochExhausted { unix_ms: past })
        );
    }

    #[test]
    fn parse_rejects_non_numbers_and_a_set_top_bit() {
        assert_eq!("42".parse::<SnowflakeId>().unwrap().as_u64(), 42);
        for bad in ["", "abc", "-1", " 1", "1.0", "18446744073709551616"] {
            assert_eq!(
                bad.parse::<SnowflakeId>(),
                Err(IdError::NotANumber { input: bad.into() })
            );
        }
        let top = 1u64 << 63;
        assert_eq!(
            top.to_string().parse::<SnowflakeId>(),
            Err(IdError::TopBitSet { raw: top })
        );
        assert_eq!(
            SnowflakeId::try_from(top),
            Err(IdError::TopBitSet { raw: top })
        );
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        id: SnowflakeId,
    }

    #[test]
    fn serde_writes_a_plain_integer() {
        let row = Row {
            id: encode(parts(T0, 7, 9)).unwrap(),
        };
        let text = toml::to_string(&row).unwrap();
        assert_eq!(text.trim(), format!("id = {}", row.id));
        assert_eq!(toml::from_str::<Row>(&text).unwrap(), row);
        assert!(toml::from_str::<Row>("id = -1").is_err());
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            ts in EPOCH_UNIX_MS..=EPOCH_UNIX_MS + MAX_TIMESTAMP,
            node in 0..=MAX_NODE,
            sequence in 0..=MAX_SEQUENCE,
        ) {
            let p = parts(ts, node, sequence);
            prop_assert_eq!(decode(encode(p).unwrap()), p);
        }

        #[test]
        fn decode_then_encode_and_text_round_trip(raw in 0..=i64::MAX as u64) {
            let id = SnowflakeId::try_from(raw).unwrap();
            prop_assert_eq!(encode(decode(id)).unwrap(), id);
            prop_assert_eq!(id.to_string().parse::<SnowflakeId>().unwrap(), id);
        }

        /// Threads that also turn the clock back and forth (within the bound) in any
        /// interleaving still get unique IDs, each thread's strictly increasing.
        #[test]
        fn unique_and_increasing_while_the_clock_jumps(
            offsets in proptest::collection::vec(0u64..40, 1..64),
        ) {
            let (clock, generator) = manual(5, T0);
            let generator = generator.max_backwards(Duration::from_secs(3600));
            let per_thread = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|t| {
                        let (clock, generator, offsets) = (&clock, &generator, &offsets);
                        s.spawn(move || {
                            let mut ids = Vec::with_capacity(2000);
                            let mut step = t;
                            // Turn the clock once per 97 IDs issued, not on every retry:
                            // turning it back while waiting for it to pass the last ID
                            // would livelock the test (postmortem of a 15-minute hang).
                            let mut turned_at = usize::MAX;
                            while ids.len() < 2000 {
                                if ids.len() % 97 == 0 && turned_at != ids.len() {
                                    clock.set(T0 + offsets[step % offsets.len()]);
                                    step += 1;
                                    turned_at = ids.len();
                                }
                                match generator.try_next().unwrap() {
                                    Attempt::Issued(id) => ids.push(id),
                                    Attempt::WouldWait(d) => clock.advance(d.as_millis() as u64),
                                }
                            }
                            ids
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
            });
            let mut all = HashSet::new();
            for ids in &per_thread {
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
                for id in ids {
                    prop_assert!(all.insert(*id), "duplicate {}", id);
                    prop_assert_eq!(decode(*id).node, 5);
                }
            }
        }
    }

    /// The system clock, but it yields the CPU on every reading: a thread is then often
    /// switched out between loading the state and publishing its ID, which is where a lost
    /// update would produce duplicates even on a machine with few cores.
    #[derive(Debug)]
    struct YieldingClock;

    impl Clock for YieldingClock {
        fn now_unix_ms(&self) -> u64 {
            std::thread::yield_now();
            SystemClock.now_unix_ms()
        }
    }

    /// 8 threads on the real clock: no duplicates, each thread strictly increasing, and
    /// whenever one call finished before another started, the later call got the larger ID.
    #[test]
    fn concurrent_generation_is_unique_monotonic_and_linearizable() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 40_000;
        let generator = Generator::with_clock(3, Arc::new(YieldingClock)).unwrap();
        let ticket = AtomicUsize::new(0);
        let start = std::sync::Barrier::new(THREADS);
        // (ticket before the call, ticket after the call, id)
        let per_thread: Vec<Vec<(usize, usize, SnowflakeId)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        (0..PER_THREAD)
                            .map(|_| {
                                let before = ticket.fetch_add(1, Ordering::SeqCst);
                                let id = generator.next_blocking().unwrap();
                                (before, ticket.fetch_add(1, Ordering::SeqCst), id)
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for calls in &per_thread {
            assert!(
                calls.windows(2).all(|w| w[0].2 < w[1].2),
                "a thread saw a non-increasing ID"
            );
        }
        let mut calls: Vec<_> = per_thread.into_iter().flatten().collect();
        let mut ids: Vec<_> = calls.iter().map(|c| c.2).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), THREADS * PER_THREAD, "duplicate IDs");

        let mut by_end = calls.clone();
        by_end.sort_unstable_by_key(|c| c.1);
        calls.sort_unstable_by_key(|c| c.0);
        let (mut finished, mut max_finished) = (0, None);
        for call in &calls {
            while finished < by_end.len() && by_end[finished].1 < call.0 {
                max_finished = max_finished.max(Some(by_end[finished].2));
                finished += 1;
            }
            if let Some(earlier) = max_finished {
                assert!(
                    earlier < call.2,
                    "{} issued after {} completed",
                    call.2,
                    earlier
                );
            }
        }
    }

    #[test]
    fn exhausting_a_millisecond_waits_for_the_next() {
        let (clock, generator) = manual(9, T0);
        for sequence in 0..=MAX_SEQUENCE {
            assert_eq!(decode(issued(&generator)), parts(T0, 9, sequence));
        }
        assert_eq!(
            generator.try_next(),
            Ok(Attempt::WouldWait(Duration::from_millis(1)))
        );
        clock.advance(1);
        assert_eq!(decode(issued(&generator)), parts(T0 + 1, 9, 0));
    }

    #[test]
    fn next_blocking_sleeps_until_the_clock_moves() {
        let (clock, generator) = manual(9, T0);
        for _ in 0..=MAX_SEQUENCE {
            issued(&generator);
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                clock.advance(1);
            });
            assert_eq!(
                decode(generator.next_blocking().unwrap()),
                parts(T0 + 1, 9, 0)
            );
        });
    }

    #[test]
    fn clock_going_back_never_reissues_and_fails_past_the_bound() {
        let (clock, generator) = manual(2, T0);
        let first = issued(&generator);
        clock.set(T0 - 100);
        // Behind the last ID: keep its timestamp and use the rest of its sequence numbers.
        let mut last = first;
        for sequence in 1..=MAX_SEQUENCE {
            let id = issued(&generator);
            assert_eq!(decode(id), parts(T0, 2, sequence));
            assert!(id > last);
            last = id;
        }
        assert_eq!(
            generator.try_next(),
            Ok(Attempt::WouldWait(Duration::from_millis(101)))
        );
        clock.set(T0 - 50);
        assert_eq!(
            generator.try_next(),
            Ok(Attempt::WouldWait(Duration::from_millis(51)))
        );
        clock.set(T0 + 1);
        let caught_up = issued(&generator);
        assert_eq!(decode(caught_up), parts(T0 + 1, 2, 0));
        assert!(caught_up > last);

        clock.set(T0 + 1 - 5_000);
        assert_eq!(
            decode(issued(&generator)),
            parts(T0 + 1, 2, 1),
            "5 s back is within the bound"
        );
        clock.set(T0 + 1 - 5_001);
        let err = generator.try_next().unwrap_err();
        assert_eq!(
            err,
            IdError::ClockWentBackwards {
                by: Duration::from_millis(5_001),
                bound: DEFAULT_MAX_BACKWARDS
            }
        );
        assert!(
            err.to_string().contains("went backwards by 5.001s"),
            "{err}"
        );
    }

    #[test]
    fn zero_bound_fails_on_any_step_back() {
        let (clock, generator) = manual(2, T0);
        let generator = generator.max_backwards(Duration::ZERO);
        issued(&generator);
        issued(&generator);
        clock.set(T0 - 1);
        assert!(matches!(
            generator.try_next(),
            Err(IdError::ClockWentBackwards { .. })
        ));
    }

    #[tokio::test]
    async fn batch_is_contiguous_within_a_millisecond_and_bounded() {
        let (_clock, generator) = manual(4, T0);
        let ids = generator.next_batch(100).await.unwrap();
        assert_eq!(ids.len(), 100);
        assert!(ids.windows(2).all(|w| w[1].as_u64() == w[0].as_u64() + 1));
        assert!(generator.next_batch(0).await.unwrap().is_empty());
        let err = generator.next_batch(MAX_BATCH + 1).await.unwrap_err();
        assert_eq!(
            err,
            IdError::BatchTooLarge {
                requested: MAX_BATCH + 1
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_on_the_real_clock_stay_unique() {
        let generator = Arc::new(Generator::new(1).unwrap());
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let generator = generator.clone();
                tokio::spawn(async move { generator.next_batch(MAX_BATCH).await })
            })
            .collect();
        let mut all = HashSet::new();
        for task in tasks {
            let ids = task.await.unwrap().unwrap();
            assert_eq!(ids.len(), MAX_BATCH);
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            assert!(
                ids.iter().all(|id| all.insert(*id)),
                "duplicate ID across batches"
            );
        }
    }

    /// On a single-threaded runtime, a task waiting for a clock that went back must leave
    /// the runtime free: another task keeps ticking and is the one that moves the clock on.
    /// Runs on its own thread so a blocking implementation fails the test instead of hanging.
    #[test]
    fn async_next_does_not_block_the_runtime() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let result = runtime.block_on(async {
                let (clock, generator) = manual(6, T0);
                let generator = Arc::new(generator);
                for _ in 0..=MAX_SEQUENCE {
                    issued(&generator);
                }
                clock.set(T0 - 20);
                let waiter = tokio::spawn({
                    let generator = generator.clone();
                    async move { generator.next().await }
                });
                let mut ticks = 0;
                while ticks < 10 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    ticks += 1;
                }
                assert!(
                    !waiter.is_finished(),
                    "issued an ID while the clock was still behind"
                );
                clock.set(T0 + 1);
                (ticks, waiter.await.unwrap().unwrap())
            });
            let _ = done_tx.send(result);
        });
        let (ticks, id) = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the runtime was blocked while next() waited for the clock");
        assert_eq!(ticks, 10);
        assert_eq!(decode(id), parts(T0 + 1, 6, 0));
    }

    #[test]
    fn generator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Generator>();
    }
}
