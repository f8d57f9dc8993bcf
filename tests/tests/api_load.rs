//! `berth serve` under load: `API_LOAD_CLIENTS` (100) clients side by
//! side, each creating, starting, waiting for and removing `bb true`
//! (network none) through raw requests on the socket for
//! `API_LOAD_SECONDS` (20; `make soak` runs 60). No request may fail, and
//! afterwards no container, monitor or fd of the server's may be left.
//! And more containers running than the server has blocking threads
//! (`API_MANY_CONTAINERS`, 520): it still answers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_testutil::require_root;

mod common;

use common::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

/// One run of `bb true` through the API, as `docker run --rm` does it
/// but with an explicit remove.
fn one_run(sock: &std::path::Path) -> Result<(), String> {
    let step = |method: &str, path: &str, body: Option<&str>, want: u16| match http(
        sock, method, path, body,
    ) {
        Ok((code, out)) if code == want => Ok(out),
        Ok((code, out)) => Err(format!(
            "{method} {path}: {code} {}",
            String::from_utf8_lossy(&out)
        )),
        Err(e) => Err(format!("{method} {path}: {e}")),
    };
    let out = step(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"bb","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}"#),
        201,
    )?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| format!("create: {e}"))?;
    let id = v["Id"].as_str().ok_or("create: no Id")?.to_string();
    step("POST", &format!("/containers/{id}/start"), None, 204)?;
    let out = step("POST", &format!("/containers/{id}/wait"), None, 200)?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| format!("wait: {e}"))?;
    if v["StatusCode"] != 0 {
        return Err(format!("wait {id}: {v}"));
    }
    step("DELETE", &format!("/containers/{id}"), None, 204)?;
    Ok(())
}

#[test]
fn api_load_hundred_clients_run_containers_and_leak_nothing() {
    if !require_root("api_load_hundred_clients_run_containers_and_leak_nothing") {
        return;
    }
    let seconds = env_or("API_LOAD_SECONDS", 20);
    let clients = env_or("API_LOAD_CLIENTS", 100);
    let s = Served::start();
    let sock = s.socket();
    let pid = s.pid();
    // What the first runs open once (the runtime's caches) is the
    // baseline, not a leak.
    for _ in 0..3 {
        one_run(&sock).unwrap();
    }
    let fds_before = s.idle_fds();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let runs = Mutex::new(0u64);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                while Instant::now() < deadline {
                    match one_run(&sock) {
                        Ok(()) => *runs.lock().unwrap() += 1,
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            });
        }
    });
    let runs = runs.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "api load: {clients} clients for {seconds} s: {runs} runs, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} runs failed; the first: {:#?}\nserver log: {}",
        failures.len(),
        &failures[..failures.len().min(5)],
        s.log()
    );
    assert!(runs >= clients, "every client ran at least once");
    // Every run was removed before its client went on.
    let o = s.berth(&["ps", "-aq"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "containers left");
    // A monitor reports the exit just before it ends.
    let settle = Instant::now() + Duration::from_secs(30);
    while !processes_naming(&s.dir.0, pid).is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_naming(&s.dir.0, pid),
        Vec::<String>::new(),
        "monitors left"
    );
    // However many starts raced for it, the server keeps one spare.
    assert!(spares_naming(&s.dir.0) <= 1, "spare monitors leaked");
    s.assert_fds_back(fds_before);
}

/// `count` containers of `bb sleep 1000` created and started by `threads`
/// clients side by side; their ids.
fn start_sleepers(sock: &std::path::Path, count: u64, threads: u64) -> Vec<String> {
    let ids = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < count {
                    let (code, out) = http(
                        sock,
                        "POST",
                        "/containers/create",
                        Some(r#"{"Image":"bb","Cmd":["sleep","1000"],"HostConfig":{"NetworkMode":"none"}}"#),
                    )
                    .unwrap();
                    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&out));
                    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                    let id = v["Id"].as_str().unwrap().to_string();
                    let (code, out) =
                        http(sock, "POST", &format!("/containers/{id}/start"), None).unwrap();
                    assert_eq!(code, 204, "{}", String::from_utf8_lossy(&out));
                    ids.lock().unwrap().push(id);
                }
            });
        }
    });
    ids.into_inner().unwrap()
}

#[test]
fn api_load_more_running_containers_than_blocking_threads() {
    if !require_root("api_load_more_running_containers_than_blocking_threads") {
        return;
    }
    // tokio runs blocking calls on at most 512 threads: a server that
    // held one per running container stopped answering past that.
    let count = env_or("API_MANY_CONTAINERS", 520);
    let s = Served::start();
    let sock = s.socket();
    let ids = start_sleepers(&sock, count, 16);
    assert_eq!(ids.len() as u64, count);
    let (code, out) = http(&sock, "GET", "/containers/json", None).unwrap();
    assert_eq!(code, 200);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(list.len() as u64, count, "all of them run");
    // The server still runs containers to their end.
    one_run(&sock).unwrap();
    // And removes the others, side by side.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(id) = ids.get(i) else { break };
                let (code, out) =
                    http(&sock, "DELETE", &format!("/containers/{id}?force=1"), None).unwrap();
                assert_eq!(code, 204, "{}", String::from_utf8_lossy(&out));
            });
        }
    });
    let o = s.berth(&["ps", "-aq"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "containers left");
}
