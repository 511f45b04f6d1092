//! The engine core without sockets: given inputs, then commands and phases.

use std::time::{Duration, Instant};

use podport_engine::core::{Command, Core, CoreConfig, Input, PodEvent, Strategy};
use podport_engine::spec::{AddPodError, PodSpec};
use podport_journal::{Event, Failure, Finding, Phase, PortDesc, PortReason, Readiness};
use podport_ovs_sandbox::PENDING_TYPE;

const STATE_LINK_DOWN: u32 = podport_openflow::PortState::LINK_DOWN.bits();
const STATE_LIVE: u32 = podport_openflow::PortState::LIVE.bits();
const WALL: u64 = 1_700_000_000_000_000;

fn spec(ifname: &str) -> PodSpec {
    PodSpec {
        namespace: "default".into(),
        name: format!("pod-{ifname}"),
        container_id: format!("c-{ifname}"),
        ifname: ifname.into(),
        ips: vec!["10.0.0.5/24".into()],
        mac: "02:00:00:00:00:05".parse().unwrap(),
    }
}

fn port(no: u32, name: &str, state: u32) -> PortDesc {
    PortDesc {
        port_no: no,
        name: name.into(),
        state,
        config: 0,
        hw_addr: [0xaa, 0x55, 0xaa, 0x55, 0, 1],
    }
}

fn ps(reason: PortReason, no: u32, name: &str, state: u32) -> Input {
    Input::PortStatus {
        reason,
        port: port(no, name, state),
    }
}

/// Drives a core like the actors would: results of commands are fed back at once (unless
/// disabled), and everything emitted is kept for assertions.
struct Harness {
    core: Core,
    now: Instant,
    auto_flows: bool,
    commands: Vec<Command>,
}

impl Harness {
    fn new(config: CoreConfig) -> Harness {
        let now = Instant::now();
        let mut core = Core::new(config, now, WALL);
        // AgentStarted journals the policy the fold derives phases with.
        core.start("test", "", now);
        Harness {
            core,
            now,
            auto_flows: true,
            commands: Vec::new(),
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Command> {
        let mut queue = vec![input];
        let mut all = Vec::new();
        while let Some(i) = queue.pop() {
            let cmds = self.core.handle(i, self.now);
            for c in &cmds {
                match c {
                    Command::CreatePort(s) => queue.push(Input::PortCreated {
                        ifname: s.ifname.clone(),
                        port_uuid: "p-uuid".into(),
                        interface_uuid: "i-uuid".into(),
                        adopted: false,
                    }),
                    Command::SetInterfaceType { ifname, .. } => queue.push(Input::TypeChanged {
                        ifname: ifname.clone(),
                        result: Ok(()),
                    }),
                    Command::InstallFlows { spec, port_no, .. } if self.auto_flows => {
                        queue.push(Input::FlowsInstalled {
                            ifname: spec.ifname.clone(),
                            port_no: *port_no,
                            result: Ok(4),
                        })
                    }
                    _ => {}
                }
            }
            all.extend(cmds);
        }
        self.commands.extend(all.clone());
        all
    }

    fn advance(&mut self, d: Duration) -> Vec<Command> {
        self.now += d;
        self.feed(Input::Tick)
    }

    fn connect(&mut self, ports: Vec<PortDesc>) -> Vec<Command> {
        let mut out = self.feed(Input::SwitchConnected {
            endpoint: "unix:/x".into(),
            datapath_id: 1,
            of_version: "1.5".into(),
        });
        out.extend(self.feed(Input::PortDesc { ports }));
        out
    }

    fn phase(&self, ifname: &str) -> Phase {
        self.core.phase(ifname).expect("tracked")
    }
}

fn emitted(cmds: &[Command]) -> Vec<PodEvent> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Emit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn journaled(cmds: &[Command]) -> Vec<Event> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Journal { event, .. } => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn installs(cmds: &[Command]) -> Vec<u32> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::InstallFlows { port_no, .. } => Some(*port_no),
            _ => None,
        })
        .collect()
}

fn is_ready_event(cmds: &[Command], want_port: u32) -> bool {
    emitted(cmds)
        .iter()
        .any(|e| matches!(e, PodEvent::Ready { port_no, .. } if *port_no == want_port))
}

#[test]
fn the_whole_path_to_ready() {
    let mut h = Harness::new(CoreConfig::default());
    h.auto_flows = false;
    h.connect(vec![port(0xffff_fffe, "br-int", STATE_LIVE)]);
    let c = h.feed(Input::AddPod(spec("vnic-a")));
    assert!(c
        .iter()
        .any(|c| matches!(c, Command::CreatePort(s) if s.ifname == "vnic-a")));
    assert!(matches!(
        &journaled(&c)[..],
        [Event::PodAdded { ifname, .. }, Event::PodPortCreated { .. }] if ifname == "vnic-a"
    ));
    assert_eq!(h.phase("vnic-a"), Phase::WaitingInterface);

    h.feed(Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: "".into(),
        ofport: Some(-1),
        error: Some("no device yet".into()),
    });
    let c = h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    assert!(c.iter().any(
        |c| matches!(c, Command::SetInterfaceType { iface_type, .. } if iface_type == "internal")
    ));
    assert_eq!(h.phase("vnic-a"), Phase::TypeChangeRequested);

    let c = h.feed(ps(PortReason::Add, 5, "vnic-a", 0));
    assert!(installs(&c).is_empty(), "ADD without LIVE is not usable");
    assert_eq!(h.phase("vnic-a"), Phase::Allocated);

    let c = h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE));
    assert_eq!(installs(&c), vec![5]);
    assert_eq!(h.phase("vnic-a"), Phase::Usable);
    // A duplicate changes nothing.
    assert!(installs(&h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE))).is_empty());

    let c = h.feed(Input::FlowsInstalled {
        ifname: "vnic-a".into(),
        port_no: 5,
        result: Ok(4),
    });
    assert!(is_ready_event(&c, 5));
    assert!(journaled(&c).iter().any(|e| matches!(
        e,
        Event::FlowsInstalled {
            port_no: 5,
            count: 4,
            ..
        }
    )));
    assert!(journaled(&c)
        .iter()
        .any(|e| matches!(e, Event::PodReady { port_no: 5, .. })));
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
    let st = h.core.status(h.now);
    assert!(st[0].ready && st[0].port_no == Some(5));
}

