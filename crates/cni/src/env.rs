//! The runtime's parameters, from the environment: `CNI_COMMAND`, `CNI_CONTAINERID`,
//! `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`. Each is checked for the command that
//! needs it, and an error names the variable.

use std::path::PathBuf;

use crate::error::CniError;

/// What the runtime asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, CniError> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "VERSION" => Ok(Command::Version),
            "" => Err(CniError::env("CNI_COMMAND", "empty")),
            other => Err(CniError::env(
                "CNI_COMMAND",
                format!("unknown command {other:?} (ADD, DEL, CHECK or VERSION)"),
            )),
        }
    }
}

/// The Pod, from `CNI_ARGS` (`K8S_POD_NAMESPACE=..;K8S_POD_NAME=..`, as kubelet passes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
}

/// The parameters of ADD, DEL and CHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// Required for ADD and CHECK; DEL may come without it (the sandbox is gone).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// Required for ADD; DEL and CHECK do not need it.
    pub pod: Option<Pod>,
    pub path: Vec<PathBuf>,
}

/// The environment's value of `var`, `None` when unset or empty.
fn get(lookup: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    lookup(var).filter(|v| !v.is_empty())
}

fn required(lookup: &dyn Fn(&str) -> Option<String>, var: &str) -> Result<String, CniError> {
    get(lookup, var).ok_or_else(|| CniError::env(var, "missing"))
}

impl Env {
    /// Reads and checks the parameters of `command` through `lookup` (the process
    /// environment: `|v| std::env::var(v).ok()`).
    pub fn read(
        command: Command,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Env, CniError> {
        let container_id = required(lookup, "CNI_CONTAINERID")?;
        check_container_id(&container_id)?;
        let ifname = required(lookup, "CNI_IFNAME")?;
        check_ifname(&ifname).map_err(|e| CniError::env("CNI_IFNAME", e))?;
        let netns = match get(lookup, "CNI_NETNS") {
            Some(ns) if !ns.starts_with('/') => {
                return Err(CniError::env(
                    "CNI_NETNS",
                    format!("{ns:?} is not an absolute path"),
                ))
            }
            Some(ns) => Some(PathBuf::from(ns)),
            None if command == Command::Del => None,
            None => return Err(CniError::env("CNI_NETNS", "missing")),
        };
        let path: Vec<PathBuf> = std::env::split_paths(&required(lookup, "CNI_PATH")?)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let pod = parse_cni_args(&get(lookup, "CNI_ARGS").unwrap_or_default())?;
        if command == Command::Add && pod.is_none() {
            return Err(CniError::env(
                "CNI_ARGS",
                "K8S_POD_NAMESPACE and K8S_POD_NAME are required for ADD",
            ));
        }
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
            pod,
            path,
        })
    }
}

/// The spec's rule: alphanumerics, `_`, `.` and `-`, starting with an alphanumeric.
fn check_container_id(id: &str) -> Result<(), CniError> {
    let first_ok = id.starts_with(|c: char| c.is_ascii_alphanumeric());
    let rest_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(CniError::env(
            "CNI_CONTAINERID",
            format!(
                "{id:?}: only letters, digits, '_', '.' and '-', starting with a letter or digit"
            ),
        ))
    }
}

