//! `podport-lab bench`: the end-to-end benchmark, on one private OVS and in one run. Every figure
//! is set against a baseline measured in the same run.
//!
//! 1. Single Pod on an idle switch, one at a time: PortStatus LIVE (stamped by a passive
//!    OpenFlow monitor) to Ready, against a raw client on its own connection sending the same
//!    flow mods and a barrier (the switch's floor).
//! 2. Bulk: many Pods, adds and attaches sent concurrently as CNI calls are: first attach to
//!    all ready, against the switch's own announcement of the ports (same monitor), with the
//!    per-stage breakdown and the CPU per Pod (against ovs-vswitchd's own CPU).
//! 3. Stall at node scale: Pods attached while ovs-vswitchd is frozen, `portstatus` and the
//!    legacy `ovsdb-wait` at once on two bridges; the last Ready after the thaw against the
//!    switch's last LIVE after the thaw.
//! 4. Throughput: PortStatus a second through decode + core + journal, from a fake switch,
//!    against decoding alone.
//! 5. Memory: a real agent's RSS with N ready Pods (against itself idle), and an engine
//!    restored from a journal of many ports in a fresh process.
//! 6. Journal: durable appends against a plain file with `fdatasync`.
//!
//! The table replaces the section between the bench markers of `--out` and is printed; the
//! charts are written next to `--out`.

mod agent_rss;
mod charts;
mod journal_io;
mod throughput;
mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_engine::core::{Core, CoreConfig};
use podport_engine::{Engine, FlowProvider, PodEvent};
use podport_journal::{
    now_micros, Event, Journal, JournalConfig, Outcome, PodRef, PortDesc, PortReason,
};
use podport_openflow::{FlowMod, PortReason as OfReason, PortState};
use podport_ovs_sandbox::Sandbox;
use podport_session::openflow::{ClientEvent, ClientOptions, OfClient};
use serde_json::json;

use crate::scenario::{
    add_bridge, engine_config, ensure_ovs, fmt_ms, ifname, ms, percentiles, pod_spec, run_scenario,
    start_sandbox, stop_engine, stop_sandbox, wait_ofport_known, CpuSample, InFlight, Pct,
    Progress, RunPlan, Scenario, ScenarioData, StrategyKind, INTERRUPTED, PENDING_TYPE,
};

pub(crate) const START_MARKER: &str = "<!-- bench:e2e:start -->";
pub(crate) const END_MARKER: &str = "<!-- bench:e2e:end -->";

/// The charts, written next to `--out`.
const STALL_CHART: &str = "bench-stall-cdf.svg";
const STAGES_CHART: &str = "bench-bulk-stages.svg";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Markdown file whose marked section (between `<!-- bench:e2e:start -->` and
    /// `<!-- bench:e2e:end -->`) gets the table; created when missing, the rest kept. The
    /// SVG charts go to the same directory.
    #[arg(long, value_name = "FILE", default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Everything scaled down (20 Pods, 1 s stall, ...): a smoke run.
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
    single_pods: u32,
    bulk_pods: u32,
    /// Requests in flight at once in the bulk run.
    concurrency: usize,
    stall_pods: u32,
    stall: Duration,
    throughput_messages: u64,
    agent_pods: u32,
    memory_ports: u32,
    /// Time per batch size of the journal comparison, both sides together.
    journal_time: Duration,
}

const FULL: Sizes = Sizes {
    single_pods: 200,
    bulk_pods: 1000,
    concurrency: 64,
    stall_pods: 250,
    stall: Duration::from_secs(8),
    // Past about 100k records in one journal the writer slows down sharply (see
    // docs/benchmarks.md): 300 000 did not finish in 120 s.
    throughput_messages: 50_000,
    agent_pods: 250,
    memory_ports: 10_000,
    journal_time: Duration::from_secs(4),
};

const QUICK: Sizes = Sizes {
    single_pods: 20,
    bulk_pods: 100,
    concurrency: 16,
    stall_pods: 20,
    stall: Duration::from_secs(1),
    throughput_messages: 20_000,
    agent_pods: 20,
    memory_ports: 1000,
    journal_time: Duration::from_millis(400),
};

/// Everything measured on the sandbox.
struct Measured {
    single: SingleResult,
    bulk: BulkResult,
    stall: StallResult,
    throughput: throughput::ThroughputResult,
    agent: agent_rss::AgentRss,
}

