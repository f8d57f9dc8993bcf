#!/usr/bin/env python3
"""Images: `berth load` against `docker load` and `podman load` of one
docker-archive (a debootstrap Debian of about 200 MB in several layers),
the disk taken by many containers created from it, and `berth commit` of
a 1 MB change on that image and on a 20 MB one.

The Debian tree and the archives are cached under /var/cache/berth-bench
(debootstrap runs once); each engine runs on private roots, dockerd on its
own socket, all stopped and removed afterwards."""

import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time

from common import (arguments, emit, DEBIAN, INCLUDE, SMALL, SUITE, Dockerd, Scratch, cached, debian_archive, du, make_small,
                    podman, quick_archive, timed, unmount_under, version)

BIG = DEBIAN


def layer_sizes(archive):
    with tarfile.open(archive) as t:
        return [m.size for m in t.getmembers() if m.name.endswith("/layer.tar")]


def mb(n):
    return f"{n / 1e6:.1f}"


def settle():
    """Lets the previous run's writes reach the disk so they are not billed
    to the next engine."""
    os.sync()


class Engine:
    def __init__(self, name, argv, env, ver, tags, root):
        self.name, self.argv, self.env, self.version, self.root = name, argv, env, ver, root
        self.tags = tags  # image name as this engine lists it, by our name

    def run(self, *args, check=True):
        return subprocess.run(self.argv + list(args), env=self.env, capture_output=True, check=check,
                              stdin=subprocess.DEVNULL)

    def timed(self, *args):
        return timed(self.argv + list(args), self.env)


def engines_in(d, bin_dir, peers):
    """berth and the peers, each on fresh roots under `d`; and what stops
    them."""
    os.makedirs(d)
    berth_argv = [os.path.join(bin_dir, "berth"), "--root", f"{d}/br", "--runroot", f"{d}/brr"]
    engines = [Engine("berth", berth_argv, None, version([berth_argv[0], "--version"]), {BIG: BIG, SMALL: SMALL}, f"{d}/br")]
    cleanups = []
    if "docker" in peers and Dockerd.available():
        dockerd = Dockerd(d)
        cleanups.append(dockerd.stop)
        engines.append(Engine("docker", dockerd.argv, None, version(["docker", "--version"]), {BIG: BIG, SMALL: SMALL}, f"{d}/dd"))
    pm = podman(d) if "podman" in peers else None
    if pm:
        # podman names an archive's `bench/x` as `localhost/bench/x`.
        tags = {t: f"localhost/{t}" for t in (BIG, SMALL)}
        engines.append(Engine("podman", pm[0], pm[1], version(["podman", "--version"]), tags, f"{d}/pr"))
    return engines, cleanups


def bench_load(work, bin_dir, peers, archive, runs):
    """Each round loads into fresh stores (a new dockerd too), engines
    taking turns to go first, the disk synced before each. Returns the
    times and the last round's engines, still holding the image."""
    res = {}
    for i in range(runs):
        engines, cleanups = engines_in(f"{work}/r{i}", bin_dir, peers)
        order = engines[i % len(engines):] + engines[:i % len(engines)]
        for e in order:
            settle()
            res.setdefault(e.name, []).append(e.timed("load", "-i", archive))
        if i + 1 < runs:
            for c in cleanups:
                c()
    return res, engines, cleanups


def bench_commit(engines, images, runs):
    """`commit` of a container that wrote 1 MB, per engine and image; the
    images take turns, so a change in the machine's load hits both."""
    res = {(e.name, img): [] for e in engines for img in images}
    for e in engines:
        for i in range(runs):
            for img in images:
                name = f"cm{i}"
                e.run("rm", "-f", name, check=False)
                e.run("run", "--name", name, "--network", "none", e.tags[img], "sh", "-c",
                      "head -c 1048576 /dev/urandom > /change.bin")
                settle()
                res[(e.name, img)].append(e.timed("commit", name, f"bench/commit:{i}"))
                e.run("rm", "-f", name, check=False)
                e.run("rmi", f"bench/commit:{i}", check=False)
    return res


