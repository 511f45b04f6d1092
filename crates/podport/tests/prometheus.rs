//! The agent's metrics endpoint as Prometheus sees it: a real Prometheus server (Debian's
//! `prometheus` package) on loopback scrapes a running `podport agent` on the OVS sandbox,
//! and the values come back through its query API; `promtool check metrics` accepts the
//! body; the endpoint answers bad requests without harm.
//!
//! Tests that run `prometheus` or `promtool` are ignored where they are missing and `CI` is
//! unset (`cfg(no_prometheus)`, set by build.rs); with `CI` set they fail, saying so.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use podport_ovs_sandbox::{sandbox_for_test, Sandbox};
use serde_json::Value;

mod support;
use support::{
    agent_command, free_loopback_port, podport_ok, run_bounded, tempdir, text, Logged, BOUND,
};

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The path of a program from Debian's `prometheus` package, or a panic that says what to do.
fn prometheus_program(name: &str) -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "{name} not found on PATH: install Debian's prometheus package \
             (`apt-get install prometheus`, or ./scripts/install-deps); without CI set, \
             rebuild to have this test ignored"
        )
    })
}

/// `promtool check metrics` on `body`: its exit code and what it said.
fn promtool_check(body: &str) -> (Option<i32>, String) {
    let out = run_bounded(
        Command::new(prometheus_program("promtool")).args(["check", "metrics"]),
        body.as_bytes(),
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out.status.code(), said)
}

/// An HTTP/1.1 answer: status, headers (names in lower case), body.
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is and reads the answer to the end of the connection, within [`BOUND`].
fn http_raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(BOUND)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("reading the answer from {addr}: {e}"));
    text(&out)
}

