//! The demo's packet check on the real datapath (`Datapath::Netdev`): every ready Pod's
//! port, a TAP device in the switch's namespace since the engine switched its type to
//! `internal`, is moved into a network namespace of its own and given the Pod's MAC and address (what a CNI plugin
//! does); then each Pod pings its neighbour (Pod i pings Pod i+1, the last one the first),
//! through podport's flows alone: the bridges' default NORMAL flow is deleted first.
//!
//! Linux only (network namespaces); elsewhere [`unavailable`] says so and nothing else runs.
//!
//! The namespaces are deleted when the check ends, also when it is dropped midway (Ctrl-C):
//! each is held by an `Arc` that its blocking tasks share, and `Netns` deletes itself on
//! drop (which destroys the TAP moved into it).

#[cfg(not(target_os = "linux"))]
use crate::scenario::{RunData, RunPlan};
#[cfg(not(target_os = "linux"))]
use podport_ovs_sandbox::Sandbox;

/// What one run's neighbour check found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reach {
    /// `reached` of the run's `pods` Pods got a reply from their neighbour.
    Pinged {
        reached: usize,
        pods: usize,
        /// Why the first Pod that did not reach its neighbour failed.
        first_failure: Option<String>,
    },
    /// Not checked, and why.
    Unchecked(String),
}

