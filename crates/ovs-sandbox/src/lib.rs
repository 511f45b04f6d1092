//! A private, userspace Open vSwitch for tests and demos.
//!
//! [`Sandbox::start`] creates a short temporary directory (`$TMPDIR/pp-XXXXXX`),
//! creates an OVSDB database there, starts `ovsdb-server` and `ovs-vswitchd`
//! as child processes of the calling process (no `--detach`), and adds one
//! bridge with `datapath_type=dummy`. `ovs-vswitchd` runs with
//! `--enable-dummy=override`, so every port is a userspace dummy device and
//! gets an OpenFlow port number without any kernel module or privilege.
//!
//! The dataplane mode ([`SandboxOptions::dataplane`], [`Datapath::Netdev`]; Linux, root)
//! instead runs `ovs-vswitchd` without the dummy override, in a network namespace of its own,
//! on a `datapath_type=netdev` bridge: real packets between Pods that are network namespaces
//! (`Netns`, `Veth`, `PingRun`; see the `netns` module's contract).
//!
//! Contract:
//! - Every file of the sandbox (database, sockets, pidfiles, logs) lives in
//!   [`Sandbox::dir`]; every OVS tool run through the sandbox gets
//!   `OVS_RUNDIR`, `OVS_LOGDIR`, `OVS_DBDIR` and `OVS_SYSCONFDIR` set to it, so
//!   sandboxes never see each other or a system OVS. Many can run side by
//!   side (cargo runs tests in parallel).
//! - Every wait is bounded: readiness is polled (a socket that accepts a
//!   connection, a `ovs-vsctl` change that `ovs-vswitchd` has applied), and
//!   the OVS tools get `--timeout=10` unless the caller passes its own
//!   `--timeout`, which then wins because OVS tools take the last one.
//! - Dropping a [`Sandbox`] (also while a test panics) sends SIGCONT, stops
//!   both daemons by pid (never by name), reaps them and removes the
//!   directory unless [`SandboxOptions::keep_dir`] is set. When the drop
//!   happens during a panic, the daemons' log tails are printed to stderr.
//! - A process killed with SIGKILL cannot run `Drop`; its daemons then
//!   outlive it and must be killed by hand (their pids are in `*.pid` in the
//!   directory).
//!
//! ```no_run
//! # fn main() -> Result<(), podport_ovs_sandbox::SandboxError> {
//! use podport_ovs_sandbox::Sandbox;
//!
//! let sb = Sandbox::start()?;
//! sb.add_port("p1")?; // returns once ovs-vswitchd gave it a number
//! assert!(sb.ofport("p1")?.is_some());
//! let frozen = sb.freeze_vswitchd()?; // a slow switch, for real
//! sb.vsctl(&["--no-wait", "add-port", "br-int", "p2"])?;
//! frozen.thaw();
//! sb.wait_for_ofport("p2", std::time::Duration::from_secs(10))?;
//! # Ok(())
//! # }
//! ```
//!
//! In tests, prefer [`sandbox_for_test`], with the test marked
//! `#[cfg_attr(no_ovs, ignore = "...")]` so that it is reported ignored where OVS is missing.
//!
//! Signals (freeze, thaw, graceful restart) need unix; elsewhere they return
//! [`SandboxError::Unsupported`]. The crate compiles on Windows so that the
//! workspace does, but a sandbox is only expected to run on Linux.

#![warn(missing_docs)]

mod error;
mod find;
#[cfg(target_os = "linux")]
mod netns;
mod process;
mod tcp;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use error::SandboxError;
pub use find::{find_ovs, OvsBinaries, DEFAULT_SCHEMA};
#[cfg(target_os = "linux")]
pub use netns::{host_ip, Netns, PingReport, PingRun, Reply, Veth};
pub use tcp::LoopbackEndpoints;

use process::{send_signal, socket_accepts, Daemon, Sig, POLL_INTERVAL};

/// An Interface type OVS cannot open: a port created with it gets no OpenFlow number
/// (`ofport` -1) until its type is changed to one OVS can open. Tests and the demo create Pod
/// ports with it to emulate a Windows node, where the Pod's vNIC appears only after the port
/// was added.
pub const PENDING_TYPE: &str = "podport-pending";

/// How long a daemon may take to become ready after it was started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a daemon may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The `--timeout` (seconds) given to every OVS tool unless the caller
/// passes one: a tool talking to a frozen or dead daemon must not hang a test.
const TOOL_TIMEOUT: &str = "--timeout=10";

/// The longest path a unix socket can have (`sun_path` is 108 bytes on Linux,
/// including the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// How many log lines a failure message carries per file.
const FAILURE_LOG_LINES: usize = 30;

const OVSDB_SERVER: &str = "ovsdb-server";
const OVS_VSWITCHD: &str = "ovs-vswitchd";

