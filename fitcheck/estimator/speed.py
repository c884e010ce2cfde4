"""Speed model: prefill and decode tokens/s from a device's specs. Pure: no I/O.

Decode, per token:  t = bytes read / (bw_eff * bandwidth)            weights (and KV cache) streamed once
                      + sum over types of weights * flops_per_weight[type] / peak_flops   dequantization + matmul
                      + n_layer * t_layer (+ round trips to the CPU)   kernel launch / sync per layer
Prefill, n tokens:   t = sum over types of 2 * weights * n / (pp_eff[type] * peak_flops) + attention
                      + ceil(n / ubatch) * (weight bytes / bandwidth + fixed costs)
A GPU/NPU backend's products it has no kernel for run on the device's CPU at the CPU class's parameters
(split_work); those that miss its fast prefill kernels run at pp_eff["slow"].
TTFT = load (weights from disk) + prefill of the prompt.

Few parameters, each physical: a bandwidth efficiency, a compute cost per
weight by weight class, a per-layer fixed cost, and a prefill compute
efficiency by class. They are fitted per backend class by
benchmarks/fit_classes.py on published llama.cpp measurements and stored
with their provenance in device_db/speed_params.json.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from fitcheck.estimator.terms import (RECURRENT_BLOCKS, Rates, Work, batch_step_seconds, decode_terms,
                                     prefill_seconds)
from fitcheck.model.model_spec import ModelSpec


def weight_class(ggml_type: str) -> str:
    """f16 (float), q8 (Q8_0), q4 (legacy 32-block types, MLX/MLC groups), kq (K-quants and IQ types)."""
    t = ggml_type.upper()
    if t in ("F32", "F16", "BF16"):
        return "f16"
    if t in ("Q8_0", "Q8_1"):
        return "q8"
    if t.endswith("_K") or t.startswith("IQ") or t.startswith("TQ"):
        return "kq"
    return "q4"


def cost_keys(ggml_type: str) -> tuple[str, ...]:
    """Keys a parameter table may hold for a weight type, finest first: the type itself ("q6_k"), its family
    ("iq" for the importance-matrix types), its coarse class; a class fitted without data for it falls back
    to the legacy 4-bit value (the closest kernels)."""
    t = ggml_type.lower()
    if t in ("f32", "bf16"):
        t = "f16"
    return (t,) + (("iq",) if t.startswith("iq") else ()) + (weight_class(t), "q4")


def _per_class(table: dict[str, float], ggml_type: str) -> float:
    return next(table[k] for k in cost_keys(ggml_type) if k in table)


# the llama.cpp CPU kernel each GGML type runs on, as the kernel probe measures them
KERNEL_CLASSES = ("f16", "q8_0", "q4_0", "q4_k", "q6_k")


def kernel_class(ggml_type: str) -> str:
    t = ggml_type.upper()
    if t in ("F32", "F16", "BF16"):
        return "f16"
    if t in ("Q8_0", "Q8_1"):
        return "q8_0"
    if t == "Q6_K":
        return "q6_k"
    if t.endswith("_K") or t.startswith("IQ") or t.startswith("TQ"):
        return "q4_k"
    return "q4_0"  # Q4_0/Q4_1/Q5_0/Q5_1/MXFP4 and group formats: 32-element blocks


@dataclass(frozen=True)
class CpuKernels:
    """llama.cpp's CPU kernel rates on this machine (weight elements per second), from `fitcheck probe`."""

    threads: int
    tg_elems_per_s: dict[str, float]
    pp_elems_per_s: dict[str, float]
    repack: bool = True
    spread: float = 0.0  # relative spread of the probe's repetitions (for the interval)
    per_token_s: float = 0.0  # llama.cpp's fixed cost per decoded token (graph, thread sync) ...
    per_layer_s: float = 0.0  # ... and per layer
    # the classes llama.cpp repacks here, measured with repacking off too (use_extra_bufts=false)
    tg_unrepacked: dict[str, float] = field(default_factory=dict, hash=False)
    pp_unrepacked: dict[str, float] = field(default_factory=dict, hash=False)

    def without_repacking(self) -> "CpuKernels":
        """The rates an app that runs llama.cpp with repacking off gets (as probed; unmeasured classes unchanged)."""
        if not self.repack:
            return self
        return replace(self, repack=False, tg_elems_per_s={**self.tg_elems_per_s, **self.tg_unrepacked},
                       pp_elems_per_s={**self.pp_elems_per_s, **self.pp_unrepacked})


@dataclass(frozen=True)
class CpuKernelParams:
    """How rates on the small probe model carry to real models (fitted; replaced by a calibration)."""

    bw_eff: float  # share of the probed read bandwidth llama.cpp's decode streams at
    tg_scale: float  # decode compute rate of a large model / the probe model's
    pp_scale: float  # prefill likewise (more layers: more per-layer work beside the matmuls)
    t_token_s: float = 0.0  # per-token fixed cost beyond the probe model's
    source: str = ""
    pp_scale_by_class: dict[str, float] = field(default_factory=dict, hash=False)  # a calibration's, per kernel
    tg_scale_by_class: dict[str, float] = field(default_factory=dict, hash=False)
    bw_eff_by_class: dict[str, float] = field(default_factory=dict, hash=False)
    # an attention score's masking and softmax beside its multiply-adds, in f16 multiply-adds of the kernel probe's
    # (prefill: its matrix-matrix rate, decode: its matrix-vector rate): "pp"/"tg" with the softmax apart (flash
    # attention off), "pp_fa"/"tg_fa" fused (on). Fitted on depth runs (fitcheck.calibration.depth_fit)
    score_macs: dict[str, float] = field(default_factory=dict, hash=False)
    # a batched decode step's gemm over few columns (terms.Rates.batch_half), fitted on parallel runs (ditto)
    batch_half: float = 0.0

    def bw(self, c: str) -> float:
        return self.bw_eff_by_class.get(c, self.bw_eff)

    def pp(self, c: str) -> float:
        return self.pp_scale_by_class.get(c, self.pp_scale)

    def tg(self, c: str) -> float:
        return self.tg_scale_by_class.get(c, self.tg_scale)


