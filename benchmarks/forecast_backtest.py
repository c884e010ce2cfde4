"""How well do the class trends forecast devices released later? Fit on the past, score on the future.

For each class and cutoff, `fitcheck forecast --as-of CUTOFF` fits its trends on the devices
released by then; every device of the class released after the cutoff is the reference: its
bandwidth, usable memory and predicted decode rate against the trend's value at its release
date. Printed: median absolute error and the share of later devices inside a factor of 1.5.

    python benchmarks/forecast_backtest.py
"""

from __future__ import annotations

import statistics

from fitcheck.errors import FitcheckError
from fitcheck.forecast import CLASSES, class_trends

CUTOFFS = ("2021-12", "2022-12", "2023-12")
QUANTITIES = (("bandwidth", lambda p: p.bw_gbps), ("usable_memory", lambda p: p.usable_bytes / 1e9),
              ("decode", lambda p: p.decode_tps))


def main() -> None:
    print(f"{'class':24} {'as of':8} {'fit':>4} {'later':>5}  " + "  ".join(f"{q:>22}" for q, _ in QUANTITIES))
    pooled: dict[str, list[float]] = {q: [] for q, _ in QUANTITIES}
    for cls in CLASSES:
        full = class_trends(cls, "7b")
        for cutoff in CUTOFFS:
            try:
                past = class_trends(cls, "7b", as_of=cutoff)
            except FitcheckError:
                continue
            later = [p for p in full.devices if p.release_year > max(x.release_year for x in past.devices)]
            if not later:
                continue
            cells = []
            for q, get in QUANTITIES:
                errs = [past.trends[q].at(p.release_year) / get(p) - 1 for p in later if get(p)]
                if not errs:
                    cells.append(f"{'-':>22}")
                    continue
                pooled[q] += errs
                within = sum(1 / 1.5 <= 1 + e <= 1.5 for e in errs) / len(errs)
                cells.append(f"{statistics.median(abs(e) for e in errs):>10.0%} med, {within:>4.0%} <1.5x")
            print(f"{cls:24} {cutoff:8} {len(past.devices):>4} {len(later):>5}  " + "  ".join(cells))
    print("pooled over every class and cutoff:")
    for q, errs in pooled.items():
        if errs:
            within = sum(1 / 1.5 <= 1 + e <= 1.5 for e in errs) / len(errs)
            print(f"  {q:14} median |error| {statistics.median(abs(e) for e in errs):.0%}, "
                  f"{within:.0%} of {len(errs)} later devices within 1.5x of the trend")


if __name__ == "__main__":
    main()
