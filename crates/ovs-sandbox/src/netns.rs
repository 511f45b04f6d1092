//! Pods as network namespaces, for the dataplane mode ([`crate::Datapath::Netdev`]): Linux
//! only, as root, with iproute2's `ip` and iputils' `ping`.
//!
//! In that mode `ovs-vswitchd` runs in a network namespace of its own (the sandbox's
//! [`crate::Sandbox::switch_netns`]): the userspace datapath creates host devices with fixed
//! names (`ovs-netdev`, one TAP per bridge and per `internal` port), which would collide
//! between sandboxes running side by side. Pod devices therefore move from the switch's
//! namespace into a Pod's ([`Netns::attach`]), and veth pairs are made in the switch's
//! namespace ([`Veth::create`]).
//!
//! Contract:
//! - Every namespace gets a name from [`crate::unique_name`], so parallel tests (and test
//!   processes) never collide.
//! - Dropping a [`Netns`] deletes the namespace (also while a test panics), which destroys
//!   every virtual device in it (a TAP moved in, a veth end); dropping a [`Veth`] deletes the
//!   pair; dropping a [`PingRun`] kills its `ping`.
//! - Every wait is bounded and fails with [`SandboxError::NotReady`] saying what it waited for.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::process::POLL_INTERVAL;
use crate::{unique_name, SandboxError};

/// Runs `program args` to its end; its output whatever its exit status.
fn output(program: &str, args: &[&str]) -> Result<Output, SandboxError> {
    tracing::debug!(program, ?args, "running");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SandboxError::io(format!("running {program} {}", args.join(" ")), e))
}

