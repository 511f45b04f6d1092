//! Reading a journal: iteration from a sequence number, replay (latest snapshot plus the tail,
//! or everything), `verify`, `stats`. Used by the writer at open and by the dump tool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::codec::CorruptRecord;
use crate::codec::{decode_record, decode_state, key, seq_of, FORMAT_VERSION};
use crate::event::Record;
use crate::state::{apply, State};
use crate::JournalError;

pub(crate) const RECORDS_TREE: &str = "records";
pub(crate) const SNAPSHOTS_TREE: &str = "snapshots";

/// The default [`crate::JournalConfig::cache_capacity`]: 4 MiB. A node's journal is a few MiB at
/// most between snapshots; a smaller cache costs reads from the page cache of the OS at
/// start, not durability.
pub const DEFAULT_CACHE_CAPACITY: u64 = 4 * 1024 * 1024;

/// The result of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replay {
    pub state: State,
    /// The last record folded in (0 when none).
    pub last_seq: u64,
    /// The snapshot replay started from, if any.
    pub snapshot_seq: Option<u64>,
    /// Records folded after the snapshot.
    pub records_replayed: u64,
    /// Where replay stopped early: the first bad record after the last good one.
    pub stopped_at: Option<CorruptRecord>,
}

/// Counts for `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Stats {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub bytes: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub snapshots: Vec<u64>,
    pub corrupt: u64,
}

/// Runs a sled call, turning a panic inside sled (seen on damaged store files: "tried to
/// serialize Uninitialized") into an error, so damage is reported, never a crash.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, JournalError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        JournalError::Storage(format!(
            "sled failed while {what} (damaged store files?): {msg}"
        ))
    })
}

