//! Every decoder a request's target, headers and body pass through, run
//! without a server or an engine, for the fuzz target (`fuzz/`): what
//! the handlers do after decoding is the engine's business.

use serde_json::Value;

use crate::query::Query;
use crate::{create, exec, images, networks, router, volumes};

/// Decodes `target` (path and query, as in the request line), an
/// `X-Registry-Auth` header and `body` every way some route would;
/// returns how many of the decodings succeeded. Must never panic.
pub fn decode(target: &str, registry_auth: &[u8], body: &[u8]) -> usize {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut ok = 0;
    let mut count = |r: bool| ok += usize::from(r);
    let (version, segs) = router::split_path(path);
    if let Some(v) = version {
        count(router::check_version(v).is_ok());
    }
    let q = Query::parse(query);
    count(q.filters().is_ok());
    for k in ["t", "h", "w", "signal", "tail"] {
        count(q.int(k).is_ok());
    }
    for k in ["all", "force", "v", "follow", "stdout"] {
        count(q.flag(k));
    }
    for k in ["since", "until"] {
        count(q.time(k).is_ok());
    }
    count(images::registry_auth_header(registry_auth).is_ok());
    count(berth_engine::logs::read_records(&mut &body[..], &mut |_| Ok(())).is_ok());

    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        count(create::parse(&v, segs.last().cloned()).is_ok());
    }
    if let Ok(b) = serde_json::from_slice::<exec::CreateBody>(body) {
        count(exec::console(&b.console_size).is_ok());
    }
    if let Ok(b) = serde_json::from_slice::<exec::StartBody>(body) {
        count(exec::console(&b.console_size).is_ok());
    }
    if let Ok(b) = serde_json::from_slice::<networks::CreateBody>(body) {
        count(networks::create_options(&b).is_ok());
    }
    count(serde_json::from_slice::<volumes::CreateBody>(body).is_ok());
    ok
}
