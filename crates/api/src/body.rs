//! Response bodies: a whole one, or a stream fed through a channel
//! (logs, pull progress, wait) that ends when the sender is dropped; and
//! the blocking work that writes a tar (export, archive, save) straight
//! into a body.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::{header, StatusCode};
use tokio::sync::mpsc;

pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
    /// A first chunk already read, then the rest; an error ends the body
    /// as a broken transfer, so a client never takes a cut tar as whole.
    Fallible(Option<Bytes>, mpsc::Receiver<std::io::Result<Bytes>>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
            Body::Fallible(first, rx) => match first.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Stream(_) | Body::Fallible(..) => SizeHint::default(),
        }
    }
}

pub type Response = hyper::Response<Body>;

pub fn empty(status: StatusCode) -> Response {
    let mut r = hyper::Response::new(Body::Full(None));
    *r.status_mut() = status;
    r
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    bytes(status, "application/json", body)
}

pub fn bytes(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    let mut r = hyper::Response::new(Body::Full(Some(Bytes::from(body))));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A streamed 200 response and the sender that feeds it.
pub fn stream(content_type: &str) -> (Response, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(64);
    let mut r = hyper::Response::new(Body::Stream(rx));
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    (r, tx)
}

/// A blocking writer feeding a [`Body::Fallible`]: its writes fail once
/// the client has gone, which ends the work writing.
pub struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// Bytes gathered before a chunk goes to the client.
const CHUNK: usize = 64 << 10;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Runs blocking `work` that writes the body of a 200 response. A failure
/// before its first byte is the response (docker's error JSON); a later
/// one breaks the transfer.
pub async fn streamed<F>(
    api: &Arc<crate::state::Api>,
    content_type: &str,
    work: F,
) -> Result<Response, crate::error::ApiError>
where
    F: FnOnce(&berth_engine::Engine, &mut ChannelWriter) -> berth_engine::Result<()>
        + Send
        + 'static,
{
    let (tx, mut rx) = mpsc::channel(16);
    let job_tx = tx.clone();
    let api = api.clone();
    let error = Arc::new(std::sync::Mutex::new(None));
    let job_error = error.clone();
    let job = tokio::spawn(async move {
        let failed = job_tx.clone();
        let r = api
            .blocking(move |e| {
                let mut w = ChannelWriter {
                    tx: job_tx,
                    buf: Vec::with_capacity(CHUNK),
                };
                work(e, &mut w)?;
                std::io::Write::flush(&mut w).map_err(|source| berth_engine::Error::Io {
                    what: "sending to the client".into(),
                    source,
                })
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e.message, "streamed work failed");
            let broken = std::io::Error::other(e.message.clone());
            *crate::state::lock(&job_error) = Some(e);
            let _ = failed.send(Err(broken)).await;
        }
    });
    drop(tx);
    // The first message tells a failure at once from a body to stream.
    let first = match rx.recv().await {
        Some(Ok(b)) => Some(b),
        Some(Err(broken)) => {
            let _ = job.await;
            let e = crate::state::lock(&error).take();
            return Err(e.unwrap_or_else(|| crate::error::ApiError::internal(broken.to_string())));
        }
        None => None,
    };
    let mut r = hyper::Response::new(Body::Fallible(first, rx));
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(r)
}

/// A request body as a blocking reader (uploads: archive, load, import),
/// fed by a task so a large tar is never held in memory. A broken upload
/// reads as an error, not as an early end.
pub fn reader(incoming: hyper::body::Incoming) -> (BodyReader, tokio::task::JoinHandle<()>) {
    use http_body_util::BodyExt;
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Bytes>>(16);
    let mut incoming = incoming;
    let feed = tokio::spawn(async move {
        while let Some(frame) = incoming.frame().await {
            let sent = match frame {
                Ok(f) => match f.into_data() {
                    Ok(data) => tx.send(Ok(data)),
                    Err(_) => Ok(()),
                },
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(format!(
                        "reading the upload: {e}"
                    ))));
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    });
    (
        BodyReader {
            rx,
            chunk: Bytes::new(),
        },
        feed,
    )
}

pub struct BodyReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    chunk: Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.recv() {
                Ok(c) => self.chunk = c?,
                // The upload ended.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// One JSON message and its newline, as docker's JSON streams.
pub fn json_line(v: &serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

/// Streams the JSON messages a blocking job (a pull, a push, a build)
/// sends, one a line, then its failure as docker's `errorDetail` message.
/// A client that leaves does not stop the job by itself: `on_gone` says
/// what happens to it (a pull stays done; a build is cancelled).
pub fn json_job<F>(
    api: &Arc<crate::state::Api>,
    on_gone: impl FnOnce() + Send + 'static,
    job: F,
) -> Response
where
    F: FnOnce(
            &berth_engine::Engine,
            &(dyn Fn(serde_json::Value) + Send + Sync),
        ) -> berth_engine::Result<()>
        + Send
        + 'static,
{
    let (resp, tx) = stream("application/json");
    let api = api.clone();
    tokio::spawn(async move {
        let (etx, mut erx) = mpsc::unbounded_channel::<serde_json::Value>();
        let job = api.blocking(move |e| {
            let send = move |v: serde_json::Value| {
                let _ = etx.send(v);
            };
            job(e, &send)
        });
        tokio::pin!(job);
        let result = loop {
            tokio::select! {
                Some(v) = erx.recv() => {
                    if tx.send(json_line(&v)).await.is_err() {
                        on_gone();
                        return;
                    }
                }
                r = &mut job => break r,
                // Gone while the job says nothing (a quiet RUN step).
                _ = tx.closed() => {
                    on_gone();
                    return;
                }
            }
        };
        while let Ok(v) = erx.try_recv() {
            let _ = tx.send(json_line(&v)).await;
        }
        if let Err(e) = result {
            let msg =
                serde_json::json!({"errorDetail": {"message": e.message}, "error": e.message});
            let _ = tx.send(json_line(&msg)).await;
        }
    });
    resp
}
