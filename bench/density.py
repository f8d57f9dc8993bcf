#!/usr/bin/env python3
"""Density: start many `sleep` containers with berth (1000), then with
podman and docker for as long as berth took (its time is their budget: each
starts containers until it is spent, so the table says how many each
reaches in the same time), and report the time to start them, that every
one of them answers, and the memory of each container's host-side process
(PSS from /proc/PID/smaps_rollup): berth-monitor, podman's conmon,
docker's containerd-shim. A peer also stops at a cap (berth's count), when
the machine's available memory runs low, or when one of its daemons nears
its open-files limit, so the machine is not exhausted. Every container runs
`sh -c 'touch /hb/$(hostname); exec sleep ...'` with a host directory bound
at /hb, so a file per hostname (the short id) shows it ran; a sample is
also reached with `exec`. Everything is removed afterwards: what the
engine lists on its private root, not only the ids the bench kept."""

import concurrent.futures
import os
import statistics
import subprocess
import tempfile
import threading
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


# A peer stops starting containers before the machine runs short: when
# the memory available falls under this (or a tenth of the total), or
# when one of its daemons holds this share of its open-files limit.
MEM_FLOOR_KIB = 2 << 20
FD_SHARE = 0.9
# Its daemons, whose open files grow with its containers (podman has none).
DAEMONS = {"docker": ("dockerd", "containerd")}


def mem_available_kib():
    total = avail = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            total = int(line.split()[1])
        elif line.startswith("MemAvailable:"):
            avail = int(line.split()[1])
    return avail, total


def open_files_limit(pid):
    """The soft open-files limit of `pid` (None if unlimited or gone)."""
    try:
        for line in open(f"/proc/{pid}/limits"):
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return None if soft == "unlimited" else int(soft)
    except OSError:
        pass
    return None


def shortage(e, work):
    """Why `e` must start no more containers now, or None."""
    avail, total = mem_available_kib()
    floor = max(MEM_FLOOR_KIB, total // 10)
    if avail < floor:
        return f"memory: {avail >> 10} MiB available, floor {floor >> 10} MiB"
    for pid in host_processes(DAEMONS.get(e.name, ()), work):
        limit = open_files_limit(pid)
        try:
            held = fds(pid)
        except OSError:
            continue
        if limit and held >= FD_SHARE * limit:
            return f"open files: pid {pid} holds {held} of its {limit}"
    return None


def start_for(e, budget, cap, workers, hb, work):
    """Starts containers of `e`, `workers` at a time, until `budget`
    seconds are spent or `cap` have started, whichever comes first; none
    begins after the budget or once the machine runs short (`shortage`),
    and the first failed `run` ends it too. Returns the ids (in the order
    they came), the seconds until the last returned, how many had returned
    within the budget, and what stopped it."""
    t0 = time.perf_counter()
    deadline = t0 + budget
    ids, in_budget = [], [0]
    stop = [None]
    lock = threading.Lock()
    checked = [0.0]
    started = [0]

    def worker():
        while True:
            with lock:
                now = time.perf_counter()
                if stop[0] is None:
                    if started[0] >= cap:
                        stop[0] = f"cap of {cap}"
                    elif now >= deadline:
                        stop[0] = f"budget of {budget:.1f} s"
                    elif now - checked[0] > 0.5:
                        # Scanning /proc costs: at most twice a second.
                        checked[0] = now
                        stop[0] = shortage(e, work)
                if stop[0] is not None:
                    return
                started[0] += 1
            try:
                cid = start_one(e, hb)
            except RuntimeError as err:
                with lock:
                    stop[0] = stop[0] or f"a failed run: {str(err).splitlines()[0][:160]}"
                return
            with lock:
                ids.append(cid)
                if time.perf_counter() <= deadline:
                    in_budget[0] += 1

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(worker) for _ in range(workers)]:
            f.result()
    return ids, time.perf_counter() - t0, in_budget[0], stop[0]


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


def remove_all(e, workers):
    """Removes every container the engine lists on its private root: those
    the bench started, and any whose `run` failed half-way or that started
    before a failure cut the bench short. A batch that fails (one of its
    ids gone meanwhile fails all of podman's) is tried again with what is
    still listed."""
    # docker's `rm -f` kills at once; podman's first waits 10 s for a
    # SIGTERM that a `sleep` running as pid 1 never acts on.
    force = ["rm", "-f"] + (["-t", "0"] if e.name == "podman" else [])
    errors = []
    for _ in range(3):
        listed = e.run(["ps", "-aq"], capture_output=True, text=True).stdout.split()
        if not listed:
            return
        batches = [listed[i:i + 50] for i in range(0, len(listed), 50)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(lambda b: e.run(force + b, capture_output=True, text=True), batches))
        errors = [r.stderr.strip() for r in done if r.returncode != 0]
    left = e.run(["ps", "-aq"], capture_output=True, text=True).stdout.split()
    if left:
        raise RuntimeError(f"{e.name}: {len(left)} containers left after rm -f: {errors[-1] if errors else ''}")


