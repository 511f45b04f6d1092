//! Replay equivalence, as properties over random interleavings of every input.
//!
//! A small model of OVS answers the core's commands (OVSDB rows, the switch's ports and
//! flows, PortStatus queued in order) and random steps interleave the agent's calls (add,
//! attach, delete), the switch's messages (ADD, MODIFY, DELETE with any state bits, PORT_DESC
//! on every reconnect), renumberings, OVSDB updates (including `ofport` -1 with an error),
//! transient and permanent failures of creates, type changes and flow installs, reconnects of
//! either side and time. Checked:
//! - after every step, the fold of everything the core journaled equals the core's state;
//! - a core restarted from the journal at any step (as a new process: the switch and OVSDB
//!   connections are new, replies to the old process never come), fed the same remaining
//!   steps, ends where the uninterrupted core ends, never asks for a type change before an
//!   attach and never leaves flows of a Pod that is gone;
//! - deciding only on the ports an input touched gives exactly the commands that deciding on
//!   every port gives.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podport_engine::core::{Command, Core, CoreConfig, Input};
use podport_engine::spec::PodSpec;
use podport_journal::{apply_event, Event, Failure, Phase, PortDesc, PortReason, State};
use proptest::prelude::*;

const WALL: u64 = 1_700_000_000_000_000;
const LIVE: u32 = podport_openflow::PortState::LIVE.bits();
const NAMES: [&str; 3] = ["vnic-a", "vnic-b", "vnic-c"];

fn spec(i: usize) -> PodSpec {
    PodSpec {
        namespace: "default".into(),
        name: format!("pod-{i}"),
        container_id: format!("c-{i}"),
        ifname: NAMES[i].into(),
        ips: vec![format!("10.0.0.{}/24", i + 1)],
        mac: format!("02:00:00:00:00:0{}", i + 1).parse().unwrap(),
    }
}

/// One random step.
#[derive(Clone, Debug)]
enum Step {
    Add(usize),
    Attach(usize),
    Delete(usize),
    /// Deliver the next queued PortStatus.
    Deliver,
    /// Deliver OVSDB's next answer to a type change.
    Reply,
    /// The switch flips a port's state bits (MODIFY).
    Flip(usize, u32),
    /// The switch renumbers a port (DELETE, ADD with a new number).
    Renumber(usize),
    /// The next OVSDB or flow request fails (transient).
    FailNext,
    /// The next OVSDB or flow request fails for good (the Pod fails, nothing is retried).
    FailNextForGood,
    /// OVSDB reports that OVS cannot open a Pod's interface: `ofport` -1 with an error.
    CannotOpen(usize),
    SwitchReconnect,
    OvsdbReconnect,
    Tick(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..3).prop_map(Step::Add),
        (0usize..3).prop_map(Step::Attach),
        (0usize..3).prop_map(Step::Delete),
        Just(Step::Deliver),
        Just(Step::Deliver),
        Just(Step::Deliver),
        Just(Step::Reply),
        Just(Step::Reply),
        ((0usize..3), (0u32..8)).prop_map(|(i, s)| Step::Flip(i, s)),
        (0usize..3).prop_map(Step::Renumber),
        Just(Step::FailNext),
        Just(Step::FailNextForGood),
        (0usize..3).prop_map(Step::CannotOpen),
        Just(Step::SwitchReconnect),
        Just(Step::OvsdbReconnect),
        (1u64..40).prop_map(Step::Tick),
    ]
}

/// OVS as the core sees it.
#[derive(Clone, Debug, Default)]
struct World {
    /// OVSDB: name -> (type, ofport).
    ovsdb: BTreeMap<String, (String, Option<i64>)>,
    /// The switch: name -> (port number, state bits).
    ports: BTreeMap<String, (u32, u32)>,
    /// Installed flows: cookie -> port number.
    flows: BTreeMap<u64, u32>,
    queue: Vec<(PortReason, PortDesc)>,
    /// OVSDB's answers to type changes that OVS has already carried out (a process killed
    /// before reading them never gets them).
    replies: std::collections::VecDeque<Input>,
    next_no: u32,
    fail_next: bool,
    /// The injected failure is permanent.
    for_good: bool,
}

impl World {
    fn desc(&self, name: &str) -> Option<PortDesc> {
        let (no, state) = *self.ports.get(name)?;
        Some(PortDesc {
            port_no: no,
            name: name.into(),
            state,
            config: 0,
            hw_addr: [2, 0, 0, 0, 0, no as u8],
        })
    }

    fn port_desc(&self) -> Vec<PortDesc> {
        self.ports.keys().filter_map(|n| self.desc(n)).collect()
    }

    fn snapshot(&self) -> Input {
        Input::OvsdbSnapshot {
            interfaces: self
                .ovsdb
                .iter()
                .map(|(n, (t, o))| (n.clone(), t.clone(), *o, None))
                .collect(),
        }
    }

