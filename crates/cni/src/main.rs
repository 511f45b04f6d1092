//! `podport-cni`: a CNI plugin (specification 1.0; results also in 0.3.0 to 0.4.0) that
//! attaches a Pod through a running podport agent. The runtime runs it with `CNI_COMMAND`
//! (`ADD`, `DEL`, `CHECK`, `VERSION`) and the other `CNI_*` variables set and the network
//! configuration on stdin; it prints ADD's result, or a CNI error object and exits 1.
//!
//! ```json
//! {"cniVersion":"1.0.0","name":"pods","type":"podport-cni","control":"unix:/run/podport.sock",
//!  "ipam":{"type":"host-local","subnet":"10.66.0.0/24"}}
//! ```
//!
//! Linux only in what it does (network namespaces, `ip`); see docs/operations.md.

mod config;
mod env;
mod error;
mod ipam;
mod link;
mod plugin;
mod result;

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::{json, Value};

use config::{requested_version, NetConf, SUPPORTED_VERSIONS};
use env::{Command, Env};
use error::{code, CniError};

/// What the invocation prints on success (nothing for DEL and CHECK).
fn run(stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let lookup = |var: &str| std::env::var(var).ok();
    let command = Command::parse(&lookup("CNI_COMMAND").unwrap_or_default())?;
    if command == Command::Version {
        return Ok(Some(json!({
            "cniVersion": requested_version(stdin),
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    let conf = NetConf::parse(stdin)?;
    let env = Env::read(command, &lookup)?;
    plugin::run(&env, &conf, stdin)
}

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let outcome = std::io::stdin()
        .read_to_end(&mut stdin)
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("reading stdin: {e}")))
        .and_then(|_| run(&stdin));
    let (printed, exit) = match outcome {
        Ok(Some(v)) => (Some(v), ExitCode::SUCCESS),
        Ok(None) => (None, ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("podport-cni: {e}");
            (
                Some(e.to_json(&requested_version(&stdin))),
                ExitCode::FAILURE,
            )
        }
    };
    if let Some(v) = printed {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{v}").and_then(|()| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    exit
}
