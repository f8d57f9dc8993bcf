#!/usr/bin/env python3
"""`berth run --rm --network none IMG true` against podman and docker doing
the same with the same image (a busybox-static rootfs imported into each),
interleaved, medians. Each engine runs on private roots; dockerd is
started here on its own socket and stopped afterwards (see common.py).

Beside them runs the floor (bench/floor.c): the kernel work docker's
isolation of that container takes, by one process in a straight line,
with nothing an engine adds. No engine that gives the same isolation
goes under it without doing the work before it is asked for."""

import os
import statistics
import tempfile

import common

def rounds(engines, runs):
    """`runs` interleaved runs of each engine (after two of warm-up), then
    berth alone, run after run: no peer's daemon work or idle pause in
    between (on a VM an idle vCPU wakes slowly at every hand-off)."""
    results = {k: [] for k in engines}
    for i in range(runs + 2):
        for name, e in engines.items():
            dt = e.timed(["run", "--rm", "--network", "none", e.image, "true"])
            if i >= 2:
                results[name].append(dt)
    alone = {}
    for name in ("berth", "floor"):
        e = engines[name]
        alone[name] = []
        for i in range(runs + 2):
            dt = e.timed(["run", "--rm", "--network", "none", e.image, "true"])
            if i >= 2:
                alone[name].append(dt)
    return results, alone


def table(engines, results, alone, runs):
    med = {k: statistics.median(v) * 1000 for k, v in results.items()}
    b = med["berth"]
    lines = ["| engine | version | median ms | p10 ms | p90 ms | time vs berth |", "|---|---|---|---|---|---|"]
    for k, v in results.items():
        q = statistics.quantiles(v, n=10) if len(v) >= 10 else [min(v)] * 8 + [max(v)]
        lines.append(f"| {k} | {engines[k].version} | {med[k]:.1f} | {q[0]*1000:.1f} | {q[-1]*1000:.1f} | {med[k]/b:.1f}x |")
    lines.append("")
    for name, v in alone.items():
        q = statistics.quantiles(v, n=10) if len(v) >= 10 else [min(v)]
        lines.append(f"{name} alone, {runs} runs back to back (no podman or docker run in between): median "
                     f"{statistics.median(v) * 1000:.1f} ms, p10 {q[0] * 1000:.1f} ms.")
        lines.append("")
    verdict = []
    floor = []
    for peer, want in (("podman", 15), ("docker", 40)):
        if peer in med:
            got = med[peer] / b
            verdict.append(f"{want}x faster than {peer}: {'met' if got >= want else 'not met'} ({got:.1f}x)")
            floor.append(f"{want}x {peer} is {med[peer] / want:.1f} ms ({med[peer] / want / med['floor']:.2f}x "
                         "the floor's time)")
    lines.append("Targets (containers issue): " + "; ".join(verdict) + ".")
    lines.append("")
    lines.append(f"The floor took {med['floor']:.1f} ms interleaved, berth {b / med['floor']:.2f}x that: "
                 + "; ".join(floor) + ".")
    lines.append("")
    return lines


def main():
    ap = common.arguments(runs=30)
    args = ap.parse_args()
    if args.quick:
        args.runs = 5
    work = tempfile.mkdtemp(prefix="bb", dir="/tmp")
    engines = {}
    loads = [common.load()]
    # The second pass has berth put the kernel's favordynmods on the
    # cgroup2 mount (berth.toml [cgroups]); the peers run beside it on the
    # same kernel. The host is given back as it was.
    was_on = common.favordynmods_on()
    try:
        engines = common.engines(work, os.path.abspath(args.bin))
        b = engines["berth"]
        engines["floor"] = common.Floor(work, os.path.join(work, "rootfs.tar"), b.argv, b.image, b.env)
        default = rounds(engines, args.runs)
        loads.append(common.load())
        conf = os.path.join(work, "berth-tuned.toml")
        with open(conf, "w") as f:
            f.write("[cgroups]\nfavordynmods = true\n")
        engines["berth"].env = dict(os.environ, BERTH_CONFIG=conf)
        tuned = rounds(engines, args.runs)
        loads.append(common.load())
    finally:
        if not was_on:
            common.favordynmods_off()
        common.teardown(work, engines)

    lines = ["## Containers: `run --rm --network none IMAGE true`", ""]
    lines.append(f"{args.runs} interleaved runs each, the same busybox image imported into each engine, private roots "
                 "(podman with `--runtime runc`, as crun refuses this hybrid-cgroup host; dockerd with its default runc). "
                 "The floor is bench/floor.c: the kernel work of docker's isolation of this container (its root on "
                 "overlay, cgroups in every hierarchy with runc's device rules, the five namespaces with loopback up, "
                 "runc's mounts, masked and read-only paths and /etc files, pivot_root, docker's seccomp profile and "
                 "capabilities, exec, wait, teardown), by one process in a straight line, with no store, record, log, "
                 "monitor or API. "
                 f"Load average {loads[0]} before, {loads[1]} between the two passes, {loads[-1]} after. "
                 "See bench/containers.py.")
    lines.append("")
    lines.append("### The host as it is" + (" (it already had `favordynmods`)" if was_on else ""))
    lines.append("")
    lines += table(engines, *default, args.runs)
    lines.append("### With `favordynmods` on the cgroup2 mount")
    lines.append("")
    lines.append("berth.toml `[cgroups] favordynmods = true`: berth's first start reconfigures the host's cgroup2 mount "
                 "with the kernel's `favordynmods`, and moving a container's init into its cgroups stops waiting for an "
                 "RCU grace period (every start on a v1 or hybrid host moves it; see crates/runtime/src/cgroups). "
                 "The setting is the kernel's: podman and docker below run on the same kernel, with it on too. "
                 + ("It was on before the bench." if was_on else "The bench takes it off again at the end."))
    lines.append("")
    lines += table(engines, *tuned, args.runs)
    common.emit(lines, args.out, peers=list(engines), bin_dir=args.bin,
                commands=[(k, e.shown() if k == "floor" else e.argv + ["run", "--rm", "--network", "none", e.image, "true"])
                          for k, e in engines.items()],
                work=work)


if __name__ == "__main__":
    main()
