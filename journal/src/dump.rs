//! Readable renderings of journal records and of the folded state, for the `podport-journal`
//! dump tool and the agent's journal stream: one text line per record, JSON lines, the
//! per-port state table, a port's timeline and stages, verify and stats summaries. (The SVG
//! lives with the tool that draws it, `src/bin/podport-journal/svg.rs`.)
//!
//! Everything here is pure (records in, `String`s out), so the formats are unit-testable and
//! every source of records shares them: a journal directory today, the agent's control socket
//! (JSON lines of [`Record`], see [`record_from_json_line`]) later.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::event::{wire_name, Event, Failure, Outcome, PodRef, PortDesc, Readiness, Record};
use crate::reader::{CorruptRecord, Replay, Stats};
use crate::stages::{Stage, StageTimes};
use crate::state::{apply, PodPort, State};

/// One item of a source: a record, or one that could not be read (with its sequence number).
pub type Item = Result<Record, CorruptRecord>;

/// Decodes one JSON line of the agent's record stream (the serde form of [`Record`]; extra
/// fields such as the `time` that [`record_json`] adds are ignored).
pub fn record_from_json_line(line: &str) -> Result<Record, serde_json::Error> {
    serde_json::from_str(line)
}

// ---------------------------------------------------------------------------------------------
// Small value formats

/// `(year, month, day, hour, minute, second, millisecond)` in UTC of a time in µs since the
/// epoch, from the `time` crate's calendar.
fn civil(ts_micros: u64) -> (i32, u8, u8, u8, u8, u8, u64) {
    let ms = ts_micros / 1_000 % 1_000;
    // u64::MAX µs is about 18.4e12 s, in the year 586 524: within the ±999 999 years of the
    // `large-dates` feature, so every u64 converts.
    let secs = i64::try_from(ts_micros / 1_000_000).expect("u64 µs / 10^6 fits an i64");
    let t = time::OffsetDateTime::from_unix_timestamp(secs)
        .expect("every u64 µs timestamp is within time's large-dates range");
    let (h, m, s) = t.to_hms();
    (t.year(), u8::from(t.month()), t.day(), h, m, s, ms)
}

