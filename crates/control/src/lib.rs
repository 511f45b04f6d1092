//! The control socket: how `podport cni`, `podport status` and `podport-journal --control`
//! talk to a running agent. This crate holds the protocol as plain data ([`protocol`]), the
//! bounded line reader both sides use ([`line`]) and the one client ([`client`]); the server
//! is in the `podport` binary, next to the engine it drives.
//!
//! JSON lines: one request per line, each answered on the same connection, and a connection
//! may carry several requests. A line is at most [`MAX_REQUEST_LINE`] bytes.
//!
//! | request | answer |
//! |---|---|
//! | `{"op":"add","namespace","name","container_id","ifname","ips":[..],"mac"}` | `{"ok":true}` |
//! | `{"op":"attach","ifname"}` | `{"ok":true}` |
//! | `{"op":"del","ifname"[,"container_id"]}` | `{"ok":true}` (also for a Pod not tracked; with `container_id`, another container's Pod of that name stays) |
//! | `{"op":"status"}` | `{"ok":true,"ports":[`[`PortInfo`]`..],"health":`[`HealthInfo`]`}` (`health` is new: readers ignore fields they do not know) |
//! | `{"op":"health"}` | `{"ok":true,"health":`[`HealthInfo`]`}`: the OVSDB and switch connections (up or down, since when, the last error) and whether the engine runs; answered also when the engine does not run (`engine_running: false`) |
//! | `{"op":"subscribe"}` | `{"ok":true}`, then one [`EventLine`] per Pod event until the client hangs up |
//! | `{"op":"journal","from":SEQ,"follow":BOOL}` | one line per journal record from `SEQ` on (the serde form of `podport_journal::Record`, as `podport-journal dump --json` prints it); without `follow`, up to the last record stored when the request came, then [`end_line`]; with `follow`, every new record until the client hangs up |
//!
//! Any failure is `{"ok":false,"error":"..."}` and the connection carries on, except after a
//! line over the limit (the rest of that line cannot be told from the next request, so the
//! connection is closed after the answer). The `{"ok":true}` that opens a subscription tells
//! the client that every event after its point of subscription will reach it, so a status
//! taken afterwards and the events together miss nothing.
//!
//! The server's rules (idle timeout, connection cap, stream slots) are described in the
//! `podport` binary's `control` module.

pub mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod line;
pub mod protocol;

pub use client::{Client, ClientError, JournalLine, SubscriptionLine};
pub use line::{read_line, LineRead};
pub use podport_transport::Endpoint;
pub use protocol::{
    duration_text, end_line, error_line, millis, ok_line, parse_end_line, parse_request, EventLine,
    HealthInfo, LinkInfo, PortInfo, Request, Stages, MAX_REQUEST_LINE,
};