def bench_disk(berth, root, count):
    """Creates `count` containers from the big image; the store's disk
    before, with them, and after they are removed."""
    before = du(root)
    t0 = time.perf_counter()
    for i in range(count):
        berth.run("create", "--network", "none", "--name", f"d{i}", berth.tags[BIG], "true")
    created = time.perf_counter() - t0
    with_them = du(root)
    df = [json.loads(l) for l in berth.run("system", "df", "--format", "{{json .}}").stdout.decode().splitlines() if l.strip()]
    t0 = time.perf_counter()
    berth.run("container", "prune", "-f")
    removed = time.perf_counter() - t0
    after = du(root)
    return {"before": before, "with": with_them, "after": after, "df": df, "count": count,
            "create_s": created, "prune_s": removed}


def main():
    ap = arguments(runs=5)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--peers", default="docker,podman", help="comma-separated peers to run beside berth")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.containers = 1, 20
    bin_dir = os.path.abspath(args.bin)
    # --quick: the small image stands in for the Debian one (no
    # debootstrap; it loads in a fraction of the time).
    big = quick_archive() if args.quick else debian_archive()
    small = cached("small", make_small)
    sizes = layer_sizes(big)

    load_avg = os.getloadavg()[0]
    scratch = Scratch()
    # Short, for podman's socket paths.
    work = tempfile.mkdtemp(prefix="w", dir=scratch.path)
    cleanups = []
    try:
        load, engines, cleanups = bench_load(work, bin_dir, args.peers, big, args.runs)
        for k, v in load.items():
            print("load", k, " ".join(f"{x:.2f}" for x in v), flush=True)
        berth = engines[0]
        disk = bench_disk(berth, berth.root, args.containers)
        disk["peers"] = {e.name: du(e.root) for e in engines[1:]}
        for e in engines:
            e.run("load", "-i", small)
        commit = bench_commit(engines, [BIG, SMALL], 2 * args.runs + 1)
    finally:
        for c in cleanups:
            c()
        unmount_under(work)
        if scratch.dev is None:
            shutil.rmtree(work, ignore_errors=True)
        scratch.close()

    text = report(args, scratch, engines, big, sizes, load, commit, disk, load_avg)
    emit([text], args.out, peers=[e.name for e in engines], bin_dir=bin_dir,
         commands=[(f"{e.name}, load", e.argv + ["load", "-i", big]) for e in engines], work=work)


