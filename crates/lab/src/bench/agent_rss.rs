//! The memory of a real `podport agent` process: started against the sandbox on its own
//! bridge, its RSS read from `/proc/PID/status` once it answers (idle, the baseline) and once
//! every one of N Pods, added and attached over its control socket as CNI calls would be, is
//! ready.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use podport_control::{Client, Endpoint, Request};
use podport_engine::PodSpec;
use podport_ovs_sandbox::Sandbox;

use crate::podport_bin::podport_bin;
use crate::scenario::{add_bridge, pod_spec, RunPlan, StrategyKind};

/// Control connections used at once (CNI calls run in parallel on a node).
const CONNECTIONS: u32 = 8;

pub(crate) struct AgentRss {
    pub pods: u32,
    pub idle_kib: u64,
    pub ready_kib: u64,
    pub hwm_kib: u64,
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How long one control connection of the bench may take for all its requests.
const CONTROL_WITHIN: Duration = Duration::from_secs(120);

fn add(s: &PodSpec) -> Request {
    Request::Add {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        container_id: s.container_id.clone(),
        ifname: s.ifname.clone(),
        ips: s.ips.clone(),
        mac: s.mac.to_string(),
    }
}

pub(crate) async fn run(sb: &Sandbox, work: &Path, pods: u32) -> Result<AgentRss> {
    let bridge = "br-rss";
    tokio::task::block_in_place(|| add_bridge(sb, bridge))?;
    std::fs::create_dir_all(work)?;
    let ctl = work.join("control.sock");
    let exe = podport_bin()?;
    let mut child = std::process::Command::new(&exe)
        .arg("agent")
        .arg("--ovsdb")
        .arg(sb.ovsdb_endpoint())
        .arg("--openflow")
        .arg(sb.openflow_endpoint_of(bridge))
        .arg("--bridge")
        .arg(bridge)
        .arg("--journal")
        .arg(work.join("journal"))
        .arg("--control")
        .arg(format!("unix:{}", ctl.display()))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} agent", exe.display()))?;
    let pid = child.id();
    let result = drive(&ctl, pid, pods).await;
    // SIGTERM: the agent flushes and exits.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let stop_by = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < stop_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = tokio::task::block_in_place(|| sb.vsctl(&["--if-exists", "del-br", bridge]));
    result
}

async fn drive(ctl: &Path, pid: u32, pods: u32) -> Result<AgentRss> {
    let ep = Endpoint::Unix(ctl.to_path_buf());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = loop {
        if let Ok(mut c) = Client::connect(&ep, CONTROL_WITHIN).await {
            if c.health().await.is_ok() {
                break c;
            }
        }
        if Instant::now() > deadline {
            bail!("the agent did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Idle: the engine connected and settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = status_kib(pid, "VmRSS").ok_or_else(|| anyhow!("no VmRSS for {pid}"))?;
    let plan = RunPlan {
        kind: StrategyKind::PortStatus,
        bridge: "br-rss".into(),
        journal_dir: Default::default(),
        prefix: "m-".into(),
        net: 30,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let mut conn = Client::connect(&ep, CONTROL_WITHIN).await?;
        let specs: Vec<_> = (1..=pods)
            .filter(|i| i % CONNECTIONS == c)
            .map(|i| pod_spec(&plan, i))
            .collect::<Result<_>>()?;
        tasks.spawn(async move {
            for s in specs {
                conn.call(&add(&s)).await?;
                conn.call(&Request::Attach { ifname: s.ifname }).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (ports, _) = first.status().await?;
        let ready = ports.iter().filter(|p| p.ready).count();
        if ready >= pods as usize {
            break;
        }
        if Instant::now() > deadline {
            bail!("{ready} of {pods} Pods of the agent were ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Settled: the last flows confirmed, the journal flushed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(AgentRss {
        pods,
        idle_kib,
        ready_kib: status_kib(pid, "VmRSS").ok_or_else(|| anyhow!("no VmRSS for {pid}"))?,
        hwm_kib: status_kib(pid, "VmHWM").unwrap_or(0),
    })
}
