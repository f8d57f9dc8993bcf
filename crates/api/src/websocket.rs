//! `GET /containers/{id}/attach/ws`: attach over a websocket, as browser
//! consoles use it. Output is never multiplexed: stdout and stderr arrive
//! as binary messages of their raw bytes (the websocket, not a header,
//! frames them). Text or binary messages from the client are stdin; its
//! close is the end of its input and its leaving.

use futures_util::{SinkExt, StreamExt};
use hyper::{header, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};
use tokio_tungstenite::WebSocketStream;

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

/// How much output one message carries at most.
const CHUNK: usize = 32 * 1024;

/// Whether header `name` lists `token` (comma-separated, any case).
fn lists(ctx: &Ctx, name: header::HeaderName, token: &str) -> bool {
    ctx.headers.get_all(name).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// The `Sec-WebSocket-Accept` for a valid opening handshake.
fn accept_key(ctx: &Ctx) -> Result<String, ApiError> {
    if !lists(ctx, header::UPGRADE, "websocket") || !lists(ctx, header::CONNECTION, "upgrade") {
        return Err(ApiError::bad_request(
            "attach/ws needs a websocket handshake (Connection: Upgrade, Upgrade: websocket)",
        ));
    }
    if ctx
        .headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err(ApiError::bad_request(
            "attach/ws speaks websocket version 13 (Sec-WebSocket-Version: 13)",
        ));
    }
    let key = ctx
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| ApiError::bad_request("attach/ws needs a Sec-WebSocket-Key"))?;
    Ok(derive_accept_key(key.as_bytes()))
}

pub async fn attach(mut ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let accept = accept_key(&ctx)?;
    let upgrade = ctx
        .upgrade
        .take()
        .ok_or_else(|| ApiError::bad_request("attach/ws needs a websocket upgrade"))?;
    // Before 1.42 docker attached every stream whatever the query said.
    let a = crate::streams::prepare(&ctx, id, false, ctx.minor < 42).await?;
    let api = ctx.api.clone();
    tokio::spawn(async move {
        let Ok(up) = upgrade.await else {
            a.forget(&api);
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
        let (mut sink, mut source) = ws.split();
        // The attach is served on one end of a pipe; the other end is
        // pumped to and from the websocket's messages.
        let (ours, theirs) = tokio::io::duplex(2 * CHUNK);
        let (mut from_attach, mut to_attach) = tokio::io::split(theirs);
        let (left, gone) = oneshot::channel::<()>();
        let output = async move {
            let mut buf = vec![0u8; CHUNK];
            while let Ok(n @ 1..) = from_attach.read(&mut buf).await {
                let msg = Message::Binary(buf[..n].to_vec().into());
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
            let _ = sink.send(Message::Close(None)).await;
        };
        let input = async move {
            while let Some(Ok(msg)) = source.next().await {
                let data = match msg {
                    Message::Binary(b) => b.to_vec(),
                    Message::Text(t) => t.as_bytes().to_vec(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                if to_attach.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = to_attach.shutdown().await;
            let _ = left.send(());
        };
        let serving = async move {
            let mut ours = ours;
            a.serve(&api, &mut ours, async {
                let _ = gone.await;
            })
            .await;
            // Our end of the pipe closes here: the output pump sends what
            // is left, then a close.
            drop(ours);
        };
        // A client that leaves ends the attach (through `gone`); an attach
        // that ends (or a client that cannot be written to) ends the input
        // pump, and with it the connection.
        tokio::join!(serving, async {
            tokio::select! {
                () = output => {}
                () = input => {}
            }
        });
    });
    let mut r = body::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(r)
}
