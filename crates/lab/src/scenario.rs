//! The one scenario of the demo and the bench: a private OVS, its bridges and endpoints,
//! the Pods of a run, the engine's configuration per strategy, the runner that adds N Pods,
//! optionally freezes the switch right before attaching them all and waits for readiness,
//! its progress display, the figures (percentiles) and the CPU sampling.
//!
//! The sandbox emulates a Windows node: every Pod port is created with a type OVS cannot open
//! ([`PENDING_TYPE`]), so it has no OpenFlow port until the attach switches it to `internal`,
//! as when the Pod's vNIC does not exist yet.

mod cpu;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use podport_engine::core::{CoreConfig, Strategy};
use podport_engine::Phase;
use podport_engine::{Engine, EngineConfig, PodEvent, PodSpec, Readiness};
pub(crate) use podport_ovs_sandbox::PENDING_TYPE;
use podport_ovs_sandbox::{find_ovs, Datapath, Sandbox, SandboxError, SandboxOptions};

pub(crate) use cpu::{cpu_sample, CpuSample};

/// The legacy strategy's OVSDB `wait` and its retry interval, as in the original agent.
pub(crate) const LEGACY_TIMEOUT: Duration = Duration::from_secs(5);

/// The error of a run stopped by Ctrl-C (no OVS logs are shown for it).
pub(crate) const INTERRUPTED: &str = "interrupted";

/// Most Pods per run: interface names, addresses and MACs are derived from the index.
pub(crate) const MAX_PODS: u32 = 10_000;

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
    /// When the engines count a port as ready: `live`, except on the real datapath, where
    /// a Pod's TAP moved into its namespace is reported LINK_DOWN (`live-or-link-down`).
    pub readiness: Readiness,
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
    pub(crate) fn last_ready(&self) -> Option<Instant> {
        self.ready_at.iter().flatten().max().copied()
    }
}

/// What a scenario measured.
pub(crate) struct ScenarioData {
    pub runs: Vec<RunData>,
    pub adds_started: Instant,
    pub attach_started: Instant,
    pub frozen_at: Option<Instant>,
    pub thawed_at: Option<Instant>,
    /// CPU of this process when the first Pod was added and when the last one was ready.
    pub cpu_at_start: CpuSample,
    pub cpu_at_ready: Option<CpuSample>,
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

/// The engine's configuration for a run: the Windows emulation, the run's strategy.
pub(crate) fn engine_config(sb: &Sandbox, plan: &RunPlan, sc: &Scenario) -> Result<EngineConfig> {
    let mut c = EngineConfig::new(
        sb.ovsdb_endpoint()
            .parse()
            .map_err(|e| anyhow!("OVSDB endpoint: {e}"))?,
        sb.openflow_endpoint_of(&plan.bridge)
            .parse()
            .map_err(|e| anyhow!("OpenFlow endpoint: {e}"))?,
        &plan.bridge,
        plan.journal_dir.clone(),
    );
    c.core = CoreConfig {
        initial_type: PENDING_TYPE.into(),
        not_ready_every: sc.not_ready_every,
        strategy: plan.kind.strategy(),
        readiness: sc.readiness,
        ..CoreConfig::default()
    };
    c.config_digest = format!("podport-lab: strategy {}", plan.kind.name());
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

/// Starts a private OVS (on a blocking thread: it waits for the daemons) on `datapath`;
/// on [`Datapath::Netdev`] its bridge has a name unique on the host (it is a host device).
pub(crate) async fn start_sandbox(datapath: Datapath) -> Result<Arc<Sandbox>> {
    let opts = match datapath {
        Datapath::Dummy => SandboxOptions::default(),
        Datapath::Netdev => SandboxOptions::dataplane(),
    };
    let sb = tokio::task::spawn_blocking(move || Sandbox::start_with(opts))
        .await?
        .map_err(|e: SandboxError| anyhow!("starting the OVS sandbox: {e}"))?;
    Ok(Arc::new(sb))
}

/// Adds a bridge (returns once ovs-vswitchd created it).
pub(crate) fn add_bridge(sb: &Sandbox, bridge: &str) -> Result<()> {
    sb.add_bridge(bridge)
        .map_err(|e| anyhow!("adding bridge {bridge}: {e}"))
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
    run_scenario_then(sb, sc, plans, progress, async |_, _| ())
        .await
        .map(|(data, ())| data)
}

/// [`run_scenario`], then `then` on what it measured while the engines still run (their
/// flows in place), before they are stopped.
pub(crate) async fn run_scenario_then<T>(
    sb: &Sandbox,
    sc: &Scenario,
    plans: &[RunPlan],
    progress: &mut Progress,
    then: impl AsyncFnOnce(&ScenarioData, &mut Progress) -> T,
) -> Result<(ScenarioData, T)> {
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
        let data = drive(sb, sc, plans, &engines, &mut rx, progress).await?;
        let after = then(&data, progress).await;
        Ok((data, after))
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
    let cpu_at_start = cpu_sample();
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
            cpu_at_ready = Some(cpu_sample());
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

pub(crate) fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
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
