// Sets `cfg(no_ovs)` when the tests that need Open vSwitch cannot run (see the included file).
include!("../ovs-sandbox/build/ovs_cfg.rs");
// Sets `cfg(no_netns)` when the dataplane tests cannot run (see the included file).
include!("../ovs-sandbox/build/netns_cfg.rs");

/// What tests/prometheus.rs runs, from Debian's `prometheus` package.
const PROMETHEUS_PROGRAMS: [&str; 2] = ["prometheus", "promtool"];

/// Sets `cfg(no_prometheus)` as `cfg(no_ovs)` is set: on a target that is not Unix, or when
/// `prometheus` or `promtool` is not on PATH and `CI` is unset. With `CI` set a missing one
/// fails those tests instead (with a warning here).
fn emit_prometheus_cfg() {
    println!("cargo::rustc-check-cfg=cfg(no_prometheus)");
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() != Ok("unix") {
        println!("cargo::rustc-cfg=no_prometheus");
        return;
    }
    let ci = in_ci();
    let dirs: Vec<_> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    for program in PROMETHEUS_PROGRAMS {
        match dirs.iter().map(|d| d.join(program)).find(|p| p.is_file()) {
            Some(found) => println!("cargo::rerun-if-changed={}", found.display()),
            None => {
                // Watched while missing, so installing it later takes effect.
                println!("cargo::rerun-if-changed=/usr/bin/{program}");
                if ci {
                    println!("cargo::warning={program} not found: the tests that need Prometheus will fail (CI is set)");
                } else {
                    println!("cargo::warning={program} not found: the tests that need Prometheus are ignored (scripts/install-deps installs it)");
                    println!("cargo::rustc-cfg=no_prometheus");
                }
                return;
            }
        }
    }
}

fn main() {
    emit_ovs_cfg();
    emit_netns_cfg();
    emit_prometheus_cfg();
    println!("cargo::rerun-if-changed=../ovs-sandbox/build/ovs_cfg.rs");
    println!("cargo::rerun-if-changed=../ovs-sandbox/build/netns_cfg.rs");
}
