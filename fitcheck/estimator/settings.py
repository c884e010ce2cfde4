"""Runtime settings an estimate assumes and a real run uses (one definition for both)."""

from __future__ import annotations

from dataclasses import dataclass

from fitcheck.errors import UsageError

KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")


@dataclass(frozen=True)
class RuntimeSettings:
    """llama.cpp context settings.

    Defaults are llama-cpp-python's where they matter for memory: flash
    attention off, and a full-size KV cache on sliding-window layers
    (swa_full). llama.cpp's own CLI reserves the SWA cache at window + ubatch
    instead (swa_full=False) and turns flash attention on where supported.
    """

    n_ctx: int = 4096
    n_batch: int = 512
    n_ubatch: int = 512
    n_seq: int = 1
    n_threads: int | None = None
    n_gpu_layers: int = 0
    flash_attn: bool = False
    type_k: str = "f16"
    type_v: str = "f16"
    swa_full: bool = True
    use_mmap: bool = True
    use_extra_bufts: bool = False
    runtime: str = "llama-cpp-python"

    def __post_init__(self):
        for name in ("type_k", "type_v"):
            if getattr(self, name) not in KV_TYPES:
                raise UsageError(f"unknown KV cache type {getattr(self, name)!r}; use one of {', '.join(KV_TYPES)}")
        if not 1 <= self.n_ctx <= 1 << 24:
            raise UsageError(f"context length {self.n_ctx} is outside 1..{1 << 24}")
        if not 1 <= self.n_ubatch <= self.n_batch <= 1 << 20:
            raise UsageError(f"need 1 <= n_ubatch ({self.n_ubatch}) <= n_batch ({self.n_batch})")
        if self.n_gpu_layers < 0:
            raise UsageError(f"--gpu-layers must be >= 0, got {self.n_gpu_layers}")
        if self.type_v not in ("f32", "f16", "bf16") and not self.flash_attn:
            raise UsageError(f"a quantized V cache ({self.type_v}) needs flash attention in llama.cpp (--flash-attn)")
