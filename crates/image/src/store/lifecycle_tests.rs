//! commit, rmi, prune, gc, leases, check and df.

use std::collections::HashSet;
use std::fs;

use super::*;
use crate::archive::tests::{image, layer, state, store, three_layers};
use crate::content::write_blob;
use crate::content::{Manager, Provider};
use crate::snapshot::{mount_all, unmount};

#[test]
fn commit_records_the_containers_changes_as_a_new_layer() {
    if !berth_testutil::require_root("commit_records_the_containers_changes_as_a_new_layer") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let tar_dir = tempfile::tempdir().unwrap();
    let tar_path = tar_dir.path().join("rootfs.tar");
    berth_testutil::rootfs_tar(&tar_path).unwrap();
    let base = s
        .import(
            fs::File::open(&tar_path).unwrap(),
            &ImportOptions {
                reference: Some(Reference::parse("bb").unwrap()),
                ..Default::default()
            },
        )
        .unwrap();

    let mnt = tempfile::tempdir().unwrap();
    mount_all(&s.rootfs(&base, "ctr-1").unwrap(), mnt.path()).unwrap();
    fs::write(mnt.path().join("etc/added"), "new").unwrap();
    fs::create_dir_all(mnt.path().join("srv/app")).unwrap();
    fs::write(mnt.path().join("srv/app/x"), "x").unwrap();
    fs::remove_file(mnt.path().join("etc/group")).unwrap();
    fs::remove_dir_all(mnt.path().join("home")).unwrap();
    unmount(mnt.path()).unwrap();

    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let opts = CommitOptions {
        reference: Some(Reference::parse("bb:committed").unwrap()),
        author: Some("me".into()),
        message: Some("my change".into()),
        changes: vec!["ENV A=1".into(), "CMD [\"/bin/sh\"]".into()],
        created_by: None,
        progress: Some(Progress::new({
            let seen = seen.clone();
            move |n| seen.store(n, std::sync::atomic::Ordering::Relaxed)
        })),
    };
    let img = s.commit(&base, "ctr-1", &opts).unwrap();
    // Progress counted every byte of the new layer.
    let top = s.layer(img.top_chain_id.as_ref().unwrap()).unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), top.size);
    assert_eq!(img.tags, vec![Reference::parse("bb:committed").unwrap()]);
    let cfg = s.config(&img).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(cfg["config"]["Env"], json!(["A=1"]));
    assert_eq!(cfg["author"], "me");
    assert_eq!(
        cfg["history"].as_array().unwrap().last().unwrap()["comment"],
        "my change"
    );
    let new_layer = s.layer(img.top_chain_id.as_ref().unwrap()).unwrap();
    assert!(
        new_layer.size < 64 * 1024,
        "the layer is the change, not the image: {}",
        new_layer.size
    );
    assert_eq!(img.size, base.size + new_layer.size);

    let mnt2 = tempfile::tempdir().unwrap();
    mount_all(&s.rootfs(&img, "ctr-2").unwrap(), mnt2.path()).unwrap();
    let seen = (
        fs::read_to_string(mnt2.path().join("etc/added")).ok(),
        mnt2.path().join("srv/app/x").is_file(),
        mnt2.path().join("etc/group").exists(),
        mnt2.path().join("home").exists(),
        mnt2.path().join("bin/busybox").is_file(),
    );
    unmount(mnt2.path()).unwrap();
    assert_eq!(seen, (Some("new".into()), true, false, false, true));
    assert!(s.system_check().unwrap().is_consistent());

    // A bad --change fails before anything is written.
    let before = state(&s);
    let bad = CommitOptions {
        changes: vec!["RUN x".into()],
        ..Default::default()
    };
    assert_eq!(
        s.commit(&base, "ctr-1", &bad).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(state(&s), before);
}

