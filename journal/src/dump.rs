//! Readable renderings of journal records and of the folded state, for the `podport-journal`
//! dump tool: one text line per record, JSON lines, the per-port state table, a port's
//! timeline, an SVG of every port's lifecycle, verify and stats summaries.
//!
//! Everything here is pure (records in, `String`s out), so the formats are unit-testable and
//! every source of records shares them: a journal directory today, the agent's control socket
//! (JSON lines of [`Record`], see [`record_from_json_line`]) later.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::event::{
    wire_name, Event, Failure, Outcome, Phase, PodRef, PortDesc, Readiness, Record,
};
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

// ---------------------------------------------------------------------------------------------
// SVG of every port's lifecycle

/// The SVG's colour of a phase.
fn phase_color(phase: Phase) -> &'static str {
    match phase {
        Phase::Creating => "#fde6b0",
        Phase::WaitingInterface => "#f7cf6d",
        Phase::TypeChangeRequested => "#f0ad4e",
        Phase::Allocated => "#4a90d9",
        Phase::Usable => "#98d68f",
        Phase::Ready => "#a1d99b",
        Phase::Failed => "#d62728",
        Phase::Removing => "#8c8c8c",
    }
}

/// The class and colour of a segment: a [`Phase`], or `gone` once the port is out of the state.
fn band(phase: Option<Phase>) -> (&'static str, &'static str) {
    match phase {
        Some(p) => (p.name(), phase_color(p)),
        None => (GONE, "#dddddd"),
    }
}

/// The SVG's name for the time after a port left the state (deleted, found vanished).
const GONE: &str = "gone";

/// One row of the SVG: a port's phase segments (`None`: gone), its stage spans, its PortStatus
/// ticks and "not ready yet" reports (times in µs since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifeRow {
    pub ifname: String,
    pub pod: PodRef,
    pub segments: Vec<(Option<Phase>, u64, u64)>,
    pub ticks: Vec<(u64, String)>,
    /// Each stage of each wait: from the end of the stage before it to its own end.
    pub stages: Vec<StageSpan>,
    /// `PodNotReady` records, with a label.
    pub not_ready: Vec<(u64, String)>,
}

/// The time a port spent reaching one [`Stage`], or (`pending`) waiting for a stage it did not
/// reach before its wait ended (failed, removed, re-added, gone) or the records did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageSpan {
    pub stage: Stage,
    pub from: u64,
    pub to: u64,
    pub pending: bool,
}

/// A phase in which the port waits for the engine or the switch (not for the CNI, not done).
fn waiting_phase(phase: Option<Phase>) -> bool {
    matches!(
        phase,
        Some(
            Phase::Creating
                | Phase::WaitingInterface
                | Phase::TypeChangeRequested
                | Phase::Allocated
                | Phase::Usable
        )
    )
}

