//! Arbitrary requests through the API's decoders: the first line is the
//! request target (`/v1.47/containers/create?name=x`), the second the
//! X-Registry-Auth header, the rest the body. Decoding may refuse,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let target = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let auth = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    berth_api::fuzzing::decode(&target, auth, body);
});
