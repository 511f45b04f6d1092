//! The platform seam: every byte stream podport opens (OpenFlow, OVSDB, the control socket)
//! goes through [`Endpoint`] and [`connect`], so Unix sockets and Windows named pipes differ
//! in this crate only (the Windows pipe's security descriptor is in `npipe.rs`).
//!
//! Endpoint syntax follows OVS: `unix:PATH`, `tcp:HOST:PORT`, and `npipe:NAME` (a Windows
//! named pipe such as `npipe:\\.\pipe\ovsdb`; `\\.\pipe\` is added when NAME lacks it).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};

#[cfg(windows)]
mod npipe;

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
    NamedPipe(String),
}

/// An endpoint string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint {input:?}: {reason} (expected unix:PATH, tcp:HOST:PORT or npipe:NAME)")]
pub struct EndpointParseError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for Endpoint {
    type Err = EndpointParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| EndpointParseError {
            input: s.to_string(),
            reason,
        };
        let (scheme, rest) = s.split_once(':').ok_or_else(|| err("no scheme"))?;
        if rest.is_empty() {
            return Err(err("empty address"));
        }
        match scheme {
            "unix" => Ok(Endpoint::Unix(PathBuf::from(rest))),
            "tcp" => {
                let (host, port) = rest.rsplit_once(':').ok_or_else(|| err("no port"))?;
                if host.is_empty() {
                    return Err(err("empty host"));
                }
                port.parse::<u16>().map_err(|_| err("bad port"))?;
                Ok(Endpoint::Tcp(rest.to_string()))
            }
            "npipe" | "pipe" => {
                let name = if rest.starts_with(r"\\") {
                    rest.to_string()
                } else {
                    format!(r"\\.\pipe\{rest}")
                };
                Ok(Endpoint::NamedPipe(name))
            }
            _ => Err(err("unknown scheme")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::NamedPipe(n) => write!(f, "npipe:{n}"),
        }
    }
}

/// A connected byte stream of any transport.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A boxed stream, so callers need not be generic over the transport.
pub type BoxStream = Pin<Box<dyn Stream>>;

/// Opens a stream to `endpoint`.
pub async fn connect(endpoint: &Endpoint) -> io::Result<BoxStream> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
            // OpenFlow and OVSDB are request/reply protocols with small messages.
            s.set_nodelay(true)?;
            Ok(Box::pin(s))
        }
        Endpoint::Unix(path) => connect_unix(path).await,
        Endpoint::NamedPipe(name) => connect_pipe(name).await,
    }
}

#[cfg(unix)]
async fn connect_unix(path: &std::path::Path) -> io::Result<BoxStream> {
    Ok(Box::pin(tokio::net::UnixStream::connect(path).await?))
}

#[cfg(not(unix))]
async fn connect_unix(path: &std::path::Path) -> io::Result<BoxStream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "unix:{} : Unix sockets are not available on this platform",
            path.display()
        ),
    ))
}

#[cfg(windows)]
async fn connect_pipe(name: &str) -> io::Result<BoxStream> {
    use tokio::net::windows::named_pipe::ClientOptions;
    // ERROR_PIPE_BUSY: every instance is in use; the server creates a new one shortly.
    const ERROR_PIPE_BUSY: i32 = 231;
    let mut delay = std::time::Duration::from_millis(10);
    for _ in 0..50 {
        match ClientOptions::new().open(name) {
            Ok(c) => return Ok(Box::pin(c)),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("named pipe {name} stayed busy"),
    ))
}

#[cfg(not(windows))]
async fn connect_pipe(name: &str) -> io::Result<BoxStream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("npipe:{name} : named pipes exist only on Windows"),
    ))
}

/// A listening endpoint: the agent's control socket.
pub struct Listener {
    inner: ListenerInner,
    endpoint: Endpoint,
}

enum ListenerInner {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix {
        listener: tokio::net::UnixListener,
        /// Held for its `Drop`: removes the socket file when the listener goes.
        _file: UnixSocketFile,
    },
    #[cfg(windows)]
    Pipe {
        /// The instance the next client connects to. Async, because [`Listener::accept`]
        /// waits on it in place: an accept cancelled by a `select!` leaves it here, so the
        /// pipe's name never goes away and no client that connected meanwhile is lost.
        next: tokio::sync::Mutex<Option<tokio::net::windows::named_pipe::NamedPipeServer>>,
        name: String,
    },
}