#[test]
fn the_type_change_is_journaled_with_the_type_before_it() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default(), now, WALL);
    let iface = |ty: &str| Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: ty.into(),
        ofport: None,
        error: None,
    };
    core.handle(Input::AddPod(spec("vnic-a")), now);
    core.handle(
        Input::PortCreated {
            ifname: "vnic-a".into(),
            port_uuid: "p".into(),
            interface_uuid: "i".into(),
            adopted: false,
        },
        now,
    );
    core.handle(iface(""), now);
    core.handle(
        Input::HostInterfaceCreated {
            ifname: "vnic-a".into(),
        },
        now,
    );
    // The monitor shows the new type before the transaction's reply arrives.
    core.handle(iface("internal"), now);
    let c = core.handle(
        Input::TypeChanged {
            ifname: "vnic-a".into(),
            result: Ok(()),
        },
        now,
    );
    assert!(
        journaled(&c).contains(&Event::InterfaceTypeChanged {
            ifname: "vnic-a".into(),
            from: "".into(),
            to: "internal".into(),
            outcome: podport_journal::Outcome::Ok,
        }),
        "{c:#?}"
    );
}

#[test]
fn port_status_before_the_attach_is_kept_but_only_the_port_after_the_type_change_counts() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    // The switch announces the port (of the initial type) before the attach.
    let c = h.feed(ps(PortReason::Add, 7, "vnic-a", 0));
    let c2 = h.feed(ps(PortReason::Modify, 7, "vnic-a", STATE_LIVE));
    assert!(installs(&c).is_empty() && installs(&c2).is_empty());
    assert_eq!(h.phase("vnic-a"), Phase::WaitingInterface);
    // The attach: the type change destroys that port; its LIVE does not make the Pod ready.
    let c = h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    assert!(installs(&c).is_empty(), "{c:?}");
    assert!(emitted(&c).is_empty(), "{c:?}");
    assert_eq!(h.phase("vnic-a"), Phase::TypeChangeRequested);
    // The old port's last words change nothing either.
    assert!(emitted(&h.feed(ps(PortReason::Modify, 7, "vnic-a", STATE_LIVE))).is_empty());
    // OVS: DELETE, ADD, MODIFY for the new port: one Ready, from the new port.
    let mut all = h.feed(ps(PortReason::Delete, 7, "vnic-a", STATE_LIVE));
    all.extend(h.feed(ps(PortReason::Add, 7, "vnic-a", 0)));
    all.extend(h.feed(ps(PortReason::Modify, 7, "vnic-a", STATE_LIVE)));
    let readies = emitted(&all)
        .into_iter()
        .filter(|e| matches!(e, PodEvent::Ready { .. }))
        .count();
    assert_eq!(readies, 1, "{all:?}");
    assert_eq!(installs(&all), vec![7]);
}

#[test]
fn the_type_change_sequence_ends_ready_on_the_same_port() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    h.feed(ps(PortReason::Add, 5, "vnic-a", 0));
    h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE));
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
    // The type change's DELETE, ADD, MODIFY with the same number.
    h.feed(ps(PortReason::Delete, 5, "vnic-a", STATE_LIVE));
    assert_ne!(h.phase("vnic-a"), Phase::Ready);
    h.feed(ps(PortReason::Add, 5, "vnic-a", 0));
    let c = h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE));
    assert!(is_ready_event(&c, 5));
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
}

#[test]
fn a_port_recreated_with_another_number_moves_its_flows() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    h.feed(ps(PortReason::Delete, 5, "vnic-a", STATE_LIVE));
    let c = h.feed(ps(PortReason::Add, 9, "vnic-a", STATE_LIVE));
    assert_eq!(installs(&c), vec![9]);
    assert!(is_ready_event(&c, 9));
    // A stale DELETE of the old number changes nothing.
    h.feed(ps(PortReason::Delete, 5, "vnic-a", STATE_LIVE));
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
}

#[test]
fn reserved_numbers_are_never_programmed() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    for n in [0, 0xffff_fffe, 0xffff_ff00, 0xffff_ffff] {
        let c = h.feed(ps(PortReason::Modify, n, "vnic-a", STATE_LIVE));
        assert!(installs(&c).is_empty(), "port {n:#x} was programmed");
    }
    let c = h.feed(Input::PortDesc {
        ports: vec![port(0xffff_fffe, "vnic-a", STATE_LIVE)],
    });
    assert!(installs(&c).is_empty());
}

#[test]
fn unknown_ports_are_journaled_and_otherwise_ignored() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    let c = h.feed(ps(PortReason::Add, 3, "stranger", STATE_LIVE));
    assert_eq!(c.len(), 1);
    assert!(matches!(
        &c[0],
        Command::Journal {
            event: Event::PortStatusReceived { .. },
            ..
        }
    ));
    assert_eq!(h.core.foreign_port_status(), 1);
}

#[test]
fn a_stale_port_status_after_deletion_changes_nothing() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE));
    let c = h.feed(Input::DeletePod {
        ifname: "vnic-a".into(),
    });
    // The flows first; the port only once the switch confirmed their removal.
    assert!(c.iter().any(|c| matches!(c, Command::RemoveFlows { .. })));
    assert!(!c.iter().any(|c| matches!(c, Command::DeletePort { .. })));
    assert_eq!(h.phase("vnic-a"), Phase::Removing);
    let c = h.feed(Input::FlowsRemoved {
        ifname: "vnic-a".into(),
        result: Ok(5),
    });
    assert!(c.iter().any(|c| matches!(c, Command::DeletePort { .. })));
    let c = h.feed(Input::PortDeleted {
        ifname: "vnic-a".into(),
        result: Ok(()),
    });
    assert!(journaled(&c).contains(&Event::PodDeleted {
        ifname: "vnic-a".into()
    }));
    assert!(matches!(&emitted(&c)[..], [PodEvent::Removed { .. }]));
    assert!(h.core.phase("vnic-a").is_none());
    let c = h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE));
    assert_eq!(c.len(), 1, "only journaled: {c:?}");
}

