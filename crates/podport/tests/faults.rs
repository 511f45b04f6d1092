//! The fault suite of issue 10: the real `podport agent` against a real, private OVS, under
//! the faults a node sees, judged by what OVS holds (`ovs-vsctl`, `ovs-ofctl dump-flows` by
//! cookie) and by the agent's own status only where OVS cannot say (whether a Pod is tracked,
//! its phase).
//!
//! 1. `random_sigkill_during_churn_loses_no_acknowledged_request`: a driver adds, attaches and
//!    deletes Pods while the agent is SIGKILLed at random moments and restarted on its journal.
//! 2. `sigkill_right_after_an_acknowledgement_loses_nothing`: SIGKILL 0–5 ms after each kind
//!    of request (add, attach, del) was acknowledged.
//! 3. `ovs_daemon_restarts_mid_churn_lose_nothing_and_pods_become_ready_again`: ovs-vswitchd
//!    and ovsdb-server restarted during churn.
//! 4. `a_damaged_journal_never_keeps_the_node_down`: random byte flips in sled's `db`, and
//!    truncations of it, between a SIGKILL and a restart.
//! 5. `hostile_clients_never_starve_a_normal_one`: idle connections, a 1 MiB line, garbage,
//!    connect/disconnect storms, while a normal client adds, attaches, deletes and asks status.
//! 6. Foreign ports, in every test: `gw0` and `uplink` (made with `ovs-vsctl`, no podport
//!    marker) exist before anything, the churn tries to add, attach and delete Pods named
//!    `gw0`, `uplink` and the bridge, and at the end those ports are untouched.
//!
//! **The judgement.** For every Pod the last acknowledged (`{"ok":true}`) request decides what
//! must hold at the end: add (or attach) with no later del → the Pod is tracked, its port is in
//! OVS with its container's `external_ids`, and, if attached, it becomes ready within a bound
//! with exactly its 5 flows under one Pod cookie on its current ofport; del last → no port, no
//! flow carrying its addresses, not tracked. A request that got no answer (the agent died
//! under it) is sent again until it gets one, as a container runtime does, so the last request
//! of every Pod is an acknowledged one. After every restart the agent's status is also
//! compared with what was acknowledged, so a loss is caught at the restart that caused it.
//! "lost" counts acknowledged requests whose effect is missing; it must be 0.
//!
//! **Size.** Scaled down by default (the whole file well under 3 minutes on 2 cores, as part
//! of `./scripts/test`); `PODPORT_FAULTS=full` runs the full size (20 kills, 20 of each
//! acknowledged kind, 5 restarts of each daemon, 10 damaged journals). Every random choice
//! comes from a seed printed at the start of each test (`PODPORT_FAULTS_SEED=N` repeats the
//! choices; the timing of a real agent and switch does not repeat). Each test prints one
//! `faults: ...` summary line with its figures (`--nocapture` shows them).
//!
//! **Defects this suite found** (now fixed) each keep a test named `defect_...` that failed
//! before the fix: flows installed after their Pod's deletion, a damaged journal that sled
//! opens as a shorter log, an add right after a del of the same container. The constants
//! [`STALE_FLOWS_DEFECT_OPEN`] and [`SILENT_JOURNAL_LOSS_DEFECT_OPEN`] are `false`: the suite
//! fails on stale flows and on silent loss.
//! A test that fails keeps its directory (journal, `agent.log`) and names it.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podport_ovs_sandbox::{sandbox_for_test, Sandbox, PENDING_TYPE};
use serde_json::{json, Value};

mod support;
use support::{agent_args, podport_bin, wait_exit, BOUND};

/// How long one control request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the driver keeps sending one request again before it gives up on it.
const RETRY_BOUND: Duration = Duration::from_secs(60);

/// How long Pods may take to be as the acknowledged requests say, at the end of a test.
const CONVERGE_BOUND: Duration = Duration::from_secs(60);

/// How often the judgement looks again while it waits.
const POLL: Duration = Duration::from_millis(50);

/// A Pod's default flows: table 0 IP and ARP, table 1 IP, ARP and eth_dst.
const FLOWS_PER_POD: usize = 5;

fn full() -> bool {
    std::env::var("PODPORT_FAULTS").is_ok_and(|v| v.trim().eq_ignore_ascii_case("full"))
}

/// `scaled` in the default run, `full` with `PODPORT_FAULTS=full`.
fn size<T>(scaled: T, full_size: T) -> T {
    if full() {
        full_size
    } else {
        scaled
    }
}

/// A test's directory (journal, control socket), kept with the agent's whole log in
/// `agent.log` when the test fails, so the journal can be read with `podport-journal`.
struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(d) = self.0.take() {
                eprintln!("faults: kept the test directory {}", d.keep().display());
            }
        }
    }
}

fn tempdir() -> TestDir {
    TestDir(Some(support::tempdir()))
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// `p50=..ms max=..ms` of a list of durations (`n/a` when empty).
fn p50_max(ds: &[Duration]) -> String {
    if ds.is_empty() {
        return "p50=n/a max=n/a".into();
    }
    let mut v = ds.to_vec();
    v.sort();
    format!("p50={}ms max={}ms", ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

// ---------------------------------------------------------------------------------------------
// randomness (no dependency: SplitMix64 from a printed seed)

struct Rng(u64);

impl Rng {
    fn for_test(test: &str) -> Rng {
        let seed = std::env::var("PODPORT_FAULTS_SEED")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                let t = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                t ^ (u64::from(std::process::id()) << 32)
            });
        let mut h = seed;
        for b in test.bytes() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        eprintln!(
            "faults: {test}: seed {seed} (PODPORT_FAULTS_SEED={seed} repeats its random choices)"
        );
        Rng(h)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.below(span + 1))
    }

    fn fork(&mut self) -> Rng {
        Rng(self.next())
    }
}

// ---------------------------------------------------------------------------------------------
// the agent

type Log = Arc<Mutex<Vec<String>>>;

/// A running `podport agent`, restartable on the same journal; killed on drop, the tail of
/// its log (every incarnation, each line tagged `[n]`) printed if the test failed.
struct Agent {
    child: Child,
    args: Vec<String>,
    sock: PathBuf,
    journal: PathBuf,
    log: Log,
    starts: u32,
}

impl Agent {
    fn start(sb: &Sandbox, dir: &Path, bound: Duration) -> Agent {
        let sock = dir.join("ctl.sock");
        let journal = dir.join("journal");
        let mut args = agent_args(sb, &journal, &format!("unix:{}", sock.display()));
        args.extend(["--not-ready-every".into(), "5s".into()]);
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let child = Agent::spawn(&args, &log, 1);
        let mut agent = Agent {
            child,
            args,
            sock,
            journal,
            log,
            starts: 1,
        };
        agent.wait_up(bound);
        agent
    }

