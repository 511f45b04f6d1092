//! `podport ofwatch`: prints the port list (PORT_DESC) on every (re)connect, then every
//! PortStatus as it comes. With `--sandbox` it starts a private OVS and adds, retypes and
//! deletes ports itself, so anyone can watch what the switch reports.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use podport_openflow::{flag_names, Port, PortStatus, Version};
use podport_ovs_sandbox::{Sandbox, SandboxOptions};
use podport_session::openflow::{ClientEvent, ClientOptions, EventReceiver, OfClient};
use podport_session::Endpoint;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// OpenFlow endpoint of the bridge: unix:PATH, tcp:HOST:PORT or npipe:NAME (OVS's
    /// service socket is unix:<rundir>/<bridge>.mgmt).
    #[arg(long, required_unless_present = "sandbox")]
    openflow: Option<String>,
    /// Only this OpenFlow version (default: offer 1.3 and 1.5, use the highest common).
    #[arg(long = "of-version")]
    of_version: Option<Version>,
    /// One JSON object per line on stdout.
    #[arg(long)]
    json: bool,
    /// Start a private userspace OVS, watch its bridge, add --demo-ports ports, switch one to
    /// type internal, delete one, then exit.
    #[arg(long, conflicts_with = "openflow")]
    sandbox: bool,
    /// Ports the --sandbox run adds.
    #[arg(long, default_value_t = 4, requires = "sandbox")]
    demo_ports: usize,
}

pub async fn run(args: Args) -> Result<()> {
    let mut options = ClientOptions {
        port_desc_on_connect: true,
        ..ClientOptions::default()
    };
    if let Some(v) = args.of_version {
        options.conn.versions = vec![v];
    }
    let out = Printer { json: args.json };
    if args.sandbox {
        return run_sandbox(args, options, out).await;
    }
    let endpoint: Endpoint = args
        .openflow
        .as_deref()
        .unwrap_or_default()
        .parse()
        .context("--openflow")?;
    let (client, mut events) = OfClient::start(endpoint, options);
    tokio::select! {
        r = watch(&client, &mut events, &out) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Prints events until the stream ends.
async fn watch(client: &OfClient, events: &mut EventReceiver, out: &Printer) -> Result<()> {
    while let Some(ev) = events.recv().await {
        out.event(client, ev).await?;
    }
    Ok(())
}

struct Printer {
    json: bool,
}

impl Printer {
    async fn event(&self, client: &OfClient, ev: ClientEvent) -> Result<()> {
        match ev {
            ClientEvent::Connected {
                version,
                datapath_id,
            } => {
                self.info(&format!(
                    "connected: OpenFlow {version}, datapath {datapath_id:016x}"
                ));
            }
            // PortStatus is sent only for changes: the list, taken by the client right after
            // every handshake and ordered with the PortStatus around it, is how existing
            // ports appear.
            ClientEvent::PortDesc(Ok(mut ports)) => {
                ports.sort_by_key(|p| p.port_no);
                for p in &ports {
                    self.port_desc(p)?;
                }
            }
            ClientEvent::PortDesc(Err(e)) => {
                self.info(&format!("PORT_DESC failed: {e}; asking again"));
                client.request_port_desc_event()?;
            }
            ClientEvent::PortStatus(ps) => self.port_status(&ps)?,
            ClientEvent::Disconnected { reason } => {
                self.info(&format!("disconnected: {reason}; reconnecting"))
            }
        }
        Ok(())
    }

    /// Connection news: on stdout in text mode, on stderr with --json so stdout stays
    /// one kind of object per line.
    fn info(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn port_desc(&self, p: &Port) -> Result<()> {
        if self.json {
            self.json_line(&port_json("port_desc", None, p))
        } else {
            self.line(&format!("port_desc {p}"))
        }
    }

    fn port_status(&self, ps: &PortStatus) -> Result<()> {
        if self.json {
            self.json_line(&port_json("port_status", Some(&ps.reason.name()), &ps.port))
        } else {
            self.line(&format!(
                "port_status {} {}",
                ps.reason.name().to_uppercase(),
                ps.port
            ))
        }
    }

    fn json_line(&self, v: &serde_json::Value) -> Result<()> {
        self.line(&v.to_string())
    }

    fn line(&self, s: &str) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{s}")?;
        stdout.flush()?;
        Ok(())
    }
}

fn port_json(kind: &str, reason: Option<&str>, p: &Port) -> serde_json::Value {
    let mut v = json!({
        "kind": kind,
        "port_no": p.port_no.0,
        "name": p.name,
        "state": flag_names(&p.state),
        "config": flag_names(&p.config),
        "hw_addr": p.hw_addr.to_string(),
    });
    if let Some(r) = reason {
        v["reason"] = json!(r);
    }
    v
}

async fn run_sandbox(args: Args, options: ClientOptions, out: Printer) -> Result<()> {
    out.info("starting a private Open vSwitch (userspace, dummy datapath)...");
    let sandbox = tokio::task::spawn_blocking(|| Sandbox::start_with(SandboxOptions::default()))
        .await?
        .map_err(|e| anyhow!("{e}"))?;
    let sandbox = std::sync::Arc::new(sandbox);
    out.info(&format!(
        "sandbox in {}; OpenFlow endpoint {}",
        sandbox.dir().display(),
        sandbox.openflow_endpoint()
    ));
    let endpoint: Endpoint = sandbox.openflow_endpoint().parse()?;
    let (client, mut events) = OfClient::start(endpoint, options);

    // Wait for the handshake and the first port list before changing anything.
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .context("no OpenFlow connection to the sandbox within 20 s")?
            .ok_or_else(|| anyhow!("OpenFlow client stopped"))?;
        let listed = matches!(ev, ClientEvent::PortDesc(Ok(_)));
        out.event(&client, ev).await?;
        if listed {
            break;
        }
    }

    let n = args.demo_ports;
    let sb = sandbox.clone();
    let script = tokio::task::spawn_blocking(move || -> Result<()> {
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
        Ok(())
    });
    tokio::pin!(script);
    let mut script_done = false;
    loop {
        tokio::select! {
            r = &mut script, if !script_done => {
                r??;
                script_done = true;
                // Everything OVS announced for the script was sent before it answers this.
                client.barrier().await?;
            }
            ev = events.recv() => {
                let Some(ev) = ev else { bail!("OpenFlow client stopped") };
                out.event(&client, ev).await?;
            }
        }
        if script_done {
            // Drain what arrived before the barrier reply.
            while let Ok(ev) = events.try_recv() {
                out.event(&client, ev).await?;
            }
            break;
        }
    }
    out.info(&format!(
        "done: {n} ports added, vnic-1 retyped to internal, vnic-2 deleted"
    ));
    Ok(())
}