fn parse_http(page: &str) -> Http {
    let (head, body) = page
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {page:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {page:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body: body.to_string(),
    }
}

fn http(addr: &str, method: &str, target: &str, accept: Option<&str>) -> Http {
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    parse_http(&http_raw(
        addr,
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{accept}\r\n")
            .as_bytes(),
    ))
}

/// `s` percent-encoded for a URL query.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running `podport agent` with `--metrics`; killed and reaped on drop, its log printed if
/// the test failed.
struct Agent {
    proc: Logged,
    control: String,
    metrics: String,
}

impl Agent {
    /// Starts the agent on the sandbox and waits until `/readyz` says it is ready.
    fn start(sb: &Sandbox, dir: &Path) -> Agent {
        let control = format!("unix:{}", dir.join("ctl.sock").display());
        let metrics = format!("127.0.0.1:{}", free_loopback_port());
        let proc = Logged::spawn(
            agent_command(sb, &dir.join("journal"), &control).args(["--metrics", &metrics]),
        );
        let mut agent = Agent {
            proc,
            control,
            metrics,
        };
        let deadline = Instant::now() + BOUND;
        loop {
            agent.assert_running();
            if TcpStream::connect(&agent.metrics).is_ok()
                && http(&agent.metrics, "GET", "/readyz", None).status == 200
            {
                return agent;
            }
            assert!(
                Instant::now() < deadline,
                "the agent's /readyz did not answer 200 within {BOUND:?}:\n{}",
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        self.proc.log_text()
    }

    fn assert_running(&mut self) {
        self.proc.assert_running();
    }
}

/// A Prometheus server on loopback, its storage and configuration in `dir`, scraping
/// `target` every 250 ms; killed and reaped on drop, its log printed if the test failed.
struct Prometheus {
    proc: Logged,
    addr: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let bin = prometheus_program("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\n\
                 scrape_configs:\n  - job_name: podport\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_loopback_port());
        let proc = Logged::spawn(
            Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .current_dir(dir),
        );
        let mut p = Prometheus { proc, addr };
        let deadline = Instant::now() + BOUND;
        loop {
            p.proc.assert_running();
            if TcpStream::connect(&p.addr).is_ok()
                && http(&p.addr, "GET", "/-/ready", None).status == 200
            {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within {BOUND:?}:\n{}",
                p.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET path` of the HTTP API, as JSON whose `status` is `success`.
    fn api(&self, path: &str) -> Value {
        let answer = http(&self.addr, "GET", path, None);
        let json: Value = serde_json::from_str(&answer.body).unwrap_or_else(|e| {
            panic!("{path}: not JSON ({e}): {} {}", answer.status, answer.body)
        });
        assert_eq!(json["status"], "success", "{path}: {json}");
        json
    }

    /// The value of the one series `query` returns, or `None` while it returns none.
    fn query_one(&self, query: &str) -> Option<f64> {
        let json = self.api(&format!("/api/v1/query?query={}", url_encode(query)));
        let result = json["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: no result list in {json}"));
        match result.as_slice() {
            [] => None,
            [one] => Some(
                one["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{query}: no value in {one}")),
            ),
            more => panic!("{query}: {} series, expected one: {json}", more.len()),
        }
    }

    /// Polls `query` until its value satisfies `want`, within [`BOUND`].
    fn wait_value(&self, query: &str, what: &str, want: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + BOUND;
        let mut last = None;
        loop {
            last = self.query_one(query).or(last);
            if let Some(v) = last.filter(|v| want(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not return {what} for {query:?} within {BOUND:?} (last value: \
                 {last:?}); its targets: {}",
                self.api("/api/v1/targets")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
#[cfg_attr(
    any(no_ovs, no_prometheus),
    ignore = "needs Open vSwitch and Prometheus (prometheus, promtool), which this target or machine lacks"
)]
fn prometheus_scrapes_the_agent_and_promtool_accepts_the_metrics() {
    // Both programs first, so that a missing one fails at once.
    prometheus_program("promtool");
    let sb = sandbox_for_test();
    let dir = tempdir();
    let agent = Agent::start(&sb, dir.path());
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir(&prom_dir).unwrap();
    let prom = Prometheus::start(&prom_dir, &agent.metrics);

    // A scrape went through: the target is up, no Pod is ready yet.
    prom.wait_value(r#"up{job="podport"}"#, "1 (scraped)", |v| v == 1.0);
    prom.wait_value("podport_pods_ready", "0", |v| v == 0.0);

    // One Pod, added and attached, becomes ready.
    let ctl = agent.control.clone();
    podport_ok(&[
        "cni",
        "add",
        "--control",
        &ctl,
        "--pod",
        "default/web-1",
        "--container-id",
        "ctr-1",
        "--ifname",
        "vnic-1",
        "--ip",
        "10.1.0.5/16",
        "--mac",
        "02:00:0a:01:00:05",
    ]);
    podport_ok(&["cni", "attach", "--control", &ctl, "--ifname", "vnic-1"]);
    podport_ok(&["status", "--control", &ctl, "--wait-ready", "1"]);

    // Prometheus reads it back: the gauge and the histogram.
    prom.wait_value("podport_pods_ready", "1", |v| v == 1.0);
    prom.wait_value(
        r#"podport_time_to_ready_seconds_bucket{le="+Inf"}"#,
        "1 (one Pod's time to ready observed)",
        |v| v == 1.0,
    );
    let sum = prom.wait_value("podport_time_to_ready_seconds_sum", "a time", |v| v > 0.0);
    assert!(sum < BOUND.as_secs_f64(), "time to ready {sum}s");
    // The stage histograms: one observation per stage of the attach.
    for stage in ["host_attached", "usable", "flows_confirmed", "ready"] {
        prom.wait_value(
            &format!(r#"podport_stage_seconds_bucket{{stage="{stage}",le="+Inf"}}"#),
            "1 (the Pod's one attach)",
            |v| v == 1.0,
        );
    }
    let confirmed = prom.wait_value(
        r#"podport_stage_seconds_sum{stage="flows_confirmed"}"#,
        "the seconds the switch took to confirm the flows",
        |v| v > 0.0,
    );
    assert!(
        confirmed < sum,
        "a stage is part of the attach: {confirmed}s of {sum}s"
    );
    prom.wait_value(
        "podport_flow_installs_total",
        "at least 1 (a counter, by its OpenMetrics sample name)",
        |v| v >= 1.0,
    );
    let targets = prom.api("/api/v1/targets");
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{targets}");
    assert_eq!(target["lastError"], "", "{targets}");

    // What Prometheus was served: OpenMetrics, by its Accept header.
    let om = http(&agent.metrics, "GET", "/metrics", Some(PROMETHEUS_ACCEPT));
    assert_eq!(om.status, 200, "{}", om.body);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(om.header("vary"), Some("Accept"));
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(
        om.body
            .contains("# TYPE podport_flow_installs counter\npodport_flow_installs_total 1\n"),
        "{}",
        om.body
    );

    // Without Accept: the Prometheus text format, which promtool checks.
    let plain = http(&agent.metrics, "GET", "/metrics", None);
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        plain.body.contains("podport_pods_ready 1\n"),
        "{}",
        plain.body
    );
    let (code, said) = promtool_check(&plain.body);
    assert_eq!(
        code,
        Some(0),
        "promtool check metrics: {said}\non:\n{}",
        plain.body
    );
    // promtool reads the Prometheus text format only: the OpenMetrics body, read that way,
    // has counters without help (what the agent used to serve as text/plain).
    let (code, said) = promtool_check(&om.body);
    assert_eq!(code, Some(3), "{said}");
    assert!(
        said.contains("podport_flow_installs_total no help text"),
        "{said}"
    );
}

#[test]
#[cfg_attr(
    no_prometheus,
    ignore = "needs promtool (Debian's prometheus package), which this target or machine lacks"
)]
fn promtool_accepts_a_labelled_histogram_family_and_counters_in_the_text_format() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    // The shape of a per-stage histogram family (`podport_stage_seconds{stage="…"}`).
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct StageLabel {
        stage: String,
    }
    let mut registry = Registry::with_prefix("podport");
    let stages = Family::<StageLabel, Histogram>::new_with_constructor(|| {
        Histogram::new([0.001, 0.01, 0.1, 1.0])
    });
    registry.register(
        "stage_seconds",
        "Seconds each stage of an attach took",
        stages.clone(),
    );
    let counted = Counter::<u64>::default();
    registry.register(
        "port_status_received",
        "PortStatus messages",
        counted.clone(),
    );
    for (stage, s) in [("added", 0.002), ("ready", 0.04), ("ready", 0.5)] {
        stages
            .get_or_create(&StageLabel {
                stage: stage.into(),
            })
            .observe(s);
    }
    counted.inc();
    let mut om = String::new();
    prometheus_client::encoding::text::encode(&mut om, &registry).unwrap();

    let body = podport_engine::exposition::prometheus_text(&om);
    assert!(
        body.contains("podport_stage_seconds_bucket{le=\"0.1\",stage=\"ready\"} 1\n"),
        "{body}"
    );
    let (code, said) = promtool_check(&body);
    assert_eq!(code, Some(0), "promtool check metrics: {said}\non:\n{body}");
    let (code, said) = promtool_check(&om);
    assert_eq!(code, Some(3), "{said}\non:\n{om}");
    assert!(
        said.contains("podport_port_status_received_total no help text"),
        "{said}"
    );
}

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn bad_http_requests_get_errors_and_the_agent_keeps_serving() {
    let sb = sandbox_for_test();
    let dir = tempdir();
    let mut agent = Agent::start(&sb, dir.path());
    let addr = agent.metrics.clone();

    let head = http(&addr, "HEAD", "/metrics", None);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(http(&addr, "GET", "/healthz", None).body, "ok\n");
    assert_eq!(http(&addr, "GET", "/readyz?verbose=1", None).body, "ok\n");
    let nope = http(&addr, "GET", "/", None);
    assert_eq!(nope.status, 404, "{}", nope.body);
    let post = http(&addr, "POST", "/metrics", None);
    assert_eq!(post.status, 405, "{}", post.body);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // Not HTTP at all, and a head past 8 KiB.
    let garbage = http_raw(
        &addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    let long = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let long = http_raw(&addr, long.as_bytes());
    assert!(long.starts_with("HTTP/1.1 431"), "{long:?}");

    // Clients that connect and send nothing, more of them than the server serves at once:
    // each is closed after the head timeout, so a probe still gets its answer, late.
    let silent: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let started = Instant::now();
    let ready = http(&addr, "GET", "/readyz", None);
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok\n"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a probe waited {:?} behind silent connections",
        started.elapsed()
    );
    for mut s in silent {
        s.set_read_timeout(Some(BOUND)).unwrap();
        let mut rest = Vec::new();
        // Closed by the agent (EOF, or a reset), not left open.
        let _ = s.read_to_end(&mut rest);
    }
    agent.assert_running();
    let metrics = http(&addr, "GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("podport_ovsdb_up 1\n"),
        "{}",
        metrics.body
    );
}
