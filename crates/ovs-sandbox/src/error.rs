//! The one error type of this crate.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while starting or driving a sandbox.
///
/// Every variant's `Display` is self-contained (it includes the underlying
/// IO error or the inner error's text), because test code usually prints an
/// error with `{}` in a panic message and nothing else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// An Open vSwitch binary or the OVSDB schema is not installed.
    #[error(
        "Open vSwitch not found: {what} (looked in {searched}); install it with \
         `apt-get install openvswitch-switch`, or point $OVS_BIN_DIR / $OVS_SCHEMA at it"
    )]
    OvsNotFound {
        /// What is missing (a binary name or "the vswitch schema").
        what: String,
        /// Where it was looked for.
        searched: String,
    },

    /// A command ran but exited unsuccessfully (or was killed by a signal,
    /// e.g. SIGALRM when an OVS tool's `--timeout` expired).
    #[error("`{program} {}` failed ({status}): {}", args.join(" "), stderr.trim_end())]
    CommandFailed {
        /// The program's file name, e.g. `ovs-vsctl`.
        program: String,
        /// Every argument, in order, as passed.
        args: Vec<String>,
        /// How it ended.
        status: ExitStatus,
        /// What it wrote on stderr.
        stderr: String,
    },

    /// A bounded wait ran out: a daemon's socket never accepted a connection,
    /// a daemon did not exit, or a port never got a number.
    #[error("{what}: not done after {waited:?}\n{log_tail}")]
    NotReady {
        /// What was being waited for.
        what: String,
        /// How long it was waited for.
        waited: Duration,
        /// The last lines of both daemons' logs.
        log_tail: String,
    },

    /// A daemon exited while it should have been running.
    #[error("{daemon} exited unexpectedly ({status})\n{log_tail}")]
    DaemonExited {
        /// `ovsdb-server` or `ovs-vswitchd`.
        daemon: &'static str,
        /// How it ended.
        status: ExitStatus,
        /// The last lines of both daemons' logs.
        log_tail: String,
    },

    /// An OVS tool printed something this crate cannot interpret.
    #[error("unexpected output from `{command}`: {output:?}")]
    UnexpectedOutput {
        /// The command line, for the reader.
        command: String,
        /// What it printed.
        output: String,
    },

    /// `kill(2)` failed, e.g. because the daemon is already gone.
    #[error("sending {signal} to {daemon} (pid {pid}) failed: {error}")]
    Signal {
        /// The signal's name, e.g. `SIGSTOP`.
        signal: &'static str,
        /// `ovsdb-server` or `ovs-vswitchd`.
        daemon: &'static str,
        /// The daemon's process id.
        pid: u32,
        /// The OS error.
        error: std::io::Error,
    },

    /// The operation needs unix signals or unix sockets.
    #[error("{what} is not supported on this platform (needs unix)")]
    Unsupported {
        /// The operation.
        what: &'static str,
    },

    /// The options cannot work, e.g. the socket paths would be too long.
    #[error("invalid sandbox options: {reason}")]
    InvalidOptions {
        /// Why.
        reason: String,
    },

    /// Starting the sandbox failed after its directory existed; `log_tail`
    /// holds what the daemons logged so far.
    #[error("starting the OVS sandbox in {} failed: {cause}\n{log_tail}", dir.display())]
    Start {
        /// The sandbox directory (already removed unless `keep_dir` was set).
        dir: PathBuf,
        /// The step that failed.
        cause: Box<SandboxError>,
        /// The last lines of both daemons' logs.
        log_tail: String,
    },

    /// Any other IO error (creating the directory, spawning a process, ...).
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        error: std::io::Error,
    },
}

impl SandboxError {
    /// True when Open vSwitch is simply not installed, so a test may skip.
    pub fn is_ovs_not_found(&self) -> bool {
        matches!(self, SandboxError::OvsNotFound { .. })
    }

    /// True when this error already carries the daemons' log tail, so a
    /// wrapper need not add it a second time.
    pub(crate) fn has_log_tail(&self) -> bool {
        matches!(
            self,
            SandboxError::NotReady { .. }
                | SandboxError::DaemonExited { .. }
                | SandboxError::Start { .. }
        )
    }

    pub(crate) fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            error,
        }
    }
}
