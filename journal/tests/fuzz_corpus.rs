//! Replays the fuzz corpora kept in `journal/fuzz/seeds/` (minimised with `cargo fuzz cmin`,
//! plus any input that once crashed) through the same functions the fuzz targets call, so
//! the main test suite checks them on stable without libFuzzer. See `journal/fuzz/README.md`.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
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
}

#[test]
fn record_decoder_corpus() {
    replay("record_decoder", podport_journal::fuzzing::fuzz_decode);
}

#[test]
fn journal_line_corpus() {
    replay("journal_line", podport_journal::fuzzing::fuzz_json_line);
}
