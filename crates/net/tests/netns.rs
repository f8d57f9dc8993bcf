//! Named network namespaces: create, run inside, remove.

mod common;

use berth_net::netns;
use berth_net::rtnl::Rtnl;

fn ns_inode() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn create_enter_remove() {
    if !berth_testutil::require_root("create_enter_remove") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = netns::create(dir.path(), "c1").unwrap();
    let _g = common::NsGuard(path.clone());
    assert_eq!(path, netns::path(dir.path(), "c1"));
    let e = netns::create(dir.path(), "c1").unwrap_err();
    assert_eq!(e.kind(), berth_net::ErrorKind::AlreadyExists);

    let outside = ns_inode();
    let (inside, links) = netns::run_in(&path, || {
        let links = Rtnl::open()?.links()?;
        Ok((ns_inode(), links))
    })
    .unwrap();
    assert_ne!(inside, outside, "closure ran in the caller's namespace");
    assert_eq!(ns_inode(), outside, "caller's thread changed namespace");
    let names: Vec<_> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo"]);

    netns::remove(&path).unwrap();
    assert!(!path.exists());
    netns::remove(&path).unwrap(); // repeatable
    assert!(netns::run_in(&path, || Ok(())).is_err());
}

#[test]
fn rejects_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "a/b", ".."] {
        let e = netns::create(dir.path(), bad).unwrap_err();
        assert_eq!(e.kind(), berth_net::ErrorKind::InvalidArgument);
    }
}
