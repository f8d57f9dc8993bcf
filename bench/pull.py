#!/usr/bin/env python3
"""`berth pull` against `docker pull` and `podman pull` of the same image
from a loopback distribution registry (Debian's docker-registry), with gzip
and with zstd layers; then `berth push` against `docker push` and `skopeo
copy` of it into an empty registry.

The image is common.py's Debian in layers, as a docker-archive (made once,
cached under /var/cache/berth-bench/). Every timed pull starts from an
empty cache: each engine removes the image and prunes its layers first.
The engines' stores live on common.Scratch's ext4. Runs are interleaved
(berth, docker, podman, berth, ...); medians are reported. The peers run
as common.py runs them (dockerd on its own socket and data root, stopped
afterwards)."""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import arguments, emit, Dockerd, Scratch, debian_archive, podman, quick_archive, timed, unmount_under, version


def run(argv, env=None):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.decode(errors='replace')}")
    return r.stdout.decode(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry serving a directory of its own on a loopback port."""

    def __init__(self, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        conf = os.path.join(self.dir, "config.yml")
        with open(conf, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n  delete:\n    enabled: true\n"
                    f"http:\n  addr: {self.host}\n")
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", conf], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    sys.exit(f"docker-registry did not start: {open(self.log.name).read()}")
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Berth:
    name = "berth"

    def __init__(self, bin_dir, work):
        self.bin = os.path.join(bin_dir, "berth")
        self.work = work
        self.version = version([self.bin, "--version"])

    def argv(self):
        return [self.bin, "--root", f"{self.work}/br", "--runroot", f"{self.work}/brr"]

    def clear(self, image):
        # As with the others: the image goes, and with it (rmi collects
        # them) its layers and blobs; prune makes sure.
        subprocess.run(self.argv() + ["rmi", "-f", image], capture_output=True)
        run(self.argv() + ["image", "prune", "-af"])

    def pull(self, image):
        return self.argv() + ["pull", "-q", image]

    def tag(self, src, dst):
        run(self.argv() + ["tag", src, dst])

    def push(self, image):
        return self.argv() + ["push", "-q", image]


class Docker:
    name = "docker"

    def __init__(self, dockerd):
        self.d = dockerd
        self.version = version(["docker", "--version"])

    def clear(self, image):
        subprocess.run(self.d.argv + ["rmi", "-f", image], capture_output=True)
        run(self.d.argv + ["image", "prune", "-af"])
        # With the containerd image store, blobs outlive the image.
        subprocess.run(self.d.argv + ["builder", "prune", "-af"], capture_output=True)

    def pull(self, image):
        return self.d.argv + ["pull", "-q", image]

    def tag(self, src, dst):
        run(self.d.argv + ["tag", src, dst])

    def push(self, image):
        return self.d.argv + ["push", "-q", image]


class Podman:
    name = "podman"

    def __init__(self, work):
        self.argv, self.env = podman(work)
        self.version = version(["podman", "--version"])

    def clear(self, image):
        subprocess.run(self.argv + ["rmi", "-f", image], capture_output=True, env=self.env)
        run(self.argv + ["image", "prune", "-af"], self.env)

    def pull(self, image):
        return self.argv + ["pull", "-q", "--tls-verify=false", image]


def median_table(title, results, versions, order):
    lines = [f"| {title} | version | median s | min s | max s | vs berth |", "|---|---|---|---|---|---|"]
    b = statistics.median(results["berth"]) if results.get("berth") else None
    for k in order:
        v = results.get(k)
        if not v:
            continue
        m = statistics.median(v)
        rel = f"{m / b:.2f}x" if b else ""
        lines.append(f"| {k} | {versions[k]} | {m:.2f} | {min(v):.2f} | {max(v):.2f} | {rel} |")
    return lines


def blob_sizes(host, repo):
    out = run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repo}"])
    m = json.loads(out)
    return [(l["mediaType"], l["size"]) for l in m["layers"]]


def main():
    ap = arguments(runs=5)
    ap.add_argument("--archive", help="docker-archive of the image to pull (default: the Debian one of common.py)")
    ap.add_argument("--engines", default="berth,docker,podman")
    ap.add_argument("--no-push", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs = 1
    if not args.archive:
        # --quick: the small image stands in for the Debian one (no
        # debootstrap, a fraction of the bytes).
        args.archive = quick_archive() if args.quick else debian_archive()
    wanted = args.engines.split(",")
    load = os.getloadavg()
    # The engines' stores live on a fresh journaled ext4 of their own (see
    # common.Scratch): every run here empties a store and fills it again.
    scratch = Scratch()
    # Short: podman's socket paths must fit in 108 bytes.
    work = tempfile.mkdtemp(prefix="w", dir=scratch.path)
    cleanups = []
    pulls = {}
    pushes = {}
    formats = {}
    notes = []
    try:
        reg = Registry(work, "reg")
        cleanups.append(reg.stop)
        for fmt in ("gzip", "zstd"):
            # Through an OCI layout: straight to the registry, skopeo's blob
            # cache would reuse the gzip blobs for the zstd image.
            layout = os.path.join(work, f"oci-{fmt}")
            run(["skopeo", "copy", "-q", "--dest-compress", "--dest-compress-format", fmt,
                 f"docker-archive:{args.archive}", f"oci:{layout}:debian"])
            run(["skopeo", "copy", "-q", "--preserve-digests", "--dest-tls-verify=false",
                 f"oci:{layout}:debian", f"docker://{reg.host}/bench/debian:{fmt}"])
            formats[fmt] = blob_sizes(reg.host, f"bench/debian:{fmt}")

        engines = []
        if "berth" in wanted:
            engines.append(Berth(os.path.abspath(args.bin), work))
        if "docker" in wanted and Dockerd.available():
            d = Dockerd(work)
            cleanups.append(d.stop)
            engines.append(Docker(d))
            driver = run(d.argv + ["info", "--format", "{{.Driver}}"]).strip()
            notes.append(f"docker's storage driver: {driver}")
        if "podman" in wanted and shutil.which("podman"):
            p = Podman(work)
            engines.append(p)
            cleanups.append(lambda: subprocess.run(p.argv + ["rmi", "-af"], env=p.env, capture_output=True))
        versions = {e.name: e.version for e in engines}

        for fmt in ("gzip", "zstd"):
            image = f"{reg.host}/bench/debian:{fmt}"
            res = {e.name: [] for e in engines}
            failed = set()
            for i in range(args.runs):
                for e in engines:
                    if e.name in failed:
                        continue
                    e.clear(image)
                    # The previous run's writes and this clear's deletes
                    # reach the disk before the clock starts.
                    os.sync()
                    try:
                        res[e.name].append(timed(e.pull(image), getattr(e, "env", None)))
                    except RuntimeError as err:
                        # docker of this version may refuse zstd layers: say so.
                        why = str(err).strip().splitlines()[-1].split(": ", 1)[-1]
                        notes.append(f"{e.name} cannot pull the {fmt} image: {why}")
                        res[e.name] = []
                        failed.add(e.name)
                print(f"pull {fmt} run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in res.items() if v),
                      file=sys.stderr)
            pulls[fmt] = res

        if not args.no_push:
            # Push the gzip image into a registry emptied before every run,
            # from a local store that holds it: berth's and docker's (pulled
            # above), and skopeo from an OCI layout (blobs as they are).
            gz = f"{reg.host}/bench/debian:gzip"
            oci = os.path.join(work, "oci-gzip")
            pushers = []
            for e in engines:
                if e.name in ("berth", "docker") and e.name in wanted:
                    e.clear(gz)
                    run(e.pull(gz), getattr(e, "env", None))
                    pushers.append(e)
            pushes = {e.name: [] for e in pushers}
            pushes["skopeo"] = []
            versions["skopeo"] = version(["skopeo", "--version"])
            for i in range(args.runs):
                for name in [e.name for e in pushers] + ["skopeo"]:
                    dst = Registry(work, f"push-{name}-{i}")
                    target = f"{dst.host}/bench/debian:gzip"
                    try:
                        if name == "skopeo":
                            argv = ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{oci}:debian",
                                    f"docker://{target}"]
                        else:
                            e = next(x for x in pushers if x.name == name)
                            e.tag(gz, target)
                            argv = e.push(target)
                        os.sync()
                        pushes[name].append(timed(argv))
                    finally:
                        dst.stop()
                        shutil.rmtree(dst.dir, ignore_errors=True)
                print(f"push run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in pushes.items() if v),
                      file=sys.stderr)
    finally:
        for c in reversed(cleanups):
            c()
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
        scratch.close()

    lines = ["## Registry: pull and push of a 4-layer Debian image", ""]
    total = {fmt: sum(s for _, s in v) for fmt, v in formats.items()}
    what = ("A debootstrap Debian (bookworm) in 4 layers, 237 MB unpacked, about 11,400 files"
            if not args.quick else "Quick run (`--quick`): the 20 MB busybox image of bench/images.py standing in for "
            "the Debian one (4 layers, 237 MB) of the full run")
    lines.append(
        f"{what} ({os.path.basename(args.archive)}), "
        f"pushed by skopeo to a loopback docker-registry with gzip layers ({total.get('gzip', 0) / 1e6:.0f} MB) and with zstd "
        f"layers ({total.get('zstd', 0) / 1e6:.0f} MB). Each pull starts from an empty cache (the image removed and the "
        f"engine's layers pruned). The engines' stores are on {scratch.kind}: on this host's "
        f"journal-less root filesystem, creating files soon after deleting many costs seconds of kernel time. "
        f"{args.runs} interleaved runs, medians. See bench/pull.py.")
    lines.append("")
    for fmt, res in pulls.items():
        lines += median_table(f"pull, {fmt} layers", res, versions, ["berth", "docker", "podman"])
        lines.append("")
    if pushes:
        lines.append("Push of the gzip image into an empty loopback registry (berth and docker from their stores, "
                     "skopeo from an OCI layout):")
        lines.append("")
        lines += median_table("push", pushes, versions, ["berth", "docker", "skopeo"])
        lines.append("")
    for fmt, res in pulls.items():
        others = [statistics.median(v) for k, v in res.items() if k != "berth" and v]
        if res.get("berth") and others:
            lines.append(f"- {fmt}: berth is {min(others) / statistics.median(res['berth']):.2f}x faster than the "
                         f"faster of the others (target: 1.5x).")
    for n in notes:
        lines.append(f"- {n}")
    lines.append(f"- load average (1 min) at the start and the end: {load[0]:.1f} and {os.getloadavg()[0]:.1f} on "
                 f"{os.cpu_count()} cores: the machine is shared with other engineers' builds.")
    lines.append("")
    emit(lines, args.out, peers=list(versions) + ["docker-registry"], bin_dir=args.bin,
         commands=[(f"{e.name}, pull", e.pull("REGISTRY/bench/debian:gzip")) for e in engines], work=work)


if __name__ == "__main__":
    main()
