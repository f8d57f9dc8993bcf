//! Two kinds of tests. `compile()` tests run the exported BPF through a
//! small classic-BPF interpreter (below) on made-up syscalls, so they
//! check what the kernel would answer without loading anything. Load
//! tests install filters for real, in a re-executed copy of this test
//! binary (`helper_child`), since a filter cannot be removed from the
//! process that loads it.

use super::*;

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

fn native_audit_arch() -> u32 {
    if cfg!(target_arch = "x86_64") {
        AUDIT_ARCH_X86_64
    } else {
        AUDIT_ARCH_AARCH64
    }
}

fn spec(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("test spec parses")
}

fn nr(name: &str) -> i32 {
    ScmpSyscall::from_name(name)
        .expect("known syscall")
        .as_raw_syscall()
}

/// Runs `filter` as the kernel would for syscall `nr` on `arch`.
fn eval_raw(filter: &Filter, arch: u32, nr: i32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for a in args {
        data.extend_from_slice(&a.to_ne_bytes());
    }
    bpf_run(filter.bpf(), &data)
}

fn eval(filter: &Filter, name: &str, args: [u64; 6]) -> u32 {
    eval_raw(filter, native_audit_arch(), nr(name), args)
}

/// A classic-BPF interpreter for what libseccomp emits; panics on any
/// instruction it does not know, so a test can never pass by accident.
fn bpf_run(prog: &[u8], data: &[u8]) -> u32 {
    let insns: Vec<(u16, u8, u8, u32)> = prog
        .chunks_exact(8)
        .map(|c| {
            (
                u16::from_ne_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    let load = |k: u32| {
        let k = k as usize;
        u32::from_ne_bytes(data[k..k + 4].try_into().expect("4 bytes"))
    };
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    loop {
        let (code, jt, jf, k) = insns[pc];
        pc += 1;
        let src = if code & 0x08 != 0 { x } else { k };
        match code & 0x07 {
            0x00 => match code & 0xe0 {
                0x00 => a = k,
                0x20 => a = load(k),
                0x60 => a = mem[k as usize],
                m => panic!("ld mode {m:#x}"),
            },
            0x01 => match code & 0xe0 {
                0x00 => x = k,
                0x60 => x = mem[k as usize],
                m => panic!("ldx mode {m:#x}"),
            },
            0x02 => mem[k as usize] = a,
            0x03 => mem[k as usize] = x,
            0x04 => {
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a << src,
                    0x70 => a >> src,
                    op => panic!("alu op {op:#x}"),
                }
            }
            0x05 => {
                let taken = match code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    op => panic!("jmp op {op:#x}"),
                };
                pc += usize::from(if taken { jt } else { jf });
            }
            0x06 => return if code & 0x18 == 0x10 { a } else { k },
            0x07 => {
                if code & 0xf8 == 0x00 {
                    x = a
                } else {
                    a = x
                }
            }
            _ => unreachable!(),
        }
    }
}

// ---- compile(): actions -------------------------------------------------

#[test]
fn every_action_returns_its_kernel_value() {
    let cases = [
        ("SCMP_ACT_KILL", "", RET_KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", "", RET_KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", "", RET_KILL_PROCESS),
        ("SCMP_ACT_TRAP", "", RET_TRAP),
        ("SCMP_ACT_ERRNO", r#", "errnoRet": 1234"#, RET_ERRNO | 1234),
        ("SCMP_ACT_ERRNO", "", RET_ERRNO | 1),
        ("SCMP_ACT_TRACE", r#", "errnoRet": 77"#, RET_TRACE | 77),
        ("SCMP_ACT_TRACE", "", RET_TRACE | 1),
        ("SCMP_ACT_LOG", "", RET_LOG),
        ("SCMP_ACT_NOTIFY", "", RET_USER_NOTIF),
    ];
    for (action, extra, want) in cases {
        let f = compile(&spec(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                "syscalls": [{{"names": ["getcwd"], "action": "{action}"{extra}}}]}}"#
        )))
        .unwrap_or_else(|e| panic!("{action}: {e}"));
        assert_eq!(eval(&f, "getcwd", [0; 6]), want, "{action}{extra}");
        assert_eq!(
            eval(&f, "getpid", [0; 6]),
            RET_ALLOW,
            "{action}: other syscalls"
        );
        assert_eq!(f.has_listener(), action == "SCMP_ACT_NOTIFY", "{action}");
    }
    // ALLOW needs a default that is not ALLOW.
    let f = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"}]}"#,
    ))
    .expect("compiles");
    assert_eq!(eval(&f, "getcwd", [0; 6]), RET_ALLOW);
    assert_eq!(
        eval(&f, "getpid", [0; 6]),
        RET_ERRNO | 38,
        "defaultErrnoRet"
    );
}

