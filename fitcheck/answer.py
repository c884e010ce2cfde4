"""The main job: can this device run 1.8B, 4B and 7B, at which quantization, and fast enough to use?

"yes" means a quantization fits with headroom and decodes at the target
(default USABLE_TPS, a reading pace); "fits, but slow" names the fitting
quantization that comes closest; "tight" and "no" say what it would need.
"""

from __future__ import annotations

from dataclasses import replace

from typing import Any, Callable

from fitcheck.errors import UsageError
from fitcheck.estimator.evaluate import DEFAULT_PROMPT, USABLE_TPS, Evaluation, Target, evaluate
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.model.catalog import resolve, spec_from_catalog
from fitcheck.model.quants import LADDER

SIZES = ("1.8b", "4b", "7b")


def check_target_tps(target_tps: float | None) -> None:
    if target_tps is not None and not 0 < target_tps <= 100_000:
        raise UsageError(f"--target-tps must be a speed between 0 and 100000 tokens/s, got {target_tps:g}")


def decode_upper_bound_tps(spec, read_gbps: float | None) -> float | None:
    """Tokens/s if every weight but the embedding tables were read once per token at full read bandwidth."""
    if not read_gbps:
        return None
    from fitcheck.estimator.speed import looked_up

    rows = looked_up(spec)
    per_token = sum(t.n_bytes for t in spec.tensors if t.name not in rows)
    return read_gbps * 1e9 / per_token if per_token > 0 else None


def answer(target: Target, sizes=SIZES, quants=LADDER, settings: RuntimeSettings | None = None,
           target_tps: float = USABLE_TPS, on_row: Callable[[str], None] | None = None,
           ctx_from_model: bool = False) -> dict[str, Any]:
    """Memory, verdict, prefill and decode for each size x quantization on one device, and one line per size.

    ctx_from_model: each model at its trained context (runtimes whose default context is the model's)."""
    check_target_tps(target_tps)
    base = settings or RuntimeSettings()
    rows, lines = [], []
    for size in sizes:
        entry, _ = resolve(size)
        s = replace(base, n_ctx=entry.n_ctx_train) if ctx_from_model else base
        evals: list[Evaluation] = []
        for q in quants:
            ev = evaluate(spec_from_catalog(entry, q), s, target)
            evals.append(ev)
            rows.append({"size": size, "model_id": entry.id, **ev.row(), "model": entry.name,
                         "decode_tps_upper_bound": decode_upper_bound_tps(ev.spec, target.read_gbps) if ev.runs else None})
            if on_row:
                on_row(f"{size} {q}")
        line = _line(f"{size.upper()} ({entry.name})", evals, target, target_tps)
        lines.append(_with_depth(line, evals, s, target))
    return {"device": target.to_dict(), "usable_bytes": target.usable_bytes,
            "settings": {"n_ctx": "each model's trained context" if ctx_from_model else base.n_ctx,
                         "runtime": base.runtime, "n_prompt": DEFAULT_PROMPT},
            "target_tps": target_tps, "rows": rows, "answers": lines, "calibrated": target.calibrated,
            "speed_basis": target.speed_note, "warnings": list(target.warnings),
            "verdict_uses": "reserved total (weights + full-context KV cache + worst-case compute buffer + overhead)"}


def _with_depth(line: dict[str, Any], evals: list[Evaluation], s: RuntimeSettings, target: Target) -> dict[str, Any]:
    """A long context (LONG_CONTEXT or more): the answer also says the speed with it full, and a full prompt's TTFT."""
    from fitcheck.estimator.evaluate import LONG_CONTEXT, depth_curve

    ev = next((e for e in evals if e.spec.file_type == line["quant"]), None)
    if s.n_ctx < LONG_CONTEXT or ev is None or not ev.in_memory or line["verdict"] not in ("yes", "slow", "tight"):
        return line
    c = depth_curve(ev.spec, s, target)
    if c is None:
        return line
    last, k = c["points"][-1], f"{s.n_ctx // 1024}k" if s.n_ctx % 1024 == 0 else str(s.n_ctx)
    t = c.get("full_prompt_ttft_s")
    when = (f"{t / 3600:.1f} h" if t >= 3600 else f"{t / 60:.0f} min" if t >= 120 else f"{t:.0f} s") if t else ""
    ttft = f", a {k} prompt's first token after {when}" if t else ""
    return {**line, "at_depth": c, "text": f"{line['text']}; {k} context full: ~{last['decode_tps']:.1f} t/s decode{ttft}"}


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _speed(ev: Evaluation) -> str:
    sp = ev.speed
    if sp is None:
        return "speed unknown"
    ud, up = ev.uncertainty
    pre = f", ~{sp.prefill_tps:.0f} t/s prefill ({sp.prefill_tps / (1 + up):.0f}–{sp.prefill_tps * (1 + up):.0f})" \
        if sp.prefill_tps else ""
    return f"~{sp.decode_tps:.1f} t/s decode ({sp.decode_tps / (1 + ud):.1f}–{sp.decode_tps * (1 + ud):.1f}){pre}"


def _line(label: str, evals: list[Evaluation], target: Target, target_tps: float) -> dict[str, Any]:
    """One answer per size: the highest-quality quant that fits and is fast enough, else the nearest miss."""
    usable = _gb(target.usable_bytes)
    fits = [e for e in evals if e.fit.verdict == "fits"]
    good = next((e for e in fits if e.meets(target_tps)), None)
    if good:
        verdict, ev = "yes", good
        text = f"yes, {ev.spec.file_type} — needs {_gb(ev.fit.needed_bytes)} of {usable} usable, {_speed(ev)}"
    elif fits and all(e.speed is None for e in fits):
        verdict, ev = "fits", fits[0]
        text = f"fits at {ev.spec.file_type} ({_gb(ev.fit.needed_bytes)} of {usable} usable); speed unknown"
    elif fits:
        verdict, ev = "slow", max(fits, key=lambda e: e.speed.decode_tps if e.speed else 0)
        text = (f"fits, but slow — fastest that fits is {ev.spec.file_type} at {_speed(ev)}, "
                f"under the {target_tps:g} t/s target ({_gb(ev.fit.needed_bytes)} of {usable} usable)")
    elif any(e.fit.verdict == "tight" for e in evals):
        verdict, ev = "tight", next(e for e in evals if e.fit.verdict == "tight")
        text = f"tight, {ev.spec.file_type} — needs {_gb(ev.fit.needed_bytes)} of {usable} usable, no headroom"
    else:
        verdict, ev = "no", evals[-1]
        text = f"no — needs {_gb(ev.fit.needed_bytes)} even at {ev.spec.file_type}, {usable} usable"
        paged = [e for e in evals if e.fit.verdict == "pages" and e.speed is not None]
        if paged:
            p = max(paged, key=lambda e: e.speed.decode_tps)
            use = "usable" if p.speed.decode_tps >= target_tps else "unusable"
            text += f"; it would page from storage at ~{p.speed.decode_tps:.2f} t/s at {p.spec.file_type} ({use})"
    return {"size": label, "verdict": verdict, "quant": ev.spec.file_type, "text": f"{label}: {text}"}
