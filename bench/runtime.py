#!/usr/bin/env python3
"""berth-runtime against runc and crun: `run` of busybox `true` on the same
bundle, interleaved, medians. crun 1.8 refuses this hybrid-cgroup host
unless the unified hierarchy's cgroup.controllers looks empty, so all
three run in one private mount namespace where an empty file is bound over
it: every runtime sees the same view and the host is unchanged."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arguments, emit  # noqa: E402


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def make_bundle(d):
    rootfs = os.path.join(d, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for a in ("sh", "true"):
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    for x in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, x), exist_ok=True)
    sh("runc", "spec", cwd=d)
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["true"]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))


def version(cmd):
    try:
        out = subprocess.run([cmd, "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else "?"
    except FileNotFoundError:
        return None


def time_run(argv):
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(err.fileno(), 2)
        os.execv(argv[0], argv)
    _, status, ru = os.wait4(pid, 0)
    dt = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        err.seek(0)
        raise RuntimeError(f"{argv} failed: {err.read().decode(errors='replace')}")
    return dt, ru.ru_maxrss


def inner(args):
    runtimes = {"berth-runtime": os.path.join(args.bin, "berth-runtime")}
    for r in ("runc", "crun"):
        p = shutil.which(r)
        if p:
            runtimes[r] = p
    bundle = tempfile.mkdtemp(prefix="berth-bench-")
    make_bundle(bundle)
    results = {name: [] for name in runtimes}
    rss = {name: 0 for name in runtimes}
    n = args.runs
    for i in range(n + 2):
        for name, path in runtimes.items():
            root = os.path.join(bundle, "state-" + name)
            argv = [path, "--root", root, "run", "--bundle", bundle, f"b{i}"]
            dt, _ = time_run(argv)
            if i >= 2:  # the first runs warm caches
                results[name].append(dt)
    # Peak RSS through GNU time, a small C parent: a child forked from
    # Python would report Python's own high-water mark.
    for name, path in runtimes.items():
        for i in range(3):
            root = os.path.join(bundle, "state-" + name)
            out = subprocess.run(["/usr/bin/time", "-f", "%M", path, "--root", root, "run", "--bundle", bundle, f"r{i}"],
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL)
            last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "0"
            rss[name] = max(rss[name], int(last) if last.isdigit() else 0)
    shutil.rmtree(bundle, ignore_errors=True)
    json.dump({"results": results, "rss_kib": rss, "versions": {k: version(v) for k, v in runtimes.items()}}, sys.stdout)


def outer(args):
    # Run ourselves inside a private mount namespace with the unified
    # cgroup.controllers hidden (see the module docstring).
    script = (
        "set -e; mount --make-rprivate /; f=$(mktemp); "
        "if [ -n \"$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)\" ]; then mount --bind $f /sys/fs/cgroup/unified/cgroup.controllers; fi; "
        f"exec python3 {os.path.abspath(__file__)} --inner --bin {args.bin} --runs {args.runs}"
    )
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"benchmark failed: {out.stderr}")
    data = json.loads(out.stdout)
    res = data["results"]
    med = {k: statistics.median(v) * 1000 for k, v in res.items() if v}
    lines = ["## OCI runtime: `run` of busybox `true`", ""]
    lines.append(f"{args.runs} interleaved runs each, same bundle, one private mount namespace (see bench/runtime.py). Median wall time; peak RSS of the runtime process.")
    lines.append("")
    lines.append("| runtime | version | median ms | p10 ms | p90 ms | vs berth-runtime | peak RSS MiB |")
    lines.append("|---|---|---|---|---|---|---|")
    b = med.get("berth-runtime")
    for k, v in res.items():
        q = statistics.quantiles(v, n=10) if len(v) >= 10 else [min(v)] * 9
        ratio = f"{med[k] / b:.2f}x" if b else "-"
        lines.append(
            f"| {k} | {data['versions'].get(k) or '?'} | {med[k]:.1f} | {q[0]*1000:.1f} | {q[-1]*1000:.1f} | {ratio} | {data['rss_kib'][k]/1024:.1f} |"
        )
    lines.append("")
    lines.append("Targets (runtime issue): at most half of runc's time, and no slower than crun's.")
    lines.append("")
    emit(lines, args.out, peers=list(res), bin_dir=args.bin,
         commands=[("each runtime, the same bundle", ["RUNTIME", "--root", "STATE", "run", "--bundle", "BUNDLE", "ID"])])


def main():
    ap = arguments(runs=50)
    ap.add_argument("--inner", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs = 10
    args.bin = os.path.abspath(args.bin)
    if args.inner:
        inner(args)
    else:
        outer(args)


if __name__ == "__main__":
    main()
