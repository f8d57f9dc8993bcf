//! How a pull moves layers: several downloads at once, and unpacking that
//! starts with the first layer while later ones still download. A proxy
//! holds chosen requests back until the pull has shown the behaviour (or
//! a long deadline passes, and the assertions then fail).

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use berth_image::content::Provider;
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use berth_image::snapshot::overlay::OverlaySnapshotter;
use berth_image::store::Store;
use berth_registry::{Event, PullOptions};
use berth_testutil::peers::Registry;
use common::image::{image, layer, noise, TestImage};
use common::proxy::CuttingProxy;
use common::{client, store, Events};

/// Long enough never to end a passing test; a failing one ends with it.
const DEADLINE: Duration = Duration::from_secs(60);

fn no_progress(_: Event) {}

/// Layer `i`'s one file: noise, bigger for higher layers.
fn content(i: usize) -> Vec<u8> {
    noise((64 + 16 * i) << 10, i as u64 + 7)
}

/// `n` layers holding [`content`], pushed to `reg` as `name`.
fn pushed(reg: &Registry, name: &str, n: usize) -> TestImage {
    let layers = (0..n)
        .map(|i| {
            let path = format!("layer{i}/data");
            layer(&[(path.as_str(), content(i).as_slice())])
        })
        .collect();
    push(reg, name, image(layers, common::image::host_arch(), name))
}

/// Pulls `name` into `dst` with the default options.
fn pull(
    dst: &Store,
    name: &str,
    progress: berth_registry::Progress<'_>,
) -> Result<berth_registry::Pulled, berth_registry::RegistryError> {
    client().pull(
        dst,
        &Reference::parse(name).unwrap(),
        &PullOptions::default(),
        progress,
    )
}

fn push(reg: &Registry, name: &str, img: TestImage) -> TestImage {
    let tmp = tempfile::tempdir().unwrap();
    let src = store(tmp.path());
    let full = format!("{}/{name}", reg.host());
    let image = img.register(&src, &full);
    client()
        .push(
            &src,
            &image,
            &Reference::parse(&full).unwrap(),
            &no_progress,
        )
        .unwrap();
    img
}

/// A latch the proxy waits on and the test opens.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    waiting: usize,
    most_waiting: usize,
    timed_out: bool,
}

impl Gate {
    /// Blocks until the gate opens; opens it once `enough` callers wait
    /// together.
    fn wait(&self, enough: usize) {
        let deadline = Instant::now() + DEADLINE;
        let mut st = self.state.lock().unwrap();
        st.waiting += 1;
        st.most_waiting = st.most_waiting.max(st.waiting);
        if st.waiting >= enough {
            st.open = true;
            self.changed.notify_all();
        }
        while !st.open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.timed_out = true;
                st.open = true;
                break;
            }
            st = self.changed.wait_timeout(st, left).unwrap().0;
        }
        st.waiting -= 1;
    }

    fn open(&self) {
        self.state.lock().unwrap().open = true;
        self.changed.notify_all();
    }
}

fn is_get_of(line: &str, blobs: &[Digest]) -> bool {
    line.starts_with("GET ") && blobs.iter().any(|d| line.contains(d.as_str()))
}

/// Pulls a five-layer image (each layer bigger than the one below) into
/// `dst` with a client allowed `at_once` downloads, checks that many were
/// in flight together, and returns the layers whose downloads started
/// first, sorted.
fn downloads_at_a_time(dst: &Store, at_once: usize) -> Vec<usize> {
    let reg = Registry::start();
    let img = pushed(&reg, "test/parallel:1", 5);
    let blobs: Vec<Digest> = img.layers.iter().map(|l| l.digest.clone()).collect();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    // Each layer request waits until `at_once` wait together: a client
    // fetching fewer at a time never gets there.
    let proxy = CuttingProxy::holding(
        reg.port,
        Box::new(move |line| {
            if is_get_of(line, &blobs) {
                g.wait(at_once);
            }
        }),
    );
    let name = format!("127.0.0.1:{}/test/parallel:1", proxy.port);
    let c = berth_registry::Client::new(
        berth_registry::RegistryConfig {
            certs_dir: "/nonexistent".into(),
            max_concurrent_downloads: at_once,
            ..Default::default()
        },
        None,
    );
    let pulled = c
        .pull(
            dst,
            &Reference::parse(&name).unwrap(),
            &PullOptions::default(),
            &no_progress,
        )
        .unwrap();
    let st = gate.state.lock().unwrap();
    assert!(
        !st.timed_out,
        "{at_once} layer downloads were never in flight together"
    );
    assert_eq!(st.most_waiting, at_once);
    for i in 0..5 {
        assert_eq!(
            in_layers(dst, &pulled.image, &format!("layer{i}/data")),
            content(i)
        );
    }
    let requests = proxy.state.requests.lock().unwrap();
    let mut first: Vec<usize> = requests
        .iter()
        .filter_map(|(line, _)| {
            img.layers
                .iter()
                .position(|l| is_get_of(line, std::slice::from_ref(&l.digest)))
        })
        .take(at_once)
        .collect();
    first.sort();
    first
}

#[test]
fn layers_download_three_at_a_time_biggest_first() {
    if !berth_testutil::require_root("layers_download_three_at_a_time_biggest_first") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Overlay layers unpack side by side as they download: the biggest
    // (the top ones), which take longest, first.
    assert_eq!(
        downloads_at_a_time(&overlay_store(tmp.path()), 3),
        [2, 3, 4]
    );
}

#[test]
fn max_concurrent_downloads_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(downloads_at_a_time(&store(tmp.path()), 2), [3, 4]);
}

