"""Fitting a backend class's speed parameters on measured rows (the backtest's resolved rows and their values).

Per class: bandwidth efficiency, per-layer and per-token fixed costs, per weight type a decode compute cost
(FLOPs per weight over the class's peak) and a prefill efficiency, recurrent-layer costs by kind, and a factor
for CPUs without int8 dot products. Least squares on log(predicted/measured) with a weak pull of each type's
values toward the class mean (types with few rows stay near it); types the data lacks fall back along
cost_keys. The fit evaluates the same terms as estimate_speed (fitcheck.estimator.terms), on every row at once.
Used by `fitcheck refit` (fitcheck/refit.py, which stores the values) and `fitcheck backtest --lofo`.
"""

from __future__ import annotations

import re
from dataclasses import replace

from fitcheck.estimator.speed import (EXPERT_HALF_TOKENS, PREFILL_CHUNK, SCORE_KEYS, BackendParams, arch_matches,
                                      class_rates_of, cols_h, cost_keys, cpu_side_seconds, device_work, estimate_speed,
                                      split_work)
from fitcheck.estimator.terms import RECURRENT_BLOCKS as KINDS, decode_terms, prefill_seconds, stack

RIDGE = 0.15  # pull of log(type value) toward the class mean, per type
DEEP = 2048  # cells in the cache from which a run tells the per-score cost apart


# a class's fixed rules (OFFLOAD below) rather than fitted: what a GPU/NPU backend leaves to the
# device's CPU (with the CPU class's parameters), which matrices miss its fast prefill kernels, the CPU class's
# reference thread
RULES = ("cpu", "cpu_types", "cpu_rows_over", "slow_under", "slow_align", "layer_ref_tflops")

# fitted in this order: opencl and hexagon use cpu
CLASSES = ("cpu", "vulkan", "opencl", "hexagon", "metal", "cuda", "rocm", "sycl", "mlx")
# what a GPU/NPU backend leaves to the device's CPU and which matrices miss its fast prefill kernels, as in the
# build the dev phone's runs used (llama.rn 0.12.0-rc.9):
_IQ_LOW = ("iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq4_xs")
OFFLOAD = {
    # ggml-hexagon.cpp ggml_hexagon_supported_mul_mat: Q4_0, Q8_0, IQ4_NL, MXFP4 and F16 only, no matrix of more
    # than 16 Ki rows (the lm-head, "too large for VTCM"); htp/matmul-ops.c op_matmul: quantized rows not a
    # multiple of 256 take HVX instead of HMX
    "hexagon": dict(cpu_types=("q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_1", "q5_0", "q5_1", "bf16") + _IQ_LOW,
                    cpu_rows_over=16 * 1024, slow_align=256),
    # ggml-opencl.cpp ggml_opencl_supports_op MUL_MAT: F16, F32, Q4_0, Q4_1, MXFP4, Q4_K, Q5_K, Q6_K, Q8_0 only;
    # use_adreno_kernels: a matrix with a side under 512 takes the generic kernels
    "opencl": dict(cpu_types=("q2_k", "q3_k", "q5_0", "q5_1", "bf16") + _IQ_LOW, slow_under=512),
    # not an offload: the CPU class's per-layer cost is for a thread of 0.05 TFLOPS FP32 (the dev phone's six, on
    # average) and shrinks on faster cores
    "cpu": dict(layer_ref_tflops=0.05),
}
# classes whose prefill efficiency is fitted per GPU architecture (fitcheck.device.backends.gpu_arch), where one has
# prefill rows on two devices or more: Vulkan's shaders take cooperative-matrix paths on some and not on others
ARCHS = {"vulkan": ("nvidia", "rdna4", "rdna3", "rdna2", "gcn", "intel-arc"),
         # tensor-core generations (fitcheck.device.backends._GPU_ARCHS): dp4a before Turing, int8 MMA after
         "cuda": ("nvidia-pascal", "nvidia-volta", "nvidia-turing", "nvidia-ampere", "nvidia-ada", "nvidia-hopper",
                  "nvidia-blackwell"),
         # WMMA on RDNA3/4, MFMA on CDNA, dp4a-style dot products on RDNA2 and GCN (ggml-cuda's HIP build)
         "rocm": ("rdna4", "rdna3", "rdna2", "cdna", "gcn")}
