//! Fuzzes the OVSDB input path: a byte stream split by `JsonSplitter`, every value parsed with
//! `rpc::parse`. The body is `podport_ovsdb::fuzzing::rpc_stream` (input layout there), so the
//! corpus replay test in `tests/fuzz_corpus.rs` runs the same code on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| podport_ovsdb::fuzzing::rpc_stream(data));
