#!/usr/bin/env python3
"""Density: start many `sleep` containers with berth (1000) and with podman
and docker (50 each), then report the time to start them all, that every
one of them answers, and the memory of each container's host-side process
(PSS from /proc/PID/smaps_rollup): berth-monitor, podman's conmon,
docker's containerd-shim. Every container runs `sh -c 'touch /hb/$(hostname);
exec sleep ...'` with a host directory bound at /hb, so a file per hostname
(the short id) shows it ran; a sample is also reached with `exec`.
Everything is removed afterwards."""

import concurrent.futures
import os
import statistics
import subprocess
import tempfile
import time

import common
import plot

SLEEP = "100000"


def run_args(e, hb):
    return ["run", "-d", "--network", "none", "-v", f"{hb}:/hb", e.image,
            "sh", "-c", f"touch /hb/$(hostname); exec sleep {SLEEP}"]


def start_one(e, hb):
    r = e.run(run_args(e, hb), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{e.name} run -d: {r.stderr.strip()}")
    return r.stdout.strip().splitlines()[-1]


def start_all(e, n, workers, hb):
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        ids = list(pool.map(lambda _: start_one(e, hb), range(n)))
    return ids, time.perf_counter() - t0


def answered(ids, hb, timeout=120):
    """How many of `ids` have written their heartbeat file."""
    want = {i[:12] for i in ids}
    deadline = time.time() + timeout
    while True:
        got = want & set(os.listdir(hb))
        if len(got) == len(want) or time.time() > deadline:
            return len(got)
        time.sleep(0.2)


def exec_sample(e, ids, k=10):
    """Median ms of `exec ID true` into k containers spread over all;
    raises if one fails."""
    times = []
    for i in ids[:: max(1, len(ids) // k)][:k]:
        t0 = time.perf_counter()
        r = e.run(["exec", i, "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{e.name} exec {i[:12]}: {r.stderr.strip()}")
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def host_processes(names, marker):
    """Pids whose executable name is one of `names` and whose command line
    mentions `marker` (this run's work directory)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) in names and marker.encode() in b" ".join(argv):
            out.append(int(p))
    return out


def pss_kib(pid):
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def remove_all(e, ids, workers):
    batches = [ids[i:i + 50] for i in range(0, len(ids), 50)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda b: e.run(["rm", "-f"] + b, capture_output=True), batches))


HOST_SIDE = {
    "berth": ("berth-monitor",),
    "podman": ("conmon",),
    "docker": ("containerd-shim-runc-v2", "containerd-shim"),
}


def measure(e, n, workers, work):
    hb = os.path.join(work, f"hb-{e.name}")
    os.makedirs(hb)
    ids = []
    try:
        store = common.du(e.root)
        ids, took = start_all(e, n, workers, hb)
        ok = answered(ids, hb)
        disk = common.du(e.root) - store
        ex = exec_sample(e, ids)
        pids = host_processes(HOST_SIDE[e.name], work)
        pss = [pss_kib(p) for p in pids]
        fd = [fds(p) for p in pids]
        running = len(e.run(["ps", "-q"], capture_output=True, text=True).stdout.split())
        return {
            "n": n, "took": took, "answered": ok, "running": running, "exec_ms": ex,
            "procs": len(pids), "pss_kib": sum(pss) / n, "fds": max(fd) if fd else 0, "disk": disk / n,
        }
    finally:
        remove_all(e, ids, workers)


def main():
    ap = common.arguments(plot=True)
    ap.add_argument("--count", type=int, default=1000, help="berth's containers")
    ap.add_argument("--peers", type=int, default=50, help="podman's and docker's containers")
    ap.add_argument("--workers", type=int, default=4, help="parallel `run -d` at a time")
    ap.add_argument("--engines", default="berth,podman,docker")
    args = ap.parse_args()
    if args.quick:
        args.count, args.peers = 50, 5
    work = tempfile.mkdtemp(prefix="bd", dir="/tmp")
    bin_dir = os.path.abspath(args.bin)
    engines = {}
    results = {}
    commands = []
    loads = [common.load()]
    try:
        engines = common.engines(work, bin_dir, args.engines.split(","))
        for name, e in engines.items():
            n = args.count if name == "berth" else args.peers
            commands.append((f"{name}, {n} times, {args.workers} at a time",
                             e.argv + run_args(e, os.path.join(work, f"hb-{name}"))))
            results[name] = measure(e, n, args.workers, work)
            loads.append(common.load())
    finally:
        common.teardown(work, engines)

    lines = ["## Density: many `sleep` containers", ""]
    lines.append(f"`run -d --network none` of a busybox `sleep`, {args.workers} at a time; each container writes a file "
                 "named by its hostname to a bound host directory, and `exec true` reaches 10 of them. Memory is the "
                 "proportional set size (PSS, /proc/PID/smaps_rollup) of the host-side processes of all containers "
                 "(berth-monitor, podman's conmon, docker's containerd-shim), divided by the number of containers. "
                 "Disk is what the engine's store (data root, `du -sx -B1`: blocks, hard links once, not the "
                 "mounted root filesystems) grew by with all of them running, divided by their number. "
                 f"Load average {' -> '.join(loads)} over the run. See bench/density.py.")
    lines.append("")
    lines.append("| engine | containers | start all s | per container ms | answered | running | exec ms | "
                 "host processes | PSS per container MiB | most fds in one | disk per container kB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for k, r in results.items():
        lines.append(f"| {k} | {r['n']} | {r['took']:.1f} | {r['took'] / r['n'] * 1000:.0f} | {r['answered']} | "
                     f"{r['running']} | {r['exec_ms']:.0f} | {r['procs']} | {r['pss_kib'] / 1024:.2f} | {r['fds']} | "
                     f"{r['disk'] / 1000:.1f} |")
    lines.append("")
    if args.svg and results:
        label = {k: f"{k} ({r['n']})" for k, r in results.items()}
        plot.panels(args.svg, "Density: the cost of each sleeping container (how many ran at once)", [
            ("start, per container", "ms", [(label[k], r["took"] / r["n"] * 1000, None, None)
                                            for k, r in results.items()]),
            ("host-side PSS per container", "MiB", [(label[k], r["pss_kib"] / 1024, None, None)
                                                    for k, r in results.items()]),
            ("disk per container", "kB", [(label[k], r["disk"] / 1000, None, None) for k, r in results.items()]),
        ], note=common.figure_note("density.py"))
        lines.append(f"![density]({os.path.basename(args.svg)})")
        lines.append("")
    if "berth" in results:
        b = results["berth"]
        all_up = b["answered"] == b["n"] == b["running"]
        verdict = [f"{b['n']} running together: {'met' if all_up else 'not met'}"]
        if "podman" in results:
            c = results["podman"]["pss_kib"]
            verdict.append(f"monitor PSS no more than conmon's: {'met' if b['pss_kib'] <= c else 'not met'} "
                           f"({b['pss_kib'] / 1024:.2f} vs {c / 1024:.2f} MiB)")
        lines.append("Targets (containers issue): " + "; ".join(verdict) + ".")
        lines.append("")
    common.emit(lines, args.out, peers=list(results), bin_dir=bin_dir, commands=commands, work=work)


if __name__ == "__main__":
    main()