pub(crate) struct Trees {
    pub records: sled::Tree,
    pub snapshots: sled::Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db, dir: &Path) -> Result<Trees, JournalError> {
        Ok(Trees {
            records: db
                .open_tree(RECORDS_TREE)
                .map_err(|e| JournalError::storage(dir, e))?,
            snapshots: db
                .open_tree(SNAPSHOTS_TREE)
                .map_err(|e| JournalError::storage(dir, e))?,
        })
    }

    /// Records from `from` (inclusive), decoded; a bad one is an `Err` and iteration goes on.
    pub(crate) fn records(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<Record, JournalError>> + '_ {
        let mut iter = self.records.range(key(from)..);
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            match guard("reading records", || iter.next()) {
                Ok(next) => next,
                Err(e) => {
                    failed = true;
                    Some(Err(sled::Error::ReportableBug(e.to_string())))
                }
            }
        })
        .map(|kv| {
            let (k, v) = kv.map_err(|e| JournalError::Storage(e.to_string()))?;
            let seq = seq_of(&k).ok_or_else(|| {
                JournalError::Corrupt(CorruptRecord {
                    seq: 0,
                    reason: format!("key of {} bytes is not a sequence number", k.len()),
                })
            })?;
            let stored = decode_record(seq, &v)?;
            Ok(Record {
                seq,
                ts_micros: stored.ts_micros,
                event: stored.event,
            })
        })
    }

    /// The newest snapshot at or before `at` (any when `None`) that decodes.
    fn snapshot_at(&self, at: Option<u64>) -> Option<(u64, State)> {
        let range = match at {
            Some(s) => self.snapshots.range(..=key(s)),
            None => self.snapshots.range::<&[u8], _>(..),
        };
        // Snapshots are few: read them all inside the guard.
        let entries = guard("reading snapshots", || range.rev().collect::<Vec<_>>()).ok()?;
        for kv in entries {
            let Ok((k, v)) = kv else { continue };
            let Some(seq) = seq_of(&k) else { continue };
            match decode_state(seq, &v) {
                Ok(state) => return Some((seq, state)),
                Err(e) => tracing::warn!(seq, error = %e, "skipping a bad snapshot"),
            }
        }
        None
    }

    /// Replays up to `until` (inclusive; everything when `None`), from the newest usable
    /// snapshot when `use_snapshot`, stopping at the first bad record.
    pub(crate) fn replay(&self, until: Option<u64>, use_snapshot: bool) -> Replay {
        let (snapshot_seq, mut state) =
            match use_snapshot.then(|| self.snapshot_at(until)).flatten() {
                Some((s, st)) => (Some(s), st),
                None => (None, State::default()),
            };
        let mut out = Replay {
            last_seq: snapshot_seq.unwrap_or(0),
            snapshot_seq,
            ..Replay::default()
        };
        let from = snapshot_seq.map_or(0, |s| s + 1);
        for r in self.records(from) {
            match r {
                Ok(rec) => {
                    // Sequence numbers are dense: a hole means records were compacted away
                    // (or lost) and folding past it would give a wrong state. Checked before
                    // `until`: a hole that ends after `until` still lacks records it needs.
                    let expected = out.last_seq + 1;
                    if rec.seq != expected && until.is_none_or(|u| expected <= u) {
                        out.stopped_at = Some(CorruptRecord {
                            seq: expected,
                            reason: format!(
                                "records #{expected}..#{} are missing (compacted away, and no snapshot covers them)",
                                rec.seq - 1
                            ),
                        });
                        break;
                    }
                    if until.is_some_and(|u| rec.seq > u) {
                        break;
                    }
                    apply(&mut state, &rec);
                    out.last_seq = rec.seq;
                    out.records_replayed += 1;
                }
                // A bad record after `until` is not needed for the state asked for.
                Err(JournalError::Corrupt(c)) if until.is_some_and(|u| c.seq > u) => break,
                Err(JournalError::FutureVersion { seq, .. }) if until.is_some_and(|u| seq > u) => {
                    break
                }
                Err(JournalError::Corrupt(c)) => {
                    out.stopped_at = Some(c);
                    break;
                }
                Err(JournalError::FutureVersion { seq, version }) => {
                    out.stopped_at = Some(CorruptRecord {
                        seq,
                        reason: format!("format version {version} is newer than this podport"),
                    });
                    break;
                }
                Err(e @ JournalError::OldVersion { seq, .. }) => {
                    out.stopped_at = Some(CorruptRecord {
                        seq,
                        reason: e.to_string(),
                    });
                    break;
                }
                Err(e) => {
                    out.stopped_at = Some(CorruptRecord {
                        seq: out.last_seq + 1,
                        reason: e.to_string(),
                    });
                    break;
                }
            }
        }
        // Records compacted away with nothing stored after them leave no hole to see, but a
        // snapshot newer than where replay ended says they existed.
        let expected = out.last_seq.saturating_add(1);
        if out.stopped_at.is_none() && until.is_none_or(|u| expected <= u) {
            let newer = self
                .snapshots
                .range(key(expected)..)
                .keys()
                .next()
                .and_then(|k| k.ok())
                .and_then(|k| seq_of(&k));
            if let Some(sn) = newer {
                out.stopped_at = Some(CorruptRecord {
                    seq: expected,
                    reason: format!(
                        "records #{expected}..#{} are missing (compacted away, and no snapshot covers them)",
                        until.map_or(sn, |u| u.min(sn))
                    ),
                });
            }
        }
        out.state = state;
        out
    }

    /// The error for a journal whose first record (or newest snapshot) was written in a
    /// format this podport does not replay.
    pub(crate) fn old_version(&self) -> Option<JournalError> {
        let first = guard("reading the first record", || self.records.first()).ok()?;
        let snap = guard("reading the newest snapshot", || self.snapshots.last()).ok()?;
        for (k, v) in [first, snap].into_iter().flatten().flatten() {
            let seq = seq_of(&k).unwrap_or(0);
            if let Some(&version) = v.first() {
                if (crate::codec::OLDEST_UNREADABLE..FORMAT_VERSION).contains(&version) {
                    return Some(JournalError::OldVersion { seq, version });
                }
            }
        }
        None
    }

    pub(crate) fn last_seq(&self) -> Option<u64> {
        guard("reading the last record", || self.records.last())
            .ok()?
            .ok()
            .flatten()
            .and_then(|(k, _)| seq_of(&k))
    }
}

