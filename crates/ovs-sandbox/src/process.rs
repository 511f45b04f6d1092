//! Child daemons, signals and socket readiness: the platform-specific parts.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::SandboxError;

/// How often bounded waits poll.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The signals this crate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    Stop,
    Cont,
    Term,
}

impl Sig {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sig::Stop => "SIGSTOP",
            Sig::Cont => "SIGCONT",
            Sig::Term => "SIGTERM",
        }
    }
}

/// Sends `sig` to `pid`.
#[cfg(unix)]
pub(crate) fn send_signal(daemon: &'static str, pid: u32, sig: Sig) -> Result<(), SandboxError> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let signal = match sig {
        Sig::Stop => Signal::SIGSTOP,
        Sig::Cont => Signal::SIGCONT,
        Sig::Term => Signal::SIGTERM,
    };
    let err = |error: std::io::Error| SandboxError::Signal {
        signal: sig.name(),
        daemon,
        pid,
        error,
    };
    // A pid above i32::MAX cannot come from the kernel; refuse rather than
    // wrap into a negative number, which kill(2) reads as a process group.
    let raw = i32::try_from(pid).map_err(|_| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "pid out of range",
        ))
    })?;
    tracing::debug!(daemon, pid, signal = sig.name(), "sending signal");
    kill(Pid::from_raw(raw), signal).map_err(|e| err(std::io::Error::from(e)))
}

/// Signals do not exist here.
#[cfg(not(unix))]
pub(crate) fn send_signal(daemon: &'static str, pid: u32, sig: Sig) -> Result<(), SandboxError> {
    tracing::debug!(
        daemon,
        pid,
        signal = sig.name(),
        "signals are not supported here"
    );
    Err(SandboxError::Unsupported {
        what: match sig {
            Sig::Stop => "freezing a daemon (SIGSTOP)",
            Sig::Cont => "thawing a daemon (SIGCONT)",
            Sig::Term => "terminating a daemon gracefully (SIGTERM)",
        },
    })
}

/// True when something listens on the unix socket at `path`.
///
/// The connection is closed at once; OVS logs it as a dropped connection,
/// which is harmless.
#[cfg(unix)]
pub(crate) fn socket_accepts(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Without unix sockets in `std`, the best available sign is the file.
#[cfg(not(unix))]
pub(crate) fn socket_accepts(path: &Path) -> bool {
    path.exists()
}

/// One OVS daemon run as a child process, with the arguments needed to start
/// it again.
#[derive(Debug)]
pub(crate) struct Daemon {
    pub(crate) name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    /// Where the daemon's stdout and stderr go: messages written before the
    /// log file is open (bad arguments, a locked pidfile) land only there.
    console: PathBuf,
    child: Child,
}

impl Daemon {
    /// Spawns `program args` with `env` and its console appended to `console`.
    pub(crate) fn spawn(
        name: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
        env: Vec<(&'static str, OsString)>,
        console: PathBuf,
    ) -> Result<Daemon, SandboxError> {
        let child = spawn_child(name, &program, &args, &env, &console)?;
        Ok(Daemon {
            name,
            program,
            args,
            env,
            console,
            child,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited (and been reaped).
    pub(crate) fn exited(&mut self) -> Result<Option<ExitStatus>, SandboxError> {
        self.child
            .try_wait()
            .map_err(|e| SandboxError::io(format!("checking whether {} is alive", self.name), e))
    }

    /// Stops the daemon: SIGCONT (it may be frozen), SIGTERM, a wait bounded
    /// by `grace`, then SIGKILL; always reaps it. Signals go to this child's
    /// pid only, never to a name: other sandboxes run beside this one.
    pub(crate) fn stop(&mut self, grace: Duration) -> Result<ExitStatus, SandboxError> {
        if let Some(status) = self.exited()? {
            return Ok(status);
        }
        let pid = self.pid();
        let polite = send_signal(self.name, pid, Sig::Cont)
            .and_then(|()| send_signal(self.name, pid, Sig::Term));
        if polite.is_ok() {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Some(status) = self.exited()? {
                    tracing::debug!(daemon = self.name, pid, %status, "daemon exited");
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            tracing::warn!(
                daemon = self.name,
                pid,
                ?grace,
                "no exit after SIGTERM, killing"
            );
        }
        // SIGKILL via std also works where signals do not exist.
        if let Err(e) = self.child.kill() {
            // Fails only when the child was already reaped or has exited.
            tracing::debug!(daemon = self.name, pid, error = %e, "kill failed");
        }
        self.child
            .wait()
            .map_err(|e| SandboxError::io(format!("waiting for {} to exit", self.name), e))
    }

    /// Starts the daemon again with the same program, arguments and
    /// environment. Call [`Daemon::stop`] first.
    pub(crate) fn respawn(&mut self) -> Result<(), SandboxError> {
        self.child = spawn_child(
            self.name,
            &self.program,
            &self.args,
            &self.env,
            &self.console,
        )?;
        Ok(())
    }
}

fn spawn_child(
    name: &'static str,
    program: &Path,
    args: &[OsString],
    env: &[(&'static str, OsString)],
    console: &Path,
) -> Result<Child, SandboxError> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(console)
            .map_err(|e| SandboxError::io(format!("opening {}", console.display()), e))
    };
    let stdout = open()?;
    let stderr = open()?;
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| SandboxError::io(format!("spawning {}", program.display()), e))?;
    tracing::debug!(daemon = name, pid = child.id(), ?args, "spawned daemon");
    Ok(child)
}
