"""ModelSpec: everything the estimator needs to know about a model.

Built from a GGUF header here (and from the catalog elsewhere). Per-layer
values are tuples so models with varying head counts (OpenELM) or mixed
sliding/full attention (Gemma 2/3) are described exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gguf.constants import LlamaFileType

from fitcheck.errors import GGUFError
from fitcheck.model.gguf_reader import ArraySummary, GGUFModel

# llama.cpp's built-in sliding-window layouts (llama-model.cpp set_swa_pattern):
# with pattern n, layer il is sliding when il % n < n - 1.
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "gpt-oss": 2, "exaone4": 4, "llama4": 4}
# a window llama.cpp sets itself when the file has no sliding_window key (src/models/llama4.cpp: chunked attention
# of 8192 tokens, kept in a cache sized as a sliding window's; a key of 0 turns it off)
SWA_DEFAULT_WINDOW = {"llama4": 8192}
# Architectures whose sliding_window key llama.cpp reads but ignores.
SWA_IGNORED = {"phi3"}

# Sanity bounds on header counts; anything outside is a corrupt or hostile file.
LIMITS = {
    "block_count": (1, 4096),
    "embedding_length": (1, 1 << 20),
    "context_length": (1, 1 << 28),
    "head_count": (0, 1 << 16),
    "head_count_kv": (0, 1 << 16),
    "feed_forward_length": (0, 1 << 22),
    "key_length": (1, 1 << 16),
    "value_length": (1, 1 << 16),
    "vocab_size": (1, 1 << 24),
    "expert_count": (0, 1 << 14),
    "expert_used_count": (0, 1 << 14),
    "sliding_window": (0, 1 << 28),
    "state": (0, 1 << 20),  # recurrent-state dimensions: conv kernel, inner size, state size, groups
    "layers": (0, 4096),
}
# llama.cpp hard-codes gemma3n's KV layers (src/models/gemma3n.cpp:7, n_layer_kv_from_start = 20); the file's
# attention.shared_kv_layers is not read for it
KV_LAYERS_FIXED = {"gemma3n": 20}
# hybrids whose recurrent layers are listed (or follow full_attention_interval) rather than marked by 0 KV heads
GDN_ARCHS = ("qwen35", "qwen35moe", "qwen3next")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    ggml_type: str
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class ModelSpec:
    name: str
    architecture: str
    source: str
    n_layer: int
    n_embd: int
    n_ctx_train: int
    n_vocab: int
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    head_dim_k: int
    head_dim_v: int
    n_ff: tuple[int, ...]
    n_expert: int = 0
    n_expert_used: int = 0
    sliding_window: int | None = None
    swa_layers: tuple[bool, ...] = ()
    tensors: tuple[TensorSpec, ...] = ()
    file_type: str | None = None
    size_label: str | None = None
    rope: tuple[tuple[str, Any], ...] = field(default=())
    n_merges: int = 0  # BPE merges in the tokenizer: llama.cpp keeps them in memory
    # hybrid and shared-KV layouts (llama-hparams.cpp): sliding layers' own head dims, layers holding a recurrent
    # state instead of KV with its per-sequence widths (n_embd_r, n_embd_s), KV only below n_layer_kv, and
    # multi-token-prediction blocks at the end that get neither
    head_dim_k_swa: int | None = None
    head_dim_v_swa: int | None = None
    recurrent: tuple[bool, ...] = ()
    n_embd_r: int = 0
    n_embd_s: int = 0
    n_layer_kv: int | None = None
    n_nextn: int = 0
    # per-token f32 values a recurrent layer's graph holds at its peak beyond the residual rows (in-projections,
    # convolution input and output): llama.cpp's allocator, measured per family (see memory.compute_bytes)
    recurrent_rows: int = 0
    # multi-head latent attention (DeepSeek-V2/V3, Kimi K2, GLM-4.7-Flash ...): a converted file's K row is the
    # compressed latent plus its RoPE part, and V is a view of it (llama-kv-cache.cpp: has_v = !is_mla)
    mla: bool = False

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def weights_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def loaded_tensors(self) -> tuple[TensorSpec, ...]:
        """The tensors llama.cpp loads: a multi-token-prediction block's are skipped unless an MTP context asks
        (src/models/qwen35.cpp, deepseek2.cpp, glm4-moe.cpp ...: mtp_flags |= TENSOR_SKIP when !ml.load_mtp;
        llama-model-loader.cpp drops them from the model buffer)."""
        if not self.n_nextn:
            return self.tensors
        mtp = tuple(f"blk.{il}." for il in range(self.n_layer - self.n_nextn, self.n_layer))
        return tuple(t for t in self.tensors if not t.name.startswith(mtp))

    @property
    def loaded_weights_bytes(self) -> int:
        return sum(t.n_bytes for t in self.loaded_tensors)

    @property
    def bits_per_weight(self) -> float:
        n = self.parameter_count
        return self.weights_bytes * 8 / n if n else 0.0

    def head_dim_k_at(self, il: int) -> int:
        return self.head_dim_k_swa if self.head_dim_k_swa and self.is_swa(il) else self.head_dim_k

    def head_dim_v_at(self, il: int) -> int:
        return self.head_dim_v_swa if self.head_dim_v_swa and self.is_swa(il) else self.head_dim_v

    def n_embd_k_gqa(self, il: int) -> int:
        return self.head_dim_k_at(il) * self.n_head_kv[il]

    def n_embd_v_gqa(self, il: int) -> int:
        """V cache row width; none with MLA, where V is read from the K cache."""
        return 0 if self.mla else self.head_dim_v_at(il) * self.n_head_kv[il]

    def is_recurrent(self, il: int) -> bool:
        return bool(self.recurrent) and self.recurrent[il]

    def has_kv(self, il: int) -> bool:
        """llama.cpp gives layer il a KV cache (llama-hparams.cpp has_kv, the hybrid memory's layer filters)."""
        if il >= self.n_layer - self.n_nextn or self.is_recurrent(il) or not self.n_head_kv[il]:
            return False
        return self.n_layer_kv is None or il < self.n_layer_kv

    def recurrent_state_bytes(self, n_seq: int = 1) -> int:
        """F32 conv (r) and SSM (s) state per recurrent layer, one slot per sequence; independent of the context."""
        layers = sum(1 for il in range(self.n_layer - self.n_nextn) if self.is_recurrent(il))
        return layers * 4 * (self.n_embd_r + self.n_embd_s) * max(1, n_seq)

    def is_swa(self, il: int) -> bool:
        return bool(self.swa_layers) and self.swa_layers[il]

    def tensor_types(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for t in self.tensors:
            e = out.setdefault(t.ggml_type, {"bytes": 0, "elements": 0, "count": 0})
            e["bytes"] += t.n_bytes
            e["elements"] += t.n_elements
            e["count"] += 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["bytes"]))