/// How long a lock error at open is retried before it is reported as `Locked`.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Opens the sled database in `dir`. sled finishes dropping a database on its own I/O threads,
/// so the directory lock of a journal this process closed a moment ago (`Journal::close`, a
/// dropped reader) can outlive it briefly: a lock error is retried for [`LOCK_RETRY`] before it
/// is reported as [`JournalError::Locked`].
/// The high-water mark file beside sled's: the last sequence number known to be written,
/// updated at every clean close and snapshot. sled can come back from a damaged data file with
/// fewer records and no error; comparing with this mark turns that into a reported loss.
pub(crate) const HWM_FILE: &str = "podport-journal.hwm";

pub(crate) fn read_hwm(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(HWM_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Writes the mark durably (temporary file, fsync, rename).
pub(crate) fn write_hwm(dir: &Path, seq: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{HWM_FILE}.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    writeln!(f, "{seq}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(HWM_FILE))
}

/// A loss the mark reveals: the store ends before the last sequence number once written.
pub(crate) fn check_hwm(dir: &Path, trees: &Trees) -> Option<CorruptRecord> {
    let hwm = read_hwm(dir)?;
    let last_snapshot = guard("reading snapshots", || trees.snapshots.last())
        .ok()?
        .ok()
        .flatten()
        .and_then(|(k, _)| seq_of(&k));
    let last = trees.last_seq().max(last_snapshot).unwrap_or(0);
    (last < hwm).then(|| CorruptRecord {
        seq: last + 1,
        reason: format!(
            "records #{}..#{hwm} are missing: #{hwm} was written, the store ends at #{last} (its files were damaged)",
            last + 1
        ),
    })
}

/// Opens a file to `fdatasync` it. Windows' `FlushFileBuffers` needs a handle with write
/// access ("Access denied" otherwise); Unix needs none.
fn open_to_sync(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(cfg!(windows))
        .open(path)
}

/// sled's log: the file every record goes to (sled 0.34 keeps its segments in `db`).
pub(crate) fn open_data_file(dir: &Path) -> Option<std::fs::File> {
    match open_to_sync(&dir.join("db")) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot open sled's log to fdatasync it; acknowledged records survive a crash, not a power cut");
            None
        }
    }
}

/// Makes the journal private: the directory 0700 (nobody else can even reach its files,
/// whatever the umask made them) and every file in it 0600.
pub(crate) fn make_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in walk(dir)? {
            let mode = if entry.is_dir() { 0o700 } else { 0o600 };
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `fdatasync`s every file in sled's `blobs` directory and the directory itself.
pub(crate) fn sync_blobs(dir: &Path) -> std::io::Result<()> {
    let blobs = dir.join("blobs");
    let Ok(entries) = std::fs::read_dir(&blobs) else {
        return Ok(());
    };
    for e in entries {
        let path = e?.path();
        if path.is_file() {
            open_to_sync(&path)?.sync_data()?;
        }
    }
    #[cfg(unix)]
    std::fs::File::open(&blobs)?.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        }
        out.push(path);
    }
    Ok(out)
}

pub(crate) fn open_db(dir: &Path, cache_capacity: u64) -> Result<sled::Db, JournalError> {
    let deadline = std::time::Instant::now() + LOCK_RETRY;
    loop {
        let opened = guard("opening", || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(cache_capacity)
                .open()
        })?;
        match opened {
            Ok(db) => return Ok(db),
            Err(e) => match JournalError::storage(dir, e) {
                JournalError::Locked { .. } if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                err => return Err(err),
            },
        }
    }
}

/// Read access to a journal directory that no agent is running on (sled locks it).
pub struct JournalReader {
    dir: PathBuf,
    // Kept open for the trees' lifetime.
    _db: sled::Db,
    trees: Trees,
}

impl JournalReader {
    /// Opens `dir`. A journal held by a running agent is [`JournalError::Locked`]; a directory
    /// without a journal is an error too (reading never creates one).
    pub fn open(dir: impl AsRef<Path>) -> Result<JournalReader, JournalError> {
        let dir = dir.as_ref();
        if !dir.join("conf").exists() && !dir.join("db").exists() {
            return Err(JournalError::Storage(format!(
                "{} holds no journal",
                dir.display()
            )));
        }
        let db = open_db(dir, DEFAULT_CACHE_CAPACITY)?;
        let trees = Trees::open(&db, dir)?;
        Ok(JournalReader {
            dir: dir.to_path_buf(),
            _db: db,
            trees,
        })
    }