    fn fails(&mut self) -> bool {
        std::mem::take(&mut self.fail_next)
    }

    fn failure(&mut self, what: &str) -> Failure {
        if std::mem::take(&mut self.for_good) {
            Failure::permanent(what)
        } else {
            Failure::transient(what)
        }
    }

    /// Executes one command; returns the inputs its result gives.
    fn execute(&mut self, cmd: &Command) -> Vec<Input> {
        match cmd {
            Command::CreatePort(s) => {
                if self.fails() {
                    return vec![Input::PortCreateFailed {
                        ifname: s.ifname.clone(),
                        error: self.failure("busy"),
                    }];
                }
                let adopted = self.ovsdb.contains_key(&s.ifname);
                self.ovsdb
                    .entry(s.ifname.clone())
                    .or_insert_with(|| ("".into(), Some(-1)));
                vec![Input::PortCreated {
                    ifname: s.ifname.clone(),
                    port_uuid: "p".into(),
                    interface_uuid: "i".into(),
                    adopted,
                }]
            }
            Command::SetInterfaceType {
                ifname, iface_type, ..
            } => {
                if self.fails() || !self.ovsdb.contains_key(ifname) {
                    return vec![Input::TypeChanged {
                        ifname: ifname.clone(),
                        result: Err(self.failure("busy")),
                    }];
                }
                // OVS destroys the old port and creates the new one: DELETE, ADD, MODIFY.
                let no = match self.ports.get(ifname) {
                    Some((no, _)) => *no,
                    None => {
                        self.next_no += 1;
                        self.next_no
                    }
                };
                if let Some(d) = self.desc(ifname) {
                    self.queue.push((PortReason::Delete, d));
                }
                self.ports.insert(ifname.clone(), (no, 0));
                self.queue
                    .push((PortReason::Add, self.desc(ifname).unwrap()));
                self.ports.insert(ifname.clone(), (no, LIVE));
                self.queue
                    .push((PortReason::Modify, self.desc(ifname).unwrap()));
                self.ovsdb
                    .insert(ifname.clone(), (iface_type.clone(), Some(no.into())));
                self.replies.push_back(Input::OvsdbInterface {
                    ifname: ifname.clone(),
                    iface_type: iface_type.clone(),
                    ofport: Some(no.into()),
                    error: None,
                });
                self.replies.push_back(Input::TypeChanged {
                    ifname: ifname.clone(),
                    result: Ok(()),
                });
                vec![]
            }
            Command::InstallFlows {
                spec,
                port_no,
                cookie,
                ..
            } => {
                if self.fails() {
                    return vec![Input::FlowsInstalled {
                        ifname: spec.ifname.clone(),
                        port_no: *port_no,
                        result: Err(self.failure("bad match")),
                    }];
                }
                self.flows.insert(*cookie, *port_no);
                vec![Input::FlowsInstalled {
                    ifname: spec.ifname.clone(),
                    port_no: *port_no,
                    result: Ok(5),
                }]
            }
            Command::RemoveFlows { ifname, cookie } => {
                self.flows.remove(cookie);
                vec![Input::FlowsRemoved {
                    ifname: ifname.clone(),
                    result: Ok(5),
                }]
            }
            Command::DeletePort { ifname, .. } => {
                self.ovsdb.remove(ifname);
                if let Some(d) = self.desc(ifname) {
                    self.queue.push((PortReason::Delete, d));
                }
                self.ports.remove(ifname);
                vec![Input::PortDeleted {
                    ifname: ifname.clone(),
                    result: Ok(()),
                }]
            }
            // In stream order: what the switch queued before the request, then the list.
            Command::RequestPortDesc => {
                let mut inputs: Vec<Input> = self
                    .queue
                    .drain(..)
                    .map(|(reason, port)| Input::PortStatus { reason, port })
                    .collect();
                inputs.push(Input::PortDesc {
                    ports: self.port_desc(),
                });
                inputs
            }
            _ => vec![],
        }
    }
}

/// A core and its world, and everything it journaled.
struct Run {
    core: Core,
    world: World,
    now: Instant,
    journal: Vec<(u64, Event)>,
    /// Every command, in order.
    commands: Vec<Command>,
    /// Commands that broke a rule (described).
    violations: Vec<String>,
}

impl Run {
    fn new(now: Instant) -> Run {
        let mut run = Run {
            journal: vec![],
            world: World::default(),
            now,
            commands: vec![],
            violations: vec![],
            core: Core::new(CoreConfig::default(), now, WALL),
        };
        let cmds = run.core.start("test", "", now);
        run.run(cmds);
        run
    }