/// Runs `program args`, which must succeed; its stdout.
fn checked(program: &str, args: &[&str]) -> Result<String, SandboxError> {
    let out = output(program, args)?;
    if !out.status.success() {
        return Err(SandboxError::CommandFailed {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip args...` in the host's namespace, which must succeed; its stdout.
pub fn host_ip(args: &[&str]) -> Result<String, SandboxError> {
    checked("ip", args)
}

/// Polls `done` every 20 ms until it returns true, for at most `timeout`.
fn poll(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, SandboxError>,
) -> Result<(), SandboxError> {
    let started = Instant::now();
    loop {
        if done()? {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(SandboxError::NotReady {
                what: what.to_owned(),
                waited: timeout,
                log_tail: String::new(),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A network namespace standing for a Pod; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    deleted: bool,
}

impl Netns {
    /// Creates a namespace with a unique name (`ppns<pid>x<n>`) and its loopback up.
    pub fn create() -> Result<Netns, SandboxError> {
        Netns::create_named(unique_name("ppns"))
    }

    pub(crate) fn create_named(name: String) -> Result<Netns, SandboxError> {
        host_ip(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            deleted: false,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        tracing::debug!(netns = %ns.name, "network namespace created");
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <name> args...`, which must succeed; its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, SandboxError> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        host_ip(&full)
    }

    /// Runs `program args...` inside the namespace (`ip netns exec`) to its end; its output
    /// whatever its exit status.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, SandboxError> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        output("ip", &full)
    }

    /// Starts `program args...` inside the namespace with stdout piped, stderr null. `ip
    /// netns exec` execs the program, so the child's pid is the program's.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Result<Child, SandboxError> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| SandboxError::io(format!("spawning {program} in {}", self.name), e))
    }

    /// True when the namespace has a network device `dev`.
    pub fn link_exists(&self, dev: &str) -> Result<bool, SandboxError> {
        let out = output("ip", &["-n", &self.name, "link", "show", "dev", dev])?;
        Ok(out.status.success())
    }

    /// Waits until the namespace has a network device `dev` (a TAP `ovs-vswitchd` creates
    /// for an `internal` port, say), for at most `timeout`.
    pub fn wait_for_link(&self, dev: &str, timeout: Duration) -> Result<(), SandboxError> {
        poll(
            &format!("network device {dev} appearing in {}", self.name),
            timeout,
            || self.link_exists(dev),
        )
    }

    /// Moves the device `dev` of namespace `from` (the sandbox's switch namespace, say) into
    /// this one and renames it `ifname` (e.g. `eth0`): what a CNI plugin does with a Pod's
    /// interface.
    pub fn adopt(&self, from: &Netns, dev: &str, ifname: &str) -> Result<(), SandboxError> {
        from.ip(&["link", "set", "dev", dev, "netns", &self.name])?;
        if dev != ifname {
            self.ip(&["link", "set", "dev", dev, "name", ifname])?;
        }
        Ok(())
    }

    /// Sets the MAC address of `dev`.
    pub fn set_mac(&self, dev: &str, mac: &str) -> Result<(), SandboxError> {
        self.ip(&["link", "set", "dev", dev, "address", mac])
            .map(drop)
    }

    /// Adds the IPv4 address `cidr` (e.g. `10.1.0.1/16`) to `dev`.
    pub fn add_address(&self, dev: &str, cidr: &str) -> Result<(), SandboxError> {
        self.ip(&["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// Removes the address `cidr` from `dev`.
    pub fn del_address(&self, dev: &str, cidr: &str) -> Result<(), SandboxError> {
        self.ip(&["addr", "del", cidr, "dev", dev]).map(drop)
    }

    /// Brings `dev` up.
    pub fn link_up(&self, dev: &str) -> Result<(), SandboxError> {
        self.ip(&["link", "set", "dev", dev, "up"]).map(drop)
    }

    /// Routes everything not on a connected subnet out of `dev` (no gateway: the Pod's flows
    /// deliver by destination address).
    pub fn set_default_route(&self, dev: &str) -> Result<(), SandboxError> {
        self.ip(&["route", "replace", "default", "dev", dev])
            .map(drop)
    }

    /// Configures `dev` as a Pod's interface: MAC, IPv4 address, up, default route. IPv6 is
    /// switched off on it first, so only the test's traffic leaves it (no router
    /// solicitations or duplicate address detection).
    pub fn configure(&self, dev: &str, mac: &str, cidr: &str) -> Result<(), SandboxError> {
        let sysctl = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
        let out = self.exec("sysctl", &["-q", "-w", &sysctl])?;
        if !out.status.success() {
            // Only noise is at stake: a kernel without IPv6 has nothing to switch off.
            tracing::debug!(netns = %self.name, dev, "could not switch IPv6 off");
        }
        self.set_mac(dev, mac)?;
        self.add_address(dev, cidr)?;
        self.link_up(dev)?;
        self.set_default_route(dev)
    }

    /// [`Netns::adopt`] then [`Netns::configure`].
    pub fn attach(
        &self,
        from: &Netns,
        dev: &str,
        ifname: &str,
        mac: &str,
        cidr: &str,
    ) -> Result<(), SandboxError> {
        self.adopt(from, dev, ifname)?;
        self.configure(ifname, mac, cidr)
    }

    /// `ping -n -c count -i 0.2 -W 1 dst` inside the namespace; its output whatever the
    /// result (success means at least one reply).
    pub fn ping(&self, dst: &str, count: u32) -> Result<Output, SandboxError> {
        self.exec(
            "ping",
            &["-n", "-c", &count.to_string(), "-i", "0.2", "-W", "1", dst],
        )
    }

    /// A ping in the background: one echo request every `interval` (below 0.2 s needs
    /// root), each reply's arrival time recorded; `count` requests, then it ends by itself
    /// after waiting for the last replies ([`PingRun::finish`]), or without a count until
    /// [`PingRun::stop`] (whose last request may still be in flight, so counts as lost).
    pub fn start_ping(
        &self,
        dst: &str,
        interval: Duration,
        count: Option<u32>,
    ) -> Result<PingRun, SandboxError> {
        let interval_arg = format!("{:.3}", interval.as_secs_f64());
        let count_arg = count.map(|c| c.to_string());
        let mut args = vec!["-n", "-D", "-i", &interval_arg];
        if let Some(c) = &count_arg {
            args.extend(["-c", c.as_str(), "-W", "1"]);
        }
        args.push(dst);
        let mut child = self.spawn("ping", &args)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let replies = Arc::new(Mutex::new(Vec::new()));
        let r = replies.clone();
        let reader = std::thread::spawn(move || {
            let mut other = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match parse_reply(&line) {
                    Some(reply) => r.lock().unwrap_or_else(|p| p.into_inner()).push(reply),
                    None => {
                        other.push_str(&line);
                        other.push('\n');
                    }
                }
            }
            other
        });
        Ok(PingRun {
            child,
            replies,
            reader: Some(reader),
            interval,
            dst: dst.to_owned(),
        })
    }

    /// The received-packets counter of `dev` in the namespace.
    pub fn rx_packets(&self, dev: &str) -> Result<u64, SandboxError> {
        let path = format!("/sys/class/net/{dev}/statistics/rx_packets");
        let out = self.exec("cat", &[&path])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse()
            .map_err(|_| SandboxError::UnexpectedOutput {
                command: format!("cat {path} in {}", self.name),
                output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
            })
    }

    /// The neighbour entry's state for `addr` on `dev` (`REACHABLE`, `STALE`, `FAILED`,
    /// ...), `None` when there is no entry.
    pub fn neighbour_state(&self, dev: &str, addr: &str) -> Result<Option<String>, SandboxError> {
        let out = self.ip(&["neigh", "show", "to", addr, "dev", dev])?;
        Ok(out
            .split_whitespace()
            .last()
            .filter(|s| s.chars().all(|c| c.is_ascii_uppercase()))
            .map(str::to_owned))
    }

    /// Deletes the namespace now, reporting a failure (drop only logs it).
    pub fn delete(mut self) -> Result<(), SandboxError> {
        self.deleted = true;
        host_ip(&["netns", "del", &self.name]).map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(e) = host_ip(&["netns", "del", &self.name]) {
                tracing::warn!(netns = %self.name, error = %e, "deleting the network namespace failed");
            }
        }
    }
}

/// A veth pair created in a namespace (the sandbox's switch namespace); deleted on drop
/// (deleting either end, or the namespace holding one, deletes both).
#[derive(Debug)]
pub struct Veth {
    netns: String,
    host: String,
    peer: String,
}

impl Veth {
    /// Creates the pair `host`/`peer` in `netns` and brings `host` up (that end stays, to be
    /// added to a bridge as a `system` port); move `peer` with [`Netns::adopt`].
    pub fn create(netns: &Netns, host: &str, peer: &str) -> Result<Veth, SandboxError> {
        netns.ip(&[
            "link", "add", "dev", host, "type", "veth", "peer", "name", peer,
        ])?;
        let veth = Veth {
            netns: netns.name().to_owned(),
            host: host.to_owned(),
            peer: peer.to_owned(),
        };
        netns.ip(&["link", "set", "dev", host, "up"])?;
        Ok(veth)
    }

    /// The end that stays in the namespace it was created in.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The other end (until it was moved or renamed).
    pub fn peer(&self) -> &str {
        &self.peer
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Gone already when its namespace (or the peer's) was deleted first.
        let args = ["-n", &self.netns, "link", "del", "dev", &self.host];
        if let Ok(out) = output("ip", &args) {
            tracing::debug!(dev = %self.host, status = %out.status, "veth pair deleted");
        }
    }
}

/// One echo reply: its sequence number and when it arrived (`ping -D`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    /// `icmp_seq`.
    pub seq: u64,
    /// Arrival, seconds since the Unix epoch.
    pub at: f64,
}

/// `[1700000000.123456] 64 bytes from 10.1.0.2: icmp_seq=1 ttl=64 time=0.2 ms`.
fn parse_reply(line: &str) -> Option<Reply> {
    let at = line.strip_prefix('[')?.split(']').next()?.parse().ok()?;
    if !line.contains(" bytes from ") {
        return None;
    }
    let seq = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("icmp_seq="))?
        .parse()
        .ok()?;
    Some(Reply { seq, at })
}

