"""rpc-servers on this machine behind links of a chosen speed, for split runs that exercise the network for real.

Each server runs in its own network namespace (`ip netns`), joined to this one by a veth pair whose both ends are
shaped with `tc ... tbf` (rate); a small TCP relay on 127.0.0.1 adds the round trip (this kernel has no netem): it
holds every chunk for half the round trip in each direction, so messages pipeline as on a real link. Needs root
(CAP_NET_ADMIN). The only addresses used are loopback and the lab's own namespaces (10.231.k.0/24). Everything is
torn down on exit, on an exception and on SIGTERM/SIGHUP (fitcheck.calibration.llama_run.signals_raise).
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from fitcheck.errors import CalibrationError

SERVER_PORT, ECHO_PORT = 50052, 50053
# beside each server, a tiny echo service the lab measures its link with: | size u64 | data | -> 8 bytes back
_ECHO = """import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
while True:
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        h = c.recv(8, socket.MSG_WAITALL)
        if len(h) < 8: break
        n = int.from_bytes(h, 'little')
        while n > 0:
            got = c.recv(min(n, 1 << 16))
            if not got: break
            n -= len(got)
        c.sendall(bytes(8))
    c.close()
"""


def available() -> str | None:
    """None when a lab can run here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if p.returncode:
        return f"ip netns does not work here: {p.stderr.strip()[:100]}"
    if subprocess.run(["tc", "-V"], capture_output=True).returncode:
        return "tc (iproute2) is not installed"
    return None


def _ip(*args: str, check: bool = True) -> None:
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and p.returncode:
        raise CalibrationError(f"ip {' '.join(args)}: {p.stderr.strip()[:160]}")


class _Relay:
    """127.0.0.1:port -> target, each chunk held `delay_s` in each direction (the round trip is twice that)."""

    def __init__(self, target: tuple[str, int], delay_s: float):
        self.target, self.delay_s = target, delay_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.sent = [0, 0]  # bytes client -> server, server -> client (what a token costs on the wire)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.target, timeout=10)
            except OSError:
                c.close()
                continue
            for x in (c, s):
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                x.settimeout(None)
            self.conns += [c, s]
            for way, (a, b) in enumerate(((c, s), (s, c))):
                q: collections.deque = collections.deque()
                cv = threading.Condition()
                threading.Thread(target=self._read, args=(a, q, cv, way), daemon=True).start()
                threading.Thread(target=self._write, args=(b, q, cv), daemon=True).start()

    def _read(self, a: socket.socket, q, cv, way: int) -> None:
        while True:
            try:
                data = a.recv(1 << 16)
            except OSError:
                data = b""
            self.sent[way] += len(data)
            with cv:
                q.append((time.monotonic() + self.delay_s, data))
                cv.notify()
            if not data:
                return

    def _write(self, b: socket.socket, q, cv) -> None:
        while True:
            with cv:
                while not q:
                    cv.wait()
                due, data = q.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                b.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        for x in [self.sock] + self.conns:
            try:
                x.close()
            except OSError:
                pass


