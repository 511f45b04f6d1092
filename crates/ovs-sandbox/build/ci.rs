// The one test of the `CI` variable, shared by the sandbox library and (through ovs_cfg.rs)
// the build scripts, so a CI run is recognised the same way everywhere.

/// Whether the environment variable `CI` says this is a CI run: set to
/// anything but empty, `0` or `false`.
fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"),
        Err(std::env::VarError::NotPresent) => false,
        // Set but not unicode: someone set it, so take it as true.
        Err(std::env::VarError::NotUnicode(_)) => true,
    }
}
