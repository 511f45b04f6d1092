//! The writer: one thread owns the sled database and is fed through a crossbeam channel.
//!
//! It commits in groups: every append already queued when it wakes goes into one sled batch
//! and one flush (fsync), so many producers share the cost of one flush. Each append returns a
//! [`Ticket`] that resolves with the record's sequence number once the record is durable, both
//! as a future and as a blocking wait. The writer keeps the folded [`State`] current, writes a
//! snapshot every `snapshot_every` records and then compacts records older than the retention.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use tracing::{debug, info, warn};

use crate::codec::{encode_record, encode_state, key};
use crate::event::{now_micros, Event, Record, Stored};
use crate::reader::{Replay, Trees, DEFAULT_CACHE_CAPACITY};
use crate::state::{apply, State};
use crate::JournalError;

/// When the writer flushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// After every group: a ticket resolves as soon as its group is on disk.
    EveryGroup,
    /// At most once per interval: tickets wait up to that long, flushes are fewer.
    Interval(Duration),
}

/// Settings of a journal.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    pub flush: FlushPolicy,
    /// Most appends in one group.
    pub max_group: usize,
    /// Write a snapshot after this many records (none when `None`).
    pub snapshot_every: Option<u64>,
    /// Records kept before the newest snapshot, for debugging; older ones are compacted away.
    pub retain_records: u64,
    /// Buffer of a live subscriber; one that falls this far behind is dropped.
    pub subscriber_buffer: usize,
    /// Bytes of the store's page cache (sled's `cache_capacity`): what the journal may keep
    /// in memory of its pages beyond the folded state. sled's own default is 1 GiB, which
    /// an agent on a node does not need: the engine reads the journal once at start and then
    /// only appends. [`DEFAULT_CACHE_CAPACITY`] by default.
    pub cache_capacity: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            flush: FlushPolicy::EveryGroup,
            max_group: 4096,
            snapshot_every: Some(10_000),
            retain_records: 50_000,
            subscriber_buffer: 65_536,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }
}

type TicketResult = Result<u64, JournalError>;

struct TicketSlot {
    inner: Mutex<(Option<TicketResult>, Option<Waker>)>,
    done: Condvar,
    /// The journal's count of appends not yet resolved.
    pending: Arc<AtomicU64>,
}

impl TicketSlot {
    fn new(pending: &Arc<AtomicU64>) -> TicketSlot {
        pending.fetch_add(1, Ordering::Relaxed);
        TicketSlot {
            inner: Mutex::new((None, None)),
            done: Condvar::new(),
            pending: pending.clone(),
        }
    }

    fn resolve(&self, r: TicketResult) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = Some(r);
        if let Some(w) = g.1.take() {
            w.wake();
        }
        self.done.notify_all();
    }
}

/// Resolves with the record's sequence number once it is durable (flushed), or with the
/// error that prevented it. Await it, or call [`Ticket::wait`] from a thread that may block.
#[must_use = "a ticket tells when the record is durable"]
pub struct Ticket {
    slot: Arc<TicketSlot>,
}

