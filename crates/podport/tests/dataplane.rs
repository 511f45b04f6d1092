//! The agent as a process, with real packets: two Pods (network namespaces) attached through
//! `podport cni` in the Windows order on OVS's userspace datapath (no NORMAL flow), and a
//! continuous ping between them across a SIGKILL and restart of the agent on the same
//! journal. Judged by `ping` (every request answered) and `ovs-ofctl` (the flows untouched).
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podport_ovs_sandbox::{dataplane_sandbox_for_test, unique_name, Netns, Sandbox};

mod support;
use support::{
    agent_command, assert_flows, podport, podport_ok, tempdir, wait_exit, youngest_pod_flow,
    Logged, BOUND,
};

/// `podport agent` on the netdev sandbox, with Windows' readiness: an `internal` port whose
/// TAP left the switch's namespace stays LINK_DOWN, as on Windows (ovs-issues #351).
fn start_agent(sb: &Sandbox, dir: &std::path::Path, control: &str) -> Logged {
    let mut agent = Logged::spawn(agent_command(sb, &dir.join("journal"), control).args([
        "--readiness",
        "live-or-link-down",
        "--not-ready-every",
        "1s",
    ]));
    let deadline = Instant::now() + BOUND;
    while !podport(&["status", "--control", control]).status.success() {
        agent.assert_running();
        assert!(
            Instant::now() < deadline,
            "the agent's control socket did not answer within {BOUND:?}:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    agent
}

fn wait_ready(control: &str, n: usize) {
    podport_ok(&[
        "status",
        "--control",
        control,
        "--wait-ready",
        &n.to_string(),
        "--timeout",
        "30",
    ]);
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces)"
)]
fn a_continuous_ping_loses_nothing_across_an_agent_sigkill_and_restart() {
    let sb = dataplane_sandbox_for_test();
    sb.ofctl(&["del-flows", sb.bridge()]).unwrap();
    let switch = sb
        .switch_netns()
        .expect("a netdev sandbox has a switch namespace");
    let dir = tempdir();
    let control = format!("unix:{}", dir.path().join("ctl.sock").display());
    let mut agent = start_agent(&sb, dir.path(), &control);

    let mut pods = Vec::new();
    for i in 1..=2u32 {
        let ifname = unique_name("vnic");
        let (ip, mac) = (format!("10.1.0.{i}/24"), format!("02:00:00:00:00:{i:02x}"));
        podport_ok(&[
            "cni",
            "add",
            "--control",
            &control,
            "--pod",
            &format!("default/pod-{i}"),
            "--container-id",
            &format!("ctr-{i}"),
            "--ifname",
            &ifname,
            "--ip",
            &ip,
            "--mac",
            &mac,
        ]);
        podport_ok(&["cni", "attach", "--control", &control, "--ifname", &ifname]);
        switch.wait_for_link(&ifname, BOUND).unwrap();
        let ns = Netns::create().unwrap();
        ns.attach(switch, &ifname, "eth0", &mac, &ip).unwrap();
        pods.push(ns);
    }
    wait_ready(&control, 2);
    assert_flows(&sb, 2);
    let out = pods[0].ping("10.1.0.2", 3).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // 1500 requests 10 ms apart (15 s), waited for to the last reply.
    let interval = Duration::from_millis(10);
    let run = pods[0]
        .start_ping("10.1.0.2", interval, Some(1500))
        .unwrap();
    run.wait_received(100, BOUND).unwrap();
    let youngest_before = youngest_pod_flow(&sb);
    let killed_at = Instant::now();
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGKILL).unwrap();
    let status = wait_exit(&mut agent.child, BOUND).expect("the agent dies of SIGKILL");
    assert!(!status.success());
    drop(agent);
    let agent = start_agent(&sb, dir.path(), &control);
    wait_ready(&control, 2);
    let back_after = killed_at.elapsed();
    let report = run.finish(Duration::from_secs(60)).unwrap();
    eprintln!(
        "agent SIGKILL and restart under `ping -i {}`: {report}; the agent was away (kill to \
         both Pods ready again) for {:.0} ms",
        interval.as_secs_f64(),
        back_after.as_secs_f64() * 1e3
    );
    assert_eq!(
        (report.transmitted, report.lost()),
        (1500, 0),
        "packets lost across the agent restart: {report}\n{}",
        agent.log_text()
    );
    // The restart left the flows alone: the same flows, none deleted and added again.
    assert_flows(&sb, 2);
    let youngest_after = youngest_pod_flow(&sb);
    assert!(
        youngest_after >= youngest_before,
        "a Pod flow was reinstalled: youngest {youngest_after}s after, {youngest_before}s before"
    );
}
