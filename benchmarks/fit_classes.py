"""Fit the speed model's backend classes that need a cost per weight type: CPU, Vulkan, OpenCL, Hexagon.

Rows: device_db/published_benchmarks_dev.csv (Vulkan #10879, Jeff Geerling's CPU and Vulkan runs, T-MAC's CPU
thread scaling) and device_db/phone_runs_dev.csv (217 llama.cpp runs on a Snapdragon 8 Gen 2 phone over CPU,
OpenCL and Hexagon). Every row goes through the backtest's resolver, so it is predicted exactly as a user's
question would be (device from the database, its CPU cores at the row's threads, the model from the catalog).

Per class: bandwidth efficiency, per-layer and per-token fixed cost, and per weight type a decode compute cost
(FLOPs per weight over the class's peak) and a prefill efficiency; least squares on log(predicted/measured)
with a weak pull of each type's values toward the class mean (types with few rows stay near it). Types the data
lacks fall back to their family (K-quants, IQ) or the legacy 4-bit value. Prints in-sample and leave-one-out
errors (one model held out for the phone classes: one phone; one device otherwise) and with --write stores
the values with their provenance in device_db/speed_params.json.

    python benchmarks/fit_classes.py [--write] [--only cpu,opencl]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fitcheck.backtest import read_rows, resolve_row  # noqa: E402
from fitcheck.estimator.speed import (BackendParams, _read_per_token, cost_keys, estimate_speed,  # noqa: E402
                                      output_weights, recurrent_kind, recurrent_layers)

DB = HERE.parent / "device_db"
CLASSES = ("cpu", "vulkan", "opencl", "hexagon")
KINDS = ("gdn", "conv", "ssm")  # recurrent blocks: gated delta net, short convolution, Mamba
RIDGE = 0.15  # pull of log(type value) toward the class mean, per type


def samples_by_class() -> dict[str, list]:
    out: dict[str, list] = {c: [] for c in CLASSES}
    for path in (DB / "published_benchmarks_dev.csv", DB / "phone_runs_dev.csv"):
        for row in read_rows(path):
            res, _ = resolve_row(row)
            if res is None or res.backend not in out:
                continue
            # a prompt of unknown length (Ollama's "prompt eval rate") cannot fit prefill
            if res.metric == "prefill" and not row["test"].lower().startswith("pp"):
                continue
            try:
                out[res.backend].append((res, float(row["value"]), row))
            except ValueError:
                continue
    return out


def type_keys(samples) -> list[str]:
    """Weight types carrying at least 3 % of some row's weights (smaller ones fall back along cost_keys)."""
    keys = set()
    for res, _, _ in samples:
        share: dict[str, int] = {}
        for t, f in _read_per_token(res.spec):
            k = cost_keys(t.ggml_type)[0]
            share[k] = share.get(k, 0) + int(t.n_elements * f)
        total = sum(share.values())
        keys |= {k for k, n in share.items() if n >= 0.03 * total}
    return sorted(keys)


def unpack(x, keys: list[str]) -> BackendParams:
    n = len(keys)
    fpw = dict(zip(keys, np.exp(x[3:3 + n])))
    pp = dict(zip(keys, np.exp(x[3 + n:3 + 2 * n])))
    for table in (fpw, pp):  # the fallbacks cost_keys walks to: family means, then legacy 4-bit
        for fam, members in (("kq", [k for k in keys if k.endswith("_k")]), ("iq", [k for k in keys if k.startswith("iq")])):
            if members:
                table[fam] = float(np.exp(np.mean([np.log(table[k]) for k in members])))
        table.setdefault("q4", table.get("q4_0") or float(np.exp(np.mean(np.log(list(table.values()))))))
    r = 3 + 2 * n
    nodot = float(x[r + 2 * len(KINDS)])
    return BackendParams(bw_eff=float(x[0]), flops_per_weight={k: float(v) for k, v in fpw.items()},
                         t_layer_s=float(x[1]), pp_eff={k: float(v) for k, v in pp.items()}, t_token_s=float(x[2]),
                         t_recurrent_layer_s={k: float(x[r + i]) for i, k in enumerate(KINDS)},
                         t_recurrent_token_s={k: float(x[r + len(KINDS) + i]) for i, k in enumerate(KINDS)},
                         no_dot_factor=nodot)


def predict(res, p: BackendParams) -> float:
    e = estimate_speed(res.spec, res.device, p, n_prompt=res.n_prompt, depth=res.depth)
    return e.prefill_tps if res.metric == "prefill" else e.decode_tps


