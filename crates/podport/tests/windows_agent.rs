//! The Windows build of `podport agent`, end to end, under Wine against a real (Linux) OVS.
//!
//! The agent is the cross-compiled `podport.exe`, run by `scripts/wine-run`: it reaches the
//! sandbox's `ovsdb-server` and the bridge's passive controller over loopback TCP
//! (`Sandbox::listen_tcp_loopback`, 127.0.0.1 only), serves its control protocol on a named
//! pipe and keeps its journal inside the Wine prefix, at a `C:\` path with a space in it. The
//! test drives it only with the Windows build of `podport cni` and `podport status`, as a CNI
//! plugin on a Windows node would. As in `agent_e2e.rs`, Pods start with a type OVS cannot
//! open (`--initial-type podport-pending`), so a port has no OpenFlow number until the attach
//! switches it to `internal`: a Windows node before the vNIC exists.
//!
//! Run it (it is ignored by default because it needs the Windows build and a Wine prefix):
//!
//! ```text
//! export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
//! scripts/install-deps                      # wine64, mingw-w64, the ProcessPrng shim
//! scripts/wine-prefix /tmp/podport-wine     # a headless prefix with the shim
//! cargo build --target x86_64-pc-windows-gnu -p podport --bin podport
//! PODPORT_WINDOWS_EXE=$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/debug/podport.exe \
//!   WINEPREFIX=/tmp/podport-wine CI=true \
//!   cargo test -p podport --test windows_agent -- --ignored --nocapture
//! ```
//!
//! Every Wine process is a child of this test and is reaped, also when the test fails: the
//! agent by its guard (SIGKILL, then wait), each client command within its bound. Wine's own
//! `wineserver` and the prefix's system processes (`services.exe`, ...) are started by Wine,
//! not by the test, and end by themselves once no program of the prefix runs. Outputs go to
//! files, not pipes: Wine's helper processes inherit standard handles, and a pipe they hold
//! would never reach its end.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podport_ovs_sandbox::{sandbox_for_test, Sandbox, PENDING_TYPE};
use serde_json::Value;

mod support;
use support::{assert_flows, wait_exit, youngest_pod_flow};

/// The bound of every wait, and of every client command.
const BOUND: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
const PODS: u32 = 3;

const HOW_TO_RUN: &str = "this test runs the Windows build of podport under Wine; build it and \
make a prefix first, then say where they are:\n  \
scripts/install-deps && scripts/wine-prefix /tmp/podport-wine\n  \
cargo build --target x86_64-pc-windows-gnu -p podport --bin podport\n  \
PODPORT_WINDOWS_EXE=$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/debug/podport.exe \
WINEPREFIX=/tmp/podport-wine cargo test -p podport --test windows_agent -- --ignored";

/// Where the Windows build, the Wine prefix and the runner are.
struct Wine {
    exe: PathBuf,
    prefix: PathBuf,
    runner: PathBuf,
}

impl Wine {
    /// From `PODPORT_WINDOWS_EXE` and `WINEPREFIX`; fails saying how to run the test.
    fn from_env() -> Wine {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("{name} is not set: {HOW_TO_RUN}"))
        };
        let exe = var("PODPORT_WINDOWS_EXE");
        let prefix = var("WINEPREFIX");
        assert!(
            exe.is_file(),
            "PODPORT_WINDOWS_EXE={} is not a file: {HOW_TO_RUN}",
            exe.display()
        );
        assert!(
            prefix
                .join("drive_c/windows/system32/bcryptprimitives.dll")
                .is_file(),
            "WINEPREFIX={} is not a prefix made by scripts/wine-prefix (no ProcessPrng shim): \
             {HOW_TO_RUN}",
            prefix.display()
        );
        let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/wine-run");
        assert!(runner.is_file(), "{} is missing", runner.display());
        Wine {
            exe,
            prefix,
            runner,
        }
    }

    /// `scripts/wine-run podport.exe ARGS`, its output going to `out`/`err`. The runner
    /// `exec`s Wine, so the child's pid is the Windows program's process.
    fn command(&self, args: &[&str], out: &Path, err: &Path) -> Command {
        let file = |p: &Path| File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mut cmd = Command::new(&self.runner);
        cmd.arg(&self.exe)
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file(out))
            .stderr(file(err));
        cmd
    }
}