/// The spans of a wait's stages not drawn yet (`drawn` holds `(stage, end)` of those drawn),
/// and, when it never got ready, the stage it was waiting for from its last stage until
/// `wait_end`.
fn stage_spans(
    t: &StageTimes,
    wait_end: u64,
    drawn: &mut std::collections::BTreeSet<(Stage, u64)>,
) -> Vec<StageSpan> {
    let mut out = Vec::new();
    for (stage, d) in t.durations() {
        let Some(at) = t.get(stage) else { continue };
        if stage == Stage::Added || !drawn.insert((stage, at)) {
            continue;
        }
        let from = at.saturating_sub(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        out.push(StageSpan {
            stage,
            from,
            to: at,
            pending: false,
        });
    }
    if t.get(Stage::Ready).is_none() {
        let highest = Stage::ALL.into_iter().rev().find(|s| t.get(*s).is_some());
        let last_at = Stage::ALL.into_iter().filter_map(|s| t.get(s)).max();
        let from = match (last_at, t.rewait_since) {
            (Some(a), Some(r)) => a.max(r),
            (a, r) => a.or(r).unwrap_or(wait_end),
        };
        let next = Stage::ALL
            .into_iter()
            .find(|s| t.get(*s).is_none() && highest.is_none_or(|h| *s > h));
        if let Some(stage) = next {
            if wait_end > from && drawn.insert((stage, from)) {
                out.push(StageSpan {
                    stage,
                    from,
                    to: wait_end,
                    pending: true,
                });
            }
        }
    }
    out
}

/// Every port's life, folding the records with the engine's own [`apply`] and deriving each
/// port's [`Phase`] with [`State::phase_of`], so the phases are the agent's. Ports added before
/// the first record given (compacted away) do not appear. `only` keeps one interface.
pub fn lifecycles(records: &[Record], only: Option<&str>) -> Vec<LifeRow> {
    struct Track {
        row: LifeRow,
        current: (Option<Phase>, u64),
        /// The stages of the current wait as last seen, what of them is drawn, and when the
        /// port stopped waiting (failed, ready, removed, gone) if it did.
        stages: Option<StageTimes>,
        drawn: std::collections::BTreeSet<(Stage, u64)>,
        wait_end: Option<u64>,
    }
    let mut state = State::default();
    let mut tracks: Vec<Track> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        apply(&mut state, r);
        // Only a PodAdded adds a port to the state.
        if let Event::PodAdded { ifname, .. } = &r.event {
            if let Some(p) = state.ports.get(ifname) {
                if !index.contains_key(ifname) && only.is_none_or(|o| o == ifname) {
                    index.insert(ifname.clone(), tracks.len());
                    tracks.push(Track {
                        row: LifeRow {
                            ifname: ifname.clone(),
                            pod: p.pod.clone(),
                            segments: Vec::new(),
                            ticks: Vec::new(),
                            stages: Vec::new(),
                            not_ready: Vec::new(),
                        },
                        current: (Some(state.phase_of(p)), r.ts_micros),
                        stages: None,
                        drawn: Default::default(),
                        wait_end: None,
                    });
                }
            }
        }
        // A record about one interface changes only its row (keeps long journals linear); the
        // switch connection, the agent's policy, PORT_DESC and PortStatus (by wire name) may
        // change any.
        let touched: Vec<usize> = match &r.event {
            Event::AgentStarted { .. }
            | Event::SwitchConnected { .. }
            | Event::SwitchDisconnected { .. }
            | Event::PortStatusReceived { .. }
            | Event::PortDescSynced { .. } => (0..tracks.len()).collect(),
            other => other
                .ifname()
                .and_then(|name| index.get(name))
                .copied()
                .into_iter()
                .collect(),
        };
        for i in touched {
            let t = &mut tracks[i];
            let now = state.phase(&t.row.ifname);
            if now != t.current.0 {
                t.row.segments.push((t.current.0, t.current.1, r.ts_micros));
                t.current = (now, r.ts_micros);
                if waiting_phase(now) {
                    t.wait_end = None;
                } else if t.wait_end.is_none() {
                    t.wait_end = Some(r.ts_micros);
                }
            }
            // A wait whose stages the fold forgets (a lost Ready, a new life, the port gone) is
            // drawn now, as it was.
            let stages = state.ports.get(&t.row.ifname).map(|p| p.stages);
            if let Some(prev) = t.stages {
                let forgotten = stages.is_none_or(|now| {
                    Stage::ALL
                        .into_iter()
                        .any(|s| prev.get(s).is_some() && now.get(s) != prev.get(s))
                });
                if forgotten {
                    let end = t.wait_end.unwrap_or(r.ts_micros);
                    let spans = stage_spans(&prev, end, &mut t.drawn);
                    t.row.stages.extend(spans);
                }
            }
            t.stages = stages;
            if let Event::PodNotReady {
                ifname,
                phase,
                waited_ms,
            } = &r.event
            {
                if *ifname == t.row.ifname {
                    let label = format!(
                        "#{} not ready yet: {phase}, waited {}",
                        r.seq,
                        millis(*waited_ms)
                    );
                    t.row.not_ready.push((r.ts_micros, label));
                }
            }
            if let Event::PortStatusReceived { reason, port } = &r.event {
                if wire_name(&t.row.ifname) == port.name {
                    let label = format!(
                        "#{} PortStatus {} port={} state={}",
                        r.seq,
                        reason.label(),
                        port.port_no,
                        port_state(port.state)
                    );
                    t.row.ticks.push((r.ts_micros, label));
                }
            }
        }
    }
    let end = records.iter().map(|r| r.ts_micros).max().unwrap_or(0);
    tracks
        .into_iter()
        .map(|mut t| {
            t.row
                .segments
                .push((t.current.0, t.current.1, end.max(t.current.1)));
            if let Some(prev) = t.stages {
                let spans = stage_spans(&prev, t.wait_end.unwrap_or(end), &mut t.drawn);
                t.row.stages.extend(spans);
            }
            t.row
        })
        .collect()
}