HOST_SIDE = {
    "berth": ("berth-monitor",),
    "podman": ("conmon",),
    "docker": ("containerd-shim-runc-v2", "containerd-shim"),
}


def measure(e, n, workers, work, budget=None):
    """Starts `n` containers of `e` or, with a `budget` (seconds), as many
    as it reaches in that time up to `n` (`start_for`); what they cost."""
    hb = os.path.join(work, f"hb-{e.name}")
    os.makedirs(hb)
    try:
        store = common.du(e.root)
        if budget is None:
            ids, took = start_all(e, n, workers, hb)
            in_budget, stop = len(ids), None
        else:
            ids, took, in_budget, stop = start_for(e, budget, n, workers, hb, work)
        if not ids:
            raise RuntimeError(f"{e.name}: no container started ({stop})")
        ok = answered(ids, hb)
        disk = common.du(e.root) - store
        ex = exec_sample(e, ids)
        pids = host_processes(HOST_SIDE[e.name], work)
        pss = [pss_kib(p) for p in pids]
        fd = [fds(p) for p in pids]
        running = len(e.run(["ps", "-q"], capture_output=True, text=True).stdout.split())
        n = len(ids)
        return {
            "n": n, "took": took, "in_budget": in_budget, "stop": stop, "answered": ok, "running": running,
            "exec_ms": ex, "procs": len(pids), "pss_kib": sum(pss) / n, "fds": max(fd) if fd else 0, "disk": disk / n,
        }
    finally:
        remove_all(e, workers)


def main():
    ap = common.arguments(plot=True)
    ap.add_argument("--count", type=int, default=1000, help="berth's containers")
    ap.add_argument("--cap", type=int, help="the most containers a peer starts (default: --count)")
    ap.add_argument("--budget", type=float,
                    help="the peers' time budget in seconds (default: the time berth took for its --count)")
    ap.add_argument("--workers", type=int, default=4, help="parallel `run -d` at a time")
    ap.add_argument("--engines", default="berth,podman,docker")
    args = ap.parse_args()
    if args.quick:
        args.count = 50
    cap = args.cap or args.count
    if args.budget is None and "berth" not in args.engines.split(","):
        ap.error("without berth, --budget says how long the peers start containers")
    work = tempfile.mkdtemp(prefix="bd", dir="/tmp")
    bin_dir = os.path.abspath(args.bin)
    engines = {}
    results = {}
    commands = []
    loads = [common.load()]
    try:
        engines = common.engines(work, bin_dir, args.engines.split(","))
        budget = args.budget
        # berth first (common.engines' order): its time is the budget.
        for name, e in engines.items():
            argv = e.argv + run_args(e, os.path.join(work, f"hb-{name}"))
            if name == "berth":
                commands.append((f"berth, {args.count} times, {args.workers} at a time", argv))
                results[name] = measure(e, args.count, args.workers, work)
                budget = budget or results[name]["took"]
            else:
                commands.append((f"{name}, for {budget:.1f} s (at most {cap}), {args.workers} at a time", argv))
                results[name] = measure(e, cap, args.workers, work, budget)
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
    lines.append(f"berth starts {args.count}; the time it takes is the budget of the others"
                 + (f" (here {budget:.1f} s)" if budget else "")
                 + f": each starts containers until it is spent, at most {cap}, and none once the memory available "
                 f"falls under {MEM_FLOOR_KIB >> 20} GiB (or a tenth of the total) or one of its daemons holds "
                 f"{FD_SHARE:.0%} of its open-files limit. A `run` under way when the budget ends is let finish: "
                 "\"started\" counts it, \"in the budget\" does not, and \"start all\" runs until the last returns.")
    lines.append("")
    lines.append("| engine | started | in the budget | stopped by | start all s | per container ms | answered | running | "
                 "exec ms | host processes | PSS per container MiB | most fds in one | disk per container kB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k, r in results.items():
        stop = (r["stop"] or "its count").replace("|", "/")
        lines.append(f"| {k} | {r['n']} | {r['in_budget']} | {stop} | {r['took']:.1f} | "
                     f"{r['took'] / r['n'] * 1000:.0f} | {r['answered']} | {r['running']} | {r['exec_ms']:.0f} | "
                     f"{r['procs']} | {r['pss_kib'] / 1024:.2f} | {r['fds']} | {r['disk'] / 1000:.1f} |")
    lines.append("")
    if args.svg and results:
        label = {k: f"{k} ({r['n']})" for k, r in results.items()}
        plot.panels(args.svg, "Density: the cost of each sleeping container (how many each started in berth's time)", [
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
