//! Where the server listens: `--host unix:///path` (mode 0660, owned by
//! the socket group), `--host tcp://IP:PORT` (off loopback only with TLS
//! client certificates: see [`crate::tls`]), and `fd://`, the sockets
//! systemd passes (socket activation).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::Error;

pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(SocketAddr),
    /// Every socket systemd passed us.
    Activated,
}

impl FromStr for Host {
    type Err = Error;

    fn from_str(s: &str) -> Result<Host, Error> {
        let bad = |why: &str| Error::BadHost {
            host: s.to_string(),
            why: why.to_string(),
        };
        if let Some(p) = s.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(bad("the socket path must be absolute"));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let addr: SocketAddr = a
                .trim_end_matches('/')
                .parse()
                .map_err(|_| bad("expected tcp://IP:PORT"))?;
            return Ok(Host::Tcp(addr));
        }
        if s == "fd://" {
            return Ok(Host::Activated);
        }
        Err(bad("expected unix:///PATH, tcp://IP:PORT or fd://"))
    }
}

/// A bound socket, before the runtime adopts it.
pub enum Bound {
    /// With the path to remove when the server stops (None: not ours).
    Unix(std::os::unix::net::UnixListener, Option<PathBuf>),
    Tcp(std::net::TcpListener),
}

/// Binds every host. `group`: the socket's group (None: root's).
pub fn bind(hosts: &[Host], group: Option<u32>) -> Result<Vec<Bound>, Error> {
    let mut out = Vec::new();
    for h in hosts {
        match h {
            Host::Unix(p) => out.push(Bound::Unix(bind_unix(p, group)?, Some(p.clone()))),
            Host::Tcp(a) => out.push(Bound::Tcp(std::net::TcpListener::bind(a).map_err(|e| {
                Error::Listen {
                    what: a.to_string(),
                    source: e,
                }
            })?)),
            Host::Activated => out.extend(activated()?),
        }
    }
    Ok(out)
}

fn listen_err(what: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Listen {
        what: what.display().to_string(),
        source,
    }
}

fn bind_unix(path: &Path, group: Option<u32>) -> Result<std::os::unix::net::UnixListener, Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err(dir))?;
    }
    // A socket left by a server that died is replaced; one that answers
    // belongs to a server still running.
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(Error::Listen {
            what: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another server is listening there",
            ),
        });
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_err(path)(e)),
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(listen_err(path))?;
    if let Some(gid) = group {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| listen_err(path)(e.into()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(listen_err(path))?;
    Ok(l)
}

fn activated() -> Result<Vec<Bound>, Error> {
    let what = || "fd:// (socket activation)".to_string();
    let fds = berth_sys::activation::listen_fds().map_err(|e| Error::Listen {
        what: what(),
        source: e,
    })?;
    if fds.is_empty() {
        return Err(Error::Listen {
            what: what(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no sockets were passed (LISTEN_FDS)",
            ),
        });
    }
    let mut out = Vec::new();
    for fd in fds {
        let addr = rustix::net::getsockname(&fd).map_err(|e| Error::Listen {
            what: what(),
            source: e.into(),
        })?;
        match addr.address_family() {
            rustix::net::AddressFamily::UNIX => out.push(Bound::Unix(
                std::os::unix::net::UnixListener::from(fd),
                None,
            )),
            _ => out.push(Bound::Tcp(std::net::TcpListener::from(fd))),
        }
    }
    Ok(out)
}

/// The gid of group `name`, from /etc/group.
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name))
            .then(|| f.nth(1).and_then(|g| g.parse().ok()))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse() {
        assert_eq!(
            "unix:///run/b.sock".parse::<Host>().unwrap(),
            Host::Unix("/run/b.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:2375".parse::<Host>().unwrap(),
            Host::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        assert_eq!("fd://".parse::<Host>().unwrap(), Host::Activated);
        assert!("tcp://localhost".parse::<Host>().is_err());
        assert!("unix://rel.sock".parse::<Host>().is_err());
        assert!("http://x".parse::<Host>().is_err());
    }

    #[test]
    fn a_unix_socket_is_0660_and_a_live_one_is_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/api.sock");
        let l = bind_unix(&p, None).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(bind_unix(&p, None).is_err());
        drop(l);
        // Stale now: replaced.
        bind_unix(&p, None).unwrap();
    }
}
