//! Where the `podport` binary the lab drives is: the lab measures and shows the real agent
//! and `ofwatch`, not a copy of them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// `$PODPORT_BIN`, else the `podport` next to this executable (cargo builds both into the same
/// target directory), or an error saying how to build it.
pub(crate) fn podport_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PODPORT_BIN").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("PODPORT_BIN is {}, which is not a file", p.display());
        }
        return Ok(p);
    }
    let me = std::env::current_exe().context("locating the podport-lab executable")?;
    let name = format!("podport{}", std::env::consts::EXE_SUFFIX);
    let p = me.with_file_name(&name);
    if p.is_file() {
        return Ok(p);
    }
    let release = if cfg!(debug_assertions) {
        ""
    } else {
        " --release"
    };
    bail!(
        "the podport binary is needed and was not found at {} (next to podport-lab).\n\
         Build both with `cargo build{release} -p podport -p podport-lab`, or set PODPORT_BIN \
         to a podport binary.",
        p.display()
    )
}
