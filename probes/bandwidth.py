"""Memory bandwidth: multi-threaded read, copy and triad over buffers >= 8x the LLC.

Bytes are counted the way STREAM counts them: copy moves 16 bytes per element
(one read, one write), triad 24 (two reads, one write), read 8; write-allocate
traffic is not counted. Each kernel is repeated; best, median and spread are
reported. A read over a cache-sized buffer shows the LLC cliff, and read
bandwidth is measured at 1..N threads.
"""

from __future__ import annotations

import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor

from ._util import median_ci_halfwidth, noisy_warnings, repeat_until_stable, run_main, summarize, unavailable

ARRAY_LLC_MULTIPLE = 8  # each STREAM array is this many times the last-level cache, so it streams from RAM
MIN_ARRAY_BYTES = 64 << 20
MAX_RAM_FRACTION = 0.4  # never take more than this share of available memory
CHUNK = 1 << 17  # numpy fallback works in L2-sized chunks (1 MiB of float64)
BYTES_PER_ELEMENT = {"read": 8, "copy": 16, "triad": 24}


class _Arrays:
    """Three float64 arrays in anonymous memory (transparent huge pages where allowed)."""

    def __init__(self, n: int):
        import numpy as np

        self.maps, self.arrays = [], []
        for _ in range(3):
            mm = mmap.mmap(-1, n * 8)
            if hasattr(mm, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
                try:
                    mm.madvise(mmap.MADV_HUGEPAGE)
                except OSError:
                    pass
            self.maps.append(mm)
            self.arrays.append(np.frombuffer(mm, dtype=np.float64))
        self.n = n

    def close(self) -> None:
        self.arrays.clear()
        for mm in self.maps:
            try:
                mm.close()
            except BufferError:  # a view lives on (an interrupt's traceback holds it): unmapped when it goes
                pass


class _Kernels:
    def __init__(self, lib, arrays: _Arrays):
        self.lib = lib
        self.a, self.b, self.c = arrays.arrays
        self.ptr = [x.ctypes.data for x in arrays.arrays]

    def fill(self, lo: int, hi: int) -> None:
        for arr, ptr, v in zip((self.a, self.b, self.c), self.ptr, (1.0, 2.0, 0.5)):
            if self.lib:
                self.lib.fc_fill(ptr + 8 * lo, v, hi - lo)
            else:
                arr[lo:hi] = v

    def read(self, lo: int, hi: int) -> float:
        if self.lib:
            return self.lib.fc_read(self.ptr[0] + 8 * lo, hi - lo)
        import numpy as np

        s = 0.0
        for i in range(lo, hi, CHUNK):
            s += float(np.add.reduce(self.a[i : min(i + CHUNK, hi)]))
        return s

    def copy(self, lo: int, hi: int) -> None:
        if self.lib:
            self.lib.fc_copy(self.ptr[2] + 8 * lo, self.ptr[0] + 8 * lo, hi - lo)
            return
        import numpy as np

        for i in range(lo, hi, CHUNK):
            j = min(i + CHUNK, hi)
            np.copyto(self.c[i:j], self.a[i:j])

    def triad(self, lo: int, hi: int) -> None:
        if self.lib:
            self.lib.fc_triad(self.ptr[0] + 8 * lo, self.ptr[1] + 8 * lo, self.ptr[2] + 8 * lo, 3.0, hi - lo)
            return
        import numpy as np

        for i in range(lo, hi, CHUNK):
            j = min(i + CHUNK, hi)
            x = self.a[i:j]
            np.multiply(self.c[i:j], 3.0, out=x)
            np.add(x, self.b[i:j], out=x)


def _timed(pool: ThreadPoolExecutor, fn, n: int, threads: int) -> float:
    bounds = [(k * n // threads, (k + 1) * n // threads) for k in range(threads)]
    t = time.perf_counter()
    list(pool.map(lambda lh: fn(*lh), bounds))
    return time.perf_counter() - t


def _llc_bytes() -> int | None:
    from .cpu import sysfs_caches

    caches = sysfs_caches()
    return max(caches.values()) if caches else None


def _thread_counts(n: int, quick: bool) -> list[int]:
    if quick:
        return sorted({1, n})
    counts, t = [], 1
    while t < n:
        counts.append(t)
        t *= 2
    return counts + [n]


def probe(quick: bool = False, llc_bytes: int | None = None, threads: int | None = None,
          available_bytes: int | None = None, force_numpy: bool = False) -> dict:
    import psutil

    from ._native import load_kernels

    llc = llc_bytes or _llc_bytes()
    if not llc:
        return unavailable("cannot tell the last-level cache size, so cannot size buffers past it")
    threads = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    avail = available_bytes or psutil.virtual_memory().available
    want = max(ARRAY_LLC_MULTIPLE * llc, MIN_ARRAY_BYTES)
    array_bytes = min(want, int(avail * MAX_RAM_FRACTION / 3))
    notes = []
    if array_bytes < want:
        notes.append(f"arrays capped at {array_bytes >> 20} MiB ({array_bytes / llc:.1f}x LLC) by available memory")
    if array_bytes < 2 * llc:
        return unavailable("not enough free memory for buffers well past the last-level cache")
    lib, method = (None, "numpy (forced)") if force_numpy else load_kernels()
    if lib is None and not force_numpy:
        method = f"numpy kernels ({method}; triad reads low, ~0.7 of STREAM)"
    n = array_bytes // 8 // threads * threads
    reps = 3 if quick else 7
    arrays = _Arrays(n)
    k = None
    try:
        k = _Kernels(lib, arrays)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            t0 = time.perf_counter()
            _timed(pool, k.fill, n, threads)  # touch every page in parallel before timing
            init_s = time.perf_counter() - t0
            results = {name: [] for name in BYTES_PER_ELEMENT}

            def one_round() -> float:
                for name in BYTES_PER_ELEMENT:
                    dt = _timed(pool, getattr(k, name), n, threads)
                    results[name].append(BYTES_PER_ELEMENT[name] * n / dt / 1e9)
                return results["read"][-1]

            # repeat until the read median is stable (bootstrap interval within +-5 %) or the time budget ends
            _, settled = repeat_until_stable(one_round, reps, 4 * reps, 2.0 if quick else 6.0)
            reps = len(results["read"])
            stats = {f"{name}_gbps": summarize(v) for name, v in results.items()}
            stats["read_gbps"]["settled"] = settled
            stats["read_gbps"]["median_ci"] = round(median_ci_halfwidth(results["read"]), 4)
            scaling = {}
            for t in _thread_counts(threads, quick):
                if t == threads:  # the main measurement is at this count already
                    scaling[str(t)] = round(stats["read_gbps"]["best"], 3)
                    continue
                vals = [8 * n / _timed(pool, k.read, n, t) / 1e9 for _ in range(2 if quick else 3)]
                scaling[str(t)] = round(max(vals), 3)
            # cache-resident read: a quarter of the LLC, many passes
            small = max(threads, min(n, llc // 4 // 8) // threads * threads)
            for _ in range(3):
                _timed(pool, k.read, small, threads)
            cached = [8 * small / _timed(pool, k.read, small, threads) / 1e9 for _ in range(10 if quick else 30)]
    finally:
        k = None  # drop the numpy views before unmapping
        arrays.close()
    out = {
        "status": "ok",
        "method": method,
        "byte_counting": "STREAM: read 8, copy 16, triad 24 bytes per element; write-allocate not counted",
        "array_bytes": n * 8,
        "llc_bytes": llc,
        "llc_multiple": round(n * 8 / llc, 2),
        "threads": threads,
        "repetitions": reps,
        "init_s": round(init_s, 3),
        "read_gbps": round(stats["read_gbps"]["best"], 3),
        "copy_gbps": round(stats["copy_gbps"]["best"], 3),
        "triad_gbps": round(stats["triad_gbps"]["best"], 3),
        "stats": stats,
        "thread_scaling_read_gbps": scaling,
        "cache_resident_read_gbps": round(max(cached), 3),
        "cache_resident_bytes": small * 8,
        "notes": notes,
    }
    out["warnings"] = noisy_warnings("bandwidth", stats)
    return out


if __name__ == "__main__":
    run_main(probe)
