//! `podport-lab`: the demo, the end-to-end bench and a sandboxed `podport ofwatch`, each on a
//! private Open vSwitch. Kept apart from the `podport` binary so that production code does not
//! carry the test sandbox.

#[cfg(unix)]
mod bench;
#[cfg(unix)]
mod demo;
#[cfg(unix)]
mod neighbours;
#[cfg(unix)]
mod ofwatch;
#[cfg(unix)]
mod podport_bin;
#[cfg(unix)]
mod scenario;

/// podport's demo and bench, on a private Open vSwitch.
#[cfg(unix)]
#[derive(clap::Parser)]
#[command(name = "podport-lab", version)]
enum Lab {
    /// Start a private OVS, run the engine, add Pods (optionally stalling the switch), and
    /// report time to ready.
    Demo(demo::Args),
    /// The end-to-end benchmark; writes its table to docs/benchmarks.md.
    Bench(bench::Args),
    /// Start a private OVS and run `podport ofwatch` on its bridge while ports are added,
    /// retyped and deleted.
    OfwatchSandbox(ofwatch::Args),
}

#[cfg(unix)]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let lab = <Lab as clap::Parser>::parse();
    // The demo and the bench count the engine's per-Pod reports ("not ready yet", "step
    // failed") and print a summary; logged too, they would bury it. RUST_LOG still wins. Logs
    // go to stderr so stdout stays machine-readable (--json).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,podport_engine=error".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    match lab {
        Lab::Demo(args) => demo::run(args).await,
        Lab::Bench(args) => bench::run(args).await,
        Lab::OfwatchSandbox(args) => ofwatch::run(args).await,
    }
}

/// Everything here starts a private Open vSwitch, which runs on Linux only.
#[cfg(not(unix))]
fn main() {
    eprintln!("podport-lab runs on Linux: it starts a private Open vSwitch");
    std::process::exit(1);
}