#[test]
fn rmi_untags_then_deletes_and_refuses_images_in_use() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let a = image(&s, &three_layers(), "app:v1");
    let b = image(&s, &three_layers()[..2], "base:1");
    s.tag(&a.id, &Reference::parse("app:v2").unwrap()).unwrap();
    let none = HashSet::new();

    assert_eq!(
        s.remove_image("app:v2", false, &none).unwrap(),
        vec![Removed::Untagged(
            Reference::parse("app:v2").unwrap(),
            a.id.clone()
        )]
    );
    s.tag(&a.id, &Reference::parse("app:v2").unwrap()).unwrap();
    let e = s.remove_image(a.id.short(), false, &none).unwrap_err();
    assert!(e.to_string().contains("multiple repositories"), "{e}");
    let used: HashSet<_> = [a.id.clone()].into();
    s.remove_image("app:v2", false, &used).unwrap();
    let e = s.remove_image("app:v1", false, &used).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("being used"), "{e}");

    let out = s.remove_image("app:v1", false, &none).unwrap();
    assert_eq!(
        out,
        vec![
            Removed::Untagged(Reference::parse("app:v1").unwrap(), a.id.clone()),
            Removed::Deleted(a.id.clone())
        ]
    );
    assert_eq!(
        s.image(a.id.as_str()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Its own top layer went; the two it shares with base stayed.
    assert_eq!(s.snapshotter().list().unwrap().len(), 2);
    let check = s.system_check().unwrap();
    assert!(
        check.is_consistent()
            && check.unreferenced_blobs.is_empty()
            && check.unreferenced_snapshots.is_empty(),
        "{check:?}"
    );
    assert_eq!(s.image("base:1").unwrap().id, b.id);
}

#[test]
fn prune_gc_and_leases() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let a = image(&s, &three_layers(), "app:v1");
    let b = image(&s, &three_layers()[..1], "base:1");
    // Dangling: b loses its tag to a.
    s.tag(&a.id, &Reference::parse("base:1").unwrap()).unwrap();
    assert!(s.image(b.id.as_str()).unwrap().tags.is_empty());

    // A leased blob survives gc; an unleased stray one does not.
    let lease = s.lease().unwrap();
    let kept = Digest::of(b"in flight");
    lease.add_blob(&kept).unwrap();
    write_blob(s.content(), b"in flight", None).unwrap();
    let stray = write_blob(s.content(), b"stray", None).unwrap().digest;
    let report = s.gc().unwrap();
    assert_eq!(report.blobs_removed, vec![stray]);
    assert!(s.content().exists(&kept).unwrap());

    let (removed, _) = s.prune(false, &HashSet::new(), &|_| true).unwrap();
    assert_eq!(removed, vec![Removed::Deleted(b.id.clone())]);
    assert_eq!(s.images().unwrap().len(), 1);
    // b's only layer is a's bottom layer: shared, so kept.
    assert_eq!(s.snapshotter().list().unwrap().len(), 3);

    // Ending the lease with collect takes back its unreferenced blob.
    lease.collect().unwrap();
    assert!(!s.content().exists(&kept).unwrap());

    // prune -a removes the rest unless in use.
    let used: HashSet<_> = [a.id.clone()].into();
    assert!(s.prune(true, &used, &|_| true).unwrap().0.is_empty());
    s.prune(true, &HashSet::new(), &|_| true).unwrap();
    assert!(s.images().unwrap().is_empty());
    assert!(s.snapshotter().list().unwrap().is_empty());
    assert!(s.content().list().unwrap().is_empty());
}

