//! `podport-lab ofwatch-sandbox` as a user runs it: the real `podport ofwatch` (found next
//! to `podport-lab`, so build `podport` too: `cargo test -p podport -p podport-lab` does) on
//! a private OVS whose ports the lab changes.
#![cfg(unix)]

use std::process::Command;

use serde_json::Value;

#[test]
#[cfg_attr(
    no_ovs,
    ignore = "needs Open vSwitch, which this target or machine lacks"
)]
fn ofwatch_prints_the_port_list_then_every_port_status_of_the_script_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_podport-lab"))
        .args(["ofwatch-sandbox", "--json", "--demo-ports", "3"])
        .output()
        .expect("run podport-lab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        out.status
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for v in &lines {
        for key in ["kind", "port_no", "name", "state", "config", "hw_addr"] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
    }
    assert_eq!(
        (&lines[0]["kind"], &lines[0]["name"]),
        (&Value::from("port_desc"), &Value::from("br-int")),
    );
    assert_eq!(lines[0]["port_no"], 0xffff_fffe_u32);
    let summary: Vec<(String, String, Vec<String>)> = lines[1..]
        .iter()
        .map(|v| {
            assert_eq!(v["kind"], "port_status", "{v}");
            let state = v["state"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            (
                v["name"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap().to_string(),
                state,
            )
        })
        .collect();
    let s = |name: &str, reason: &str, live: bool| {
        (
            name.to_string(),
            reason.to_string(),
            if live {
                vec!["LIVE".to_string()]
            } else {
                vec![]
            },
        )
    };
    assert_eq!(
        summary,
        vec![
            s("vnic-1", "add", false),
            s("vnic-1", "modify", true),
            s("vnic-2", "add", false),
            s("vnic-2", "modify", true),
            s("vnic-3", "add", false),
            s("vnic-3", "modify", true),
            // vnic-1 retyped to internal: same number, new netdev.
            s("vnic-1", "delete", true),
            s("vnic-1", "add", false),
            s("vnic-1", "modify", true),
            s("vnic-2", "delete", true),
        ]
    );
}
