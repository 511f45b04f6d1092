// Included by the build script of every crate whose tests need Open vSwitch. It sets
// `cfg(no_ovs)` when those tests cannot run: on a target without OVS (Windows, where the
// Windows build's tests run under Wine) or on a machine without it when `CI` is unset. Such
// tests carry `#[cfg_attr(no_ovs, ignore = "...")]`, so libtest reports them ignored, never
// passed. With `CI` set the cfg is never set: a missing OVS fails the tests instead.

// `in_ci()`: the sandbox library reads `CI` the same way.
include!("ci.rs");

/// What the sandbox starts or runs; the schema is checked apart.
const OVS_PROGRAMS: [&str; 6] = [
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovs-ofctl",
    "ovs-appctl",
];

fn emit_ovs_cfg() {
    println!("cargo::rustc-check-cfg=cfg(no_ovs)");
    println!("cargo::rerun-if-changed=build.rs");
    for var in ["CI", "PATH", "OVS_BIN_DIR", "OVS_SCHEMA"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() != Ok("unix") {
        println!("cargo::rustc-cfg=no_ovs");
        return;
    }
    match missing_ovs_part() {
        None => {}
        Some(missing) if in_ci() => {
            println!("cargo::warning={missing}: the tests that need Open vSwitch will fail (CI is set)");
        }
        Some(missing) => {
            println!("cargo::warning={missing}: the tests that need Open vSwitch are ignored (scripts/install-deps installs it)");
            println!("cargo::rustc-cfg=no_ovs");
        }
    }
}

/// The first part of Open vSwitch not found where `podport_ovs_sandbox::find_ovs` looks
/// ($OVS_BIN_DIR alone, else $PATH and the sbin directories). A path that is missing is
/// watched too: Cargo reruns this script while it is missing, so installing OVS later
/// takes effect without a `cargo clean`.
fn missing_ovs_part() -> Option<String> {
    use std::path::PathBuf;
    let dirs: Vec<PathBuf> = match std::env::var_os("OVS_BIN_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
            .collect(),
    };
    for program in OVS_PROGRAMS {
        match dirs.iter().map(|d| d.join(program)).find(|p| p.is_file()) {
            Some(found) => println!("cargo::rerun-if-changed={}", found.display()),
            None => {
                println!("cargo::rerun-if-changed=/usr/sbin/{program}");
                return Some(format!("Open vSwitch's {program} not found"));
            }
        }
    }
    let schema = std::env::var_os("OVS_SCHEMA")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/usr/share/openvswitch/vswitch.ovsschema"), PathBuf::from);
    println!("cargo::rerun-if-changed={}", schema.display());
    (!schema.is_file()).then(|| format!("the vswitch schema {} not found", schema.display()))
}
