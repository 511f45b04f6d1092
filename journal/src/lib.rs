//! podport's journal: every state change of the engine as a durable, append-only record, so a
//! restarted agent can rebuild the state of ports that will never get a PortStatus again and a
//! person can replay what happened to a Pod.
//!
//! - [`event`]: the records.
//! - [`codec`]: the stored envelope (format version, CRC-32C, rkyv payload).
//! - [`state`]: the pure fold `apply(&mut State, &Record)` shared with the engine.
//! - [`stages`]: when each stage of a Pod's attach ended (part of the fold).
//! - [`writer`]: [`Journal`], the writer thread with group commit and durability tickets.
//! - [`reader`]: [`JournalReader`]: iteration, replay (snapshot plus tail), verify, stats.
//! - [`dump`]: text, JSON and SVG renderings for the `podport-journal` tool.
//!
//! The on-disk layout is described in `docs/journal.md`.

#[doc(hidden)]
pub mod bench_load;
pub mod codec;
pub mod dump;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod reader;
pub mod stages;
pub mod state;
pub mod writer;

pub use codec::FORMAT_VERSION;
pub use event::{
    now_micros, wire_name, Event, Failure, FailureKind, Finding, Outcome, Phase, PodRef, Policy,
    PortDesc, PortReason, Readiness, Record, Step,
};
pub use reader::DEFAULT_CACHE_CAPACITY;
pub use reader::{CorruptRecord, JournalReader, Replay, Stats};
pub use stages::{Stage, StageTimes};
pub use state::{
    apply, apply_event, cookie_generation, InstalledFlows, PodPort, ReadyMark, State, SwitchInfo,
    COOKIE_GENERATION_MASK, POD_COOKIE_BASE, POD_COOKIE_MASK,
};
pub use writer::{FlushPolicy, Journal, JournalConfig, Ticket};

use std::path::PathBuf;

/// Errors of the journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// Another process (usually the running agent) holds the journal.
    #[error("journal {dir} is locked by another process (a running agent holds it; read it through the agent's control socket instead)")]
    Locked { dir: PathBuf },
    /// sled or the file system failed.
    #[error("journal storage error: {0}")]
    Storage(String),
    /// A record failed its checksum or validation.
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    /// A record written by a newer podport.
    #[error(
        "record #{seq} has format version {version}; this podport reads up to {}",
        FORMAT_VERSION
    )]
    FutureVersion { seq: u64, version: u8 },
    /// A journal written by an older podport whose records this one does not replay.
    #[error(
        "record #{seq} has format version {version}; this podport reads version {} only: {}. \
         Move the directory aside (keep it for the podport-journal that wrote it) and start with \
         a new one",
        FORMAT_VERSION,
        old_version_reason(*version)
    )]
    OldVersion { seq: u64, version: u8 },
    /// The writer thread is gone (closed, or it failed earlier).
    #[error("the journal writer has stopped: {0}")]
    Closed(String),
}

impl JournalError {
    pub(crate) fn storage(dir: &std::path::Path, e: sled::Error) -> JournalError {
        let text = e.to_string();
        // sled reports a held lock as an IO error from its file lock.
        if text.contains("lock")
            || text.contains("WouldBlock")
            || text.contains("Resource temporarily unavailable")
        {
            JournalError::Locked {
                dir: dir.to_path_buf(),
            }
        } else {
            JournalError::Storage(format!("{}: {text}", dir.display()))
        }
    }
}

/// Why a journal of an older format `version` is not replayed.
fn old_version_reason(version: u8) -> &'static str {
    match version {
        1 => {
            "version 1 (podport 0.1) lacks the facts the new fold needs (each Pod's cookie, \
             whether its attach came, its phase as a type), so a replay would have to guess them"
        }
        _ => {
            "its snapshots lack each Pod's stage times (the folded state's layout changed), so a \
             replay from a snapshot would have to invent them"
        }
    }
}
