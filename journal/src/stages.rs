//! Where the time of an attach goes: when each stage of a Pod's current attach ended.
//!
//! Part of the fold (each [`crate::PodPort`] carries its [`StageTimes`], set by
//! [`crate::apply_event`]), so the engine's status and metrics, the journal tool and a replay
//! all derive the same stages from the same records; nothing keeps them a second time.

use std::time::Duration;

/// The stages of an attach, in the order they normally end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The Pod was added: its port is requested (the origin; it takes no time itself).
    Added,
    /// The Port and Interface exist in OVSDB.
    PortCommitted,
    /// The Pod's host interface (vNIC) exists: the attach came.
    HostAttached,
    /// The Interface type change to the attached type is committed.
    TypeChanged,
    /// The switch gave the port (as it is after the change) its number: PortStatus ADD,
    /// PORT_DESC, or OVSDB's `ofport` for the legacy strategy.
    PortKnown,
    /// The port is usable under the readiness policy (LIVE, or LINK_DOWN where configured).
    Usable,
    /// The Pod's flows were sent to the switch.
    FlowsSent,
    /// The switch confirmed them (barrier).
    FlowsConfirmed,
    /// The Pod was reported ready.
    Ready,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 9] = [
        Stage::Added,
        Stage::PortCommitted,
        Stage::HostAttached,
        Stage::TypeChanged,
        Stage::PortKnown,
        Stage::Usable,
        Stage::FlowsSent,
        Stage::FlowsConfirmed,
        Stage::Ready,
    ];

    /// Stable snake_case name: the `stage` label of `podport_stage_seconds`, the keys of
    /// `status --json`'s `stages`, the rows of `timeline --summary`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Added => "added",
            Stage::PortCommitted => "port_committed",
            Stage::HostAttached => "host_attached",
            Stage::TypeChanged => "type_changed",
            Stage::PortKnown => "port_known",
            Stage::Usable => "usable",
            Stage::FlowsSent => "flows_sent",
            Stage::FlowsConfirmed => "flows_confirmed",
            Stage::Ready => "ready",
        }
    }

    /// The stage named `name` (see [`Stage::name`]).
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The stages a lost Ready starts again: those of the switch's side.
    pub fn after_rewait(self) -> bool {
        self >= Stage::PortKnown
    }
}

/// When each stage of the Pod's current attach ended, µs since the epoch.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
pub struct StageTimes {
    /// Indexed by `Stage as usize`.
    pub at: [Option<u64>; 9],
    /// When the current wait began after a lost Ready (switch restart, port renumbered, flows
    /// gone): the switch-side stages were cleared then and count from here.
    pub rewait_since: Option<u64>,
}

impl StageTimes {
    /// When `stage` ended, if it did in the current attach.
    pub fn get(&self, stage: Stage) -> Option<u64> {
        self.at[stage as usize]
    }

    /// Marks `stage` as ended at `ts` unless it already is (the first time counts).
    pub fn reach(&mut self, stage: Stage, ts: u64) {
        let slot = &mut self.at[stage as usize];
        if slot.is_none() {
            *slot = Some(ts);
        }
    }

    /// A lost Ready at `ts`: the switch-side stages start again.
    pub fn rewait(&mut self, ts: u64) {
        for s in Stage::ALL.into_iter().filter(|s| s.after_rewait()) {
            self.at[s as usize] = None;
        }
        self.rewait_since = Some(ts);
    }

    /// Each stage reached, with the time it took since the one before it (the latest earlier
    /// stage reached, or the start of a re-wait): what `status --json` shows. `Added` takes
    /// no time. Out-of-order ends (a vNIC that appeared before OVSDB committed the port) count
    /// as zero rather than negative.
    pub fn durations(&self) -> Vec<(Stage, Duration)> {
        let mut out = Vec::new();
        let mut prev: Option<u64> = None;
        for s in Stage::ALL {
            let Some(at) = self.get(s) else { continue };
            let mut base = prev.unwrap_or(at);
            if let (true, Some(r)) = (s.after_rewait(), self.rewait_since) {
                base = base.max(r);
            }
            out.push((s, Duration::from_micros(at.saturating_sub(base))));
            prev = Some(prev.map_or(at, |p| p.max(at)));
        }
        out
    }

