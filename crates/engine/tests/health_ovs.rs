//! The engine's health: its OVSDB and switch connections as `Engine::health` reports them,
//! an engine that died, and no `Failed` event for a state
//! that the next OVSDB update fixes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use podport_engine::{Engine, EngineError, Health, PodEvent};
use podport_ovs_sandbox::sandbox_for_test;

mod support;
use support::{config, config_at, core_config, spec, BOUND};

/// Polls the health until `done` holds; panics with the last one after [`BOUND`].
fn wait_health(engine: &Engine, what: &str, done: impl Fn(&Health) -> bool) -> Health {
    let deadline = Instant::now() + BOUND;
    loop {
        let h = engine.blocking().health().unwrap();
        if done(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {BOUND:?}: {h:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn links_that_never_connected_are_down_since_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let before = SystemTime::now();
    let db = dir.path().join("no-db.sock");
    let of = dir.path().join("no-br.mgmt");
    let engine = Engine::start(config_at(
        &format!("unix:{}", db.display()),
        &format!("unix:{}", of.display()),
        "br-int",
        &dir.path().join("journal"),
        core_config(),
    ))
    .unwrap();
    let h = wait_health(&engine, "both connect attempts failed", |h| {
        h.ovsdb.last_error.is_some() && h.switch.last_error.is_some()
    });
    assert!(h.engine_running && !h.ready(), "{h:#?}");
    for (link, path) in [(&h.ovsdb, &db), (&h.switch, &of)] {
        assert!(!link.up, "{h:#?}");
        assert!(
            link.since >= before && link.since <= SystemTime::now(),
            "{h:#?}"
        );
        assert_eq!(
            link.disconnects, 0,
            "never up, so never disconnected: {h:#?}"
        );
        let e = link.last_error.as_deref().unwrap();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
    assert_eq!(h.problems().len(), 2, "{:?}", h.problems());
    assert!(h.summary().starts_with("ovsdb: down "), "{}", h.summary());
    // Still down later, and since the same moment: never-connected is one outage.
    std::thread::sleep(Duration::from_millis(200));
    let later = engine.blocking().health().unwrap();
    assert_eq!(later.ovsdb.since, h.ovsdb.since);
    assert!(later.ovsdb.duration > h.ovsdb.duration);
    assert!(engine.is_running());
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn both_links_up_then_a_switch_restart_is_counted_and_remembered() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let h = wait_health(&engine, "both links up", Health::ready);
    assert!(h.problems().is_empty(), "{h:#?}");
    assert!(
        h.ovsdb.last_error.is_none() && h.switch.last_error.is_none(),
        "{h:#?}"
    );
    let text = engine.metrics_text();
    assert!(
        text.contains("podport_ovsdb_up 1") && text.contains("podport_switch_up 1"),
        "{text}"
    );

    sb.restart_vswitchd().unwrap();
    let h = wait_health(&engine, "the switch back after a restart", |h| {
        h.ready() && h.switch.disconnects >= 1
    });
    assert!(
        h.switch.last_error.is_some(),
        "the outage's reason is kept: {h:#?}"
    );
    assert_eq!(h.ovsdb.disconnects, 0, "{h:#?}");
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_panicked_engine_answers_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config_at(
        &format!("unix:{}", dir.path().join("db.sock").display()),
        &format!("unix:{}", dir.path().join("br.mgmt").display()),
        "br-int",
        &dir.path().join("journal"),
        core_config(),
    ))
    .unwrap();
    assert!(engine.blocking().health().unwrap().engine_running);
    engine.panic_for_test();
    let deadline = Instant::now() + BOUND;
    loop {
        match engine.blocking().health() {
            Err(EngineError::Stopped) => break,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            Instant::now() < deadline,
            "health still answers after the panic"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!engine.is_running());
    assert_eq!(engine.blocking().status(), Err(EngineError::Stopped));
}

/// Issue 10: "About a third of attaches during churn emit a `Failed` event a millisecond
/// before `Ready`". The cause (found with this test): ovs-vswitchd writes `ofport -1` and
/// the error for the Interface type it applied *before* the attach's type change
/// (`could not open network device vnic-N (Address family not supported by protocol)`, the
/// error of `podport-pending`) after that change committed, so the core sees the attached
/// type with -1 and reports `PodFailed { step: OpenInterface }`; the next reconfiguration
/// gives the port its number and the Pod is Ready milliseconds later. 15–27 % of 200–400
/// concurrent attaches. Ignored until `Core::on_ovsdb` stops reporting that stale -1.
#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn no_failed_event_for_a_state_the_next_update_fixes() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&sb, dir.path(), core_config())).unwrap();
    let events = engine.subscribe();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let engine = &engine;
            s.spawn(move || {
                for i in (t * 50 + 1)..=(t * 50 + 50) {
                    engine.blocking().add_pod(spec(i)).unwrap();
                    engine
                        .blocking()
                        .host_interface_created(&format!("vnic-{i}"))
                        .unwrap();
                }
            });
        }
    });
    let mut ready = 0;
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready < 200 {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(PodEvent::Ready { .. }) => ready += 1,
            Ok(PodEvent::Failed { ifname, error }) => {
                failed.insert(ifname, error);
            }
            Ok(_) => {}
            Err(_) => panic!("only {ready} of 200 ready"),
        }
    }
    assert!(
        failed.is_empty(),
        "{} healthy attaches reported Failed: {failed:#?}",
        failed.len()
    );
}
