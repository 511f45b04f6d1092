//! `podport agent` end to end, as an operator and a CNI plugin use it: the real binaries
//! (`podport agent`, `podport cni`, `podport status`, `podport-journal`) against a real OVS.
//!
//! The agent runs with `--initial-type podport-pending` (a type OVS cannot open), so a Pod's
//! port has no OpenFlow number until the attach switches it to `internal`, as on a Windows
//! node before the vNIC exists.
//!
//! `podport-journal` belongs to another package, so Cargo gives no `CARGO_BIN_EXE_` for it;
//! it is taken from next to the `podport` binary. `cargo test --workspace` builds every
//! binary before it runs any test; a bare `cargo test -p podport` does not, and then the
//! test says to build it first.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podport_ovs_sandbox::{sandbox_for_test, Sandbox};
use serde_json::Value;

mod support;
use support::{
    agent_args, agent_command, assert_flows, free_loopback_port, podport, podport_bin,
    podport_fails, podport_ok, run_bounded, status_json, tempdir, text, wait_exit,
    youngest_pod_flow, Logged, BOUND,
};

fn journal_tool() -> PathBuf {
    let path = podport_bin().with_file_name("podport-journal");
    assert!(
        path.exists(),
        "{} is missing: this test runs the podport-journal binary of the podport-journal \
         package, which `cargo test --workspace` builds first; with a narrower command, run \
         `cargo build -p podport-journal` before it",
        path.display()
    );
    path
}

fn journal_tool_run(args: &[&str]) -> Output {
    run_bounded(Command::new(journal_tool()).args(args), b"")
}

/// A running `podport agent`; killed on drop, its log printed if the test failed.
struct Agent {
    proc: Logged,
    control: String,
    journal: PathBuf,
}

impl Agent {
    /// Starts the agent on the sandbox and waits until its control socket answers.
    fn start(sb: &Sandbox, dir: &Path, extra: &[&str]) -> Agent {
        let control = format!("unix:{}", dir.join("ctl.sock").display());
        Agent::start_on(sb, dir, &control, extra)
    }

    /// The same on another control endpoint (a `tcp:` one: until it says it listens).
    fn start_on(sb: &Sandbox, dir: &Path, control: &str, extra: &[&str]) -> Agent {
        Agent::start_with_env(sb, dir, control, extra, &[])
    }

    /// The same with more environment variables.
    fn start_with_env(
        sb: &Sandbox,
        dir: &Path,
        control: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let journal = dir.join("journal");
        let proc = Logged::spawn(
            agent_command(sb, &journal, control)
                .args(["--not-ready-every", "1s"])
                .args(extra)
                .envs(env.iter().copied()),
        );
        let mut agent = Agent {
            proc,
            control: control.to_string(),
            journal,
        };
        agent.wait_up();
        agent
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(self.control.strip_prefix("unix:").unwrap())
    }

    fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// Polls the control socket until a status request is answered.
    fn wait_up(&mut self) {
        if !self.control.starts_with("unix:") {
            self.wait_log("listening on the control socket");
            return;
        }
        let deadline = Instant::now() + BOUND;
        loop {
            self.assert_running();
            if let Ok(mut c) = Raw::connect(&self.socket()) {
                if c.request(r#"{"op":"status"}"#)["ok"] == true {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the agent's control socket did not answer within {BOUND:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line containing `needle` (from now on or already logged).
    fn wait_log(&self, needle: &str) {
        self.proc.wait_log(&[needle]);
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.proc.child.id() as i32), sig).expect("signal the agent");
    }

    /// Sends `sig` and waits for the agent to exit.
    fn stop(&mut self, sig: Signal) -> ExitStatus {
        self.signal(sig);
        wait_exit(&mut self.proc.child, BOUND).unwrap_or_else(|| {
            panic!(
                "the agent did not exit within {BOUND:?} of {sig}:\n{}",
                self.log_text()
            )
        })
    }

    fn assert_running(&mut self) {
        self.proc.assert_running();
    }
}

/// A raw control connection, every read bounded.
struct Raw {
    rd: BufReader<UnixStream>,
    wr: UnixStream,
}

impl Raw {
    fn connect(path: &Path) -> std::io::Result<Raw> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(BOUND))?;
        s.set_write_timeout(Some(BOUND))?;
        Ok(Raw {
            rd: BufReader::new(s.try_clone()?),
            wr: s,
        })
    }

    fn send(&mut self, line: &str) {
        self.wr.write_all(line.as_bytes()).unwrap();
        self.wr.write_all(b"\n").unwrap();
    }

    /// The next line, or `None` at EOF.
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.rd.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(l.trim_end().to_string()),
            // The agent closed with our input unread: as good as an end of stream.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading from the agent: {e}"),
        }
    }

    fn value(&mut self) -> Value {
        let l = self.line().expect("the agent closed the connection");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    }

    fn request(&mut self, line: &str) -> Value {
        self.send(line);
        self.value()
    }
}

fn pod_args(control: &str, i: u32) -> Vec<String> {
    [
        "cni",
        "add",
        "--control",
        control,
        "--pod",
        &format!("default/pod-{i}"),
        "--container-id",
        &format!("ctr-{i}"),
        "--ifname",
        &format!("vnic-{i}"),
        "--ip",
        &format!("10.1.0.{i}/16"),
        "--mac",
        &format!("02:00:00:00:00:{i:02x}"),
    ]
    .map(String::from)
    .to_vec()
}

fn add_and_attach(control: &str, i: u32) {
    let args = pod_args(control, i);
    let out = podport_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains(&format!("added vnic-{i}")), "{out}");
    podport_ok(&[
        "cni",
        "attach",
        "--control",
        control,
        "--ifname",
        &format!("vnic-{i}"),
    ]);
}

