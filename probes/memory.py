"""Memory: RAM and swap, the container's effective limit (cgroup v1/v2), unified memory."""

from __future__ import annotations

import platform
from pathlib import Path

from ._util import run_main

# cgroup v1 reports "no limit" as a page-rounded 2**63-1; anything above this is unlimited
UNLIMITED = 1 << 60


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        v = int(text)
    except ValueError:
        return None
    return None if v >= UNLIMITED else v


def cgroup_limit(proc_cgroup: Path = Path("/proc/self/cgroup"), fs_root: Path = Path("/sys/fs/cgroup")) -> dict:
    """The tightest memory limit on this process's cgroup and its ancestors.

    cgroup v2: `0::/path` in /proc/self/cgroup, `memory.max` under the unified
    mount (fs_root, or fs_root/unified on hybrid hosts). cgroup v1: the line
    whose controllers include `memory`, `memory.limit_in_bytes` under
    fs_root/memory. Inside a cgroup namespace the path may not exist under the
    mount, so the mount root itself is read too.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return {"version": None, "limit_bytes": None, "usage_bytes": None}
    found: list[tuple[str, int | None, int | None]] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, rel = parts
        rel = rel.lstrip("/")
        if hid == "0" and controllers == "":
            for mount in (fs_root, fs_root / "unified"):
                if (mount / "cgroup.controllers").exists():
                    found.append(("v2",) + _walk(mount, rel, "memory.max", "memory.current"))
                    break
        elif "memory" in controllers.split(","):
            found.append(("v1",) + _walk(fs_root / "memory", rel, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    limits = [(v, lim, use) for v, lim, use in found if lim is not None]
    if limits:
        v, lim, use = min(limits, key=lambda x: x[1])
        return {"version": v, "limit_bytes": lim, "usage_bytes": use}
    versions = sorted({v for v, _, _ in found})
    return {"version": "+".join(versions) or None, "limit_bytes": None, "usage_bytes": None}


def _walk(mount: Path, rel: str, limit_file: str, usage_file: str) -> tuple[int | None, int | None]:
    """Min limit over the cgroup's directory and its ancestors (and the mount root)."""
    best: int | None = None
    usage: int | None = None
    p = mount / rel if rel else mount
    candidates = []
    while True:
        candidates.append(p)
        if p == mount:
            break
        p = p.parent
    for d in candidates:
        lim = _read_int(d / limit_file)
        if lim is not None and (best is None or lim < best):
            best = lim
            usage = _read_int(d / usage_file)
    return best, usage


def probe(quick: bool = False) -> dict:
    import psutil

    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    cg = cgroup_limit() if platform.system() == "Linux" else {"version": None, "limit_bytes": None, "usage_bytes": None}
    limit = vm.total if cg["limit_bytes"] is None else min(vm.total, cg["limit_bytes"])
    available = vm.available
    if cg["limit_bytes"] is not None and cg["usage_bytes"] is not None:
        available = min(available, max(0, cg["limit_bytes"] - cg["usage_bytes"]))
    unified = platform.system() == "Darwin" and platform.machine() == "arm64"
    return {
        "status": "ok",
        "total_bytes": vm.total,
        "available_bytes": available,
        "limit_bytes": limit,
        "limit_source": f"cgroup {cg['version']}" if cg["limit_bytes"] is not None and cg["limit_bytes"] < vm.total else "physical RAM",
        "cgroup": cg,
        "swap_total_bytes": sw.total,
        "swap_free_bytes": sw.free,
        "unified_memory": unified,
    }


if __name__ == "__main__":
    run_main(probe)