/// A Linux interface name: 1 to 15 bytes, no `/`, `:` or white space, not `.` or `..`.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?} must have 1 to 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not an interface name"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!("{name:?} may not contain '/', ':' or white space"));
    }
    Ok(())
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`. Keys other than the Pod's are ignored
/// (kubelet also passes `IgnoreUnknown=1` and `K8S_POD_INFRA_CONTAINER_ID`). The Pod is
/// `None` when neither of its keys is there, an error when only one is.
pub fn parse_cni_args(args: &str) -> Result<Option<Pod>, CniError> {
    let (mut namespace, mut name) = (None, None);
    for pair in args.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CniError::env(
                "CNI_ARGS",
                format!("{pair:?} is not KEY=VALUE"),
            ));
        };
        let slot = match key {
            "K8S_POD_NAMESPACE" => &mut namespace,
            "K8S_POD_NAME" => &mut name,
            _ => continue,
        };
        if value.is_empty() {
            return Err(CniError::env("CNI_ARGS", format!("{key} is empty")));
        }
        *slot = Some(value.to_string());
    }
    match (namespace, name) {
        (Some(namespace), Some(name)) => Ok(Some(Pod { namespace, name })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(CniError::env("CNI_ARGS", "K8S_POD_NAME is missing")),
        (None, Some(_)) => Err(CniError::env("CNI_ARGS", "K8S_POD_NAMESPACE is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const FULL: [(&str, &str); 5] = [
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/pod"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=abc123",
        ),
    ];

    #[test]
    fn commands_parse_and_unknown_ones_name_the_variable() {
        assert_eq!(Command::parse("ADD"), Ok(Command::Add));
        assert_eq!(Command::parse("VERSION"), Ok(Command::Version));
        let e = Command::parse("add").unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(
            e.msg.starts_with("CNI_COMMAND: unknown command \"add\""),
            "{e}"
        );
    }

    #[test]
    fn a_full_add_environment_reads() {
        let env = Env::read(Command::Add, &env_of(&FULL)).unwrap();
        assert_eq!(env.container_id, "abc123");
        assert_eq!(env.netns, Some(PathBuf::from("/var/run/netns/pod")));
        assert_eq!(env.ifname, "eth0");
        assert_eq!(
            env.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(
            env.pod,
            Some(Pod {
                namespace: "default".into(),
                name: "web-1".into()
            })
        );
    }

    /// Each variable, removed or spoiled, gives code 4 and a message that starts with its name.
    #[test]
    fn every_bad_variable_is_named() {
        let cases: [(Command, &str, Option<&str>, &str); 9] = [
            (Command::Add, "CNI_CONTAINERID", None, "missing"),
            (Command::Add, "CNI_CONTAINERID", Some("-x"), "starting with"),
            (Command::Add, "CNI_CONTAINERID", Some("a/b"), "only letters"),
            (
                Command::Add,
                "CNI_IFNAME",
                Some("a-very-long-name0"),
                "1 to 15 bytes",
            ),
            (Command::Add, "CNI_IFNAME", Some("eth:0"), "may not contain"),
            (Command::Add, "CNI_NETNS", None, "missing"),
            (
                Command::Check,
                "CNI_NETNS",
                Some("pod"),
                "not an absolute path",
            ),
            (Command::Add, "CNI_PATH", None, "missing"),
            (Command::Add, "CNI_ARGS", None, "required for ADD"),
        ];
        for (command, var, value, want) in cases {
            let mut pairs: Vec<(&str, &str)> =
                FULL.iter().filter(|(k, _)| *k != var).copied().collect();
            if let Some(v) = value {
                pairs.push((var, v));
            }
            let e = Env::read(command, &env_of(&pairs)).unwrap_err();
            assert_eq!(e.code, code::INVALID_ENV, "{e}");
            assert!(e.msg.starts_with(&format!("{var}: ")), "{var}: {e}");
            assert!(e.msg.contains(want), "{var}: {e} lacks {want:?}");
        }
    }

    #[test]
    fn del_needs_neither_the_netns_nor_the_pod() {
        let pairs: Vec<_> = FULL
            .iter()
            .filter(|(k, _)| !matches!(*k, "CNI_NETNS" | "CNI_ARGS"))
            .copied()
            .collect();
        let env = Env::read(Command::Del, &env_of(&pairs)).unwrap();
        assert_eq!((env.netns, env.pod), (None, None));
    }

    #[test]
    fn cni_args_need_both_pod_keys_or_neither() {
        assert_eq!(parse_cni_args(""), Ok(None));
        assert_eq!(parse_cni_args("IgnoreUnknown=1"), Ok(None));
        for (args, want) in [
            ("K8S_POD_NAMESPACE=default", "K8S_POD_NAME is missing"),
            ("K8S_POD_NAME=web", "K8S_POD_NAMESPACE is missing"),
            ("K8S_POD_NAME=;K8S_POD_NAMESPACE=x", "K8S_POD_NAME is empty"),
            ("K8S_POD_NAME", "\"K8S_POD_NAME\" is not KEY=VALUE"),
        ] {
            let e = parse_cni_args(args).unwrap_err();
            assert_eq!(e.msg, format!("CNI_ARGS: {want}"), "{args}");
        }
    }
}