#[test]
fn default_errno_is_eperm() {
    let f = compile(&spec(r#"{"defaultAction": "SCMP_ACT_ERRNO"}"#)).expect("compiles");
    assert_eq!(eval(&f, "getpid", [0; 6]), RET_ERRNO | 1);
}

#[test]
fn rule_equal_to_default_is_skipped() {
    let with = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
    ))
    .expect("a rule equal to the default must not fail");
    let without = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
    ))
    .expect("compiles");
    assert_eq!(with.bpf(), without.bpf());
    // Same action, other errno: a real rule, kept.
    let other = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}]}"#,
    ))
    .expect("compiles");
    assert_eq!(eval(&other, "getcwd", [0; 6]), RET_ERRNO | 2);
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let f = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["no_such_syscall", "getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]}"#,
    ))
    .expect("unknown names are skipped");
    assert_eq!(eval(&f, "getcwd", [0; 6]), RET_ERRNO | 5);
}

// ---- compile(): arguments -----------------------------------------------

/// A filter that answers ERRNO 99 for personality when `arg` matches.
fn personality_rule(args: &str) -> Filter {
    compile(&spec(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
              "args": [{args}]}}]}}"#
    )))
    .unwrap_or_else(|e| panic!("{args}: {e}"))
}

fn hits(f: &Filter, args: [u64; 6]) -> bool {
    match eval(f, "personality", args) {
        r if r == RET_ERRNO | 99 => true,
        RET_ALLOW => false,
        r => panic!("unexpected return {r:#x}"),
    }
}