    fn spawn(args: &[String], log: &Log, n: u32) -> Child {
        let mut child = Command::new(podport_bin())
            .args(args)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn podport agent");
        let stderr = child.stderr.take().unwrap();
        let log = log.clone();
        log.lock()
            .unwrap()
            .push(format!("[{n}] ===== agent start #{n} ====="));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(format!("[{n}] {line}"));
            }
        });
        child
    }

    /// Starts the agent again on the same journal (the previous one must have exited).
    fn restart(&mut self, bound: Duration) {
        assert!(
            self.child.try_wait().unwrap().is_some(),
            "restart of an agent that still runs"
        );
        self.starts += 1;
        self.child = Agent::spawn(&self.args, &self.log, self.starts);
        self.wait_up(bound);
    }

    /// SIGKILL, and wait for the process to be gone (its journal lock with it).
    fn kill9(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        if wait_exit(&mut self.child, BOUND).is_none() {
            panic!("the agent did not die within {BOUND:?} of SIGKILL");
        }
    }

    /// Polls the control socket until a status request is answered; the agent must neither
    /// exit nor take longer than `bound`.
    fn wait_up(&mut self, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the agent (start #{}) exited with {status} instead of starting:\n{}",
                    self.starts,
                    self.tail(80)
                );
            }
            if let Answer::Ok(_) = ask(&self.sock, r#"{"op":"status"}"#, REQUEST_TIMEOUT) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the agent (start #{}) did not answer on its control socket within {bound:?}:\n{}",
                self.starts,
                self.tail(80)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `Err` with the exit status and log if the agent is no longer running.
    fn running(&mut self) -> Result<(), String> {
        match self.child.try_wait().unwrap() {
            None => Ok(()),
            Some(status) => Err(format!("the agent died ({status}):\n{}", self.tail(80))),
        }
    }

    fn tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    fn log_lines(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- agent log (last 300 lines) ----\n{}\n------------------------------------",
                self.tail(300)
            );
            if let Some(dir) = self.sock.parent() {
                let _ = std::fs::write(dir.join("agent.log"), self.log.lock().unwrap().join("\n"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the control socket

/// What one request got.
#[derive(Debug, Clone)]
enum Answer {
    /// `{"ok":true,...}`: acknowledged.
    Ok(Value),
    /// `{"ok":false,"error":...}`.
    Refused(String),
    /// No answer: could not connect, the connection ended, or nothing came in time.
    Unanswered(String),
}

/// One request on a new connection, as `podport cni` makes it; every step bounded.
fn ask(sock: &Path, line: &str, timeout: Duration) -> Answer {
    let s = match UnixStream::connect(sock) {
        Ok(s) => s,
        Err(e) => return Answer::Unanswered(format!("connect: {e}")),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut w = &s;
    if let Err(e) = w.write_all(format!("{line}\n").as_bytes()) {
        return Answer::Unanswered(format!("write: {e}"));
    }
    let mut rd = BufReader::new(&s);
    let mut l = String::new();
    match rd.read_line(&mut l) {
        Ok(0) => Answer::Unanswered("the connection ended without an answer".into()),
        Ok(_) => match serde_json::from_str::<Value>(l.trim()) {
            Ok(v) if v["ok"] == true => Answer::Ok(v),
            Ok(v) if v["ok"] == false => {
                Answer::Refused(v["error"].as_str().unwrap_or("").to_string())
            }
            _ => Answer::Unanswered(format!("not an answer: {l:?}")),
        },
        Err(e) => Answer::Unanswered(format!("read: {e}")),
    }
}

/// The agent's status: every tracked port.
fn status(sock: &Path) -> Result<Vec<Value>, String> {
    match ask(sock, r#"{"op":"status"}"#, REQUEST_TIMEOUT) {
        Answer::Ok(v) => Ok(v["ports"].as_array().cloned().unwrap_or_default()),
        Answer::Refused(e) => Err(format!("status refused: {e}")),
        Answer::Unanswered(e) => Err(format!("status unanswered: {e}")),
    }
}

fn entry<'a>(st: &'a [Value], ifname: &str) -> Option<&'a Value> {
    st.iter().find(|p| p["ifname"] == ifname)
}

fn phase(p: &Value) -> &str {
    p["phase"].as_str().unwrap_or("?")
}

// ---------------------------------------------------------------------------------------------
// Pods

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pod {
    ifname: String,
    ns: String,
    name: String,
    container: String,
    ip: String,
    mac: String,
}

impl Pod {
    /// Pod `i` (generation `gen`) of a test: the interface name and addresses belong to the
    /// slot `prefix i` (`net` keeps tests apart), the Pod name and container to the generation.
    fn new(prefix: &str, net: u8, i: u32, gen: u32) -> Pod {
        Pod {
            ifname: format!("{prefix}{i}"),
            ns: "faults".into(),
            name: format!("{prefix}{i}-g{gen}"),
            container: format!("{prefix}{i}-c{gen}"),
            ip: format!("10.{net}.{}.{}", i / 200, i % 200 + 10),
            mac: format!("02:00:00:{net:02x}:{:02x}:{:02x}", i / 256, i % 256),
        }
    }

    fn full_name(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    fn add_line(&self) -> String {
        json!({
            "op": "add", "namespace": self.ns, "name": self.name,
            "container_id": self.container, "ifname": self.ifname,
            "ips": [format!("{}/16", self.ip)], "mac": self.mac,
        })
        .to_string()
    }

    fn attach_line(&self) -> String {
        json!({"op": "attach", "ifname": self.ifname}).to_string()
    }

    fn del_line(&self, with_container: bool) -> String {
        if with_container {
            json!({"op": "del", "ifname": self.ifname, "container_id": self.container}).to_string()
        } else {
            json!({"op": "del", "ifname": self.ifname}).to_string()
        }
    }
}

/// What the last acknowledged request of a Pod says must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Deleted (or never added).
    Absent,
    /// Added, not attached.
    Added,
    /// Added and attached: must become ready.
    Attached,
}

#[derive(Clone, Debug)]
struct Expect {
    pod: Pod,
    want: Want,
}

/// Sends a request that must be acknowledged (set-up steps, not under test).
fn must_ack(sock: &Path, line: &str) {
    match ask(sock, line, REQUEST_TIMEOUT) {
        Answer::Ok(_) => {}
        other => panic!("{line}: expected {{\"ok\":true}}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// what OVS holds

#[derive(Clone, Debug)]
struct Iface {
    uuid: String,
    ty: String,
    ofport: Option<i64>,
    ext: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
struct Flow {
    line: String,
    cookie: u64,
    tokens: Vec<String>,
}

impl Flow {
    fn is_pod_flow(&self) -> bool {
        // Pod cookies are 00 a0 GG GG GG NN NN NN.
        self.cookie >> 48 == 0x00a0
    }

    /// Every port number the flow matches on or outputs to.
    fn ports(&self) -> Vec<i64> {
        self.tokens
            .iter()
            .filter_map(|t| {
                t.strip_prefix("in_port=")
                    .or_else(|| t.strip_prefix("output:"))
                    .and_then(|n| n.parse().ok())
            })
            .collect()
    }

    fn carries(&self, pod: &Pod) -> bool {
        let ip = format!("={}", pod.ip);
        let mac = format!("={}", pod.mac);
        let set = format!("set_field:{}->", pod.mac);
        self.tokens
            .iter()
            .any(|t| t.ends_with(&ip) || t.ends_with(&mac) || t.starts_with(&set))
    }
}

/// One look at OVS: the bridge's ports (`list-ports`), every Port and Interface row, and the
/// bridge's flows.
#[derive(Clone, Debug)]
struct OvsView {
    bridge_ports: BTreeSet<String>,
    port_uuids: BTreeMap<String, String>,
    ifaces: BTreeMap<String, Iface>,
    flows: Vec<Flow>,
}

/// `ovs-vsctl --format=json list TABLE` as rows of heading → cell.
fn vsctl_rows(
    sb: &Sandbox,
    table: &str,
    cols: &str,
) -> Result<Vec<BTreeMap<String, Value>>, String> {
    let out = sb
        .vsctl(&["--format=json", &format!("--columns={cols}"), "list", table])
        .map_err(|e| format!("ovs-vsctl list {table}: {e}"))?;
    let v: Value =
        serde_json::from_str(&out).map_err(|e| format!("ovs-vsctl list {table}: {e}: {out}"))?;
    let heads: Vec<String> = v["headings"]
        .as_array()
        .ok_or_else(|| format!("no headings: {out}"))?
        .iter()
        .map(|h| h.as_str().unwrap_or("").to_string())
        .collect();
    Ok(v["data"]
        .as_array()
        .ok_or_else(|| format!("no data: {out}"))?
        .iter()
        .map(|row| {
            heads
                .iter()
                .cloned()
                .zip(row.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .collect())
}

/// An OVSDB JSON cell as text: a string, `["uuid", s]`, or anything else printed.
fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 2 && a[0] == "uuid" => a[1].as_str().unwrap_or("").into(),
        other => other.to_string(),
    }
}

fn ovs_view(sb: &Sandbox) -> Result<OvsView, String> {
    let listed = sb
        .vsctl(&["list-ports", sb.bridge()])
        .map_err(|e| format!("ovs-vsctl list-ports: {e}"))?;
    let bridge_ports = listed.lines().map(str::to_string).collect();
    let port_uuids = vsctl_rows(sb, "Port", "_uuid,name")?
        .into_iter()
        .map(|r| (cell_text(&r["name"]), cell_text(&r["_uuid"])))
        .collect();
    let ifaces = vsctl_rows(sb, "Interface", "_uuid,name,type,ofport,external_ids")?
        .into_iter()
        .map(|r| {
            let ext = r["external_ids"][1]
                .as_array()
                .map(|pairs| {
                    pairs
                        .iter()
                        .map(|kv| (cell_text(&kv[0]), cell_text(&kv[1])))
                        .collect()
                })
                .unwrap_or_default();
            let iface = Iface {
                uuid: cell_text(&r["_uuid"]),
                ty: cell_text(&r["type"]),
                ofport: r["ofport"].as_i64(),
                ext,
            };
            (cell_text(&r["name"]), iface)
        })
        .collect();
    let out = sb
        .ofctl(&[
            "-O",
            "OpenFlow15",
            "--no-stats",
            "--no-names",
            "dump-flows",
            sb.bridge(),
        ])
        .map_err(|e| format!("ovs-ofctl dump-flows: {e}"))?;
    let flows = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(" reply"))
        .map(|l| {
            let tokens: Vec<String> = l
                .split([',', ' '])
                .filter(|t| !t.is_empty())
                .map(|t| t.strip_prefix("actions=").unwrap_or(t).to_string())
                .collect();
            let cookie = tokens
                .iter()
                .find_map(|t| t.strip_prefix("cookie=0x"))
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            Flow {
                line: l.to_string(),
                cookie,
                tokens,
            }
        })
        .collect();
    Ok(OvsView {
        bridge_ports,
        port_uuids,
        ifaces,
        flows,
    })
}

// ---------------------------------------------------------------------------------------------
// foreign ports

/// Ports podport did not make: `gw0` and `uplink` (added with `ovs-vsctl`, type `dummy`, no
/// podport marker) and the bridge's own port, as they were before anything ran.
struct Foreign {
    names: Vec<String>,
    before: BTreeMap<String, (String, Iface)>,
}

impl Foreign {
    fn setup(sb: &Sandbox) -> Foreign {
        sb.add_port("gw0").expect("add foreign port gw0");
        sb.add_port("uplink").expect("add foreign port uplink");
        let names = vec!["gw0".to_string(), "uplink".into(), sb.bridge().to_string()];
        let v = ovs_view(sb).expect("look at OVS");
        let before = names
            .iter()
            .map(|n| {
                let port = v.port_uuids.get(n).cloned().expect("foreign port row");
                let iface = v.ifaces.get(n).cloned().expect("foreign interface row");
                (n.clone(), (port, iface))
            })
            .collect();
        Foreign { names, before }
    }

    fn is_foreign(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Each foreign port that is not as it was (gone, replaced, retyped, marked), and why.
    fn touched(&self, v: &OvsView) -> Vec<String> {
        let mut out = Vec::new();
        for (name, (port, iface)) in &self.before {
            let now_port = v.port_uuids.get(name);
            let now_iface = v.ifaces.get(name);
            let on_bridge = v.bridge_ports.contains(name) || name == self.names.last().unwrap();
            match (now_port, now_iface) {
                (Some(p), Some(i))
                    if p == port
                        && i.uuid == iface.uuid
                        && i.ty == iface.ty
                        && i.ext == iface.ext
                        && on_bridge => {}
                (p, i) => out.push(format!(
                    "foreign port {name} touched: before port {port} {iface:?}, now port {p:?} \
                     {i:?}, on the bridge: {on_bridge}"
                )),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// the judgement

/// A defect found by this suite and still open (see
/// `defect_flows_installed_after_their_pods_deletion_stay_in_the_switch`): a Pod deleted
/// while its flow install is in flight can keep those flows in the switch. While it is open,
/// the judgement counts flows under a deleted Pod's cookie (`stale-flows=N` in the summaries)
/// instead of failing on them; the defect's own test fails on them. Set to `false` once fixed.
const STALE_FLOWS_DEFECT_OPEN: bool = false;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An acknowledged request's effect is missing.
    Lost,
    /// Not (yet) as it must become: not ready, deletion under way, agent not answering.
    NotYet,
    /// Flows under the cookie of a Pod that is gone (or of an earlier Pod of that name).
    Stale,
    /// A port podport did not make was changed or removed.
    Foreign,
}

#[derive(Clone, Debug)]
struct Problem {
    kind: Kind,
    what: String,
}

fn lost(what: String) -> Problem {
    Problem {
        kind: Kind::Lost,
        what,
    }
}

fn pending(what: String) -> Problem {
    Problem {
        kind: Kind::NotYet,
        what,
    }
}

fn count(problems: &[Problem], kind: Kind) -> usize {
    problems.iter().filter(|p| p.kind == kind).count()
}

fn lines(flows: &[&Flow]) -> Vec<String> {
    flows.iter().map(|f| f.line.clone()).collect()
}

/// Everything that is not (yet) as the acknowledged requests say. `whole`: also no stray
/// ports, Pod flows or tracked Pods beyond `expects`, and the foreign ports untouched.
fn judge(
    v: &OvsView,
    st: &[Value],
    expects: &[Expect],
    foreign: &Foreign,
    whole: bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut owned = BTreeSet::new();
    let mut stale = BTreeSet::new();
    for e in expects {
        let pod = &e.pod;
        let name = &pod.ifname;
        let tracked = entry(st, name);
        let iface = v.ifaces.get(name).filter(|_| v.bridge_ports.contains(name));
        let mut by_cookie: BTreeMap<u64, Vec<&Flow>> = BTreeMap::new();
        for f in v.flows.iter().filter(|f| f.carries(pod)) {
            by_cookie.entry(f.cookie).or_default().push(f);
        }
        match e.want {
            Want::Absent => {
                if let Some(p) = tracked {
                    out.push(lost(format!(
                        "{name}: del acknowledged last, but tracked as {} in phase {}",
                        p["pod"],
                        phase(p)
                    )));
                }
                if let Some(i) = iface {
                    out.push(lost(format!(
                        "{name}: del acknowledged last, but its port is in OVS (ext {:?})",
                        i.ext
                    )));
                }
            }
            Want::Added | Want::Attached => {
                let what = if e.want == Want::Added {
                    "add"
                } else {
                    "attach"
                };
                match tracked {
                    None => out.push(lost(format!(
                        "{name}: {what} of {} acknowledged last, but the agent does not track it",
                        pod.full_name()
                    ))),
                    Some(p) if p["pod"] != pod.full_name().as_str() => out.push(lost(format!(
                        "{name}: {what} of {} acknowledged last, but tracked as {}",
                        pod.full_name(),
                        p["pod"]
                    ))),
                    Some(p) if matches!(phase(p), "removing" | "failed") => {
                        out.push(lost(format!(
                            "{name}: {what} acknowledged last, but phase {} ({})",
                            phase(p),
                            p["last_error"]
                        )))
                    }
                    Some(p) if e.want == Want::Attached && phase(p) == "waiting-interface" => out
                        .push(lost(format!(
                            "{name}: attach acknowledged, but the agent waits for the interface"
                        ))),
                    Some(p) if e.want == Want::Attached && p["ready"] != true => out.push(pending(
                        format!("{name}: attached, not ready (phase {})", phase(p)),
                    )),
                    Some(p) if e.want == Want::Added && phase(p) != "waiting-interface" => out
                        .push(pending(format!(
                            "{name}: added, phase {} (expected waiting-interface)",
                            phase(p)
                        ))),
                    Some(_) => {}
                }
                match iface {
                    None => out.push(lost(format!(
                        "{name}: {what} acknowledged last, but OVS has no such port"
                    ))),
                    Some(i) => {
                        let cid = i.ext.get("container-id").map(String::as_str);
                        let owner = i.ext.get("podport-owner").map(String::as_str);
                        if cid != Some(pod.container.as_str()) || owner != Some("podport") {
                            out.push(lost(format!(
                                "{name}: its port is not {}'s podport port: ext {:?}",
                                pod.container, i.ext
                            )));
                        }
                        if e.want == Want::Attached {
                            // Exactly its 5 flows, under one Pod cookie, on its current port.
                            let ofport = i.ofport.unwrap_or(-1);
                            let right = by_cookie.iter().find(|(_, fs)| {
                                ofport > 0
                                    && i.ty != PENDING_TYPE
                                    && fs.len() == FLOWS_PER_POD
                                    && fs.iter().all(|f| f.is_pod_flow())
                                    && fs.iter().all(|f| f.ports().iter().all(|&n| n == ofport))
                                    && fs.iter().map(|f| f.ports().len()).sum::<usize>() > 0
                            });
                            match right {
                                Some((&c, _)) => {
                                    owned.insert(c);
                                }
                                None => out.push(pending(format!(
                                    "{name}: attached, but OVS does not hold its \
                                     {FLOWS_PER_POD} flows under one Pod cookie on its ofport \
                                     {ofport} (type {:?}): {:?}",
                                    i.ty,
                                    by_cookie
                                        .values()
                                        .flatten()
                                        .map(|f| &f.line)
                                        .collect::<Vec<_>>()
                                ))),
                            }
                        }
                    }
                }
            }
        }
        // Whatever else carries its addresses was left by this Pod (or an earlier Pod of its
        // name) after a deletion or a move.
        for (c, fs) in &by_cookie {
            if !owned.contains(c) && stale.insert(*c) {
                out.push(Problem {
                    kind: Kind::Stale,
                    what: format!(
                        "{name} ({:?}): {} flows under cookie {c:#x} that no Pod has: {:?}",
                        e.want,
                        fs.len(),
                        lines(fs)
                    ),
                });
            }
        }
    }
    if whole {
        let known: BTreeSet<&str> = expects.iter().map(|e| e.pod.ifname.as_str()).collect();
        for p in &v.bridge_ports {
            if !known.contains(p.as_str()) && !foreign.is_foreign(p) {
                out.push(pending(format!(
                    "stray port {p} in OVS (ext {:?})",
                    v.ifaces.get(p).map(|i| &i.ext)
                )));
            }
        }
        let mut strays: BTreeMap<u64, Vec<&Flow>> = BTreeMap::new();
        for f in v.flows.iter().filter(|f| f.is_pod_flow()) {
            if !owned.contains(&f.cookie) && !stale.contains(&f.cookie) {
                strays.entry(f.cookie).or_default().push(f);
            }
        }
        for (c, fs) in strays {
            out.push(Problem {
                kind: Kind::Stale,
                what: format!(
                    "{} flows under cookie {c:#x} that no Pod has: {:?}",
                    fs.len(),
                    lines(&fs)
                ),
            });
        }
        for p in st {
            let n = p["ifname"].as_str().unwrap_or("");
            if !known.contains(n) {
                out.push(pending(format!(
                    "the agent tracks {n} ({}, phase {}), which no acknowledged request left",
                    p["pod"],
                    phase(p)
                )));
            }
        }
        for t in foreign.touched(v) {
            out.push(Problem {
                kind: Kind::Foreign,
                what: t,
            });
        }
    }
    out
}

/// Converged: how long it took, and the stale flows seen then (tolerated while
/// [`STALE_FLOWS_DEFECT_OPEN`]).
#[derive(Debug)]
struct Verdict {
    took: Duration,
    stale: Vec<Problem>,
}

/// Waits until nothing is amiss, or returns what still is after `bound`.
fn converge(
    sb: &Sandbox,
    sock: &Path,
    expects: &[Expect],
    foreign: &Foreign,
    whole: bool,
    bound: Duration,
) -> Result<Verdict, Vec<Problem>> {
    converge_with(
        sb,
        sock,
        expects,
        foreign,
        whole,
        bound,
        STALE_FLOWS_DEFECT_OPEN,
    )
}

fn converge_with(
    sb: &Sandbox,
    sock: &Path,
    expects: &[Expect],
    foreign: &Foreign,
    whole: bool,
    bound: Duration,
    tolerate_stale: bool,
) -> Result<Verdict, Vec<Problem>> {
    let t0 = Instant::now();
    loop {
        let problems = match (status(sock), ovs_view(sb)) {
            (Ok(st), Ok(v)) => judge(&v, &st, expects, foreign, whole),
            (Err(e), _) | (_, Err(e)) => vec![pending(e)],
        };
        let (stale, blocking): (Vec<Problem>, Vec<Problem>) = problems
            .into_iter()
            .partition(|p| tolerate_stale && p.kind == Kind::Stale);
        if blocking.is_empty() {
            return Ok(Verdict {
                took: t0.elapsed(),
                stale,
            });
        }
        if t0.elapsed() >= bound {
            return Err(blocking.into_iter().chain(stale).collect());
        }
        std::thread::sleep(POLL);
    }
}

fn show(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {:?}: {}", p.kind, p.what))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pods `prefix 0..n`, each added and attached, then waits until all are ready.
fn ready_pods(
    sb: &Sandbox,
    sock: &Path,
    foreign: &Foreign,
    prefix: &str,
    net: u8,
    n: u32,
) -> Vec<Expect> {
    let expects: Vec<Expect> = (0..n)
        .map(|i| Expect {
            pod: Pod::new(prefix, net, i, 1),
            want: Want::Attached,
        })
        .collect();
    for e in &expects {
        must_ack(sock, &e.pod.add_line());
        must_ack(sock, &e.pod.attach_line());
    }
    if let Err(p) = converge(sb, sock, &expects, foreign, false, BOUND) {
        panic!("the first Pods did not become ready:\n{}", show(&p));
    }
    expects
}

// ---------------------------------------------------------------------------------------------
// the churn driver

#[derive(Clone, Debug)]
struct Slot {
    i: u32,
    /// The generation of the last acknowledged add (0: never added).
    gen: u32,
    want: Want,
}

#[derive(Default, Debug)]
struct ChurnStats {
    requests: u64,
    acked: u64,
    acked_by: BTreeMap<&'static str, u64>,
    /// Refusals the model expects (a new container while the old one is still removed).
    deferred: u64,
    /// Requests the agent died under (sent again until answered).
    interrupted: u64,
    /// Status checks after a restart.
    checks: u64,
    lost: Vec<String>,
    unexpected: Vec<String>,
    foreign_tries: u64,
    /// Adds or attaches of a foreign name that were acknowledged.
    foreign_acked: Vec<String>,
}

/// Drives add/attach/del through the control socket, one request at a time, keeping what was
/// acknowledged per slot. Stops when `stop` is set.
struct Churn<'a> {
    sock: &'a Path,
    prefix: &'static str,
    net: u8,
    slots: Vec<Slot>,
    foreign: Vec<String>,
    rng: Rng,
    stop: &'a AtomicBool,
    /// Bumped by whoever restarts something; the driver then compares the agent's status with
    /// what was acknowledged before it sends anything else.
    restarts: &'a AtomicU64,
    seen: u64,
    stats: ChurnStats,
}

enum Op {
    Add {
        s: usize,
        gen: u32,
    },
    Attach {
        s: usize,
    },
    Del {
        s: usize,
        with_container: bool,
    },
    /// A DEL for the slot's previous container: the current Pod must stay.
    StaleDel {
        s: usize,
    },
    /// The current Pod's add again (a runtime retrying): idempotent.
    ReAdd {
        s: usize,
    },
    Foreign {
        kind: &'static str,
        line: String,
        name: String,
    },
}

impl<'a> Churn<'a> {
    /// `n` slots named `prefix 0..n` (addresses in 10.`net`.0.0/16).
    fn new(
        sock: &'a Path,
        (prefix, net, n): (&'static str, u8, u32),
        foreign: &Foreign,
        rng: Rng,
        (stop, restarts): (&'a AtomicBool, &'a AtomicU64),
    ) -> Churn<'a> {
        Churn {
            sock,
            prefix,
            net,
            slots: (0..n)
                .map(|i| Slot {
                    i,
                    gen: 0,
                    want: Want::Absent,
                })
                .collect(),
            foreign: foreign.names.clone(),
            rng,
            stop,
            restarts,
            seen: restarts.load(Ordering::SeqCst),
            stats: ChurnStats::default(),
        }
    }

    fn pod(&self, s: usize) -> Pod {
        let slot = &self.slots[s];
        Pod::new(self.prefix, self.net, slot.i, slot.gen.max(1))
    }

    fn run(mut self) -> (Vec<Expect>, ChurnStats) {
        while !self.stop.load(Ordering::SeqCst) {
            let op = self.pick();
            self.exec(op);
        }
        // Whatever foreign-named Pod was acknowledged goes again, so that the end state is
        // judged on the foreign ports alone.
        for name in self.foreign.clone() {
            let line = json!({"op": "del", "ifname": name}).to_string();
            self.send(&line, None);
        }
        let expects = (0..self.slots.len())
            .map(|s| Expect {
                pod: self.pod(s),
                want: self.slots[s].want,
            })
            .collect();
        (expects, self.stats)
    }

    fn pick(&mut self) -> Op {
        if self.rng.percent(4) {
            let name = self.foreign[self.rng.below(self.foreign.len() as u64) as usize].clone();
            let intruder = Pod {
                ifname: name.clone(),
                ns: "faults".into(),
                name: "intruder".into(),
                container: "intruder-c".into(),
                ip: format!("10.{}.250.1", self.net),
                mac: format!("02:00:00:{:02x}:fa:01", self.net),
            };
            let (kind, line) = match self.rng.below(4) {
                0 => ("add", intruder.add_line()),
                1 => ("attach", intruder.attach_line()),
                2 => ("del", intruder.del_line(false)),
                _ => ("del", intruder.del_line(true)),
            };
            return Op::Foreign { kind, line, name };
        }
        let s = self.rng.below(self.slots.len() as u64) as usize;
        let slot = &self.slots[s];
        let r = self.rng.below(100);
        let old = slot.gen > 1;
        match slot.want {
            Want::Absent => Op::Add {
                s,
                gen: slot.gen + 1,
            },
            Want::Added => match r {
                0..=59 => Op::Attach { s },
                60..=84 => Op::Del {
                    s,
                    with_container: !r.is_multiple_of(5),
                },
                85..=94 => Op::ReAdd { s },
                _ if old => Op::StaleDel { s },
                _ => Op::Attach { s },
            },
            Want::Attached => match r {
                0..=54 => Op::Del {
                    s,
                    with_container: !r.is_multiple_of(5),
                },
                55..=69 => Op::Attach { s },
                70..=84 => Op::ReAdd { s },
                _ if old => Op::StaleDel { s },
                _ => Op::Del {
                    s,
                    with_container: true,
                },
            },
        }
    }

    fn exec(&mut self, op: Op) {
        match op {
            Op::Add { s, gen } => {
                let pod = Pod::new(self.prefix, self.net, self.slots[s].i, gen);
                match self.send(&pod.add_line(), Some(s)) {
                    Some(Answer::Ok(_)) => {
                        self.ack("add");
                        self.slots[s].gen = gen;
                        self.slots[s].want = Want::Added;
                    }
                    Some(Answer::Refused(e))
                        if gen > 1
                            && (e.contains("already tracked for another Pod")
                                || e.contains("for another container")) =>
                    {
                        // The previous container's Pod is still being removed: retried later.
                        self.stats.deferred += 1;
                    }
                    other => self.unexpected(&pod.add_line(), other),
                }
            }
            Op::ReAdd { s } => {
                let pod = self.pod(s);
                match self.send(&pod.add_line(), Some(s)) {
                    Some(Answer::Ok(_)) => self.ack("re-add"),
                    other => self.unexpected(&pod.add_line(), other),
                }
            }
            Op::Attach { s } => {
                let pod = self.pod(s);
                match self.send(&pod.attach_line(), Some(s)) {
                    Some(Answer::Ok(_)) => {
                        self.ack("attach");
                        self.slots[s].want = Want::Attached;
                    }
                    Some(Answer::Refused(e)) if e.contains("not tracked") => {
                        self.stats.lost.push(format!(
                            "attach of {} refused ({e}) after its add was acknowledged",
                            pod.ifname
                        ));
                        self.slots[s].want = Want::Absent;
                    }
                    other => self.unexpected(&pod.attach_line(), other),
                }
            }
            Op::Del { s, with_container } => {
                let pod = self.pod(s);
                let line = pod.del_line(with_container);
                match self.send(&line, Some(s)) {
                    Some(Answer::Ok(_)) => {
                        self.ack("del");
                        self.slots[s].want = Want::Absent;
                    }
                    other => self.unexpected(&line, other),
                }
            }
            Op::StaleDel { s } => {
                let slot = &self.slots[s];
                let old = Pod::new(self.prefix, self.net, slot.i, slot.gen - 1);
                let line = old.del_line(true);
                match self.send(&line, Some(s)) {
                    Some(Answer::Ok(_)) => self.ack("stale-del"),
                    other => self.unexpected(&line, other),
                }
            }
            Op::Foreign { kind, line, name } => {
                self.stats.foreign_tries += 1;
                match (kind, self.send(&line, None)) {
                    ("del", Some(Answer::Ok(_))) => {}
                    (_, Some(Answer::Refused(_))) if kind != "del" => {}
                    (_, Some(Answer::Ok(_))) => {
                        self.stats
                            .foreign_acked
                            .push(format!("{kind} of foreign {name} acknowledged: {line}"));
                    }
                    (_, other) => self.unexpected(&line, other),
                }
            }
        }
    }

    fn ack(&mut self, kind: &'static str) {
        self.stats.acked += 1;
        *self.stats.acked_by.entry(kind).or_default() += 1;
    }

    fn unexpected(&mut self, line: &str, answer: Option<Answer>) {
        self.stats.unexpected.push(format!("{line} → {answer:?}"));
    }

    /// Sends `line` until it is answered (the agent may be dead or restarting), at most
    /// [`RETRY_BOUND`]; `None` if it never was. Before each attempt, a restart since the last
    /// look is checked against what was acknowledged (`s`, whose request is in flight, aside).
    fn send(&mut self, line: &str, s: Option<usize>) -> Option<Answer> {
        self.stats.requests += 1;
        let t0 = Instant::now();
        let mut interrupted = false;
        loop {
            self.check_restart(s);
            match ask(self.sock, line, REQUEST_TIMEOUT) {
                Answer::Unanswered(why) => {
                    if !interrupted {
                        interrupted = true;
                        self.stats.interrupted += 1;
                    }
                    if t0.elapsed() > RETRY_BOUND {
                        self.stats
                            .unexpected
                            .push(format!("{line}: no answer within {RETRY_BOUND:?} ({why})"));
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                answer => return Some(answer),
            }
        }
    }

    /// After a restart: every slot but `exclude` must be as its last acknowledged request
    /// says, in the agent's (replayed) state. A loss is counted once and the model follows
    /// what the agent holds, so the churn goes on from there.
    fn check_restart(&mut self, exclude: Option<usize>) {
        let r = self.restarts.load(Ordering::SeqCst);
        if r == self.seen {
            return;
        }
        let Ok(st) = status(self.sock) else { return };
        self.seen = r;
        self.stats.checks += 1;
        for s in 0..self.slots.len() {
            if Some(s) == exclude {
                continue;
            }
            let pod = self.pod(s);
            let p = entry(&st, &pod.ifname);
            let ours = p.is_some_and(|p| p["pod"] == pod.full_name().as_str());
            let ph = p.map(phase).unwrap_or("untracked");
            let want = self.slots[s].want;
            let (loss, now) = match (want, p) {
                (Want::Absent, None) => (None, want),
                (Want::Absent, Some(_)) if ph == "removing" => (None, want),
                (Want::Absent, Some(_)) if ours => (
                    Some("its del"),
                    if matches!(ph, "creating" | "waiting-interface") {
                        Want::Added
                    } else {
                        Want::Attached
                    },
                ),
                (_, None) => (Some("its add"), Want::Absent),
                (_, Some(_)) if !ours => (Some("its add (another Pod is tracked)"), want),
                (_, Some(_)) if ph == "removing" => {
                    (Some("its add (it is being removed)"), Want::Absent)
                }
                (_, Some(_)) if ph == "failed" => {
                    self.stats.unexpected.push(format!(
                        "after restart #{r}: {} failed: {}",
                        pod.ifname,
                        p.map(|p| p["last_error"].to_string()).unwrap_or_default()
                    ));
                    (None, want)
                }
                (Want::Attached, Some(_)) if ph == "waiting-interface" => {
                    (Some("its attach"), Want::Added)
                }
                (Want::Added, Some(_)) if !matches!(ph, "creating" | "waiting-interface") => {
                    self.stats.unexpected.push(format!(
                        "after restart #{r}: {} in phase {ph} without an acknowledged attach",
                        pod.ifname
                    ));
                    (None, want)
                }
                _ => (None, want),
            };
            if let Some(what) = loss {
                self.stats.lost.push(format!(
                    "after restart #{r}: {} lost {what}: acknowledged {:?} of {}, the agent has \
                     {} in phase {ph}",
                    pod.ifname,
                    want,
                    pod.full_name(),
                    p.map(|p| p["pod"].to_string())
                        .unwrap_or_else(|| "nothing".into())
                ));
                self.slots[s].want = now;
            }
        }
    }
}

/// Sets a flag when dropped, so a panic in a scope's main thread still stops its workers.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn churn_summary(c: &ChurnStats) -> String {
    format!(
        "requests={} acked={} ({}) interrupted={} deferred={} restart-checks={} \
         foreign-tries={} foreign-acked={}",
        c.requests,
        c.acked,
        c.acked_by
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        c.interrupted,
        c.deferred,
        c.checks,
        c.foreign_tries,
        c.foreign_acked.len()
    )
}

/// How a test ended: converged (and how long it took) or what was still amiss at the bound.
struct End {
    took: Option<Duration>,
    /// What blocked convergence at the bound (empty when converged).
    problems: Vec<Problem>,
    /// Flows of deleted Pods seen at the end (tolerated while [`STALE_FLOWS_DEFECT_OPEN`]).
    stale: Vec<Problem>,
}

impl End {
    fn lost(&self) -> usize {
        count(&self.problems, Kind::Lost)
    }

    fn stale(&self) -> usize {
        count(&self.problems, Kind::Stale) + self.stale.len()
    }

    fn figures(&self) -> String {
        format!(
            "converged={} stale-flows={}",
            self.took.map_or("NO".into(), |d| format!("{}ms", ms(d))),
            self.stale()
        )
    }

    fn check(&self, what: &str) {
        assert!(
            self.problems.is_empty(),
            "{what}: not as acknowledged within {CONVERGE_BOUND:?}:\n{}",
            show(&self.problems)
        );
        if !self.stale.is_empty() {
            eprintln!(
                "faults: {what}: KNOWN DEFECT (STALE_FLOWS_DEFECT_OPEN) {} stale flow groups:\n{}",
                self.stale.len(),
                show(&self.stale)
            );
        }
    }
}

/// The end of a test: waits until OVS and the agent are as acknowledged, with nothing stray.
fn final_judgement(sb: &Sandbox, agent: &mut Agent, expects: &[Expect], foreign: &Foreign) -> End {
    if let Err(e) = agent.running() {
        return End {
            took: None,
            problems: vec![lost(e)],
            stale: Vec::new(),
        };
    }
    match converge(sb, &agent.sock, expects, foreign, true, CONVERGE_BOUND) {
        Ok(v) => End {
            took: Some(v.took),
            problems: Vec::new(),
            stale: v.stale,
        },
        Err(problems) => End {
            took: None,
            problems,
            stale: Vec::new(),
        },
    }
}

fn foreign_touched(sb: &Sandbox, foreign: &Foreign) -> Vec<String> {
    foreign.touched(&ovs_view(sb).expect("look at OVS"))
}

fn check_churn(stats: &ChurnStats, touched: &[String]) {
    assert!(
        stats.lost.is_empty(),
        "acknowledged requests lost at a restart:\n{}",
        stats.lost.join("\n")
    );
    assert!(
        stats.unexpected.is_empty(),
        "unexpected answers:\n{}",
        stats.unexpected.join("\n")
    );
    assert!(
        stats.foreign_acked.is_empty(),
        "{}",
        stats.foreign_acked.join("\n")
    );
    assert!(touched.is_empty(), "{}", touched.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 1. random SIGKILL during churn

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn random_sigkill_during_churn_loses_no_acknowledged_request() {
    let sb = sandbox_for_test();
    let t_test = Instant::now();
    let mut rng = Rng::for_test("random-sigkill");
    let kills: u32 = size(5, 20);
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let mut agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();
    // Two Pods the churn leaves alone: how fast they are ready again after each restart.
    let stable = ready_pods(&sb, &sock, &foreign, "st", 9, 2);

    let stop = AtomicBool::new(false);
    let restarts = AtomicU64::new(0);
    let mut up_again = Vec::new();
    let mut ready_again = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let churn = Churn::new(
        &sock,
        ("ch", 1, 8),
        &foreign,
        rng.fork(),
        (&stop, &restarts),
    );
    let (mut expects, stats) = std::thread::scope(|scope| {
        let driver = scope.spawn(|| churn.run());
        let _stop = StopOnDrop(&stop);
        for k in 1..=kills {
            std::thread::sleep(
                rng.between(Duration::from_millis(200), Duration::from_millis(1200)),
            );
            agent.kill9();
            let t0 = Instant::now();
            agent.restart(BOUND);
            up_again.push(t0.elapsed());
            restarts.fetch_add(1, Ordering::SeqCst);
            match converge(&sb, &sock, &stable, &foreign, false, BOUND) {
                Ok(_) => ready_again.push(t0.elapsed()),
                Err(p) => problems.push(format!(
                    "kill {k}: the stable Pods were not ready again within {BOUND:?}:\n{}",
                    show(&p)
                )),
            }
        }
        // The churn goes on after the last restart too.
        std::thread::sleep(size(Duration::from_secs(1), Duration::from_secs(3)));
        stop.store(true, Ordering::SeqCst);
        driver.join().expect("the churn driver panicked")
    });
    expects.extend(stable);
    let end = final_judgement(&sb, &mut agent, &expects, &foreign);
    let touched = foreign_touched(&sb, &foreign);
    eprintln!(
        "faults: random-sigkill: kills={kills} {} lost={} (at restarts {}, at the end {}) \
         unexpected={} up-again {} ready-again {} {} foreign-touched={} time={:.1}s",
        churn_summary(&stats),
        stats.lost.len() + end.lost(),
        stats.lost.len(),
        end.lost(),
        stats.unexpected.len(),
        p50_max(&up_again),
        p50_max(&ready_again),
        end.figures(),
        touched.len(),
        t_test.elapsed().as_secs_f64()
    );
    check_churn(&stats, &touched);
    end.check("random-sigkill");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        stats.acked > u64::from(kills),
        "too little churn: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL within 0–5 ms of an acknowledgement

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn sigkill_right_after_an_acknowledgement_loses_nothing() {
    let sb = sandbox_for_test();
    let t_test = Instant::now();
    let mut rng = Rng::for_test("ack-then-kill");
    let rounds = size(5, 20);
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let mut agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();
    let mut expects: Vec<Expect> = Vec::new();
    // Acknowledged requests found missing, and other failures.
    let mut lost_at: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    // Pods found not as acknowledged: judged again only at the end.
    let mut broken: BTreeSet<String> = BTreeSet::new();
    let mut acked = 0u32;
    let mut ready_again = Vec::new();
    let mut delays = Vec::new();
    let mut n = 0u32;
    for round in 0..rounds {
        for kind in ["add", "attach", "del"] {
            n += 1;
            let pod = Pod::new("k", 2, n, 1);
            match kind {
                "attach" => must_ack(&sock, &pod.add_line()),
                "del" => {
                    must_ack(&sock, &pod.add_line());
                    must_ack(&sock, &pod.attach_line());
                }
                _ => {}
            }
            let (line, want) = match kind {
                "add" => (pod.add_line(), Want::Added),
                "attach" => (pod.attach_line(), Want::Attached),
                _ => (pod.del_line(rng.percent(50)), Want::Absent),
            };
            let delay = Duration::from_micros(rng.below(5001));
            let answer = ask(&sock, &line, REQUEST_TIMEOUT);
            // From reading the answer to the signal: a busy wait, sleeps are too coarse.
            let t = Instant::now();
            while t.elapsed() < delay {
                std::hint::spin_loop();
            }
            agent.kill9();
            delays.push(delay);
            assert!(
                matches!(answer, Answer::Ok(_)),
                "round {round}: {line} → {answer:?}"
            );
            acked += 1;
            let t0 = Instant::now();
            agent.restart(BOUND);
            // At once, in the replayed state: the request is there.
            let st = status(&sock).expect("status after the restart");
            let p = entry(&st, &pod.ifname);
            let ok = match want {
                Want::Added => p.is_some_and(|p| !matches!(phase(p), "removing" | "failed")),
                Want::Attached => p.is_some_and(|p| {
                    !matches!(phase(p), "removing" | "waiting-interface" | "failed")
                }),
                Want::Absent => p.is_none_or(|p| phase(p) == "removing"),
            };
            if !ok {
                broken.insert(pod.ifname.clone());
                lost_at.push(format!(
                    "{kind} of {} killed {}µs after its ack: after the restart the agent has {}",
                    pod.ifname,
                    delay.as_micros(),
                    p.map_or("nothing".into(), |p| p.to_string())
                ));
            }
            let name = pod.ifname.clone();
            expects.push(Expect { pod, want });
            // Then in OVS, for every Pod so far (a Pod found broken is judged once, at the end).
            let live: Vec<Expect> = expects
                .iter()
                .filter(|e| !broken.contains(&e.pod.ifname))
                .cloned()
                .collect();
            match converge(&sb, &sock, &live, &foreign, false, BOUND) {
                Ok(_) => ready_again.push(t0.elapsed()),
                Err(p) => {
                    let msg = format!(
                        "{kind} of {name} killed {}µs after its ack: Pods not as acknowledged \
                         within {BOUND:?}:\n{}",
                        delay.as_micros(),
                        show(&p)
                    );
                    if count(&p, Kind::Lost) > 0 {
                        lost_at.push(msg);
                    } else {
                        failures.push(msg);
                    }
                    broken.insert(name);
                }
            }
        }
    }
    let end = final_judgement(&sb, &mut agent, &expects, &foreign);
    let touched = foreign_touched(&sb, &foreign);
    delays.sort();
    eprintln!(
        "faults: ack-then-kill: kills={} (add={rounds} attach={rounds} del={rounds}) \
         acked={acked} kill-after-ack p50={}µs max={}µs lost={} (at restarts {}, at the end {}) \
         ready-again {} {} foreign-touched={} time={:.1}s",
        3 * rounds,
        delays[delays.len() / 2].as_micros(),
        delays[delays.len() - 1].as_micros(),
        lost_at.len() + end.lost(),
        lost_at.len(),
        end.lost(),
        p50_max(&ready_again),
        end.figures(),
        touched.len(),
        t_test.elapsed().as_secs_f64()
    );
    assert!(
        lost_at.is_empty(),
        "acknowledged requests lost:\n{}",
        lost_at.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    end.check("ack-then-kill");
    assert!(touched.is_empty(), "{}", touched.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 3. ovs-vswitchd and ovsdb-server restarts mid-churn

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn ovs_daemon_restarts_mid_churn_lose_nothing_and_pods_become_ready_again() {
    let sb = sandbox_for_test();
    let t_test = Instant::now();
    let mut rng = Rng::for_test("ovs-restarts");
    let each = size(1, 5);
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let mut agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();
    // Pods the churn leaves alone: how fast they are ready again after each restart.
    let stable = ready_pods(&sb, &sock, &foreign, "os", 8, 4);

    let stop = AtomicBool::new(false);
    let restarts = AtomicU64::new(0);
    let mut again: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut took: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut problems = Vec::new();
    let churn = Churn::new(
        &sock,
        ("ov", 3, 6),
        &foreign,
        rng.fork(),
        (&stop, &restarts),
    );
    let (mut expects, stats) = std::thread::scope(|scope| {
        let driver = scope.spawn(|| churn.run());
        let _stop = StopOnDrop(&stop);
        for k in 0..2 * each {
            let daemon = if k % 2 == 0 {
                "ovs-vswitchd"
            } else {
                "ovsdb-server"
            };
            std::thread::sleep(
                rng.between(Duration::from_millis(500), Duration::from_millis(1500)),
            );
            let t0 = Instant::now();
            let r = if daemon == "ovs-vswitchd" {
                sb.restart_vswitchd()
            } else {
                sb.restart_ovsdb_server()
            };
            if let Err(e) = r {
                problems.push(format!("restarting {daemon}: {e}"));
                break;
            }
            took.entry(daemon).or_default().push(t0.elapsed());
            // The driver compares the agent's state with what was acknowledged, too.
            restarts.fetch_add(1, Ordering::SeqCst);
            match converge(&sb, &sock, &stable, &foreign, false, BOUND) {
                Ok(v) => again.entry(daemon).or_default().push(v.took),
                Err(p) => problems.push(format!(
                    "{daemon} restart {k}: the stable Pods were not ready again within \
                     {BOUND:?}:\n{}",
                    show(&p)
                )),
            }
            if let Err(e) = agent.running() {
                problems.push(e);
                break;
            }
        }
        // The churn goes on after the last restart too.
        std::thread::sleep(size(Duration::from_secs(1), Duration::from_secs(3)));
        stop.store(true, Ordering::SeqCst);
        driver.join().expect("the churn driver panicked")
    });
    expects.extend(stable);
    let end = final_judgement(&sb, &mut agent, &expects, &foreign);
    let touched = foreign_touched(&sb, &foreign);
    let fig = |d: &str| {
        format!(
            "{d}: restarts={} restart-took {} stable-pods-ready-again {}",
            took.get(d).map_or(0, Vec::len),
            p50_max(took.get(d).map_or(&[][..], Vec::as_slice)),
            p50_max(again.get(d).map_or(&[][..], Vec::as_slice))
        )
    };
    eprintln!(
        "faults: ovs-restarts: {} | {} | {} lost={} (at restarts {}, at the end {}) \
         unexpected={} {} foreign-touched={} time={:.1}s",
        fig("ovs-vswitchd"),
        fig("ovsdb-server"),
        churn_summary(&stats),
        stats.lost.len() + end.lost(),
        stats.lost.len(),
        end.lost(),
        stats.unexpected.len(),
        end.figures(),
        touched.len(),
        t_test.elapsed().as_secs_f64()
    );
    check_churn(&stats, &touched);
    end.check("ovs-restarts");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. journal damage

/// How a journal's `db` was damaged.
fn damage_db(journal: &Path, rng: &mut Rng, flip: bool) -> String {
    let db = journal.join("db");
    let mut bytes = std::fs::read(&db).unwrap_or_else(|e| panic!("read {}: {e}", db.display()));
    let len = bytes.len();
    // Aim at the part sled used: up to the last non-zero byte.
    let used = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p + 1)
        .max(1);
    if flip {
        let n = 1 + rng.below(8) as usize;
        let mut at = Vec::new();
        for _ in 0..n {
            let i = rng.below(used as u64) as usize;
            bytes[i.min(len.saturating_sub(1))] ^= 1 + rng.below(255) as u8;
            at.push(i);
        }
        std::fs::write(&db, &bytes).unwrap();
        at.sort();
        format!("flipped {n} bytes of db (len {len}, used {used}) at {at:?}")
    } else {
        let to = rng.below(used as u64);
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.set_len(to).unwrap();
        format!("truncated db (len {len}, used {used}) to {to}")
    }
}

fn damaged_dirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal.damaged-"))
        .collect()
}

/// A defect found by this suite and still open (see
/// `defect_a_damaged_journal_that_sled_opens_as_a_shorter_log_loses_pods_silently`): after a
/// crash, damage in the middle of sled's log can make sled open a shorter log without an
/// error, and the agent then starts without the Pods acknowledged after that point (their
/// ports and flows stay in OVS, untracked). While it is open, the damage test counts such
/// rounds (`silent-loss=N`) and restores the Pods by adding them again instead of failing.
const SILENT_JOURNAL_LOSS_DEFECT_OPEN: bool = false;

/// `restored=R` and `replayed=N` from the agent's log of its start number `start`.
fn restored_and_replayed(agent: &Agent, start: u32) -> (String, String) {
    let tag = format!("[{start}] ");
    let field = |needle: &str, key: &str| {
        agent
            .log_lines(needle)
            .iter()
            .filter(|l| l.starts_with(&tag))
            .filter_map(|l| l.split(key).nth(1))
            .filter_map(|v| v.split_whitespace().next())
            .next_back()
            .unwrap_or("?")
            .to_string()
    };
    (
        field("engine state rebuilt from the journal", "restored="),
        field("journal open", "replayed="),
    )
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_damaged_journal_never_keeps_the_node_down() {
    let sb = sandbox_for_test();
    let t_test = Instant::now();
    let mut rng = Rng::for_test("journal-damage");
    let each = size(1, 5);
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let mut agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();
    let mut expects = ready_pods(&sb, &sock, &foreign, "dm", 4, 6);
    // Two Pods added and never attached: they must come back waiting for their interface.
    for i in 6..8 {
        let pod = Pod::new("dm", 4, i, 1);
        must_ack(&sock, &pod.add_line());
        expects.push(Expect {
            pod,
            want: Want::Added,
        });
    }
    if let Err(p) = converge(&sb, &sock, &expects, &foreign, true, BOUND) {
        panic!("before any damage:\n{}", show(&p));
    }
    // Above the agent's 30 s deadline for opening a journal (sled can spin on some damage).
    let open_bound = Duration::from_secs(90);
    let mut up_again = Vec::new();
    let mut ready_again = Vec::new();
    let mut rounds = Vec::new();
    let mut problems = Vec::new();
    let mut silent = Vec::new();
    let (mut moved, mut as_is, mut lost_pods, mut stale) = (0, 0, 0, 0);
    for k in 0..2 * each {
        let flip = k % 2 == 0;
        agent.kill9();
        let before = damaged_dirs(dir.path());
        let what = damage_db(&agent.journal, &mut rng, flip);
        let t0 = Instant::now();
        // Must start, whatever the damage.
        agent.restart(open_bound);
        let up = t0.elapsed();
        up_again.push(up);
        let new: Vec<String> = damaged_dirs(dir.path())
            .difference(&before)
            .cloned()
            .collect();
        match new.len() {
            0 => as_is += 1,
            1 => moved += 1,
            _ => problems.push(format!("round {k}: several journals moved aside: {new:?}")),
        }
        // Rebuilt from OVS (moved aside) or replayed (opened as it is): as before, either way.
        // A journal opened as it is has its state at once, so a loss there does not heal.
        let bound = if new.is_empty() {
            Duration::from_secs(5)
        } else {
            CONVERGE_BOUND
        };
        let (restored, replayed) = restored_and_replayed(&agent, agent.starts);
        let outcome = match converge(&sb, &sock, &expects, &foreign, true, bound) {
            Ok(v) => {
                ready_again.push(t0.elapsed());
                stale += v.stale.len();
                format!("as before after {}ms", ms(t0.elapsed()))
            }
            Err(p) => {
                let n = count(&p, Kind::Lost);
                lost_pods += n;
                let report = format!(
                    "round {k} ({what}; moved aside: {new:?}; the agent restored {restored} \
                     Pods from {replayed} records): not as before within {bound:?}:\n{}",
                    show(&p)
                );
                if new.is_empty() && n > 0 && SILENT_JOURNAL_LOSS_DEFECT_OPEN {
                    silent.push(report);
                    // Known defect: give the Pods back by adding (and attaching) them again,
                    // which adopts their ports, so the next round starts from all Pods.
                    for e in &expects {
                        must_ack(&sock, &e.pod.add_line());
                        if e.want == Want::Attached {
                            must_ack(&sock, &e.pod.attach_line());
                        }
                    }
                    match converge(&sb, &sock, &expects, &foreign, true, CONVERGE_BOUND) {
                        Ok(_) => format!("SILENT LOSS of {n} Pods; re-added, as before"),
                        Err(p) => {
                            problems.push(format!(
                                "round {k}: the Pods added again after a silent loss are not \
                                 as before:\n{}",
                                show(&p)
                            ));
                            format!("SILENT LOSS of {n} Pods; NOT as before after re-adding")
                        }
                    }
                } else {
                    problems.push(report);
                    "NOT as before".into()
                }
            }
        };
        rounds.push(format!(
            "round {k}: {what}: moved aside {new:?}, restored {restored} Pods from {replayed} \
             records, up in {}ms, {outcome}",
            ms(up)
        ));
    }
    // The Pods that were never attached still work: attach them, everything becomes ready.
    for e in expects.iter_mut().filter(|e| e.want == Want::Added) {
        must_ack(&sock, &e.pod.attach_line());
        e.want = Want::Attached;
    }
    let end = final_judgement(&sb, &mut agent, &expects, &foreign);
    let touched = foreign_touched(&sb, &foreign);
    for r in &rounds {
        eprintln!("faults: journal-damage: {r}");
    }
    eprintln!(
        "faults: journal-damage: rounds={} (flips={each} truncations={each}) started={} \
         moved-aside={moved} opened-as-is={as_is} silent-loss={} pods={} pods-lost={lost_pods} \
         up-again {} ready-again {} problems={} stale-flows={stale} end: {} foreign-touched={} \
         time={:.1}s",
        2 * each,
        up_again.len(),
        silent.len(),
        expects.len(),
        p50_max(&up_again),
        p50_max(&ready_again),
        problems.len(),
        end.figures(),
        touched.len(),
        t_test.elapsed().as_secs_f64()
    );
    if !silent.is_empty() {
        eprintln!(
            "faults: journal-damage: KNOWN DEFECT (SILENT_JOURNAL_LOSS_DEFECT_OPEN):\n{}",
            silent.join("\n")
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    end.check("journal-damage, after attaching the unattached Pods");
    assert!(touched.is_empty(), "{}", touched.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 5. hostile clients

#[derive(Default, Debug)]
struct Hostile {
    idle_opened: u64,
    idle_closed_by_agent: u64,
    long_lines: u64,
    long_line_errors: u64,
    garbage_lines: u64,
    garbage_errors: u64,
    connects: u64,
    oddities: Vec<String>,
}

/// Holds `n` connections that send nothing, opening new ones as the agent closes them.
fn idle_client(sock: &Path, n: usize, stop: &AtomicBool, h: &Mutex<Hostile>) {
    let mut conns: Vec<UnixStream> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        // Drop the ones the agent closed (an error line, then the end).
        let mut closed = 0;
        conns.retain(|c| {
            let _ = c.set_nonblocking(true);
            let mut buf = [0u8; 512];
            let gone = match (&*c).read(&mut buf) {
                Ok(_) => true,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            closed += u64::from(gone);
            !gone
        });
        let mut opened = 0;
        while conns.len() < n && !stop.load(Ordering::SeqCst) {
            match UnixStream::connect(sock) {
                Ok(c) => {
                    conns.push(c);
                    opened += 1;
                }
                Err(_) => break,
            }
        }
        {
            let mut h = h.lock().unwrap();
            h.idle_opened += opened;
            h.idle_closed_by_agent += closed;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends 1 MiB lines; each must get the over-long error line, then the end.
fn long_line_client(sock: &Path, stop: &AtomicBool, h: &Mutex<Hostile>) {
    while !stop.load(Ordering::SeqCst) {
        let Ok(s) = UnixStream::connect(sock) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = s.set_read_timeout(Some(BOUND));
        let _ = s.set_write_timeout(Some(BOUND));
        let mut wr = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..16 {
                if wr.write_all(&chunk).is_err() {
                    return;
                }
            }
            let _ = wr.write_all(b"\n");
        });
        let mut rd = BufReader::new(&s);
        let mut l = String::new();
        let got = rd.read_line(&mut l);
        let _ = writer.join();
        let mut h = h.lock().unwrap();
        h.long_lines += 1;
        match got {
            Ok(_) if l.contains("longer than 65536 bytes") => h.long_line_errors += 1,
            other => h.oddities.push(format!(
                "1 MiB line: {other:?} {:?}",
                l.chars().take(200).collect::<String>()
            )),
        }
        drop(h);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends lines of garbage: NUL bytes, invalid JSON, wrong types, a NUL inside a name; each
/// must be answered with an error (or the connection closed), never acknowledged.
fn garbage_client(sock: &Path, mut rng: Rng, stop: &AtomicBool, h: &Mutex<Hostile>) {
    let fixed: Vec<Vec<u8>> = vec![
        b"\0\0\0\0".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{\"op\":1}".to_vec(),
        b"{\"op\":\"add\"}".to_vec(),
        b"{\"op\":\"del\"}".to_vec(),
        b"{\"op\":\"attach\",\"ifname\":7}".to_vec(),
        b"{\"op\":\"frobnicate\"}".to_vec(),
        b"{\"op\":\"status\"\0}".to_vec(),
        b"\xff\xfe\xfd{\"op\":\"status\"}".to_vec(),
        br#"{"op":"add","namespace":"x","name":"y","container_id":"z","ifname":"a\u0000b","ips":["10.9.9.9/16"],"mac":"02:00:00:00:00:09"}"#.to_vec(),
        br#"{"op":"add","namespace":"x","name":"y","container_id":"z","ifname":"../..","ips":["0.0.0.0/0"],"mac":"ff:ff:ff:ff:ff:ff"}"#.to_vec(),
        br#"{"op":"attach","ifname":"gw0"}"#.to_vec(),
    ];
    while !stop.load(Ordering::SeqCst) {
        let Ok(s) = UnixStream::connect(sock) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for _ in 0..8 {
            if rng.percent(50) {
                lines.push(fixed[rng.below(fixed.len() as u64) as usize].clone());
            } else {
                let n = 1 + rng.below(200) as usize;
                lines.push(
                    (0..n)
                        .map(|_| match rng.below(4) {
                            0 => 0u8,
                            _ => rng.below(256) as u8,
                        })
                        .filter(|&b| b != b'\n')
                        .collect(),
                );
            }
        }
        let mut w = &s;
        let mut sent = 0;
        for l in &lines {
            // A random line may be blank once its newlines are gone: the agent skips those.
            if l.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            if w.write_all(l).and_then(|_| w.write_all(b"\n")).is_err() {
                break;
            }
            sent += 1;
        }
        let mut rd = BufReader::new(&s);
        let (mut errors, mut odd) = (0, Vec::new());
        for _ in 0..sent {
            let mut l = String::new();
            match rd.read_line(&mut l) {
                Ok(0) => break,
                Ok(_) => match serde_json::from_str::<Value>(l.trim()) {
                    Ok(v) if v["ok"] == false => errors += 1,
                    _ => odd.push(format!("garbage answered with {l:?}")),
                },
                Err(e) => {
                    odd.push(format!("garbage: reading the answer: {e}"));
                    break;
                }
            }
        }
        let mut h = h.lock().unwrap();
        h.garbage_lines += sent;
        h.garbage_errors += errors;
        h.oddities.extend(odd);
    }
}

/// Connects and disconnects `n` times (some after a partial line).
fn connect_storm(sock: &Path, n: u64, h: &Mutex<Hostile>) {
    for i in 0..n {
        if let Ok(mut s) = UnixStream::connect(sock) {
            if i % 3 == 0 {
                let _ = s.write_all(b"{\"op\":\"sta");
            }
            h.lock().unwrap().connects += 1;
        }
    }
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn hostile_clients_never_starve_a_normal_one() {
    let sb = sandbox_for_test();
    let t_test = Instant::now();
    let mut rng = Rng::for_test("hostile-clients");
    let storms = size(1, 5);
    let min_time = size(Duration::from_secs(5), Duration::from_secs(30));
    let answer_bound = Duration::from_secs(5);
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let mut agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();

    let stop = AtomicBool::new(false);
    let hostile = Mutex::new(Hostile::default());
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut slow = Vec::new();
    let mut wrong = Vec::new();
    let mut expects: Vec<Expect> = (0..4)
        .map(|i| Expect {
            pod: Pod::new("hn", 5, i, 1),
            want: Want::Absent,
        })
        .collect();
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        scope.spawn(|| idle_client(&sock, 300, &stop, &hostile));
        scope.spawn(|| long_line_client(&sock, &stop, &hostile));
        let g = rng.fork();
        scope.spawn(|| garbage_client(&sock, g, &stop, &hostile));
        let storm = scope.spawn(|| {
            for _ in 0..storms {
                connect_storm(&sock, 1000, &hostile);
            }
        });
        // Let the idle connections fill the agent up first.
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        let mut cycle = 0u32;
        while t0.elapsed() < min_time || !storm.is_finished() {
            let s = (cycle % 4) as usize;
            let pod = &expects[s].pod;
            let status_line = r#"{"op":"status"}"#.to_string();
            // A Pod's turn adds and attaches it, the next one deletes it.
            let steps = if expects[s].want == Want::Attached {
                vec![
                    ("status", status_line, None),
                    ("del", pod.del_line(true), Some(Want::Absent)),
                ]
            } else {
                vec![
                    ("add", pod.add_line(), Some(Want::Added)),
                    ("attach", pod.attach_line(), Some(Want::Attached)),
                    ("status", status_line, None),
                ]
            };
            for (kind, line, want) in steps {
                let t = Instant::now();
                let a = ask(&sock, &line, BOUND);
                let took = t.elapsed();
                times.entry(kind).or_default().push(took);
                if took > answer_bound {
                    slow.push(format!("{kind} took {}ms", ms(took)));
                }
                match a {
                    Answer::Ok(_) => {
                        if let Some(w) = want {
                            expects[s].want = w;
                        }
                    }
                    other => wrong.push(format!("{kind}: {line} → {other:?}")),
                }
            }
            cycle += 1;
            if cycle > 10_000 || t0.elapsed() > Duration::from_secs(300) {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    let alive = agent.running();
    let end = final_judgement(&sb, &mut agent, &expects, &foreign);
    let touched = foreign_touched(&sb, &foreign);
    let h = hostile.into_inner().unwrap();
    let all: Vec<Duration> = times.values().flatten().copied().collect();
    eprintln!(
        "faults: hostile-clients: normal requests={} ({}) answer {} over-{}s={} refused={} | \
         idle opened={} closed-by-agent={} | 1MiB lines={} errored={} | garbage lines={} \
         errored={} | connects={} | oddities={} agent-up={} {} foreign-touched={} time={:.1}s",
        all.len(),
        times
            .iter()
            .map(|(k, v)| format!("{k} {}", p50_max(v)))
            .collect::<Vec<_>>()
            .join(", "),
        p50_max(&all),
        answer_bound.as_secs(),
        slow.len(),
        wrong.len(),
        h.idle_opened,
        h.idle_closed_by_agent,
        h.long_lines,
        h.long_line_errors,
        h.garbage_lines,
        h.garbage_errors,
        h.connects,
        h.oddities.len(),
        alive.is_ok(),
        end.figures(),
        touched.len(),
        t_test.elapsed().as_secs_f64()
    );
    alive.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        slow.is_empty(),
        "a normal client waited over {answer_bound:?}:\n{}",
        slow.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "a normal client's request failed:\n{}",
        wrong.join("\n")
    );
    assert!(h.oddities.is_empty(), "{}", h.oddities.join("\n"));
    assert!(
        h.idle_opened >= 300 && h.long_line_errors > 0 && h.garbage_errors > 0,
        "{h:?}"
    );
    end.check("hostile-clients: the normal client's Pods");
    assert!(touched.is_empty(), "{}", touched.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// defects found by this suite (fixed; each test failed before its fix)

/// DEFECT (fixed; found by `ovs_daemon_restarts_mid_churn_...`): a Pod deleted while its flow
/// install is in flight keeps those flows in the switch. The core sends `RemoveFlows` for a
/// removing Pod without waiting for its pending `InstallFlows` (`evaluate_port`, the
/// `p.removing` branch), and the flow programmer runs each command as its own spawned future,
/// unordered, so the install's bundle can reach the switch after the delete by cookie; the
/// journal then shows `FlowsRemoved` followed by `FlowsInstalled` for that cookie, then
/// `PodDeleted`, and nothing removes the flows again (until a later switch reconnect's sweep).
/// A later Pod with the same addresses overwrites the table-1 flows (same match), the stale
/// table-0 anti-spoofing entries of the old port stay. Plain churn, no fault, shows it.
#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn defect_flows_installed_after_their_pods_deletion_stay_in_the_switch() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let mut agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();
    // Deleted right after the attach: the flow install is often still in flight.
    let mut expects = Vec::new();
    for i in 0..50 {
        let pod = Pod::new("df", 6, i, 1);
        must_ack(&sock, &pod.add_line());
        must_ack(&sock, &pod.attach_line());
        must_ack(&sock, &pod.del_line(true));
        expects.push(Expect {
            pod,
            want: Want::Absent,
        });
    }
    assert!(agent.running().is_ok());
    let end = converge_with(
        &sb,
        &sock,
        &expects,
        &foreign,
        true,
        Duration::from_secs(10),
        false,
    );
    if let Err(p) = end {
        panic!(
            "flows of {} of {} deleted Pods stay in the switch (the install raced the deletion; \
             the journal, kept below, shows FlowsRemoved then FlowsInstalled for each such \
             cookie):\n{}",
            count(&p, Kind::Stale),
            expects.len(),
            show(&p)
        );
    }
}

/// DEFECT (fixed; found by `a_damaged_journal_never_keeps_the_node_down`): after a crash (no
/// clean close, so `podport-journal.hwm` is absent or old), one flipped byte in the middle of
/// sled's log can make sled open the log up to that point, without an error. The agent then
/// replays that prefix as the whole journal: it neither moves the journal aside nor rebuilds
/// from OVS, and starts without the Pods acknowledged later. Their ports and flows stay in OVS
/// (podport's, untracked), a `del` of them succeeds without removing anything, and they are
/// never ready in `status`. Flips at a few places in the used part of `db` show it.
#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn defect_a_damaged_journal_that_sled_opens_as_a_shorter_log_loses_pods_silently() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let mut agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();
    let expects = ready_pods(&sb, &sock, &foreign, "sl", 7, 8);
    for frac in [0.3, 0.5, 0.7, 0.9] {
        agent.kill9();
        let db = agent.journal.join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let used = bytes.iter().rposition(|&b| b != 0).map_or(1, |p| p + 1);
        let at = (used as f64 * frac) as usize;
        bytes[at] ^= 0xff;
        std::fs::write(&db, &bytes).unwrap();
        let before = damaged_dirs(dir.path());
        agent.restart(Duration::from_secs(90));
        let moved: Vec<String> = damaged_dirs(dir.path())
            .difference(&before)
            .cloned()
            .collect();
        let (restored, replayed) = restored_and_replayed(&agent, agent.starts);
        match converge_with(
            &sb,
            &sock,
            &expects,
            &foreign,
            true,
            Duration::from_secs(10),
            true,
        ) {
            Ok(_) => eprintln!(
                "faults: defect-silent-loss: flip of db[{at}] (used {used}): moved aside \
                 {moved:?}, restored {restored} Pods from {replayed} records: all Pods as before"
            ),
            Err(p) => panic!(
                "flip of db[{at}] (used {used} bytes): the agent opened the journal as it is \
                 (moved aside: {moved:?}), restored {restored} of {} Pods from {replayed} \
                 records, and does not rebuild the others from OVS:\n{}",
                expects.len(),
                show(&p)
            ),
        }
    }
}

/// DEFECT (fixed; found while writing this suite): an add acknowledged while the same
/// container's Pod is still being removed is dropped. CNI allows an ADD after a DEL of the
/// same container. `Core::decide` (`Input::AddPod`) returns without journaling anything when
/// the ifname is tracked, also when that Pod is `removing`; `check_new_pod` lets it through (same
/// container) and the handler acknowledges it (`journal.sync()`); the deletion then completes
/// (`PodDeleted`) and the Pod, its port and its flows are gone although the add was the last
/// acknowledged request. The journal shows `DeleteRequested`, then no `PodAdded`, then
/// `PodDeleted`.
#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn defect_an_add_right_after_a_del_of_the_same_container_is_acknowledged_and_dropped() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let foreign = Foreign::setup(&sb);
    let agent = Agent::start(&sb, dir.path(), BOUND);
    let sock = agent.sock.clone();
    let mut expects = Vec::new();
    for i in 0..20 {
        let pod = Pod::new("ad", 10, i, 1);
        must_ack(&sock, &pod.add_line());
        must_ack(&sock, &pod.attach_line());
        must_ack(&sock, &pod.del_line(true));
        // The same container's ADD again, at once: acknowledged, so it must hold.
        must_ack(&sock, &pod.add_line());
        expects.push(Expect {
            pod,
            want: Want::Added,
        });
    }
    let end = converge_with(
        &sb,
        &sock,
        &expects,
        &foreign,
        true,
        Duration::from_secs(10),
        STALE_FLOWS_DEFECT_OPEN,
    );
    if let Err(p) = end {
        panic!(
            "{} of {} acknowledged adds (each right after a del of the same container) are \
             lost:\n{}",
            p.iter()
                .filter(|p| p.kind == Kind::Lost)
                .map(|p| p.what.split(':').next().unwrap_or(""))
                .collect::<BTreeSet<_>>()
                .len(),
            expects.len(),
            show(&p)
        );
    }
}
