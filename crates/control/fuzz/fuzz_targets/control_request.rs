//! Fuzzes the control socket's request path: a connection's bytes read line by line with the
//! bounded `read_line`, every line parsed with `parse_request`. The body is
//! `podport_control::fuzzing::control_request` (input layout there), so the corpus replay test
//! in `tests/fuzz_corpus.rs` runs the same code on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| podport_control::fuzzing::control_request(data));
