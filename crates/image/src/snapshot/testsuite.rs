//! One conformance suite, run against every backend (containerd's
//! snapshots/testsuite idea): a backend is correct when it passes all of it.

use std::fs;
use std::path::Path;

use super::native::NativeSnapshotter;
use super::overlay::OverlaySnapshotter;
use super::{mount_all, unmount, Kind, Mount, Snapshotter};
use crate::layer::{apply_to_mounts, ApplyOptions};
use crate::ErrorKind;

fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
            }
        }
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        b.append_data(&mut h, path, data.unwrap_or_default())
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// Unpacks `tar` as a committed snapshot `name` on `parent`.
fn unpack(s: &dyn Snapshotter, name: &str, parent: Option<&str>, tar: &[u8]) {
    let key = format!("extract-{name}");
    let mounts = s.prepare(&key, parent).unwrap();
    apply_to_mounts(&mounts, tar, &ApplyOptions::default()).unwrap();
    s.commit(name, &key).unwrap();
}

/// Mounts `mounts` on a fresh directory for the duration of `f`.
fn with_mounted<T>(mounts: &[Mount], f: impl FnOnce(&Path) -> T) -> T {
    let dir = tempfile::tempdir().unwrap();
    mount_all(mounts, dir.path()).unwrap();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(dir.path())));
    unmount(dir.path()).unwrap();
    out.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