/// Which datapath the sandbox's `ovs-vswitchd` and bridges use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Datapath {
    /// `--enable-dummy=override` and `datapath_type=dummy`: every port is a userspace dummy
    /// device, no kernel device, no privilege; packets only through `ofproto/trace`.
    #[default]
    Dummy,
    /// No dummy override and `datapath_type=netdev`, OVS's userspace datapath: real packets.
    /// Linux and root only. `ovs-vswitchd` runs in a network namespace of its own
    /// (`Sandbox::switch_netns`), where the datapath creates its devices: `ovs-netdev`,
    /// one TAP per bridge and one per `internal` port (which `Netns::adopt` moves into a
    /// Pod's namespace); a `system` port opens a device of that namespace (a veth end made
    /// with `Veth::create`). Dropping the sandbox deletes its bridges, then that namespace.
    Netdev,
}

impl Datapath {
    /// The bridges' `datapath_type`.
    pub fn bridge_type(self) -> &'static str {
        match self {
            Datapath::Dummy => "dummy",
            Datapath::Netdev => "netdev",
        }
    }
}

/// How to start a [`Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// The bridge to create; default `br-int`.
    pub bridge: String,
    /// The bridge's `protocols` column, e.g. `"OpenFlow10,OpenFlow15"`;
    /// `None` keeps OVS's default.
    pub protocols: Option<String>,
    /// Keep the directory (logs, database) after the sandbox is dropped, to
    /// look at it by hand. The daemons are stopped either way.
    pub keep_dir: bool,
    /// The datapath; default [`Datapath::Dummy`].
    pub datapath: Datapath,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            bridge: "br-int".to_owned(),
            protocols: None,
            keep_dir: false,
            datapath: Datapath::Dummy,
        }
    }
}

impl SandboxOptions {
    /// The real-datapath mode: [`Datapath::Netdev`], with a bridge name unique on this host
    /// (see [`unique_name`]) to tell sandboxes apart in logs.
    pub fn dataplane() -> Self {
        SandboxOptions {
            bridge: unique_name("ppbr"),
            datapath: Datapath::Netdev,
            ..SandboxOptions::default()
        }
    }
}

/// A name no other sandbox, test or test process on this host uses at the same time:
/// `prefix`, this process id and a per-process counter, in hex, at most 15 bytes (the
/// longest Linux interface name), e.g. `ppbr1a2bx3`. For bridges, Pod interfaces and
/// network namespaces of the dataplane mode, whose devices live in the host's kernel.
///
/// # Panics
/// When `prefix` is longer than 5 bytes (the result could exceed 15).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    assert!(
        prefix.len() <= 5,
        "unique_name prefix {prefix:?} is longer than 5 bytes"
    );
    // pid_max is at most 2^22 (6 hex digits); 3 hex digits of counter leave room for 4096
    // names per process before the counter wraps, far beyond what a test run uses.
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 0x1000;
    format!("{prefix}{:x}x{n:x}", std::process::id())
}

/// What every OVS command of one sandbox needs: where the binaries are, the
/// directory and the environment pointing OVS at it.
#[derive(Debug, Clone)]
struct Ctx {
    dir: PathBuf,
    bins: OvsBinaries,
    env: Vec<(&'static str, OsString)>,
    bridge: String,
    datapath: Datapath,
    /// The network namespace `ovs-vswitchd` runs in ([`Datapath::Netdev`] only).
    switch_netns: Option<String>,
}

impl Ctx {
    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn path_arg(&self, prefix: &str, file: &str) -> OsString {
        let mut arg = OsString::from(prefix);
        arg.push(self.path(file));
        arg
    }

    /// Runs `program args` to completion with the sandbox environment and
    /// returns its stdout.
    fn run(&self, program: &Path, args: &[OsString]) -> Result<String, SandboxError> {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        tracing::debug!(program = %name, ?args, "running");
        let out = Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| SandboxError::io(format!("running {}", program.display()), e))?;
        if !out.status.success() {
            return Err(SandboxError::CommandFailed {
                program: name,
                args: args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn vsctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        let mut full = vec![
            self.path_arg("--db=unix:", "db.sock"),
            OsString::from(TOOL_TIMEOUT),
        ];
        full.extend(args.iter().map(OsString::from));
        self.run(&self.bins.ovs_vsctl, &full)
    }

    /// Adds a bridge on the sandbox's datapath, with its OpenFlow `protocols` when given.
    /// Without --no-wait this returns once ovs-vswitchd created the bridge.
    fn add_bridge(&self, bridge: &str, protocols: Option<&str>) -> Result<(), SandboxError> {
        let datapath_type = format!("datapath_type={}", self.datapath.bridge_type());
        let mut args = vec![
            "add-br",
            bridge,
            "--",
            "set",
            "bridge",
            bridge,
            &datapath_type,
        ];
        let protocols = protocols.map(|p| format!("protocols={p}"));
        if let Some(p) = &protocols {
            args.push(p);
        }
        self.vsctl(&args).map(drop)
    }

    fn ofctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        let mut full = vec![OsString::from(TOOL_TIMEOUT)];
        full.extend(args.iter().map(OsString::from));
        self.run(&self.bins.ovs_ofctl, &full)
    }

    fn appctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        let mut full = vec![
            OsString::from(TOOL_TIMEOUT),
            OsString::from("-t"),
            self.path(&format!("{OVS_VSWITCHD}.ctl")).into_os_string(),
        ];
        full.extend(args.iter().map(OsString::from));
        self.run(&self.bins.ovs_appctl, &full)
    }

