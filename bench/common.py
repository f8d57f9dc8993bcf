"""What the bench scripts share: the peers as they run them (dockerd on
its own socket and data root, podman on private roots with the limits this
host needs; see shared PEERS.md), a busybox root filesystem, and the small
helpers they time with."""

import os
import shutil
import subprocess
import sys
import tempfile
import time


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


class Dockerd:
    """A dockerd of our own (socket, data and exec roots under `work`),
    stopped by `stop`."""

    def __init__(self, work):
        self.sock = f"{work}/d.sock"
        self.log = open(f"{work}/dockerd.log", "w")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", f"{work}/dd", "--exec-root", f"{work}/de", "--pidfile", f"{work}/d.pid",
             "-H", f"unix://{self.sock}", "--bridge=none", "--iptables=false", "--ip6tables=false"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.argv = ["docker", "-H", f"unix://{self.sock}"]
        deadline = time.time() + 60
        while subprocess.run(self.argv + ["info"], capture_output=True).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                sys.exit(f"dockerd did not start (see {work}/dockerd.log)")
            time.sleep(0.3)

    @staticmethod
    def available():
        return shutil.which("dockerd") is not None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def unmount_under(work):
    """Lazily unmounts whatever the engines left mounted under `work`."""
    subprocess.run(["sh", "-c", f"grep ' {work}' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l"],
                   capture_output=True)


IMAGE = "bench/busybox"


class Engine:
    """One engine's command line (`argv` + `env`) with the bench image
    imported as `image`, its version, and how it is stopped."""

    def __init__(self, name, argv, image, env=None, ver="?", stop=None):
        self.name = name
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
        found["berth"] = Engine("berth", berth, IMAGE, ver=version([berth[0], "--version"]))
    pm = podman(work) if "podman" in want else None
    if pm:
        pod, env = pm
        subprocess.run(pod + ["import", "-q", tar, "localhost/" + IMAGE], check=True, stdout=subprocess.DEVNULL,
                       env=env)
        found["podman"] = Engine(
            "podman", pod, "localhost/" + IMAGE, env=env, ver=version(["podman", "--version"]),
            stop=lambda: subprocess.run(pod + ["rmi", "-af"], env=env, capture_output=True))
    if "docker" in want and Dockerd.available():
        d = Dockerd(work)
        subprocess.run(d.argv + ["import", tar, IMAGE], check=True, stdout=subprocess.DEVNULL)
        found["docker"] = Engine("docker", d.argv, IMAGE, ver=version(["docker", "--version"]), stop=d.stop)
    return found


def teardown(work, engines):
    for e in engines.values():
        e.stop()
    unmount_under(work)
    shutil.rmtree(work, ignore_errors=True)


def load():
    """The load average now, for the record: the machine is shared."""
    return open("/proc/loadavg").read().split()[0]


def emit(lines, out):
    """Prints a report section, and writes it to `out` if given."""
    text = "\n".join(lines)
    print(text)
    if out:
        open(out, "w").write(text + "\n")
