//! Arbitrary bytes as a bundle's `config.json`, through everything
//! `berth-runtime create` does with it before touching the system: the
//! parse, the checks, the init's mount-option and capability parsing, the
//! seccomp compile, and the cgroup writes (into a fake cgroup tree in a
//! temporary directory, which nothing may leave).
#![no_main]

use std::fs;

use berth_runtime::cgroups::{Manager, Version};
use berth_runtime::config;
use libfuzzer_sys::fuzz_target;

fn cgroups(spec: &oci_spec::runtime::Spec, version: Version) {
    let Some(linux) = spec.linux() else {
        return;
    };
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("cgroup");
    match version {
        Version::V2 => fs::create_dir(&root).unwrap(),
        _ => {
            for h in [
                "memory",
                "cpu,cpuacct",
                "pids",
                "cpuset",
                "blkio",
                "devices",
                "freezer",
                "hugetlb",
            ] {
                fs::create_dir_all(root.join(h)).unwrap();
            }
            if version == Version::Hybrid {
                fs::create_dir(root.join("unified")).unwrap();
            }
        }
    }
    let path = linux.cgroups_path().as_deref();
    if let Ok(m) = Manager::with_root(&root, version, path, "fuzz") {
        if m.create().is_ok() {
            if let Some(r) = linux.resources() {
                let _ = m.apply(r);
            }
        }
    }
    let names: Vec<_> = fs::read_dir(outer.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "cgroup writes left the cgroup tree");
}

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = config::parse(data) else {
        return;
    };
    if config::validate(&spec).is_err() {
        return;
    }
    let _ = berth_runtime::fuzzing::init_checks(&spec);
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        let _ = berth_runtime::seccomp::compile(s);
    }
    let version = match data.len() % 3 {
        0 => Version::V1,
        1 => Version::Hybrid,
        _ => Version::V2,
    };
    cgroups(&spec, version);
});