impl Reach {
    /// `N/N`, or `-`.
    pub(crate) fn cell(&self) -> String {
        match self {
            Reach::Pinged { reached, pods, .. } => format!("{reached}/{pods}"),
            Reach::Unchecked(_) => "-".into(),
        }
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{check, unavailable};

#[cfg(not(target_os = "linux"))]
pub(crate) fn unavailable() -> Option<String> {
    Some("network namespaces are Linux's".into())
}

#[cfg(not(target_os = "linux"))]
pub(crate) async fn check(_: &Sandbox, _: &[RunPlan], runs: &[RunData]) -> Vec<Reach> {
    vec![Reach::Unchecked("network namespaces are Linux's".into()); runs.len()]
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use podport_ovs_sandbox::{Netns, Sandbox};
    use tokio::task::JoinSet;

    use super::Reach;
    use crate::scenario::{pod_spec, RunData, RunPlan};

    /// Namespace set-ups and pings running at once.
    const AT_ONCE: usize = 4;

    /// Pings per Pod before it counts as not reaching its neighbour (`ping -c 1 -W 1` each).
    const TRIES: u32 = 3;

    /// How long a ready Pod's TAP may take to appear in the switch's namespace.
    const TAP_TIMEOUT: Duration = Duration::from_secs(10);

    /// The Pods' interface inside their namespace.
    const POD_IFNAME: &str = "eth0";

    /// Why the real datapath cannot be used here, in a few words; `None` when it can: root, `ip`
    /// and `ping` on the PATH, the TUN device (the netdev datapath's internal ports are TAPs),
    /// and a network namespace that can actually be created.
    pub(crate) fn unavailable() -> Option<String> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1));
        if euid != Some("0") {
            return Some("not running as root".into());
        }
        for (program, package) in [("ip", "iproute2"), ("ping", "iputils-ping")] {
            if !on_path(program) {
                return Some(format!("{program} ({package}) not found on the PATH"));
            }
        }
        if !Path::new("/dev/net/tun").exists() {
            return Some("no /dev/net/tun (the TUN/TAP driver)".into());
        }
        match Netns::create().and_then(Netns::delete) {
            Ok(()) => None,
            Err(e) => Some(format!(
                "cannot create a network namespace: {}",
                first_line(&e.to_string())
            )),
        }
    }

    fn on_path(program: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
    }

    fn first_line(s: &str) -> &str {
        s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
    }

    /// A Pod set up in its namespace, with its address (no prefix length).
    struct PodNs {
        ns: Netns,
        addr: String,
    }

    /// Moves every ready Pod of each run into a namespace of its own and has each ping its
    /// neighbour; one [`Reach`] per run.
    pub(crate) async fn check(sb: &Sandbox, plans: &[RunPlan], runs: &[RunData]) -> Vec<Reach> {
        let Some(switch) = sb.switch_netns() else {
            let why = "the sandbox has no switch namespace (not the netdev datapath)";
            return vec![Reach::Unchecked(why.into()); runs.len()];
        };
        // 1. The namespaces, a few at a time. Each TAP is moved out of the switch's namespace,
        // which the sandbox owns: scoped threads borrow it.
        let mut pods: Vec<Vec<Result<Arc<PodNs>, String>>> = runs
            .iter()
            .map(|r| vec![Err("not ready".to_string()); r.names.len()])
            .collect();
        let jobs: Vec<(usize, usize)> = runs
            .iter()
            .enumerate()
            .flat_map(|(r, run)| {
                run.ready_at
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.is_some())
                    .map(move |(i, _)| (r, i))
            })
            .collect();
        tokio::task::block_in_place(|| {
            for chunk in jobs.chunks(AT_ONCE) {
                let done: Vec<SetupDone> = std::thread::scope(|s| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|&(r, i)| {
                            let spec = pod_spec(&plans[r], i as u32 + 1);
                            let h = s.spawn(move || {
                                spec.map_err(|e| e.to_string())
                                    .and_then(|spec| setup(switch, spec))
                            });
                            (r, i, h)
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|(r, i, h)| {
                            let result = h
                                .join()
                                .unwrap_or_else(|_| Err("its namespace set-up panicked".into()));
                            (r, i, result)
                        })
                        .collect()
                });
                for (r, i, result) in done {
                    pods[r][i] = result.map(Arc::new);
                }
            }
        });

        // 2. The pings, a few at a time.
        let mut reached: Vec<Vec<Result<(), String>>> = pods
            .iter()
            .map(|p| vec![Err(String::new()); p.len()])
            .collect();
        let mut set = JoinSet::new();
        for (r, run) in pods.iter().enumerate() {
            let n = run.len();
            if n < 2 {
                continue;
            }
            for i in 0..n {
                let (from, to) = match (&run[i], &run[(i + 1) % n]) {
                    (Ok(from), Ok(to)) => (from.clone(), to.addr.clone()),
                    (Err(e), _) => {
                        reached[r][i] = Err(format!("Pod {}: {e}", i + 1));
                        continue;
                    }
                    (_, Err(e)) => {
                        reached[r][i] = Err(format!("its neighbour, Pod {}: {e}", (i + 1) % n + 1));
                        continue;
                    }
                };
                while set.len() >= AT_ONCE {
                    collect_ping(&mut set, &mut reached).await;
                }
                set.spawn_blocking(move || (r, i, ping(&from, &to)));
            }
        }
        while !set.is_empty() {
            collect_ping(&mut set, &mut reached).await;
        }

        // 3. The namespaces go (a blocking `ip netns del` each).
        let _ = tokio::task::spawn_blocking(move || drop(pods)).await;

        reached
            .into_iter()
            .map(|run| {
                if run.len() < 2 {
                    return Reach::Unchecked("one Pod has no neighbour".into());
                }
                Reach::Pinged {
                    reached: run.iter().filter(|r| r.is_ok()).count(),
                    pods: run.len(),
                    first_failure: run.into_iter().find_map(Result::err),
                }
            })
            .collect()
    }

    type SetupDone = (usize, usize, Result<PodNs, String>);

    type PingDone = (usize, usize, Result<(), String>);

    async fn collect_ping(set: &mut JoinSet<PingDone>, reached: &mut [Vec<Result<(), String>>]) {
        match set.join_next().await {
            Some(Ok((r, i, result))) => reached[r][i] = result,
            Some(Err(e)) => tracing::warn!(error = %e, "a ping task failed"),
            None => {}
        }
    }

    /// The Pod's namespace: its TAP (named after the Pod's interface) moved in as `eth0`, with
    /// the PodSpec's MAC and address, up.
    fn setup(switch: &Netns, spec: podport_engine::PodSpec) -> Result<PodNs, String> {
        let cidr = spec.ips.first().ok_or("no address")?.clone();
        let addr = cidr.split('/').next().unwrap_or(&cidr).to_owned();
        switch
            .wait_for_link(&spec.ifname, TAP_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let ns = Netns::create().map_err(|e| e.to_string())?;
        ns.attach(
            switch,
            &spec.ifname,
            POD_IFNAME,
            &spec.mac.to_string(),
            &cidr,
        )
        .map_err(|e| format!("moving {} into {}: {e}", spec.ifname, ns.name()))?;
        Ok(PodNs { ns, addr })
    }

    /// `ping -c 1 -W 1 to` from `from`, up to [`TRIES`] times.
    fn ping(from: &PodNs, to: &str) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..TRIES {
            match from.ns.ping(to, 1) {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => {
                    // `1 packets transmitted, 0 received, 100% packet loss, ...`, or the error.
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    last = stdout
                        .lines()
                        .find(|l| l.contains("transmitted"))
                        .map(str::to_owned)
                        .unwrap_or_else(|| {
                            first_line(&String::from_utf8_lossy(&out.stderr)).to_owned()
                        });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "{} -> {to}: no reply in {TRIES} tries ({last})",
            from.addr
        ))
    }
}
