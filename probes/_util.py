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