    /// Deletes every bridge, so that `ovs-vswitchd` removes the host TAP devices it created
    /// for them and their internal ports (it makes them persistent: they would outlive it).
    /// Failures are logged: this runs on drop. SIGCONT first, in case the switch is frozen.
    fn delete_bridges(&self) {
        let result = self.vsctl(&["--timeout=5", "list-br"]).and_then(|out| {
            let mut args = vec!["--timeout=5"];
            for bridge in out.lines().map(str::trim).filter(|b| !b.is_empty()) {
                args.extend(["--", "--if-exists", "del-br", bridge]);
            }
            if args.len() > 1 {
                self.vsctl(&args)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "deleting the sandbox's bridges failed");
        }
    }

    /// The last `lines` lines of every log and console file of the sandbox.
    fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for file in [
            format!("{OVSDB_SERVER}.log"),
            format!("{OVSDB_SERVER}.console"),
            format!("{OVS_VSWITCHD}.log"),
            format!("{OVS_VSWITCHD}.console"),
        ] {
            let path = self.path(&file);
            let text = match std::fs::read(&path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => continue,
            };
            // The console only ever repeats "opened log file" unless the
            // daemon failed before its log was open; skip that line.
            let all: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !(file.ends_with(".console") && l.contains("|vlog|INFO|opened log file"))
                })
                .collect();
            if all.iter().all(|l| l.trim().is_empty()) {
                continue;
            }
            let start = all.len().saturating_sub(lines);
            out.push_str(&format!("==> {} <==\n", path.display()));
            for line in &all[start..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        if out.is_empty() {
            out.push_str("(no daemon log written yet)\n");
        }
        out
    }

