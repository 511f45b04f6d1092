// Sets `cfg(no_ovs)` when the tests that need Open vSwitch cannot run (see the included file).
include!("../ovs-sandbox/build/ovs_cfg.rs");
// Sets `cfg(no_netns)` when network namespaces cannot be used (not Linux, not root, no `ip`).
include!("../ovs-sandbox/build/netns_cfg.rs");

/// Where Debian's `containernetworking-plugins` puts the reference plugins.
const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";
/// Where Debian's `golang-github-appc-cni-dev` puts libcni's sources (GOPATH layout).
const GOPATH_DIR: &str = "/usr/share/gocode";

/// Sets `cfg(NAME)` when one of `paths` is missing, as `cfg(no_ovs)` is set: only with `CI`
/// unset (with `CI` set the tests fail instead, with a warning here), and always on a target
/// that is not Unix.
fn emit_missing_cfg(name: &str, what: &str, paths: &[String]) {
    println!("cargo::rustc-check-cfg=cfg({name})");
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() != Ok("unix") {
        println!("cargo::rustc-cfg={name}");
        return;
    }
    for path in paths {
        // Watched while missing too, so installing it later takes effect.
        println!("cargo::rerun-if-changed={path}");
    }
    if let Some(missing) = paths.iter().find(|p| !std::path::Path::new(p).exists()) {
        if in_ci() {
            println!("cargo::warning={missing} not found: the tests that need {what} will fail (CI is set)");
        } else {
            println!("cargo::warning={missing} not found: the tests that need {what} are ignored (scripts/install-deps installs it)");
            println!("cargo::rustc-cfg={name}");
        }
    }
}

/// `go` on PATH, else where Debian's `golang-go` puts it (the path watched while missing).
fn go_path() -> String {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
        .map_or_else(|| "/usr/bin/go".to_string(), |p| p.display().to_string())
}

fn main() {
    emit_ovs_cfg();
    emit_netns_cfg();
    emit_missing_cfg(
        "no_cni_plugins",
        "the reference CNI plugins (host-local)",
        &[format!("{CNI_PLUGIN_DIR}/host-local")],
    );
    emit_missing_cfg(
        "no_libcni",
        "Go and libcni's sources",
        &[
            go_path(),
            format!("{GOPATH_DIR}/src/github.com/containernetworking/cni/libcni"),
        ],
    );
    println!("cargo::rerun-if-changed=../ovs-sandbox/build/ovs_cfg.rs");
    println!("cargo::rerun-if-changed=../ovs-sandbox/build/netns_cfg.rs");
}
