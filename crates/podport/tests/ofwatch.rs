//! `podport ofwatch` as a user runs it: the real binary against a real OVS.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use podport_ovs_sandbox::sandbox_for_test;
use serde_json::Value;

mod support;
use support::BOUND;

fn podport() -> Command {
    Command::new(support::podport_bin())
}

/// Kills the child on drop so a failing test leaves no process behind.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn podport");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next JSON line satisfying `pred`, within the bound.
    fn wait_json(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no {what} within {BOUND:?}; output so far:\n{}",
                    self.seen.join("\n")
                )
            });
            self.seen.push(line.clone());
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if pred(&v) {
                return v;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(v: &Value, kind: &str, name: &str) -> bool {
    v["kind"] == kind && v["name"] == name
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn survives_a_switch_restart_and_prints_the_port_list_again() {
    let sb = sandbox_for_test();
    let mut run = Running::spawn(podport().args([
        "ofwatch",
        "--openflow",
        &sb.openflow_endpoint(),
        "--of-version",
        "1.3",
        "--json",
    ]));
    run.wait_json("the LOCAL port", |v| is(v, "port_desc", "br-int"));
    sb.add_port("p1").unwrap();
    let add = run.wait_json("ADD p1", |v| is(v, "port_status", "p1"));
    assert_eq!(add["reason"], "add");
    assert_eq!(add["state"], serde_json::json!([]));
    let live = run.wait_json("MODIFY p1", |v| is(v, "port_status", "p1"));
    assert_eq!(live["reason"], "modify");
    assert_eq!(live["state"], serde_json::json!(["LIVE"]));
    let n = sb.wait_for_ofport("p1", BOUND).unwrap();
    assert_eq!(live["port_no"], n);

    sb.restart_vswitchd().unwrap();
    // No PortStatus is sent for existing ports after a restart: the list is printed again.
    // p1 was added after the first list, so a port_desc line for it comes from the new one
    // (sorted by number: p1, then LOCAL).
    let again = run.wait_json("p1 in the new port list", |v| is(v, "port_desc", "p1"));
    assert_eq!(again["port_no"], sb.wait_for_ofport("p1", BOUND).unwrap());
    run.wait_json("the LOCAL port after the restart", |v| {
        is(v, "port_desc", "br-int")
    });
}

#[test]
fn a_bad_endpoint_is_a_clear_error() {
    let out = podport()
        .args(["ofwatch", "--openflow", "bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad endpoint \"bogus\""), "{stderr}");
}
