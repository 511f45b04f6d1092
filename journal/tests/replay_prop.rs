//! Property: whatever was appended, with whatever snapshots (automatic and manual) and
//! compaction, replay gives the in-memory fold of the events.
//!
//! - `replay()` (newest snapshot plus tail) == the fold of all events, always;
//! - `replay_full()` == `replay()` when nothing was compacted;
//! - `replay_until(s)` == the fold of the events up to `s` whenever a snapshot plus the
//!   stored records cover `s`, and says so in `stopped_at` (without claiming `s`) otherwise.

use proptest::prelude::*;

use podport_journal::{
    apply, wire_name, Event, Failure, FailureKind, Finding, FlushPolicy, Journal, JournalConfig,
    JournalReader, Outcome, Phase, PodRef, Policy, PortDesc, PortReason, Readiness, Record, State,
    Step, POD_COOKIE_BASE,
};

const IFNAMES: [&str; 4] = ["veth-a", "veth-b", "veth-c", "vethlongname-abcdef"];

fn ifname() -> impl Strategy<Value = String> {
    prop::sample::select(&IFNAMES[..]).prop_map(str::to_string)
}

/// A name as a PortStatus carries it: a Pod's wire name, or a port no Pod owns.
fn port_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ifname().prop_map(|n| wire_name(&n).to_string()),
        1 => prop::sample::select(&["br-int", "patch-tun"][..]).prop_map(str::to_string),
    ]
}

/// A port number: mostly a Pod's, sometimes 0 or a reserved one (LOCAL, ANY, ...).
fn port_no() -> impl Strategy<Value = u32> {
    prop_oneof![
        8 => 1u32..=6,
        1 => prop::sample::select(&[0u32, 0xffff_ff00, 0xffff_fffd, 0xffff_fffe, 0xffff_ffff][..]),
    ]
}

/// `ofp_port_state` bits: the usual ones, or any.
fn state_bits() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..8,
        1 => any::<u32>(),
    ]
}

fn port_desc() -> impl Strategy<Value = PortDesc> {
    (
        port_no(),
        port_name(),
        state_bits(),
        prop::sample::select(&[0u32, 1, 0x20, 0x41][..]),
    )
        .prop_map(|(port_no, name, state, config)| PortDesc {
            port_no,
            name,
            state,
            config,
            hw_addr: [2, 0, 0, 0, 0, port_no as u8],
        })
}

fn reason() -> impl Strategy<Value = PortReason> {
    prop_oneof![
        3 => Just(PortReason::Add),
        3 => Just(PortReason::Modify),
        2 => Just(PortReason::Delete),
        1 => any::<u8>().prop_map(PortReason::Other),
    ]
}

fn cookie() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..100).prop_map(|n| POD_COOKIE_BASE + n),
        1 => any::<u64>(),
        1 => Just(u64::MAX),
    ]
}

fn failure() -> impl Strategy<Value = Failure> {
    (
        prop::sample::select(&[FailureKind::Transient, FailureKind::Permanent][..]),
        "[a-z ]{0,12}",
    )
        .prop_map(|(kind, reason)| Failure { kind, reason })
}

const STEPS: [Step; 8] = [
    Step::CreatePort,
    Step::TypeChange,
    Step::OpenInterface,
    Step::InterfaceDeleted,
    Step::OvsdbWait,
    Step::InstallFlows,
    Step::RemoveFlows,
    Step::DeletePort,
];

fn finding() -> impl Strategy<Value = Finding> {
    prop_oneof![
        port_no().prop_map(|port_no| Finding::Present { port_no }),
        (port_no(), port_no()).prop_map(|(from, to)| Finding::Renumbered { from, to }),
        port_no().prop_map(|port_no| Finding::Allocated { port_no }),
        Just(Finding::Waiting),
        Just(Finding::Vanished),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(
            &[
                Readiness::Live,
                Readiness::LiveOrLinkDown,
                Readiness::Allocated,
            ][..],
        ),
        any::<bool>(),
        prop::sample::select(&["internal", "internal", "system", ""][..]),
    )
        .prop_map(|(readiness, ovsdb_wait, attached_type)| Policy {
            readiness,
            ovsdb_wait,
            attached_type: attached_type.into(),
        })
}

