//! The plugin driven through libcni, the library container runtimes call plugins with: a Go
//! program of a few lines (tests/libcni/main.go), built here offline in GOPATH mode against
//! Debian's `golang-github-appc-cni-dev` sources, runs ADD, CHECK and DEL (libcni keeps ADD's
//! result in its cache and hands it to CHECK and DEL as `prevResult`), against a real agent
//! and datapath as in agent_e2e.rs.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use podport_ovs_sandbox::{dataplane_sandbox_for_test, Netns};
use serde_json::Value;

mod support;
use support::{container_id, leases, net_conf, plugin_bin, Agent, CNI_PLUGIN_DIR};

/// Where Debian's `golang-github-appc-cni-dev` puts libcni (a GOPATH).
const GOPATH: &str = "/usr/share/gocode";

/// Builds tests/libcni/main.go into `dir`: GOPATH mode, no network, its own build cache.
fn build_driver(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libcni/main.go");
    let bin = dir.join("driver");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .expect("run go (golang-go)");
    assert!(
        out.status.success(),
        "go build of {} against libcni in {GOPATH} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

#[test]
#[cfg_attr(
    any(no_ovs, no_netns, no_cni_plugins, no_libcni),
    ignore = "needs Open vSwitch, root, ip and ping, host-local, Go and libcni's sources"
)]
fn libcni_adds_checks_and_deletes_a_pod() {
    let sb = dataplane_sandbox_for_test();
    let dir = tempfile::tempdir().unwrap();
    let driver = build_driver(dir.path());
    let agent = Agent::start(&sb, dir.path());
    let data = dir.path().join("ipam");
    let conf_file = dir.path().join("pods.conf");
    let conf = net_conf(&agent.control, "10.68.0.0/24", &data);
    std::fs::write(&conf_file, conf.to_string()).unwrap();
    let cache = dir.path().join("cache");
    let ns = Netns::create().unwrap();
    let netns = format!("/run/netns/{}", ns.name());
    let switch = sb
        .switch_netns()
        .expect("the dataplane sandbox runs ovs-vswitchd in a namespace of its own")
        .name()
        .to_string();
    let id = container_id(1);
    // libcni finds podport-cni (the conf's type) and host-local (ipam.type) in CNI_PATH.
    let plugin_dir = plugin_bin().parent().unwrap().display().to_string();
    let cni_path = format!("{plugin_dir}:{CNI_PLUGIN_DIR}");
    let drive = |op: &str| -> Output {
        // Beside ovs-vswitchd, as on a node: the sandbox runs it in a namespace of its own,
        // where the Pods' TAP devices appear.
        let out = Command::new("ip")
            .args(["netns", "exec", &switch])
            .arg(&driver)
            .arg(op)
            .arg(&conf_file)
            .arg(&cache)
            .args([id.as_str(), &netns, "web-1"])
            .env("CNI_PATH", &cni_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "libcni {op} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };

    let added: Value = serde_json::from_slice(&drive("add").stdout).unwrap();
    assert_eq!(added["cniVersion"], "1.0.0");
    assert_eq!(added["interfaces"][0]["name"], "eth0");
    assert_eq!(added["interfaces"][0]["mac"], "0a:58:0a:44:00:02");
    assert_eq!(added["interfaces"][0]["sandbox"], netns.as_str());
    assert_eq!(added["ips"][0]["address"], "10.68.0.2/24");
    let shown = ns.ip(&["addr", "show", "dev", "eth0"]).unwrap();
    assert!(
        shown.contains("link/ether 0a:58:0a:44:00:02") && shown.contains("inet 10.68.0.2/24"),
        "{shown}"
    );
    assert_eq!(agent.ports().len(), 1);

    drive("check");

    drive("del");
    assert!(
        ns.ip(&["link", "show", "dev", "eth0"]).is_err(),
        "eth0 is still there"
    );
    assert_eq!(leases(&data), Vec::<String>::new());
    assert_eq!(agent.ports(), Vec::<Value>::new());
    // Without a cached result now: DEL is still a success.
    drive("del");
}