/// A unique name for this run: pid and time.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// What a finished client command left.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the Windows `podport` client commands, each within [`BOUND`] (killed and reaped past
/// it).
struct Cli<'a> {
    wine: &'a Wine,
    dir: &'a Path,
    control: String,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let (out, err) = (self.dir.join("cli.out"), self.dir.join("cli.err"));
        let mut child = self
            .wine
            .command(args, &out, &err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning wine for {args:?}: {e}"));
        let status = wait_exit(&mut child, BOUND).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("podport.exe {args:?} did not finish within {BOUND:?}")
        });
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Output {
            status,
            stdout: read(&out),
            stderr: read(&err),
        }
    }

    /// Runs `podport.exe ARGS --control PIPE`, expecting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--control", &self.control]);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "podport.exe {all:?}: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    fn add(&self, i: u32) {
        let out = self.ok(&[
            "cni",
            "add",
            "--pod",
            &format!("default/pod-{i}"),
            "--container-id",
            &format!("ctr-{i}"),
            "--ifname",
            &ifname(i),
            "--ip",
            &format!("{}/16", ip(i)),
            "--mac",
            &mac(i),
        ]);
        assert!(out.contains(&format!("added {}", ifname(i))), "{out}");
    }

    fn attach(&self, i: u32) {
        let out = self.ok(&["cni", "attach", "--ifname", &ifname(i)]);
        assert!(out.contains(&format!("attached {}", ifname(i))), "{out}");
    }

    /// `status --json`: the ports by interface name.
    fn ports(&self) -> BTreeMap<String, Value> {
        let out = self.ok(&["status", "--json"]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {out}"))
            .iter()
            .map(|p| {
                (
                    p["ifname"].as_str().unwrap_or_default().to_string(),
                    p.clone(),
                )
            })
            .collect()
    }

    /// Waits (bounded by the command's own timeout) until `n` Pods are ready.
    fn wait_ready(&self, n: u32) -> String {
        self.ok(&[
            "status",
            "--wait-ready",
            &n.to_string(),
            "--timeout",
            &format!("{}s", BOUND.as_secs()),
        ])
    }
}

fn ifname(i: u32) -> String {
    format!("vnic-{i}")
}

fn ip(i: u32) -> String {
    format!("10.1.0.{i}")
}

fn mac(i: u32) -> String {
    format!("02:00:00:00:00:{i:02x}")
}

/// Polls `check` until it returns `Some`, failing with `what` and `context()` after [`BOUND`].
fn poll<T>(what: &str, context: impl Fn() -> String, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {BOUND:?}\n{}",
            context()
        );
        std::thread::sleep(POLL);
    }
}

