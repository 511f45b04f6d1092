// Sets `cfg(no_ovs)` when the tests that need Open vSwitch cannot run (see the included file).
include!("../ovs-sandbox/build/ovs_cfg.rs");

fn main() {
    emit_ovs_cfg();
    println!("cargo::rerun-if-changed=../ovs-sandbox/build/ovs_cfg.rs");
}
