//! Tests against fake cgroup trees (tempdirs laid out like v1, hybrid and
//! v2 hosts; files the kernel would make are made by hand) and, as root,
//! against this host's real hierarchies.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde_json::json;
use tempfile::TempDir;

use super::layout::{self, Mount};
use rustix::process::Signal;

use super::{devices, v2, Error, Manager, Version};

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("valid LinuxResources json")
}

fn put(dir: &Path, file: &str, content: &str) {
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(dir.join(file), content).expect("write fake cgroup file");
}

/// Makes empty files, as the kernel does in a new cgroup.
fn touch(dir: &Path, names: &[&str]) {
    for n in names {
        put(dir, n, "");
    }
}

fn get(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
}

/// A v1 host: cpu and cpuacct co-mounted (with the usual symlinks),
/// separate cpuset, memory, devices, freezer, blkio, pids and
/// name=systemd. `hybrid` adds a cgroup2 mount holding hugetlb.
fn v1_tree(hybrid: bool) -> TempDir {
    let t = TempDir::new().expect("tempdir");
    for d in [
        "cpu,cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        "systemd",
    ] {
        fs::create_dir(t.path().join(d)).expect("mkdir");
    }
    symlink("cpu,cpuacct", t.path().join("cpu")).expect("symlink");
    symlink("cpu,cpuacct", t.path().join("cpuacct")).expect("symlink");
    put(&t.path().join("cpuset"), "cpuset.cpus", "0-3\n");
    put(&t.path().join("cpuset"), "cpuset.mems", "0\n");
    if hybrid {
        let u = t.path().join("unified");
        put(&u, "cgroup.controllers", "hugetlb\n");
        put(&u, "cgroup.subtree_control", "\n");
    }
    t
}

/// A pure v2 host with the usual controllers available at the root and,
/// already there, the `berth` parent.
fn v2_tree() -> TempDir {
    let t = TempDir::new().expect("tempdir");
    let all = "cpuset cpu io memory hugetlb pids rdma misc\n";
    put(t.path(), "cgroup.controllers", all);
    put(t.path(), "cgroup.subtree_control", "");
    put(&t.path().join("berth"), "cgroup.controllers", all);
    put(&t.path().join("berth"), "cgroup.subtree_control", "");
    t
}

fn v1_manager(t: &TempDir) -> Manager {
    Manager::with_root(t.path(), Version::V1, None, "c1").expect("manager")
}

/// A created v2 cgroup whose leaf has `controllers` enabled.
fn v2_manager(t: &TempDir, controllers: &str) -> (Manager, PathBuf) {
    let m = Manager::with_root(t.path(), Version::V2, None, "c1").expect("manager");
    m.create().expect("create");
    let leaf = t.path().join("berth/c1");
    put(&leaf, "cgroup.controllers", controllers);
    (m, leaf)
}

// ---- layout ----

#[test]
fn cgroups_path_resolution() {
    let rel = |p: Option<&str>, id| layout::relative_path(p.map(Path::new), id);
    assert_eq!(rel(None, "abc").expect("default"), Path::new("berth/abc"));
    assert_eq!(
        rel(Some("/kubepods/pod1/abc"), "x").expect("absolute"),
        Path::new("kubepods/pod1/abc")
    );
    assert_eq!(
        rel(Some("group/abc"), "x").expect("relative"),
        Path::new("berth/group/abc")
    );
    assert!(rel(Some("/a/../../etc"), "x")
        .expect_err("dotdot")
        .is_invalid());
    assert!(rel(Some("/"), "x").expect_err("root").is_invalid());
    assert!(rel(None, "a/b").expect_err("slash in id").is_invalid());
    assert!(matches!(
        rel(Some("system.slice:berth:abc"), "x"),
        Err(Error::Unsupported(_))
    ));
}

const HYBRID_MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory
36 31 0:33 /docker/x /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 22 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,memory
";

#[test]
fn favordynmods_goes_on_the_cgroup2_mount_with_its_own_options() {
    use layout::DynModsPlan;
    let plan =
        layout::dynmods_plan(&layout::parse_mountinfo(HYBRID_MOUNTINFO), true).expect("hybrid");
    assert_eq!(
        plan,
        DynModsPlan::Reconfigure {
            point: "/sys/fs/cgroup/unified".into(),
            options: vec!["favordynmods".into()]
        }
    );
    let v2 = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    assert_eq!(
        layout::dynmods_plan(&layout::parse_mountinfo(v2), true).expect("v2"),
        DynModsPlan::Reconfigure {
            point: "/sys/fs/cgroup".into(),
            options: vec![
                "nsdelegate".into(),
                "memory_recursiveprot".into(),
                "favordynmods".into()
            ]
        }
    );
    let on = "30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate,favordynmods\n";
    assert_eq!(
        layout::dynmods_plan(&layout::parse_mountinfo(on), true).expect("on"),
        DynModsPlan::Already("/sys/fs/cgroup".into())
    );
    // A v1 hierarchy booted with it counts: the setting is the kernel's.
    let v1_on = "33 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,favordynmods\n";
    assert_eq!(
        layout::dynmods_plan(&layout::parse_mountinfo(v1_on), true).expect("v1 on"),
        DynModsPlan::Already("/sys/fs/cgroup/memory".into())
    );
    let v1 = "33 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let e = layout::dynmods_plan(&layout::parse_mountinfo(v1), true).unwrap_err();
    assert!(e.to_string().contains("cgroup_favordynmods=true"), "{e}");
    // Off again: the other options stay; a v1 hierarchy keeps it.
    assert_eq!(
        layout::dynmods_plan(&layout::parse_mountinfo(on), false).expect("off"),
        DynModsPlan::Reconfigure {
            point: "/sys/fs/cgroup".into(),
            options: vec!["nsdelegate".into()]
        }
    );
    assert_eq!(
        layout::dynmods_plan(&layout::parse_mountinfo(v2), false).expect("off already"),
        DynModsPlan::Already("/sys/fs/cgroup".into())
    );
    assert!(layout::dynmods_plan(&layout::parse_mountinfo(v1_on), false).is_err());
    // A container's view of a subtree cannot change the host's flags.
    let sub = "30 24 0:26 /berth/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    assert!(layout::dynmods_plan(&layout::parse_mountinfo(sub), true).is_err());
}

