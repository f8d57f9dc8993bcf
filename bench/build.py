#!/usr/bin/env python3
"""`berth build` against `docker build` (its classic builder,
DOCKER_BUILDKIT=0) and `podman build` on the same Dockerfile and context:
a local busybox base, COPY of 1000 small files, a RUN, ENV, CMD. Two
figures each, medians of interleaved runs:

- cold: `--no-cache` (the base image present, nothing else reused);
- no-op rebuild: the same build again with nothing changed.

Each engine runs on private roots; dockerd is started here on its own
socket and stopped afterwards."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arguments, emit, Dockerd, busybox_rootfs, podman, timed, version  # noqa: E402

DOCKERFILE = """FROM bench/busybox
COPY . /app
RUN cd /app && ls | wc -l > /count
ENV APP=/app
CMD ["cat", "/count"]
"""


def make_context(path, files):
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    for i in range(files):
        sub = os.path.join(path, "src", f"d{i % 20:02}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i:04}.txt"), "w") as f:
            f.write(f"file {i}\n" * 8)
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)


def main():
    ap = arguments(runs=5)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    if args.quick:
        args.runs, args.files = 1, 200
    bin_dir = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="bb", dir="/tmp")
    tar = os.path.join(work, "rootfs.tar")
    busybox_rootfs(tar)
    ctx = os.path.join(work, "ctx")
    make_context(ctx, args.files)
    engines = {}
    cleanups = []
    try:
        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        subprocess.run(berth + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL)
        engines["berth"] = (berth + ["build", "-t", "bench/app"], None, version([berth[0], "--version"]))

        peer = podman(work)
        if peer:
            pod, env = peer
            subprocess.run(pod + ["import", tar, "localhost/bench/busybox"], check=True, stdout=subprocess.DEVNULL, env=env)
            engines["podman"] = (pod + ["build", "--network", "none", "-t", "bench/app"], env, version(["podman", "--version"]))
            cleanups.append(lambda: subprocess.run(pod + ["rmi", "-af"], env=env, capture_output=True))

        if Dockerd.available():
            d = Dockerd(work)
            cleanups.append(d.stop)
            subprocess.run(d.argv + ["import", tar, "bench/busybox"], check=True, stdout=subprocess.DEVNULL)
            denv = dict(os.environ, DOCKER_BUILDKIT="0")
            engines["docker"] = (d.argv + ["build", "--network", "none", "-t", "bench/app"], denv, version(["docker", "--version"]))

        cold = {k: [] for k in engines}
        noop = {k: [] for k in engines}
        for i in range(args.runs + 1):
            for name, (argv, env, _) in engines.items():
                dt_cold = timed(argv + ["--no-cache", ctx], env)
                dt_noop = timed(argv + [ctx], env)
                # The first round warms page caches and the engines' stores.
                if i >= 1:
                    cold[name].append(dt_cold)
                    noop[name].append(dt_noop)
    finally:
        for c in cleanups:
            c()
        subprocess.run(["sh", "-c", f"grep ' {work}' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    mc = {k: statistics.median(v) for k, v in cold.items()}
    mn = {k: statistics.median(v) for k, v in noop.items()}
    lines = [f"## Builds: {args.files}-file context", ""]
    lines.append(f"`build` of a Dockerfile doing `FROM` a local busybox image, `COPY . /app` of {args.files} small files, "
                 "a `RUN`, `ENV` and `CMD`: cold (`--no-cache`) and a rebuild with nothing changed, "
                 f"medians of {args.runs} interleaved runs, private roots (docker's classic builder, DOCKER_BUILDKIT=0; "
                 "podman with `--runtime runc`). See bench/build.py.")
    lines.append("")
    lines.append("| engine | version | cold s | no-op rebuild s | no-op vs berth |")
    lines.append("|---|---|---|---|---|")
    for k in engines:
        lines.append(f"| {k} | {engines[k][2]} | {mc[k]:.2f} | {mn[k]:.3f} | {mn[k]/mn['berth']:.1f}x |")
    lines.append("")
    lines.append("Targets (builds issue): cold no slower than the fastest peer; the no-op rebuild at least 5x faster "
                 "than the fastest peer's.")
    lines.append("")
    commands = []
    for k, (argv, _, _) in engines.items():
        commands += [(f"{k}, cold", argv + ["--no-cache", ctx]), (f"{k}, no-op rebuild", argv + [ctx])]
    emit(lines, args.out, peers=list(engines), bin_dir=bin_dir, commands=commands, work=work)


if __name__ == "__main__":
    main()
