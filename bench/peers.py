"""What the container benchmarks share: one busybox rootfs tarball, and
berth, podman and docker each on private roots under one work directory
with that tarball imported as `bench/busybox` (podman with `--runtime
runc`, as crun refuses this hybrid-cgroup host; dockerd started here on
its own socket). See ../../shared/PEERS.md for the host's quirks."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

IMAGE = "bench/busybox"


def make_rootfs_tar(path):
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
    subprocess.run(["tar", "-C", root, "-cf", path, "."], check=True)
    shutil.rmtree(root)


def version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"


class Engine:
    """One engine's command line (`argv` + `env`), its image name and
    version, and how it is stopped."""

    def __init__(self, name, argv, image, env=None, ver="?", stop=None):
        self.name = name
        self.argv = argv
        self.image = image
        self.env = env
        self.version = ver
        self.stop = stop or (lambda: None)

    def run(self, args, **kw):
        return subprocess.run(self.argv + args, env=self.env, **kw)


def setup(work, bin_dir, want=("berth", "podman", "docker")):
    """The engines of `want` that this host has, each with the image
    imported; stop them with teardown()."""
    tar = os.path.join(work, "rootfs.tar")
    if not os.path.exists(tar):
        make_rootfs_tar(tar)
    engines = {}
    if "berth" in want:
        berth = [os.path.join(bin_dir, "berth"), "--root", f"{work}/br", "--runroot", f"{work}/brr"]
        subprocess.run(berth + ["import", tar, IMAGE], check=True, stdout=subprocess.DEVNULL)
        engines["berth"] = Engine("berth", berth, IMAGE, ver=version([berth[0], "--version"]))

    if "podman" in want and shutil.which("podman"):
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
        env = dict(os.environ, CONTAINERS_CONF=conf)
        # Short paths: podman's attach socket must fit in 108 bytes.
        podman = ["podman", "--root", f"{work}/pr", "--runroot", f"{work}/prr", "--tmpdir", f"{work}/pt",
                  "--runtime", "runc"]
        subprocess.run(podman + ["import", "-q", tar, "localhost/" + IMAGE], check=True, stdout=subprocess.DEVNULL,
                       env=env)
        engines["podman"] = Engine(
            "podman", podman, "localhost/" + IMAGE, env=env, ver=version(["podman", "--version"]),
            stop=lambda: subprocess.run(podman + ["rmi", "-af"], env=env, capture_output=True))

    if "docker" in want and shutil.which("dockerd"):
        sock = f"{work}/d.sock"
        log = open(f"{work}/dockerd.log", "w")
        d = subprocess.Popen(["dockerd", "--data-root", f"{work}/dd", "--exec-root", f"{work}/de", "--pidfile",
                              f"{work}/d.pid", "-H", f"unix://{sock}", "--bridge=none", "--iptables=false",
                              "--ip6tables=false"],
                             stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        docker = ["docker", "-H", f"unix://{sock}"]
        deadline = time.time() + 60
        while subprocess.run(docker + ["info"], capture_output=True).returncode != 0:
            if time.time() > deadline or d.poll() is not None:
                d.kill()
                sys.exit("dockerd did not start: see " + f"{work}/dockerd.log")
            time.sleep(0.3)
        subprocess.run(docker + ["import", tar, IMAGE], check=True, stdout=subprocess.DEVNULL)

        def stop_docker():
            d.terminate()
            try:
                d.wait(30)
            except subprocess.TimeoutExpired:
                d.kill()
        engines["docker"] = Engine("docker", docker, IMAGE, ver=version(["docker", "--version"]), stop=stop_docker)
    return engines


def teardown(work, engines):
    for e in engines.values():
        e.stop()
    # Whatever an engine left mounted under the work directory.
    subprocess.run(["sh", "-c", f"grep ' {work}' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l"],
                   capture_output=True)
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
