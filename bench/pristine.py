#!/usr/bin/env python3
"""One pristine database per test: the suite of examples/pristine-db (50
tests, each in its own PostgreSQL container, all at once) with berth,
docker and podman, against the classic alternative (one database, reset
between tests, serially); the time until N containers all answer a query;
and the disk the image and 50 changed containers take.

The image is `berth build`t from examples/postgres (its setup.sh makes the
debootstrap base and fetches the .debs, cached under /var/cache/
berth-examples) and loaded into docker and podman from `berth save`. Every
engine runs on private roots under one temporary folder; dockerd on its own
socket; the containers are reached on the engines' own bridges. All of it
is removed afterwards."""

import argparse
import hashlib
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import common
import plot
from common import Dockerd, du, podman, unmount_under, version

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SUITE = os.path.join(REPO, "examples/pristine-db/suite.py")
SETUP = os.path.join(REPO, "examples/postgres/setup.sh")
CACHE = "/var/cache/berth-examples"
IMAGE = "pristine/postgres:15"
TESTS = 50
# What the image is made of: a full run keeps the image it built (`berth
# save`) under a name made from these, and --quick loads that instead of
# building it (two minutes here).
INPUTS = ["examples/postgres/Dockerfile", "examples/postgres/schema.sql", "examples/postgres/seed.sql",
          "examples/postgres/setup.sh"]


def built_archive():
    """Where the archive of the image built from today's INPUTS is kept."""
    h = hashlib.sha256()
    for p in INPUTS:
        h.update(open(os.path.join(REPO, p), "rb").read())
    return f"{CACHE}/pristine-postgres-{h.hexdigest()[:16]}.tar"


def venv_python():
    """A venv with the suite's requirements (psycopg from PyPI), kept in
    the cache."""
    venv = f"{CACHE}/venv"
    py = f"{venv}/bin/python"
    have = os.path.exists(py) and subprocess.run([py, "-c", "import psycopg"], capture_output=True).returncode == 0
    if not have:
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r", os.path.join(REPO, "examples/pristine-db/requirements.txt")],
                       check=True)
    return py


