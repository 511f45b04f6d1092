//! The network configuration the runtime gives on stdin, checked field by field; an error
//! names the field. Unknown keys are allowed (the spec lets runtimes add their own), and the
//! configuration goes to the IPAM plugin as it came.

use podport_control::Endpoint;
use serde_json::{Map, Value};

use crate::error::{code, CniError};
use crate::result::CniResult;

/// The spec versions this plugin speaks; results of versions before 1.0.0 carry each IP's
/// `version`. CHECK exists from 0.4.0 on.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// The agent's control socket (`control`).
    pub control: Endpoint,
    /// The IPAM plugin's binary name (`ipam.type`).
    pub ipam_type: String,
    /// `dns`, as given: it goes into the result when the IPAM plugin returns none.
    pub dns: Option<Value>,
    /// `prevResult`: what ADD returned, given to CHECK (and DEL).
    pub prev_result: Option<CniResult>,
}

/// Only the version, for the error object of a configuration that fails later: the version
/// the runtime asked for when it is there, else the newest.
pub fn requested_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| newest_version().to_string())
}

pub fn newest_version() -> &'static str {
    SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1]
}

fn string_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, CniError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(CniError::config(field, "missing")),
        Some(Value::String(s)) if s.is_empty() => Err(CniError::config(field, "empty")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(CniError::config(
            field,
            format!("must be a string, not {other}"),
        )),
    }
}

/// The spec's rule for a network name (as for a container id).
fn check_name(name: &str) -> Result<(), CniError> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::config(
            "name",
            format!(
                "{name:?}: only letters, digits, '_', '.' and '-', starting with a letter or digit"
            ),
        ))
    }
}

impl NetConf {
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                "the network configuration on stdin is not JSON",
            )
            .with_details(e.to_string())
        })?;
        let Some(obj) = value.as_object() else {
            return Err(CniError::new(
                code::DECODE,
                "the network configuration on stdin is not a JSON object",
            ));
        };
        let cni_version = string_field(obj, "cniVersion")?;
        if !SUPPORTED_VERSIONS.contains(&cni_version) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion: {cni_version:?} is not supported (supported: {})",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        let name = string_field(obj, "name")?;
        check_name(name)?;
        string_field(obj, "type")?;
        let control = string_field(obj, "control")?
            .parse::<Endpoint>()
            .map_err(|e| CniError::config("control", e))?;
        let ipam = match obj.get("ipam") {
            None | Some(Value::Null) => return Err(CniError::config("ipam", "missing")),
            Some(Value::Object(ipam)) => ipam,
            Some(other) => {
                return Err(CniError::config(
                    "ipam",
                    format!("must be an object, not {other}"),
                ))
            }
        };
        let ipam_type = string_field(ipam, "type").map_err(|e| CniError {
            msg: format!("ipam.{}", e.msg),
            ..e
        })?;
        if ipam_type.contains('/') || ipam_type.starts_with('.') {
            return Err(CniError::config(
                "ipam.type",
                format!("{ipam_type:?} must be a plugin's file name, not a path"),
            ));
        }
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(other) => {
                return Err(CniError::config(
                    "dns",
                    format!("must be an object, not {other}"),
                ))
            }
        };
        let prev_result = match obj.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<CniResult>(v.clone())
                    .map_err(|e| CniError::config("prevResult", e))?,
            ),
        };
        Ok(NetConf {
            cni_version: cni_version.to_string(),
            name: name.to_string(),
            control,
            ipam_type: ipam_type.to_string(),
            dns,
            prev_result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"cniVersion": "1.0.0", "name": "pods", "type": "podport-cni",
               "control": "unix:/run/podport.sock",
               "ipam": {"type": "host-local", "subnet": "10.66.0.0/24"}})
    }

    fn parse(v: &Value) -> Result<NetConf, CniError> {
        NetConf::parse(v.to_string().as_bytes())
    }

    #[test]
    fn the_example_configuration_parses() {
        let c = parse(&good()).unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        assert_eq!(c.name, "pods");
        assert_eq!(c.control, Endpoint::Unix("/run/podport.sock".into()));
        assert_eq!(c.ipam_type, "host-local");
        assert_eq!((c.dns, c.prev_result), (None, None));
    }

    /// Each field, removed or spoiled: the code the spec gives and a message naming it.
    #[test]
    fn every_bad_field_is_named() {
        let cases: [(&str, Option<Value>, u32, &str); 11] = [
            ("cniVersion", None, 7, "cniVersion: missing"),
            (
                "cniVersion",
                Some(json!("0.2.0")),
                1,
                "cniVersion: \"0.2.0\" is not supported",
            ),
            ("name", None, 7, "name: missing"),
            ("name", Some(json!("a b")), 7, "name: \"a b\": only letters"),
            ("type", Some(json!(3)), 7, "type: must be a string, not 3"),
            ("control", None, 7, "control: missing"),
            (
                "control",
                Some(json!("/run/x.sock")),
                7,
                "control: bad endpoint",
            ),
            ("ipam", None, 7, "ipam: missing"),
            (
                "ipam",
                Some(json!({"subnet": "10.0.0.0/8"})),
                7,
                "ipam.type: missing",
            ),
            (
                "ipam",
                Some(json!({"type": "../bin/sh"})),
                7,
                "ipam.type: \"../bin/sh\" must be",
            ),
            ("dns", Some(json!([])), 7, "dns: must be an object"),
        ];
        for (field, value, code, want) in cases {
            let mut v = good();
            match value {
                Some(x) => v[field] = x,
                None => {
                    v.as_object_mut().unwrap().remove(field);
                }
            }
            let e = parse(&v).unwrap_err();
            assert_eq!(e.code, code, "{field}: {e}");
            assert!(
                e.msg.starts_with(want),
                "{field}: {e:?} does not start with {want:?}"
            );
        }
    }

    #[test]
    fn what_is_not_a_json_object_fails_to_decode() {
        for input in [&b"{"[..], b"[]", b""] {
            assert_eq!(NetConf::parse(input).unwrap_err().code, code::DECODE);
        }
        assert_eq!(requested_version(b"{"), "1.0.0");
        assert_eq!(requested_version(br#"{"cniVersion":"0.4.0"}"#), "0.4.0");
        assert_eq!(requested_version(br#"{"cniVersion":"9.9.9"}"#), "1.0.0");
    }

    #[test]
    fn a_prev_result_is_read_for_check() {
        let mut v = good();
        v["prevResult"] = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "0a:58:0a:42:00:02", "sandbox": "/run/netns/p"}],
            "ips": [{"address": "10.66.0.2/24", "gateway": "10.66.0.1", "interface": 0}]});
        let prev = parse(&v).unwrap().prev_result.unwrap();
        assert_eq!(prev.interfaces[0].mac, "0a:58:0a:42:00:02");
        assert_eq!(prev.ips[0].address, "10.66.0.2/24");
        v["prevResult"] = json!({"ips": 3});
        assert!(parse(&v).unwrap_err().msg.starts_with("prevResult: "));
    }
}
