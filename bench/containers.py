#!/usr/bin/env python3
"""`berth run --rm --network none IMG true` against podman and docker doing
the same with the same image (a busybox-static rootfs imported into each),
interleaved, medians. Each engine runs on private roots; dockerd is
started here on its own socket and stopped afterwards."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def make_rootfs_tar(path):
    root = tempfile.mkdtemp(prefix="berth-bench-rootfs-")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        p = os.path.join(root, "bin", a)
        if not os.path.exists(p):
            os.symlink("busybox", p)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    subprocess.run(["tar", "-C", root, "-cf", path, "."], check=True)
    shutil.rmtree(root)


def timed(argv, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.decode(errors='replace')}")
    return dt


def version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"


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
    make_rootfs_tar(tar)
    engines = {}
    cleanups = []
    try:
        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        subprocess.run(berth + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL)
        engines["berth"] = (berth + ["run", "--rm", "--network", "none", "bench/busybox", "true"], None, version([berth[0], "--version"]))

        if shutil.which("podman"):
            conf = os.path.join(work, "containers.conf")
            with open(conf, "w") as f:
                f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
            env = dict(os.environ, CONTAINERS_CONF=conf)
            podman = ["podman", "--root", f"{work}/pr", "--runroot", f"{work}/prr", "--tmpdir", f"{work}/pt", "--runtime", "runc"]
            subprocess.run(podman + ["import", tar, "localhost/bench/busybox"], check=True, stdout=subprocess.DEVNULL, env=env)
            engines["podman"] = (podman + ["run", "--rm", "--network", "none", "localhost/bench/busybox", "true"], env, version(["podman", "--version"]))
            cleanups.append(lambda: subprocess.run(podman + ["rmi", "-af"], env=env, capture_output=True))

        if shutil.which("dockerd"):
            sock = f"{work}/d.sock"
            log = open(f"{work}/dockerd.log", "w")
            d = subprocess.Popen(["dockerd", "--data-root", f"{work}/dd", "--exec-root", f"{work}/de", "--pidfile", f"{work}/d.pid",
                                  "-H", f"unix://{sock}", "--bridge=none", "--iptables=false", "--ip6tables=false"],
                                 stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            docker = ["docker", "-H", f"unix://{sock}"]
            deadline = time.time() + 60
            while subprocess.run(docker + ["info"], capture_output=True).returncode != 0:
                if time.time() > deadline:
                    sys.exit("dockerd did not start")
                time.sleep(0.3)
            subprocess.run(docker + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL)
            engines["docker"] = (docker + ["run", "--rm", "--network", "none", "bench/busybox", "true"], None, version(["docker", "--version"]))

            def stop_docker():
                d.terminate()
                try:
                    d.wait(20)
                except subprocess.TimeoutExpired:
                    d.kill()
            cleanups.append(stop_docker)

        results = {k: [] for k in engines}
        for i in range(args.runs + 2):
            for name, (argv, env, _) in engines.items():
                dt = timed(argv, env)
                if i >= 2:
                    results[name].append(dt)
    finally:
        for c in cleanups:
            c()
        subprocess.run(["sh", "-c", f"grep ' {work}' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l"], capture_output=True)
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
