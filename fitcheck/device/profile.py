"""The device profile: every probe's result in one versioned JSON, saved in the user dir.

A probe that raises is recorded as an error and the rest of the profile is
still produced. Saving writes a temp file and renames it, so a crash never
leaves a half-written profile.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

from fitcheck.errors import NoProfileError, ProfileError
from fitcheck.paths import user_dir

SCHEMA = "fitcheck-profile"
SCHEMA_VERSION = 1
PROFILE_NAME = "profile.json"
MAX_PROFILE_BYTES = 4 << 20  # a profile is a few kB; anything larger is not one fitcheck wrote
BUSY_LOAD = 0.5  # 1-minute load per core above which figures are flagged
STEAL_WARN = 0.05  # CPU steal above this share while probing: a busy host
CLOCK_WARN = 0.8  # slowest core's clock under this share of its maximum right after the probes: throttled


def profile_path() -> Path:
    return user_dir() / PROFILE_NAME


def _run(name: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    try:
        result = fn()
    except Exception as e:  # a broken probe must not sink the profile
        cause = e
        while cause is not None:  # ... but an interrupt that a cleanup error replaced still ends everything
            if isinstance(cause, KeyboardInterrupt):
                raise cause from None
            cause = cause.__context__
        result = {"status": "error", "reason": f"{type(e).__name__}: {e}"}
    return result, round(time.perf_counter() - t, 3)


def _load_warning(cores: int) -> str | None:
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    if cores and load1 / cores > BUSY_LOAD:
        return f"machine under load (1-min load {load1:.2f} on {cores} cores): bandwidth and compute may read low"
    return None


def collect(quick: bool = False, on_step: Callable[[str], None] | None = None,
            disk_dir: str | None = None) -> dict[str, Any]:
    """Run every probe and assemble the profile dict (the disk probe in `disk_dir`: where the models live)."""
    from fitcheck import __version__
    from probes import accelerators, bandwidth, compute, cpu, disk, memory, runtime

    step = on_step or (lambda name: None)
    prof: dict[str, Any] = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fitcheck_version": __version__,
        "host": platform.node(),
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                     "python": platform.python_version()},
        "quick": quick,
        "durations_s": {},
    }
    warnings: list[str] = []

    def run(name: str, fn: Callable[[], Any]) -> Any:
        step(name)
        result, secs = _run(name, fn)
        prof["durations_s"][name] = secs
        if isinstance(result, dict):
            if result.get("status") == "error":
                warnings.append(f"{name} probe failed: {result['reason']}")
            warnings.extend(result.pop("warnings", []) or [])
        return result

    from probes._util import cpu_clock_ratio, cpu_times, steal_fraction

    times0 = cpu_times()
    prof["memory"] = run("memory", lambda: memory.probe(quick))
    prof["cpu"] = run("cpu", lambda: cpu.probe(quick))
    cores = prof["cpu"].get("usable_cores") or os.cpu_count() or 1
    if w := _load_warning(cores):
        warnings.append(w)
    prof["bandwidth"] = run("bandwidth", lambda: bandwidth.probe(
        quick, llc_bytes=prof["cpu"].get("llc_bytes"), available_bytes=prof["memory"].get("available_bytes")))
    prof["compute"] = run("compute", lambda: compute.probe(quick))
    acc = run("accelerators", lambda: accelerators.probe(quick))
    prof["accelerators"] = acc.get("devices", [acc]) if isinstance(acc, dict) else []
    prof["disk"] = run("disk", lambda: disk.probe(quick, disk_dir))
    prof["runtime"] = run("runtime", lambda: runtime.probe(quick))
    clock = cpu_clock_ratio()
    prof["cpu_clock_ratio"] = round(clock, 3) if clock is not None else None  # None: not visible (most VMs)
    if clock is not None and clock < CLOCK_WARN:
        warnings.append(f"CPU throttled: the slowest core ran at {clock:.0%} of its maximum clock right after probing "
                        "(heat or power saving); speeds measured now may not hold")
    steal = steal_fraction(times0, cpu_times())
    prof["cpu_steal"] = round(steal, 4) if steal is not None else None
    if steal is not None and steal > STEAL_WARN:
        warnings.append(f"machine under load: the hypervisor took {steal:.0%} of CPU time (steal) while probing; "
                        "bandwidth and compute may read low")
    read = (prof.get("bandwidth") or {}).get("stats", {}).get("read_gbps", {}) if isinstance(prof.get("bandwidth"), dict) else {}
    if read and read.get("settled") is False:
        warnings.append(f"bandwidth did not settle within +-5 % (median interval +-{read.get('median_ci', 0):.0%}): "
                        "a noisy machine; speed intervals are wider")
    prof["warnings"] = warnings
    return prof


def save(prof: dict[str, Any], path: Path | None = None) -> Path:
    """Write atomically: temp file in the same folder, then rename."""
    from fitcheck.jsonio import write_json_atomic

    return write_json_atomic(path or profile_path(), prof, "profile", ProfileError)


def load(path: Path | None = None) -> dict[str, Any]:
    """Read a saved profile; ProfileError if it is missing, corrupt, from another schema or out of range."""
    from fitcheck.device.profile_schema import validate
    from fitcheck.jsonio import read_json

    given = path is not None
    path = path or profile_path()
    try:
        prof = read_json(path, "the profile", MAX_PROFILE_BYTES, ProfileError)
    except FileNotFoundError:
        if given:  # a profile file the user named: it is missing, not unprobed
            raise NoProfileError(f"{path}: no such profile file (give a file `fitcheck probe --json` or "
                                 "`fitcheck probe` saved, or a device name)") from None
        raise NoProfileError(f"no saved profile at {path}; run `fitcheck probe`") from None
    except ProfileError as e:
        raise ProfileError(f"{e}; run `fitcheck probe` again") from None
    if not isinstance(prof, dict) or prof.get("schema") != SCHEMA:
        raise ProfileError(f"{path} is not a fitcheck profile; run `fitcheck probe` again")
    if prof.get("version") != SCHEMA_VERSION:
        raise ProfileError(f"{path} has profile version {prof.get('version')!r}, this fitcheck reads {SCHEMA_VERSION}; run `fitcheck probe` again")
    return validate(prof, f"the profile {path.name}")


def carry_calibration(new: dict[str, Any], old: dict[str, Any] | None) -> str | None:
    """Keep the old profile's calibration in a new one; mark it stale (with why) when the hardware or the
    llama.cpp build it was made on changed. Returns a warning to show, or None."""
    cal = (old or {}).get("calibration")
    if not isinstance(cal, dict):
        return None
    changes = []
    for what, path in (("CPU", ("cpu", "model")), ("llama-cpp-python", ("runtime", "llama_cpp_python")),
                       ("llama.cpp threads", ("kernels", "threads")), ("weight repacking", ("kernels", "repack"))):
        a, b = (d.get(path[0], {}).get(path[1]) if isinstance(d.get(path[0]), dict) else None for d in (old, new))
        if a != b:
            changes.append(f"{what} {a} -> {b}")
    new["calibration"] = {**cal, "stale": "; ".join(changes) or cal.get("stale")} if changes else cal
    if changes:
        return f"the calibration was made on other hardware or software ({'; '.join(changes)}): kept but not used; run `fitcheck calibrate`"
    return None
