//! `podport agent`: the engine behind a control socket, until SIGTERM or Ctrl-C.
//!
//! Options come from flags and, with `--config FILE`, from a TOML file whose keys are named
//! like the flags (`not_ready_every` or `not-ready-every`); a flag wins over the file. The
//! agent starts the engine first (so a journal held by another agent fails fast, before any
//! socket is taken), then listens on the control socket and, with `--metrics`, serves
//! metrics (`/metrics`) and health probes (`/healthz`, `/readyz`) over HTTP on a loopback
//! address (see [`crate::http`]). Shutdown closes the sockets, ends every connection, then stops the engine, which
//! drains and flushes the journal. A watchdog asks the engine every 2 s whether it runs;
//! when it has died (its actor panicked, its thread ended, or it left a request unanswered
//! for 30 s) the agent shuts down the same way and exits with status 1, so that the service
//! manager restarts it instead of an agent answering "the engine has stopped" for ever.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use podport_engine::{Engine, EngineConfig, Readiness, Strategy};
use podport_transport::Endpoint;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::control::ControlServer;
use crate::health::engine_died;

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// OVSDB endpoint: unix:PATH (e.g. unix:/var/run/openvswitch/db.sock), tcp:HOST:PORT or
    /// npipe:NAME. Required (flag or config file).
    #[arg(long, value_name = "ENDPOINT")]
    ovsdb: Option<String>,
    /// OpenFlow endpoint of the bridge (OVS's service socket is unix:<rundir>/<bridge>.mgmt).
    /// Required.
    #[arg(long, value_name = "ENDPOINT")]
    openflow: Option<String>,
    /// The integration bridge the Pods' ports go on. Required.
    #[arg(long, value_name = "NAME")]
    bridge: Option<String>,
    /// The journal directory (created if missing; one agent at a time). Required.
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// Where to listen for `podport cni`/`status` and `podport-journal --control`: unix:PATH
    /// (created with mode 0600; only a stale socket at PATH is replaced), npipe:NAME or
    /// tcp:HOST:PORT (loopback only, see --control-allow-remote). Required.
    #[arg(long, value_name = "ENDPOINT")]
    control: Option<String>,
    /// Let a tcp: control endpoint listen on an address other machines can reach. The
    /// control protocol has no authentication: anyone who reaches it can add and delete Pod
    /// ports. Logged as a warning.
    #[arg(long)]
    control_allow_remote: bool,
    /// Close a control connection that sends no complete request for this long (e.g. 10s,
    /// 500ms); a subscribe or journal stream is not idle while it streams [default: 10s].
    #[arg(long, value_name = "DURATION")]
    control_idle_timeout: Option<String>,
    /// How to learn that a port is usable: portstatus (react to PortStatus, never give up) or
    /// ovsdb-wait (the legacy OVSDB wait with --wait-timeout) [default: portstatus].
    #[arg(long, value_name = "STRATEGY")]
    strategy: Option<String>,
    /// With --strategy ovsdb-wait: how long one OVSDB wait may take (also the retry interval)
    /// [default: 5s].
    #[arg(long, value_name = "DURATION")]
    wait_timeout: Option<String>,
    /// When a port counts as ready: live, live-or-link-down (Windows OVS) or allocated
    /// [default: live].
    #[arg(long, value_name = "POLICY")]
    readiness: Option<String>,
    /// Report a port that is not ready yet after this long, and again at every interval
    /// (e.g. 500ms, 30s, 2m) [default: 30s].
    #[arg(long, value_name = "DURATION")]
    not_ready_every: Option<String>,
    /// The Interface type a port is created with, before its vNIC exists [default: empty].
    #[arg(long, value_name = "TYPE")]
    initial_type: Option<String>,
    /// Memory the journal's store may use to cache its pages (sled's cache_capacity), e.g.
    /// 4MiB, 512KiB, 64MiB [default: 4MiB]. The engine reads the journal once at start and
    /// then only appends, so a small cache costs little; see docs/operations.md.
    #[arg(long, value_name = "SIZE")]
    journal_cache: Option<String>,
    /// Serve metrics (GET /metrics: OpenMetrics or Prometheus text, per Accept) and health
    /// probes (GET /healthz, /readyz) over HTTP on this loopback address (e.g.
    /// 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Read options from this TOML file (keys named like the flags); flags win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Every option a config file may set, by its canonical (underscore) name.
