"""Measuring in rounds on a shared machine: a neighbour's burst only ever slows a run, and it can last a minute.

Every job runs once a round, rounds repeat until each job's two fastest agree or the next round would end past
the budget, and each job keeps its fastest. Used by the kernel probe and the calibration (and their benchmarks).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, TypeVar

R = TypeVar("R")
AGREE = 0.05  # two rounds this close: the rate is taken as settled
MAX_ROUNDS = 4


def fastest_two_agree(values: Sequence[float | None], within: float = AGREE) -> bool:
    """The two largest values within `within` of each other (fewer than two: not yet)."""
    top = sorted((v for v in values if v), reverse=True)[:2]
    return len(top) == 2 and top[0] / top[1] - 1 <= within


def spread(values: Sequence[float | None]) -> float:
    """Largest over smallest, less one."""
    vals = [v for v in values if v]
    return max(vals) / min(vals) - 1 if vals else 0.0


def in_rounds(jobs: Sequence[Callable[[int], R]], settled: Callable[[list[R]], bool], budget_s: float,
              min_rounds: int = 1, max_rounds: int = MAX_ROUNDS, hard: bool = False) -> list[list[R]]:
    """Each job's results, one per round (at least `min_rounds`, unless `hard`: then no round that would end past
    the budget starts, one round always); a job is called with the round's index."""
    seen: list[list[R]] = [[] for _ in jobs]
    t0 = time.perf_counter()
    for rnd in range(max_rounds):
        t_round = time.perf_counter()
        for job, results in zip(jobs, seen):
            results.append(job(rnd))
        now = time.perf_counter()
        past = now + (now - t_round) - t0 > budget_s
        if (rnd + 1 >= min_rounds and (all(settled(r) for r in seen) or past)) or (hard and past):
            break  # settled, or another round would end past the budget
    return seen
