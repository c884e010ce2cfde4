"""Speed model: prefill and decode tokens/s from a device's specs. Pure: no I/O.

Decode, per token:  t = bytes_read / (bw_eff * bandwidth)            weights streamed once
                      + weights * flops_per_weight[class] / peak_flops  dequantization + matmul
                      + n_layer * t_layer                               kernel launch / sync per layer
Prefill, n tokens:   t = (2 * active_params * n + attention) / (pp_eff[class] * peak_flops)
                      + ceil(n / ubatch) * (bytes_read / bandwidth + n_layer * t_layer)
TTFT = load (weights from disk) + prefill of the prompt.

Few parameters, each physical: a bandwidth efficiency, a compute cost per
weight by weight class, a per-layer fixed cost, and a prefill compute
efficiency by class. They are fitted per backend class by
benchmarks/fit_speed_model.py on published llama.cpp measurements and stored
with their provenance in device_db/speed_params.json.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from fitcheck.model.model_spec import ModelSpec

WEIGHT_CLASSES = ("f16", "q8", "q4", "kq")


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


def _per_class(table: dict[str, float], c: str) -> float:
    # a class the fit had no data for takes the legacy 4-bit value (the closest kernels)
    return table.get(c, table["q4"])


@dataclass(frozen=True)
class DeviceSpeedSpec:
    """What the speed model needs to know about a device."""

    backend: str  # cpu | metal | cuda | vulkan | mobile-gpu
    bw_gbps: float
    peak_tflops: float | None  # the peak the backend's parameters were fitted against; which one is `flops_kind`
    disk_gbps: float | None = None
    name: str = ""
    flops_kind: str = ""  # "fp16 GPU", "fp32 non-tensor CUDA", "fp32 GEMM (numpy, probed)"


@dataclass(frozen=True)
class BackendParams:
    bw_eff: float
    flops_per_weight: dict[str, float]
    t_layer_s: float
    pp_eff: dict[str, float]
    source: str = ""


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


def _is_expert(name: str) -> bool:
    return "_exps." in name


def active_weights(spec: ModelSpec) -> tuple[int, dict[str, int], int]:
    """(bytes, elements by weight class, elements) read for one decoded token.

    Every weight is read once per token except the token-embedding table (one
    row, unless it doubles as the output layer) and, in MoE models, the
    experts not routed to (only n_expert_used of n_expert).
    """
    tied = not any(t.name == "output.weight" for t in spec.tensors)
    frac = spec.n_expert_used / spec.n_expert if spec.n_expert else 1.0
    nbytes, elems, total = 0, {c: 0 for c in WEIGHT_CLASSES}, 0
    for t in spec.tensors:
        if t.name == "token_embd.weight" and not tied:
            continue
        f = frac if _is_expert(t.name) else 1.0
        nbytes += int(t.n_bytes * f)
        n = int(t.n_elements * f)
        elems[weight_class(t.ggml_type)] += n
        total += n
    return nbytes, elems, total


def kv_bytes_read(spec: ModelSpec, depth: int, kv_type_bytes: float = 2.0) -> int:
    """KV cache read per decoded token at a context depth (sliding-window layers capped)."""
    total = 0
    for il in range(spec.n_layer):
        d = min(depth, spec.sliding_window) if spec.is_swa(il) and spec.sliding_window else depth
        total += d * (spec.n_embd_k_gqa(il) + spec.n_embd_v_gqa(il))
    return int(total * kv_type_bytes)


def estimate_speed(spec: ModelSpec, dev: DeviceSpeedSpec, p: BackendParams, n_prompt: int = 512,
                   depth: int = 0, n_ubatch: int = 512) -> SpeedEstimate:
    wbytes, elems, n_active = active_weights(spec)
    read = wbytes + kv_bytes_read(spec, depth)
    bw = dev.bw_gbps * 1e9
    t_bw = read / (p.bw_eff * bw)
    flops = (dev.peak_tflops or 0) * 1e12
    t_compute = sum(elems[c] * _per_class(p.flops_per_weight, c) for c in WEIGHT_CLASSES) / flops if flops else 0.0
    t_fixed = spec.n_layer * p.t_layer_s
    decode_s = t_bw + t_compute + t_fixed
    prefill = None
    if flops and n_prompt:
        # dominant class sets the matmul efficiency (weighted by elements)
        eff = sum(elems[c] * _per_class(p.pp_eff, c) for c in WEIGHT_CLASSES) / max(n_active, 1)
        head = max(spec.n_head) * spec.head_dim_k
        attn = 2 * spec.n_layer * head * n_prompt * n_prompt  # QK^T and PV over a causal prompt
        t_flops = (2 * n_active * n_prompt + attn) / (eff * flops)
        passes = math.ceil(n_prompt / n_ubatch)
        prefill = n_prompt / (t_flops + passes * (wbytes / bw + t_fixed))
    load = spec.weights_bytes / (dev.disk_gbps * 1e9) if dev.disk_gbps else None
    ttft = (load or 0) + n_prompt / prefill if prefill else None
    return SpeedEstimate(
        decode_tps=1 / decode_s, prefill_tps=prefill, ttft_s=ttft, load_s=load, bytes_per_token=read,
        decode_breakdown_s={"bandwidth": t_bw, "compute": t_compute, "fixed": t_fixed},
    )


def params_from_dict(d: dict) -> BackendParams:
    return BackendParams(d["bw_eff"], dict(d["flops_per_weight"]), d["t_layer_s"], dict(d["pp_eff"]), d.get("source", ""))
