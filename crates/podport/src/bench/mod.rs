//! `podport bench`: the end-to-end benchmark, on one private OVS and in one run.
//!
//! 1. Stall survival: Pods attached while ovs-vswitchd is frozen, `portstatus` against the
//!    legacy `ovsdb-wait` (5 s), at the same time on two bridges.
//! 2. Reaction: from the PortStatus that makes a port usable (stamped by a passive OpenFlow
//!    monitor on the same bridge) to the engine's Ready (emitted when the barrier confirming
//!    the Pod's flows returns), over a burst; the legacy engine's reaction to the same
//!    PortStatus is the baseline.
//! 3. Bulk: many Pods, each add and each attach its own OVSDB transaction: time until all are
//!    ready against the time OVS took to announce the ports (same monitor, same run).
//! 4. Cost: CPU time of this process per Pod over the bulk run, and the memory an agent needs
//!    for 10 000 ports rebuilt from a journal (measured in a fresh child process).
//!
//! The table replaces the section between the bench markers of `--out`, and is printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_engine::core::{Core, CoreConfig};
use podport_journal::{
    now_micros, Event, Journal, JournalConfig, Outcome, PodRef, PortDesc, PortReason,
};
use podport_openflow::{ClientEvent, ClientOptions, OfClient, PortReason as OfReason, PortState};
use podport_ovs_sandbox::Sandbox;
use serde_json::json;

use crate::demo::{
    add_bridge, ensure_ovs, fmt_ms, ms, openflow_endpoint, percentiles, run_scenario,
    start_sandbox, stop_sandbox, Pct, Progress, RunPlan, Scenario, ScenarioData, StrategyKind,
    INTERRUPTED, PENDING_TYPE,
};

pub(crate) const START_MARKER: &str = "<!-- bench:e2e:start -->";
pub(crate) const END_MARKER: &str = "<!-- bench:e2e:end -->";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Markdown file whose marked section (between `<!-- bench:e2e:start -->` and
    /// `<!-- bench:e2e:end -->`) gets the table; created when missing, the rest kept.
    #[arg(long, value_name = "FILE", default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Everything scaled down (20 Pods / 1 s stall, 50, 100, 1000 ports): a smoke run.
    #[arg(long)]
    quick: bool,
    /// Internal: open the journal in DIR, rebuild the engine state, print RSS and time as
    /// JSON (run by the bench in a fresh process).
    #[arg(long, value_name = "DIR", hide = true)]
    restore_probe: Option<PathBuf>,
}

/// How big each part is.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    stall_pods: u32,
    stall: Duration,
    reaction_pods: u32,
    bulk_pods: u32,
    memory_ports: u32,
}

const FULL: Sizes = Sizes {
    stall_pods: 100,
    stall: Duration::from_secs(8),
    reaction_pods: 500,
    bulk_pods: 1000,
    memory_ports: 10_000,
};

const QUICK: Sizes = Sizes {
    stall_pods: 20,
    stall: Duration::from_secs(1),
    reaction_pods: 50,
    bulk_pods: 100,
    memory_ports: 1000,
};

