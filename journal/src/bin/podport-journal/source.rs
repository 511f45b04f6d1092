//! Where the tool's records come from. Every subcommand works on the items and replays a
//! [`Source`] hands out, never on sled directly: a journal directory, or a running agent's
//! control socket (JSON lines of `Record`, read with `podport_control`'s client).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use podport_control::{Client, ClientError, Endpoint, JournalLine};
use podport_journal::dump::{record_from_json_line, Item};
use podport_journal::{apply, CorruptRecord, JournalError, JournalReader, Record, Replay, Stats};

/// How long connecting may take, and the agent may stay silent in the middle of a stream.
const REMOTE_IDLE: Duration = Duration::from_secs(30);

/// A source of records.
#[derive(Clone, Debug)]
pub enum Source {
    /// A journal directory no agent is running on.
    Dir(PathBuf),
    /// A running agent's control socket.
    Control(Endpoint),
}

/// A source, opened.
pub enum Opened {
    Dir(JournalReader),
    /// Every record the agent still has, fetched at open. The agent sends only records that
    /// decoded (it skips and logs a bad one), and no snapshots.
    Control(Vec<Record>),
}

/// Every record from `from` on, from the agent at `endpoint`.
fn fetch(endpoint: &Endpoint, from: u64) -> anyhow::Result<Vec<Record>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime that reads the agent's journal")?;
    rt.block_on(fetch_async(endpoint, from))
        .map_err(|e| match e {
            // The error says it all, with its hint.
            e @ Fetch::Client(ClientError::Connect { .. }) => anyhow::Error::new(e),
            other => anyhow::Error::new(other).context(format!(
                "cannot read the journal of the agent at {endpoint}"
            )),
        })
}

/// Why fetching a remote journal failed.
#[derive(Debug, thiserror::Error)]
enum Fetch {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("bad record line from the agent ({error}): {line}")]
    BadRecord {
        line: String,
        error: serde_json::Error,
    },
}

async fn fetch_async(endpoint: &Endpoint, from: u64) -> Result<Vec<Record>, Fetch> {
    let mut client = Client::connect(endpoint, REMOTE_IDLE).await?;
    client.journal(from, false).await?;
    let mut out = Vec::new();
    loop {
        match client.next_journal_line(Some(REMOTE_IDLE)).await? {
            JournalLine::End { .. } => return Ok(out),
            JournalLine::Record(line) => match record_from_json_line(&line) {
                Ok(r) => out.push(r),
                Err(error) => return Err(Fetch::BadRecord { line, error }),
            },
        }
    }
}

impl Source {
    /// Opens the source. A journal held by a running agent is `JournalError::Locked`, kept as
    /// the error's root so the caller can tell it apart.
    pub fn open(&self) -> anyhow::Result<Opened> {
        match self {
            Source::Dir(dir) => {
                // sled would create a missing directory; reading must never do that, and
                // "does not exist" is clearer than sled's error.
                match std::fs::metadata(dir) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        bail!("journal directory {} does not exist", dir.display())
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot read {}", dir.display()))
                    }
                    Ok(m) if !m.is_dir() => bail!("{} is not a directory", dir.display()),
                    Ok(_) => {}
                }
                let cannot = |e: JournalError| match e {
                    JournalError::Locked { .. } => anyhow::Error::new(e),
                    other => anyhow::Error::new(other)
                        .context(format!("cannot open the journal in {}", dir.display())),
                };
                let reader = JournalReader::open(dir).map_err(cannot)?;
                // A version-1 journal is not replayed: say why, rather than show it empty.
                reader.check_version().map_err(cannot)?;
                Ok(Opened::Dir(reader))
            }
            Source::Control(endpoint) => Ok(Opened::Control(fetch(endpoint, 0)?)),
        }
    }
}

