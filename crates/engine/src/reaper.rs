//! Reaps the monitors of a starter that outlives them (`berth serve`).
//! They stay its children rather than forking away at their start: that
//! fork, and the exit of the half left behind, which the starter waited
//! for, put two more processes to schedule on the path of every start.
//! One thread waits for all of them, on a pidfd each.

use std::os::fd::OwnedFd;
use std::process::Child;
use std::sync::mpsc;
use std::sync::Arc;

use rustix::event::{poll, PollFd, PollFlags};

/// Hands children to the reaping thread, which runs while any handle
/// (or any child it holds) lives.
#[derive(Clone)]
pub struct Reaper {
    tx: mpsc::Sender<Child>,
    /// The write end of the thread's wake-up pipe.
    wake: Arc<OwnedFd>,
}

impl Reaper {
    pub fn new() -> std::io::Result<Reaper> {
        let flags = rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK;
        let (r, w) = rustix::pipe::pipe_with(flags)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("berth-reaper".into())
            .spawn(move || run(rx, r))?;
        Ok(Reaper {
            tx,
            wake: Arc::new(w),
        })
    }

    /// Reaps `child` once it ends.
    pub fn adopt(&self, child: Child) {
        if let Err(mpsc::SendError(mut child)) = self.tx.send(child) {
            // The thread is gone (it never ends while we hold a sender):
            // a waiting thread of its own rather than a zombie.
            std::thread::spawn(move || child.wait());
            return;
        }
        // A full pipe already wakes the thread.
        let _ = rustix::io::write(&*self.wake, &[1]);
    }
}

fn run(rx: mpsc::Receiver<Child>, wake: OwnedFd) {
    let mut kids: Vec<(Child, OwnedFd)> = Vec::new();
    let mut open = true;
    loop {
        loop {
            match rx.try_recv() {
                Ok(mut child) => {
                    let pid = rustix::process::Pid::from_raw(child.id() as i32);
                    match pid.map(|p| {
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                    }) {
                        Some(Ok(fd)) => kids.push((child, fd)),
                        // No pidfds (Linux before 5.3): a thread for it.
                        _ => {
                            std::thread::spawn(move || child.wait());
                        }
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !open && kids.is_empty() {
            return;
        }
        let mut fds: Vec<PollFd> = Vec::with_capacity(kids.len() + 1);
        // Once every sender is gone the pipe's write end is closed too: it
        // would poll as hung up at once, for good, and spin this loop.
        if open {
            fds.push(PollFd::new(&wake, PollFlags::IN));
        }
        let first = fds.len();
        fds.extend(kids.iter().map(|(_, fd)| PollFd::new(fd, PollFlags::IN)));
        if poll(&mut fds, None).is_err() {
            // EINTR, or out of memory for the set: look again.
            continue;
        }
        let ended: Vec<bool> = fds[first..]
            .iter()
            .map(|f| !f.revents().is_empty())
            .collect();
        drop(fds);
        let mut buf = [0u8; 64];
        // Drained; at the end (every sender gone) it reads as 0 for good,
        // and the channel says so above.
        while open && matches!(rustix::io::read(&wake, &mut buf), Ok(n) if n > 0) {}
        let mut ended = ended.into_iter();
        kids.retain_mut(|(child, _)| {
            if ended.next().unwrap_or(false) {
                // Readable pidfd: it exited, so this does not block.
                let _ = child.wait();
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_reaper_let_go_still_reaps_what_it_holds_without_spinning() {
        let r = Reaper::new().unwrap();
        let slow = std::process::Command::new("sleep")
            .arg("1")
            .spawn()
            .unwrap();
        let pid = slow.id();
        r.adopt(slow);
        drop(r);
        // The reapers' threads only: other tests run beside this one in
        // the same process and burn CPU of their own.
        let cpu = || -> u64 {
            let mut ticks = 0;
            for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                if comm.trim() != "berth-reaper" {
                    continue;
                }
                let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                    continue;
                };
                ticks += stat
                    .rsplit_once(')')
                    .unwrap()
                    .1
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .map(|x| x.parse::<u64>().unwrap())
                    .sum::<u64>();
            }
            ticks
        };
        // Measured while the child still runs (the reaper thread is there
        // to be read until it has reaped): 0.3 s of a spinning thread is
        // about 30 ticks, of a sleeping one next to none.
        let before = cpu();
        std::thread::sleep(Duration::from_millis(300));
        let used = cpu().saturating_sub(before);
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the child ended before the reaper was measured"
        );
        assert!(used < 10, "the reaper spun: {used} ticks");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "{pid} was not reaped");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn children_are_reaped_as_they_end() {
        let r = Reaper::new().unwrap();
        let quick = std::process::Command::new("true").spawn().unwrap();
        let slow = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        let pids = [quick.id(), slow.id()];
        r.adopt(quick);
        r.adopt(slow);
        // A zombie keeps its /proc entry until it is reaped.
        let gone = |pid: &u32| !std::path::Path::new(&format!("/proc/{pid}")).exists();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !pids.iter().all(gone) {
            assert!(Instant::now() < deadline, "{pids:?} were not reaped");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