#[test]
fn mountinfo_hybrid_layout() {
    let mounts = layout::parse_mountinfo(HYBRID_MOUNTINFO);
    assert_eq!(mounts.len(), 7, "{mounts:?}");
    assert_eq!(mounts[6].point, Path::new("/mnt/with space"));
    assert_eq!(mounts[2].controllers, ["memory"]);
    assert_eq!(mounts[4].controllers, ["name=systemd"]);
    let (version, v1, unified) =
        layout::from_mounts(&mounts, Path::new("berth/c1")).expect("layout");
    assert_eq!(version, Version::Hybrid);
    // The second memory mount is ignored: the first one wins.
    assert_eq!(v1.len(), 5, "{v1:?}");
    let dir = |c: &str| {
        v1.iter()
            .find(|h| h.controllers.iter().any(|x| x == c))
            .map(|h| h.dir.clone())
    };
    assert_eq!(
        dir("memory").expect("memory"),
        Path::new("/sys/fs/cgroup/memory/berth/c1")
    );
    assert_eq!(
        dir("name=systemd").expect("systemd"),
        Path::new("/sys/fs/cgroup/systemd/berth/c1")
    );
    // A mount showing /docker/x: paths outside it are placed under the mount.
    assert_eq!(
        dir("devices").expect("devices"),
        Path::new("/sys/fs/cgroup/devices/berth/c1")
    );
    assert_eq!(
        unified.expect("unified").dir,
        Path::new("/sys/fs/cgroup/unified/berth/c1")
    );
    let (_, v1, _) = layout::from_mounts(&mounts, Path::new("docker/x/c1")).expect("layout");
    let devices = v1
        .iter()
        .find(|h| h.controllers == ["devices"])
        .expect("devices");
    assert_eq!(devices.dir, Path::new("/sys/fs/cgroup/devices/c1"));
}

#[test]
fn mountinfo_pure_v2_and_none() {
    let text = "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    let (version, v1, unified) =
        layout::from_mounts(&layout::parse_mountinfo(text), Path::new("berth/c1")).expect("v2");
    assert_eq!(version, Version::V2);
    assert!(v1.is_empty());
    assert_eq!(
        unified.expect("unified").dir,
        Path::new("/sys/fs/cgroup/berth/c1")
    );
    let none: Vec<Mount> = layout::parse_mountinfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
    assert!(matches!(
        layout::from_mounts(&none, Path::new("x")),
        Err(Error::NoCgroupFs)
    ));
}

#[test]
fn with_root_v1_skips_symlinks_and_serializes() {
    let t = v1_tree(false);
    let m = v1_manager(&t);
    assert_eq!(m.version(), Version::V1);
    assert_eq!(m.v1.len(), 8, "{:?}", m.v1);
    let cpu =
        m.v1.iter()
            .find(|h| h.controllers == ["cpu", "cpuacct"])
            .expect("co-mounted cpu,cpuacct");
    assert_eq!(cpu.dir, t.path().join("cpu,cpuacct/berth/c1"));
    assert!(m.v2_path().is_none());
    let json = serde_json::to_string(&m).expect("serialize");
    let back: Manager = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, m);
}

// ---- v1 ----

#[test]
fn v1_create_copies_cpuset_down() {
    let t = v1_tree(false);
    let cs = t.path().join("cpuset");
    // The kernel makes these empty in every new cpuset cgroup.
    touch(&cs.join("berth"), &["cpuset.cpus", "cpuset.mems"]);
    touch(&cs.join("berth/c1"), &["cpuset.cpus", "cpuset.mems"]);
    let m = v1_manager(&t);
    m.create().expect("create");
    for d in ["berth", "berth/c1"] {
        assert_eq!(get(&cs.join(d), "cpuset.cpus"), "0-3");
        assert_eq!(get(&cs.join(d), "cpuset.mems"), "0");
    }
    for d in ["memory", "pids", "systemd", "cpu,cpuacct", "freezer"] {
        assert!(t.path().join(d).join("berth/c1").is_dir(), "{d}");
    }
    m.create().expect("create is idempotent");
}

const V1_MEM_FILES: &[&str] = &[
    "memory.soft_limit_in_bytes",
    "memory.kmem.limit_in_bytes",
    "memory.swappiness",
    "memory.oom_control",
];

