#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/<target>/ (seed-* files).

Each seed is a small input that reaches one interesting path: a valid
form, and the hostile forms the code must refuse. Run from fuzz/:
    python3 seeds/make.py
The corpora also hold what the fuzzer grew from these (hash-named files).
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)
    # libFuzzer (and `cargo fuzz cmin`) name a unit by its sha1: the same
    # seed under that name is a copy.
    copy = os.path.join(d, hashlib.sha1(data).hexdigest())
    if os.path.exists(copy):
        os.remove(copy)


def tar(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, kind, payload) with kind file|dir|sym|link|fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, payload in entries:
            i = tarfile.TarInfo(name)
            i.mtime = 1700000000
            data = None
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                i.size = len(data)
                i.mode = 0o644
            elif kind == "dir":
                i.type, i.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                i.type, i.linkname = tarfile.SYMTYPE, payload
            elif kind == "link":
                i.type, i.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                i.type = tarfile.FIFOTYPE
            elif kind == "chr":
                i.type, i.devmajor, i.devminor = tarfile.CHRTYPE, 0, 0
            t.addfile(i, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


def sha(data):
    return hashlib.sha256(data).hexdigest()


def references():
    for i, r in enumerate([
        "busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:latest",
        "index.docker.io/busybox", "localhost:5000/a/b/c:v1", "127.0.0.1:5000/x",
        "[::1]:5000/img:tag", "ghcr.io/org/repo", "UPPER/case", "a:b:c", "a@sha256:" + "0" * 64,
        "busybox:tag@sha256:" + "ab" * 32, "sha256:" + "1" * 64, "x" * 300, "a..b", "a__b/c-d.e",
        "host:port/", ":tag", "@sha256:", "a/b:" + "t" * 129, "registry.example.com:99999/a",
    ]):
        put("reference_parse", f"{i:02}", r)
    # The crash fuzzing found: its familiar form named another registry.
    put("reference_parse", "familiar-domainlike", "docker.io/l.io/libibrarytest")


def layers():
    m = b"\x00"  # mode byte: whiteouts Apply, ownership Ignore
    ok = tar([("etc/", "dir", None), ("etc/hostname", "file", "box\n"), ("bin/sh", "file", b"\x7fELF"),
              ("bin/ash", "link", "bin/sh"), ("lib", "sym", "usr/lib"), ("dev/fifo", "fifo", None)])
    put("layer_apply", "plain", m + ok)
    put("layer_apply", "gzip", m + gzip.compress(ok, mtime=0))
    put("layer_apply", "zstd", m + zstd(ok))
    put("layer_apply", "pax-long", m + tar([("d/" + "n" * 200, "file", "x")], tarfile.PAX_FORMAT))
    put("layer_apply", "whiteouts", b"\x01" + tar([("a/.wh..wh..opq", "file", ""), ("a/.wh.b", "file", ""),
                                                   (".wh.etc", "file", "")]))
    put("layer_apply", "whiteout-apply", m + tar([("x/y", "file", "1"), ("x/.wh.y", "file", ""),
                                                  ("x/.wh..wh..opq", "file", "")]))
    for name, entries in {
        "dotdot": [("../escape", "file", "x")],
        "dotdot-deep": [("a/../../escape", "file", "x")],
        "absolute": [("/etc/escape", "file", "x")],
        "through-rel": [("rel/escape", "file", "x")],
        "through-abs": [("abs/escape", "file", "x")],
        "over-filelink": [("filelink", "file", "x")],
        "symlink-then-file": [("s", "sym", "../outside"), ("s/escape", "file", "x")],
        "symlink-abs-then-file": [("s", "sym", "/tmp"), ("s/escape", "file", "x")],
        "hardlink-out": [("h", "link", "../outside/file")],
        "hardlink-through": [("h", "link", "rel/file")],
        "hardlink-then-write": [("h", "link", "filelink"), ("h", "file", "x")],
        "whiteout-out": [(".wh...", "file", ""), ("rel/.wh.file", "file", "")],
        "dir-over-symlink": [("rel/", "dir", None), ("rel/x", "file", "x")],
        "chr": [("dev/null", "chr", None)],
    }.items():
        put("layer_apply", name, m + tar(entries))


def archives():
    layer = tar([("hello", "file", "hi\n")])
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}}).encode()
    manifest = json.dumps([{"Config": sha(cfg) + ".json", "RepoTags": ["fuzz:latest"],
                            "Layers": [sha(layer) + "/layer.tar"]}]).encode()
    put("archive_load", "docker", tar([(sha(cfg) + ".json", "file", cfg), (sha(layer) + "/layer.tar", "file", layer),
                                       ("manifest.json", "file", manifest)]))
    put("archive_load", "docker-gzip", gzip.compress(tar([(sha(cfg) + ".json", "file", cfg),
                                                          (sha(layer) + "/layer.tar", "file", layer),
                                                          ("manifest.json", "file", manifest)]), mtime=0))
    put("archive_load", "docker-symlinked-layer", tar([
        (sha(cfg) + ".json", "file", cfg), ("blobs/l", "file", layer), (sha(layer) + "/layer.tar", "sym", "../blobs/l"),
        ("manifest.json", "file", manifest)]))
    put("archive_load", "docker-link-escape", tar([
        (sha(cfg) + ".json", "file", cfg), (sha(layer) + "/layer.tar", "sym", "../../etc/passwd"),
        ("manifest.json", "file", manifest)]))
    put("archive_load", "docker-missing-layer", tar([(sha(cfg) + ".json", "file", cfg),
                                                     ("manifest.json", "file", manifest)]))
    om = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                "digest": "sha256:" + sha(cfg), "size": len(cfg)},
                     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                 "digest": "sha256:" + sha(layer), "size": len(layer)}]}).encode()
    idx = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(om), "size": len(om),
        "annotations": {"org.opencontainers.image.ref.name": "v1",
                        "io.containerd.image.name": "docker.io/library/fuzz:v1"}}]}).encode()
    oci = [("oci-layout", "file", '{"imageLayoutVersion":"1.0.0"}'), ("index.json", "file", idx),
           ("blobs/sha256/" + sha(om), "file", om), ("blobs/sha256/" + sha(cfg), "file", cfg),
           ("blobs/sha256/" + sha(layer), "file", layer)]
    put("archive_load", "oci", tar(oci))
    put("archive_load", "oci-zstd", zstd(tar(oci)))
    lie = list(oci)
    lie[4] = ("blobs/sha256/" + sha(layer), "file", layer + b"x")
    put("archive_load", "oci-digest-lies", tar(lie))
    put("archive_load", "oci-nested-index", tar([
        ("oci-layout", "file", '{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", "file", json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + sha(idx),
            "size": len(idx)}]})),
        ("blobs/sha256/" + sha(idx), "file", idx)] + oci[2:]))


