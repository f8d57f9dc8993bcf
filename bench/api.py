#!/usr/bin/env python3
"""The Docker API's speed (issue 8): `docker run --rm --network none IMAGE
true` by one docker CLI against three servers of the same API on unix
sockets of their own: `berth serve`, dockerd and podman's service
(`podman system service --time=0`). The same busybox root filesystem is
imported into each; the runs are interleaved (each round runs the command
once against each server, in turn); medians and spread; the ratio against
dockerd (target: 10x faster). Beside them, the same command against a
stub that runs nothing and answers at once (bench/dockerstub.py): the
docker CLI's own part, which no server can take away. `--network none`
everywhere: what is timed is the API path and the engine behind it, not
each one's bridge. All
servers run on private roots under one temporary folder and are stopped,
and the folder removed, afterwards."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import plot  # noqa: E402


def servers(work, bin_dir, tar):
    """label -> (docker CLI argv, image name as that server lists it);
    and the cleanups, last first."""
    found, cleanups = {}, []
    benv = common.berth_env(work)
    berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
    subprocess.run(berth + ["import", tar, common.IMAGE], check=True, stdout=subprocess.DEVNULL, env=benv)
    sock = f"{work}/b.sock"
    s = common.Daemon("berth serve", berth + ["serve", "--host", f"unix://{sock}"],
                      ["docker", "-H", f"unix://{sock}"], ["version"], f"{work}/serve.log", timeout=30, interval=0.1,
                      env=benv)
    cleanups.append(s.stop)
    found["berth serve"] = (s.argv, common.IMAGE, berth + ["serve", "--host", f"unix://{sock}"])

    if common.Dockerd.available():
        d = common.Dockerd(work)
        cleanups.append(d.stop)
        subprocess.run(d.argv + ["import", tar, common.IMAGE], check=True, stdout=subprocess.DEVNULL)
        found["dockerd"] = (d.argv, common.IMAGE, d.proc.args)

    pm = common.podman(work)
    if pm:
        pod, penv = pm
        # As docker.io/..., the name a docker client's short name means to
        # podman's compat API.
        subprocess.run(pod + ["import", "-q", tar, "docker.io/" + common.IMAGE], check=True,
                       stdout=subprocess.DEVNULL, env=penv)
        psock = f"{work}/p.sock"
        argv = pod + ["system", "service", "--time=0", f"unix://{psock}"]
        p = common.Daemon("podman system service", argv, ["docker", "-H", f"unix://{psock}"], ["version"],
                          f"{work}/podman.log", timeout=30, interval=0.1, env=penv)
        cleanups.append(p.stop)
        cleanups.append(lambda: subprocess.run(pod + ["rm", "-af"], env=penv, capture_output=True))
        found["podman service"] = (p.argv, common.IMAGE, argv)

    ssock = f"{work}/stub.sock"
    argv = ["python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "dockerstub.py"), ssock]
    st = common.Daemon("the stub server", argv, ["docker", "-H", f"unix://{ssock}"], ["version"],
                       f"{work}/stub.log", timeout=30, interval=0.1)
    cleanups.append(st.stop)
    found[STUB] = (st.argv, common.IMAGE, argv)
    return found, cleanups


# The stub's label: a row of the table, but no server.
STUB = "a stub that answers at once"


def main():
    ap = common.arguments(runs=30, plot=True)
    args = ap.parse_args()
    if not shutil.which("docker"):
        sys.exit("api.py needs the docker CLI")
    if args.quick:
        args.runs = 5
    bin_dir = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="ba", dir="/tmp")
    tar = os.path.join(work, "rootfs.tar")
    common.busybox_rootfs(tar)
    cleanups = []
    results = {}
    commands = []
    try:
        found, cleanups = servers(work, bin_dir, tar)
        cmds = {k: cli + ["run", "--rm", "--network", "none", image, "true"] for k, (cli, image, _) in found.items()}
        for k, (_, _, server) in found.items():
            commands.append((f"{k}, the server", server))
            commands.append((f"{k}, the client", cmds[k]))
        results = {k: [] for k in cmds}
        for i in range(args.runs + 2):
            for k, argv in cmds.items():
                dt = common.timed(argv)
                if i >= 2:  # the first rounds warm caches
                    results[k].append(dt)
    finally:
        for c in reversed(cleanups):
            try:
                c()
            except Exception as e:  # keep cleaning
                print(f"cleanup: {e}", file=sys.stderr)
        common.unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    stats = {}
    for k, v in results.items():
        q = statistics.quantiles(v, n=10)
        stats[k] = (statistics.median(v) * 1000, q[0] * 1000, q[-1] * 1000)
    lines = ["## Docker API: `docker run --rm IMAGE true` through each server", ""]
    lines.append(f"The same docker CLI, {args.runs} interleaved rounds, each running `docker run --rm --network none "
                 "IMAGE true` once against each server: `berth serve`, dockerd (its own socket, data and exec roots; "
                 "containerd and runc beneath) and podman's Docker-compatible service (`podman system service "
                 "--time=0`, with `--runtime runc`). The same busybox root filesystem imported into each. The "
                 "last row is the same command against a stub that runs nothing and answers each request at once "
                 "(bench/dockerstub.py): the docker CLI's own part of the command. See bench/api.py.")
    lines.append("")
    lines.append("| server | median ms | p10 ms | p90 ms | dockerd's time / this one's |")
    lines.append("|---|---|---|---|---|")
    base = stats.get("dockerd", (None,))[0]
    for k, (m, lo, hi) in stats.items():
        ratio = f"{base / m:.1f}x" if base else "-"
        lines.append(f"| {k} | {m:.1f} | {lo:.1f} | {hi:.1f} | {ratio} |")
    lines.append("")
    if base and STUB in stats:
        left = base / 10 - stats[STUB][0]
        lines.append(f"No server can make `docker run` take less than the stub's {stats[STUB][0]:.1f} ms: a server "
                     f"that took no time at all would be {base / stats[STUB][0]:.1f}x faster than dockerd here. 10x "
                     f"({base / 10:.1f} ms) leaves a server {left:.1f} ms to create, start, run and remove the "
                     "container.")
        lines.append("")
    if base and "berth serve" in stats:
        got = base / stats["berth serve"][0]
        lines.append(f"Target (API issue): 10x faster than dockerd: {'met' if got >= 10 else 'not met'} "
                     f"({got:.1f}x).")
        lines.append("")
    if args.svg:
        plot.bars(args.svg, "docker run --rm IMAGE true, by server (median, p10-p90)",
                  [(k, m, lo, hi) for k, (m, lo, hi) in stats.items()], unit="ms",
                  note=common.figure_note("api.py"))
        lines.append(f"![docker run through each API server]({os.path.basename(args.svg)})")
        lines.append("")
    common.emit(lines, args.out, peers=["berth", "docker", "podman"], bin_dir=bin_dir, commands=commands, work=work)


if __name__ == "__main__":
    main()