PEAK = {"cpu": "fp32 FMA peak of the cores at the run's thread count (device_db/cpu_cores.csv)",
        "metal": "fp16 Apple GPU TFLOPS", "cuda": "fp32 non-tensor CUDA TFLOPS", "vulkan": "fp32 non-tensor GPU TFLOPS",
        "opencl": "fp32 GPU TFLOPS (Adreno)", "rocm": "fp32 non-matrix GPU TFLOPS", "sycl": "fp32 GPU TFLOPS",
        "mlx": "fp16 Apple GPU TFLOPS", "hexagon": "1.0 per Hexagon HTP (only the v73 was measured)"}


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
    efficiency, a log prefill factor per architecture, the log of the columns at half a product's efficiency, the
    per-score costs (prompt and decode, flash attention off and on)."""

    BW, LAYER, TOKEN = 0, 1, 2

    def __init__(self, n: int, na: int = 0):
        r, k = 3 + 2 * n, len(KINDS)
        self.fpw, self.pp = slice(3, 3 + n), slice(3 + n, r)
        self.rec_layer, self.rec_token = slice(r, r + k), slice(r + k, r + 2 * k)
        self.nodot, self.split, self.slow = r + 2 * k, r + 2 * k + 1, r + 2 * k + 2
        self.arch = slice(r + 2 * k + 3, r + 2 * k + 3 + na)
        self.cols = r + 2 * k + 3 + na
        self.score = slice(self.cols + 1, self.cols + 5)  # per-score costs: pp, pp_fa, tg, tg_fa
        self.size = self.cols + 5

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
                                         (self.arch, 0.0, ln(0.2), ln(5.0), 0.3),
                                         (self.cols, ln(EXPERT_HALF_TOKENS), ln(0.5), ln(2048.0), 1.0),
                                         (self.score, 1.0, 0.0, 2000.0, 10.0)):
            x0[where], lo[where], hi[where], scale[where] = v0, low, high, sc
        return x0, lo, hi, scale


def fallback_weights(keys: list[str]) -> dict[str, dict[str, float]]:
    """Every entry of a fitted per-type table as weights (in log) over the fitted keys: each key itself, then the
    fallbacks cost_keys walks to: the K-quant and IQ family means, and the legacy 4-bit value (Q4_0's, else the
    mean of all). One definition for the stored table (unpack) and the fit's evaluation of it (lookup)."""
    out = {k: {k: 1.0} for k in keys}
    for fam, members in (("kq", [k for k in keys if k.endswith("_k")]), ("iq", [k for k in keys if k.startswith("iq")])):
        if members:
            out[fam] = {k: 1 / len(members) for k in members}
    out.setdefault("q4", {"q4_0": 1.0} if "q4_0" in keys else {k: 1 / len(keys) for k in keys})
    return out


def lookup(types, keys: list[str]):
    """(len(types), len(keys)) matrix: log of each type's table value as the fit's parameters give it (as
    speed._per_class finds it in the stored table)."""
    import numpy as np

    table, col = fallback_weights(keys), {k: j for j, k in enumerate(keys)}
    m = np.zeros((len(types), len(keys)))
    for i, t in enumerate(types):
        for k, wgt in table[next(c for c in cost_keys(t) if c in table)].items():
            m[i, col[k]] = wgt
    return m


def unpack(x, keys: list[str], archs: tuple[str, ...] = ()) -> BackendParams:
    import numpy as np

    L = Layout(len(keys), len(archs))
    table = fallback_weights(keys)
    value = lambda seg, w: float(np.exp(sum(v * seg[keys.index(k)] for k, v in w.items())))  # noqa: E731
    fpw = {name: value(x[L.fpw], w) for name, w in table.items()}
    pp = {name: value(x[L.pp], w) for name, w in table.items()}
    pp["slow"] = float(np.exp(x[L.slow]))
    return BackendParams(bw_eff=float(x[L.BW]), flops_per_weight=fpw, t_layer_s=float(x[L.LAYER]), pp_eff=pp,
                         t_token_s=float(x[L.TOKEN]),
                         t_recurrent_layer_s=dict(zip(KINDS, map(float, x[L.rec_layer]))),
                         t_recurrent_token_s=dict(zip(KINDS, map(float, x[L.rec_token]))),
                         no_dot_factor=float(x[L.nodot]), t_split_s=float(x[L.split]),
                         pp_arch={a: float(np.exp(v)) for a, v in zip(archs, x[L.arch])},
                         cols_half=float(np.exp(x[L.cols])),
                         score_macs=dict(zip(SCORE_KEYS, map(float, x[L.score]))))


