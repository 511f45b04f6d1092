//! The platform seam: every byte stream podport opens (OpenFlow, OVSDB, the control socket)
//! goes through [`Endpoint`] and [`connect`], so Unix sockets and Windows named pipes differ
//! in this file only.
//!
//! Endpoint syntax follows OVS: `unix:PATH`, `tcp:HOST:PORT`, and `npipe:NAME` (a Windows
//! named pipe such as `npipe:\\.\pipe\ovsdb`; `\\.\pipe\` is added when NAME lacks it).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};

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
    Unix(tokio::net::UnixListener, PathBuf),
    #[cfg(windows)]
    Pipe(
        std::sync::Mutex<Option<tokio::net::windows::named_pipe::NamedPipeServer>>,
        String,
    ),
}

/// Listens on `endpoint`. A Unix socket is created with mode 0600 (only its owner may
/// connect), replacing a stale socket file that no one listens on; a live one is an error.
pub async fn listen(endpoint: &Endpoint) -> io::Result<Listener> {
    let inner = match endpoint {
        Endpoint::Tcp(addr) => {
            ListenerInner::Tcp(tokio::net::TcpListener::bind(addr.as_str()).await?)
        }
        Endpoint::Unix(path) => listen_unix(path).await?,
        Endpoint::NamedPipe(name) => listen_pipe(name)?,
    };
    Ok(Listener {
        inner,
        endpoint: endpoint.clone(),
    })
}

#[cfg(unix)]
async fn listen_unix(path: &std::path::Path) -> io::Result<ListenerInner> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Created with a umask that leaves nothing to others, then tightened explicitly.
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(ListenerInner::Unix(l, path.to_path_buf()))
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
    use tokio::net::windows::named_pipe::ServerOptions;
    // Remote clients are rejected: the control pipe is for this machine only.
    let server = ServerOptions::new()
        .first_pipe_instance(true)
        .reject_remote_clients(true)
        .create(name)?;
    Ok(ListenerInner::Pipe(
        std::sync::Mutex::new(Some(server)),
        name.to_string(),
    ))
}

#[cfg(not(windows))]
fn listen_pipe(name: &str) -> io::Result<ListenerInner> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("npipe:{name} : named pipes exist only on Windows"),
    ))
}

impl Listener {
    /// The endpoint listened on.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
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
            ListenerInner::Unix(l, _) => Ok(Box::pin(l.accept().await?.0)),
            #[cfg(windows)]
            ListenerInner::Pipe(slot, name) => {
                use tokio::net::windows::named_pipe::ServerOptions;
                let server = {
                    let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
                    match g.take() {
                        Some(s) => s,
                        None => ServerOptions::new()
                            .reject_remote_clients(true)
                            .create(name)?,
                    }
                };
                server.connect().await?;
                // The next client needs a fresh instance, created before this one is handed out.
                let next = ServerOptions::new()
                    .reject_remote_clients(true)
                    .create(name)?;
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
                Ok(Box::pin(server))
            }
        }
    }
}

#[cfg(unix)]
impl Drop for Listener {
    fn drop(&mut self) {
        if let ListenerInner::Unix(_, path) = &self.inner {
            let _ = std::fs::remove_file(path);
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
    #[tokio::test]
    async fn listens_with_mode_0600_and_refuses_a_live_socket() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pp-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let ep = Endpoint::Unix(path.clone());
        let l = listen(&ep).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            listen(&ep).await.err().unwrap().kind(),
            io::ErrorKind::AddrInUse
        );
        let (a, c) = tokio::join!(l.accept(), connect(&ep));
        a.unwrap();
        c.unwrap();
        drop(l);
        assert!(!path.exists(), "socket file removed on drop");
        // A stale file (nobody listening) is replaced.
        std::fs::write(&path, b"").unwrap();
        let _l = listen(&ep).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
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
