"""What the bench scripts share: the peers as they run them (dockerd on
its own socket and data root, podman on private roots with the limits this
host needs; see shared PEERS.md), a busybox root filesystem, the Debian
image in layers (made once, cached), a scratch filesystem for the stores,
and the small helpers they time with."""

import argparse
import glob
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time


def arguments(runs=None, plot=False):
    """The options bench/run gives every bench: where berth's binaries are,
    quick mode, the report (and the plot); `runs`, when given, is the
    default number of timed runs. Each bench adds its own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release")
    if runs is not None:
        ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    if plot:
        ap.add_argument("--svg")
    return ap

def busybox_rootfs(path, extra=None):
    """A tar at `path` of a busybox-static root filesystem with its applets
    linked; `extra(root)` may add files before it is packed."""
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
    if extra:
        extra(root)
    subprocess.run(["tar", "-C", root, "-cf", path, "."], check=True)
    shutil.rmtree(root)


def berth_env(work):
    """The environment for berth with a config under `work` whose
    resolv.conf, the one berth's DNS servers and default-bridge
    containers take as the host's, names loopback only: nothing a
    benchmark starts can send a query outside."""
    resolv = os.path.join(work, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\n")
    conf = os.path.join(work, "berth.toml")
    with open(conf, "w") as f:
        f.write(f'[network]\nresolv_conf = "{resolv}"\n')
    return dict(os.environ, BERTH_CONFIG=conf)


def cgroup2_mount():
    """(mount point, superblock options) of the host's cgroup2 mount, or
    None on a cgroup v1 only host."""
    best = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, fs = pre.split(), post.split()
            if fs[0] == "cgroup2" and fields[3] == "/":
                if best is None or fields[4].count("/") < best[0].count("/"):
                    best = (fields[4], [o for o in fs[2].split(",") if o not in ("rw", "ro")])
    return best


def favordynmods_on():
    with open("/proc/self/mountinfo") as f:
        return any("favordynmods" in line.partition(" - ")[2].split()[2].split(",")
                   for line in f if " - cgroup" in line)


def favordynmods_off():
    """Takes the kernel's `favordynmods` off the cgroup2 mount again (a
    benchmark that had berth set it restores the host so): fspick and
    fsconfig, as berth sets it, with the mount's other options given
    again, since a reconfigure resets those it is not given."""
    import ctypes
    m = cgroup2_mount()
    if m is None or "favordynmods" not in m[1]:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    SYS_fsconfig, SYS_fspick = 431, 433  # x86_64 and aarch64 alike
    fd = libc.syscall(SYS_fspick, -100, m[0].encode(), 1)  # AT_FDCWD, FSPICK_CLOEXEC
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"fspick {m[0]}")
    try:
        for o in m[1]:
            if o != "favordynmods" and libc.syscall(SYS_fsconfig, fd, 0, o.encode(), None, 0) < 0:
                raise OSError(ctypes.get_errno(), f"fsconfig {o}")
        if libc.syscall(SYS_fsconfig, fd, 7, None, None, 0) < 0:  # FSCONFIG_CMD_RECONFIGURE
            raise OSError(ctypes.get_errno(), f"reconfiguring {m[0]}")
    finally:
        os.close(fd)


def timed(argv, env=None):
    """Wall time of one command; its failure is the benchmark's failure."""
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


def podman(work):
    """podman's argv and environment with roots under `work` (keep it
    short: podman's attach socket path must fit in 108 bytes), or None."""
    if not shutil.which("podman"):
        return None
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    env = dict(os.environ, CONTAINERS_CONF=conf)
    argv = ["podman", "--root", f"{work}/pr", "--runroot", f"{work}/prr", "--tmpdir", f"{work}/pt", "--runtime", "runc"]
    return argv, env


