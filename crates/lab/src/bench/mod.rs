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
mod memory;
mod monitor;
mod report;
mod throughput;
mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_engine::{Engine, FlowProvider, PodEvent, Readiness};
use podport_openflow::FlowMod;
use podport_ovs_sandbox::{Datapath, Sandbox};

use memory::{measure_memory, restore_probe};
use monitor::{pid_cpu, Monitor};
use report::{ovs_version, render, write_section, Machine};

use crate::scenario::{
    add_bridge, engine_config, ensure_ovs, ifname, ms, percentiles, pod_spec, run_scenario,
    start_sandbox, stop_engine, stop_sandbox, wait_ofport_known, CpuSample, InFlight, Pct,
    Progress, RunPlan, Scenario, ScenarioData, StrategyKind, INTERRUPTED,
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
    let sb = start_sandbox(Datapath::Dummy).await?;
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
        readiness: Readiness::Live,
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
        readiness: Readiness::Live,
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
        readiness: Readiness::Live,
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
