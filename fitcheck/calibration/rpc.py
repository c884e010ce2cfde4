"""llama.cpp's RPC backend for real: its tools built from the llama.cpp llama-cpp-python vendors, its servers
probed over the wire, and split runs measured with llama-bench.

- `ensure_tools()`: ggml-rpc-server and llama-bench, built once (cmake, GGML_RPC=ON) from the sdist of the installed
  llama-cpp-python (pip downloads it from PyPI, so the build is exactly the llama.cpp fitcheck's own runs use),
  cached in FITCHECK_TOOLS (default ~/.cache/fitcheck-tools). About 5 minutes on 2 cores.
- `probe_server()`: the RPC protocol's HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY (ggml/src/ggml-rpc/ggml-rpc.cpp:
  request | cmd u8 | size u64 | data |, reply | size u64 | data |; protocol 7.x): what a live server reports.
- `bench()`: llama-bench over a split, its JSON read, and llama.cpp's per-device buffer sizes from its log.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fitcheck.errors import CalibrationError, UsageError

PROTO_MAJOR = 7
CMD_GET_DEVICE_MEMORY, CMD_HELLO, CMD_DEVICE_COUNT = 11, 14, 15
CAPS = 24  # RPC_CONN_CAPS_SIZE (ggml/src/ggml-rpc/transport.h)
TOOLS = ("ggml-rpc-server", "llama-bench")


def tools_dir() -> Path:
    import llama_cpp

    base = Path(os.environ.get("FITCHECK_TOOLS") or Path.home() / ".cache" / "fitcheck-tools").expanduser()
    return base / f"llama-rpc-{llama_cpp.__version__}"


def ensure_tools(say=lambda s: None) -> Path:
    """The folder holding ggml-rpc-server and llama-bench, built first if missing."""
    bin_dir = tools_dir() / "bin"
    if all((bin_dir / t).exists() for t in TOOLS):
        return bin_dir
    import llama_cpp

    with tempfile.TemporaryDirectory(prefix="fitcheck-rpc-build-") as tmp:
        say(f"downloading the llama-cpp-python {llama_cpp.__version__} source (llama.cpp with RPC, built once)")
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp,
              f"llama-cpp-python=={llama_cpp.__version__}"], "downloading the llama-cpp-python source", 900)
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"), None)
        if sdist is None:
            raise CalibrationError("pip downloaded no llama-cpp-python source archive")
        _run(["tar", "xzf", str(sdist), "-C", tmp], "unpacking the source", 300)
        src = next(Path(tmp).glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = Path(tmp) / "build"
        say("building ggml-rpc-server and llama-bench (cmake, a few minutes)")
        _run(["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_RPC=ON",
              "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
              "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_TOOLS=ON"]
             + (["-G", "Ninja"] if _has("ninja") else []), "configuring llama.cpp", 600)
        _run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2), "--target", *TOOLS],
             "building llama.cpp's RPC tools", 3600)
        bin_dir.mkdir(parents=True, exist_ok=True)
        for t in TOOLS:
            tmp_dst = bin_dir / f".{t}.{os.getpid()}"
            tmp_dst.write_bytes((build / "bin" / t).read_bytes())
            tmp_dst.chmod(0o755)
            tmp_dst.replace(bin_dir / t)  # whole or absent, never half-written
    return bin_dir


def _has(cmd: str) -> bool:
    from shutil import which

    return which(cmd) is not None


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise CalibrationError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise CalibrationError(f"{what}: no end after {timeout:.0f} s") from None
    if p.returncode:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CalibrationError(f"{what} failed: {tail[0][:200]}")


@dataclass(frozen=True)
class RpcServer:
    endpoint: str
    version: str
    devices: tuple[tuple[int, int], ...]  # (free, total) bytes per device

    @property
    def free_bytes(self) -> int:
        return sum(f for f, _ in self.devices)


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """'host:port,host:port' -> [(host, port)]; the same server twice is refused."""
    out = []
    for item in (x.strip() for x in text.split(",")):
        m = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", item)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise UsageError(f"--rpc takes HOST:PORT[,HOST:PORT...], got {item!r}")
        ep = (m.group(1), int(m.group(2)))
        if ep in out:
            raise UsageError(f"--rpc lists {item} twice: one server is one device")
        out.append(ep)
    return out


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    return buf


def _call(sock: socket.socket, cmd: int, payload: bytes, reply: int) -> bytes:
    sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
    size = struct.unpack("<Q", _recv(sock, 8))[0]
    if size != reply:
        raise ConnectionError(f"a reply of {size} bytes where {reply} were expected")
    return _recv(sock, size)


def probe_server(host: str, port: int, timeout_s: float = 5.0) -> RpcServer:
    """What a live rpc-server reports: its protocol version and each device's free and total memory."""
    ep = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            rsp = _call(sock, CMD_HELLO, bytes(CAPS), 4 + CAPS)
            major, minor, patch = rsp[0], rsp[1], rsp[2]
            if major != PROTO_MAJOR:
                raise CalibrationError(f"rpc server {ep} speaks RPC protocol {major}.{minor}.{patch}; this llama.cpp "
                                       f"speaks {PROTO_MAJOR}.x: run the rpc-server of the same llama.cpp")
            n = struct.unpack("<I", _call(sock, CMD_DEVICE_COUNT, b"", 4))[0]
            if not 0 < n <= 64:
                raise CalibrationError(f"rpc server {ep} reports {n} devices")
            devs = tuple(struct.unpack("<QQ", _call(sock, CMD_GET_DEVICE_MEMORY, struct.pack("<I", d), 16))
                         for d in range(n))
    except CalibrationError:
        raise
    except socket.timeout:
        raise CalibrationError(f"rpc server {ep} did not answer within {timeout_s:g} s (busy with another client, "
                               "or not an rpc-server)") from None
    except (ConnectionError, OSError) as e:
        raise CalibrationError(f"rpc server {ep} is not reachable: {e.strerror or e}") from None
    return RpcServer(ep, f"{major}.{minor}.{patch}", devs)