/// `N packets transmitted, M received, ...`: `(N, M)`.
fn parse_summary(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.contains(" packets transmitted, "))?;
    let mut numbers = line
        .split(',')
        .map(|part| part.split_whitespace().next().and_then(|n| n.parse().ok()));
    Some((numbers.next()??, numbers.next()??))
}

/// A running `ping` (see [`Netns::start_ping`]); killed on drop.
#[derive(Debug)]
pub struct PingRun {
    child: Child,
    replies: Arc<Mutex<Vec<Reply>>>,
    reader: Option<JoinHandle<String>>,
    interval: Duration,
    dst: String,
}

/// What a [`PingRun`] saw, from `ping`'s own summary and its reply timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct PingReport {
    /// Echo requests sent.
    pub transmitted: u64,
    /// Echo replies received.
    pub received: u64,
    /// The interval between requests.
    pub interval: Duration,
    /// The longest time between two consecutive replies: the outage plus one interval.
    pub longest_gap: Duration,
    /// The replies, in arrival order.
    pub replies: Vec<Reply>,
}

impl PingReport {
    /// Requests without a reply.
    pub fn lost(&self) -> u64 {
        self.transmitted.saturating_sub(self.received)
    }

    /// How long no reply came beyond the normal interval: [`PingReport::longest_gap`] less
    /// one interval (zero when no reply was missed).
    pub fn outage(&self) -> Duration {
        self.longest_gap.saturating_sub(self.interval)
    }
}

