//! The Windows agent's control server on a named pipe, served to `podport status` and
//! `podport cni`: the real Windows binaries, run under Wine by `cargo test --target
//! x86_64-pc-windows-gnu` (scripts/wine-run).
//!
//! No OVS runs here, so the agent's OVSDB and OpenFlow endpoints are a loopback port nobody
//! listens on: it keeps retrying, and everything that does not need the switch must work.
//! On Windows the test must run elevated: the control pipe admits SYSTEM and Administrators
//! only (Wine 8 does not check the pipe's DACL, see podport-transport's npipe tests).
#![cfg(windows)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every wait ends within this, or the test fails saying what it waited for. Generous:
/// starting a process under Wine takes a good part of a second.
const BOUND: Duration = Duration::from_secs(60);

fn podport_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podport"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The child's exit status, or `None` if it is still running after `bound`.
fn wait_exit(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `podport ARGS` to its end within [`BOUND`], killing it past that.
fn podport(args: &[&str]) -> Output {
    let mut child = Command::new(podport_bin())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn podport {args:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_exit(&mut child, BOUND).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("podport {args:?} did not finish within {BOUND:?}")
    });
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Runs `podport ARGS`, expecting success; returns stdout.
fn podport_ok(args: &[&str]) -> String {
    let out = podport(args);
    assert!(
        out.status.success(),
        "podport {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A loopback TCP endpoint nobody listens on: a port the OS gave out, then closed.
fn closed_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("tcp:127.0.0.1:{port}")
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
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

impl Agent {
    fn spawn(control: &str, journal: &Path, switch: &str) -> Agent {
        let mut child = Command::new(podport_bin())
            .args(["agent", "--ovsdb", switch, "--openflow", switch])
            .args(["--bridge", "br-int", "--control", control])
            .arg("--journal")
            .arg(journal)
            .args(["--not-ready-every", "500ms"])
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn podport agent");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Agent { child, log, lines }
    }

    /// Starts the agent and waits until it listens on `control`.
    fn start(control: &str, journal: &Path, switch: &str) -> Agent {
        let agent = Agent::spawn(control, journal, switch);
        agent.wait_log(&["listening on the control socket"]);
        agent
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing every one of `needles` (already logged or to come).
    fn wait_log(&self, needles: &[&str]) {
        let hit = |l: &str| needles.iter().all(|n| l.contains(n));
        if self.log.lock().unwrap().iter().any(|l| hit(l)) {
            return;
        }
        let deadline = Instant::now() + BOUND;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if hit(&l) => return,
                Ok(_) => {}
                // Timed out, or the agent exited (its stderr closed).
                Err(_) => panic!(
                    "no log line with {needles:?} within {BOUND:?}:\n{}",
                    self.log_text()
                ),
            }
        }
    }

    /// Ends the agent hard (TerminateProcess) and waits for it to be gone.
    fn kill(&mut self) {
        self.child.kill().expect("terminate the agent");
        wait_exit(&mut self.child, BOUND)
            .unwrap_or_else(|| panic!("the agent was still running {BOUND:?} after its kill"));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- agent log ----\n{}\n-------------------",
                self.log_text()
            );
        }
    }
}

fn status_json(control: &str) -> Vec<Value> {
    let out = podport_ok(&["status", "--json", "--control", control]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
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
    let code = wait_exit(&mut second.child, BOUND)
        .unwrap_or_else(|| panic!("a second agent on {control} kept running"));
    assert!(!code.success(), "{code}");
    let log = second.log_text();
    assert!(
        log.contains(&format!("{control} is already in use")),
        "the second agent's log:\n{log}"
    );

    // A second agent on the same journal (another pipe) is refused by the journal's lock
    // (LockFileEx), with the clear "locked" error.
    let mut third = Agent::spawn(&unique_pipe(), &journal, &switch);
    let code = wait_exit(&mut third.child, BOUND)
        .unwrap_or_else(|| panic!("a second agent on the same journal kept running"));
    assert!(!code.success(), "{code}");
    let log = third.log_text();
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