/// How [`listen_with`] may listen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// Let a `tcp:` endpoint listen on an address other machines can reach. Off by default:
    /// the control protocol has no authentication, so a `tcp:` endpoint must resolve to
    /// loopback addresses only. (Unix sockets and named pipes are local by nature.)
    pub allow_remote: bool,
}

/// Whether `ip` is a loopback address (also as an IPv4-mapped IPv6 address).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
    }
}

/// Listens on `endpoint` with the default [`ListenOptions`] (a `tcp:` endpoint must be
/// loopback).
pub async fn listen(endpoint: &Endpoint) -> io::Result<Listener> {
    listen_with(endpoint, ListenOptions::default()).await
}

/// Listens on `endpoint`.
///
/// - `tcp:HOST:PORT`: HOST is resolved once; unless `options.allow_remote`, every address it
///   resolves to must be loopback (else `PermissionDenied`, and nothing is bound). The
///   listener's [`Listener::endpoint`] names the bound address (the real port for port 0).
/// - `unix:PATH`: the socket appears at PATH with mode 0600 already set, never wider, under
///   any umask. What is at PATH before is replaced only when it is a stale socket (one that
///   refuses connections); a live socket is `AddrInUse`, and anything else (a regular file, a
///   directory, a symbolic link) is refused with `AlreadyExists` and left untouched.
/// - `npipe:NAME` (Windows): a pipe that rejects remote clients and that only SYSTEM and
///   the Administrators group may open (a protected DACL, `D:P(A;;GA;;;SY)(A;;GA;;;BA)`, on
///   every instance). A pipe of that name that exists already, of another process or
///   listener, is `AddrInUse` and named in the message; it is never joined.
pub async fn listen_with(endpoint: &Endpoint, options: ListenOptions) -> io::Result<Listener> {
    let (inner, endpoint) = match endpoint {
        Endpoint::Tcp(addr) => {
            let l = listen_tcp(addr, options).await?;
            let bound = Endpoint::Tcp(l.local_addr()?.to_string());
            (ListenerInner::Tcp(l), bound)
        }
        Endpoint::Unix(path) => (listen_unix(path).await?, endpoint.clone()),
        Endpoint::NamedPipe(name) => (listen_pipe(name)?, endpoint.clone()),
    };
    Ok(Listener { inner, endpoint })
}

async fn listen_tcp(addr: &str, options: ListenOptions) -> io::Result<tokio::net::TcpListener> {
    // Resolved once and bound to exactly what was checked (a second lookup could differ).
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("tcp:{addr} resolves to no address"),
        ));
    }
    if !options.allow_remote {
        if let Some(remote) = addrs.iter().find(|a| !is_loopback(a.ip())) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "tcp:{addr} ({remote}) is not a loopback address: the control protocol has \
                     no authentication, so a tcp: endpoint must be loopback (127.0.0.1, [::1]) \
                     unless remote access is allowed explicitly"
                ),
            ));
        }
    }
    tokio::net::TcpListener::bind(&addrs[..]).await
}

/// The socket file a Unix listener published: removed on drop only if PATH still names it.
#[cfg(unix)]
struct UnixSocketFile {
    path: PathBuf,
    /// Device and inode of our socket, so a file someone else put at PATH is never removed.
    id: (u64, u64),
}

#[cfg(unix)]
impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// What a file type is, for messages.
#[cfg(unix)]
fn describe(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "something"
    }
}

/// A directory only its owner can enter, next to the socket's final path; removed (with what
/// is left in it) on drop.
#[cfg(unix)]
struct StagingDir(PathBuf);