/// `HH:MM:SS.mmm`, UTC.
pub fn clock(ts_micros: u64) -> String {
    let (_, _, _, h, m, s, ms) = civil(ts_micros);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(ts_micros: u64) -> String {
    let (y, mo, d, h, m, s, ms) = civil(ts_micros);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// `7.012s` from milliseconds.
pub fn millis(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1_000, ms % 1_000)
}

/// A signed offset in µs as `+7.012s` / `-0.250s` (truncated to the millisecond).
pub fn offset(delta_micros: i128) -> String {
    let sign = if delta_micros < 0 { '-' } else { '+' };
    let ms = delta_micros.unsigned_abs() / 1_000;
    format!("{sign}{}.{:03}s", ms / 1_000, ms % 1_000)
}

fn bit_names(bits: u32, names: &[(u32, &str)]) -> String {
    if bits == 0 {
        return "0".into();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut rest = bits;
    for &(bit, name) in names {
        if bits & bit != 0 {
            parts.push(name.into());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// `ofp_port_state` bits as names: `LIVE`, `LINK_DOWN|0x100`, `0`.
pub fn port_state(bits: u32) -> String {
    bit_names(bits, &[(1, "LINK_DOWN"), (2, "BLOCKED"), (4, "LIVE")])
}

/// `ofp_port_config` bits as names: `PORT_DOWN|NO_FWD`, `0`.
pub fn port_config(bits: u32) -> String {
    bit_names(
        bits,
        &[
            (1, "PORT_DOWN"),
            (4, "NO_RECV"),
            (0x20, "NO_FWD"),
            (0x40, "NO_PACKET_IN"),
        ],
    )
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn hw_addr(a: &[u8; 6]) -> String {
    let parts: Vec<String> = a.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// A value as one shell-like word: as is when it is a plain word, else quoted and escaped
/// (`""`, `"port 6 is down"`, `"a\nb"`), so a line stays one line whatever a name holds and
/// control characters from a damaged journal never reach the terminal raw.
pub fn word(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\\');
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("{s:?}"))
    }
}

/// Replaces control characters, so a reason from the library stays on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Most ports a PortDescSynced line lists before `…(+N)`.
const PORT_DESC_SHOWN: usize = 8;

fn port_desc_entry(d: &PortDesc) -> String {
    format!("{} {} {}", d.port_no, word(&d.name), port_state(d.state))
}

/// `"device busy"`, then ` (permanent)` when retrying cannot help.
fn failure_text(f: &Failure) -> String {
    if f.is_permanent() {
        format!("{} (permanent)", word(&f.reason))
    } else {
        word(&f.reason).into_owned()
    }
}

/// `error="device busy"`, or `error="device busy" (permanent)`.
fn failure(f: &Failure) -> String {
    format!("error={}", failure_text(f))
}

/// The readiness rule by its configuration name: `live`, `live-or-link-down`, `allocated`.
pub fn readiness_name(r: Readiness) -> &'static str {
    match r {
        Readiness::Live => "live",
        Readiness::LiveOrLinkDown => "live-or-link-down",
        Readiness::Allocated => "allocated",
    }
}

/// `-`, or the values joined by commas.
fn list(values: &[String]) -> String {
    if values.is_empty() {
        "-".to_string()
    } else {
        values.iter().map(|v| word(v)).collect::<Vec<_>>().join(",")
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// The event as one line without the seq/time prefix: `PortStatus MODIFY port=5 name=vnic-1
/// state=LIVE config=0 hw=02:00:00:00:00:05`.
pub fn event_line(event: &Event) -> String {
    let kind = event.kind();
    match event {
        Event::AgentStarted {
            version,
            config_digest,
            policy,
        } => {
            let mut line = format!(
                "{kind} version={} config={} readiness={} attached-type={}",
                word(version),
                word(config_digest),
                readiness_name(policy.readiness),
                word(&policy.attached_type)
            );
            if policy.ovsdb_wait {
                line.push_str(" ovsdb-wait");
            }
            line
        }
        Event::SwitchConnected {
            endpoint,
            datapath_id,
            of_version,
        } => format!(
            "{kind} endpoint={} dpid={datapath_id:#018x} of={}",
            word(endpoint),
            word(of_version)
        ),
        Event::SwitchDisconnected { endpoint, reason } => {
            format!("{kind} endpoint={} reason={}", word(endpoint), word(reason))
        }
        Event::PodAdded {
            pod,
            container_id,
            ifname,
            ips,
            mac,
            cookie,
        } => format!(
            "{kind} pod={} ifname={} container={} ips={} mac={} cookie={cookie:#x}",
            word(&pod.to_string()),
            word(ifname),
            word(container_id),
            list(ips),
            word(mac)
        ),
        Event::PodPortCreated {
            ifname,
            port_uuid,
            interface_uuid,
        } => format!(
            "{kind} ifname={} port_uuid={} interface_uuid={}",
            word(ifname),
            word(port_uuid),
            word(interface_uuid)
        ),
        Event::HostInterfaceCreated { ifname } => format!("{kind} ifname={}", word(ifname)),
        Event::InterfaceTypeChanged {
            ifname,
            from,
            to,
            outcome,
        } => {
            let outcome = match outcome {
                Outcome::Ok => "ok".to_string(),
                Outcome::Failed(f) => format!("failed {}", failure(f)),
            };
            format!(
                "{kind} ifname={} from={} to={} {outcome}",
                word(ifname),
                word(from),
                word(to)
            )
        }
        Event::OvsdbInterfaceUpdate {
            ifname,
            iface_type,
            ofport,
            error,
        } => {
            let ofport = ofport.map_or("-".to_string(), |p| p.to_string());
            let mut line = format!(
                "{kind} ifname={} type={} ofport={ofport}",
                word(ifname),
                word(iface_type)
            );
            if let Some(e) = error {
                let _ = write!(line, " error={}", word(e));
            }
            line
        }
        Event::OfportWaited { ifname, ofport } => {
            format!("{kind} ifname={} ofport={ofport}", word(ifname))
        }
        Event::PortStatusReceived { reason, port } => format!(
            "{kind} {} port={} name={} state={} config={} hw={}",
            reason.label(),
            port.port_no,
            word(&port.name),
            port_state(port.state),
            port_config(port.config),
            hw_addr(&port.hw_addr)
        ),
        Event::PortDescSynced { ports } => {
            let mut shown: Vec<String> = ports
                .iter()
                .take(PORT_DESC_SHOWN)
                .map(port_desc_entry)
                .collect();
            if ports.len() > PORT_DESC_SHOWN {
                shown.push(format!("…(+{})", ports.len() - PORT_DESC_SHOWN));
            }
            format!("{kind} ports={} [{}]", ports.len(), shown.join(", "))
        }
        Event::FlowsInstalled {
            ifname,
            port_no,
            cookie,
            count,
        } => format!(
            "{kind} ifname={} port={port_no} cookie={cookie:#x} n={count}",
            word(ifname)
        ),
        Event::FlowsSent { ifname, port_no } => {
            format!("{kind} ifname={} port={port_no}", word(ifname))
        }
        Event::FlowsRemoved {
            ifname,
            cookie,
            count,
        } => format!(
            "{kind} ifname={} cookie={cookie:#x} n={count}",
            word(ifname)
        ),
        Event::PodReady {
            ifname,
            port_no,
            waited_ms,
        } => format!(
            "{kind} ifname={} port={port_no} waited={}",
            word(ifname),
            millis(*waited_ms)
        ),
        Event::PodNotReady {
            ifname,
            phase,
            waited_ms,
        } => format!(
            "{kind} ifname={} phase={phase} waited={}",
            word(ifname),
            millis(*waited_ms)
        ),
        Event::PodFailed {
            ifname,
            step,
            error,
        } => format!(
            "{kind} ifname={} step={} {}",
            word(ifname),
            step.name(),
            failure(error)
        ),
        Event::Reconciled { ifname, finding } => format!(
            "{kind} ifname={} finding={}",
            word(ifname),
            word(&finding.to_string())
        ),
        Event::DeleteRequested { ifname } => format!("{kind} ifname={}", word(ifname)),
        Event::PodDeleted { ifname } => format!("{kind} ifname={}", word(ifname)),
        Event::CookieGeneration { generation } => {
            format!("{kind} generation={generation:#08x}")
        }
    }
}

/// `#42 12:05:23.717 PortStatus MODIFY port=5 ...`
pub fn record_line(record: &Record) -> String {
    format!(
        "#{} {} {}",
        record.seq,
        clock(record.ts_micros),
        event_line(&record.event)
    )
}

/// `#42 CORRUPT: <reason>`
pub fn corrupt_line(bad: &CorruptRecord) -> String {
    format!("#{} CORRUPT: {}", bad.seq, one_line(&bad.reason))
}

#[derive(serde::Serialize)]
struct JsonRecord<'a> {
    seq: u64,
    ts_micros: u64,
    time: String,
    event: &'a Event,
}

#[derive(serde::Serialize)]
struct JsonCorrupt<'a> {
    seq: u64,
    corrupt: &'a str,
}

/// The serde form of the record plus a `time` field (RFC 3339, UTC, milliseconds).
pub fn record_json(record: &Record) -> String {
    json(&JsonRecord {
        seq: record.seq,
        ts_micros: record.ts_micros,
        time: rfc3339(record.ts_micros),
        event: &record.event,
    })
}

/// `{"seq":42,"corrupt":"<reason>"}`
pub fn corrupt_json(bad: &CorruptRecord) -> String {
    json(&JsonCorrupt {
        seq: bad.seq,
        corrupt: &bad.reason,
    })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // These types serialise to JSON without fail: string keys only, no non-finite floats.
    serde_json::to_string(value).unwrap_or_else(|_| r#"{"error":"cannot serialise"}"#.into())
}

// ---------------------------------------------------------------------------------------------
// Selecting records

/// True when `event` is about the interface `ifname`: its own records, a PortStatus with its
/// wire name (the first 15 bytes), a PORT_DESC that lists it.
pub fn concerns(event: &Event, ifname: &str) -> bool {
    let wire = wire_name(ifname);
    match event {
        Event::PortStatusReceived { port, .. } => port.name == wire,
        Event::PortDescSynced { ports } => ports.iter().any(|d| d.name == wire),
        other => other.ifname() == Some(ifname),
    }
}

/// The interfaces of a Pod, from its PodAdded records, in order of first addition.
pub fn pod_ifnames<'a>(records: impl IntoIterator<Item = &'a Record>, pod: &PodRef) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records {
        if let Event::PodAdded { pod: p, ifname, .. } = &r.event {
            if p == pod && !out.contains(ifname) {
                out.push(ifname.clone());
            }
        }
    }
    out
}

/// Which records `dump` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Keep only records about these interfaces (see [`concerns`]); all when `None`.
    pub ifnames: Option<Vec<String>>,
    /// Inclusive bounds on the sequence number.
    pub since: Option<u64>,
    pub until: Option<u64>,
}

impl RecordFilter {
    pub fn seq_in_range(&self, seq: u64) -> bool {
        self.since.is_none_or(|s| seq >= s) && self.until.is_none_or(|u| seq <= u)
    }

    pub fn matches(&self, record: &Record) -> bool {
        self.seq_in_range(record.seq)
            && self
                .ifnames
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| concerns(&record.event, n)))
    }
}