    /// Polls `ready` until it returns true, failing early when `daemon`
    /// exits and with [`SandboxError::NotReady`] after `timeout`.
    fn wait_until(
        &self,
        daemon: &mut Daemon,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), SandboxError> {
        let started = Instant::now();
        loop {
            if ready() {
                tracing::debug!(what, elapsed = ?started.elapsed(), "ready");
                return Ok(());
            }
            if let Some(status) = daemon.exited()? {
                return Err(SandboxError::DaemonExited {
                    daemon: daemon.name,
                    status,
                    log_tail: self.log_tail(FAILURE_LOG_LINES),
                });
            }
            if started.elapsed() >= timeout {
                return Err(SandboxError::NotReady {
                    what: what.to_owned(),
                    waited: timeout,
                    log_tail: self.log_tail(FAILURE_LOG_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn wait_socket(&self, daemon: &mut Daemon, file: &str) -> Result<(), SandboxError> {
        let path = self.path(file);
        let what = format!(
            "{} accepting connections on {}",
            daemon.name,
            path.display()
        );
        self.wait_until(daemon, &what, READY_TIMEOUT, || socket_accepts(&path))
    }

    fn spawn_ovsdb_server(&self) -> Result<Daemon, SandboxError> {
        let args = vec![
            OsString::from("--no-chdir"),
            self.path_arg("--pidfile=", &format!("{OVSDB_SERVER}.pid")),
            self.path_arg("--log-file=", &format!("{OVSDB_SERVER}.log")),
            self.path_arg("--unixctl=", &format!("{OVSDB_SERVER}.ctl")),
            OsString::from("-vconsole:off"),
            // Test noise must not reach the host's syslog.
            OsString::from("-vsyslog:off"),
            self.path_arg("--remote=punix:", "db.sock"),
            self.path("conf.db").into_os_string(),
        ];
        Daemon::spawn(
            OVSDB_SERVER,
            self.bins.ovsdb_server.clone(),
            args,
            self.env.clone(),
            self.path(&format!("{OVSDB_SERVER}.console")),
        )
    }

    fn spawn_vswitchd(&self) -> Result<Daemon, SandboxError> {
        let mut args = vec![
            OsString::from("--no-chdir"),
            self.path_arg("--pidfile=", &format!("{OVS_VSWITCHD}.pid")),
            self.path_arg("--log-file=", &format!("{OVS_VSWITCHD}.log")),
            self.path_arg("--unixctl=", &format!("{OVS_VSWITCHD}.ctl")),
            OsString::from("-vconsole:off"),
            OsString::from("-vsyslog:off"),
        ];
        if self.datapath == Datapath::Dummy {
            // Every netdev type becomes a userspace dummy: ports get numbers
            // without kernel devices or privileges.
            args.push(OsString::from("--enable-dummy=override"));
        }
        args.push(self.path_arg("unix:", "db.sock"));
        let (program, args) = match &self.switch_netns {
            // `ip netns exec` execs the daemon: the child's pid is the daemon's.
            Some(ns) => {
                let mut wrapped = vec![
                    OsString::from("netns"),
                    OsString::from("exec"),
                    OsString::from(ns),
                    self.bins.ovs_vswitchd.clone().into_os_string(),
                ];
                wrapped.extend(args);
                (PathBuf::from("ip"), wrapped)
            }
            None => (self.bins.ovs_vswitchd.clone(), args),
        };
        Daemon::spawn(
            OVS_VSWITCHD,
            program,
            args,
            self.env.clone(),
            self.path(&format!("{OVS_VSWITCHD}.console")),
        )
    }

    /// Waits until `ovs-vswitchd` is connected to the database and has
    /// applied the current configuration, and the bridge's OpenFlow
    /// management socket accepts connections.
    fn wait_vswitchd_synced(&self, vswitchd: &mut Daemon, seq: u64) -> Result<(), SandboxError> {
        self.wait_socket(vswitchd, &format!("{OVS_VSWITCHD}.ctl"))?;
        // ovs-vsctl without --no-wait returns only once ovs-vswitchd has
        // applied the change (cur_cfg caught up with next_cfg), but only
        // when the transaction really changes something: a no-op command
        // returns at once. Hence a fresh value every time.
        self.vsctl(&[
            "set",
            "open_vswitch",
            ".",
            &format!("external_ids:podport-sandbox-sync={seq}"),
        ])?;
        self.wait_socket(vswitchd, &format!("{}.mgmt", self.bridge))
    }
}

/// A running private Open vSwitch: one `ovsdb-server`, one `ovs-vswitchd`,
/// one bridge. See the crate documentation for the contract.
///
/// `Sandbox` is `Send + Sync`; restarts lock the daemon they restart, so a
/// concurrent `*_pid()` call waits for the restart to finish.
#[derive(Debug)]
pub struct Sandbox {
    ctx: Ctx,
    opts: SandboxOptions,
    /// `None` only while dropping.
    tempdir: Option<tempfile::TempDir>,
    ovsdb_server: Mutex<Daemon>,
    vswitchd: Mutex<Daemon>,
    /// Source of fresh values for the readiness no-op (see
    /// `Ctx::wait_vswitchd_synced`).
    sync_seq: AtomicU64,
    /// Deleted after the daemons stopped (fields drop after `Drop::drop`).
    #[cfg(target_os = "linux")]
    switch_netns: Option<Netns>,
}

/// A sandbox being started: stops whatever it started when dropped, so every
/// early return of [`Sandbox::start_with`] cleans up.
struct Starting {
    ctx: Ctx,
    keep_dir: bool,
    tempdir: Option<tempfile::TempDir>,
    ovsdb_server: Option<Daemon>,
    vswitchd: Option<Daemon>,
    #[cfg(target_os = "linux")]
    switch_netns: Option<Netns>,
}

impl Starting {
    fn run(&mut self, opts: &SandboxOptions) -> Result<(), SandboxError> {
        let ctx = &self.ctx;
        ctx.run(
            &ctx.bins.ovsdb_tool,
            &[
                OsString::from("create"),
                ctx.path("conf.db").into_os_string(),
                ctx.bins.schema.clone().into_os_string(),
            ],
        )?;

        let ovsdb = self.ovsdb_server.insert(ctx.spawn_ovsdb_server()?);
        ctx.wait_socket(ovsdb, "db.sock")?;
        ctx.vsctl(&["--no-wait", "init"])?;

        let vswitchd = self.vswitchd.insert(ctx.spawn_vswitchd()?);
        ctx.wait_socket(vswitchd, &format!("{OVS_VSWITCHD}.ctl"))?;
        let bridge = opts.bridge.as_str();
        ctx.add_bridge(bridge, opts.protocols.as_deref())?;
        ctx.wait_socket(vswitchd, &format!("{bridge}.mgmt"))
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if self.ctx.datapath == Datapath::Netdev
            && matches!(self.vswitchd.as_mut().map(|d| d.exited()), Some(Ok(None)))
        {
            self.ctx.delete_bridges();
        }
        stop_quietly(self.vswitchd.as_mut());
        stop_quietly(self.ovsdb_server.as_mut());
        remove_dir(self.tempdir.take(), self.keep_dir);
    }
}

fn stop_quietly(daemon: Option<&mut Daemon>) {
    if let Some(d) = daemon {
        if let Err(e) = d.stop(STOP_GRACE) {
            tracing::warn!(daemon = d.name, pid = d.pid(), error = %e, "stopping daemon failed");
        }
    }
}

fn remove_dir(tempdir: Option<tempfile::TempDir>, keep: bool) {
    let Some(tempdir) = tempdir else { return };
    if keep {
        let path = tempdir.keep();
        tracing::info!(dir = %path.display(), "keeping sandbox directory");
    } else {
        let path = tempdir.path().to_path_buf();
        if let Err(e) = tempdir.close() {
            tracing::warn!(dir = %path.display(), error = %e, "removing sandbox directory failed");
        }
    }
}

fn lock(m: &Mutex<Daemon>) -> MutexGuard<'_, Daemon> {
    // A panic while holding the lock leaves the Daemon consistent (its
    // fields are replaced whole), so poisoning carries no information here.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn validate(opts: &SandboxOptions) -> Result<(), SandboxError> {
    let bridge = &opts.bridge;
    if bridge.is_empty()
        || bridge
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(SandboxError::InvalidOptions {
            reason: format!("bridge name {bridge:?} must be non-empty, without '/' or spaces"),
        });
    }
    Ok(())
}

impl Sandbox {
    /// Starts a sandbox with [`SandboxOptions::default`] (bridge `br-int`).
    pub fn start() -> Result<Sandbox, SandboxError> {
        Sandbox::start_with(SandboxOptions::default())
    }

    /// Starts a sandbox; returns once the bridge's OpenFlow management
    /// socket accepts connections.
    pub fn start_with(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        validate(&opts)?;
        let bins = find_ovs()?;
        // Short on purpose: unix socket paths are limited to 107 bytes.
        let tempdir = tempfile::Builder::new()
            .prefix("pp-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| SandboxError::io("creating the sandbox directory", e))?;
        let dir = tempdir.path().to_path_buf();
        let longest = dir
            .join(format!("{}.snoop", opts.bridge))
            .as_os_str()
            .len()
            .max(dir.join(format!("{OVS_VSWITCHD}.ctl")).as_os_str().len());
        if longest > MAX_SOCKET_PATH {
            return Err(SandboxError::InvalidOptions {
                reason: format!(
                    "socket paths under {} would be {longest} bytes, over the unix limit of \
                     {MAX_SOCKET_PATH}; use a shorter $TMPDIR or bridge name",
                    dir.display()
                ),
            });
        }
        let env = ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"]
            .into_iter()
            .map(|k| (k, dir.clone().into_os_string()))
            .collect();
        #[cfg(target_os = "linux")]
        let switch_netns = match opts.datapath {
            Datapath::Netdev => Some(Netns::create_named(unique_name("ppsw"))?),
            Datapath::Dummy => None,
        };
        #[cfg(not(target_os = "linux"))]
        if opts.datapath == Datapath::Netdev {
            return Err(SandboxError::Unsupported {
                what: "the netdev datapath (needs Linux network namespaces)",
            });
        }
        let ctx = Ctx {
            dir: dir.clone(),
            bins,
            env,
            bridge: opts.bridge.clone(),
            datapath: opts.datapath,
            #[cfg(target_os = "linux")]
            switch_netns: switch_netns.as_ref().map(|ns| ns.name().to_owned()),
            #[cfg(not(target_os = "linux"))]
            switch_netns: None,
        };
        tracing::debug!(dir = %dir.display(), ?opts, "starting OVS sandbox");

        let mut starting = Starting {
            ctx,
            keep_dir: opts.keep_dir,
            tempdir: Some(tempdir),
            ovsdb_server: None,
            vswitchd: None,
            #[cfg(target_os = "linux")]
            switch_netns,
        };
        if let Err(cause) = starting.run(&opts) {
            let log_tail = if cause.has_log_tail() {
                String::new()
            } else {
                starting.ctx.log_tail(FAILURE_LOG_LINES)
            };
            drop(starting);
            return Err(SandboxError::Start {
                dir,
                cause: Box::new(cause),
                log_tail,
            });
        }
        let (Some(ovsdb_server), Some(vswitchd)) =
            (starting.ovsdb_server.take(), starting.vswitchd.take())
        else {
            // `run` returns Ok only after starting both.
            unreachable!("sandbox started without its daemons");
        };
        let sandbox = Sandbox {
            ctx: starting.ctx.clone(),
            opts,
            tempdir: starting.tempdir.take(),
            ovsdb_server: Mutex::new(ovsdb_server),
            vswitchd: Mutex::new(vswitchd),
            sync_seq: AtomicU64::new(0),
            #[cfg(target_os = "linux")]
            switch_netns: starting.switch_netns.take(),
        };
        tracing::debug!(
            dir = %dir.display(),
            ovsdb_server = sandbox.ovsdb_server_pid(),
            vswitchd = sandbox.vswitchd_pid(),
            "OVS sandbox ready"
        );
        Ok(sandbox)
    }

    /// The sandbox directory: database, sockets, pidfiles, logs.
    pub fn dir(&self) -> &Path {
        &self.ctx.dir
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.ctx.bridge
    }

    /// The sandbox's datapath.
    pub fn datapath(&self) -> Datapath {
        self.ctx.datapath
    }

    /// The network namespace `ovs-vswitchd` runs in, where the datapath creates its devices
    /// (TAPs of `internal` ports): [`Datapath::Netdev`] only.
    #[cfg(target_os = "linux")]
    pub fn switch_netns(&self) -> Option<&Netns> {
        self.switch_netns.as_ref()
    }

    /// The options the sandbox was started with.
    pub fn options(&self) -> &SandboxOptions {
        &self.opts
    }

    /// The binaries the sandbox runs.
    pub fn binaries(&self) -> &OvsBinaries {
        &self.ctx.bins
    }

    /// The OVSDB endpoint, `unix:<dir>/db.sock`.
    pub fn ovsdb_endpoint(&self) -> String {
        format!("unix:{}", self.ctx.path("db.sock").display())
    }

    /// The path of the OVSDB unix socket.
    pub fn ovsdb_socket(&self) -> PathBuf {
        self.ctx.path("db.sock")
    }

    /// The bridge's OpenFlow endpoint, `unix:<dir>/<bridge>.mgmt`: a
    /// "service" connection that needs no `set-controller`.
    pub fn openflow_endpoint(&self) -> String {
        self.openflow_endpoint_of(&self.ctx.bridge)
    }

    /// The OpenFlow endpoint of any bridge of the sandbox (one added with
    /// [`Sandbox::add_bridge`], say), `unix:<dir>/<bridge>.mgmt`.
    pub fn openflow_endpoint_of(&self, bridge: &str) -> String {
        format!(
            "unix:{}",
            self.ctx.path(&format!("{bridge}.mgmt")).display()
        )
    }

    /// Adds another bridge on the sandbox's datapath, as the sandbox's own;
    /// returns once `ovs-vswitchd` created it.
    pub fn add_bridge(&self, bridge: &str) -> Result<(), SandboxError> {
        self.ctx.add_bridge(bridge, None)
    }

    /// The path of the bridge's OpenFlow management unix socket.
    pub fn openflow_socket(&self) -> PathBuf {
        self.ctx.path(&format!("{}.mgmt", self.ctx.bridge))
    }

    /// Runs `ovs-vsctl --db=unix:<dir>/db.sock --timeout=10 args...` and
    /// returns its stdout. A `--timeout=N` in `args` overrides the default.
    /// Without `--no-wait`, a change returns only once `ovs-vswitchd` has
    /// applied it.
    pub fn vsctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        self.ctx.vsctl(args)
    }

    /// Runs `ovs-ofctl --timeout=10 args...` with `OVS_RUNDIR` set, so a
    /// bridge name such as `br-int` resolves to its management socket.
    pub fn ofctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        self.ctx.ofctl(args)
    }

    /// Runs `ovs-appctl --timeout=10 -t <dir>/ovs-vswitchd.ctl args...`.
    pub fn appctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        self.ctx.appctl(args)
    }

    /// The bridge's flows as `ovs-ofctl -O <of_version> --no-stats
    /// dump-flows <bridge>` prints them, one trimmed line per flow, header
    /// lines dropped. `of_version` is e.g. `"OpenFlow13"`; it must be one the
    /// bridge's `protocols` allow, or the connection fails.
    pub fn dump_flows(&self, of_version: &str) -> Result<Vec<String>, SandboxError> {
        let out = self.ofctl(&["-O", of_version, "--no-stats", "dump-flows", self.bridge()])?;
        Ok(flow_lines(&out))
    }

    /// How long ago each flow of the bridge under `cookie` (`VALUE/MASK`, as
    /// `ovs-ofctl` reads it) was installed, in seconds: the `duration=` of
    /// `ovs-ofctl -O OpenFlow15 dump-flows`.
    pub fn flow_durations(&self, cookie: &str) -> Result<Vec<f64>, SandboxError> {
        let out = self.ofctl(&[
            "-O",
            "OpenFlow15",
            "dump-flows",
            self.bridge(),
            &format!("cookie={cookie}"),
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find("duration=")? + "duration=".len()..];
                rest[..rest.find('s')?].parse().ok()
            })
            .collect())
    }