fn v1_memory_leaf(t: &TempDir) -> (Manager, PathBuf) {
    let m = v1_manager(t);
    m.create().expect("create");
    let d = t.path().join("memory/berth/c1");
    touch(&d, V1_MEM_FILES);
    put(&d, "memory.limit_in_bytes", "9223372036854771712\n");
    put(&d, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
    (m, d)
}

#[test]
fn v1_memory_limits() {
    let t = v1_tree(false);
    let (m, d) = v1_memory_leaf(&t);
    let r = res(
        json!({"memory": {"limit": 104857600, "swap": 209715200, "reservation": 52428800,
        "kernel": 1048576, "swappiness": 10, "disableOOMKiller": true}}),
    );
    m.apply(&r).expect("apply");
    assert_eq!(get(&d, "memory.limit_in_bytes"), "104857600");
    // OCI swap is memory+swap: memsw takes it unchanged.
    assert_eq!(get(&d, "memory.memsw.limit_in_bytes"), "209715200");
    assert_eq!(get(&d, "memory.soft_limit_in_bytes"), "52428800");
    assert_eq!(get(&d, "memory.kmem.limit_in_bytes"), "1048576");
    assert_eq!(get(&d, "memory.swappiness"), "10");
    assert_eq!(get(&d, "memory.oom_control"), "1");

    // Unlimited memory with swap left out lifts the memsw limit too.
    m.apply(&res(json!({"memory": {"limit": -1}})))
        .expect("unlimited");
    assert_eq!(get(&d, "memory.limit_in_bytes"), "-1");
    assert_eq!(get(&d, "memory.memsw.limit_in_bytes"), "-1");
}

#[test]
fn v1_memory_rejects_bad_values() {
    let t = v1_tree(false);
    let (m, d) = v1_memory_leaf(&t);
    let e = m
        .apply(&res(json!({"memory": {"limit": 200, "swap": 100}})))
        .expect_err("swap below limit");
    assert!(e.is_invalid(), "{e}");
    let e = m
        .apply(&res(json!({"memory": {"swappiness": 101}})))
        .expect_err("swappiness");
    assert!(e.to_string().contains("memory.swappiness"), "{e}");
    // Nothing was written by the refused requests.
    assert_eq!(get(&d, "memory.limit_in_bytes"), "9223372036854771712\n");
    // A file the kernel does not have is an error naming it and the value.
    fs::remove_file(d.join("memory.soft_limit_in_bytes")).expect("rm");
    let e = m
        .apply(&res(json!({"memory": {"reservation": 4096}})))
        .expect_err("missing file");
    let msg = e.to_string();
    assert!(
        msg.contains("memory.soft_limit_in_bytes") && msg.contains("4096"),
        "{msg}"
    );
}

#[test]
fn v1_cpu_pids_and_cpuset() {
    let t = v1_tree(false);
    let m = v1_manager(&t);
    m.create().expect("create");
    let cpu = t.path().join("cpu,cpuacct/berth/c1");
    touch(
        &cpu,
        &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
        ],
    );
    let cs = t.path().join("cpuset/berth/c1");
    touch(&cs, &["cpuset.cpus", "cpuset.mems"]);
    let pids = t.path().join("pids/berth/c1");
    touch(&pids, &["pids.max"]);
    let r = res(json!({
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "realtimePeriod": 1000000,
                "realtimeRuntime": 950000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 64}
    }));
    m.apply(&r).expect("apply");
    assert_eq!(get(&cpu, "cpu.shares"), "512");
    assert_eq!(get(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(get(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(get(&cpu, "cpu.rt_period_us"), "1000000");
    assert_eq!(get(&cpu, "cpu.rt_runtime_us"), "950000");
    assert_eq!(get(&cs, "cpuset.cpus"), "0-1");
    assert_eq!(get(&pids, "pids.max"), "64");
    for (limit, want) in [(0, "max"), (-1, "max"), (7, "7")] {
        m.apply(&res(json!({"pids": {"limit": limit}})))
            .expect("pids");
        assert_eq!(get(&pids, "pids.max"), want, "limit {limit}");
    }
    m.apply(&res(json!({"cpu": {"quota": -1}})))
        .expect("unlimited quota");
    assert_eq!(get(&cpu, "cpu.cfs_quota_us"), "-1");
}

#[test]
fn v1_blkio_files() {
    let t = v1_tree(false);
    let m = v1_manager(&t);
    m.create().expect("create");
    let d = t.path().join("blkio/berth/c1");
    let throttle = [
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
        "blkio.throttle.read_iops_device",
        "blkio.throttle.write_iops_device",
    ];
    touch(
        &d,
        &[
            "blkio.weight",
            "blkio.leaf_weight",
            "blkio.weight_device",
            "blkio.leaf_weight_device",
        ],
    );
    touch(&d, &throttle);
    let r = res(json!({"blockIO": {
        "weight": 300, "leafWeight": 200,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 100}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}, {"major": 8, "minor": 16, "rate": 2048}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]
    }}));
    m.apply(&r).expect("apply");
    assert_eq!(get(&d, "blkio.weight"), "300");
    assert_eq!(get(&d, "blkio.leaf_weight"), "200");
    assert_eq!(get(&d, "blkio.weight_device"), "8:0 500\n");
    assert_eq!(get(&d, "blkio.leaf_weight_device"), "8:0 100\n");
    // One write per device: appended here, each parsed alone by the kernel.
    assert_eq!(
        get(&d, "blkio.throttle.read_bps_device"),
        "8:0 1048576\n8:16 2048\n"
    );
    assert_eq!(get(&d, "blkio.throttle.write_iops_device"), "8:0 100\n");
}

#[test]
fn v1_devices_deny_all_then_rules_in_order() {
    let t = v1_tree(false);
    let m = v1_manager(&t);
    m.create().expect("create");
    let d = t.path().join("devices/berth/c1");
    touch(&d, &["devices.allow", "devices.deny"]);
    let r = res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": true, "type": "p", "access": "rw"},
        {"allow": false, "type": "b", "major": 8, "minor": -1, "access": "m"}
    ]}));
    m.apply(&r).expect("apply");
    // devices.deny is first replaced with "a", then gets rules 1 and 5.
    assert_eq!(get(&d, "devices.deny"), "aa *:* rwm\nb 8:* m\n");
    assert_eq!(get(&d, "devices.allow"), "c 1:3 rw\nc 136:* rwm\n");
    let e = m
        .apply(&res(json!({"devices": [{"allow": true, "access": "rwx"}]})))
        .expect_err("bad access");
    assert!(e.is_invalid(), "{e}");
}

#[test]
fn v1_missing_controller_is_named() {
    let t = v1_tree(false);
    let m = v1_manager(&t);
    m.create().expect("create");
    let e = m
        .apply(&res(
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1048576}]}),
        ))
        .expect_err("no hugetlb");
    assert!(
        matches!(&e, Error::ControllerMissing(c) if c == "hugetlb"),
        "{e}"
    );
    let e = m
        .apply(&res(json!({"unified": {"memory.high": "1000"}})))
        .expect_err("unified on v1");
    assert!(e.to_string().contains("memory.high"), "{e}");
    let e = m
        .apply(&res(json!({"network": {"classID": 7}})))
        .expect_err("no net_cls");
    assert!(e.to_string().contains("net_cls"), "{e}");
    let e = m
        .apply(&res(json!({"rdma": {"mlx4_0": {"hcaHandles": 2}}})))
        .expect_err("no rdma");
    assert!(e.to_string().contains("rdma"), "{e}");
    // Nothing requested, nothing needed.
    m.apply(&res(
        json!({"cpu": {}, "memory": {}, "blockIO": {}, "hugepageLimits": []}),
    ))
    .expect("empty");
}

