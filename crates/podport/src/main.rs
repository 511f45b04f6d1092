//! `podport`: the command-line front of the podport engine.

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
    runtime.block_on(async {
        match cli.command {
            Command::Ofwatch(args) => ofwatch::run(args).await,
        }
    })
}