/// The Windows agent under Wine; SIGKILLed and reaped on drop, its log printed if the test
/// fails.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Starts the agent and waits until it serves its pipe with both connections up.
    fn start(wine: &Wine, cli: &Cli, args: &[&str], log: PathBuf) -> Agent {
        let child = wine
            .command(args, &cli.dir.join("agent.out"), &log)
            .spawn()
            .expect("spawning wine for the agent");
        let mut agent = Agent {
            child,
            log: log.clone(),
        };
        poll(
            "the Windows agent listening on its pipe",
            || read_log(&log),
            || {
                if let Some(status) = agent.child.try_wait().expect("try_wait") {
                    panic!(
                        "the Windows agent exited early ({status}):\n{}",
                        agent.log_text()
                    );
                }
                agent
                    .log_text()
                    .contains("listening on the control socket")
                    .then_some(())
            },
        );
        // `status --health` exits 0 once OVSDB and the switch (over TCP) are both up.
        poll(
            "the Windows agent connected to OVSDB and the switch",
            || agent.log_text(),
            || {
                let out = cli.run(&["status", "--health", "--control", &cli.control]);
                out.status.success().then_some(())
            },
        );
        agent
    }

    fn log_text(&self) -> String {
        read_log(&self.log)
    }

    /// SIGKILL: no handler runs, nothing is flushed or closed by the program itself.
    fn kill_hard(&mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the agent");
        wait_exit(&mut self.child, BOUND).unwrap_or_else(|| {
            panic!(
                "the agent did not die within {BOUND:?} of SIGKILL:\n{}",
                self.log_text()
            )
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- Windows agent log ({}) ----\n{}\n-------------------",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A directory inside the Wine prefix, removed on drop.
struct PrefixDir(PathBuf);

impl Drop for PrefixDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Traffic between the Pods goes where the agent's flows say, and spoofed traffic is dropped.
fn assert_dataplane(sb: &Sandbox, ports: &BTreeMap<u32, i64>) {
    for (from, to) in [(1, 2), (3, 1), (2, 3)] {
        let trace = sb
            .trace(&format!(
                "in_port={},dl_src={},dl_dst=02:aa:aa:aa:aa:aa,ip,nw_src={},nw_dst={}",
                ports[&from],
                mac(from),
                ip(from),
                ip(to)
            ))
            .expect("ofproto/trace");
        assert!(
            trace.contains(&format!("output:{}", ports[&to])),
            "pod {from} to pod {to}: {trace}"
        );
        assert!(
            trace.contains(&format!("set_field:{}->eth_dst", mac(to))),
            "pod {from} to pod {to}: {trace}"
        );
    }
    let spoofed = sb
        .trace(&format!(
            "in_port={},dl_src={},ip,nw_src=10.9.9.9,nw_dst={}",
            ports[&1],
            mac(1),
            ip(2)
        ))
        .expect("ofproto/trace");
    assert!(spoofed.contains("Datapath actions: drop"), "{spoofed}");
}

/// Every Pod ready on the number OVS gave its port; the numbers by Pod.
fn assert_all_ready(sb: &Sandbox, cli: &Cli) -> BTreeMap<u32, i64> {
    let ports = cli.ports();
    assert_eq!(ports.len(), PODS as usize, "{ports:?}");
    (1..=PODS)
        .map(|i| {
            let p = &ports[&ifname(i)];
            assert_eq!(p["ready"], true, "{p}");
            assert_eq!(p["phase"], "ready", "{p}");
            let ofport = sb
                .ofport(&ifname(i))
                .expect("ofport")
                .unwrap_or_else(|| panic!("{} has no ofport", ifname(i)));
            assert!(ofport > 0, "{}: ofport {ofport}", ifname(i));
            assert_eq!(p["ofport"].as_i64(), Some(ofport), "{p}");
            (i, ofport)
        })
        .collect()
}

#[test]
#[ignore = "runs the Windows build under Wine; scripts/test runs it with --ignored"]
fn the_windows_agent_attaches_pods_and_comes_back_after_a_hard_kill() {
    let started = Instant::now();
    let wine = Wine::from_env();
    let sb = sandbox_for_test();
    // A bridge run by a controller, as Antrea runs br-int: in secure mode OVS never falls
    // back to flows of its own while the agent is away (killed below).
    sb.vsctl(&["set", "bridge", sb.bridge(), "fail_mode=secure"])
        .expect("fail_mode=secure");
    let tcp = sb.listen_tcp_loopback().expect("loopback TCP endpoints");

    let run = unique();
    let host_dir = tempfile::Builder::new()
        .prefix("pw-")
        .tempdir()
        .expect("tempdir");
    // The journal lives in the prefix, at a Windows path with a space in it.
    let journal_win = format!(r"C:\users\Public\podport e2e {run}\journal");
    let journal_dir = PrefixDir(
        wine.prefix
            .join(format!("drive_c/users/Public/podport e2e {run}")),
    );
    let cli = Cli {
        wine: &wine,
        dir: host_dir.path(),
        control: format!(r"npipe:\\.\pipe\podport-e2e-{run}"),
    };
    let agent_args = [
        "agent",
        "--ovsdb",
        &tcp.ovsdb,
        "--openflow",
        &tcp.openflow,
        "--bridge",
        sb.bridge(),
        "--journal",
        &journal_win,
        "--control",
        &cli.control,
        "--initial-type",
        PENDING_TYPE,
        "--not-ready-every",
        "1s",
        // What Windows nodes run with (ovs-issues#351: working internal ports reported as
        // PORT_DOWN/LINK_DOWN there).
        "--readiness",
        "live-or-link-down",
    ];
    let mut agent = Agent::start(
        &wine,
        &cli,
        &agent_args,
        host_dir.path().join("agent-1.log"),
    );
    let up = started.elapsed();
    let log = agent.log_text();
    assert!(log.contains("readiness=LiveOrLinkDown"), "{log}");

    // Pods before their vNICs: tracked, waiting for the interface, no OpenFlow number.
    for i in 1..=PODS {
        cli.add(i);
    }
    let ports = cli.ports();
    for i in 1..=PODS {
        assert_eq!(ports[&ifname(i)]["phase"], "waiting-interface", "{ports:?}");
        assert_eq!(ports[&ifname(i)]["ready"], false, "{ports:?}");
    }
    assert!(
        journal_dir.0.join("journal").is_dir(),
        "no journal at {} (the agent's {journal_win})",
        journal_dir.0.display()
    );

    // Two vNICs appear: the type changes to internal and the Pods become ready.
    cli.attach(1);
    cli.attach(2);
    cli.wait_ready(2);

    // The third appears while ovs-vswitchd is frozen: the type change is in OVSDB, the switch
    // says nothing, the Pod waits; once the switch runs again it becomes ready.
    let frozen = sb.freeze_vswitchd().expect("freeze ovs-vswitchd");
    cli.attach(3);
    poll(
        "vnic-3's type change committed to OVSDB",
        || sb.log_tail(20),
        || {
            let ty = sb.vsctl(&["get", "interface", "vnic-3", "type"]).ok()?;
            (ty.trim() == "internal").then_some(())
        },
    );
    let p3 = &cli.ports()[&ifname(3)];
    assert_eq!(p3["ready"], false, "ready while the switch is frozen: {p3}");
    assert_eq!(p3["phase"], "type-change-requested", "{p3}");
    frozen.try_thaw().expect("thaw ovs-vswitchd");
    let out = cli.wait_ready(PODS);
    assert!(out.starts_with("ovsdb: up "), "{out}");
    assert!(out.contains(" | switch: up "), "{out}");
    let ports = assert_all_ready(&sb, &cli);
    assert_flows(&sb, PODS as usize);
    assert_dataplane(&sb, &ports);
    let ready = started.elapsed();

    // ovs-issues#351's port as Windows OVS shows it: config PORT_DOWN, state LINK_DOWN. Under
    // live-or-link-down it stays ready (under `live` its Ready would be withdrawn), and it
    // stays so through the restart below, where only the port list tells its state.
    sb.ofctl(&["mod-port", sb.bridge(), "vnic-2", "down"])
        .expect("ovs-ofctl mod-port down");
    let p2 = poll(
        "the agent seeing vnic-2 LINK_DOWN",
        || format!("{:?}", cli.ports().get("vnic-2")),
        || {
            let p = cli.ports().remove("vnic-2")?;
            let state = p["state"].as_array()?;
            (state.iter().any(|s| s == "LINK_DOWN") && !state.iter().any(|s| s == "LIVE"))
                .then_some(p)
        },
    );
    assert_eq!(p2["ready"], true, "{p2}");
    assert_eq!(p2["phase"], "ready", "{p2}");

    // The journal is locked while the agent runs: a second agent on it is refused. (So the
    // restart below shows that the kill released the lock.)
    let second_args: Vec<&str> = agent_args
        .iter()
        .map(|a| {
            if *a == cli.control {
                "npipe:podport-e2e-second"
            } else {
                a
            }
        })
        .collect();
    let second_log = host_dir.path().join("agent-second.log");
    let mut second = wine
        .command(
            &second_args,
            &host_dir.path().join("second.out"),
            &second_log,
        )
        .spawn()
        .expect("spawning wine for a second agent");
    let status = wait_exit(&mut second, BOUND).unwrap_or_else(|| {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second agent on a locked journal still runs after {BOUND:?}")
    });
    let refused = read_log(&second_log);
    assert!(!status.success(), "{refused}");
    assert!(
        refused.contains("is locked by another process"),
        "{refused}"
    );

    // A hard kill: no handler runs, the program closes nothing itself. Wine's server closes
    // the dead process's handles, which releases the journal's lock and the pipe.
    let youngest_before = youngest_pod_flow(&sb);
    let status = agent.kill_hard();
    assert!(!status.success(), "{status}");
    let gone = cli.run(&["status", "--control", &cli.control, "--timeout", "2s"]);
    assert!(
        !gone.status.success(),
        "a killed agent still answers: {}",
        gone.stdout
    );
    drop(agent);

    // The same journal at once: the lock is free, and every Pod is ready again on the same
    // number with its flows, which were checked and left untouched.
    let killed = started.elapsed();
    let agent = Agent::start(
        &wine,
        &cli,
        &agent_args,
        host_dir.path().join("agent-2.log"),
    );
    let log = agent.log_text();
    assert!(!log.contains("locked"), "{log}");
    assert!(log.contains("restored=3"), "{log}");
    cli.wait_ready(PODS);
    let after = assert_all_ready(&sb, &cli);
    assert_eq!(ports, after, "same Pods on the same numbers");
    assert_flows(&sb, PODS as usize);
    assert_dataplane(&sb, &after);
    let youngest_after = youngest_pod_flow(&sb);
    assert!(
        youngest_after >= youngest_before,
        "a Pod flow was reinstalled: youngest {youngest_after}s after the restart, \
         {youngest_before}s before"
    );
    drop(agent);
    eprintln!(
        "windows agent e2e: agent up after {:.1}s, {PODS} Pods ready after {:.1}s, hard kill at \
         {:.1}s, ready again after {:.1}s; total {:.1}s",
        up.as_secs_f64(),
        ready.as_secs_f64(),
        killed.as_secs_f64(),
        (started.elapsed() - killed).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
