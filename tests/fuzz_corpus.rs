//! Replays the corpus each fuzz target keeps (`<crate>/fuzz/seeds/<target>/`: what the runs
//! found, cut to a small edge cover, plus every input that once stopped the fuzzer) through the
//! very function the target calls, so the normal suite checks every kept input on stable
//! without libFuzzer. The fuzz crates' READMEs say how the corpora were made.

use std::path::Path;

/// Feeds every file of `crate_dir/fuzz/seeds/target` to `body`; returns how many there were.
fn replay(crate_dir: &str, target: &str, body: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("fuzz/seeds")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{}", path.display());
        body(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
    n
}

#[test]
fn frame_decoder_corpus() {
    replay(
        "crates/openflow",
        "frame_decoder",
        podport_openflow::fuzzing::frame_decoder,
    );
}

#[test]
fn rpc_stream_corpus() {
    replay(
        "crates/ovsdb",
        "rpc_stream",
        podport_ovsdb::fuzzing::rpc_stream,
    );
}

#[test]
fn record_decoder_corpus() {
    replay(
        "journal",
        "record_decoder",
        podport_journal::fuzzing::fuzz_decode,
    );
}

#[test]
fn journal_line_corpus() {
    replay(
        "journal",
        "journal_line",
        podport_journal::fuzzing::fuzz_json_line,
    );
}

#[test]
fn control_request_corpus() {
    let n = replay(
        "crates/control",
        "control_request",
        podport_control::fuzzing::control_request,
    );
    assert!(n >= 20, "only {n} seeds");
}