#[test]
fn arg_operators() {
    let arg = |op: &str| format!(r#"{{"index": 0, "value": 10, "op": "{op}"}}"#);
    // (op, [value -> matches]) for 9, 10, 11.
    let table = [
        ("SCMP_CMP_NE", [true, false, true]),
        ("SCMP_CMP_LT", [true, false, false]),
        ("SCMP_CMP_LE", [true, true, false]),
        ("SCMP_CMP_EQ", [false, true, false]),
        ("SCMP_CMP_GE", [false, true, true]),
        ("SCMP_CMP_GT", [false, false, true]),
    ];
    for (op, want) in table {
        let f = personality_rule(&arg(op));
        for (v, w) in [9u64, 10, 11].into_iter().zip(want) {
            assert_eq!(hits(&f, [v, 0, 0, 0, 0, 0]), w, "{op} with arg0 = {v}");
        }
    }
    // 64-bit values compare in full, not just the low word.
    let f = personality_rule(r#"{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}"#);
    assert!(hits(&f, [0xffff_ffff, 0, 0, 0, 0, 0]));
    assert!(!hits(&f, [0x1_ffff_ffff, 0, 0, 0, 0, 0]));
    assert!(!hits(&f, [0, 0, 0, 0, 0, 0]));
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    let f = personality_rule(
        r#"{"index": 1, "value": 240, "valueTwo": 48, "op": "SCMP_CMP_MASKED_EQ"}"#,
    );
    assert!(hits(&f, [0, 0x3f, 0, 0, 0, 0])); // 0x3f & 0xf0 == 0x30
    assert!(hits(&f, [0, 0x30, 0, 0, 0, 0]));
    assert!(!hits(&f, [0, 0x4f, 0, 0, 0, 0]));
    assert!(
        !hits(&f, [0, 0x70, 0, 0, 0, 0]),
        "0x70 & 0xf0 != 0x30: value is the mask"
    );
    assert!(!hits(&f, [0x30, 0, 0, 0, 0, 0]), "checks arg 1, not arg 0");
}

#[test]
fn args_on_distinct_indexes_are_anded() {
    let f = personality_rule(
        r#"{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
           {"index": 2, "value": 3, "op": "SCMP_CMP_EQ"}"#,
    );
    assert!(hits(&f, [1, 0, 3, 0, 0, 0]));
    assert!(!hits(&f, [1, 0, 0, 0, 0, 0]));
    assert!(!hits(&f, [0, 0, 3, 0, 0, 0]));
}

#[test]
fn args_on_the_same_index_are_ored() {
    // libseccomp cannot AND two conditions on arg 0: like runc, each
    // condition becomes its own rule.
    let f = personality_rule(
        r#"{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"},
           {"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}"#,
    );
    assert!(hits(&f, [5, 0, 0, 0, 0, 0]));
    assert!(hits(&f, [7, 0, 0, 0, 0, 0]));
    assert!(!hits(&f, [6, 0, 0, 0, 0, 0]));
}

// ---- compile(): architectures and flags ---------------------------------

#[test]
#[cfg(target_arch = "x86_64")]
fn architectures_are_added_and_others_killed() {
    let f = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7}]}"#,
    ))
    .expect("compiles");
    // getcwd is 183 on i386, 79 on x86_64.
    assert_eq!(eval_raw(&f, AUDIT_ARCH_I386, 183, [0; 6]), RET_ERRNO | 7);
    assert_eq!(eval_raw(&f, AUDIT_ARCH_X86_64, 79, [0; 6]), RET_ERRNO | 7);
    assert_eq!(eval_raw(&f, AUDIT_ARCH_I386, 79, [0; 6]), RET_ALLOW);
    // An arch not in the filter: libseccomp's bad-arch action, KILL.
    let bad = eval_raw(&f, AUDIT_ARCH_AARCH64, 79, [0; 6]);
    assert!(
        bad == RET_KILL_THREAD || bad == RET_KILL_PROCESS,
        "{bad:#x}"
    );

    // Native only: i386 syscalls are killed.
    let native = compile(&spec(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#)).expect("compiles");
    let bad = eval_raw(&native, AUDIT_ARCH_I386, 183, [0; 6]);
    assert!(
        bad == RET_KILL_THREAD || bad == RET_KILL_PROCESS,
        "{bad:#x}"
    );
}

#[test]
fn flags_map_to_seccomp_flags() {
    let f = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    ))
    .expect("compiles");
    let want = FilterFlags {
        tsync: true,
        log: true,
        spec_allow: true,
        new_listener: false,
        wait_killable_recv: true,
    };
    assert_eq!(f.flags(), want);
    let none = compile(&spec(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#)).expect("compiles");
    assert_eq!(none.flags(), FilterFlags::default());
}

// ---- compile(): errors --------------------------------------------------

#[test]
fn unknown_names_are_refused_by_the_spec_parser() {
    for (bad, json) in [
        ("SCMP_ACT_BOGUS", r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#),
        (
            "SCMP_ACT_NOPE",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}"#,
        ),
        (
            "SCMP_ARCH_VAX",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}"#,
        ),
        (
            "SCMP_CMP_ALMOST",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_LOG",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}"#,
        ),
        (
            "SECCOMP_FILTER_FLAG_FAST",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#,
        ),
    ] {
        let err = serde_json::from_str::<LinuxSeccomp>(json)
            .expect_err(bad)
            .to_string();
        assert!(err.contains(bad), "{err}");
    }
}