def swa_layout(n_layer: int, pattern: int) -> tuple[bool, ...]:
    """llama.cpp's set_swa_pattern: every pattern-th layer attends fully."""
    return tuple(pattern > 0 and (il % pattern < pattern - 1) for il in range(n_layer))


def file_type_label(metadata: dict, tensors) -> str:
    ft = metadata.get("general.file_type")
    if isinstance(ft, int) and not isinstance(ft, bool):
        try:
            name = LlamaFileType(ft).name
        except ValueError:
            return f"unknown ({ft})"
        return "F32" if name == "ALL_F32" else name.removeprefix("MOSTLY_")
    # No file_type key: name it after the type holding most bytes of 2-D weights.
    by_type = Counter()
    for t in tensors:
        if len(t.shape) >= 2:
            by_type[t.ggml_type] += t.n_bytes
    return f"{by_type.most_common(1)[0][0]} (guessed)" if by_type else "unknown"


class _Meta:
    """Typed, bounded access to `{arch}.*` keys of one model."""

    def __init__(self, model: GGUFModel, arch: str):
        self.meta = model.metadata
        self.path = model.path
        self.arch = arch

    def fail(self, problem: str) -> GGUFError:
        return GGUFError(self.path, problem)

    def _check(self, key: str, short: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(f"{key} should be an integer, found {type(v).__name__} {v!r}")
        lo, hi = LIMITS[short]
        if not lo <= v <= hi:
            raise self.fail(f"{key} = {v} is outside the plausible range {lo}..{hi}")
        return v

    def int(self, short: str, suffix: str | None = None, default: Any = ...) -> int | None:
        key = f"{self.arch}.{suffix or short}"
        if key not in self.meta:
            if default is ...:
                raise self.fail(f"missing required key {key}")
            return default
        return self._check(key, short, self.meta[key])

    def per_layer(self, short: str, suffix: str, n_layer: int, default: Any = ...) -> tuple[int, ...]:
        key = f"{self.arch}.{suffix}"
        v = self.meta.get(key, default)
        if v is ...:
            raise self.fail(f"missing required key {key}")
        if isinstance(v, ArraySummary):
            raise self.fail(f"{key} has {v.count} entries for {n_layer} layers")
        if isinstance(v, list):
            if len(v) != n_layer:
                raise self.fail(f"{key} has {len(v)} entries for {n_layer} layers")
            return tuple(self._check(key, short, x) for x in v)
        return (self._check(key, short, v),) * n_layer


def vocab_size(model: GGUFModel, arch: str) -> int:
    tokens = model.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, ArraySummary):
        return tokens.count
    if isinstance(tokens, list):
        return len(tokens)
    v = model.metadata.get(f"{arch}.vocab_size")
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    for t in model.tensors:
        if t.name == "token_embd.weight" and len(t.shape) >= 2:
            return t.shape[1]
    raise GGUFError(model.path, "cannot tell the vocabulary size (no tokens, vocab_size or token_embd)")


