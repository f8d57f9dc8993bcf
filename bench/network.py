#!/usr/bin/env python3
"""What networking adds to `run --rm IMAGE true`: berth with `--network
none`, on its default bridge, and on the bridge with a published port,
against podman (netavark) and docker doing the same, interleaved,
medians. Then 50 containers started at once on one user network, total
wall time per engine.

Everything runs inside a network namespace of its own (the script
re-executes itself under `unshare --net`): bridges, nftables/iptables
rules, sysctls and docker's daemon all live and die there, the host's
network is never touched, and nothing can leave."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arguments, emit, berth_env, busybox_rootfs, Dockerd, timed, version  # noqa: E402


BLOCK = 5


def run(argv, env=None, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr}")
    return r.stdout


def concurrent(argv_for, n, env=None):
    """Starts n containers at once (one thread each); wall time."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as ex:
        ids = list(ex.map(lambda i: run(argv_for(i), env).strip(), range(n)))
    return time.perf_counter() - t0, ids


def berth_leftovers(berth, env, work):
    """What berth's containers left in this namespace: veths, network
    namespaces under its runroot, rules of its own nftables table and
    leases on its networks."""
    links = [l for l in run(["ip", "-o", "link"]).splitlines() if "veth" in l or "@if" in l]
    try:
        netns = os.listdir(f"{work}/brr/netns")
    except FileNotFoundError:
        netns = []
    rules = [l for l in run(["nft", "-a", "list", "table", "ip", "berth"], check=False).splitlines()
             if 'comment "c=' in l]
    leases = 0
    for net in run(berth + ["network", "ls", "-q"], env).split():
        out = run(berth + ["network", "inspect", "-f", "{{len .Containers}}", net], env).strip()
        leases += int(out or 0)
    return {"interfaces": len(links), "namespaces": len(netns), "rules": len(rules), "leases": leases}


def churn_leftovers(berth, env, work, n):
    """n `run --rm` of berth with networking (default bridge and a user
    network in turn, each publishing a port), then what is left once the
    kernel has finished its asynchronous namespace teardown."""
    run(berth + ["network", "create", "churn"], env)
    argvs = [berth + ["run", "--rm", "-p", "127.0.0.1::80", "bench/busybox", "true"],
             berth + ["run", "--rm", "--network", "churn", "-p", "127.0.0.1::80", "bench/busybox", "true"]]
    t0 = time.perf_counter()
    for i in range(n):
        timed(argvs[i % 2], env)
    dt = time.perf_counter() - t0
    deadline = time.time() + 10
    while True:
        left = berth_leftovers(berth, env, work)
        if not any(left.values()) or time.time() > deadline:
            break
        time.sleep(0.2)
    run(berth + ["network", "rm", "churn"], env)
    return n, dt, left


