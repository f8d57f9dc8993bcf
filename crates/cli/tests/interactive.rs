//! `-i`, `-t`, `attach`, `start -a/-i`, `exec -it` and `--sig-proxy` end
//! to end, as root. Terminals are real: tmux gives the CLI a pty, keys are
//! typed with send-keys and the screen read back with capture-pane.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Berth;

/// A tmux server of our own (its own socket) with one window running sh.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(cols: u16, rows: u16) -> Tmux {
        let socket = format!("berth-test-{}-{}", std::process::id(), rand_suffix());
        let t = Tmux { socket };
        let ok = t
            .tmux(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                &cols.to_string(),
                "-y",
                &rows.to_string(),
                "env PS1='$ ' /bin/sh",
            ])
            .success();
        assert!(ok, "tmux new-session");
        t.tmux(&["set", "-g", "status", "off"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> std::process::ExitStatus {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap()
    }

    /// Types `text` and, unless it is a key name, Enter.
    fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
        self.tmux(&["send-keys", "Enter"]);
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        let o = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(["capture-pane", "-p", "-S", "-200"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until a line of the screen satisfies `f`; the screen.
    fn wait_line(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.lines().any(|l| f(l.trim_end())) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A line that is `text`, or ends with it (after a prompt left by a
    /// detach, the terminal being raw).
    fn wait_for(&self, text: &str) -> String {
        self.wait_line(text, |l| l.ends_with(text))
    }

    fn pane_size(&self) -> String {
        let o = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(["display", "-p", "#{pane_height} #{pane_width}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// `inspect`'s State of one container.
fn state(b: &Berth, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    v[0]["State"].clone()
}

/// The berth command line for typing into the tmux shell.
fn berth_cmd(b: &Berth) -> String {
    format!(
        "{} --root {} --runroot {}",
        common::bin().display(),
        b.root.display(),
        b.runroot.display()
    )
}

#[test]
fn run_it_is_a_real_terminal_with_size_resize_and_exit_code() {
    if !berth_testutil::require_root("run_it_is_a_real_terminal_with_size_resize_and_exit_code") {
        return;
    }
    let b = Berth::with_image();
    let t = Tmux::new(100, 30);
    t.line(&format!(
        "{} run -it --rm bb sh; echo EXIT=$?",
        berth_cmd(&b)
    ));
    t.line("tty; echo TERM=$TERM");
    t.wait_for("TERM=xterm");
    assert!(
        t.screen()
            .lines()
            .any(|l| l.trim_end() == "/dev/console" || l.trim_end().starts_with("/dev/pts/")),
        "{}",
        t.screen()
    );
    t.line("echo typed-$((40+2))");
    t.wait_for("typed-42");
    let size = t.pane_size();
    t.line("stty size");
    t.wait_for(&size);
    // SIGWINCH reaches the CLI, which passes the new size on.
    t.tmux(&["resize-window", "-x", "72", "-y", "20"]);
    let small = t.pane_size();
    assert_ne!(small, size);
    std::thread::sleep(Duration::from_millis(300));
    t.line("stty size");
    t.wait_for(&small);
    t.line("exit 7");
    t.wait_for("EXIT=7");
    assert_eq!(b.ok(&["ps", "-aq"]), "", "--rm left the container");
}

#[test]
fn detach_keys_leave_it_running_and_attach_comes_back() {
    if !berth_testutil::require_root("detach_keys_leave_it_running_and_attach_comes_back") {
        return;
    }
    let b = Berth::with_image();
    let t = Tmux::new(90, 25);
    let berth = berth_cmd(&b);
    t.line(&format!("{berth} run -it --name d1 bb sh; echo EXIT=$?"));
    t.line("echo one-$((0+1))");
    t.wait_for("one-1");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("EXIT=0");
    assert_eq!(state(&b, "d1")["Status"], "running");
    t.line(&format!("{berth} attach d1; echo EXIT2=$?"));
    std::thread::sleep(Duration::from_millis(500));
    t.line("echo two-$((1+1))");
    t.wait_for("two-2");
    // A custom sequence on attach: a lone ctrl-p passes through.
    t.line("exit 3");
    t.wait_for("EXIT2=3");
    assert_eq!(state(&b, "d1")["ExitCode"], 3);
}

#[test]
fn exec_it_gets_its_own_terminal() {
    if !berth_testutil::require_root("exec_it_gets_its_own_terminal") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["run", "-d", "--name", "e1", "bb", "sleep", "1000"]);
    let t = Tmux::new(95, 28);
    t.line(&format!("{} exec -it e1 sh; echo EXIT=$?", berth_cmd(&b)));
    let size = t.pane_size();
    t.line("stty size; echo TERM=$TERM");
    t.wait_for("TERM=xterm");
    t.wait_for(&size);
    t.line("exit 5");
    t.wait_for("EXIT=5");
}

#[test]
fn run_i_forwards_stdin_and_start_attaches() {
    if !berth_testutil::require_root("run_i_forwards_stdin_and_start_attaches") {
        return;
    }
    let b = Berth::with_image();
    let mut c = b.cmd(&["run", "-i", "--rm", "bb", "sh", "-c", "tr a-z A-Z; exit 4"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "HELLO\n");
    assert_eq!(o.status.code(), Some(4));
    // Without -i the container's stdin is empty, whatever ours holds.
    let mut c = b.cmd(&["run", "--rm", "bb", "sh", "-c", "cat; echo done"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"ignored\n");
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "done\n");

    // create -i, then start -ai feeds it; start -a of another gives its code.
    let id = b.ok(&["create", "-i", "bb", "cat"]).trim().to_string();
    let mut c = b.cmd(&["start", "-ai", &id]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "abc\n");
    assert_eq!(o.status.code(), Some(0));
    let id = b
        .ok(&["create", "bb", "sh", "-c", "echo x; echo y >&2; exit 6"])
        .trim()
        .to_string();
    let o = b.run(&["start", "-a", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "x\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "y\n");
    assert_eq!(o.status.code(), Some(6));
}

#[test]
fn sig_proxy_forwards_signals_to_a_foreground_run() {
    if !berth_testutil::require_root("sig_proxy_forwards_signals_to_a_foreground_run") {
        return;
    }
    let b = Berth::with_image();
    let script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done";
    let mut c = b.cmd(&["run", "--rm", "bb", "sh", "-c", script]);
    c.stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-term\n");
    assert_eq!(child.wait().unwrap().code(), Some(42));
    // --sig-proxy=false: the CLI dies of the signal, the container runs on.
    let mut c = b.cmd(&[
        "run",
        "--sig-proxy=false",
        "--name",
        "np",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    c.stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    line.clear();
    out.read_line(&mut line).unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), None);
    assert_eq!(state(&b, "np")["Status"], "running");
}