def _swa(m: _Meta, n_layer: int) -> tuple[int | None, tuple[bool, ...]]:
    window = m.int("sliding_window", "attention.sliding_window", SWA_DEFAULT_WINDOW.get(m.arch))
    if not window or m.arch in SWA_IGNORED:
        return None, ()
    pattern = m.meta.get(f"{m.arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):
        if len(pattern) != n_layer:
            raise m.fail(f"sliding_window_pattern has {len(pattern)} entries for {n_layer} layers")
        layers = tuple(bool(x) for x in pattern)
    elif isinstance(pattern, int) and not isinstance(pattern, bool) and 0 < pattern <= n_layer:
        layers = swa_layout(n_layer, pattern)
    elif m.arch in SWA_PATTERNS:
        layers = swa_layout(n_layer, SWA_PATTERNS[m.arch])
    else:
        # A window key on an architecture llama.cpp treats as all-sliding (e.g. mistral v0.1
        # style); llama.cpp applies it only for the archs above, so report it without layers.
        return None, ()
    return (window, layers) if any(layers) else (None, ())


def spec_from_gguf(model: GGUFModel) -> ModelSpec:
    """Build a ModelSpec from a parsed GGUF model; raises GGUFError on missing or absurd keys."""
    arch = model.metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GGUFError(model.path, "missing required key general.architecture")
    m = _Meta(model, arch)
    n_layer = m.int("block_count")
    n_embd = m.int("embedding_length")
    n_head = m.per_layer("head_count", "attention.head_count", n_layer)
    n_head_kv = m.per_layer("head_count_kv", "attention.head_count_kv", n_layer, default=list(n_head))
    max_head = max(n_head) or 1
    head_k = m.int("key_length", "attention.key_length", n_embd // max_head or 1)
    head_v = m.int("value_length", "attention.value_length", n_embd // max_head or 1)
    window, swa_layers = _swa(m, n_layer)
    rope = tuple(
        sorted((k.removeprefix(f"{arch}.rope."), v) for k, v in model.metadata.items()
               if k.startswith(f"{arch}.rope.") and not isinstance(v, ArraySummary))
    )
    nv = vocab_size(model, arch)
    lo, hi = LIMITS["vocab_size"]
    if not lo <= nv <= hi:
        raise GGUFError(model.path, f"vocabulary size {nv} is outside the plausible range {lo}..{hi}")
    n_expert, n_expert_used = m.int("expert_count", default=0), m.int("expert_used_count", default=0)
    if n_expert_used > n_expert:
        raise GGUFError(model.path, f"uses {n_expert_used} experts per token of only {n_expert}")
    for t in model.tensors:
        if "_exps.weight" in t.name and len(t.shape) != 3:  # (gpt-oss's per-expert biases are 2-D)
            raise GGUFError(model.path, f"expert tensor {t.name!r} has {len(t.shape)} dimensions, not 3")
    name = model.metadata.get("general.name")
    size_label = model.metadata.get("general.size_label")
    hybrid = _hybrid(m, n_layer, n_embd, n_head_kv)
    return ModelSpec(
        name=name if isinstance(name, str) else arch,
        architecture=arch,
        source=model.path,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ctx_train=m.int("context_length", default=4096),
        n_vocab=nv,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_k,
        head_dim_v=head_v,
        n_ff=m.per_layer("feed_forward_length", "feed_forward_length", n_layer, default=0),
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        sliding_window=window,
        swa_layers=swa_layers,
        tensors=tuple(TensorSpec(t.name, t.ggml_type, t.shape, t.n_elements, t.n_bytes) for t in model.tensors),
        file_type=file_type_label(model.metadata, model.tensors),
        size_label=size_label if isinstance(size_label, str) else None,
        rope=rope,
        n_merges=_count(model.metadata.get("tokenizer.ggml.merges")),
        head_dim_k_swa=m.int("key_length", "attention.key_length_swa", None),
        head_dim_v_swa=m.int("value_length", "attention.value_length_swa", None),
        # llama-hparams.cpp is_mla(): both MLA head sizes set (src/models/deepseek2.cpp reads them, optional)
        mla=bool(m.int("key_length", "attention.key_length_mla", 0) and m.int("key_length", "attention.value_length_mla", 0)),
        **hybrid,
    )


def _hybrid(m: _Meta, n_layer: int, n_embd: int, n_head_kv: tuple[int, ...]) -> dict[str, Any]:
    """Recurrent layers and their state widths, KV-sharing and MTP layers, as llama.cpp reads them (see
    docs/llama_cpp_hybrid_memory.md: src/llama-hparams.cpp n_embd_r / n_embd_s, src/models/<arch>.cpp)."""
    nextn = m.int("layers", "nextn_predict_layers", 0)
    if nextn >= n_layer:
        raise m.fail(f"{m.arch}.nextn_predict_layers = {nextn} leaves no layers of {n_layer}")
    main = n_layer - nextn
    l_cache = m.int("state", "shortconv.l_cache", 0)
    conv = m.int("state", "ssm.conv_kernel", 0)
    out: dict[str, Any] = {"n_nextn": nextn}
    if l_cache or conv:
        if m.arch in GDN_ARCHS:
            flags = m.meta.get(f"{m.arch}.attention.recurrent_layers")
            if isinstance(flags, list):
                if len(flags) != n_layer:
                    raise m.fail(f"attention.recurrent_layers has {len(flags)} entries for {n_layer} layers")
                rec = tuple(bool(x) and il < main for il, x in enumerate(flags))
            else:
                every = m.int("layers", "full_attention_interval", 4) or 4
                rec = tuple(il < main and (il + 1) % every != 0 for il in range(n_layer))
        else:  # LFM2 short convolutions, Mamba2 hybrids: the layers without KV heads
            rec = tuple(h == 0 for h in n_head_kv)
        if l_cache:  # LFM2: in_proj (3 x n_embd) and the convolution over n_embd channels
            r, s, rows = n_embd * (l_cache - 1), 0, 4 * n_embd
        else:
            inner, state = m.int("state", "ssm.inner_size"), m.int("state", "ssm.state_size")
            groups = m.int("state", "ssm.group_count", 0)
            channels = inner + 2 * groups * state  # what the 1-D convolution runs over
            r, s = (conv - 1) * channels, state * inner
            if m.arch in GDN_ARCHS:  # fused q/k/v projection, convolution input and output
                rows = 3 * channels
            else:  # Mamba2: in_proj (z, xBC, dt) twice over, and the convolution
                rows = 2 * (inner + channels + m.int("state", "ssm.time_step_rank", 0)) + channels
        out.update(recurrent=rec, n_embd_r=r, n_embd_s=s, recurrent_rows=rows)
    shared = m.int("layers", "attention.shared_kv_layers", 0)
    if m.arch in KV_LAYERS_FIXED:
        out["n_layer_kv"] = KV_LAYERS_FIXED[m.arch]
    elif shared:
        if shared >= n_layer:
            raise m.fail(f"attention.shared_kv_layers = {shared} of {n_layer} layers")
        out["n_layer_kv"] = n_layer - shared
    return out


def _count(v: Any) -> int:
    if isinstance(v, ArraySummary):
        return v.count
    return len(v) if isinstance(v, list) else 0
