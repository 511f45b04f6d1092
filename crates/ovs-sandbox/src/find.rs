//! Locating the Open vSwitch binaries and the OVSDB schema.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// Where the schema of Debian's `openvswitch-switch` package lives.
pub const DEFAULT_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Directories searched after `$PATH`: the daemons live in `sbin`, which a
/// non-root user's `$PATH` often lacks on Debian.
const SBIN_FALLBACK: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The absolute paths of the Open vSwitch programs and schema a sandbox needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsBinaries {
    /// `ovsdb-tool`, creates the database file.
    pub ovsdb_tool: PathBuf,
    /// `ovsdb-server`, the database daemon.
    pub ovsdb_server: PathBuf,
    /// `ovs-vswitchd`, the switch daemon.
    pub ovs_vswitchd: PathBuf,
    /// `ovs-vsctl`, the OVSDB configuration tool.
    pub ovs_vsctl: PathBuf,
    /// `ovs-ofctl`, the OpenFlow tool.
    pub ovs_ofctl: PathBuf,
    /// `ovs-appctl`, talks to a daemon's unixctl socket.
    pub ovs_appctl: PathBuf,
    /// `vswitch.ovsschema`.
    pub schema: PathBuf,
}

/// Looks up the Open vSwitch binaries and the vswitch schema.
///
/// Binaries come from `$OVS_BIN_DIR` when it is set (and only from there, so
/// a deliberately chosen build is never mixed with the system's), otherwise
/// from `$PATH` followed by the usual `sbin` directories. The schema is
/// `$OVS_SCHEMA` when set, else [`DEFAULT_SCHEMA`].
pub fn find_ovs() -> Result<OvsBinaries, SandboxError> {
    find_ovs_in(
        std::env::var_os("OVS_BIN_DIR").filter(|v| !v.is_empty()),
        std::env::var_os("PATH"),
        std::env::var_os("OVS_SCHEMA").filter(|v| !v.is_empty()),
    )
}

/// [`find_ovs`] with its environment passed in, so it can be tested without
/// mutating the process environment (tests run in parallel).
pub(crate) fn find_ovs_in(
    bin_dir: Option<OsString>,
    path: Option<OsString>,
    schema: Option<OsString>,
) -> Result<OvsBinaries, SandboxError> {
    let dirs: Vec<PathBuf> = match &bin_dir {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let mut dirs: Vec<PathBuf> = path
                .as_ref()
                .map(|p| std::env::split_paths(p).collect())
                .unwrap_or_default();
            dirs.extend(SBIN_FALLBACK.iter().map(PathBuf::from));
            dirs
        }
    };
    let searched = if bin_dir.is_some() {
        format!("$OVS_BIN_DIR={}", join_dirs(&dirs))
    } else {
        format!("$PATH and sbin: {}", join_dirs(&dirs))
    };
    let lookup = |name: &str| {
        find_in(&dirs, name).ok_or_else(|| SandboxError::OvsNotFound {
            what: name.to_owned(),
            searched: searched.clone(),
        })
    };
    let schema = match schema {
        Some(s) => PathBuf::from(s),
        None => PathBuf::from(DEFAULT_SCHEMA),
    };
    let bins = OvsBinaries {
        ovsdb_tool: lookup("ovsdb-tool")?,
        ovsdb_server: lookup("ovsdb-server")?,
        ovs_vswitchd: lookup("ovs-vswitchd")?,
        ovs_vsctl: lookup("ovs-vsctl")?,
        ovs_ofctl: lookup("ovs-ofctl")?,
        ovs_appctl: lookup("ovs-appctl")?,
        schema,
    };
    if !bins.schema.is_file() {
        return Err(SandboxError::OvsNotFound {
            what: "the vswitch schema".to_owned(),
            searched: bins.schema.display().to_string(),
        });
    }
    tracing::debug!(?bins, "found Open vSwitch");
    Ok(bins)
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().find_map(|dir| {
        candidates(name)
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| is_executable(p))
    })
}

#[cfg(windows)]
fn candidates(name: &str) -> Vec<String> {
    vec![format!("{name}.exe"), name.to_owned()]
}

#[cfg(not(windows))]
fn candidates(name: &str) -> Vec<String> {
    vec![name.to_owned()]
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bin_dir_reports_the_install_hint() {
        let empty = tempfile::tempdir().expect("tempdir");
        let err = find_ovs_in(Some(empty.path().into()), None, None).expect_err("nothing there");
        assert!(err.is_ovs_not_found(), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("apt-get install openvswitch-switch"), "{msg}");
        assert!(msg.contains("ovsdb-tool"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn finds_executables_in_bin_dir_and_checks_the_schema() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "ovsdb-tool",
            "ovsdb-server",
            "ovs-vswitchd",
            "ovs-vsctl",
            "ovs-ofctl",
            "ovs-appctl",
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let missing_schema = dir.path().join("nope.ovsschema");
        let err = find_ovs_in(
            Some(dir.path().into()),
            None,
            Some(missing_schema.clone().into()),
        )
        .expect_err("no schema");
        assert!(err.to_string().contains("schema"), "{err}");

        let schema = dir.path().join("vswitch.ovsschema");
        std::fs::write(&schema, "{}").expect("write");
        let bins = find_ovs_in(Some(dir.path().into()), None, Some(schema.clone().into()))
            .expect("all present");
        assert_eq!(bins.ovs_vswitchd, dir.path().join("ovs-vswitchd"));
        assert_eq!(bins.schema, schema);
    }

    #[cfg(unix)]
    #[test]
    fn non_executable_files_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ovsdb-tool"), "").expect("write");
        let err = find_ovs_in(Some(dir.path().into()), None, None).expect_err("not executable");
        assert!(err.is_ovs_not_found());
    }
}
