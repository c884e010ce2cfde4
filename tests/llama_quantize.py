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
    """GGUF hyperparameter keys llama.cpp reads for a catalog entry's architecture (the catalog's own)."""
    from fitcheck.model.arch_layouts import base_metadata, layout, parse_params

    lay = layout(e)
    return lay.metadata if lay else base_metadata(e, parse_params(e.arch_params))


def write_catalog_shape(path: str | os.PathLike, e, weight_type: str = "F16", seed: int = 0) -> Path:
    """A random-weight GGUF with exactly the tensors llama.cpp's converter writes for entry `e`."""
    from fitcheck.model.catalog import spec_from_catalog

    # the types a converter writes: 2-D weights in weight_type, norms, biases, conv kernels and gates in F32
    plan = [(t.name, t.shape, t.ggml_type) for t in spec_from_catalog(e, weight_type).tensors]
    (f,) = write_gguf(path, e.arch, plan, catalog_metadata(e), n_vocab=e.n_vocab, name=e.name,
                      file_type=weight_type, seed=seed)
    return f