@dataclass(frozen=True)
class DeviceSpeedSpec:
    """What the speed model needs to know about a device."""

    backend: str  # a class of fitcheck.device.backends.BACKENDS: cpu, metal, cuda, vulkan, opencl, hexagon ...
    bw_gbps: float
    peak_tflops: float | None  # the peak the backend's parameters were fitted against; which one is `flops_kind`
    disk_gbps: float | None = None
    name: str = ""
    flops_kind: str = ""  # "fp16 GPU", "fp32 non-tensor CUDA", "fp32 GEMM (numpy, probed)"
    kernels: CpuKernels | None = None  # measured llama.cpp CPU kernels: the CPU kernel model applies
    dot_product: bool = True  # a CPU with int8 dot-product instructions (Arm dotprod, x86 AVX2 and later)
    cpu_tflops: float | None = None  # the device's CPU (fp32 FMA peak at its threads): where a GPU/NPU backend's
    cpu_dot_product: bool = True     # unsupported weight types run
    params_class: str = ""  # the fitted class whose parameters apply, when the backend borrows (MLC, MLX, ROCm)
    gpu_arch: str = ""  # fitcheck.device.backends.gpu_arch: "nvidia", "rdna3", "intel-arc" ...
    threads: int = 0  # CPU threads the run uses (0: unknown)


# columns (tokens) at which a matrix product runs at half its full efficiency: with few rows of activations (a small
# ubatch, or an MoE expert's share of one) the GEMM tiles stay part-empty. Each GPU/NPU class fits its own
# (BackendParams.cols_half) on published ubatch sweeps and MoE runs; this is the default and the CPU's, fitted on two
# of our runs, both ~2x too fast without it: the paging benchmark's 8x2 MoE on this x86 CPU (16 tokens per expert,
# +84 %; benchmarks/paging_vs_llama.py) and a 128x8 MoE on an H200 (32 per expert, +117 %; benchmarks/cuda_check/).
# 48 leaves them near -11 % and +25 %.
EXPERT_HALF_TOKENS = 48.0
REF_COLUMNS = 512  # the ubatch most published prefill runs used (llama-bench's default): products over it cost pp_s
# the per-score attention costs a parameter set carries (multiply-adds): under a prompt and in decode, flash attention
# off and on
SCORE_KEYS = ("pp", "pp_fa", "tg", "tg_fa")


@dataclass(frozen=True)
class BackendParams:
    bw_eff: float
    flops_per_weight: dict[str, float]  # by cost_keys: a weight type, its family or its class
    t_layer_s: float
    pp_eff: dict[str, float]
    source: str = ""
    t_token_s: float = 0.0  # per decoded token beside the layers (graph build, sampling, the app's loop)
    # per recurrent layer (gated delta net, short convolution, Mamba): ops a GPU/NPU backend lacks run on the CPU,
    # each such layer a graph split (ggml-backend.cpp's scheduler copies activations across and syncs)
    t_recurrent_layer_s: dict[str, float] = field(default_factory=dict)  # by recurrent_kind
    t_recurrent_token_s: dict[str, float] = field(default_factory=dict)  # prefill: per prompt token and layer
    # a CPU without int8 dot products (Cortex-A72, SSE-only x86) runs llama.cpp's quantized kernels on widening
    # multiplies: its peak counts this much
    no_dot_factor: float = 1.0
    # weight types the backend has no kernels for (ggml-opencl.cpp / ggml-hexagon.cpp supports_op): their matrix
    # products run on the device's CPU, at the CPU class's parameters (`cpu`)
    cpu_types: tuple[str, ...] = ()
    cpu: BackendParams | None = None
    # matrices with more rows than this also run on the CPU (ggml-hexagon.cpp refuses the lm-head: VTCM)
    cpu_rows_over: int = 0
    t_split_s: float = 0.0  # per round trip to the CPU and back (a graph split)
    # prefill efficiency by GPU architecture relative to the class's (one API, different matrix paths: Vulkan's
    # cooperative matrices on NVIDIA and RDNA3/4, plain shaders on Intel Arc); an architecture not listed: 1
    pp_arch: dict[str, float] = field(default_factory=dict)
    # CPU classes: t_layer_s is for a thread of this FP32 peak (TFLOPS); a faster core runs a layer's small ops and
    # barriers in proportionally less time
    layer_ref_tflops: float = 0.0
    # matrices that miss the backend's fast prefill kernels run at pp_eff["slow"]: those with a side under
    # `slow_under` (ggml-opencl.cpp use_adreno_kernels: 512) or quantized ones whose rows are not a multiple of
    # `slow_align` elements (ggml-hexagon htp/matmul-ops.c op_matmul: HMX wants 256, else HVX)
    slow_under: int = 0
    slow_align: int = 0
    cols_half: float = EXPERT_HALF_TOKENS  # unless fitted: columns at half a product's efficiency
    # what an attention score costs beside the products (mask, softmax, the KQ product's short rows), in multiply-
    # adds of the attention's own products: "pp"/"pp_fa" under a prompt, "tg"/"tg_fa" in decode (flash attention
    # off/on); fitted where a class has runs at depth (llama-bench -d), else 0
    score_macs: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeedEstimate:
    decode_tps: float
    prefill_tps: float | None
    ttft_s: float | None
    load_s: float | None
    bytes_per_token: int
    decode_breakdown_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def is_expert(name: str) -> bool:
    return "_exps." in name


def looked_up(spec: ModelSpec) -> frozenset[str]:
    """Tensors a token reads one row of: the token embeddings (unless they double as the output layer) and
    Gemma-3n/4's per-layer embeddings (llama.cpp loads those lazily and fetches rows on demand)."""
    tied = not any(t.name == "output.weight" for t in spec.tensors)
    return frozenset(("per_layer_token_embd.weight",) + (() if tied else ("token_embd.weight",)))