// ---------------------------------------------------------------------------------------------
// Timeline of one port

/// The life of one interface: a header line, then one line per record about it with its offset
/// from the interface's first PodAdded (or its first record), then its stages: for each wait
/// (to each Ready, and the one cut short or still going at the end), every stage reached with
/// its offset and the time since the previous stage. `None` when no record is about it.
pub fn port_timeline(records: &[Record], ifname: &str) -> Option<Vec<String>> {
    let mine: Vec<&Record> = records
        .iter()
        .filter(|r| concerns(&r.event, ifname))
        .collect();
    let origin = mine
        .iter()
        .find(|r| matches!(&r.event, Event::PodAdded { ifname: i, .. } if i == ifname))
        .or(mine.first())?;
    let pod = match &origin.event {
        Event::PodAdded { pod, .. } => format!(" pod={}", word(&pod.to_string())),
        _ => String::new(),
    };
    let mut lines = vec![format!(
        "{}{pod}: {} records, +0 = #{} {}",
        word(ifname),
        mine.len(),
        origin.seq,
        rfc3339(origin.ts_micros)
    )];
    for r in &mine {
        let delta = i128::from(r.ts_micros) - i128::from(origin.ts_micros);
        lines.push(format!("{} {}", offset(delta), event_line(&r.event)));
    }
    lines.extend(port_stage_lines(records, ifname, origin.ts_micros));
    Some(lines)
}