    /// A new process on this run's journal and world: new connections to both, OVSDB's
    /// snapshot before or after the switch's port list (`desc_first`).
    fn restarted(&self, desc_first: bool) -> Run {
        let state = fold(&self.journal);
        let mut core = Core::restore(CoreConfig::default(), state, self.now, self.ts());
        let cmds = core.start("test", "", self.now);
        let mut world = self.world.clone();
        // PortStatus queued for the old connection is never sent on the new one, nor OVSDB's
        // answers to the old process's requests.
        world.queue.clear();
        world.replies.clear();
        let mut run = Run {
            core,
            world,
            now: self.now,
            journal: self.journal.clone(),
            commands: vec![],
            violations: vec![],
        };
        run.run(cmds);
        let snapshot = run.world.snapshot();
        if desc_first {
            run.reconnect_switch();
            run.feed(snapshot);
        } else {
            run.feed(snapshot);
            run.reconnect_switch();
        }
        run
    }

    fn ts(&self) -> u64 {
        self.journal.last().map_or(WALL, |(t, _)| *t)
    }

    fn feed(&mut self, input: Input) {
        let cmds = self.core.handle(input, self.now);
        self.run(cmds);
    }

    fn run(&mut self, cmds: Vec<Command>) {
        let mut queue: std::collections::VecDeque<Command> = cmds.into();
        while let Some(c) = queue.pop_front() {
            self.commands.push(c.clone());
            match &c {
                Command::Journal { ts_micros, event } => {
                    self.journal.push((*ts_micros, event.clone()));
                    continue;
                }
                Command::SetInterfaceType { ifname, .. }
                    if !self
                        .core
                        .state()
                        .ports
                        .get(ifname)
                        .is_some_and(|p| p.attached) =>
                {
                    self.violations
                        .push(format!("type change of {ifname} before its attach"));
                }
                _ => {}
            }
            for input in self.world.execute(&c) {
                queue.extend(self.core.handle(input, self.now));
            }
        }
    }

    fn reconnect_switch(&mut self) {
        self.world.queue.clear();
        self.feed(Input::SwitchConnected {
            endpoint: "unix:/x".into(),
            datapath_id: 1,
            of_version: "1.5".into(),
        });
        let ports = self.world.port_desc();
        self.feed(Input::PortDesc { ports });
    }

    fn step(&mut self, s: &Step) {
        match s {
            Step::Add(i) => {
                let spec = spec(*i);
                if self.core.check_new_pod(&spec).is_ok() {
                    self.feed(Input::AddPod(spec));
                }
            }
            Step::Attach(i) => self.feed(Input::HostInterfaceCreated {
                ifname: NAMES[*i].into(),
            }),
            Step::Delete(i) => self.feed(Input::DeletePod {
                ifname: NAMES[*i].into(),
            }),
            Step::Reply => {
                if let Some(input) = self.world.replies.pop_front() {
                    self.feed(input);
                }
            }
            Step::Deliver => {
                if !self.world.queue.is_empty() {
                    let (reason, port) = self.world.queue.remove(0);
                    self.feed(Input::PortStatus { reason, port });
                }
            }
            Step::Flip(i, bits) => {
                if let Some(p) = self.world.ports.get_mut(NAMES[*i]) {
                    p.1 = *bits;
                    let d = self.world.desc(NAMES[*i]).unwrap();
                    self.world.queue.push((PortReason::Modify, d));
                }
            }
            Step::Renumber(i) => {
                let name = NAMES[*i];
                if let Some(d) = self.world.desc(name) {
                    self.world.queue.push((PortReason::Delete, d));
                    self.world.next_no += 1;
                    self.world
                        .ports
                        .insert(name.into(), (self.world.next_no, LIVE));
                    let d = self.world.desc(name).unwrap();
                    self.world.queue.push((PortReason::Add, d));
                }
            }
            Step::FailNext => self.world.fail_next = true,
            Step::FailNextForGood => {
                self.world.fail_next = true;
                self.world.for_good = true;
            }
            Step::CannotOpen(i) => {
                let name = NAMES[*i];
                if let Some((ty, ofport)) = self.world.ovsdb.get_mut(name) {
                    *ofport = Some(-1);
                    let iface_type = ty.clone();
                    self.feed(Input::OvsdbInterface {
                        ifname: name.into(),
                        iface_type,
                        ofport: Some(-1),
                        error: Some("could not open network device".into()),
                    });
                }
            }
            Step::SwitchReconnect => {
                self.feed(Input::SwitchDisconnected {
                    endpoint: "unix:/x".into(),
                    reason: "closed".into(),
                });
                self.reconnect_switch();
            }
            Step::OvsdbReconnect => {
                let s = self.world.snapshot();
                self.feed(s);
            }
            Step::Tick(s) => {
                self.now += Duration::from_secs(*s);
                self.feed(Input::Tick);
            }
        }
    }

