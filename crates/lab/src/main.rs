//! `podport-lab`: the demo, the end-to-end bench and a sandboxed `podport ofwatch`, each on a
//! private Open vSwitch. Kept apart from the `podport` binary so that production code does not
//! carry the test sandbox.

#[cfg(unix)]
mod bench;
#[cfg(unix)]
mod demo;
#[cfg(unix)]
mod ofwatch;
#[cfg(unix)]
mod podport_bin;
#[cfg(unix)]
mod scenario;

#[cfg(unix)]
fn main() -> anyhow::Result<()> {
    use clap::{Parser, Subcommand};
    use tracing_subscriber::EnvFilter;

    #[derive(Parser)]
    #[command(
        name = "podport-lab",
        version,
        about = "podport's demo and bench, on a private Open vSwitch"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Start a private OVS, run the engine, add Pods (optionally stalling the switch), and
        /// report time to ready.
        Demo(demo::Args),
        /// The end-to-end benchmark; writes its table to docs/benchmarks.md.
        Bench(bench::Args),
        /// Start a private OVS and run `podport ofwatch` on its bridge while ports are added,
        /// retyped and deleted.
        OfwatchSandbox(ofwatch::Args),
    }

    let cli = Cli::parse();
    // The demo and the bench count the engine's per-Pod reports ("not ready yet", "step
    // failed") and print a summary; logged too, they would bury it. RUST_LOG still wins.
    // Logs go to stderr so stdout stays machine-readable (--json).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,podport_engine=error")),
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
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::OfwatchSandbox(args) => ofwatch::run(args).await,
        }
    })
}

/// Everything here starts a private Open vSwitch, which runs on Linux only.
#[cfg(not(unix))]
fn main() {
    eprintln!("podport-lab runs on Linux: it starts a private Open vSwitch");
    std::process::exit(1);
}