class Daemon:
    """A daemon of ours (`argv`, in `env`), logging to `log`, ready once its
    client `client` + `probe` succeeds; stopped by `stop`. The bench exits if it
    does not come up in `timeout` seconds."""

    def __init__(self, name, argv, client, probe, log, timeout=60, interval=0.3, env=None):
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, env=env)
        self.argv = client
        deadline = time.time() + timeout
        while subprocess.run(client + probe, capture_output=True).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                # The log goes with the bench's folder: its end, here.
                tail = "".join(open(log, errors="replace").readlines()[-20:])
                sys.exit(f"{name} did not start; the end of its log ({log}):\n{tail}")
            time.sleep(interval)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Dockerd(Daemon):
    """A dockerd of our own (socket, data and exec roots under `work`).
    Without `network` it makes no bridge and no iptables rules; with it,
    its default bridge and rules (for a bench inside a network namespace
    of its own)."""

    def __init__(self, work, network=False):
        self.sock = f"{work}/d.sock"
        flags = [] if network else ["--bridge=none", "--iptables=false", "--ip6tables=false"]
        super().__init__(
            "dockerd",
            ["dockerd", "--data-root", f"{work}/dd", "--exec-root", f"{work}/de", "--pidfile", f"{work}/d.pid",
             "-H", f"unix://{self.sock}"] + flags,
            ["docker", "-H", f"unix://{self.sock}"], ["info"], f"{work}/dockerd.log")

    @staticmethod
    def available():
        return shutil.which("dockerd") is not None


