//! The Windows agent's control server on a named pipe, served to `podport status` and
//! `podport cni`: the real Windows binaries, run under Wine by `cargo test --target
//! x86_64-pc-windows-gnu` (scripts/wine-run).
//!
//! No OVS runs here, so the agent's OVSDB and OpenFlow endpoints are a loopback port nobody
//! listens on: it keeps retrying, and everything that does not need the switch must work.
//! On Windows the test must run elevated: the control pipe admits SYSTEM and Administrators
//! only (Wine 8 does not check the pipe's DACL, see podport-transport's npipe tests).
#![cfg(windows)]

use std::path::Path;
use std::process::Command;

mod support;
use support::{free_loopback_port, podport_bin, podport_ok, status_json, wait_exit, Logged, BOUND};

/// A loopback TCP endpoint nobody listens on: a port the OS gave out, then closed.
fn closed_endpoint() -> String {
    format!("tcp:127.0.0.1:{}", free_loopback_port())
}

/// A pipe name no other test (nor an earlier run) uses.
fn unique_pipe() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        r"npipe:\\.\pipe\podport-test-{}-{nanos}",
        std::process::id()
    )
}

/// `podport agent` with its log (stderr) collected line by line.
struct Agent {
    proc: Logged,
}

impl Agent {
    fn spawn(control: &str, journal: &Path, switch: &str) -> Agent {
        let proc = Logged::spawn(
            Command::new(podport_bin())
                .args(["agent", "--ovsdb", switch, "--openflow", switch])
                .args(["--bridge", "br-int", "--control", control])
                .arg("--journal")
                .arg(journal)
                .args(["--not-ready-every", "500ms"])
                .env("RUST_LOG", "info")
                .env("RUST_BACKTRACE", "0"),
        );
        Agent { proc }
    }

    /// Starts the agent and waits until it listens on `control`.
    fn start(control: &str, journal: &Path, switch: &str) -> Agent {
        let agent = Agent::spawn(control, journal, switch);
        agent.wait_log(&["listening on the control socket"]);
        agent
    }

    /// Waits for a log line containing every one of `needles` (already logged or to come).
    fn wait_log(&self, needles: &[&str]) {
        self.proc.wait_log(needles);
    }

    /// Ends the agent hard (TerminateProcess) and waits for it to be gone.
    fn kill(&mut self) {
        self.proc.child.kill().expect("terminate the agent");
        wait_exit(&mut self.proc.child, BOUND)
            .unwrap_or_else(|| panic!("the agent was still running {BOUND:?} after its kill"));
    }
}

#[test]
fn status_and_cni_are_served_over_the_control_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let control = unique_pipe();
    let switch = closed_endpoint();
    let mut agent = Agent::start(&control, &journal, &switch);

    // The status answers: both connections down (nothing listens), no Pods yet.
    let status = podport_ok(&["status", "--control", &control]);
    assert!(
        status.contains("ovsdb: down") && status.contains("switch: down"),
        "{status}"
    );
    assert!(
        status.contains("IFNAME  POD  OFPORT  PHASE  READY  WAITED  ERROR"),
        "{status}"
    );
    assert_eq!(status.lines().count(), 2, "no Pod rows expected:\n{status}");
    assert!(status_json(&control).is_empty());

    // An add is acknowledged (journaled) although no switch is there to create the port.
    let added = podport_ok(&[
        "cni",
        "add",
        "--control",
        &control,
        "--pod",
        "default/web-1",
        "--container-id",
        "ctr-1",
        "--ifname",
        "vnic-1",
        "--ip",
        "10.1.0.5/16",
        "--mac",
        "02:00:0a:01:00:05",
    ]);
    assert_eq!(added.trim(), "added vnic-1 (Pod default/web-1)");
    let ports = status_json(&control);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["ifname"], "vnic-1", "{ports:?}");
    assert_eq!(ports[0]["pod"], "default/web-1", "{ports:?}");
    assert_eq!(ports[0]["ready"], false, "{ports:?}");
    // The engine reports it not ready yet (every 500 ms), as it waits for the switch.
    agent.wait_log(&["Pod not ready yet", "vnic-1"]);
    let table = podport_ok(&["status", "--control", &control]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("vnic-1") && l.contains("default/web-1") && l.contains(" no ")),
        "{table}"
    );

    // A second agent (another journal) cannot take the pipe: a clear error naming it.
    let mut second = Agent::spawn(&control, &dir.path().join("journal-2"), &switch);
    let code = wait_exit(&mut second.proc.child, BOUND)
        .unwrap_or_else(|| panic!("a second agent on {control} kept running"));
    assert!(!code.success(), "{code}");
    let log = second.proc.log_text();
    assert!(
        log.contains(&format!("{control} is already in use")),
        "the second agent's log:\n{log}"
    );

    // A second agent on the same journal (another pipe) is refused by the journal's lock
    // (LockFileEx), with the clear "locked" error.
    let mut third = Agent::spawn(&unique_pipe(), &journal, &switch);
    let code = wait_exit(&mut third.proc.child, BOUND)
        .unwrap_or_else(|| panic!("a second agent on the same journal kept running"));
    assert!(!code.success(), "{code}");
    let log = third.proc.log_text();
    assert!(
        log.contains("is locked by another process"),
        "the second agent's log:\n{log}"
    );

    // Killed hard and restarted on its journal and pipe, the agent still has the Pod: the
    // acknowledgement meant the add was journaled. The pipe went with the process.
    agent.kill();
    let _agent = Agent::start(&control, &journal, &switch);
    let ports = status_json(&control);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["ifname"], "vnic-1", "{ports:?}");
    assert_eq!(ports[0]["ready"], false, "{ports:?}");
}
