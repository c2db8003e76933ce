#!/usr/bin/env python3
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serve the bare Git repos under a folder over smart HTTP on loopback (test-only, read-only).

A stand-in for the fleet's Git host in the Flux end-to-end test: it runs ``git http-backend`` (the
CGI program that ships with git) for each request. Only fetches are allowed (``git-upload-pack``);
pushes are refused. Flux's Go Git client speaks the smart protocol only, so git's "dumb" HTTP
(static files after ``git update-server-info``) is not enough.

Usage: git_http.py ROOT [--host 127.0.0.1] [--port 0]. It prints ``listening on http://HOST:PORT``
once bound, then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

BACKEND = "git-http-backend"


def backend_path() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    path = Path(exec_path) / BACKEND
    if not path.is_file():
        raise SystemExit(f"git_http: {path} not found (git without {BACKEND})")
    return str(path)


class GitHandler(BaseHTTPRequestHandler):
    server_version = "edgefleet-lab-git/1"
    root = ""
    backend = ""

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("git_http: " + (format % args) + "\n")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _run(self) -> None:
        url = urlsplit(self.path)
        path_info = unquote(url.path)
        if "/../" in path_info + "/" or path_info.endswith("git-receive-pack") or "receive-pack" in url.query:
            self.send_error(403, "read-only")
            return
        body = self._body() if self.command == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.0",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path_info,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        out = subprocess.run([self.backend], input=body, env=env, capture_output=True, check=False, timeout=120)
        if out.stderr:
            sys.stderr.write("git_http: backend: " + out.stderr.decode(errors="replace"))
        head, _sep, payload = out.stdout.partition(b"\r\n\r\n")
        if not _sep:
            head, _sep, payload = out.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._run()

    def do_POST(self) -> None:
        self._run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder holding bare repositories (e.g. fleet.git)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        parser.error(f"--host {args.host}: only a loopback address is allowed")
    if shutil.which("git") is None:
        parser.error("git is not installed")
    GitHandler.root = str(Path(args.root).resolve())
    GitHandler.backend = backend_path()
    httpd = ThreadingHTTPServer((args.host, args.port), GitHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on http://{args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