#[test]
fn add_pod_rejects_long_names_and_other_owners() {
    let mut h = Harness::new(CoreConfig::default());
    let long = spec("abcdefghijklmnopq");
    assert!(matches!(
        h.core.check_new_pod(&long),
        Err(AddPodError::IfnameTooLong { len: 17, .. })
    ));
    let msg = h.core.check_new_pod(&long).unwrap_err().to_string();
    assert!(msg.contains("15"), "{msg}");
    h.feed(Input::AddPod(spec("vnic-a")));
    assert_eq!(
        h.core.check_new_pod(&spec("vnic-a")),
        Ok(()),
        "same Pod again is fine"
    );
    let mut other = spec("vnic-a");
    other.container_id = "someone-else".into();
    assert!(matches!(
        h.core.check_new_pod(&other),
        Err(AddPodError::AlreadyTracked { .. })
    ));
    let mut bad_ip = spec("vnic-b");
    bad_ip.ips = vec!["fe80::1".into()];
    assert!(matches!(
        h.core.check_new_pod(&bad_ip),
        Err(AddPodError::BadIp { .. })
    ));
}

#[test]
fn readiness_policies() {
    for (readiness, state, usable) in [
        (Readiness::Live, STATE_LINK_DOWN, false),
        (Readiness::Live, STATE_LIVE | 2, true),
        (Readiness::LiveOrLinkDown, STATE_LINK_DOWN, true),
        (Readiness::LiveOrLinkDown, 0, false),
        (Readiness::Allocated, 0, true),
    ] {
        let mut h = Harness::new(CoreConfig {
            readiness,
            ..CoreConfig::default()
        });
        h.connect(vec![]);
        h.feed(Input::AddPod(spec("vnic-a")));
        h.feed(Input::HostInterfaceCreated {
            ifname: "vnic-a".into(),
        });
        let c = h.feed(ps(PortReason::Add, 5, "vnic-a", state));
        assert_eq!(
            is_ready_event(&c, 5),
            usable,
            "{readiness:?} with state {state:#x}"
        );
    }
}

#[test]
fn a_slow_port_gets_not_ready_events_forever_and_then_becomes_ready() {
    let every = Duration::from_secs(30);
    let mut h = Harness::new(CoreConfig {
        not_ready_every: every,
        ..CoreConfig::default()
    });
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    assert!(emitted(&h.advance(Duration::from_secs(29))).is_empty());
    for i in 1..=10u32 {
        let c = h.advance(if i == 1 {
            Duration::from_secs(1)
        } else {
            every
        });
        match &emitted(&c)[..] {
            [PodEvent::NotReady { phase, waited, .. }] => {
                assert_eq!(*phase, Phase::TypeChangeRequested);
                assert_eq!(*waited, every * i);
            }
            other => panic!("interval {i}: {other:?}"),
        }
        assert_eq!(h.core.poll_timeout(), Some(h.now + every));
    }
    let c = h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    match &emitted(&c)[..] {
        [PodEvent::Ready { waited, .. }] => assert_eq!(*waited, every * 10),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_interface_is_reported_and_watched() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    let c = h.feed(Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: "internal".into(),
        ofport: Some(-1),
        error: Some("could not open network device vnic-a (No such device)".into()),
    });
    // Not at once: OVS may write a stale -1 that its next reconfiguration replaces.
    assert!(emitted(&c).is_empty(), "{c:?}");
    assert!(emitted(&h.advance(Duration::from_millis(1900))).is_empty());
    let reported = h.advance(Duration::from_millis(100));
    match &emitted(&reported)[..] {
        [PodEvent::Failed { error, .. }] => assert!(error.contains("No such device"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(journaled(&c).iter().any(|e| matches!(
        e,
        Event::OvsdbInterfaceUpdate {
            ofport: Some(-1),
            ..
        }
    )));
    // OVS retries; the port appears later and the Pod becomes ready.
    h.feed(Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: "internal".into(),
        ofport: Some(5),
        error: None,
    });
    let c = h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    assert!(is_ready_event(&c, 5));
}

#[test]
fn after_a_switch_restart_numbers_are_relearned_before_any_flow() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
    h.feed(Input::SwitchDisconnected {
        endpoint: "unix:/x".into(),
        reason: "closed".into(),
    });
    assert_ne!(h.phase("vnic-a"), Phase::Ready);
    let c = h.feed(Input::SwitchConnected {
        endpoint: "unix:/x".into(),
        datapath_id: 1,
        of_version: "1.5".into(),
    });
    assert!(installs(&c).is_empty(), "nothing before PORT_DESC");
    // Even a PortStatus does not program before the list is known.
    assert!(installs(&h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE))).is_empty());
    let c = h.feed(Input::PortDesc {
        ports: vec![port(8, "vnic-a", STATE_LIVE)],
    });
    assert_eq!(installs(&c), vec![8]);
    assert!(c.contains(&Command::InstallBridgeDefaults));
    assert!(is_ready_event(&c, 8));
}

#[test]
fn the_legacy_strategy_fails_on_timeout_and_retries() {
    let cfg = CoreConfig {
        strategy: Strategy::OvsdbWait {
            timeout: Duration::from_secs(5),
            retry_every: Duration::from_secs(5),
        },
        ..CoreConfig::default()
    };
    let mut h = Harness::new(cfg);
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    let c = h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    assert!(c.contains(&Command::WaitOfport {
        ifname: "vnic-a".into(),
        timeout: Duration::from_secs(5)
    }));
    // PortStatus does not count for this strategy.
    assert!(installs(&h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE))).is_empty());
    let c = h.feed(Input::OfportWaited {
        ifname: "vnic-a".into(),
        result: Err(Failure::transient("\"wait\" timed out after 5000 ms")),
    });
    assert!(
        matches!(&emitted(&c)[..], [PodEvent::Failed { error, .. }] if error.contains("timed out"))
    );
    assert!(h
        .advance(Duration::from_secs(4))
        .iter()
        .all(|c| !matches!(c, Command::WaitOfport { .. })));
    let c = h.advance(Duration::from_secs(1));
    assert!(
        c.iter().any(|c| matches!(c, Command::WaitOfport { .. })),
        "retried after 5 s"
    );
    let c = h.feed(Input::OfportWaited {
        ifname: "vnic-a".into(),
        result: Ok(5),
    });
    assert!(is_ready_event(&c, 5));
    assert_eq!(h.core.status(h.now)[0].attach_failures, 1);
}