/// Text for XML content and attribute values: the five entities escaped, and the characters
/// XML 1.0 forbids (most control characters) replaced.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" axis step (1, 2 or 5 times a power of ten seconds) for about `target` labels.
fn axis_step(span_s: f64, target: f64) -> f64 {
    let raw = (span_s / target).max(1e-3);
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow)
}

/// The rendered picture and what it shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Svg {
    pub text: String,
    pub ports: usize,
    pub records: usize,
    /// From the first record to the last, in µs.
    pub span_micros: u64,
}

/// The SVG's colour of a stage (the time spent reaching it).
fn stage_color(stage: Stage) -> &'static str {
    match stage {
        Stage::Added => "#bab0ac",
        Stage::PortCommitted => "#4e79a7",
        Stage::HostAttached => "#f28e2b",
        Stage::TypeChanged => "#edc948",
        Stage::PortKnown => "#b07aa1",
        Stage::Usable => "#76b7b2",
        Stage::FlowsSent => "#ff9da7",
        Stage::FlowsConfirmed => "#9c755f",
        Stage::Ready => "#1b7837",
    }
}

/// The shortest gap between two messages from the switch that [`switch_marks`] reports as
/// silence (while ports wait).
pub const SILENCE_MIN_MICROS: u64 = 1_000_000;

/// A time with no message from the switch while ports waited for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// The last message before it (or the first record), µs since the epoch.
    pub from: u64,
    /// The next message, or the last record when none came (`open`).
    pub to: u64,
    pub open: bool,
    /// The most ports waiting at once during it.
    pub waiting: usize,
}

/// The switch's side of a journal: disconnects (time, label) and silences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchMarks {
    pub disconnects: Vec<(u64, String)>,
    pub silences: Vec<Silence>,
}

/// A record of something the switch sent: the connection's handshake, a PORT_DESC, a
/// PortStatus, a barrier reply (flows confirmed).
fn from_switch(event: &Event) -> bool {
    matches!(
        event,
        Event::SwitchConnected { .. }
            | Event::PortDescSynced { .. }
            | Event::PortStatusReceived { .. }
            | Event::FlowsInstalled { .. }
    )
}

/// A phase in which the port waits for the switch: its attach came, and the switch has yet
/// to show the port, make it usable or confirm its flows.
fn waits_on_switch(phase: Option<Phase>) -> bool {
    matches!(
        phase,
        Some(Phase::TypeChangeRequested | Phase::Allocated | Phase::Usable)
    )
}

/// Disconnects, and every time longer than [`SILENCE_MIN_MICROS`] during which ports waited on
/// the switch ([`waits_on_switch`]) and no record came from it ([`from_switch`]): from the
/// later of its last message and the start of the wait, to its next message or the end of
/// every wait. A frozen ovs-vswitchd shows as such.
pub fn switch_marks(records: &[Record]) -> SwitchMarks {
    let mut state = State::default();
    let mut waiting: std::collections::BTreeSet<String> = Default::default();
    let mut marks = SwitchMarks::default();
    // Since when ports wait and the switch said nothing, and the most ports waiting then.
    let mut silent: Option<(u64, usize)> = None;
    let close = |marks: &mut SwitchMarks, silent: Option<(u64, usize)>, to: u64, open| {
        if let Some((from, waiting)) = silent {
            if to.saturating_sub(from) > SILENCE_MIN_MICROS {
                marks.silences.push(Silence {
                    from,
                    to,
                    open,
                    waiting,
                });
            }
        }
    };
    for r in records {
        apply(&mut state, r);
        let names: Vec<String> = match &r.event {
            Event::AgentStarted { .. }
            | Event::SwitchConnected { .. }
            | Event::SwitchDisconnected { .. }
            | Event::PortDescSynced { .. }
            | Event::PodDeleted { .. }
            | Event::Reconciled { .. } => {
                waiting.retain(|n| state.ports.contains_key(n));
                state.ports.keys().cloned().collect()
            }
            Event::PortStatusReceived { port, .. } => state
                .by_wire_name(&port.name)
                .map(String::from)
                .into_iter()
                .collect(),
            other => other.ifname().map(String::from).into_iter().collect(),
        };
        for n in names {
            if waits_on_switch(state.phase(&n)) {
                waiting.insert(n);
            } else {
                waiting.remove(&n);
            }
        }
        if let Event::SwitchDisconnected { reason, .. } = &r.event {
            marks.disconnects.push((
                r.ts_micros,
                format!("#{} switch disconnected: {reason}", r.seq),
            ));
        }
        if from_switch(&r.event) || waiting.is_empty() {
            close(&mut marks, silent.take(), r.ts_micros, false);
        }
        if !waiting.is_empty() {
            let s = silent.get_or_insert((r.ts_micros, 0));
            s.1 = s.1.max(waiting.len());
        }
    }
    let end = records.iter().map(|r| r.ts_micros).max().unwrap_or(0);
    close(&mut marks, silent, end, true);
    marks
}