impl std::fmt::Display for PingReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, {} received, {} lost, every {:?}; longest gap between replies {:.1} ms (outage {:.1} ms)",
            self.transmitted,
            self.received,
            self.lost(),
            self.interval,
            self.longest_gap.as_secs_f64() * 1e3,
            self.outage().as_secs_f64() * 1e3,
        )
    }
}

impl PingRun {
    /// Replies so far.
    pub fn received(&self) -> usize {
        self.replies.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits until at least `n` replies came, for at most `timeout`.
    pub fn wait_received(&self, n: usize, timeout: Duration) -> Result<(), SandboxError> {
        poll(
            &format!("{n} ping replies from {}", self.dst),
            timeout,
            || Ok(self.received() >= n),
        )
    }

    /// Waits for a reply that arrived after `after`, for at most `timeout`; returns when the
    /// first such reply arrived, measured from `after`.
    pub fn wait_reply_after(
        &self,
        after: SystemTime,
        timeout: Duration,
    ) -> Result<Duration, SandboxError> {
        let after = after
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut first = None;
        poll(
            &format!("a ping reply from {} after the mark", self.dst),
            timeout,
            || {
                first = self
                    .replies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .find(|r| r.at > after)
                    .map(|r| r.at);
                Ok(first.is_some())
            },
        )?;
        Ok(Duration::from_secs_f64(first.unwrap_or(after) - after))
    }

    /// Stops the ping with SIGINT (so it prints its summary) and reports.
    pub fn stop(self) -> Result<PingReport, SandboxError> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;

        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        kill(Pid::from_raw(pid), Signal::SIGINT).map_err(|e| SandboxError::Signal {
            signal: "SIGINT",
            daemon: "ping",
            pid: self.child.id(),
            error: e.into(),
        })?;
        self.finish(Duration::from_secs(10))
    }

    /// Waits for a ping started with a count to end by itself, for at most `timeout`
    /// (then kills it and fails), and reports.
    pub fn finish(mut self, timeout: Duration) -> Result<PingReport, SandboxError> {
        let child = &mut self.child;
        poll(&format!("ping {} ending", self.dst), timeout, || {
            child
                .try_wait()
                .map(|s| s.is_some())
                .map_err(|e| SandboxError::io("waiting for ping", e))
        })?;
        let other = self
            .reader
            .take()
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default();
        let (transmitted, received) =
            parse_summary(&other).ok_or_else(|| SandboxError::UnexpectedOutput {
                command: format!("ping {}", self.dst),
                output: other.clone(),
            })?;
        let mut replies =
            std::mem::take(&mut *self.replies.lock().unwrap_or_else(|p| p.into_inner()));
        replies.sort_by(|a, b| a.at.total_cmp(&b.at));
        let longest_gap = replies
            .windows(2)
            .map(|w| w[1].at - w[0].at)
            .fold(0.0, f64::max);
        Ok(PingReport {
            transmitted,
            received,
            interval: self.interval,
            longest_gap: Duration::from_secs_f64(longest_gap.max(0.0)),
            replies,
        })
    }
}

impl Drop for PingRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_lines_parse() {
        assert_eq!(
            parse_reply(
                "[1796186728.187336] 64 bytes from 127.0.0.1: icmp_seq=12 ttl=64 time=0.577 ms"
            ),
            Some(Reply {
                seq: 12,
                at: 1796186728.187336
            })
        );
        assert_eq!(
            parse_reply("PING 10.1.0.2 (10.1.0.2) 56(84) bytes of data."),
            None
        );
        assert_eq!(
            parse_reply("[1796186728.1] From 10.1.0.1 icmp_seq=3 Destination Host Unreachable"),
            None
        );
        let summary = "\n--- 10.1.0.2 ping statistics ---\n\
                       500 packets transmitted, 497 received, +3 errors, 0.6% packet loss, time 5000ms\n";
        assert_eq!(parse_summary(summary), Some((500, 497)));
        assert_eq!(parse_summary("nothing"), None);
    }
}
