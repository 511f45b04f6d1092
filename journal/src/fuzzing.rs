//! The bodies of the journal's fuzz targets (`journal/fuzz`), here so that the corpus replay
//! test (the workspace's `tests/fuzz_corpus.rs`) runs the same code on stable. Not an API.

use crate::codec::{decode_record, decode_state, encode_record, encode_state, envelope};
use crate::dump::record_from_json_line;

/// The body of the `record_decoder` target.
///
/// Input: the first byte picks the mode, the rest is the value. Bit 0 set: the rest is a
/// payload, wrapped in a valid envelope (current version, right CRC) so that rkyv's
/// validation sees fuzzed bytes, which a CRC mismatch would otherwise almost always stop;
/// clear: the rest is the stored value as is. Bit 1 set: decoded as a snapshot, clear: as a
/// record. Checked: nothing panics, and whatever decodes re-encodes and decodes to itself.
pub fn fuzz_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let wrapped;
    let value = if mode & 1 == 1 {
        wrapped = envelope(rest);
        &wrapped[..]
    } else {
        rest
    };
    if mode & 2 == 0 {
        if let Ok(stored) = decode_record(7, value) {
            let again = decode_record(7, &encode_record(&stored)).expect("re-encoded record");
            assert_eq!(again, stored, "record round trip");
        }
    } else if let Ok(state) = decode_state(7, value) {
        let again = decode_state(7, &encode_state(&state)).expect("re-encoded snapshot");
        assert_eq!(again, state, "snapshot round trip");
    }
}

/// The body of the `journal_line` target: one line of the journal stream the agent's
/// control socket sends (`podport-journal --control`; `dump --json` prints them), parsed with
/// [`record_from_json_line`]. Checked: nothing panics, and a record that parses
/// prints and parses back to itself.
pub fn fuzz_json_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(record) = record_from_json_line(line) {
        let printed = serde_json::to_string(&record).expect("a record prints");
        let again = record_from_json_line(&printed).expect("printed record parses");
        assert_eq!(again, record, "JSON line round trip");
    }
}
