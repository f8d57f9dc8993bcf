//! Arbitrary strings through the image reference and digest parsers.
//! Besides never panicking, a reference that parses must survive a round
//! trip: its full form and its familiar form parse back to the same
//! reference, so what `berth images` shows names the same image.
#![no_main]

use berth_image::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let _ = Digest::parse(&input);
    let _ = Reference::parse_named(&input);
    let Ok(r) = Reference::parse(&input) else {
        return;
    };
    let full = r.to_string();
    assert_eq!(
        Reference::parse(&full).as_ref(),
        Ok(&r),
        "full form {full:?}"
    );
    let familiar = r.familiar();
    assert_eq!(
        Reference::parse(&familiar).as_ref(),
        Ok(&r),
        "familiar form {familiar:?}"
    );
    let _ = (r.domain(), r.path(), r.name(), r.familiar_name());
    // The input's tail doubles as a tag to put on the parsed name.
    let tail = input.rsplit(':').next().unwrap_or("");
    if let Ok(t) = r.with_tag(tail) {
        assert_eq!(t.tag(), Some(tail));
        assert_eq!(Reference::parse(&t.to_string()).as_ref(), Ok(&t));
    }
});