def _read_per_token(spec: ModelSpec, names: frozenset[str] | None = None):
    """(tensor, share of it read) for one decoded token.

    Every weight is read once per token except the embedding tables (`looked_up`: one row each), in MoE
    models the experts not routed to (only n_expert_used of n_expert; shared experts are always read), and
    multi-token-prediction blocks, which plain decoding does not run (llama.cpp builds them only for an MTP
    context).
    """
    rows = looked_up(spec)
    frac = spec.n_expert_used / spec.n_expert if spec.n_expert else 1.0
    mtp = tuple(f"blk.{il}." for il in range(spec.n_layer - spec.n_nextn, spec.n_layer))
    for t in spec.tensors:
        if t.name in rows or (mtp and t.name.startswith(mtp)) or (names is not None and t.name not in names):
            continue
        yield t, (frac if is_expert(t.name) else 1.0)




def cols_h(h: float) -> float:
    """Rates.cols_h for a half-efficiency column count h (the cost of c columns, relative to REF_COLUMNS', is
    (1 + h/c) / (1 + h/REF_COLUMNS))."""
    return h / (1 + h / REF_COLUMNS)


def narrow_products(spec: ModelSpec, acc: dict[str, int], n_prompt: int, n_ubatch: int, out: tuple[str, int],
                    names: frozenset[str] | None = None, dense: bool = True) -> dict[str, float]:
    """Work.pp_narrow by type: each fast product's element-tokens x (1/columns - 1/REF_COLUMNS), where a dense
    matrix sees the pass's tokens and an MoE expert its routed share of them, ubatch x used / experts (ggml-cuda
    mmq.cu / mmid: each expert's rows multiply only its tokens; ggml-metal mul_mm_id likewise); the output
    projection takes one column (the last token's logits), so it is left out as prompt_products leaves it.
    `dense=False`: dense products are left at their rate (a CPU's gemm takes columns in blocks of 4, repack.cpp)."""
    cols = max(min(n_prompt, n_ubatch), 1)
    exp = expert_elems(spec, names)
    e_cols = max(cols * spec.n_expert_used / spec.n_expert, 1.0) if spec.n_expert else cols
    out_type, out_n = out
    narrow = {}
    for t, n in acc.items():
        n_exp = min(exp.get(t, 0), n)
        n_dense = n - n_exp - (out_n if t == out_type else 0)
        x = n_exp * (1 / e_cols - 1 / cols) + ((max(n_dense, 0) + n_exp) * (1 / cols - 1 / REF_COLUMNS) if dense else 0.0)
        if x:
            narrow[t] = x * n_prompt
    return narrow


def expert_elems(spec: ModelSpec, names: frozenset[str] | None = None) -> dict[str, int]:
    """Elements of the expert tensors one decoded token multiplies, by GGML type (of `names` only, when given)."""
    out: dict[str, int] = {}
    for t, f in _read_per_token(spec, names):
        if is_expert(t.name):
            out[t.ggml_type] = out.get(t.ggml_type, 0) + int(t.n_elements * f)
    return out


def pass_bytes(spec: ModelSpec, n_tokens: int, names: frozenset[str] | None = None) -> int:
    """Weight bytes one prefill pass of `n_tokens` reads: every dense weight, and of each MoE expert tensor the share
    of experts some token routes to, 1 - (1 - used/experts)^tokens (a 512-token ubatch touches nearly all)."""
    hit = 1 - (1 - spec.n_expert_used / spec.n_expert) ** max(n_tokens, 1) if spec.n_expert else 1.0
    return int(sum(t.n_bytes * (hit if is_expert(t.name) else f) for t, f in _read_per_token(spec, names)))


def active_weights(spec: ModelSpec, names: frozenset[str] | None = None) -> tuple[int, dict[str, int], int]:
    """(bytes, elements by GGML type, elements) read for one decoded token (of `names` only, when given)."""
    nbytes, elems, total = 0, {}, 0
    for t, f in _read_per_token(spec, names):
        nbytes += int(t.n_bytes * f)
        n = int(t.n_elements * f)
        elems[t.ggml_type] = elems.get(t.ggml_type, 0) + n
        total += n
    return nbytes, elems, total


def recurrent_layers(spec: ModelSpec) -> int:
    return sum(1 for il in range(spec.n_layer - spec.n_nextn) if spec.is_recurrent(il))


# the recurrent block an architecture's layers hold: their ops differ, and so does what a GPU/NPU backend lacks
RECURRENT_KINDS = {"qwen35": "gdn", "qwen35moe": "gdn", "qwen3next": "gdn", "lfm2": "conv", "lfm2moe": "conv"}


def recurrent_kind(spec: ModelSpec) -> str:
    return RECURRENT_KINDS.get(spec.architecture, "ssm")


def _recurrent(table: dict[str, float], spec: ModelSpec) -> float:
    return table.get(recurrent_kind(spec), table.get("*", 0.0)) if recurrent_layers(spec) else 0.0


def output_tensor_name(spec: ModelSpec) -> str:
    """output.weight, else the tied embedding table the output projection multiplies by."""
    return "output.weight" if any(t.name == "output.weight" for t in spec.tensors) else "token_embd.weight"


def output_tensor(spec: ModelSpec) -> tuple[str, int]:
    """(GGML type, elements) of the output projection: output.weight, else the tied embedding table.
    llama.cpp computes logits for the last prompt token only, so prefill runs it once per prompt."""
    name = output_tensor_name(spec)
    out = next((t for t in spec.tensors if t.name == name), None)
    return (out.ggml_type, out.n_elements) if out else ("", 0)


@dataclass(frozen=True)
class AttnMode:
    """The settings that change how much attention work llama.cpp does (RuntimeSettings' flash_attn, swa_full)."""

    flash_attn: bool = False
    swa_full: bool = True  # llama-cpp-python's default; llama.cpp's own tools reserve window + ubatch instead

    @classmethod
    def of(cls, settings) -> "AttnMode":
        return cls(bool(settings.flash_attn), bool(settings.swa_full))


