//! The engine's health: its two connections (OVSDB and the switch) and whether it runs.
//!
//! The engine actor tracks each connection from the clients' own events (`Connected`,
//! `Disconnected` with the reason); [`crate::Engine::health`] reads it with one round trip
//! through the actor's mailbox, so an answer also proves that the actor still runs.

use std::time::{Duration, Instant, SystemTime};

/// One connection of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Connected and in use: for OVSDB, the schema checked and the monitor running; for the
    /// switch, the OpenFlow handshake done.
    pub up: bool,
    /// When it last went up or down (wall clock). A link that never connected is down since
    /// the engine started.
    pub since: SystemTime,
    /// How long it has been up or down when the health was read (monotonic clock).
    pub duration: Duration,
    /// Why it went down the last time: the reason of the current outage while down, of the
    /// previous one once up again. `None` when it never went down (and, for a link not yet
    /// connected, before the first attempt failed).
    pub last_error: Option<String>,
    /// How many times it went from up to down since the engine started.
    pub disconnects: u64,
}

impl Link {
    /// `up 12s`, or `down 3s (connection refused)`.
    pub fn summary(&self) -> String {
        let d = duration_text(self.duration);
        match (self.up, &self.last_error) {
            (true, _) => format!("up {d}"),
            (false, Some(e)) => format!("down {d} ({e})"),
            (false, None) => format!("down {d} (not connected yet)"),
        }
    }
}

/// `250ms`, `12s`, `3m20s`, `2h5m`.
fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

/// What the engine reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The engine answered. `false` only in a [`Health::not_running`] made by a caller whose
    /// [`crate::Engine::health`] failed (the engine stopped, or did not answer in time).
    pub engine_running: bool,
    /// The OVSDB connection (ports are created, retyped and deleted over it).
    pub ovsdb: Link,
    /// The OpenFlow connection to the bridge (PortStatus, flows).
    pub switch: Link,
}

impl Health {
    /// The health of an engine that does not answer; `reason` says why (`the engine has
    /// stopped`, `no answer within 10s`). Both links count as down from now.
    pub fn not_running(reason: &str) -> Health {
        let link = Link {
            up: false,
            since: SystemTime::now(),
            duration: Duration::ZERO,
            last_error: Some(reason.to_string()),
            disconnects: 0,
        };
        Health {
            engine_running: false,
            ovsdb: link.clone(),
            switch: link,
        }
    }

    /// The engine runs and both connections are up: Pods can be attached now.
    pub fn ready(&self) -> bool {
        self.engine_running && self.ovsdb.up && self.switch.up
    }

    /// Why it is not ready, one phrase per problem (empty when ready).
    pub fn problems(&self) -> Vec<String> {
        if !self.engine_running {
            return vec![match &self.ovsdb.last_error {
                Some(why) => format!("the engine is not running: {why}"),
                None => "the engine is not running".into(),
            }];
        }
        [("ovsdb", &self.ovsdb), ("switch", &self.switch)]
            .into_iter()
            .filter(|(_, l)| !l.up)
            .map(|(name, l)| format!("{name} {}", l.summary()))
            .collect()
    }

    /// One line: `ovsdb: up 12s | switch: down 3s (connection refused)`, led by
    /// `engine: not running (...)` when it does not run.
    pub fn summary(&self) -> String {
        if !self.engine_running {
            let why = self
                .ovsdb
                .last_error
                .as_deref()
                .unwrap_or("no reason given");
            return format!("engine: not running ({why})");
        }
        format!(
            "ovsdb: {} | switch: {}",
            self.ovsdb.summary(),
            self.switch.summary()
        )
    }
}

/// A link as the engine actor tracks it.
#[derive(Debug, Clone)]
pub(crate) struct LinkState {
    up: bool,
    since: SystemTime,
    at: Instant,
    last_error: Option<String>,
    disconnects: u64,
}

impl LinkState {
    /// Down (not connected yet) from now.
    pub(crate) fn new() -> LinkState {
        LinkState {
            up: false,
            since: SystemTime::now(),
            at: Instant::now(),
            last_error: None,
            disconnects: 0,
        }
    }

    pub(crate) fn went_up(&mut self) {
        if !self.up {
            self.up = true;
            self.since = SystemTime::now();
            self.at = Instant::now();
        }
    }

    /// Down with `reason`. Already down (a connect that failed after the outage began), the
    /// outage keeps its start and takes the newer reason.
    pub(crate) fn went_down(&mut self, reason: String) {
        if self.up {
            self.up = false;
            self.since = SystemTime::now();
            self.at = Instant::now();
            self.disconnects += 1;
        }
        self.last_error = Some(reason);
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up
    }

    pub(crate) fn view(&self) -> Link {
        Link {
            up: self.up,
            since: self.since,
            duration: self.at.elapsed(),
            last_error: self.last_error.clone(),
            disconnects: self.disconnects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_counts_outages_and_keeps_the_last_reason() {
        let mut l = LinkState::new();
        let v = l.view();
        assert!(!v.up && v.last_error.is_none() && v.disconnects == 0);
        assert!(v.summary().starts_with("down ") && v.summary().ends_with("(not connected yet)"));
        l.went_down("unix:/x: connection refused".into());
        assert_eq!(l.view().disconnects, 0, "never up: no disconnect");
        l.went_up();
        l.went_up();
        let v = l.view();
        assert!(v.up && v.summary().starts_with("up "), "{v:?}");
        assert_eq!(v.last_error.as_deref(), Some("unix:/x: connection refused"));
        l.went_down("the switch closed the connection".into());
        l.went_down("unix:/x: no such file".into());
        let v = l.view();
        assert_eq!(v.disconnects, 1);
        assert!(v.summary().ends_with("(unix:/x: no such file)"), "{v:?}");
    }

    #[test]
    fn health_says_what_is_wrong() {
        let mut ovsdb = LinkState::new();
        ovsdb.went_up();
        let mut switch = LinkState::new();
        switch.went_down("connection refused".into());
        let h = Health {
            engine_running: true,
            ovsdb: ovsdb.view(),
            switch: switch.view(),
        };
        assert!(!h.ready());
        assert_eq!(h.problems().len(), 1);
        assert!(
            h.problems()[0].starts_with("switch down "),
            "{:?}",
            h.problems()
        );
        assert!(h.summary().starts_with("ovsdb: up "), "{}", h.summary());
        assert!(h.summary().contains(" | switch: down "), "{}", h.summary());
        let dead = Health::not_running("the engine has stopped");
        assert!(!dead.ready());
        assert_eq!(
            dead.summary(),
            "engine: not running (the engine has stopped)"
        );
        assert_eq!(
            dead.problems(),
            ["the engine is not running: the engine has stopped"]
        );
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration_text(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text(Duration::from_secs(12)), "12s");
        assert_eq!(duration_text(Duration::from_secs(200)), "3m20s");
        assert_eq!(duration_text(Duration::from_secs(7500)), "2h5m");
    }
}