// ---------------------------------------------------------------------------------------------
// Stages

/// The nearest-rank percentile `p` (0..=100) of a sorted, non-empty sample: the smallest value
/// with at least `p`% of the sample at or below it.
pub fn nearest_rank(sorted: &[u64], p: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// µs as milliseconds (exact to the µs in JSON).
fn micros_ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// One row of [`StageSummary`]: how long a stage took since the previous one, over every wait
/// that ended in a Ready. The percentiles are `None` when no wait went through the stage.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct StageStats {
    /// [`Stage::name`], or `total` (the whole wait: from its start to the Ready).
    pub stage: String,
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl StageStats {
    fn of(stage: &str, mut sample: Vec<u64>) -> StageStats {
        sample.sort_unstable();
        let at = |p| nearest_rank(&sample, p).map(micros_ms);
        StageStats {
            stage: stage.into(),
            count: sample.len(),
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            max_ms: sample.last().copied().map(micros_ms),
        }
    }
}

/// A Pod (one life of an interface, from its PodAdded) that was never reported ready.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct NeverReady {
    pub ifname: String,
    pub pod: String,
    /// The latest stage (in [`Stage`] order) it reached, by [`Stage::name`].
    pub last_stage: Option<String>,
    /// How its life ended: `deleted`, `vanished`, `re-added`, or, while it is still tracked at
    /// the last record, its phase (`failed`, `type-change-requested`, ...).
    pub outcome: String,
    /// From its PodAdded to that end (or to the last record), in ms.
    pub for_ms: f64,
}

/// `timeline --summary`: per stage, the time it took since the previous one, over every wait
/// of the journal that ended in a Ready (a first attach, or a wait after a lost Ready: each
/// counted once, with [`StageTimes::this_wait`], exactly as the engine's
/// `podport_stage_seconds` observes them), and the Pods never ready.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct StageSummary {
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Pods added in these records (each PodAdded a life).
    pub pods: usize,
    /// Waits that ended in a Ready (PodReady records that made a port ready).
    pub ready_waits: usize,
    /// One row per stage after `added`, in [`Stage`] order.
    pub stages: Vec<StageStats>,
    /// The whole wait, from its start (the add, or the lost Ready) to the Ready.
    pub total: StageStats,
    pub never_ready: Vec<NeverReady>,
}