_BUF = re.compile(r"(?P<dev>RPC\d+\[[^\]]*\]|CPU(?:_REPACK|_Mapped)?|CPU)\s+(?P<kind>model|KV|compute|output) buffer size =\s+"
                  r"(?P<mib>[\d.]+) MiB")


@dataclass(frozen=True)
class BenchResult:
    prompt_tps: float | None
    generation_tps: float | None
    buffers: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> kind -> bytes
    command: str = ""


def bench(model: Path, endpoints: list[str], *, n_gpu_layers: int, tensor_split: str = "", n_prompt: int = 128,
          n_gen: int = 32, reps: int = 2, threads: int = 2, flash_attn: bool = False, extra: tuple[str, ...] = (),
          timeout_s: float = 600, cpus: str | None = None) -> BenchResult:
    """One llama-bench run over RPC servers (pp then tg), in its own process group, killed on any exit."""
    from fitcheck.calibration.llama_run import signals_raise

    exe = ensure_tools() / "llama-bench"
    cmd = (["taskset", "-c", cpus] if cpus else []) + [str(exe), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), "-t", str(threads),
           "-ngl", str(n_gpu_layers), "-fa", "1" if flash_attn else "0", "-o", "json", "-v", *extra]
    if endpoints:
        cmd += ["--rpc", ",".join(endpoints)]
    if tensor_split:
        cmd += ["-ts", tensor_split]
    with signals_raise():
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise CalibrationError(f"llama-bench over RPC did not finish within {timeout_s:.0f} s") from None
        finally:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    if p.returncode:
        lines = [x for x in err.strip().splitlines() if x.strip()]
        why = next((x for x in reversed(lines) if re.search(r"error|fail|abort|connect", x, re.I)), lines[-1] if lines else "")
        raise CalibrationError(f"llama-bench over RPC failed (exit {p.returncode}): {why.strip()[:200]}")
    try:
        recs = json.loads(out)
    except json.JSONDecodeError:
        raise CalibrationError("llama-bench printed no JSON") from None
    pp = next((r["avg_ts"] for r in recs if r.get("n_prompt") and not r.get("n_gen")), None)
    tg = next((r["avg_ts"] for r in recs if r.get("n_gen") and not r.get("n_prompt")), None)
    bufs: dict[str, dict[str, int]] = {}
    for m in _BUF.finditer(err):
        d = bufs.setdefault(m.group("dev"), {})
        # the first context's (the prompt test's: the largest ubatch); llama-bench makes one per test
        d.setdefault(m.group("kind"), int(float(m.group("mib")) * (1 << 20)))
    return BenchResult(pp, tg, bufs, " ".join(cmd))