#[test]
fn the_next_lease_takes_back_what_a_dead_process_leased() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let live = s.lease().unwrap();
    let kept = write_blob(s.content(), b"live work", None).unwrap().digest;
    live.add_blob(&kept).unwrap();

    // A lease whose process died mid-work: its guard never ran (as after
    // SIGKILL) and its pid is one that has exited.
    let dead = s.lease().unwrap();
    let blob = Digest::of(b"dead work");
    dead.add_blob(&blob).unwrap();
    write_blob(s.content(), b"dead work", None).unwrap();
    dead.add_snapshot("unpack-dead").unwrap();
    s.snapshotter().prepare("unpack-dead", None).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    s.lock()
        .execute(
            "UPDATE leases SET pid = ?1 WHERE id = ?2",
            rusqlite::params![gone, dead.id()],
        )
        .unwrap();
    std::mem::forget(dead);

    let next = s.lease().unwrap();
    assert!(!s.content().exists(&blob).unwrap());
    assert!(s.snapshotter().stat("unpack-dead").is_err());
    // The live lease's work stays.
    assert!(s.content().exists(&kept).unwrap());
    let leases: i64 = s
        .lock()
        .query_row("SELECT COUNT(*) FROM leases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(leases, 2, "the live lease and the new one");
    next.release().unwrap();
    live.collect().unwrap();
    assert!(s.content().list().unwrap().is_empty());
}

#[test]
fn gc_keeps_container_snapshots_and_their_parents() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let a = image(&s, &three_layers(), "app:v1");
    s.rootfs(&a, "ctr").unwrap();
    s.remove_image("app:v1", true, &HashSet::new()).unwrap();
    s.gc().unwrap();
    // The container and the three layers under it remain.
    assert_eq!(s.snapshotter().list().unwrap().len(), 4);
    s.snapshotter().remove("ctr").unwrap();
    s.gc().unwrap();
    assert!(s.snapshotter().list().unwrap().is_empty());
}

#[test]
fn check_finds_what_is_wrong_and_df_splits_shared_and_unique() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let a = image(&s, &three_layers(), "app:v1");
    let b = image(&s, &three_layers()[..2], "base:1");
    let df = s.df(&[b.id.clone()].into()).unwrap();
    let ua = df.images.iter().find(|i| i.id == a.id).unwrap();
    let ub = df.images.iter().find(|i| i.id == b.id).unwrap();
    assert_eq!(ua.size, a.size);
    assert_eq!(ua.shared_size, ub.size);
    assert_eq!(ub.unique_size, 0);
    assert_eq!(df.layers_size, a.size);
    assert_eq!(df.reclaimable, ua.unique_size);
    assert!(s.system_check().unwrap().is_consistent());

    // Damage: a blob's bytes change, a layer's snapshot vanishes.
    let blob = s.layer(a.top_chain_id.as_ref().unwrap()).unwrap().blob;
    let path = s.content().blob_path(&blob).unwrap();
    let mut perms = fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&path, perms).unwrap();
    fs::write(&path, b"garbage").unwrap();
    let dir = s
        .snapshotter()
        .stat(a.top_chain_id.as_ref().unwrap().as_str())
        .unwrap()
        .dir;
    fs::remove_dir_all(&dir).unwrap();
    let check = s.system_check().unwrap();
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains(blob.as_str()) && p.contains("digest")),
        "{check:?}"
    );
    assert!(
        check.problems.iter().any(|p| p.contains("is missing")),
        "{check:?}"
    );
}

#[test]
fn register_refuses_inconsistent_images_and_takes_back_its_work() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let l = layer(&[("a", Some(b"1"))]);
    let blob = write_blob(s.content(), &l, None).unwrap();
    let config = serde_json::to_vec(
        &json!({"rootfs": {"type": "layers", "diff_ids": [Digest::of(b"other").as_str()]}}),
    )
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": {"digest": Digest::of(&config).as_str(), "size": config.len()},
        "layers": [{"digest": blob.digest.as_str(), "size": blob.size}],
    }))
    .unwrap();
    let e = s.register(&manifest, &config, &[]).unwrap_err();
    assert!(matches!(e, StoreError::LayerMismatch { .. }), "{e}");
    assert!(s.images().unwrap().is_empty());
    assert!(s.snapshotter().list().unwrap().is_empty());
    // Nothing it wrote stays (the caller holds its own lease over blobs it
    // wants kept; this one had none).
    assert!(!s.content().exists(&Digest::of(&config)).unwrap());
    let e = s.register(b"{}", &config, &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}
