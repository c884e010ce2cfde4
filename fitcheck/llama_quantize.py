"""llama.cpp's own quantizer (llama_model_quantize), run in a child process.

Used to check the catalog's per-tensor type rules against the real thing.
"""

from __future__ import annotations

import subprocess
import sys

from .llama_run import LlamaRunError

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
