//! What podport-cni's integration tests share: the plugin run as a runtime runs it (the
//! environment and the configuration on stdin, within a bound), and a running `podport
//! agent` on a sandbox. Used as `mod support;`.
// Each test file is a crate of its own and uses a part of this.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every wait ends within this, or the test fails saying what it waited for.
pub const BOUND: Duration = Duration::from_secs(60);

/// Where Debian's `containernetworking-plugins` puts host-local.
pub const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";

pub fn plugin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podport-cni"))
}

/// What one run of the plugin gave.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// The run succeeded; its stdout.
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "the plugin failed: {self:?}");
        &self.stdout
    }

    /// The run failed with a CNI error object of code `code`; its `msg`.
    pub fn error(&self, code: u64) -> String {
        assert_eq!(self.status.code(), Some(1), "{self:?}");
        let v = self.json();
        assert_eq!(v["code"], code, "{self:?}");
        assert!(v["cniVersion"].is_string(), "{self:?}");
        v["msg"].as_str().expect("msg").to_string()
    }
}

/// Runs the plugin with exactly the variables `env` (nothing inherited but PATH) and `stdin`.
pub fn run_plugin(env: &[(&str, &str)], stdin: &str) -> Run {
    run_plugin_in(None, env, stdin)
}

/// [`run_plugin`] inside the network namespace `netns` (`ip netns exec`): on the dataplane
/// sandbox, `ovs-vswitchd` runs in a namespace of its own, where its TAP devices appear, so the
/// plugin runs there as it runs beside `ovs-vswitchd` on a node.
pub fn run_plugin_in(netns: Option<&str>, env: &[(&str, &str)], stdin: &str) -> Run {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(plugin_bin());
            c
        }
        None => Command::new(plugin_bin()),
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn podport-cni");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status = wait_exit(&mut child).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("podport-cni {env:?} did not finish within {BOUND:?}")
    });
    let _ = writer.join();
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn wait_exit(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A container id unique to this process and `n`, so that parallel tests (whose host-side
/// device names derive from it) never collide.
pub fn container_id(n: u32) -> String {
    format!("c{}x{n}", std::process::id())
}

/// The network configuration: the agent at `control`, host-local on `subnet` keeping its
/// leases in `data_dir`.
pub fn net_conf(control: &str, subnet: &str, data_dir: &Path) -> Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "pods",
        "type": "podport-cni",
        "control": control,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir},
    })
}

/// The leases host-local holds for the network `pods` in `data_dir` (one file per address).
pub fn leases(data_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data_dir.join("pods"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A running `podport agent`, its log in a file; killed on drop, the log printed when the
/// test failed.
#[cfg(unix)]
pub struct Agent {
    child: Child,
    log: PathBuf,
    pub control: String,
}

#[cfg(unix)]
impl Agent {
    /// The `podport` binary next to this package's binary: `cargo test --workspace` builds
    /// it first; a bare `cargo test -p podport-cni` does not, and then this says so.
    pub fn bin() -> PathBuf {
        let p = plugin_bin().with_file_name("podport");
        assert!(
            p.is_file(),
            "{} is missing: this test runs the agent of the podport package, which \
             `cargo test --workspace` builds first; with a narrower command, run \
             `cargo build -p podport` before it",
            p.display()
        );
        p
    }

    /// Starts the agent on the sandbox's bridge in the Windows order (ports created with a
    /// type OVS cannot open, switched to internal at the attach), ready once a TAP exists
    /// (`live-or-link-down`: the device lives in the Pod's namespace, out of OVS's sight),
    /// and waits until its control socket accepts.
    pub fn start(sb: &podport_ovs_sandbox::Sandbox, dir: &Path) -> Agent {
        let sock = dir.join("ctl.sock");
        let log = dir.join("agent.log");
        let child = Command::new(Agent::bin())
            .args(["agent", "--ovsdb", &sb.ovsdb_endpoint(), "--openflow"])
            .arg(sb.openflow_endpoint())
            .args(["--bridge", sb.bridge(), "--journal"])
            .arg(dir.join("journal"))
            .arg("--control")
            .arg(format!("unix:{}", sock.display()))
            .args(["--initial-type", podport_ovs_sandbox::PENDING_TYPE])
            .args(["--readiness", "live-or-link-down"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("spawn podport agent");
        let mut agent = Agent {
            child,
            log,
            control: format!("unix:{}", sock.display()),
        };
        let deadline = Instant::now() + BOUND;
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("the agent exited ({status}):\n{}", agent.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the agent's socket never accepted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `podport status --json`: the ports the agent tracks.
    pub fn ports(&self) -> Vec<Value> {
        let out = Command::new(Agent::bin())
            .args(["status", "--control", &self.control, "--json"])
            .output()
            .expect("podport status");
        assert!(out.status.success(), "podport status: {out:?}");
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("status JSON")
            .as_array()
            .expect("a list")
            .clone()
    }

    /// Waits until `n` Pods are ready (`podport status --wait-ready`).
    pub fn wait_ready(&self, n: usize) {
        let out = Command::new(Agent::bin())
            .args(["status", "--control", &self.control, "--wait-ready"])
            .arg(n.to_string())
            .args(["--timeout", "30"])
            .output()
            .expect("podport status --wait-ready");
        assert!(
            out.status.success(),
            "{n} Pods not ready: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(unix)]
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- agent log ----\n{}\n-------------", self.log_text());
        }
    }
}
