//! The sans-IO OVSDB session: request ids, reply matching, the server's echo requests, our own
//! echo probe (ovsdb-server does not probe clients on unix sockets, so a hung server would
//! otherwise go unnoticed). No sockets, no clock.
//!
//! Inputs: [`Session::handle_message`] (one complete JSON value from the splitter),
//! [`Session::handle_timeout`]. Requests: [`Session::call`]. Outputs: [`Session::poll_transmit`],
//! [`Session::poll_event`], [`Session::poll_timeout`]. A [`SessionError`] from an input means the
//! connection must be dropped.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::debug;

use crate::rpc::{self, Incoming, RpcError};

/// Settings of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Idle time after which we send our own `echo`.
    pub echo_interval: Duration,
    /// How long after a probe, with nothing received, the server counts as dead.
    pub echo_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            echo_interval: Duration::from_secs(10),
            echo_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a session had to end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("bad message from the OVSDB server: {0}")]
    Rpc(#[from] RpcError),
    #[error("OVSDB server replied to id {0}, which no request of ours carries")]
    UnknownId(String),
    #[error("OVSDB server silent for {0:?} after an echo probe")]
    EchoTimeout(Duration),
}

/// What the session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// The reply to request `id`: its result, or the server's error object.
    Reply {
        id: u64,
        result: Result<Value, Value>,
    },
    /// A notification (`update2`, `update`, ...).
    Notification { method: String, params: Value },
}

/// One OVSDB JSON-RPC session's state.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    next_id: u64,
    pending: HashSet<u64>,
    /// Ids of our echo probes: their replies are consumed here.
    probes: HashSet<u64>,
    probe_sent: Option<Instant>,
    last_rx: Instant,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
}

impl Session {
    /// A session whose transport was opened at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        Session {
            config,
            next_id: 1,
            pending: HashSet::new(),
            probes: HashSet::new(),
            probe_sent: None,
            last_rx: now,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Sends a request; its reply will be `SessionEvent::Reply` with the returned id.
    pub fn call(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id);
        self.transmit
            .push_back(rpc::request(&json!(id), method, params));
        id
    }

    /// Requests still waiting for a reply.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must run next.
    pub fn poll_timeout(&self) -> Instant {
        match self.probe_sent {
            Some(sent) => sent + self.config.echo_timeout,
            None => self.last_rx + self.config.echo_interval,
        }
    }

    /// Sends a probe when idle; fails when a probe went unanswered.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.probe_sent {
            Some(sent) if now >= sent + self.config.echo_timeout => {
                Err(SessionError::EchoTimeout(now - self.last_rx))
            }
            None if now >= self.last_rx + self.config.echo_interval => {
                debug!("OVSDB server idle, sending echo probe");
                let id = self.call("echo", json!([]));
                self.probes.insert(id);
                self.probe_sent = Some(now);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Handles one complete JSON value received at `now`.
    pub fn handle_message(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        // Any message proves the server alive.
        self.last_rx = now;
        self.probe_sent = None;
        match rpc::parse(bytes)? {
            Incoming::Request { id, method, params } => {
                if method == "echo" {
                    self.transmit.push_back(rpc::response(&id, params));
                } else {
                    debug!(%method, "ignoring an unexpected request from the server");
                }
            }
            Incoming::Notification { method, params } => {
                self.events
                    .push_back(SessionEvent::Notification { method, params });
            }
            Incoming::Response { id, result, error } => {
                let Some(n) = id.as_u64().filter(|n| self.pending.remove(n)) else {
                    return Err(SessionError::UnknownId(id.to_string()));
                };
                if self.probes.remove(&n) {
                    return Ok(());
                }
                let result = if error.is_null() {
                    Ok(result)
                } else {
                    Err(error)
                };
                self.events.push_back(SessionEvent::Reply { id: n, result });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(s: &mut Session) -> Vec<Value> {
        std::iter::from_fn(|| s.poll_transmit())
            .map(|b| serde_json::from_slice(&b).unwrap())
            .collect()
    }

    #[test]
    fn replies_are_matched_by_id() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default(), now);
        let a = s.call("list_dbs", json!([]));
        let b = s.call("get_schema", json!(["Open_vSwitch"]));
        let out = sent(&mut s);
        assert_eq!(out[0], json!({"id": a, "method": "list_dbs", "params": []}));
        assert_eq!(out[1]["id"], json!(b));
        s.handle_message(
            format!(r#"{{"id":{b},"result":null,"error":{{"error":"unknown database"}}}}"#)
                .as_bytes(),
            now,
        )
        .unwrap();
        s.handle_message(
            format!(r#"{{"id":{a},"result":["Open_vSwitch"],"error":null}}"#).as_bytes(),
            now,
        )
        .unwrap();
        let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
        assert_eq!(
            events,
            vec![
                SessionEvent::Reply {
                    id: b,
                    result: Err(json!({"error": "unknown database"}))
                },
                SessionEvent::Reply {
                    id: a,
                    result: Ok(json!(["Open_vSwitch"]))
                },
            ]
        );
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn a_reply_with_an_unknown_id_is_fatal() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default(), now);
        let err = s
            .handle_message(br#"{"id":99,"result":[],"error":null}"#, now)
            .unwrap_err();
        assert_eq!(err, SessionError::UnknownId("99".into()));
    }

    #[test]
    fn answers_the_servers_echo() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default(), now);
        s.handle_message(br#"{"id":"echo","method":"echo","params":["x"]}"#, now)
            .unwrap();
        assert_eq!(
            sent(&mut s),
            vec![json!({"id": "echo", "result": ["x"], "error": null})]
        );
    }

    #[test]
    fn probes_when_idle_and_fails_without_an_answer() {
        let t0 = Instant::now();
        let cfg = SessionConfig::default();
        let mut s = Session::new(cfg.clone(), t0);
        assert_eq!(s.poll_timeout(), t0 + cfg.echo_interval);
        s.handle_timeout(t0 + cfg.echo_interval).unwrap();
        let probe = sent(&mut s);
        assert_eq!(probe[0]["method"], "echo");
        // The answer to the probe is consumed silently.
        let id = probe[0]["id"].as_u64().unwrap();
        let t1 = t0 + cfg.echo_interval + Duration::from_secs(1);
        s.handle_message(
            format!(r#"{{"id":{id},"result":[],"error":null}}"#).as_bytes(),
            t1,
        )
        .unwrap();
        assert!(s.poll_event().is_none());
        s.handle_timeout(t1 + cfg.echo_interval).unwrap();
        sent(&mut s);
        let err = s
            .handle_timeout(t1 + cfg.echo_interval + cfg.echo_timeout)
            .unwrap_err();
        assert!(matches!(err, SessionError::EchoTimeout(_)));
    }

    #[test]
    fn notifications_are_events() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default(), now);
        s.handle_message(br#"{"id":null,"method":"update2","params":["m",{}]}"#, now)
            .unwrap();
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::Notification {
                method: "update2".into(),
                params: json!(["m", {}])
            })
        );
    }
}