/// `3.2 s`, `12 s`: a duration for a label.
fn secs_label(micros: u64) -> String {
    let s = micros as f64 / 1e6;
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// One row per port on a common time axis. Each stage of each wait is a span coloured by
/// its [`Stage`] (`<rect class="stage" data-stage="port_known">`), from the end of the stage
/// before it to its own end; a stage a port waited for and never reached is a pale dashed span
/// (`class="pending"`). After the stages, a band for the phases that are not waits
/// (`class="ready"`, `failed`, `removing`, a thin `gone`). A tick per PortStatus
/// (`class="tick"`), a triangle per "not ready yet" report (`class="not-ready"`), a red dashed
/// line across every row per switch disconnect (`class="disconnect"`), and a hatched window
/// labelled "switch silent N s" (`class="switch-silent"`) per [`switch_marks`] silence. Each
/// row is a `<g class="port" data-ifname="...">`; a legend names every colour and mark.
pub fn timeline_svg(records: &[Record], only: Option<&str>) -> Svg {
    const PLOT_W: f64 = 900.0;
    const ROW_H: f64 = 24.0;
    const BAR_H: f64 = 14.0;
    const TOP: f64 = 112.0;
    const AXIS_H: f64 = 36.0;
    const CHAR_W: f64 = 7.3;
    let rows = lifecycles(records, only);
    let marks = switch_marks(records);
    // The clock may have stepped back between records: the axis covers every timestamp.
    let t0 = records.iter().map(|r| r.ts_micros).min().unwrap_or(0);
    let t1 = records.iter().map(|r| r.ts_micros).max().unwrap_or(0);
    let span = t1 - t0;
    // A journal of one instant still gets a one-second axis.
    let span_s = if span == 0 { 1.0 } else { span as f64 / 1e6 };
    let longest = rows
        .iter()
        .map(|r| r.ifname.chars().count())
        .max()
        .unwrap_or(0);
    let left = (longest as f64 * 7.5 + 20.0).clamp(120.0, 400.0);
    let width = left + PLOT_W + 30.0;
    let rows_bottom = TOP + rows.len().max(1) as f64 * ROW_H;
    let height = rows_bottom + AXIS_H;
    let x = |ts: u64| left + (ts.saturating_sub(t0) as f64 / 1e6) / span_s * PLOT_W;
    let at = |ts: u64| offset(i128::from(ts) - i128::from(t0));

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="monospace" font-size="12">"#
    );
    s.push_str(
        "<defs><pattern id=\"silent\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f2f2f2\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#9e9e9e\" stroke-width=\"2\"/>\
         </pattern></defs>\n",
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let title = match (records.first(), records.last()) {
        (Some(a), Some(b)) => format!(
            "podport journal: {} ports, #{}..#{}, from {} for {}",
            rows.len(),
            a.seq,
            b.seq,
            rfc3339(t0),
            offset(i128::from(span)).trim_start_matches('+')
        ),
        _ => "podport journal: no records".into(),
    };
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14">{}</text>"#,
        xml_escape(&title)
    );

    // Legend: the stages, then the other bands and the marks.
    let _ = writeln!(s, r#"<g class="legend">"#);
    let _ = writeln!(s, r#"<text x="10" y="38">time to reach:</text>"#);
    let mut lx = 10.0 + 15.0 * CHAR_W;
    for stage in Stage::ALL.into_iter().filter(|s| *s != Stage::Added) {
        let _ = writeln!(
            s,
            r#"<rect class="legend-stage" data-stage="{name}" x="{lx:.1}" y="28" width="12" height="12" fill="{}"/><text x="{:.1}" y="38">{name}</text>"#,
            stage_color(stage),
            lx + 16.0,
            name = stage.name()
        );
        lx += 26.0 + stage.name().len() as f64 * CHAR_W;
    }
    let mut lx = 10.0;
    let y2 = 46.0;
    let _ = writeln!(
        s,
        r##"<rect class="legend-pending" x="{lx:.1}" y="{y2}" width="12" height="12" fill="#b07aa1" fill-opacity="0.3" stroke="#b07aa1" stroke-dasharray="2,2"/><text x="{:.1}" y="{:.0}">waiting for the next stage</text>"##,
        lx + 16.0,
        y2 + 10.0
    );
    lx += 26.0 + 26.0 * CHAR_W;
    for phase in [
        Some(Phase::Ready),
        Some(Phase::Failed),
        Some(Phase::Removing),
        None,
    ] {
        let (name, color) = band(phase);
        // Not the stage of the same name: the time the port is ready.
        let name = if name == "ready" { "is ready" } else { name };
        let _ = writeln!(
            s,
            r#"<rect class="legend" x="{lx:.1}" y="{y2}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{:.0}">{name}</text>"#,
            lx + 16.0,
            y2 + 10.0
        );
        lx += 26.0 + name.len() as f64 * CHAR_W;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{lx:.1}" y1="{:.0}" x2="{lx:.1}" y2="{:.0}" stroke="#333" stroke-width="1.5"/><text x="{:.1}" y="{:.0}">PortStatus</text>"##,
        y2 - 1.0,
        y2 + 13.0,
        lx + 6.0,
        y2 + 10.0
    );
    lx += 22.0 + 10.0 * CHAR_W;
    let _ = writeln!(
        s,
        r##"<path d="M{:.1},{:.1} l-4,-6 h8 z" fill="#222"/><text x="{:.1}" y="{:.0}">not ready yet</text>"##,
        lx + 4.0,
        y2 + 9.0,
        lx + 12.0,
        y2 + 10.0
    );
    let lx = 10.0;
    let y3 = 64.0;
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{:.0}" x2="{:.1}" y2="{:.0}" stroke="#d62728" stroke-width="2" stroke-dasharray="4,3"/><text x="{:.1}" y="{:.0}">switch disconnected</text>"##,
        lx + 6.0,
        y3 - 1.0,
        lx + 6.0,
        y3 + 13.0,
        lx + 16.0,
        y3 + 10.0
    );
    let lx = lx + 36.0 + 19.0 * CHAR_W;
    let _ = writeln!(
        s,
        r##"<rect x="{lx:.1}" y="{y3}" width="24" height="12" fill="url(#silent)" stroke="#9e9e9e"/><text x="{:.1}" y="{:.0}">switch silent (ports waited on the switch and no message came from it for over {})</text>"##,
        lx + 30.0,
        y3 + 10.0,
        secs_label(SILENCE_MIN_MICROS)
    );
    s.push_str("</g>\n");

    // Silences, behind the rows, with their labels above them.
    for g in &marks.silences {
        let (x0, x1) = (x(g.from), x(g.to));
        let label = format!("switch silent {}", secs_label(g.to - g.from));
        let text_w = label.chars().count() as f64 * CHAR_W;
        let (tx, anchor) = if x1 - x0 >= text_w + 4.0 {
            ((x0 + x1) / 2.0, "middle")
        } else {
            (x0 + 2.0, "start")
        };
        let _ = writeln!(
            s,
            r##"<g class="switch-silent"><title>{} .. {}{}: no PortStatus, PORT_DESC or barrier reply from the switch for {} while up to {} ports waited</title><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="url(#silent)" stroke="#9e9e9e" stroke-dasharray="3,2"/><text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="#555">{label}</text></g>"##,
            at(g.from),
            at(g.to),
            if g.open {
                " (the end of the records)"
            } else {
                ""
            },
            offset(i128::from(g.to - g.from)).trim_start_matches('+'),
            g.waiting,
            TOP - 12.0,
            (x1 - x0).max(1.0),
            rows_bottom - TOP + 12.0,
            TOP - 16.0,
        );
    }

    for (i, row) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        let bar_y = y + (ROW_H - BAR_H) / 2.0;
        let name = xml_escape(&row.ifname);
        let _ = writeln!(
            s,
            r#"<g class="port" data-ifname="{name}" data-pod="{}">"#,
            xml_escape(&row.pod.to_string())
        );
        let _ = writeln!(
            s,
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{name}</text>"#,
            left - 8.0,
            bar_y + BAR_H - 3.0
        );
        // The phases that are not waits: the stages draw those.
        for &(phase, from, to) in &row.segments {
            if waiting_phase(phase) {
                continue;
            }
            let (x0, x1) = (x(from), x(to));
            // Gone is drawn thin: the port no longer exists.
            let (h, yy) = if phase.is_none() {
                (4.0, bar_y + (BAR_H - 4.0) / 2.0)
            } else {
                (BAR_H, bar_y)
            };
            let (class, color) = band(phase);
            let _ = writeln!(
                s,
                r#"<rect class="{class}" x="{x0:.1}" y="{yy:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{} {class}: {} .. {}</title></rect>"#,
                (x1 - x0).max(1.0),
                name,
                at(from),
                at(to)
            );
        }
        for span in &row.stages {
            let (x0, x1) = (x(span.from), x(span.to));
            let color = stage_color(span.stage);
            let took = offset(i128::from(span.to - span.from));
            let took = took.trim_start_matches('+');
            if span.pending {
                let _ = writeln!(
                    s,
                    r#"<rect x="{x0:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="white"/><rect class="pending" data-stage="{stage}" x="{x0:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="{color}" fill-opacity="0.3" stroke="{color}" stroke-dasharray="2,2"><title>{name} waiting for {stage}: {} .. {} ({took}), not reached</title></rect>"#,
                    bar_y + 0.5,
                    bar_y + 0.5,
                    at(span.from),
                    at(span.to),
                    stage = span.stage.name(),
                    w = (x1 - x0).max(1.0),
                    h = BAR_H - 1.0,
                );
            } else {
                let _ = writeln!(
                    s,
                    r#"<rect class="stage" data-stage="{stage}" x="{x0:.1}" y="{bar_y:.1}" width="{:.1}" height="{BAR_H:.1}" fill="{color}"><title>{name} {stage}: {} .. {} ({took})</title></rect>"#,
                    (x1 - x0).max(1.0),
                    at(span.from),
                    at(span.to),
                    stage = span.stage.name(),
                );
            }
        }
        for (ts, label) in &row.ticks {
            let tx = x(*ts);
            let _ = writeln!(
                s,
                r##"<line class="tick" x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#333" stroke-width="1.5"><title>{} {}</title></line>"##,
                bar_y - 3.0,
                bar_y + BAR_H + 3.0,
                at(*ts),
                xml_escape(label)
            );
        }
        for (ts, label) in &row.not_ready {
            let _ = writeln!(
                s,
                r##"<path class="not-ready" d="M{:.1},{:.1} l-4,-6 h8 z" fill="#222"><title>{} {}</title></path>"##,
                x(*ts),
                bar_y + 1.0,
                at(*ts),
                xml_escape(label)
            );
        }
        s.push_str("</g>\n");
    }

    // Disconnects, across every row, on top.
    for (ts, label) in &marks.disconnects {
        let dx = x(*ts);
        // The label to the right of the line, or to its left near the right edge.
        let (tx, anchor) = if dx + 3.0 + 12.0 * CHAR_W > width {
            (dx - 3.0, "end")
        } else {
            (dx + 3.0, "start")
        };
        let _ = writeln!(
            s,
            r##"<g class="disconnect"><title>{} {}</title><line x1="{dx:.1}" y1="{:.1}" x2="{dx:.1}" y2="{rows_bottom:.1}" stroke="#d62728" stroke-width="2" stroke-dasharray="4,3"/><text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="#d62728">disconnected</text></g>"##,
            at(*ts),
            xml_escape(label),
            TOP - 12.0,
            TOP - 2.0,
        );
    }

    // Time axis, in seconds from the first record.
    let axis_y = rows_bottom + 6.0;
    let _ = writeln!(
        s,
        r##"<line class="axis" x1="{left:.1}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#000"/>"##,
        left + PLOT_W
    );
    let step = axis_step(span_s, 10.0);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let mut k = 0u32;
    loop {
        let t = f64::from(k) * step;
        if t > span_s * (1.0 + 1e-9) || k > 1_000 {
            break;
        }
        let tx = left + t / span_s * PLOT_W;
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#000"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{t:.decimals$}s</text>"##,
            axis_y + 5.0,
            axis_y + 18.0
        );
        k += 1;
    }
    s.push_str("</svg>\n");
    Svg {
        text: s,
        ports: rows.len(),
        records: records.len(),
        span_micros: span,
    }
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
    fn xml_is_escaped() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}"
        );
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

    #[test]
    fn a_port_goes_through_every_phase_and_a_recreated_one_starts_a_new_life() {
        let v = || "v".to_string();
        let added = || Event::PodAdded {
            pod: PodRef {
                namespace: "ns".into(),
                name: "p".into(),
            },
            container_id: "c".into(),
            ifname: v(),
            ips: vec![],
            mac: String::new(),
            cookie: crate::state::POD_COOKIE_BASE + 1,
        };
        let status = |reason, state| Event::PortStatusReceived {
            reason,
            port: PortDesc {
                port_no: 3,
                name: v(),
                state,
                config: 0,
                hw_addr: [0; 6],
            },
        };
        let events = vec![
            Event::SwitchConnected {
                endpoint: "e".into(),
                datapath_id: 1,
                of_version: "1.3".into(),
            },
            Event::PortDescSynced { ports: vec![] },
            added(),
            Event::PodPortCreated {
                ifname: v(),
                port_uuid: "pu".into(),
                interface_uuid: "iu".into(),
            },
            Event::HostInterfaceCreated { ifname: v() },
            Event::InterfaceTypeChanged {
                ifname: v(),
                from: String::new(),
                to: "internal".into(),
                outcome: Outcome::Ok,
            },
            status(PortReason::Add, 0),
            status(PortReason::Modify, 4),
            Event::FlowsInstalled {
                ifname: v(),
                port_no: 3,
                cookie: crate::state::POD_COOKIE_BASE + 1,
                count: 2,
            },
            Event::PodReady {
                ifname: v(),
                port_no: 3,
                waited_ms: 1_000,
            },
            Event::DeleteRequested { ifname: v() },
            Event::PodDeleted { ifname: v() },
            added(),
            Event::PodFailed {
                ifname: v(),
                step: crate::event::Step::CreatePort,
                error: Failure::permanent("name taken"),
            },
            Event::SwitchDisconnected {
                endpoint: "e".into(),
                reason: "r".into(),
            },
        ];
        let records: Vec<Record> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| rec(i as u64 + 1, i as u64, e))
            .collect();
        let rows = lifecycles(&records, None);
        assert_eq!(rows.len(), 1);
        let t = |s: u64| 1_795_780_800_000_000 + s * 1_000_000;
        assert_eq!(
            rows[0].segments,
            vec![
                (Some(Phase::Creating), t(2), t(3)),
                (Some(Phase::WaitingInterface), t(3), t(4)),
                (Some(Phase::TypeChangeRequested), t(4), t(6)),
                (Some(Phase::Allocated), t(6), t(7)),
                (Some(Phase::Usable), t(7), t(9)),
                (Some(Phase::Ready), t(9), t(10)),
                (Some(Phase::Removing), t(10), t(11)),
                (None, t(11), t(12)),
                (Some(Phase::Creating), t(12), t(13)),
                (Some(Phase::Failed), t(13), t(14)),
            ]
        );
        assert_eq!(rows[0].ticks.len(), 2);
        assert!(lifecycles(&records, Some("w")).is_empty());
        // Both lives' stages: the first one's to its Ready, then the second one's wait for
        // its port, cut short by the failure.
        let span = |stage, from, to, pending| StageSpan {
            stage,
            from: t(from),
            to: t(to),
            pending,
        };
        assert_eq!(
            rows[0].stages,
            vec![
                span(Stage::PortCommitted, 2, 3, false),
                span(Stage::HostAttached, 3, 4, false),
                span(Stage::TypeChanged, 4, 5, false),
                span(Stage::PortKnown, 5, 6, false),
                span(Stage::Usable, 6, 7, false),
                span(Stage::FlowsConfirmed, 7, 8, false),
                span(Stage::Ready, 8, 9, false),
                span(Stage::PortCommitted, 12, 13, true),
            ]
        );
        let svg = timeline_svg(&records, None).text;
        for stage in Stage::ALL.into_iter().skip(1) {
            assert!(
                svg.contains(&format!(">{}</text>", stage.name())),
                "{stage:?}"
            );
        }
        assert!(svg.contains(r#"<rect class="failed" "#), "{svg}");
        assert_eq!(svg.matches(r#"<g class="disconnect">"#).count(), 1);
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(axis_step(17.5, 10.0), 2.0);
        assert_eq!(axis_step(1.0, 10.0), 0.1);
        assert_eq!(axis_step(3600.0, 10.0), 500.0);
    }
}