pub(super) fn lifecycle(s: &dyn Snapshotter) {
    s.prepare("a", None).unwrap();
    let st = s.stat("a").unwrap();
    assert_eq!((st.kind, st.parent.as_deref()), (Kind::Active, None));
    s.commit("base", "a").unwrap();
    assert_eq!(
        s.stat("a").unwrap_err().kind(),
        ErrorKind::NotFound,
        "the key is gone after commit"
    );
    assert_eq!(s.stat("base").unwrap().kind, Kind::Committed);
    s.prepare("b", Some("base")).unwrap();
    s.view("v", Some("base")).unwrap();
    let st = s.stat("b").unwrap();
    assert_eq!(
        (st.kind, st.parent.as_deref()),
        (Kind::Active, Some("base"))
    );
    assert_eq!(s.stat("v").unwrap().kind, Kind::View);
    let keys: Vec<String> = s.list().unwrap().into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["base", "b", "v"], "parents first");
    assert!(s.mounts("b").is_ok());
    assert_eq!(
        s.mounts("base").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

pub(super) fn errors(s: &dyn Snapshotter) {
    s.prepare("a", None).unwrap();
    assert_eq!(
        s.prepare("a", None).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        s.prepare("x", Some("missing")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.prepare("x", Some("a")).unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "parent must be committed"
    );
    assert_eq!(
        s.prepare("", None).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    s.commit("c", "a").unwrap();
    s.prepare("a2", None).unwrap();
    assert_eq!(
        s.commit("c", "a2").unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        s.commit("c2", "c").unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "committed cannot commit"
    );
    s.view("v", Some("c")).unwrap();
    assert_eq!(
        s.commit("c3", "v").unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "views cannot commit"
    );
    assert_eq!(
        s.commit("c4", "nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

pub(super) fn remove(s: &dyn Snapshotter) {
    s.prepare("a", None).unwrap();
    s.commit("base", "a").unwrap();
    s.prepare("child", Some("base")).unwrap();
    let dir = s.stat("child").unwrap().dir;
    assert!(dir.exists());
    let e = s.remove("base").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    s.remove("child").unwrap();
    assert!(!dir.exists(), "the directory goes with the record");
    s.remove("base").unwrap();
    assert!(s.list().unwrap().is_empty());
    assert_eq!(s.remove("base").unwrap_err().kind(), ErrorKind::NotFound);
}

/// Entries named `rm-*` anywhere under `root`: removed snapshots' files.
fn trash_under(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("rm-") {
                out.push(e.path());
            } else if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    out
}

/// A detached removal: the record and the directory go at once, the
/// files when purged, or at the next open after a crash.
pub(super) fn remove_detached(
    s: &dyn Snapshotter,
    root: &Path,
    reopen: &dyn Fn() -> Box<dyn Snapshotter>,
) {
    s.prepare("ctr", None).unwrap();
    let dir = s.stat("ctr").unwrap().dir;
    fs::write(dir.join("file"), b"x").unwrap();
    let d = s.remove_detached("ctr").unwrap();
    assert_eq!(s.stat("ctr").unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!dir.exists());
    assert_eq!(trash_under(root).len(), 1, "the files wait aside");
    s.prepare("ctr", None).unwrap();
    assert!(!s.stat("ctr").unwrap().dir.join("file").exists());
    d.purge().unwrap();
    assert!(trash_under(root).is_empty(), "purged");
    // A remover still alive keeps its files aside at the next open...
    std::mem::forget(s.remove_detached("ctr").unwrap());
    let trash = trash_under(root);
    assert_eq!(trash.len(), 1);
    drop(reopen());
    assert_eq!(trash_under(root), trash, "a live remover's files stay");
    // ...one that died (its pid in the name is gone) has them swept.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let name = trash[0].file_name().unwrap().to_string_lossy().into_owned();
    let (stem, _pid) = name.rsplit_once('-').unwrap();
    fs::rename(&trash[0], trash[0].with_file_name(format!("{stem}-{dead}"))).unwrap();
    drop(reopen());
    assert!(
        trash_under(root).is_empty(),
        "a dead remover's files are swept"
    );
}

pub(super) fn layers_stack_with_whiteouts(s: &dyn Snapshotter) {
    unpack(
        s,
        "l1",
        None,
        &layer(&[
            ("a", Some(b"a")),
            ("b", Some(b"b1")),
            ("d/", None),
            ("d/x", Some(b"x")),
        ]),
    );
    let l2 = layer(&[
        (".wh.a", Some(b"")),
        ("b", Some(b"b2")),
        ("c", Some(b"c")),
        ("d/", None),
        ("d/.wh..wh..opq", Some(b"")),
        ("d/y", Some(b"y")),
    ]);
    unpack(s, "l2", Some("l1"), &l2);
    let mounts = s.prepare("ctr", Some("l2")).unwrap();
    with_mounted(&mounts, |root| {
        assert!(!root.join("a").exists(), "whited out");
        assert_eq!(fs::read(root.join("b")).unwrap(), b"b2");
        assert_eq!(fs::read(root.join("c")).unwrap(), b"c");
        assert!(
            !root.join("d/x").exists(),
            "opaque dir hides the lower layer"
        );
        assert_eq!(fs::read(root.join("d/y")).unwrap(), b"y");
        fs::write(root.join("new"), "ctr").unwrap();
        fs::remove_file(root.join("b")).unwrap();
    });
    // The container's writes never reach a committed layer.
    let view = s.view("look", Some("l1")).unwrap();
    with_mounted(&view, |root| {
        assert_eq!(fs::read(root.join("b")).unwrap(), b"b1");
        assert_eq!(fs::read(root.join("d/x")).unwrap(), b"x");
        assert!(!root.join("new").exists());
        let e = fs::write(root.join("w"), "x").unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::ROFS.raw_os_error()),
            "a view is read-only"
        );
    });
    // A second container does not see the first one's changes.
    let other = s.prepare("ctr2", Some("l2")).unwrap();
    with_mounted(&other, |root| {
        assert!(!root.join("new").exists());
        assert_eq!(fs::read(root.join("b")).unwrap(), b"b2");
    });
    // And the first container's changes survive a remount.
    with_mounted(&s.mounts("ctr").unwrap(), |root| {
        assert_eq!(fs::read(root.join("new")).unwrap(), b"ctr");
        assert!(!root.join("b").exists());
    });
    // A view of a multi-layer snapshot is read-only too.
    with_mounted(&s.view("look2", Some("l2")).unwrap(), |root| {
        assert_eq!(fs::read(root.join("d/y")).unwrap(), b"y");
        assert!(fs::write(root.join("w"), "x").is_err());
    });
}

pub(super) fn many_layers(s: &dyn Snapshotter, n: usize) {
    let mut parent: Option<String> = None;
    for i in 0..n {
        let name = format!("sha256:{i:064x}");
        let path = format!("layer{i:03}");
        unpack(
            s,
            &name,
            parent.as_deref(),
            &layer(&[(&path, Some(path.as_bytes()))]),
        );
        parent = Some(name);
    }
    let mounts = s.prepare("deep", parent.as_deref()).unwrap();
    if let Some(lower) = mounts[0].option_value("lowerdir") {
        // Otherwise the test would not prove anything about the limit.
        assert!(lower.len() > 4096, "lowerdir is only {} bytes", lower.len());
    }
    with_mounted(&mounts, |root| {
        for i in [0, n / 2, n - 1] {
            let p = format!("layer{i:03}");
            assert_eq!(fs::read(root.join(&p)).unwrap(), p.as_bytes());
        }
        assert_eq!(fs::read_dir(root).unwrap().count(), n);
    });
}

macro_rules! suite {
    ($modname:ident, $open:expr) => {
        mod $modname {
            use super::*;

            fn open() -> (tempfile::TempDir, Box<dyn Snapshotter>) {
                let dir = tempfile::tempdir().unwrap();
                let s: Box<dyn Snapshotter> = Box::new($open(dir.path()).unwrap());
                (dir, s)
            }

            #[test]
            fn lifecycle() {
                super::lifecycle(&*open().1);
            }

            #[test]
            fn errors() {
                super::errors(&*open().1);
            }

            #[test]
            fn remove() {
                super::remove(&*open().1);
            }

            #[test]
            fn remove_detached() {
                let (dir, s) = open();
                let reopen = || -> Box<dyn Snapshotter> { Box::new($open(dir.path()).unwrap()) };
                super::remove_detached(&*s, dir.path(), &reopen);
            }

            #[test]
            fn state_survives_reopen() {
                let (dir, s) = open();
                s.prepare("a", None).unwrap();
                s.commit("base", "a").unwrap();
                drop(s);
                let s = $open(dir.path()).unwrap();
                assert_eq!(s.stat("base").unwrap().kind, Kind::Committed);
            }

            #[test]
            fn a_remove_killed_before_its_commit_is_undone_at_open() {
                let (dir, s) = open();
                s.prepare("a", None).unwrap();
                s.commit("base", "a").unwrap();
                let files = s.stat("base").unwrap().dir;
                fs::create_dir_all(&files).unwrap();
                fs::write(files.join("kept"), "x").unwrap();
                // What `remove` does before its commit: the snapshot's
                // directory moved aside as rm-<n>, the row still there.
                let snap = files.parent().unwrap().to_path_buf();
                // By a remover that died: pid 0 is never a process's.
                let trash = snap.parent().unwrap().join(".work").join(format!(
                    "rm-{}-0",
                    snap.file_name().unwrap().to_string_lossy()
                ));
                fs::rename(&snap, &trash).unwrap();
                drop(s);
                let s = $open(dir.path()).unwrap();
                assert_eq!(
                    fs::read_to_string(s.stat("base").unwrap().dir.join("kept")).unwrap(),
                    "x"
                );
                assert!(!trash.exists());
            }

            #[test]
            fn one_open_sweeps_dead_stages_and_removals_and_keeps_live_ones() {
                let (dir, s) = open();
                s.prepare("a", None).unwrap();
                s.commit("base", "a").unwrap();
                let snap = s.stat("base").unwrap().dir.parent().unwrap().to_path_buf();
                let beside = |name: String| snap.parent().unwrap().join(".work").join(name);
                // A layer staged by a writer that died (pid 0 is never a
                // process's), one by a live writer (us), and the files of
                // a removed snapshot whose remover died after its commit.
                let dead = beside("stage-0-1-2".into());
                let live = beside(format!("stage-{}-1-2", std::process::id()));
                let removed = beside("rm-999999-0".into());
                for d in [&dead, &live, &removed] {
                    fs::create_dir_all(d.join("sub")).unwrap();
                    fs::write(d.join("sub/f"), "x").unwrap();
                }
                drop(s);
                let s = $open(dir.path()).unwrap();
                assert!(!dead.exists(), "a dead writer's stage was kept");
                assert!(!removed.exists(), "a removed snapshot's files were kept");
                assert!(
                    live.join("sub/f").exists(),
                    "a live writer's stage was swept"
                );
                assert_eq!(s.stat("base").unwrap().kind, Kind::Committed);
            }

            #[test]
            fn layers_stack_with_whiteouts() {
                if !berth_testutil::require_root(concat!(
                    stringify!($modname),
                    "::layers_stack_with_whiteouts"
                )) {
                    return;
                }
                super::layers_stack_with_whiteouts(&*open().1);
            }

            #[test]
            fn more_than_100_layers_mount() {
                if !berth_testutil::require_root(concat!(
                    stringify!($modname),
                    "::more_than_100_layers_mount"
                )) {
                    return;
                }
                super::many_layers(&*open().1, 160);
            }
        }
    };
}

suite!(overlay, OverlaySnapshotter::open);
suite!(native, NativeSnapshotter::open);