def du(path):
    """Bytes on disk under `path` (blocks, hard links once, this
    filesystem only: not the containers' mounted root filesystems)."""
    out = subprocess.run(["du", "-sx", "-B1", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def unmount_under(work):
    """Lazily unmounts whatever the engines left mounted under `work`."""
    subprocess.run(["sh", "-c", f"grep ' {work}' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l"],
                   capture_output=True)


IMAGE = "bench/busybox"


class Engine:
    """One engine's command line (`argv` + `env`) with the bench image
    imported as `image`, its version, and how it is stopped."""

    def __init__(self, name, argv, image, env=None, ver="?", stop=None, root=None):
        self.name = name
        self.root = root  # its store (data root)
        self.argv = argv
        self.image = image
        self.env = env
        self.version = ver
        self.stop = stop or (lambda: None)

    def run(self, args, **kw):
        return subprocess.run(self.argv + args, env=self.env, **kw)

    def timed(self, args):
        """Wall time of one `args` of this engine (see `timed`)."""
        return timed(self.argv + args, self.env)


class Floor:
    """bench/floor.c, built here, on the bench image's root and berth's
    compiled default seccomp profile; timed as the engines are."""

    name = "floor"
    version = "bench/floor.c"
    image = "(a directory)"

    def __init__(self, work, tar, berth, image, env=None):
        self.work = os.path.join(work, "floor")
        os.makedirs(self.work)
        self.bin = os.path.join(self.work, "floor")
        src = os.path.join(REPO, "bench", "floor.c")
        # Static when the C library allows it: the engines' CLIs pay their
        # loader, but the floor is the kernel's part only.
        if subprocess.run(["cc", "-O2", "-static", "-o", self.bin, src]).returncode != 0:
            subprocess.run(["cc", "-O2", "-o", self.bin, src], check=True)
        self.lower = os.path.join(self.work, "image")
        os.makedirs(self.lower)
        with tarfile.open(tar) as t:
            t.extractall(self.lower)
        # The mount points and /etc files the engines' init layers give.
        self.init = os.path.join(self.work, "init")
        for d in ("proc", "dev", "sys", "etc"):
            os.makedirs(os.path.join(self.init, d))
        for f in ("hosts", "hostname", "resolv.conf"):
            open(os.path.join(self.init, "etc", f), "w").close()
        # docker's default profile as berth compiled it for its first run
        # (its cache: a flags byte, then the BPF program).
        timed(berth + ["run", "--rm", "--network", "none", image, "true"], env)
        cached = glob.glob(os.path.join(berth[berth.index("--runroot") + 1], "runtime", ".seccomp", "*"))
        if len(cached) != 1:
            raise RuntimeError(f"floor: expected berth's one compiled seccomp profile, found {cached}")
        self.seccomp = os.path.join(self.work, "seccomp.bpf")
        with open(cached[0], "rb") as f, open(self.seccomp, "wb") as out:
            out.write(f.read()[1:])
        self.n = 0
        # "{i}": each run's own directory, as bench/latency.py numbers rounds.
        self.argv = [self.bin, self.lower, self.init, self.seccomp, os.path.join(self.work, "run-{i}")]

    def timed(self, _args):
        """One run, as Engine.timed (the engine's arguments mean nothing here)."""
        self.n += 1
        return timed([a.replace("{i}", str(self.n)) for a in self.argv])

    def shown(self):
        return [a.replace("{i}", "N") for a in self.argv]

    def stop(self):
        pass


def engines(work, bin_dir, want=("berth", "podman", "docker")):
    """The engines of `want` this host has, on roots under `work`, each
    with the busybox root imported as IMAGE; stop them with teardown()."""
    tar = os.path.join(work, "rootfs.tar")
    if not os.path.exists(tar):
        busybox_rootfs(tar)
    found = {}
    if "berth" in want:
        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        subprocess.run(berth + ["import", tar, IMAGE], check=True, stdout=subprocess.DEVNULL)
        found["berth"] = Engine("berth", berth, IMAGE, ver=version([berth[0], "--version"]), root=f"{work}/br")
    pm = podman(work) if "podman" in want else None
    if pm:
        pod, env = pm
        subprocess.run(pod + ["import", "-q", tar, "localhost/" + IMAGE], check=True, stdout=subprocess.DEVNULL,
                       env=env)
        found["podman"] = Engine(
            "podman", pod, "localhost/" + IMAGE, env=env, ver=version(["podman", "--version"]),
            stop=lambda: subprocess.run(pod + ["rmi", "-af"], env=env, capture_output=True), root=f"{work}/pr")
    if "docker" in want and Dockerd.available():
        d = Dockerd(work)
        subprocess.run(d.argv + ["import", tar, IMAGE], check=True, stdout=subprocess.DEVNULL)
        found["docker"] = Engine("docker", d.argv, IMAGE, ver=version(["docker", "--version"]), stop=d.stop,
                                 root=f"{work}/dd")
    return found


def teardown(work, engines):
    for e in engines.values():
        e.stop()
    unmount_under(work)
    shutil.rmtree(work, ignore_errors=True)


def load():
    """The load average now, for the record: the machine is shared."""
    return open("/proc/loadavg").read().split()[0]


# When this bench began: the date and load its report gives.
STARTED = time.gmtime()
START_LOAD = os.getloadavg()[0]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What each engine's figures depend on, as commands printing a version:
# docker's CLI and its daemon are packaged apart (and here differ), and
# both docker and podman (run with --runtime runc) start containers with runc.
STACKS = {
    "docker": [("CLI", ["docker", "--version"]), ("dockerd", ["dockerd", "--version"]),
               ("containerd", ["containerd", "--version"]), ("runc", ["runc", "--version"])],
    "podman": [("podman", ["podman", "--version"]), ("conmon", ["conmon", "--version"]), ("runc", ["runc", "--version"])],
    "runc": [("runc", ["runc", "--version"])],
    "crun": [("crun", ["crun", "--version"])],
    "skopeo": [("skopeo", ["skopeo", "--version"])],
    "docker-registry": [("docker-registry", ["docker-registry", "--version"])],
}


def machine():
    """CPU, cores, memory, OS and kernel of this host, in one line."""
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) / (1 << 20)
    distro = "?"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {distro}, Linux {os.uname().release}"


def berth_version(bin_dir):
    """berth's version and the commit of the tree the bench runs from."""
    v = version([os.path.join(bin_dir, "berth"), "--version"])
    commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    return f"{v} (commit {commit or '?'})"


def stack_versions(peers, bin_dir):
    """One line per peer name (berth, docker, podman, ...): the versions
    of everything its figures depend on."""
    out = []
    for p in peers:
        if p == "berth":
            out.append(f"berth: {berth_version(bin_dir)}")
        elif p == "berth-runtime":
            out.append(f"berth-runtime: {version([os.path.join(bin_dir, 'berth-runtime'), '--version'])}")
        elif p in STACKS:
            out.append(f"{p}: " + "; ".join(f"{label} `{version(argv)}`" for label, argv in STACKS[p]
                                            if shutil.which(argv[0])))
    return out


def command_line(argv, work=None, bin_dir=None):
    """`argv` as a shell line, the run's temporary folder as $WORK and the
    binaries' folder as $BIN."""
    import shlex
    s = shlex.join(str(a) for a in argv)
    if work:
        s = s.replace(work, "$WORK")
    if bin_dir:
        s = s.replace(os.path.abspath(bin_dir), "$BIN")
    return s.replace(REPO + "/", "")


def provenance(peers, bin_dir, commands=(), work=None):
    """The lines that say where a section's figures come from: the date,
    the machine and its load, the bench's own command line, the versions
    of every peer and the timed command lines (label, argv)."""
    bench = command_line([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:], bin_dir=bin_dir)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', STARTED)} on {machine()}; load average "
        f"{START_LOAD:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. Bench: `{bench}`.",
        "",
        "Versions:",
        "",
    ]
    lines += [f"- {v}" for v in stack_versions(peers, bin_dir)]
    if commands:
        lines += ["", "Command lines" + (" ($WORK: the run's temporary folder)" if work else "") + ":", ""]
        lines += [f"- {label}: `{command_line(argv, work, bin_dir)}`" for label, argv in commands]
    lines.append("")
    return lines