#[test]
fn hybrid_hugetlb_goes_to_unified() {
    let t = v1_tree(true);
    let m = Manager::with_root(
        t.path(),
        Version::Hybrid,
        Some(Path::new("/berth-x/c1")),
        "c1",
    )
    .expect("manager");
    assert_eq!(m.version(), Version::Hybrid);
    assert!(
        m.v2_path().is_none(),
        "no CLONE_INTO_CGROUP on hybrid: v1 needs cgroup.procs too"
    );
    m.create().expect("create");
    let u = t.path().join("unified");
    assert_eq!(get(&u, "cgroup.subtree_control"), "+hugetlb");
    let leaf = u.join("berth-x/c1");
    put(&leaf, "cgroup.controllers", "hugetlb");
    touch(
        &leaf,
        &[
            "hugetlb.2MB.max",
            "hugetlb.2MB.rsvd.max",
            "hugetlb.1GB.max",
            "cgroup.procs",
        ],
    );
    let r = res(
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}, {"pageSize": "1GB", "limit": -1}]}),
    );
    m.apply(&r).expect("apply");
    assert_eq!(get(&leaf, "hugetlb.2MB.max"), "4194304");
    assert_eq!(get(&leaf, "hugetlb.2MB.rsvd.max"), "4194304");
    assert_eq!(get(&leaf, "hugetlb.1GB.max"), "max");
    let e = m
        .apply(&res(
            json!({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}),
        ))
        .expect_err("bad size");
    assert!(e.is_invalid(), "{e}");
    // add_process writes every hierarchy, the unified one included.
    for d in ["memory", "pids", "systemd", "cpu,cpuacct"] {
        touch(&t.path().join(d).join("berth-x/c1"), &["cgroup.procs"]);
    }
    for d in ["cpuset", "devices", "freezer", "blkio"] {
        touch(&t.path().join(d).join("berth-x/c1"), &["cgroup.procs"]);
    }
    m.add_process(4242).expect("add");
    assert_eq!(get(&leaf, "cgroup.procs"), "4242");
    assert_eq!(
        get(&t.path().join("memory/berth-x/c1"), "cgroup.procs"),
        "4242"
    );
    assert_eq!(
        get(&t.path().join("systemd/berth-x/c1"), "cgroup.procs"),
        "4242"
    );
}

// ---- v2 ----

#[test]
fn v2_create_enables_controllers_in_ancestors() {
    let t = v2_tree();
    let (m, leaf) = v2_manager(&t, "");
    assert!(leaf.is_dir());
    let want = "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc";
    assert_eq!(get(t.path(), "cgroup.subtree_control"), want);
    assert_eq!(get(&t.path().join("berth"), "cgroup.subtree_control"), want);
    assert_eq!(m.v2_path(), Some(leaf.as_path()));
    // Already enabled: nothing is written again.
    put(
        t.path(),
        "cgroup.subtree_control",
        "cpuset cpu io memory hugetlb pids rdma misc",
    );
    m.create().expect("create again");
    assert_eq!(
        get(t.path(), "cgroup.subtree_control"),
        "cpuset cpu io memory hugetlb pids rdma misc"
    );
}

#[test]
fn v2_memory_swap_semantics() {
    let t = v2_tree();
    let (m, d) = v2_manager(&t, "memory pids");
    touch(&d, &["memory.max", "memory.swap.max", "memory.low"]);
    m.apply(&res(
        json!({"memory": {"limit": 100, "swap": 300, "reservation": 50, "kernel": 5}}),
    ))
    .expect("apply");
    assert_eq!(get(&d, "memory.max"), "100");
    // memory+swap 300 with memory 100: 200 of swap.
    assert_eq!(get(&d, "memory.swap.max"), "200");
    assert_eq!(get(&d, "memory.low"), "50");
    m.apply(&res(json!({"memory": {"limit": -1}})))
        .expect("unlimited");
    assert_eq!(get(&d, "memory.max"), "max");
    assert_eq!(get(&d, "memory.swap.max"), "max");
    m.apply(&res(json!({"memory": {"limit": 100, "swap": 100}})))
        .expect("no swap");
    assert_eq!(get(&d, "memory.swap.max"), "0");
    assert!(m
        .apply(&res(json!({"memory": {"swap": 300}})))
        .expect_err("swap alone")
        .is_invalid());
    assert!(m
        .apply(&res(json!({"memory": {"limit": 300, "swap": 200}})))
        .expect_err("swap < limit")
        .is_invalid());
    // No swap accounting: "max" and "0" are fine without the file.
    fs::remove_file(d.join("memory.swap.max")).expect("rm");
    m.apply(&res(json!({"memory": {"limit": 100, "swap": -1}})))
        .expect("swap max without file");
    let e = m
        .apply(&res(json!({"memory": {"limit": 100, "swap": 150}})))
        .expect_err("swap limit without file");
    assert!(e.to_string().contains("memory.swap.max"), "{e}");
    assert_eq!(v2::swap_v2(0, 0).expect("unset"), 0);
}

