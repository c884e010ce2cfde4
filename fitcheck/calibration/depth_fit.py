"""Attention's per-score cost and batched decode's gemm on a CPU, fitted on llama.cpp runs, and (with --write) stored.

    python -m fitcheck.refit --runs RUNS.json [--write]

Runs at depth (below) or in parallel (`benchmarks/parallel_vs_llama.py --json`: fit_batch).

RUNS.json is what `benchmarks/depth_vs_llama.py --json` measured: the profile it predicted from and, per run, the
model file, the attention settings, the depth, and llama.cpp's prompt and decode rates. Each run is predicted with
the speed model's own terms (fitcheck.estimator.speed.estimate_speed), the multiply-adds of attention priced as
before; what llama.cpp spends beyond them grows with the scores it computes (masking and softmax: a separate
soft_max_ext pass over the scores with flash attention off, the online softmax of flash_attn_ext with it on), so
each of the four costs (prompt / decode x flash attention off / on) is one factor, in f16 multiply-adds of the
kernel probe's, fitted on the runs of its kind by least squares on the log error of each run's fall from the run
at depth 0 of the same model and settings (which every sweep needs).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from fitcheck.errors import FitcheckError

KEYS = ("pp", "pp_fa", "tg", "tg_fa")
BOUND = 2000.0  # f16 multiply-adds per score: far beyond any softmax


def load_runs(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise FitcheckError(f"{path}: cannot read the depth runs ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list) or not isinstance(doc.get("profile"), dict):
        raise FitcheckError(f"{path}: not the JSON benchmarks/depth_vs_llama.py --json writes (profile and rows)")
    return doc


def _setting(doc: dict[str, Any]):
    """(device, kernel parameters, model spec by path) the runs were predicted with."""
    from functools import lru_cache

    from fitcheck.device.device_speed import from_profile, params_for_basis
    from fitcheck.estimator.speed import CpuKernelParams
    from fitcheck.model.inspection import load_spec

    dev, basis = from_profile(doc["profile"])
    kp, _, _ = params_for_basis(dev.backend, basis, dev.kernels)
    if not isinstance(kp, CpuKernelParams):
        raise FitcheckError("the runs' profile has no measured llama.cpp kernels: nothing to fit against")
    return dev, kp, lru_cache(maxsize=None)(lambda path: load_spec(Path(path)))


def _predict(row: dict, spec, dev, kp, metric: str) -> float:
    from fitcheck.estimator.speed import AttnMode, estimate_speed

    mode = AttnMode(bool(row["flash_attn"]), bool(row.get("swa_full", True)))
    d, p, g = int(row["depth"]), int(row["prompt"]), int(row["gen"])
    if metric == "pp":
        return estimate_speed(spec, dev, kp, n_prompt=p, depth=0, prompt_depth=d, mode=mode,
                              n_ubatch=int(row.get("n_ubatch", 512))).prefill_tps
    return estimate_speed(spec, dev, kp, n_prompt=p, depth=d + p + g // 2, mode=mode,
                          n_ubatch=int(row.get("n_ubatch", 512))).decode_tps


def fit(doc: dict[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(score costs by KEYS, per-run errors before and after: absolute, and of the fall from depth 0).

    Each factor is fitted on how far each run falls from the run at depth 0 of the same model and settings, not on
    its absolute rate: what attention costs, apart from how well the rest of the model fits that model here."""
    from scipy.optimize import minimize_scalar

    dev, kp, spec_of = _setting(doc)
    group = lambda r: (r["model_path"], bool(r["flash_attn"]), r.get("swa_full", True), r["prompt"], r["gen"])  # noqa: E731
    base = {group(r): r for r in doc["rows"] if int(r["depth"]) == 0}
    cases = []  # (key, metric, row, its depth-0 row, spec, measured rate, measured rate at depth 0)
    for row in doc["rows"]:
        ref = base.get(group(row))
        if ref is None:
            raise FitcheckError(f"no depth-0 run for {row['model']} (flash attention {row['flash_attn']}): "
                                "each sweep needs one")
        fa = "_fa" if row["flash_attn"] else ""
        for metric, field in (("pp", "prefill_tps"), ("tg", "decode_tps")):
            cases.append((metric + fa, metric, row, ref, spec_of(row["model_path"]), float(row[field]), float(ref[field])))
    zero = replace(kp, score_macs={})

    def fall_error(p, c) -> float:
        _, metric, row, ref, spec, meas, meas0 = c
        return math.log(_predict(row, spec, dev, p, metric) / _predict(ref, spec, dev, p, metric)) - math.log(meas / meas0)

    found: dict[str, float] = {}
    for key in KEYS:
        mine = [c for c in cases if c[0] == key and int(c[2]["depth"])]
        if mine:
            found[key] = float(minimize_scalar(lambda k: sum(fall_error(replace(zero, score_macs={key: k}), c) ** 2
                                                             for c in mine),
                                               bounds=(0.0, BOUND), method="bounded", options={"xatol": 0.5}).x)
    after = replace(zero, score_macs=found)
    report = []
    for c in cases:
        _, metric, row, _, spec, meas, _ = c
        report.append({"model": row["model"], "flash_attn": row["flash_attn"], "depth": row["depth"], "metric": metric,
                       "measured": meas, "before": _predict(row, spec, dev, kp, metric) / meas - 1,
                       "after": _predict(row, spec, dev, after, metric) / meas - 1,
                       "fall_before": math.exp(fall_error(kp, c)) - 1, "fall_after": math.exp(fall_error(after, c)) - 1})
    return found, report


def fit_batch(doc: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    """(batch_half, per-run errors of the gain over one sequence before and after): how far a CPU gemm over a few
    columns falls short of the prompt's rate (terms.batch_step_seconds), fitted on parallel runs
    (`benchmarks/parallel_vs_llama.py --json`) by least squares on the log error of each run's gain over the run
    with one sequence of the same model."""
    from scipy.optimize import minimize_scalar

    from fitcheck.estimator.speed import AttnMode, estimate_parallel

    dev, kp, spec_of = _setting(doc)
    one = {r["model_path"]: r for r in doc["rows"] if int(r["n_seq"]) == 1}
    runs = [r for r in doc["rows"] if int(r["n_seq"]) > 1 and r["model_path"] in one]
    if not runs:
        raise FitcheckError("no parallel run with more than one sequence beside one with a single sequence")

    def pred(p, r):
        mode = AttnMode(bool(r.get("flash_attn")), bool(r.get("swa_full", True)))
        return estimate_parallel(spec_of(r["model_path"]), dev, p, int(r["n_seq"]), int(r["depth"]),
                                 int(r.get("n_ubatch", 512)), mode).aggregate_tps

    def gain_error(p, r) -> float:
        ref = one[r["model_path"]]
        return math.log(pred(p, r) / pred(p, ref)) - math.log(float(r["aggregate_tps"]) / float(ref["aggregate_tps"]))

    h = float(minimize_scalar(lambda h: sum(gain_error(replace(kp, batch_half=h), r) ** 2 for r in runs),
                              bounds=(0.0, 64.0), method="bounded", options={"xatol": 0.05}).x)
    after = replace(kp, batch_half=h)
    report = [{"model": r["model"], "n_seq": r["n_seq"], "before": pred(kp, r) / float(r["aggregate_tps"]) - 1,
               "after": pred(after, r) / float(r["aggregate_tps"]) - 1,
               "gain_before": math.exp(gain_error(kp, r)) - 1, "gain_after": math.exp(gain_error(after, r)) - 1}
              for r in runs]
    return h, report