def cells_computed(depth: int, n_new: int, window: int | None, n_ubatch: int, mode: AttnMode) -> float:
    """Query-key pairs one head of one layer computes for n_new tokens on top of `depth` cached cells.

    With flash attention only the causal span, at most the window (ggml-cpu ops.cpp flash_attn_ext: the tiled
    prompt path skips tiles whose mask is all -inf, the decode path masked cells). Without it every cell of the
    cache view for every query of a ubatch (llama-graph.cpp build_attn_mha: kq = mul_mat(k, q) over the view,
    soft_max_ext masks afterwards): the cells used so far, a sliding-window layer's too when its cache is full-size
    (swa_full), else at most window + ubatch (llama_kv_cache_iswa sizes the SWA cache so)."""
    if n_new <= 0:
        return 0.0
    if mode.flash_attn:
        return keys_attended(depth, n_new, window)
    cap = window + n_ubatch if window and not mode.swa_full else None
    total, done = 0.0, 0
    while done < n_new:
        b = min(n_ubatch, n_new - done)
        used = depth + done + b
        total += b * (min(used, cap) if cap else used)
        done += b
    return total


def _kv_layers(spec: ModelSpec, layers):
    """(layer, its window or None) for the layers of `layers` (default all) that hold a KV cache."""
    for il in (range(spec.n_layer) if layers is None else layers):
        if spec.has_kv(il):
            yield il, (spec.sliding_window if spec.is_swa(il) and spec.sliding_window else None)


def kv_bytes_read(spec: ModelSpec, depth: int, kv_type_bytes: float = 2.0, layers=None, mode: AttnMode = AttnMode(),
                  n_ubatch: int = 512) -> int:
    """KV cache read per decoded token at a context depth: the cells attention computes (cells_computed; recurrent
    layers none), in `layers` (default all)."""
    total = 0.0
    for il, window in _kv_layers(spec, layers):
        total += cells_computed(depth, 1, window, n_ubatch, mode) * (spec.n_embd_k_gqa(il) + spec.n_embd_v_gqa(il))
    return int(total * kv_type_bytes)


def keys_attended(depth: int, n_new: int, window: int | None = None) -> float:
    """Sum over n_new causal queries at positions depth .. depth+n_new-1 of the keys each attends to (itself and
    what precedes it, at most `window`): the attention work of a prompt on top of a filled cache."""
    n, d = n_new, depth
    if n <= 0:
        return 0.0
    if not window or d + n <= window:
        return n * d + n * (n + 1) / 2
    if d >= window:
        return float(n * window)
    k = window - d  # queries whose causal span is still under the window
    return k * d + k * (k + 1) / 2 + (n - k) * window


def attention_work(spec: ModelSpec, n_new: int, layers=None, depth: int = 0, mode: AttnMode = AttnMode(),
                   n_ubatch: int = 512) -> tuple[float, float]:
    """(multiply-adds, scores) of attention for n_new tokens on top of `depth` cached ones, in every layer with a KV
    cache (or those of `layers`): each query head times each cell computed (cells_computed), K and V widths for the
    products (llama.cpp's build_attn_mha: kq = mul_mat(k, q), kqv = mul_mat(v, kq)), one score each for the softmax
    and masking beside them. One token at depth d is a decode step's attention."""
    macs = scores = 0.0
    for il, window in _kv_layers(spec, layers):
        cells = spec.n_head[il] * cells_computed(depth, n_new, window, n_ubatch, mode)
        macs += cells * (spec.head_dim_k_at(il) + spec.head_dim_v_at(il))
        scores += cells
    return macs, scores


def attention_macs(spec: ModelSpec, n_prompt: int, layers=None, depth: int = 0, mode: AttnMode = AttnMode(),
                   n_ubatch: int = 512) -> float:
    """attention_work's multiply-adds."""
    return attention_work(spec, n_prompt, layers, depth, mode, n_ubatch)[0]


def active_by_kernel(spec: ModelSpec) -> tuple[dict[str, int], dict[str, int]]:
    """(bytes, elements) by kernel class read for one decoded token."""
    nbytes, elems = {c: 0 for c in KERNEL_CLASSES}, {c: 0 for c in KERNEL_CLASSES}
    for t, f in _read_per_token(spec):
        c = kernel_class(t.ggml_type)
        nbytes[c] += int(t.n_bytes * f)
        elems[c] += int(t.n_elements * f)
    return nbytes, elems


def _rate(rates: dict[str, float], c: str) -> float:
    # a class the probe did not measure takes the legacy 4-bit rate (the closest kernels)
    return rates.get(c) or rates.get("q4_0") or max(rates.values())


# runtimes that process a prompt in their own chunk size rather than llama.cpp's ubatch (mlx-lm generate.py:
# generate_step(prefill_step_size=2048))
PREFILL_CHUNK = {"mlx": 2048}
# runtimes whose attention is always fused over the causal span (mlx-lm's mx.fast.scaled_dot_product_attention,
# MLC's paged attention kernels), whatever llama.cpp's flash-attention setting says
FUSED_ATTENTION = frozenset({"mlx", "mlc"})


def run_mode(backend: str, mode: AttnMode) -> AttnMode:
    """The attention a backend really runs: MLX and MLC always fuse it (flash attention's costs)."""
    return replace(mode, flash_attn=True) if backend in FUSED_ATTENTION else mode


def _row(d: dict[str, float], types: tuple[str, ...]):
    import numpy as np

    return np.array([[float(d.get(t, 0.0)) for t in types]])


def _one(v: float):
    import numpy as np

    return np.array([float(v)])


def _scores(n: float, fused: bool):
    import numpy as np

    return np.array([[0.0, float(n)] if fused else [float(n), 0.0]])


