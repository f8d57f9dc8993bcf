//! Arbitrary bytes read as a docker-archive or OCI layout (`berth load`)
//! into one store shared by all runs. Loading may fail, never panic; a
//! failed load must leave no blob behind.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use berth_image::snapshot::native::NativeSnapshotter;
use berth_image::store::Store;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    blobs: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let snap = NativeSnapshotter::open(&dir.path().join("snapshots")).unwrap();
        let store = Store::open(dir.path(), Box::new(snap)).unwrap();
        let blobs = dir.path().join("content/blobs/sha256");
        Fixture {
            _dir: dir,
            store,
            blobs,
        }
    })
}

fn blob_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let before = blob_count(&f.blobs);
    if berth_image::archive::load(&f.store, data).is_err() {
        assert_eq!(blob_count(&f.blobs), before, "a failed load left blobs");
    }
});