pub async fn run(args: Args) -> Result<()> {
    if let Some(dir) = &args.restore_probe {
        return restore_probe(dir);
    }
    ensure_ovs()?;
    let sizes = if args.quick { QUICK } else { FULL };
    if cfg!(debug_assertions) && !args.quick {
        eprintln!(
            "warning: this is a debug build; record the figures of a release build \
             (cargo run --release -p podport -- bench)"
        );
    }
    let started = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("podport-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let mut progress = Progress::new(Duration::from_secs(2));
    progress.say("starting a private Open vSwitch (userspace, dummy datapath)");
    let sb = start_sandbox().await?;
    let measured = tokio::select! {
        m = measure(&sb, sizes, work.path(), &mut progress) => m,
        // Dropping the parts thaws the switch and stops the engines and the monitor; the
        // sandbox is stopped below.
        _ = tokio::signal::ctrl_c() => Err(anyhow!(INTERRUPTED)),
    };
    if measured
        .as_ref()
        .is_err_and(|e| e.to_string() != INTERRUPTED)
    {
        eprintln!("OVS log tail:\n{}", sb.log_tail(15));
    }
    let ovs_version = ovs_version(&sb);
    stop_sandbox(sb).await;
    let (stall, reaction, bulk) = measured?;
    progress.say(&format!(
        "4. memory: journal with {} ports, rebuilt in a fresh process",
        sizes.memory_ports
    ));
    let memory = measure_memory(&work.path().join("memory"), sizes.memory_ports)?;
    let md = render(
        &args,
        sizes,
        &Machine::probe(ovs_version),
        &stall,
        &reaction,
        &bulk,
        &memory,
    );
    println!("{md}");
    write_section(&args.out, &md)?;
    eprintln!(
        "wrote the bench section of {} ({:.0} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Parts 1 to 3 on one sandbox.
async fn measure(
    sb: &Sandbox,
    sizes: Sizes,
    work: &Path,
    progress: &mut Progress,
) -> Result<(StallResult, ReactionResult, BulkResult)> {
    // 1. Stall survival: both engines at once, one bridge each.
    progress.say(&format!(
        "1. stall survival: {} Pods per strategy, ovs-vswitchd frozen {} s",
        sizes.stall_pods,
        sizes.stall.as_secs_f64()
    ));
    let plans = [
        plan(
            StrategyKind::PortStatus,
            "br-int",
            work,
            "stall-ps",
            "st-",
            20,
        ),
        plan(
            StrategyKind::OvsdbWait,
            "br-legacy",
            work,
            "stall-ow",
            "sl-",
            21,
        ),
    ];
    tokio::task::block_in_place(|| add_bridge(sb, "br-legacy"))?;
    let sc = Scenario {
        pods: sizes.stall_pods,
        stall: sizes.stall,
        patience: Duration::from_secs(60),
        not_ready_every: Duration::from_secs(1),
    };
    let data = run_scenario(sb, &sc, &plans, progress).await?;
    let stall = StallResult::from(&data)?;
    // Every part gets fresh bridges: ports left on others would slow ovs-vswitchd down.
    del_bridges(sb, &["br-int", "br-legacy"])?;

    // 2. Reaction, then the legacy engine's reaction to the same kind of burst.
    progress.say(&format!(
        "2. reaction: burst of {} Pods, passive OpenFlow monitor on the bridge",
        sizes.reaction_pods
    ));
    let ps = burst(
        sb,
        plan(
            StrategyKind::PortStatus,
            "br-react",
            work,
            "react-ps",
            "r-",
            22,
        ),
        sizes.reaction_pods,
        progress,
    )
    .await?;
    progress.say("2. baseline: the same burst with the legacy engine (ovsdb-wait) on a new bridge");
    let legacy = burst(
        sb,
        plan(
            StrategyKind::OvsdbWait,
            "br-react-ow",
            work,
            "react-ow",
            "rl-",
            23,
        ),
        sizes.reaction_pods,
        progress,
    )
    .await?;
    let reaction = ReactionResult {
        pods: sizes.reaction_pods,
        podport: ps.reaction_ms(),
        legacy: legacy.reaction_ms(),
        podport_ends: ps.ends(),
        legacy_ends: legacy.ends(),
        podport_ready: ps.data.runs[0].ready,
        legacy_ready: legacy.data.runs[0].ready,
    };

    // 3. Bulk.
    progress.say(&format!(
        "3. bulk: {} Pods, each add and each attach its own OVSDB transaction",
        sizes.bulk_pods
    ));
    let b = burst(
        sb,
        plan(StrategyKind::PortStatus, "br-bulk", work, "bulk", "b-", 24),
        sizes.bulk_pods,
        progress,
    )
    .await?;
    let bulk = BulkResult::from(&b)?;
    Ok((stall, reaction, bulk))
}

fn plan(
    kind: StrategyKind,
    bridge: &str,
    work: &Path,
    journal: &str,
    prefix: &str,
    net: u8,
) -> RunPlan {
    RunPlan {
        kind,
        bridge: bridge.into(),
        journal_dir: work.join(journal),
        prefix: prefix.into(),
        net,
    }
}

fn del_bridges(sb: &Sandbox, bridges: &[&str]) -> Result<()> {
    for b in bridges {
        tokio::task::block_in_place(|| sb.vsctl(&["--if-exists", "del-br", b]))
            .map_err(|e| anyhow!("deleting bridge {b}: {e}"))?;
    }
    Ok(())
}

/// A burst of Pods on a new bridge watched by a passive monitor.
struct Burst {
    data: ScenarioData,
    /// When the monitor saw each port LIVE for the first time.
    live_at: HashMap<String, Instant>,
}

impl Burst {
    /// Per Pod: its Ready minus the PortStatus that made it LIVE, in ms (negative if the
    /// engine's event reached us first).
    fn reaction_ms(&self) -> Vec<f64> {
        self.reactions().into_iter().map(|(_, r)| r).collect()
    }

    /// (LIVE, reaction in ms) per Pod, in the order the ports went LIVE.
    fn reactions(&self) -> Vec<(Instant, f64)> {
        let run = &self.data.runs[0];
        let mut v: Vec<(Instant, f64)> = run
            .names
            .iter()
            .zip(&run.ready_at)
            .filter_map(|(n, r)| {
                let (r, l) = (r.as_ref()?, self.live_at.get(n)?);
                Some((*l, if r >= l { ms(*r - *l) } else { -ms(*l - *r) }))
            })
            .collect();
        v.sort_by_key(|(l, _)| *l);
        v
    }

    /// The reaction of the first and of the last port to go LIVE, and how long the switch
    /// took to announce them all.
    fn ends(&self) -> Option<Ends> {
        let v = self.reactions();
        let (first, last) = (v.first()?, v.last()?);
        Some(Ends {
            first_ms: first.1,
            last_ms: last.1,
            spread_ms: ms(last.0.saturating_duration_since(first.0)),
        })
    }
}

async fn burst(sb: &Sandbox, plan: RunPlan, pods: u32, progress: &mut Progress) -> Result<Burst> {
    let bridge = plan.bridge.clone();
    tokio::task::block_in_place(|| add_bridge(sb, &bridge))?;
    let endpoint = openflow_endpoint(sb, &bridge);
    let monitor = tokio::task::block_in_place(|| Monitor::start(&endpoint))?;
    let sc = Scenario {
        pods,
        stall: Duration::ZERO,
        patience: Duration::from_secs(120),
        // The default: nothing should be slow here, and ticks would only add noise.
        not_ready_every: Duration::from_secs(30),
    };
    let data = run_scenario(sb, &sc, std::slice::from_ref(&plan), progress).await;
    let live_at = monitor.stop();
    del_bridges(sb, &[&bridge])?;
    let data = data?;
    let run = &data.runs[0];
    if !run.all_ready() {
        bail!(
            "{} of {pods} Pods of the {} burst on {bridge} were not ready",
            pods as usize - run.ready,
            plan.kind.name()
        );
    }
    Ok(Burst { data, live_at })
}

/// A second OpenFlow connection to a bridge that only listens: OVS sends PortStatus to every
/// connection, so this stamps each port's first LIVE independently of the engine. It runs on
/// its own thread and runtime, so the engine's and the driver's work do not delay the stamps.
struct Monitor {
    live: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Connects; returns once the switch's handshake is done.
    fn start(endpoint: &str) -> Result<Monitor> {
        let endpoint: podport_openflow::Endpoint = endpoint
            .parse()
            .map_err(|e| anyhow!("monitor endpoint {endpoint}: {e}"))?;
        let live: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("monitor runtime")?;
        let l = live.clone();
        let thread = std::thread::Builder::new()
            .name("podport-monitor".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (_client, mut events) = OfClient::start(endpoint, ClientOptions::default());
                    loop {
                        tokio::select! {
                            ev = events.recv() => match ev {
                                Some(ClientEvent::Connected { .. }) => {
                                    let _ = ready_tx.send(());
                                }
                                Some(ClientEvent::PortStatus(ps)) => {
                                    let now = Instant::now();
                                    let usable = matches!(ps.reason, OfReason::Add | OfReason::Modify)
                                        && ps.port.state.contains(PortState::LIVE);
                                    if usable {
                                        let mut m = l.lock().unwrap_or_else(|p| p.into_inner());
                                        m.entry(ps.port.name).or_insert(now);
                                    }
                                }
                                Some(ClientEvent::Disconnected { .. } | ClientEvent::PortDesc(_)) => {}
                                None => break,
                            },
                            _ = &mut stop_rx => break,
                        }
                    }
                });
            })
            .context("starting the monitor thread")?;
        let mut m = Monitor {
            live,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            m.shutdown();
            bail!("the passive OpenFlow monitor did not connect within 20 s");
        }
        Ok(m)
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops and returns each port's first LIVE.
    fn stop(mut self) -> HashMap<String, Instant> {
        self.shutdown();
        std::mem::take(&mut *self.live.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct RunSummary {
    pods: usize,
    ready: usize,
    failed_pods: usize,
    after_thaw: Option<Pct>,
}

struct StallResult {
    stall: Duration,
    podport: RunSummary,
    legacy: RunSummary,
    first_error: Option<String>,
}

impl StallResult {
    fn from(data: &ScenarioData) -> Result<StallResult> {
        let thaw = data
            .thawed_at
            .ok_or_else(|| anyhow!("the stall part never thawed"))?;
        let stall = data
            .frozen_at
            .map(|f| thaw.saturating_duration_since(f))
            .unwrap_or_default();
        let sum = |i: usize| RunSummary {
            pods: data.runs[i].names.len(),
            ready: data.runs[i].ready,
            failed_pods: data.runs[i].failed_pods(),
            after_thaw: percentiles(data.runs[i].ready_after_ms(thaw)),
        };
        Ok(StallResult {
            stall,
            podport: sum(0),
            legacy: sum(1),
            first_error: data.runs[1].first_error.clone(),
        })
    }
}

/// See [`Burst::ends`].
#[derive(Clone, Copy, Debug)]
struct Ends {
    first_ms: f64,
    last_ms: f64,
    spread_ms: f64,
}

struct ReactionResult {
    pods: u32,
    podport: Vec<f64>,
    legacy: Vec<f64>,
    podport_ends: Option<Ends>,
    legacy_ends: Option<Ends>,
    podport_ready: usize,
    legacy_ready: usize,
}

struct BulkResult {
    pods: usize,
    /// First attach to the last Ready.
    engine: Duration,
    /// First attach to the last LIVE the monitor saw.
    ovs: Duration,
    /// First add to the last Ready.
    whole: Duration,
    cpu: CpuSample,
}

impl BulkResult {
    fn from(b: &Burst) -> Result<BulkResult> {
        let run = &b.data.runs[0];
        let last_ready = run
            .last_ready()
            .ok_or_else(|| anyhow!("no Pod of the bulk run was ready"))?;
        let last_live = run
            .names
            .iter()
            .filter_map(|n| b.live_at.get(n))
            .max()
            .copied()
            .ok_or_else(|| anyhow!("the monitor saw no port of the bulk run LIVE"))?;
        let missing = run
            .names
            .iter()
            .filter(|n| !b.live_at.contains_key(*n))
            .count();
        if missing > 0 {
            bail!("the monitor missed the LIVE PortStatus of {missing} bulk ports");
        }
        let end = b
            .data
            .cpu_at_ready
            .as_ref()
            .ok_or_else(|| anyhow!("no CPU sample at the end of the bulk run"))?;
        Ok(BulkResult {
            pods: run.names.len(),
            engine: last_ready.saturating_duration_since(b.data.attach_started),
            ovs: last_live.saturating_duration_since(b.data.attach_started),
            whole: last_ready.saturating_duration_since(b.data.adds_started),
            cpu: end.since(&b.data.cpu_at_start),
        })
    }
}

/// CPU time of this process, and of each of its threads by name (Linux).
#[derive(Clone, Debug, Default)]
pub(crate) struct CpuSample {
    pub process: Option<Duration>,
    pub threads: HashMap<String, Duration>,
}

impl CpuSample {
    /// `self - earlier`, per thread name (threads that exited in between are only in the
    /// process total).
    fn since(&self, earlier: &CpuSample) -> CpuSample {
        let process = match (self.process, earlier.process) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        let threads = self
            .threads
            .iter()
            .map(|(k, v)| {
                let before = earlier.threads.get(k).copied().unwrap_or_default();
                (k.clone(), v.saturating_sub(before))
            })
            .collect();
        CpuSample { process, threads }
    }

    fn thread(&self, name: &str) -> Option<Duration> {
        self.threads.get(name).copied()
    }
}

/// The process's CPU time (user + system, `getrusage(RUSAGE_SELF)`) and each thread's from
/// `/proc/self/task` (summed by thread name).
pub(crate) fn cpu_sample() -> CpuSample {
    CpuSample {
        process: process_cpu(),
        threads: thread_cpu(),
    }
}

#[cfg(unix)]
fn process_cpu() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    Some(d(u.user_time()) + d(u.system_time()))
}

#[cfg(not(unix))]
fn process_cpu() -> Option<Duration> {
    None
}

#[cfg(target_os = "linux")]
fn thread_cpu() -> HashMap<String, Duration> {
    // utime and stime are in clock ticks of USER_HZ, which is 100 on Linux.
    const TICK: Duration = Duration::from_millis(10);
    let mut out: HashMap<String, Duration> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid ..."; comm may hold spaces and parentheses, so split at the
        // last ')'. utime and stime are fields 14 and 15, i.e. 11 and 12 after the comm.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        // Pools name their threads `name-N` (sled-io-3): one entry per pool.
        let comm = stat[open + 1..close]
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('-')
            .to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u32>().ok())
                .unwrap_or(0)
        };
        *out.entry(comm).or_default() += TICK * (ticks(11) + ticks(12));
    }
    out
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> HashMap<String, Duration> {
    HashMap::new()
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
fn proc_status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Writes a journal of `ports` ready ports: per port PodAdded, PodPortCreated,
/// HostInterfaceCreated, InterfaceTypeChanged, PortStatus (ADD, LIVE), FlowsInstalled and
/// PodReady, with realistic lengths
/// (64-hex container ids, UUIDs, 15-byte interface names).
fn write_journal(dir: &Path, ports: u32) -> Result<()> {
    let journal = Journal::open(dir, JournalConfig::default())?;
    let mut ts = now_micros().saturating_sub(u64::from(ports) * 5_000);
    let mut last = None;
    for i in 0..ports {
        let ifname = format!("antrea-{i:08}");
        let mac = [0x02, 0x42, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let port_no = i + 1;
        let cookie = podport_journal::POD_COOKIE_BASE + 1 + u64::from(i);
        let events = [
            Event::PodAdded {
                pod: PodRef {
                    namespace: "bench".into(),
                    name: format!("app-{i}-7c9d8f6b5d-x2x9k"),
                },
                container_id: format!("{:064x}", u64::from(i) * 0x9e37_79b9),
                ifname: ifname.clone(),
                ips: vec![format!(
                    "10.{}.{}.{}/16",
                    100 + i / 62_500,
                    (i / 250) % 250,
                    i % 250 + 1
                )],
                mac: mac
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
                cookie,
            },
            Event::PodPortCreated {
                ifname: ifname.clone(),
                port_uuid: format!("6f1c2d3e-0000-4000-8000-{i:012x}"),
                interface_uuid: format!("7a2b3c4d-0000-4000-8000-{i:012x}"),
            },
            Event::HostInterfaceCreated {
                ifname: ifname.clone(),
            },
            Event::InterfaceTypeChanged {
                ifname: ifname.clone(),
                from: PENDING_TYPE.into(),
                to: "internal".into(),
                outcome: Outcome::Ok,
            },
            Event::PortStatusReceived {
                reason: PortReason::Add,
                port: PortDesc {
                    port_no,
                    name: ifname.clone(),
                    state: PortState::LIVE.bits(),
                    config: 0,
                    hw_addr: mac,
                },
            },
            Event::FlowsInstalled {
                ifname: ifname.clone(),
                port_no,
                cookie,
                count: 5,
            },
            Event::PodReady {
                ifname,
                port_no,
                waited_ms: 12,
            },
        ];
        for e in events {
            ts += 1_000;
            last = Some(journal.append_at(ts, e));
        }
    }
    if let Some(t) = last {
        t.wait()?;
    }
    journal.close()?;
    Ok(())
}

/// What the restore probe printed.
#[derive(serde::Deserialize, Debug)]
struct MemoryResult {
    ports: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    hwm_kib: u64,
    open_ms: f64,
    restore_ms: f64,
}

fn measure_memory(dir: &Path, ports: u32) -> Result<MemoryResult> {
    tokio::task::block_in_place(|| write_journal(dir, ports))
        .with_context(|| format!("writing a journal of {ports} ports"))?;
    let exe = std::env::current_exe().context("locating the podport binary")?;
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(&exe)
            .arg("bench")
            .arg("--restore-probe")
            .arg(dir)
            .env("RUST_LOG", "error")
            .stdin(std::process::Stdio::null())
            .output()
    })
    .with_context(|| format!("running {} bench --restore-probe", exe.display()))?;
    if !out.status.success() {
        bail!(
            "the restore probe failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("the restore probe printed no result: {text}"))?;
    let r: MemoryResult =
        serde_json::from_str(line).with_context(|| format!("restore probe output {line:?}"))?;
    if r.ports != ports as usize {
        bail!("the restore probe rebuilt {} ports, not {ports}", r.ports);
    }
    Ok(r)
}

/// The child side: what an agent starting on this journal pays, in a process that did
/// nothing else before.
fn restore_probe(dir: &Path) -> Result<()> {
    let before = proc_status_kib("VmRSS").ok_or_else(|| anyhow!("no VmRSS in /proc"))?;
    let t0 = Instant::now();
    let journal = Journal::open(dir, JournalConfig::default())?;
    let opened = t0.elapsed();
    let t1 = Instant::now();
    let mut core = Core::restore(
        CoreConfig::default(),
        journal.recovered().state.clone(),
        Instant::now(),
        now_micros(),
    );
    let commands = core.start("bench", "", Instant::now());
    let restored = t1.elapsed();
    let after = proc_status_kib("VmRSS").ok_or_else(|| anyhow!("no VmRSS in /proc"))?;
    let hwm = proc_status_kib("VmHWM").unwrap_or(after);
    println!(
        "{}",
        json!({
            "ports": core.ifnames().count(),
            "rss_before_kib": before,
            "rss_after_kib": after,
            "hwm_kib": hwm,
            "open_ms": ms(opened),
            "restore_ms": ms(restored),
        })
    );
    drop((core, commands));
    journal.close()?;
    Ok(())
}

/// Where the figures were taken.
struct Machine {
    cores: usize,
    cpu: String,
    memory: String,
    ovs: String,
    date: String,
    profile: &'static str,
}

impl Machine {
    fn probe(ovs: String) -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let kib: f64 = s
                    .lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(format!("{:.0} GiB", kib / (1024.0 * 1024.0)))
            })
            .unwrap_or_else(|| "unknown memory".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory,
            ovs,
            date: today(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

fn ovs_version(sb: &Sandbox) -> String {
    std::process::Command::new(&sb.binaries().ovs_vswitchd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "Open vSwitch (version unknown)".into())
}

/// Today's date (UTC), `YYYY-MM-DD`, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn pct_text(p: &Option<Pct>) -> String {
    match p {
        Some(p) => format!("p50 {}, p99 {}", fmt_ms(p.p50), fmt_ms(p.p99)),
        None => "no Pod ready".into(),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.1}×", a / b)
    } else {
        "-".into()
    }
}

/// An already computed ratio.
fn ratio_of(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.1}×")
    } else {
        "-".into()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The marked section: heading, command, machine, table, and what each row includes.
fn render(
    args: &Args,
    sizes: Sizes,
    m: &Machine,
    stall: &StallResult,
    reaction: &ReactionResult,
    bulk: &BulkResult,
    memory: &MemoryResult,
) -> String {
    let mut rows = Vec::new();
    let stall_s = stall.stall.as_secs_f64();
    let run_text = |r: &RunSummary| {
        format!(
            "{}/{} ready, {} Pods with a failed attach; after the thaw {}",
            r.ready,
            r.pods,
            r.failed_pods,
            pct_text(&r.after_thaw)
        )
    };
    let p99 = |r: &RunSummary| r.after_thaw.map_or(f64::NAN, |p| p.p99);
    rows.push(format!(
        "| 1 | stall survival: {} Pods attached while ovs-vswitchd is frozen {stall_s:.1} s | {} | \
         `ovsdb-wait` (5 s wait, retried every 5 s), same run and Pods on its own bridge: {} | \
         legacy ÷ podport, p99 after the thaw: {} |",
        sizes.stall_pods,
        run_text(&stall.podport),
        run_text(&stall.legacy),
        ratio(p99(&stall.legacy), p99(&stall.podport)),
    ));
    let rp = percentiles(reaction.podport.clone());
    let rl = percentiles(reaction.legacy.clone());
    let (p50_ratio, p99_ratio) = match (rp, rl) {
        (Some(p), Some(l)) => (l.p50 / p.p50, l.p99 / p.p99),
        _ => (f64::NAN, f64::NAN),
    };
    rows.push(format!(
        "| 2 | reaction: PortStatus LIVE (passive monitor) → Ready (barrier confirmed the flows), \
         burst of {} Pods | {} ({} Pods) | `ovsdb-wait` engine, same burst on a new bridge, from \
         the same kind of PortStatus: {} ({} Pods) | legacy ÷ podport: p50 {}, p99 {} |",
        reaction.pods,
        pct_text(&rp),
        reaction.podport_ready,
        pct_text(&rl),
        reaction.legacy_ready,
        ratio_of(p50_ratio),
        ratio_of(p99_ratio),
    ));
    rows.push(format!(
        "| 3 | bulk: {} Pods, each add and each attach its own OVSDB transaction: first attach → \
         all ready | {} (first add → all ready: {}) | OVS announced all {} ports LIVE (passive \
         monitor, first attach → last MODIFY LIVE): {} | overhead factor (engine ÷ OVS): {} |",
        bulk.pods,
        fmt_ms(ms(bulk.engine)),
        fmt_ms(ms(bulk.whole)),
        bulk.pods,
        fmt_ms(ms(bulk.ovs)),
        ratio(ms(bulk.engine), ms(bulk.ovs)),
    ));
    let per_pod = |d: Option<Duration>| {
        d.map_or("n/a".to_string(), |d| {
            format!("{:.2} ms", ms(d) / bulk.pods as f64)
        })
    };
    let engine_cpu = bulk.cpu.thread("podport-engine");
    // The journal is its writer thread and sled's IO pool.
    let journal_cpu = bulk
        .cpu
        .threads
        .iter()
        .filter(|(k, _)| k.as_str() == "podport-journal" || k.starts_with("sled"))
        .map(|(_, v)| *v)
        .reduce(|a, b| a + b);
    let rest_cpu = bulk.cpu.process.map(|p| {
        p.saturating_sub(engine_cpu.unwrap_or_default() + journal_cpu.unwrap_or_default())
    });
    let delta = memory.rss_after_kib.saturating_sub(memory.rss_before_kib);
    rows.push(format!(
        "| 4 | cost: CPU per Pod over the bulk run; memory for {} ports rebuilt from a journal | \
         {} CPU per Pod (engine thread {}, journal {}, the rest {}); restore: +{:.1} MiB RSS \
         ({:.1} KiB a port), journal open {} + state rebuild {} | process RSS before the \
         restore: {:.1} MiB (peak after: {:.1} MiB) | - |",
        memory.ports,
        per_pod(bulk.cpu.process),
        per_pod(engine_cpu),
        per_pod(journal_cpu),
        per_pod(rest_cpu),
        mib(delta),
        delta as f64 / memory.ports.max(1) as f64,
        fmt_ms(memory.open_ms),
        fmt_ms(memory.restore_ms),
        mib(memory.rss_before_kib),
        mib(memory.hwm_kib),
    ));
    let mut threads: Vec<(&String, &Duration)> = bulk
        .cpu
        .threads
        .iter()
        .filter(|(_, v)| !v.is_zero())
        .collect();
    threads.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let threads = threads
        .iter()
        .map(|(k, v)| format!("{k} {}", fmt_ms(ms(**v))))
        .collect::<Vec<_>>()
        .join(", ");
    let command = if args.quick {
        "cargo run --release -p podport -- bench --quick"
    } else {
        "cargo run --release -p podport -- bench"
    };
    let legacy_error = stall
        .first_error
        .as_deref()
        .map(|e| format!(" Its first failure read: `{}`.", e.replace('|', "\\|")))
        .unwrap_or_default();
    let reaction_reading = match (reaction.podport_ends, reaction.legacy_ends) {
        (Some(p), Some(l)) => format!(
            "The switch announced the burst's ports over {} ({} for the legacy run), in groups, \
             one reconfiguration each, and ovs-vswitchd handles flows and barriers between \
             those: so a port's reaction is mostly the switch's time on the ports that follow. \
             The first port to go LIVE was ready {} after it ({} legacy), the last one {} ({} \
             legacy). Without a stall the legacy wait returns as soon as ovs-vswitchd writes \
             the `ofport`, in the same reconfiguration that sends the PortStatus, so both react \
             about as fast and which one comes out ahead varies from run to run; the legacy \
             strategy's cost is row 1's failures, not its reaction.",
            fmt_ms(p.spread_ms),
            fmt_ms(l.spread_ms),
            fmt_ms(p.first_ms),
            fmt_ms(l.first_ms),
            fmt_ms(p.last_ms),
            fmt_ms(l.last_ms),
        ),
        _ => String::new(),
    };
    format!(
        "{START_MARKER}\n\
## End to end (`podport bench`)\n\
\n\
Command: `{command}` (writes this section; `--quick` scales every part down). \
Machine: {cores} cores ({cpu}), {memory}, {ovs} (private userspace daemons, dummy datapath), \
{profile} build, {date}.\n\
\n\
Everything runs in one process against one sandbox, in one run, each part on fresh bridges (one \
per engine). Every Pod port is created with a type OVS cannot open (`{PENDING_TYPE}`) and the \
attach switches it to `internal`: the Windows node's order, where the vNIC appears after the \
port. Each add and each attach is its own OVSDB transaction. Times are taken outside the \
engine: the Ready event when it reaches the bench, PortStatus by a second, passive OpenFlow \
connection to the bridge.\n\
\n\
| # | measure | podport (`portstatus`) | baseline (same run) | ratio |\n\
|---|---|---|---|---|\n\
{rows}\n\
\n\
- Row 1: ovs-vswitchd is frozen (SIGSTOP) right before the attaches, so every port is allocated \
only after the thaw; both engines attach their Pods at the same moment. Times are from the thaw \
to each Pod's Ready. A legacy attach whose 5 s wait timed out is retried 5 s later, so with a \
stall between 5 and 10 s its Pods are ready at about 10 s after the attach whatever the switch \
does.{legacy_error}\n\
- Row 2: per Pod, the engine's Ready minus the passive monitor's stamp of the port's first \
PortStatus with LIVE. For `portstatus` that PortStatus is what the engine reacts to; the \
legacy engine reacts to OVSDB showing the `ofport`. {reaction_reading}\n\
- Row 3: from the first attach; OVS's own time is the monitor's last MODIFY LIVE of those \
ports. The ratio is the engine's overhead factor over the switch.\n\
- Row 4: CPU is `getrusage(RUSAGE_SELF)` (user + system) from the first add to the last Ready \
of row 3, divided by the Pods: the whole agent process, that is the engine thread (core, actors, \
OVSDB and OpenFlow clients), the journal (its writer thread and sled's IO threads), and also \
this bench's own driver, event threads and passive monitor (\"the rest\"); the OVS daemons are \
other processes and not included. Per thread (from `/proc/self/task`, 10 ms ticks) over the \
same window: {threads}. Memory: a journal of {ports} ready ports (PodAdded, PodPortCreated, \
HostInterfaceCreated, InterfaceTypeChanged, PortStatus, FlowsInstalled, PodReady each) is \
opened and `Core::restore`d and started in a fresh `podport` process; the row is its VmRSS \
after minus before, which includes sled's cache of the journal.\n\
{END_MARKER}",
        rows = rows.join("\n"),
        cores = m.cores,
        cpu = m.cpu,
        memory = m.memory,
        ovs = m.ovs,
        profile = m.profile,
        date = m.date,
        ports = memory.ports,
        threads = if threads.is_empty() {
            "n/a".into()
        } else {
            threads
        },
    )
}

/// Replaces the marked section of `path` with `section` (which carries the markers), or
/// appends it when the file has none, or creates the file. Written to a temporary file and
/// renamed, so an interrupted run never leaves half a file.
fn write_section(path: &Path, section: &str) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = splice(old.as_deref(), section).with_context(|| format!("{}", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, new.as_bytes())?;
    tmp.persist(path)
        .map_err(|e| anyhow!("writing {}: {}", path.display(), e.error))?;
    Ok(())
}

/// The file's text with `section` in place of its marked section.
fn splice(old: Option<&str>, section: &str) -> Result<String> {
    let Some(old) = old else {
        return Ok(format!("{section}\n"));
    };
    match (old.find(START_MARKER), old.find(END_MARKER)) {
        (Some(a), Some(b)) if b > a => Ok(format!(
            "{}{section}{}",
            &old[..a],
            &old[b + END_MARKER.len()..]
        )),
        (None, None) => {
            let sep = if old.ends_with('\n') { "\n" } else { "\n\n" };
            Ok(format!("{old}{sep}{section}\n"))
        }
        _ => bail!(
            "has only one of the bench markers, or them in the wrong order; fix it by hand \
             ({START_MARKER} ... {END_MARKER})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_replaces_only_the_marked_part() {
        let section = format!("{START_MARKER}\nnew\n{END_MARKER}");
        let old = format!("# B\n\nintro\n\n{START_MARKER}\nold\n{END_MARKER}\n\n## After\n");
        assert_eq!(
            splice(Some(&old), &section).unwrap(),
            format!("# B\n\nintro\n\n{section}\n\n## After\n")
        );
        assert_eq!(
            splice(Some("# B\n\ntext\n"), &section).unwrap(),
            format!("# B\n\ntext\n\n{section}\n")
        );
        assert_eq!(splice(None, &section).unwrap(), format!("{section}\n"));
        assert!(splice(Some(&format!("x {END_MARKER} y {START_MARKER}")), &section).is_err());
        assert!(splice(Some(&format!("x {START_MARKER}")), &section).is_err());
    }

    #[test]
    fn dates_come_from_days_since_the_epoch() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_419), (2025, 11, 27));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn cpu_samples_subtract_per_thread() {
        let a = CpuSample {
            process: Some(Duration::from_millis(100)),
            threads: HashMap::from([("x".to_string(), Duration::from_millis(40))]),
        };
        let b = CpuSample {
            process: Some(Duration::from_millis(350)),
            threads: HashMap::from([
                ("x".to_string(), Duration::from_millis(90)),
                ("y".to_string(), Duration::from_millis(10)),
            ]),
        };
        let d = b.since(&a);
        assert_eq!(d.process, Some(Duration::from_millis(250)));
        assert_eq!(d.thread("x"), Some(Duration::from_millis(50)));
        assert_eq!(d.thread("y"), Some(Duration::from_millis(10)));
    }
}
