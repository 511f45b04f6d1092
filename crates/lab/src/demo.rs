//! `podport-lab demo`: a private OVS, the engine in-process, N Pods, an optional switch
//! stall, and a summary of time to ready.
//!
//! With `--stall` ovs-vswitchd is frozen (SIGSTOP) right *before* the attaches are issued:
//! every type change is committed to OVSDB at once, but no port can be allocated before the
//! thaw. That is the mission's failure in its purest form: each attach of the legacy strategy
//! starts its 5 s OVSDB `wait` on a switch that will not answer in time, so with a stall over
//! 5 s every one of them fails (`"wait" timed out after 5012 ms`) and waits 5 s more for its
//! retry, while `portstatus` keeps waiting and is ready as soon as the switch announces the
//! port. (Freezing right after the attaches instead would let a racy, machine-dependent share
//! of the ports be allocated before the freeze, which blurs the comparison.)
//!
//! The switch runs OVS's userspace `netdev` datapath when it can (root, network namespaces:
//! see `neighbours::unavailable`), else the dummy one, saying why. On the real datapath,
//! once the Pods are ready, each is moved into a network namespace of its own and pings its
//! neighbour through podport's flows (the bridges have no NORMAL flow): `N/N Pods reach their
//! neighbour`. Its engines count LINK_DOWN as ready (`live-or-link-down`), since OVS reports
//! a TAP moved into a namespace that way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use podport_engine::Readiness;
use podport_ovs_sandbox::{Datapath, Sandbox};

use crate::neighbours::{self, Reach};
use crate::scenario::{
    add_bridge, ensure_ovs, fmt_ms, percentiles, run_scenario_then, secs, start_sandbox,
    stop_sandbox, Pct, Progress, RunData, RunPlan, Scenario, ScenarioData, StrategyKind,
    INTERRUPTED, MAX_PODS,
};

/// How long the demo keeps waiting for readiness after the stall.
const PATIENCE: Duration = Duration::from_secs(60);

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
    /// The switch's datapath: the real one (netdev: Pods in network namespaces ping their
    /// neighbour) when root and network namespaces are available, else the dummy one.
    #[arg(long, value_enum, default_value = "auto", overrides_with = "datapath")]
    datapath: DatapathChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DatapathChoice {
    /// netdev when possible, else dummy (saying why).
    Auto,
    /// netdev, or fail saying why not.
    Netdev,
    /// dummy: no packets, no ping check.
    Dummy,
}

/// Interface-name prefix of a run on the real datapath, where every Pod's port is a host
/// device: `p<pid in hex><tag>`, so demos running at once (the tests) never collide. `tag`
/// is not a hex digit, so no two (pid, tag, Pod) give the same name; at most 8 bytes, which
/// leaves 5 digits for the Pod within Linux's 15.
fn host_prefix(tag: char) -> String {
    debug_assert!(!tag.is_ascii_hexdigit());
    format!("p{:x}{tag}", std::process::id())
}

/// A bridge name unique on the host, for a second bridge on the real datapath.
fn host_bridge() -> String {
    podport_ovs_sandbox::unique_name("ppbr")
}

/// Deletes the bridge's flows (the default NORMAL one), so only podport's flows move packets.
fn only_podport_flows(sb: &Sandbox, bridge: &str) -> Result<()> {
    sb.ofctl(&["del-flows", bridge])
        .map(drop)
        .map_err(|e| anyhow!("deleting the default flow of {bridge}: {e}"))
}

/// The datapath the demo runs on, and why not the real one.
struct DatapathUse {
    datapath: Datapath,
    /// Why the dummy datapath (`None` on the real one).
    why_dummy: Option<String>,
}

impl DatapathUse {
    fn choose(choice: DatapathChoice) -> Result<DatapathUse> {
        let why_dummy = match choice {
            DatapathChoice::Dummy => Some("--datapath dummy".to_string()),
            DatapathChoice::Auto => neighbours::unavailable(),
            DatapathChoice::Netdev => match neighbours::unavailable() {
                None => None,
                Some(why) => bail!("the real datapath cannot be used: {why}"),
            },
        };
        let datapath = match why_dummy {
            None => Datapath::Netdev,
            Some(_) => Datapath::Dummy,
        };
        Ok(DatapathUse {
            datapath,
            why_dummy,
        })
    }

    fn readiness(&self) -> Readiness {
        match self.datapath {
            Datapath::Netdev => Readiness::LiveOrLinkDown,
            Datapath::Dummy => Readiness::Live,
        }
    }

    /// The line that says which datapath, and why when it is the dummy one.
    fn announcement(&self) -> String {
        match &self.why_dummy {
            None => {
                "starting a private Open vSwitch (userspace, netdev datapath: real packets)".into()
            }
            Some(why) => format!(
                "dummy datapath ({why}): no packets cross it, so no ping check; starting a \
                 private Open vSwitch (userspace, dummy datapath)"
            ),
        }
    }

