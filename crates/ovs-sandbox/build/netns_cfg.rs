// Included after ovs_cfg.rs (it uses its `in_ci()`) by the build script of every crate whose
// tests send real packets between network namespaces. It sets `cfg(no_netns)` when those tests
// cannot run: on a target that is not Linux, or, with `CI` unset, when the build does not run
// as root or `ip` (iproute2) or `ping` (iputils-ping) is missing. Such tests carry
// `#[cfg_attr(any(no_ovs, no_netns), ignore = "...")]`, so libtest reports them ignored, never
// passed. With `CI` set the cfg is never set on Linux: what is missing fails the tests instead.

/// What the dataplane tests run besides Open vSwitch.
const NETNS_PROGRAMS: [&str; 2] = ["ip", "ping"];

fn emit_netns_cfg() {
    println!("cargo::rustc-check-cfg=cfg(no_netns)");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        println!("cargo::rustc-cfg=no_netns");
        return;
    }
    match missing_netns_part() {
        None => {}
        Some(missing) if in_ci() => {
            println!("cargo::warning={missing}: the dataplane tests will fail (CI is set)");
        }
        Some(missing) => {
            println!("cargo::warning={missing}: the dataplane tests are ignored (they need root; scripts/install-deps installs the tools)");
            println!("cargo::rustc-cfg=no_netns");
        }
    }
}

/// The first thing missing for network namespaces: root, then the programs (watched while
/// missing, so installing them later takes effect without a `cargo clean`).
fn missing_netns_part() -> Option<String> {
    use std::path::PathBuf;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid:\treal\teffective\tsaved\tfs": the effective uid decides.
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .map(str::to_owned);
    if euid.as_deref() != Some("0") {
        return Some("not running as root".to_owned());
    }
    let dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .collect();
    for program in NETNS_PROGRAMS {
        match dirs.iter().map(|d| d.join(program)).find(|p| p.is_file()) {
            Some(found) => println!("cargo::rerun-if-changed={}", found.display()),
            None => {
                println!("cargo::rerun-if-changed=/usr/bin/{program}");
                return Some(format!("{program} not found"));
            }
        }
    }
    None
}
