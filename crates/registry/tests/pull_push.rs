//! Push and pull against a real distribution registry on loopback.

mod common;

use berth_image::content::Provider;
use berth_image::reference::Reference;
use berth_registry::{ErrorKind, Event, PullOptions, RegistryError};
use berth_testutil::peers::Registry;
use common::image::{read_file, two_layers};
use common::{client, store, Events};

fn no_progress(_: Event) {}

#[test]
fn push_then_pull_round_trip_by_tag_and_digest() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = store(&tmp.path().join("src"));
    let img = two_layers("roundtrip", 300 << 10);
    let name = format!("{}/test/app:v1", reg.host());
    let image = img.register(&src, &name);
    let reference = Reference::parse(&name).unwrap();
    let c = client();

    let events = Events::default();
    let pushed = c.push(&src, &image, &reference, &events.sink()).unwrap();
    assert_eq!(pushed, img.manifest_digest());
    let ev = events.take();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Done { .. }))
            .count(),
        3,
        "{ev:?}"
    );

    // A second push finds every blob there already.
    c.push(&src, &image, &reference, &events.sink()).unwrap();
    let ev = events.take();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Exists { .. }))
            .count(),
        3,
        "{ev:?}"
    );

    let dst = store(&tmp.path().join("dst"));
    let pulled = c
        .pull(&dst, &reference, &PullOptions::default(), &events.sink())
        .unwrap();
    assert_eq!(pulled.image.id, img.config_digest());
    assert_eq!(pulled.image.manifest, img.manifest_digest());
    assert_eq!(pulled.digest, img.manifest_digest());
    assert_eq!(
        dst.image(&name).unwrap().id,
        image.id,
        "recorded under its tag"
    );
    assert_eq!(pulled.image.size, image.size);
    assert_eq!(
        read_file(&dst, &pulled.image, "etc/hello"),
        b"hello from roundtrip\n"
    );
    assert_eq!(
        read_file(&dst, &pulled.image, "data/big.bin"),
        read_file(&src, &image, "data/big.bin")
    );
    for l in &img.layers {
        assert!(dst.content().exists(&l.digest).unwrap());
    }
    let ev = events.take();
    assert!(matches!(ev[0], Event::Resolving { .. }), "{ev:?}");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Downloading { total, done, .. } if done == total)),
        "{ev:?}"
    );

    // By digest, into another store.
    let by_digest = Reference::parse(&format!(
        "{}/test/app@{}",
        reg.host(),
        img.manifest_digest()
    ))
    .unwrap();
    let other = store(&tmp.path().join("other"));
    let pulled = c
        .pull(&other, &by_digest, &PullOptions::default(), &no_progress)
        .unwrap();
    assert_eq!(pulled.image.id, img.config_digest());
    assert_eq!(other.image(&by_digest.to_string()).unwrap().id, image.id);
    assert_eq!(
        read_file(&other, &pulled.image, "etc/hello"),
        b"hello from roundtrip\n"
    );
}

