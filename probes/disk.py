"""Disk: sequential read throughput of a fresh file with its page cache dropped.

This bounds model load time (mmap or read). The file is written next to
fitcheck's data (FITCHECK_HOME) unless a directory is given, fsynced, evicted
from the page cache with posix_fadvise(DONTNEED) (F_NOCACHE on macOS), then
read back in 16 MiB blocks.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ._util import run_main, unavailable

BLOCK = 16 << 20


def _drop_cache(fd: int) -> str | None:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return "posix_fadvise(DONTNEED)"
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_NOCACHE", 48), 1)
        return "F_NOCACHE"
    except (ImportError, OSError):
        return None


def probe(quick: bool = False, directory: str | os.PathLike | None = None) -> dict:
    from fitcheck.paths import user_dir

    size = (256 if quick else 1024) << 20
    folder = Path(directory) if directory else user_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize if hasattr(os, "statvfs") else None
    except OSError as e:
        return unavailable(f"cannot use {folder}: {e.strerror or e}")
    if free is not None and free < 2 * size:
        return unavailable(f"only {free >> 20} MiB free in {folder}")
    block = os.urandom(BLOCK)  # incompressible, so compressing filesystems do not flatter the figure
    fd, name = tempfile.mkstemp(prefix="fitcheck-disk-", dir=folder)
    try:
        t = time.perf_counter()
        for _ in range(size // BLOCK):
            os.write(fd, block)
        os.fsync(fd)
        write_s = time.perf_counter() - t
        method = _drop_cache(fd)
        os.close(fd)
        fd = -1
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        with open(name, "rb", buffering=0) as f:
            if method == "F_NOCACHE":
                _drop_cache(f.fileno())
            t = time.perf_counter()
            total = 0
            while n := f.readinto(view):
                total += n
            read_s = time.perf_counter() - t
    except OSError as e:
        return unavailable(f"disk test in {folder} failed: {e.strerror or e}")
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(name)
        except OSError:
            pass
    return {
        "status": "ok",
        "path": str(folder),
        "file_bytes": total,
        "read_gbps": round(total / read_s / 1e9, 3),
        "write_gbps": round(size / write_s / 1e9, 3),
        "cache_drop": method or "none (figure may include page cache)",
    }


if __name__ == "__main__":
    run_main(probe)
