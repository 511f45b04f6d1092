//! Engine metrics in a prometheus-client registry.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Every metric the engine keeps.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Seconds from the attach (or the add) to Ready.
    pub time_to_ready: Histogram,
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
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}
