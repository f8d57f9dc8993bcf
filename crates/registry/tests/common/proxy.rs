//! A TCP proxy in front of the registry that cuts the connection once,
//! midway through the first download of one blob, and remembers the
//! `Range` headers it saw: enough to show that a pull resumes. It can
//! also hold requests back ([`CuttingProxy::holding`]), to catch a client
//! with several requests in flight at once, or pause a blob midway
//! ([`CuttingProxy::pausing`]), to look at what the client did with the
//! first part.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct CuttingProxy {
    pub port: u16,
    pub state: Arc<State>,
}

/// Called with each request line before it is forwarded; may block.
pub type Hold = Box<dyn Fn(&str) + Send + Sync>;

pub struct State {
    /// Request lines with their Range header, in order.
    pub requests: Mutex<Vec<(String, Option<String>)>>,
    pub cut_done: AtomicBool,
    blob_path: String,
    cut_after: usize,
    hold: Option<Hold>,
    /// Instead of cutting: called (and waited for) at `cut_after`, then
    /// the rest goes through.
    pause: Option<Box<dyn Fn() + Send + Sync>>,
}

impl CuttingProxy {
    /// Forwards to `upstream`; the first GET of `/v2/.../blobs/<digest>`
    /// gets `cut_after` bytes of response and then a closed connection.
    pub fn start(upstream: u16, digest: &str, cut_after: usize) -> CuttingProxy {
        Self::with(upstream, format!("/blobs/{digest}"), cut_after, None, None)
    }

    /// Cuts nothing; `hold` sees every request line before it goes on.
    pub fn holding(upstream: u16, hold: Hold) -> CuttingProxy {
        Self::with(upstream, String::new(), 0, Some(hold), None)
    }

    /// Cuts nothing; the first response to a GET of blob `digest` stops
    /// after `after` bytes until `pause` returns.
    pub fn pausing(
        upstream: u16,
        digest: &str,
        after: usize,
        pause: Box<dyn Fn() + Send + Sync>,
    ) -> CuttingProxy {
        Self::with(
            upstream,
            format!("/blobs/{digest}"),
            after,
            None,
            Some(pause),
        )
    }

    fn with(
        upstream: u16,
        blob_path: String,
        cut_after: usize,
        hold: Option<Hold>,
        pause: Option<Box<dyn Fn() + Send + Sync>>,
    ) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            cut_done: AtomicBool::new(false),
            blob_path,
            cut_after,
            hold,
            pause,
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                let st = st.clone();
                std::thread::spawn(move || serve(client, upstream, st));
            }
        });
        CuttingProxy { port, state }
    }
}

fn serve(client: TcpStream, upstream: u16, st: Arc<State>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let armed = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (st2, armed2) = (st.clone(), armed.clone());
    // Client to registry: watch request heads (pulls send no bodies).
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        let mut head = Vec::new();
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            head.extend_from_slice(&buf[..n]);
            while let Some(end) = find(&head, b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&head[..end]).to_string();
                head.drain(..end + 4);
                let line = text.lines().next().unwrap_or("").to_string();
                let range = text
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("Range: ")
                            .or_else(|| l.strip_prefix("range: "))
                    })
                    .map(str::to_string);
                if line.starts_with("GET ")
                    && !st2.blob_path.is_empty()
                    && line.contains(&st2.blob_path)
                    && !st2.cut_done.load(Ordering::SeqCst)
                {
                    armed2.store(true, Ordering::SeqCst);
                }
                st2.requests.lock().unwrap().push((line.clone(), range));
                // Recorded as it arrived, forwarded once let go.
                if let Some(hold) = &st2.hold {
                    hold(&line);
                }
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    // Registry to client: count bytes once armed and cut.
    let (mut s_in, mut c_out) = (server, client);
    let mut buf = [0u8; 16 << 10];
    let mut sent = 0usize;
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if armed.load(Ordering::SeqCst) {
            if sent + n >= st.cut_after {
                let _ = c_out.write_all(&buf[..st.cut_after - sent]);
                st.cut_done.store(true, Ordering::SeqCst);
                if let Some(pause) = &st.pause {
                    let _ = c_out.flush();
                    pause();
                    armed.store(false, Ordering::SeqCst);
                    if c_out.write_all(&buf[st.cut_after - sent..n]).is_err() {
                        break;
                    }
                    continue;
                }
                let _ = c_out.shutdown(Shutdown::Both);
                let _ = s_in.shutdown(Shutdown::Both);
                return;
            }
            sent += n;
        }
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_out.shutdown(Shutdown::Both);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