#[test]
fn arch_unknown_to_libseccomp_is_an_error() {
    // libseccomp 2.5 predates these; 2.6 knows them, so accept either, but
    // an error must name the arch.
    for arch in ["SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_SH"] {
        let r = compile(&spec(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["{arch}"]}}"#
        )));
        if let Err(e) = r {
            assert!(matches!(e, Error::Arch { .. }), "{e:?}");
            assert!(e.to_string().contains(arch), "{e}");
        }
    }
    if libseccomp::ScmpVersion::current().is_ok_and(|v| (v.major, v.minor) == (2, 5)) {
        let e = compile(&spec(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_LOONGARCH64"]}"#,
        ))
        .expect_err("libseccomp 2.5 has no loongarch64");
        assert_eq!(
            e.to_string().split(':').next(),
            Some("architecture SCMP_ARCH_LOONGARCH64 is not supported by libseccomp")
        );
    }
}

#[test]
fn bad_values_name_the_syscall() {
    let e = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}]}"#,
    ))
    .expect_err("errno above 4095");
    assert_eq!(
        e.to_string(),
        "SCMP_ACT_ERRNO for mkdirat: errnoRet 5000 is out of range (max 4095)"
    );

    let e = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 70000}]}"#,
    ))
    .expect_err("trace message above 65535");
    assert!(
        e.to_string().starts_with("SCMP_ACT_TRACE for ptrace"),
        "{e}"
    );

    let e = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["openat"], "action": "SCMP_ACT_LOG", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
    ))
    .expect_err("index 6");
    assert_eq!(
        e.to_string(),
        "openat: argument index 6 is out of range (max 5)"
    );

    let e = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}"#,
    ))
    .expect_err("default errno above 4095");
    assert!(e.to_string().contains("the default action"), "{e}");
}

#[test]
fn notify_rules_are_checked() {
    let e = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}"#,
    ))
    .expect_err("notify default");
    assert_eq!(
        e.to_string(),
        "SCMP_ACT_NOTIFY cannot be the default action"
    );
    let e = compile(&spec(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    ))
    .expect_err("no listenerPath");
    assert_eq!(
        e.to_string(),
        "SCMP_ACT_NOTIFY for mount needs linux.seccomp.listenerPath"
    );
}

// ---- send_listener ------------------------------------------------------

/// Receives one message with at most one fd from `stream`.
fn recv_with_fd(stream: &UnixStream) -> (Vec<u8>, Option<OwnedFd>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    let mut fd = None;
    for m in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = m {
            fd = fds.next();
        }
    }
    let mut body = buf[..msg.bytes].to_vec();
    // The rest of a long state arrives as plain stream bytes.
    let mut rest = Vec::new();
    (&*stream).read_to_end(&mut rest).expect("read rest");
    body.extend(rest);
    (body, fd)
}

#[test]
fn send_listener_passes_fd_and_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let (pipe_r, pipe_w) = rustix::pipe::pipe().expect("pipe");

    let mut state = State::default();
    state
        .set_version("1.2.0".into())
        .set_id("c1".into())
        .set_pid(Some(42));
    let json = process_state_json(&state, 42, Some("agent-meta")).expect("state json");
    send_listener(&path, pipe_w.as_fd(), json.as_bytes()).expect("send");
    drop(pipe_w);

    let (stream, _) = listener.accept().expect("accept");
    let (body, fd) = recv_with_fd(&stream);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(v["ociVersion"], "1.2.0");
    assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(v["pid"], 42);
    assert_eq!(v["metadata"], "agent-meta");
    assert_eq!(v["state"]["id"], "c1");
    // The received fd is the pipe's write end: bytes written to it come out.
    let fd = fd.expect("an fd came with the message");
    rustix::io::write(&fd, b"ok").expect("write to passed fd");
    drop(fd);
    let mut got = Vec::new();
    std::fs::File::from(pipe_r)
        .read_to_end(&mut got)
        .expect("read pipe");
    assert_eq!(got, b"ok");

    let e = send_listener(&dir.path().join("nobody.sock"), listener.as_fd(), b"{}")
        .expect_err("no agent listening");
    assert!(e.to_string().contains("nobody.sock"), "{e}");
}

