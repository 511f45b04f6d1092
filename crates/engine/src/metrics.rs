//! Engine metrics in a prometheus-client registry.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `stage` label of `podport_stage_seconds` (a [`podport_journal::Stage`] name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

/// Buckets of the stage histograms: stages range from microseconds (usable right after the
/// number is known) to minutes (a vNIC that takes its time).
const STAGE_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    30.0, 300.0,
];

fn stage_histogram() -> Histogram {
    Histogram::new(STAGE_BUCKETS)
}

/// Every metric the engine keeps.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Seconds from the attach (or the add) to Ready.
    pub time_to_ready: Histogram,
    /// Seconds each stage of an attach took since the one before it, observed at each Ready
    /// for the stages its wait went through.
    pub stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    pub port_status_received: Counter,
    /// PortStatus messages decided in one batch together with another (every one is still
    /// applied and journaled; this counts how much a backlog collapsed).
    pub port_status_coalesced: Counter,
    pub flow_installs: Counter,
    pub flow_failures: Counter,
    /// Journal appends not yet durable.
    pub journal_lag: Gauge,
    pub pods_ready: Gauge,
    /// Starts on a journal that could not be read (moved aside, Pods rebuilt from OVS).
    pub journal_rebuilds: Counter,
    /// 1 while the OVSDB connection is up, else 0.
    pub ovsdb_up: Gauge,
    /// 1 while the OpenFlow connection to the switch is up, else 0.
    pub switch_up: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let time_to_ready = Histogram::new([
            0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ]);
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("podport")),
            time_to_ready,
            stage_seconds: Family::new_with_constructor(stage_histogram),
            port_status_received: Counter::default(),
            port_status_coalesced: Counter::default(),
            flow_installs: Counter::default(),
            flow_failures: Counter::default(),
            journal_lag: Gauge::default(),
            pods_ready: Gauge::default(),
            journal_rebuilds: Counter::default(),
            ovsdb_up: Gauge::default(),
            switch_up: Gauge::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "time_to_ready_seconds",
                "Time from a Pod's attach to its flows being confirmed",
                m.time_to_ready.clone(),
            );
            r.register(
                "stage_seconds",
                "Seconds each stage of a Pod's attach took since the previous stage",
                m.stage_seconds.clone(),
            );
            r.register(
                "journal_rebuilds",
                "Starts on a journal that could not be read: moved aside, Pods rebuilt from OVS",
                m.journal_rebuilds.clone(),
            );
            r.register(
                "port_status_received",
                "PortStatus messages received",
                m.port_status_received.clone(),
            );
            r.register(
                "port_status_coalesced",
                "PortStatus messages decided in one batch with another (each is still applied and journaled)",
                m.port_status_coalesced.clone(),
            );
            r.register(
                "flow_installs",
                "Pod flow installs confirmed",
                m.flow_installs.clone(),
            );
            r.register(
                "flow_failures",
                "Pod flow installs that failed",
                m.flow_failures.clone(),
            );
            r.register(
                "journal_lag",
                "Journal appends not yet durable",
                m.journal_lag.clone(),
            );
            r.register("pods_ready", "Pods ready now", m.pods_ready.clone());
            r.register(
                "ovsdb_up",
                "1 while the engine's OVSDB connection is up",
                m.ovsdb_up.clone(),
            );
            r.register(
                "switch_up",
                "1 while the engine's OpenFlow connection to the switch is up",
                m.switch_up.clone(),
            );
        }
        m
    }
}

impl Metrics {
    /// Observes the stages of one Ready.
    pub fn observe_stages(&self, stages: &[(podport_journal::Stage, std::time::Duration)]) {
        for (stage, took) in stages {
            self.stage_seconds
                .get_or_create(&StageLabel {
                    stage: stage.name(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// Every metric as OpenMetrics text, ending in `# EOF` (prometheus-client's encoding;
    /// [`crate::exposition::prometheus_text`] turns it into the Prometheus text format).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}