    /// `ovs-appctl ofproto/trace <bridge> <flow>`: what the installed flows
    /// do with such a packet.
    pub fn trace(&self, flow: &str) -> Result<String, SandboxError> {
        self.appctl(&["ofproto/trace", self.bridge(), flow])
    }

    /// Adds a port of type `dummy` to the bridge; returns once
    /// `ovs-vswitchd` has applied it (so the port has its `ofport`), or
    /// fails after the 10 s tool timeout.
    pub fn add_port(&self, name: &str) -> Result<(), SandboxError> {
        let bridge = self.bridge();
        self.vsctl(&[
            "add-port",
            bridge,
            name,
            "--",
            "set",
            "interface",
            name,
            "type=dummy",
        ])
        .map(drop)
    }

    /// Removes a port from the bridge; waits for `ovs-vswitchd` like
    /// [`Sandbox::add_port`].
    pub fn del_port(&self, name: &str) -> Result<(), SandboxError> {
        self.vsctl(&["del-port", self.bridge(), name]).map(drop)
    }

    /// Sets an interface's `type` column (e.g. `internal`, `dummy`); with
    /// `--enable-dummy=override` every type is a dummy device underneath,
    /// but OVS still replaces the port (DELETE, ADD, MODIFY PortStatus).
    pub fn set_interface_type(&self, name: &str, ty: &str) -> Result<(), SandboxError> {
        self.vsctl(&["set", "interface", name, &format!("type={ty}")])
            .map(drop)
    }

