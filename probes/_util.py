"""Shared helpers for probes: repetition statistics and the `python -m` entry."""

from __future__ import annotations

import json
import statistics
import sys
from typing import Callable

SPREAD_WARN = 0.10  # a measurement whose spread exceeds this is flagged as noisy


def unavailable(reason: str, **extra) -> dict:
    return {"status": "unavailable", "reason": reason, **extra}


def summarize(values: list[float], higher_is_better: bool = True) -> dict:
    """Best, median and spread ((max - min) / median) of repeated measurements."""
    med = statistics.median(values)
    spread = (max(values) - min(values)) / med if med else 0.0
    return {
        "best": max(values) if higher_is_better else min(values),
        "median": med,
        "spread": round(spread, 4),
        "n": len(values),
        "noisy": spread > SPREAD_WARN,
    }


def median_ci_halfwidth(values: list[float], n_boot: int = 300, seed: int = 1) -> float:
    """Half the 90 % bootstrap interval of the median, relative to the median (0 for < 3 values: unknown)."""
    import random

    if len(values) < 3:
        return float("inf")
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n_boot))
    lo, hi = meds[int(0.05 * n_boot)], meds[int(0.95 * n_boot) - 1]
    med = statistics.median(values)
    return (hi - lo) / 2 / med if med else float("inf")


def repeat_until_stable(measure: Callable[[], float], min_reps: int, max_reps: int, budget_s: float,
                        within: float = 0.05) -> tuple[list[float], bool]:
    """Repeat a measurement until the median's bootstrap interval is within +-`within`, or the budget ends.

    Returns the values and whether they settled."""
    import time

    values: list[float] = []
    t0 = time.perf_counter()
    while len(values) < max_reps:
        values.append(measure())
        if len(values) >= min_reps and median_ci_halfwidth(values) <= within:
            return values, True
        if len(values) >= min_reps and time.perf_counter() - t0 > budget_s:
            break
    return values, False


def cpu_times() -> dict[str, int] | None:
    """Aggregate CPU times from /proc/stat (user ... steal), or None where there is none."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    if not parts or parts[0] != "cpu":
        return None
    return {k: int(v) for k, v in zip(names, parts[1:])}


def cpu_clock_ratio(root: str = "/sys/devices/system/cpu") -> float | None:
    """Slowest core's current clock over its maximum (cpufreq), or None where the kernel does not expose it (most VMs).

    Read right after the probes' load: a ratio well under 1 then means thermal or power throttling."""
    import glob

    ratios = []
    for d in glob.glob(f"{root}/cpu[0-9]*/cpufreq"):
        try:
            cur = int(open(f"{d}/scaling_cur_freq").read())
            top = int(open(f"{d}/cpuinfo_max_freq").read())
        except (OSError, ValueError):
            continue
        if top > 0:
            ratios.append(cur / top)
    return min(ratios) if ratios else None


def steal_fraction(before: dict | None, after: dict | None) -> float | None:
    """Share of CPU time the hypervisor took from this VM between two cpu_times() readings."""
    if not before or not after:
        return None
    total = sum(after.values()) - sum(before.values())
    return (after.get("steal", 0) - before.get("steal", 0)) / total if total > 0 else None


def noisy_warnings(name: str, stats: dict[str, dict]) -> list[str]:
    return [
        f"{name}.{k}: spread {v['spread'] * 100:.0f} % over {v['n']} runs (noisy machine?)"
        for k, v in stats.items()
        if isinstance(v, dict) and v.get("noisy")
    ]


def run_main(probe: Callable[..., dict]) -> None:
    quick = "--quick" in sys.argv[1:]
    json.dump(probe(quick=quick), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
