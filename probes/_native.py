"""Compile the probes' C kernels once per machine and load them with ctypes.

A pure-Python kernel cannot drive DRAM as hard as a compiled loop (numpy's
triad needs two passes and reaches ~0.7 of STREAM here), so the bandwidth
probe uses these when a C compiler is present and says which method ran.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_kernels.c")
# -fno-tree-loop-distribute-patterns keeps gcc from turning the copy loop into a
# memcpy call (glibc's non-temporal stores would make copy incomparable with STREAM's)
FLAG_SETS = (
    ["-O3", "-march=native", "-fno-tree-loop-distribute-patterns"],
    ["-O3", "-march=native", "-fno-builtin"],
    ["-O3", "-mcpu=native", "-fno-builtin"],
    ["-O3"],
)


def _cache_dir() -> Path:
    from fitcheck.paths import user_dir

    return user_dir() / "native"


def compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def load_kernels() -> tuple[ctypes.CDLL | None, str]:
    """(library, note): the library is None with the reason when no compiler works."""
    cc = compiler()
    if cc is None:
        return None, "no C compiler on PATH"
    src = SOURCE.read_bytes()
    key = hashlib.sha256(src + cc.encode() + platform.machine().encode()).hexdigest()[:16]
    suffix = ".dylib" if platform.system() == "Darwin" else ".so"
    lib_path = _cache_dir() / f"fitcheck_kernels_{key}{suffix}"
    if not lib_path.exists():
        err = _build(cc, lib_path)
        if err:
            return None, err
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as e:
        return None, f"cannot load compiled kernels: {e}"
    d, p, s = ctypes.c_double, ctypes.c_void_p, ctypes.c_size_t
    lib.fc_read.argtypes, lib.fc_read.restype = [p, s], d
    lib.fc_copy.argtypes, lib.fc_copy.restype = [p, p, s], None
    lib.fc_triad.argtypes, lib.fc_triad.restype = [p, p, p, d, s], None
    lib.fc_fill.argtypes, lib.fc_fill.restype = [p, d, s], None
    return lib, f"C kernels ({Path(cc).name})"


def _build(cc: str, lib_path: Path) -> str | None:
    try:
        lib_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {lib_path.parent}: {e.strerror}"
    last = ""
    for flags in FLAG_SETS:
        # build beside the target, then rename: a half-written library is never loaded
        fd, tmp = tempfile.mkstemp(dir=lib_path.parent, suffix=".tmp")
        os.close(fd)
        r = subprocess.run([cc, *flags, "-shared", "-fPIC", str(SOURCE), "-o", tmp],
                           capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            os.replace(tmp, lib_path)
            return None
        os.unlink(tmp)
        last = (r.stderr.strip().splitlines() or ["unknown error"])[-1]
    return f"C compiler failed: {last}"
