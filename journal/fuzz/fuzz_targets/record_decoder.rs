//! Fuzzes the journal's stored-value decoder (envelope, CRC, rkyv validation) for records and
//! snapshots. The body is `podport_journal::fuzzing::fuzz_decode` (input layout there), so the
//! corpus replay test in `tests/fuzz_corpus.rs` runs the same code on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| podport_journal::fuzzing::fuzz_decode(data));
