//! `podport-journal --control`: the same output from a running agent's control socket as from
//! its directory. A small fake agent serves the journal stream of the control protocol (`podport_control`)
//! (the real agent is exercised in `crates/podport/tests/agent_e2e.rs`).
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use podport_control::end_line;
use podport_journal::dump::record_json;
use podport_journal::{Event, Journal, JournalConfig, JournalReader, PodRef, Policy, Record};
use serde_json::Value;
use tempfile::TempDir;

const T0: u64 = 1_795_780_800_000_000;

/// A small journal: one Pod that is attached and reported ready, one that is added only.
fn build(dir: &Path) -> Vec<Record> {
    let j = Journal::open(dir, JournalConfig::default()).unwrap();
    let pod = |name: &str| PodRef {
        namespace: "default".into(),
        name: name.into(),
    };
    let created = |ifname: &str, name: &str, cookie: u64| Event::PodAdded {
        pod: pod(name),
        container_id: format!("c-{name}"),
        ifname: ifname.into(),
        ips: vec!["10.0.0.5/24".into()],
        mac: "02:00:0a:00:00:05".into(),
        cookie,
    };
    let events = vec![
        Event::AgentStarted {
            version: "0.2.0".into(),
            config_digest: "x".into(),
            policy: Policy::default(),
        },
        created("vnic-1", "web-1", 0x00a0_0000_0000_0001),
        Event::HostInterfaceCreated {
            ifname: "vnic-1".into(),
        },
        created("vnic-2", "web-2", 0x00a0_0000_0000_0002),
        Event::FlowsInstalled {
            ifname: "vnic-1".into(),
            port_no: 5,
            cookie: 0x00a0_0000_0000_0001,
            count: 5,
        },
        Event::PodReady {
            ifname: "vnic-1".into(),
            port_no: 5,
            waited_ms: 12,
        },
    ];
    for (i, e) in events.into_iter().enumerate() {
        j.append_at(T0 + i as u64 * 1_000, e).wait().unwrap();
    }
    j.close().unwrap();
    let reader = JournalReader::open(dir).unwrap();
    let records = reader.records(0).map(Result::unwrap).collect();
    drop(reader);
    records
}

/// What the fake agent does with a journal request.
#[derive(Clone)]
enum Fake {
    /// Serves these records (those from the request's `from` on), then the end line.
    Serve(Vec<Record>),
    /// Refuses with this error.
    Refuse(String),
}

/// Starts a fake agent on a socket in `dir`; serves connections until the test ends.
fn fake_agent(dir: &Path, fake: Fake) -> String {
    let path = dir.join("ctl.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut rd = BufReader::new(conn.try_clone().unwrap());
            let mut wr = conn;
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let req: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(req["op"], "journal", "{req}");
            assert_eq!(req["follow"], false, "{req}");
            let from = req["from"].as_u64().unwrap();
            let mut out = String::new();
            match &fake {
                Fake::Serve(records) => {
                    for r in records.iter().filter(|r| r.seq >= from) {
                        out.push_str(&record_json(r));
                        out.push('\n');
                    }
                    let last = records.last().map_or(0, |r| r.seq);
                    out.push_str(&end_line(last));
                    out.push('\n');
                }
                Fake::Refuse(e) => {
                    out.push_str(&serde_json::json!({"ok": false, "error": e}).to_string());
                    out.push('\n');
                }
            }
            let _ = wr.write_all(out.as_bytes());
        }
    });
    format!("unix:{}", path.display())
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podport-journal"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> (String, String) {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        o.status,
        text(&o.stderr)
    );
    (text(&o.stdout), text(&o.stderr))
}

struct Setup {
    _tmp: TempDir,
    dir: PathBuf,
    records: Vec<Record>,
}

fn setup() -> Setup {
    let tmp = tempfile::Builder::new().prefix("pj-").tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let records = build(&dir);
    Setup {
        dir,
        records,
        _tmp: tmp,
    }
}

#[test]
fn control_gives_what_the_directory_gives() {
    let s = setup();
    let ctl = fake_agent(s._tmp.path(), Fake::Serve(s.records.clone()));
    let dir = s.dir.to_str().unwrap();
    for args in [
        vec!["dump"],
        vec!["dump", "--json"],
        vec!["dump", "--since", "3", "--until", "5"],
        vec!["dump", "--pod", "default/web-2"],
        vec!["dump", "--port", "vnic-1"],
        vec!["state"],
        vec!["state", "--json"],
        vec!["state", "--at", "4"],
        vec!["timeline", "--port", "vnic-1"],
        vec!["timeline", "--summary"],
        vec!["timeline", "--summary", "--json"],
    ] {
        let from_dir = ok(&[args.clone(), vec![dir]].concat()).0;
        let (from_ctl, err) = ok(&[args.clone(), vec!["--control", &ctl]].concat());
        assert_eq!(from_ctl, from_dir, "{args:?}");
        assert!(!from_ctl.is_empty(), "{args:?}");
        assert_eq!(err, "", "{args:?}");
    }
}

#[test]
fn state_from_a_compacted_agent_journal_warns() {
    let s = setup();
    let tail = s.records[2..].to_vec();
    let ctl = fake_agent(s._tmp.path(), Fake::Serve(tail));
    let (out, err) = ok(&["state", "--control", &ctl]);
    // vnic-1's PodAdded (#2) is gone, so the fold cannot know it: hence the warning.
    assert!(out.contains("vnic-2") && !out.contains("vnic-1"), "{out}");
    assert!(
        err.contains("starts at record #3") && err.contains("may be incomplete"),
        "{err}"
    );
    // The summary says so too: vnic-1's Ready is not counted without its PodAdded.
    let (out, err) = ok(&["timeline", "--summary", "--control", &ctl]);
    assert!(
        out.starts_with("0 Ready of 1 Pods (records #3..#6)"),
        "{out}"
    );
    assert!(err.contains("the records start at #3"), "{err}");
}

#[test]
fn refusals_and_absent_agents_are_errors() {
    let s = setup();
    let ctl = fake_agent(s._tmp.path(), Fake::Refuse("the journal is closed".into()));
    let o = run(&["dump", "--control", &ctl]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("the agent refused: the journal is closed"),
        "{}",
        text(&o.stderr)
    );
    let missing = format!("unix:{}", s._tmp.path().join("none.sock").display());
    let o = run(&["state", "--control", &missing]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("cannot reach the agent at {missing}"))
            && err.contains("is `podport agent` running?"),
        "{err}"
    );
    // Exactly one source.
    let dir = s.dir.to_str().unwrap();
    assert_eq!(
        run(&["dump", dir, "--control", &ctl]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["dump"]).status.code(), Some(2));
}