class Lab:
    """`n` rpc-servers, each `threads` threads (on `cpus`, a taskset list), behind links of `gbit_s` (None:
    unshaped) and `rtt_ms`."""

    _made = 0

    def __init__(self, n: int, gbit_s: float | None = None, rtt_ms: float = 0.0, threads: int = 2, cpus: str | None = None):
        if not 1 <= n <= 8:
            raise CalibrationError(f"a lab holds 1 to 8 servers, not {n}")
        self.n, self.gbit_s, self.rtt_ms, self.threads, self.cpus = n, gbit_s, rtt_ms, threads, cpus
        Lab._made += 1  # names unique per lab: a namespace's veth may outlive its deletion for a moment
        self.tag = f"fc{os.getpid() % 100000}{Lab._made % 100}"
        self.servers: list[subprocess.Popen] = []
        self.relays: list[_Relay] = []
        self.echo_relays: list[_Relay] = []
        self.made: list[str] = []

    def _ns(self, k: int) -> str:
        return f"{self.tag}s{k}"

    def _net(self, k: int) -> tuple[str, str]:
        return f"10.231.{k}.1", f"10.231.{k}.2"

    def __enter__(self) -> "Lab":
        why = available()
        if why:
            raise CalibrationError(f"cannot build the RPC lab: {why}")
        from fitcheck.calibration.llama_run import signals_raise
        from fitcheck.calibration.rpc import ensure_tools

        self._signals = signals_raise()  # SIGTERM/SIGHUP unwind through close(): no namespace or server left
        self._signals.__enter__()

        exe = ensure_tools() / "ggml-rpc-server"
        cache = Path(exe).parent.parent / "rpc-cache"
        try:
            for k in range(self.n):
                ns, (here, there) = self._ns(k), self._net(k)
                _ip("netns", "add", ns)
                self.made.append(ns)
                a, b = f"{self.tag}a{k}", f"{self.tag}b{k}"
                _ip("link", "add", a, "type", "veth", "peer", "name", b)
                _ip("link", "set", b, "netns", ns)
                _ip("addr", "add", f"{here}/24", "dev", a)
                _ip("link", "set", a, "up")
                _ip("netns", "exec", ns, "ip", "addr", "add", f"{there}/24", "dev", b)
                _ip("netns", "exec", ns, "ip", "link", "set", b, "up")
                _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
                env = {**os.environ, "LLAMA_CACHE": str(cache)}
                self.servers.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", _ECHO, there,
                                                      str(ECHO_PORT)], stdout=subprocess.DEVNULL,
                                                     stderr=subprocess.DEVNULL, start_new_session=True))
                pin = ["taskset", "-c", self.cpus] if self.cpus else []
                self.servers.append(subprocess.Popen(
                    ["ip", "netns", "exec", ns, *pin, str(exe), "-H", there, "-p", str(SERVER_PORT), "-t", str(self.threads),
                     "-c"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True))
            self.shape(self.gbit_s, self.rtt_ms)
            for k in range(self.n):
                self._wait(k)
        except BaseException:
            self.close()
            raise
        return self

    def _wait(self, k: int, timeout_s: float = 20.0) -> None:
        from fitcheck.calibration.rpc import probe_server

        t0 = time.monotonic()
        while True:
            if self.servers[2 * k + 1].poll() is not None:
                raise CalibrationError(f"rpc-server {k} exited at start (code {self.servers[2 * k + 1].returncode})")
            try:
                probe_server("127.0.0.1", self.relays[k].port, timeout_s=2)
                return
            except CalibrationError:
                if time.monotonic() - t0 > timeout_s:
                    raise
                time.sleep(0.2)

    def shape(self, gbit_s: float | None, rtt_ms: float) -> None:
        """Set every link's rate (both directions, tbf) and round trip (the relays)."""
        self.gbit_s, self.rtt_ms = gbit_s, rtt_ms
        for k in range(self.n):
            a, b, ns = f"{self.tag}a{k}", f"{self.tag}b{k}", self._ns(k)
            for where in ((), ("netns", "exec", ns, "tc")):
                dev = a if not where else b
                cmd = (["tc"] if not where else ["ip", *where]) + ["qdisc", "del", "dev", dev, "root"]
                subprocess.run(cmd, capture_output=True)
                if gbit_s:
                    # a burst of 0.3 ms (at least two full frames): a larger bucket lets each message's first bytes
                    # through free, which no real link does; a smaller one keeps bulk under the rate (timer ticks)
                    rate = gbit_s * 1e9
                    burst = max(3028, int(rate / 8 * 3e-4))
                    cmd = (["tc"] if not where else ["ip", *where]) + [
                        "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{int(rate / 1e3)}kbit",
                        "burst", str(burst), "latency", "200ms"]
                    p = subprocess.run(cmd, capture_output=True, text=True)
                    if p.returncode:
                        raise CalibrationError(f"tc tbf on {dev}: {p.stderr.strip()[:160]}")
        for r in self.relays + self.echo_relays:
            r.close()
        self.relays = [_Relay((self._net(k)[1], SERVER_PORT), rtt_ms / 2e3) for k in range(self.n)]
        self.echo_relays = [_Relay((self._net(k)[1], ECHO_PORT), rtt_ms / 2e3) for k in range(self.n)]

    def measure_link(self, k: int = 0, bulk_bytes: int = 1 << 20) -> tuple[float, float]:
        """(Gbit/s, round trip ms) of server k's link as a client sees it: small ping-pongs, then bulk sends."""
        def call(n: int) -> float:
            t = time.perf_counter()
            c.sendall(n.to_bytes(8, "little") + bytes(n))
            if len(c.recv(8, socket.MSG_WAITALL)) < 8:
                raise ConnectionError("the echo service closed")
            return time.perf_counter() - t

        t0 = time.monotonic()
        while True:  # the echo service may still be starting: the relay then drops the connection
            try:
                c = socket.create_connection(("127.0.0.1", self.echo_relays[k].port), timeout=10)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                call(16)
                break
            except OSError:
                if time.monotonic() - t0 > 10:
                    raise CalibrationError(f"the lab's link {k} cannot be measured") from None
                time.sleep(0.2)

        with c:
            rtt = sorted(call(16) for _ in range(10))[5]
            bulk = min(call(bulk_bytes) for _ in range(3))
        return bulk_bytes * 8 / max(bulk - rtt, 1e-6) / 1e9, rtt * 1e3

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{r.port}" for r in self.relays]

    def close(self) -> None:
        for r in self.relays + self.echo_relays:
            r.close()
        for p in self.servers:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        for k, ns in enumerate(self.made):
            _ip("link", "del", f"{self.tag}a{k}", check=False)  # the pair, both ends
            _ip("netns", "del", ns, check=False)
        self.made.clear()
        if getattr(self, "_signals", None) is not None:
            self._signals.__exit__(None, None, None)
            self._signals = None

    def __exit__(self, *exc) -> None:
        self.close()
