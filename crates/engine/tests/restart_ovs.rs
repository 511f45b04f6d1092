//! Engine restarts against a real OVS: every phase resumes where it was, cookies and flows
//! survive, Ready comes once from the port after the type change, ports changed while the
//! engine was down are reconciled, stale flows are replaced or swept, and a permanent failure
//! is not retried. Judged by `ovs-vsctl` and `ovs-ofctl dump-flows`, with the journal's
//! records (not the engine's own view) as the clock: every wait is bounded (30 s).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use podport_engine::core::CoreConfig;
use podport_engine::{Engine, Phase, PodEvent};
use podport_journal::{Event, Finding, Outcome, PortReason, Record};
use podport_ovs_sandbox::{sandbox_for_test, Sandbox, PENDING_TYPE};

mod support;
use support::{config, core_config, mac, spec, BOUND};

/// `ofp_port_state` LIVE and `ofp_port_config` PORT_DOWN.
const LIVE: u32 = podport_openflow::PortState::LIVE.bits();
const PORT_DOWN: u32 = 1;

fn name(i: u32) -> String {
    format!("vnic-{i}")
}

/// An engine and a subscriber that hears every Pod event from the start.
fn start_with_pods(sb: &Sandbox, journal: &std::path::Path, core: CoreConfig) -> (Engine, Pods) {
    let (engine, rx) = Engine::start_subscribed(config(sb, journal, core)).unwrap();
    (
        engine,
        Pods {
            rx,
            seen: Vec::new(),
        },
    )
}

/// One line per record, for failure messages.
fn brief(r: &Record) -> String {
    let detail = match &r.event {
        Event::PortStatusReceived { reason, port } => format!(
            "{} no={} state={:#x} config={:#x}",
            reason.label(),
            port.port_no,
            port.state,
            port.config
        ),
        Event::PodReady { port_no, .. } => format!("port {port_no}"),
        Event::FlowsInstalled { port_no, count, .. } => format!("{count} on {port_no}"),
        Event::Reconciled { finding, .. } => finding.to_string(),
        Event::PodFailed { step, error, .. } => format!("{} {error}", step.name()),
        Event::PodNotReady { phase, .. } => phase.to_string(),
        Event::InterfaceTypeChanged {
            from, to, outcome, ..
        } => {
            format!("{from:?} -> {to:?} {outcome:?}")
        }
        Event::OvsdbInterfaceUpdate {
            iface_type,
            ofport,
            error,
            ..
        } => format!("{iface_type:?} {ofport:?} {error:?}"),
        _ => String::new(),
    };
    format!(
        "#{} {} {} {detail}",
        r.seq,
        r.event.kind(),
        r.event.ifname().unwrap_or("")
    )
}

/// The journal's records from a point on, kept, so a test can wait for one and later count.
struct Journaled {
    rx: Receiver<Record>,
    seen: Vec<Record>,
}

impl Journaled {
    /// Every record the engine's process appended (after what it recovered at start).
    fn since_start(engine: &Engine) -> Journaled {
        let from = engine.journal().recovered().last_seq + 1;
        Journaled {
            rx: engine.journal().subscribe(from).unwrap(),
            seen: Vec::new(),
        }
    }

    /// Takes what has arrived so far.
    fn drain(&mut self) {
        self.seen.extend(self.rx.try_iter());
    }

    /// The first record (already seen or still to come) for which `pred` holds; panics with
    /// every record seen after `BOUND`.
    fn wait(&mut self, what: &str, pred: impl Fn(&Record) -> bool) -> Record {
        self.drain();
        if let Some(r) = self.seen.iter().find(|r| pred(r)) {
            return r.clone();
        }
        let deadline = Instant::now() + BOUND;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(r) => {
                    let hit = pred(&r);
                    self.seen.push(r.clone());
                    if hit {
                        return r;
                    }
                }
                Err(_) => panic!(
                    "no journal record {what} within {BOUND:?}; records:\n{}",
                    self.dump()
                ),
            }
        }
    }

    /// The first record for which `pred` holds within `window` from now, if any (the records
    /// arriving meanwhile are kept).
    fn within(&mut self, window: Duration, pred: impl Fn(&Record) -> bool) -> Option<Record> {
        let deadline = Instant::now() + window;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(r) => {
                    let hit = pred(&r);
                    self.seen.push(r.clone());
                    if hit {
                        return Some(r);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    fn all(&mut self, pred: impl Fn(&Record) -> bool) -> Vec<Record> {
        self.drain();
        self.seen.iter().filter(|r| pred(r)).cloned().collect()
    }

    fn dump(&self) -> String {
        self.seen.iter().map(brief).collect::<Vec<_>>().join("\n")
    }
}

/// `kind` (as `Event::kind` names it) about `ifname`.
fn is(kind: &'static str, ifname: &str) -> impl Fn(&Record) -> bool {
    let ifname = ifname.to_string();
    move |r: &Record| r.event.kind() == kind && r.event.ifname() == Some(ifname.as_str())
}

/// The engine's Pod events, kept.
struct Pods {
    rx: Receiver<PodEvent>,
    seen: Vec<PodEvent>,
}

impl Pods {
    fn wait(&mut self, what: &str, pred: impl Fn(&PodEvent) -> bool) -> PodEvent {
        self.seen.extend(self.rx.try_iter());
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = Instant::now() + BOUND;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(e) => {
                    let hit = pred(&e);
                    self.seen.push(e.clone());
                    if hit {
                        return e;
                    }
                }
                Err(_) => panic!("no Pod event {what} within {BOUND:?}: {:#?}", self.seen),
            }
        }
    }

    /// Waits for the Ready of `ifname`; returns its port.
    fn ready(&mut self, ifname: &str) -> u32 {
        let e = self.wait(
            &format!("Ready {ifname}"),
            |e| matches!(e, PodEvent::Ready { ifname: n, .. } if n == ifname),
        );
        match e {
            PodEvent::Ready { port_no, .. } => port_no,
            _ => unreachable!(),
        }
    }

    fn readies(&mut self, ifname: &str) -> usize {
        self.seen.extend(self.rx.try_iter());
        self.seen
            .iter()
            .filter(|e| matches!(e, PodEvent::Ready { ifname: n, .. } if n == ifname))
            .count()
    }
}

