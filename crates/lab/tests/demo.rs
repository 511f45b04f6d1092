//! `podport-lab demo` and `podport-lab bench --quick` as a user runs them: the real binary,
//! which starts its own private OVS. The bench also starts a `podport agent`, found next to
//! `podport-lab`: build `podport` too (`cargo test -p podport -p podport-lab` does).
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn lab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podport-lab"));
    c.stdin(Stdio::null());
    c
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run podport-lab");
    assert!(
        out.status.success(),
        "podport-lab failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn demo_compare_reports_both_strategies_and_keeps_a_valid_journal() {
    let keep = tempfile::tempdir().unwrap();
    let out = run(lab()
        .args([
            "demo",
            "--pods",
            "5",
            "--stall",
            "2",
            "--compare",
            "--json",
            "--keep",
        ])
        .arg(keep.path()));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    let by = |s: &str| {
        runs.iter()
            .find(|r| r["strategy"] == s)
            .unwrap_or_else(|| panic!("no {s} run: {report}"))
    };
    let ps = by("portstatus");
    assert_eq!(ps["pods"], 5);
    assert_eq!(ps["ready"], 5, "{report}");
    assert_eq!(ps["failed"], 0, "{report}");
    // The 2 s stall gives the 1 s not-ready reports of at least one interval.
    assert!(ps["not_ready_events"].as_u64().unwrap() >= 5, "{report}");
    for key in ["p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(ps[key].as_f64().is_some(), "{key}: {report}");
    }
    // No port can be allocated before the thaw, 2 s after the freeze that preceded the
    // attaches (a causal bound, not a timing expectation: the attaches take well under 1 s).
    assert!(ps["max_ms"].as_f64().unwrap() >= 1000.0, "{report}");
    // The legacy run: with a 2 s stall its 5 s wait may or may not fail; its counts are there.
    let ow = by("ovsdb-wait");
    assert_eq!(ow["pods"], 5);
    for key in ["ready", "failed", "not_ready_events"] {
        assert!(ow[key].as_u64().is_some(), "{key}: {report}");
    }
    // The human summary went to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Pods ready"), "{stderr}");
    assert!(stderr.contains("podport-journal timeline"), "{stderr}");

    for strategy in ["portstatus", "ovsdb-wait"] {
        let dir = keep.path().join(strategy);
        let reader = podport_journal::JournalReader::open(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(reader.verify(), vec![], "{}", dir.display());
        let state = reader.replay().state;
        assert_eq!(state.ports.len(), 5, "{}", dir.display());
    }
    let ps_state = podport_journal::JournalReader::open(keep.path().join("portstatus"))
        .unwrap()
        .replay()
        .state;
    assert!(
        ps_state.ports.values().all(|p| p.is_ready()),
        "{:#?}",
        ps_state.ports
    );
}

#[test]
fn demo_refuses_a_keep_directory_that_already_holds_a_journal() {
    // Refused before any OVS is started, so this runs without OVS too.
    let keep = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(keep.path().join("portstatus")).unwrap();
    std::fs::write(keep.path().join("portstatus").join("conf"), "x").unwrap();
    let out = lab()
        .args(["demo", "--pods", "1", "--keep"])
        .arg(keep.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds a journal"), "{stderr}");
}

#[test]
fn demo_rejects_bad_arguments() {
    for args in [
        &["demo", "--pods", "0"][..],
        &["demo", "--stall", "-1"],
        &["demo", "--stall", "soon"],
        &["demo", "--strategy", "polling"],
        &["demo", "--compare", "--strategy", "ovsdb-wait"],
    ] {
        let out = lab().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn section(text: &str) -> &str {
    let a = text.find("<!-- bench:e2e:start -->").expect("start marker");
    let b = text.find("<!-- bench:e2e:end -->").expect("end marker");
    assert!(b > a);
    &text[a..b]
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn bench_quick_writes_the_marked_section_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("benchmarks.md");
    let before = "# Benchmarks\n\nsomething measured earlier\n\n<!-- bench:e2e:start -->\nold table\n<!-- bench:e2e:end -->\n\n## Later\n\nmore\n";
    std::fs::write(&out_file, before).unwrap();
    let out = run(lab().args(["bench", "--quick", "--out"]).arg(&out_file));
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        written.starts_with("# Benchmarks\n\nsomething measured earlier\n\n"),
        "{written}"
    );
    assert!(
        written.ends_with("<!-- bench:e2e:end -->\n\n## Later\n\nmore\n"),
        "{written}"
    );
    assert!(!written.contains("old table"), "{written}");
    let sec = section(&written);
    for (row, n) in [
        ("| 1 | single Pod on an idle switch", 1),
        ("| 2 | bulk", 1),
        ("| 3 | stall", 1),
        ("| 3b | stall", 1),
        ("| 4 | throughput", 1),
        ("| 5 | CPU per Pod", 1),
        ("| 6 | memory", 1),
        ("| 6b | memory", 1),
        ("| 7 | journal: durable appends, batches of", 3),
    ] {
        assert_eq!(
            sec.lines().filter(|l| l.starts_with(row)).count(),
            n,
            "{row}: {sec}"
        );
    }
    assert!(!sec.contains("NaN") && !sec.contains("inf"), "{sec}");
    // The same table went to stdout.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| 2 | bulk"), "{stdout}");
    // The charts went next to the file, and are SVG documents.
    for chart in ["bench-stall-cdf.svg", "bench-bulk-stages.svg"] {
        let svg = std::fs::read_to_string(dir.path().join(chart)).expect(chart);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{chart}: {svg}"
        );
    }

    // A missing file is created with the section alone.
    let fresh = dir.path().join("new").join("b.md");
    run(lab().args(["bench", "--quick", "--out"]).arg(&fresh));
    let text = std::fs::read_to_string(&fresh).unwrap();
    assert!(text.starts_with("<!-- bench:e2e:start -->"), "{text}");
    assert_section_rows(&fresh);
}

fn assert_section_rows(file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let sec = section(&text);
    assert_eq!(
        sec.lines()
            .filter(|l| l.starts_with("| ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_digit))
            .count(),
        11,
        "{sec}"
    );
}