#[test]
fn blobs_already_present_are_not_downloaded_again() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = store(&tmp.path().join("src"));
    let c = client();
    let a = two_layers("shared", 64 << 10);
    let name_a = format!("{}/test/a:1", reg.host());
    let image_a = a.register(&src, &name_a);
    c.push(
        &src,
        &image_a,
        &Reference::parse(&name_a).unwrap(),
        &no_progress,
    )
    .unwrap();
    // Same first layer, another second layer.
    let b = common::image::image(
        vec![
            common::image::layer(&[("etc/hello", b"hello from shared\n")]),
            common::image::layer(&[("etc/b", b"only in b")]),
        ],
        common::image::host_arch(),
        "b",
    );
    assert_eq!(a.layers[0].digest, b.layers[0].digest);
    let name_b = format!("{}/test/b:1", reg.host());
    let image_b = b.register(&src, &name_b);
    c.push(
        &src,
        &image_b,
        &Reference::parse(&name_b).unwrap(),
        &no_progress,
    )
    .unwrap();

    let dst = store(&tmp.path().join("dst"));
    let events = Events::default();
    c.pull(
        &dst,
        &Reference::parse(&name_a).unwrap(),
        &PullOptions::default(),
        &events.sink(),
    )
    .unwrap();
    events.take();
    let pulled = c
        .pull(
            &dst,
            &Reference::parse(&name_b).unwrap(),
            &PullOptions::default(),
            &events.sink(),
        )
        .unwrap();
    let ev = events.take();
    let shared = &b.layers[0].digest;
    assert!(
        ev.contains(&Event::Exists {
            layer: shared.clone()
        }),
        "{ev:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Downloading { layer, .. } if layer == shared)),
        "the shared layer was downloaded again: {ev:?}"
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Downloading { layer, .. } if *layer == b.layers[1].digest)));
    assert_eq!(read_file(&dst, &pulled.image, "etc/b"), b"only in b");

    // Pulling the same image again moves no layer at all.
    c.pull(
        &dst,
        &Reference::parse(&name_b).unwrap(),
        &PullOptions::default(),
        &events.sink(),
    )
    .unwrap();
    let ev = events.take();
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Downloading { .. })),
        "{ev:?}"
    );
}

#[test]
fn chunked_upload_and_cross_repository_mount() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = store(&tmp.path().join("src"));
    let c = common::client_with(std::path::Path::new("/nonexistent"), None);
    let mut config = c.config().clone();
    config.chunk_size = 64 << 10;
    let c = berth_registry::Client::new(config, None);
    let img = two_layers("chunks", 400 << 10);
    let first = format!("{}/one/app:1", reg.host());
    let image = img.register(&src, &first);
    let events = Events::default();
    c.push(
        &src,
        &image,
        &Reference::parse(&first).unwrap(),
        &events.sink(),
    )
    .unwrap();
    let ev = events.take();
    let big = &img.layers[1];
    let chunks = ev
        .iter()
        .filter(|e| matches!(e, Event::Uploading { layer, .. } if *layer == big.digest))
        .count();
    assert!(
        chunks >= 6,
        "a {} byte blob in 64 KiB chunks: {ev:?}",
        big.blob.len()
    );

    // The same image under a second repository: its blobs are mounted
    // from the first (the image's other tag), not uploaded again.
    let second = Reference::parse(&format!("{}/two/app:1", reg.host())).unwrap();
    src.tag(&image.id, &second).unwrap();
    let image = src.image(&second.to_string()).unwrap();
    c.push(&src, &image, &second, &events.sink()).unwrap();
    let ev = events.take();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Exists { .. }))
            .count(),
        3,
        "{ev:?}"
    );
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Uploading { .. })),
        "{ev:?}"
    );

    let dst = store(&tmp.path().join("dst"));
    let pulled = c
        .pull(&dst, &second, &PullOptions::default(), &no_progress)
        .unwrap();
    assert_eq!(
        read_file(&dst, &pulled.image, "data/big.bin"),
        read_file(&src, &image, "data/big.bin")
    );
}

