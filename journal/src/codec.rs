//! The stored form of records and snapshots.
//!
//! Key: the sequence number, big-endian u64 (so sled's byte order is sequence order).
//! Value: `[format version: u8][CRC-32C of the payload: u32 BE][payload]`, the payload being
//! the rkyv archive of the record (or of the folded state, for snapshots). Reading checks the
//! version (a newer one is `FutureVersion`, never a misread), then the checksum, then rkyv's
//! validation (bytecheck) on a copy aligned for rkyv, since sled's buffers are only 8-aligned.

use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;

use crate::event::Stored;
use crate::state::State;
use crate::JournalError;

/// A record that failed its checksum or validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record #{seq} is corrupt: {reason}")]
pub struct CorruptRecord {
    pub seq: u64,
    pub reason: String,
}

/// The format this podport writes and reads.
pub const FORMAT_VERSION: u8 = 3;
/// Versions 1 and 2 are not replayed: see `docs/journal.md`, "Older versions".
pub const OLDEST_UNREADABLE: u8 = 1;
const HEADER_LEN: usize = 5;

/// The sled key of a sequence number.
pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a sled key.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

pub(crate) fn envelope(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope and returns the payload, copied into an rkyv-aligned buffer.
fn open(seq: u64, value: &[u8]) -> Result<AlignedVec, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt(CorruptRecord { seq, reason });
    let Some((&version, rest)) = value.split_first() else {
        return Err(corrupt("empty value".into()));
    };
    if version > FORMAT_VERSION {
        return Err(JournalError::FutureVersion { seq, version });
    }
    if (OLDEST_UNREADABLE..FORMAT_VERSION).contains(&version) {
        return Err(JournalError::OldVersion { seq, version });
    }
    if version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {version}")));
    }
    if rest.len() < 4 {
        return Err(corrupt(format!(
            "value of {} bytes is shorter than its header",
            value.len()
        )));
    }
    let (crc, payload) = rest.split_at(4);
    let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let got = crc32c::crc32c(payload);
    if want != got {
        return Err(corrupt(format!(
            "CRC-32C mismatch: stored {want:#010x}, computed {got:#010x} over {} bytes",
            payload.len()
        )));
    }
    let mut aligned = AlignedVec::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    Ok(aligned)
}

pub(crate) fn encode_record(stored: &Stored) -> Vec<u8> {
    // Serialising owned, well-formed values into memory cannot fail.
    let bytes = rkyv::to_bytes::<RkyvError>(stored).expect("rkyv serialisation of a record");
    envelope(&bytes)
}

pub(crate) fn decode_record(seq: u64, value: &[u8]) -> Result<Stored, JournalError> {
    let aligned = open(seq, value)?;
    rkyv::from_bytes::<Stored, RkyvError>(&aligned).map_err(|e| {
        JournalError::Corrupt(CorruptRecord {
            seq,
            reason: format!("rkyv validation failed: {e}"),
        })
    })
}

pub(crate) fn encode_state(state: &State) -> Vec<u8> {
    let bytes = rkyv::to_bytes::<RkyvError>(state).expect("rkyv serialisation of a snapshot");
    envelope(&bytes)
}

pub(crate) fn decode_state(seq: u64, value: &[u8]) -> Result<State, JournalError> {
    let aligned = open(seq, value)?;
    rkyv::from_bytes::<State, RkyvError>(&aligned).map_err(|e| {
        JournalError::Corrupt(CorruptRecord {
            seq,
            reason: format!("snapshot failed rkyv validation: {e}"),
        })
    })
}
