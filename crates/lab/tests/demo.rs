//! `podport-lab demo` and `podport-lab bench --quick` as a user runs them: the real binary,
//! which starts its own private OVS. The bench also starts a `podport agent`, found next to
//! `podport-lab`: build `podport` too (`cargo test -p podport -p podport-lab` does).
//!
//! The demo runs on the real datapath where network namespaces can be used (the build sets
//! `cfg(no_netns)` where they cannot: see crates/ovs-sandbox/build/netns_cfg.rs), else on the
//! dummy one.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn lab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podport-lab"));
    c.stdin(Stdio::null());
    c
}

fn run(cmd: &mut Command) -> Output {
    run_pid(cmd).0
}

/// [`run`], and the process id it had.
fn run_pid(cmd: &mut Command) -> (Output, u32) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run podport-lab");
    let pid = child.id();
    let out = child.wait_with_output().expect("run podport-lab");
    assert!(
        out.status.success(),
        "podport-lab failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, pid)
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn demo_compare_reports_both_strategies_and_keeps_a_valid_journal() {
    let keep = tempfile::tempdir().unwrap();
    let (out, pid) = run_pid(
        lab()
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
            .arg(keep.path()),
    );
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
    // Where namespaces can be used, every Pod of both runs, moved into a namespace of its own,
    // pings its neighbour through podport's flows; elsewhere the demo says why not.
    if cfg!(no_netns) {
        assert_eq!(report["datapath"], "dummy", "{report}");
        assert!(report["dummy_reason"].is_string(), "{report}");
        for r in runs {
            assert!(r["reach_neighbour"].is_null(), "{report}");
        }
        assert!(
            stderr.contains("portstatus: no ping figure: dummy datapath ("),
            "{stderr}"
        );
    } else {
        assert_eq!(report["datapath"], "netdev", "{report}");
        assert_eq!(report["readiness"], "live-or-link-down", "{report}");
        for r in runs {
            assert_eq!(r["reach_neighbour"], 5, "{report}");
            assert!(r["reach_neighbour_note"].is_null(), "{report}");
        }
        for strategy in ["portstatus", "ovsdb-wait"] {
            let line = format!("5/5 Pods reach their neighbour ({strategy}: Pod i pings Pod i+1)");
            assert!(stderr.contains(&line), "{line}:\n{stderr}");
        }
        assert!(stderr.contains("readiness live-or-link-down"), "{stderr}");
        assert_eq!(leftovers(pid), Vec::<String>::new());
    }

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
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn demo_on_the_dummy_datapath_says_why_and_has_no_ping_figure() {
    let out = run(lab().args(["demo", "--pods", "2", "--datapath", "dummy"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dummy datapath (--datapath dummy): no packets cross it, so no ping check"),
        "{stderr}"
    );
    assert!(stdout.contains("Pods ready"), "{stdout}");
    assert!(
        stdout.contains("portstatus: no ping figure: dummy datapath (--datapath dummy)"),
        "{stdout}"
    );
    assert!(!stdout.contains("reach their neighbour ("), "{stdout}");
}

/// The network namespaces and host devices a demo of process `pid` creates: namespaces
/// `ppns<pid>x..`, bridges `ppbr<pid>x..`, Pod ports `p<pid><s|w><i>` (all in hex).
fn leftovers(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns_prefix = format!("ppns{pid:x}x");
    found.extend(
        String::from_utf8_lossy(&ns.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&ns_prefix))
            .map(str::to_owned),
    );
    let dev_prefixes = [
        format!("ppbr{pid:x}x"),
        format!("p{pid:x}s"),
        format!("p{pid:x}w"),
    ];
    for dev in std::fs::read_dir("/sys/class/net").unwrap() {
        let name = dev.unwrap().file_name().to_string_lossy().into_owned();
        if dev_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            found.push(name);
        }
    }
    found
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn demo_interrupted_during_the_ping_check_leaves_no_namespace_or_device() {
    let mut child = lab()
        .args(["demo", "--pods", "40", "--datapath", "netdev"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the demo ended before its ping check:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("moves into a network namespace of its own") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert_eq!(leftovers(pid), Vec::<String>::new(), "{seen}");
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