#[test]
fn corrupted_blob_is_caught_and_nothing_is_left_behind() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = store(&tmp.path().join("src"));
    let c = client();
    let img = two_layers("corrupt", 200 << 10);
    let name = format!("{}/test/corrupt:1", reg.host());
    let image = img.register(&src, &name);
    let reference = Reference::parse(&name).unwrap();
    c.push(&src, &image, &reference, &no_progress).unwrap();

    // Flip bytes in the registry's copy of the big layer, keeping its size.
    let bad = &img.layers[1];
    let path = reg.blob_path(bad.digest.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(1000).take(64) {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();

    let dst_dir = tmp.path().join("dst");
    let dst = store(&dst_dir);
    let err = c
        .pull(&dst, &reference, &PullOptions::default(), &no_progress)
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(bad.digest.as_str()) && msg.contains(&reg.host()),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(!dst.content().exists(&bad.digest).unwrap());
    assert!(dst.image(&name).is_err(), "no image recorded");
    let ingest: Vec<_> = std::fs::read_dir(dst_dir.join("content/ingest"))
        .unwrap()
        .collect();
    assert!(
        ingest.is_empty(),
        "partial download left behind: {ingest:?}"
    );
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = store(&tmp.path().join("src"));
    let c = client();
    let img = two_layers("resume", 2 << 20);
    let big = &img.layers[1];
    let name = format!("{}/test/resume:1", reg.host());
    let image = img.register(&src, &name);
    c.push(
        &src,
        &image,
        &Reference::parse(&name).unwrap(),
        &no_progress,
    )
    .unwrap();

    let proxy = common::proxy::CuttingProxy::start(reg.port, big.digest.as_str(), 700 << 10);
    let via_proxy = Reference::parse(&format!("127.0.0.1:{}/test/resume:1", proxy.port)).unwrap();
    let dst = store(&tmp.path().join("dst"));
    let events = Events::default();
    let pulled = c
        .pull(&dst, &via_proxy, &PullOptions::default(), &events.sink())
        .unwrap();
    assert!(proxy
        .state
        .cut_done
        .load(std::sync::atomic::Ordering::SeqCst));
    let ev = events.take();
    assert!(
        ev.iter().any(|e| matches!(e, Event::Retrying { layer, offset } if *layer == big.digest && *offset > 0)),
        "{ev:?}"
    );
    let requests = proxy.state.requests.lock().unwrap().clone();
    let ranged: Vec<_> = requests
        .iter()
        .filter(|(line, range)| line.contains(big.digest.as_str()) && range.is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "{requests:?}");
    let start: u64 = ranged[0].1.as_ref().unwrap()["bytes=".len()..]
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(start > 0 && start < big.blob.len() as u64, "{ranged:?}");
    assert_eq!(
        read_file(&dst, &pulled.image, "data/big.bin"),
        read_file(&src, &image, "data/big.bin")
    );
}

#[test]
fn unknown_tag_and_unreachable_registry_name_what_failed() {
    let reg = Registry::start();
    let c = client();
    let tmp = tempfile::tempdir().unwrap();
    let dst = store(tmp.path());
    let missing = Reference::parse(&format!("{}/test/nothing:here", reg.host())).unwrap();
    let err = c
        .pull(&dst, &missing, &PullOptions::default(), &no_progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("test/nothing"), "{err}");

    let port = berth_testutil::peers::free_port();
    let down = Reference::parse(&format!("127.0.0.1:{port}/x/y:1")).unwrap();
    let err = c
        .pull(&dst, &down, &PullOptions::default(), &no_progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn docker_hub_pulls_go_through_a_mirror() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = store(&tmp.path().join("src"));
    let img = two_layers("mirror", 10 << 10);
    // The mirror holds Docker Hub's paths (`library/x`).
    let on_mirror = format!("{}/library/mirrored:1", reg.host());
    let image = img.register(&src, &on_mirror);
    client()
        .push(
            &src,
            &image,
            &Reference::parse(&on_mirror).unwrap(),
            &no_progress,
        )
        .unwrap();
    let mut config = berth_registry::RegistryConfig {
        certs_dir: "/nonexistent".into(),
        ..Default::default()
    };
    config.mirrors = vec![format!("http://{}/", reg.host())];
    let c = berth_registry::Client::new(config, None);
    let dst = store(&tmp.path().join("dst"));
    // There is no internet here: only the mirror can answer.
    let pulled = c
        .pull(
            &dst,
            &Reference::parse("mirrored:1").unwrap(),
            &PullOptions::default(),
            &no_progress,
        )
        .unwrap();
    assert_eq!(pulled.image.id, img.config_digest());
    assert_eq!(dst.image("mirrored:1").unwrap().id, image.id);
}
