"""Fit every backend class's speed parameters on the development data and (with --write) store them.

    fitcheck refit [--write] [--only cpu,opencl]        (or: python -m fitcheck.refit)
    python -m fitcheck.refit --runs RUNS.json [--write]  the CPU's attention / batched-decode factors

Rows: device_db/published_benchmarks_dev.csv (llama.cpp Metal #4167, CUDA #15013 and PRs, xiongjiedai, Vulkan
#10879, Jeff Geerling's runs, T-MAC's CPU thread scaling), device_db/phone_runs_dev.csv (217 llama.cpp runs on a
Snapdragon 8 Gen 2 phone over CPU, OpenCL and Hexagon), device_db/measured_runs_dev.csv (our own llama-bench runs
on a lent H200, benchmarks/cuda_check/), device_db/published_runs_dev.csv (791 llama-bench rows from llama.cpp pull
requests, issues and scoreboards and other public benchmark files, each with its source; those its `fit` column
rules out, old builds and reported faults, are backtested but not fitted) and device_db/depth_sweeps_dev.csv
(llama-bench at depth). Every row goes through the backtest's resolver, so it is predicted exactly
as a user's question would be; the fit (fitcheck/calibration/class_fit.py) evaluates the same speed terms as every
estimate (fitcheck/estimator/terms.py). Prints in-sample and leave-one-out errors (a device family held out; for
the phone classes a model, there being one phone); --write stores the values through params_to_dict, with their
provenance, in device_db/speed_params.json.

The CPU kernel model's carry-over factors (`cpu_kernels`) are fitted on real llama.cpp runs on this machine:
benchmarks/cpu_kernel_model.py measures them, fitcheck.calibration.kernels.fit_kernel_factors fits them and
write_kernel_factors here stores them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

from fitcheck.backtest import read_rows, samples_by_class
from fitcheck.calibration.class_fit import (ARCHS, CLASSES, OFFLOAD, PEAK, errors, fit, leave_one_out, offload,
                                            predict, type_keys)
from fitcheck.estimator.speed import BackendParams, CpuKernelParams, params_from_dict, params_to_dict

DEV_FILES = ("published_benchmarks_dev.csv", "phone_runs_dev.csv", "measured_runs_dev.csv", "published_runs_dev.csv",
             "depth_sweeps_dev.csv")


MIN_ROWS = 20  # rows a class needs before it is fitted on its own


def _db():
    return files("device_db")


def dev_rows() -> list[dict[str, str]]:
    return [r for f in DEV_FILES for r in read_rows(str(_db().joinpath(f)))]


def _sig(v: Any, digits: int = 5) -> Any:
    """Floats to `digits` significant figures (the stored file stays readable), recursively."""
    if isinstance(v, float):
        return float(f"{v:.{digits}g}") if v and math.isfinite(v) else v
    if isinstance(v, dict):
        return {k: _sig(x, digits) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [_sig(x, digits) for x in v]
    return v


def stored(p: BackendParams, backend: str, samples, ins: dict, lo: dict) -> dict[str, Any]:
    """A fitted class as device_db/speed_params.json keeps it: params_to_dict, rounded, with its provenance."""
    cats = sorted({row["category"] for _, _, row in samples})
    held = "model" if backend in ("opencl", "hexagon") else "device-family (phone rows: model)"
    return {**_sig(params_to_dict(p)), "peak": PEAK[backend],
            "source": f"fitted by `fitcheck refit` on {len(samples)} rows ({', '.join(cats)}) on {dt.date.today()}",
            "in_sample_mape": {k: round(statistics.fmean(v), 4) for k, v in sorted(ins.items())},
            "lofo_mape": {k: round(statistics.fmean(v), 4) for k, v in lo.items()}, "lofo_held_out": held}


def refit(only: tuple[str, ...] = CLASSES, say: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Fit the classes in `only` (CPU first: the GPU/NPU classes leave products to it); their stored forms."""
    fitted: dict[str, dict[str, Any]] = {}
    for backend, samples in samples_by_class(dev_rows(), CLASSES).items():
        if backend not in only or not samples:
            continue
        if len(samples) < MIN_ROWS:  # too few to fit a class on: it keeps borrowing (device_speed.BORROW)
            say(f"\n== {backend}: {len(samples)} rows, fewer than {MIN_ROWS}: not fitted, it borrows another class's ==")
            continue
        rules = OFFLOAD.get(backend, {})
        cpu = params_from_dict(fitted.get("cpu") or _shipped()["backends"]["cpu"])
        off = offload(cpu if "cpu_types" in rules else None, **rules) if rules else None
        keys = type_keys(samples, off)
        p = fit(samples, keys, off, ARCHS.get(backend, ()))
        ins, lo = errors(samples, p), leave_one_out(backend, samples, p)
        fitted[backend] = stored(p, backend, samples, ins, lo)
        _report(say, backend, samples, keys, p, ins, lo)
    return fitted


