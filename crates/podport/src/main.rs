//! `podport`: the command-line front of the podport engine.

mod agent;
mod client;
mod control;
mod health;
mod http;
mod ofwatch;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "podport",
    version,
    about = "Attach Kubernetes Pods to Open vSwitch reliably"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every port of a bridge, then stream its PortStatus messages (like
    /// `ovs-ofctl monitor`, for ports only).
    Ofwatch(ofwatch::Args),
    /// Run the engine: attach Pods to OVS, driven through the control socket.
    Agent(agent::Args),
    /// CNI-side requests to a running agent.
    Cni {
        #[command(subcommand)]
        cmd: client::CniCmd,
    },
    /// The running agent's connections and every Pod port it tracks (--health: its
    /// connections only, exit 2 when one is down).
    Status(client::StatusArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr so stdout stays machine-readable (--json).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Ofwatch(args) => ofwatch::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Cni { cmd } => client::run_cni(cmd).await,
            Command::Status(args) => client::run_status(args).await,
        }
    });
    // `podport status --health` on an unhealthy agent: its own exit status, not 1.
    if let Some(u) = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<client::Unhealthy>())
    {
        eprintln!("podport: {u}");
        drop(runtime);
        std::process::exit(health::UNHEALTHY_EXIT);
    }
    result
}
