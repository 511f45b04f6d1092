//! The control protocol as plain data: requests, the answers' parts, the event and journal
//! stream lines. What fills them from the engine lives in the `podport` binary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The longest request line the agent reads.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// A request, as the `op` field names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Add {
        namespace: String,
        name: String,
        container_id: String,
        ifname: String,
        ips: Vec<String>,
        mac: String,
    },
    Attach {
        ifname: String,
    },
    Del {
        ifname: String,
        /// The CNI DEL's container: only that container's Pod is deleted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
    },
    Status,
    Health,
    Subscribe,
    Journal {
        #[serde(default)]
        from: u64,
        #[serde(default)]
        follow: bool,
    },
}

/// The op names, for error messages.
const OPS: &str = "add, attach, del, status, health, subscribe, journal";

impl Request {
    /// The op's name, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Add { .. } => "add",
            Request::Attach { .. } => "attach",
            Request::Del { .. } => "del",
            Request::Status => "status",
            Request::Health => "health",
            Request::Subscribe => "subscribe",
            Request::Journal { .. } => "journal",
        }
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> String {
        // A request holds only strings, numbers and booleans: it always serialises.
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Whether the answer is a stream rather than one line.
    pub fn streams(&self) -> bool {
        matches!(self, Request::Subscribe | Request::Journal { .. })
    }
}

/// Parses one request line, with a message a person can act on when it is not one.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| format!("the request is not JSON: {e}"))?;
    let Some(obj) = value.as_object() else {
        return Err("a request is a JSON object with an \"op\" field".into());
    };
    let op = match obj.get("op") {
        None => return Err(format!("the request has no \"op\" (one of {OPS})")),
        Some(Value::String(op)) => op.clone(),
        Some(other) => {
            return Err(format!(
                "\"op\" must be a string (one of {OPS}), not {other}"
            ))
        }
    };
    if !OPS.split(", ").any(|o| o == op) {
        return Err(format!("unknown op {op:?} (one of {OPS})"));
    }
    serde_json::from_value(value).map_err(|e| format!("bad {op} request: {e}"))
}

/// One port in a status answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub ifname: String,
    /// `namespace/name`.
    pub pod: String,
    /// The OpenFlow port number, when the switch gave one.
    pub ofport: Option<u32>,
    pub phase: String,
    pub ready: bool,
    pub ready_for_ms: Option<u64>,
    /// How long the port waited (or has been waiting) to become ready.
    pub waited_ms: u64,
    /// The switch's port state bits as names (`LIVE`, `LINK_DOWN`, ...).
    pub state: Vec<String>,
    pub last_error: Option<String>,
    pub attach_failures: u32,
    /// Each stage of the current attach reached, with the seconds since the one before it.
    #[serde(default)]
    pub stages: Stages,
}

/// Stage name → seconds since the previous stage (a JSON object: its keys have no order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Stages(pub BTreeMap<String, f64>);

// Floats from a clock, never NaN.
impl Eq for Stages {}

impl Stages {
    /// From each stage's name and the time since the stage before it.
    pub fn of<'a>(stages: impl IntoIterator<Item = (&'a str, Duration)>) -> Stages {
        Stages(
            stages
                .into_iter()
                .map(|(s, d)| (s.to_string(), d.as_secs_f64()))
                .collect(),
        )
    }
}

/// A duration in whole milliseconds, as the protocol carries it (saturating).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One line of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventLine {
    Ready {
        ifname: String,
        port_no: u32,
        waited_ms: u64,
        /// The stages this wait went through, with the seconds each took.
        #[serde(default)]
        stages: Stages,
    },
    NotReady {
        ifname: String,
        phase: String,
        waited_ms: u64,
    },
    Failed {
        ifname: String,
        error: String,
    },
    Removed {
        ifname: String,
        reason: String,
    },
}

/// One connection of the agent, as the protocol carries it.
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

/// `{"ok":true}`
pub fn ok_line() -> String {
    json!({"ok": true}).to_string()
}