#[test]
fn failed_flows_are_retried() {
    let mut h = Harness::new(CoreConfig::default());
    h.auto_flows = false;
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    let c = h.feed(Input::FlowsInstalled {
        ifname: "vnic-a".into(),
        port_no: 5,
        result: Err(Failure::transient("switch said TABLE_FULL")),
    });
    assert!(matches!(&emitted(&c)[..], [PodEvent::Failed { .. }]));
    assert!(installs(&h.advance(Duration::from_millis(500))).is_empty());
    // Backoff: 1 s for the first retry, plus up to a quarter of jitter.
    assert_eq!(installs(&h.advance(Duration::from_millis(750))), vec![5]);
}

/// Folds `events` as a journal would hold them (1 ms apart).
fn fold(events: Vec<Event>) -> podport_journal::State {
    let mut state = podport_journal::State::default();
    for (i, event) in events.into_iter().enumerate() {
        podport_journal::apply_event(&mut state, WALL + i as u64 * 1000, &event);
    }
    state
}

fn ready_pod_events(name: &str, no: u32, cookie: u64) -> Vec<Event> {
    vec![
        Event::PodAdded {
            pod: podport_journal::PodRef {
                namespace: "default".into(),
                name: name.into(),
            },
            container_id: format!("c-{name}"),
            ifname: name.into(),
            ips: vec!["10.0.0.5/24".into()],
            mac: "02:00:00:00:00:05".into(),
            cookie,
        },
        Event::PodPortCreated {
            ifname: name.into(),
            port_uuid: "p".into(),
            interface_uuid: "i".into(),
        },
        Event::HostInterfaceCreated {
            ifname: name.into(),
        },
        Event::InterfaceTypeChanged {
            ifname: name.into(),
            from: "".into(),
            to: "internal".into(),
            outcome: podport_journal::Outcome::Ok,
        },
        Event::PortStatusReceived {
            reason: PortReason::Add,
            port: port(no, name, STATE_LIVE),
        },
        Event::FlowsInstalled {
            ifname: name.into(),
            port_no: no,
            cookie,
            count: 5,
        },
        Event::PodReady {
            ifname: name.into(),
            port_no: no,
            waited_ms: 1,
        },
    ]
}

#[test]
fn restart_reconciles_the_journal_with_the_switch() {
    // A journal with three ready Pods, added in an order unlike their names' order.
    let base = podport_journal::POD_COOKIE_BASE;
    let mut events = Vec::new();
    for (name, no, cookie) in [
        ("vnic-c", 7, base + 1),
        ("vnic-a", 5, base + 2),
        ("vnic-b", 6, base + 3),
    ] {
        events.extend(ready_pod_events(name, no, cookie));
    }
    let state = fold(events);
    let now = Instant::now();
    let mut core = Core::restore(CoreConfig::default(), state, now, WALL + 1_000_000);
    let cmds = core.start("test", "", now);
    assert!(
        cmds.iter().all(|c| matches!(
            c,
            Command::Journal {
                event: Event::AgentStarted { .. },
                ..
            }
        )),
        "a restart asks OVS for nothing a ready Pod already has: {cmds:?}"
    );
    let mut h = Harness {
        core,
        now,
        auto_flows: true,
        commands: vec![],
    };
    // OVSDB no longer has vnic-c: deleted while the engine was down. Its flows go too.
    let c = h.feed(Input::OvsdbSnapshot {
        interfaces: vec![
            ("vnic-a".into(), "internal".into(), Some(5), None),
            ("vnic-b".into(), "internal".into(), Some(9), None),
        ],
    });
    assert!(journaled(&c).contains(&Event::Reconciled {
        ifname: "vnic-c".into(),
        finding: Finding::Vanished,
    }));
    assert!(c.contains(&Command::RemoveFlows {
        ifname: "vnic-c".into(),
        cookie: base + 1
    }));
    assert!(matches!(&emitted(&c)[..], [PodEvent::Removed { ifname, .. }] if ifname == "vnic-c"));
    // The switch: vnic-a kept 5, vnic-b renumbered to 9. No PortStatus at all.
    let c = h.connect(vec![
        port(5, "vnic-a", STATE_LIVE),
        port(9, "vnic-b", STATE_LIVE),
    ]);
    let j = journaled(&c);
    assert!(j.contains(&Event::Reconciled {
        ifname: "vnic-a".into(),
        finding: Finding::Present { port_no: 5 },
    }));
    assert!(j.contains(&Event::Reconciled {
        ifname: "vnic-b".into(),
        finding: Finding::Renumbered { from: 6, to: 9 },
    }));
    // Cookies are the journal's, never re-derived; vnic-a's flows are only checked.
    let flows: Vec<(u32, u64, bool)> = c
        .iter()
        .filter_map(|c| match c {
            Command::InstallFlows {
                port_no,
                cookie,
                verify,
                ..
            } => Some((*port_no, *cookie, *verify)),
            _ => None,
        })
        .collect();
    assert!(flows.contains(&(5, base + 2, true)), "{flows:?}");
    assert!(
        flows.iter().any(|f| f.0 == 9 && f.1 == base + 3),
        "{flows:?}"
    );
    // vnic-a stayed ready throughout: no second Ready; vnic-b is ready on its new number.
    assert!(!is_ready_event(&c, 5));
    assert!(is_ready_event(&c, 9));
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
    // A new Pod gets a cookie no restored Pod has.
    let c = h.feed(Input::AddPod(spec("vnic-d")));
    assert!(journaled(&c)
        .iter()
        .any(|e| matches!(e, Event::PodAdded { cookie, .. } if *cookie == base + 4)));
}

