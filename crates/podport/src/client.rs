//! `podport cni ...` and `podport status`: clients of a running agent's control socket (the
//! protocol is in [`crate::control`]).

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_transport::Endpoint;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader, ReadHalf, WriteHalf};

use crate::control::{read_line, EventLine, LineRead, PortInfo, Request};

/// The longest answer line the clients accept (a status of many thousand ports fits).
const MAX_ANSWER_LINE: usize = 64 * 1024 * 1024;

/// How long a client waits for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Subcommand, Debug)]
pub enum CniCmd {
    /// Start tracking a Pod: create its OVS port (before its vNIC exists).
    Add(AddArgs),
    /// The Pod's vNIC exists: switch its port to type internal and make it ready.
    Attach(IfnameArgs),
    /// Remove the Pod's flows and port.
    Del(IfnameArgs),
}

#[derive(clap::Args, Debug)]
pub struct ControlArg {
    /// The agent's control socket: unix:PATH, tcp:HOST:PORT or npipe:NAME.
    #[arg(long, value_name = "ENDPOINT")]
    control: Endpoint,
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    control: ControlArg,
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
    control: ControlArg,
    /// The Pod's interface name.
    #[arg(long, value_name = "NAME")]
    ifname: String,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    control: ControlArg,
    /// A JSON list of ports instead of the table.
    #[arg(long)]
    json: bool,
    /// Wait until at least N Pods are ready (exit 0), or fail at --timeout.
    #[arg(long, value_name = "N")]
    wait_ready: Option<usize>,
    /// With --wait-ready: how long to wait, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60.0,
        requires = "wait_ready"
    )]
    timeout: f64,
}

fn parse_pod(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}

/// One connection to the agent.
struct Client {
    endpoint: Endpoint,
    rd: BufReader<ReadHalf<podport_transport::BoxStream>>,
    wr: WriteHalf<podport_transport::BoxStream>,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(endpoint: &Endpoint) -> Result<Client> {
        let stream = tokio::time::timeout(ANSWER_TIMEOUT, podport_transport::connect(endpoint))
            .await
            .map_err(|_| anyhow!("timed out after {ANSWER_TIMEOUT:?}"))
            .and_then(|r| r.map_err(anyhow::Error::from))
            .map_err(|e| {
                anyhow!("cannot reach the agent at {endpoint}: {e} (is `podport agent` running?)")
            })?;
        let (rd, wr) = tokio::io::split(stream);
        Ok(Client {
            endpoint: endpoint.clone(),
            rd: BufReader::new(rd),
            wr,
            buf: Vec::new(),
        })
    }

    async fn send(&mut self, request: &Request) -> Result<()> {
        self.wr
            .write_all(request.to_line().as_bytes())
            .await
            .with_context(|| format!("sending the request to the agent at {}", self.endpoint))
    }

    /// The next line from the agent as JSON; `None` when it closed the connection. Waits at
    /// most `timeout` (forever when `None`).
    async fn next_value(&mut self, timeout: Option<Duration>) -> Result<Option<Value>> {
        let read = read_line(&mut self.rd, &mut self.buf, MAX_ANSWER_LINE);
        let read = match timeout {
            Some(t) => tokio::time::timeout(t, read).await.map_err(|_| {
                anyhow!("the agent at {} did not answer within {t:?}", self.endpoint)
            })?,
            None => read.await,
        };
        match read.with_context(|| format!("reading from the agent at {}", self.endpoint))? {
            LineRead::Eof => Ok(None),
            LineRead::TooLong => bail!(
                "the agent at {} sent a line over {MAX_ANSWER_LINE} bytes",
                self.endpoint
            ),
            LineRead::Line => serde_json::from_slice(&self.buf).map(Some).map_err(|e| {
                anyhow!(
                    "the agent at {} sent something that is not JSON ({e}): {}",
                    self.endpoint,
                    String::from_utf8_lossy(&self.buf)
                )
            }),
        }
    }