/// `{"ok":false,"error":MSG}`
pub fn error_line(msg: &str) -> String {
    json!({"ok": false, "error": msg}).to_string()
}

/// The line that ends a journal stream without `follow`: `{"end":true,"last_seq":N}`.
pub fn end_line(last_seq: u64) -> String {
    json!({"end": true, "last_seq": last_seq}).to_string()
}

/// The `last_seq` of an [`end_line`], `None` for any other line.
pub fn parse_end_line(line: &Value) -> Option<u64> {
    if line.get("end") != Some(&Value::Bool(true)) {
        return None;
    }
    line.get("last_seq").and_then(Value::as_u64)
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
    fn parses_every_request_and_explains_bad_ones() {
        assert_eq!(
            parse_request(br#"{"op":"attach","ifname":"vnic-1"}"#),
            Ok(Request::Attach {
                ifname: "vnic-1".into()
            })
        );
        assert_eq!(parse_request(br#"{"op":"status"}"#), Ok(Request::Status));
        assert_eq!(parse_request(br#"{"op":"health"}"#), Ok(Request::Health));
        assert_eq!(
            parse_request(br#"{"op":"journal"}"#),
            Ok(Request::Journal {
                from: 0,
                follow: false
            })
        );
        let add = Request::Add {
            namespace: "default".into(),
            name: "web".into(),
            container_id: "c1".into(),
            ifname: "vnic-1".into(),
            ips: vec!["10.0.0.5/24".into()],
            mac: "02:00:00:00:00:01".into(),
        };
        assert_eq!(parse_request(add.to_line().trim_end().as_bytes()), Ok(add));
        let cases: [(&[u8], &str); 6] = [
            (b"garbage", "not JSON"),
            (b"{}", "has no \"op\""),
            (b"[1]", "JSON object"),
            (br#"{"op":"explode"}"#, "unknown op \"explode\""),
            (br#"{"op":7}"#, "must be a string"),
            (
                br#"{"op":"attach"}"#,
                "bad attach request: missing field `ifname`",
            ),
        ];
        for (line, want) in cases {
            let e = parse_request(line).unwrap_err();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
    }

    #[test]
    fn every_op_is_named_in_the_error_messages() {
        let ops: Vec<&str> = OPS.split(", ").collect();
        let requests = [
            Request::Add {
                namespace: String::new(),
                name: String::new(),
                container_id: String::new(),
                ifname: String::new(),
                ips: Vec::new(),
                mac: String::new(),
            },
            Request::Attach {
                ifname: String::new(),
            },
            Request::Del {
                ifname: String::new(),
                container_id: None,
            },
            Request::Status,
            Request::Health,
            Request::Subscribe,
            Request::Journal {
                from: 0,
                follow: false,
            },
        ];
        assert_eq!(
            requests.iter().map(Request::op).collect::<Vec<_>>(),
            ops,
            "OPS lists every op, in order"
        );
        for r in requests {
            assert_eq!(parse_request(r.to_line().as_bytes()), Ok(r));
        }
    }

    #[test]
    fn the_journal_request_and_its_end_line() {
        assert_eq!(
            Request::Journal {
                from: 7,
                follow: true
            }
            .to_line(),
            "{\"op\":\"journal\",\"from\":7,\"follow\":true}\n"
        );
        let end: Value = serde_json::from_str(&end_line(42)).unwrap();
        assert_eq!(parse_end_line(&end), Some(42));
        assert_eq!(parse_end_line(&json!({"seq": 42})), None);
        assert_eq!(parse_end_line(&json!({"end": false, "last_seq": 1})), None);
    }

    #[test]
    fn stages_keep_their_names_and_seconds() {
        let s = Stages::of([
            ("created", Duration::from_millis(1500)),
            ("attached", Duration::from_millis(250)),
        ]);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"created": 1.5, "attached": 0.25})
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration_text(Duration::from_secs(10)), "10s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration_text(Duration::from_millis(250)), "250ms");
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