// ---- loading, in a child process ----------------------------------------

const CHILD_ENV: &str = "BERTH_SECCOMP_TEST_CHILD";
const ARG_ENV: &str = "BERTH_SECCOMP_TEST_ARG";

/// Not a test of its own: the body of the child that the load tests start.
/// It does nothing unless `BERTH_SECCOMP_TEST_CHILD` names a case.
#[test]
fn helper_child() {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return;
    };
    let arg = std::env::var(ARG_ENV).unwrap_or_default();
    // Unprivileged loading needs no_new_privs; it also proves the filter's
    // own NNP attribute is not needed.
    rustix::thread::set_no_new_privs(true).expect("no_new_privs");
    let load = |json: &str| {
        compile(&spec(json))
            .expect("compiles")
            .load()
            .expect("loads")
    };
    match case.as_str() {
        "errno" => {
            load(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1234},
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}"#,
            );
            let cwd = std::env::current_dir().map_err(|e| e.raw_os_error());
            let mkdir =
                std::fs::create_dir(Path::new(&arg).join("d")).map_err(|e| e.raw_os_error());
            println!("RESULT getcwd={cwd:?}");
            println!("RESULT mkdir={mkdir:?}");
        }
        "kill" => {
            load(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
            );
            println!("RESULT before");
            let _ = std::env::current_dir();
            println!("RESULT survived");
        }
        "args" => {
            load(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1236,
                     "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            );
            use rustix::net::{socket, AddressFamily, SocketType};
            let unix = socket(AddressFamily::UNIX, SocketType::STREAM, None).map(drop);
            let inet = socket(AddressFamily::INET, SocketType::DGRAM, None).map(drop);
            println!("RESULT unix={:?}", unix.map_err(|e| e.raw_os_error()));
            println!("RESULT inet={:?}", inet.map_err(|e| e.raw_os_error()));
        }
        "notify" => {
            let json = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "{arg}",
                    "listenerMetadata": "meta",
                    "syscalls": [{{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}}]}}"#
            );
            let filter = compile(&spec(&json)).expect("compiles");
            // The load runs on this thread only; a thread that loaded no
            // filter plays the runtime's unfiltered side and hands the fd on.
            let fd = filter.load().expect("loads").expect("a listener fd");
            let pid = i32::try_from(std::process::id()).expect("pid");
            std::thread::spawn(move || {
                let mut state = State::default();
                state
                    .set_version("1.2.0".into())
                    .set_id("notify-test".into());
                let body = process_state_json(&state, pid, Some("meta")).expect("state");
                send_listener(Path::new(&arg), fd.as_fd(), body.as_bytes()).expect("send listener");
            })
            .join()
            .expect("sender thread");
            let ppid = rustix::process::Pid::as_raw(rustix::process::getppid());
            println!("RESULT getppid={ppid}");
        }
        "docker" => {
            load(&serde_json::to_string(&docker_default(&[])).expect("profile json"));
            let cwd = std::env::current_dir().is_ok();
            use rustix::net::{socket, AddressFamily, SocketType};
            let vsock = socket(AddressFamily::VSOCK, SocketType::STREAM, None).map(drop);
            let inet = socket(AddressFamily::INET, SocketType::DGRAM, None).map(drop);
            let chroot = rustix::process::chroot("/").map_err(|e| e.raw_os_error());
            // glibc creates threads with clone3 first: the profile answers
            // ENOSYS so it falls back to clone, which the flags rule allows.
            let thread = std::thread::spawn(|| 7).join().ok();
            println!("RESULT cwd={cwd}");
            println!("RESULT vsock={:?}", vsock.map_err(|e| e.raw_os_error()));
            println!("RESULT inet={:?}", inet.map_err(|e| e.raw_os_error()));
            println!("RESULT chroot={chroot:?}");
            println!("RESULT thread={thread:?}");
        }
        other => panic!("unknown child case {other}"),
    }
}