    /// Sends `request` and returns its answer, or the agent's refusal as an error.
    async fn call(&mut self, request: &Request) -> Result<Value> {
        self.send(request).await?;
        let answer = self
            .next_value(Some(ANSWER_TIMEOUT))
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "the agent at {} closed the connection without answering",
                    self.endpoint
                )
            })?;
        check_ok(&answer)?;
        Ok(answer)
    }

    async fn status(&mut self) -> Result<Vec<PortInfo>> {
        let answer = self.call(&Request::Status).await?;
        let ports = answer
            .get("ports")
            .cloned()
            .ok_or_else(|| anyhow!("the agent's status answer has no \"ports\": {answer}"))?;
        serde_json::from_value(ports).context("the agent's status answer does not parse")
    }
}

/// The agent's `{"ok":false,"error":..}` as an error.
fn check_ok(answer: &Value) -> Result<()> {
    match answer.get("ok") {
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::Bool(false)) => {
            let e = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            bail!("the agent refused: {e}")
        }
        _ => bail!("unexpected answer from the agent: {answer}"),
    }
}

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
            (a.control.control, request, done)
        }
        CniCmd::Attach(a) => (
            a.control.control,
            Request::Attach {
                ifname: a.ifname.clone(),
            },
            format!("attached {}", a.ifname),
        ),
        CniCmd::Del(a) => (
            a.control.control,
            Request::Del {
                ifname: a.ifname.clone(),
            },
            format!("deleted {}", a.ifname),
        ),
    };
    let mut client = Client::connect(&endpoint).await?;
    client.call(&request).await?;
    println!("{done}");
    Ok(())
}

pub async fn run_status(args: StatusArgs) -> Result<()> {
    let endpoint = &args.control.control;
    let ports = match args.wait_ready {
        None => Client::connect(endpoint).await?.status().await?,
        Some(n) => wait_ready(endpoint, n, secs(args.timeout)?).await?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&ports)?)?;
    } else {
        write!(out, "{}", table(&ports))?;
    }
    Ok(())
}

fn secs(s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow!("--timeout must be a number of seconds, 0 or more (got {s})"))
}

/// Waits until `n` Pods are ready. It subscribes first, then re-reads the status at every
/// event: the subscription is in place before the first status, so no change is missed.
async fn wait_ready(endpoint: &Endpoint, n: usize, timeout: Duration) -> Result<Vec<PortInfo>> {
    let deadline = Instant::now() + timeout;
    let mut events = Client::connect(endpoint).await?;
    events.call(&Request::Subscribe).await?;
    let mut status = Client::connect(endpoint).await?;
    loop {
        let ports = status.status().await?;
        let ready = ports.iter().filter(|p| p.ready).count();
        if ready >= n {
            return Ok(ports);
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
            bail!(
                "only {ready} of the {n} Pods asked for were ready after {timeout:?} ({} tracked){waiting}",
                ports.len()
            );
        }
        // Any event may change the count; the timeout re-reads the status once more so the
        // message is current.
        match tokio::time::timeout(left, events.next_value(None)).await {
            Err(_) => {}
            Ok(Ok(Some(v))) => {
                // Event lines carry no "ok"; only an error line (the agent dropped this
                // subscription) does.
                if v.get("ok").is_some() {
                    check_ok(&v)?;
                }
                match serde_json::from_value::<EventLine>(v) {
                    Ok(ev) => tracing::debug!(?ev, "Pod event"),
                    Err(e) => tracing::debug!(error = %e, "unknown line in the event stream"),
                }
            }
            Ok(Ok(None)) => bail!("the agent at {endpoint} closed the event stream"),
            Ok(Err(e)) => return Err(e),
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
        };
        let t = table(&[p]);
        assert_eq!(
            t,
            "IFNAME  POD            OFPORT  PHASE  READY  WAITED  ERROR\n\
             vnic-1  default/web-1  3       ready  yes    1.2s    -\n"
        );
    }
}