#[test]
fn v2_cpu_conversions() {
    assert_eq!(v2::shares_to_weight(2), 1);
    assert_eq!(v2::shares_to_weight(1024), 39);
    assert_eq!(v2::shares_to_weight(262_144), 10_000);
    assert_eq!(v2::blkio_to_io_weight(10).expect("min"), 1);
    assert_eq!(v2::blkio_to_io_weight(500).expect("mid"), 4950);
    assert_eq!(v2::blkio_to_io_weight(1000).expect("max"), 10_000);
    assert!(v2::blkio_to_io_weight(5).is_err());

    let t = v2_tree();
    let (m, d) = v2_manager(&t, "cpuset cpu");
    touch(
        &d,
        &["cpu.weight", "cpu.max.burst", "cpuset.cpus", "cpuset.mems"],
    );
    put(&d, "cpu.max", "max 100000\n");
    m.apply(&res(json!({"cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 1000, "cpus": "1"}})))
        .expect("apply");
    assert_eq!(get(&d, "cpu.weight"), "39");
    assert_eq!(get(&d, "cpu.max"), "50000 200000");
    assert_eq!(get(&d, "cpu.max.burst"), "1000");
    assert_eq!(get(&d, "cpuset.cpus"), "1");
    // The period alone keeps the quota.
    m.apply(&res(json!({"cpu": {"period": 100000}})))
        .expect("period");
    assert_eq!(get(&d, "cpu.max"), "50000 100000");
    m.apply(&res(json!({"cpu": {"quota": -1}})))
        .expect("quota max");
    assert_eq!(get(&d, "cpu.max"), "max");
    let e = m
        .apply(&res(json!({"cpu": {"realtimeRuntime": 1000}})))
        .expect_err("realtime");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

#[test]
fn v2_io_weight_and_max() {
    let t = v2_tree();
    let (m, d) = v2_manager(&t, "io");
    touch(&d, &["io.weight", "io.max"]);
    let r = res(json!({"blockIO": {
        "weight": 500,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 10}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}]
    }}));
    m.apply(&r).expect("apply");
    // The default weight replaces the file; device weights are appended.
    assert_eq!(get(&d, "io.weight"), "49508:0 10000\n");
    assert_eq!(
        get(&d, "io.max"),
        "8:0 rbps=1048576 wbps=max wiops=20\n8:16 riops=10\n"
    );
    // With BFQ the weight is written as given.
    touch(&d, &["io.bfq.weight"]);
    m.apply(&res(json!({"blockIO": {"weight": 500}})))
        .expect("bfq");
    assert_eq!(get(&d, "io.bfq.weight"), "500");
}

#[test]
fn v2_controller_not_enabled_is_named() {
    let t = v2_tree();
    let (m, d) = v2_manager(&t, "cpu");
    touch(&d, &["memory.max"]);
    let e = m
        .apply(&res(json!({"memory": {"limit": 100}})))
        .expect_err("memory not enabled");
    assert!(
        matches!(&e, Error::ControllerMissing(c) if c == "memory"),
        "{e}"
    );
    assert!(e.is_unavailable());
    assert_eq!(get(&d, "memory.max"), "");
    let e = m
        .apply(&res(json!({"pids": {"limit": 5}})))
        .expect_err("pids not enabled");
    assert!(e.to_string().contains("pids"), "{e}");
    let e = m
        .apply(&res(json!({"network": {"classID": 1}})))
        .expect_err("net_cls on v2");
    assert!(e.to_string().contains("net_cls"), "{e}");
}

#[test]
fn v2_unified_map() {
    let t = v2_tree();
    let (m, d) = v2_manager(&t, "memory pids");
    touch(&d, &["memory.high", "pids.max"]);
    m.apply(&res(
        json!({"pids": {"limit": 10}, "unified": {"memory.high": "5000", "pids.max": "20"}}),
    ))
    .expect("apply");
    assert_eq!(get(&d, "memory.high"), "5000");
    // unified is written last, so it wins over the typed field.
    assert_eq!(get(&d, "pids.max"), "20");
    let e = m
        .apply(&res(json!({"unified": {"io.weight": "100"}})))
        .expect_err("io not enabled");
    assert!(
        matches!(&e, Error::ControllerMissing(c) if c == "io"),
        "{e}"
    );
    let e = m
        .apply(&res(json!({"unified": {"memory.nope": "1"}})))
        .expect_err("no such file");
    assert!(e.to_string().contains("memory.nope"), "{e}");
    for bad in ["../x", "cgroup.procs", ""] {
        let e = m
            .apply(&res(json!({"unified": {bad: "1"}})))
            .expect_err("bad key");
        assert!(e.is_invalid(), "{bad}: {e}");
    }
}

// ---- freezer, pids, stats, destroy ----

#[test]
fn freeze_and_thaw_fake_trees() {
    let t = v1_tree(false);
    let m = v1_manager(&t);
    m.create().expect("create");
    let f = t.path().join("freezer/berth/c1");
    put(&f, "freezer.state", "THAWED\n");
    assert!(!m.is_frozen().expect("state"));
    m.freeze().expect("freeze");
    assert!(m.is_frozen().expect("state"));
    m.thaw().expect("thaw");
    assert_eq!(get(&f, "freezer.state"), "THAWED");

    let t = v2_tree();
    let (m, d) = v2_manager(&t, "");
    touch(&d, &["cgroup.freeze"]);
    put(&d, "cgroup.events", "populated 1\nfrozen 1\n");
    m.freeze().expect("freeze");
    assert_eq!(get(&d, "cgroup.freeze"), "1");
    assert!(m.is_frozen().expect("state"));
    m.thaw().expect("thaw");
    assert_eq!(get(&d, "cgroup.freeze"), "0");
}

#[test]
fn pids_are_collected_recursively() {
    let t = v2_tree();
    let (m, d) = v2_manager(&t, "");
    put(&d, "cgroup.procs", "10\n12\n");
    put(&d.join("sub"), "cgroup.procs", "11\n");
    assert_eq!(m.pids().expect("pids"), [10, 11, 12]);
    let gone = Manager::with_root(t.path(), Version::V2, None, "gone").expect("manager");
    assert!(gone.pids().expect("missing cgroup").is_empty());
}

#[test]
fn stats_v1_fake() {
    let t = v1_tree(false);
    let m = v1_manager(&t);
    m.create().expect("create");
    let cpu = t.path().join("cpu,cpuacct/berth/c1");
    put(&cpu, "cpuacct.usage", "5000\n");
    put(&cpu, "cpuacct.usage_percpu", "3000 2000 \n");
    put(&cpu, "cpuacct.stat", "user 2\nsystem 1\n");
    put(
        &cpu,
        "cpu.stat",
        "nr_periods 4\nnr_throttled 1\nthrottled_time 99\n",
    );
    let mem = t.path().join("memory/berth/c1");
    put(&mem, "memory.usage_in_bytes", "4096\n");
    put(&mem, "memory.limit_in_bytes", "8192\n");
    put(&mem, "memory.failcnt", "3\n");
    put(&mem, "memory.stat", "cache 100\nrss 200\n");
    put(
        &mem,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    let pids = t.path().join("pids/berth/c1");
    put(&pids, "pids.current", "3\n");
    put(&pids, "pids.max", "max\n");
    let blk = t.path().join("blkio/berth/c1");
    put(
        &blk,
        "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 512\n8:0 Write 1024\nTotal 1536\n",
    );
    let s = m.stats().expect("stats");
    let hz = rustix::param::clock_ticks_per_second();
    assert_eq!(s.cpu.usage.total, 5000);
    assert_eq!(s.cpu.usage.percpu, [3000, 2000]);
    assert_eq!(s.cpu.usage.user, 2 * 1_000_000_000 / hz);
    assert_eq!(s.cpu.throttling.throttled_periods, 1);
    assert_eq!(
        (
            s.memory.usage.usage,
            s.memory.usage.limit,
            s.memory.usage.failcnt
        ),
        (4096, 8192, 3)
    );
    assert_eq!(s.memory.cache, 100);
    assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.blkio.io_service_bytes_recursive[1].op, "Write");
    assert_eq!(m.oom_kill_count().expect("oom"), 2);
    let v = serde_json::to_value(&s).expect("json");
    assert_eq!(v["cpu"]["usage"]["total"], 5000);
    assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 1);
    assert_eq!(v["memory"]["raw"]["rss"], 200);
    assert_eq!(v["memory"]["kernelTCP"]["failcnt"], 0);
    assert_eq!(v["blkio"]["ioServiceBytesRecursive"][0]["value"], 512);
    assert!(v["pids"].get("limit").is_none(), "omitempty like runc: {v}");
}

#[test]
fn stats_v2_fake() {
    let t = v2_tree();
    let (m, d) = v2_manager(&t, "memory pids io hugetlb");
    put(
        &d,
        "cpu.stat",
        "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 0\n",
    );
    put(&d, "memory.current", "1000\n");
    put(&d, "memory.max", "4000\n");
    put(
        &d,
        "memory.events",
        "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
    );
    put(&d, "memory.swap.current", "10\n");
    put(&d, "memory.swap.max", "max\n");
    put(&d, "memory.stat", "anon 700\nfile 300\n");
    put(&d, "pids.current", "2\n");
    put(&d, "pids.max", "100\n");
    put(
        &d,
        "io.stat",
        "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    put(&d, "hugetlb.2MB.max", "max\n");
    put(&d, "hugetlb.2MB.rsvd.max", "max\n");
    put(&d, "hugetlb.2MB.current", "2097152\n");
    put(&d, "hugetlb.2MB.events", "max 1\n");
    let s = m.stats().expect("stats");
    assert_eq!(
        (s.cpu.usage.total, s.cpu.usage.user, s.cpu.usage.kernel),
        (10_000, 6_000, 4_000)
    );
    assert_eq!(
        (
            s.memory.usage.usage,
            s.memory.usage.limit,
            s.memory.usage.failcnt
        ),
        (1000, 4000, 5)
    );
    assert_eq!((s.memory.swap.usage, s.memory.swap.limit), (1010, u64::MAX));
    assert_eq!(s.memory.cache, 300);
    assert_eq!((s.pids.current, s.pids.limit), (2, 100));
    assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
    assert_eq!(
        s.hugetlb.len(),
        1,
        "rsvd files are not sizes: {:?}",
        s.hugetlb
    );
    assert_eq!(
        (s.hugetlb["2MB"].usage, s.hugetlb["2MB"].failcnt),
        (2_097_152, 1)
    );
    assert_eq!(m.oom_kill_count().expect("oom"), 1);
}

#[test]
fn destroy_removes_leaves_and_children() {
    let t = v1_tree(true);
    let m = Manager::with_root(t.path(), Version::Hybrid, None, "c1").expect("manager");
    m.create().expect("create");
    fs::create_dir(t.path().join("memory/berth/c1/child")).expect("child cgroup");
    m.destroy().expect("destroy");
    for d in ["memory", "cpu,cpuacct", "systemd", "unified"] {
        assert!(!t.path().join(d).join("berth/c1").exists(), "{d}");
        assert!(
            t.path().join(d).join("berth").exists(),
            "parent {d} is shared and stays"
        );
    }
    m.destroy().expect("destroying twice is fine");
}

// ---- device programs ----

fn rules(v: serde_json::Value) -> Vec<devices::Rule> {
    let r = res(json!({ "devices": v }));
    devices::normalize(r.devices().as_deref().unwrap_or_default()).expect("rules")
}

#[test]
fn device_program_shape() {
    use berth_sys::bpf::Insn;
    let exit = Insn::new(0x95, 0, 0, 0, 0);
    // Deny all, allow /dev/null rw: prologue, one block, default deny.
    let p = devices::program(&rules(json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    ])));
    // The "deny all" rule is last to be tested and unconditional: it ends
    // the program, with no unreachable default after it.
    assert_eq!(p.len(), 6 + 8 + 2, "{p:?}");
    assert_eq!(p[p.len() - 1], exit);
    assert_eq!(p[p.len() - 2], Insn::new(0xb7, 0, 0, 0, 0));
    // The /dev/null block: type, access, major, minor tests jump to its end.
    let block = &p[6..14];
    assert_eq!(block[0], Insn::new(0x55, 2, 0, 7, 2));
    assert_eq!(block[1], Insn::new(0xbf, 1, 3, 0, 0));
    assert_eq!(
        block[2],
        Insn::new(0x57, 1, 0, 0, 1),
        "mknod is the one bit not granted"
    );
    assert_eq!(block[3], Insn::new(0x55, 1, 0, 4, 0));
    assert_eq!(block[4], Insn::new(0x55, 4, 0, 3, 1));
    assert_eq!(block[5], Insn::new(0x55, 5, 0, 2, 3));
    assert_eq!(block[6], Insn::new(0xb7, 0, 0, 0, 1));
    assert_eq!(block[7], exit);
    // Allow everything last: the first block returns 1 for anything.
    let p = devices::program(&rules(
        json!([{"allow": true, "type": "c", "major": 1}, {"allow": true}]),
    ));
    assert_eq!(p.len(), 8);
    assert_eq!(p[6], Insn::new(0xb7, 0, 0, 0, 1));
    // No rules: deny everything.
    assert_eq!(devices::program(&[]).len(), 8);
}