/// Pulls a three-layer image whose last layer the registry sends only
/// once the first has started unpacking, and checks the order of events.
fn unpacks_while_downloading(dst: &Store) {
    let reg = Registry::start();
    let img = pushed(&reg, "test/overlap:1", 3);
    let first = img.layers[0].digest.clone();
    let last = img.layers[2].digest.clone();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let held = vec![last.clone()];
    let proxy = CuttingProxy::holding(
        reg.port,
        Box::new(move |line| {
            if is_get_of(line, &held) {
                g.wait(usize::MAX);
            }
        }),
    );
    let events = Events::default();
    let sink = |e: Event| {
        if matches!(&e, Event::Extracting { layer } if *layer == first) {
            gate.open();
        }
        events.sink()(e);
    };
    let name = format!("127.0.0.1:{}/test/overlap:1", proxy.port);
    let pulled = pull(dst, &name, &sink).unwrap();
    assert!(
        !gate.state.lock().unwrap().timed_out,
        "the first layer did not start unpacking before the last was downloaded"
    );
    let ev = events.take();
    let pos =
        |f: &dyn Fn(&Event) -> bool| ev.iter().position(f).unwrap_or_else(|| panic!("{ev:?}"));
    let extracting_first = pos(&|e| matches!(e, Event::Extracting { layer } if *layer == first));
    let last_bytes = pos(&|e| matches!(e, Event::Downloading { layer, .. } if *layer == last));
    assert!(extracting_first < last_bytes, "{ev:?}");
    // Every layer still unpacks and is reported done.
    for l in &img.layers {
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::Done { layer } if *layer == l.digest)),
            "{ev:?}"
        );
    }
    for i in 0..3 {
        assert_eq!(
            in_layers(dst, &pulled.image, &format!("layer{i}/data")),
            content(i)
        );
    }
}

/// `path` as the image shows it: overlay keeps each layer's files in its
/// own snapshot, so look down the chain.
fn in_layers(store: &Store, image: &berth_image::store::Image, path: &str) -> Vec<u8> {
    let mut key = image.top_chain_id.as_ref().map(|c| c.to_string());
    while let Some(k) = key {
        let info = store.snapshotter().stat(&k).unwrap();
        if let Ok(b) = std::fs::read(info.dir.join(path)) {
            return b;
        }
        key = info.parent;
    }
    panic!("{path} is in no layer of the image");
}

#[test]
fn layers_unpack_while_later_ones_download_overlay() {
    if !berth_testutil::require_root("layers_unpack_while_later_ones_download_overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    unpacks_while_downloading(&overlay_store(tmp.path()));
}

fn overlay_store(dir: &std::path::Path) -> Store {
    let snap = OverlaySnapshotter::open(&dir.join("snapshots")).unwrap();
    Store::open(dir, Box::new(snap)).unwrap()
}

#[test]
fn a_failed_download_stops_the_unpack_and_leaves_nothing() {
    let reg = Registry::start();
    let img = pushed(&reg, "test/broken:1", 4);
    // The registry loses the third layer: its download fails for good.
    let gone = &img.layers[2].digest;
    std::fs::remove_dir_all(reg.blob_path(gone.hex()).parent().unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dst = store(tmp.path());
    let name = format!("{}/test/broken:1", reg.host());
    let err = pull(&dst, &name, &no_progress).unwrap_err();
    assert!(err.to_string().contains(gone.as_str()), "{err}");
    assert!(dst.image(&name).is_err());
    for l in &img.layers {
        assert!(
            !dst.content().exists(&l.digest).unwrap(),
            "{} kept",
            l.digest
        );
    }
    assert_eq!(
        dst.snapshotter().list().unwrap().len(),
        0,
        "snapshots left behind"
    );
}

/// Whether a file `name` of `len` bytes is anywhere under `dir`.
fn has_file(dir: &std::path::Path, name: &str, len: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            return false;
        };
        if meta.is_dir() {
            has_file(&e.path(), name, len)
        } else {
            e.file_name() == name && meta.len() == len
        }
    })
}

/// A layer unpacks from its first bytes on: while the registry holds back
/// the rest of its blob, the layer's first file is already in the store.
fn unpacks_a_layer_as_it_downloads(dir: &std::path::Path, dst: &Store) {
    let reg = Registry::start();
    let (a, b) = (noise(512 << 10, 1), noise(512 << 10, 2));
    let big = layer(&[("big/first", a.as_slice()), ("big/second", b.as_slice())]);
    let digest = big.digest.to_string();
    let img = push(
        &reg,
        "test/stream:1",
        image(vec![big], common::image::host_arch(), "stream"),
    );
    let seen = Arc::new(Mutex::new(None));
    let (seen2, root) = (seen.clone(), dir.to_path_buf());
    // 700 KiB in: all of the first file, part of the second.
    let proxy = CuttingProxy::pausing(
        reg.port,
        &digest,
        700 << 10,
        Box::new(move || {
            let deadline = Instant::now() + DEADLINE;
            let found = loop {
                if has_file(&root, "first", 512 << 10) {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            *seen2.lock().unwrap() = Some(found);
        }),
    );
    let name = format!("127.0.0.1:{}/test/stream:1", proxy.port);
    let pulled = pull(dst, &name, &no_progress).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some(true),
        "the first file was not unpacked while the rest of the layer downloaded"
    );
    assert_eq!(in_layers(dst, &pulled.image, "big/second"), b);
    assert_eq!(pulled.image.id, img.config_digest());
}

#[test]
fn a_layer_unpacks_as_it_downloads_overlay() {
    if !berth_testutil::require_root("a_layer_unpacks_as_it_downloads_overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    unpacks_a_layer_as_it_downloads(tmp.path(), &overlay_store(tmp.path()));
}