/// Starts `helper_child` for `case` in a new process.
fn spawn_child(case: &str, arg: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "seccomp::tests::helper_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, case)
        .env(ARG_ENV, arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn test child")
}

/// The child's `RESULT` lines, and its exit status.
fn finish(child: std::process::Child) -> (Vec<String>, std::process::ExitStatus) {
    let out = child.wait_with_output().expect("wait child");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        // libtest's "test ... " has no newline yet when the first one comes.
        .filter_map(|l| {
            l.find("RESULT ")
                .map(|i| l[i + "RESULT ".len()..].to_owned())
        })
        .collect();
    if !out.status.success() {
        eprintln!("child stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    (lines, out.status)
}

fn run_child(case: &str, arg: &str) -> (Vec<String>, std::process::ExitStatus) {
    finish(spawn_child(case, arg))
}

#[test]
fn load_errno_returns_the_custom_errno() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lines, status) = run_child("errno", &dir.path().to_string_lossy());
    assert!(status.success(), "{status:?}");
    assert_eq!(lines, ["getcwd=Err(Some(1234))", "mkdir=Err(Some(18))"]);
    assert!(!dir.path().join("d").exists());
}

#[test]
fn load_kill_process_kills_with_sigsys() {
    let (lines, status) = run_child("kill", "");
    assert_eq!(status.signal(), Some(31), "SIGSYS expected, got {status:?}");
    assert_eq!(lines, ["before"]);
}

#[test]
fn load_arg_condition_affects_only_matching_calls() {
    let (lines, status) = run_child("args", "");
    assert!(status.success(), "{status:?}");
    assert_eq!(lines, ["unix=Err(1236)", "inet=Ok(())"]);
}

#[test]
fn load_docker_default_profile() {
    let (lines, status) = run_child("docker", "");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        lines,
        [
            "cwd=true",
            "vsock=Err(1)",
            "inet=Ok(())",
            "chroot=Err(1)",
            "thread=Some(7)"
        ]
    );
}

#[test]
fn load_notify_reaches_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let child = spawn_child("notify", &path.to_string_lossy());
    let child_pid = child.id();

    // The agent: accept the runtime's connection (bounded wait, so a child
    // that died early fails the test instead of hanging it).
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no connection from the child: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    let (body, fd) = recv_with_fd(&stream);
    let state: serde_json::Value = serde_json::from_slice(&body).expect("state json");
    assert_eq!(state["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(state["metadata"], "meta");
    assert_eq!(state["pid"], child_pid);
    let fd = fd.expect("listener fd");

    let mut pfd = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: 20,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut pfd, Some(&timeout)).expect("poll");
    assert_eq!(ready, 1, "no notification within 20s");
    let req = ScmpNotifReq::receive(fd.as_raw_fd()).expect("receive notification");
    assert_eq!(
        req.data.syscall,
        ScmpSyscall::from_name("getppid").expect("getppid")
    );
    // The kernel reports the thread that made the call: check its process.
    let status = std::fs::read_to_string(format!("/proc/{}/status", req.pid)).expect("status");
    assert!(
        status.lines().any(|l| l == format!("Tgid:\t{child_pid}")),
        "{status}"
    );
    ScmpNotifResp::new_val(req.id, 4242, ScmpNotifRespFlags::empty())
        .respond(fd.as_raw_fd())
        .expect("respond");

    let (lines, status) = finish(child);
    assert!(status.success(), "{status:?}");
    assert_eq!(lines, ["getppid=4242"]);
}
