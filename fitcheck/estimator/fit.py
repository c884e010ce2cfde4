"""Fit verdict: needed memory against a device's usable memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass

TIGHT_MARGIN = 0.10  # within the last 10 % of usable memory the answer is "tight"


@dataclass(frozen=True)
class FitResult:
    verdict: str  # fits | tight | does_not_fit; evaluate() makes does_not_fit pages or killed
    needed_bytes: int
    usable_bytes: int
    headroom_bytes: int
    margin: float

    def to_dict(self) -> dict:
        return asdict(self)


def fit_verdict(needed_bytes: int, usable_bytes: int, margin: float = TIGHT_MARGIN) -> FitResult:
    if needed_bytes > usable_bytes:
        verdict = "does_not_fit"
    elif needed_bytes > usable_bytes * (1 - margin):
        verdict = "tight"
    else:
        verdict = "fits"
    return FitResult(verdict, needed_bytes, usable_bytes, usable_bytes - needed_bytes, margin)
