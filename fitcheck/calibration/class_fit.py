"""Fitting a backend class's speed parameters on measured rows (the backtest's resolved rows and their values).

Per class: bandwidth efficiency, per-layer and per-token fixed costs, per weight type a decode compute cost
(FLOPs per weight over the class's peak) and a prefill efficiency, recurrent-layer costs by kind, and a factor
for CPUs without int8 dot products. Least squares on log(predicted/measured) with a weak pull of each type's
values toward the class mean (types with few rows stay near it); types the data lacks fall back along
cost_keys. The fast path (Features) computes what estimate_speed does and is checked against it.
Used by benchmarks/fit_classes.py (which stores the values) and `fitcheck backtest --lofo`.
"""

from __future__ import annotations

import re
from dataclasses import replace

from fitcheck.estimator.speed import (PREFILL_CHUNK, BackendParams, active_weights, cost_keys, cpu_part,
                                      estimate_speed, expert_extra, kv_bytes_read, layer_scale, output_tensor,
                                      pass_bytes, recurrent_kind, recurrent_layers, split_work)

KINDS = ("gdn", "conv", "ssm")  # recurrent blocks: gated delta net, short convolution, Mamba
RIDGE = 0.15  # pull of log(type value) toward the class mean, per type


# a class's fixed rules, set by benchmarks/fit_classes.py rather than fitted: what a GPU/NPU backend leaves to the
# device's CPU (with the CPU class's parameters), which matrices miss its fast prefill kernels, the CPU class's
# reference thread
RULES = ("cpu", "cpu_types", "cpu_rows_over", "slow_under", "slow_align", "layer_ref_tflops")


def offload(cpu: BackendParams | None = None, **rules) -> BackendParams:
    """A class's rules (RULES) carried in an otherwise empty parameter set."""
    return BackendParams(1.0, {}, 0.0, {}, cpu=cpu, **rules)


def offload_of(p: BackendParams) -> BackendParams | None:
    """The rules a fitted class carries (None for a class that has none)."""
    rules = {k: getattr(p, k) for k in RULES}
    return offload(**rules) if any(v for k, v in rules.items() if k != "cpu") else None


def type_keys(samples, off: BackendParams | None = None) -> list[str]:
    """Weight types carrying at least 3 % of some row's weights on the backend itself (smaller ones fall back along
    cost_keys); what it leaves to the CPU is the CPU class's."""
    keys = set()
    for res, _, _ in samples:
        share: dict[str, int] = {}
        for t, n in split_work(res.spec, off or offload(), res.device).acc.items():
            k = cost_keys(t)[0]
            share[k] = share.get(k, 0) + n
        total = sum(share.values())
        keys |= {k for k, n in share.items() if n >= 0.03 * total}
    return sorted(keys)


class Layout:
    """Where each parameter sits in the vector the fit solves for, given the weight types (n) and GPU architectures
    (na) fitted: bandwidth efficiency, per-layer and per-token costs, then log cost and log prefill efficiency per
    type, recurrent costs per kind (decode, prefill), the no-dot-product factor, the round-trip cost, the log slow
    efficiency, a log prefill factor per architecture."""

    BW, LAYER, TOKEN = 0, 1, 2

    def __init__(self, n: int, na: int = 0):
        r, k = 3 + 2 * n, len(KINDS)
        self.fpw, self.pp = slice(3, 3 + n), slice(3 + n, r)
        self.rec_layer, self.rec_token = slice(r, r + k), slice(r + k, r + 2 * k)
        self.nodot, self.split, self.slow = r + 2 * k, r + 2 * k + 1, r + 2 * k + 2
        self.arch = slice(r + 2 * k + 3, r + 2 * k + 3 + na)
        self.size = r + 2 * k + 3 + na

    def start(self):
        """(start, lower bounds, upper bounds, scales) of the fit."""
        import numpy as np

        x0, lo, hi, scale = (np.zeros(self.size) for _ in range(4))
        ln = np.log
        for where, v0, low, high, sc in ((self.BW, 0.7, 0.1, 1.0, 0.1), (self.LAYER, 1e-4, 0.0, 5e-3, 1e-4),
                                         (self.TOKEN, 1e-3, 0.0, 0.2, 1e-3),
                                         (self.fpw, ln(20.0), ln(0.01), ln(5000.0), 1.0),
                                         (self.pp, ln(0.3), ln(1e-4), ln(5.0), 1.0),
                                         (self.rec_layer, 1e-4, 0.0, 0.05, 1e-4), (self.rec_token, 1e-6, 0.0, 1e-3, 1e-5),
                                         (self.nodot, 0.5, 0.05, 1.0, 0.1), (self.split, 1e-3, 0.0, 0.05, 1e-3),
                                         (self.slow, ln(0.05), ln(1e-4), ln(5.0), 1.0),
                                         (self.arch, 0.0, ln(0.2), ln(5.0), 0.3)):
            x0[where], lo[where], hi[where], scale[where] = v0, low, high, sc
        return x0, lo, hi, scale


