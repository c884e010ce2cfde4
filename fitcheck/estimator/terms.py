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

Decode, per token:   stream (weight and KV bytes / effective bandwidth) and compute (elements x cost by type,
                     attention's scores),
                     added, or the slower of the two where they overlap (a CPU's matrix-vector products stream
                     and compute at once); then fixed costs: per token, per layer, per round trip, per
                     recurrent layer.
Prefill, per prompt: element-tokens of the matrix products x cost by type (those that miss the fast kernels at
                     the slow cost; those over few columns per pass, a small ubatch or an MoE expert's tokens, dearer), attention's multiply-adds and scores, recurrent layers per token, and per pass (ubatch)
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
    # by type, element-tokens x (1/columns - 1/REF_COLUMNS) of the fast products: a product over few columns (a small
    # ubatch, or an MoE expert's share of one) fills its tiles less and costs more per element-token (Rates.cols_h)
    pp_narrow: Any
    attn_macs: Any  # attention multiply-adds over the prompt
    attn_scores: Any  # (n, 2) attention scores over the prompt: softmax apart (flash attention off), fused (on)
    dec_attn_macs: Any  # a decoded token's attention multiply-adds over the cache
    dec_scores: Any  # (n, 2) ... and its scores
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
    score_s: Any  # (2,) or (n, 2): per attention score under a prompt (masking, softmax): flash attention off, on
    dec_score_s: Any  # (2,) or (n, 2): ... in decode
    dec_attn_s: Any  # per attention multiply-add in decode
    pass_s_per_byte: Any  # a prefill pass reading its weights
    token_s: Any
    layer_s: Any
    split_s: Any
    rec_layer_s: Any  # (len(RECURRENT_BLOCKS),)
    rec_token_s: Any  # per prompt token and recurrent layer, by kind
    # by type, how a CPU multiplies a few columns at once (a batched decode step): 4: a repacked type's gemm over
    # groups of 4 columns, the rest one at a time; 1: tinyBLAS's gemm over any 2 or more; 0: one at a time. None: a
    # GPU/NPU class (its matrix-matrix rate where cheaper)
    batch_block: Any = None
    # a few columns through a CPU gemm cost between a matrix-vector product and the prompt's rate: half way at this
    # many columns (h / (h + columns) of the step from the prompt's rate remains)
    batch_half: float = 0.0
    # a fast product over c columns costs pp_s x (1 + cols_h x (1/c - 1/REF_COLUMNS)): cols_h = h / (1 + h/REF_COLUMNS)
    # for a half-efficiency column count h (speed.cols_h)
    cols_h: Any = 0.0
    overlap: bool = False  # decode's streaming and compute overlap (the slower sets the pace) rather than add
    fixed_in_pass: bool = True  # each prefill pass pays the per-token and per-layer costs again


def _core(w_stream, w_comp, kv_stream, a_comp, overlap: bool):
    """A decode step's streaming and compute, the weights' and the attention's: each op the slower of its own
    streaming and compute where they overlap (a CPU), else all added."""
    import numpy as np

    if overlap:
        return np.maximum(w_stream, w_comp) + np.maximum(kv_stream, a_comp)
    return w_stream + w_comp + kv_stream + a_comp


def decode_terms(w: Work, r: Rates) -> dict[str, Any]:
    """Seconds per decoded token: streaming, compute and fixed costs (arrays of w.n). Where streaming and compute
    overlap they do so op by op: the weights' products with the weights' bytes, attention with the cache's bytes
    (llama.cpp runs them as separate ops, one after the other)."""
    w_stream, kv_stream = (w.dec_bytes * r.s_per_byte).sum(1), w.kv_bytes * r.s_per_kv_byte
    w_comp = (w.dec_elems * r.dec_s).sum(1)
    a_comp = w.dec_attn_macs * r.dec_attn_s + (w.dec_scores * r.dec_score_s).sum(-1)
    fixed = w.token * r.token_s + w.layers * r.layer_s + w.trips * r.split_s + w.rec_layers @ r.rec_layer_s
    core = _core(w_stream, w_comp, kv_stream, a_comp, r.overlap)
    return {"bandwidth": w_stream + kv_stream, "compute": w_comp + a_comp, "fixed": fixed, "total": core + fixed,
            "weights": (w_stream, w_comp), "attention": (kv_stream, a_comp)}


def products_seconds(w: Work, r: Rates) -> Any:
    """Seconds of the prompt's matrix products (arrays of w.n): the fast ones, dearer over few columns, and the slow."""
    return (w.pp_elems * r.pp_s).sum(1) + (w.pp_narrow * r.pp_s).sum(1) * r.cols_h + (w.slow_elems * r.slow_s).sum(1)


def prefill_seconds(w: Work, r: Rates, fixed) -> Any:
    """Seconds for the whole prompt (arrays of w.n); `fixed` is decode_terms' fixed cost per pass."""
    mm = products_seconds(w, r)
    rec = (w.rec_layers @ r.rec_token_s) * w.n_prompt
    per_pass = w.pass_bytes * r.pass_s_per_byte + (fixed if r.fixed_in_pass else 0.0)
    return mm + w.attn_macs * r.attn_s + (w.attn_scores * r.score_s).sum(-1) + rec + w.passes * per_pass


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

    by_type = ("dec_elems", "dec_bytes", "pp_elems", "slow_elems", "pp_narrow")
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
    none, as decode_terms overlaps them); the matrix products have n_seq columns (every column a logit row, the head
    included), never below one token's; the per-token and per-layer costs once. On a CPU each type's columns go as llama.cpp's CPU backend
    takes them (r.batch_block: gemm groups at the prompt's rate, the rest as matrix-vector products); on a GPU/NPU
    at the prompt's matrix-matrix rate where that is cheaper than n_seq matrix-vector products. `rd`: the rates of
    wd's work. With n_seq = 1 it is decode_terms' total."""
    import numpy as np

    d0, dd = decode_terms(w0, r), decode_terms(wd, rd)
    (w_stream, w_comp), (kv_stream, a_comp) = d0["weights"], dd["attention"]
    n = np.asarray(n_seq, dtype=float)
    if r.batch_block is not None:
        # ggml-cpu repack.cpp forward_mul_mat_one_chunk: "more than three rows in src1: gemm" over all but n % 4,
        # gemv for those; llamafile/sgemm.cpp llamafile_sgemm takes any n >= 2 (F32/F16/BF16, Q8_0, Q4_0, Q5_0,
        # IQ4_NL); other types: ggml_compute_forward_mul_mat's vec_dot per row and column
        block = np.broadcast_to(np.asarray(r.batch_block, dtype=float), w0.dec_elems.shape)
        nn = n[:, None]
        gemm = np.where((block > 0) & (nn >= np.maximum(block, 2)), nn - np.mod(nn, np.maximum(block, 1)), 0.0)
        per_col = r.pp_s + (r.dec_s - r.pp_s) * r.batch_half / (r.batch_half + np.maximum(gemm, 1.0))
        batched = (w0.dec_elems * (gemm * per_col + (nn - gemm) * r.dec_s)).sum(1)
    else:
        batched = np.minimum(n * w_comp, n * (w0.dec_elems * r.pp_s).sum(1))
    # never cheaper than one token's products: a matrix-matrix kernel over a few columns is no faster than one pass
    batched = np.maximum(w_comp, batched)
    return _core(w_stream, batched, n * kv_stream, n * a_comp, r.overlap) + d0["fixed"]