    /// Lets everything settle: every PortStatus delivered, every retry due.
    fn quiesce(&mut self) {
        for _ in 0..20 {
            while !self.world.queue.is_empty() || !self.world.replies.is_empty() {
                self.step(&Step::Reply);
                self.step(&Step::Deliver);
            }
            self.step(&Step::Tick(60));
        }
    }

    /// What must agree between two runs: per Pod its phase, cookie and usable port (flows
    /// left on a port that stopped being usable may differ; `check_truth` checks the flows
    /// of every ready Pod).
    fn outcome(&self) -> BTreeMap<String, (Phase, u64, Option<u32>)> {
        let st = self.core.state();
        st.ports
            .values()
            .map(|p| {
                (
                    p.ifname.clone(),
                    (st.phase_of(p), p.cookie, p.usable_port(&st.policy)),
                )
            })
            .collect()
    }
}

impl Run {
    /// After `quiesce`: the state is what the model of OVS says, and no flows are left under
    /// a cookie that no tracked Pod has.
    fn check_truth(&self) -> Result<(), TestCaseError> {
        let st = self.core.state();
        let cookies: Vec<u64> = st.ports.values().map(|p| p.cookie).collect();
        for c in self.world.flows.keys() {
            prop_assert!(cookies.contains(c), "flows of cookie {:#x} left behind", c);
        }
        for p in st.ports.values() {
            let live = self
                .world
                .ports
                .get(&p.ifname)
                .filter(|(_, s)| s & LIVE != 0);
            if p.attached && !p.removing && p.failed.is_none() {
                match live {
                    Some((no, _)) => {
                        prop_assert_eq!(st.phase_of(p), Phase::Ready, "{}", p.ifname);
                        prop_assert_eq!(self.world.flows.get(&p.cookie), Some(no), "{}", p.ifname);
                    }
                    None => prop_assert_ne!(st.phase_of(p), Phase::Ready, "{}", p.ifname),
                }
            }
        }
        Ok(())
    }
}

fn fold(journal: &[(u64, Event)]) -> State {
    let mut s = State::default();
    for (ts, e) in journal {
        apply_event(&mut s, *ts, e);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_fold_of_the_journal_is_the_live_state_after_every_step(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut run = Run::new(Instant::now());
        run.reconnect_switch();
        for (k, s) in steps.iter().enumerate() {
            run.step(s);
            prop_assert_eq!(&fold(&run.journal), run.core.state(), "after step {} {:?}", k, s);
        }
    }

    #[test]
    fn deciding_on_touched_ports_only_is_deciding_on_every_port(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let now = Instant::now();
        let mut a = Run::new(now);
        let mut b = Run::new(now);
        b.core.decide_on_every_port(true);
        a.reconnect_switch();
        b.reconnect_switch();
        for (k, s) in steps.iter().enumerate() {
            a.step(s);
            b.step(s);
            prop_assert_eq!(&a.commands, &b.commands, "after step {} {:?}", k, s);
        }
    }

    #[test]
    fn a_restart_at_any_step_resumes_where_it_was(
        steps in proptest::collection::vec(step(), 1..50),
        cut in 0usize..50,
        desc_first in any::<bool>(),
    ) {
        let cut = cut.min(steps.len());
        let mut a = Run::new(Instant::now());
        a.reconnect_switch();
        for s in &steps[..cut] {
            a.step(s);
        }
        let mut b = a.restarted(desc_first);
        prop_assert_eq!(&fold(&b.journal), b.core.state(), "right after the restart");
        for s in &steps[cut..] {
            a.step(s);
            b.step(s);
        }
        a.quiesce();
        b.quiesce();
        prop_assert!(b.violations.is_empty(), "{:?}", b.violations);
        // Identity survives: the same Pods with the same cookies.
        let ids = |r: &Run| -> Vec<(String, u64)> {
            r.core.state().ports.values().map(|p| (p.ifname.clone(), p.cookie)).collect()
        };
        prop_assert_eq!(ids(&a), ids(&b));
        // Where the two models of OVS agree (they can differ: a failure injected for the
        // old process's next request meets another request in the new one), so do the runs.
        // A permanent failure may meet another request in each run (see above): Pods that
        // failed in either are compared by identity only.
        if a.world.ports == b.world.ports {
            let failed = |r: &Run, n: &str| r.core.state().phase(n) == Some(Phase::Failed);
            let keep = |r: &Run| -> BTreeMap<String, (Phase, u64, Option<u32>)> {
                r.outcome()
                    .into_iter()
                    .filter(|(n, _)| !failed(&a, n) && !failed(&b, n))
                    .collect()
            };
            prop_assert_eq!(keep(&a), keep(&b));
        }
        for r in [&a, &b] {
            r.check_truth()?;
        }
    }
}
