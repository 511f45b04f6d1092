//! Replays the fuzz corpus kept in `crates/openflow/fuzz/seeds/` (what a run found, cut to a
//! small edge cover, plus any input that once crashed) through the same function the fuzz
//! target calls, so the main test suite checks it on stable without libFuzzer. See
//! `crates/openflow/fuzz/README.md`.

use std::path::Path;

#[test]
fn frame_decoder_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/frame_decoder");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{}", path.display());
        podport_openflow::fuzzing::frame_decoder(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}