def figure_note(script):
    """The small print under a plot: when, where, under which load."""
    return (f"{time.strftime('%Y-%m-%d', STARTED)}; {os.cpu_count()} cores, Linux {os.uname().release}; "
            f"load {START_LOAD:.1f} -> {os.getloadavg()[0]:.1f}; bench/{script}")


def emit(lines, out, peers=(), bin_dir="target/release", commands=(), work=None):
    """Prints a report section, followed by its provenance when `peers`
    names the engines it measured (see `provenance`), and writes it to
    `out` if given."""
    if peers:
        lines = list(lines) + provenance(peers, bin_dir, commands, work)
    text = "\n".join(lines)
    print(text)
    if out:
        open(out, "w").write(text + "\n")


# The Debian image the image, pull and push benchmarks share: a debootstrap
# tree cached under CACHE, split into layers as a docker-archive.

CACHE = "/var/cache/berth-bench"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# minbase alone is ~110 MB once apt's caches are gone; these bring it to
# about 200 MB of ordinary Debian files (interpreters, libraries, docs).
INCLUDE = "python3,perl,curl,ca-certificates,procps,less"
# Bottom first: split by directories, as a Dockerfile's steps would add
# them. The first takes everything the others do not.
SPLIT = [None, "./usr/bin", "./usr/share", "./usr/lib"]
# The tag of the Debian image in its archive.
DEBIAN = "bench/debian:latest"
LAYOUT = "2"  # bump when the archives below change


