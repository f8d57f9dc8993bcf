#!/usr/bin/env python3
"""`berth run --rm --network none IMG true` against podman and docker doing
the same with the same image (a busybox-static rootfs imported into each),
interleaved, medians. Each engine runs on private roots; dockerd is
started here on its own socket and stopped afterwards (see common.py)."""

import os
import statistics
import tempfile

import common


def main():
    ap = common.arguments(runs=30)
    args = ap.parse_args()
    if args.quick:
        args.runs = 5
    work = tempfile.mkdtemp(prefix="bb", dir="/tmp")
    engines = {}
    loads = [common.load()]
    try:
        engines = common.engines(work, os.path.abspath(args.bin))
        results = {k: [] for k in engines}
        for i in range(args.runs + 2):
            for name, e in engines.items():
                dt = e.timed(["run", "--rm", "--network", "none", e.image, "true"])
                if i >= 2:
                    results[name].append(dt)
        # berth alone, run after run: no peer's daemon work or idle pause in
        # between (on a VM an idle vCPU wakes slowly at every hand-off).
        alone = []
        e = engines["berth"]
        for i in range(args.runs + 2):
            dt = e.timed(["run", "--rm", "--network", "none", e.image, "true"])
            if i >= 2:
                alone.append(dt)
        loads.append(common.load())
    finally:
        common.teardown(work, engines)

    med = {k: statistics.median(v) * 1000 for k, v in results.items()}
    b = med["berth"]
    lines = ["## Containers: `run --rm --network none IMAGE true`", ""]
    lines.append(f"{args.runs} interleaved runs each, the same busybox image imported into each engine, private roots "
                 "(podman with `--runtime runc`, as crun refuses this hybrid-cgroup host; dockerd with its default runc). "
                 f"Load average {loads[0]} before, {loads[-1]} after. See bench/containers.py.")
    lines.append("")
    lines.append("| engine | version | median ms | p10 ms | p90 ms | time vs berth |")
    lines.append("|---|---|---|---|---|---|")
    for k, v in results.items():
        q = statistics.quantiles(v, n=10) if len(v) >= 10 else [min(v)] * 8 + [max(v)]
        lines.append(f"| {k} | {engines[k].version} | {med[k]:.1f} | {q[0]*1000:.1f} | {q[-1]*1000:.1f} | {med[k]/b:.1f}x |")
    lines.append("")
    lines.append(f"berth alone, {args.runs} runs back to back (no podman or docker run in between): median "
                 f"{statistics.median(alone) * 1000:.1f} ms, p10 {statistics.quantiles(alone, n=10)[0] * 1000:.1f} ms.")
    lines.append("")
    verdict = []
    for peer, want in (("podman", 15), ("docker", 40)):
        if peer in med:
            got = med[peer] / b
            verdict.append(f"{want}x faster than {peer}: {'met' if got >= want else 'not met'} ({got:.1f}x)")
    lines.append("Targets (containers issue): " + "; ".join(verdict) + ".")
    lines.append("")
    common.emit(lines, args.out, peers=list(engines), bin_dir=args.bin,
                commands=[(k, e.argv + ["run", "--rm", "--network", "none", e.image, "true"]) for k, e in engines.items()],
                work=work)


if __name__ == "__main__":
    main()