def predict(res, p: BackendParams) -> float:
    e = estimate_speed(res.spec, res.device, p, n_prompt=res.n_prompt, depth=res.depth, prompt_depth=res.prompt_depth,
                       mode=res.mode, n_ubatch=res.n_ubatch)
    return e.prefill_tps if res.metric == "prefill" else e.decode_tps


class Features:
    """The parameter-free work of every row (fitcheck.estimator.terms.Work, built as estimate_speed builds it),
    so a fit evaluates the same terms on all rows at once for each trial of its parameters."""

    def __init__(self, samples, keys: list[str], off: BackendParams, archs: tuple[str, ...] = ()):
        import numpy as np

        self.keys, self.layout = keys, Layout(len(keys), len(archs))
        n = len(samples)
        works = [device_work(r.spec, r.device, off, r.n_prompt, r.depth, PREFILL_CHUNK.get(r.device.backend, r.n_ubatch),
                             prompt_depth=r.prompt_depth, mode=r.mode)
                 for r, _, _ in samples]
        self.work = stack([w.main for w in works])
        self.M = lookup(self.work.types, keys)
        self.M_f16 = lookup(("f16",), keys)[0]
        self.prefill = np.array([r.metric == "prefill" for r, _, _ in samples])
        self.deep = np.array([max(r.depth, r.prompt_depth) >= DEEP for r, _, _ in samples])
        self.m = np.array([m for _, m, _ in samples])
        self.bw = np.array([r.device.bw_gbps * 1e9 for r, _, _ in samples])
        self.peak = np.array([(r.device.peak_tflops or 0) * 1e12 for r, _, _ in samples])
        self.nodot = np.array([not r.device.dot_product for r, _, _ in samples], dtype=float)
        # a row takes its most specific fitted key ("nvidia-ampere" before "nvidia")
        own = [max((a for a in archs if arch_matches(r.device.gpu_arch, a)), key=len, default=None) for r, _, _ in samples]
        self.A = np.array([[float(o == a) for a in archs] for o in own]).reshape(n, len(archs))
        # what the backend leaves to the CPU runs at the CPU class's (fixed) parameters
        self.cpu_dec, self.cpu_pp = np.zeros(n), np.zeros(n)
        for i, ((r, _, _), w) in enumerate(zip(samples, works)):
            if w.cpu is not None:
                d, p = cpu_side_seconds(w.cpu, off.cpu, r.device)
                self.cpu_dec[i], self.cpu_pp[i] = d[0], p[0]
        self.slow = self.work.slow_elems.sum(1)
        self.trips, self.rec = self.work.trips, self.work.rec_layers
        self.fit_slow = bool(self.slow.any() and self.prefill.any())

    def rates(self, x):
        import numpy as np

        L = self.layout
        inv_pp = np.exp(-(self.M @ x[L.pp]))[None, :]
        return class_rates_of(
            self.work, bw=self.bw, flops=self.peak * (1 - self.nodot * (1 - x[L.nodot])), arch=np.exp(self.A @ x[L.arch]),
            bw_eff=x[L.BW], fpw=np.exp(self.M @ x[L.fpw])[None, :], inv_pp=inv_pp,
            inv_slow=np.full_like(inv_pp, np.exp(-x[L.slow])) if self.fit_slow else inv_pp,
            inv_f16=float(np.exp(-(self.M_f16 @ x[L.pp]))), fpw_f16=float(np.exp(self.M_f16 @ x[L.fpw])), token_s=x[L.TOKEN], layer_s=x[L.LAYER], split_s=x[L.split],
            rec_layer_s=x[L.rec_layer], rec_token_s=x[L.rec_token], narrow_h=cols_h(float(np.exp(x[L.cols]))),
            score=x[L.score][:2], dec_score=x[L.score][2:])

    def tps(self, x):
        import numpy as np

        r = self.rates(x)
        d = decode_terms(self.work, r)
        t_pp = prefill_seconds(self.work, r, d["fixed"]) + self.cpu_pp
        return np.where(self.prefill, self.work.n_prompt / t_pp, 1 / (d["total"] + self.cpu_dec))