def report(args, scratch, engines, big, sizes, load, commit, disk, load_avg):
    total = sum(sizes)
    lines = ["## Images: `load`, the disk of many containers, `commit`", ""]
    if args.quick:
        lines.append(f"Quick run (`--quick`): the 20 MB busybox image stands in for the Debian one of the full run, "
                     f"{mb(total)} MB in {len(sizes)} layer; {args.runs} rounds, {args.containers} containers. "
                     "See bench/images.py. ")
    else:
        lines.append(f"The image: a debootstrap Debian {SUITE} (minbase with {INCLUDE.replace(',', ', ')}; apt's caches "
                     f"removed), {mb(total)} MB in {len(sizes)} uncompressed layers split by directory "
                     f"({', '.join(mb(s) for s in sizes)} MB), written once as a docker-archive. See bench/images.py. ")
    lines[-1] += (f"The machine's load average when the run began: {load_avg:.1f} on {os.cpu_count()} cores "
                  "(other work running beside it makes every figure noisier).")
    lines.append("")
    lines.append("### `load -i` of the archive")
    lines.append("")
    lines.append(f"{args.runs} rounds; in each, every engine loads into fresh private roots (a new dockerd per round), "
                 "the engine going first rotates, and the disk is synced before each load. podman with its overlay driver, "
                 f"dockerd with overlay2. All stores on {scratch.kind}: this host's root ext4 has no journal, and there "
                 "creating files soon after anyone deleted many nearby is dominated by the inode allocator skipping the "
                 "recently deleted ones (see Scratch in bench/images.py).")
    lines.append("")
    lines.append("| engine | version | median s | min s | max s | MB/s | time vs berth |")
    lines.append("|---|---|---|---|---|---|---|")
    med = {k: statistics.median(v) for k, v in load.items()}
    b = med["berth"]
    for e in engines:
        v = load[e.name]
        lines.append(f"| {e.name} | {e.version} | {med[e.name]:.2f} | {min(v):.2f} | {max(v):.2f} | "
                     f"{total / 1e6 / med[e.name]:.0f} | {med[e.name] / b:.2f}x |")
    peers = [med[k] for k in med if k != "berth"]
    lines.append("")
    if peers:
        best = min(peers)
        met = "met" if best / b >= 1.5 else "not met"
        lines.append(f"Target (images issue): at least 1.5x faster than the faster of docker and podman: {met} in this run "
                     f"({best / b:.2f}x).")
        lines.append("")
        lines.append("How berth gets there (crates/image/src/archive/load.rs, store/unpack.rs): each layer is unpacked on "
                     "worker threads as soon as its blob is written, while the archive is still being read; blob commits "
                     "(an fdatasync each) run on their own thread; an uncompressed layer is not hashed twice (its blob "
                     "digest is its diff id); no fsync per unpacked file.")
    lines.append("")

    lines.append(f"### Disk of {disk['count']} containers")
    lines.append("")
    lines.append(f"`berth create --network none` {disk['count']} times from the image above (not started), then "
                 "`du -sx -B1` of the whole store root (blocks on disk, hardlinks once) and `berth system df`.")
    lines.append("")
    grown = disk["with"] - disk["before"]
    lines.append("| | bytes | MB |")
    lines.append("|---|---|---|")
    lines.append(f"| store with the image alone | {disk['before']} | {mb(disk['before'])} |")
    lines.append(f"| store with the image and {disk['count']} containers | {disk['with']} | {mb(disk['with'])} |")
    lines.append(f"| added by the containers | {grown} | {mb(grown)} |")
    lines.append(f"| added per container | {grown // disk['count']} | {grown / disk['count'] / 1e6:.3f} |")
    lines.append(f"| store after `container prune` | {disk['after']} | {mb(disk['after'])} |")
    for k, v in disk["peers"].items():
        lines.append(f"| for comparison: {k}'s store with the image alone | {v} | {mb(v)} |")
    lines.append("")
    lines.append("`berth system df` with the containers:")
    lines.append("")
    lines.append("| type | total | active | size | reclaimable |")
    lines.append("|---|---|---|---|---|")
    for r in disk["df"]:
        lines.append(f"| {r.get('Type')} | {r.get('TotalCount')} | {r.get('Active')} | {r.get('Size')} | {r.get('Reclaimable')} |")
    lines.append("")
    lines.append(f"Creating them took {disk['create_s']:.1f} s ({disk['create_s'] / disk['count'] * 1000:.0f} ms each), "
                 f"removing them {disk['prune_s']:.1f} s. The store holds the image twice, as the archive's layer blobs "
                 "(kept for `save` and `push`) and unpacked once by chain id; each container adds only its own "
                 "empty upper and work directories and its record.")
    lines.append("")

    lines.append("### `commit` of a 1 MB change")
    lines.append("")
    rounds = len(commit[("berth", BIG)])
    lines.append(f"A container runs `head -c 1048576 /dev/urandom > /change.bin` and exits; the disk is synced, then "
                 f"`commit` is timed. {rounds} rounds per engine and image: median seconds (min–max).")
    lines.append("")
    lines.append(f"| engine | on the {mb(total)} MB image | on a 20 MB image (busybox and 18 MB of data) | vs berth ({mb(total)} MB image) |")
    lines.append("|---|---|---|---|")
    cb = statistics.median(commit[("berth", BIG)])
    spread = lambda v: f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})"
    for e in engines:
        big_s = statistics.median(commit[(e.name, BIG)])
        lines.append(f"| {e.name} | {spread(commit[(e.name, BIG)])} | {spread(commit[(e.name, SMALL)])} | {big_s / cb:.2f}x |")
    lines.append("")
    lines.append("Target (images issue): the cost of `commit` grows with the change, not with the image: "
                 "compare berth's two columns (berth's commit walks only the container's upper directory).")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
