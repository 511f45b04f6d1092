//! The SVG of every port's life (`podport-journal timeline --svg`): one row per port life, its
//! phases as coloured bands, the stages of each attach, "not ready yet" marks, disconnects and
//! the windows in which the switch said nothing while a port waited on it. Pure: records in,
//! a document out; the phases and stages are the journal's own (`State` folded record by
//! record), so the picture shows what the text renderings say.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use podport_journal::dump::{millis, offset, port_state, rfc3339};
use podport_journal::{apply, wire_name, Event, Phase, PodRef, Record, Stage, StageTimes, State};

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
    use podport_journal::{Failure, Outcome, PortDesc, PortReason, Step, POD_COOKIE_BASE};

    fn rec(seq: u64, secs: u64, event: Event) -> Record {
        Record {
            seq,
            ts_micros: 1_795_780_800_000_000 + secs * 1_000_000,
            event,
        }
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}"
        );
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
            cookie: POD_COOKIE_BASE + 1,
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
                cookie: POD_COOKIE_BASE + 1,
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
                step: Step::CreatePort,
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
