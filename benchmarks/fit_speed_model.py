"""Fit the speed model's parameters on published llama.cpp measurements.

Per backend class (Metal, CUDA), fits bw_eff, flops_per_weight[f16, q8, q4],
t_layer_s and pp_eff[f16, q8, q4] by least squares on log(predicted/measured)
over the rows of device_db/published_benchmarks_dev.csv that resolve to a
device and a model. Prints the fitted values, in-sample error per category and
metric, and leave-one-family-out errors (each device family held out in turn,
fitted on the rest). With --write, stores the values and their provenance in
device_db/speed_params.json.

    python benchmarks/fit_speed_model.py [--csv FILE] [--write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fitcheck.backtest import Resolved, read_rows, resolve_row  # noqa: E402
from fitcheck.estimator.speed import BackendParams, DeviceSpeedSpec, estimate_speed  # noqa: E402
from fitcheck.calibration.synth import SynthModel, spec_of  # noqa: E402

CPU_CSV = HERE.parent / "device_db" / "cpu_measurements.csv"

NAMES = ["bw_eff", "fpw_f16", "fpw_q8", "fpw_q4", "t_layer_s", "pp_f16", "pp_q8", "pp_q4"]
X0 = [0.8, 4.0, 6.0, 8.0, 1e-4, 0.5, 0.5, 0.5]
LO = [0.2, 0.0, 0.0, 0.0, 0.0, 0.02, 0.02, 0.02]
HI = [1.0, 200, 200, 200, 2e-3, 3.0, 3.0, 3.0]  # CUDA pp_eff is over fp32 peak, so tensor cores can exceed 1


# The CPU data (one machine, 5 models) cannot carry a compute cost per class: one shared value,
# and a prefill efficiency per class including K-quants (whose CPU kernels differ most).
CPU_NAMES = ["bw_eff", "fpw", "t_layer_s", "pp_f16", "pp_q8", "pp_q4", "pp_kq"]
CPU_X0, CPU_LO, CPU_HI = [0.8, 5.0, 1e-4, 0.3, 0.3, 0.3, 0.3], [0.2, 0, 0, 0.01, 0.01, 0.01, 0.01], [1.0, 200, 5e-3, 3, 3, 3, 3]


def to_params(x) -> BackendParams:
    if len(x) == len(CPU_NAMES):
        return BackendParams(bw_eff=x[0], flops_per_weight={c: x[1] for c in ("f16", "q8", "q4", "kq")}, t_layer_s=x[2],
                             pp_eff={"f16": x[3], "q8": x[4], "q4": x[5], "kq": x[6]})
    return BackendParams(bw_eff=x[0], flops_per_weight={"f16": x[1], "q8": x[2], "q4": x[3]}, t_layer_s=x[4],
                         pp_eff={"f16": x[5], "q8": x[6], "q4": x[7]})


def pred(res, x) -> float:
    e = estimate_speed(res.spec, res.device, to_params(x), n_prompt=res.n_prompt, depth=res.depth)
    return e.prefill_tps if res.metric == "prefill" else e.decode_tps


def family(device_id: str) -> str:
    m = re.match(r"apple-(m\d|a\d+)", device_id)
    if m:
        return f"Apple {m.group(1).upper()}"
    m = re.search(r"rtx-(\d)0", device_id)
    if m:
        return f"RTX {m.group(1)}0-series"
    for key in ("a100", "h100", "jetson", "dgx"):
        if key in device_id:
            return key.upper()
    return device_id


def cpu_rows() -> list:
    """CPU runs measured by benchmarks/measure_cpu_speed.py, each with its own probe figures."""
    import csv

    if not CPU_CSV.exists():
        return []
    out = []
    for r in csv.DictReader(CPU_CSV.open()):
        m = SynthModel(n_layer=int(r["n_layer"]), n_embd=int(r["n_embd"]), n_head=int(r["n_head"]),
                       n_head_kv=int(r["n_head_kv"]), n_ff=int(r["n_ff"]), n_vocab=int(r["n_vocab"]),
                       weight_type=r["weight_type"])
        dev = DeviceSpeedSpec("cpu", float(r["probe_read_gbps"]), float(r["probe_fp32_gflops"]) / 1000, name=r["machine"])
        metric = "prefill" if r["test"].startswith("pp") else "decode"
        res = Resolved(spec_of(m), dev, "cpu", metric, 512, 32 if metric == "decode" else 0, r["model"])
        out.append((res, float(r["value_tps"]), {"category": "cpu_measured", "test": r["test"], "model": r["model"]}))
    return out


def fit(samples) -> np.ndarray:
    def resid(x):
        return np.array([np.log(pred(r, x) / m) for r, m in samples])

    if samples and samples[0][0].backend == "cpu":
        return least_squares(resid, CPU_X0, bounds=(CPU_LO, CPU_HI), x_scale=[0.1, 1, 1e-4, 0.1, 0.1, 0.1, 0.1]).x
    return least_squares(resid, X0, bounds=(LO, HI), x_scale=[0.1, 1, 1, 1, 1e-4, 0.1, 0.1, 0.1]).x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default=str(HERE.parent / "device_db" / "published_benchmarks_dev.csv"))
    ap.add_argument("--write", action="store_true", help="store the fitted values in device_db/speed_params.json")
    args = ap.parse_args()
    by_backend: dict[str, list] = {}
    for row in read_rows(args.csv):
        res, _ = resolve_row(row)
        if res is None or res.backend not in ("metal", "cuda"):
            continue
        # main's "prompt eval" has an unknown prompt length: only llama-bench pp rows fit prefill
        if res.metric == "prefill" and not row["test"].lower().startswith("pp"):
            continue
        by_backend.setdefault(res.backend, []).append((res, float(row["value"]), row))
    if cpu := cpu_rows():
        by_backend["cpu"] = cpu
    out = {}
    for backend, rows in by_backend.items():
        samples = [(r, m) for r, m, _ in rows]
        x = fit(samples)
        print(f"\n== {backend}: {len(samples)} rows ==")
        for n, v in zip(CPU_NAMES if backend == "cpu" else NAMES, x):
            print(f"  {n:<10} {v:.6g}")
        err: dict[tuple, list] = {}
        for (r, m), (_, _, row) in zip(samples, rows):
            err.setdefault((row["category"], r.metric), []).append(abs(pred(r, x) / m - 1))
        print("  in-sample MAPE:")
        for k, v in sorted(err.items()):
            print(f"    {k[0]:<18} {k[1]:<8} {statistics.fmean(v):6.1%}  (n={len(v)})")
        # CPU rows come from one machine: hold out each model instead of a device family
        key = (lambda r: r.notes) if backend == "cpu" else (lambda r: family(r.device.name))
        fams = sorted({key(r) for r, _ in samples})
        lofo: dict[str, list] = {}
        print("  leave-one-family-out MAPE (family held out, fitted on the rest):")
        for fam in fams:
            train = [(r, m) for r, m in samples if key(r) != fam]
            test = [(r, m) for r, m in samples if key(r) == fam]
            if not train:
                continue
            xf = fit(train)
            for metric in ("decode", "prefill"):
                e = [abs(pred(r, xf) / m - 1) for r, m in test if r.metric == metric]
                if e:
                    lofo.setdefault(metric, []).extend(e)
                    print(f"    {fam:<16} {metric:<8} {statistics.fmean(e):6.1%}  (n={len(e)})")
        p = to_params(x)
        out[backend] = {
            "bw_eff": round(float(p.bw_eff), 4),
            "flops_per_weight": {k: round(float(v), 3) for k, v in p.flops_per_weight.items()},
            "t_layer_s": round(float(p.t_layer_s), 7),
            "pp_eff": {k: round(float(v), 4) for k, v in p.pp_eff.items()},
            "source": (f"fitted by benchmarks/fit_speed_model.py on {len(samples)} rows of published_benchmarks_dev.csv "
                       f"({', '.join(sorted({row['category'] for _, _, row in rows}))}) on {dt.date.today()}")
                      if backend != "cpu" else
                      f"fitted by benchmarks/fit_speed_model.py on {len(samples)} llama.cpp runs on one machine "
                      f"(device_db/cpu_measurements.csv: {rows[0][0].device.name}) on {dt.date.today()}; "
                      "no published CPU measurements in the dev set",
            "in_sample_mape": {f"{k[0]}/{k[1]}": round(statistics.fmean(v), 4) for k, v in sorted(err.items())},
            "lofo_mape": {k: round(statistics.fmean(v), 4) for k, v in lofo.items()},
        }
    if args.write:
        path = HERE.parent / "device_db" / "speed_params.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        backends = {**old.get("backends", {}), **out}
        doc = {"about": "speed model parameters per backend class; see fitcheck/speed.py for the model and each "
                        "entry's source for where the values come from", "backends": backends}
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
