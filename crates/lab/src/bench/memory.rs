//! Memory of an engine restored from a journal of many ports: the journal written, then read
//! back by a fresh `podport-lab bench --restore-probe` process whose RSS is the figure.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use podport_engine::core::{Core, CoreConfig};
use podport_journal::{
    now_micros, Event, Journal, JournalConfig, Outcome, PodRef, PortDesc, PortReason,
};
use podport_openflow::PortState;
use serde_json::json;

use crate::scenario::{ms, PENDING_TYPE};

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
pub(super) fn proc_status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Writes a journal of `ports` ready ports: per port PodAdded, PodPortCreated,
/// HostInterfaceCreated, InterfaceTypeChanged, PortStatus (ADD, LIVE), FlowsInstalled and
/// PodReady, with realistic lengths
/// (64-hex container ids, UUIDs, 15-byte interface names).
pub(super) fn write_journal(dir: &Path, ports: u32) -> Result<()> {
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
pub(super) struct MemoryResult {
    pub(super) ports: usize,
    pub(super) rss_before_kib: u64,
    pub(super) rss_after_kib: u64,
    pub(super) hwm_kib: u64,
    pub(super) open_ms: f64,
    pub(super) restore_ms: f64,
    /// The journal's page cache bound the probe ran with.
    pub(super) cache_capacity: u64,
}

pub(super) fn measure_memory(dir: &Path, ports: u32) -> Result<MemoryResult> {
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
pub(super) fn restore_probe(dir: &Path) -> Result<()> {
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
