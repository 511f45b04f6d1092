//! The bench's Markdown: the machine it ran on, the table of figures against their baselines
//! and goals, and the section of `docs/benchmarks.md` it replaces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use podport_ovs_sandbox::Sandbox;

use super::memory::MemoryResult;
use super::{journal_io, Args, Measured, RunSummary, Sizes, END_MARKER, START_MARKER};
use crate::scenario::{fmt_ms, ms, percentiles, Pct, PENDING_TYPE};

/// Where the figures were taken.
pub(super) struct Machine {
    pub(super) cores: usize,
    pub(super) cpu: String,
    pub(super) memory: String,
    pub(super) ovs: String,
    pub(super) date: String,
    pub(super) profile: &'static str,
}

impl Machine {
    pub(super) fn probe(ovs: String) -> Machine {
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

pub(super) fn ovs_version(sb: &Sandbox) -> String {
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
pub(super) fn today() -> String {
    date_text(time::OffsetDateTime::now_utc().date())
}

pub(super) fn date_text(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Milliseconds with the precision a sub-millisecond figure needs.
pub(super) fn fine_ms(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() < 10.0 {
        format!("{v:.2} ms")
    } else {
        fmt_ms(v)
    }
}

pub(super) fn pct_text(p: &Option<Pct>) -> String {
    match p {
        Some(p) => format!("p50 {}, p99 {}", fine_ms(p.p50), fine_ms(p.p99)),
        None => "no Pod ready".into(),
    }
}

pub(super) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "-".into()
    }
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// "met" or "not met" against a goal.
pub(super) fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// The marked section: heading, command, machine, table, and what each row includes.
pub(super) fn render(
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
pub(super) fn write_section(path: &Path, section: &str) -> Result<()> {
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
pub(super) fn splice(old: Option<&str>, section: &str) -> Result<String> {
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
