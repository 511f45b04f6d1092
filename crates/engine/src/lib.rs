//! podport's engine: attaches Pods to Open vSwitch by reacting to PortStatus, never giving up
//! on a slow port, and rebuilding existing ports from its journal after a restart.
//!
//! - [`core`]: the pure per-port state machine (inputs in, commands out).
//! - [`actors`]: the actix shells: engine, OVSDB, OpenFlow, flow programmer.
//! - [`engine`]: the library API, [`Engine::start`] and its handle.
//! - [`flows`]: the [`FlowProvider`] trait and the default Pod flows.
//! - [`health`]: the engine's connections and whether it runs ([`Engine::health`]).
//!
//! The README's example, kept compiling here:
//!
//! ```no_run
//! use podport_engine::{Engine, EngineConfig, PodEvent, PodSpec};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut config = EngineConfig::new(
//!         "unix:/var/run/openvswitch/db.sock".parse()?,
//!         "unix:/var/run/openvswitch/br-int.mgmt".parse()?,
//!         "br-int",
//!         "/var/lib/podport/journal".into(),
//!     );
//!     config.core.not_ready_every = std::time::Duration::from_secs(30);
//!     let engine = Engine::start(config)?;
//!     let events = engine.subscribe();
//!     let e = engine.blocking();
//!     e.add_pod(PodSpec {
//!         namespace: "default".into(),
//!         name: "web-1".into(),
//!         container_id: "3f2a".into(),
//!         ifname: "web1-3f2a".into(),
//!         ips: vec!["10.1.0.5/16".into()],
//!         mac: "02:00:0a:01:00:05".parse()?,
//!     })?;
//!     e.host_interface_created("web1-3f2a")?;
//!     match events.recv()? {
//!         PodEvent::Ready { port_no, waited, .. } => println!("ready on {port_no} after {waited:?}"),
//!         other => println!("{other:?}"),
//!     }
//!     engine.shutdown()?;
//!     Ok(())
//! }
//! ```

pub mod actors;
pub mod core;
pub mod engine;
pub mod error;
pub mod exposition;
pub mod flows;
pub mod health;
pub mod metrics;
pub mod spec;

pub use crate::core::{CoreConfig, PodEvent, PortStatusView, Strategy};
pub use engine::{BlockingEngine, Engine, EngineConfig, EngineError};
pub use exposition::MetricsFormat;
pub use flows::{DefaultFlows, FlowProvider};
pub use health::{Health, Link};
pub use podport_journal::{Failure, FailureKind, Phase, Readiness};
pub use spec::{AddPodError, PodSpec};