    /// The legend line of the summary.
    fn legend(&self) -> String {
        match &self.why_dummy {
            None => "datapath netdev (real packets through podport's flows only: no NORMAL \
                     flow); readiness live-or-link-down (OVS reports a TAP moved into a Pod's \
                     namespace LINK_DOWN)"
                .into(),
            Some(why) => format!("datapath dummy ({why}); readiness live"),
        }
    }
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
    let dp = DatapathUse::choose(args.datapath)?;
    let mut progress = Progress::new(Duration::from_secs(1));
    progress.say(&dp.announcement());
    let sb = start_sandbox(dp.datapath).await?;
    let real = dp.datapath == Datapath::Netdev;
    let plans: Vec<RunPlan> = kinds
        .iter()
        .zip(dirs)
        .enumerate()
        .map(|(i, (&kind, journal_dir))| RunPlan {
            kind,
            // With --compare the legacy engine gets a bridge of its own, so the two never
            // share flows. On the real datapath bridges and ports are host devices, whose
            // names must not collide with another demo's.
            bridge: match (i, real) {
                (0, _) => sb.bridge().into(),
                (_, false) => "br-legacy".into(),
                (_, true) => host_bridge(),
            },
            journal_dir,
            prefix: match (kind, real) {
                (StrategyKind::PortStatus, false) => "ps-".into(),
                (StrategyKind::OvsdbWait, false) => "ow-".into(),
                (StrategyKind::PortStatus, true) => host_prefix('s'),
                (StrategyKind::OvsdbWait, true) => host_prefix('w'),
            },
            net: 10 + i as u8,
        })
        .collect();
    for p in plans.iter().filter(|p| p.bridge != sb.bridge()) {
        tokio::task::block_in_place(|| add_bridge(&sb, &p.bridge))?;
    }
    if real {
        for p in &plans {
            tokio::task::block_in_place(|| only_podport_flows(&sb, &p.bridge))?;
        }
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
        readiness: dp.readiness(),
    };
    let check = async |data: &ScenarioData, progress: &mut Progress| -> Vec<Reach> {
        match &dp.why_dummy {
            Some(why) => vec![Reach::Unchecked(format!("dummy datapath ({why})")); plans.len()],
            None => {
                progress.say(
                    "each ready Pod's TAP moves into a network namespace of its own (MAC and \
                     address from its PodSpec); each Pod pings its neighbour (i -> i+1)",
                );
                neighbours::check(&sb, &plans, &data.runs).await
            }
        }
    };
    let data = tokio::select! {
        d = run_scenario_then(&sb, &scenario, &plans, &mut progress, check) => d,
        // Dropping the scenario thaws the switch and stops the engines; the sandbox is then
        // stopped below. Without this, Ctrl-C would leave a frozen ovs-vswitchd behind.
        _ = tokio::signal::ctrl_c() => Err(anyhow!(INTERRUPTED)),
    };
    let (data, reach) = match data {
        Ok(d) => d,
        Err(e) => {
            if e.to_string() != INTERRUPTED {
                eprintln!("OVS log tail:\n{}", sb.log_tail(15));
            }
            stop_sandbox(sb).await;
            return Err(e);
        }
    };

    let summary = summary_text(&scenario, &data, &dp, &reach);
    if args.json {
        eprint!("{summary}");
        println!("{}", json_report(&scenario, &data, &dp, &reach));
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
    // The ready portstatus Pods must reach their neighbours; the legacy run's figure is
    // shown, not judged.
    for (r, reach) in data.runs.iter().zip(&reach) {
        if let (
            StrategyKind::PortStatus,
            Reach::Pinged {
                reached,
                pods,
                first_failure: Some(why),
            },
        ) = (r.kind, reach)
        {
            bail!("only {reached}/{pods} portstatus Pods reach their neighbour (first: {why})");
        }
    }
    Ok(())
}

/// The side-by-side summary.
fn summary_text(sc: &Scenario, data: &ScenarioData, dp: &DatapathUse, reach: &[Reach]) -> String {
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
    rows.push((
        "Pods reach their neighbour".into(),
        reach.iter().map(Reach::cell).collect(),
    ));
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
        "\npodport-lab demo: {} Pods per strategy, {stall}; ports open only after the attach \
         (Windows emulation)\n{}\n\n",
        sc.pods,
        dp.legend()
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
    out.push('\n');
    for (r, reach) in data.runs.iter().zip(reach) {
        match reach {
            Reach::Pinged {
                reached,
                pods,
                first_failure,
            } => {
                out.push_str(&format!(
                    "{reached}/{pods} Pods reach their neighbour ({}: Pod i pings Pod i+1)\n",
                    r.kind.name()
                ));
                if let Some(why) = first_failure {
                    out.push_str(&format!("  first that did not: {why}\n"));
                }
            }
            Reach::Unchecked(why) => {
                out.push_str(&format!("{}: no ping figure: {why}\n", r.kind.name()))
            }
        }
    }
    out
}

/// `{"runs":[{"strategy":..,"pods":..,"ready":..,"failed":..,"not_ready_events":..,
/// "p50_ms":..,"p90_ms":..,"p99_ms":..,"max_ms":..}, ...]}` (`null` times when no Pod was
/// ready), plus the stall and each run's failure count and first error.
fn json_report(
    sc: &Scenario,
    data: &ScenarioData,
    dp: &DatapathUse,
    reach: &[Reach],
) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = data
        .runs
        .iter()
        .zip(reach)
        .map(|(r, reach)| {
            let (reached, note) = match reach {
                Reach::Pinged {
                    reached,
                    first_failure,
                    ..
                } => (Some(*reached), first_failure.clone()),
                Reach::Unchecked(why) => (None, Some(why.clone())),
            };
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
                "reach_neighbour": reached,
                "reach_neighbour_note": note,
            })
        })
        .collect();
    json!({
        "stall_s": sc.stall.as_secs_f64(),
        "datapath": dp.datapath.bridge_type(),
        "dummy_reason": dp.why_dummy,
        "readiness": match dp.readiness() {
            Readiness::LiveOrLinkDown => "live-or-link-down",
            _ => "live",
        },
        "runs": runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_seconds_are_checked() {
        assert_eq!(parse_secs("8").unwrap(), Duration::from_secs(8));
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["-1", "nan", "inf", "x", "4000"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