#[test]
fn a_restart_before_the_attach_does_not_attach() {
    // Added, port created, "not ready yet" reported: no attach ever came.
    let mut events = ready_pod_events("vnic-a", 5, podport_journal::POD_COOKIE_BASE + 1);
    events.truncate(2);
    events.push(Event::PodNotReady {
        ifname: "vnic-a".into(),
        phase: Phase::WaitingInterface,
        waited_ms: 30_000,
    });
    let now = Instant::now();
    let mut core = Core::restore(CoreConfig::default(), fold(events), now, WALL + 1_000_000);
    let mut cmds = core.start("test", "", now);
    let mut h = Harness {
        core,
        now,
        auto_flows: true,
        commands: vec![],
    };
    cmds.extend(h.connect(vec![port(5, "vnic-a", STATE_LIVE)]));
    assert!(
        !cmds.iter().any(|c| matches!(
            c,
            Command::SetInterfaceType { .. } | Command::InstallFlows { .. }
        )),
        "{cmds:?}"
    );
    assert_eq!(h.phase("vnic-a"), Phase::WaitingInterface);
}

#[test]
fn a_permanent_failure_fails_the_pod_once_and_is_not_retried() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default(), now, WALL);
    core.handle(Input::AddPod(spec("vnic-a")), now);
    let c = core.handle(
        Input::PortCreateFailed {
            ifname: "vnic-a".into(),
            error: Failure::permanent("vnic-a is already used by another Pod (container x)"),
        },
        now,
    );
    assert!(
        matches!(&emitted(&c)[..], [PodEvent::Failed { error, .. }] if error.contains("permanent"))
    );
    assert_eq!(core.phase("vnic-a"), Some(Phase::Failed));
    assert_eq!(core.poll_timeout(), None, "nothing scheduled");
    for s in 1..=60 {
        let c = core.handle(Input::Tick, now + Duration::from_secs(s));
        assert!(c.is_empty(), "{c:?}");
    }
    let st = core.status(now);
    assert!(st[0].last_error.as_deref().unwrap().contains("another Pod"));
}

mod convergence {
    //! Any interleaving of one port's OVSDB updates with its PortStatus stream (each keeping
    //! its own order), with duplicates, and the attach anywhere before the type change,
    //! converges to what the switch last said.

    use super::*;
    use proptest::prelude::*;

    fn switch_stream(n1: u32, n2: u32) -> Vec<Input> {
        vec![
            ps(PortReason::Add, n1, "vnic-a", 0),
            ps(PortReason::Modify, n1, "vnic-a", STATE_LIVE),
            // The type change, then a renumbering (ofport_request changed).
            ps(PortReason::Delete, n1, "vnic-a", STATE_LIVE),
            ps(PortReason::Add, n1, "vnic-a", 0),
            ps(PortReason::Modify, n1, "vnic-a", STATE_LIVE),
            ps(PortReason::Delete, n1, "vnic-a", STATE_LIVE),
            ps(PortReason::Add, n2, "vnic-a", 0),
            ps(PortReason::Modify, n2, "vnic-a", STATE_LIVE),
        ]
    }