// ---- on this host, as root ----

/// A cgroup on the real hierarchies, removed (with its processes killed)
/// however the test ends.
struct RealCgroup {
    m: Manager,
    children: Vec<std::process::Child>,
}

impl RealCgroup {
    fn new(test: &str) -> RealCgroup {
        let path = PathBuf::from(format!("/berth-test-{test}-{}", std::process::id()));
        let m = Manager::new(Some(&path), "unused").expect("manager on this host");
        // A leftover from a crashed run would make the checks below lie.
        let _ = m.destroy();
        RealCgroup {
            m,
            children: Vec::new(),
        }
    }

    fn spawn_sleep(&mut self) -> i32 {
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits");
        self.children.push(child);
        pid
    }
}

impl Drop for RealCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.m.destroy() {
            eprintln!("cleanup: {e}");
        }
    }
}

#[test]
fn real_cgroup_lifecycle() {
    if !berth_testutil::require_root("real_cgroup_lifecycle") {
        return;
    }
    let mut cg = RealCgroup::new("lifecycle");
    let m = cg.m.clone();
    m.create().expect("create");
    let r = res(json!({
        "memory": {"limit": 67108864, "reservation": 33554432},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000},
        "pids": {"limit": 32}
    }));
    m.apply(&r).expect("apply");
    let json = serde_json::to_string(&m).expect("serialize");
    let m: Manager = serde_json::from_str(&json).expect("reopen");
    match m.version() {
        Version::V2 => {
            let d = m.v2_path().expect("v2 path");
            assert_eq!(get(d, "memory.max").trim(), "67108864");
            assert_eq!(get(d, "cpu.max").trim(), "20000 100000");
            assert_eq!(get(d, "cpu.weight").trim(), "20");
            assert_eq!(get(d, "pids.max").trim(), "32");
        }
        Version::V1 | Version::Hybrid => {
            let dir = |c: &str| {
                m.v1.iter()
                    .find(|h| h.controllers.iter().any(|x| x == c))
                    .expect(c)
                    .dir
                    .clone()
            };
            assert_eq!(
                get(&dir("memory"), "memory.limit_in_bytes").trim(),
                "67108864"
            );
            assert_eq!(
                get(&dir("memory"), "memory.soft_limit_in_bytes").trim(),
                "33554432"
            );
            assert_eq!(get(&dir("cpu"), "cpu.shares").trim(), "512");
            assert_eq!(get(&dir("cpu"), "cpu.cfs_quota_us").trim(), "20000");
            assert_eq!(get(&dir("pids"), "pids.max").trim(), "32");
        }
    }
    // The kernel refusing a value is an error naming file and value.
    match m
        .apply(&res(json!({"cpu": {"cpus": "0-4095"}})))
        .expect_err("no such cpus")
    {
        Error::ControllerMissing(c) => assert_eq!(c, "cpuset"),
        e => assert!(
            e.to_string().contains("cpuset.cpus") && e.to_string().contains("0-4095"),
            "{e}"
        ),
    }

    let pid = cg.spawn_sleep();
    m.add_process(pid).expect("add process");
    assert_eq!(m.pids().expect("pids"), [pid]);
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
    assert!(own.contains(&m.path().display().to_string()), "{own}");

    m.freeze().expect("freeze");
    assert!(m.is_frozen().expect("frozen?"));
    m.thaw().expect("thaw");
    assert!(!m.is_frozen().expect("thawed?"));

    let s = m.stats().expect("stats");
    assert!(s.pids.current >= 1, "{s:?}");
    assert_eq!(s.pids.limit, 32);
    assert!(s.memory.usage.limit == 67_108_864, "{:?}", s.memory.usage);
    assert_eq!(m.oom_kill_count().expect("oom count"), 0);

    m.kill_all(Signal::KILL).expect("kill all");
    let status = cg.children[0].wait().expect("wait");
    assert!(!status.success());
    cg.children.clear();
    m.destroy().expect("destroy");
    for h in m.hierarchies() {
        assert!(!h.dir.exists(), "{} still exists", h.dir.display());
    }
}

