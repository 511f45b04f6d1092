//! `podport demo`: a private OVS, the engine in-process, N Pods, an optional switch stall, and
//! a summary of time to ready.
//!
//! The sandbox emulates a Windows node: every Pod port is created with a type OVS cannot open
//! (`podport-pending`), so it has no OpenFlow port until the attach switches it to `internal`,
//! as when the Pod's vNIC does not exist yet. With `--stall` ovs-vswitchd is frozen (SIGSTOP)
//! right *before* the attaches are issued: every type change is committed to OVSDB at once,
//! but no port can be allocated before the thaw. That is the mission's failure in its purest
//! form: each attach of the legacy strategy starts its 5 s OVSDB `wait` on a switch that will
//! not answer in time, so with a stall over 5 s every one of them fails
//! (`"wait" timed out after 5012 ms`) and waits 5 s more for its retry, while `portstatus`
//! keeps waiting and is ready as soon as the switch announces the port. (Freezing right after
//! the attaches instead would let a racy, machine-dependent share of the ports be allocated
//! before the freeze, which blurs the comparison.)
//!
//! The scenario runner here is shared with `podport bench` (stall survival and the bursts).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use podport_engine::core::{CoreConfig, Strategy};
use podport_engine::Phase;
use podport_engine::{Engine, EngineConfig, PodEvent, PodSpec};
use podport_ovs_sandbox::{find_ovs, Sandbox, SandboxError, SandboxOptions};
use serde_json::json;

/// The Interface type Pod ports are created with: OVS cannot open it, so the port has no
/// number until the attach (the Windows node's "no vNIC yet").
pub(crate) const PENDING_TYPE: &str = "podport-pending";

/// The legacy strategy's OVSDB `wait` and its retry interval, as in the original agent.
pub(crate) const LEGACY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the demo keeps waiting for readiness after the stall.
const PATIENCE: Duration = Duration::from_secs(60);

/// The error of a run stopped by Ctrl-C (no OVS logs are shown for it).
pub(crate) const INTERRUPTED: &str = "interrupted";

/// Most Pods per run: interface names, addresses and MACs are derived from the index.
const MAX_PODS: u32 = 10_000;

// Every option may be repeated, the last one winning, so `scripts/demo --pods 100` can
// override the script's own `--pods 20`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pods to add and attach (per strategy).
    #[arg(long, default_value_t = 20, overrides_with = "pods", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PODS)))]
    pods: u32,
    /// Freeze ovs-vswitchd (SIGSTOP) for SECS seconds, from right before the attaches, so
    /// every port is allocated only after the thaw (0: no stall).
    #[arg(long, value_name = "SECS", default_value = "0", overrides_with = "stall", value_parser = parse_secs)]
    stall: Duration,
    /// How the engine learns the port number: PortStatus messages, or the legacy 5 s OVSDB
    /// wait retried every 5 s.
    #[arg(
        long,
        value_enum,
        default_value = "portstatus",
        conflicts_with = "compare"
    )]
    strategy: StrategyKind,
    /// Run both strategies at once on the same sandbox (two bridges, same Pods and stall)
    /// and show them side by side.
    #[arg(long, overrides_with = "compare")]
    compare: bool,
    /// Print one JSON object on stdout; the human summary goes to stderr.
    #[arg(long, overrides_with = "json")]
    json: bool,
    /// Keep the journal(s) in DIR/portstatus and DIR/ovsdb-wait, for podport-journal.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=3600.0).contains(&v) {
        return Err(format!("{s} is outside 0..=3600 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Which strategy a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StrategyKind {
    #[value(name = "portstatus")]
    PortStatus,
    #[value(name = "ovsdb-wait")]
    OvsdbWait,
}

impl StrategyKind {
    /// The name used on the command line, in JSON and for journal directories.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StrategyKind::PortStatus => "portstatus",
            StrategyKind::OvsdbWait => "ovsdb-wait",
        }
    }

    /// The name with the legacy wait's parameters, for humans.
    pub(crate) fn label(self) -> &'static str {
        match self {
            StrategyKind::PortStatus => "portstatus",
            StrategyKind::OvsdbWait => "ovsdb-wait (5 s)",
        }
    }

    fn strategy(self) -> Strategy {
        match self {
            StrategyKind::PortStatus => Strategy::PortStatus,
            StrategyKind::OvsdbWait => Strategy::OvsdbWait {
                timeout: LEGACY_TIMEOUT,
                retry_every: LEGACY_TIMEOUT,
            },
        }
    }
}

