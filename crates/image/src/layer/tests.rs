use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

/// Builds layer tarballs in memory, including ones no honest tool makes.
struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Tar {
    fn new() -> Self {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(t: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(t);
        h.set_mode(mode);
        h.set_mtime(1_000_000);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// An entry with the name (and link name) written verbatim, bypassing
    /// the tar crate's refusal of `..` and absolute paths.
    fn raw(&mut self, t: tar::EntryType, name: &str, link: Option<&str>, data: &[u8]) -> &mut Self {
        let mut h = Tar::header(t, 0o644);
        h.set_size(data.len() as u64);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.raw(tar::EntryType::Regular, path, None, data)
    }

    fn file_with(&mut self, path: &str, data: &[u8], mode: u32, uid: u64, mtime: u64) -> &mut Self {
        let mut h = Tar::header(tar::EntryType::Regular, mode);
        h.set_size(data.len() as u64);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    fn dir(&mut self, path: &str, mode: u32, mtime: u64) -> &mut Self {
        let mut h = Tar::header(tar::EntryType::Directory, mode);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(tar::EntryType::Symlink, path, Some(target), b"")
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(tar::EntryType::Link, path, Some(target), b"")
    }

    fn device(&mut self, path: &str, t: tar::EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Tar::header(t, 0o620);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    fn xattrs(&mut self, pairs: &[(&str, &[u8])]) -> &mut Self {
        let recs: Vec<(String, &[u8])> = pairs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

/// Every path under `dir` with its type, content or target and mode: a
/// fingerprint to prove a hostile layer changed nothing.
fn fingerprint(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let what = if md.is_dir() {
                walk(base, &p, out);
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if md.is_file() {
                format!("{:?}", fs::read(&p).unwrap())
            } else {
                "special".into()
            };
            out.insert(rel, format!("{what} {:o} {}", md.mode(), md.nlink()));
        }
    }
    walk(dir, dir, &mut out);
    out
}

#[test]
fn applies_files_dirs_links_with_metadata() {
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .dir("d/", 0o750, 5_000)
        .file_with("d/f", b"hello", 0o4755, 0, 7_000)
        .file("top", b"x")
        .symlink("d/link", "../top")
        .symlink("abs", "/etc/passwd")
        .hardlink("d/hard", "d/f")
        .file("implicit/parent/file", b"p")
        .bytes();
    let applied = apply(&tar[..], t.path(), &opts()).unwrap();
    assert_eq!(applied.diff_id, crate::Digest::of(&tar));
    assert_eq!(applied.size, tar.len() as u64);

    let r = t.path();
    assert_eq!(fs::read(r.join("d/f")).unwrap(), b"hello");
    let md = fs::metadata(r.join("d/f")).unwrap();
    assert_eq!(
        md.mode() & 0o7777,
        0o4755,
        "setuid survives (chmod after chown)"
    );
    assert_eq!(md.mtime(), 7_000);
    assert_eq!(fs::metadata(r.join("d")).unwrap().mode() & 0o7777, 0o750);
    assert_eq!(
        fs::metadata(r.join("d")).unwrap().mtime(),
        5_000,
        "dir mtime set after its children"
    );
    assert_eq!(
        fs::read_link(r.join("d/link")).unwrap(),
        Path::new("../top")
    );
    assert_eq!(
        fs::read_link(r.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(fs::metadata(r.join("d/hard")).unwrap().ino(), md.ino());
    assert_eq!(fs::read(r.join("implicit/parent/file")).unwrap(), b"p");
    assert_eq!(
        fs::metadata(r.join("implicit")).unwrap().mode() & 0o777,
        0o755
    );
}

#[test]
fn applies_devices_fifos_and_ownership_as_root() {
    if !berth_testutil::require_root("applies_devices_fifos_and_ownership_as_root") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/loop9", tar::EntryType::Block, 7, 9)
        .device("fifo", tar::EntryType::Fifo, 0, 0)
        .file_with("home/u/f", b"u", 0o600, 1000, 1)
        .symlink("home/u/l", "f")
        .bytes();
    apply(&tar[..], t.path(), &opts()).unwrap();
    let r = t.path();
    let null = fs::metadata(r.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o620, "mode not cut by the umask");
    assert!(fs::metadata(r.join("dev/loop9"))
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(fs::metadata(r.join("fifo")).unwrap().file_type().is_fifo());
    let f = fs::metadata(r.join("home/u/f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (1000, 1000));
    assert_eq!(fs::symlink_metadata(r.join("home/u/l")).unwrap().uid(), 0);
}

#[test]
fn gzip_and_zstd_are_detected_and_diff_id_is_of_the_plain_tar() {
    let tar = Tar::new().file("a", b"aaaa").dir("b/", 0o755, 1).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    for (name, bytes) in [("plain", &tar), ("gzip", &gz), ("zstd", &zst)] {
        let t = tempfile::tempdir().unwrap();
        let applied = apply(&bytes[..], t.path(), &opts()).unwrap();
        assert_eq!(applied.diff_id, crate::Digest::of(&tar), "{name}");
        assert_eq!(applied.size, tar.len() as u64, "{name}");
        assert_eq!(fs::read(t.path().join("a")).unwrap(), b"aaaa", "{name}");
    }
    assert_eq!(Compression::detect(&gz), Compression::Gzip);
    assert_eq!(Compression::detect(&zst), Compression::Zstd);
    assert_eq!(Compression::detect(&tar), Compression::None);
}

#[test]
fn absolute_paths_land_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    let name = format!("/berth-abs-test-{}", std::process::id());
    let tar = Tar::new().file(&name, b"inside").bytes();
    apply(&tar[..], t.path(), &opts()).unwrap();
    assert_eq!(fs::read(t.path().join(&name[1..])).unwrap(), b"inside");
    assert!(
        !Path::new(&name).exists(),
        "nothing written at the host's /"
    );
}

#[test]
fn hostile_layers_are_refused_naming_the_entry_and_change_nothing_outside() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "keep").unwrap();
    let out = outside.display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            Tar::new().file("../../x", b"pwned").bytes(),
            "../../x",
        ),
        (
            "dotdot-inner",
            Tar::new().file("a/../../outside/secret", b"pwned").bytes(),
            "a/../../outside/secret",
        ),
        (
            "symlink-to-outside-then-file",
            Tar::new()
                .symlink("evil", &out)
                .file("evil/pwned", b"x")
                .bytes(),
            "evil/pwned",
        ),
        (
            "symlink-to-root",
            Tar::new()
                .symlink("evil", "/")
                .file("evil/etc/passwd", b"x")
                .bytes(),
            "evil/etc/passwd",
        ),
        (
            "relative-symlink-up",
            Tar::new()
                .symlink("rel", "../../outside")
                .file("rel/pwned", b"x")
                .bytes(),
            "rel/pwned",
        ),
        (
            "dir-replaced-by-symlink",
            Tar::new()
                .dir("d/", 0o755, 1)
                .symlink("d", &out)
                .file("d/pwned", b"x")
                .bytes(),
            "d/pwned",
        ),
        (
            "hardlink-dotdot",
            Tar::new().hardlink("h", "../../outside/secret").bytes(),
            "h",
        ),
        (
            "hardlink-through-symlink",
            Tar::new()
                .symlink("evil", &out)
                .hardlink("h", "evil/secret")
                .bytes(),
            "h",
        ),
        (
            "hardlink-absolute",
            Tar::new().hardlink("h", &format!("{out}/secret")).bytes(),
            "h",
        ),
        (
            "whiteout-through-symlink",
            Tar::new()
                .symlink("evil", &out)
                .file("evil/.wh.secret", b"")
                .bytes(),
            "evil/.wh.secret",
        ),
        (
            "opaque-through-symlink",
            Tar::new()
                .symlink("evil", &out)
                .file("evil/.wh..wh..opq", b"")
                .bytes(),
            "evil/.wh..wh..opq",
        ),
        (
            "whiteout-of-dot",
            Tar::new().file("a/.wh..", b"").bytes(),
            "a/.wh..",
        ),
        (
            "dir-through-symlink",
            Tar::new()
                .symlink("evil", &out)
                .dir("evil/sub/", 0o777, 1)
                .bytes(),
            "evil/sub/",
        ),
    ];
    let before = fingerprint(&outside);
    for (case, tar, entry) in cases {
        let root = t.path().join("a/b/root");
        fs::create_dir_all(&root).unwrap();
        let err = apply(&tar[..], &root, &opts()).expect_err(case);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{entry:?}")),
            "{case}: error does not name {entry:?}: {msg}"
        );
        // An absolute target is looked up inside the root, where it is
        // missing: refused as not found rather than as an escape.
        let want = if case == "hardlink-absolute" {
            crate::ErrorKind::NotFound
        } else {
            crate::ErrorKind::InvalidArgument
        };
        assert_eq!(err.kind(), want, "{case}: {msg}");
        assert_eq!(
            fingerprint(&outside),
            before,
            "{case}: something outside the root changed"
        );
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            2,
            "{case}: {:?}",
            fingerprint(t.path())
        );
        assert!(
            !t.path().join("x").exists() && !t.path().join("a/x").exists(),
            "{case}"
        );
        fs::remove_dir_all(t.path().join("a")).unwrap();
    }
}

#[test]
fn whiteouts_delete_and_opaque_dirs_keep_only_this_layers_entries() {
    for opq_first in [true, false] {
        let t = tempfile::tempdir().unwrap();
        let base = Tar::new()
            .file("a", b"a")
            .file("d/x", b"x")
            .file("d/sub/y", b"y")
            .file("e/z", b"z")
            .file("e/keep", b"k")
            .bytes();
        apply(&base[..], t.path(), &opts()).unwrap();
        let mut layer = Tar::new();
        layer
            .file(".wh.a", b"")
            .file("e/.wh.z", b"")
            .file(".wh.never-existed", b"");
        if opq_first {
            layer
                .file("d/.wh..wh..opq", b"")
                .file("d/new", b"n")
                .file("d/implicit/f", b"i");
        } else {
            layer
                .file("d/new", b"n")
                .file("d/implicit/f", b"i")
                .file("d/.wh..wh..opq", b"");
        }
        layer.file("nodir/.wh.x", b"");
        apply(&layer.bytes()[..], t.path(), &opts()).unwrap();
        let r = t.path();
        assert!(!r.join("a").exists());
        assert!(!r.join("e/z").exists());
        assert!(r.join("e/keep").exists());
        assert!(
            !r.join("d/x").exists() && !r.join("d/sub").exists(),
            "opaque hid the lower entries"
        );
        assert_eq!(
            fs::read(r.join("d/new")).unwrap(),
            b"n",
            "opq_first={opq_first}"
        );
        assert!(!r.join("nodir").exists(), "a whiteout creates nothing");
        assert!(!r.join("d/.wh..wh..opq").exists() && !r.join(".wh.a").exists());
    }
}

#[test]
fn overlay_mode_writes_overlay_whiteouts() {
    if !berth_testutil::require_root("overlay_mode_writes_overlay_whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layer = Tar::new()
        .file(".wh.a", b"")
        .dir("d/", 0o755, 1)
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"n")
        .bytes();
    let o = ApplyOptions {
        whiteouts: Whiteouts::Overlay,
        ..opts()
    };
    apply(&layer[..], t.path(), &o).unwrap();
    let wh = fs::symlink_metadata(t.path().join("a")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "0/0 char device"
    );
    let v =
        rustix::fs::getxattr(t.path().join("d"), OVERLAY_OPAQUE_XATTR, &mut [0u8; 8][..]).unwrap();
    assert_eq!(v, 1);
    assert_eq!(fs::read(t.path().join("d/new")).unwrap(), b"n");
}

#[test]
fn xattrs_are_applied_but_overlay_xattrs_are_not() {
    let t = tempfile::tempdir().unwrap();
    let layer = Tar::new()
        .xattrs(&[("user.color", b"blue"), ("trusted.overlay.opaque", b"y")])
        .dir("d/", 0o755, 1)
        .xattrs(&[("user.k", b"v")])
        .file("d/f", b"f")
        .bytes();
    apply(&layer[..], t.path(), &opts()).unwrap();
    let get = |p: &str, k: &str| {
        let mut buf = [0u8; 64];
        rustix::fs::lgetxattr(t.path().join(p), k, &mut buf[..]).map(|n| buf[..n].to_vec())
    };
    match get("d", "user.color") {
        Ok(v) => assert_eq!(v, b"blue"),
        // tmpfs before 6.6 has no user xattrs; nothing to check there.
        Err(rustix::io::Errno::NOTSUP) => return,
        Err(e) => panic!("{e}"),
    }
    assert_eq!(get("d/f", "user.k").unwrap(), b"v");
    assert_eq!(
        get("d", "trusted.overlay.opaque"),
        Err(rustix::io::Errno::NODATA)
    );
}

#[test]
fn zero_runs_become_holes() {
    let t = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; 4 << 20];
    data[..3].copy_from_slice(b"abc");
    data.extend_from_slice(b"end");
    let tail_hole = vec![0u8; 1 << 20];
    let layer = Tar::new()
        .file("sparse", &data)
        .file("tail", &tail_hole)
        .bytes();
    apply(&layer[..], t.path(), &opts()).unwrap();
    assert_eq!(fs::read(t.path().join("sparse")).unwrap(), data);
    assert_eq!(fs::read(t.path().join("tail")).unwrap(), tail_hole);
    let md = fs::metadata(t.path().join("sparse")).unwrap();
    assert!(
        md.blocks() * 512 < 1 << 20,
        "{} bytes allocated for a mostly empty file",
        md.blocks() * 512
    );
}

#[test]
fn gnu_sparse_entries_are_expanded() {
    // A GNU sparse file made by tar(1): 1 MiB hole then data.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let f = fs::File::create(src.join("s")).unwrap();
    f.set_len(1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"tail", 1 << 20).unwrap();
    let tarball = t.path().join("s.tar");
    let ok = std::process::Command::new("tar")
        .args(["--sparse", "--format=gnu", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&tarball)
        .arg("s")
        .status()
        .unwrap();
    assert!(ok.success());
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    apply(fs::File::open(&tarball).unwrap(), &root, &opts()).unwrap();
    let got = fs::read(root.join("s")).unwrap();
    assert_eq!(got.len(), (1 << 20) + 4);
    assert_eq!(&got[1 << 20..], b"tail");
    assert!(got[..1 << 20].iter().all(|b| *b == 0));
}

#[test]
fn diff_then_apply_round_trips_with_whiteouts() {
    if !berth_testutil::require_root("diff_then_apply_round_trips_with_whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir_all(upper.join("opq")).unwrap();
    fs::create_dir_all(upper.join("dir/sub")).unwrap();
    fs::write(upper.join("dir/sub/file"), "content").unwrap();
    fs::set_permissions(
        upper.join("dir/sub/file"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::hard_link(upper.join("dir/sub/file"), upper.join("dir/hard")).unwrap();
    std::os::unix::fs::symlink("sub/file", upper.join("dir/link")).unwrap();
    fs::write(upper.join("opq/fresh"), "fresh").unwrap();
    rustix::fs::setxattr(
        upper.join("opq"),
        OVERLAY_OPAQUE_XATTR,
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();

    let mut tar = Vec::new();
    let d = diff(&upper, &mut tar, &DiffOptions::default()).unwrap();
    assert_eq!(d.diff_id, crate::Digest::of(&tar));
    let mut again = Vec::new();
    diff(&upper, &mut again, &DiffOptions::default()).unwrap();
    assert_eq!(tar, again, "diff is deterministic");

    let mut names = Vec::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        names.push(e.path().unwrap().display().to_string());
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                assert!(
                    !x.unwrap().key().unwrap().contains("trusted.overlay"),
                    "overlay xattrs never leave"
                );
            }
        }
    }
    assert_eq!(
        names,
        [
            "dir/",
            "dir/hard",
            "dir/link",
            "dir/sub/",
            "dir/sub/file",
            ".wh.gone",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/fresh"
        ]
    );

    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("opq")).unwrap();
    fs::write(lower.join("opq/old"), "old").unwrap();
    fs::write(lower.join("gone"), "gone").unwrap();
    fs::write(lower.join("stays"), "stays").unwrap();
    let applied = apply(&tar[..], &lower, &opts()).unwrap();
    assert_eq!(applied.diff_id, d.diff_id);
    assert!(!lower.join("gone").exists());
    assert!(!lower.join("opq/old").exists());
    assert_eq!(fs::read(lower.join("opq/fresh")).unwrap(), b"fresh");
    assert_eq!(fs::read(lower.join("stays")).unwrap(), b"stays");
    assert_eq!(fs::read(lower.join("dir/link")).unwrap(), b"content");
    let (a, b) = (
        fs::metadata(lower.join("dir/hard")).unwrap(),
        fs::metadata(lower.join("dir/sub/file")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hardlink kept");
    assert_eq!(b.mode() & 0o7777, 0o640);
}

#[test]
fn diff_clamps_mtimes_to_source_date_epoch() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("f"), "f").unwrap();
    let mut tar = Vec::new();
    diff(
        t.path(),
        &mut tar,
        &DiffOptions {
            source_date_epoch: Some(1_000),
        },
    )
    .unwrap();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        assert_eq!(e.unwrap().header().mtime().unwrap(), 1_000);
    }
}