/// Folds `records` with the engine's [`apply`] and gathers [`StageSummary`]. Pods added
/// before the first record (compacted away) are not counted.
pub fn stage_summary(records: &[Record]) -> StageSummary {
    struct Life {
        pod: PodRef,
        added_at: u64,
        ready: bool,
    }
    fn close(
        out: &mut Vec<NeverReady>,
        ifname: &str,
        life: Life,
        stages: Option<&StageTimes>,
        outcome: String,
        end: u64,
    ) {
        if life.ready {
            return;
        }
        let last = stages.and_then(|t| Stage::ALL.into_iter().rev().find(|s| t.get(*s).is_some()));
        out.push(NeverReady {
            ifname: ifname.to_string(),
            pod: life.pod.to_string(),
            last_stage: last.map(|s| s.name().to_string()),
            outcome,
            for_ms: micros_ms(end.saturating_sub(life.added_at)),
        });
    }
    let mut state = State::default();
    let mut lives: BTreeMap<String, Life> = BTreeMap::new();
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); Stage::ALL.len()];
    let mut totals: Vec<u64> = Vec::new();
    let mut never = Vec::new();
    let mut pods = 0;
    for r in records {
        // A life that ends with this record: seen before the fold forgets the port.
        let ending = match &r.event {
            Event::PodAdded { ifname, .. } => Some((ifname, "re-added")),
            Event::PodDeleted { ifname } => Some((ifname, "deleted")),
            Event::Reconciled {
                ifname,
                finding: crate::event::Finding::Vanished,
            } => Some((ifname, "vanished")),
            _ => None,
        };
        if let Some((ifname, outcome)) = ending {
            if let Some(life) = lives.remove(ifname) {
                let stages = state.ports.get(ifname).map(|p| &p.stages);
                close(
                    &mut never,
                    ifname,
                    life,
                    stages,
                    outcome.into(),
                    r.ts_micros,
                );
            }
        }
        let was_ready = r
            .event
            .ifname()
            .and_then(|n| state.ports.get(n))
            .is_some_and(|p| p.stages.get(Stage::Ready).is_some());
        apply(&mut state, r);
        match &r.event {
            Event::PodAdded { ifname, pod, .. } if state.ports.contains_key(ifname) => {
                pods += 1;
                lives.insert(
                    ifname.clone(),
                    Life {
                        pod: pod.clone(),
                        added_at: r.ts_micros,
                        ready: false,
                    },
                );
            }
            // Counted once per wait: a second PodReady without a lost Ready between adds
            // nothing.
            Event::PodReady { ifname, .. } if !was_ready => {
                let Some(p) = state.ports.get(ifname) else {
                    continue;
                };
                if p.stages.get(Stage::Ready).is_none() {
                    continue;
                }
                let wait = p.stages.this_wait();
                for (stage, d) in &wait {
                    samples[*stage as usize].push(d.as_micros() as u64);
                }
                totals.push(wait.iter().map(|(_, d)| d.as_micros() as u64).sum());
                if let Some(life) = lives.get_mut(ifname) {
                    life.ready = true;
                }
            }
            _ => {}
        }
    }
    let end = records.iter().map(|r| r.ts_micros).max().unwrap_or(0);
    for (ifname, life) in std::mem::take(&mut lives) {
        let p = state.ports.get(&ifname);
        let outcome = p.map_or("gone".to_string(), |p| state.phase_of(p).name().to_string());
        close(
            &mut never,
            &ifname,
            life,
            p.map(|p| &p.stages),
            outcome,
            end,
        );
    }
    never.sort_by(|a, b| a.ifname.cmp(&b.ifname));
    StageSummary {
        first_seq: records.first().map(|r| r.seq),
        last_seq: records.last().map(|r| r.seq),
        pods,
        ready_waits: totals.len(),
        stages: Stage::ALL
            .into_iter()
            .filter(|s| *s != Stage::Added)
            .map(|s| StageStats::of(s.name(), std::mem::take(&mut samples[s as usize])))
            .collect(),
        total: StageStats::of("total", totals),
        never_ready: never,
    }
}

/// `1234.567` (ms to the µs), or `-`.
fn ms_cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Most never-ready Pods the text lists one by one.
const NEVER_READY_SHOWN: usize = 20;

/// The summary as a table: a row per stage, then the whole wait, then the Pods never ready.
pub fn stage_summary_text(s: &StageSummary) -> String {
    let range = match (s.first_seq, s.last_seq) {
        (Some(a), Some(b)) => format!("#{a}..#{b}"),
        _ => "none".into(),
    };
    let mut out = format!(
        "{} Ready of {} Pods (records {range}): each stage's time since the previous one, ms (nearest rank)\n",
        s.ready_waits, s.pods
    );
    let header = ["STAGE", "COUNT", "P50", "P90", "P99", "MAX"].map(String::from);
    let rows: Vec<[String; 6]> = std::iter::once(header)
        .chain(s.stages.iter().chain([&s.total]).map(|r| {
            [
                r.stage.clone(),
                r.count.to_string(),
                ms_cell(r.p50_ms),
                ms_cell(r.p90_ms),
                ms_cell(r.p99_ms),
                ms_cell(r.max_ms),
            ]
        }))
        .collect();
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        // The name left-aligned, the numbers right-aligned.
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for c in 1..6 {
            let _ = write!(line, "  {:>w$}", row[c], w = widths[c]);
        }
        out.push_str(&line);
        out.push('\n');
    }
    let n = s.never_ready.len();
    let _ = writeln!(
        out,
        "never ready: {n} Pod{}{}",
        if n == 1 { "" } else { "s" },
        if n == 0 { "" } else { ":" }
    );
    for p in s.never_ready.iter().take(NEVER_READY_SHOWN) {
        let _ = writeln!(
            out,
            "  {} pod={} last stage {} after {}, {}",
            word(&p.ifname),
            word(&p.pod),
            p.last_stage.as_deref().unwrap_or("-"),
            offset((p.for_ms * 1_000.0) as i128).trim_start_matches('+'),
            word(&p.outcome)
        );
    }
    if n > NEVER_READY_SHOWN {
        let _ = writeln!(out, "  …(+{}; --json lists all)", n - NEVER_READY_SHOWN);
    }
    out
}