    /// The interface's `ofport` column: `None` while it is empty (`[]`, not
    /// assigned yet), `Some(-1)` when OVS could not open the device.
    pub fn ofport(&self, name: &str) -> Result<Option<i64>, SandboxError> {
        let out = self.vsctl(&["get", "interface", name, "ofport"])?;
        parse_ofport(&out).ok_or_else(|| SandboxError::UnexpectedOutput {
            command: format!("ovs-vsctl get interface {name} ofport"),
            output: out,
        })
    }

    /// Polls [`Sandbox::ofport`] every 20 ms until the column is set (to a
    /// port number or -1), for at most `timeout`.
    pub fn wait_for_ofport(&self, name: &str, timeout: Duration) -> Result<i64, SandboxError> {
        let started = Instant::now();
        loop {
            if let Some(n) = self.ofport(name)? {
                return Ok(n);
            }
            if started.elapsed() >= timeout {
                return Err(SandboxError::NotReady {
                    what: format!("interface {name} getting an ofport"),
                    waited: timeout,
                    log_tail: self.log_tail(FAILURE_LOG_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Freezes `ovs-vswitchd` with SIGSTOP, to reproduce a switch that is
    /// slow to apply changes. OVSDB keeps working; OpenFlow connections and
    /// any `ovs-vsctl` without `--no-wait` stall (until their timeout). The
    /// returned guard sends SIGCONT when dropped or [`Frozen::thaw`]ed.
    pub fn freeze_vswitchd(&self) -> Result<Frozen<'_>, SandboxError> {
        let pid = self.vswitchd_pid();
        send_signal(OVS_VSWITCHD, pid, Sig::Stop)?;
        Ok(Frozen {
            sandbox: self,
            pid,
            thawed: false,
        })
    }

    /// Restarts `ovs-vswitchd` with the same arguments: SIGTERM, a bounded
    /// wait for it to exit (then SIGKILL), start, and wait until it has
    /// applied the configuration and the bridge's management socket accepts
    /// connections again. Every OpenFlow connection and flow is lost; ports
    /// stay in OVSDB but may get new numbers. The bridge must still exist.
    pub fn restart_vswitchd(&self) -> Result<(), SandboxError> {
        let mut d = lock(&self.vswitchd);
        let old = d.pid();
        let status = d.stop(STOP_GRACE)?;
        tracing::debug!(old_pid = old, %status, "ovs-vswitchd stopped for restart");
        d.respawn()?;
        let seq = self.sync_seq.fetch_add(1, Ordering::Relaxed);
        self.ctx.wait_vswitchd_synced(&mut d, seq)?;
        tracing::debug!(old_pid = old, new_pid = d.pid(), "ovs-vswitchd restarted");
        Ok(())
    }

    /// Restarts `ovsdb-server` on the same database file, which keeps all
    /// data. Returns once the database socket accepts connections and
    /// `ovs-vswitchd` has reconnected and applied a change (it reconnects
    /// after a backoff of about a second).
    pub fn restart_ovsdb_server(&self) -> Result<(), SandboxError> {
        {
            let mut d = lock(&self.ovsdb_server);
            let old = d.pid();
            let status = d.stop(STOP_GRACE)?;
            tracing::debug!(old_pid = old, %status, "ovsdb-server stopped for restart");
            d.respawn()?;
            self.ctx.wait_socket(&mut d, "db.sock")?;
            tracing::debug!(old_pid = old, new_pid = d.pid(), "ovsdb-server restarted");
        }
        let seq = self.sync_seq.fetch_add(1, Ordering::Relaxed);
        let mut v = lock(&self.vswitchd);
        self.ctx.wait_vswitchd_synced(&mut v, seq)
    }

    /// The current `ovs-vswitchd` process id (changes on restart).
    pub fn vswitchd_pid(&self) -> u32 {
        lock(&self.vswitchd).pid()
    }

    /// The current `ovsdb-server` process id (changes on restart).
    pub fn ovsdb_server_pid(&self) -> u32 {
        lock(&self.ovsdb_server).pid()
    }

    /// The last `lines` lines of both daemons' log files (and of their
    /// console output, when they wrote any), for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.ctx.log_tail(lines)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "OVS sandbox {} dropped during a panic; daemon logs:\n{}",
                self.ctx.dir.display(),
                self.ctx.log_tail(FAILURE_LOG_LINES)
            );
        }
        // `stop` sends SIGCONT first, in case a `Frozen` guard was leaked.
        let vswitchd = self
            .vswitchd
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.ctx.datapath == Datapath::Netdev && matches!(vswitchd.exited(), Ok(None)) {
            // A leaked `Frozen` guard must not make the deletion wait for its timeout.
            let _ = send_signal(OVS_VSWITCHD, vswitchd.pid(), Sig::Cont);
            self.ctx.delete_bridges();
        }
        stop_quietly(Some(vswitchd));
        let ovsdb = self
            .ovsdb_server
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        stop_quietly(Some(ovsdb));
        remove_dir(self.tempdir.take(), self.opts.keep_dir);
    }
}

/// `ovs-vswitchd` frozen by [`Sandbox::freeze_vswitchd`]; SIGCONT is sent
/// when this guard is dropped, so a panicking test cannot leave it stopped.
#[must_use = "the switch is thawed as soon as this guard is dropped"]
#[derive(Debug)]
pub struct Frozen<'a> {
    sandbox: &'a Sandbox,
    pid: u32,
    thawed: bool,
}

impl Frozen<'_> {
    /// The pid of the frozen process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The sandbox whose switch is frozen.
    pub fn sandbox(&self) -> &Sandbox {
        self.sandbox
    }

