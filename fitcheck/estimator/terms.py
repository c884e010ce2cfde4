"""The speed model's terms, written once. Pure: no I/O.

Every speed fitcheck quotes is a sum of these terms for each processor a run uses (a GPU, the CPU beside it, a
machine across a link), plus what crosses between them (fitcheck.estimator.placement). The same two functions
evaluate one run (an estimate: arrays of one row) and every measured run of a class at once (the fitter,
fitcheck.calibration.class_fit: arrays of n rows), so the fit and the estimate cannot drift apart.

`Work` is what a processor does, independent of any parameter: weight elements and bytes per decoded token by
GGML type, the prompt's matrix products, attention, per-layer and per-token steps. `Rates` are the seconds each
unit of work costs on it: the class model (fitted FLOPs per weight against a peak, fitcheck.estimator.speed.
class_rates) and the CPU kernel model (llama.cpp's own probed kernel rates, kernel_rates) are two ways to fill
them.

Decode, per token:   stream (weight and KV bytes / effective bandwidth) and compute (elements x cost by type),
                     added, or the slower of the two where they overlap (a CPU's matrix-vector products stream
                     and compute at once); then fixed costs: per token, per layer, per round trip, per
                     recurrent layer.
Prefill, per prompt: element-tokens of the matrix products x cost by type (those that miss the fast kernels at
                     the slow cost), attention's multiply-adds, recurrent layers per token, and per pass (ubatch)
                     the weights read once (and the fixed costs, on a GPU/NPU that launches every layer again).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

RECURRENT_BLOCKS = ("gdn", "conv", "ssm")  # gated delta net, short convolution, Mamba


@dataclass
class Work:
    """What one processor does for n runs (numpy arrays: (n,) or, by GGML type, (n, len(types)))."""

    types: tuple[str, ...]
    dec_elems: Any  # weight elements multiplied per decoded token
    dec_bytes: Any  # weight bytes streamed per decoded token
    kv_bytes: Any  # KV cache bytes read per decoded token
    pp_elems: Any  # prompt element-tokens of matrix products on the fast kernels (head once, expert batching)
    slow_elems: Any  # ... of those that miss them
    attn_macs: Any  # attention multiply-adds over the prompt
    n_prompt: Any
    passes: Any  # prompt passes (ubatches)
    pass_bytes: Any  # weight bytes one pass reads
    layers: Any  # layers whose per-layer cost it pays (scaled to the device's thread speed where the class says so)
    trips: Any  # round trips to another processor per token (graph splits)
    rec_layers: Any  # (n, len(RECURRENT_BLOCKS)) recurrent layers by kind
    token: Any  # 1 where the processor pays the per-token cost (the one that drives the graph), else 0

    @property
    def n(self) -> int:
        return len(self.n_prompt)


@dataclass
class Rates:
    """Seconds per unit of Work on one processor (arrays broadcastable against Work's fields)."""

    s_per_byte: Any  # streaming a weight byte, by type
    s_per_kv_byte: Any
    dec_s: Any  # decode compute per weight element, by type
    pp_s: Any  # prefill per element-token, by type
    slow_s: Any  # ... of a product that misses the fast kernels, by type
    attn_s: Any  # per attention multiply-add
    pass_s_per_byte: Any  # a prefill pass reading its weights
    token_s: Any
    layer_s: Any
    split_s: Any
    rec_layer_s: Any  # (len(RECURRENT_BLOCKS),)
    rec_token_s: Any  # per prompt token and recurrent layer, by kind
    overlap: bool = False  # decode's streaming and compute overlap (the slower sets the pace) rather than add
    fixed_in_pass: bool = True  # each prefill pass pays the per-token and per-layer costs again


def decode_terms(w: Work, r: Rates) -> dict[str, Any]:
    """Seconds per decoded token: streaming, compute and fixed costs (arrays of w.n)."""
    import numpy as np

    stream = (w.dec_bytes * r.s_per_byte).sum(1) + w.kv_bytes * r.s_per_kv_byte
    compute = (w.dec_elems * r.dec_s).sum(1)
    fixed = w.token * r.token_s + w.layers * r.layer_s + w.trips * r.split_s + w.rec_layers @ r.rec_layer_s
    core = np.maximum(stream, compute) if r.overlap else stream + compute
    return {"bandwidth": stream, "compute": compute, "fixed": fixed, "total": core + fixed}


def prefill_seconds(w: Work, r: Rates, fixed) -> Any:
    """Seconds for the whole prompt (arrays of w.n); `fixed` is decode_terms' fixed cost per pass."""
    mm = (w.pp_elems * r.pp_s).sum(1) + (w.slow_elems * r.slow_s).sum(1)
    rec = (w.rec_layers @ r.rec_token_s) * w.n_prompt
    per_pass = w.pass_bytes * r.pass_s_per_byte + (fixed if r.fixed_in_pass else 0.0)
    return mm + w.attn_macs * r.attn_s + rec + w.passes * per_pass


def stack(works: list[Work]) -> Work:
    """n one-row Works as one of n rows (their types joined into one set of columns)."""
    import numpy as np

    types = tuple(sorted({t for w in works for t in w.types}))
    col = {t: j for j, t in enumerate(types)}

    def widen(w: Work, a):
        out = np.zeros((1, len(types)))
        for j, t in enumerate(w.types):
            out[0, col[t]] = a[0, j]
        return out

    by_type = ("dec_elems", "dec_bytes", "pp_elems", "slow_elems")
    vals = {}
    for f in fields(Work):
        if f.name == "types":
            continue
        parts = [widen(w, getattr(w, f.name)) if f.name in by_type else getattr(w, f.name) for w in works]
        vals[f.name] = np.concatenate(parts, axis=0)
    return Work(types=types, **vals)


def batch_step_seconds(w0: Work, r: Rates, wd: Work, rd: Rates, n_seq) -> Any:
    """Seconds of one decode step for n_seq sequences at once (a server's batched decode, llama.cpp's one ubatch of
    n_seq tokens): the weights streamed once; each sequence's cache read and attended (wd at the depth less w0 at
    none); the matrix products have n_seq columns, priced as n_seq matrix-vector products or, when cheaper, at the
    prompt's matrix-matrix rate (every column a logit row, the head included), never below one token's; the
    per-token and per-layer costs once. `rd`: the rates of wd's work (its types include the cache's). With n_seq = 1 it is decode_terms' total."""
    import numpy as np

    d0, dd = decode_terms(w0, r), decode_terms(wd, rd)
    kv_stream, attn = dd["bandwidth"] - d0["bandwidth"], dd["compute"] - d0["compute"]
    gemm = (w0.dec_elems * r.pp_s).sum(1)
    # never cheaper than one token's products: a matrix-matrix kernel over a few columns is no faster than one pass.
    # On a CPU (streaming and compute overlap) every column stays a matrix-vector product: llama.cpp's batched
    # decode of 2, 4 and 8 sequences here gained 0.8x, 1.3x and 1.6x over one (benchmarks/parallel_vs_llama.py),
    # nowhere near the prompt's matrix-matrix rate
    batched = n_seq * d0["compute"] if r.overlap else np.minimum(n_seq * d0["compute"], n_seq * gemm)
    compute = np.maximum(d0["compute"], batched) + n_seq * attn
    stream = d0["bandwidth"] + n_seq * kv_stream
    core = np.maximum(stream, compute) if r.overlap else stream + compute
    return core + d0["fixed"]
