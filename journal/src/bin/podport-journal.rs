//! `podport-journal`: reads a podport journal directory (one no agent is running on), or a
//! running agent's journal through its control socket (`--control`), and shows its records,
//! the folded per-port state, a port's timeline or an SVG of every port's life, or checks it.
//! The text and JSON formats live in `podport_journal::dump`, the SVG in `svg.rs` next to this
//! file; this is the command-line shell.

// A crate root looks for modules next to itself; this keeps the binary's modules in its own
// directory instead of among other binaries.
#[path = "podport-journal/source.rs"]
mod source;
#[path = "podport-journal/svg.rs"]
mod svg;

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use podport_control::Endpoint;
use podport_journal::dump::{self, Item, RecordFilter};
use podport_journal::{PodRef, Record};

use source::Source;

const EXIT_HELP: &str = "\
A running agent locks its journal directory: read it with --control ENDPOINT (the agent's
control socket) instead of DIR, for dump, state and timeline.

Exit status: 0 all good; 1 the journal has bad records (everything readable was still shown);
2 the journal could not be read (missing, not a journal, locked by a running agent, agent not
reachable) or bad usage.";

#[derive(Parser, Debug)]
#[command(
    name = "podport-journal",
    version,
    about = "Read a podport journal: dump its records, fold the per-port state, draw timelines, verify it",
    after_help = EXIT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One line per record (or one JSON object per line).
    Dump(DumpArgs),
    /// The folded per-port state, latest or as of a record.
    State(StateArgs),
    /// One port's life and stages as offsets from its creation, an SVG of every port's
    /// stages, or a summary of every stage's time.
    Timeline(TimelineArgs),
    /// Checks every record and snapshot.
    Verify(DirArg),
    /// Counts by kind, sequence range, size, snapshots, corrupt records.
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
struct DirArg {
    /// The journal directory (of a stopped agent; a running agent's is locked).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Where the records come from: a directory, or a running agent.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["dir", "control"])))]
struct SourceArg {
    /// The journal directory (of a stopped agent; a running agent's is locked: use --control).
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Read the running agent's journal through its control socket (unix:PATH, npipe:NAME or
    /// tcp:HOST:PORT) instead of DIR.
    #[arg(long, value_name = "ENDPOINT")]
    control: Option<Endpoint>,
}

impl SourceArg {
    fn source(self) -> Source {
        match (self.dir, self.control) {
            (_, Some(endpoint)) => Source::Control(endpoint),
            // The arg group makes exactly one of the two present.
            (Some(dir), None) => Source::Dir(dir),
            (None, None) => Source::Dir(PathBuf::new()),
        }
    }
}

#[derive(Args, Debug)]
struct DumpArgs {
    #[command(flatten)]
    source: SourceArg,
    /// One JSON object per line: the record's serde form plus "time".
    #[arg(long)]
    json: bool,
    /// Only records about this interface (PortStatus/PORT_DESC by its 15-byte wire name).
    #[arg(long, value_name = "IFNAME", conflicts_with = "pod")]
    port: Option<String>,
    /// Only records about this Pod's interfaces (from its PodAdded records).
    #[arg(long, value_name = "NS/NAME", value_parser = parse_pod)]
    pod: Option<PodRef>,
    /// First sequence number shown (inclusive).
    #[arg(long, value_name = "SEQ")]
    since: Option<u64>,
    /// Last sequence number shown (inclusive).
    #[arg(long, value_name = "SEQ")]
    until: Option<u64>,
}

#[derive(Args, Debug)]
struct StateArgs {
    #[command(flatten)]
    source: SourceArg,
    /// The state as it was right after this record.
    #[arg(long, value_name = "SEQ")]
    at: Option<u64>,
    /// The serde form of the state, with last_seq, snapshot_seq and stopped_at.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["port", "svg", "summary"])))]
struct TimelineArgs {
    #[command(flatten)]
    source: SourceArg,
    /// Print this interface's records with offsets from its PodAdded, then its stages (with
    /// --svg: draw only it).
    #[arg(long, value_name = "IFNAME")]
    port: Option<String>,
    /// Write an SVG of every port's stages on one time axis to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Per stage, the time it took since the previous one over every wait that ended in a
    /// Ready (count, p50, p90, p99, max), and the Pods never ready.
    #[arg(long, conflicts_with_all = ["port", "svg"])]
    summary: bool,
    /// With --summary: the summary as one JSON object.
    #[arg(long, requires = "summary")]
    json: bool,
}

#[derive(Args, Debug)]
struct StatsArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The serde form of the counts.
    #[arg(long)]
    json: bool,
}

fn parse_pod(s: &str) -> Result<PodRef, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(PodRef {
                namespace: ns.into(),
                name: name.into(),
            })
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}

