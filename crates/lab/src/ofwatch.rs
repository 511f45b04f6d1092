//! `podport-lab ofwatch-sandbox`: starts a private OVS, runs the real `podport ofwatch` on its
//! bridge, then adds, retypes and deletes ports, so anyone can watch what the switch reports.
//! `ofwatch`'s output (text or `--json`) is passed through line by line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podport_ovs_sandbox::{Sandbox, SandboxOptions};

use crate::podport_bin::podport_bin;

/// How long each step may take to show in `ofwatch`'s output.
const BOUND: Duration = Duration::from_secs(20);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this OpenFlow version (default: offer 1.3 and 1.5, use the highest common).
    #[arg(long = "of-version")]
    of_version: Option<String>,
    /// One JSON object per line on stdout.
    #[arg(long)]
    json: bool,
    /// Ports to add; then vnic-1 is switched to type internal and vnic-2 deleted.
    #[arg(long, default_value_t = 4)]
    demo_ports: usize,
}

/// PortStatus messages OVS sends for the script (`podport ofwatch`'s tests pin them): ADD and
/// MODIFY (LIVE) per added port; DELETE, ADD and MODIFY for the retype (a new netdev under the
/// same number); DELETE for the deletion.
fn expected_port_status(ports: usize) -> usize {
    2 * ports + if ports >= 1 { 3 } else { 0 } + usize::from(ports >= 2)
}

pub async fn run(args: Args) -> Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(&args)).await?
}

fn run_blocking(args: &Args) -> Result<()> {
    let podport = podport_bin()?;
    let info = |line: &str| {
        // As `ofwatch` does: news on stdout in text mode, on stderr with --json.
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    info("starting a private Open vSwitch (userspace, dummy datapath)...");
    let sb = Sandbox::start_with(SandboxOptions::default()).map_err(|e| anyhow!("{e}"))?;
    info(&format!(
        "sandbox in {}; OpenFlow endpoint {}",
        sb.dir().display(),
        sb.openflow_endpoint()
    ));
    let mut cmd = Command::new(&podport);
    cmd.args(["ofwatch", "--openflow", &sb.openflow_endpoint()]);
    if let Some(v) = &args.of_version {
        cmd.args(["--of-version", v]);
    }
    if args.json {
        cmd.arg("--json");
    }
    let mut watch = Watch::spawn(&mut cmd, args.json)
        .with_context(|| format!("starting {} ofwatch", podport.display()))?;

    // The port list comes first: what is changed after it shows as PortStatus.
    watch.until("the port list", "port_desc")?;
    let n = args.demo_ports;
    for i in 1..=n {
        sb.add_port(&format!("vnic-{i}"))
            .map_err(|e| anyhow!("{e}"))?;
    }
    if n >= 1 {
        // The type change the agent makes once the Pod's vNIC exists.
        sb.set_interface_type("vnic-1", "internal")
            .map_err(|e| anyhow!("{e}"))?;
    }
    if n >= 2 {
        sb.del_port("vnic-2").map_err(|e| anyhow!("{e}"))?;
    }
    let mut left = expected_port_status(n);
    while left > 0 {
        watch.until("the PortStatus of the changes", "port_status")?;
        left -= 1;
    }
    drop(watch);
    info(&format!(
        "done: {n} ports added, vnic-1 retyped to internal, vnic-2 deleted"
    ));
    Ok(())
}

/// A running `podport ofwatch`; killed on drop.
struct Watch {
    child: Child,
    /// The kind of each line `ofwatch` printed, once it is on our stdout.
    kinds: mpsc::Receiver<String>,
}

impl Watch {
    fn spawn(cmd: &mut Command, json: bool) -> Result<Watch> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("ofwatch's stdout")?;
        let (tx, kinds) = mpsc::channel();
        std::thread::spawn(move || forward(BufReader::new(stdout), json, &tx));
        Ok(Watch { child, kinds })
    }

    /// Waits until `ofwatch` has printed a line of `kind`.
    fn until(&mut self, what: &str, kind: &str) -> Result<()> {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.kinds.recv_timeout(left) {
                Ok(k) if k == kind => return Ok(()),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("podport ofwatch printed no {what} within {BOUND:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    bail!("podport ofwatch ended ({status:?}) before printing {what}")
                }
            }
        }
    }
}

/// Passes `ofwatch`'s lines through to our stdout, then tells `kinds` what each was: the JSON
/// `kind` field, or the first word of a text line (`port_desc ...`, `port_status ADD ...`).
fn forward(out: impl BufRead, json: bool, kinds: &mpsc::Sender<String>) -> std::io::Result<()> {
    for line in out.lines() {
        let line = line?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        let kind = if json {
            serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_string))
        } else {
            line.split_whitespace().next().map(str::to_string)
        };
        if kinds.send(kind.unwrap_or_default()).is_err() {
            break;
        }
    }
    Ok(())
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