    /// The stages the current wait went through, with their durations: all of them for a
    /// first attach, the switch-side ones after a re-wait (the others were counted at the
    /// first Ready). What a Ready reports to the metrics and its log line.
    pub fn this_wait(&self) -> Vec<(Stage, Duration)> {
        let rewait = self.rewait_since.is_some();
        self.durations()
            .into_iter()
            .filter(|(s, _)| *s != Stage::Added && (!rewait || s.after_rewait()))
            .collect()
    }
}

/// `name=1.234ms` pairs, for a log line.
pub fn durations_text(durations: &[(Stage, Duration)]) -> String {
    durations
        .iter()
        .map(|(s, d)| format!("{}={:.3}ms", s.name(), d.as_secs_f64() * 1e3))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(pairs: &[(Stage, u64)]) -> StageTimes {
        let mut t = StageTimes::default();
        for (s, at) in pairs {
            t.reach(*s, *at);
        }
        t
    }

    #[test]
    fn durations_are_from_the_previous_stage_reached() {
        let t = times(&[
            (Stage::Added, 1_000),
            (Stage::PortCommitted, 3_000),
            (Stage::HostAttached, 10_000),
            (Stage::TypeChanged, 12_000),
            (Stage::PortKnown, 15_000),
            (Stage::Usable, 15_000),
            (Stage::FlowsSent, 15_500),
            (Stage::FlowsConfirmed, 17_000),
            (Stage::Ready, 17_100),
        ]);
        let ms: Vec<(&str, u64)> = t
            .durations()
            .into_iter()
            .map(|(s, d)| (s.name(), d.as_micros() as u64))
            .collect();
        assert_eq!(
            ms,
            vec![
                ("added", 0),
                ("port_committed", 2_000),
                ("host_attached", 7_000),
                ("type_changed", 2_000),
                ("port_known", 3_000),
                ("usable", 0),
                ("flows_sent", 500),
                ("flows_confirmed", 1_500),
                ("ready", 100),
            ]
        );
        assert_eq!(t.this_wait().len(), 8, "all but the origin");
    }

    #[test]
    fn the_first_time_counts_and_skipped_stages_are_skipped() {
        let mut t = times(&[(Stage::Added, 100), (Stage::TypeChanged, 400)]);
        t.reach(Stage::TypeChanged, 900);
        assert_eq!(
            t.durations(),
            vec![
                (Stage::Added, Duration::ZERO),
                (Stage::TypeChanged, Duration::from_micros(300))
            ]
        );
    }

    #[test]
    fn out_of_order_ends_count_as_zero() {
        let t = times(&[
            (Stage::Added, 100),
            (Stage::PortCommitted, 500),
            (Stage::HostAttached, 300),
            (Stage::TypeChanged, 700),
        ]);
        let d: Vec<u128> = t.durations().iter().map(|(_, d)| d.as_micros()).collect();
        // host_attached ended before port_committed; type_changed counts from the later.
        assert_eq!(d, vec![0, 400, 0, 200]);
    }

    #[test]
    fn a_rewait_restarts_the_switch_side_only() {
        let mut t = times(&[
            (Stage::Added, 0),
            (Stage::HostAttached, 1_000),
            (Stage::TypeChanged, 2_000),
            (Stage::PortKnown, 3_000),
            (Stage::Usable, 3_000),
            (Stage::FlowsSent, 3_000),
            (Stage::FlowsConfirmed, 4_000),
            (Stage::Ready, 4_000),
        ]);
        t.rewait(100_000);
        assert_eq!(t.get(Stage::Ready), None);
        assert_eq!(t.get(Stage::TypeChanged), Some(2_000));
        t.reach(Stage::PortKnown, 100_500);
        t.reach(Stage::Usable, 100_500);
        t.reach(Stage::FlowsSent, 100_600);
        t.reach(Stage::FlowsConfirmed, 101_000);
        t.reach(Stage::Ready, 101_000);
        let wait: Vec<(&str, u128)> = t
            .this_wait()
            .iter()
            .map(|(s, d)| (s.name(), d.as_micros()))
            .collect();
        assert_eq!(
            wait,
            vec![
                ("port_known", 500),
                ("usable", 0),
                ("flows_sent", 100),
                ("flows_confirmed", 400),
                ("ready", 0)
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(s));
        }
        assert_eq!(Stage::from_name("nope"), None);
        assert_eq!(
            durations_text(&[(Stage::Usable, Duration::from_micros(1_500))]),
            "usable=1.500ms"
        );
    }
}