class Engine:
    def __init__(self, name, argv, env=None, network=""):
        self.name, self.argv, self.env, self.network = name, argv, env, network

    def suite_argv(self, py, *args):
        argv = [py, SUITE, "--engine", shlex.join(self.argv), "--image", IMAGE]
        if self.network:
            argv += ["--network", self.network]
        return argv + list(args)

    def suite(self, py, *args):
        """The suite's output; its failure is the benchmark's failure."""
        r = subprocess.run(self.suite_argv(py, *args), capture_output=True, text=True, env=self.env,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: suite {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout

    def timed_suite(self, py, *args):
        t0 = time.perf_counter()
        self.suite(py, *args)
        return time.perf_counter() - t0

    def ready(self, py, n):
        out = self.suite(py, "--ready", str(n))
        return float(re.search(r"ready in ([0-9.]+) s", out).group(1))


def disk(py, engine, store, tests):
    """The store with the image alone, and with `tests` containers that
    each made their test's change (measured while all are there)."""
    before = du(store)
    out = engine.suite(py, "--tests", str(tests), "--hold", f"du -sx -B1 {shlex.quote(store)}")
    during = int(re.search(r"^(\d+)\s", out, re.M).group(1))
    return before, during


def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--quick", action="store_true",
                    help=f"1 run, 5 tests, N = 2 and 5; the image loaded from the archive a full run keeps in {CACHE} "
                         "instead of built (skipped if there is none)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs of everything (medians)")
    ap.add_argument("--out")
    ap.add_argument("--svg", help="the plot of time to all-ready; its disk plot goes beside it (-disk.svg)")
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    tests = 5 if args.quick else TESTS
    sizes = [2, 5] if args.quick else [10, 25, 50]
    bin_dir = os.path.abspath(args.bin)
    kept = built_archive()
    if args.quick and not os.path.exists(kept):
        common.emit(["## One pristine database per test", "",
                     f"Not run by `--quick`: it loads the PostgreSQL image a full run (`make bench`) builds once and "
                     f"keeps in {kept}, and there is none yet (building it takes about two minutes here).", ""],
                    args.out)
        return
    py = venv_python()
    # The stores on a filesystem of their own (common.Scratch): loading
    # three copies of a 500 MB image and removing them afterwards on this
    # host's journal-less root filesystem takes minutes.
    scratch = common.Scratch()
    # Short, for podman's socket paths.
    work = tempfile.mkdtemp(prefix="p", dir=scratch.path)
    cleanups = []
    commands = []
    try:
        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        archive = f"{work}/pg.tar"
        build_s = None
        if args.quick:
            subprocess.run(berth + ["load", "-q", "-i", kept], check=True, stdout=subprocess.DEVNULL)
            archive = kept
        else:
            t0 = time.perf_counter()
            subprocess.run([SETUP], check=True,
                           env=dict(os.environ, BERTH=shlex.join(berth), IMAGE=IMAGE, CACHE=CACHE),
                           stdout=subprocess.DEVNULL)
            build_s = time.perf_counter() - t0
            subprocess.run(berth + ["save", "-o", archive, IMAGE], check=True)
            shutil.copyfile(archive, kept + ".tmp")
            os.rename(kept + ".tmp", kept)
            # Those of earlier inputs are of no more use.
            for f in os.listdir(CACHE):
                if f.startswith("pristine-postgres-") and os.path.join(CACHE, f) != kept:
                    os.unlink(os.path.join(CACHE, f))
        # Whatever a failed or interrupted run left running goes first.
        cleanups.append(lambda: subprocess.run(berth + ["rm", "-f"] + ps_all(berth), capture_output=True))
        cleanups.append(lambda: subprocess.run(berth + ["network", "rm", "pristine"], capture_output=True))
        # A network of its own, on a subnet of its own: the default
        # bridge (berth0, 10.87.0.0/24) is shared by every berth root on
        # this host, each with its own address leases.
        subprocess.run(berth + ["network", "create", "--subnet", "10.213.77.0/24", "pristine"], check=True,
                       stdout=subprocess.DEVNULL)
        engines = [Engine("berth", berth, network="pristine")]
        stores = {"berth": f"{work}/br"}
        versions = {"berth": version([berth[0], "--version"])}

        pm = podman(work)
        if pm:
            pod, env = pm
            subprocess.run(pod + ["load", "-q", "-i", archive], check=True, stdout=subprocess.DEVNULL, env=env)
            cleanups.append(lambda: subprocess.run(pod + ["rm", "-af"], env=env, capture_output=True))
            engines.append(Engine("podman", pod, env))
            stores["podman"] = f"{work}/pr"
            versions["podman"] = version(["podman", "--version"])

        if Dockerd.available():
            d = Dockerd(work)
            cleanups.append(d.stop)
            # This dockerd has no default bridge (common.Dockerd): the
            # containers go on a network of its own.
            subprocess.run(d.argv + ["network", "create", "pristine"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(d.argv + ["load", "-q", "-i", archive], check=True, stdout=subprocess.DEVNULL)
            cleanups.insert(0, lambda: subprocess.run(d.argv + ["network", "rm", "pristine"], capture_output=True))
            cleanups.insert(0, lambda: subprocess.run(d.argv + ["rm", "-f"] + ps_all(d.argv), capture_output=True))
            engines.append(Engine("docker", d.argv, network="pristine"))
            stores["docker"] = f"{work}/dd"
            versions["docker"] = version(["docker", "--version"])

        for e in engines:
            commands.append((f"{e.name}, the suite", e.suite_argv(py, "--tests", str(tests), "--mode", "pristine")))
        commands.append(("each container (suite.py's Engine.start)",
                         berth + ["run", "-d", "--name", "NAME", "--network", "pristine", IMAGE]))

        suite = {e.name: [] for e in engines}
        reset = {e.name: [] for e in engines}
        ready = {(e.name, n): [] for e in engines for n in sizes}
        # One container of each first, untimed: an engine's first on its
        # network sets the network up, and the image's files come into the
        # page cache.
        for e in engines:
            e.ready(py, 1)
        # The serial alternative for N tests, with berth: the line the
        # all-ready curves are drawn against.
        reset_n = {n: [] for n in sizes}
        for r in range(rounds):
            # Interleaved, the engine going first rotating.
            order = engines[r % len(engines):] + engines[:r % len(engines)]
            for e in order:
                suite[e.name].append(e.timed_suite(py, "--tests", str(tests), "--mode", "pristine"))
                reset[e.name].append(e.timed_suite(py, "--tests", str(tests), "--mode", "reset"))
                for n in sizes:
                    ready[(e.name, n)].append(e.ready(py, n))
                if e.name == "berth":
                    for n in sizes:
                        reset_n[n].append(reset["berth"][-1] if n == tests else
                                          e.timed_suite(py, "--tests", str(n), "--mode", "reset"))
                print(f"round {r + 1}/{rounds} {e.name}: suite {suite[e.name][-1]:.2f} s, reset {reset[e.name][-1]:.2f} s, "
                      + ", ".join(f"ready({n}) {ready[(e.name, n)][-1]:.2f} s" for n in sizes), flush=True)
        disks = {e.name: disk(py, e, stores[e.name], tests) for e in engines}
    finally:
        for c in cleanups:
            c()
        unmount_under(work)
        if scratch.dev is None:
            subprocess.run(["rm", "-rf", work])
        scratch.close()

    lines = report(engines, versions, rounds, build_s, suite, reset, ready, sizes, disks, tests)
    lines[2] += f" The engines' stores are on {scratch.kind}."
    if args.svg:
        lines += figures(args.svg, engines, ready, reset_n, sizes, disks, tests)
    common.emit(lines, args.out, peers=[e.name for e in engines], bin_dir=bin_dir, commands=commands, work=work)


def spread(xs):
    """Median, min and max; no whisker for a single run."""
    return (med(xs), min(xs), max(xs)) if len(xs) > 1 else (med(xs), None, None)


def figures(path, engines, ready, reset_n, sizes, disks, tests):
    """The all-ready plot at `path`, the disk plot beside it; their
    markdown."""
    series = [(e.name, [spread(ready[(e.name, n)]) for n in sizes], False) for e in engines]
    series.append(("serial reset: N tests, one database", [spread(reset_n[n]) for n in sizes], True))
    plot.lines(path, "N pristine PostgreSQL containers: time until all answer (median, min-max)", sizes, series,
               "N containers started at once", "seconds", note=common.figure_note("pristine.py"))
    disk_path = path[:-len(".svg")] + "-disk.svg" if path.endswith(".svg") else path + "-disk.svg"
    plot.panels(disk_path, f"Disk: the image once, plus {tests} changed containers", [
        ("store with the image", "MB", [(e.name, disks[e.name][0] / 1e6, None, None) for e in engines]),
        ("added per changed container", "MB", [(e.name, (disks[e.name][1] - disks[e.name][0]) / tests / 1e6, None, None)
                                               for e in engines]),
    ], note=common.figure_note("pristine.py"))
    return [f"![time until N pristine databases all answer]({os.path.basename(path)})", "",
            "The dashed line is the classic alternative with berth: one database container, the N tests one after "
            "another with a reset (truncate and reload) between, from its start to the last test's end.", "",
            f"![disk of the image and {tests} changed containers]({os.path.basename(disk_path)})", ""]


def ps_all(engine):
    return subprocess.run(engine + ["ps", "-aq"], capture_output=True, text=True).stdout.split()


def report(engines, versions, rounds, build_s, suite, reset, ready, sizes, disks, tests):
    names = [e.name for e in engines]
    load = os.getloadavg()[0]
    b = med(suite["berth"])
    out = [
        "## One pristine database per test",
        "",
        f"The suite of examples/pristine-db: {tests} tests, each in its own PostgreSQL 15 container (Debian's packages "
        "on a debootstrap bookworm base, schema and seed data loaded at build time by `berth build` of "
        "examples/postgres), all at once; each test checks it starts from the seed, changes the data and sees only "
        "its own change, then its container is removed. The alternative: one container for the whole suite, reset "
        "between tests (`TRUNCATE` every table, reload the seed), the tests one after another. The same image "
        "(`berth save`, then `docker load`/`podman load`) in every engine, private roots, containers reached on each "
        "engine's own bridge (berth and dockerd on a user network, podman on its default one; podman with `--runtime "
        f"runc`). Medians of {rounds} interleaved run{'s' if rounds > 1 else ''}; wall time of the whole suite "
        f"process. See bench/pristine.py. "
        + (f"`berth build` of the image (cold, .debs cached): {build_s:.1f} s. " if build_s is not None else
           f"Quick run (`--quick`): {tests} tests instead of {TESTS}, N = {', '.join(map(str, sizes))}, one run; the "
           "image not built but loaded from the archive the last full run kept (its build takes about two minutes). ")
        + f"Load average when the report was written: {load:.1f} on {os.cpu_count()} cores.",
        "",
        f"| engine | version | {tests} tests, a container each, in parallel s{' (min–max)' if rounds > 1 else ''} | "
        f"vs berth | {tests} tests, one database reset between, serially s |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        # The slowest round shows: a stall (see bench/notes/pristine.md)
        # is left out of the median but not hidden.
        rng = f" ({min(suite[n]):.2f}–{max(suite[n]):.2f})" if len(suite[n]) > 1 else ""
        out.append(f"| {n} | {versions[n]} | {med(suite[n]):.2f}{rng} | {med(suite[n]) / b:.2f}x | {med(reset[n]):.2f} |")
    rb = med(reset["berth"])
    out += [
        "",
        f"With berth, a pristine container per test runs the suite in {b:.2f} s and the serial reset in {rb:.2f} s "
        f"(reset time / pristine time: {rb / b:.2f}x).",
        "",
        "### Time until N containers all answer a query",
        "",
        "N `run -d` at once (one thread each), then each polled with a connection and `SELECT 1` until it answers; "
        "from the first `run` to the last answer.",
        "",
        "| engine | " + " | ".join(f"N={n} s" for n in sizes) + " | " + " | ".join(f"N={n} vs berth" for n in sizes) + " |",
        "|---|" + "---|" * (2 * len(sizes)),
    ]
    for n in names:
        vals = [med(ready[(n, k)]) for k in sizes]
        rel = [med(ready[(n, k)]) / med(ready[("berth", k)]) for k in sizes]
        out.append(f"| {n} | " + " | ".join(f"{v:.2f}" for v in vals) + " | " + " | ".join(f"{x:.2f}x" for x in rel) + " |")
    out += [
        "",
        "### Disk: the image once, plus each container's changes",
        "",
        f"`du -sx -B1` of each engine's whole store (blocks on disk, hard links once) with the image alone, and with "
        f"{tests} containers running that have each made their test's change (and a `CHECKPOINT`, so it is in the "
        "data files).",
        "",
        f"| engine | store with the image MB | with {tests} changed containers MB | added per container MB |",
        "|---|---|---|---|",
    ]
    for n in names:
        before, during = disks[n]
        out.append(f"| {n} | {before / 1e6:.1f} | {during / 1e6:.1f} | {(during - before) / tests / 1e6:.2f} |")
    out += [
        "",
        "berth's store keeps the image's compressed layer blobs beside the unpacked layers (as `berth save` and "
        "`push` need them); docker's and podman's keep only the unpacked layers once loaded.",
        "",
    ]
    return out


if __name__ == "__main__":
    main()