def work_of(elems: dict[str, float], nbytes: dict[str, float], *, n_prompt: int, pp: dict[str, float] | None = None,
            slow: dict[str, float] | None = None, kv_bytes: float = 0.0, attn_macs: float = 0.0, passes: int = 0,
            pass_bytes: float = 0.0, layers: float = 0.0, trips: float = 0.0, rec: dict[str, int] | None = None,
            token: bool = False, attn_scores: float = 0.0, dec_attn_macs: float = 0.0, dec_scores: float = 0.0,
            fused: bool = False, narrow: dict[str, float] | None = None) -> Work:
    """A one-row Work from what one processor holds (`pp`: prompt element-tokens, default elements x prompt;
    `fused`: attention's scores under flash attention)."""
    import numpy as np

    types = tuple(sorted(set(elems) | set(nbytes) | set(pp or {}) | set(slow or {}) | set(narrow or {})))
    pp = {t: n * n_prompt for t, n in elems.items()} if pp is None else pp
    rec_row = np.array([[float((rec or {}).get(k, 0)) for k in RECURRENT_BLOCKS]])
    return Work(types, _row(elems, types), _row(nbytes, types), _one(kv_bytes), _row(pp, types), _row(slow or {}, types),
                _row(narrow or {}, types), _one(attn_macs), _scores(attn_scores, fused), _one(dec_attn_macs), _scores(dec_scores, fused),
                _one(n_prompt), _one(passes), _one(pass_bytes), _one(layers), _one(trips), rec_row,
                _one(1.0 if token else 0.0))


