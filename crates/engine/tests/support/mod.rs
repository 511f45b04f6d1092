//! What the engine's OVS tests share: Pods numbered 1, 2, ..., and the engine configured on a
//! sandbox as on a Windows node. Used as `mod support;`.
// Each test file is its own crate and uses a part of this.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use podport_engine::core::CoreConfig;
use podport_engine::{EngineConfig, PodEvent, PodSpec};
use podport_ovs_sandbox::{Sandbox, PENDING_TYPE};

/// How long any wait of these tests may take.
pub const BOUND: Duration = Duration::from_secs(30);

/// Pod `i`: interface `vnic-i`, container `ctr-i`, address and MAC derived from `i`.
pub fn spec(i: u32) -> PodSpec {
    PodSpec {
        namespace: "default".into(),
        name: format!("pod-{i}"),
        container_id: format!("ctr-{i}"),
        ifname: format!("vnic-{i}"),
        ips: vec![format!("{}/16", ip(i))],
        mac: mac(i).parse().unwrap(),
    }
}

pub fn ip(i: u32) -> String {
    format!("10.1.{}.{}", i / 250, i % 250 + 1)
}

pub fn mac(i: u32) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

/// A Windows node: the port cannot be opened until its vNIC exists (ports are created with
/// the sandbox's [`PENDING_TYPE`]); "not ready yet" reported every second.
pub fn core_config() -> CoreConfig {
    CoreConfig {
        initial_type: PENDING_TYPE.into(),
        not_ready_every: Duration::from_secs(1),
        ..CoreConfig::default()
    }
}

/// The engine on the sandbox's bridge, journaling in `journal`.
pub fn config(sb: &Sandbox, journal: &Path, core: CoreConfig) -> EngineConfig {
    config_at(
        &sb.ovsdb_endpoint(),
        &sb.openflow_endpoint(),
        sb.bridge(),
        journal,
        core,
    )
}

/// The engine on any endpoints (ones nothing listens on, say).
pub fn config_at(
    ovsdb: &str,
    openflow: &str,
    bridge: &str,
    journal: &Path,
    core: CoreConfig,
) -> EngineConfig {
    let mut c = EngineConfig::new(
        ovsdb.parse().unwrap(),
        openflow.parse().unwrap(),
        bridge,
        journal.to_path_buf(),
    );
    c.core = core;
    c
}

/// Waits for Ready of `ifname`, returning its port; panics with everything seen otherwise.
pub fn wait_ready(events: &Receiver<PodEvent>, ifname: &str) -> u32 {
    let deadline = Instant::now() + BOUND;
    let mut seen = Vec::new();
    loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(PodEvent::Ready {
                ifname: n, port_no, ..
            }) if n == ifname => return port_no,
            Ok(e) => seen.push(e),
            Err(_) => panic!("{ifname} not ready within {BOUND:?}; events: {seen:#?}"),
        }
    }
}