/// Every stage of an attach (a JSON object: its keys have no order).
const STAGES: [&str; 9] = [
    "added",
    "port_committed",
    "host_attached",
    "type_changed",
    "port_known",
    "usable",
    "flows_sent",
    "flows_confirmed",
    "ready",
];

/// The agent's journal through its control socket, as `podport-journal dump --json` prints it.
fn journal_records(control: &str) -> Vec<Value> {
    let out = journal_tool_run(&["dump", "--control", control, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn pods_become_ready_through_the_cli_then_sigterm_leaves_a_clean_journal() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let metrics = format!("127.0.0.1:{}", free_loopback_port());
    let mut agent = Agent::start(&sb, dir.path(), &["--metrics", &metrics]);
    let ctl = agent.control.clone();
    agent.wait_log("listening on the control socket");

    for i in 1..=3 {
        add_and_attach(&ctl, i);
    }
    let out = podport_ok(&[
        "status",
        "--control",
        &ctl,
        "--wait-ready",
        "3",
        "--timeout",
        "30",
    ]);
    assert!(out.starts_with("ovsdb: up "), "{out}");
    assert!(out.contains(" | switch: up "), "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("IFNAME"), "{out}");
    assert_eq!(out.lines().count(), 5, "{out}");

    let ports = status_json(&ctl);
    assert_eq!(ports.len(), 3, "{ports:?}");
    for p in &ports {
        for key in [
            "ifname",
            "pod",
            "ofport",
            "phase",
            "ready",
            "waited_ms",
            "state",
        ] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
        assert_eq!(p["ready"], true, "{p}");
        assert_eq!(p["phase"], "ready", "{p}");
        let ifname = p["ifname"].as_str().unwrap();
        let ofport = sb.ofport(ifname).unwrap().unwrap();
        assert_eq!(p["ofport"].as_i64(), Some(ofport), "{p}");
        assert!(
            p["pod"].as_str().unwrap().starts_with("default/pod-"),
            "{p}"
        );
        // Every stage of the attach, in order, each with the seconds since the one before.
        let stages = p["stages"].as_object().expect("stages");
        let mut names: Vec<&str> = stages.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut want = STAGES;
        want.sort_unstable();
        assert_eq!(names, want, "{p}");
        assert!(
            stages
                .values()
                .all(|v| v.as_f64().is_some_and(|s| s >= 0.0)),
            "{p}"
        );
        let total: f64 = stages.values().filter_map(Value::as_f64).sum();
        assert!(total < 30.0, "the stages add up to the attach: {p}");
    }
    assert_flows(&sb, 3);
    // Each Ready's log line carries its stages.
    agent.wait_log("flows_confirmed=");

    // The CLI's failures say what went wrong and exit non-zero.
    let mut long = pod_args(&ctl, 9);
    let at = long.iter().position(|a| a == "--ifname").unwrap() + 1;
    long[at] = "vnic-0123456789a".into();
    let err = podport_fails(&long.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("the agent refused") && err.contains("is 16 bytes"),
        "{err}"
    );
    let err = podport_fails(&["cni", "attach", "--control", &ctl, "--ifname", "vnic-404"]);
    assert!(err.contains("vnic-404 is not tracked"), "{err}");
    let missing = format!("unix:{}", dir.path().join("missing.sock").display());
    let err = podport_fails(&["status", "--control", &missing]);
    assert!(
        err.contains(&format!("cannot reach the agent at {missing}"))
            && err.contains("is `podport agent` running?"),
        "{err}"
    );

    // Metrics over HTTP, on loopback only.
    let page = http_get(&metrics, "/metrics");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("text/plain; version=0.0.4"), "{page}");
    assert!(page.contains("podport_pods_ready 3"), "{page}");
    assert!(page.contains("podport_ovsdb_up 1"), "{page}");
    assert!(page.contains("podport_switch_up 1"), "{page}");
    assert!(http_get(&metrics, "/").starts_with("HTTP/1.1 404"));

    // The running agent's journal: through the control socket, not the locked directory.
    let records = journal_records(&ctl);
    let ready = records
        .iter()
        .filter(|r| r["event"]["kind"] == "pod_ready")
        .count();
    assert_eq!(ready, 3, "{records:?}");
    let state = journal_tool_run(&["state", "--control", &ctl]);
    assert!(state.status.success(), "{}", text(&state.stderr));
    assert!(
        text(&state.stdout).contains("vnic-3"),
        "{}",
        text(&state.stdout)
    );
    let locked = journal_tool_run(&["dump", agent.journal.to_str().unwrap()]);
    assert_eq!(locked.status.code(), Some(2), "{}", text(&locked.stdout));
    assert!(
        text(&locked.stderr).contains("locked"),
        "{}",
        text(&locked.stderr)
    );

    // SIGTERM: a clean exit, a clean journal, the socket file gone.
    let status = agent.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}:\n{}", agent.log_text());
    assert!(agent.log_text().contains("journal flushed"));
    assert!(
        !agent.socket().exists(),
        "the control socket file is left behind"
    );
    let verify = journal_tool_run(&["verify", agent.journal.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "verify: {}\n{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn bad_requests_get_errors_and_dropped_streams_harm_nothing() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let mut agent = Agent::start(&sb, dir.path(), &[]);
    let ctl = agent.control.clone();
    let mut c = Raw::connect(&agent.socket()).unwrap();
    for (line, want) in [
        ("garbage", "not JSON"),
        ("{}", "no \"op\""),
        (r#"{"op":"reboot"}"#, "unknown op \"reboot\""),
        (r#"{"op":"attach"}"#, "missing field `ifname`"),
        (
            r#"{"op":"add","namespace":"a","name":"b","container_id":"c","ifname":"v","ips":["10.0.0.1"],"mac":"zz"}"#,
            "mac \"zz\" is not a MAC address",
        ),
    ] {
        let v = c.request(line);
        assert_eq!(v["ok"], false, "{line}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(want), "{line}: {e}");
    }
    // CNI DEL is idempotent: deleting a Pod that was never added succeeds.
    assert_eq!(c.request(r#"{"op":"del","ifname":"nope"}"#)["ok"], true);
    // The same connection still serves, and a bounded journal stream ends and leaves it usable.
    assert_eq!(c.request(r#"{"op":"status"}"#)["ok"], true);
    c.send(r#"{"op":"journal","from":1,"follow":false}"#);
    let first = c.value();
    assert_eq!(first["seq"], 1, "{first}");
    assert_eq!(first["event"]["kind"], "agent_started", "{first}");
    loop {
        let v = c.value();
        if v["end"] == true {
            assert!(v["last_seq"].as_u64().unwrap() >= 1, "{v}");
            break;
        }
        assert!(v["seq"].as_u64().is_some(), "{v}");
    }
    assert_eq!(c.request(r#"{"op":"status"}"#)["ok"], true);

    // A line over 64 KiB: an error, then the connection is closed.
    let mut big = Raw::connect(&agent.socket()).unwrap();
    big.send(&format!(
        r#"{{"op":"status","pad":"{}"}}"#,
        "x".repeat(100 * 1024)
    ));
    let v = big.value();
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("longer than 65536 bytes"),
        "{v}"
    );
    assert_eq!(big.line(), None, "the connection should be closed");

    // A subscriber that hangs up in the middle of a stream of events.
    let mut sub = Raw::connect(&agent.socket()).unwrap();
    assert_eq!(sub.request(r#"{"op":"subscribe"}"#)["ok"], true);
    let mut follower = Raw::connect(&agent.socket()).unwrap();
    follower.send(r#"{"op":"journal","from":0,"follow":true}"#);
    assert_eq!(follower.value()["seq"], 1);
    // Pod 1 becomes ready; Pod 2 is never attached, so NotReady events keep coming.
    add_and_attach(&ctl, 1);
    let args = pod_args(&ctl, 2);
    podport_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut seen = Vec::new();
    loop {
        let v = sub.value();
        seen.push(v.clone());
        if v["event"] == "not_ready" && v["ifname"] == "vnic-2" {
            break;
        }
    }
    let ready = seen
        .iter()
        .find(|v| v["event"] == "ready")
        .unwrap_or_else(|| panic!("no ready event: {seen:?}"));
    assert_eq!(ready["ifname"], "vnic-1", "{ready}");
    assert!(ready["port_no"].as_u64().is_some() && ready["waited_ms"].as_u64().is_some());
    assert_eq!(seen.last().unwrap()["phase"], "waiting-interface");
    drop(sub);
    drop(follower);
    agent.wait_log("Pod event subscriber hung up");
    agent.wait_log("journal reader hung up");

    // Nothing was harmed: the agent serves, Pod 2 still becomes ready.
    agent.assert_running();
    podport_ok(&["cni", "attach", "--control", &ctl, "--ifname", "vnic-2"]);
    podport_ok(&[
        "status",
        "--control",
        &ctl,
        "--wait-ready",
        "2",
        "--timeout",
        "30",
    ]);
    assert_flows(&sb, 2);
    // Deleting a Pod removes its flows.
    podport_ok(&["cni", "del", "--control", &ctl, "--ifname", "vnic-2"]);
    let deadline = Instant::now() + BOUND;
    while status_json(&ctl).len() != 1 {
        assert!(Instant::now() < deadline, "vnic-2 still tracked");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_flows(&sb, 1);
    agent.assert_running();
}

/// Issue 10, defect 6: a NUL in an interface name used to reach OVSDB, whose JSON parser
/// refuses it and drops the connection at every retry. Bad specs are now refused at the add,
/// each naming its field, and nothing of them reaches OVSDB or the journal.
#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn bad_pod_specs_are_refused_naming_the_field_and_never_reach_ovsdb() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let mut agent = Agent::start(&sb, dir.path(), &[]);
    let ctl = agent.control.clone();
    agent.wait_log("connected to OVSDB");

    // The CLI cannot carry a NUL in an argument: the raw JSON line can.
    let mut c = Raw::connect(&agent.socket()).unwrap();
    let add = |ifname: &str, ips: &str, mac: &str| {
        format!(
            r#"{{"op":"add","namespace":"default","name":"bad","container_id":"ctr-bad","ifname":"{ifname}","ips":[{ips}],"mac":"{mac}"}}"#
        )
    };
    for (line, want) in [
        (
            add(r"bad\u0000nul", r#""10.1.0.9/16""#, "02:00:00:00:00:09"),
            r#"ifname "bad\0nul" contains '\0' (NUL), which no interface name may contain"#,
        ),
        (
            add("vnic-9", r#""10.1.0.9/16""#, "ff:ff:ff:ff:ff:ff"),
            r#"mac "ff:ff:ff:ff:ff:ff" is the broadcast address"#,
        ),
        (
            add(
                "vnic-9",
                r#""10.1.0.9/16","255.255.255.255""#,
                "02:00:00:00:00:09",
            ),
            r#"ips[1] "255.255.255.255" is the broadcast address"#,
        ),
        (
            add("vnic-9", r#""10.1.0.9/16""#, "02:00:00:00:00:09\\u0000"),
            r#"mac "02:00:00:00:00:09\0" is not a MAC address"#,
        ),
    ] {
        let v = c.request(&line);
        assert_eq!(v["ok"], false, "{line}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(want), "{line}:\n got  {e}\n want {want}");
    }
    assert_eq!(c.request(r#"{"op":"status"}"#)["ok"], true);

    // Through the CLI, as a CNI plugin would.
    let cli = |ifname: &str, ip: &str, mac: &str| {
        let args = [
            "cni",
            "add",
            "--control",
            &ctl,
            "--pod",
            "default/bad",
            "--container-id",
            "ctr-bad",
            "--ifname",
            ifname,
            "--ip",
            ip,
            "--mac",
            mac,
        ];
        podport_fails(&args)
    };
    for (err, want) in [
        (
            cli("vnic-9", "10.1.0.9/16", "ff:ff:ff:ff:ff:ff"),
            r#"the agent refused: mac "ff:ff:ff:ff:ff:ff" is the broadcast address"#,
        ),
        (
            cli("vnic-9", "10.1.0.9/16", "01:00:5e:00:00:01"),
            r#"mac "01:00:5e:00:00:01" is a multicast address"#,
        ),
        (
            cli("vnic-9", "10.1.0.9/16", "00:00:00:00:00:00"),
            r#"mac "00:00:00:00:00:00" is all zeros"#,
        ),
        (
            cli("a/b", "10.1.0.9/16", "02:00:00:00:00:09"),
            r#"ifname "a/b" contains '/', which no interface name may contain"#,
        ),
        (
            cli("a\nb", "10.1.0.9/16", "02:00:00:00:00:09"),
            r#"ifname "a\nb" contains '\n'"#,
        ),
        (
            cli("..", "10.1.0.9/16", "02:00:00:00:00:09"),
            r#"ifname ".." is not an interface name"#,
        ),
        (
            cli("vnic-9", "0.0.0.0/0", "02:00:00:00:00:09"),
            r#"ips[0] "0.0.0.0/0" is the unspecified address"#,
        ),
        (
            cli("vnic-9", "10.1.0.0/16", "02:00:00:00:00:09"),
            r#"ips[0] "10.1.0.0/16" is the network address of its /16 subnet"#,
        ),
    ] {
        assert!(err.contains(want), "got  {err}\nwant {want}");
    }

    // The agent keeps serving: a valid Pod added afterwards becomes ready.
    add_and_attach(&ctl, 1);
    podport_ok(&[
        "status",
        "--control",
        &ctl,
        "--wait-ready",
        "1",
        "--timeout",
        "30",
    ]);
    assert_flows(&sb, 1);
    let ports = status_json(&ctl);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["ifname"], "vnic-1", "{ports:?}");

    // OVSDB never saw a bad name, and the agent's OVSDB connection never dropped.
    let listed = sb.vsctl(&["list-ports", sb.bridge()]).unwrap();
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["vnic-1"], "{listed}");
    let ifaces = sb
        .vsctl(&["--columns=name", "--bare", "list", "Interface"])
        .unwrap();
    assert!(
        !ifaces.contains("bad") && !ifaces.contains("vnic-9"),
        "{ifaces}"
    );
    let log = agent.log_text();
    assert!(!log.contains("OVSDB connection ended"), "{log}");
    assert_eq!(log.matches("connected to OVSDB").count(), 1, "{log}");
    // Nor did the journal: one Pod added, the valid one.
    let added: Vec<_> = journal_records(&ctl)
        .into_iter()
        .filter(|r| r["event"]["kind"] == "pod_added")
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["event"]["ifname"], "vnic-1", "{added:?}");
    agent.assert_running();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_killed_agent_restarts_from_its_journal_without_port_status() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let mut agent = Agent::start(&sb, dir.path(), &[]);
    let ctl = agent.control.clone();
    for i in 1..=2 {
        add_and_attach(&ctl, i);
    }
    podport_ok(&[
        "status",
        "--control",
        &ctl,
        "--wait-ready",
        "2",
        "--timeout",
        "30",
    ]);
    let before: BTreeMap<String, Value> = status_json(&ctl)
        .into_iter()
        .map(|p| {
            (
                p["ifname"].as_str().unwrap().to_string(),
                p["ofport"].clone(),
            )
        })
        .collect();
    let youngest_before = youngest_pod_flow(&sb);
    let status = agent.stop(Signal::SIGKILL);
    assert!(!status.success());
    drop(agent);

    let mut agent = Agent::start(&sb, dir.path(), &[]);
    podport_ok(&[
        "status",
        "--control",
        &ctl,
        "--wait-ready",
        "2",
        "--timeout",
        "30",
    ]);
    let after: BTreeMap<String, Value> = status_json(&ctl)
        .into_iter()
        .map(|p| {
            (
                p["ifname"].as_str().unwrap().to_string(),
                p["ofport"].clone(),
            )
        })
        .collect();
    assert_eq!(before, after, "same ports on the same numbers");
    assert_flows(&sb, 2);
    // Right flows are left untouched: none was deleted and added again (its age would
    // start over).
    let youngest_after = youngest_pod_flow(&sb);
    assert!(
        youngest_after >= youngest_before,
        "a Pod flow was reinstalled: youngest {youngest_after}s after the restart, {youngest_before}s before"
    );

    // Since the restart: reconciliation and readiness, and not a single PortStatus.
    let records = journal_records(&ctl);
    let restart = records
        .iter()
        .rposition(|r| r["event"]["kind"] == "agent_started")
        .unwrap();
    assert!(
        restart > 0,
        "the first run's records are still there: {records:?}"
    );
    let since: Vec<&Value> = records[restart..].iter().collect();
    let kinds: Vec<&str> = since
        .iter()
        .map(|r| r["event"]["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"port_status_received"), "{kinds:?}");
    for ifname in ["vnic-1", "vnic-2"] {
        let found = |kind: &str| {
            since
                .iter()
                .any(|r| r["event"]["kind"] == kind && r["event"]["ifname"] == ifname)
        };
        assert!(found("reconciled"), "{ifname}: {kinds:?}");
        // Ready before the kill, ready after it: not announced a second time.
        assert!(!found("pod_ready"), "{ifname}: {kinds:?}");
    }
    // The same through the directory tool, from the restart's sequence number on.
    let restart_seq = since[0]["seq"].as_u64().unwrap().to_string();
    let status = agent.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    let out = journal_tool_run(&[
        "dump",
        agent.journal.to_str().unwrap(),
        "--since",
        &restart_seq,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dumped = text(&out.stdout);
    assert!(!dumped.contains("PortStatus"), "{dumped}");
    assert!(dumped.contains("Reconciled"), "{dumped}");
    let verify = journal_tool_run(&["verify", agent.journal.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

/// `podport status --health`: its exit status, stdout and stderr.
fn health(control: &str, json: bool) -> (Option<i32>, String, String) {
    let mut args = vec![
        "status",
        "--control",
        control,
        "--health",
        "--timeout",
        "10",
    ];
    if json {
        args.push("--json");
    }
    let out = podport(&args);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Polls `podport status --health` until it exits with `code`; returns its stdout and stderr.
fn wait_health(agent: &Agent, code: i32, what: &str) -> (String, String) {
    let deadline = Instant::now() + BOUND;
    loop {
        let (got, out, err) = health(&agent.control, false);
        if got == Some(code) {
            return (out, err);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: `status --health` still exits {got:?} after {BOUND:?}:\n{out}{err}\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status code and body of an HTTP GET.
fn http_status(addr: &str, path: &str) -> (u16, String) {
    let page = http_get(addr, path);
    let code = page
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {page:?}"));
    let body = page
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn status_shows_both_connections_and_health_follows_ovs_going_away_and_back() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let metrics = format!("127.0.0.1:{}", free_loopback_port());
    let mut agent = Agent::start(&sb, dir.path(), &["--metrics", &metrics]);
    let ctl = agent.control.clone();

    // Both up: exit 0, one line, the same on every surface.
    let (out, _) = wait_health(&agent, 0, "both connections up");
    assert!(
        out.starts_with("ovsdb: up ") && out.contains(" | switch: up ") && out.lines().count() == 1,
        "{out}"
    );
    let (code, json, _) = health(&ctl, true);
    assert_eq!(code, Some(0));
    let h: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(h["engine_running"], true, "{h}");
    assert_eq!(h["ready"], true, "{h}");
    assert_eq!(h["problems"], serde_json::json!([]), "{h}");
    for link in ["ovsdb", "switch"] {
        assert_eq!(h[link]["up"], true, "{h}");
        assert_eq!(h[link]["disconnects"], 0, "{h}");
        assert!(
            h[link]["since_unix_ms"].as_u64().unwrap() > 1_600_000_000_000,
            "{h}"
        );
        assert!(h[link]["for_ms"].is_u64(), "{h}");
    }
    add_and_attach(&ctl, 1);
    let out = podport_ok(&["status", "--control", &ctl, "--wait-ready", "1"]);
    assert!(
        out.starts_with("ovsdb: up ") && out.contains(" | switch: up "),
        "{out}"
    );
    assert!(out.lines().nth(1).unwrap().starts_with("IFNAME"), "{out}");
    // `--json` stays the list of ports; the status answer carries the health besides.
    assert_eq!(status_json(&ctl).len(), 1);
    let mut raw = Raw::connect(&agent.socket()).unwrap();
    let answer = raw.request(r#"{"op":"status"}"#);
    assert_eq!(answer["health"]["ready"], true, "{answer}");
    assert_eq!(answer["ports"].as_array().unwrap().len(), 1, "{answer}");
    drop(raw);
    assert_eq!(http_status(&metrics, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_status(&metrics, "/readyz"), (200, "ok\n".into()));

    // The switch goes away: not healthy (exit 2, saying why), not ready, still alive.
    kill(Pid::from_raw(sb.vswitchd_pid() as i32), Signal::SIGKILL).unwrap();
    let (out, err) = wait_health(&agent, 2, "the switch is down");
    assert!(
        out.starts_with("ovsdb: up ") && out.contains(" | switch: down "),
        "{out}"
    );
    assert!(err.contains("not healthy: switch down "), "{err}");
    let (code, body) = http_status(&metrics, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("not ready: switch down ") && body.lines().count() == 1,
        "{body}"
    );
    assert_eq!(http_status(&metrics, "/healthz"), (200, "ok\n".into()));
    let page = http_get(&metrics, "/metrics");
    assert!(page.contains("podport_switch_up 0"), "{page}");
    // The plain status still works (exit 0) and leads with the outage.
    let out = podport_ok(&["status", "--control", &ctl]);
    assert!(out.contains(" | switch: down "), "{out}");

    // Back: healthy again, the outage counted and its reason kept.
    sb.restart_vswitchd().unwrap();
    wait_health(&agent, 0, "the switch is back");
    let (_, json, _) = health(&ctl, true);
    let h: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(h["switch"]["disconnects"], 1, "{h}");
    assert!(h["switch"]["last_error"].is_string(), "{h}");
    assert_eq!(http_status(&metrics, "/readyz"), (200, "ok\n".into()));

    // OVSDB goes away and comes back the same way.
    kill(Pid::from_raw(sb.ovsdb_server_pid() as i32), Signal::SIGKILL).unwrap();
    let (out, err) = wait_health(&agent, 2, "OVSDB is down");
    assert!(out.starts_with("ovsdb: down "), "{out}");
    assert!(err.contains("not healthy: ovsdb down "), "{err}");
    let (code, body) = http_status(&metrics, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("ovsdb down "), "{body}");
    sb.restart_ovsdb_server().unwrap();
    wait_health(&agent, 0, "OVSDB is back");
    agent.assert_running();
}

#[test]
#[cfg_attr(
    any(no_ovs, not(debug_assertions)),
    ignore = "needs Open vSwitch and a debug build (the engine-panic hook exists only there)"
)]
fn an_agent_whose_engine_dies_exits_non_zero() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let control = format!("unix:{}", dir.path().join("ctl.sock").display());
    let mut agent = Agent::start_with_env(
        &sb,
        dir.path(),
        &control,
        &[],
        &[("PODPORT_TEST_PANIC_ENGINE_AFTER", "1s")],
    );
    let status = wait_exit(&mut agent.proc.child, BOUND)
        .unwrap_or_else(|| panic!("the agent outlived its engine:\n{}", agent.log_text()));
    assert_eq!(status.code(), Some(1), "{status}:\n{}", agent.log_text());
    agent.wait_log("the engine is not running: shutting down with an error");
    agent.wait_log("the agent exits so that it is restarted");
    assert!(
        !agent.socket().exists(),
        "the control socket file is left behind"
    );
    let verify = journal_tool_run(&["verify", agent.journal.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    // No OVS needed: these fail while reading the options.
    let dir = tempdir();
    let j = dir.path().join("journal");
    let base = [
        "agent",
        "--ovsdb",
        "unix:/nonexistent/db.sock",
        "--openflow",
        "unix:/nonexistent/br-int.mgmt",
        "--bridge",
        "br-int",
        "--control",
        "unix:/nonexistent/ctl.sock",
        "--journal",
        j.to_str().unwrap(),
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    let err = podport_fails(&with(&["--metrics", "0.0.0.0:9000"]));
    assert!(
        err.contains("0.0.0.0:9000 is not a loopback address"),
        "{err}"
    );
    let err = podport_fails(&with(&["--not-ready-every", "soon"]));
    assert!(
        err.contains("--not-ready-every: bad duration \"soon\""),
        "{err}"
    );
    let err = podport_fails(&with(&["--readiness", "maybe"]));
    assert!(err.contains("unknown readiness"), "{err}");
    let err = podport_fails(&["agent", "--bridge", "br-int"]);
    assert!(err.contains("missing required option --ovsdb"), "{err}");
    // The same options from a file; flags win, and a missing one is named.
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "ovsdb = \"unix:/x\"\nnot-ready-every = \"1s\"\n").unwrap();
    let err = podport_fails(&["agent", "--config", file.to_str().unwrap()]);
    assert!(err.contains("missing required option --openflow"), "{err}");
    assert!(!j.exists(), "nothing was created");
}

/// Reads one line from `s` within `within`: `Ok(Some(line))`, `Ok(None)` at the end of the
/// stream, `Err(())` when nothing came in time.
fn line_within(rd: &mut BufReader<UnixStream>, within: Duration) -> Result<Option<String>, ()> {
    rd.get_ref().set_read_timeout(Some(within)).unwrap();
    let mut l = String::new();
    let got = match rd.read_line(&mut l) {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(l.trim_end().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(None),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(())
        }
        Err(e) => panic!("reading from the agent: {e}"),
    };
    rd.get_ref().set_read_timeout(Some(BOUND)).unwrap();
    got
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn idle_connections_cannot_keep_clients_out() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    // A long idle timeout: only making room at the cap can let `status` in quickly.
    let agent = Agent::start(&sb, dir.path(), &["--control-idle-timeout", "60s"]);
    let ctl = agent.control.clone();
    // 300 connections that say nothing (the cap is 256).
    let idle: Vec<Raw> = (0..300)
        .map(|i| Raw::connect(&agent.socket()).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let t = Instant::now();
    let out = podport_ok(&["status", "--control", &ctl, "--timeout", "10"]);
    let took = t.elapsed();
    assert!(out.lines().nth(1).unwrap().starts_with("IFNAME"), "{out}");
    assert!(
        took < Duration::from_secs(5),
        "status took {took:?} with 300 idle connections open"
    );
    let args = pod_args(&ctl, 1);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--timeout", "10"]);
    podport_ok(&args);
    // The ones idle the longest were closed, each with a line that says why; the newest
    // still serves.
    let mut idle = idle;
    let first = &mut idle[0];
    let v = first.value();
    assert_eq!(v["ok"], false, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("maximum of 256 control connections") && e.contains("idle the longest"),
        "{e}"
    );
    assert_eq!(first.line(), None);
    let last = idle.last_mut().unwrap();
    assert_eq!(last.request(r#"{"op":"status"}"#)["ok"], true);
    agent.wait_log("control connections at their cap");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn idle_connections_time_out_and_streams_do_not() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let agent = Agent::start(&sb, dir.path(), &["--control-idle-timeout", "1s"]);
    let ctl = agent.control.clone();
    let sub = Raw::connect(&agent.socket()).unwrap();
    let mut sub = sub;
    assert_eq!(sub.request(r#"{"op":"subscribe"}"#)["ok"], true);
    let mut follower = Raw::connect(&agent.socket()).unwrap();
    follower.send(r#"{"op":"journal","from":1,"follow":true}"#);
    assert_eq!(follower.value()["seq"], 1);

    // Silent, half a line, and blank lines (not requests): each closed after about 1 s,
    // with a line that says why.
    let silent = Raw::connect(&agent.socket()).unwrap();
    let mut half = Raw::connect(&agent.socket()).unwrap();
    half.wr.write_all(br#"{"op":"sta"#).unwrap();
    let mut blank = Raw::connect(&agent.socket()).unwrap();
    let t = Instant::now();
    for _ in 0..3 {
        let _ = blank.wr.write_all(b"\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    for (name, mut c) in [
        ("silent", silent),
        ("half a line", half),
        ("blank lines", blank),
    ] {
        let v = c.value();
        let took = t.elapsed();
        assert_eq!(v["ok"], false, "{name}: {v}");
        assert_eq!(
            v["error"], "closed: no complete request within 1s",
            "{name}: {v}"
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{name}: closed after {took:?}"
        );
        assert_eq!(c.line(), None, "{name}: the connection should be closed");
    }

    // Each answer starts the clock again: requests 0.5 s apart keep a connection.
    let mut busy = Raw::connect(&agent.socket()).unwrap();
    for _ in 0..4 {
        assert_eq!(busy.request(r#"{"op":"status"}"#)["ok"], true);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(busy.request(r#"{"op":"status"}"#)["ok"], true);

    // The streams, idle for far longer than 1 s, are still there and still stream.
    assert_eq!(
        line_within(&mut sub.rd, Duration::from_millis(200)),
        Err(())
    );
    let args = pod_args(&ctl, 1);
    podport_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ev = sub.value();
    assert_eq!(ev["ifname"], "vnic-1", "{ev}");
    loop {
        let r = follower.value();
        assert!(r["seq"].as_u64().is_some(), "{r}");
        if r["event"]["kind"] == "pod_added" {
            break;
        }
    }
}

/// A socket that accepts connections and never answers.
fn mute_listener(path: &Path) -> std::thread::JoinHandle<()> {
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().take(8) {
            held.push(c);
        }
        std::thread::sleep(BOUND);
    })
}

#[test]
fn clients_give_up_on_an_agent_that_never_answers() {
    // No OVS: a plain listener stands in for a stuck agent.
    let dir = tempdir();
    let path = dir.path().join("mute.sock");
    let _mute = mute_listener(&path);
    let ctl = format!("unix:{}", path.display());
    let args = pod_args(&ctl, 1);
    let add: Vec<&str> = args.iter().map(String::as_str).collect();
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["status", "--control", &ctl, "--timeout", "1"], "1s"),
        (
            vec![
                "status",
                "--control",
                &ctl,
                "--wait-ready",
                "1",
                "--timeout",
                "1",
            ],
            "1s",
        ),
        (
            vec![
                "cni",
                "del",
                "--control",
                &ctl,
                "--ifname",
                "v1",
                "--timeout",
                "1",
            ],
            "1s",
        ),
        (
            vec![
                "cni",
                "attach",
                "--control",
                &ctl,
                "--ifname",
                "v1",
                "--timeout",
                "500ms",
            ],
            "500ms",
        ),
        ([&add[..], &["--timeout", "1.5"]].concat(), "1.5s"),
    ];
    for (args, within) in cases {
        let t = Instant::now();
        let err = podport_fails(&args);
        let took = t.elapsed();
        assert!(
            err.contains(&format!(
                "no answer from the agent at {ctl} within {within}"
            )),
            "{args:?}: {err}"
        );
        assert!(took < Duration::from_millis(2500), "{args:?} took {took:?}");
    }
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn unsafe_control_endpoints_are_refused() {
    // No OVS needed: these fail before anything starts.
    let dir = tempdir();
    let j = dir.path().join("journal");
    let agent = |control: &str, extra: &[&str]| -> String {
        let mut args = vec![
            "agent",
            "--ovsdb",
            "unix:/nonexistent/db.sock",
            "--openflow",
            "unix:/nonexistent/br-int.mgmt",
            "--bridge",
            "br-int",
            "--journal",
            j.to_str().unwrap(),
            "--control",
            control,
        ];
        args.extend(extra);
        podport_fails(&args)
    };
    for remote in ["tcp:0.0.0.0:0", "tcp:[::]:0"] {
        let err = agent(remote, &[]);
        assert!(
            err.contains("is not a loopback address") && err.contains("--control-allow-remote"),
            "{remote}: {err}"
        );
    }
    // A regular file where the socket should go: refused, named, and left alone.
    let file = dir.path().join("ctl.sock");
    std::fs::write(&file, b"precious").unwrap();
    let err = agent(&format!("unix:{}", file.display()), &[]);
    assert!(
        err.contains(&format!("{} exists and is not a socket", file.display())),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    // So is a directory.
    let sub = dir.path().join("ctl.d");
    std::fs::create_dir(&sub).unwrap();
    let err = agent(&format!("unix:{}", sub.display()), &[]);
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert!(sub.is_dir());
    assert!(!j.exists(), "nothing was started");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_remote_tcp_control_endpoint_needs_the_flag_and_is_logged() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let agent = Agent::start_on(
        &sb,
        dir.path(),
        "tcp:0.0.0.0:0",
        &["--control-allow-remote"],
    );
    agent.wait_log("accepts connections from other machines");
    // The port it took, from its log line: control=tcp:0.0.0.0:PORT.
    let log = agent.log_text();
    let port = log
        .lines()
        .find(|l| l.contains("listening on the control socket"))
        .and_then(|l| l.split("control=tcp:0.0.0.0:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no port in the log:\n{log}"))
        .to_string();
    let out = podport_ok(&["status", "--control", &format!("tcp:127.0.0.1:{port}")]);
    assert!(out.lines().nth(1).unwrap().starts_with("IFNAME"), "{out}");
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn the_socket_file_is_private_from_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let sb = sandbox_for_test();
    let dir = tempdir();
    // A stale socket from an agent that died is replaced. (A child forked by another test
    // thread holds the listener until it execs: stale once connecting is refused.)
    let path = dir.path().join("ctl.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let deadline = Instant::now() + BOUND;
    while UnixStream::connect(&path).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{} still accepts",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut agent = Agent::start(&sb, dir.path(), &[]);
    let mode = std::fs::metadata(agent.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // A second agent on the same socket (another journal) is refused, and the first one's
    // socket stays.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let args = agent_args(&sb, &other.join("journal"), &agent.control);
    let err = podport_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("in use by a running process"), "{err}");
    agent.assert_running();
    podport_ok(&["status", "--control", &agent.control]);
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn over_long_lines_get_their_error_line() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let agent = Agent::start(&sb, dir.path(), &[]);
    // Exactly 64 KiB (with \r\n after it) is a line like any other: an answer, and the
    // connection carries on.
    let mut c = Raw::connect(&agent.socket()).unwrap();
    let pad = 65536 - r#"{"op":"status","pad":""}"#.len();
    let at_limit = format!(r#"{{"op":"status","pad":"{}"}}"#, "x".repeat(pad));
    assert_eq!(at_limit.len(), 65536);
    c.wr.write_all(at_limit.as_bytes()).unwrap();
    c.wr.write_all(b"\r\n").unwrap();
    assert_eq!(c.value()["ok"], true);
    assert_eq!(c.request(r#"{"op":"status"}"#)["ok"], true);
    // One byte more, and a line of 8 MiB still being sent while the agent answers: the error
    // line arrives, then the end of the stream.
    for size in [65537, 8 << 20] {
        let s = UnixStream::connect(agent.socket()).unwrap();
        s.set_read_timeout(Some(BOUND)).unwrap();
        let mut wr = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < size {
                let n = chunk.len().min(size - sent);
                if wr.write_all(&chunk[..n]).is_err() {
                    return;
                }
                sent += n;
            }
            let _ = wr.write_all(b"\n");
        });
        let mut rd = BufReader::new(s);
        let v: Value = {
            let mut l = String::new();
            rd.read_line(&mut l).unwrap();
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("{size}: not JSON ({e}): {l}"))
        };
        assert_eq!(v["ok"], false, "{size}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("longer than 65536 bytes"),
            "{size}: {v}"
        );
        let mut rest = String::new();
        match rd.read_line(&mut rest) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("{size}: expected the end, got {other:?} {rest:?}"),
        }
        writer.join().unwrap();
    }
}

/// The control-socket line of an `add` for Pod `i`.
fn add_line(i: u32) -> String {
    format!(
        r#"{{"op":"add","namespace":"default","name":"pod-{i}","container_id":"ctr-{i}","ifname":"vnic-{i}","ips":["10.1.0.{i}/16"],"mac":"02:00:00:00:00:{i:02x}"}}"#
    )
}

/// Polls OVSDB until `present(list-ports)` holds, within the bound.
fn wait_ports(sb: &Sandbox, what: &str, present: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + BOUND;
    loop {
        let out = sb.vsctl(&["list-ports", sb.bridge()]).unwrap();
        let ports: Vec<String> = out.lines().map(str::to_string).collect();
        if present(&ports) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: ports are {ports:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn an_acknowledged_request_survives_a_sigkill_right_after_it() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let mut agent = Agent::start(&sb, dir.path(), &[]);
    // Three rounds of each kind; each request is answered, and the agent is killed the moment
    // the answer arrives: what was acknowledged must be carried out after the restart.
    for round in 0..3u32 {
        for (k, kind) in ["add", "attach", "del"].into_iter().enumerate() {
            let i = 10 + round * 3 + k as u32;
            let ctl = agent.control.clone();
            match kind {
                "attach" => {
                    let mut c = Raw::connect(&agent.socket()).unwrap();
                    assert_eq!(c.request(&add_line(i))["ok"], true);
                }
                "del" => add_and_attach(&ctl, i),
                _ => {}
            }
            let line = match kind {
                "add" => add_line(i),
                "attach" => format!(r#"{{"op":"attach","ifname":"vnic-{i}"}}"#),
                _ => format!(r#"{{"op":"del","ifname":"vnic-{i}"}}"#),
            };
            let mut c = Raw::connect(&agent.socket()).unwrap();
            let answer = c.request(&line);
            agent.signal(Signal::SIGKILL);
            assert_eq!(answer["ok"], true, "{kind} vnic-{i}: {answer}");
            let _ = wait_exit(&mut agent.proc.child, BOUND);
            agent = Agent::start(&sb, dir.path(), &[]);
            let ctl = agent.control.clone();
            let name = format!("vnic-{i}");
            match kind {
                "add" => {
                    // The Pod is tracked and its port exists in OVSDB.
                    assert!(
                        status_json(&ctl)
                            .iter()
                            .any(|p| p["ifname"] == name.as_str()),
                        "add of {name} lost"
                    );
                    wait_ports(&sb, &format!("port of {name}"), |p| p.contains(&name));
                    podport_ok(&["cni", "del", "--control", &ctl, "--ifname", &name]);
                }
                "attach" => {
                    // The attach was not forgotten: the Pod becomes ready without a new one.
                    podport_ok(&[
                        "status",
                        "--control",
                        &ctl,
                        "--wait-ready",
                        "1",
                        "--timeout",
                        "30",
                    ]);
                    podport_ok(&["cni", "del", "--control", &ctl, "--ifname", &name]);
                }
                _ => {
                    // The deletion is carried out: no Pod, no port.
                    wait_ports(&sb, &format!("deletion of {name}"), |p| !p.contains(&name));
                    // The port goes before the agent has heard OVSDB's answer: poll.
                    let deadline = Instant::now() + BOUND;
                    while status_json(&ctl)
                        .iter()
                        .any(|p| p["ifname"] == name.as_str())
                    {
                        assert!(Instant::now() < deadline, "del of {name} lost");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            wait_ports(&sb, "cleanup", |p| !p.contains(&name));
        }
    }
    let status = agent.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}");
}
