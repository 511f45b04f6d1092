//! Fuzzes the OpenFlow input path as a switch connection sees it: a byte stream split by
//! `OfFramer`, each frame decoded and handed to a sans-IO `Connection`. The body is
//! `podport_openflow::fuzzing::frame_decoder` (input layout there), so the corpus replay test in
//! `tests/fuzz_corpus.rs` runs the same code on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| podport_openflow::fuzzing::frame_decoder(data));
