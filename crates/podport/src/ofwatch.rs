//! `podport ofwatch`: prints the port list (PORT_DESC) on every (re)connect, then every
//! PortStatus as it comes. (`podport-lab ofwatch-sandbox` runs it on a private OVS whose ports
//! it changes.)

use std::io::Write;

use anyhow::{Context, Result};
use podport_openflow::{flag_names, Port, PortStatus, Version};
use podport_session::openflow::{ClientEvent, ClientOptions, EventReceiver, OfClient};
use podport_session::Endpoint;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// OpenFlow endpoint of the bridge: unix:PATH, tcp:HOST:PORT or npipe:NAME (OVS's
    /// service socket is unix:<rundir>/<bridge>.mgmt).
    #[arg(long)]
    openflow: String,
    /// Only this OpenFlow version (default: offer 1.3 and 1.5, use the highest common).
    #[arg(long = "of-version")]
    of_version: Option<Version>,
    /// One JSON object per line on stdout.
    #[arg(long)]
    json: bool,
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
    let endpoint: Endpoint = args.openflow.parse().context("--openflow")?;
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
