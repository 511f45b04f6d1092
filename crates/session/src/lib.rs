//! The async side of podport's two switch protocols: the codec crates (`podport-openflow`,
//! `podport-ovsdb`) are sans-IO and runtime-free; this crate drives them over a transport.
//!
//! - `driver` (private): the one reconnecting-session loop both clients run on: connect
//!   through `podport-transport` with doubling backoff, write while reading with a write
//!   timeout, arm the core's timer, refuse requests while down, and the bounded event
//!   channel that drops what a resync can replace and never drops connection events.
//! - [`openflow`]: [`OfClient`](openflow::OfClient) over `podport_openflow::conn::Connection`.
//! - [`ovsdb`]: [`OvsdbClient`](ovsdb::OvsdbClient) over `podport_ovsdb::conn::Session`, with
//!   the schema check, the monitor replica, and the Pod port operations ([`ovsdb::ops`]).
//!
//! Imports go one way: the clients use the driver and the codec crates, the driver only
//! `podport-transport` and tokio; the codec crates know nothing of this crate.

mod driver;
pub mod openflow;
pub mod ovsdb;

pub use driver::{DriverOptions, MAX_EVENT_BACKLOG};
pub use podport_transport::Endpoint;