/// One engine of a scenario: its strategy, bridge and journal, and how its Pods are named.
pub(crate) struct RunPlan {
    pub kind: StrategyKind,
    pub bridge: String,
    pub journal_dir: PathBuf,
    /// Interface names are `<prefix><i>`; prefixes keep names unique across bridges (OVSDB
    /// names are global).
    pub prefix: String,
    /// Second octet of the Pods' addresses and a byte of their MACs.
    pub net: u8,
}

/// What a scenario does: add `pods` Pods per run, optionally freeze the switch for `stall`
/// right before attaching them all, and wait for readiness.
pub(crate) struct Scenario {
    pub pods: u32,
    pub stall: Duration,
    /// How long to wait for readiness after the stall.
    pub patience: Duration,
    pub not_ready_every: Duration,
    /// Requests (adds, then attaches) in flight at once, as a node's concurrent CNI calls
    /// are: 1 sends them one after another. Each request returns once its record is durable,
    /// so concurrent ones share the journal's flushes.
    pub concurrency: usize,
}

/// What one run saw, per Pod (index `i` is interface `<prefix><i+1>`).
pub(crate) struct RunData {
    pub kind: StrategyKind,
    pub names: Vec<String>,
    index: HashMap<String, usize>,
    pub attached_at: Vec<Option<Instant>>,
    /// When each attach was acknowledged (its record durable).
    pub attach_acked_at: Vec<Option<Instant>>,
    /// The first Ready of each Pod, stamped when the event reached us.
    pub ready_at: Vec<Option<Instant>>,
    /// Failed events per Pod (the legacy strategy's timeouts, among others).
    pub failures: Vec<u32>,
    pub failed_events: u64,
    pub not_ready_events: u64,
    pub first_error: Option<String>,
    pub ready: usize,
}

impl RunData {
    fn new(plan: &RunPlan, pods: u32) -> RunData {
        let names: Vec<String> = (1..=pods).map(|i| ifname(&plan.prefix, i)).collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let n = names.len();
        RunData {
            kind: plan.kind,
            names,
            index,
            attached_at: vec![None; n],
            attach_acked_at: vec![None; n],
            ready_at: vec![None; n],
            failures: vec![0; n],
            failed_events: 0,
            not_ready_events: 0,
            first_error: None,
            ready: 0,
        }
    }

    fn record(&mut self, at: Instant, ev: PodEvent) {
        match ev {
            PodEvent::Ready { ifname, .. } => {
                if let Some(&i) = self.index.get(&ifname) {
                    if self.ready_at[i].is_none() {
                        self.ready_at[i] = Some(at);
                        self.ready += 1;
                    }
                }
            }
            PodEvent::NotReady { .. } => self.not_ready_events += 1,
            PodEvent::Failed { ifname, error } => {
                self.failed_events += 1;
                if let Some(&i) = self.index.get(&ifname) {
                    self.failures[i] += 1;
                }
                self.first_error.get_or_insert(error);
            }
            PodEvent::Removed { .. } => {}
        }
    }

    /// Pods whose attach failed at least once.
    pub(crate) fn failed_pods(&self) -> usize {
        self.failures.iter().filter(|&&n| n > 0).count()
    }

    pub(crate) fn all_ready(&self) -> bool {
        self.ready == self.names.len()
    }

    /// Time to ready of every ready Pod, from its attach, in milliseconds.
    pub(crate) fn time_to_ready_ms(&self) -> Vec<f64> {
        self.attached_at
            .iter()
            .zip(&self.ready_at)
            .filter_map(|(a, r)| Some(ms(r.as_ref()?.saturating_duration_since(*a.as_ref()?))))
            .collect()
    }

    /// Time from `t` to each Pod's Ready, in milliseconds (0 for a Pod ready before `t`).
    pub(crate) fn ready_after_ms(&self, t: Instant) -> Vec<f64> {
        self.ready_at
            .iter()
            .flatten()
            .map(|r| ms(r.saturating_duration_since(t)))
            .collect()
    }

    /// The last Ready.
    // Read by the bench, which is Linux-only.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn last_ready(&self) -> Option<Instant> {
        self.ready_at.iter().flatten().max().copied()
    }
}

/// What a scenario measured.
// Partly read by the bench only, which is Linux-only.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) struct ScenarioData {
    pub runs: Vec<RunData>,
    pub adds_started: Instant,
    pub attach_started: Instant,
    pub frozen_at: Option<Instant>,
    pub thawed_at: Option<Instant>,
    /// CPU of this process when the first Pod was added and when the last one was ready.
    pub cpu_at_start: crate::cpu::CpuSample,
    pub cpu_at_ready: Option<crate::cpu::CpuSample>,
}

/// The interface name of Pod `i` of a run.
pub(crate) fn ifname(prefix: &str, i: u32) -> String {
    format!("{prefix}{i}")
}

