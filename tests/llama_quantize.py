"""Test helpers: llama.cpp's own quantizer (run in a child process) and a writer of
random-weight GGUFs in a catalog entry's exact tensor shapes.

Used to check the catalog's per-tensor type rules against the real thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fitcheck.calibration.llama_run import LlamaRunError
from fitcheck.calibration.synth import write_gguf

CHILD = r"""
import sys
import llama_cpp.llama_cpp as C
src, dst, ftype, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = C.llama_model_quantize_default_params()
p.ftype = getattr(C, "LLAMA_FTYPE_MOSTLY_" + ftype)
p.nthread = threads
rc = C.llama_model_quantize(src.encode(), dst.encode(), p)
sys.exit(0 if rc == 0 else 3)
"""


def quantize_gguf(src: str, dst: str, ftype: str, threads: int = 2, timeout_s: float = 600) -> None:
    """Quantize `src` to `dst` as file type `ftype` (e.g. Q4_K_M) with llama.cpp."""
    try:
        r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst), ftype, str(threads)],
                           capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LlamaRunError(f"quantizing {src} to {ftype} timed out after {timeout_s:.0f} s") from None
    if r.returncode != 0:
        tail = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        raise LlamaRunError(f"llama.cpp could not quantize {src} to {ftype}: {tail[-1] if tail else r.returncode}")


def catalog_metadata(e) -> dict:
    """GGUF hyperparameter keys llama.cpp reads for a catalog entry's architecture."""
    a = e.arch
    meta = {
        f"{a}.context_length": e.n_ctx_train,
        f"{a}.embedding_length": e.n_embd,
        f"{a}.block_count": e.n_layer,
        f"{a}.feed_forward_length": e.n_ff,
        f"{a}.attention.head_count": e.n_head,
        f"{a}.attention.head_count_kv": e.n_head_kv,
        f"{a}.attention.key_length": e.head_dim,
        f"{a}.attention.value_length": e.head_dim,
        f"{a}.rope.dimension_count": e.head_dim,
        f"{a}.rope.freq_base": 10000.0,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{a}.attention.layer_norm_epsilon": 1e-5,
    }
    if e.swa_window:
        meta[f"{a}.attention.sliding_window"] = e.swa_window
    if e.n_expert:
        meta[f"{a}.expert_count"] = e.n_expert
        meta[f"{a}.expert_used_count"] = e.n_expert_used
        meta[f"{a}.expert_feed_forward_length"] = e.expert_ff
    return meta


def write_catalog_shape(path: str | os.PathLike, e, weight_type: str = "F16", seed: int = 0) -> Path:
    """A random-weight GGUF with exactly the tensors llama.cpp's converter writes for entry `e`."""
    from fitcheck.model.catalog import tensor_shapes

    plan = [(n, s, weight_type if len(s) >= 2 and not n.endswith(("_norm.weight", "_inp.weight")) else "F32")
            for n, s in tensor_shapes(e)]
    (f,) = write_gguf(path, e.arch, plan, catalog_metadata(e), n_vocab=e.n_vocab, name=e.name,
                      file_type=weight_type, seed=seed)
    return f
