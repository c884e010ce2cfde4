"""Disk: read throughput of a fresh file with its page cache dropped, read two ways.

`read_gbps` is sequential read() in 16 MiB blocks: model load time.
`fault_read_gbps` touches the same file through mmap, one byte a page, as
llama.cpp's mmapped weights are read again once the OS has dropped them
(paging): each fault reads with the kernel's readahead, not in 16 MiB blocks.

The file is written next to fitcheck's data (FITCHECK_HOME) unless a
directory is given, fsynced, evicted from the page cache with
posix_fadvise(DONTNEED) (F_NOCACHE on macOS) before each read. A tmpfs or
network file system is named in the result: its figure is not local storage.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import time
from pathlib import Path

from ._util import run_main, unavailable

BLOCK = 16 << 20
PAGE = mmap.PAGESIZE
# file systems whose reads are not local storage: memory, or a network
NOT_STORAGE = {"tmpfs": "memory (tmpfs)", "ramfs": "memory (ramfs)", "nfs": "network (NFS)", "nfs4": "network (NFS)",
               "cifs": "network (SMB)", "smb3": "network (SMB)", "9p": "a host share (9p)", "fuse.sshfs": "network (sshfs)",
               "virtiofs": "a host share (virtiofs)", "overlay": None}


def fs_type(folder: Path) -> str | None:
    """The file system type of `folder` from /proc/self/mounts (longest mount point prefix); None off Linux."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind, here = -1, None, str(folder.resolve())
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (here == mnt or here.startswith(mnt.rstrip("/") + "/")) and len(mnt) > best:
            best, kind = len(mnt), parts[2]
    return kind


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


def _read_seq(name: str, method: str | None) -> tuple[int, float]:
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with open(name, "rb", buffering=0) as f:
        _drop_cache(f.fileno())
        t = time.perf_counter()
        total = 0
        while n := f.readinto(view):
            total += n
        return total, time.perf_counter() - t


def fault_read(name: str) -> tuple[int, float]:
    """Bytes and seconds to touch every page of `name` through a read-only mmap, its cache dropped first."""
    with open(name, "rb", buffering=0) as f:
        _drop_cache(f.fileno())
        size = os.fstat(f.fileno()).st_size
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as m:
            t = time.perf_counter()
            acc = 0
            for off in range(0, size, PAGE):
                acc += m[off]
            return size, time.perf_counter() - t


def probe(quick: bool = False, directory: str | os.PathLike | None = None) -> dict:
    from fitcheck.paths import user_dir

    size = (128 if quick else 1024) << 20  # quick: within the probe's budget (a 128 MiB file reads past the page cache all the same: it is dropped)
    folder = Path(directory) if directory else user_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(folder) if hasattr(os, "statvfs") else None
        free = st.f_bavail * st.f_frsize if st else None
    except OSError as e:
        return unavailable(f"cannot use {folder}: {e.strerror or e}")
    kind = fs_type(folder)
    if st is not None and st.f_flag & getattr(os, "ST_RDONLY", 1):
        return unavailable(f"{folder} is on a read-only file system ({kind or 'unknown type'}): no test file can be written",
                           fs_type=kind)
    if free is not None and free < 2 * size:
        return unavailable(f"only {free >> 20} MiB free in {folder}", fs_type=kind)
    block = os.urandom(BLOCK)  # incompressible, so compressing filesystems do not flatter the figure
    try:
        fd, name = tempfile.mkstemp(prefix="fitcheck-disk-", dir=folder)
    except OSError as e:
        return unavailable(f"cannot write a test file in {folder}: {e.strerror or e}", fs_type=kind)
    try:
        t = time.perf_counter()
        for _ in range(size // BLOCK):
            os.write(fd, block)
        os.fsync(fd)
        write_s = time.perf_counter() - t
        method = _drop_cache(fd)
        os.close(fd)
        fd = -1
        total, read_s = _read_seq(name, method)
        fbytes, fault_s = fault_read(name)
        from . import paging

        paged = paging.probe(name)
    except OSError as e:
        return unavailable(f"disk test in {folder} failed: {e.strerror or e}", fs_type=kind)
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(name)
        except OSError:
            pass
    out = {
        "status": "ok",
        "path": str(folder),
        "fs_type": kind,
        "file_bytes": total,
        "read_gbps": round(total / read_s / 1e9, 3),
        "fault_read_gbps": round(fbytes / fault_s / 1e9, 3),
        "paging_read_gbps": paged.get("paging_read_gbps"),
        "paging_random_read_gbps": paged.get("paging_random_read_gbps"),
        "paging_note": paged.get("reason") or f"re-read under a memory cgroup limit of {paged['limit_bytes'] >> 20} MiB",
        "write_gbps": round(size / write_s / 1e9, 3),
        "cache_drop": method or "none (figure may include page cache)",
    }
    what = NOT_STORAGE.get(kind or "")
    if what:
        out["warnings"] = [f"{folder} is {what}: its disk figures are not local storage; "
                           "probe where your models live with `fitcheck probe --disk-dir DIR`"]
    return out


if __name__ == "__main__":
    run_main(probe)