    fn ovsdb_stream(n1: u32, n2: u32) -> Vec<Input> {
        let u = |ty: &str, ofport: Option<i64>| Input::OvsdbInterface {
            ifname: "vnic-a".into(),
            iface_type: ty.into(),
            ofport,
            error: None,
        };
        vec![
            u("", None),
            u("", Some(n1.into())),
            u("internal", Some(n1.into())),
            u("internal", Some(n2.into())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn converges(
            choices in proptest::collection::vec(any::<bool>(), 12),
            dups in proptest::collection::vec(0usize..3, 12),
            attach_at in 0usize..12,
        ) {
            let (n1, n2) = (5u32, 11u32);
            let (mut sw, mut db) = (switch_stream(n1, n2), ovsdb_stream(n1, n2));
            sw.reverse();
            db.reverse();
            let mut merged = Vec::new();
            let mut i = 0;
            while !sw.is_empty() || !db.is_empty() {
                let take_sw = db.is_empty() || (!sw.is_empty() && choices[i % choices.len()]);
                let from = if take_sw { &mut sw } else { &mut db };
                let item = from.pop().unwrap();
                for _ in 0..=dups[i % dups.len()] {
                    merged.push(item.clone());
                }
                i += 1;
            }
            let mut h = Harness::new(CoreConfig::default());
            h.connect(vec![]);
            h.feed(Input::AddPod(spec("vnic-a")));
            // The attach comes before the type change it causes: before the switch's first
            // DELETE and before OVSDB shows the attached type.
            let first_change = merged
                .iter()
                .position(|i| {
                    matches!(i, Input::PortStatus { reason: PortReason::Delete, .. })
                        || matches!(i, Input::OvsdbInterface { iface_type, .. } if iface_type == "internal")
                })
                .unwrap_or(merged.len());
            let attach_at = attach_at.min(first_change);
            for (k, input) in merged.into_iter().enumerate() {
                if k == attach_at {
                    h.feed(Input::HostInterfaceCreated { ifname: "vnic-a".into() });
                }
                h.feed(input);
            }
            h.feed(Input::HostInterfaceCreated { ifname: "vnic-a".into() });
            prop_assert_eq!(h.phase("vnic-a"), Phase::Ready);
            let st = h.core.status(h.now);
            prop_assert_eq!(st[0].port_no, Some(n2));
            prop_assert_eq!(installs(&h.commands).last().copied(), Some(n2));
        }
    }
}

#[test]
fn failed_ovsdb_steps_are_asked_again() {
    let now = Instant::now();
    let mut core = Core::new(CoreConfig::default(), now, WALL);
    core.handle(Input::AddPod(spec("vnic-a")), now);
    let c = core.handle(
        Input::PortCreateFailed {
            ifname: "vnic-a".into(),
            error: Failure::transient("server busy"),
        },
        now,
    );
    assert!(matches!(&emitted(&c)[..], [PodEvent::Failed { .. }]));
    let due = core.poll_timeout().expect("a retry is scheduled");
    assert!(due >= now + Duration::from_secs(1) && due <= now + Duration::from_millis(1250));
    let c = core.handle(Input::Tick, now + Duration::from_millis(1250));
    assert!(
        matches!(&c[..], [Command::CreatePort(s)] if s.ifname == "vnic-a"),
        "{c:?}"
    );
    core.handle(
        Input::PortCreated {
            ifname: "vnic-a".into(),
            port_uuid: "p".into(),
            interface_uuid: "i".into(),
            adopted: false,
        },
        now,
    );
    core.handle(
        Input::HostInterfaceCreated {
            ifname: "vnic-a".into(),
        },
        now,
    );
    core.handle(
        Input::TypeChanged {
            ifname: "vnic-a".into(),
            result: Err(Failure::transient("connection reset")),
        },
        now,
    );
    let c = core.handle(Input::Tick, now + Duration::from_millis(1250));
    assert!(
        c.iter()
            .any(|c| matches!(c, Command::SetInterfaceType { .. })),
        "{c:?}"
    );
}

#[test]
fn only_the_attached_type_failing_is_reported() {
    let mut h = Harness::new(CoreConfig {
        initial_type: PENDING_TYPE.into(),
        ..CoreConfig::default()
    });
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    let update = |ty: &str, error: &str| Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: ty.into(),
        ofport: Some(-1),
        error: Some(error.into()),
    };
    // The pre-attach state, even when its update arrives after the attach: expected.
    let c = h.feed(update(PENDING_TYPE, "Address family not supported"));
    assert!(emitted(&c).is_empty(), "{c:?}");
    // Our own type change, the old -1 repeated: not a failure yet.
    let c = h.feed(update("internal", "Address family not supported"));
    assert!(emitted(&c).is_empty(), "{c:?}");
    // OVS writes a new failure for the internal port: reported once it has held 2 s.
    let c = h.feed(update("internal", "No such device"));
    assert!(emitted(&c).is_empty(), "{c:?}");
    let c = h.advance(Duration::from_secs(2));
    assert!(
        matches!(&emitted(&c)[..], [PodEvent::Failed { error, .. }] if error.contains("No such device")),
        "{c:?}"
    );
}

#[test]
fn a_stale_could_not_open_that_the_next_update_fixes_is_no_failure() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    // The old type's late -1, reported under the attached type, then the port's number.
    let mut all = h.feed(Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: "internal".into(),
        ofport: Some(-1),
        error: Some("could not open network device vnic-a (Address family not supported)".into()),
    });
    all.extend(h.advance(Duration::from_millis(10)));
    all.extend(h.feed(Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: "internal".into(),
        ofport: Some(5),
        error: None,
    }));
    all.extend(h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE)));
    all.extend(h.advance(Duration::from_secs(5)));
    let events = emitted(&all);
    assert!(
        !events.iter().any(|e| matches!(e, PodEvent::Failed { .. })),
        "{events:?}"
    );
    assert!(is_ready_event(&all, 5));
}

#[test]
fn a_deletion_removes_the_flows_on_a_connected_switch_before_the_port() {
    let now = Instant::now();
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
    // The switch goes away; the deletion waits for it rather than drop the port first.
    h.feed(Input::SwitchDisconnected {
        endpoint: "unix:/x".into(),
        reason: "closed".into(),
    });
    let c = h.feed(Input::DeletePod {
        ifname: "vnic-a".into(),
    });
    assert!(
        !c.iter()
            .any(|c| matches!(c, Command::RemoveFlows { .. } | Command::DeletePort { .. })),
        "{c:?}"
    );
    let c = h.connect(vec![port(5, "vnic-a", STATE_LIVE)]);
    assert!(
        c.iter().any(|c| matches!(c, Command::RemoveFlows { .. })),
        "{c:?}"
    );
    assert!(!c.iter().any(|c| matches!(c, Command::DeletePort { .. })));
    // A failed removal is asked again before the port may go.
    let c = h.feed(Input::FlowsRemoved {
        ifname: "vnic-a".into(),
        result: Err(Failure::transient("switch busy")),
    });
    assert!(!c.iter().any(|c| matches!(c, Command::DeletePort { .. })));
    let c = h.advance(Duration::from_secs(2));
    assert!(
        c.iter().any(|c| matches!(c, Command::RemoveFlows { .. })),
        "{c:?}"
    );
    let c = h.feed(Input::FlowsRemoved {
        ifname: "vnic-a".into(),
        result: Ok(5),
    });
    assert!(c.iter().any(|c| matches!(c, Command::DeletePort { .. })));
    let _ = now;
}

#[test]
fn a_journaled_spec_that_is_invalid_today_never_reaches_ovsdb() {
    // Journaled by an agent that did not check names: a NUL in the interface name.
    let mut events = ready_pod_events("bad\0name", 5, podport_journal::POD_COOKIE_BASE + 1);
    events.truncate(1);
    let mut gone = ready_pod_events("bad/gone", 6, podport_journal::POD_COOKIE_BASE + 2);
    gone.truncate(1);
    gone.push(Event::DeleteRequested {
        ifname: "bad/gone".into(),
    });
    events.extend(gone);
    let now = Instant::now();
    let mut core = Core::restore(CoreConfig::default(), fold(events), now, WALL + 1_000_000);
    let cmds = core.start("test", "", now);
    assert!(
        !cmds.iter().any(|c| matches!(
            c,
            Command::CreatePort(_) | Command::DeletePort { .. } | Command::SetInterfaceType { .. }
        )),
        "{cmds:?}"
    );
    assert_eq!(core.phase("bad\0name"), Some(Phase::Failed));
    assert!(emitted(&cmds)
        .iter()
        .any(|e| matches!(e, PodEvent::Failed { error, .. } if error.contains("invalid"))));
    // The one being deleted is done with: nothing of it can exist in OVSDB.
    assert_eq!(core.phase("bad/gone"), None);
}