#[cfg(unix)]
impl StagingDir {
    fn create(parent: &std::path::Path) -> io::Result<StagingDir> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut attempt = 0;
        loop {
            // Short: the socket's path inside it must fit in sun_path (107 bytes) too.
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!(".pp{:x}", std::process::id() ^ nanos.rotate_left(12) ^ n);
            let dir = parent.join(name);
            // mode() is filtered by the umask, which only ever removes bits: the directory
            // is never wider than 0700. The chmod below restores 0700 under a umask that
            // took the owner's own bits.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let staging = StagingDir(dir);
                    std::fs::set_permissions(&staging.0, std::fs::Permissions::from_mode(0o700))?;
                    return Ok(staging);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(unix)]
impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
async fn listen_unix(path: &std::path::Path) -> io::Result<ListenerInner> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let context = |e: io::Error, what: &str| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(context(e, "cannot look at")),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is {}, not a socket: refusing to replace it (move it away \
                     or listen on another path)",
                    path.display(),
                    describe(m.file_type())
                ),
            ));
        }
        Ok(_) => match tokio::net::UnixStream::connect(path).await {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running process", path.display()),
                ));
            }
            // Nobody listens: a socket left by a process that died. The only thing ever
            // removed.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .map_err(|e| context(e, "cannot remove the stale socket"))?;
            }
            Err(e) => return Err(context(e, "cannot tell whether a process listens on")),
        },
    }
    // The socket must never be reachable by others, not even for an instant. bind(2) creates
    // it with 0777 & !umask, and a chmod after it leaves a window; changing the umask around
    // bind would change it for every thread of the process (the agent is multi-threaded). So
    // the socket is bound inside a fresh directory of mode 0700 next to PATH (same file
    // system), which no one else can enter, set to 0600 there, and only then given its name
    // PATH with link(2): the name appears with the final mode. link(2), unlike rename(2),
    // never replaces what may have appeared at PATH meanwhile.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        ));
    }
    let staging = StagingDir::create(parent)
        .map_err(|e| context(e, "cannot create a private directory next to"))?;
    let tmp = staging.0.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&tmp)
        .map_err(|e| context(e, &format!("cannot bind (at {} first)", tmp.display())))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| context(e, "cannot set the mode of"))?;
    let meta = std::fs::symlink_metadata(&tmp)?;
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} appeared while the socket was being created: refusing to replace it",
                    path.display()
                ),
            ));
        }
        // A file system without hard links: rename(2) is atomic too, but replaces what is at
        // PATH, so check once more right before it.
        Err(_) => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} appeared while the socket was being created: refusing to replace it",
                        path.display()
                    ),
                ));
            }
            std::fs::rename(&tmp, path).map_err(|e| context(e, "cannot move the socket to"))?;
        }
    }
    let file = UnixSocketFile {
        path: path.to_path_buf(),
        id: (meta.dev(), meta.ino()),
    };
    drop(staging);
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    Ok(ListenerInner::Unix {
        listener,
        _file: file,
    })
}

#[cfg(not(unix))]
async fn listen_unix(path: &std::path::Path) -> io::Result<ListenerInner> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "unix:{} : Unix sockets are not available on this platform",
            path.display()
        ),
    ))
}

#[cfg(windows)]
fn listen_pipe(name: &str) -> io::Result<ListenerInner> {
    let server = npipe::create_instance(name, true)?;
    Ok(ListenerInner::Pipe {
        next: tokio::sync::Mutex::new(Some(server)),
        name: name.to_string(),
    })
}

/// The next client of a pipe listener. One instance waits at a time; it is replaced by a
/// fresh one before the connected one is handed out, so while the listener lives the name
/// exists (no other process can create the pipe under it) and the next client finds an
/// instance (or retries on ERROR_PIPE_BUSY, see [`connect_pipe`]). Only if creating an
/// instance fails is the slot left empty, for the next accept to fill.
#[cfg(windows)]
async fn accept_pipe(
    slot: &tokio::sync::Mutex<Option<tokio::net::windows::named_pipe::NamedPipeServer>>,
    name: &str,
) -> io::Result<BoxStream> {
    // ERROR_NO_DATA: the client connected and closed before the server saw it.
    const ERROR_NO_DATA: i32 = 232;
    let mut slot = slot.lock().await;
    loop {
        let connected = match slot.as_ref() {
            Some(server) => server.connect().await,
            None => {
                // Only after creating an instance failed below: try again, and say so if
                // it fails.
                *slot = Some(npipe::create_instance(name, false)?);
                continue;
            }
        };
        match connected {
            Ok(()) => {
                // If this fails the client is served all the same; the next accept retries
                // (and reports the error if it persists).
                let fresh = npipe::create_instance(name, false).ok();
                if let Some(server) = std::mem::replace(&mut *slot, fresh) {
                    return Ok(Box::pin(server));
                }
            }
            Err(e) => {
                // The instance is unusable now: a fresh one first, then the old one goes.
                *slot = Some(npipe::create_instance(name, false)?);
                if e.raw_os_error() != Some(ERROR_NO_DATA) {
                    return Err(e);
                }
                // A client that vanished before being accepted: wait for the next one.
            }
        }
    }
}

#[cfg(not(windows))]
fn listen_pipe(name: &str) -> io::Result<ListenerInner> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("npipe:{name} : named pipes exist only on Windows"),
    ))
}

