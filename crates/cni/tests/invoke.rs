//! The built plugin run as a runtime runs it: VERSION, and the errors of a bad configuration,
//! a bad environment, a missing IPAM plugin and an agent that is not there (the address
//! host-local gave is released again). No agent runs here.

use serde_json::json;

mod support;
use support::{container_id, leases, net_conf, run_plugin, CNI_PLUGIN_DIR};

#[test]
fn version_lists_the_supported_versions_in_the_version_asked_for() {
    for (stdin, want) in [
        (r#"{"cniVersion":"0.4.0"}"#, "0.4.0"),
        (r#"{"cniVersion":"1.0.0"}"#, "1.0.0"),
        ("", "1.0.0"),
    ] {
        let run = run_plugin(&[("CNI_COMMAND", "VERSION")], stdin);
        run.ok();
        assert_eq!(
            run.json(),
            json!({"cniVersion": want,
                   "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}),
            "{stdin}"
        );
    }
}

/// An ADD environment, complete.
fn add_env(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", "ADD".into()),
        ("CNI_CONTAINERID", id.into()),
        ("CNI_NETNS", "/proc/self/ns/net".into()),
        ("CNI_IFNAME", "eth0".into()),
        ("CNI_PATH", CNI_PLUGIN_DIR.into()),
        // As kubelet passes them: host-local refuses unknown keys without IgnoreUnknown.
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1".into(),
        ),
    ]
}

fn run_with(env: &[(&'static str, String)], stdin: &str) -> support::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_plugin(&env, stdin)
}

#[test]
fn a_bad_configuration_is_refused_with_the_spec_code_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = net_conf("unix:/nonexistent/ctl.sock", "10.67.0.0/24", dir.path());
    let env = add_env(&container_id(1));
    let mut old = good.clone();
    old["cniVersion"] = json!("0.2.0");
    let mut no_control = good.clone();
    no_control.as_object_mut().unwrap().remove("control");
    let mut bad_ipam = good.clone();
    bad_ipam["ipam"] = json!("host-local");
    for (stdin, code, want) in [
        ("{\"cniVersion\":".to_string(), 6, "not JSON"),
        (old.to_string(), 1, "cniVersion: \"0.2.0\" is not supported"),
        (no_control.to_string(), 7, "control: missing"),
        (bad_ipam.to_string(), 7, "ipam: must be an object"),
    ] {
        let msg = run_with(&env, &stdin).error(code);
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    }
    assert!(leases(dir.path()).is_empty());
}

#[test]
fn a_bad_environment_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let stdin = net_conf("unix:/nonexistent/ctl.sock", "10.67.0.0/24", dir.path()).to_string();
    let env = add_env(&container_id(2));
    let without =
        |var: &str| -> Vec<_> { env.iter().filter(|(k, _)| *k != var).cloned().collect() };
    let mut unknown = without("CNI_COMMAND");
    unknown.push(("CNI_COMMAND", "UPDATE".into()));
    let mut long = without("CNI_IFNAME");
    long.push(("CNI_IFNAME", "sixteen-bytes-xx".into()));
    for (env, want) in [
        (without("CNI_COMMAND"), "CNI_COMMAND: empty"),
        (unknown, "CNI_COMMAND: unknown command \"UPDATE\""),
        (without("CNI_CONTAINERID"), "CNI_CONTAINERID: missing"),
        (
            long,
            "CNI_IFNAME: \"sixteen-bytes-xx\" must have 1 to 15 bytes",
        ),
        (without("CNI_PATH"), "CNI_PATH: missing"),
        (
            without("CNI_ARGS"),
            "CNI_ARGS: K8S_POD_NAMESPACE and K8S_POD_NAME are required",
        ),
    ] {
        let msg = run_with(&env, &stdin).error(4);
        assert!(
            msg.starts_with(want),
            "{msg:?} does not start with {want:?}"
        );
    }
    assert!(leases(dir.path()).is_empty());
}

#[test]
fn check_without_the_previous_result_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stdin = net_conf("unix:/nonexistent/ctl.sock", "10.67.0.0/24", dir.path()).to_string();
    let mut env = add_env(&container_id(3));
    env[0].1 = "CHECK".into();
    let msg = run_with(&env, &stdin).error(7);
    assert!(msg.starts_with("prevResult: missing"), "{msg}");
}

#[test]
fn an_ipam_plugin_missing_from_cni_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let stdin = net_conf("unix:/nonexistent/ctl.sock", "10.67.0.0/24", dir.path()).to_string();
    let mut env = add_env(&container_id(4));
    env[4].1 = dir.path().display().to_string();
    let run = run_with(&env, &stdin);
    let msg = run.error(101);
    assert!(
        msg.contains("\"host-local\" (ipam.type) is not in CNI_PATH"),
        "{msg}"
    );
    assert!(run.json()["details"].as_str().unwrap().contains(&env[4].1));
}

/// host-local gives an address, the agent cannot be reached: "try again later" (11), and the
/// address is released, so a retry does not leak one.
#[test]
#[cfg_attr(
    no_cni_plugins,
    ignore = "needs the reference CNI plugins (host-local) in /usr/lib/cni"
)]
fn an_unreachable_agent_means_try_again_later_and_the_address_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let control = format!("unix:{}", dir.path().join("no-agent.sock").display());
    let data = dir.path().join("ipam");
    let stdin = net_conf(&control, "10.67.0.0/24", &data).to_string();
    let env = add_env(&container_id(5));
    let run = run_with(&env, &stdin);
    let msg = run.error(11);
    assert!(msg.starts_with("the agent's add (at unix:"), "{msg}");
    assert!(msg.contains("cannot reach the agent"), "{msg}");
    assert!(
        data.join("pods").is_dir(),
        "host-local never ran: {}",
        data.display()
    );
    assert_eq!(
        leases(&data),
        Vec::<String>::new(),
        "the address was not released"
    );
    // The undo's agent `del` failed too, and says so.
    assert!(
        run.json()["details"]
            .as_str()
            .unwrap_or("")
            .contains("undoing: the agent's del"),
        "{run:?}"
    );
}