#[test]
fn a_new_journal_hands_out_cookies_of_its_own_generation() {
    let now = Instant::now();
    let cookie_of_first_pod = |generation: u32| {
        let mut core = Core::new(CoreConfig::default(), now, WALL);
        core.start_with_generation("test", "", now, generation);
        let c = core.handle(Input::AddPod(spec("vnic-a")), now);
        journaled(&c)
            .iter()
            .find_map(|e| match e {
                Event::PodAdded { cookie, .. } => Some(*cookie),
                _ => None,
            })
            .unwrap()
    };
    let (a, b) = (
        cookie_of_first_pod(0x12_3456),
        cookie_of_first_pod(0x65_4321),
    );
    assert_ne!(a, b, "two journals, two generations, no shared cookie");
    assert_eq!(podport_journal::cookie_generation(a), 0x12_3456);
    assert_eq!(
        a & podport_journal::POD_COOKIE_MASK,
        podport_journal::POD_COOKIE_BASE
    );
    // Without a generation (0), cookies count from the base, as before.
    assert_eq!(cookie_of_first_pod(0), podport_journal::POD_COOKIE_BASE + 1);
    // A journal keeps its generation across restarts: the second start draws none.
    let mut core = Core::new(CoreConfig::default(), now, WALL);
    core.start_with_generation("test", "", now, 0x12_3456);
    let state = core.state().clone();
    let mut again = Core::restore(CoreConfig::default(), state, now, WALL);
    let c = again.start_with_generation("test", "", now, 0x65_4321);
    assert!(!journaled(&c)
        .iter()
        .any(|e| matches!(e, Event::CookieGeneration { .. })));
}

/// ovs-issues#353: Windows OVS never writes `ofport` -1 for an interface whose vNIC went away;
/// OVSDB keeps the old number and no `error`. A ready Pod whose vNIC vanishes, on a switch that
/// says so only over OpenFlow.
fn ready_on_5() -> Harness {
    let mut h = Harness::new(CoreConfig {
        initial_type: PENDING_TYPE.into(),
        ..CoreConfig::default()
    });
    h.connect(vec![]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    h.feed(Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: "internal".into(),
        ofport: Some(5),
        error: None,
    });
    let c = h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    assert!(is_ready_event(&c, 5));
    h
}

/// The report of a vanished port: a transient failure naming the number, with no `ofport` -1.
fn assert_reported_gone(c: &[Command]) {
    match &emitted(c)[..] {
        [PodEvent::Failed { ifname, error }] => {
            assert_eq!(ifname, "vnic-a");
            assert!(
                error.contains("port 5 is gone from the switch")
                    && error.contains("OVSDB still shows ofport 5"),
                "{error}"
            );
            assert!(!error.contains("(permanent)"), "{error}");
        }
        other => panic!("expected one Failed event, got {other:?}"),
    }
}

#[test]
fn a_vanished_vnic_is_noticed_from_port_status_without_ofport_minus_one() {
    let mut h = ready_on_5();
    // The switch deletes the port; OVSDB says nothing at all (Windows).
    let c = h.feed(ps(PortReason::Delete, 5, "vnic-a", STATE_LIVE));
    assert_ne!(
        h.phase("vnic-a"),
        Phase::Ready,
        "a port that is gone is not ready"
    );
    assert!(!h.core.status(h.now)[0].ready);
    // Reported once it has held the grace (a renumbering brings a number back before).
    assert!(emitted(&c).is_empty(), "{c:?}");
    assert!(emitted(&h.advance(Duration::from_millis(1900))).is_empty());
    let c = h.advance(Duration::from_millis(100));
    assert_reported_gone(&c);
    let view = &h.core.status(h.now)[0];
    assert!(
        view.last_error
            .as_deref()
            .is_some_and(|e| e.contains("gone from the switch")),
        "{view:?}"
    );
    // Once, not at every tick; and the vNIC coming back makes the Pod ready again.
    assert!(!emitted(&h.advance(Duration::from_secs(5)))
        .iter()
        .any(|e| matches!(e, PodEvent::Failed { .. })));
    h.feed(ps(PortReason::Add, 5, "vnic-a", 0));
    let c = h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE));
    assert!(is_ready_event(&c, 5));
    assert_eq!(h.core.status(h.now)[0].last_error, None);
}

#[test]
fn a_vanished_vnic_is_noticed_from_the_port_list_after_a_reconnect() {
    let mut h = ready_on_5();
    // The DELETE is lost with the connection; the port list after the reconnect lacks it.
    h.feed(Input::SwitchDisconnected {
        endpoint: "unix:/x".into(),
        reason: "the switch closed the connection".into(),
    });
    let c = h.connect(vec![port(0xffff_fffe, "br-int", STATE_LIVE)]);
    assert_ne!(h.phase("vnic-a"), Phase::Ready);
    assert!(emitted(&c).is_empty(), "{c:?}");
    assert_reported_gone(&h.advance(Duration::from_secs(2)));
}

#[test]
fn a_vnic_that_vanished_while_the_agent_was_down_is_noticed_at_restart() {
    let events = ready_pod_events("vnic-a", 5, podport_journal::POD_COOKIE_BASE + 1);
    let now = Instant::now();
    let mut core = Core::restore(CoreConfig::default(), fold(events), now, WALL + 1_000_000);
    core.start("test", "", now);
    let mut h = Harness {
        core,
        now,
        auto_flows: true,
        commands: vec![],
    };
    // OVSDB still has the Interface with its old number (no -1, no error); the switch's port
    // list does not have the port.
    h.feed(Input::OvsdbSnapshot {
        interfaces: vec![("vnic-a".into(), "internal".into(), Some(5), None)],
    });
    let c = h.connect(vec![]);
    assert!(journaled(&c).contains(&Event::Reconciled {
        ifname: "vnic-a".into(),
        finding: Finding::Waiting,
    }));
    assert_ne!(h.phase("vnic-a"), Phase::Ready);
    assert_reported_gone(&h.advance(Duration::from_secs(2)));
}

