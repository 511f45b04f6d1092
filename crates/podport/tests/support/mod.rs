//! What podport's integration tests share: the `podport` binary run to its end within a bound,
//! a running process with its log, the agent's command line on a sandbox (as a Windows node),
//! temporary directories, loopback ports and the flow checks. Used as `mod support;`.
// Each test file is a crate of its own and uses a part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every wait ends within this, or the test fails saying what it waited for. Longer on
/// Windows, where the tests run under Wine and starting a process takes a good part of a
/// second.
pub const BOUND: Duration = Duration::from_secs(if cfg!(windows) { 60 } else { 30 });

pub fn podport_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podport"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temporary directory with a short path: a unix socket path has at most 107 bytes.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("pt-").tempdir().unwrap()
}

/// A loopback TCP port the OS gave out and that nobody listens on any more.
pub fn free_loopback_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The child's exit status, or `None` if it is still running after `bound`.
pub fn wait_exit(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `cmd`. Under Wine, process creation fails now and then with ERROR_INTERNAL_ERROR
/// (os error 1359) while the machine is busy; a few more tries get past it, and any other
/// failure, or that one persisting, fails the test with the error.
pub fn spawn(cmd: &mut Command) -> Child {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(1359) && tries < 4 => {
                tries += 1;
                eprintln!("spawning {cmd:?} failed ({e}); try {tries} of 4 more");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("spawn {cmd:?}: {e}"),
        }
    }
}

/// Runs a command with `input` on its stdin to its end within [`BOUND`], killing it past that.
pub fn run_bounded(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = spawn(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written and read on threads of their own, so no pipe can fill up and stall the child.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out_reader = read_all(Box::new(child.stdout.take().unwrap()));
    let err_reader = read_all(Box::new(child.stderr.take().unwrap()));
    let status = wait_exit(&mut child, BOUND).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {BOUND:?}")
    });
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Runs `podport ARGS` to its end within [`BOUND`].
pub fn podport(args: &[&str]) -> Output {
    run_bounded(
        Command::new(podport_bin())
            .args(args)
            .env("RUST_BACKTRACE", "0"),
        b"",
    )
}

/// Runs `podport ARGS`, expecting success; returns stdout.
pub fn podport_ok(args: &[&str]) -> String {
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

/// Runs `podport ARGS`, expecting failure; returns stderr.
pub fn podport_fails(args: &[&str]) -> String {
    let out = podport(args);
    assert!(
        !out.status.success(),
        "podport {args:?} should fail; stdout:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// `podport status --json`: every port the agent at `control` tracks.
pub fn status_json(control: &str) -> Vec<Value> {
    let out = podport_ok(&["status", "--control", control, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    v.as_array().expect("a JSON list").clone()
}

/// A running process whose stderr is kept line by line; killed and reaped on drop, its log
/// printed when the test failed.
pub struct Logged {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

impl Logged {
    /// Spawns `cmd` with stdin and stdout closed and stderr collected.
    pub fn spawn(cmd: &mut Command) -> Logged {
        let mut child = spawn(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
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
        Logged { child, log, lines }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing every one of `needles` (already logged or to come).
    pub fn wait_log(&self, needles: &[&str]) {
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
                // Timed out, or the process exited (its stderr closed).
                Err(_) => panic!(
                    "no log line with {needles:?} within {BOUND:?}:\n{}",
                    self.log_text()
                ),
            }
        }
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the process exited ({status}):\n{}", self.log_text());
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log ----\n{}\n-------------", self.log_text());
        }
    }
}

/// `podport agent` on the sandbox's bridge as on a Windows node: ports are created with a
/// type OVS cannot open, as the Pod's vNIC appears only at the attach. More options follow.
#[cfg(unix)]
pub fn agent_args(
    sb: &podport_ovs_sandbox::Sandbox,
    journal: &std::path::Path,
    control: &str,
) -> Vec<String> {
    [
        "agent",
        "--ovsdb",
        &sb.ovsdb_endpoint(),
        "--openflow",
        &sb.openflow_endpoint(),
        "--bridge",
        sb.bridge(),
        "--journal",
        &journal.display().to_string(),
        "--control",
        control,
        "--initial-type",
        podport_ovs_sandbox::PENDING_TYPE,
    ]
    .map(String::from)
    .to_vec()
}

/// [`agent_args`] as a command, logging at `info`.
#[cfg(unix)]
pub fn agent_command(
    sb: &podport_ovs_sandbox::Sandbox,
    journal: &std::path::Path,
    control: &str,
) -> Command {
    let mut cmd = Command::new(podport_bin());
    cmd.args(agent_args(sb, journal, control))
        .env("RUST_LOG", "info")
        .env("RUST_BACKTRACE", "0");
    cmd
}

/// Five flows per Pod cookie (0xa0...) and the two bridge defaults (0xb0...), nothing else.
#[cfg(unix)]
pub fn assert_flows(sb: &podport_ovs_sandbox::Sandbox, pods: usize) {
    let by = flows_by_cookie(sb);
    let pod_cookies: Vec<_> = by.iter().filter(|(c, _)| c.starts_with("0xa0")).collect();
    assert_eq!(pod_cookies.len(), pods, "{by:?}");
    for (cookie, n) in &pod_cookies {
        assert_eq!(**n, 5, "cookie {cookie}: {by:?}");
    }
    let bridge: usize = by
        .iter()
        .filter(|(c, _)| c.starts_with("0xb0"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(bridge, 2, "{by:?}");
    assert_eq!(by.values().sum::<usize>(), pods * 5 + 2, "{by:?}");
}

/// Flow counts by cookie.
#[cfg(unix)]
pub fn flows_by_cookie(
    sb: &podport_ovs_sandbox::Sandbox,
) -> std::collections::BTreeMap<String, usize> {
    let mut by = std::collections::BTreeMap::new();
    for f in sb.dump_flows("OpenFlow15").expect("dump-flows") {
        let cookie = f
            .split(',')
            .next()
            .and_then(|c| c.strip_prefix("cookie="))
            .unwrap_or("none")
            .to_string();
        *by.entry(cookie).or_default() += 1;
    }
    by
}

/// The age in seconds of the youngest Pod flow (cookie 0xa0...), as `ovs-ofctl` reports it.
#[cfg(unix)]
pub fn youngest_pod_flow(sb: &podport_ovs_sandbox::Sandbox) -> f64 {
    sb.flow_durations("0xa000000000000000/0xff00000000000000")
        .expect("dump-flows")
        .into_iter()
        .fold(f64::INFINITY, f64::min)
}