impl Ticket {
    /// Blocks until the record is durable.
    pub fn wait(self) -> TicketResult {
        let mut g = self.slot.inner.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = g.0.take() {
                return r;
            }
            g = self.slot.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Like [`Ticket::wait`], giving up after `timeout` (the ticket is consumed either way).
    pub fn wait_timeout(self, timeout: Duration) -> Option<TicketResult> {
        let deadline = Instant::now() + timeout;
        let mut g = self.slot.inner.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = g.0.take() {
                return Some(r);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            g = self
                .slot
                .done
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Future for Ticket {
    type Output = TicketResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TicketResult> {
        let mut g = self.slot.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

enum Command {
    Append {
        ts_micros: u64,
        event: Event,
        slot: Arc<TicketSlot>,
    },
    Snapshot(Sender<Result<u64, JournalError>>),
    State(Sender<(u64, State)>),
    Subscribe {
        from: u64,
        tx: Sender<Record>,
    },
    /// Resolves once everything appended before it is durable.
    Sync(Arc<TicketSlot>),
    Shutdown,
}

/// The journal, open for appending. Dropping it drains the queue and flushes.
pub struct Journal {
    tx: QueueTx,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
    recovered: Replay,
    pending: Arc<AtomicU64>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and starts the writer thread. The state at open
    /// is rebuilt from the newest snapshot plus the records after it; see
    /// [`Journal::recovered`], which also says where a torn or corrupt tail stopped the replay.
    pub fn open(dir: impl AsRef<Path>, config: JournalConfig) -> Result<Journal, JournalError> {
        let dir = dir.as_ref().to_path_buf();
        // Created private (0700) before sled writes anything into it: its files are then
        // out of others' reach whatever the umask gives them.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| JournalError::Storage(format!("{}: {e}", dir.display())))?;
        let db = crate::reader::open_db(&dir, config.cache_capacity)?;
        crate::reader::make_private(&dir).map_err(|e| {
            JournalError::Storage(format!("{}: making it private: {e}", dir.display()))
        })?;
        let trees = Trees::open(&db, &dir)?;
        if let Some(e) = trees.old_version() {
            return Err(e);
        }
        let mut recovered = trees.replay(None, true);
        if recovered.stopped_at.is_none() {
            recovered.stopped_at = crate::reader::check_hwm(&dir, &trees);
        }
        if let Some(bad) = &recovered.stopped_at {
            warn!(dir = %dir.display(), last_good = recovered.last_seq, %bad,
                  "journal replay stopped at a bad record; new records follow the last stored one");
        }
        // New records follow the last stored key, good or bad, and the last one ever written,
        // so no sequence number is used twice.
        let next_seq = trees
            .last_seq()
            .max(crate::reader::read_hwm(&dir))
            .map_or(1, |s| s + 1);
        info!(dir = %dir.display(), next_seq, snapshot = ?recovered.snapshot_seq,
              replayed = recovered.records_replayed, "journal open");
        // Bounded: an append waits while this many are queued (the disk is that far behind),
        // which is the backpressure the engine needs instead of memory growing without end.
        let (tx, rx) = queue(MAX_QUEUED);
        let writer = Writer {
            db,
            trees,
            config,
            state: recovered.state.clone(),
            last_seq: recovered.last_seq,
            next_seq,
            since_snapshot: recovered.records_replayed,
            subscribers: Vec::new(),
            dir: dir.clone(),
            data_file: crate::reader::open_data_file(&dir),
        };
        let thread = std::thread::Builder::new()
            .name("podport-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Journal {
            tx,
            thread: Some(thread),
            dir,
            recovered,
            pending: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What replay found at open: the state, the last good record, where it stopped.
    pub fn recovered(&self) -> &Replay {
        &self.recovered
    }

    /// Appends `event` stamped with the current wall-clock time.
    pub fn append(&self, event: Event) -> Ticket {
        self.append_at(now_micros(), event)
    }

    /// Appends `event` with an explicit timestamp (replay tools, tests).
    pub fn append_at(&self, ts_micros: u64, event: Event) -> Ticket {
        let slot = Arc::new(TicketSlot::new(&self.pending));
        let cmd = Command::Append {
            ts_micros,
            event,
            slot: slot.clone(),
        };
        if !self.tx.send(cmd) {
            slot.resolve(Err(JournalError::Closed("writer thread gone".into())));
        }
        Ticket { slot }
    }

    /// A ticket that resolves (with the last sequence number written) once every append made
    /// before this call is durable: what an acknowledgement that appended nothing new waits
    /// for.
    pub fn sync(&self) -> Ticket {
        let slot = Arc::new(TicketSlot::new(&self.pending));
        if !self.tx.send(Command::Sync(slot.clone())) {
            slot.resolve(Err(JournalError::Closed("writer thread gone".into())));
        }
        Ticket { slot }
    }

    /// Appends whose tickets have not resolved yet: the journal's lag behind its producers.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Writes a snapshot of the folded state now and compacts per the retention; returns the
    /// sequence number it covers.
    pub fn snapshot(&self) -> Result<u64, JournalError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Snapshot(tx))?;
        rx.recv()
            .map_err(|_| JournalError::Closed("writer thread gone".into()))?
    }

    /// The folded state after every record appended so far, with its last sequence number.
    pub fn state(&self) -> Result<(u64, State), JournalError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::State(tx))?;
        rx.recv()
            .map_err(|_| JournalError::Closed("writer thread gone".into()))
    }

    /// Every record from `from` on, then each new one as it is written: the stream the agent
    /// serves to `podport-journal --control`. A subscriber that falls `subscriber_buffer`
    /// records behind, or hangs up, is dropped without affecting the writer.
    pub fn subscribe(&self, from: u64) -> Result<Receiver<Record>, JournalError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.send(Command::Subscribe { from, tx })?;
        Ok(rx)
    }

    /// Drains the queue, flushes and stops the writer.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), JournalError> {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| JournalError::Closed("the writer thread panicked".into()))?;
        }
        Ok(())
    }

    fn send(&self, cmd: Command) -> Result<(), JournalError> {
        if self.tx.send(cmd) {
            Ok(())
        } else {
            Err(JournalError::Closed("writer thread gone".into()))
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// How often, at most, the high-water mark is rewritten after a flush.
const HWM_EVERY: Duration = Duration::from_millis(100);

/// Appends (and other requests) queued for the writer thread, at most.
pub const MAX_QUEUED: usize = 65_536;

/// The writer's queue: bounded in count (a send waits while `bound` requests are queued) but
/// not preallocated. A bounded crossbeam channel allocates and touches every slot up front:
/// 65 536 requests of ~170 bytes held 11 MiB of an idle agent's 20 MiB.
fn queue(bound: usize) -> (QueueTx, QueueRx) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let gate = Arc::new(Gate {
        bound,
        state: Mutex::new((0, false)),
        room: Condvar::new(),
    });
    (
        QueueTx {
            tx,
            gate: gate.clone(),
        },
        QueueRx { rx, gate },
    )
}

/// How many requests are queued, and whether the receiver is gone.
struct Gate {
    bound: usize,
    state: Mutex<(usize, bool)>,
    room: Condvar,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct QueueTx {
    tx: Sender<Command>,
    gate: Arc<Gate>,
}

impl QueueTx {
    /// Queues `cmd`, waiting while the queue is full; false when the writer is gone.
    fn send(&self, cmd: Command) -> bool {
        {
            let mut g = self.gate.lock();
            while g.0 >= self.gate.bound && !g.1 {
                g = self.gate.room.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            if g.1 {
                return false;
            }
            g.0 += 1;
        }
        if self.tx.send(cmd).is_err() {
            self.gate.lock().0 -= 1;
            return false;
        }
        true
    }
}

struct QueueRx {
    rx: Receiver<Command>,
    gate: Arc<Gate>,
}

impl QueueRx {
    fn took(&self, got: bool) {
        if got {
            let mut g = self.gate.lock();
            g.0 = g.0.saturating_sub(1);
            if g.0 + 1 == self.gate.bound {
                self.gate.room.notify_all();
            }
        }
    }

    fn recv(&self) -> Result<Command, crossbeam_channel::RecvError> {
        let r = self.rx.recv();
        self.took(r.is_ok());
        r
    }

    fn recv_timeout(&self, d: Duration) -> Result<Command, RecvTimeoutError> {
        let r = self.rx.recv_timeout(d);
        self.took(r.is_ok());
        r
    }

    fn try_recv(&self) -> Result<Command, TryRecvError> {
        let r = self.rx.try_recv();
        self.took(r.is_ok());
        r
    }
}

impl Drop for QueueRx {
    /// Senders waiting for room learn that none will come.
    fn drop(&mut self) {
        self.gate.lock().1 = true;
        self.gate.room.notify_all();
    }
}

struct Writer {
    db: sled::Db,
    trees: Trees,
    config: JournalConfig,
    state: State,
    /// The last record folded into `state`.
    last_seq: u64,
    next_seq: u64,
    since_snapshot: u64,
    subscribers: Vec<Sender<Record>>,
    dir: PathBuf,
    /// sled's log file, kept open to `fdatasync` it after every flush.
    data_file: Option<std::fs::File>,
}

impl Writer {
    fn run(mut self, rx: QueueRx) {
        let mut unflushed: Vec<(u64, Arc<TicketSlot>)> = Vec::new();
        let mut last_flush = Instant::now();
        let mut last_hwm = Instant::now()
            .checked_sub(HWM_EVERY)
            .unwrap_or_else(Instant::now);
        // The last sequence number known durable, and the one the mark holds.
        let mut durable_seq = self.next_seq - 1;
        let mut hwm_seq = durable_seq;
        let mut stopping = false;
        while !stopping {
            // Wait for work; with pending tickets under an interval policy, only until the
            // flush is due.
            // A mark behind the durable log is brought up to date once the writer is idle
            // for HWM_EVERY, so it also follows the last records before a kill.
            let hwm_due =
                (hwm_seq < durable_seq).then(|| HWM_EVERY.saturating_sub(last_hwm.elapsed()));
            let wait = match (self.config.flush, unflushed.is_empty()) {
                (FlushPolicy::Interval(d), false) => {
                    let left = d.saturating_sub(last_flush.elapsed());
                    Some(hwm_due.map_or(left, |h| h.min(left)))
                }
                _ => hwm_due,
            };
            let first = match wait {
                Some(left) => match rx.recv_timeout(left) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        None
                    }
                },
                None => match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => {
                        stopping = true;
                        None
                    }
                },
            };
            if first.is_none() && !stopping && hwm_seq < durable_seq {
                self.mark_due(durable_seq, &mut hwm_seq, &mut last_hwm);
            }
            let mut group = Vec::new();
            let mut syncs = Vec::new();
            let mut others = Vec::new();
            if let Some(c) = first {
                let mut next = Some(c);
                while let Some(c) = next {
                    match c {
                        Command::Append {
                            ts_micros,
                            event,
                            slot,
                        } => group.push((ts_micros, event, slot)),
                        Command::Sync(slot) => syncs.push(slot),
                        Command::Shutdown => stopping = true,
                        other => others.push(other),
                    }
                    // Everything already queued joins this group, up to the bound.
                    next = if group.len() < self.config.max_group && !stopping {
                        rx.try_recv().ok()
                    } else {
                        None
                    };
                }
            }
            if stopping {
                // Drain what producers queued before the shutdown.
                while let Ok(c) = rx.try_recv() {
                    match c {
                        Command::Append {
                            ts_micros,
                            event,
                            slot,
                        } => group.push((ts_micros, event, slot)),
                        Command::Sync(slot) => syncs.push(slot),
                        Command::Shutdown => {}
                        other => others.push(other),
                    }
                }
            }
            if !group.is_empty() {
                self.write_group(group, &mut unflushed);
            }
            // A sync resolves with the group's flush: everything before it is in that flush.
            let written = self.next_seq - 1;
            unflushed.extend(syncs.into_iter().map(|slot| (written, slot)));
            let flush_due = match self.config.flush {
                FlushPolicy::EveryGroup => true,
                FlushPolicy::Interval(d) => last_flush.elapsed() >= d,
            };
            if !unflushed.is_empty() && (flush_due || stopping) {
                let result = self
                    .db
                    .flush()
                    .map(drop)
                    .map_err(|e| JournalError::storage(&self.dir, e))
                    .and_then(|()| self.sync_data());
                if let Err(e) = &result {
                    warn!(error = %e, n = unflushed.len(), "journal flush failed");
                }
                last_flush = Instant::now();
                // The high-water mark follows the durable log (at most every HWM_EVERY): a
                // store that sled later opens shorter, without an error, after a crash is
                // then seen as damaged instead of replayed as if complete.
                if result.is_ok() {
                    durable_seq = self.next_seq - 1;
                    self.mark_due(durable_seq, &mut hwm_seq, &mut last_hwm);
                }
                for (seq, slot) in unflushed.drain(..) {
                    slot.resolve(result.clone().map(|()| seq));
                }
                self.maybe_snapshot();
            }
            for cmd in others {
                self.handle(cmd);
            }
        }
        if self.next_seq > 1 {
            if let Err(e) = crate::reader::write_hwm(&self.dir, self.next_seq - 1) {
                warn!(error = %e, "could not write the journal's high-water mark");
            }
        }
        debug!("journal writer stopped");
    }

    /// Rewrites the high-water mark to `durable` when the last write is `HWM_EVERY` old.
    fn mark_due(&self, durable: u64, hwm_seq: &mut u64, last_hwm: &mut Instant) {
        if last_hwm.elapsed() < HWM_EVERY {
            return;
        }
        if let Err(e) = crate::reader::write_hwm(&self.dir, durable) {
            warn!(error = %e, "could not write the journal's high-water mark");
        }
        *hwm_seq = durable;
        *last_hwm = Instant::now();
    }

    /// sled's `flush` writes its log and, on Linux, `sync_file_range`s it: that survives a
    /// crash of the process but not a power cut (the file's metadata and the disk's cache are
    /// not flushed). `fdatasync` on the log file makes an acknowledged record survive both.
    fn sync_data(&self) -> Result<(), JournalError> {
        let Some(f) = &self.data_file else {
            return Ok(());
        };
        f.sync_data().map_err(|e| {
            JournalError::Storage(format!(
                "{}: fdatasync of sled's log: {e}",
                self.dir.display()
            ))
        })
    }

    fn write_group(
        &mut self,
        group: Vec<(u64, Event, Arc<TicketSlot>)>,
        unflushed: &mut Vec<(u64, Arc<TicketSlot>)>,
    ) {
        let mut batch = sled::Batch::default();
        let mut records = Vec::with_capacity(group.len());
        let mut slots = Vec::with_capacity(group.len());
        for (ts_micros, event, slot) in group {
            let seq = self.next_seq;
            self.next_seq += 1;
            let stored = Stored { ts_micros, event };
            batch.insert(&key(seq), encode_record(&stored));
            records.push(Record {
                seq,
                ts_micros,
                event: stored.event,
            });
            slots.push((seq, slot));
        }
        if let Err(e) = self.trees.records.apply_batch(batch) {
            // Nothing was written: hand the numbers out again so the sequence stays dense.
            self.next_seq -= slots.len() as u64;
            let err = JournalError::storage(&self.dir, e);
            warn!(error = %err, n = slots.len(), "journal group not written");
            for (_, slot) in slots {
                slot.resolve(Err(err.clone()));
            }
            return;
        }
        for r in &records {
            apply(&mut self.state, r);
            self.last_seq = r.seq;
        }
        self.since_snapshot += records.len() as u64;
        self.publish(&records);
        unflushed.extend(slots);
    }

    fn publish(&mut self, records: &[Record]) {
        let limit = self.config.subscriber_buffer;
        self.subscribers.retain(|s| {
            if s.len() >= limit {
                warn!(
                    behind = s.len(),
                    "dropping a journal subscriber that fell behind"
                );
                return false;
            }
            records.iter().all(|r| match s.try_send(r.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            })
        });
    }

    fn maybe_snapshot(&mut self) {
        if let Some(every) = self.config.snapshot_every {
            if self.since_snapshot >= every {
                if let Err(e) = self.write_snapshot() {
                    warn!(error = %e, "journal snapshot failed");
                }
            }
        }
    }

    fn write_snapshot(&mut self) -> Result<u64, JournalError> {
        let seq = self.last_seq;
        self.trees
            .snapshots
            .insert(key(seq), encode_state(&self.state))
            .map_err(|e| JournalError::storage(&self.dir, e))?;
        self.db
            .flush()
            .map_err(|e| JournalError::storage(&self.dir, e))?;
        // A snapshot this large is one of sled's blob files: made durable before any record it
        // covers may be compacted away.
        self.sync_data()?;
        crate::reader::sync_blobs(&self.dir).map_err(|e| {
            JournalError::Storage(format!("{}: fsync of blobs: {e}", self.dir.display()))
        })?;
        self.since_snapshot = 0;
        if let Err(e) = crate::reader::write_hwm(&self.dir, self.next_seq - 1) {
            warn!(error = %e, "could not write the journal's high-water mark");
        }
        // Only records covered by a durable snapshot, and older than the retention, go.
        let cut = seq.saturating_sub(self.config.retain_records);
        if cut > 0 {
            let mut batch = sled::Batch::default();
            let mut n = 0u64;
            for k in self.trees.records.range(..=key(cut)).keys().flatten() {
                batch.remove(k);
                n += 1;
            }
            // Older snapshots than the newest two are no longer needed.
            let old: Vec<_> = self.trees.snapshots.iter().keys().flatten().collect();
            for k in old.iter().rev().skip(2) {
                let _ = self.trees.snapshots.remove(k);
            }
            self.trees
                .records
                .apply_batch(batch)
                .map_err(|e| JournalError::storage(&self.dir, e))?;
            debug!(snapshot = seq, compacted = n, "journal compacted");
        }
        Ok(seq)
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Snapshot(tx) => {
                let _ = tx.send(self.write_snapshot());
            }
            Command::State(tx) => {
                let _ = tx.send((self.last_seq, self.state.clone()));
            }
            Command::Subscribe { from, tx } => {
                for r in self.trees.records(from) {
                    match r {
                        Ok(rec) => {
                            if tx.send(rec).is_err() {
                                return;
                            }
                        }
                        Err(e) => warn!(error = %e, "skipping a bad record for a subscriber"),
                    }
                }
                self.subscribers.push(tx);
            }
            Command::Append { .. } | Command::Sync(_) | Command::Shutdown => {}
        }
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    fn cmd() -> Command {
        Command::Shutdown
    }

    #[test]
    fn a_full_queue_holds_the_sender_until_the_writer_takes_one() {
        let (tx, rx) = queue(2);
        assert!(tx.send(cmd()) && tx.send(cmd()));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            let ok = tx.send(cmd());
            done_tx.send(()).unwrap();
            (ok, tx)
        });
        // Full: the third send waits (bounded wait, so a broken gate fails rather than hangs).
        assert!(done_rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert!(rx.try_recv().is_ok());
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("room made, the send went through");
        let (ok, _tx) = sender.join().unwrap();
        assert!(ok);
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_sender_waiting_on_a_full_queue_is_released_when_the_writer_is_gone() {
        let (tx, rx) = queue(1);
        assert!(tx.send(cmd()));
        let sender = std::thread::spawn(move || tx.send(cmd()));
        // Whether the drop comes before the send waits or after, the send must fail; the
        // pause only makes the waiting case the likely one.
        std::thread::sleep(Duration::from_millis(50));
        drop(rx);
        assert!(!sender.join().unwrap(), "no writer: the send fails");
    }
}