def sh(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def apt_proxy_env():
    """debootstrap (wget) reaches the mirror the way apt is set to."""
    env = dict(os.environ)
    out = subprocess.run(["apt-config", "shell", "P", "Acquire::http::Proxy"], capture_output=True, text=True).stdout
    if "P=" in out:
        proxy = out.split("P=", 1)[1].strip().strip("'\"")
        if proxy and proxy != "DIRECT":
            env["http_proxy"] = proxy
    return env


def debian_rootfs():
    """A debootstrap tree, made once and kept in the cache."""
    root = f"{CACHE}/debian-rootfs"
    stamp = f"{CACHE}/debian-rootfs.stamp"
    key = f"{SUITE} minbase {INCLUDE}"
    if os.path.isdir(root) and os.path.exists(stamp) and open(stamp).read() == key:
        return root
    os.makedirs(CACHE, exist_ok=True)
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"debootstrap {SUITE} into {tmp} (once; cached)", flush=True)
    sh(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, tmp, MIRROR],
       env=apt_proxy_env(), stdout=subprocess.DEVNULL)
    # What an image build cleans: downloaded packages and package lists.
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for dirpath, _, files in os.walk(os.path.join(tmp, d)):
            for f in files:
                if f != "lock":
                    os.unlink(os.path.join(dirpath, f))
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)
    open(stamp, "w").write(key)
    return root


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def docker_archive(layers, tag, cmd, out):
    """Writes a docker-archive (`docker save`'s format) of the layer tars
    `layers` (bottom first) as the image `tag`."""
    diff_ids = [sha256_file(p) for p in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2025-01-01T00:00:00Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": "2025-01-01T00:00:00Z", "created_by": f"bench layer {i}"} for i in range(len(layers))],
    }).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": [tag],
                            "Layers": [f"{d}/layer.tar" for d in diff_ids]}]).encode()
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        def add_bytes(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
        for d, p in zip(diff_ids, layers):
            info = t.gettarinfo(p, f"{d}/layer.tar")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(p, "rb") as f:
                t.addfile(info, f)
        add_bytes(f"{config_hex}.json", config)
        add_bytes("manifest.json", manifest)
    os.rename(tmp, out)


def cached(name, make):
    """`make(path)` once per LAYOUT; the path of the result."""
    path = f"{CACHE}/{name}-v{LAYOUT}.tar"
    if not os.path.exists(path):
        make(path)
    return path


def make_debian(out):
    """The Debian image in layers (SPLIT) as a docker-archive, tagged DEBIAN."""
    root = debian_rootfs()
    work = tempfile.mkdtemp(prefix="layers-", dir=CACHE)
    try:
        layers = []
        others = [p for p in SPLIT if p]
        for i, part in enumerate(SPLIT):
            p = os.path.join(work, f"{i}.tar")
            argv = ["tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", "-cf", p]
            if part is None:
                argv += ["--anchored"] + [f"--exclude={o}" for o in others] + ["."]
            else:
                argv += [part]
            sh(argv)
            layers.append(p)
        docker_archive(layers, DEBIAN, ["/bin/bash"], out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def debian_archive():
    """The path of the Debian image's docker-archive, made once."""
    return cached("debian-layers", make_debian)


# The quick runs' stand-in for the Debian image: about 20 MB, one layer.
SMALL = "bench/small:latest"


def make_small(out, tag=SMALL):
    """About 20 MB: busybox and 18 MB of incompressible files, tagged `tag`."""
    def filler(root):
        rng = random.Random(20)
        os.makedirs(os.path.join(root, "opt/data"))
        for i in range(18):
            with open(os.path.join(root, f"opt/data/{i}.bin"), "wb") as f:
                f.write(rng.randbytes(1 << 20))
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix="small-", dir=CACHE)
    try:
        p = os.path.join(work, "0.tar")
        busybox_rootfs(p, filler)
        docker_archive([p], tag, ["/bin/sh"], out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def quick_archive():
    """The small image tagged as the Debian one (DEBIAN): what --quick
    loads, pulls and pushes instead, so that no debootstrap runs."""
    return cached("small-as-debian", lambda out: make_small(out, DEBIAN))


class Scratch:
    """A filesystem of the benchmark's own: a fresh journaled ext4 on a
    loop device. This host's root ext4 runs without a journal, and there a
    new inode skips, one costly check at a time, every inode of its block
    group deleted in the last 60 s (300 s while the inode table is dirty):
    whoever deletes many files near the stores (the last round, another
    engineer's build) decides how fast the next load creates its files.
    Falls back to the cache folder where loop devices are not to be had."""

    def __init__(self):
        self.img, self.mnt, self.dev = f"{CACHE}/scratch.img", f"{CACHE}/scratch", None
        os.makedirs(self.mnt, exist_ok=True)
        subprocess.run(["umount", self.mnt], capture_output=True)
        try:
            with open(self.img, "w") as f:
                f.truncate(32 << 30)
            sh(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", self.img])
            self.dev = subprocess.run(["losetup", "-f", "--show", "--direct-io=on", self.img],
                                      check=True, capture_output=True, text=True).stdout.strip()
            sh(["mount", self.dev, self.mnt])
            self.path, self.kind = self.mnt, "a fresh ext4 (with a journal) on a loop device"
        except (subprocess.CalledProcessError, OSError) as e:
            print(f"no loop device ({e}); stores on the root filesystem", flush=True)
            self.close()
            self.path, self.kind = CACHE, "the root filesystem"

    def close(self):
        if self.dev:
            unmount_under(self.mnt)
            subprocess.run(["umount", self.mnt], capture_output=True)
            subprocess.run(["losetup", "-d", self.dev], capture_output=True)
            self.dev = None
        if os.path.exists(self.img):
            os.unlink(self.img)