#[test]
fn real_missing_or_refused_limits() {
    if !berth_testutil::require_root("real_missing_or_refused_limits") {
        return;
    }
    let cg = RealCgroup::new("refused");
    let m = &cg.m;
    m.create().expect("create");
    // Below the kernel's 1 ms minimum quota.
    let e = m
        .apply(&res(json!({"cpu": {"quota": 500, "period": 100000}})))
        .expect_err("tiny quota");
    let msg = e.to_string();
    assert!(
        (msg.contains("cpu.cfs_quota_us") || msg.contains("cpu.max")) && msg.contains("500"),
        "{msg}"
    );
    if m.version() != Version::V2 {
        // v1 clamps cpu.shares silently; apply must notice.
        let e = m
            .apply(&res(json!({"cpu": {"shares": 1}})))
            .expect_err("shares below the minimum");
        assert!(e.to_string().contains("cpu.shares"), "{e}");
        // The memory limit must stay <= memsw: the kernel refuses otherwise.
        let swap = Path::new(
            &m.v1
                .iter()
                .find(|h| h.controllers == ["memory"])
                .expect("memory")
                .dir,
        )
        .join("memory.memsw.limit_in_bytes");
        if swap.exists() {
            m.apply(&res(
                json!({"memory": {"limit": 100_000_000, "swap": 200_000_000}}),
            ))
            .expect("raise");
            m.apply(&res(
                json!({"memory": {"limit": 50_000_000, "swap": 60_000_000}}),
            ))
            .expect("lower both");
            m.apply(&res(
                json!({"memory": {"limit": 300_000_000, "swap": 400_000_000}}),
            ))
            .expect("raise both");
        }
    }
}

