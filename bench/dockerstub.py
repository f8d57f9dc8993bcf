#!/usr/bin/env python3
"""A stand-in for a Docker API server that runs nothing and answers at
once: what `docker run --rm IMAGE true` costs the docker CLI itself (its
start, its five requests, the attach's hijack, its wait), with no
container behind it. bench/api.py times the CLI against it beside the
real servers: no server can make that command take less.

It answers the requests `docker run --rm` makes (`/_ping`, `/version`,
container create, attach, wait, start and inspect) the way dockerd
shapes them: a container "exits 0" once it is started and both its
attach and its wait are there. Anything else is a 404, written to
stderr, so a client that asks for more shows up in the bench's log.

Usage: dockerstub.py SOCKET"""

import json
import os
import socket
import sys
import threading

HEADERS = (b"Api-Version: 1.47\r\nDocker-Experimental: false\r\nOstype: linux\r\n"
           b"Server: Docker/27.0.0 (linux)\r\n")


def response(code, reason, body=b"", ctype=b"application/json"):
    return (b"HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (code, reason, HEADERS, ctype, len(body)) + body)


class Stub:
    def __init__(self):
        self.lock = threading.Lock()
        self.made = 0
        # id -> what has arrived of its run: "attach" and "wait" hold
        # connections, "started" a flag.
        self.runs = {}

    def arrive(self, cid, what, value):
        with self.lock:
            run = self.runs.setdefault(cid, {})
            run[what] = value
            if not {"attach", "wait", "started"} <= run.keys():
                return
            del self.runs[cid]
        run["attach"].close()
        run["wait"].sendall(b'{"Error":null,"StatusCode":0}\n')
        run["wait"].close()

    def serve(self, conn):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    conn.close()
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            fields = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
            fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
            if fields.get(b"transfer-encoding") == b"chunked":
                while b"0\r\n\r\n" not in buf:
                    buf += conn.recv(65536)
                buf = buf.split(b"0\r\n\r\n", 1)[1]
            else:
                length = int(fields.get(b"content-length", b"0"))
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
            parts = [p for p in target.split(b"?")[0].decode().split("/") if p]
            if parts and parts[0].startswith("v1."):
                parts = parts[1:]
            if not self.answer(conn, method, parts):
                return

    def answer(self, conn, method, parts):
        """Answers one request; False once the connection is handed over."""
        if parts == ["_ping"]:
            conn.sendall(response(200, b"OK", b"" if method == b"HEAD" else b"OK", b"text/plain"))
        elif parts == ["version"]:
            conn.sendall(response(200, b"OK", json.dumps({
                "Version": "27.0.0", "ApiVersion": "1.47", "MinAPIVersion": "1.24",
                "Os": "linux", "Arch": "amd64"}).encode()))
        elif parts == ["containers", "create"]:
            with self.lock:
                self.made += 1
                cid = "%064x" % self.made
            conn.sendall(response(201, b"Created", json.dumps({"Id": cid, "Warnings": []}).encode()))
        elif len(parts) == 3 and parts[0] == "containers" and parts[2] == "attach":
            conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                         b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
            self.arrive(parts[1], "attach", conn)
            return False
        elif len(parts) == 3 and parts[0] == "containers" and parts[2] == "wait":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + HEADERS + b"Content-Type: application/json\r\n"
                         b"Connection: close\r\n\r\n")
            self.arrive(parts[1], "wait", conn)
            return False
        elif len(parts) == 3 and parts[0] == "containers" and parts[2] == "start":
            conn.sendall(response(204, b"No Content"))
            self.arrive(parts[1], "started", True)
        elif len(parts) == 3 and parts[0] == "containers" and parts[2] == "json":
            conn.sendall(response(200, b"OK", json.dumps({
                "Id": parts[1], "State": {"Running": False, "ExitCode": 0},
                "Config": {"Tty": False}}).encode()))
        else:
            print(f"dockerstub: no answer for {method.decode()} /{'/'.join(parts)}", file=sys.stderr, flush=True)
            conn.sendall(response(404, b"Not Found", b'{"message":"page not found"}'))
        return True


def main():
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(64)
    stub = Stub()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=stub.serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