/// The serde form of [`StageSummary`].
pub fn stage_summary_json(s: &StageSummary) -> String {
    json(s)
}

/// Each wait of `ifname` (one per Ready, then the one in progress or cut short at the end of
/// its life or of the records), as text lines: the stages reached, when (offset from
/// `origin`), and the time since the previous one.
fn port_stage_lines(records: &[Record], ifname: &str, origin: u64) -> Vec<String> {
    let mut state = State::default();
    let mut lines = Vec::new();
    let block = |lines: &mut Vec<String>, title: String, t: &StageTimes| {
        lines.push(title);
        if let Some(r) = t.rewait_since {
            lines.push(format!(
                "  (a re-wait from {}: the switch's stages count from there)",
                offset(i128::from(r) - i128::from(origin))
            ));
        }
        for (stage, d) in t.durations() {
            let at = t.get(stage).unwrap_or_default();
            lines.push(format!(
                "  {:<15} {:>9}  {:>10}",
                stage.name(),
                offset(i128::from(at) - i128::from(origin)),
                format!("{:.3}ms", d.as_secs_f64() * 1e3)
            ));
        }
    };
    for r in records {
        let ending = match &r.event {
            Event::PodAdded { ifname: i, .. } if i == ifname => Some("re-added"),
            Event::PodDeleted { ifname: i } if i == ifname => Some("deleted"),
            Event::Reconciled {
                ifname: i,
                finding: crate::event::Finding::Vanished,
            } if i == ifname => Some("vanished"),
            _ => None,
        };
        if let (Some(how), Some(p)) = (ending, state.ports.get(ifname)) {
            if p.stages.get(Stage::Ready).is_none() {
                let title = format!("stages until it was {how} (never ready):");
                block(&mut lines, title, &p.stages);
            }
        }
        let was_ready = state
            .ports
            .get(ifname)
            .is_some_and(|p| p.stages.get(Stage::Ready).is_some());
        apply(&mut state, r);
        let p = state.ports.get(ifname);
        if let (Event::PodReady { ifname: i, .. }, false, Some(p)) = (&r.event, was_ready, p) {
            if i == ifname && p.stages.get(Stage::Ready).is_some() {
                let title = format!("stages to Ready #{}:", r.seq);
                block(&mut lines, title, &p.stages);
            }
        }
    }
    if let Some(p) = state.ports.get(ifname) {
        if p.stages.get(Stage::Ready).is_none() {
            let phase = state.phase_of(p);
            let title = format!("stages so far ({phase} at the last record):");
            block(&mut lines, title, &p.stages);
        }
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// State

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count() + 2;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The table's cells for one port.
fn port_row(state: &State, p: &PodPort) -> Vec<String> {
    let error = match (&p.failed, &p.last_error) {
        (Some(f), _) => failure_text(f),
        (None, Some(e)) => word(e).into_owned(),
        (None, None) => "-".into(),
    };
    vec![
        word(&p.ifname).into_owned(),
        word(&p.pod.to_string()).into_owned(),
        state.phase_of(p).name().into(),
        p.port_no.map_or("-".into(), |n| n.to_string()),
        p.port_no.map_or("-".into(), |_| port_state(p.state)),
        p.iface_type
            .as_deref()
            .map_or("-".into(), |t| word(t).into_owned()),
        format!("{:#x}", p.cookie),
        p.flows
            .map_or("-".into(), |f| format!("n={} port={}", f.count, f.port_no)),
        p.ready.map_or("-".into(), |r| rfc3339(r.since)),
        error,
    ]
}

/// `switch: tcp:... dpid=0x... of=1.3` or `switch: disconnected`.
fn switch_text(state: &State) -> String {
    match &state.switch {
        Some(sw) => format!(
            "{} dpid={:#018x} of={}",
            word(&sw.endpoint),
            sw.datapath_id,
            word(&sw.of_version)
        ),
        None => "disconnected".into(),
    }
}

/// The header line and the aligned per-port table of a replay. The phase is the fold's own
/// ([`State::phase_of`]).
pub fn state_table(replay: &Replay) -> String {
    let snapshot = match replay.snapshot_seq {
        Some(s) => format!("#{s} + {} records", replay.records_replayed),
        None => format!("none ({} records)", replay.records_replayed),
    };
    let mut out = format!(
        "last seq: {}  snapshot: {snapshot}  switch: {}  foreign PortStatus: {}\n",
        replay.last_seq,
        switch_text(&replay.state),
        replay.state.foreign_port_status
    );
    if replay.state.ports.is_empty() {
        out.push_str("(no Pod ports)\n");
        return out;
    }
    let mut rows = vec![[
        "INTERFACE",
        "POD",
        "PHASE",
        "PORT",
        "STATE",
        "TYPE",
        "COOKIE",
        "FLOWS",
        "READY SINCE",
        "ERROR",
    ]
    .map(String::from)
    .to_vec()];
    rows.extend(
        replay
            .state
            .ports
            .values()
            .map(|p| port_row(&replay.state, p)),
    );
    out.push_str(&table(&rows));
    out
}

#[derive(serde::Serialize)]
struct JsonState<'a> {
    last_seq: u64,
    snapshot_seq: Option<u64>,
    records_replayed: u64,
    stopped_at: Option<JsonCorrupt<'a>>,
    state: &'a State,
}

/// `{"last_seq":..,"snapshot_seq":..,"records_replayed":..,"stopped_at":null|{"seq":..,
/// "corrupt":".."},"state":<serde form of State>}`
pub fn state_json(replay: &Replay) -> String {
    json(&JsonState {
        last_seq: replay.last_seq,
        snapshot_seq: replay.snapshot_seq,
        records_replayed: replay.records_replayed,
        stopped_at: replay.stopped_at.as_ref().map(|c| JsonCorrupt {
            seq: c.seq,
            corrupt: &c.reason,
        }),
        state: &replay.state,
    })
}

// ---------------------------------------------------------------------------------------------
// Verify and stats

fn seq_range(stats: &Stats) -> String {
    match (stats.first_seq, stats.last_seq) {
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => "-".into(),
    }
}

/// `ok: N records, M snapshots, seq A..B`
pub fn verify_ok_line(stats: &Stats) -> String {
    format!(
        "ok: {} records, {} snapshots, seq {}",
        stats.records,
        stats.snapshots.len(),
        seq_range(stats)
    )
}

/// `#N: reason`
pub fn verify_bad_line(bad: &CorruptRecord) -> String {
    format!("#{}: {}", bad.seq, one_line(&bad.reason))
}

/// The `stats` report: counts, range, bytes, snapshots, then one line per kind.
pub fn stats_text(stats: &Stats) -> String {
    let snapshots = if stats.snapshots.is_empty() {
        "0".to_string()
    } else {
        let seqs: Vec<String> = stats.snapshots.iter().map(|s| format!("#{s}")).collect();
        format!("{} ({})", stats.snapshots.len(), seqs.join(", "))
    };
    let mut out = format!(
        "records:   {}\nseq:       {}\ncorrupt:   {}\nbytes:     {}\nsnapshots: {snapshots}\n",
        stats.records,
        seq_range(stats),
        stats.corrupt,
        stats.bytes
    );
    if !stats.by_kind.is_empty() {
        out.push_str("by kind:\n");
        let width = stats.by_kind.keys().map(String::len).max().unwrap_or(0);
        for (kind, n) in &stats.by_kind {
            let _ = writeln!(out, "  {kind:<width$}  {n}");
        }
    }
    out
}

/// The serde form of [`Stats`].
pub fn stats_json(stats: &Stats) -> String {
    json(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PortReason;

    #[test]
    fn times_are_utc() {
        // 2026-11-27T12:05:23.717Z
        let ts = 1_795_780_800_000_000 + 323_717_999;
        assert_eq!(clock(ts), "12:05:23.717");
        assert_eq!(rfc3339(ts), "2026-11-27T12:05:23.717Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // A leap day and the last day of a year.
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_704_067_199_000_000), "2023-12-31T23:59:59.000Z");
        // Never panics, even at the end of the range, and prints the year in full there
        // (as before the `time` crate did the calendar).
        assert_eq!(rfc3339(u64::MAX), "586524-01-19T08:01:49.551Z");
        assert_eq!(clock(u64::MAX), "08:01:49.551");
        // Past time's default range (year 9999): the large-dates feature covers it.
        assert_eq!(
            rfc3339(253_402_300_800_000_000),
            "10000-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn bits_are_named() {
        assert_eq!(port_state(0), "0");
        assert_eq!(port_state(4), "LIVE");
        assert_eq!(port_state(1 | 2), "LINK_DOWN|BLOCKED");
        assert_eq!(port_state(4 | 0x100), "LIVE|0x100");
        assert_eq!(port_config(0), "0");
        assert_eq!(
            port_config(1 | 0x20 | 0x40),
            "PORT_DOWN|NO_FWD|NO_PACKET_IN"
        );
        assert_eq!(port_config(4 | 2 | 8), "NO_RECV|0xa");
    }

    #[test]
    fn values_stay_one_word() {
        assert_eq!(word("vnic-1"), "vnic-1");
        assert_eq!(word(""), "\"\"");
        assert_eq!(word("port 6 is down"), "\"port 6 is down\"");
        assert_eq!(word("a\nb\u{1b}"), "\"a\\nb\\u{1b}\"");
        assert_eq!(offset(7_012_999), "+7.012s");
        assert_eq!(offset(-250_000), "-0.250s");
        assert_eq!(millis(10_000), "10.000s");
        assert_eq!(hw_addr(&[2, 0, 0xa, 0, 0, 0xff]), "02:00:0a:00:00:ff");
    }

    #[test]
    fn long_port_lists_are_cut() {
        let ports: Vec<PortDesc> = (1..=10)
            .map(|n| PortDesc {
                port_no: n,
                name: format!("p{n}"),
                state: 4,
                config: 0,
                hw_addr: [0; 6],
            })
            .collect();
        let line = event_line(&Event::PortDescSynced { ports });
        assert!(
            line.starts_with("PortDescSynced ports=10 [1 p1 LIVE, 2 p2 LIVE,"),
            "{line}"
        );
        assert!(line.ends_with(", 8 p8 LIVE, …(+2)]"), "{line}");
    }

    #[test]
    fn json_lines_round_trip() {
        let r = Record {
            seq: 3,
            ts_micros: 1_795_780_800_000_000,
            event: Event::PodDeleted {
                ifname: "vnic-1".into(),
            },
        };
        let line = record_json(&r);
        assert_eq!(
            line,
            r#"{"seq":3,"ts_micros":1795780800000000,"time":"2026-11-27T12:00:00.000Z","event":{"kind":"pod_deleted","ifname":"vnic-1"}}"#
        );
        assert_eq!(record_from_json_line(&line).unwrap(), r);
        assert!(record_from_json_line("{\"seq\":1}").is_err());
        assert!(record_from_json_line("not json").is_err());
    }

    fn rec(seq: u64, secs: u64, event: Event) -> Record {
        Record {
            seq,
            ts_micros: 1_795_780_800_000_000 + secs * 1_000_000,
            event,
        }
    }

    #[test]
    fn other_lines() {
        let r = rec(
            9,
            1,
            Event::PortStatusReceived {
                reason: PortReason::Other(7),
                port: PortDesc {
                    port_no: 3,
                    name: "a b".into(),
                    state: 0,
                    config: 0x41,
                    hw_addr: [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
                },
            },
        );
        assert_eq!(
            record_line(&r),
            "#9 12:00:01.000 PortStatus REASON(7) port=3 name=\"a b\" state=0 \
             config=PORT_DOWN|NO_PACKET_IN hw=aa:bb:cc:dd:ee:ff"
        );
        let e = Event::OvsdbInterfaceUpdate {
            ifname: "v".into(),
            iface_type: "internal".into(),
            ofport: Some(-1),
            error: Some("could not open network device v".into()),
        };
        assert_eq!(
            event_line(&e),
            "OvsdbInterfaceUpdate ifname=v type=internal ofport=-1 error=\"could not open network device v\""
        );
        let e = Event::InterfaceTypeChanged {
            ifname: "v".into(),
            from: String::new(),
            to: "internal".into(),
            outcome: Outcome::Failed(Failure::permanent("constraint violation")),
        };
        assert_eq!(
            event_line(&e),
            "InterfaceTypeChanged ifname=v from=\"\" to=internal failed error=\"constraint violation\" (permanent)"
        );
        let e = Event::Reconciled {
            ifname: "v".into(),
            finding: crate::event::Finding::Renumbered { from: 5, to: 7 },
        };
        assert_eq!(
            event_line(&e),
            "Reconciled ifname=v finding=\"renumbered 5 -> 7\""
        );
        let e = Event::AgentStarted {
            version: "0.2.0".into(),
            config_digest: "d".into(),
            policy: crate::event::Policy {
                readiness: Readiness::LiveOrLinkDown,
                ovsdb_wait: true,
                attached_type: "internal".into(),
            },
        };
        assert_eq!(
            event_line(&e),
            "AgentStarted version=0.2.0 config=d readiness=live-or-link-down attached-type=internal ovsdb-wait"
        );
        let bad = CorruptRecord {
            seq: 4,
            reason: "line\nbreak".into(),
        };
        assert_eq!(corrupt_line(&bad), "#4 CORRUPT: line break");
        assert_eq!(corrupt_json(&bad), r#"{"seq":4,"corrupt":"line\nbreak"}"#);
    }
}
