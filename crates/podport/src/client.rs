//! `podport cni ...` and `podport status`: the command lines on top of `podport_control`'s
//! client of a running agent's control socket.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use podport_control::{Client, ClientError, HealthInfo, PortInfo, Request, SubscriptionLine};
use podport_transport::Endpoint;

use crate::health::summary;

/// How long a command waits for the agent, unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `podport status --wait-ready` waits, unless `--timeout` says otherwise.
const DEFAULT_WAIT_READY: Duration = Duration::from_secs(60);

/// The least time a status read gets, also once a `--wait-ready` wait is over (for the last
/// look that goes into its message).
const LAST_LOOK: Duration = Duration::from_secs(2);

#[derive(clap::Subcommand, Debug)]
pub enum CniCmd {
    /// Start tracking a Pod: create its OVS port (before its vNIC exists).
    Add(AddArgs),
    /// The Pod's vNIC exists: switch its port to type internal and make it ready.
    Attach(IfnameArgs),
    /// Remove the Pod's flows and port (succeeds for a Pod that is not tracked).
    Del(DelArgs),
}

#[derive(clap::Args, Debug)]
pub struct DelArgs {
    #[command(flatten)]
    control: CniControl,
    /// The Pod's interface name.
    #[arg(long, value_name = "NAME")]
    ifname: String,
    /// Delete only if the Pod of that name belongs to this container (CNI_CONTAINERID).
    #[arg(long, value_name = "ID")]
    container_id: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ControlArg {
    /// The agent's control socket: unix:PATH, tcp:HOST:PORT or npipe:NAME.
    #[arg(long, value_name = "ENDPOINT")]
    control: Endpoint,
}

#[derive(clap::Args, Debug)]
pub struct CniControl {
    #[command(flatten)]
    control: ControlArg,
    /// How long to wait for the agent's answer, connecting included: seconds (30, 1.5) or a
    /// duration (500ms, 2m).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    control: CniControl,
    /// The Pod, as NAMESPACE/NAME.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_pod)]
    pod: (String, String),
    /// The Pod's container (sandbox) id.
    #[arg(long, value_name = "ID")]
    container_id: String,
    /// The interface (and OVS port) name, at most 15 bytes.
    #[arg(long, value_name = "NAME")]
    ifname: String,
    /// An IPv4 address of the Pod (`10.0.0.5/24` or `10.0.0.5`); repeat for several.
    #[arg(long = "ip", value_name = "CIDR", required = true)]
    ips: Vec<String>,
    /// The Pod's MAC address.
    #[arg(long, value_name = "MAC")]
    mac: String,
}

#[derive(clap::Args, Debug)]
pub struct IfnameArgs {
    #[command(flatten)]
    control: CniControl,
    /// The Pod's interface name.
    #[arg(long, value_name = "NAME")]
    ifname: String,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    control: ControlArg,
    /// A JSON list of ports instead of the table (with --health: the health as a JSON
    /// object).
    #[arg(long)]
    json: bool,
    /// Only the agent's health: its OVSDB and switch connections and whether its engine
    /// runs. Exits 2 when a connection is down or the engine is not running (1 when the
    /// agent cannot be reached or does not answer).
    #[arg(long, conflicts_with = "wait_ready")]
    health: bool,
    /// Wait until at least N Pods are ready (exit 0), or fail at --timeout.
    #[arg(long, value_name = "N")]
    wait_ready: Option<usize>,
    /// How long to wait for the agent's answer, connecting included, or with --wait-ready
    /// for the Pods: seconds (30, 1.5) or a duration (500ms, 2m) [default: 30s; with
    /// --wait-ready: 60s].
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
}

/// `--timeout`: seconds as a number, or a duration with its unit; more than zero.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("bad timeout {s:?}: not a number of seconds"))?,
        Err(_) => crate::agent::parse_duration(s)?,
    };
    if d.is_zero() {
        return Err(format!("the timeout {s:?} must be more than zero"));
    }
    Ok(d)
}

fn parse_pod(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}

/// A client's error, with what a person at the command line can do about a timeout.
fn cli(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::NoAnswer { .. } => {
            anyhow::anyhow!("{e} (is it overloaded or stuck? --timeout waits longer)")
        }
        e => e.into(),
    }
}

/// `podport status --health` found the agent unhealthy: `main` prints it and exits with
/// [`crate::health::UNHEALTHY_EXIT`].
#[derive(Debug)]
pub struct Unhealthy(pub String);

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not healthy: {}", self.0)
    }
}

impl std::error::Error for Unhealthy {}

pub async fn run_cni(cmd: CniCmd) -> Result<()> {
    let (endpoint, request, done) = match cmd {
        CniCmd::Add(a) => {
            let done = format!("added {} (Pod {}/{})", a.ifname, a.pod.0, a.pod.1);
            let request = Request::Add {
                namespace: a.pod.0,
                name: a.pod.1,
                container_id: a.container_id,
                ifname: a.ifname,
                ips: a.ips,
                mac: a.mac,
            };
            (a.control, request, done)
        }
        CniCmd::Attach(a) => (
            a.control,
            Request::Attach {
                ifname: a.ifname.clone(),
            },
            format!("attached {}", a.ifname),
        ),
        CniCmd::Del(a) => (
            a.control,
            Request::Del {
                ifname: a.ifname.clone(),
                container_id: a.container_id.clone(),
            },
            format!("deleted {}", a.ifname),
        ),
    };
    let mut client = Client::connect(&endpoint.control.control, endpoint.timeout)
        .await
        .map_err(cli)?;
    client.call(&request).await.map_err(cli)?;
    println!("{done}");
    Ok(())
}