/// What a subcommand found: exit 0, or 1 when the journal has bad records.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Clean,
    BadRecords,
}

/// Writes to stderr without panicking when it is closed.
fn note(msg: &str) {
    let _ = writeln!(io::stderr(), "podport-journal: {msg}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli.command, &mut out).and_then(|o| {
        out.flush()?;
        Ok(o)
    });
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::BadRecords) => ExitCode::from(1),
        // A reader that went away (`| head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            note(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

fn run(command: Command, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match command {
        Command::Dump(a) => dump_cmd(a, out),
        Command::State(a) => state_cmd(a, out),
        Command::Timeline(a) => timeline_cmd(a, out),
        Command::Verify(a) => verify_cmd(a, out),
        Command::Stats(a) => stats_cmd(a, out),
    }
}

/// Says on stderr how many bad records were seen, and what that means for the exit status.
fn bad_records_outcome(bad: &[u64]) -> Outcome {
    match bad.first() {
        None => Outcome::Clean,
        Some(first) => {
            note(&format!(
                "the journal has {} corrupt record(s), the first #{first}; the others were shown",
                bad.len()
            ));
            Outcome::BadRecords
        }
    }
}

fn dump_cmd(a: DumpArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if let (Some(s), Some(u)) = (a.since, a.until) {
        if s > u {
            bail!("--since {s} is after --until {u}");
        }
    }
    let source = a.source.source();
    let (items, ifnames) = match &a.pod {
        Some(pod) => {
            // The Pod's PodAdded may be older than --since: look at everything.
            let items = source::records(&source, None, None)?;
            let names = dump::pod_ifnames(items.iter().filter_map(|i| i.as_ref().ok()), pod);
            if names.is_empty() {
                note(&format!("no PodAdded record for Pod {pod}"));
            }
            (items, Some(names))
        }
        None => (
            source::records(&source, a.since, a.until)?,
            a.port.map(|p| vec![p]),
        ),
    };
    let filter = RecordFilter {
        ifnames,
        since: a.since,
        until: a.until,
    };
    let mut bad = Vec::new();
    for item in &items {
        match item {
            Ok(r) if filter.matches(r) => {
                let line = if a.json {
                    dump::record_json(r)
                } else {
                    dump::record_line(r)
                };
                writeln!(out, "{line}")?;
            }
            Ok(_) => {}
            // A record that cannot be read may be about any port: always shown when in range.
            Err(c) if filter.seq_in_range(c.seq) => {
                bad.push(c.seq);
                let line = if a.json {
                    dump::corrupt_json(c)
                } else {
                    dump::corrupt_line(c)
                };
                writeln!(out, "{line}")?;
            }
            Err(_) => {}
        }
    }
    Ok(bad_records_outcome(&bad))
}

