"""How many people can use one device at once: batched decode of N requests, each with its own context.

For N = 1, 2, 4, ... the memory llama.cpp reserves with N sequences of `ctx` cells each (fitcheck.estimator.
memory: KV and recurrent state per sequence, logits per sequence) and the speed of a decode step that serves all N
(fitcheck.estimator.speed.estimate_parallel: weights streamed once, each sequence's cache read and attended), each
request halfway into its context on average. The answer: the most concurrent users that fit in memory and still
get at least `min_tps` each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fitcheck.errors import UsageError
from fitcheck.estimator.evaluate import Target, evaluate
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import AttnMode, estimate_parallel

MAX_USERS = 256


def users_ladder(most: int) -> list[int]:
    out, n = [], 1
    while n < most:
        out.append(n)
        n *= 2
    return out + [most]


def serve_capacity(model: str, target: Target, settings: RuntimeSettings, min_tps: float, quant: str | None = None,
                   most: int = 64) -> dict[str, Any]:
    """Rows per number of concurrent users, and the largest that fits and meets `min_tps` each."""
    from fitcheck.estimate import resolve_model

    if not 0 < min_tps <= 10_000:
        raise UsageError(f"--min-tps must be above 0 and at most 10000, got {min_tps:g}")
    if not 1 <= most <= MAX_USERS:
        raise UsageError(f"--max-users must be between 1 and {MAX_USERS}, got {most}")
    if target.speed is None or target.params is None:
        raise UsageError(f"{target.label}: no speed inputs (probe this device, or give --bandwidth-gbps)")
    spec, basis = resolve_model(model, quant)
    depth = settings.n_ctx // 2
    rows, best = [], None
    for n in users_ladder(most):
        ev = evaluate(spec, replace(settings, n_seq=n), target)
        par = estimate_parallel(spec, target.speed, target.params, n, depth, settings.n_ubatch, AttnMode.of(settings))
        ok = ev.fit.verdict == "fits" and par.per_seq_tps >= min_tps
        rows.append({"users": n, "verdict": ev.fit.verdict, "total_bytes": ev.memory.total_bytes,
                     "kv_bytes": ev.memory.kv_cache_bytes, "aggregate_tps": par.aggregate_tps,
                     "per_user_tps": par.per_seq_tps, "meets": ok})
        if ok:
            best = n
        if ev.fit.verdict in ("does_not_fit", "killed", "pages"):
            break
    return {"model": {"name": spec.name, "quant": spec.file_type, **{k: basis[k] for k in ("source",) if k in basis}},
            "device": target.to_dict(), "ctx_per_user": settings.n_ctx, "depth_assumed": depth,
            "min_tps": min_tps, "rows": rows, "max_users": best,
            "basis": {"speed": "each user halfway into the context; decode steps batched over all users (weights "
                               "streamed once per step, every user's cache read), as llama-server's parallel slots "
                               "and continuous batching run them",
                      "memory": "each user's own context of ctx cells (llama.cpp's n_seq x n_ctx), its own logits",
                      "settings": {"n_ctx": settings.n_ctx, "flash_attn": settings.flash_attn,
                                   "type_k": settings.type_k, "runtime": settings.runtime}}}