def fit(samples, keys: list[str], off: BackendParams | None = None, archs: tuple[str, ...] = ()) -> BackendParams:
    import numpy as np
    from scipy.optimize import least_squares

    # an architecture with prefill rows on two devices or more (one device's factor would just be its residual)
    archs = tuple(a for a in archs if len({r.device.name for r, _, _ in samples
                                           if arch_matches(r.device.gpu_arch, a) and r.metric == "prefill"}) >= 2)
    has_pp = any(r.metric == "prefill" for r, _, _ in samples)

    off = off or offload()
    f = Features(samples, keys, off, archs)

    L = f.layout

    def resid(x):
        fl, pl = x[L.fpw], x[L.pp]
        return np.concatenate([np.log(np.maximum(f.tps(x), 1e-9) / f.m), RIDGE * (fl - fl.mean()),
                               RIDGE * (pl - pl.mean()) * has_pp, RIDGE * x[L.arch]])

    x0, lo, hi, scale = L.start()
    free = np.ones(L.size, dtype=bool)  # parameters the rows can tell; the rest stay at their start
    if not (f.work.pp_narrow[f.prefill] != 0).any():  # no small ubatch nor MoE prompt: the default stays
        free[L.cols] = False
    # a score cost only where the class has runs at depth with that flash-attention setting, else none
    deep = f.work.attn_scores[f.prefill & f.deep], f.work.dec_scores[~f.prefill & f.deep]
    for j, used in enumerate((deep[0][:, 0].any(), deep[0][:, 1].any(), deep[1][:, 0].any(), deep[1][:, 1].any())):
        if not used:
            x0[L.score.start + j], free[L.score.start + j] = 0.0, False

    def full(z):
        x = x0.copy()
        x[free] = z
        return x

    # published rows carry outliers (a misreported setting, a busy machine): errors past ~30 % count less than
    # their square (soft L1), so one bad row cannot pull a class
    z = least_squares(lambda z: resid(full(z)), x0[free], bounds=(lo[free], hi[free]), x_scale=scale[free],
                      loss="soft_l1", f_scale=0.3).x
    x = full(z)
    p = unpack(x, keys, archs)
    seen = {c for j, c in enumerate(KINDS) if f.rec[:, j].any()}  # a kind without rows stays unfitted (0)
    if not f.fit_slow:  # no row has a slow matrix: nothing to fit
        p.pp_eff.pop("slow")
    p = replace(p, no_dot_factor=p.no_dot_factor if f.nodot.any() else 1.0, **{k: getattr(off, k) for k in RULES},
                t_split_s=p.t_split_s if f.trips.any() else 0.0,
                t_recurrent_layer_s={c: v for c, v in p.t_recurrent_layer_s.items() if c in seen},
                t_recurrent_token_s={c: v for c, v in p.t_recurrent_token_s.items() if c in seen})
    check = [predict(r, p) / t - 1 for (r, _, _), t in zip(samples[:5], f.tps(x)[:5])]
    assert max(map(abs, check)) < 1e-9, check  # the same terms: the fit evaluates what estimate_speed does
    return p


def family(device: str) -> str:
    """Device family held out together (by name or id): an Apple generation, a GPU series, a data-centre part, else
    the device."""
    d = re.sub(r"[^a-z0-9]+", "-", device.lower())
    m = re.search(r"apple-(m\d|a\d+)", d)
    if m:
        return f"Apple {m.group(1).upper()}"
    for pat, name in ((r"quadro-rtx", "Quadro RTX"), (r"rtx-a\d", "RTX A-series"), (r"rtx-pro-\d", "RTX PRO"),
                      (r"rtx-(\d)0", "RTX {}0-series"), (r"rx-(\d)\d{3}", "RX {}000-series"),
                      (r"instinct-mi(\d)", "Instinct MI{}xx"), (r"arc-(?:pro-)?([ab])\d", "Arc {}-series"),
                      (r"gtx-(\d\d)\d0", "GTX {}-series"), (r"tesla-([pvtkm])\d", "Tesla {}")):
        m = re.search(pat, d)
        if m:
            return name.format(*(g.upper() for g in m.groups()))
    for key in ("a100", "h100", "jetson", "dgx"):
        if key in d:
            return key.upper()
    return device


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
