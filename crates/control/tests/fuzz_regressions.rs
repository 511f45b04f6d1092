//! What the `control_request` fuzz corpus must hold, and the regressions it found. The replay
//! of every kept seed through the target's body is `tests/fuzz_corpus.rs` of the workspace's
//! `tests` crate, with the other targets'. See `crates/control/fuzz/README.md`.

use std::path::Path;

use podport_control::{parse_request, read_line, LineRead};

/// The seeds hold a valid request of every op, so the round trip is exercised for each.
#[test]
fn the_seeds_hold_every_op() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/control_request");
    let mut ops = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        for line in data.get(1..).unwrap_or_default().split(|&b| b == b'\n') {
            if let Ok(r) = parse_request(line.strip_suffix(b"\r").unwrap_or(line)) {
                ops.insert(r.op());
            }
        }
    }
    let all = [
        "add",
        "attach",
        "del",
        "status",
        "health",
        "subscribe",
        "journal",
    ];
    assert_eq!(ops, all.into_iter().collect(), "ops with a valid seed");
}

/// What the harness's model found when it was written (`seeds/control_request/regress-*`): a
/// last line without its newline that ends in `\r` was read as a line one byte over the limit.
/// With no `\n` after it the `\r` is the line's own, so the line is too long.
#[tokio::test]
async fn a_last_line_ending_in_cr_counts_its_cr() {
    let mut input = vec![b'x'; 8];
    input.push(b'\r');
    for cap in [1, 4, 64] {
        let mut r = tokio::io::BufReader::with_capacity(cap, &input[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut r, &mut buf, 8).await.unwrap(),
            LineRead::TooLong,
            "read {cap} bytes at a time"
        );
        assert_eq!(read_line(&mut r, &mut buf, 8).await.unwrap(), LineRead::Eof);
    }
}