pub async fn run_status(args: StatusArgs) -> Result<()> {
    let endpoint = &args.control.control;
    if args.health {
        let within = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let health = async { Client::connect(endpoint, within).await?.health().await }
            .await
            .map_err(cli)?;
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&health)?)?;
        } else {
            writeln!(out, "{}", summary(&health))?;
        }
        out.flush()?;
        if !health.ready {
            return Err(Unhealthy(health.problems.join("; ")).into());
        }
        return Ok(());
    }
    let (ports, health) = match args.wait_ready {
        None => {
            let within = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
            async { Client::connect(endpoint, within).await?.status().await }
                .await
                .map_err(cli)?
        }
        Some(n) => wait_ready(endpoint, n, args.timeout.unwrap_or(DEFAULT_WAIT_READY)).await?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        // The port list, as before; the health is `--health --json`.
        writeln!(out, "{}", serde_json::to_string(&ports)?)?;
    } else {
        if let Some(h) = &health {
            writeln!(out, "{}", summary(h))?;
        }
        write!(out, "{}", table(&ports))?;
    }
    Ok(())
}

/// Waits until `n` Pods are ready. It subscribes first, then re-reads the status at every
/// event: the subscription is in place before the first status, so no change is missed.
async fn wait_ready(
    endpoint: &Endpoint,
    n: usize,
    timeout: Duration,
) -> Result<(Vec<PortInfo>, Option<HealthInfo>)> {
    let deadline = Instant::now() + timeout;
    let mut events = Client::connect_until(endpoint, deadline, timeout)
        .await
        .map_err(cli)?;
    events.subscribe().await.map_err(cli)?;
    loop {
        // A connection per look: between events one would sit idle, and the agent closes
        // idle connections.
        let (until, within) = match deadline.checked_duration_since(Instant::now()) {
            Some(left) if left >= LAST_LOOK => (deadline, timeout),
            _ => (Instant::now() + LAST_LOOK, LAST_LOOK),
        };
        let (ports, health) = async {
            Client::connect_until(endpoint, until, within)
                .await?
                .status()
                .await
        }
        .await
        .map_err(cli)?;
        let ready = ports.iter().filter(|p| p.ready).count();
        if ready >= n {
            return Ok((ports, health));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let waiting: BTreeSet<String> = ports
                .iter()
                .filter(|p| !p.ready)
                .map(|p| format!("{} ({})", p.ifname, p.phase))
                .collect();
            let waiting = if waiting.is_empty() {
                String::new()
            } else {
                format!(
                    "; not ready: {}",
                    waiting.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            // A connection that is down is the likely reason: say so.
            let unhealthy = match &health {
                Some(h) if !h.ready => {
                    format!("; the agent is not healthy: {}", h.problems.join("; "))
                }
                _ => String::new(),
            };
            bail!(
                "only {ready} of the {n} Pods asked for were ready after {timeout:?} ({} tracked){waiting}{unhealthy}",
                ports.len()
            );
        }
        // Any event may change the count; the timeout re-reads the status once more so the
        // message is current.
        match tokio::time::timeout(left, events.next_event()).await {
            Err(_) => {}
            Ok(Ok(Some(SubscriptionLine::Event(ev)))) => tracing::debug!(?ev, "Pod event"),
            Ok(Ok(Some(SubscriptionLine::Other(v)))) => {
                tracing::debug!(line = %v, "unknown line in the event stream")
            }
            Ok(Ok(None)) => bail!("the agent at {endpoint} closed the event stream"),
            Ok(Err(e)) => return Err(cli(e)),
        }
    }
}

fn millis_text(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1_000.0)
    }
}

/// The status table: IFNAME POD OFPORT PHASE READY WAITED ERROR.
fn table(ports: &[PortInfo]) -> String {
    let header = [
        "IFNAME", "POD", "OFPORT", "PHASE", "READY", "WAITED", "ERROR",
    ];
    let rows: Vec<[String; 7]> = ports
        .iter()
        .map(|p| {
            [
                p.ifname.clone(),
                p.pod.clone(),
                p.ofport.map_or("-".into(), |n| n.to_string()),
                p.phase.clone(),
                if p.ready { "yes" } else { "no" }.into(),
                millis_text(p.waited_ms),
                p.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_seconds_or_durations() {
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_timeout("0").unwrap_err().contains("more than zero"));
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn the_table_lines_up() {
        let p = PortInfo {
            ifname: "vnic-1".into(),
            pod: "default/web-1".into(),
            ofport: Some(3),
            phase: "ready".into(),
            ready: true,
            ready_for_ms: Some(10),
            waited_ms: 1_234,
            state: vec!["LIVE".into()],
            last_error: None,
            attach_failures: 0,
            stages: Default::default(),
        };
        let t = table(&[p]);
        assert_eq!(
            t,
            "IFNAME  POD            OFPORT  PHASE  READY  WAITED  ERROR\n\
             vnic-1  default/web-1  3       ready  yes    1.2s    -\n"
        );
    }
}
