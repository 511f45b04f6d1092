//! Fuzzes one line of the journal stream that the agent's control socket sends (`journal`
//! request; `podport-journal dump --json` prints the same form). The body is
//! `podport_journal::fuzzing::fuzz_json_line`, so the corpus replay test in
//! `tests/fuzz_corpus.rs` runs the same code on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| podport_journal::fuzzing::fuzz_json_line(data));