impl Listener {
    /// The endpoint listened on (for `tcp:`, the bound address and port).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether other machines may reach this listener: a `tcp:` one bound to an address that
    /// is not loopback (which [`listen_with`] allows only with `allow_remote`).
    pub fn reachable_remotely(&self) -> bool {
        match &self.inner {
            ListenerInner::Tcp(l) => l.local_addr().map_or(true, |a| !is_loopback(a.ip())),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The next connection.
    pub async fn accept(&self) -> io::Result<BoxStream> {
        match &self.inner {
            ListenerInner::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok(Box::pin(s))
            }
            #[cfg(unix)]
            ListenerInner::Unix { listener, .. } => Ok(Box::pin(listener.accept().await?.0)),
            #[cfg(windows)]
            ListenerInner::Pipe { next, name } => accept_pipe(next, name).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        assert_eq!(
            "unix:/tmp/x/br-int.mgmt".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/tmp/x/br-int.mgmt".into())
        );
        assert_eq!(
            "tcp:127.0.0.1:6653".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("127.0.0.1:6653".into())
        );
        assert_eq!(
            "npipe:ovsdb".parse::<Endpoint>().unwrap(),
            Endpoint::NamedPipe(r"\\.\pipe\ovsdb".into())
        );
        for bad in [
            "",
            "unix:",
            "tcp:1.2.3.4",
            "tcp::80",
            "tcp:h:99999",
            "ssl:x:1",
            "x",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad} should not parse");
        }
        let e: Endpoint = "unix:/a/b".parse().unwrap();
        assert_eq!(e.to_string(), "unix:/a/b");
    }

    #[tokio::test]
    async fn unsupported_transport_is_a_clear_error() {
        #[cfg(unix)]
        {
            let e = connect(&Endpoint::NamedPipe(r"\\.\pipe\x".into()))
                .await
                .err()
                .unwrap();
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        }
    }

    #[cfg(unix)]
    fn scratch_dir(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Leaves a socket nobody listens on at `path`. A child that another test thread forks
    /// holds a copy of the listener's descriptor until it execs, so the socket is stale only
    /// once connecting to it is refused.
    #[cfg(unix)]
    fn stale_socket(path: &std::path::Path) {
        drop(std::os::unix::net::UnixListener::bind(path).unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(path).is_ok() {
            assert!(std::time::Instant::now() < deadline, "still accepting");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The names in `dir`, sorted.
    #[cfg(unix)]
    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn listens_with_mode_0600_and_refuses_a_live_socket() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch_dir("listen");
        let path = dir.join("control.sock");
        let ep = Endpoint::Unix(path.clone());
        let l = listen(&ep).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            names(&dir),
            ["control.sock"],
            "the staging directory is gone"
        );
        assert!(!l.reachable_remotely());
        assert_eq!(
            listen(&ep).await.err().unwrap().kind(),
            io::ErrorKind::AddrInUse
        );
        let (a, c) = tokio::join!(l.accept(), connect(&ep));
        a.unwrap();
        c.unwrap();
        drop(l);
        assert!(!path.exists(), "socket file removed on drop");
        // A stale socket (its process died without removing it) is replaced.
        stale_socket(&path);
        let l = listen(&ep).await.unwrap();
        let (a, c) = tokio::join!(l.accept(), connect(&ep));
        a.unwrap();
        c.unwrap();
        // What someone else put at PATH after ours went is not removed on drop.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not ours").unwrap();
        drop(l);
        assert_eq!(std::fs::read(&path).unwrap(), b"not ours");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn never_replaces_anything_but_a_stale_socket() {
        let dir = scratch_dir("refuse");
        let path = dir.join("control.sock");
        let ep = Endpoint::Unix(path.clone());
        // A regular file: refused, named, and left as it was.
        std::fs::write(&path, b"precious").unwrap();
        let e = listen(&ep).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("a regular file"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        std::fs::remove_file(&path).unwrap();
        // A directory, and a symbolic link (even to a stale socket).
        std::fs::create_dir(&path).unwrap();
        let msg = listen(&ep).await.err().unwrap().to_string();
        assert!(msg.contains("a directory"), "{msg}");
        assert!(path.is_dir());
        std::fs::remove_dir(&path).unwrap();
        let target = dir.join("stale.sock");
        stale_socket(&target);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let msg = listen(&ep).await.err().unwrap().to_string();
        assert!(msg.contains("a symbolic link"), "{msg}");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(target.exists());
        // No staging directory is left behind by the refusals.
        assert_eq!(names(&dir), ["control.sock", "stale.sock"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Runs in a child process started with umask 000 (a umask is per process; changing it
    /// in this multi-threaded test binary would race with other tests). Watcher threads stat
    /// PATH and list the directory as fast as they can while the socket is created, again
    /// and again: PATH must never be seen with a mode other than 0600, nor the staging
    /// directory with any access for others.
    #[cfg(unix)]
    #[test]
    fn a_unix_socket_appears_with_mode_0600_under_umask_000() {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        const CHILD: &str = "PODPORT_TRANSPORT_UMASK_CHILD";
        if std::env::var_os(CHILD).is_none() {
            let exe = std::env::current_exe().unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
                .arg(exe)
                .args([
                    "--exact",
                    "tests::a_unix_socket_appears_with_mode_0600_under_umask_000",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "child: {text}");
            assert!(text.contains("1 passed"), "the child ran no test: {text}");
            return;
        }
        let dir = scratch_dir("umask");
        // The umask really is 000 here.
        let probe = dir.join("probe");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&probe)
            .unwrap();
        let probe_mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        assert_eq!(probe_mode, 0o666, "the child's umask is not 000");
        std::fs::remove_file(&probe).unwrap();

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = dir.join("c.sock");
        let ep = Endpoint::Unix(path.clone());
        let seen = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
        for _ in 0..30 {
            let stop = Arc::new(AtomicBool::new(false));
            let stat = {
                let (stop, seen, path) = (stop.clone(), seen.clone(), path.clone());
                std::thread::spawn(move || {
                    let mut looks = 0u64;
                    while !stop.load(Ordering::Relaxed) || looks == 0 {
                        if let Ok(m) = std::fs::symlink_metadata(&path) {
                            let mode = m.permissions().mode() & 0o777;
                            if mode != 0o600 {
                                seen.lock().unwrap().push(("socket".into(), mode));
                            }
                            looks += 1;
                        }
                    }
                })
            };
            let list = {
                let (stop, seen, dir) = (stop.clone(), seen.clone(), dir.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        for e in std::fs::read_dir(&dir).unwrap().flatten() {
                            let Ok(m) = e.metadata() else { continue };
                            let mode = m.permissions().mode() & 0o777;
                            if m.is_dir() && mode & 0o077 != 0 {
                                let name = e.file_name().to_string_lossy().into_owned();
                                seen.lock().unwrap().push((name, mode));
                            }
                        }
                    }
                })
            };
            let l = rt.block_on(listen(&ep)).unwrap();
            stop.store(true, Ordering::Relaxed);
            stat.join().unwrap();
            list.join().unwrap();
            drop(l);
            assert!(!path.exists());
        }
        let seen = seen.lock().unwrap();
        let distinct: std::collections::BTreeSet<String> = seen
            .iter()
            .map(|(what, mode)| format!("{what} {mode:o}"))
            .collect();
        assert!(
            seen.is_empty(),
            "seen {} times with access for others: {distinct:?}",
            seen.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn tcp_listeners_are_loopback_only_unless_allowed() {
        for ep in ["tcp:0.0.0.0:0", "tcp:[::]:0"] {
            let ep: Endpoint = ep.parse().unwrap();
            let e = listen(&ep).await.err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{ep}: {e}");
            assert!(e.to_string().contains("not a loopback address"), "{e}");
        }
        let l = listen(&"tcp:127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert!(!l.reachable_remotely());
        let bound = l.endpoint().clone();
        assert!(
            matches!(&bound, Endpoint::Tcp(a) if a.starts_with("127.0.0.1:") && !a.ends_with(":0")),
            "{bound}"
        );
        let (a, c) = tokio::join!(l.accept(), connect(&bound));
        a.unwrap();
        c.unwrap();
        let l = listen_with(
            &"tcp:0.0.0.0:0".parse().unwrap(),
            ListenOptions { allow_remote: true },
        )
        .await
        .unwrap();
        assert!(l.reachable_remotely());
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(!is_loopback("::".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn connects_to_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("pp-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let ep = Endpoint::Unix(path.clone());
        let (accepted, connected) = tokio::join!(listener.accept(), connect(&ep));
        accepted.unwrap();
        connected.unwrap();
        let missing = Endpoint::Unix(dir.join("missing.sock"));
        assert!(connect(&missing).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
