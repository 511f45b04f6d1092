//! Windows named-pipe instances for [`crate::listen`]: every instance carries a security
//! descriptor that lets only SYSTEM and the Administrators group open the pipe.

use std::io;

use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{
    GetLastError, LocalFree, ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY, ERROR_SEM_TIMEOUT,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};
use windows_sys::Win32::System::Pipes::WaitNamedPipeW;

/// The control pipe's DACL: protected (nothing inherited), full access for LocalSystem (SY)
/// and the built-in Administrators group (BA), nothing for anyone else. The control protocol
/// has no authentication of its own; whoever opens the pipe can add and delete Pod ports.
pub(crate) const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// A security descriptor allocated by `ConvertStringSecurityDescriptorToSecurityDescriptorW`,
/// freed with `LocalFree` on drop.
struct SecurityDescriptor(PSECURITY_DESCRIPTOR);

impl SecurityDescriptor {
    fn from_sddl(sddl: &str) -> io::Result<SecurityDescriptor> {
        let wide: Vec<u16> = sddl.encode_utf16().chain(std::iter::once(0)).collect();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the call; `sd` is a
        // valid place for the out pointer; the size out-parameter is optional (null).
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || sd.is_null() {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot build the security descriptor {sddl}: {e}"),
            ));
        }
        Ok(SecurityDescriptor(sd))
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from ConvertStringSecurityDescriptorToSecurityDescriptorW,
        // which allocates with LocalAlloc, and is freed exactly once, here.
        unsafe {
            LocalFree(self.0);
        }
    }
}

/// Whether a pipe called `name` exists, asked without connecting to it: WaitNamedPipeW
/// succeeds when an instance is free and times out when all are busy; a missing pipe is
/// ERROR_FILE_NOT_FOUND. Anything else counts as "no" and the first-instance flag decides.
fn pipe_exists(name: &str) -> bool {
    let wide: Vec<u16> = name.encode_utf16().chain(std::iter::once(0)).collect();
    // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the call.
    let free = unsafe { WaitNamedPipeW(wide.as_ptr(), 1) };
    // SAFETY: no other call on this thread in between.
    free != 0 || unsafe { GetLastError() } == ERROR_SEM_TIMEOUT
}

fn in_use(name: &str, detail: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "npipe:{name} is already in use by another process (or another listener in this \
             one){detail}"
        ),
    )
}

/// Creates one server instance of the pipe `name`, locked down by [`PIPE_SDDL`], rejecting
/// remote clients. `first`: the instance must create the pipe (`FILE_FLAG_FIRST_PIPE_INSTANCE`),
/// so that a pipe another process already owns is refused instead of joined.
pub(crate) fn create_instance(name: &str, first: bool) -> io::Result<NamedPipeServer> {
    create_instance_with(name, first, PIPE_SDDL)
}

/// [`create_instance`] with another descriptor (the tests use one that lets no one in).
fn create_instance_with(name: &str, first: bool, sddl: &str) -> io::Result<NamedPipeServer> {
    // Windows refuses an existing pipe to FILE_FLAG_FIRST_PIPE_INSTANCE; Wine 8 ignores the
    // flag and would let us join it. Looking first gives the same clear error on both; the
    // flag still closes the race between the look and the creation on Windows.
    if first && pipe_exists(name) {
        return Err(in_use(name, ""));
    }
    let sd = SecurityDescriptor::from_sddl(sddl)?;
    let mut attrs = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: sd.0,
        bInheritHandle: 0,
    };
    // SAFETY: `attrs` is a valid SECURITY_ATTRIBUTES whose descriptor (owned by `sd`) lives
    // until after the call; CreateNamedPipeW copies it into the pipe and keeps no pointer.
    let created = unsafe {
        ServerOptions::new()
            .first_pipe_instance(first)
            .reject_remote_clients(true)
            .create_with_security_attributes_raw(
                name,
                (&mut attrs as *mut SECURITY_ATTRIBUTES).cast(),
            )
    };
    drop(sd);
    created.map_err(|e| {
        // With FILE_FLAG_FIRST_PIPE_INSTANCE, Windows reports a pipe that exists already as
        // ERROR_ACCESS_DENIED (ERROR_PIPE_BUSY when it has no instance left to give).
        let code = e.raw_os_error();
        if first
            && (code == Some(ERROR_ACCESS_DENIED as i32) || code == Some(ERROR_PIPE_BUSY as i32))
        {
            in_use(name, &format!(": {e}"))
        } else {
            io::Error::new(
                e.kind(),
                format!("cannot create an instance of the named pipe npipe:{name}: {e}"),
            )
        }
    })
}
