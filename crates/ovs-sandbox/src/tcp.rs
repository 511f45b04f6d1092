//! Loopback TCP endpoints for clients that cannot use the sandbox's unix
//! sockets, e.g. a Windows build of an agent running under Wine.
//!
//! OVS picks the ports itself (`ptcp:0:127.0.0.1`): no port is probed and
//! released first, so two sandboxes can never race for one. The bound port
//! is read back from the daemon's log line `...: listening on port N`, the
//! same way OVS's own test suite does it.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use crate::process::POLL_INTERVAL;
use crate::{Sandbox, SandboxError, FAILURE_LOG_LINES, OVSDB_SERVER, OVS_VSWITCHD, READY_TIMEOUT};

/// The loopback TCP endpoints of a sandbox, from [`Sandbox::listen_tcp_loopback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackEndpoints {
    /// `tcp:127.0.0.1:PORT` of `ovsdb-server` (an OVSDB client endpoint).
    pub ovsdb: String,
    /// `tcp:127.0.0.1:PORT` of the bridge's passive controller connection
    /// (a client connecting there is a controller, not a `.mgmt` service
    /// connection).
    pub openflow: String,
}

impl Sandbox {
    /// Makes the sandbox listen on loopback TCP as well as on its unix
    /// sockets, and returns both `tcp:127.0.0.1:PORT` endpoints:
    /// `ovsdb-server` gets the remote `ptcp:0:127.0.0.1` (added at run time
    /// with `ovsdb-server/add-remote`), and the bridge gets the passive
    /// controller `ptcp:0:127.0.0.1` (`ovs-vsctl set-controller`, which
    /// replaces any controller the bridge had; its `fail_mode` is left as
    /// it is). Only 127.0.0.1 is bound.
    ///
    /// The endpoints hold until a daemon restarts: a restarted
    /// `ovsdb-server` forgets the remote, and a restarted `ovs-vswitchd`
    /// binds a new port. Call this again after a restart.
    pub fn listen_tcp_loopback(&self) -> Result<LoopbackEndpoints, SandboxError> {
        let ovsdb_log = self.ctx.path(&format!("{OVSDB_SERVER}.log"));
        let from = file_len(&ovsdb_log)?;
        let mut args = vec![
            OsString::from("--timeout=10"),
            OsString::from("-t"),
            self.ctx
                .path(&format!("{OVSDB_SERVER}.ctl"))
                .into_os_string(),
        ];
        args.extend(["ovsdb-server/add-remote", "ptcp:0:127.0.0.1"].map(OsString::from));
        self.ctx.run(&self.ctx.bins.ovs_appctl, &args)?;
        let ovsdb = self.bound_port(&ovsdb_log, from, OVSDB_SERVER)?;

        let vswitchd_log = self.ctx.path(&format!("{OVS_VSWITCHD}.log"));
        let from = file_len(&vswitchd_log)?;
        // Without --no-wait this returns once ovs-vswitchd applied it.
        self.vsctl(&["set-controller", self.bridge(), "ptcp:0:127.0.0.1"])?;
        let openflow = self.bound_port(&vswitchd_log, from, OVS_VSWITCHD)?;

        let endpoints = LoopbackEndpoints {
            ovsdb: format!("tcp:127.0.0.1:{ovsdb}"),
            openflow: format!("tcp:127.0.0.1:{openflow}"),
        };
        tracing::debug!(?endpoints, "OVS sandbox listening on loopback TCP");
        Ok(endpoints)
    }

    /// Polls `log` past byte `from` for the line a daemon writes once its
    /// `ptcp:0` listener is bound, within [`READY_TIMEOUT`] (the log is
    /// written asynchronously, so the line may trail the command).
    fn bound_port(&self, log: &Path, from: u64, daemon: &str) -> Result<u16, SandboxError> {
        let started = Instant::now();
        loop {
            let text = read_from(log, from)?;
            if let Some(port) = text.lines().find_map(listening_port) {
                return Ok(port);
            }
            if started.elapsed() >= READY_TIMEOUT {
                return Err(SandboxError::NotReady {
                    what: format!("{daemon} logging the port of its ptcp:0:127.0.0.1 listener"),
                    waited: READY_TIMEOUT,
                    log_tail: self.log_tail(FAILURE_LOG_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

fn file_len(path: &Path) -> Result<u64, SandboxError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| SandboxError::io(format!("reading {}", path.display()), e))
}

fn read_from(path: &Path, from: u64) -> Result<String, SandboxError> {
    let context = || format!("reading {}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| SandboxError::io(context(), e))?;
    f.seek(SeekFrom::Start(from))
        .map_err(|e| SandboxError::io(context(), e))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| SandboxError::io(context(), e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The port of a log line such as
/// `...|socket_util|INFO|0:127.0.0.1: listening on port 46331`; only a
/// loopback listener counts.
fn listening_port(line: &str) -> Option<u16> {
    let (head, port) = line.trim_end().rsplit_once(": listening on port ")?;
    if !head.ends_with("127.0.0.1") {
        return None;
    }
    port.parse().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::listening_port;

    #[test]
    fn the_bound_port_is_read_from_the_log_line() {
        let line =
            "2026-12-02T01:13:30.413Z|00003|socket_util|INFO|0:127.0.0.1: listening on port 46331";
        assert_eq!(listening_port(line), Some(46331));
        assert_eq!(listening_port(&format!("{line}\n")), Some(46331));
        assert_eq!(
            listening_port("x|INFO|0:0.0.0.0: listening on port 6640"),
            None
        );
        assert_eq!(
            listening_port("x|INFO|0:127.0.0.1: listening on port 0"),
            None
        );
        assert_eq!(
            listening_port("x|INFO|0:127.0.0.1: listening on port 99999"),
            None
        );
        assert_eq!(listening_port("x|INFO|bridge br-int: added"), None);
    }
}
