//! OpenFlow 1.3 / 1.5 for podport: a pure codec, a framer and a sans-IO connection state
//! machine. No runtime: the async client that drives a `Connection` over a transport is
//! `podport_session::openflow`.
//!
//! - [`decode`] / [`encode`] turn one whole frame into a typed [`Message`] and back. Decoding
//!   validates every length before using it: a bad frame is a [`DecodeError`], never a panic,
//!   and nothing is allocated beyond the frame's own size. Unknown message types, match
//!   fields, instructions and actions are kept as `Unknown` values and skipped by the
//!   connection, not treated as errors; 1.5 port properties other than Ethernet keep their
//!   bytes in [`Port::other_properties`] and are encoded back.
//! - [`OfFramer`] splits a byte stream into frames (rejecting lengths below 8).
//! - [`conn::Connection`] is the protocol core: handshake, xids, reply matching, multipart
//!   assembly (PORT_DESC, flow descriptions), atomic flow mod batches in 1.5 bundles, echo,
//!   PortStatus events. It does no IO and reads no clock.
//!
//! Port names on the wire are cut to 15 bytes; [`PortState`] and [`PortConfig`] are bit sets.

mod bundle;
pub mod conn;
mod error;
mod errors;
mod flow;
mod flow_desc;
mod framer;
#[doc(hidden)]
pub mod fuzzing;
mod header;
mod message;
mod port;
mod types;
mod wire;

pub use bundle::{BundleControl, BundleCtrlType, BundleFlags};
pub use conn::{ConnConfig, ConnError};
pub use error::{DecodeError, EncodeError};
pub use errors::{error_code_name, error_type_name};
pub use flow::{
    Action, FlowMod, FlowModCommand, Instruction, OxmField, ETH_TYPE_ARP, ETH_TYPE_IPV4, GROUP_ANY,
    NO_BUFFER, TABLE_ALL,
};
pub use flow_desc::{FlowCounters, FlowDescRequest, FlowEntry, MP_FLOW_DESC};
pub use framer::{FrameError, OfFramer};
pub use header::{msg_type, msg_type_name, Header, HEADER_LEN};
pub use message::{
    bitmap_names, decode, encode, encode_into, negotiate, BundleAdd, ErrorMsg, FeaturesReply,
    Hello, Message, MultipartReply, MultipartReplyBody, MultipartRequest, SwitchConfig, MPF_MORE,
    MP_PORT_DESC,
};
pub use port::{EthernetProps, Port, PortReason, PortStatus, MAX_PORT_NAME_LEN};
pub use types::{
    flag_names, wire_version_name, FlowModFlags, MacAddr, PortConfig, PortNo, PortState, Version,
};