def main():
    ap = arguments(runs=30)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--churn", type=int, default=1000,
                    help="berth run --rm with networking this many times, then count what is left")
    args = ap.parse_args()
    if os.environ.get("BENCH_NETNS") != "1":
        # Our own network namespace, loopback up, for the whole run (the
        # mount namespace stays the host's: /sys/fs/cgroup is needed).
        cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
               sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
        os.execvpe("unshare", cmd, dict(os.environ, BENCH_NETNS="1"))
    if args.quick:
        args.runs = 5
        args.churn = min(args.churn, 10)
    n_conc = 3 if args.quick else 50
    bin_dir = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="bn", dir="/tmp")
    tar = os.path.join(work, "rootfs.tar")
    busybox_rootfs(tar)
    benv = berth_env(work)
    modes = {}  # (engine, mode) -> (argv, env)
    versions = {}
    conc = {}  # engine -> (argv_for(i), env, cleanup argv prefix)
    cleanups = []
    results = {}
    try:
        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        run(berth + ["import", tar, "bench/busybox"], benv)
        versions["berth"] = version([berth[0], "--version"])
        base = berth + ["run", "--rm"]
        modes[("berth", "none")] = (base + ["--network", "none", "bench/busybox", "true"], benv)
        modes[("berth", "bridge")] = (base + ["bench/busybox", "true"], benv)
        modes[("berth", "bridge -p")] = (base + ["-p", "127.0.0.1::80", "bench/busybox", "true"], benv)
        run(berth + ["network", "create", "conc"], benv)
        conc["berth"] = (lambda i: berth + ["run", "-d", "--network", "conc", "bench/busybox", "sleep", "600"], benv, berth)
        cleanups.append(lambda: run(berth + ["network", "prune", "-f"], benv, check=False))

        if not args.no_peers and shutil.which("podman"):
            pconf = os.path.join(work, "containers.conf")
            with open(pconf, "w") as f:
                # Its networks' configs live in a directory of our own: by
                # default they are machine-wide (/etc/containers/networks).
                f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                        f'[network]\nnetwork_config_dir = "{work}/pnet"\n')
            penv = dict(os.environ, CONTAINERS_CONF=pconf)
            podman = ["podman", "--root", f"{work}/pr", "--runroot", f"{work}/prr", "--tmpdir", f"{work}/pt",
                      "--runtime", "runc"]
            run(podman + ["import", tar, "localhost/bench/busybox"], penv)
            versions["podman"] = version(["podman", "--version"])
            pbase = podman + ["run", "--rm"]
            img = "localhost/bench/busybox"
            modes[("podman", "none")] = (pbase + ["--network", "none", img, "true"], penv)
            modes[("podman", "bridge")] = (pbase + [img, "true"], penv)
            modes[("podman", "bridge -p")] = (pbase + ["-p", "127.0.0.1::80", img, "true"], penv)
            run(podman + ["network", "create", "conc"], penv)
            conc["podman"] = (lambda i: podman + ["run", "-d", "--network", "conc", img, "sleep", "600"], penv, podman)
            cleanups.append(lambda: run(podman + ["rm", "-af", "-t", "0"], penv, check=False))

        if not args.no_peers and Dockerd.available():
            # Its default bridge and iptables rules, inside our namespace.
            d = Dockerd(work, network=True)
            cleanups.append(d.stop)
            docker = d.argv
            run(docker + ["import", tar, "bench/busybox"])
            versions["docker"] = version(["docker", "--version"])
            dbase = docker + ["run", "--rm"]
            modes[("docker", "none")] = (dbase + ["--network", "none", "bench/busybox", "true"], None)
            modes[("docker", "bridge")] = (dbase + ["bench/busybox", "true"], None)
            modes[("docker", "bridge -p")] = (dbase + ["-p", "127.0.0.1::80", "bench/busybox", "true"], None)
            run(docker + ["network", "create", "conc"])
            conc["docker"] = (lambda i: docker + ["run", "-d", "--network", "conc", "bench/busybox", "sleep", "600"], None, docker)
            cleanups.insert(0, lambda: run(docker + ["rm", "-f"] + run(docker + ["ps", "-aq"]).split(), check=False))

        # Blocks of BLOCK runs of one engine and mode, the blocks
        # interleaved: a run pays for the kernel's teardown of the one
        # before it (namespaces and veths die asynchronously), so each
        # mode should mostly follow itself, as in a steady stream of runs.
        results = {k: [] for k in modes}
        for key, (argv, env) in modes.items():
            timed(argv, env)  # warm up
        for _ in range((args.runs + BLOCK - 1) // BLOCK):
            for key, (argv, env) in modes.items():
                for i in range(BLOCK + 1):
                    dt = timed(argv, env)
                    if i > 0:  # the first follows another mode
                        results[key].append(dt)
        totals = {}
        for name, (argv_for, env, cli) in conc.items():
            dt, ids = concurrent(argv_for, n_conc, env)
            totals[name] = dt
            run(cli + ["rm", "-f"] + ids, env, check=False)
        churn = churn_leftovers(berth, benv, work, args.churn) if args.churn else None
    finally:
        for c in cleanups:
            try:
                c()
            except Exception as e:  # keep cleaning
                print(f"cleanup: {e}", file=sys.stderr)
        subprocess.run(["sh", "-c", f"grep ' {work}' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l"],
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) * 1000 for k, v in results.items()}
    # The first quartile too: on a busy machine the median carries other
    # people's load, the lower quartile much less of it.
    p25 = {k: statistics.quantiles(v, n=4)[0] * 1000 for k, v in results.items()}
    lines = ["## Networking: what it adds to `run --rm IMAGE true`", ""]
    load = os.getloadavg()[0]
    lines.append(f"{args.runs} runs of each engine and mode, in interleaved blocks of {BLOCK} (load average {load:.1f} at the end), the same busybox image, private roots, all inside "
                 "one private network namespace (bridges, rules and dockerd included). `bridge` is each engine's default "
                 "network; `-p` publishes one port on 127.0.0.1 (docker with its default userland proxy). "
                 "See bench/network.py.")
    lines.append("")
    lines.append("| engine | version | none ms | bridge ms | bridge -p ms | network adds (median; p25) | -p adds (median; p25) |")
    lines.append("|---|---|---|---|---|---|---|")
    for e in versions:
        n, b, p = med[(e, "none")], med[(e, "bridge")], med[(e, "bridge -p")]
        n4, b4, p4 = p25[(e, "none")], p25[(e, "bridge")], p25[(e, "bridge -p")]
        lines.append(f"| {e} | {versions[e]} | {n:.1f} | {b:.1f} | {p:.1f} | {b - n:+.1f}; {b4 - n4:+.1f} ms "
                     f"| {p - b:+.1f}; {p4 - b4:+.1f} ms |")
    lines.append("")
    lines.append(f"{n_conc} containers started at once (`run -d`, one thread each) on one user network:")
    lines.append("")
    lines.append("| engine | total s | per container ms |")
    lines.append("|---|---|---|")
    for e, t in totals.items():
        lines.append(f"| {e} | {t:.2f} | {t * 1000 / n_conc:.0f} |")
    lines.append("")
    if churn:
        n, dt, left = churn
        lines.append(f"Teardown: after {n} berth `run --rm -p 127.0.0.1::80` (default bridge and a user network in turn, "
                     f"{dt / n * 1000:.0f} ms each), left behind: {left['interfaces']} interfaces, "
                     f"{left['namespaces']} network namespaces, {left['rules']} nftables rules, {left['leases']} leases.")
        lines.append("")
    if "berth" in versions:
        adds = med[("berth", "bridge")] - med[("berth", "none")]
        verdict = "met" if adds < 5 else "not met"
        lines.append(f"Target (networking issue): network setup adds under 5 ms per container: {verdict} "
                     f"(median {adds:+.1f} ms).")
    else:
        lines.append("Target (networking issue): network setup adds under 5 ms per container.")
    lines.append("")
    emit(lines, args.out, peers=list(versions), bin_dir=bin_dir,
         commands=[(f"{e}, {m}", argv) for (e, m), (argv, _) in modes.items()], work=work)


if __name__ == "__main__":
    main()