def _report(say, backend, samples, keys, p: BackendParams, ins, lo) -> None:
    say(f"\n== {backend}: {len(samples)} rows, weight types {', '.join(keys)} ==")
    if p.pp_arch:
        say("  prefill by GPU architecture: " + ", ".join(f"{a} x{v:.2f}" for a, v in p.pp_arch.items()))
    say(f"  bw_eff {p.bw_eff:.3f}  t_layer {p.t_layer_s * 1e6:.1f} us  t_token {p.t_token_s * 1e3:.2f} ms  "
        f"no-dot-product factor {p.no_dot_factor:.2f}  round trip {p.t_split_s * 1e3:.2f} ms  "
        f"half-efficiency columns {p.cols_half:.1f}")
    if any(p.score_macs.values()):
        say("  per-score cost (multiply-adds): " + ", ".join(f"{k} {v:.1f}" for k, v in p.score_macs.items() if v))
    for k in keys:
        say(f"  {k:<8} flops/weight {p.flops_per_weight[k]:9.2f}   prefill eff {p.pp_eff[k]:.4f}")
    say("  in-sample MAPE: " + ", ".join(f"{k} {statistics.fmean(v):.1%} (n={len(v)})" for k, v in sorted(ins.items())))
    by_model: dict[str, list] = {}
    for res, m, row in samples:
        by_model.setdefault(f"{row['model'][:28]} {res.metric}", []).append(predict(res, p) / m - 1)
    say("  mean signed error by model: " + "; ".join(f"{k} {statistics.fmean(v):+.0%}" for k, v in sorted(by_model.items())))
    say("  leave-one-out MAPE: " + ", ".join(f"{k} {statistics.fmean(v):.1%} (n={len(v)})" for k, v in lo.items()))


def _shipped() -> dict[str, Any]:
    return json.loads(_db().joinpath("speed_params.json").read_text())


def _write(update: Callable[[dict], None]) -> str:
    path = _db().joinpath("speed_params.json")
    doc = json.loads(path.read_text())
    update(doc)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return str(path)


def write_classes(fitted: dict[str, dict[str, Any]]) -> str:
    return _write(lambda doc: doc["backends"].update(fitted))


def write_kernel_factors(kp: CpuKernelParams, source: str) -> str:
    return _write(lambda doc: doc["cpu_kernels"].update({
        "bw_eff": round(kp.bw_eff, 4), "tg_scale": round(kp.tg_scale, 4), "pp_scale": round(kp.pp_scale, 4),
        "t_token_s": 0.0, "source": source}))


def write_batch_half(h: float, source: str) -> str:
    """Batched decode's gemm over few columns (fitcheck.calibration.depth_fit.fit_batch)."""
    return _write(lambda doc: doc["cpu_kernels"].update({"batch_half": round(h, 2), "batch_half_source": source}))


def write_score_macs(found: dict[str, float], source: str) -> str:
    """Attention's per-score costs (fitcheck.calibration.depth_fit), beside the kernel factors they go with."""
    return _write(lambda doc: doc["cpu_kernels"].update({"score_macs": {k: round(v, 1) for k, v in found.items()},
                                                         "score_macs_source": source}))


def fit_runs(path: Path, write: bool = False, source: str = "") -> None:
    """Fit (and with `write` store) the CPU attention or batching factors on benchmark runs (fitcheck.calibration.depth_fit)."""
    from fitcheck.calibration.depth_fit import fit, fit_batch, load_runs

    doc = load_runs(path)
    if doc["rows"] and "n_seq" in doc["rows"][0]:  # parallel runs
        h, report = fit_batch(doc)
        print(f"batched gemm: {h:.2f} columns' worth of the step to a matrix-vector product")
        for r in report:
            print(f"  {r['model'][:36]:<37} {r['n_seq']:>3} sequences: {r['before']:+.1%} -> {r['after']:+.1%} "
                  f"(gain over one: {r['gain_before']:+.1%} -> {r['gain_after']:+.1%})")
        for when in ("before", "after", "gain_before", "gain_after"):
            errs = [abs(r[when]) for r in report]
            print(f"MAPE {when.replace('_', ' ')}: {sum(errs) / len(errs):.1%} (worst {max(errs):.1%})")
        if write:
            print(f"wrote {write_batch_half(h, source or f'fitted by fitcheck.calibration.depth_fit on {path.name}')}")
        return
    found, report = fit(doc)
    print("f16 multiply-adds per score: " + ", ".join(f"{k} {v:.1f}" for k, v in found.items()))
    for r in report:
        print(f"  {r['model'][:36]:<37} FA {'on ' if r['flash_attn'] else 'off'} depth {r['depth']:>6} {r['metric']}: "
              f"{r['before']:+.1%} -> {r['after']:+.1%} (fall from depth 0: {r['fall_before']:+.1%} -> "
              f"{r['fall_after']:+.1%})")
    for metric in ("pp", "tg"):
        for when in ("before", "after", "fall_before", "fall_after"):
            errs = [abs(r[when]) for r in report if r["metric"] == metric and r["depth"]]
            if errs:
                print(f"{metric} at depth, MAPE {when.replace('_', ' ')}: {sum(errs) / len(errs):.1%} "
                      f"(worst {max(errs):.1%})")
    if write:
        print(f"wrote {write_score_macs(found, source or f'fitted by fitcheck.calibration.depth_fit on {path.name}')}")


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m fitcheck.refit", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the values in device_db/speed_params.json")
    ap.add_argument("--only", default=",".join(CLASSES), help="comma-separated classes to fit")
    ap.add_argument("--runs", type=Path, help="instead: fit the CPU's attention (or batched decode) factors on the "
                    "runs benchmarks/depth_vs_llama.py (parallel_vs_llama.py) wrote with --json")
    ap.add_argument("--source", default="", help="with --runs: where and when the runs were measured (stored)")
    args = ap.parse_args(argv)
    if args.runs:
        fit_runs(args.runs, args.write, args.source)
        return
    fitted = refit(tuple(args.only.split(",")))
    if args.write and fitted:
        print(f"\nwrote {write_classes(fitted)}")


if __name__ == "__main__":
    main()