/// The device program is accepted by the verifier and enforced: a process
/// in the cgroup may read /dev/zero but not /dev/null. Works wherever a
/// cgroup2 hierarchy is mounted, hybrid hosts included.
#[test]
fn real_device_program_enforced() {
    if !berth_testutil::require_root("real_device_program_enforced") {
        return;
    }
    let cg = RealCgroup::new("devices");
    let m = &cg.m;
    let Some(u) = m.unified.clone() else {
        eprintln!("no cgroup2 mount: skipped");
        return;
    };
    m.create().expect("create");
    let r = res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "r"}
    ]}));
    let devs = r.devices().as_deref().unwrap_or_default();
    v2::devices(&u.dir, devs).expect("attach program");
    // Replacing it detaches the old one.
    v2::devices(&u.dir, devs).expect("replace program");
    let dir = fs::File::open(&u.dir).expect("open cgroup");
    use std::os::fd::AsFd;
    let progs =
        berth_sys::bpf::prog_query(dir.as_fd(), berth_sys::bpf::BPF_CGROUP_DEVICE).expect("query");
    assert_eq!(progs.len(), 1, "{progs:?}");

    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "read x; head -c1 /dev/zero >/dev/null && echo zero-ok; cat /dev/null && echo null-ok; true"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = i32::try_from(child.id()).expect("pid");
    let added = files_write_procs(&u.dir, pid);
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(b"go\n");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    added.expect("join the cgroup2 cgroup");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("zero-ok"), "{out}");
    assert!(
        !out.contains("null-ok"),
        "read of /dev/null was allowed: {out}"
    );
}

fn files_write_procs(dir: &Path, pid: i32) -> Result<(), Error> {
    super::files::write(dir, "cgroup.procs", &pid.to_string())
}

#[test]
fn real_device_programs_pass_the_verifier() {
    if !berth_testutil::require_root("real_device_programs_pass_the_verifier") {
        return;
    }
    let sets = [
        json!([]),
        json!([{"allow": true}]),
        json!([{"allow": false}, {"allow": true, "type": "b", "major": 8, "access": "r"}, {"allow": false, "type": "c", "access": "m"}]),
        json!([{"allow": true, "type": "c", "major": 136, "access": "rwm"}, {"allow": false, "type": "a", "minor": 0}]),
    ];
    for s in sets {
        let insns = devices::program(&rules(s.clone()));
        berth_sys::bpf::load_cgroup_device_prog(&insns, c"Apache-2.0")
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

#[test]
fn the_inits_cgroup_mounts_come_from_the_same_list() {
    let info = crate::init::mounts::host_cgroups(&layout::parse_mountinfo(HYBRID_MOUNTINFO));
    assert_eq!(
        info.v1,
        [
            ("cpu", "cpu"),
            ("cpuacct", "cpuacct"),
            ("memory", "memory"),
            ("devices", "devices"),
            ("systemd", "name=systemd,xattr"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The hybrid's cgroup2 is at unified, not /sys/fs/cgroup.
    assert!(!info.unified);
    let v2 = "30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
    assert!(crate::init::mounts::host_cgroups(&layout::parse_mountinfo(v2)).unified);
}

#[test]
fn host_mounts_are_cached_while_the_layout_holds() {
    if !Path::new("/sys/fs/cgroup").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join(".cgroup-mounts");
    let fresh = layout::host_mounts(None).unwrap();
    assert!(!fresh.is_empty(), "this host has cgroups");
    assert_eq!(layout::host_mounts(Some(&cache)).unwrap(), fresh);
    assert!(cache.exists(), "the first read is kept");
    // A cache that still fits is what comes back (marked to tell).
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    v["mounts"][0]["options"] = serde_json::json!(["from-the-cache"]);
    std::fs::write(&cache, serde_json::to_vec(&v).unwrap()).unwrap();
    let got = layout::host_mounts(Some(&cache)).unwrap();
    assert_eq!(got[0].options, ["from-the-cache"]);
    // A mount that is not where the cache says, or another layout, sends
    // it back to mountinfo (and the cache is made again).
    for (field, value) in [
        ("/mounts/0/id", serde_json::json!(u64::MAX)),
        ("/fingerprint/mnt_ns", serde_json::json!(1)),
        ("/fingerprint/boot", serde_json::json!("another boot")),
    ] {
        let mut stale = v.clone();
        *stale.pointer_mut(field).unwrap() = value;
        std::fs::write(&cache, serde_json::to_vec(&stale).unwrap()).unwrap();
        assert_eq!(layout::host_mounts(Some(&cache)).unwrap(), fresh, "{field}");
        assert_eq!(
            layout::host_mounts(Some(&cache)).unwrap(),
            fresh,
            "{field} again"
        );
    }
    // A cache that does not parse is read past.
    std::fs::write(&cache, b"{").unwrap();
    assert_eq!(layout::host_mounts(Some(&cache)).unwrap(), fresh);
}
