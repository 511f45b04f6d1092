//! Replays the fuzz seeds kept in `crates/control/fuzz/seeds/` (plus any input that once
//! crashed) through the same function the fuzz target calls, so the main test suite checks
//! them on stable without libFuzzer. See `crates/control/fuzz/README.md`.

use std::path::Path;

use podport_control::{parse_request, read_line, LineRead};

fn replay(target: &str, body: fn(&[u8])) -> usize {
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
    n
}

#[test]
fn control_request_corpus() {
    let n = replay("control_request", podport_control::fuzzing::control_request);
    assert!(n >= 20, "only {n} seeds");
}

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