fn iface_type() -> impl Strategy<Value = String> {
    prop::sample::select(&["internal", "system", ""][..]).prop_map(str::to_string)
}

fn pod_added() -> impl Strategy<Value = Event> {
    (
        ifname(),
        0u32..100,
        prop::collection::vec("10\\.0\\.0\\.[0-9]{1,3}", 0..3),
        cookie(),
    )
        .prop_map(|(ifname, n, ips, cookie)| Event::PodAdded {
            pod: PodRef {
                namespace: "default".into(),
                name: format!("pod-{n}"),
            },
            container_id: format!("{n:064x}"),
            mac: format!("02:00:00:00:00:{n:02x}"),
            ifname,
            ips,
            cookie,
        })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => pod_added(),
        2 => (ifname(), 0u32..100).prop_map(|(ifname, n)| Event::PodPortCreated {
            ifname,
            port_uuid: format!("port-{n}"),
            interface_uuid: format!("iface-{n}"),
        }),
        2 => ifname().prop_map(|ifname| Event::HostInterfaceCreated { ifname }),
        2 => (ifname(), iface_type(), prop::option::of(failure())).prop_map(|(ifname, to, failed)| {
            Event::InterfaceTypeChanged {
                ifname,
                from: "system".into(),
                to,
                outcome: failed.map_or(Outcome::Ok, Outcome::Failed),
            }
        }),
        2 => (ifname(), iface_type(), prop::option::of(-1i64..8), prop::option::of("[a-z ]{0,12}"))
            .prop_map(|(ifname, iface_type, ofport, error)| Event::OvsdbInterfaceUpdate {
                ifname,
                iface_type,
                ofport,
                error,
            }),
        1 => (ifname(), -1i64..8).prop_map(|(ifname, ofport)| Event::OfportWaited { ifname, ofport }),
        8 => (reason(), port_desc()).prop_map(|(reason, port)| Event::PortStatusReceived { reason, port }),
        1 => prop::collection::vec(port_desc(), 0..4).prop_map(|ports| Event::PortDescSynced { ports }),
        2 => (ifname(), port_no(), any::<u64>(), 0u32..20).prop_map(|(ifname, port_no, cookie, count)| {
            Event::FlowsInstalled { ifname, port_no, cookie, count }
        }),
        1 => (ifname(), any::<u64>(), 0u32..20).prop_map(|(ifname, cookie, count)| {
            Event::FlowsRemoved { ifname, cookie, count }
        }),
        3 => (ifname(), port_no(), 0u64..10_000).prop_map(|(ifname, port_no, waited_ms)| {
            Event::PodReady { ifname, port_no, waited_ms }
        }),
        2 => (ifname(), prop::sample::select(&Phase::ALL[..]), 0u64..10_000)
            .prop_map(|(ifname, phase, waited_ms)| Event::PodNotReady { ifname, phase, waited_ms }),
        2 => (ifname(), prop::sample::select(&STEPS[..]), failure())
            .prop_map(|(ifname, step, error)| Event::PodFailed { ifname, step, error }),
        2 => (ifname(), finding()).prop_map(|(ifname, finding)| Event::Reconciled { ifname, finding }),
        1 => ifname().prop_map(|ifname| Event::DeleteRequested { ifname }),
        1 => ifname().prop_map(|ifname| Event::PodDeleted { ifname }),
        1 => any::<u32>().prop_map(|generation| Event::CookieGeneration { generation }),
        1 => any::<u64>().prop_map(|datapath_id| Event::SwitchConnected {
            endpoint: "unix:/run/openvswitch/br-int.mgmt".into(),
            datapath_id,
            of_version: "OpenFlow1.5".into(),
        }),
        1 => Just(Event::SwitchDisconnected { endpoint: "unix:/run/openvswitch/br-int.mgmt".into(), reason: "eof".into() }),
        1 => policy().prop_map(|policy| Event::AgentStarted {
            version: "0.2.0".into(),
            config_digest: "abc".into(),
            policy,
        }),
    ]
}

