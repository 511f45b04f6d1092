//! The agent's health as it is served: the `health` control op (and the `health` field of
//! `status`), `GET /healthz` and `GET /readyz`, and the watchdog that ends the agent when
//! its engine dies.
//!
//! Every look at the engine is bounded by [`HEALTH_TIMEOUT`]: an engine that stopped, or
//! does not answer within it, is reported as not running.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podport_engine::{Engine, Health, Link};
use serde::{Deserialize, Serialize};

/// How long the agent waits for the engine's health before it counts it as not running.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the agent's watchdog asks the engine whether it runs.
pub const WATCHDOG_EVERY: Duration = Duration::from_secs(2);

/// How long the engine may take to answer the watchdog before the agent gives up on it (a
/// busy engine answers within milliseconds; this is an actor that is stuck).
pub const WATCHDOG_STALL: Duration = Duration::from_secs(30);

/// `podport status --health` exits with this when the agent answered and is not healthy
/// (a connection is down or the engine is not running). An agent that cannot be reached
/// or does not answer is exit status 1, as for every client command.
pub const UNHEALTHY_EXIT: i32 = 2;

/// The engine's health, within [`HEALTH_TIMEOUT`].
pub async fn engine_health(engine: &Engine) -> Health {
    match tokio::time::timeout(HEALTH_TIMEOUT, engine.health()).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => Health::not_running(&e.to_string()),
        Err(_) => Health::not_running(&format!(
            "it did not answer within {}",
            duration_text(HEALTH_TIMEOUT)
        )),
    }
}

/// Resolves, with the reason, once the engine is not running: it stopped (its actor
/// panicked or its thread ended), or it left a request unanswered for [`WATCHDOG_STALL`].
pub async fn engine_died(engine: &Engine) -> String {
    loop {
        tokio::time::sleep(WATCHDOG_EVERY).await;
        match tokio::time::timeout(WATCHDOG_STALL, engine.health()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return e.to_string(),
            Err(_) => {
                return format!(
                    "the engine left a health request unanswered for {}",
                    duration_text(WATCHDOG_STALL)
                )
            }
        }
    }
}

/// One connection, as the control protocol carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub up: bool,
    /// When it went up or down, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
    /// How long it has been up or down.
    pub for_ms: u64,
    /// Why it went down the last time (kept once it is up again).
    pub last_error: Option<String>,
    /// Times it went from up to down since the engine started.
    pub disconnects: u64,
}

/// The `health` answer: `{"engine_running","ready","ovsdb":{..},"switch":{..},"problems":[..]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    pub engine_running: bool,
    /// The engine runs and both connections are up.
    pub ready: bool,
    pub ovsdb: LinkInfo,
    pub switch: LinkInfo,
    /// Why it is not ready, one phrase each (`switch down 3s (connection refused)`).
    pub problems: Vec<String>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&Link> for LinkInfo {
    fn from(l: &Link) -> Self {
        LinkInfo {
            up: l.up,
            since_unix_ms: millis(l.since.duration_since(UNIX_EPOCH).unwrap_or_default()),
            for_ms: millis(l.duration),
            last_error: l.last_error.clone(),
            disconnects: l.disconnects,
        }
    }
}

impl From<&LinkInfo> for Link {
    fn from(l: &LinkInfo) -> Self {
        Link {
            up: l.up,
            since: SystemTime::UNIX_EPOCH + Duration::from_millis(l.since_unix_ms),
            duration: Duration::from_millis(l.for_ms),
            last_error: l.last_error.clone(),
            disconnects: l.disconnects,
        }
    }
}

impl From<&Health> for HealthInfo {
    fn from(h: &Health) -> Self {
        HealthInfo {
            engine_running: h.engine_running,
            ready: h.ready(),
            ovsdb: LinkInfo::from(&h.ovsdb),
            switch: LinkInfo::from(&h.switch),
            problems: h.problems(),
        }
    }
}

impl From<&HealthInfo> for Health {
    fn from(h: &HealthInfo) -> Self {
        Health {
            engine_running: h.engine_running,
            ovsdb: Link::from(&h.ovsdb),
            switch: Link::from(&h.switch),
        }
    }
}

impl HealthInfo {
    /// `ovsdb: up 12s | switch: down 3s (connection refused)`.
    pub fn summary(&self) -> String {
        Health::from(self).summary()
    }
}

/// An HTTP answer: status code (200 or 503), body.
pub type HttpAnswer = (u16, String);

/// `GET /healthz`: 200 while the engine runs, 503 otherwise.
pub async fn healthz(engine: &Engine) -> HttpAnswer {
    let h = engine_health(engine).await;
    if h.engine_running {
        (200, "ok\n".into())
    } else {
        (503, format!("{}\n", h.problems().join("; ")))
    }
}

/// `GET /readyz`: 200 when the engine runs and both connections are up; 503 with one line
/// saying why otherwise.
pub async fn readyz(engine: &Engine) -> HttpAnswer {
    let h = engine_health(engine).await;
    if h.ready() {
        (200, "ok\n".into())
    } else {
        (503, format!("not ready: {}\n", h.problems().join("; ")))
    }
}

/// A duration as people write it: `10s`, `1.5s`, `250ms`.
pub fn duration_text(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", (d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_crosses_the_protocol_and_reads_the_same() {
        let h = Health {
            engine_running: true,
            ovsdb: Link {
                up: true,
                since: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                duration: Duration::from_secs(12),
                last_error: None,
                disconnects: 0,
            },
            switch: Link {
                up: false,
                since: UNIX_EPOCH + Duration::from_millis(1_700_000_009_000),
                duration: Duration::from_millis(3_400),
                last_error: Some("unix:/run/br-int.mgmt: Connection refused".into()),
                disconnects: 2,
            },
        };
        let info = HealthInfo::from(&h);
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["ready"], false);
        assert_eq!(json["switch"]["for_ms"], 3_400);
        assert_eq!(json["ovsdb"]["since_unix_ms"], 1_700_000_000_123u64);
        assert_eq!(
            json["problems"][0],
            "switch down 3s (unix:/run/br-int.mgmt: Connection refused)"
        );
        let back: HealthInfo = serde_json::from_value(json).unwrap();
        assert_eq!(Health::from(&back), h);
        assert_eq!(
            back.summary(),
            "ovsdb: up 12s | switch: down 3s (unix:/run/br-int.mgmt: Connection refused)"
        );
    }
}