const KEYS: [&str; 14] = [
    "ovsdb",
    "openflow",
    "bridge",
    "journal",
    "control",
    "control_allow_remote",
    "control_idle_timeout",
    "strategy",
    "wait_timeout",
    "readiness",
    "not_ready_every",
    "initial_type",
    "journal_cache",
    "metrics",
];

/// The options that are switches: `true` or `false` in a config file.
const BOOL_KEYS: [&str; 1] = ["control_allow_remote"];

/// The options, from a flag or the file, each with where it came from.
struct Merged {
    values: BTreeMap<&'static str, (String, String)>,
}

impl Merged {
    fn build(args: &Args) -> Result<Merged> {
        let mut values = BTreeMap::new();
        if let Some(file) = &args.config {
            for (key, value) in read_config(file)? {
                values.insert(key, (value, format!("{key} in {}", file.display())));
            }
        }
        let flags: [(&'static str, Option<String>); 14] = [
            ("ovsdb", args.ovsdb.clone()),
            ("openflow", args.openflow.clone()),
            ("bridge", args.bridge.clone()),
            (
                "journal",
                args.journal.as_ref().map(|p| p.display().to_string()),
            ),
            ("control", args.control.clone()),
            (
                "control_allow_remote",
                args.control_allow_remote.then(|| "true".to_string()),
            ),
            ("control_idle_timeout", args.control_idle_timeout.clone()),
            ("strategy", args.strategy.clone()),
            ("wait_timeout", args.wait_timeout.clone()),
            ("readiness", args.readiness.clone()),
            ("not_ready_every", args.not_ready_every.clone()),
            ("initial_type", args.initial_type.clone()),
            ("journal_cache", args.journal_cache.clone()),
            ("metrics", args.metrics.clone()),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                values.insert(key, (v, format!("--{}", key.replace('_', "-"))));
            }
        }
        Ok(Merged { values })
    }

    /// The value and where it came from (for messages).
    fn get(&self, key: &str) -> Option<(&str, &str)> {
        self.values
            .get(key)
            .map(|(v, from)| (v.as_str(), from.as_str()))
    }

    fn required(&self, key: &str) -> Result<(&str, &str)> {
        self.get(key).ok_or_else(|| {
            anyhow!(
                "missing required option --{} (give the flag, or `{key} = \"...\"` in the --config file)",
                key.replace('_', "-")
            )
        })
    }

    /// A parsed option: `Ok(None)` when absent, an error naming the option when bad.
    fn parsed<T>(&self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some((v, from)) => parse(v).map(Some).map_err(|e| anyhow!("{from}: {e}")),
        }
    }

    fn parsed_required<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T> {
        let (v, from) = self.required(key)?;
        parse(v).map_err(|e| anyhow!("{from}: {e}"))
    }
}

/// The `--config` file's options, keys normalised to their underscore names.
fn read_config(file: &Path) -> Result<Vec<(&'static str, String)>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the config file {}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("the config file {} is not valid TOML", file.display()))?;
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (raw, value) in table {
        let name = raw.replace('-', "_");
        let Some(key) = KEYS.iter().copied().find(|k| *k == name) else {
            bail!(
                "{}: unknown option {raw:?} (known: {})",
                file.display(),
                KEYS.join(", ")
            );
        };
        if out.iter().any(|(k, _)| *k == key) {
            bail!("{}: option {key} is given twice", file.display());
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Boolean(b) if BOOL_KEYS.contains(&key) => b.to_string(),
            other => bail!(
                "{}: {raw} must be a string (e.g. {raw} = \"...\"), not {}",
                file.display(),
                other.type_str()
            ),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// A duration such as `500ms`, `5s`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!(
            "bad duration {s:?}: {why}; expected a number and a unit (ms, s, m or h), e.g. 500ms, 5s, 2m"
        )
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(bad("no number"));
    }
    let secs_per_unit = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(bad("no unit")),
        other => return Err(bad(&format!("unknown unit {other:?}"))),
    };
    let n: f64 = number.parse().map_err(|_| bad("not a number"))?;
    Duration::try_from_secs_f64(n * secs_per_unit).map_err(|_| bad("out of range"))
}