#[test]
fn a_renumbered_port_or_an_ofport_minus_one_is_not_reported_as_gone() {
    // DELETE then ADD with another number (an `ofport_request` change): ready again at once.
    let mut h = ready_on_5();
    h.feed(ps(PortReason::Delete, 5, "vnic-a", STATE_LIVE));
    let c = h.feed(ps(PortReason::Add, 9, "vnic-a", STATE_LIVE));
    assert!(is_ready_event(&c, 9));
    let c = h.advance(Duration::from_secs(5));
    assert!(emitted(&c).is_empty(), "{c:?}");

    // Where OVS does write -1 (Linux), its own error text is what is reported, once.
    let mut h = ready_on_5();
    let mut all = h.feed(ps(PortReason::Delete, 5, "vnic-a", STATE_LIVE));
    all.extend(h.feed(Input::OvsdbInterface {
        ifname: "vnic-a".into(),
        iface_type: "internal".into(),
        ofport: Some(-1),
        error: Some("could not open network device vnic-a (No such device)".into()),
    }));
    all.extend(h.advance(Duration::from_secs(5)));
    let failed: Vec<String> = emitted(&all)
        .into_iter()
        .filter_map(|e| match e {
            PodEvent::Failed { error, .. } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("No such device"), "{failed:?}");
}

/// Every stage of an attach, each ended at its own time, reported with the Ready and shown in
/// the status; after a switch restart the Ready's stages are the switch-side ones only.
#[test]
fn the_stages_of_an_attach_come_with_the_ready_and_the_status() {
    use podport_journal::Stage;
    let ms = Duration::from_millis;
    let mut h = Harness::new(CoreConfig::default());
    h.auto_flows = false;
    h.connect(vec![port(0xffff_fffe, "br-int", STATE_LIVE)]);
    h.feed(Input::AddPod(spec("vnic-a"))); // added and port committed at once (the harness)
    h.now += ms(100);
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    }); // host attached and type changed (the harness answers at once)
    h.now += ms(20);
    h.feed(ps(PortReason::Add, 5, "vnic-a", 0));
    h.now += ms(3);
    let c = h.feed(ps(PortReason::Modify, 5, "vnic-a", STATE_LIVE));
    assert!(
        journaled(&c)
            .iter()
            .any(|e| matches!(e, Event::FlowsSent { port_no: 5, .. })),
        "the flows sent are journaled with the install: {c:#?}"
    );
    h.now += ms(2);
    let c = h.feed(Input::FlowsInstalled {
        ifname: "vnic-a".into(),
        port_no: 5,
        result: Ok(4),
    });
    let stages = emitted(&c)
        .into_iter()
        .find_map(|e| match e {
            PodEvent::Ready { stages, .. } => Some(stages),
            _ => None,
        })
        .expect("ready");
    assert_eq!(
        stages,
        vec![
            (Stage::PortCommitted, Duration::ZERO),
            (Stage::HostAttached, ms(100)),
            (Stage::TypeChanged, Duration::ZERO),
            (Stage::PortKnown, ms(20)),
            (Stage::Usable, ms(3)),
            (Stage::FlowsSent, Duration::ZERO),
            (Stage::FlowsConfirmed, ms(2)),
            (Stage::Ready, Duration::ZERO),
        ]
    );
    let st = h.core.status(h.now);
    assert_eq!(st[0].stages.len(), 9, "the status shows the origin too");
    assert_eq!(st[0].stages[0], (Stage::Added, Duration::ZERO));

    // A switch restart: the Ready goes, and the next one reports the switch side only,
    // counted from the moment the wait began again.
    h.now += ms(1_000);
    h.feed(Input::SwitchDisconnected {
        endpoint: "unix:/x".into(),
        reason: "restart".into(),
    });
    h.now += ms(50);
    h.connect(vec![
        port(0xffff_fffe, "br-int", STATE_LIVE),
        port(5, "vnic-a", STATE_LIVE),
    ]);
    h.now += ms(4);
    let c = h.feed(Input::FlowsInstalled {
        ifname: "vnic-a".into(),
        port_no: 5,
        result: Ok(4),
    });
    let stages = emitted(&c)
        .into_iter()
        .find_map(|e| match e {
            PodEvent::Ready { stages, .. } => Some(stages),
            _ => None,
        })
        .expect("ready again");
    assert_eq!(
        stages,
        vec![
            (Stage::PortKnown, ms(50)),
            (Stage::Usable, Duration::ZERO),
            (Stage::FlowsSent, Duration::ZERO),
            (Stage::FlowsConfirmed, ms(4)),
            (Stage::Ready, Duration::ZERO),
        ]
    );
}

/// A Pod's first flows go as a plain batch (nothing of its can carry traffic yet); once it
/// has flows, a new number's replace them in one bundle.
#[test]
fn only_a_pod_with_flows_gets_its_flows_replaced_atomically() {
    let mut h = Harness::new(CoreConfig::default());
    h.connect(vec![port(0xffff_fffe, "br-int", STATE_LIVE)]);
    h.feed(Input::AddPod(spec("vnic-a")));
    h.feed(Input::HostInterfaceCreated {
        ifname: "vnic-a".into(),
    });
    let replace_of = |cmds: &[Command]| -> Vec<(u32, bool)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::InstallFlows {
                    port_no, replace, ..
                } => Some((*port_no, *replace)),
                _ => None,
            })
            .collect()
    };
    let c = h.feed(ps(PortReason::Add, 5, "vnic-a", STATE_LIVE));
    assert_eq!(replace_of(&c), vec![(5, false)]);
    assert_eq!(h.phase("vnic-a"), Phase::Ready);
    // Renumbered: its flows on 5 carry traffic until the new ones are in.
    h.feed(ps(PortReason::Delete, 5, "vnic-a", STATE_LIVE));
    let c = h.feed(ps(PortReason::Add, 7, "vnic-a", STATE_LIVE));
    assert_eq!(replace_of(&c), vec![(7, true)]);
}