    /// Lets the switch run again; a failure is logged (use
    /// [`Frozen::try_thaw`] to see it).
    pub fn thaw(self) {
        if let Err(e) = self.try_thaw() {
            tracing::warn!(error = %e, "thawing ovs-vswitchd failed");
        }
    }

    /// Lets the switch run again, reporting a failed SIGCONT.
    pub fn try_thaw(mut self) -> Result<(), SandboxError> {
        self.thawed = true;
        self.cont()
    }

    fn cont(&self) -> Result<(), SandboxError> {
        // After a restart the frozen process is gone (the restart sent it
        // SIGCONT before SIGTERM) and its pid may already belong to an
        // unrelated process: only signal the sandbox's current switch.
        if self.sandbox.vswitchd_pid() != self.pid {
            tracing::debug!(
                pid = self.pid,
                "frozen ovs-vswitchd was restarted meanwhile"
            );
            return Ok(());
        }
        send_signal(OVS_VSWITCHD, self.pid, Sig::Cont)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if !self.thawed {
            if let Err(e) = self.cont() {
                tracing::warn!(error = %e, "thawing ovs-vswitchd failed");
            }
        }
    }
}

/// One trimmed line per flow, without headers such as `OFPST_FLOW reply
/// (OF1.3) (xid=0x2):` (which `--no-stats` already omits in OVS 3.1, but
/// older versions print).
fn flow_lines(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !((l.starts_with("OFPST_") || l.starts_with("NXST_")) && l.contains(" reply")))
        .map(str::to_owned)
        .collect()
}