/// A Pod's whole attach, in order, so replays also cover ports that get usable and Ready (and
/// lose it again to later events).
fn pod_life() -> impl Strategy<Value = Vec<Event>> {
    (
        pod_added(),
        1u32..=6,
        prop::sample::select(&[4u32, 5, 1][..]),
    )
        .prop_map(|(added, port_no, state)| {
            let Event::PodAdded { ifname, cookie, .. } = &added else {
                unreachable!()
            };
            let (ifname, cookie) = (ifname.clone(), *cookie);
            vec![
                Event::SwitchConnected {
                    endpoint: "unix:/run/openvswitch/br-int.mgmt".into(),
                    datapath_id: 1,
                    of_version: "OpenFlow1.5".into(),
                },
                Event::PortDescSynced { ports: vec![] },
                added,
                Event::PodPortCreated {
                    ifname: ifname.clone(),
                    port_uuid: "p".into(),
                    interface_uuid: "i".into(),
                },
                Event::HostInterfaceCreated {
                    ifname: ifname.clone(),
                },
                Event::OvsdbInterfaceUpdate {
                    ifname: ifname.clone(),
                    iface_type: "internal".into(),
                    ofport: Some(i64::from(port_no)),
                    error: None,
                },
                Event::PortStatusReceived {
                    reason: PortReason::Add,
                    port: PortDesc {
                        port_no,
                        name: wire_name(&ifname).to_string(),
                        state,
                        config: 0,
                        hw_addr: [2, 0, 0, 0, 0, port_no as u8],
                    },
                },
                Event::FlowsInstalled {
                    ifname: ifname.clone(),
                    port_no,
                    cookie,
                    count: 3,
                },
                Event::PodReady {
                    ifname,
                    port_no,
                    waited_ms: 10,
                },
            ]
        })
}

#[derive(Clone, Debug)]
enum Op {
    /// Append the event, `dt` µs after the previous one.
    Append(Event, u64),
    /// `Journal::snapshot()`.
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (event(), 0u64..5_000_000).prop_map(|(e, dt)| Op::Append(e, dt)),
        1 => Just(Op::Snapshot),
    ]
}

/// Ops, with whole Pod lives spliced in among the single events.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            12 => op().prop_map(|o| vec![o]),
            1 => pod_life().prop_map(|es| es.into_iter().map(|e| Op::Append(e, 1_000)).collect()),
        ],
        0..120,
    )
    .prop_map(|chunks| chunks.into_iter().flatten().collect())
}

#[derive(Clone, Debug)]
struct Setup {
    snapshot_every: Option<u64>,
    retain_records: u64,
    max_group: usize,
    ops: Vec<Op>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::option::weighted(0.7, 1u64..40),
        prop_oneof![0u64..60, Just(u64::MAX)],
        prop_oneof![Just(1usize), 2usize..64, Just(4096)],
        ops(),
    )
        .prop_map(|(snapshot_every, retain_records, max_group, ops)| Setup {
            snapshot_every,
            retain_records,
            max_group,
            ops,
        })
}