def runtime_configs(default):
    put("runtime_config", "default", default)
    spec = json.loads(default)
    variants = {
        "cgroups": {"linux": {**spec.get("linux", {}), "cgroupsPath": "/berth/fuzz", "resources": {
            "memory": {"limit": 67108864, "reservation": 1, "swap": -1, "swappiness": 200},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1,3", "mems": "0"},
            "pids": {"limit": 10},
            "blockIO": {"weight": 10, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                             "access": "rw"}],
            "unified": {"memory.high": "max", "../escape": "1"}}}},
        "cgroups-escape": {"linux": {**spec.get("linux", {}), "cgroupsPath": "../../../etc"}},
        "cgroups-systemd": {"linux": {**spec.get("linux", {}), "cgroupsPath": "system.slice:berth:x"}},
        "seccomp": {"linux": {**spec.get("linux", {}), "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                         {"names": ["nosuchcall"], "action": "SCMP_ACT_KILL"}]}}},
        "mounts": {"mounts": [{"destination": "/x", "type": "bind", "source": "/tmp",
                               "options": ["rbind", "ro", "rprivate", "nosuid", "idmap", "tmpcopyup",
                                           "mode=0755", "size=1k", "bogus", "rro", "rnoatime"]}]},
        "caps": {"process": {**spec["process"], "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NOPE"], "effective": ["CAP_KILL"]}}},
        "bad-version": {"ociVersion": "2.0.0"},
        "userns": {"linux": {**spec.get("linux", {}), "namespaces": [{"type": "user"}, {"type": "mount"}]}},
    }
    for name, patch in variants.items():
        put("runtime_config", name, json.dumps({**spec, **patch}, indent=1))


def api_requests():
    def req(target, body, auth=""):
        return f"{target}\n{auth}\n{body if isinstance(body, str) else json.dumps(body)}"
    put("api_request", "create", req("/v1.47/containers/create?name=web", {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Entrypoint": ["/bin/sh"], "Env": ["A=1"],
        "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "Tty": True,
        "HostConfig": {"Memory": 67108864, "CpuShares": 512, "NanoCpus": 500000000, "CpusetCpus": "0-1",
                       "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                       "Binds": ["/tmp:/tmp:ro"], "Mounts": [{"Type": "tmpfs", "Target": "/run",
                                                              "TmpfsOptions": {"SizeBytes": 1024}}],
                       "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                       "ConsoleSize": [24, 80], "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                       "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}], "CapAdd": ["NET_ADMIN"],
                       "NetworkMode": "bridge"},
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["w"], "IPAMConfig": {
            "IPv4Address": "10.88.0.5"}}}}}))
    put("api_request", "create-wrong-shape", req("/containers/create", {"Image": 5, "Cmd": "x", "HostConfig": []}))
    put("api_request", "exec", req("/v1.41/containers/abc/exec", {"Cmd": ["ls"], "ConsoleSize": [1, 2, 3],
                                                                   "Tty": True}))
    put("api_request", "network", req("/networks/create", {
        "Name": "n", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.128/25",
                                                               "Gateway": "10.9.0.1"}]},
        "Options": {"com.docker.network.bridge.name": "br9"}}))
    put("api_request", "volume", req("/volumes/create", {"Name": "v", "Driver": "local", "Labels": {"a": "b"}}))
    put("api_request", "logs", req("/v1.40/containers/x/logs?since=1700000000.5&until=0&tail=10&follow=1", ""))
    put("api_request", "logs-records", req("/containers/x/logs",
                                           '{"log":"hi\\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}\n'))
    put("api_request", "filters", req('/containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D', ""))
    put("api_request", "filters-old", req('/images/json?filters={"dangling":{"true":true}}', ""))
    put("api_request", "pull-auth", req("/images/create?fromImage=busybox&tag=latest",
                                        "", auth="eyJ1c2VybmFtZSI6ImEiLCJwYXNzd29yZCI6ImIifQ=="))
    put("api_request", "version-too-new", req("/v1.99/_ping", ""))
    put("api_request", "resize", req("/containers/x/resize?h=70000&w=-1", ""))


if __name__ == "__main__":
    import sys
    references()
    layers()
    archives()
    runtime_configs(open(sys.argv[1]).read() if len(sys.argv) > 1 else subprocess.run(
        ["berth-runtime", "spec", "--bundle", "/dev/stdout"], capture_output=True).stdout.decode())
    api_requests()