pub async fn run(args: Args) -> Result<()> {
    if let Some(dir) = &args.restore_probe {
        return restore_probe(dir);
    }
    ensure_ovs()?;
    let sizes = if args.quick { QUICK } else { FULL };
    if cfg!(debug_assertions) && !args.quick {
        eprintln!(
            "warning: this is a debug build; record the figures of a release build \
             (scripts/bench)"
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
    let measured = measured?;
    progress.say(&format!(
        "5. memory: journal with {} ports, rebuilt in a fresh process",
        sizes.memory_ports
    ));
    let memory = measure_memory(&work.path().join("memory"), sizes.memory_ports)?;
    progress.say("6. journal: durable appends against a plain file with fdatasync");
    let journal = tokio::task::block_in_place(|| {
        journal_io::run(&work.path().join("journal-io"), sizes.journal_time)
    })?;
    let md = render(
        &args,
        sizes,
        &Machine::probe(ovs_version),
        &measured,
        &memory,
        &journal,
    );
    println!("{md}");
    write_section(&args.out, &md)?;
    let dir = chart_dir(&args.out);
    for (name, svg) in charts_of(&measured) {
        let path = dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "wrote the bench section of {} and its charts ({:.0} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn chart_dir(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Parts 1 to 5 (the agent's RSS) on one sandbox.
async fn measure(
    sb: &Sandbox,
    sizes: Sizes,
    work: &Path,
    progress: &mut Progress,
) -> Result<Measured> {
    progress.say(&format!(
        "1. single Pod on an idle switch: {} Pods one at a time, against a raw client's flow \
         mods and barrier",
        sizes.single_pods
    ));
    let single = single(
        sb,
        plan(StrategyKind::PortStatus, "br-one", work, "single", "o-", 22),
        sizes.single_pods,
    )
    .await?;

    progress.say(&format!(
        "2. bulk: {} Pods, {} requests in flight, each add and each attach its own OVSDB \
         transaction",
        sizes.bulk_pods, sizes.concurrency
    ));
    let b = burst(
        sb,
        plan(StrategyKind::PortStatus, "br-bulk", work, "bulk", "b-", 24),
        sizes.bulk_pods,
        sizes.concurrency,
        progress,
    )
    .await?;
    let mut bulk = BulkResult::from(&b)?;
    // The engine's own stages, as its journal folded them (the engine is stopped by now).
    match StageBreakdown::from_journal(&work.join("bulk")) {
        Ok(stages) => bulk.stages = stages,
        Err(e) => eprintln!(
            "the bulk journal's stages are not readable ({e}); the chart shows the bench's stamps"
        ),
    }
    bulk.concurrency = sizes.concurrency;

    progress.say(&format!(
        "3. stall: {} Pods per strategy, ovs-vswitchd frozen {} s",
        sizes.stall_pods,
        sizes.stall.as_secs_f64()
    ));
    let stall = stall(sb, sizes, work, progress).await?;

    progress.say(&format!(
        "4. throughput: {} PortStatus from a fake switch through decode + core + journal",
        sizes.throughput_messages
    ));
    let throughput =
        throughput::run(sb, &work.join("throughput"), sizes.throughput_messages).await?;

    progress.say(&format!(
        "5. memory: a podport agent process with {} ready Pods",
        sizes.agent_pods
    ));
    let agent = agent_rss::run(sb, &work.join("agent"), sizes.agent_pods).await?;
    Ok(Measured {
        single,
        bulk,
        stall,
        throughput,
        agent,
    })
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

/// Cookies of the raw client's flows (the engine's are under `POD_COOKIE_BASE`).
const FLOOR_COOKIE: u64 = 0x00b1_0000_0000_0000;

/// Per Pod, in ms: LIVE → Ready, the raw client's flow mods + barrier, and their difference.
struct SingleResult {
    reaction: Vec<f64>,
    floor: Vec<f64>,
    added: Vec<f64>,
}

/// Part 1: Pods attached one at a time on an idle bridge; after each Ready, the raw client
/// sends the same flow mods (the engine's delete by cookie and the Pod's flows, under its own
/// cookie) and a barrier on its own connection.
async fn single(sb: &Sandbox, plan: RunPlan, pods: u32) -> Result<SingleResult> {
    let bridge = plan.bridge.clone();
    tokio::task::block_in_place(|| add_bridge(sb, &bridge))?;
    let endpoint = sb.openflow_endpoint_of(&bridge);
    let monitor = tokio::task::block_in_place(|| Monitor::start(&endpoint))?;
    let sock = PathBuf::from(endpoint.trim_start_matches("unix:"));
    let mut raw = tokio::task::block_in_place(|| wire::RawClient::connect(&sock))?;
    let sc = Scenario {
        pods,
        stall: Duration::ZERO,
        patience: Duration::from_secs(60),
        not_ready_every: Duration::from_secs(30),
        concurrency: 16,
    };
    let cfg = engine_config(sb, &plan, &sc)?;
    let engine = Arc::new(
        tokio::task::spawn_blocking(move || Engine::start(cfg))
            .await?
            .context("starting the engine")?,
    );
    let events = engine.subscribe();
    let (tx, rx) = std::sync::mpsc::channel::<(String, u32, Instant)>();
    std::thread::Builder::new()
        .name("podport-bench-ev".into())
        .spawn(move || {
            while let Ok(ev) = events.recv() {
                if let PodEvent::Ready {
                    ifname, port_no, ..
                } = ev
                {
                    if tx.send((ifname, port_no, Instant::now())).is_err() {
                        break;
                    }
                }
            }
        })
        .context("starting an event thread")?;
    let result = async {
        let mut in_flight = InFlight::new(sc.concurrency);
        for i in 1..=pods {
            let (e, spec) = (engine.clone(), pod_spec(&plan, i)?);
            in_flight
                .push(0, i, async move { e.add_pod(spec).await })
                .await?;
        }
        in_flight.finish().await?;
        let names: Vec<String> = (1..=pods).map(|i| ifname(&plan.prefix, i)).collect();
        tokio::task::block_in_place(|| {
            sb.vsctl(&[
                "set",
                "open_vswitch",
                ".",
                "external_ids:podport-bench-sync=1",
            ])
        })
        .map_err(|e| anyhow!("waiting for ovs-vswitchd to apply the adds: {e}"))?;
        wait_ofport_known(&engine, &names, Instant::now() + Duration::from_secs(60)).await?;
        let provider = podport_engine::DefaultFlows;
        let mut out = SingleResult {
            reaction: Vec::new(),
            floor: Vec::new(),
            added: Vec::new(),
        };
        for (i, name) in (1..=pods).zip(&names) {
            engine.host_interface_created(name).await?;
            let (port_no, ready) = tokio::task::block_in_place(|| loop {
                match rx.recv_timeout(Duration::from_secs(30)) {
                    Ok((n, p, at)) if n == *name => return Ok((p, at)),
                    Ok(_) => {}
                    Err(_) => bail!("{name} was not ready within 30 s"),
                }
            })?;
            let live = monitor
                .wait_live(name, Duration::from_secs(2))
                .ok_or_else(|| anyhow!("the monitor saw no LIVE PortStatus for {name}"))?;
            let reaction = signed_ms(ready, live);
            let cookie = FLOOR_COOKIE + u64::from(i);
            let mut flows = vec![FlowMod::delete_by_cookie(cookie)];
            flows.extend(provider.pod_flows(&pod_spec(&plan, i)?, port_no, cookie));
            let floor = ms(tokio::task::block_in_place(|| {
                raw.flows_and_barrier(&flows)
            })?);
            out.reaction.push(reaction);
            out.floor.push(floor);
            out.added.push(reaction - floor);
            // Idle between Pods: each one meets a quiet switch and engine.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(out)
    }
    .await;
    stop_engine(engine).await;
    drop(monitor);
    del_bridges(sb, &[&bridge])?;
    result
}

/// `a - b` in ms, negative when `a` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        ms(a - b)
    } else {
        -ms(b - a)
    }
}

/// Part 3: both strategies at once on two bridges, a passive monitor on podport's.
async fn stall(
    sb: &Sandbox,
    sizes: Sizes,
    work: &Path,
    progress: &mut Progress,
) -> Result<StallResult> {
    let plans = [
        plan(
            StrategyKind::PortStatus,
            "br-stall",
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
    tokio::task::block_in_place(|| add_bridge(sb, "br-stall"))?;
    tokio::task::block_in_place(|| add_bridge(sb, "br-legacy"))?;
    let monitor =
        tokio::task::block_in_place(|| Monitor::start(&sb.openflow_endpoint_of("br-stall")))?;
    let sc = Scenario {
        pods: sizes.stall_pods,
        stall: sizes.stall,
        patience: Duration::from_secs(60),
        not_ready_every: Duration::from_secs(1),
        concurrency: sizes.concurrency,
    };
    let data = run_scenario(sb, &sc, &plans, progress).await;
    let live_at = monitor.stop();
    del_bridges(sb, &["br-stall", "br-legacy"])?;
    StallResult::from(&data?, &live_at)
}

/// A burst of Pods on a new bridge watched by a passive monitor.
struct Burst {
    data: ScenarioData,
    /// When the monitor saw each port LIVE for the first time.
    live_at: HashMap<String, Instant>,
    /// ovs-vswitchd's CPU time from the first add to the last Ready.
    switch_cpu: Option<Duration>,
}

async fn burst(
    sb: &Sandbox,
    plan: RunPlan,
    pods: u32,
    concurrency: usize,
    progress: &mut Progress,
) -> Result<Burst> {
    let bridge = plan.bridge.clone();
    tokio::task::block_in_place(|| add_bridge(sb, &bridge))?;
    let endpoint = sb.openflow_endpoint_of(&bridge);
    let monitor = tokio::task::block_in_place(|| Monitor::start(&endpoint))?;
    let sc = Scenario {
        pods,
        stall: Duration::ZERO,
        patience: Duration::from_secs(120),
        // The default: nothing should be slow here, and ticks would only add noise.
        not_ready_every: Duration::from_secs(30),
        concurrency,
    };
    let switch_before = pid_cpu(sb.vswitchd_pid());
    let data = run_scenario(sb, &sc, std::slice::from_ref(&plan), progress).await;
    // The engine is stopped by now: what the switch did after the last Ready is counted too,
    // which is at most a few flows and barriers' worth.
    let switch_after = pid_cpu(sb.vswitchd_pid());
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
    Ok(Burst {
        data,
        live_at,
        switch_cpu: match (switch_before, switch_after) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
    })
}

/// A process's CPU time (user + system) from `/proc/PID/stat`, in 10 ms ticks.
fn pid_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let t = |i: usize| fields.get(i)?.parse::<u32>().ok();
    Some(Duration::from_millis(10) * (t(11)? + t(12)?))
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
        let endpoint: podport_session::Endpoint = endpoint
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

    /// The first LIVE of `name`, waiting up to `within` for it.
    fn wait_live(&self, name: &str, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = self
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
            {
                return Some(*t);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
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
    /// Each Pod's Ready after the thaw, in ms (for the CDF).
    after_thaw_ms: Vec<f64>,
}

struct StallResult {
    stall: Duration,
    podport: RunSummary,
    legacy: RunSummary,
    first_error: Option<String>,
    /// The switch's last LIVE of podport's ports after the thaw, in ms.
    switch_last_live_ms: f64,
}

impl StallResult {
    fn from(data: &ScenarioData, live_at: &HashMap<String, Instant>) -> Result<StallResult> {
        let thaw = data
            .thawed_at
            .ok_or_else(|| anyhow!("the stall part never thawed"))?;
        let stall = data
            .frozen_at
            .map(|f| thaw.saturating_duration_since(f))
            .unwrap_or_default();
        let sum = |i: usize| {
            let v = data.runs[i].ready_after_ms(thaw);
            RunSummary {
                pods: data.runs[i].names.len(),
                ready: data.runs[i].ready,
                failed_pods: data.runs[i].failed_pods(),
                after_thaw: percentiles(v.clone()),
                after_thaw_ms: v,
            }
        };
        let run = &data.runs[0];
        let missing = run
            .names
            .iter()
            .filter(|n| !live_at.contains_key(*n))
            .count();
        if missing > 0 {
            bail!("the monitor missed the LIVE PortStatus of {missing} stall ports");
        }
        let last_live = run
            .names
            .iter()
            .filter_map(|n| live_at.get(n))
            .max()
            .copied()
            .ok_or_else(|| anyhow!("the monitor saw no port of the stall run LIVE"))?;
        Ok(StallResult {
            stall,
            podport: sum(0),
            legacy: sum(1),
            first_error: data.runs[1].first_error.clone(),
            switch_last_live_ms: signed_ms(last_live, thaw),
        })
    }
}

struct BulkResult {
    pods: usize,
    concurrency: usize,
    /// First attach to the last Ready.
    engine: Duration,
    /// First attach to the last LIVE the monitor saw.
    ovs: Duration,
    /// First add to the last Ready.
    whole: Duration,
    cpu: CpuSample,
    switch_cpu: Option<Duration>,
    stages: StageBreakdown,
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
            concurrency: 0,
            engine: last_ready.saturating_duration_since(b.data.attach_started),
            ovs: last_live.saturating_duration_since(b.data.attach_started),
            whole: last_ready.saturating_duration_since(b.data.adds_started),
            cpu: end.since(&b.data.cpu_at_start),
            switch_cpu: b.switch_cpu,
            stages: StageBreakdown::seen_by_the_bench(b),
        })
    }
}

/// Per-Pod stage durations of a run, in ms, in stage order. The source is what the bench sees
/// from outside the engine (request, acknowledgement, the monitor's PortStatus, the Ready
/// event); the journal's own per-Pod stage times can fill the same structure once they are
/// recorded (see [`StageBreakdown::source`]).
struct StageBreakdown {
    /// Where the times come from, for the text under the chart.
    source: &'static str,
    stages: Vec<(String, Vec<f64>)>,
}

impl StageBreakdown {
    fn seen_by_the_bench(b: &Burst) -> StageBreakdown {
        let run = &b.data.runs[0];
        let mut acked = Vec::new();
        let mut to_live = Vec::new();
        let mut to_ready = Vec::new();
        for (k, name) in run.names.iter().enumerate() {
            let (Some(att), Some(ack), Some(ready), Some(live)) = (
                run.attached_at[k],
                run.attach_acked_at[k],
                run.ready_at[k],
                b.live_at.get(name).copied(),
            ) else {
                continue;
            };
            acked.push(signed_ms(ack, att));
            to_live.push(signed_ms(live, att));
            to_ready.push(signed_ms(ready, live));
        }
        StageBreakdown {
            source: "the bench's own stamps: the attach request and its acknowledgement \
                     (record durable), the passive monitor's PortStatus LIVE, the Ready event",
            stages: vec![
                ("attach → acknowledged (journal durable)".into(), acked),
                ("attach → PortStatus LIVE (the switch)".into(), to_live),
                ("LIVE → Ready (engine: flows + barrier)".into(), to_ready),
            ],
        }
    }

    /// The stages of every Ready in the journal at `dir`, as `podport-journal timeline
    /// --summary` gives them: each the time since the previous stage, per Pod.
    fn from_journal(dir: &Path) -> Result<StageBreakdown> {
        let reader = podport_journal::JournalReader::open(dir)?;
        let mut records = Vec::new();
        for r in reader.records(0) {
            records.push(r?);
        }
        let mut state = podport_journal::State::default();
        let mut per_stage: Vec<(String, Vec<f64>)> = podport_journal::Stage::ALL
            .iter()
            .skip(1)
            .map(|s| (s.name().to_string(), Vec::new()))
            .collect();
        for r in &records {
            podport_journal::apply(&mut state, r);
            if let podport_journal::Event::PodReady { ifname, .. } = &r.event {
                let Some(p) = state.ports.get(ifname) else {
                    continue;
                };
                for (stage, took) in p.stages.this_wait() {
                    if let Some((_, v)) = per_stage.iter_mut().find(|(n, _)| n == stage.name()) {
                        v.push(took.as_secs_f64() * 1e3);
                    }
                }
            }
        }
        if per_stage.iter().all(|(_, v)| v.is_empty()) {
            bail!("no Ready in {}", dir.display());
        }
        Ok(StageBreakdown {
            source: "the engine's own stage times, folded from its journal (each the time since \
                     the previous stage; `podport-journal timeline DIR --summary` gives the same)",
            stages: per_stage,
        })
    }

    fn rows(&self) -> Vec<charts::StageRow> {
        self.stages
            .iter()
            .filter_map(|(label, v)| {
                let p = percentiles(v.clone())?;
                Some(charts::StageRow {
                    label: label.clone(),
                    p50: p.p50,
                    p90: p.p90,
                    p99: p.p99,
                })
            })
            .collect()
    }
}

/// The charts of a run, by file name.
fn charts_of(m: &Measured) -> Vec<(&'static str, String)> {
    let thaw = &m.stall;
    let cdf = charts::cdf(
        &format!(
            "Stall: {} Pods attached during an {:.0} s freeze of ovs-vswitchd",
            thaw.podport.pods,
            thaw.stall.as_secs_f64()
        ),
        "time from the thaw to the Pod's Ready (log scale)",
        &[
            charts::Series {
                label: "podport (portstatus)",
                color: "#1f77b4",
                values: &thaw.podport.after_thaw_ms,
            },
            charts::Series {
                label: "legacy ovsdb-wait (5 s)",
                color: "#d62728",
                values: &thaw.legacy.after_thaw_ms,
            },
        ],
        &[("switch's last LIVE", thaw.switch_last_live_ms)],
    );
    let stages = charts::stages(
        &format!(
            "Bulk: {} Pods, {} requests in flight: time per stage",
            m.bulk.pods, m.bulk.concurrency
        ),
        &m.bulk.stages.rows(),
    );
    vec![(STALL_CHART, cdf), (STAGES_CHART, stages)]
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
    /// The journal's page cache bound the probe ran with.
    cache_capacity: u64,
}

fn measure_memory(dir: &Path, ports: u32) -> Result<MemoryResult> {
    tokio::task::block_in_place(|| write_journal(dir, ports))
        .with_context(|| format!("writing a journal of {ports} ports"))?;
    let exe = std::env::current_exe().context("locating the podport-lab binary")?;
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
            "cache_capacity": JournalConfig::default().cache_capacity,
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
    date_text(time::OffsetDateTime::now_utc().date())
}

fn date_text(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Milliseconds with the precision a sub-millisecond figure needs.
fn fine_ms(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() < 10.0 {
        format!("{v:.2} ms")
    } else {
        fmt_ms(v)
    }
}

fn pct_text(p: &Option<Pct>) -> String {
    match p {
        Some(p) => format!("p50 {}, p99 {}", fine_ms(p.p50), fine_ms(p.p99)),
        None => "no Pod ready".into(),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "-".into()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// "met" or "not met" against a goal.
fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// The marked section: heading, command, machine, table, and what each row includes.
fn render(
    args: &Args,
    sizes: Sizes,
    m: &Machine,
    measured: &Measured,
    memory: &MemoryResult,
    journal: &[journal_io::JournalRow],
) -> String {
    let Measured {
        single,
        bulk,
        stall,
        throughput,
        agent,
    } = measured;
    let mut rows = Vec::new();

    // 1. Single Pod.
    let added = percentiles(single.added.clone());
    let reaction = percentiles(single.reaction.clone());
    let floor = percentiles(single.floor.clone());
    let (a50, a99) = added.map_or((f64::NAN, f64::NAN), |p| (p.p50, p.p99));
    rows.push(format!(
        "| 1 | single Pod on an idle switch ({} Pods one at a time): PortStatus LIVE → Ready, \
         minus the floor, per Pod | engine-added p50 {}, p99 {} (LIVE → Ready {}) | raw client, \
         own connection, the same 6 flow mods + a barrier: {} | p50 {} of the floor | p50 ≤ \
         0.5 ms, p99 ≤ 2 ms: {} |",
        single.reaction.len(),
        fine_ms(a50),
        fine_ms(a99),
        pct_text(&reaction),
        pct_text(&floor),
        ratio(
            reaction.map_or(f64::NAN, |p| p.p50),
            floor.map_or(f64::NAN, |p| p.p50)
        ),
        verdict(a50 <= 0.5 && a99 <= 2.0),
    ));

    // 2. Bulk.
    let bulk_ratio = ms(bulk.engine) / ms(bulk.ovs).max(1e-9);
    rows.push(format!(
        "| 2 | bulk: {} Pods, {} requests in flight: first attach → all ready | {} (first add \
         → all ready: {}) | the switch announced all {} ports LIVE (passive monitor): {} | {} | \
         ≤ 1.1×: {} |",
        bulk.pods,
        bulk.concurrency,
        fine_ms(ms(bulk.engine)),
        fine_ms(ms(bulk.whole)),
        bulk.pods,
        fine_ms(ms(bulk.ovs)),
        ratio(ms(bulk.engine), ms(bulk.ovs)),
        verdict(bulk_ratio <= 1.1),
    ));

    // 3. Stall.
    let last_ready = stall.podport.after_thaw.map_or(f64::NAN, |p| p.max);
    let stall_ratio = last_ready / stall.switch_last_live_ms.max(1e-9);
    rows.push(format!(
        "| 3 | stall: {} Pods attached during a {:.1} s freeze of ovs-vswitchd: thaw → last \
         Pod ready | {} ({}/{} ready, {} failed attaches; {}) | the switch's last LIVE of those \
         ports after the thaw: {} | {} | ≤ 1.1×: {} |",
        stall.podport.pods,
        stall.stall.as_secs_f64(),
        fine_ms(last_ready),
        stall.podport.ready,
        stall.podport.pods,
        stall.podport.failed_pods,
        pct_text(&stall.podport.after_thaw),
        fine_ms(stall.switch_last_live_ms),
        ratio(last_ready, stall.switch_last_live_ms),
        verdict(stall_ratio <= 1.1),
    ));
    let lp99 = |r: &RunSummary| r.after_thaw.map_or(f64::NAN, |p| p.p99);
    rows.push(format!(
        "| 3b | stall, the same Pods with the legacy `ovsdb-wait` (5 s, retried every 5 s) at \
         the same time on its own bridge | podport p99 after the thaw {} | legacy: {}/{} ready, \
         {} Pods with a failed attach; {} | legacy ÷ podport, p99: {} | - |",
        fine_ms(lp99(&stall.podport)),
        stall.legacy.ready,
        stall.legacy.pods,
        stall.legacy.failed_pods,
        pct_text(&stall.legacy.after_thaw),
        ratio(lp99(&stall.legacy), lp99(&stall.podport)),
    ));

    // 4. Throughput.
    rows.push(format!(
        "| 4 | throughput: PortStatus through decode + core + journal (durable), fake switch \
         sending {} as fast as it can | {:.0}/s ({} in {}; {} decided together with another \
         in a batch) | decoding the same bytes alone, one thread: {:.0}/s | {} | ≥ 100 000/s: \
         {} |",
        throughput.messages,
        throughput.rate(),
        throughput.messages,
        fine_ms(ms(throughput.elapsed)),
        throughput.coalesced,
        throughput.decode_rate(),
        ratio(throughput.rate(), throughput.decode_rate()),
        verdict(throughput.rate() >= 100_000.0),
    ));

    // 5. CPU per Pod.
    let per_pod = |d: Option<Duration>| d.map_or(f64::NAN, |d| ms(d) / bulk.pods as f64);
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
    let cpu = per_pod(bulk.cpu.process);
    rows.push(format!(
        "| 5 | CPU per Pod over the bulk run (row 2), the whole process | {:.3} ms (engine \
         thread {:.3}, journal {:.3}, the rest {:.3}) | ovs-vswitchd over the same run: {:.3} ms \
         a Pod | {} | ≤ 0.3 ms: {} |",
        cpu,
        per_pod(engine_cpu),
        per_pod(journal_cpu),
        per_pod(rest_cpu),
        per_pod(bulk.switch_cpu),
        ratio(cpu, per_pod(bulk.switch_cpu)),
        verdict(cpu <= 0.3),
    ));

    // 6. Memory.
    let ready_mib = mib(agent.ready_kib);
    rows.push(format!(
        "| 6 | memory: a `podport agent` process with {} ready Pods (VmRSS) | {:.1} MiB (peak \
         {:.1} MiB; {:.1} KiB a Pod over idle) | the same agent idle, connected, no Pod: {:.1} \
         MiB | {} | ≤ 12 MiB: {} |",
        agent.pods,
        ready_mib,
        mib(agent.hwm_kib),
        agent.ready_kib.saturating_sub(agent.idle_kib) as f64 / f64::from(agent.pods.max(1)),
        mib(agent.idle_kib),
        ratio(agent.ready_kib as f64, agent.idle_kib as f64),
        verdict(ready_mib <= 12.0),
    ));
    let delta = memory.rss_after_kib.saturating_sub(memory.rss_before_kib);
    let cache_kib = memory.cache_capacity / 1024;
    let beyond = delta.saturating_sub(cache_kib) as f64 / memory.ports.max(1) as f64;
    rows.push(format!(
        "| 6b | memory: {} ports restored from a journal (open + `Core::restore` + start, a \
         fresh process) | +{:.1} MiB RSS: {:.2} KiB a port beyond the journal cache ({} MiB, \
         `--journal-cache`; peak {:.1} MiB); open {}, rebuild {} | the process before the open: \
         {:.1} MiB | \
         {} | ≤ 1 KiB a port beyond the cache: {} |",
        memory.ports,
        mib(delta),
        beyond,
        memory.cache_capacity >> 20,
        mib(memory.hwm_kib),
        fine_ms(memory.open_ms),
        fine_ms(memory.restore_ms),
        mib(memory.rss_before_kib),
        ratio(memory.rss_after_kib as f64, memory.rss_before_kib as f64),
        verdict(beyond <= 1.0),
    ));

    // 7. Journal.
    for r in journal {
        let q = r.journal_rps / r.file_rps.max(1e-9);
        rows.push(format!(
            "| 7 | journal: durable appends, batches of {} | {:.0} records/s | plain file, \
             `write_all` + `fdatasync` per batch: {:.0} records/s | {:.2} | ≥ 0.5: {} |",
            r.batch,
            r.journal_rps,
            r.file_rps,
            q,
            verdict(q >= 0.5),
        ));
    }

    let mut threads: Vec<(&String, &Duration)> = bulk
        .cpu
        .threads
        .iter()
        .filter(|(_, v)| !v.is_zero())
        .collect();
    threads.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let threads = threads
        .iter()
        .map(|(k, v)| format!("{k} {}", fine_ms(ms(**v))))
        .collect::<Vec<_>>()
        .join(", ");
    let command = if args.quick {
        "scripts/bench --quick"
    } else {
        "scripts/bench"
    };
    let legacy_error = stall
        .first_error
        .as_deref()
        .map(|e| {
            format!(
                " The legacy run's first failure read: `{}`.",
                e.replace('|', "\\|")
            )
        })
        .unwrap_or_default();
    let stages = bulk
        .stages
        .rows()
        .iter()
        .map(|r| {
            format!(
                "{}: p50 {}, p90 {}, p99 {}",
                r.label,
                fine_ms(r.p50),
                fine_ms(r.p90),
                fine_ms(r.p99)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{START_MARKER}\n\
## End to end (`podport-lab bench`)\n\
\n\
Command: `{command}` (writes this section and the two charts below; `--quick` scales every \
part down). Machine: {cores} cores ({cpu}), {memory}, {ovs} (private userspace daemons, dummy \
datapath), {profile} build, {date}.\n\
\n\
Everything runs against one sandbox, in one run, each part on fresh bridges. Every Pod port \
is created with a type OVS cannot open (`{PENDING_TYPE}`) and the attach switches it to \
`internal`: the Windows node's order, where the vNIC appears after the port. Each add and \
each attach is its own OVSDB transaction and returns once its record is durable. Times are \
taken outside the engine: the Ready event when it reaches the bench, PortStatus by a second, \
passive OpenFlow connection to the bridge. Each figure is set against a baseline from the \
same run; the last column is the goal of issue 12.\n\
\n\
| # | measure | podport | baseline (same run) | ratio | goal |\n\
|---|---|---|---|---|---|\n\
{rows}\n\
\n\
![time to ready after the thaw, both strategies](bench-stall-cdf.svg)\n\
\n\
![bulk run, time per stage](bench-bulk-stages.svg)\n\
\n\
- Row 1: per Pod, the engine's Ready minus the monitor's first PortStatus with LIVE; then \
the raw client (a plain socket, no podport client) sends what the engine sends for that Pod \
(a delete by cookie and the Pod's 5 flows, under a cookie of its own) and a barrier, and \
waits for the barrier's reply: the switch's floor for that Pod. Engine-added is the \
difference, per Pod. A Pod's first flows go as the floor's do (one batch and a barrier: one \
round trip); only flows that may carry traffic are replaced in an OpenFlow bundle (three).\n\
- Row 2: requests are sent {concurrency} at a time, as a node's concurrent CNI calls are, so \
they share the journal's flushes. Stages per Pod (the chart; {stage_source}): {stages}.\n\
- Row 3: ovs-vswitchd is frozen (SIGSTOP) right before the attaches, so every port is \
allocated only after the thaw; both engines attach their Pods at the same moment. Times \
are from the thaw. A legacy attach whose 5 s wait timed out is retried 5 s later, so with a \
stall between 5 and 10 s its Pods are ready about 10 s after the attach whatever the switch \
does.{legacy_error}\n\
- Row 4: the engine's own OpenFlow client on a unix socket to a fake switch that answers the \
handshake and PORT_DESC and then writes the PortStatus messages (64 ports, MODIFY, LIVE and \
LINK_DOWN in turn) as fast as the socket takes them; timed from the first byte to the last \
record durable in the journal (every PortStatus is journaled; the core decides once per \
batch).\n\
- Row 5: `getrusage(RUSAGE_SELF)` from the first add to the last Ready of row 2: the engine \
thread (core, actors, OVSDB and OpenFlow clients), the journal (its writer and sled's IO \
threads), and this bench's driver, event threads and monitor (\"the rest\"). Per thread \
(`/proc/self/task`, 10 ms ticks): {threads}. ovs-vswitchd's from `/proc/PID/stat`.\n\
- Row 6: `podport agent` started by the bench on its own bridge, Pods added and attached over \
its control socket on 8 connections; VmRSS once it answers and 0.5 s after all are ready. \
Row 6b: a journal of {ports} ready ports (7 records each) opened, `Core::restore`d and \
started in a fresh `podport-lab` process; VmRSS after minus before, which includes the journal's \
page cache (at most `--journal-cache`, default 4 MiB).\n\
- Row 7: a batch of N appends queued, then every ticket awaited; the file writes the same \
kind of record (length, CRC, sequence, time, rkyv payload). Both end every batch with \
`fdatasync`. Alternating rounds of each, about {jt} s per batch size.\n\
{END_MARKER}",
        rows = rows.join("\n"),
        cores = m.cores,
        cpu = m.cpu,
        memory = m.memory,
        ovs = m.ovs,
        profile = m.profile,
        date = m.date,
        concurrency = bulk.concurrency,
        stage_source = bulk.stages.source,
        ports = memory.ports,
        jt = sizes.journal_time.as_secs_f64(),
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
    fn dates_are_written_year_month_day_with_zeros() {
        let d = |y, m, d| time::Date::from_calendar_date(y, m, d).unwrap();
        assert_eq!(date_text(d(2000, time::Month::February, 29)), "2000-02-29");
        assert_eq!(date_text(d(2025, time::Month::November, 7)), "2025-11-07");
        assert_eq!(today().len(), "YYYY-MM-DD".len());
    }
}
