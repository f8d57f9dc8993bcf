#!/usr/bin/env python3
"""Start latency across the stack: one busybox `true`, from the bare OCI
runtime up to the docker CLI, for berth and for its peers, interleaved
(every round runs each command once, in turn), medians and spread.

  berth-runtime run / runc run / crun run   the same bundle
  berth run --rm --network none             the engine and its monitor
  berth run --rm                            plus its default bridge
  docker run --rm via berth serve           the docker CLI on berth's API
  podman run --rm --network none            (with runc: crun refuses this host)
  docker run --rm --network none            dockerd, containerd, shim, runc

Everything runs in a private network namespace (the bridge and its rules
die with it) and a private mount namespace in which the unified cgroup
hierarchy's controllers file is hidden, because crun 1.8 refuses this
hybrid-cgroup host otherwise (see runtime.py); every command sees the
same view. Writes a table (--out) and an SVG plot (--svg)."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (arguments, emit, berth_env, figure_note, Daemon, Dockerd, Floor, busybox_rootfs, podman, timed,  # noqa: E402
                    unmount_under,
                    version)
from runtime import make_bundle  # noqa: E402
import plot  # noqa: E402


def reexec_isolated():
    """Into a network and a mount namespace of our own (see above)."""
    script = (
        "set -e; ip link set lo up; mount --make-rprivate /; f=$(mktemp); "
        "if [ -n \"$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)\" ]; then "
        "mount --bind $f /sys/fs/cgroup/unified/cgroup.controllers; fi; exec \"$@\"")
    argv = ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
            sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    os.execvpe("unshare", argv, dict(os.environ, BENCH_ISOLATED="1"))


def main():
    ap = arguments(runs=30, plot=True)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    if os.environ.get("BENCH_ISOLATED") != "1":
        reexec_isolated()
    if args.quick:
        args.runs = 5
    bin_dir = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="bl", dir="/tmp")
    tar = os.path.join(work, "rootfs.tar")
    busybox_rootfs(tar)
    benv = berth_env(work)
    cmds = {}  # label -> (argv, env); argv may hold "{i}", the round
    versions = {}
    cleanups = []
    results = {}
    serve = None
    try:
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        make_bundle(bundle)
        runtimes = {"berth-runtime": os.path.join(bin_dir, "berth-runtime")}
        if not args.no_peers:
            for r in ("runc", "crun"):
                if shutil.which(r):
                    runtimes[r] = shutil.which(r)
        for name, path in runtimes.items():
            cmds[f"{name} run"] = ([path, "--root", f"{work}/rt-{name}", "run", "--bundle", bundle, "c{i}"], None)
            versions[name] = version([path, "--version"])

        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        subprocess.run(berth + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL, env=benv)
        versions["berth"] = version([berth[0], "--version"])
        cmds["berth run --network none"] = (berth + ["run", "--rm", "--network", "none", "bench/busybox", "true"], benv)
        # Under them all, the kernel's work alone (see bench/floor.c).
        floor = Floor(work, tar, berth, "bench/busybox", benv)
        cmds = {"floor (bench/floor.c)": (floor.argv, None), **cmds}
        cmds["berth run (bridge)"] = (berth + ["run", "--rm", "bench/busybox", "true"], benv)
        if shutil.which("docker"):
            sock = f"{work}/bs.sock"
            serve = berth + ["serve", "--host", f"unix://{sock}"]
            s = Daemon("berth serve", serve,
                       ["docker", "-H", f"unix://{sock}"], ["version"], f"{work}/serve.log",
                       timeout=30, interval=0.1)
            cleanups.append(s.stop)
            cmds["docker run via berth serve"] = (s.argv + ["run", "--rm", "--network", "none", "bench/busybox", "true"],
                                                  None)

        if not args.no_peers:
            pm = podman(work)
            if pm:
                pod, penv = pm
                subprocess.run(pod + ["import", tar, "localhost/bench/busybox"], check=True,
                               stdout=subprocess.DEVNULL, env=penv)
                versions["podman"] = version(["podman", "--version"])
                cmds["podman run --network none"] = (
                    pod + ["run", "--rm", "--network", "none", "localhost/bench/busybox", "true"], penv)
                cleanups.append(lambda: subprocess.run(pod + ["rm", "-af"], env=penv, capture_output=True))
            if Dockerd.available():
                d = Dockerd(work)
                cleanups.insert(0, d.stop)
                subprocess.run(d.argv + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL)
                versions["docker"] = version(["docker", "--version"])
                cmds["docker run --network none"] = (d.argv + ["run", "--rm", "--network", "none", "bench/busybox",
                                                               "true"], None)

        results = {k: [] for k in cmds}
        for i in range(args.runs + 2):
            for label, (argv, env) in cmds.items():
                dt = timed([a.replace("{i}", str(i)) for a in argv], env)
                if i >= 2:  # the first rounds warm caches
                    results[label].append(dt)
    finally:
        for c in cleanups:
            try:
                c()
            except Exception as e:  # keep cleaning
                print(f"cleanup: {e}", file=sys.stderr)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    stats = {}
    for k, v in results.items():
        q = statistics.quantiles(v, n=10)
        stats[k] = (statistics.median(v) * 1000, q[0] * 1000, q[-1] * 1000)
    base = stats["berth run --network none"][0]
    load = os.getloadavg()[0]
    lines = ["## Start latency across the stack", ""]
    lines.append(f"One busybox `true` per command, {args.runs} interleaved rounds (load average {load:.1f} at the end), "
                 "private roots, in one private network and mount namespace (see bench/latency.py). "
                 "The floor is bench/floor.c, the kernel's work of docker's isolation of the container by one process "
                 "with nothing an engine adds (see the containers section); the runtimes run a bundle; the engines an "
                 "imported image; `via berth serve` is the docker CLI talking to `berth serve` instead of dockerd.")
    lines.append("")
    lines.append("| command | median ms | p10 ms | p90 ms | vs berth run |")
    lines.append("|---|---|---|---|---|")
    for k, (m, lo, hi) in stats.items():
        lines.append(f"| {k} | {m:.1f} | {lo:.1f} | {hi:.1f} | {m / base:.2f}x |")
    lines.append("")
    if args.svg:
        plot.bars(args.svg, "Start latency: busybox true (median, p10-p90)",
                  [(k, m, lo, hi) for k, (m, lo, hi) in stats.items()], unit="ms", note=figure_note("latency.py"))
        lines.append(f"![start latency]({os.path.basename(args.svg)})")
        lines.append("")
    commands = [(k, [a.replace("{i}", "N") for a in argv]) for k, (argv, _) in cmds.items()]
    if serve:
        commands.append(("berth serve", serve))
    emit(lines, args.out, peers=list(versions), bin_dir=bin_dir, commands=commands, work=work)


if __name__ == "__main__":
    main()