/// Records with `since <= seq <= until` (each bound optional), in order; a record that cannot
/// be read is an `Err` item and the rest still come.
pub fn records(
    source: &Source,
    since: Option<u64>,
    until: Option<u64>,
) -> anyhow::Result<Vec<Item>> {
    match source {
        // Only what is asked for crosses the socket.
        Source::Control(endpoint) => Ok(fetch(endpoint, since.unwrap_or(0))?
            .into_iter()
            .filter(|r| until.is_none_or(|u| r.seq <= u))
            .map(Ok)
            .collect()),
        Source::Dir(_) => Ok(source.open()?.records(since, until)),
    }
}

/// What a reading error says about the record it stopped at.
fn bad_record(e: JournalError, next_seq: u64) -> CorruptRecord {
    match e {
        JournalError::Corrupt(c) => c,
        JournalError::FutureVersion { seq, version } => CorruptRecord {
            seq,
            reason: format!("format version {version} is newer than this podport-journal"),
        },
        e @ JournalError::OldVersion { seq, .. } => CorruptRecord {
            seq,
            reason: e.to_string(),
        },
        other => CorruptRecord {
            seq: next_seq,
            reason: other.to_string(),
        },
    }
}

impl Opened {
    /// See [`records`].
    pub fn records(&self, since: Option<u64>, until: Option<u64>) -> Vec<Item> {
        match self {
            Opened::Dir(reader) => {
                let mut out = Vec::new();
                let mut last = since.unwrap_or(1).saturating_sub(1);
                for item in reader.records(since.unwrap_or(0)) {
                    let storage_error = matches!(item, Err(JournalError::Storage(_)));
                    let item = item.map_err(|e| bad_record(e, last + 1));
                    let seq = match &item {
                        Ok(r) => r.seq,
                        Err(c) => c.seq,
                    };
                    if until.is_some_and(|u| seq > u) {
                        break;
                    }
                    last = last.max(seq);
                    out.push(item);
                    // The store itself failed: what would follow is not trustworthy.
                    if storage_error {
                        break;
                    }
                }
                out
            }
            Opened::Control(records) => records
                .iter()
                .filter(|r| since.is_none_or(|s| r.seq >= s) && until.is_none_or(|u| r.seq <= u))
                .cloned()
                .map(Ok)
                .collect(),
        }
    }

    /// For an agent's journal whose oldest records were compacted away: the first sequence
    /// number it still has. A fold of its records then lacks what the snapshot held.
    pub fn compacted_before(&self) -> Option<u64> {
        match self {
            Opened::Dir(_) => None,
            Opened::Control(records) => records.first().map(|r| r.seq).filter(|&s| s > 1),
        }
    }

    /// The folded state: the latest (`at: None`) or as of record `at`.
    pub fn replay(&self, at: Option<u64>) -> Replay {
        match self {
            Opened::Dir(reader) => match at {
                Some(seq) => reader.replay_until(seq),
                None => reader.replay(),
            },
            Opened::Control(records) => {
                let mut replay = Replay::default();
                for r in records.iter().take_while(|r| at.is_none_or(|a| r.seq <= a)) {
                    apply(&mut replay.state, r);
                    replay.last_seq = r.seq;
                    replay.records_replayed += 1;
                }
                replay
            }
        }
    }

    /// Every bad record and snapshot.
    pub fn verify(&self) -> Vec<CorruptRecord> {
        match self {
            Opened::Dir(reader) => reader.verify(),
            // The agent checked every record it sent; there is nothing more to check here.
            Opened::Control(_) => Vec::new(),
        }
    }

    pub fn stats(&self) -> Stats {
        match self {
            Opened::Dir(reader) => reader.stats(),
            Opened::Control(records) => {
                let mut stats = Stats {
                    records: records.len() as u64,
                    first_seq: records.first().map(|r| r.seq),
                    last_seq: records.last().map(|r| r.seq),
                    ..Stats::default()
                };
                for r in records {
                    *stats.by_kind.entry(r.event.kind().to_string()).or_default() += 1;
                }
                stats
            }
        }
    }
}