fn state_cmd(a: StateArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let opened = a.source.source().open()?;
    if let Some(first) = opened.compacted_before() {
        note(&format!(
            "warning: the agent's journal starts at record #{first} (older records were \
             compacted into a snapshot, which the control socket does not send); the state \
             below is folded from #{first} on and may be incomplete"
        ));
    }
    let replay = opened.replay(a.at);
    if a.json {
        writeln!(out, "{}", dump::state_json(&replay))?;
    } else {
        write!(out, "{}", dump::state_table(&replay))?;
    }
    Ok(match &replay.stopped_at {
        None => Outcome::Clean,
        Some(c) => {
            note(&format!(
                "warning: replay stopped at record #{}: {}; the state shown is as of #{}",
                c.seq, c.reason, replay.last_seq
            ));
            Outcome::BadRecords
        }
    })
}

/// The good records, with the sequence numbers of the bad ones.
fn split(items: Vec<Item>) -> (Vec<Record>, Vec<u64>) {
    let mut good = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for item in items {
        match item {
            Ok(r) => good.push(r),
            Err(c) => {
                note(&format!("warning: skipped {}", dump::corrupt_line(&c)));
                bad.push(c.seq);
            }
        }
    }
    (good, bad)
}

fn timeline_cmd(a: TimelineArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let items = source::records(&a.source.source(), None, None)?;
    let (records, bad) = split(items);
    if a.summary {
        if let Some(first) = records.first().map(|r| r.seq).filter(|&s| s > 1) {
            note(&format!(
                "warning: the records start at #{first} (older ones were compacted): Pods \
                 added before it are not counted"
            ));
        }
        let summary = dump::stage_summary(&records);
        if a.json {
            writeln!(out, "{}", dump::stage_summary_json(&summary))?;
        } else {
            write!(out, "{}", dump::stage_summary_text(&summary))?;
        }
        return Ok(bad_records_outcome(&bad));
    }
    match &a.svg {
        Some(file) => {
            let svg = svg::timeline_svg(&records, a.port.as_deref());
            std::fs::write(file, &svg.text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            writeln!(
                out,
                "wrote {}: {} ports, {} records over {}",
                file.display(),
                svg.ports,
                svg.records,
                dump::offset(i128::from(svg.span_micros)).trim_start_matches('+')
            )?;
        }
        None => {
            // The arg group makes --port present when --svg and --summary are not.
            let port = a.port.as_deref().unwrap_or_default();
            match dump::port_timeline(&records, port) {
                Some(lines) => {
                    for line in lines {
                        writeln!(out, "{line}")?;
                    }
                }
                None => note(&format!(
                    "no record is about interface {}",
                    dump::word(port)
                )),
            }
        }
    }
    Ok(bad_records_outcome(&bad))
}

fn verify_cmd(a: DirArg, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let opened = Source::Dir(a.dir).open()?;
    let bad = opened.verify();
    match bad.first() {
        None => {
            writeln!(out, "{}", dump::verify_ok_line(&opened.stats()))?;
            Ok(Outcome::Clean)
        }
        Some(first) => {
            for c in &bad {
                writeln!(out, "{}", dump::verify_bad_line(c))?;
            }
            // What a replay keeps: the records before the first bad one.
            let stats = opened.stats();
            let kept = match stats.first_seq {
                Some(f) if f < first.seq => format!(
                    "records #{f}..#{} are intact and are what a replay keeps",
                    first.seq - 1
                ),
                _ => "no record before it is intact: a replay keeps nothing".to_string(),
            };
            writeln!(out, "first bad: #{}; {kept}", first.seq)?;
            out.flush()?;
            note(&format!(
                "verify failed: {} bad record(s) or snapshot(s), the first #{}: {}",
                bad.len(),
                first.seq,
                first.reason
            ));
            Ok(Outcome::BadRecords)
        }
    }
}

fn stats_cmd(a: StatsArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let stats = Source::Dir(a.dir.dir).open()?.stats();
    if a.json {
        writeln!(out, "{}", dump::stats_json(&stats))?;
    } else {
        write!(out, "{}", dump::stats_text(&stats))?;
    }
    if stats.corrupt > 0 {
        note(&format!(
            "the journal has {} corrupt record(s); run verify for details",
            stats.corrupt
        ));
        return Ok(Outcome::BadRecords);
    }
    Ok(Outcome::Clean)
}