fn check(setup: Setup) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let config = JournalConfig {
        flush: FlushPolicy::EveryGroup,
        max_group: setup.max_group,
        snapshot_every: setup.snapshot_every,
        retain_records: setup.retain_records,
        ..JournalConfig::default()
    };
    // The records as we expect them, and the fold after each: prefix[s] = state after #s.
    let mut records: Vec<Record> = Vec::new();
    let mut prefix = vec![State::default()];
    let mut ts = 1_700_000_000_000_000u64;
    {
        let j = Journal::open(dir.path(), config).unwrap();
        let mut tickets = Vec::new();
        for op in &setup.ops {
            match op {
                Op::Append(event, dt) => {
                    ts += dt;
                    tickets.push(j.append_at(ts, event.clone()));
                    let r = Record {
                        seq: records.len() as u64 + 1,
                        ts_micros: ts,
                        event: event.clone(),
                    };
                    let mut s = prefix.last().unwrap().clone();
                    apply(&mut s, &r);
                    prefix.push(s);
                    records.push(r);
                }
                Op::Snapshot => {
                    // Covers every append queued before it.
                    prop_assert_eq!(j.snapshot().unwrap(), records.len() as u64);
                }
            }
        }
        let seqs: Vec<u64> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
        prop_assert_eq!(seqs, (1..=records.len() as u64).collect::<Vec<_>>());
        let (last, live) = j.state().unwrap();
        prop_assert_eq!(last, records.len() as u64);
        prop_assert_eq!(&live, prefix.last().unwrap(), "the writer's live state");
        j.close().unwrap();
    }

    let n = records.len() as u64;
    let reader = JournalReader::open(dir.path()).unwrap();
    prop_assert!(reader.verify().is_empty());
    let stats = reader.stats();
    let first = stats.first_seq.unwrap_or(n + 1);
    // What is stored is dense from `first` to `n`, and is what was appended.
    let stored: Vec<Record> = reader.records(0).map(|r| r.unwrap()).collect();
    prop_assert_eq!(&stored[..], &records[(first - 1) as usize..]);
    // Compaction honoured the retention: records after `newest - retain` are all kept.
    if let Some(&newest) = stats.snapshots.last() {
        prop_assert!(newest <= n);
        let cut = newest.saturating_sub(setup.retain_records);
        prop_assert!(
            first <= cut + 1,
            "records after #{} were kept past the retention ({:?})",
            cut,
            stats
        );
        if cut > 0 {
            prop_assert_eq!(first, cut + 1, "compacted up to the cut: {:?}", stats);
        }
    } else {
        prop_assert_eq!(first, 1.min(n + 1), "nothing compacted without a snapshot");
    }

    // replay() == the fold of everything, always.
    let replay = reader.replay();
    prop_assert_eq!(&replay.stopped_at, &None);
    prop_assert_eq!(replay.last_seq, n);
    prop_assert_eq!(replay.snapshot_seq, stats.snapshots.last().copied());
    prop_assert_eq!(&replay.state, &prefix[n as usize]);

    // replay_full() == replay() when nothing was compacted.
    if first == 1 || n == 0 {
        let full = reader.replay_full();
        prop_assert_eq!(&full.stopped_at, &None);
        prop_assert_eq!(full.last_seq, n);
        prop_assert_eq!(full.snapshot_seq, None);
        prop_assert_eq!(full.records_replayed, n);
        prop_assert_eq!(&full.state, &replay.state);
    }

    // replay_until(s) == the fold up to s when covered; refused (without claiming s) if not.
    for s in 1..=n {
        let newest_before = stats.snapshots.iter().rev().find(|&&sn| sn <= s).copied();
        let covered = match newest_before {
            Some(sn) => sn == s || sn + 1 >= first,
            None => first == 1,
        };
        let r = reader.replay_until(s);
        if covered {
            prop_assert_eq!(&r.stopped_at, &None, "replay_until({})", s);
            prop_assert_eq!(r.last_seq, s);
            prop_assert_eq!(r.snapshot_seq, newest_before);
            prop_assert_eq!(&r.state, &prefix[s as usize], "replay_until({})", s);
        } else {
            prop_assert!(
                r.stopped_at.is_some() && r.last_seq < s,
                "replay_until({}) is not covered (records from #{}, snapshots {:?}) but gave \
                 last_seq {} and stopped_at {:?}",
                s,
                first,
                stats.snapshots,
                r.last_seq,
                r.stopped_at
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replay_is_the_fold_of_the_events(setup in setup()) {
        check(setup)?;
    }
}

/// The cases the property is about, pinned: compaction that leaves an older snapshot whose
/// tail is gone, and a manual snapshot before any record.
#[test]
fn pinned_compaction_cases() {
    let ev = |i: u64| {
        Op::Append(
            Event::PodReady {
                ifname: IFNAMES[(i % 4) as usize].into(),
                port_no: (i % 6) as u32 + 1,
                waited_ms: i,
            },
            1,
        )
    };
    let created = |i: usize| {
        Op::Append(
            Event::PodAdded {
                pod: PodRef {
                    namespace: "default".into(),
                    name: format!("p{i}"),
                },
                container_id: String::new(),
                ifname: IFNAMES[i].into(),
                ips: vec![],
                mac: String::new(),
                cookie: POD_COOKIE_BASE + i as u64,
            },
            1,
        )
    };
    let mut ops: Vec<Op> = vec![Op::Snapshot];
    ops.extend((0..4).map(created));
    ops.extend((0..100).map(ev));
    for (every, retain) in [(Some(10), 3), (Some(7), 0), (None, 5), (Some(1), 1)] {
        let mut ops = ops.clone();
        ops.insert(50, Op::Snapshot);
        ops.insert(51, Op::Snapshot);
        check(Setup {
            snapshot_every: every,
            retain_records: retain,
            max_group: 8,
            ops,
        })
        .unwrap();
    }
}
