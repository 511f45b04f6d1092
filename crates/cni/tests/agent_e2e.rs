//! The plugin end to end: a real `podport agent` on an OVS with a real datapath (the sandbox's
//! netdev mode), host-local for the addresses, Pods as network namespaces. ADD leaves a
//! configured interface in the namespace and two Pods ping each other through podport's
//! flows; CHECK passes; DEL removes the interface, the port and the lease; DEL again, and DEL
//! of a namespace that is gone, succeed.
#![cfg(target_os = "linux")]

use podport_ovs_sandbox::{dataplane_sandbox_for_test, Netns, Sandbox};
use serde_json::{json, Value};

mod support;
use support::{container_id, leases, net_conf, run_plugin_in, Agent, CNI_PLUGIN_DIR};

/// One Pod as the runtime sees it.
struct Pod {
    ns: Netns,
    id: String,
    name: String,
    /// The switch's namespace, where the plugin runs (see `run_plugin_in`).
    switch: String,
}

impl Pod {
    fn new(n: u32, sb: &Sandbox) -> Pod {
        Pod {
            ns: Netns::create().expect("create a network namespace"),
            id: container_id(n),
            name: format!("web-{n}"),
            switch: switch_netns(sb),
        }
    }

    fn netns(&self) -> String {
        format!("/run/netns/{}", self.ns.name())
    }

    fn run(&self, command: &str, conf: &Value) -> support::Run {
        let netns = self.netns();
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            self.name, self.id
        );
        run_plugin_in(
            Some(&self.switch),
            &[
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", &self.id),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", CNI_PLUGIN_DIR),
                ("CNI_ARGS", &args),
            ],
            &conf.to_string(),
        )
    }

    /// `ip -j addr show dev eth0` in the Pod: its MAC and IPv4 addresses; `None` without eth0.
    fn eth0(&self) -> Option<(String, Vec<String>)> {
        let out = self
            .ns
            .exec("ip", &["-j", "addr", "show", "dev", "eth0"])
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mac = v[0]["address"].as_str().unwrap().to_string();
        let addrs = v[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect();
        Some((mac, addrs))
    }
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns, no_cni_plugins),
    ignore = "needs Open vSwitch, root, ip and ping (network namespaces) and host-local"
)]
fn add_check_del_with_a_real_agent_and_datapath() {
    let sb = dataplane_sandbox_for_test();
    // Only podport's flows move packets.
    sb.ofctl(&["del-flows", sb.bridge()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&sb, dir.path());
    let data = dir.path().join("ipam");
    let conf = net_conf(&agent.control, "10.66.0.0/24", &data);
    let pods = [Pod::new(1, &sb), Pod::new(2, &sb)];

    let mut results = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let result = pod.run("ADD", &conf);
        result.ok();
        let ip = format!("10.66.0.{}", i + 2);
        let mac = format!("0a:58:0a:42:00:{:02x}", i + 2);
        assert_eq!(
            result.json(),
            json!({"cniVersion": "1.0.0",
                   "interfaces": [{"name": "eth0", "mac": mac, "sandbox": pod.netns()}],
                   "ips": [{"address": format!("{ip}/24"), "gateway": "10.66.0.1", "interface": 0}],
                   "routes": [{"dst": "0.0.0.0/0", "gw": "10.66.0.1"}]}),
            "{result:?}"
        );
        assert_eq!(pod.eth0(), Some((mac, vec![format!("{ip}/24")])));
        let routes = pod.ns.ip(&["route", "show", "default"]).unwrap();
        assert!(
            routes.contains("default via 10.66.0.1 dev eth0"),
            "{routes}"
        );
        results.push(result.json());
    }
    assert_eq!(leases(&data), ["10.66.0.2", "10.66.0.3"]);
    let ports = agent.ports();
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert!(
        ports.iter().any(|p| p["pod"] == "default/web-1"),
        "{ports:?}"
    );

    // Readiness is the agent's (asynchronous); once ready, packets cross podport's flows.
    agent.wait_ready(2);
    let ping = pods[0].ns.ping("10.66.0.3", 3).unwrap();
    assert!(
        ping.status.success(),
        "no ping reply from Pod 2:\n{}\nflows:\n{}",
        String::from_utf8_lossy(&ping.stdout),
        sb.dump_flows("OpenFlow15").unwrap().join("\n")
    );

    // CHECK with what ADD returned passes, and fails once the interface is wrong.
    for (pod, result) in pods.iter().zip(&results) {
        let mut check = conf.clone();
        check["prevResult"] = result.clone();
        assert_eq!(pod.run("CHECK", &check).ok(), "");
    }
    let mut check = conf.clone();
    check["prevResult"] = results[0].clone();
    pods[0]
        .ns
        .ip(&["addr", "del", "10.66.0.2/24", "dev", "eth0"])
        .unwrap();
    let msg = pods[0].run("CHECK", &check).error(103);
    assert!(msg.contains("eth0 lacks the address 10.66.0.2/24"), "{msg}");

    // DEL: interface, port and lease gone; again: still success.
    let mut del = conf.clone();
    del["prevResult"] = results[0].clone();
    assert_eq!(pods[0].run("DEL", &del).ok(), "");
    assert_eq!(pods[0].eth0(), None);
    assert_eq!(leases(&data), ["10.66.0.3"]);
    let ports = agent.ports();
    assert!(
        ports.iter().all(|p| p["pod"] != "default/web-1"),
        "{ports:?}"
    );
    assert_eq!(pods[0].run("DEL", &del).ok(), "");
    assert_eq!(pods[0].run("CHECK", &check).status.code(), Some(1));

    // The second Pod's namespace is gone before its DEL (the runtime tore the sandbox down).
    let [_, second] = pods;
    let netns = second.netns();
    let Pod { ns, id, switch, .. } = second;
    ns.delete().unwrap();
    assert!(!std::path::Path::new(&netns).exists());
    let gone = run_plugin_in(
        Some(&switch),
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", &id),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", CNI_PLUGIN_DIR),
        ],
        &conf.to_string(),
    );
    assert_eq!(gone.ok(), "");
    assert_eq!(leases(&data), Vec::<String>::new());
    // A namespace file the runtime unmounted but left: nothing to enter, DEL succeeds.
    let stale = dir.path().join("stale-netns");
    std::fs::write(&stale, "").unwrap();
    let stale = stale.display().to_string();
    let again = run_plugin_in(
        Some(&switch),
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", &id),
            ("CNI_NETNS", &stale),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", CNI_PLUGIN_DIR),
        ],
        &conf.to_string(),
    );
    assert_eq!(again.ok(), "");
    assert_eq!(agent.ports(), Vec::<Value>::new());
}

/// The name of the dataplane sandbox's switch namespace.
fn switch_netns(sb: &Sandbox) -> String {
    sb.switch_netns()
        .expect("the dataplane sandbox runs ovs-vswitchd in a namespace of its own")
        .name()
        .to_string()
}
