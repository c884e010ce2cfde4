"""Memory model: what llama.cpp allocates for a model at given settings. Pure: no I/O.

Reserved vs resident. llama.cpp reserves the KV cache for the whole context
and a compute buffer for the worst-case graph (a full ubatch with every
token's logits). On CPU, mmapped weights are populated at load and the KV
cache is cleared (so touched) at creation, but only the part of the compute
buffer that real graphs use ever becomes resident. The verdict uses the
reserved total; the resident figure is what a process shows as RSS after
a prompt and generation.

Constants below were fitted to llama.cpp's own buffer reports and to RSS
measured on SmolLM2-135M, Gemma-3-270M and a synthetic 1 GB llama
(llama-cpp-python 0.3.36); benchmarks/memory_vs_llama.py re-measures them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fitcheck.errors import UsageError
from fitcheck.model.model_spec import ModelSpec
from fitcheck.model.quants import block_size, type_bytes
from fitcheck.estimator.settings import RuntimeSettings

MIB = 1 << 20
KV_PAD = 256  # llama.cpp pads the KV cache (and the SWA cache) to 256 cells
F32 = 4
# per-token f32 rows live beside the big tensors in each graph phase (residual, norms, q, kqv ...)
# (fitted to llama.cpp's CPU graph allocator, which is deterministic: tests/test_catalog_archs.py, test_memory.py)
ROWS_EMBD, ROWS_FFN, ROWS_OUT = 3, 5, 3
# process baseline of the runtime before any model buffer: interpreter + libraries
RUNTIME_BASE_BYTES = {"llama-cpp-python": 41 * MIB, "llama.cpp": 12 * MIB}
# llama.cpp's in-memory vocabulary: fixed part plus bytes per token and per BPE merge
VOCAB_FIXED_BYTES = int(8.4 * MIB)
VOCAB_BYTES_PER_TOKEN = 152
VOCAB_BYTES_PER_MERGE = 160


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    output_bytes: int
    overhead_bytes: int
    total_bytes: int
    resident_bytes: int
    compute_resident_bytes: int
    kv_cells: int
    kv_cells_swa: int | None
    host_bytes: int
    device_bytes: int
    gpu_layers: int
    notes: tuple[str, ...] = field(default=())
    recurrent_state_bytes: int = 0  # hybrids' per-sequence conv/SSM state (F32), in total and resident
    # weights llama.cpp copied into its CPU_REPACK buffer: resident twice (the copy, and the mapped file pages it was
    # read from, which stay mapped and count in RSS until the OS drops them), reserved once
    repacked_bytes: int = 0

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def pad(x: int, n: int) -> int:
    return -(-x // n) * n


def kv_cells(spec: ModelSpec, s: RuntimeSettings) -> tuple[int, int | None]:
    """Cells of the full-attention cache and of the sliding-window cache (None without SWA)."""
    full = pad(s.n_ctx, KV_PAD) * s.n_seq if s.n_seq > 1 else pad(s.n_ctx, KV_PAD)
    if not spec.sliding_window or not any(spec.swa_layers):
        return full, None
    if s.swa_full:
        return full, full
    return full, min(full, pad(spec.sliding_window * s.n_seq + s.n_ubatch, KV_PAD))


def _row_bytes(type_name: str, n: int) -> int:
    t = type_name.upper()
    if n % block_size(t):
        raise UsageError(f"a {t} KV cache needs rows in multiples of {block_size(t)} values; this model's rows hold {n}: "
                         "use --kv-type f16 or q8_0")
    return type_bytes(t, n)


def kv_cache_bytes(spec: ModelSpec, s: RuntimeSettings, layers: range | None = None) -> int:
    full, swa = kv_cells(spec, s)
    # without flash attention V is stored transposed, each row padded to the widest layer's
    # (llama-kv-cache.cpp: v_trans ? n_embd_v_gqa_max() : n_embd_v_gqa(il))
    v_max = None if s.flash_attn else max(spec.n_embd_v_gqa(il) for il in range(spec.n_layer))
    total = 0
    for il in layers if layers is not None else range(spec.n_layer):
        if not spec.has_kv(il):
            continue  # recurrent, attention-free, KV-sharing or multi-token-prediction layer
        cells = swa if (swa is not None and spec.is_swa(il)) else full
        v = spec.n_embd_v_gqa(il) if v_max is None else v_max
        total += cells * (_row_bytes(s.type_k, spec.n_embd_k_gqa(il)) + _row_bytes(s.type_v, v))
    return total


def _ffn_width(spec: ModelSpec) -> int:
    if spec.n_expert:
        # routed experts: each used expert's gate+up for every token, plus router logits
        exp = next((t.shape[1] for t in spec.tensors if "ffn_gate_exps" in t.name or "ffn_up_exps" in t.name), 0)
        return spec.n_expert_used * exp + spec.n_expert
    return max(spec.n_ff) if spec.n_ff else 4 * spec.n_embd


def compute_bytes(spec: ModelSpec, s: RuntimeSettings, n_kv: int | None = None, n_outputs: int | None = None) -> int:
    """Peak of the graph allocator for one ubatch: the largest of attention, FFN and output phases."""
    return max(compute_phases(spec, s, n_kv, n_outputs).values())


def compute_phases(spec: ModelSpec, s: RuntimeSettings, n_kv: int | None = None, n_outputs: int | None = None
                   ) -> dict[str, int]:
    """The graph allocator's need in each phase of one ubatch: attention, FFN, recurrent block, output (logits).
    A device of a split reserves the largest of the phases it runs.

    n_kv / n_outputs default to the reservation's worst case (full cache, every
    token's logits); pass the real values for what a run touches.
    """
    ub = s.n_ubatch
    full, swa = kv_cells(spec, s)
    n_kv_full = full if n_kv is None else min(full, n_kv)
    n_kv_swa = None if swa is None else (swa if n_kv is None else min(swa, n_kv))
    n_out = ub if n_outputs is None else n_outputs
    e = spec.n_embd
    q = max(spec.n_head[il] * spec.head_dim_k_at(il) for il in range(spec.n_layer))
    kv = max(spec.n_embd_k_gqa(il) for il in range(spec.n_layer))
    # KQ masks are graph inputs: alive through attention and FFN, one per attention kind
    mask_elt = 2 if s.flash_attn else F32
    masks = n_kv_full * ub * mask_elt + (n_kv_swa * ub * mask_elt if n_kv_swa else 0)
    # per-token f32 rows beside the big tensors: residual and norms (n_embd), Q and the attention output (q), K/V
    if s.flash_attn:
        attn = masks + (ROWS_EMBD * e + 2 * q + kv // 2) * ub * F32
    else:
        kq = 0
        for il in range(spec.n_layer):
            nkv = n_kv_swa if (n_kv_swa is not None and spec.is_swa(il)) else n_kv_full
            kq = max(kq, nkv * ub * spec.n_head[il] * F32)
        attn = kq + masks + (ROWS_EMBD * e + 5 * q // 2) * ub * F32
    if spec.n_expert:
        ffn = masks + (2 * _ffn_width(spec) + ROWS_FFN * e) * ub * F32
    else:  # gate and up outputs and their product
        ffn = masks + (3 * _ffn_width(spec) + (ROWS_FFN - 1) * e) * ub * F32
    rec = masks + (ROWS_EMBD * e + spec.recurrent_rows) * ub * F32 if spec.recurrent_rows else 0
    # Gemma-3n/4: the per-layer inputs (ple x n_layer a token) are built first (lookup, projection, their sum and
    # scale) and stay alive through every layer, beside AltUp's copies of the hidden state (gemma3n.cpp, gemma4.cpp)
    ple = next((t.shape[0] for t in spec.tensors if t.name == "per_layer_token_embd.weight"), 0)
    altup = next((t.shape[2] + 1 for t in spec.tensors if t.name == "altup_proj.weight" and len(t.shape) == 3), 0)
    alive = (ple + altup * e) * ub * F32
    attn, ffn = attn + alive, ffn + alive
    rec = max(rec, masks + (4 * ple + 2 * e) * ub * F32 if ple else 0)
    out = spec.n_vocab * n_out * F32 + ROWS_OUT * spec.n_embd * ub * F32
    return {"attn": attn, "ffn": ffn, "rec": rec, "out": out}


def overhead_bytes(spec: ModelSpec, s: RuntimeSettings) -> int:
    base = RUNTIME_BASE_BYTES.get(s.runtime, RUNTIME_BASE_BYTES["llama.cpp"])
    return base + VOCAB_FIXED_BYTES + VOCAB_BYTES_PER_TOKEN * spec.n_vocab + VOCAB_BYTES_PER_MERGE * spec.n_merges


def layer_of(name: str) -> int | None:
    if name.startswith("blk."):
        try:
            return int(name.split(".")[1])
        except (IndexError, ValueError):
            return None
    return None


def estimate_memory(spec: ModelSpec, s: RuntimeSettings, n_prompt: int = 512,
                    repacked_types: frozenset[str] = frozenset()) -> MemoryEstimate:
    """Reserved and resident memory of llama.cpp running `spec` with settings `s`.

    n_prompt is the prompt length of the workload the resident figure describes. repacked_types: the GGML types
    llama.cpp's CPU backend repacks on this device (empty: repacking off, or not known).
    """
    notes = []
    n_gpu = min(s.n_gpu_layers, spec.n_layer + 1)
    # weights: layers >= n_layer - n_gpu go to the device; the output layer goes with n_gpu > n_layer
    first_gpu = spec.n_layer - min(n_gpu, spec.n_layer)
    w_dev = 0
    for t in spec.loaded_tensors:
        il = layer_of(t.name)
        if (il is not None and il >= first_gpu and n_gpu) or (il is None and n_gpu > spec.n_layer and not t.name.startswith("token_embd")):
            w_dev += t.n_bytes
    weights = spec.loaded_weights_bytes
    # llama-model-loader reads a repacked tensor from the mapping into CPU_REPACK and keeps the file mapped
    repacked = sum(t.n_bytes for t in spec.loaded_tensors if t.ggml_type.upper() in repacked_types) \
        if repacked_types and s.use_mmap and not n_gpu else 0
    kv = kv_cache_bytes(spec, s)
    state = spec.recurrent_state_bytes(s.n_seq)
    kv_dev = kv_cache_bytes(spec, s, range(first_gpu, spec.n_layer)) if n_gpu else 0
    comp = compute_bytes(spec, s)
    out = spec.n_vocab * F32 * s.n_seq
    over = overhead_bytes(spec, s)
    full, swa = kv_cells(spec, s)
    if s.n_ctx > spec.n_ctx_train:
        notes.append(f"context {s.n_ctx} exceeds the model's trained context {spec.n_ctx_train}")
    # resident after a prompt of n_prompt tokens (one output) and generation
    n_kv_run = min(full, pad(max(n_prompt, 1), KV_PAD))
    comp_res = compute_bytes(spec, s, n_kv=n_kv_run, n_outputs=1)
    comp_dev = comp if n_gpu else 0
    comp_host = comp if not n_gpu else (comp_res if first_gpu > 0 else ROWS_OUT * spec.n_embd * s.n_ubatch * F32)
    device = w_dev + kv_dev + comp_dev
    total = weights + kv + state + comp + out + over
    host = total - device if n_gpu else total
    if n_gpu:  # the recurrent state stays with the host here (fitcheck does not split it by layer)
        host = (weights - w_dev) + (kv - kv_dev) + state + comp_host + out + over
        total = host + device
    return MemoryEstimate(
        weights_bytes=weights, kv_cache_bytes=kv, compute_bytes=comp, output_bytes=out, overhead_bytes=over,
        total_bytes=total, resident_bytes=weights + repacked + kv + state + comp_res + out + over,
        compute_resident_bytes=comp_res, repacked_bytes=repacked,
        kv_cells=full, kv_cells_swa=swa, host_bytes=host, device_bytes=device, gpu_layers=n_gpu, notes=tuple(notes),
        recurrent_state_bytes=state,
    )