/// Pod `i` (1-based) of a run.
pub(crate) fn pod_spec(plan: &RunPlan, i: u32) -> Result<PodSpec> {
    let name = ifname(&plan.prefix, i);
    Ok(PodSpec {
        namespace: plan.kind.name().into(),
        name: format!("pod-{i}"),
        container_id: format!("{}ctr-{i}", plan.prefix),
        ips: vec![format!("10.{}.{}.{}/16", plan.net, i / 250, i % 250 + 1)],
        mac: format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            plan.net,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        )
        .parse()
        .map_err(|e| anyhow!("MAC of {name}: {e:?}"))?,
        ifname: name,
    })
}

/// The OpenFlow endpoint of a sandbox bridge (its `.mgmt` service socket).
pub(crate) fn openflow_endpoint(sb: &Sandbox, bridge: &str) -> String {
    format!("unix:{}/{bridge}.mgmt", sb.dir().display())
}

/// The engine's configuration for a run: the Windows emulation, the run's strategy.
pub(crate) fn engine_config(sb: &Sandbox, plan: &RunPlan, sc: &Scenario) -> Result<EngineConfig> {
    let mut c = EngineConfig::new(
        sb.ovsdb_endpoint()
            .parse()
            .map_err(|e| anyhow!("OVSDB endpoint: {e}"))?,
        openflow_endpoint(sb, &plan.bridge)
            .parse()
            .map_err(|e| anyhow!("OpenFlow endpoint: {e}"))?,
        &plan.bridge,
        plan.journal_dir.clone(),
    );
    c.core = CoreConfig {
        initial_type: PENDING_TYPE.into(),
        not_ready_every: sc.not_ready_every,
        strategy: plan.kind.strategy(),
        ..CoreConfig::default()
    };
    c.config_digest = format!("podport demo: strategy {}", plan.kind.name());
    Ok(c)
}

/// Fails with install instructions when Open vSwitch is missing.
pub(crate) fn ensure_ovs() -> Result<()> {
    match find_ovs() {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "Open vSwitch is needed and was not found ({e}).\n\
             Install it with `sudo apt-get install openvswitch-switch` (Debian/Ubuntu) or, \
             from the repository, `./scripts/install-deps --ovs-only`, then run this again."
        ),
    }
}

/// Starts a private OVS (on a blocking thread: it waits for the daemons).
pub(crate) async fn start_sandbox() -> Result<Arc<Sandbox>> {
    let sb = tokio::task::spawn_blocking(|| Sandbox::start_with(SandboxOptions::default()))
        .await?
        .map_err(|e: SandboxError| anyhow!("starting the OVS sandbox: {e}"))?;
    Ok(Arc::new(sb))
}

/// Adds a bridge (returns once ovs-vswitchd created it).
pub(crate) fn add_bridge(sb: &Sandbox, bridge: &str) -> Result<()> {
    sb.vsctl(&[
        "add-br",
        bridge,
        "--",
        "set",
        "bridge",
        bridge,
        "datapath_type=dummy",
    ])
    .map_err(|e| anyhow!("adding bridge {bridge}: {e}"))?;
    Ok(())
}

/// Stops a sandbox on a blocking thread (it waits for the daemons to exit).
pub(crate) async fn stop_sandbox(sb: Arc<Sandbox>) {
    let _ = tokio::task::spawn_blocking(move || drop(sb)).await;
}

/// Stops an engine on a blocking thread (it joins the engine's thread and flushes the
/// journal).
pub(crate) async fn stop_engine(engine: Arc<Engine>) {
    let _ = tokio::task::spawn_blocking(move || match Arc::try_unwrap(engine) {
        Ok(e) => {
            if let Err(err) = e.shutdown() {
                tracing::warn!(error = %err, "engine shutdown");
            }
        }
        Err(e) => drop(e),
    })
    .await;
}

/// Runs `sc` with one engine per plan, all at once on the same sandbox. The engines are
/// stopped (journals flushed) before it returns.
pub(crate) async fn run_scenario(
    sb: &Sandbox,
    sc: &Scenario,
    plans: &[RunPlan],
    progress: &mut Progress,
) -> Result<ScenarioData> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant, PodEvent)>();
    let mut engines: Vec<Arc<Engine>> = Vec::new();
    let result = async {
        for (i, plan) in plans.iter().enumerate() {
            let cfg = engine_config(sb, plan, sc)?;
            let engine = tokio::task::spawn_blocking(move || Engine::start(cfg))
                .await?
                .with_context(|| format!("starting the {} engine", plan.kind.name()))?;
            let engine = Arc::new(engine);
            let events = engine.subscribe();
            let tx = tx.clone();
            // A thread per engine stamps each event as it arrives, independent of how busy
            // the async side is; it ends when the engine drops its subscribers.
            std::thread::Builder::new()
                .name("podport-demo-ev".into())
                .spawn(move || {
                    while let Ok(ev) = events.recv() {
                        if tx.send((i, Instant::now(), ev)).is_err() {
                            break;
                        }
                    }
                })
                .context("starting an event thread")?;
            engines.push(engine);
        }
        drive(sb, sc, plans, &engines, &mut rx, progress).await
    }
    .await;
    drop(tx);
    for e in engines {
        stop_engine(e).await;
    }
    result
}