def prompt_products(elems: dict[str, int], n_prompt: int, out: tuple[str, int], slow: dict[str, int] | None = None
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """(fast, slow) prompt element-tokens by type: every weight once per prompt token, except the output projection
    (`out`: llama.cpp computes logits for the last prompt token only); `slow` elements miss the backend's fast
    kernels (narrow_products prices the products over few columns)."""
    out_type, out_n = out
    slow = slow or {}
    fast = {t: (n - slow.get(t, 0)) * n_prompt - (out_n * (n_prompt - 1) if t == out_type and n_prompt else 0)
            for t, n in elems.items()}
    return fast, {t: n * n_prompt for t, n in slow.items() if n}


# how llama.cpp's CPU backend multiplies a few columns (terms.batch_step_seconds): the types its repack buffer
# holds on x86 AVX2/AVX-512 and Arm (ggml-cpu repack.cpp ggml_repack_get_optimal_repack_type) go through their
# gemm in groups of 4 columns; those llamafile's tinyBLAS takes (llamafile/sgemm.cpp llamafile_sgemm) through its
# gemm from 2 columns on; the rest one column at a time
REPACK_GEMM_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})  # fitcheck.device.paging_rules.REPACKED (x86, Arm)
TINYBLAS_TYPES = frozenset({"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "IQ4_NL"})


def batch_block(ggml_type: str, repack: bool) -> int:
    t = ggml_type.upper()
    return 4 if repack and t in REPACK_GEMM_TYPES else 1 if t in TINYBLAS_TYPES else 0


def kernel_rates(kp: CpuKernelParams, dev: DeviceSpeedSpec, w: Work) -> Rates:
    """The CPU kernel model: llama.cpp's own probed kernel rates on this machine, carried to a real model by kp."""
    import numpy as np

    k, bw = dev.kernels, dev.bw_gbps * 1e9
    cls = [kernel_class(t) for t in w.types]
    # a type of a repacked class that llama.cpp does not repack itself (Q5_0, Q4_1 beside Q4_0; Q5_K beside Q4_K)
    # runs on that class's plain kernels: the rates probed with repacking off, where the probe has them
    plain = [k.repack and t.upper() not in REPACK_GEMM_TYPES and c in k.tg_unrepacked for t, c in zip(w.types, cls)]
    tg_of = lambda j: _rate(k.tg_unrepacked if plain[j] else k.tg_elems_per_s, cls[j])  # noqa: E731
    pp_of = lambda j: _rate(k.pp_unrepacked if plain[j] else k.pp_elems_per_s, cls[j])  # noqa: E731
    per = lambda f: np.array([[f(j, c) for j, c in enumerate(cls)]]).reshape(1, len(cls))  # noqa: E731
    pp = per(lambda j, c: 1 / (kp.pp(c) * pp_of(j)))
    zeros = np.zeros(len(RECURRENT_BLOCKS))
    mac_pp = 1 / (kp.pp("f16") * _rate(k.pp_elems_per_s, "f16"))
    mac_tg = 1 / (kp.tg("f16") * _rate(k.tg_elems_per_s, "f16"))
    sm = kp.score_macs
    return Rates(s_per_byte=per(lambda j, c: 1 / (kp.bw(c) * bw)), s_per_kv_byte=1 / (kp.bw_eff * bw),
                 dec_s=per(lambda j, c: 1 / (kp.tg(c) * tg_of(j))), pp_s=pp, slow_s=pp, dec_attn_s=mac_pp,
                 attn_s=mac_pp, score_s=mac_pp * np.array([sm.get("pp", 0.0), sm.get("pp_fa", 0.0)]),
                 dec_score_s=mac_tg * np.array([sm.get("tg", 0.0), sm.get("tg_fa", 0.0)]), pass_s_per_byte=1 / bw,
                 batch_block=np.array([[batch_block(t, k.repack) for t in w.types]]), batch_half=kp.batch_half,
                 token_s=k.per_token_s + kp.t_token_s, layer_s=k.per_layer_s, split_s=0.0, rec_layer_s=zeros,
                 rec_token_s=zeros, overlap=True, fixed_in_pass=False, cols_h=cols_h(EXPERT_HALF_TOKENS))


def class_rates_of(w: Work, *, bw, flops, arch, bw_eff, fpw, inv_pp, inv_slow, inv_f16, token_s, layer_s, split_s,
                   rec_layer_s, rec_token_s, fpw_f16=0.0, narrow_h=0.0, score=(0.0, 0.0), dec_score=(0.0, 0.0)
                   ) -> Rates:
    """A fitted class's rates: FLOPs per weight (`fpw`, by w.types) over the device's peak `flops`, prefill at
    1/`inv_pp` of it (`arch`: the GPU architecture's factor), streaming at `bw_eff` of the bandwidth `bw`.

    Arrays of one row (an estimate) or of every row of a fit (fitcheck.calibration.class_fit), the same code.
    Attention's products run at the mean prefill efficiency of the weights (by elements), each score `score`
    (prompt) or `dec_score` (decode) of their multiply-adds more (flash attention off, on); with no peak known the
    compute terms are left out."""
    import numpy as np

    flops, arch, bw = (np.asarray(v, dtype=float).reshape(-1) for v in (flops, arch, bw))
    has = flops > 0
    safe = np.where(has, flops, 1.0)
    inv = np.where(has, 1 / safe, 0.0)[:, None]
    pp_s = 2 * inv_pp * inv / arch[:, None]
    e = w.dec_elems.sum(1)
    mean_pp = (w.dec_elems * pp_s).sum(1) / np.where(e > 0, e, 1.0)
    attn_s = np.where(e > 0, mean_pp, 2 * inv_f16 * inv[:, 0])
    return Rates(s_per_byte=(1 / (bw_eff * bw))[:, None], s_per_kv_byte=1 / (bw_eff * bw), dec_s=fpw * inv, pp_s=pp_s,
                 slow_s=2 * inv_slow * inv / arch[:, None], attn_s=attn_s,
                 score_s=attn_s[:, None] * np.asarray(score, dtype=float).reshape(-1, 2),
                 dec_score_s=(fpw_f16 * inv[:, 0])[:, None] * np.asarray(dec_score, dtype=float).reshape(-1, 2),
                 dec_attn_s=fpw_f16 * inv[:, 0], pass_s_per_byte=1 / bw, token_s=token_s,
                 layer_s=layer_s, split_s=split_s, rec_layer_s=rec_layer_s, rec_token_s=rec_token_s, cols_h=narrow_h)


def arch_matches(arch: str, key: str) -> bool:
    """A device's architecture under a fitted key: its own ("nvidia-ampere") or its maker's family ("nvidia")."""
    return bool(arch) and (arch == key or arch.startswith(key + "-"))


def arch_factor(pp_arch: dict[str, float], arch: str) -> float:
    """The prefill factor fitted for a device's architecture, the most specific key first; 1 when none was."""
    return next((pp_arch[k] for k in sorted(pp_arch, key=len, reverse=True) if arch_matches(arch, k)), 1.0)


def class_rates(p: BackendParams, dev: DeviceSpeedSpec, w: Work, flops: float | None = None,
                arch: float | None = None) -> Rates:
    """class_rates_of for a stored parameter set: each type's values by cost_keys (its own, its family's, ...)."""
    import numpy as np

    flops = device_flops(p, dev) if flops is None else flops
    arch = arch_factor(p.pp_arch, dev.gpu_arch) if arch is None else arch
    row = lambda f: np.array([[f(t) for t in w.types]]).reshape(1, len(w.types))  # noqa: E731
    inv_pp = row(lambda t: 1 / _per_class(p.pp_eff, t))
    inv_slow = np.full_like(inv_pp, 1 / p.pp_eff["slow"]) if "slow" in p.pp_eff else inv_pp
    kind = recurrent_kind_index
    return class_rates_of(w, bw=dev.bw_gbps * 1e9, flops=flops, arch=arch, bw_eff=p.bw_eff,
                          fpw=row(lambda t: _per_class(p.flops_per_weight, t)), inv_pp=inv_pp, inv_slow=inv_slow,
                          inv_f16=1 / _per_class(p.pp_eff, "f16"), fpw_f16=_per_class(p.flops_per_weight, "f16"),
                          token_s=p.t_token_s, layer_s=p.t_layer_s,
                          split_s=p.t_split_s, rec_layer_s=kind(p.t_recurrent_layer_s),
                          rec_token_s=kind(p.t_recurrent_token_s), narrow_h=cols_h(p.cols_half),
                          score=[p.score_macs.get(k, 0.0) for k in SCORE_KEYS[:2]],
                          dec_score=[p.score_macs.get(k, 0.0) for k in SCORE_KEYS[2:]])


def recurrent_kind_index(table: dict[str, float]):
    """A per-kind table as an array over RECURRENT_BLOCKS ("*": every kind)."""
    import numpy as np

    return np.array([float(table.get(k, table.get("*", 0.0))) for k in RECURRENT_BLOCKS])


def device_flops(p: BackendParams, dev: DeviceSpeedSpec) -> float:
    """The peak a class's costs divide: the device's, less on a CPU without int8 dot products."""
    return (dev.peak_tflops or 0) * 1e12 * (1.0 if dev.dot_product else p.no_dot_factor)


def cpu_flops(cpu: BackendParams, dev: DeviceSpeedSpec) -> float:
    """The peak of the device's CPU, where a GPU/NPU backend's unsupported products run."""
    return (dev.cpu_tflops or 0) * 1e12 * (1.0 if dev.cpu_dot_product else cpu.no_dot_factor)


@dataclass(frozen=True)
class Share:
    """The part of a model one device of a split holds (fitcheck.estimator.placement): weight tensors by name, the
    layers whose other ops (norms, activations, launches) it runs, the layers whose KV cache and attention it holds,
    and whether it drives the graph (pays the per-token cost)."""

    tensors: frozenset[str]
    layers: frozenset[int]
    kv_layers: frozenset[int]
    token: bool = True


@dataclass(frozen=True)
class DeviceWork:
    """One device's work for a run: what its backend computes (`main`) and what it leaves to the CPU beside it."""

    main: Work
    cpu: Work | None
    split: "Split"


def device_work(spec: ModelSpec, dev: DeviceSpeedSpec, rules: BackendParams | None, n_prompt: int, depth: int,
                n_ubatch: int, kernels: bool = False, share: Share | None = None, prompt_depth: int = 0,
                mode: AttnMode = AttnMode()) -> DeviceWork:
    """The whole model (or a device's `share` of it) on one device with its backend's rules (what it leaves to the
    CPU, its slow matrices, the CPU class's reference thread). `kernels`: the CPU kernel model (no such rules,
    unscaled layers). `depth`: cells in the cache while a token decodes; `prompt_depth`: under the prompt; `mode`:
    the attention settings (flash attention, full-size sliding-window cache)."""
    names = share.tensors if share is not None else None
    mode = run_mode(dev.backend, mode)
    sp = split_work(spec, rules, dev, names) if rules is not None else Split(active_weights(spec, names)[1], {})
    out = output_tensor(spec)
    if names is not None and output_tensor_name(spec) not in names:
        out = ("", 0)
    # matrices that miss the fast kernels are counted apart; a class fitted without any prices them as the rest
    own_out = ("", 0) if sp.out_on_cpu else out
    fast, slow_pp = prompt_products(sp.acc, n_prompt, own_out, sp.slow)
    narrow = narrow_products(spec, {t: n - sp.slow.get(t, 0) for t, n in sp.acc.items()}, n_prompt, n_ubatch,
                             own_out, names, dense=dev.backend != "cpu" and not kernels)
    bytes_by = {}
    for t, f in _read_per_token(spec, names):
        bytes_by[t.ggml_type] = bytes_by.get(t.ggml_type, 0) + int(t.n_bytes * f)
    layers = range(spec.n_layer) if share is None else sorted(share.layers)
    kv_layers = None if share is None else sorted(share.kv_layers)
    n_rec = sum(1 for il in layers if il < spec.n_layer - spec.n_nextn and spec.is_recurrent(il))
    rec = {recurrent_kind(spec): n_rec} if n_rec else {}
    scale = 1.0 if kernels or rules is None else layer_scale(rules, dev)
    # a decoded token's attention over the cache (its multiply-adds, scores and the cache's bytes) and the prompt's
    dec_macs, dec_scores = attention_work(spec, 1, kv_layers, depth, mode, n_ubatch) if depth else (0.0, 0.0)
    pp_macs, pp_scores = attention_work(spec, n_prompt, kv_layers, prompt_depth, mode, n_ubatch)
    main = work_of(sp.acc, bytes_by, n_prompt=n_prompt, pp=fast, slow=slow_pp,
                   kv_bytes=kv_bytes_read(spec, depth, layers=kv_layers, mode=mode, n_ubatch=n_ubatch),
                   attn_macs=pp_macs, attn_scores=pp_scores, dec_attn_macs=dec_macs, dec_scores=dec_scores,
                   fused=mode.flash_attn,
                   passes=math.ceil(n_prompt / n_ubatch) if n_prompt else 0,
                   pass_bytes=pass_bytes(spec, min(n_prompt, n_ubatch), names), layers=len(layers) * scale,
                   trips=sp.trips, rec=rec, token=share is None or share.token, narrow=narrow)
    cpu = None
    if sp.cpu:
        cpu_pp, _ = prompt_products(sp.cpu, n_prompt, out if sp.out_on_cpu else ("", 0))
        cpu = work_of(sp.cpu, {}, n_prompt=n_prompt, pp=cpu_pp)
    return DeviceWork(main, cpu, sp)


def cpu_side_seconds(w: Work, cpu: BackendParams, dev: DeviceSpeedSpec) -> tuple:
    """(decode s, prefill s) of the products a GPU/NPU backend leaves to the device's CPU (arrays of w.n)."""
    r = class_rates(cpu, dev, w, flops=cpu_flops(cpu, dev), arch=1.0)
    return decode_terms(w, r)["total"], prefill_seconds(w, r, 0.0)


def _work_and_rates(spec: ModelSpec, dev: DeviceSpeedSpec, p: BackendParams | CpuKernelParams, n_prompt: int,
                    depth: int, n_ubatch: int, prompt_depth: int = 0, mode: AttnMode = AttnMode()
                    ) -> tuple[DeviceWork, Rates, bool]:
    """The device's work and its rates: the CPU kernel model's, or the backend class's (with its prefill chunk)."""
    if isinstance(p, CpuKernelParams):
        if dev.kernels is None:
            raise ValueError("CPU kernel parameters need measured kernels")
        dw = device_work(spec, dev, None, n_prompt, depth, n_ubatch, kernels=True, prompt_depth=prompt_depth,
                         mode=mode)
        return dw, kernel_rates(p, dev, dw.main), bool(n_prompt)
    n_ubatch = PREFILL_CHUNK.get(dev.backend, n_ubatch)
    dw = device_work(spec, dev, p, n_prompt, depth, n_ubatch, prompt_depth=prompt_depth, mode=mode)
    return dw, class_rates(p, dev, dw.main), bool(device_flops(p, dev) and n_prompt)


@dataclass(frozen=True)
class ParallelEstimate:
    """Batched decode of n_seq sequences at once, each `depth` cells into its cache."""

    n_seq: int
    depth: int
    step_s: float
    aggregate_tps: float
    per_seq_tps: float


def estimate_parallel(spec: ModelSpec, dev: DeviceSpeedSpec, p: BackendParams | CpuKernelParams, n_seq: int,
                      depth: int = 0, n_ubatch: int = 512, mode: AttnMode = AttnMode()) -> ParallelEstimate:
    """A server's decode with n_seq sequences generating at once (terms.batch_step_seconds); the products a GPU/NPU
    backend leaves to the CPU are n_seq times one token's."""
    import numpy as np

    w0, r, _ = _work_and_rates(spec, dev, p, 1, 0, n_ubatch, mode=mode)
    wd, rd, _ = _work_and_rates(spec, dev, p, 1, depth, n_ubatch, mode=mode)
    step = float(batch_step_seconds(w0.main, r, wd.main, rd, np.array([n_seq]))[0])
    if wd.cpu is not None:
        step += n_seq * float(cpu_side_seconds(wd.cpu, p.cpu, dev)[0][0])
    return ParallelEstimate(n_seq, depth, step, n_seq / step, 1 / step)


def estimate_speed(spec: ModelSpec, dev: DeviceSpeedSpec, p: BackendParams | CpuKernelParams, n_prompt: int = 512,
                   depth: int = 0, n_ubatch: int = 512, prompt_depth: int = 0, mode: AttnMode = AttnMode()
                   ) -> SpeedEstimate:
    """Decode and prefill of the whole model on one device: the terms (fitcheck.estimator.terms) of its backend,
    plus those of the products the backend leaves to the device's CPU. Decode at `depth` cells in the cache,
    the prompt on top of `prompt_depth` (llama-bench -d sets both), attention as `mode` has llama.cpp do it."""
    dw, r, has_prefill = _work_and_rates(spec, dev, p, n_prompt, depth, n_ubatch, prompt_depth, mode)
    d = decode_terms(dw.main, r)
    decode_s, compute = float(d["total"][0]), float(d["compute"][0])
    pp_s = float(prefill_seconds(dw.main, r, d["fixed"])[0])
    if dw.cpu is not None:
        c_dec, c_pp = cpu_side_seconds(dw.cpu, p.cpu, dev)
        decode_s, compute, pp_s = decode_s + float(c_dec[0]), compute + float(c_dec[0]), pp_s + float(c_pp[0])
    prefill = n_prompt / pp_s if has_prefill else None
    load = spec.weights_bytes / (dev.disk_gbps * 1e9) if dev.disk_gbps else None
    ttft = (load or 0) + n_prompt / prefill if prefill else None
    read = active_weights(spec)[0] + kv_bytes_read(spec, depth, mode=mode, n_ubatch=n_ubatch)
    return SpeedEstimate(decode_tps=1 / decode_s, prefill_tps=prefill, ttft_s=ttft, load_s=load, bytes_per_token=read,
                         decode_breakdown_s={"bandwidth": float(d["bandwidth"][0]), "compute": compute,
                                             "fixed": float(d["fixed"][0])})


@dataclass(frozen=True)
class Split:
    """How a GPU/NPU backend's graph divides for one decoded token: elements by GGML type it computes (`acc`) and
    leaves to the device's CPU (`cpu`), whether the output projection is among the latter, the round trips to the
    CPU (each a graph split: ggml-backend.cpp's scheduler syncs and copies activations across), and the elements
    of matrices that miss the backend's fast prefill kernels."""

    acc: dict[str, int]
    cpu: dict[str, int]
    out_on_cpu: bool = False
    trips: int = 0
    slow: dict[str, int] = field(default_factory=dict)  # by GGML type


def layer_scale(p: BackendParams, dev: DeviceSpeedSpec) -> float:
    """How much longer than the reference thread a layer's fixed work takes on this device's threads."""
    if not (p.layer_ref_tflops and dev.threads and dev.peak_tflops):
        return 1.0
    return p.layer_ref_tflops / (dev.peak_tflops / dev.threads)


def split_work(spec: ModelSpec, p: BackendParams, dev: DeviceSpeedSpec, names: frozenset[str] | None = None) -> Split:
    """A tensor goes to the CPU when the backend has no kernel for its type (`cpu_types`) or it has more rows than
    the backend takes (`cpu_rows_over`). A layer with any such matrix costs round trips (its other ops stay on the
    backend, so the graph splits around each CPU product): counted once per layer, and once for the output head."""
    acc: dict[str, int] = {}
    cpu: dict[str, int] = {}
    out_on_cpu, slow, tripped = False, {}, set()
    split = bool((p.cpu_types or p.cpu_rows_over) and p.cpu is not None and dev.cpu_tflops)
    out_name = output_tensor_name(spec)
    for t, f in _read_per_token(spec, names):
        rows = t.shape[1] if len(t.shape) == 2 else 0
        on_cpu = split and (t.ggml_type.lower() in p.cpu_types or bool(p.cpu_rows_over and rows > p.cpu_rows_over))
        side = cpu if on_cpu else acc
        n = int(t.n_elements * f)
        side[t.ggml_type] = side.get(t.ggml_type, 0) + n
        out_on_cpu |= on_cpu and t.name == out_name
        if on_cpu and len(t.shape) >= 2:  # a matrix: vectors (norms, biases) are elementwise ops the backend runs
            tripped.add(t.name.split(".")[1] if t.name.startswith("blk.") else t.name)
        # the head runs once per prompt: its kernel path does not matter
        if not on_cpu and len(t.shape) >= 2 and t.name != out_name and _slow(t, p):
            slow[t.ggml_type] = slow.get(t.ggml_type, 0) + n
    return Split(acc, cpu, out_on_cpu, len(tripped), slow)


def _slow(t, p: BackendParams) -> bool:
    if p.slow_under and min(t.shape[:2]) < p.slow_under:
        return True
    return bool(p.slow_align and t.ggml_type.upper() not in ("F32", "F16", "BF16") and t.shape[0] % p.slow_align)


def params_to_dict(p: BackendParams) -> dict:
    """The JSON form params_from_dict reads (the CPU class a GPU/NPU class carries is stored on its own)."""
    d = asdict(replace(p, cpu=None))
    d.pop("cpu")
    d["cpu_types"] = list(p.cpu_types)
    return d


def params_from_dict(d: dict) -> BackendParams:
    return BackendParams(d["bw_eff"], dict(d["flops_per_weight"]), d["t_layer_s"], dict(d["pp_eff"]), d.get("source", ""),
                         float(d.get("t_token_s", 0.0)), _by_kind(d.get("t_recurrent_layer_s")),
                         _by_kind(d.get("t_recurrent_token_s")), float(d.get("no_dot_factor", 1.0)),
                         tuple(d.get("cpu_types", ())), cpu_rows_over=int(d.get("cpu_rows_over", 0)),
                         t_split_s=float(d.get("t_split_s", 0.0)), slow_under=int(d.get("slow_under", 0)),
                         pp_arch={str(k): float(v) for k, v in (d.get("pp_arch") or {}).items()},
                         layer_ref_tflops=float(d.get("layer_ref_tflops", 0.0)),
                         slow_align=int(d.get("slow_align", 0)),
                         cols_half=float(d.get("cols_half", EXPERT_HALF_TOKENS)),
                         score_macs={str(k): float(v) for k, v in (d.get("score_macs") or {}).items()})


def _by_kind(v) -> dict[str, float]:
    if isinstance(v, dict):
        return {str(k): float(x) for k, x in v.items()}
    return {"*": float(v)} if isinstance(v, (int, float)) else {}
