//! The agent's health as it is served: the `health` control op (and the `health` field of
//! `status`), `GET /healthz` and `GET /readyz`, and the watchdog that ends the agent when
//! its engine dies.
//!
//! Every look at the engine is bounded by [`HEALTH_TIMEOUT`]: an engine that stopped, or
//! does not answer within it, is reported as not running.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podport_control::{duration_text, millis, HealthInfo, LinkInfo};
use podport_engine::{Engine, Health, Link};

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

/// A link of the engine as the control protocol carries it.
fn link_info(l: &Link) -> LinkInfo {
    LinkInfo {
        up: l.up,
        since_unix_ms: millis(l.since.duration_since(UNIX_EPOCH).unwrap_or_default()),
        for_ms: millis(l.duration),
        last_error: l.last_error.clone(),
        disconnects: l.disconnects,
    }
}

/// A link as the engine has it, from the protocol (so the engine's words describe it).
fn link_of(l: &LinkInfo) -> Link {
    Link {
        up: l.up,
        since: SystemTime::UNIX_EPOCH + Duration::from_millis(l.since_unix_ms),
        duration: Duration::from_millis(l.for_ms),
        last_error: l.last_error.clone(),
        disconnects: l.disconnects,
    }
}

/// The engine's health as the control protocol carries it.
pub fn health_info(h: &Health) -> HealthInfo {
    HealthInfo {
        engine_running: h.engine_running,
        ready: h.ready(),
        ovsdb: link_info(&h.ovsdb),
        switch: link_info(&h.switch),
        problems: h.problems(),
    }
}

fn health_of(h: &HealthInfo) -> Health {
    Health {
        engine_running: h.engine_running,
        ovsdb: link_of(&h.ovsdb),
        switch: link_of(&h.switch),
    }
}

/// `ovsdb: up 12s | switch: down 3s (connection refused)`, worded as the engine words it.
pub fn summary(h: &HealthInfo) -> String {
    health_of(h).summary()
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
        let info = health_info(&h);
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["ready"], false);
        assert_eq!(json["switch"]["for_ms"], 3_400);
        assert_eq!(json["ovsdb"]["since_unix_ms"], 1_700_000_000_123u64);
        assert_eq!(
            json["problems"][0],
            "switch down 3s (unix:/run/br-int.mgmt: Connection refused)"
        );
        let back: HealthInfo = serde_json::from_value(json).unwrap();
        assert_eq!(health_of(&back), h);
        assert_eq!(
            summary(&back),
            "ovsdb: up 12s | switch: down 3s (unix:/run/br-int.mgmt: Connection refused)"
        );
    }
}
