// Sets `cfg(no_ovs)` when the tests that need Open vSwitch cannot run (see the included file).
include!("../ovs-sandbox/build/ovs_cfg.rs");
// Sets `cfg(no_netns)` when the tests that need the real datapath cannot run (see the included
// file).
include!("../ovs-sandbox/build/netns_cfg.rs");

fn main() {
    emit_ovs_cfg();
    emit_netns_cfg();
    println!("cargo::rerun-if-changed=../ovs-sandbox/build/ovs_cfg.rs");
    println!("cargo::rerun-if-changed=../ovs-sandbox/build/netns_cfg.rs");
}