/// A size in bytes such as `4MiB`, `512KiB`, `1GiB`, `65536` (bytes); `MB`, `KB`, `GB` and
/// `k`, `M`, `G` are read as their binary units too.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!("bad size {s:?}: {why}; expected a number and a unit, e.g. 4MiB, 512KiB, 1GiB")
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(bad("no number"));
    }
    let n: u64 = number.parse().map_err(|_| bad("not a number"))?;
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "k" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        other => return Err(bad(&format!("unknown unit {other:?}"))),
    };
    n.checked_mul(unit_bytes).ok_or_else(|| bad("out of range"))
}

/// A duration that must be more than zero (a zero interval would spin).
fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(d)
}

/// A loopback socket address: the metrics endpoint has no authentication.
fn loopback_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("bad address {s:?}: expected IP:PORT, e.g. 127.0.0.1:9464"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: metrics are served without authentication, \
             so only 127.0.0.1, ::1 and the like are allowed (scrape through a local proxy \
             to expose them)"
        ));
    }
    Ok(addr)
}

fn endpoint(s: &str) -> Result<Endpoint, String> {
    s.parse()
        .map_err(|e: podport_transport::EndpointParseError| e.to_string())
}

fn switch(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("expected true or false, not {other:?}")),
    }
}

/// Refuses a `tcp:` control endpoint on an address that is not loopback unless remote access
/// is allowed. IP literals are checked here, before anything starts; a host name is checked
/// when the socket is bound (by `podport_transport::listen_with`, against every address the
/// name resolves to).
fn check_control_endpoint(control: &Endpoint, allow_remote: bool) -> Result<(), String> {
    if let Endpoint::Unix(path) = control {
        // Refused again, for good, when the socket is created; here it fails before the
        // engine starts.
        return match std::fs::symlink_metadata(path) {
            Ok(m) if !is_socket(&m) => Err(format!(
                "{} exists and is not a socket: refusing to replace it (move it away or \
                 listen on another path)",
                path.display()
            )),
            _ => Ok(()),
        };
    }
    let Endpoint::Tcp(addr) = control else {
        return Ok(());
    };
    match addr.parse::<SocketAddr>() {
        Ok(a) if !allow_remote && !podport_transport::is_loopback(a.ip()) => Err(format!(
            "{control}: {} is not a loopback address: the control socket has no \
             authentication and serves add and del of Pod ports, so a tcp: endpoint must be \
             loopback (127.0.0.1, [::1]) unless --control-allow-remote is given (prefer a unix: \
             endpoint)",
            a.ip()
        )),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn is_socket(m: &std::fs::Metadata) -> bool {
    std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())
}

#[cfg(not(unix))]
fn is_socket(_: &std::fs::Metadata) -> bool {
    // No unix: endpoints here; listening reports that.
    true
}

/// What the options resolve to.
struct Settings {
    engine: EngineConfig,
    control: Endpoint,
    control_allow_remote: bool,
    control_idle_timeout: Duration,
    metrics: Option<SocketAddr>,
}

fn settings(args: &Args) -> Result<Settings> {
    let m = Merged::build(args)?;
    let ovsdb = m.parsed_required("ovsdb", endpoint)?;
    let openflow = m.parsed_required("openflow", endpoint)?;
    let (bridge, _) = m.required("bridge")?;
    let (journal, _) = m.required("journal")?;
    let control = m.parsed_required("control", endpoint)?;
    let control_allow_remote = m.parsed("control_allow_remote", switch)?.unwrap_or(false);
    if let Some((_, from)) = m.get("control") {
        check_control_endpoint(&control, control_allow_remote)
            .map_err(|e| anyhow!("{from}: {e}"))?;
    }
    let control_idle_timeout = m
        .parsed("control_idle_timeout", positive_duration)?
        .unwrap_or(crate::control::DEFAULT_IDLE_TIMEOUT);
    let wait_timeout = m.parsed("wait_timeout", positive_duration)?;
    let strategy = m
        .parsed("strategy", |s| match s {
            "portstatus" | "port-status" => Ok(Strategy::PortStatus),
            "ovsdb-wait" => {
                let t = wait_timeout.unwrap_or(Duration::from_secs(5));
                Ok(Strategy::OvsdbWait {
                    timeout: t,
                    retry_every: t,
                })
            }
            other => Err(format!(
                "unknown strategy {other:?} (portstatus or ovsdb-wait)"
            )),
        })?
        .unwrap_or(Strategy::PortStatus);
    if let (Strategy::PortStatus, Some((_, from))) = (strategy, m.get("wait_timeout")) {
        warn!("{from} is ignored: it applies to --strategy ovsdb-wait only");
    }
    let readiness = m.parsed("readiness", |s| s.parse::<Readiness>())?;
    let not_ready_every = m.parsed("not_ready_every", positive_duration)?;
    let metrics = m.parsed("metrics", loopback_addr)?;
    let journal_cache = m.parsed("journal_cache", parse_size)?;

    let mut engine = EngineConfig::new(ovsdb, openflow, bridge, PathBuf::from(journal));
    engine.core.strategy = strategy;
    if let Some(r) = readiness {
        engine.core.readiness = r;
    }
    if let Some(d) = not_ready_every {
        engine.core.not_ready_every = d;
    }
    if let Some((t, _)) = m.get("initial_type") {
        engine.core.initial_type = t.to_string();
    }
    if let Some(bytes) = journal_cache {
        engine.journal.cache_capacity = bytes;
    }
    // Recorded in AgentStarted, so a journal shows when the effective options changed.
    let canonical: String = m
        .values
        .iter()
        .map(|(k, (v, _))| format!("{k}={v}\n"))
        .collect();
    engine.config_digest = format!("fnv1a64:{:016x}", fnv1a64(canonical.as_bytes()));
    Ok(Settings {
        engine,
        control,
        control_allow_remote,
        control_idle_timeout,
        metrics,
    })
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Resolves when the process is asked to stop; returns the signal's name.
async fn stop_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    // Installed before anything else starts, so a SIGTERM never meets the default action
    // (which would kill the agent without flushing the journal).
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}

pub async fn run(args: Args) -> Result<()> {
    let settings = settings(&args)?;
    let stop = stop_signal().await?;
    let control_ep = settings.control.clone();
    let listen_options = podport_transport::ListenOptions {
        allow_remote: settings.control_allow_remote,
    };
    let idle_timeout = settings.control_idle_timeout;
    let metrics_addr = settings.metrics;
    let journal_dir = settings.engine.journal_dir.clone();
    info!(
        ovsdb = %settings.engine.ovsdb,
        openflow = %settings.engine.openflow,
        bridge = %settings.engine.bridge,
        journal = %journal_dir.display(),
        strategy = ?settings.engine.core.strategy,
        readiness = ?settings.engine.core.readiness,
        not_ready_every = ?settings.engine.core.not_ready_every,
        initial_type = %settings.engine.core.initial_type,
        "agent starting"
    );
    let cfg = settings.engine;
    // Opening the journal and spawning the engine's thread block.
    let engine = tokio::task::spawn_blocking(move || Engine::start(cfg))
        .await
        .context("the engine's start-up task failed")?
        .map_err(|e| anyhow!("cannot start the engine: {e}"))?;
    let engine = Arc::new(engine);

    let sockets = async {
        let control = podport_transport::listen_with(&control_ep, listen_options)
            .await
            .with_context(|| format!("cannot listen on the control socket {control_ep}"))?;
        let metrics = match metrics_addr {
            None => None,
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {addr}"))?,
            ),
        };
        anyhow::Ok((control, metrics))
    }
    .await;
    let (control, metrics) = match sockets {
        Ok(s) => s,
        Err(e) => {
            stop_engine(engine).await;
            return Err(e);
        }
    };
    info!(control = %control.endpoint(), idle_timeout = ?idle_timeout, "listening on the control socket");
    if control.reachable_remotely() {
        warn!(
            control = %control.endpoint(),
            "the control socket accepts connections from other machines (--control-allow-remote), \
             without authentication: anyone who reaches it can add and delete Pod ports"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics_task = metrics.map(|listener| {
        match listener.local_addr() {
            Ok(a) => info!(address = %a, "serving metrics at http://{a}/metrics"),
            Err(e) => debug!(error = %e, "metrics listener has no local address"),
        }
        tokio::spawn(crate::http::serve(
            listener,
            engine.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    let server = tokio::spawn(
        ControlServer::new(control, engine.clone())
            .idle_timeout(idle_timeout)
            .run_until(stopped(stop_rx.clone())),
    );
    #[cfg(debug_assertions)]
    test_hooks(&engine);

    // A signal, or an engine that died (the agent then exits non-zero).
    let died = tokio::select! {
        signal = stop => {
            info!(
                signal,
                "shutting down: closing the sockets, then stopping the engine"
            );
            None
        }
        why = engine_died(&engine) => {
            error!(
                reason = %why,
                "the engine is not running: shutting down with an error so that the service manager restarts the agent"
            );
            Some(why)
        }
    };
    let _ = stop_tx.send(true);
    if let Err(e) = server.await {
        warn!(error = %e, "the control server task failed");
    }
    if let Some(t) = metrics_task {
        if let Err(e) = t.await {
            warn!(error = %e, "the metrics server task failed");
        }
    }
    stop_engine(engine).await;
    if let Some(why) = died {
        bail!("the engine is not running ({why}); the agent exits so that it is restarted");
    }
    info!(journal = %journal_dir.display(), "agent stopped; journal flushed");
    Ok(())
}

/// Test-only hooks, in debug builds only (the tests run those): with
/// `PODPORT_TEST_PANIC_ENGINE_AFTER=DURATION` the engine actor panics that long after the
/// start, for the end-to-end test of the watchdog. Never set it in production.
#[cfg(debug_assertions)]
fn test_hooks(engine: &Arc<Engine>) {
    let Ok(after) = std::env::var("PODPORT_TEST_PANIC_ENGINE_AFTER") else {
        return;
    };
    let Ok(after) = parse_duration(&after) else {
        warn!(value = %after, "PODPORT_TEST_PANIC_ENGINE_AFTER is not a duration; ignored");
        return;
    };
    warn!(?after, "test hook: the engine will be made to panic");
    // Weak: the hook must not keep the engine alive at shutdown.
    let engine = Arc::downgrade(engine);
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(e) = engine.upgrade() {
            e.panic_for_test();
        }
    });
}

/// Stops the engine and flushes the journal (both block, so off the runtime's workers).
async fn stop_engine(engine: Arc<Engine>) {
    let stopped = tokio::task::spawn_blocking(move || match Arc::try_unwrap(engine) {
        Ok(engine) => engine.shutdown().map_err(|e| e.to_string()),
        Err(shared) => {
            // Every task holding it has ended by now; should one linger, dropping our
            // reference still stops the engine (and flushes) when the last one goes.
            warn!(
                references = Arc::strong_count(&shared),
                "the engine is still shared at shutdown; it stops when the last user ends"
            );
            drop(shared);
            Ok(())
        }
    })
    .await;
    match stopped {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "the engine did not stop cleanly"),
        Err(e) => warn!(error = %e, "stopping the engine failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_say_why_not() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for (bad, why) in [
            ("5", "no unit"),
            ("s", "no number"),
            ("5x", "unknown unit \"x\""),
            ("1.2.3s", "not a number"),
            ("-1s", "no number"),
            ("", "no number"),
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(positive_duration("0s")
            .unwrap_err()
            .contains("more than zero"));
    }

    #[test]
    fn sizes_parse_or_say_why_not() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("8 MB"), Ok(8 << 20));
        for (bad, why) in [
            ("MiB", "no number"),
            ("4XB", "unknown unit"),
            ("99999999999999999999GiB", "not a number"),
            ("18446744073709551615GiB", "out of range"),
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn only_loopback_metrics_addresses() {
        assert!(loopback_addr("127.0.0.1:9000").is_ok());
        assert!(loopback_addr("[::1]:9000").is_ok());
        assert!(loopback_addr("0.0.0.0:9000")
            .unwrap_err()
            .contains("not a loopback"));
        assert!(loopback_addr("localhost").unwrap_err().contains("IP:PORT"));
    }

    #[test]
    fn tcp_control_endpoints_are_loopback_unless_allowed() {
        let ep = |s: &str| s.parse::<Endpoint>().unwrap();
        for remote in ["tcp:0.0.0.0:7000", "tcp:[::]:7000", "tcp:10.1.2.3:7000"] {
            let e = check_control_endpoint(&ep(remote), false).unwrap_err();
            assert!(
                e.contains("is not a loopback address") && e.contains("--control-allow-remote"),
                "{e}"
            );
            assert!(check_control_endpoint(&ep(remote), true).is_ok());
        }
        for local in [
            "tcp:127.0.0.1:7000",
            "tcp:[::1]:7000",
            "tcp:localhost:7000",
            "unix:/run/c.sock",
        ] {
            assert!(check_control_endpoint(&ep(local), false).is_ok(), "{local}");
        }
        let base = Args {
            ovsdb: Some("unix:/a".into()),
            openflow: Some("unix:/b".into()),
            bridge: Some("br-int".into()),
            journal: Some("/tmp/j".into()),
            control: Some("tcp:0.0.0.0:7000".into()),
            ..Args::default()
        };
        let e = settings(&base).err().unwrap().to_string();
        assert!(e.starts_with("--control: tcp:0.0.0.0:7000"), "{e}");
        let s = settings(&Args {
            control_allow_remote: true,
            control_idle_timeout: Some("1500ms".into()),
            ..base
        })
        .unwrap();
        assert!(s.control_allow_remote);
        assert_eq!(s.control_idle_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn flags_win_over_the_file_and_missing_options_are_named() {
        let dir = std::env::temp_dir().join(format!("podport-agent-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agent.toml");
        std::fs::write(
            &file,
            "ovsdb = \"unix:/run/db.sock\"\nopenflow = \"unix:/run/br-int.mgmt\"\n\
             bridge = \"br-file\"\nnot-ready-every = \"2s\"\njournal = \"/tmp/j\"\n",
        )
        .unwrap();
        let args = Args {
            config: Some(file.clone()),
            bridge: Some("br-flag".into()),
            ..Args::default()
        };
        let e = settings(&args).err().unwrap().to_string();
        assert!(e.contains("missing required option --control"), "{e}");
        let args = Args {
            control: Some("unix:/tmp/c.sock".into()),
            ..args
        };
        let s = settings(&args).unwrap();
        assert_eq!(s.engine.bridge, "br-flag");
        assert_eq!(s.engine.core.not_ready_every, Duration::from_secs(2));
        std::fs::write(&file, "ovsdb = 5\n").unwrap();
        let e = settings(&args).err().unwrap().to_string();
        assert!(e.contains("ovsdb must be a string"), "{e}");
        std::fs::write(&file, "ovsbd = \"x\"\n").unwrap();
        let e = settings(&args).err().unwrap().to_string();
        assert!(e.contains("unknown option \"ovsbd\""), "{e}");
        // A switch may be a TOML boolean; other options may not.
        let base = "ovsdb = \"unix:/a\"\nopenflow = \"unix:/b\"\njournal = \"/tmp/j\"\n";
        std::fs::write(
            &file,
            format!("{base}control_allow_remote = true\ncontrol-idle-timeout = \"3s\"\n"),
        )
        .unwrap();
        let s = settings(&args).unwrap();
        assert!(s.control_allow_remote);
        assert_eq!(s.control_idle_timeout, Duration::from_secs(3));
        std::fs::write(&file, format!("{base}bridge = true\n")).unwrap();
        let e = settings(&args).err().unwrap().to_string();
        assert!(e.contains("bridge must be a string"), "{e}");
        let base = "ovsdb = \"unix:/a\"\nopenflow = \"unix:/b\"\njournal = \"/tmp/j\"\n";
        std::fs::write(&file, format!("{base}not_ready_every = \"soon\"\n")).unwrap();
        let e = format!("{:#}", settings(&args).err().unwrap());
        assert!(
            e.contains("not_ready_every in") && e.contains("bad duration"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