/// `[]` is `Some(None)`, a number is `Some(Some(n))`, anything else `None`.
fn parse_ofport(out: &str) -> Option<Option<i64>> {
    match out.trim() {
        "[]" => Some(None),
        s => s.parse().ok().map(Some),
    }
}

// `in_ci()`, shared with the build scripts.
include!("../build/ci.rs");

/// [`sandbox_for_test_with`] with [`SandboxOptions::dataplane`]: the real datapath, for
/// tests that send packets between network namespaces (`Netns`, Linux only).
///
/// A test that calls this must carry
/// `#[cfg_attr(any(no_ovs, no_netns), ignore = "...")]`: `build/netns_cfg.rs` sets
/// `no_netns` where network namespaces cannot be used (not Linux, not root, `ip` or `ping`
/// missing) and `CI` is unset.
#[track_caller]
pub fn dataplane_sandbox_for_test() -> Sandbox {
    sandbox_for_test_with(SandboxOptions::dataplane())
}

/// [`sandbox_for_test_with`] with default options.
#[track_caller]
pub fn sandbox_for_test() -> Sandbox {
    sandbox_for_test_with(SandboxOptions::default())
}

/// Starts a sandbox for a test, or panics with the reason (the error carries the daemons'
/// log tail).
///
/// A test that calls this must carry
/// `#[cfg_attr(no_ovs, ignore = "needs Open vSwitch, which this target or machine lacks")]`:
/// the build script of its crate (`build/ovs_cfg.rs`) sets `no_ovs` where OVS cannot be
/// found and `CI` is unset, or on a target without it, so the test is reported ignored there
/// and never passes without having run. Without OVS and with `CI` set it fails here.
#[track_caller]
pub fn sandbox_for_test_with(opts: SandboxOptions) -> Sandbox {
    match Sandbox::start_with(opts) {
        Ok(sandbox) => sandbox,
        Err(e) if e.is_ovs_not_found() && !in_ci() => panic!(
            "{e} (Open vSwitch was found when this test was built: rebuild to have it ignored, or install OVS)"
        ),
        Err(e) if e.is_ovs_not_found() => {
            panic!("{e} (CI is set, so this test fails instead of being ignored)")
        }
        Err(e) => panic!("starting the OVS sandbox failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_lines_drop_headers_and_blank_lines() {
        let out = "OFPST_FLOW reply (OF1.3) (xid=0x2):\n priority=10,ip actions=drop\n\n priority=0 actions=NORMAL\n";
        assert_eq!(
            flow_lines(out),
            vec!["priority=10,ip actions=drop", "priority=0 actions=NORMAL"]
        );
        assert_eq!(
            flow_lines("NXST_FLOW reply (xid=0x4):\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    #[cfg_attr(
        no_ovs,
        ignore = "needs Open vSwitch, which this target or machine lacks"
    )]
    fn sandbox_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sandbox>();
        assert_send_sync::<SandboxError>();
    }

    #[test]
    fn ofport_parsing() {
        assert_eq!(parse_ofport("[]\n"), Some(None));
        assert_eq!(parse_ofport("7\n"), Some(Some(7)));
        assert_eq!(parse_ofport("-1\n"), Some(Some(-1)));
        assert_eq!(parse_ofport("what\n"), None);
    }

    #[test]
    #[cfg_attr(
        no_ovs,
        ignore = "needs Open vSwitch, which this target or machine lacks"
    )]
    fn bridge_names_are_validated() {
        for bad in ["", "a b", "a/b"] {
            let opts = SandboxOptions {
                bridge: bad.to_owned(),
                ..SandboxOptions::default()
            };
            assert!(matches!(
                validate(&opts),
                Err(SandboxError::InvalidOptions { .. })
            ));
        }
        assert!(validate(&SandboxOptions::default()).is_ok());
    }
}