fn attach(engine: &Engine, pods: &mut Pods, i: u32) -> u32 {
    let e = engine.blocking();
    e.add_pod(spec(i)).unwrap();
    e.host_interface_created(&name(i)).unwrap();
    pods.ready(&name(i))
}

fn phases(engine: &Engine) -> BTreeMap<String, Phase> {
    engine
        .blocking()
        .status()
        .unwrap()
        .into_iter()
        .map(|p| (p.ifname, p.phase))
        .collect()
}

fn cookies(engine: &Engine) -> BTreeMap<String, u64> {
    engine
        .blocking()
        .status()
        .unwrap()
        .into_iter()
        .map(|p| (p.ifname, p.cookie))
        .collect()
}

fn hex(cookie: u64) -> String {
    format!("{cookie:#x}")
}

/// Every flow of the bridge, as `ovs-ofctl -O OpenFlow15 --no-stats dump-flows` prints it.
fn flows(sb: &Sandbox) -> BTreeSet<String> {
    sb.dump_flows("OpenFlow15").unwrap().into_iter().collect()
}

fn flows_of(sb: &Sandbox, cookie: u64) -> BTreeSet<String> {
    let prefix = format!("cookie={},", hex(cookie));
    flows(sb)
        .into_iter()
        .filter(|f| f.starts_with(&prefix))
        .collect()
}

/// The youngest `duration=` of the flows under `cookie` (with stats), in seconds.
fn min_duration(sb: &Sandbox, cookie: u64) -> f64 {
    let durations = sb.flow_durations(&format!("{}/-1", hex(cookie))).unwrap();
    assert!(!durations.is_empty(), "no flow under {}", hex(cookie));
    durations.into_iter().fold(f64::INFINITY, f64::min)
}

/// Polls `ovs-ofctl` until nothing is left under `cookie` (removals and sweeps of Pods the
/// engine no longer tracks are not journaled).
fn wait_flows_gone(sb: &Sandbox, cookie: u64) {
    let deadline = Instant::now() + BOUND;
    loop {
        let left = flows_of(sb, cookie);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "flows under {} still there after {BOUND:?}: {left:#?}",
            hex(cookie)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn iface_type(sb: &Sandbox, ifname: &str) -> String {
    sb.vsctl(&["get", "interface", ifname, "type"])
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string()
}

fn ports(sb: &Sandbox) -> BTreeSet<String> {
    sb.vsctl(&["list-ports", sb.bridge()])
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn ofport(sb: &Sandbox, ifname: &str) -> u32 {
    let n = sb.wait_for_ofport(ifname, BOUND).unwrap();
    u32::try_from(n).unwrap_or_else(|_| panic!("{ifname} has ofport {n}"))
}

/// `ovsdb-server` stopped with SIGSTOP (the sandbox only freezes `ovs-vswitchd`): OVSDB
/// transactions stall, so a create or a delete stays in flight. SIGCONT on thaw or drop (the
/// sandbox's own drop sends SIGCONT too).
struct FrozenOvsdb<'a> {
    sb: &'a Sandbox,
    pid: u32,
    thawed: bool,
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -s {sig} {pid}: {status}");
}

fn freeze_ovsdb(sb: &Sandbox) -> FrozenOvsdb<'_> {
    let pid = sb.ovsdb_server_pid();
    signal(pid, "STOP");
    FrozenOvsdb {
        sb,
        pid,
        thawed: false,
    }
}

impl FrozenOvsdb<'_> {
    fn thaw(mut self) {
        self.thawed = true;
        signal(self.pid, "CONT");
    }
}