def unpack(x, keys: list[str], archs: tuple[str, ...] = ()) -> BackendParams:
    import numpy as np

    L = Layout(len(keys), len(archs))
    fpw = dict(zip(keys, np.exp(x[L.fpw])))
    pp = dict(zip(keys, np.exp(x[L.pp])))
    for table in (fpw, pp):  # the fallbacks cost_keys walks to: family means, then legacy 4-bit
        for fam, members in (("kq", [k for k in keys if k.endswith("_k")]), ("iq", [k for k in keys if k.startswith("iq")])):
            if members:
                table[fam] = float(np.exp(np.mean([np.log(table[k]) for k in members])))
        table.setdefault("q4", table.get("q4_0") or float(np.exp(np.mean(np.log(list(table.values()))))))
    pp["slow"] = float(np.exp(x[L.slow]))
    return BackendParams(bw_eff=float(x[L.BW]), flops_per_weight={k: float(v) for k, v in fpw.items()},
                         t_layer_s=float(x[L.LAYER]), pp_eff={k: float(v) for k, v in pp.items()},
                         t_token_s=float(x[L.TOKEN]),
                         t_recurrent_layer_s=dict(zip(KINDS, map(float, x[L.rec_layer]))),
                         t_recurrent_token_s=dict(zip(KINDS, map(float, x[L.rec_token]))),
                         no_dot_factor=float(x[L.nodot]), t_split_s=float(x[L.split]),
                         pp_arch={a: float(np.exp(v)) for a, v in zip(archs, x[L.arch])})


def predict(res, p: BackendParams) -> float:
    e = estimate_speed(res.spec, res.device, p, n_prompt=res.n_prompt, depth=res.depth)
    return e.prefill_tps if res.metric == "prefill" else e.decode_tps