    /// [`JournalError::OldVersion`] when the journal (its first record or newest snapshot) was
    /// written in a format this podport does not replay; [`Journal::open`](crate::Journal::open)
    /// refuses such a journal with the same error.
    pub fn check_version(&self) -> Result<(), JournalError> {
        self.trees.old_version().map_or(Ok(()), Err)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records from `from` on; a bad record is an `Err` item and iteration continues.
    pub fn records(&self, from: u64) -> impl Iterator<Item = Result<Record, JournalError>> + '_ {
        self.trees.records(from)
    }

    /// The latest snapshot plus the records after it.
    pub fn replay(&self) -> Replay {
        self.with_hwm(self.trees.replay(None, true))
    }

    /// Every record from the first, ignoring snapshots.
    pub fn replay_full(&self) -> Replay {
        self.with_hwm(self.trees.replay(None, false))
    }

    fn with_hwm(&self, mut replay: Replay) -> Replay {
        if replay.stopped_at.is_none() {
            replay.stopped_at = check_hwm(&self.dir, &self.trees);
        }
        replay
    }

    /// The state as it was after record `seq`. When the records before it were compacted
    /// away and no snapshot covers it, `stopped_at` says so instead of giving a partial state.
    pub fn replay_until(&self, seq: u64) -> Replay {
        self.trees.replay(Some(seq), true)
    }

    /// Every bad record and snapshot, in order.
    pub fn verify(&self) -> Vec<CorruptRecord> {
        let mut bad: Vec<CorruptRecord> = check_hwm(&self.dir, &self.trees).into_iter().collect();
        for r in self.trees.records(0) {
            match r {
                Ok(_) => {}
                Err(JournalError::Corrupt(c)) => bad.push(c),
                Err(JournalError::FutureVersion { seq, version }) => bad.push(CorruptRecord {
                    seq,
                    reason: format!("format version {version} is newer than this podport"),
                }),
                Err(e @ JournalError::OldVersion { seq, .. }) => bad.push(CorruptRecord {
                    seq,
                    reason: e.to_string(),
                }),
                Err(e) => bad.push(CorruptRecord {
                    seq: 0,
                    reason: e.to_string(),
                }),
            }
        }
        let snapshots = guard("reading snapshots", || {
            self.trees.snapshots.iter().collect::<Vec<_>>()
        })
        .unwrap_or_else(|e| vec![Err(sled::Error::ReportableBug(e.to_string()))]);
        for kv in snapshots {
            match kv {
                Ok((k, v)) => {
                    let seq = seq_of(&k).unwrap_or(0);
                    if let Err(e) = decode_state(seq, &v) {
                        bad.push(CorruptRecord {
                            seq,
                            reason: format!("snapshot: {e}"),
                        });
                    }
                }
                Err(e) => bad.push(CorruptRecord {
                    seq: 0,
                    reason: e.to_string(),
                }),
            }
        }
        bad
    }

    /// Counts by kind, sequence range, size, snapshots.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            bytes: guard("reading records", || {
                self.trees
                    .records
                    .iter()
                    .flatten()
                    .map(|kv| (kv.0.len() + kv.1.len()) as u64)
                    .sum()
            })
            .unwrap_or_default(),
            ..Stats::default()
        };
        for r in self.trees.records(0) {
            match r {
                Ok(rec) => {
                    s.records += 1;
                    s.first_seq.get_or_insert(rec.seq);
                    s.last_seq = Some(rec.seq);
                    *s.by_kind.entry(rec.event.kind().to_string()).or_default() += 1;
                }
                Err(_) => s.corrupt += 1,
            }
        }
        s.snapshots = guard("reading snapshots", || {
            self.trees
                .snapshots
                .iter()
                .keys()
                .flatten()
                .filter_map(|k| seq_of(&k))
                .collect()
        })
        .unwrap_or_default();
        s
    }

    /// Raw access for tests and repair tools: the records tree.
    pub fn raw_records(&self) -> &sled::Tree {
        &self.trees.records
    }
}
