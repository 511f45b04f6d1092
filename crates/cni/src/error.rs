//! The CNI error object (`{"cniVersion","code","msg","details"}`) and the spec's well-known
//! codes; codes of this plugin's own are 100 and up.

use serde::Serialize;

/// The spec's well-known error codes, and this plugin's own (100 and up).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// The agent refused a request, or answered something this plugin does not understand.
    pub const AGENT: u32 = 100;
    /// The IPAM plugin failed (its own error code and message are in `msg`).
    pub const IPAM: u32 = 101;
    /// Setting up the Pod's interface failed (an `ip` command, or the device never appeared).
    pub const INTERFACE: u32 = 102;
    /// CHECK found the interface not as ADD left it.
    pub const CHECK_FAILED: u32 = 103;
}

/// A CNI error: printed on stdout as the error object, the plugin then exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// A bad or missing environment variable, named in the message.
    pub fn env(var: &str, problem: impl std::fmt::Display) -> CniError {
        CniError::new(code::INVALID_ENV, format!("{var}: {problem}"))
    }

    /// A bad network configuration field, named in the message.
    pub fn config(field: &str, problem: impl std::fmt::Display) -> CniError {
        CniError::new(code::INVALID_CONFIG, format!("{field}: {problem}"))
    }

    /// The error object, with the version the caller asked for.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Object<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_value(Object {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_error_object_has_the_spec_keys() {
        let e = CniError::env("CNI_IFNAME", "missing").with_details("set by the runtime");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion": "1.0.0", "code": 4, "msg": "CNI_IFNAME: missing",
                   "details": "set by the runtime"})
        );
        assert_eq!(e.to_string(), "CNI_IFNAME: missing: set by the runtime");
        let bare = CniError::config("ipam.type", "missing");
        assert_eq!(
            bare.to_json("1.0.0"),
            json!({"cniVersion": "1.0.0", "code": 7, "msg": "ipam.type: missing"})
        );
    }
}