class Features:
    """What estimate_speed computes from a row that does not depend on the parameters, so a fit evaluates fast."""

    def __init__(self, samples, keys: list[str]):
        from fitcheck.estimator.speed import active_weights, kv_bytes_read

        self.keys = keys
        idx = {k: i for i, k in enumerate(keys)}
        n = len(samples)
        self.E = np.zeros((n, len(keys)))
        self.prefill = np.array([r.metric == "prefill" for r, _, _ in samples])
        self.m = np.array([m for _, m, _ in samples])
        self.read, self.wbytes, self.bw, self.flops, self.layers, self.np, self.attn, self.passes, self.active, self.rec, \
            self.out = (np.zeros(n) for _ in range(11))
        self.kind = np.zeros((n, len(KINDS)))
        self.nodot = np.array([not r.device.dot_product for r, _, _ in samples], dtype=float)
        for i, (r, _, _) in enumerate(samples):
            wb, elems, act = active_weights(r.spec)
            for t, e in elems.items():
                k = next(k for k in cost_keys(t) + tuple(keys) if k in idx)
                self.E[i, idx[k]] += e
            self.read[i] = wb + kv_bytes_read(r.spec, r.depth)
            self.wbytes[i], self.active[i] = wb, act
            self.bw[i], self.flops[i] = r.device.bw_gbps * 1e9, (r.device.peak_tflops or 0) * 1e12
            self.layers[i], self.np[i] = r.spec.n_layer, r.n_prompt
            self.attn[i] = 2 * r.spec.n_layer * max(r.spec.n_head) * r.spec.head_dim_k * r.n_prompt ** 2
            self.passes[i] = -(-r.n_prompt // 512)
            self.rec[i], self.out[i] = recurrent_layers(r.spec), output_weights(r.spec)
            self.kind[i, KINDS.index(recurrent_kind(r.spec))] = 1.0

    def tps(self, x) -> np.ndarray:
        n = len(self.keys)
        fpw, pp = np.exp(x[3:3 + n]), np.exp(x[3 + n:3 + 2 * n])
        r, k = 3 + 2 * n, len(KINDS)
        flops = self.flops * (1 - self.nodot * (1 - x[r + 2 * k]))
        fixed = self.layers * x[1] + x[2] + self.rec * (self.kind @ x[r:r + k])
        t_rec = self.rec * self.np * (self.kind @ x[r + k:r + 2 * k])
        decode = self.read / (x[0] * self.bw) + (self.E @ fpw) / flops + fixed
        eff = (self.E @ pp) / np.maximum(self.E.sum(1), 1)
        t_pp = ((2 * (self.active - self.out) * self.np + 2 * self.out + self.attn) / (eff * flops) + t_rec
                + self.passes * (self.wbytes / self.bw + fixed))
        return np.where(self.prefill, self.np / t_pp, 1 / decode)


def fit(samples, keys: list[str]) -> BackendParams:
    n = len(keys)
    k = len(KINDS)
    x0 = np.array([0.7, 1e-4, 1e-3] + [np.log(20.0)] * n + [np.log(0.3)] * n + [1e-4] * k + [1e-6] * k + [0.5])
    lo = [0.1, 0.0, 0.0] + [np.log(0.01)] * n + [np.log(1e-4)] * n + [0.0] * (2 * k) + [0.05]
    hi = [1.0, 5e-3, 0.2] + [np.log(5000.0)] * n + [np.log(5.0)] * n + [0.05] * k + [1e-3] * k + [1.0]
    has_pp = any(r.metric == "prefill" for r, _, _ in samples)

    f = Features(samples, keys)

    def resid(x):
        fl, pl = x[3:3 + n], x[3 + n:3 + 2 * n]
        return np.concatenate([np.log(np.maximum(f.tps(x), 1e-9) / f.m), RIDGE * (fl - fl.mean()),
                               RIDGE * (pl - pl.mean()) * has_pp])

    x = least_squares(resid, x0, bounds=(lo, hi), x_scale=[0.1, 1e-4, 1e-3] + [1.0] * (2 * n) + [1e-4] * k + [1e-5] * k + [0.1]).x
    p = unpack(x, keys)
    seen = {KINDS[j] for j in range(k) if (f.kind[:, j] * f.rec).any()}  # a kind without rows stays unfitted (0)
    p = replace(p, no_dot_factor=p.no_dot_factor if f.nodot.any() else 1.0,
                t_recurrent_layer_s={c: v for c, v in p.t_recurrent_layer_s.items() if c in seen},
                t_recurrent_token_s={c: v for c, v in p.t_recurrent_token_s.items() if c in seen})
    check = [predict(r, p) / t - 1 for (r, _, _), t in zip(samples[:5], f.tps(x)[:5])]
    assert max(map(abs, check)) < 0.01, check  # the fast path computes what estimate_speed does
    return p


def group_of(backend: str, res, row) -> str:
    if backend in ("opencl", "hexagon") or row["category"].startswith("phone_"):
        return row["model"]  # one phone: hold out each model
    return res.device.name


def errors(samples, p) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for res, m, row in samples:
        out.setdefault(f"{row['category']}/{res.metric}", []).append(abs(predict(res, p) / m - 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the values in device_db/speed_params.json")
    ap.add_argument("--only", default=",".join(CLASSES), help="comma-separated classes to fit")
    args = ap.parse_args()
    wanted = args.only.split(",")
    fitted = {}
    for backend, samples in samples_by_class().items():
        if backend not in wanted or not samples:
            continue
        keys = type_keys(samples)
        p = fit(samples, keys)
        print(f"\n== {backend}: {len(samples)} rows, weight types {', '.join(keys)} ==")
        print(f"  bw_eff {p.bw_eff:.3f}  t_layer {p.t_layer_s * 1e6:.1f} us  t_token {p.t_token_s * 1e3:.2f} ms"
              f"  per recurrent layer {', '.join(f'{k} {v * 1e6:.0f}' for k, v in p.t_recurrent_layer_s.items())} us, "
              f"no-dot-product factor {p.no_dot_factor:.2f}, per prompt token and recurrent layer {', '.join(f'{k} {v * 1e6:.1f}' for k, v in p.t_recurrent_token_s.items())} us")
        for k in keys:
            print(f"  {k:<8} flops/weight {p.flops_per_weight[k]:9.2f}   prefill eff {p.pp_eff[k]:.4f}")
        ins = errors(samples, p)
        print("  in-sample MAPE:")
        for k, v in sorted(ins.items()):
            print(f"    {k:<24} {statistics.fmean(v):6.1%}  (n={len(v)})")
        groups = sorted({group_of(backend, r, row) for r, _, row in samples})
        lo: dict[str, list[float]] = {}
        for g in groups:
            train = [s for s in samples if group_of(backend, s[0], s[2]) != g]
            test = [s for s in samples if group_of(backend, s[0], s[2]) == g]
            if len(train) < 4:
                continue
            pf = fit(train, type_keys(train))
            pf = replace(pf, flops_per_weight={**p.flops_per_weight, **pf.flops_per_weight},
                         pp_eff={**p.pp_eff, **pf.pp_eff})  # a type only the held-out group has: the full fit's
            for k, v in errors(test, pf).items():
                lo.setdefault(k.split("/")[1], []).extend(v)
        held = "model" if backend in ("opencl", "hexagon") else "device (phone rows: model)"
        by_model: dict[str, list] = {}
        for res, m, row in samples:
            by_model.setdefault(f"{row['model'][:28]:<28} {res.metric}", []).append(predict(res, p) / m - 1)
        print("  mean signed error by model:", "; ".join(f"{k.strip()} {statistics.fmean(v):+.0%}" for k, v in sorted(by_model.items())))
        print(f"  leave-one-{held}-out MAPE: " + ", ".join(f"{k} {statistics.fmean(v):.1%} (n={len(v)})" for k, v in lo.items()))
        cats = sorted({row["category"] for _, _, row in samples})
        fitted[backend] = {
            "bw_eff": round(p.bw_eff, 4), "t_layer_s": round(p.t_layer_s, 8), "t_token_s": round(p.t_token_s, 6),
            "t_recurrent_layer_s": {k: round(v, 7) for k, v in p.t_recurrent_layer_s.items()},
            "t_recurrent_token_s": {k: round(v, 9) for k, v in p.t_recurrent_token_s.items()},
            "no_dot_factor": round(p.no_dot_factor, 4),
            "flops_per_weight": {k: round(v, 3) for k, v in sorted(p.flops_per_weight.items())},
            "pp_eff": {k: round(v, 5) for k, v in sorted(p.pp_eff.items())},
            "peak": {"cpu": "fp32 FMA peak of the cores at the run's thread count (device_db/cpu_cores.csv)",
                     "vulkan": "fp32 non-tensor GPU TFLOPS", "opencl": "fp32 GPU TFLOPS (Adreno)",
                     "hexagon": "1.0 per Hexagon HTP (only the v73 was measured)"}[backend],
            "source": f"fitted by benchmarks/fit_classes.py on {len(samples)} rows ({', '.join(cats)}) on {dt.date.today()}",
            "in_sample_mape": {k: round(statistics.fmean(v), 4) for k, v in sorted(ins.items())},
            "lofo_mape": {k: round(statistics.fmean(v), 4) for k, v in lo.items()},
            "lofo_held_out": held,
        }
    if args.write and fitted:
        path = DB / "speed_params.json"
        doc = json.loads(path.read_text())
        doc["backends"] = {**doc["backends"], **fitted}
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
