"""Hostile HTTP servers against the real CLI: every case ends within the deadline, in one line, with bounded memory
and disk, and no credential leaves its origin.

A server on 127.0.0.1 (and a second one on another port, "elsewhere") plays each case; `fitcheck inspect URL` runs
as a user runs it (a child process, HF_TOKEN set, the Hub endpoint pointed at the first server) with
FITCHECK_REMOTE_DEADLINE_S. Printed per case: seconds to exit, exit code, lines on stderr, peak RSS of the child,
header-cache bytes written, requests seen, and whether the token reached a request it must not.

    python benchmarks/hostile_servers.py [--deadline 10]
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "hf_bench_secret"
SIZE = 1 << 30  # what every file claims to be


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Authorization")))
        case = self.path.lstrip("/").split("/")[0]
        getattr(self, "case_" + case.replace("-", "_"), self.case_missing)()

    # --- helpers ---
    def head(self, code=206, extra=(), length=1 << 20, start=0):
        self.send_response(code)
        self.send_header("Content-Range", f"bytes {start}-{start + length - 1}/{SIZE}")
        self.send_header("Content-Length", str(length))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def trickle(self, data: bytes, step=0.2, seconds=300):
        end = time.monotonic() + seconds
        try:
            for b in data:
                if time.monotonic() > end:
                    break
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(step)
        except OSError:
            pass
        self.close_connection = True

    def redirect(self, where):
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # --- cases ---
    def case_missing(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def case_slow_status(self):
        self.trickle(b"HTTP/1.1 206 Partial Content\r\n" * 100)

    def case_slow_headers(self):
        self.wfile.write(b"HTTP/1.1 206 Partial Content\r\n")
        self.trickle(b"X-Slow: yes\r\n" * 1000)

    def case_slow_body(self):
        self.head()
        self.trickle(b"GGUF\x03\x00\x00\x00" + bytes(1 << 20))

    def case_endless_200(self):
        self.send_response(200)
        self.end_headers()  # no length: a body that never ends
        try:
            while True:
                self.wfile.write(bytes(1 << 16))
        except OSError:
            pass

    def case_lying_range(self):
        self.head(start=12345)
        self.wfile.write(bytes(1 << 20))

    def case_huge_length(self):
        self.head(length=1 << 40)
        try:
            while True:
                self.wfile.write(b"GGUF" * (1 << 14))
        except OSError:
            pass

    def case_gzip_bomb(self):
        bomb = gzip.compress(bytes(256 << 20))
        self.head(extra=[("Content-Encoding", "gzip")], length=len(bomb))
        self.wfile.write(bomb)

    def case_ftp(self):
        self.redirect(f"ftp://127.0.0.1:{self.server.server_address[1]}/m.gguf")

    def case_file(self):
        self.redirect("file:///etc/passwd")

    def case_other_origin(self):
        self.redirect(f"http://127.0.0.1:{self.server.other_port}/missing/m.gguf")

    def case_loop(self):
        self.redirect(self.path)

    def case_fanout(self):
        self.case_missing()


CASES = {  # name: (path, what must happen)
    "status line at 5 B/s": ("/slow-status/m.gguf", "gave up"),
    "headers at 5 B/s": ("/slow-headers/m.gguf", "gave up"),
    "body at 5 B/s": ("/slow-body/m.gguf", "gave up"),
    "endless 200 body": ("/endless-200/m.gguf", "does not support range requests"),
    "lying Content-Range": ("/lying-range/m.gguf", "does not answer a request from byte 0"),
    "1 TiB Content-Length": ("/huge-length/m.gguf", ""),
    "gzip bomb (256 MiB)": ("/gzip-bomb/m.gguf", "compressed the range"),
    "redirect to ftp://": ("/ftp/m.gguf", "only http(s) redirects"),
    "redirect to file://": ("/file/m.gguf", "not allowed"),
    "redirect to another origin (token)": ("/other-origin/m.gguf", "HTTP 404"),
    "redirect loop": ("/loop/m.gguf", "redirect"),
    "split fan-out -of-99999": ("/fanout/m-00001-of-99999.gguf", "at most 256"),
}


def serve(port_other: int = 0):
    srv = ThreadingHTTPServer(("127.0.0.1", port_other), Handler)
    srv.daemon_threads, srv.log, srv.other_port = True, [], None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def folder_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deadline", type=float, default=10.0)
    args = ap.parse_args()
    hub, elsewhere = serve(), serve()
    hub.other_port = elsewhere.server_address[1]
    base = f"http://127.0.0.1:{hub.server_address[1]}"
    worst = 0.0
    print(f"deadline {args.deadline:g} s; case | s to exit | rc | stderr lines | peak RSS MB | cache bytes | requests | token leaked | ok")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, want) in CASES.items():
            cache = Path(tmp) / re.sub(r"\W+", "-", name)
            env = {**os.environ, "HF_TOKEN": TOKEN, "FITCHECK_HF_ENDPOINT": base, "FITCHECK_CACHE": str(cache),
                   "FITCHECK_HOME": str(Path(tmp) / "home"), "FITCHECK_REMOTE_DEADLINE_S": str(args.deadline)}
            hub.log.clear()
            elsewhere.log.clear()
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "fitcheck", "inspect", base + path], capture_output=True,
                               text=True, env=env, timeout=args.deadline * 3 + 60)
            took = time.monotonic() - t0
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far (KiB)
            leaked = any(a for _, a in elsewhere.log)
            cached = folder_bytes(cache) if cache.exists() else 0
            ok = (r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and want in r.stderr
                  and took <= args.deadline + 5 and not leaked and cached < 64 << 20)
            failures += not ok
            worst = max(worst, took)
            print(f"{name} | {took:.2f} | {r.returncode} | {r.stderr.count(chr(10))} | "
                  f"{max(rss, before) / 1024:.0f} | {cached} | {len(hub.log) + len(elsewhere.log)} | {leaked} | "
                  f"{'ok' if ok else 'FAIL'}")
            print(f"    {r.stderr.strip()[:200]}")
    print(f"slowest case {worst:.2f} s (deadline {args.deadline:g} s); {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
