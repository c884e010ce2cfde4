"""What a saved profile must hold before any answer rests on it.

A profile is fitcheck's own file, but it may be cut short by a crash, edited,
or replaced by anything at all. Every section an answer reads is checked for
type, finiteness and range; a failed probe's section ({"status": "error"}) is
allowed and means "not measured". Anything else is a ProfileError naming the
field, and the profile is re-probed (the main job) or refused, never used.
"""

from __future__ import annotations

import math
from typing import Any

from fitcheck.errors import ProfileError

MAX_BYTES = 1 << 60


def _num(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _section(prof: dict, key: str) -> dict | None:
    """The section when it measured; None when missing or a failed probe; ProfileError when malformed."""
    s = prof.get(key)
    if s is None:
        return None
    if not isinstance(s, dict):
        raise ProfileError(f"the saved profile's {key} is a {type(s).__name__}, not a section; run `fitcheck probe` again")
    status = s.get("status", "ok")
    if status != "ok":
        if not isinstance(status, str):
            raise ProfileError(f"the saved profile's {key}.status is not a word; run `fitcheck probe` again")
        return None
    return s


# (section, field, check, what a person is told)
FIELDS = (
    ("memory", "available_bytes", lambda v: _int(v, 1, MAX_BYTES), "a positive byte count"),
    ("memory", "limit_bytes", lambda v: _int(v, 1, MAX_BYTES), "a positive byte count"),
    ("bandwidth", "read_gbps", lambda v: _num(v, 1e-3, 1e5), "a bandwidth in GB/s (0.001..100000)"),
    ("compute", "fp32_gflops", lambda v: v is None or _num(v, 1e-3, 1e7), "a rate in GFLOP/s"),
    ("disk", "read_gbps", lambda v: v is None or _num(v, 1e-4, 1e4), "a rate in GB/s"),
    ("disk", "fault_read_gbps", lambda v: v is None or _num(v, 1e-4, 1e4), "a rate in GB/s"),
    ("disk", "paging_read_gbps", lambda v: v is None or _num(v, 1e-4, 1e4), "a rate in GB/s"),
    ("disk", "paging_random_read_gbps", lambda v: v is None or _num(v, 1e-4, 1e4), "a rate in GB/s"),
    ("cpu", "llc_bytes", lambda v: v is None or _int(v, 0, MAX_BYTES), "a byte count"),
)
PARAMS = (
    ("bw_eff", lambda v: _num(v, 1e-3, 2.0)),
    ("t_layer_s", lambda v: _num(v, 0.0, 1.0)),
    ("flops_per_weight", lambda v: isinstance(v, dict) and v and all(_num(x, 0.0, 1e6) for x in v.values())),
    ("pp_eff", lambda v: isinstance(v, dict) and v and all(_num(x, 1e-4, 1e3) for x in v.values())),
)


KERNEL_PARAMS = (("bw_eff", lambda v: _num(v, 0.05, 2.0)), ("tg_scale", lambda v: _num(v, 0.05, 10.0)),
                 ("pp_scale", lambda v: _num(v, 0.05, 10.0)), ("t_token_s", lambda v: _num(v, 0.0, 1.0)))


def validate(prof: Any, where: str = "the saved profile") -> dict[str, Any]:
    if not isinstance(prof, dict):
        raise ProfileError(f"{where} is not a JSON object; run `fitcheck probe` again")
    for key, field, ok, what in FIELDS:
        s = _section(prof, key)
        if s is None:
            continue
        v = s.get(field)
        if key == "memory" or v is not None or field == "read_gbps":
            if not ok(v):
                raise ProfileError(f"{where}: {key}.{field} is {v!r}, not {what}; run `fitcheck probe` again")
    if not isinstance(prof.get("warnings", []), list):
        raise ProfileError(f"{where}: warnings is not a list; run `fitcheck probe` again")
    cal = prof.get("calibration")
    if cal is not None:
        params = cal.get("params") if isinstance(cal, dict) else None
        if isinstance(params, dict) and "kernel_model" in params:
            km = params["kernel_model"]
            bad = next((k for k, ok in KERNEL_PARAMS if not (isinstance(km, dict) and ok(km.get(k)))), None)
        else:
            bad = "params" if not isinstance(params, dict) else next((k for k, ok in PARAMS if not ok(params.get(k))), None)
        if bad:
            raise ProfileError(f"{where}: the calibration's {bad} is missing or out of range; run `fitcheck calibrate` again")
    return prof
