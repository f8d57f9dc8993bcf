#!/usr/bin/env python3
"""`berth run --rm --network none IMG true` against podman and docker doing
the same with the same image (a busybox-static rootfs imported into each),
interleaved, medians. Each engine runs on private roots; dockerd is
started here on its own socket and stopped afterwards."""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile

from common import Dockerd, busybox_rootfs, podman, timed, unmount_under, version


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.quick:
        args.runs = 8
    bin_dir = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="bb", dir="/tmp")
    tar = os.path.join(work, "rootfs.tar")
    busybox_rootfs(tar)
    engines = {}
    cleanups = []
    try:
        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        subprocess.run(berth + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL)
        engines["berth"] = (berth + ["run", "--rm", "--network", "none", "bench/busybox", "true"], None, version([berth[0], "--version"]))

        pm = podman(work)
        if pm:
            pod, env = pm
            subprocess.run(pod + ["import", tar, "localhost/bench/busybox"], check=True, stdout=subprocess.DEVNULL, env=env)
            engines["podman"] = (pod + ["run", "--rm", "--network", "none", "localhost/bench/busybox", "true"], env, version(["podman", "--version"]))
            cleanups.append(lambda: subprocess.run(pod + ["rmi", "-af"], env=env, capture_output=True))

        if Dockerd.available():
            d = Dockerd(work)
            cleanups.append(d.stop)
            docker = d.argv
            subprocess.run(docker + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL)
            engines["docker"] = (docker + ["run", "--rm", "--network", "none", "bench/busybox", "true"], None, version(["docker", "--version"]))

        results = {k: [] for k in engines}
        for i in range(args.runs + 2):
            for name, (argv, env, _) in engines.items():
                dt = timed(argv, env)
                if i >= 2:
                    results[name].append(dt)
    finally:
        for c in cleanups:
            c()
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) * 1000 for k, v in results.items()}
    b = med["berth"]
    lines = ["## Containers: `run --rm --network none IMAGE true`", ""]
    lines.append(f"{args.runs} interleaved runs each, the same busybox image imported into each engine, private roots "
                 "(podman with `--runtime runc`, as crun refuses this hybrid-cgroup host; dockerd with its default runc). "
                 "See bench/containers.py.")
    lines.append("")
    lines.append("| engine | version | median ms | p10 ms | p90 ms | time vs berth |")
    lines.append("|---|---|---|---|---|---|")
    for k, v in results.items():
        q = statistics.quantiles(v, n=10) if len(v) >= 10 else [min(v)] * 8 + [max(v)]
        lines.append(f"| {k} | {engines[k][2]} | {med[k]:.1f} | {q[0]*1000:.1f} | {q[-1]*1000:.1f} | {med[k]/b:.1f}x |")
    lines.append("")
    lines.append("Targets (containers issue): 15x faster than podman and 40x faster than docker.")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        open(args.out, "w").write(text + "\n")


if __name__ == "__main__":
    main()