class Features:
    """What estimate_speed computes from a row that does not depend on the parameters, so a fit evaluates fast."""

    def __init__(self, samples, keys: list[str], off: BackendParams, archs: tuple[str, ...] = ()):
        import numpy as np


        self.keys, self.layout = keys, Layout(len(keys), len(archs))
        idx = {k: i for i, k in enumerate(keys)}
        n = len(samples)
        # elements by type key the backend computes per token; of those, prompt-token products in prefill
        self.E, self.P = np.zeros((n, len(keys))), np.zeros((n, len(keys)))
        self.prefill = np.array([r.metric == "prefill" for r, _, _ in samples])
        self.m = np.array([m for _, m, _ in samples])
        self.read, self.wbytes, self.bw, self.flops, self.layers, self.np, self.attn, self.passes, self.rec, \
            self.slow = (np.zeros(n) for _ in range(10))
        self.kind = np.zeros((n, len(KINDS)))
        self.nodot = np.array([not r.device.dot_product for r, _, _ in samples], dtype=float)
        self.cpu_dec, self.cpu_pp = np.zeros(n), np.zeros(n)  # the types the backend leaves to the CPU: fixed costs
        self.trips = np.zeros(n)
        self.A = np.array([[float(r.device.gpu_arch == a) for a in archs] for r, _, _ in samples]).reshape(n, len(archs))
        for i, (r, _, _) in enumerate(samples):
            wb = active_weights(r.spec)[0]
            out_type, out_n = output_tensor(r.spec)
            sp = split_work(r.spec, off, r.device)
            self.trips[i], self.slow[i] = sp.trips, sum(sp.slow.values()) * r.n_prompt
            if sp.cpu:
                self.cpu_dec[i], self.cpu_pp[i] = cpu_part(sp.cpu, off.cpu, r.device, r.n_prompt,
                                                           (out_type, out_n) if sp.out_on_cpu else ("", 0))
            ub = PREFILL_CHUNK.get(r.device.backend, 512)
            extra = expert_extra(r.spec, r.n_prompt, ub)
            for t, e in sp.acc.items():
                j = idx[next(k for k in cost_keys(t) + tuple(keys) if k in idx)]
                self.E[i, j] += e
                once = out_n * (r.n_prompt - 1) if t == out_type and not sp.out_on_cpu else 0
                self.P[i, j] += (e - sp.slow.get(t, 0)) * r.n_prompt - once + extra.get(t, 0.0)
            self.read[i] = wb + kv_bytes_read(r.spec, r.depth)
            self.wbytes[i] = pass_bytes(r.spec, min(r.n_prompt, ub))
            self.bw[i], self.flops[i] = r.device.bw_gbps * 1e9, (r.device.peak_tflops or 0) * 1e12
            self.layers[i], self.np[i] = r.spec.n_layer * layer_scale(off, r.device), r.n_prompt
            self.attn[i] = 2 * r.spec.n_layer * max(r.spec.n_head) * r.spec.head_dim_k * r.n_prompt ** 2
            self.passes[i] = -(-r.n_prompt // ub)
            self.rec[i] = recurrent_layers(r.spec)
            self.kind[i, KINDS.index(recurrent_kind(r.spec))] = 1.0

    def tps(self, x):
        import numpy as np

        L = self.layout
        fpw, inv_pp = np.exp(x[L.fpw]), np.exp(-x[L.pp])
        flops = self.flops * (1 - self.nodot * (1 - x[L.nodot]))
        fixed = self.layers * x[L.LAYER] + x[L.TOKEN] + self.rec * (self.kind @ x[L.rec_layer]) + self.trips * x[L.split]
        t_rec = self.rec * self.np * (self.kind @ x[L.rec_token])
        decode = self.read / (x[L.BW] * self.bw) + (self.E @ fpw) / flops + self.cpu_dec + fixed
        eff = np.where(self.E.sum(1) > 0, self.E.sum(1) / np.maximum(self.E @ inv_pp, 1e-30), 1.0)
        arch = np.exp(self.A @ x[L.arch])  # the row's GPU architecture's prefill factor (1 for others)
        t_pp = ((2 * (self.P @ inv_pp) + 2 * self.slow / np.exp(x[L.slow])) / (flops * arch)
                + self.attn / (eff * flops * arch) + self.cpu_pp + t_rec + self.passes * (self.wbytes / self.bw + fixed))
        return np.where(self.prefill, self.np / t_pp, 1 / decode)


def fit(samples, keys: list[str], off: BackendParams | None = None, archs: tuple[str, ...] = ()) -> BackendParams:
    import numpy as np
    from scipy.optimize import least_squares

    # an architecture with prefill rows on two devices or more (one device's factor would just be its residual)
    archs = tuple(a for a in archs if len({r.device.name for r, _, _ in samples
                                           if r.device.gpu_arch == a and r.metric == "prefill"}) >= 2)
    has_pp = any(r.metric == "prefill" for r, _, _ in samples)

    off = off or offload()
    f = Features(samples, keys, off, archs)

    L = f.layout

    def resid(x):
        fl, pl = x[L.fpw], x[L.pp]
        return np.concatenate([np.log(np.maximum(f.tps(x), 1e-9) / f.m), RIDGE * (fl - fl.mean()),
                               RIDGE * (pl - pl.mean()) * has_pp, RIDGE * x[L.arch]])

    x0, lo, hi, scale = L.start()
    x = least_squares(resid, x0, bounds=(lo, hi), x_scale=scale).x
    p = unpack(x, keys, archs)
    seen = {c for j, c in enumerate(KINDS) if (f.kind[:, j] * f.rec).any()}  # a kind without rows stays unfitted (0)
    if not (f.slow.any() and has_pp):  # no row has a slow matrix: nothing to fit
        p.pp_eff.pop("slow")
    p = replace(p, no_dot_factor=p.no_dot_factor if f.nodot.any() else 1.0, **{k: getattr(off, k) for k in RULES},
                t_split_s=p.t_split_s if f.trips.any() else 0.0,
                t_recurrent_layer_s={c: v for c, v in p.t_recurrent_layer_s.items() if c in seen},
                t_recurrent_token_s={c: v for c, v in p.t_recurrent_token_s.items() if c in seen})
    check = [predict(r, p) / t - 1 for (r, _, _), t in zip(samples[:5], f.tps(x)[:5])]
    assert max(map(abs, check)) < 0.01, check  # the fast path computes what estimate_speed does
    return p


def family(device_id: str) -> str:
    """Device family held out together: an Apple generation, an RTX series, a data-centre part, else the device."""
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


def group_of(backend: str, res, row) -> str:
    if backend in ("opencl", "hexagon") or row["category"].startswith("phone_"):
        return row["model"]  # one phone: hold out each model
    return family(res.device.name)


def errors(samples, p) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for res, m, row in samples:
        out.setdefault(f"{row['category']}/{res.metric}", []).append(abs(predict(res, p) / m - 1))
    return out




def leave_one_out(backend: str, samples, full: BackendParams) -> dict[str, list[float]]:
    """Errors of each group's rows (a device family, or a model on one phone) predicted by a fit without them."""
    off = offload_of(full)
    out: dict[str, list[float]] = {}
    for g in sorted({group_of(backend, r, row) for r, _, row in samples}):
        train = [s for s in samples if group_of(backend, s[0], s[2]) != g]
        test = [s for s in samples if group_of(backend, s[0], s[2]) == g]
        if len(train) < 4:
            continue
        pf = fit(train, type_keys(train, off), off, tuple(full.pp_arch))  # an architecture left alone: factor 1
        # a type only the held-out group has: the full fit's value
        pf = replace(pf, flops_per_weight={**full.flops_per_weight, **pf.flops_per_weight},
                     pp_eff={**full.pp_eff, **pf.pp_eff})
        for k, v in errors(test, pf).items():
            out.setdefault(k.split("/")[1], []).extend(v)
    return out