async fn drive(
    sb: &Sandbox,
    sc: &Scenario,
    plans: &[RunPlan],
    engines: &[Arc<Engine>],
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Instant, PodEvent)>,
    progress: &mut Progress,
) -> Result<ScenarioData> {
    let mut runs: Vec<RunData> = plans.iter().map(|p| RunData::new(p, sc.pods)).collect();
    let drain =
        |runs: &mut Vec<RunData>,
         rx: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Instant, PodEvent)>| {
            while let Ok((i, at, ev)) = rx.try_recv() {
                runs[i].record(at, ev);
            }
        };

    // 1. Add every Pod (interleaved across the runs, so neither gets a head start).
    progress.say(&format!(
        "adding {} Pods per strategy (each its own OVSDB transaction, type {PENDING_TYPE}: no vNIC yet)",
        sc.pods
    ));
    let cpu_at_start = crate::cpu::cpu_sample();
    let adds_started = Instant::now();
    let mut in_flight = InFlight::new(sc.concurrency);
    for i in 1..=sc.pods {
        for (r, (plan, engine)) in plans.iter().zip(engines).enumerate() {
            let (engine, spec) = (engine.clone(), pod_spec(plan, i)?);
            in_flight
                .push(r, i, async move { engine.add_pod(spec).await })
                .await
                .with_context(|| format!("add_pod in the {} run", plan.kind.name()))?;
        }
    }
    in_flight.finish().await.context("add_pod")?;

    // 2. Wait until every port exists in OVSDB.
    let bound = Duration::from_secs(30) + Duration::from_millis(20) * sc.pods;
    let deadline = Instant::now() + bound;
    for (plan, engine) in plans.iter().zip(engines) {
        loop {
            let status = engine.status().await?;
            let creating: Vec<_> = status
                .iter()
                .filter(|p| p.phase == Phase::Creating)
                .collect();
            if creating.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} of {} ports of the {} run were not created in OVSDB within {bound:?} \
                     (e.g. {}: {})",
                    creating.len(),
                    sc.pods,
                    plan.kind.name(),
                    creating[0].ifname,
                    creating[0].last_error.as_deref().unwrap_or("no error")
                );
            }
            drain(&mut runs, rx);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // 3. Let the switch apply the adds and the engines hear that the ports cannot be opened
    // yet, so no "could not open" report of the pending type can arrive after an attach and
    // count as a failure: this is the Windows node's quiet state before the vNICs appear.
    let stamp = format!(
        "external_ids:podport-demo-sync={}",
        adds_started.elapsed().as_nanos()
    );
    tokio::task::block_in_place(|| sb.vsctl(&["set", "open_vswitch", ".", &stamp]))
        .map_err(|e| anyhow!("waiting for ovs-vswitchd to apply the adds: {e}"))?;
    for (run, engine) in runs.iter().zip(engines) {
        wait_ofport_known(engine, &run.names, deadline).await?;
    }

    // 4. Freeze the switch, then attach every Pod.
    let mut frozen = None;
    let mut frozen_at = None;
    if !sc.stall.is_zero() {
        frozen = Some(
            tokio::task::block_in_place(|| sb.freeze_vswitchd())
                .map_err(|e| anyhow!("freezing ovs-vswitchd: {e}"))?,
        );
        frozen_at = Some(Instant::now());
        progress.say(&format!(
            "ovs-vswitchd frozen (SIGSTOP) for {}: the attaches are committed to OVSDB, \
             but no port can be allocated before the thaw",
            secs(sc.stall)
        ));
    }
    progress.say(&format!(
        "attaching {} Pods per strategy (the vNIC exists: type -> internal)",
        sc.pods
    ));
    let attach_started = Instant::now();
    let mut in_flight = InFlight::new(sc.concurrency);
    for i in 1..=sc.pods {
        for (r, (plan, engine)) in plans.iter().zip(engines).enumerate() {
            let (engine, name) = (engine.clone(), ifname(&plan.prefix, i));
            runs[r].attached_at[i as usize - 1] = Some(Instant::now());
            let done = in_flight
                .push(
                    r,
                    i,
                    async move { engine.host_interface_created(&name).await },
                )
                .await
                .with_context(|| {
                    format!("host_interface_created in the {} run", plan.kind.name())
                })?;
            for (r, i, at) in done {
                runs[r].attach_acked_at[i as usize - 1] = Some(at);
            }
        }
    }
    for (r, i, at) in in_flight.finish().await.context("host_interface_created")? {
        runs[r].attach_acked_at[i as usize - 1] = Some(at);
    }
    progress.start_runs(&runs);

    // 5. Wait for readiness, thawing on time.
    let thaw_at = frozen_at.map(|t| t + sc.stall);
    let deadline = Instant::now() + sc.stall + sc.patience;
    let mut thawed_at = None;
    let mut cpu_at_ready = None;
    let mut engines_gone = false;
    loop {
        let now = Instant::now();
        if let (Some(t), true) = (thaw_at, frozen.is_some()) {
            if now >= t {
                if let Some(f) = frozen.take() {
                    tokio::task::block_in_place(|| f.try_thaw())
                        .map_err(|e| anyhow!("thawing ovs-vswitchd: {e}"))?;
                }
                thawed_at = Some(Instant::now());
                progress.say("ovs-vswitchd thawed (SIGCONT): the switch allocates the ports now");
            }
        }
        drain(&mut runs, rx);
        let status = match (frozen.is_some(), thaw_at) {
            (true, Some(t)) => format!(
                "ovs-vswitchd frozen, thaw in {:.1} s",
                t.saturating_duration_since(now).as_secs_f64()
            ),
            _ => "waiting for Ready".to_string(),
        };
        progress.update(&runs, &status);
        if frozen.is_none() && runs.iter().all(RunData::all_ready) {
            cpu_at_ready = Some(crate::cpu::cpu_sample());
            break;
        }
        if now >= deadline || engines_gone {
            break;
        }
        tokio::select! {
            ev = rx.recv() => match ev {
                Some((i, at, ev)) => runs[i].record(at, ev),
                None => engines_gone = true,
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    drop(frozen);
    progress.finish(&runs);
    Ok(ScenarioData {
        runs,
        adds_started,
        attach_started,
        frozen_at,
        thawed_at,
        cpu_at_start,
        cpu_at_ready,
    })
}

/// Requests of a scenario with at most `limit` in flight; each completion is stamped with
/// when it returned, as `(run, pod, at)`.
pub(crate) struct InFlight {
    limit: usize,
    set: tokio::task::JoinSet<(usize, u32, Instant, Result<(), podport_engine::EngineError>)>,
}

impl InFlight {
    pub(crate) fn new(limit: usize) -> InFlight {
        InFlight {
            limit: limit.max(1),
            set: tokio::task::JoinSet::new(),
        }
    }

    /// Starts `request` (of run `r`, Pod `i`) once fewer than the limit are in flight;
    /// returns the requests that completed meanwhile.
    pub(crate) async fn push<F>(
        &mut self,
        r: usize,
        i: u32,
        request: F,
    ) -> Result<Vec<(usize, u32, Instant)>>
    where
        F: std::future::Future<Output = Result<(), podport_engine::EngineError>> + Send + 'static,
    {
        let mut done = Vec::new();
        while self.set.len() >= self.limit {
            done.push(self.next().await?);
        }
        self.set.spawn(async move {
            let result = request.await;
            (r, i, Instant::now(), result)
        });
        Ok(done)
    }

    async fn next(&mut self) -> Result<(usize, u32, Instant)> {
        match self.set.join_next().await {
            Some(Ok((r, i, at, Ok(())))) => Ok((r, i, at)),
            Some(Ok((_, i, _, Err(e)))) => Err(anyhow!("Pod {i}: {e}")),
            Some(Err(e)) => Err(anyhow!("a request task failed: {e}")),
            None => Err(anyhow!("no request in flight")),
        }
    }

    /// Waits for every request still in flight.
    pub(crate) async fn finish(mut self) -> Result<Vec<(usize, u32, Instant)>> {
        let mut done = Vec::new();
        while !self.set.is_empty() {
            done.push(self.next().await?);
        }
        Ok(done)
    }
}

/// Waits until the engine has journaled an OVSDB `ofport` for each of `names` (-1 for a
/// pending port): it has then heard everything the switch said about the adds. The records
/// are read rather than the folded state, because an update that overtakes the create
/// transaction's reply is journaled before its port's PodPortCreated, and the fold skips it.
pub(crate) async fn wait_ofport_known(
    engine: &Engine,
    names: &[String],
    deadline: Instant,
) -> Result<()> {
    let records = engine.journal().subscribe(0)?;
    let mut missing: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    loop {
        while let Ok(rec) = records.try_recv() {
            if let podport_journal::Event::OvsdbInterfaceUpdate {
                ifname,
                ofport: Some(_),
                ..
            } = &rec.event
            {
                missing.remove(ifname.as_str());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "ovs-vswitchd did not report {} of the new ports in OVSDB in time",
                missing.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Progress on stderr: bars when stderr is a terminal, else a plain line at most every
/// `plain_every`.
pub(crate) struct Progress {
    started: Instant,
    /// `Some` when stderr is a terminal.
    multi: Option<MultiProgress>,
    /// The status line and one bar per run, while a scenario waits.
    bars: Option<(ProgressBar, Vec<ProgressBar>)>,
    plain_every: Duration,
    last_plain: Option<Instant>,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub(crate) fn new(plain_every: Duration) -> Progress {
        Progress {
            started: Instant::now(),
            multi: std::io::stderr()
                .is_terminal()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: None,
            plain_every,
            last_plain: None,
        }
    }

    /// A step of the scenario, as a line of its own (above the bars, if any).
    pub(crate) fn say(&mut self, line: &str) {
        let line = format!("[{:>5.1} s] {line}", self.started.elapsed().as_secs_f64());
        match (&self.multi, &self.bars) {
            (Some(m), Some(_)) => {
                let _ = m.println(line);
            }
            _ => eprintln!("{line}"),
        }
    }

    fn start_runs(&mut self, runs: &[RunData]) {
        self.last_plain = None;
        let Some(multi) = &self.multi else { return };
        let status = multi.add(ProgressBar::new_spinner());
        status.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed:>3}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        status.enable_steady_tick(Duration::from_millis(120));
        let style = ProgressStyle::with_template(
            "{prefix:>18} [{bar:30.green/blue}] {pos:>5}/{len} ready  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = runs
            .iter()
            .map(|r| {
                let bar =
                    multi.add(ProgressBar::new(r.names.len() as u64).with_style(style.clone()));
                bar.set_prefix(r.kind.label());
                bar
            })
            .collect();
        self.bars = Some((status, bars));
    }

    fn update(&mut self, runs: &[RunData], status: &str) {
        if let Some((line, bars)) = &self.bars {
            line.set_message(status.to_string());
            for (bar, r) in bars.iter().zip(runs) {
                bar.set_position(r.ready as u64);
                bar.set_message(run_counts(r));
            }
            return;
        }
        let now = Instant::now();
        if self
            .last_plain
            .is_some_and(|t| now.duration_since(t) < self.plain_every)
        {
            return;
        }
        self.last_plain = Some(now);
        let parts: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{}: {}/{} ready, {}",
                    r.kind.label(),
                    r.ready,
                    r.names.len(),
                    run_counts(r)
                )
            })
            .collect();
        eprintln!(
            "[{:>5.1} s] {status} | {}",
            self.started.elapsed().as_secs_f64(),
            parts.join(" | ")
        );
    }

    fn finish(&mut self, runs: &[RunData]) {
        if let Some((line, bars)) = self.bars.take() {
            // Cleared rather than left on screen: finished bars would stay pinned below every
            // later line (the bench runs several scenarios). The plain line below keeps the
            // final counts.
            for bar in bars {
                bar.finish_and_clear();
            }
            line.finish_and_clear();
            if let Some(m) = &self.multi {
                let _ = m.clear();
            }
        }
        self.last_plain = None;
        self.update(runs, "done");
    }
}

fn run_counts(r: &RunData) -> String {
    format!(
        "{} failed attaches ({} Pods), {} not-ready events",
        r.failed_events,
        r.failed_pods(),
        r.not_ready_events
    )
}

/// p50, p90, p99 and max of a sample (nearest rank).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pct {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles; `None` for an empty sample.
pub(crate) fn percentiles(mut v: Vec<f64>) -> Option<Pct> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    Some(Pct {
        p50: at(50.0),
        p90: at(90.0),
        p99: at(99.0),
        max: v[v.len() - 1],
    })
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "850 ms", "8.05 s".
pub(crate) fn fmt_ms(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.0} ms")
    } else {
        format!("{:.2} s", v / 1000.0)
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Rounded to 0.1 ms for JSON.
fn round_ms(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The journal directories: under `keep` (which must not hold a journal of the same
/// strategy already, or the engine would restore its old Pods), else in a temporary
/// directory removed at the end.
fn journal_dirs(
    keep: Option<&Path>,
    kinds: &[StrategyKind],
) -> Result<(Option<tempfile::TempDir>, Vec<PathBuf>)> {
    let (tmp, base) = match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating --keep directory {}", dir.display()))?;
            (None, dir.to_path_buf())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("podport-demo-")
                .tempdir()
                .context("creating a temporary journal directory")?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let mut dirs = Vec::new();
    for k in kinds {
        let d = base.join(k.name());
        let used = std::fs::read_dir(&d).is_ok_and(|mut it| it.next().is_some());
        if used {
            bail!(
                "{} already holds a journal; give --keep an empty or new directory \
                 (the engine would restore the old Pods)",
                d.display()
            );
        }
        dirs.push(d);
    }
    Ok((tmp, dirs))
}

pub async fn run(args: Args) -> Result<()> {
    let kinds = if args.compare {
        vec![StrategyKind::PortStatus, StrategyKind::OvsdbWait]
    } else {
        vec![args.strategy]
    };
    let (_tmp, dirs) = journal_dirs(args.keep.as_deref(), &kinds)?;
    ensure_ovs()?;
    let mut progress = Progress::new(Duration::from_secs(1));
    progress.say("starting a private Open vSwitch (userspace, dummy datapath)");
    let sb = start_sandbox().await?;
    let plans: Vec<RunPlan> = kinds
        .iter()
        .zip(dirs)
        .enumerate()
        .map(|(i, (&kind, journal_dir))| RunPlan {
            kind,
            // With --compare the legacy engine gets a bridge of its own, so the two never
            // share flows.
            bridge: if i == 0 { "br-int" } else { "br-legacy" }.into(),
            journal_dir,
            prefix: match kind {
                StrategyKind::PortStatus => "ps-",
                StrategyKind::OvsdbWait => "ow-",
            }
            .into(),
            net: 10 + i as u8,
        })
        .collect();
    for p in plans.iter().filter(|p| p.bridge != sb.bridge()) {
        tokio::task::block_in_place(|| add_bridge(&sb, &p.bridge))?;
    }
    progress.say(&format!(
        "sandbox in {}; engines: {}",
        sb.dir().display(),
        plans
            .iter()
            .map(|p| format!("{} on {}", p.kind.label(), p.bridge))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let scenario = Scenario {
        pods: args.pods,
        stall: args.stall,
        patience: PATIENCE,
        // Short, so the demo shows the engine reporting "not ready yet" while it waits.
        not_ready_every: Duration::from_secs(1),
        concurrency: 1,
    };
    let data = tokio::select! {
        d = run_scenario(&sb, &scenario, &plans, &mut progress) => d,
        // Dropping the scenario thaws the switch and stops the engines; the sandbox is then
        // stopped below. Without this, Ctrl-C would leave a frozen ovs-vswitchd behind.
        _ = tokio::signal::ctrl_c() => Err(anyhow!(INTERRUPTED)),
    };
    let data = match data {
        Ok(d) => d,
        Err(e) => {
            if e.to_string() != INTERRUPTED {
                eprintln!("OVS log tail:\n{}", sb.log_tail(15));
            }
            stop_sandbox(sb).await;
            return Err(e);
        }
    };

    let summary = summary_text(&scenario, &data);
    if args.json {
        eprint!("{summary}");
        println!("{}", json_report(&scenario, &data));
    } else {
        print!("{summary}");
    }
    if args.keep.is_some() {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "\njournals kept in:");
        for p in &plans {
            let _ = writeln!(err, "  {}", p.journal_dir.display());
        }
        let _ = writeln!(
            err,
            "look at them with (from the repository: cargo run -q -p podport-journal -- ...):\n  \
             podport-journal timeline {} --svg stall.svg\n  \
             podport-journal state {}",
            plans[0].journal_dir.display(),
            plans[0].journal_dir.display()
        );
    }
    let not_ready: Vec<String> = data
        .runs
        .iter()
        .filter(|r| r.kind == StrategyKind::PortStatus && !r.all_ready())
        .map(|r| {
            let missing: Vec<&str> = r
                .names
                .iter()
                .zip(&r.ready_at)
                .filter(|(_, t)| t.is_none())
                .map(|(n, _)| n.as_str())
                .take(5)
                .collect();
            format!(
                "{} of {} portstatus Pods not ready (e.g. {})",
                r.names.len() - r.ready,
                r.names.len(),
                missing.join(", ")
            )
        })
        .collect();
    if !not_ready.is_empty() {
        eprintln!("OVS log tail:\n{}", sb.log_tail(15));
    }
    stop_sandbox(sb).await;
    if !not_ready.is_empty() {
        bail!(
            "{} within {} after the stall",
            not_ready.join("; "),
            secs(PATIENCE)
        );
    }
    Ok(())
}

/// The side-by-side summary.
fn summary_text(sc: &Scenario, data: &ScenarioData) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |label: &str, f: &dyn Fn(&RunData) -> String| {
        rows.push((label.to_string(), data.runs.iter().map(f).collect()));
    };
    row("", &|r| r.kind.label().to_string());
    row("Pods ready", &|r| format!("{}/{}", r.ready, r.names.len()));
    row("Pods whose attach failed", &|r| r.failed_pods().to_string());
    row("failed attaches (events)", &|r| r.failed_events.to_string());
    row("not-ready events", &|r| r.not_ready_events.to_string());
    let pcts: Vec<Option<Pct>> = data
        .runs
        .iter()
        .map(|r| percentiles(r.time_to_ready_ms()))
        .collect();
    let pct_row = |label: &str, f: fn(&Pct) -> f64| -> (String, Vec<String>) {
        (
            label.to_string(),
            pcts.iter()
                .map(|p| p.as_ref().map_or("-".into(), |p| fmt_ms(f(p))))
                .collect(),
        )
    };
    rows.push((
        "time to ready, from the attach:".into(),
        vec![String::new(); data.runs.len()],
    ));
    rows.push(pct_row("  p50", |p| p.p50));
    rows.push(pct_row("  p90", |p| p.p90));
    rows.push(pct_row("  p99", |p| p.p99));
    rows.push(pct_row("  max", |p| p.max));
    if let Some(thaw) = data.thawed_at {
        rows.push((
            "p99 after the thaw".into(),
            data.runs
                .iter()
                .map(|r| percentiles(r.ready_after_ms(thaw)).map_or("-".into(), |p| fmt_ms(p.p99)))
                .collect(),
        ));
    }
    let label_w = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let col_w = rows
        .iter()
        .flat_map(|(_, c)| c.iter().map(String::len))
        .max()
        .unwrap_or(0)
        .max(12);
    let stall = if sc.stall.is_zero() {
        "no stall".to_string()
    } else {
        format!(
            "ovs-vswitchd frozen {} from right before the attaches",
            secs(sc.stall)
        )
    };
    let mut out = format!(
        "\npodport demo: {} Pods per strategy, {stall}; ports open only after the attach \
         (Windows emulation)\n\n",
        sc.pods
    );
    for (label, cells) in &rows {
        out.push_str(&format!("{label:<label_w$}"));
        for c in cells {
            out.push_str(&format!("  {c:>col_w$}"));
        }
        // A label row has empty cells: no trailing blanks.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    for r in &data.runs {
        if let Some(e) = &r.first_error {
            out.push_str(&format!("\nfirst failure ({}): {e}", r.kind.name()));
        }
    }
    if data.runs.iter().any(|r| r.first_error.is_some()) {
        out.push('\n');
    }
    out
}

/// `{"runs":[{"strategy":..,"pods":..,"ready":..,"failed":..,"not_ready_events":..,
/// "p50_ms":..,"p90_ms":..,"p99_ms":..,"max_ms":..}, ...]}` (`null` times when no Pod was
/// ready), plus the stall and each run's failure count and first error.
fn json_report(sc: &Scenario, data: &ScenarioData) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = data
        .runs
        .iter()
        .map(|r| {
            let p = percentiles(r.time_to_ready_ms());
            let f = |g: fn(&Pct) -> f64| p.as_ref().map(|p| round_ms(g(p)));
            json!({
                "strategy": r.kind.name(),
                "pods": r.names.len(),
                "ready": r.ready,
                "failed": r.failed_pods(),
                "failed_events": r.failed_events,
                "not_ready_events": r.not_ready_events,
                "p50_ms": f(|p| p.p50),
                "p90_ms": f(|p| p.p90),
                "p99_ms": f(|p| p.p99),
                "max_ms": f(|p| p.max),
                "first_error": r.first_error,
            })
        })
        .collect();
    json!({ "stall_s": sc.stall.as_secs_f64(), "runs": runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles(v).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        let p = percentiles(vec![7.0]).unwrap();
        assert_eq!((p.p50, p.p99, p.max), (7.0, 7.0, 7.0));
        assert!(percentiles(Vec::new()).is_none());
    }

    #[test]
    fn stall_seconds_are_checked() {
        assert_eq!(parse_secs("8").unwrap(), Duration::from_secs(8));
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["-1", "nan", "inf", "x", "4000"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pod_names_fit_the_wire_and_addresses_are_valid() {
        let plan = RunPlan {
            kind: StrategyKind::OvsdbWait,
            bridge: "br-legacy".into(),
            journal_dir: PathBuf::new(),
            prefix: "ow-".into(),
            net: 11,
        };
        let s = pod_spec(&plan, MAX_PODS).unwrap();
        assert!(s.ifname.len() <= 15);
        podport_engine::spec::validate(&s).unwrap();
    }
}
