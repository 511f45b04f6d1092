//! OVSDB (RFC 7047) for podport.
//!
//! Pure parts, tested without sockets: [`splitter`] (JSON values back to back on a stream),
//! [`datum`] (atoms, sets, maps in their wire forms), [`schema`], [`replica`] (a local copy of
//! monitored tables, updated from `update2` / `update` notifications) and [`rows`] (typed rows
//! of the columns podport uses), [`rpc`] (JSON-RPC 1.0 messages) and [`conn`] (the sans-IO
//! session: ids, echo, probes).
//!
//! No runtime: the async client (a task per server with reconnect, schema check, monitor and
//! snapshot delivery) and the Pod port operations the engine needs are
//! `podport_session::ovsdb`.

pub mod conn;
pub mod datum;
#[doc(hidden)]
pub mod fuzzing;
pub mod replica;
pub mod rows;
pub mod rpc;
pub mod schema;
pub mod splitter;