impl Drop for FrozenOvsdb<'_> {
    fn drop(&mut self) {
        if !self.thawed && self.sb.ovsdb_server_pid() == self.pid {
            signal(self.pid, "CONT");
        }
    }
}

/// Pods in every phase a real OVS can hold across a restart:
///
/// | Pod    | phase                 | how it is held                                      |
/// |--------|-----------------------|-----------------------------------------------------|
/// | vnic-1 | ready                 | attached before                                     |
/// | vnic-2 | waiting-interface     | added, never attached                               |
/// | vnic-3 | creating              | added while `ovsdb-server` is frozen                |
/// | vnic-4 | type-change-requested | attached while `ovs-vswitchd` is frozen             |
/// | vnic-5 | allocated             | ready, then admin down (`ovs-ofctl mod-port down`)  |
/// | vnic-6 | removing              | deleted while `ovsdb-server` is frozen              |
///
/// `usable` (flows in flight) lasts one barrier round trip and cannot be held on a real OVS:
/// freezing the switch to hold it also stops the PortStatus that makes the port usable.
///
/// The engine is restarted twice: `shutdown` then `start` with both daemons frozen (so the
/// status right after the restart is the restored state, untouched by OVS), and later a drop
/// without shutdown with every Pod ready.
#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_restart_resumes_every_phase_where_it_was() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let (e1, mut pods1) = start_with_pods(&sb, dir.path(), core_config());
    let mut rec1 = Journaled::since_start(&e1);
    attach(&e1, &mut pods1, 1);
    attach(&e1, &mut pods1, 6);
    attach(&e1, &mut pods1, 5);
    for i in [2, 4] {
        e1.blocking().add_pod(spec(i)).unwrap();
    }
    for i in [2, 4] {
        rec1.wait("PodPortCreated", is("PodPortCreated", &name(i)));
    }
    assert_eq!(iface_type(&sb, "vnic-2"), PENDING_TYPE);
    assert_eq!(
        sb.ofport("vnic-2").unwrap(),
        Some(-1),
        "pending is not open"
    );

    // vnic-5 allocated: its port goes admin down, so it is no longer LIVE.
    sb.ofctl(&[
        "-O",
        "OpenFlow15",
        "mod-port",
        sb.bridge(),
        "vnic-5",
        "down",
    ])
    .unwrap();
    rec1.wait("PortStatus vnic-5 PORT_DOWN", |r| {
        matches!(&r.event, Event::PortStatusReceived { port, .. }
            if port.name == "vnic-5" && port.config & PORT_DOWN != 0 && port.state & LIVE == 0)
    });

    let cookie = cookies(&e1);
    let ready_flows = flows_of(&sb, cookie["vnic-1"]);
    assert_eq!(ready_flows.len(), 5, "{ready_flows:#?}");
    let t0 = Instant::now();
    let d0 = min_duration(&sb, cookie["vnic-1"]);
    let t0_end = Instant::now();
    // Let them age a second (two of vnic-2's "not ready yet" reports, one a second), so that
    // flows replaced after the restart cannot pass for these by their duration.
    rec1.drain();
    let last = rec1.seen.last().map_or(0, |r| r.seq);
    let tick = rec1.wait("PodNotReady vnic-2", |r| {
        r.seq > last && is("PodNotReady", "vnic-2")(r)
    });
    rec1.wait("the next PodNotReady vnic-2", |r| {
        r.seq > tick.seq && is("PodNotReady", "vnic-2")(r)
    });

    // vnic-4 type-change-requested: the type change commits in OVSDB, the switch is frozen.
    let frozen = sb.freeze_vswitchd().unwrap();
    e1.blocking().host_interface_created("vnic-4").unwrap();
    rec1.wait("InterfaceTypeChanged vnic-4 ok", |r| {
        matches!(&r.event, Event::InterfaceTypeChanged { ifname, outcome: Outcome::Ok, .. }
            if ifname == "vnic-4")
    });
    // vnic-3 creating and vnic-6 removing: OVSDB is frozen too.
    let ovsdb = freeze_ovsdb(&sb);
    e1.blocking().add_pod(spec(3)).unwrap();
    e1.blocking().delete_pod("vnic-6").unwrap();
    rec1.wait("PodAdded vnic-3", is("PodAdded", "vnic-3"));
    rec1.wait("DeleteRequested vnic-6", is("DeleteRequested", "vnic-6"));

    let before = phases(&e1);
    let expected: BTreeMap<String, Phase> = [
        ("vnic-1", Phase::Ready),
        ("vnic-2", Phase::WaitingInterface),
        ("vnic-3", Phase::Creating),
        ("vnic-4", Phase::TypeChangeRequested),
        ("vnic-5", Phase::Allocated),
        ("vnic-6", Phase::Removing),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p))
    .collect();
    assert_eq!(before, expected, "the phases set up before the restart");
    let cookie = cookies(&e1);
    e1.shutdown().unwrap();

    // Restart with both daemons still frozen: the status is the restored state.
    let (e2, mut pods2) = start_with_pods(&sb, dir.path(), core_config());
    let mut rec2 = Journaled::since_start(&e2);
    assert_eq!(phases(&e2), before, "phases right after the restart");
    assert_eq!(cookies(&e2), cookie, "cookies right after the restart");
    ovsdb.thaw();
    frozen.thaw();

    // removing: finished; the port and its flows are gone.
    rec2.wait("PodDeleted vnic-6", is("PodDeleted", "vnic-6"));
    pods2.wait(
        "Removed vnic-6",
        |e| matches!(e, PodEvent::Removed { ifname, .. } if ifname == "vnic-6"),
    );
    assert!(!ports(&sb).contains("vnic-6"), "{:?}", ports(&sb));
    wait_flows_gone(&sb, cookie["vnic-6"]);
    // creating: the port is created (once), for its container.
    rec2.wait("PodPortCreated vnic-3", is("PodPortCreated", "vnic-3"));
    assert!(ports(&sb).contains("vnic-3"), "{:?}", ports(&sb));
    assert_eq!(
        sb.vsctl(&["get", "port", "vnic-3", "external_ids:container-id"])
            .unwrap()
            .trim()
            .trim_matches('"'),
        "ctr-3"
    );
    // type-change-requested: ready once, on the port the switch gave it.
    let ready4 = rec2.wait("PodReady vnic-4", is("PodReady", "vnic-4"));
    let n4 = ofport(&sb, "vnic-4");
    assert!(matches!(ready4.event, Event::PodReady { port_no, .. } if port_no == n4));
    assert_eq!(iface_type(&sb, "vnic-4"), "internal");
    let f4 = flows_of(&sb, cookie["vnic-4"]);
    assert_eq!(f4.len(), 5, "{f4:#?}");
    assert!(
        f4.iter()
            .any(|f| f.contains(&format!("in_port={n4},dl_src={}", mac(4)))),
        "{f4:#?}"
    );
    // ready: its flows checked on the switch and left as they were.
    let synced = rec2.wait("PortDescSynced", |r| r.event.kind() == "PortDescSynced");
    rec2.wait("FlowsInstalled vnic-1", is("FlowsInstalled", "vnic-1"));
    // waiting-interface and allocated: still waiting, once the port list is current again.
    for (n, phase) in [
        ("vnic-2", Phase::WaitingInterface),
        ("vnic-5", Phase::Allocated),
    ] {
        rec2.wait(&format!("PodNotReady {n} {phase}"), |r| {
            r.seq > synced.seq
                && matches!(&r.event, Event::PodNotReady { ifname, phase: p, .. }
                    if ifname == n && *p == phase)
        });
    }
    let t1 = Instant::now();
    let d1 = min_duration(&sb, cookie["vnic-1"]);
    assert_eq!(flows_of(&sb, cookie["vnic-1"]), ready_flows);
    let aged = t1.duration_since(t0_end).as_secs_f64();
    eprintln!("vnic-1 flows: {d0}s old before the restart, {d1}s old {aged}s later");
    assert!(
        d1 + 0.02 >= d0 + aged,
        "vnic-1's flows were replaced: duration {d0}s before (at {:?}), {d1}s after {aged}s",
        t0_end.duration_since(t0)
    );
    // waiting-interface: not switched to `internal` by the restart.
    assert_eq!(iface_type(&sb, "vnic-2"), PENDING_TYPE);
    assert!(
        rec2.all(|r| r.event.ifname() == Some("vnic-2")
            && matches!(
                r.event,
                Event::HostInterfaceCreated { .. } | Event::InterfaceTypeChanged { .. }
            ))
        .is_empty(),
        "{}",
        rec2.dump()
    );
    let now: BTreeMap<String, Phase> = phases(&e2);
    let want: BTreeMap<String, Phase> = [
        ("vnic-1", Phase::Ready),
        ("vnic-2", Phase::WaitingInterface),
        ("vnic-3", Phase::WaitingInterface),
        ("vnic-4", Phase::Ready),
        ("vnic-5", Phase::Allocated),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p))
    .collect();
    assert_eq!(now, want, "after the daemons thawed");

    // Each waiting Pod goes on from where it was.
    e2.blocking().host_interface_created("vnic-2").unwrap();
    e2.blocking().host_interface_created("vnic-3").unwrap();
    sb.ofctl(&["-O", "OpenFlow15", "mod-port", sb.bridge(), "vnic-5", "up"])
        .unwrap();
    for i in [2, 3, 5] {
        let n = pods2.ready(&name(i));
        assert_eq!(n, ofport(&sb, &name(i)), "vnic-{i}");
        assert_eq!(iface_type(&sb, &name(i)), "internal", "vnic-{i}");
        let f = flows_of(&sb, cookie[&name(i)]);
        assert_eq!(f.len(), 5, "vnic-{i}: {f:#?}");
        assert!(
            f.iter()
                .any(|l| l.contains(&format!("in_port={n},dl_src={}", mac(i)))),
            "vnic-{i}: {f:#?}"
        );
    }
    assert!(phases(&e2).values().all(|p| *p == Phase::Ready));
    // Ready exactly once after the restart, and never again for the one that was ready.
    for (n, want) in [
        ("vnic-1", 0),
        ("vnic-2", 1),
        ("vnic-3", 1),
        ("vnic-4", 1),
        ("vnic-5", 1),
    ] {
        assert_eq!(
            rec2.all(is("PodReady", n)).len(),
            want,
            "PodReady records of {n}:\n{}",
            rec2.dump()
        );
        assert_eq!(
            pods2.readies(n),
            want,
            "Ready events of {n}: {:#?}",
            pods2.seen
        );
    }

    // The other restart: dropped without shutdown, every Pod ready.
    let all_flows = flows(&sb);
    let live: Vec<String> = (1..=5).map(name).collect();
    let d0: Vec<f64> = live.iter().map(|n| min_duration(&sb, cookie[n])).collect();
    let t0 = Instant::now();
    drop(pods2);
    drop(e2);
    let (e3, pods3) = start_with_pods(&sb, dir.path(), core_config());
    let mut rec3 = Journaled::since_start(&e3);
    assert!(
        phases(&e3).values().all(|p| *p == Phase::Ready),
        "{:?}",
        phases(&e3)
    );
    for n in &live {
        rec3.wait(&format!("FlowsInstalled {n}"), is("FlowsInstalled", n));
    }
    let t1 = Instant::now();
    assert_eq!(flows(&sb), all_flows, "flows after the second restart");
    for (n, d0) in live.iter().zip(d0) {
        let d1 = min_duration(&sb, cookie[n]);
        let aged = t1.duration_since(t0).as_secs_f64();
        assert!(
            d1 + 0.02 >= d0 + aged,
            "{n}'s flows were replaced: {d0}s before, {d1}s after {aged}s"
        );
    }
    assert!(phases(&e3).values().all(|p| *p == Phase::Ready));
    assert!(
        rec3.all(|r| r.event.kind() == "PodReady").is_empty(),
        "{}",
        rec3.dump()
    );
    assert!(
        !pods3
            .seen
            .iter()
            .chain(pods3.rx.try_iter().collect::<Vec<_>>().iter())
            .any(|e| matches!(e, PodEvent::Ready { .. })),
        "a second Ready after the drop"
    );
    e3.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn pods_created_in_an_order_unlike_their_names_keep_their_cookies() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let order = [9, 2, 5];
    let by_pod = |sb: &Sandbox| -> BTreeMap<u32, (u64, BTreeSet<String>)> {
        // The cookie is read from the switch: the one on the Pod's table-0 flow.
        let all = flows(sb);
        order
            .iter()
            .map(|&i| {
                let anchor = all
                    .iter()
                    .find(|f| f.contains(&format!("dl_src={},nw_src=", mac(i))))
                    .unwrap_or_else(|| panic!("no flow of vnic-{i}: {all:#?}"));
                let c = &anchor["cookie=".len()..anchor.find(',').unwrap()];
                let c = u64::from_str_radix(c.trim_start_matches("0x"), 16).unwrap();
                (i, (c, flows_of(sb, c)))
            })
            .collect()
    };
    let (engine, mut pods) = start_with_pods(&sb, dir.path(), core_config());
    for i in order {
        attach(&engine, &mut pods, i);
    }
    let before = by_pod(&sb);
    let all_before = flows(&sb);
    // Handed out in the order of the adds, not of the names.
    let c: Vec<u64> = order.iter().map(|i| before[i].0).collect();
    assert!(c[0] < c[1] && c[1] < c[2], "cookies {c:x?}");
    for (_, f) in before.values() {
        assert_eq!(f.len(), 5, "{f:#?}");
    }
    engine.shutdown().unwrap();

    let (engine, mut pods) = start_with_pods(&sb, dir.path(), core_config());
    let mut rec = Journaled::since_start(&engine);
    for i in order {
        rec.wait(
            &format!("FlowsInstalled vnic-{i}"),
            is("FlowsInstalled", &name(i)),
        );
    }
    let after = by_pod(&sb);
    assert_eq!(after, before, "cookies and flows per Pod after the restart");
    assert_eq!(flows(&sb), all_before);
    let status = cookies(&engine);
    for i in order {
        assert_eq!(status[&name(i)], before[&i].0, "vnic-{i}");
    }

    engine.blocking().delete_pod("vnic-5").unwrap();
    pods.wait(
        "Removed vnic-5",
        |e| matches!(e, PodEvent::Removed { ifname, .. } if ifname == "vnic-5"),
    );
    wait_flows_gone(&sb, before[&5].0);
    let want: BTreeSet<String> = all_before.difference(&before[&5].1).cloned().collect();
    assert_eq!(flows(&sb), want, "exactly vnic-5's flows went");
    for i in [9, 2] {
        assert_eq!(flows_of(&sb, before[&i].0), before[&i].1, "vnic-{i}");
    }
    assert!(!ports(&sb).contains("vnic-5"));
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn ready_comes_from_the_port_after_the_type_change_once() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    // An empty type opens a dummy device at once: the port is LIVE before the attach, and the
    // type change replaces it (DELETE, ADD, MODIFY with the same number).
    let core = CoreConfig {
        initial_type: String::new(),
        ..core_config()
    };
    let (engine, mut pods) = start_with_pods(&sb, dir.path(), core);
    let mut rec = Journaled::since_start(&engine);
    for i in 1..=10 {
        let n = name(i);
        engine.blocking().add_pod(spec(i)).unwrap();
        rec.wait(&format!("PodPortCreated {n}"), is("PodPortCreated", &n));
        // The old instance is LIVE and known before the attach.
        rec.wait(&format!("{n} LIVE before the attach"), |r| match &r.event {
            Event::PortStatusReceived { port, .. } => port.name == n && port.state & LIVE != 0,
            Event::PortDescSynced { ports } => {
                ports.iter().any(|p| p.name == n && p.state & LIVE != 0)
            }
            _ => false,
        });
        let old = ofport(&sb, &n);
        if i % 2 == 1 {
            engine.blocking().host_interface_created(&n).unwrap();
        } else {
            // Every other Pod is attached while the switch is frozen: the type change commits
            // in OVSDB, and the switch still shows the old instance, LIVE, with no DELETE yet.
            // That instance must not count: no flows, no Ready, the phase stays
            // type-change-requested until the switch shows the new port.
            let frozen = sb.freeze_vswitchd().unwrap();
            engine.blocking().host_interface_created(&n).unwrap();
            rec.wait(&format!("InterfaceTypeChanged {n} ok"), |r| {
                matches!(&r.event, Event::InterfaceTypeChanged { ifname, outcome: Outcome::Ok, .. }
                    if *ifname == n)
            });
            rec.wait(&format!("OVSDB shows {n} internal"), |r| {
                matches!(&r.event, Event::OvsdbInterfaceUpdate { ifname, iface_type, .. }
                    if *ifname == n && iface_type == "internal")
            });
            let st = engine.blocking().status().unwrap();
            let p = st.iter().find(|p| p.ifname == n).unwrap();
            assert_eq!(
                p.phase,
                Phase::TypeChangeRequested,
                "{n} while frozen: {p:?}"
            );
            assert!(!p.ready, "{p:?}");
            frozen.thaw();
        }
        let port = pods.ready(&n);
        assert_eq!(port, old, "{n}: the type change keeps the number");
        assert_eq!(port, ofport(&sb, &n));
        assert_eq!(iface_type(&sb, &n), "internal");
    }
    // The last type change's messages have all arrived once its Ready is journaled; a second
    // Ready of any Pod would follow its MODIFY, which precedes the next Pod's attach.
    rec.wait("PodReady vnic-10", is("PodReady", "vnic-10"));
    rec.drain();
    let mut report = Vec::new();
    for i in 1..=10 {
        let n = name(i);
        let seq_of = |kind: &'static str| {
            rec.seen
                .iter()
                .filter(|r| is(kind, &n)(r))
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        };
        let attach = seq_of("HostInterfaceCreated");
        assert_eq!(attach.len(), 1, "{n}:\n{}", rec.dump());
        let changed: Vec<u64> = rec
            .seen
            .iter()
            .filter(|r| {
                matches!(&r.event, Event::InterfaceTypeChanged { ifname, outcome: Outcome::Ok, .. }
                    if *ifname == n)
            })
            .map(|r| r.seq)
            .collect();
        let ready = seq_of("PodReady");
        assert_eq!(ready.len(), 1, "{n}: PodReady records\n{}", rec.dump());
        assert_eq!(pods.readies(&n), 1, "{n}: Ready events {:#?}", pods.seen);
        assert_eq!(changed.len(), 1, "{n}:\n{}", rec.dump());
        let adds: Vec<u64> = rec
            .seen
            .iter()
            .filter(|r| {
                matches!(&r.event, Event::PortStatusReceived { reason: PortReason::Add, port }
                    if port.name == n)
            })
            .map(|r| r.seq)
            .collect();
        // The ADD of the new instance: after the attach that requested the type change (the
        // switch's ADD may overtake OVSDB's reply to the change, so it can come before the
        // InterfaceTypeChanged record), and before the Ready, which itself follows the commit.
        let add = adds
            .iter()
            .copied()
            .find(|a| *a > attach[0])
            .unwrap_or_else(|| {
                panic!(
                    "{n}: no ADD after its attach #{}:\n{}",
                    attach[0],
                    rec.dump()
                )
            });
        assert!(
            changed[0] < ready[0],
            "{n}: ready at #{} before the type change committed #{}:\n{}",
            ready[0],
            changed[0],
            rec.dump()
        );
        assert!(
            add < ready[0],
            "{n}: ready at #{} before the ADD #{add} of the new port:\n{}",
            ready[0],
            rec.dump()
        );
        // Nothing was programmed for the old instance: every install is for the new port.
        let installs = seq_of("FlowsInstalled");
        assert!(
            installs.iter().all(|s| *s > add),
            "{n}: flows installed before the ADD #{add}: {installs:?}\n{}",
            rec.dump()
        );
        report.push((n, attach[0], changed[0], add, ready[0]));
    }
    eprintln!("(name, attach, type changed, ADD, ready): {report:?}");
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_port_renumbered_and_a_port_deleted_while_down() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut pods) = start_with_pods(&sb, dir.path(), core_config());
    let old_a = attach(&engine, &mut pods, 1);
    attach(&engine, &mut pods, 2);
    let cookie = cookies(&engine);
    assert_eq!(flows_of(&sb, cookie["vnic-2"]).len(), 5);
    engine.shutdown().unwrap();

    const NN: u32 = 50;
    assert_ne!(old_a, NN);
    sb.vsctl(&[
        "set",
        "interface",
        "vnic-1",
        &format!("ofport_request={NN}"),
    ])
    .unwrap();
    let deadline = Instant::now() + BOUND;
    while ofport(&sb, "vnic-1") != NN {
        assert!(Instant::now() < deadline, "vnic-1 never renumbered");
        std::thread::sleep(Duration::from_millis(20));
    }
    sb.vsctl(&["del-port", sb.bridge(), "vnic-2"]).unwrap();

    let (engine, mut pods) = start_with_pods(&sb, dir.path(), core_config());
    let mut rec = Journaled::since_start(&engine);
    rec.wait("Reconciled vnic-1 renumbered", |r| {
        matches!(&r.event, Event::Reconciled { ifname, finding: Finding::Renumbered { from, to } }
            if ifname == "vnic-1" && *from == old_a && *to == NN)
    });
    rec.wait("Reconciled vnic-2 vanished", |r| {
        matches!(&r.event, Event::Reconciled { ifname, finding: Finding::Vanished }
            if ifname == "vnic-2")
    });
    let removed = pods.wait(
        "Removed vnic-2",
        |e| matches!(e, PodEvent::Removed { ifname, .. } if ifname == "vnic-2"),
    );
    eprintln!("{removed:?}");
    rec.wait("PodReady vnic-1 on NN", |r| {
        matches!(&r.event, Event::PodReady { ifname, port_no, .. }
            if ifname == "vnic-1" && *port_no == NN)
    });
    assert_eq!(pods.ready("vnic-1"), NN);
    let st = engine.blocking().status().unwrap();
    assert_eq!(st.len(), 1, "{st:#?}");
    assert_eq!((st[0].phase, st[0].port_no), (Phase::Ready, Some(NN)));
    let fa = flows_of(&sb, cookie["vnic-1"]);
    assert_eq!(fa.len(), 5, "{fa:#?}");
    assert!(
        fa.iter().any(|f| f.contains(&format!("in_port={NN},"))),
        "{fa:#?}"
    );
    assert!(
        fa.iter()
            .filter(|f| f.contains("table=1"))
            .all(|f| f.contains(&format!("output:{NN}"))),
        "{fa:#?}"
    );
    let all = flows(&sb);
    assert!(
        !all.iter()
            .any(|f| f.contains(&format!("in_port={old_a},"))
                || f.contains(&format!("output:{old_a}"))),
        "a flow on the old number {old_a}: {all:#?}"
    );
    wait_flows_gone(&sb, cookie["vnic-2"]);
    assert!(!ports(&sb).contains("vnic-2"));
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_stale_flow_planted_under_a_cookie_is_removed() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut pods) = start_with_pods(&sb, dir.path(), core_config());
    attach(&engine, &mut pods, 1);
    // A second Pod, deleted: its cookie is retired (below the next one to hand out).
    attach(&engine, &mut pods, 2);
    let cookie = cookies(&engine);
    let (a, retired) = (cookie["vnic-1"], cookie["vnic-2"]);
    engine.blocking().delete_pod("vnic-2").unwrap();
    pods.wait(
        "Removed vnic-2",
        |e| matches!(e, PodEvent::Removed { ifname, .. } if ifname == "vnic-2"),
    );
    wait_flows_gone(&sb, retired);
    let a_flows = flows_of(&sb, a);
    assert_eq!(a_flows.len(), 5);
    engine.shutdown().unwrap();

    const NEVER: u64 = 0x00a0_0000_0000_0fff;
    for f in [
        format!(
            "cookie={},table=0,priority=200,in_port=77,actions=drop",
            hex(a)
        ),
        format!("cookie={},table=0,priority=10,actions=drop", hex(retired)),
        format!("cookie={},table=0,priority=11,actions=drop", hex(NEVER)),
    ] {
        sb.ofctl(&["-O", "OpenFlow15", "add-flow", sb.bridge(), &f])
            .unwrap();
    }
    assert_eq!(flows_of(&sb, a).len(), 6);
    assert_eq!(flows_of(&sb, retired).len(), 1);
    assert_eq!(flows_of(&sb, NEVER).len(), 1);

    let (engine, pods) = start_with_pods(&sb, dir.path(), core_config());
    let mut rec = Journaled::since_start(&engine);
    rec.wait("FlowsInstalled vnic-1", is("FlowsInstalled", "vnic-1"));
    let now = flows_of(&sb, a);
    assert_eq!(now, a_flows, "vnic-1's flows are exactly its own again");
    assert!(!now.iter().any(|f| f.contains("in_port=77")));
    // The retired cookie is swept (not journaled: polled).
    wait_flows_gone(&sb, retired);
    // Ready before, ready after: the replacement is no second Ready.
    assert!(
        rec.all(is("PodReady", "vnic-1")).is_empty(),
        "{}",
        rec.dump()
    );
    assert!(!pods
        .rx
        .try_iter()
        .any(|e| matches!(e, PodEvent::Ready { .. })));
    assert_eq!(phases(&engine)["vnic-1"], Phase::Ready);
    // A flow under a Pod cookie that this journal never handed out (above its next cookie,
    // 0xa0000000000003 here) stays: it can only come from another journal (a lost one), whose
    // Pods may still run; the sweep takes only cookies below the next one, which are this
    // journal's (`Command::SweepFlows { below }`).
    assert_eq!(flows_of(&sb, NEVER).len(), 1, "{:#?}", flows(&sb));
    engine.shutdown().unwrap();
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn a_permanent_failure_is_not_retried() {
    let sb = sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    // vnic-1 belongs to another container (ownership is the Port's external_ids:container-id,
    // see ovsdb ops.rs `existing_pod_port`); the Interface says so too.
    sb.vsctl(&[
        "add-port",
        sb.bridge(),
        "vnic-1",
        "--",
        "set",
        "port",
        "vnic-1",
        "external_ids:container-id=someone-else",
        "external_ids:podport-owner=podport",
        "--",
        "set",
        "interface",
        "vnic-1",
        "external_ids:container-id=someone-else",
        "external_ids:podport-owner=podport",
    ])
    .unwrap();
    let show = |sb: &Sandbox| {
        (
            sb.vsctl(&[
                "--columns=_uuid,name,interfaces,external_ids",
                "list",
                "port",
                "vnic-1",
            ])
            .unwrap(),
            sb.vsctl(&[
                "--columns=_uuid,name,type,options,external_ids",
                "list",
                "interface",
                "vnic-1",
            ])
            .unwrap(),
        )
    };
    let other = show(&sb);
    // With OVSDB's view at hand the add is refused at once; with OVSDB away (frozen here)
    // it is accepted, and the create finds out: the permanent failure under test.
    let frozen = freeze_ovsdb(&sb);
    let (engine, mut pods) = start_with_pods(&sb, dir.path(), core_config());
    let mut rec = Journaled::since_start(&engine);
    engine.blocking().add_pod(spec(1)).unwrap();
    frozen.thaw();
    let failed = pods.wait(
        "Failed vnic-1",
        |e| matches!(e, PodEvent::Failed { ifname, .. } if ifname == "vnic-1"),
    );
    let PodEvent::Failed { error, .. } = failed else {
        unreachable!()
    };
    assert!(error.contains("permanent"), "{error}");
    assert!(error.contains("someone-else"), "{error}");
    let first = rec.wait("PodFailed vnic-1", is("PodFailed", "vnic-1"));
    let st = engine.blocking().status().unwrap();
    assert_eq!(st[0].phase, Phase::Failed, "{st:#?}");
    assert!(
        st[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("permanent")),
        "{st:#?}"
    );
    // An attach of the failed Pod must not touch the other container's Interface either.
    engine.blocking().host_interface_created("vnic-1").unwrap();
    // Nothing more for 3 s: a retry (1 s backoff) would journal another PodFailed or a
    // created port.
    let retry = rec.within(Duration::from_secs(3), |r| {
        r.event.ifname() == Some("vnic-1")
            && matches!(
                r.event,
                Event::PodFailed { .. }
                    | Event::PodPortCreated { .. }
                    | Event::InterfaceTypeChanged { .. }
                    | Event::PodReady { .. }
                    | Event::FlowsInstalled { .. }
            )
    });
    assert!(
        retry.is_none(),
        "after {}: {}\n{}",
        brief(&first),
        brief(&retry.unwrap()),
        rec.dump()
    );
    pods.seen.extend(pods.rx.try_iter());
    assert_eq!(
        pods.seen
            .iter()
            .filter(|e| matches!(e, PodEvent::Failed { .. }))
            .count(),
        1,
        "{:#?}",
        pods.seen
    );
    assert_eq!(phases(&engine)["vnic-1"], Phase::Failed);
    assert_eq!(show(&sb), other, "the other container's port was touched");
    assert_eq!(iface_type(&sb, "vnic-1"), "");
    assert!(flows_of(&sb, st[0].cookie).is_empty());
    engine.shutdown().unwrap();
}
