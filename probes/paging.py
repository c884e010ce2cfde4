"""Paging read rate: how fast a process re-reads a mapped file that does not fit in its memory limit.

This is llama.cpp's access pattern when its mapped weights exceed what the OS
grants: a scan of a file larger than the memory left, each page faulted in
with the kernel's readahead while the kernel reclaims the pages before it.
Measured in a child process moved into a fresh memory cgroup (v1 or v2)
limited to a quarter of the file, so it needs root and a writable memory
controller; elsewhere it says why it could not.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ._util import unavailable

CG1 = Path("/sys/fs/cgroup/memory")
CG2 = Path("/sys/fs/cgroup")
_CHILD = r"""
import json, mmap, os, sys, time
procs, name = sys.argv[1], sys.argv[2]
open(procs, "w").write(str(os.getpid()))
fd = os.open(name, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
import random
def read_bytes():  # what the kernel fetched from storage for this process, readahead included
    try:
        return int(next(l for l in open("/proc/self/io") if l.startswith("read_bytes:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None
times, rand, fetched = [], [], []
for _ in range(3):
    t = time.perf_counter(); acc = 0
    for off in range(0, size, mmap.PAGESIZE):
        acc += m[off]
    times.append(time.perf_counter() - t)
chunk = 4 << 20  # MoE experts: slices of a few MiB read in no order (readahead reads around them)
starts = list(range(0, size - chunk + 1, chunk))
for _ in range(2):
    random.shuffle(starts)
    b0 = read_bytes(); t = time.perf_counter(); acc = 0
    for s0 in starts:
        for off in range(s0, s0 + chunk, mmap.PAGESIZE):
            acc += m[off]
    rand.append(time.perf_counter() - t)
    b1 = read_bytes()
    fetched.append(b1 - b0 if b0 is not None and b1 is not None else None)
print(json.dumps({"size": size, "times": times, "random": rand, "random_bytes": len(starts) * chunk,
                  "random_fetched": fetched}))
"""


def _controller() -> tuple[Path, str] | None:
    """(hierarchy root, limit file) of the memory controller: cgroup v1, else v2; None without one."""
    if (CG1 / "memory.limit_in_bytes").exists():
        return CG1, "memory.limit_in_bytes"
    controllers = CG2 / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text(errors="ignore").split():
        return CG2, "memory.max"
    return None


@contextlib.contextmanager
def memory_group(limit_bytes: int, name: str = "fitcheck-paging"):
    """A fresh memory cgroup limited to `limit_bytes` (its directory), removed afterwards.

    Raises OSError when there is no controller or it is not writable (not root).
    """
    found = _controller()
    if found is None:
        raise OSError("no memory cgroup controller")
    root, limit_file = found
    group = root / f"{name}-{os.getpid()}"
    group.mkdir()
    try:
        (group / limit_file).write_text(str(limit_bytes))
        yield group
    finally:
        try:
            group.rmdir()
        except OSError:
            pass


def _scattered_rate(d: dict) -> float:
    pairs = [(f if f else d["random_bytes"], t) for f, t in zip(d.get("random_fetched") or [None] * len(d["random"]),
                                                               d["random"])]
    return max(b / t for b, t in pairs) / 1e9


def probe(path: str, baseline_bytes: int = 24 << 20) -> dict:
    """Re-read rate of `path` (a file on the storage to measure) under a limit of baseline + a quarter of it."""
    if sys.platform != "linux":
        return unavailable("needs Linux memory cgroups")
    size = os.path.getsize(path)
    try:
        with memory_group(baseline_bytes + size // 4, "fitcheck-paging-probe") as group:
            out = subprocess.run([sys.executable, "-c", _CHILD, str(group / "cgroup.procs"), path],
                                 capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return unavailable("paging test timed out")
    except OSError as e:
        return unavailable(f"cannot make a memory cgroup ({e.strerror or e}): needs root and a memory controller")
    if out.returncode != 0:
        why = "killed by the limit" if out.returncode < 0 else (out.stderr.strip().splitlines() or ["?"])[-1]
        return unavailable(f"paging test failed: {why}")
    try:
        d = json.loads(out.stdout)
    except ValueError as e:
        return unavailable(f"paging test failed: {e}")
    later = sorted(d["times"][1:])  # the first pass is a cold read; later ones re-read under the limit
    return {"status": "ok", "paging_read_gbps": round(d["size"] / later[0] / 1e9, 3),
            # storage bytes per second while re-reading scattered chunks: readahead around each one included,
            # as the estimator counts an MoE's expert reads
            "paging_random_read_gbps": round(_scattered_rate(d), 3),
            "passes_s": [round(t, 4) for t in d["times"]], "limit_bytes": baseline_bytes + size // 4}
