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

/// Run under Wine by `cargo test --target x86_64-pc-windows-gnu` (see scripts/wine-run). On
/// Windows they must run elevated: the pipes admit SYSTEM and Administrators only, and a
/// non-elevated token holds the Administrators SID for deny only. Wine 8 differs from Windows
/// in three ways, each checked as Wine behaves (so a change in Wine is noticed): it ignores
/// FILE_FLAG_FIRST_PIPE_INSTANCE, does not check a pipe's DACL when a client opens it, and
/// reports an ACE's GENERIC_ALL as written instead of mapped to the pipe's own rights.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{connect, listen, BoxStream, Endpoint, Listener, ListenerInner};
    use std::os::windows::io::AsRawHandle;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, GetSecurityInfo, SE_KERNEL_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetAce, GetSecurityDescriptorControl, ACCESS_ALLOWED_ACE, ACL, DACL_SECURITY_INFORMATION,
        SE_DACL_PRESENT, SE_DACL_PROTECTED,
    };

    /// Every test ends within this, or fails saying so.
    const BOUND: Duration = Duration::from_secs(30);

    /// A pipe name no other test (nor an earlier run) uses.
    fn unique_pipe(tag: &str) -> Endpoint {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!(
            "npipe:podport-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        )
        .parse()
        .unwrap()
    }

    async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(BOUND, f)
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
    }

    /// Answers each line with `echo: LINE` until the client goes; errors end only this
    /// connection.
    async fn echo(stream: BoxStream) {
        let (rd, mut wr) = tokio::io::split(stream);
        let mut lines = BufReader::new(rd).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if wr
                .write_all(format!("echo: {line}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Accepts and echoes until an accept fails; the failure is the task's result.
    fn serve(listener: Listener) -> tokio::task::JoinHandle<io::Error> {
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(s) => {
                        tokio::spawn(echo(s));
                    }
                    Err(e) => return e,
                }
            }
        })
    }

    async fn ask(ep: &Endpoint, line: &str) -> String {
        let s = connect(ep)
            .await
            .unwrap_or_else(|e| panic!("connect {ep}: {e}"));
        let (rd, mut wr) = tokio::io::split(s);
        wr.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(rd).read_line(&mut answer).await.unwrap();
        answer
    }

    fn assert_serving(server: &tokio::task::JoinHandle<io::Error>) {
        assert!(
            !server.is_finished(),
            "the server's accept loop ended (an accept failed)"
        );
    }

    #[tokio::test]
    async fn connects_and_listens_round_trip() {
        let ep = unique_pipe("rt");
        let l = listen(&ep).await.unwrap();
        assert_eq!(l.endpoint(), &ep);
        assert!(!l.reachable_remotely());
        let server = serve(l);
        bounded("the round trip", async {
            assert_eq!(ask(&ep, "hello").await, "echo: hello\n");
            // The instance made for the next client works too.
            assert_eq!(ask(&ep, "again").await, "echo: again\n");
        })
        .await;
        assert_serving(&server);
        server.abort();
    }

    #[tokio::test]
    async fn many_clients_at_once_each_get_their_own_answer() {
        let ep = unique_pipe("many");
        let server = serve(listen(&ep).await.unwrap());
        bounded("20 concurrent clients", async {
            let mut clients = tokio::task::JoinSet::new();
            for i in 0..20 {
                let ep = ep.clone();
                clients.spawn(async move {
                    // Two lines each, so conversations overlap, not just connections.
                    let s = connect(&ep)
                        .await
                        .unwrap_or_else(|e| panic!("client {i}: {e}"));
                    let (rd, mut wr) = tokio::io::split(s);
                    let mut rd = BufReader::new(rd);
                    let mut got = Vec::new();
                    for k in 0..2 {
                        wr.write_all(format!("client {i} line {k}\n").as_bytes())
                            .await
                            .unwrap();
                        let mut answer = String::new();
                        rd.read_line(&mut answer).await.unwrap();
                        got.push(answer);
                    }
                    (i, got)
                });
            }
            let mut seen = 0;
            while let Some(done) = clients.join_next().await {
                let (i, got) = done.unwrap();
                assert_eq!(
                    got,
                    [
                        format!("echo: client {i} line 0\n"),
                        format!("echo: client {i} line 1\n")
                    ]
                );
                seen += 1;
            }
            assert_eq!(seen, 20);
        })
        .await;
        assert_serving(&server);
        server.abort();
    }

    #[tokio::test]
    async fn clients_that_vanish_do_not_stop_the_server() {
        let ep = unique_pipe("vanish");
        let l = listen(&ep).await.unwrap();
        // One connects and goes before the server has accepted anything.
        drop(connect(&ep).await.unwrap());
        let server = serve(l);
        bounded("serving past vanished clients", async {
            for round in 0..3 {
                // One goes mid-line, one right after asking (its answer has no reader),
                // one mid-conversation after an answer.
                let mut s = connect(&ep).await.unwrap();
                s.write_all(b"half a li").await.unwrap();
                drop(s);
                let mut s = connect(&ep).await.unwrap();
                s.write_all(b"no one reads this answer\n").await.unwrap();
                drop(s);
                let s = connect(&ep).await.unwrap();
                let (rd, mut wr) = tokio::io::split(s);
                let mut rd = BufReader::new(rd);
                wr.write_all(b"first\n").await.unwrap();
                let mut answer = String::new();
                rd.read_line(&mut answer).await.unwrap();
                assert_eq!(answer, "echo: first\n");
                wr.write_all(b"and then noth").await.unwrap();
                drop((rd, wr));
                // The next client is served.
                assert_eq!(
                    ask(&ep, &format!("round {round}")).await,
                    format!("echo: round {round}\n")
                );
            }
        })
        .await;
        assert_serving(&server);
        server.abort();
    }

    #[tokio::test]
    async fn a_pipe_name_in_use_is_a_clear_error() {
        let ep = unique_pipe("inuse");
        let Endpoint::NamedPipe(name) = &ep else {
            unreachable!()
        };
        let l = listen(&ep).await.unwrap();
        let e = listen(&ep)
            .await
            .err()
            .expect("a second listener on the name");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("npipe:{name} is already in use")),
            "{msg}"
        );
        // A pipe of the name made by someone else (no first-instance flag, default
        // descriptor) is refused the same way, not joined: with a free instance, and with its
        // only instance busy.
        drop(l);
        let theirs = ServerOptions::new().max_instances(1).create(name).unwrap();
        let e = listen(&ep)
            .await
            .err()
            .expect("listening on someone's pipe");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        let (connected, client) = bounded("their client", async {
            tokio::join!(theirs.connect(), connect(&ep))
        })
        .await;
        let _client = (connected.unwrap(), client.unwrap());
        let e = listen(&ep)
            .await
            .err()
            .expect("listening on someone's busy pipe");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop((theirs, _client));
        // Once every instance is gone the name is free again. A connected instance's handle
        // is closed only when the runtime sees its cancelled read complete, so not at once.
        let deadline = tokio::time::Instant::now() + BOUND;
        let l = loop {
            match listen(&ep).await {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the name is still in use {BOUND:?} after every instance went: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("listen again: {e}"),
            }
        };
        let server = serve(l);
        assert_eq!(
            bounded("the round trip", ask(&ep, "mine")).await,
            "echo: mine\n"
        );
        server.abort();
    }

    /// FILE_FLAG_FIRST_PIPE_INSTANCE on its own, without the look create_instance takes first.
    #[tokio::test]
    async fn the_first_instance_flag_refuses_an_existing_pipe_on_windows() {
        let Endpoint::NamedPipe(name) = unique_pipe("flag") else {
            unreachable!()
        };
        let theirs = ServerOptions::new().create(&name).unwrap();
        let flagged = ServerOptions::new().first_pipe_instance(true).create(&name);
        if under_wine() {
            // Wine 8 ignores the flag: a second "first" instance of an existing pipe is
            // created, where Windows fails it with ERROR_ACCESS_DENIED. Checked, so that a
            // Wine that starts enforcing it is noticed.
            assert!(flagged.is_ok(), "Wine now enforces the flag: {flagged:?}");
        } else {
            let e = flagged
                .as_ref()
                .expect_err("Windows refuses a second first instance");
            assert_eq!(e.raw_os_error(), Some(ERROR_ACCESS_DENIED as i32), "{e}");
        }
        drop((theirs, flagged));
    }

    /// The DACL is enforced: a pipe whose DACL grants no one access cannot be opened, not
    /// even by its creator. (The test process cannot shed its own rights, so this is how a
    /// client the real DACL leaves out is checked.)
    #[tokio::test]
    async fn a_client_the_dacl_leaves_out_is_refused() {
        let ep = unique_pipe("deny");
        let Endpoint::NamedPipe(name) = &ep else {
            unreachable!()
        };
        let _server = create_instance_with(name, true, "D:P").unwrap();
        let opened = connect(&ep).await;
        if under_wine() {
            // Wine 8 stores and reports a pipe's descriptor but does not check it when a
            // client opens the pipe: the open succeeds. Checked, so that a Wine that starts
            // enforcing it is noticed; only Windows shows the refusal.
            assert!(
                opened.is_ok(),
                "Wine now enforces the pipe's DACL: {:?}",
                opened.err()
            );
        } else {
            let e = opened
                .err()
                .expect("Windows refuses a client the DACL leaves out");
            assert_eq!(e.raw_os_error(), Some(ERROR_ACCESS_DENIED as i32), "{e}");
        }
    }

    /// Whether this runs under Wine (which exports `wine_get_version` from ntdll).
    fn under_wine() -> bool {
        use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
        // SAFETY: both names are NUL-terminated; ntdll is loaded in every process, and a
        // null module handle makes GetProcAddress fail rather than misbehave.
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
        }
    }

    /// One ACE as read back: its type, access mask and SID (as S-1-…).
    #[derive(Debug, PartialEq, Eq)]
    struct Ace {
        kind: u8,
        mask: u32,
        sid: String,
    }

    /// The DACL of the object behind `handle`, read with GetSecurityInfo: whether it is
    /// protected, and its ACEs.
    fn read_dacl(handle: HANDLE) -> (bool, Vec<Ace>) {
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `handle` is an open pipe handle owned by the caller for this call; only the
        // DACL is asked for, so the other out-pointers may be null; `dacl` and `sd` are valid
        // places for the results.
        let rc = unsafe {
            GetSecurityInfo(
                handle,
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut sd,
            )
        };
        assert_eq!(
            rc,
            0,
            "GetSecurityInfo: {}",
            io::Error::from_raw_os_error(rc as i32)
        );
        assert!(!sd.is_null(), "GetSecurityInfo returned no descriptor");
        // Frees the descriptor (LocalAlloc'd by GetSecurityInfo); `dacl` points into it.
        let sd = SecurityDescriptor(sd);
        let (mut control, mut revision) = (0u16, 0u32);
        // SAFETY: `sd.0` is the valid descriptor just returned; the out-pointers are valid.
        let ok = unsafe { GetSecurityDescriptorControl(sd.0, &mut control, &mut revision) };
        assert_ne!(
            ok,
            0,
            "GetSecurityDescriptorControl: {}",
            io::Error::last_os_error()
        );
        assert!(
            control & SE_DACL_PRESENT != 0,
            "no DACL (control {control:#x})"
        );
        assert!(!dacl.is_null(), "a null DACL (everyone may open the pipe)");
        // SAFETY: `dacl` points at the ACL inside `sd`, alive until `sd` drops.
        let count = unsafe { (*dacl).AceCount };
        let mut aces = Vec::new();
        for i in 0..u32::from(count) {
            let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
            // SAFETY: `i` is below the ACL's ACE count; `ace` is a valid out-pointer.
            let ok = unsafe { GetAce(dacl, i, &mut ace) };
            assert_ne!(ok, 0, "GetAce {i}: {}", io::Error::last_os_error());
            let ace = ace as *const ACCESS_ALLOWED_ACE;
            // SAFETY: every ACE starts with an ACE_HEADER; the mask and the SID are read only
            // from an ACCESS_ALLOWED_ACE (type 0), whose SID starts at SidStart.
            let (kind, mask, sid) = unsafe {
                let kind = (*ace).Header.AceType;
                if kind == 0 {
                    let sid = std::ptr::addr_of!((*ace).SidStart) as *mut core::ffi::c_void;
                    (kind, (*ace).Mask, sid_string(sid))
                } else {
                    (kind, 0, String::new())
                }
            };
            aces.push(Ace { kind, mask, sid });
        }
        (control & SE_DACL_PROTECTED != 0, aces)
    }

    /// `S-1-…` for a SID.
    ///
    /// # Safety
    /// `sid` must point at a valid SID.
    unsafe fn sid_string(sid: *mut core::ffi::c_void) -> String {
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: the caller vouches for `sid`; `text` is a valid out-pointer.
        let ok = unsafe { ConvertSidToStringSidW(sid, &mut text) };
        assert_ne!(
            ok,
            0,
            "ConvertSidToStringSidW: {}",
            io::Error::last_os_error()
        );
        // SAFETY: on success `text` is a NUL-terminated UTF-16 string, LocalAlloc'd.
        unsafe {
            let len = (0..).take_while(|&i| *text.add(i) != 0).count();
            let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
            LocalFree(text.cast());
            s
        }
    }

    /// The ACEs the pipe must carry, as Windows reports them: the object manager maps
    /// GENERIC_ALL to the pipe's specific rights, FILE_ALL_ACCESS (0x1f01ff).
    fn expected_aces(mask: u32) -> Vec<Ace> {
        ["S-1-5-18", "S-1-5-32-544"]
            .map(|sid| Ace {
                kind: 0,
                mask,
                sid: sid.into(),
            })
            .into()
    }

    const FILE_ALL_ACCESS: u32 = 0x001f_01ff;
    const GENERIC_ALL: u32 = 0x1000_0000;

    #[tokio::test]
    async fn the_pipe_grants_only_system_and_administrators() {
        let ep = unique_pipe("dacl");
        let l = listen(&ep).await.unwrap();
        let ListenerInner::Pipe { next, .. } = &l.inner else {
            unreachable!()
        };
        let first = {
            let slot = next.lock().await;
            let server = slot.as_ref().expect("the first instance waits in the slot");
            read_dacl(server.as_raw_handle() as HANDLE)
        };
        // An instance made by accept (for the second client) carries the same descriptor.
        let (accepted, client) =
            bounded("accept", async { tokio::join!(l.accept(), connect(&ep)) }).await;
        let (accepted, _client) = (accepted.unwrap(), client.unwrap());
        let later = {
            let slot = next.lock().await;
            let server = slot.as_ref().expect("a fresh instance waits in the slot");
            read_dacl(server.as_raw_handle() as HANDLE)
        };
        drop(accepted);
        for (which, (protected, aces)) in [("first", first), ("later", later)] {
            eprintln!("{which} instance: protected {protected}, {aces:?}");
            assert!(protected, "{which} instance: the DACL is not protected");
            if under_wine() {
                // Wine stores the mask as written (GENERIC_ALL); Windows maps generic rights
                // to the object's specific ones when it assigns the descriptor.
                assert_eq!(aces, expected_aces(GENERIC_ALL), "{which} instance");
            } else {
                assert_eq!(aces, expected_aces(FILE_ALL_ACCESS), "{which} instance");
            }
        }
    }
}
