"""Quantization formats: llama.cpp file types with their per-tensor mixture rules, MLX and MLC.

llama.cpp's quantizer does not store every tensor at the file type's base
type: output / tied embeddings, attn_v, ffn_down and attn_output get other
types by layer, GQA ratio and expert count, and rows that are not a multiple
of a K-quant's 256-element block fall back to 32-element types. The rules
below follow src/llama-quant.cpp (llama_tensor_get_type_impl and
tensor_type_fallback; summarised with sources in shared/data/kquant_recipes.md)
and are checked in the tests against files written by llama.cpp's own
quantizer. Block sizes come from gguf-py's GGML_QUANT_SIZES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from fitcheck.errors import UsageError


@dataclass(frozen=True)
class QuantFormat:
    name: str
    runtime: str  # llama.cpp | mlx | mlc
    base_type: str | None  # llama.cpp base ggml type
    nominal_bpw: float
    note: str = ""


def type_bpw(type_name: str) -> float:
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    return size * 8 / block


def block_size(type_name: str) -> int:
    return GGML_QUANT_SIZES[GGMLQuantizationType[type_name]][0]


def type_bytes(type_name: str, n_elements: int) -> int:
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    return n_elements // block * size


# file type -> base tensor type (llama_ftype_get_default_type)
_GGUF_BASE = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q6_K": "Q6_K",
    "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q5_1": "Q5_1", "Q5_0": "Q5_0",
    "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_1": "Q4_1", "Q4_0": "Q4_0",
    "IQ4_XS": "IQ4_XS", "IQ4_NL": "IQ4_NL",
    "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q2_K": "Q2_K", "IQ2_XS": "IQ2_XS",
    "IQ2_XXS": "IQ2_XXS", "IQ2_S": "IQ2_XS", "IQ2_M": "IQ2_S", "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M",
    "MXFP4_MOE": "MXFP4",  # gpt-oss's own format: experts MXFP4, every other matrix Q8_0
    "IQ3_XXS": "IQ3_XXS", "IQ3_XS": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S",
}
# llama-quant.cpp treats these alike (one branch of llama_tensor_get_type_impl); _S/_M lift to IQ3_S where the
# others take Q2_K
_LOW_IQ = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M", "IQ2_S", "IQ2_M"}
_LOW_IQ_SM = {"IQ2_S", "IQ2_M"}
# mixture rules below were checked against llama.cpp's quantizer for the others; these need an
# imatrix to quantize, so their rules are from the source reading only
APPROXIMATE = _LOW_IQ | {"IQ3_XXS", "IQ3_XS"}

FORMATS: dict[str, QuantFormat] = {
    name: QuantFormat(name, "llama.cpp", base, type_bpw(base),
                      "rules from the source only (needs an imatrix to test)" if name in APPROXIMATE else "")
    for name, base in _GGUF_BASE.items()
}
FORMATS.update({
    # MLX affine quantization: group of 64 weights shares an fp16 scale and bias
    "MLX_4BIT": QuantFormat("MLX_4BIT", "mlx", None, 4 + 32 / 64, "group 64, fp16 scale + bias per group"),
    "MLX_8BIT": QuantFormat("MLX_8BIT", "mlx", None, 8 + 32 / 64, "group 64, fp16 scale + bias per group"),
    # MLC: q4f16_1 = 4-bit, group 32, one fp16 scale; q3f16_1 = 3-bit packed 10 per uint32, group 40
    "MLC_Q4F16_1": QuantFormat("MLC_Q4F16_1", "mlc", None, 4 + 16 / 32, "group 32, fp16 scale"),
    "MLC_Q3F16_1": QuantFormat("MLC_Q3F16_1", "mlc", None, 32 / 10 + 16 / 40, "3-bit x10 per uint32, group 40, fp16 scale"),
    "MLC_Q0F16": QuantFormat("MLC_Q0F16", "mlc", None, 16.0, "unquantized fp16"),
})
ALIASES = {"MLX4": "MLX_4BIT", "MLX-4BIT": "MLX_4BIT", "MLX8": "MLX_8BIT", "MLX-8BIT": "MLX_8BIT",
           "Q4F16_1": "MLC_Q4F16_1", "Q3F16_1": "MLC_Q3F16_1", "Q0F16": "MLC_Q0F16", "FP16": "F16", "Q4_K": "Q4_K_M",
           "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M", "MXFP4": "MXFP4_MOE"}
LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")


# llama-bench's file-type words (llama_model_ftype_name): "Q4_K - Medium", "IQ4_XS - 4.25 bpw", "MXFP4 MoE"
_BENCH_FTYPE = re.compile(r"^(\w+?)\s+-\s+(SMALL|MEDIUM|LARGE|[\d.]+ BPW)$")


def _bench_ftype(key: str) -> str:
    m = _BENCH_FTYPE.match(key)
    if m:
        base, kind = m.groups()
        size = {"SMALL": "_S", "MEDIUM": "_M", "LARGE": "_L"}.get(kind, "")
        return base if base in ("Q2_K", "Q6_K") else base + size
    return "MXFP4_MOE" if key == "MXFP4 MOE" else key


def get_format(name: str) -> QuantFormat:
    key = _bench_ftype(" ".join(name.strip().upper().split())).replace("-", "_")
    key = ALIASES.get(key, ALIASES.get(name.strip().upper(), key))
    if key not in FORMATS:
        raise UsageError(f"unknown quantization {name!r}; known: {', '.join(FORMATS)}")
    return FORMATS[key]


# fallback for rows that are not a multiple of the chosen type's block (tensor_type_fallback, current code)
_FALLBACK = {
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}

_LAYER = re.compile(r"^blk\.(\d+)\.")
_NOT_QUANTIZED = ("_norm.weight", "ffn_gate_inp.weight", "pos_embd", "token_types", "_b.weight",
                  "ssm_conv1d", "shortconv.conv.weight", "altup_correct_coef", "altup_predict_coef")
# llama-quant.cpp tensor_allows_quantization leaves these as converted; the converter writes them 16-bit
_KEPT_16BIT = ("altup", "laurel", "per_layer_model_proj")


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _category(name: str) -> str | None:
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for cat in ("attn_qkv", "attn_kv_b", "attn_v", "attn_k", "attn_q", "attn_output", "ffn_up", "ffn_gate", "ffn_down"):
        if cat + "." in name or cat + "_" in name:
            return cat
    return None


@dataclass(frozen=True)
class ModelFacts:
    """What the mixture rules look at besides the tensor itself."""

    n_layer: int
    n_gqa: int
    n_expert: int = 0
    arch: str = "llama"


def _fallback(type_name: str, ne0: int) -> str:
    if ne0 % block_size(type_name) == 0:
        return type_name
    fb = _FALLBACK.get(type_name)
    if fb is None or ne0 % block_size(fb):
        return "F16"
    return fb


def gguf_tensor_types(ftype: str, tensors: list[tuple[str, tuple[int, ...]]], facts: ModelFacts) -> dict[str, str]:
    """The ggml type llama.cpp's quantizer gives each tensor for file type `ftype`.

    `tensors` are (name, shape in ggml order (ne0 first)) in any order; 1-D
    tensors and norms stay F32 as converters write them.
    """
    fmt = get_format(ftype)
    if fmt.runtime != "llama.cpp":
        raise UsageError(f"{ftype} is not a llama.cpp file type")
    ft = fmt.name
    base = fmt.base_type
    names = {n for n, _ in tensors}
    tied = "output.weight" not in names
    n_wv = sum(1 for n in names if n.endswith(".weight") and _category(n) in ("attn_v", "attn_qkv", "attn_kv_b"))
    # llama-quant.cpp's n_ffn_down is every block, MTP blocks included (hparams.n_layer_all)
    n_down = 1 + max((int(m[1]) for m in map(_LAYER.match, names) if m), default=facts.n_layer - 1)
    qk_base = block_size(base)
    out: dict[str, str] = {}

    def order(item):
        m = _LAYER.match(item[0])
        return (int(m[1]) if m else -1, item[0])

    i_wv = 0
    counters = {"ffn_down": 0, "ffn_gate": 0, "ffn_up": 0}
    for name, shape in sorted(tensors, key=order):
        if len(shape) < 2 or not name.endswith("weight") or any(s in name for s in _NOT_QUANTIZED):
            out[name] = "F32"
            continue
        if base in ("F32", "F16", "BF16"):
            out[name] = base
            continue
        if any(s in name for s in _KEPT_16BIT):
            out[name] = "F16"
            continue
        ne0 = shape[0]
        cat = _category(name)
        if ft == "MXFP4_MOE":  # llama-quant.cpp: 3-D expert stacks MXFP4, the rest (output included) Q8_0
            out[name] = _fallback("MXFP4" if len(shape) == 3 and shape[2] > 1 else "Q8_0", ne0)
            continue
        t = base
        m = _LAYER.match(name)
        layer = int(m[1]) if m else 0
        if cat == "output" or (tied and cat == "token_embd"):
            if facts.arch == "falcon" or ne0 % qk_base:
                t = "Q8_0"
            elif ft in _LOW_IQ or ft == "IQ3_XXS":
                t = "Q5_K"
            elif t != "Q8_0":
                t = "Q6_K"
        elif cat == "token_embd":
            if ft in _LOW_IQ:
                t = "IQ3_S" if ft in _LOW_IQ_SM else "Q2_K"
            elif ft == "IQ3_XXS":
                t = "IQ3_S"
        elif cat in ("attn_v", "attn_qkv", "attn_kv_b"):
            t = _attn_v_type(ft, base, i_wv, n_wv, facts)
            i_wv += 1
        elif cat == "attn_k":
            if facts.n_expert == 8:
                t = "Q4_K" if ft in _LOW_IQ else "Q8_0"
            else:
                t = {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ft, t)
        elif cat == "attn_q":
            t = {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ft, t)
        elif cat == "ffn_down":
            i = layer if facts.n_expert > 1 else counters["ffn_down"]
            t = _ffn_down_type(ft, base, i, n_down)
            counters["ffn_down"] += 1
        elif cat == "attn_output":
            t = _attn_output_type(ft, base, facts)
        elif cat in ("ffn_gate", "ffn_up"):
            i = layer if facts.n_expert > 1 else counters[cat]
            if ft == "IQ3_XS" and n_down // 8 <= i < 7 * n_down // 8:
                t = "IQ3_XXS"
            counters[cat] += 1
        out[name] = _fallback(t, ne0)
    return out


def _attn_v_type(ft: str, base: str, i: int, n: int, f: ModelFacts) -> str:
    if ft in _LOW_IQ:
        return "Q4_K" if f.n_gqa >= 4 or f.n_expert >= 4 else "IQ3_S" if ft in _LOW_IQ_SM else "Q2_K"
    if f.n_expert == 8:
        return "Q8_0"
    if ft in ("IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M"):  # (IQ3_XXS with the imatrix it needs)
        return "Q4_K" if f.n_gqa >= 4 or ft == "IQ3_M" else base
    t = {
        "Q2_K": "Q4_K" if f.n_gqa >= 4 else "Q3_K",
        "Q3_K_M": "Q5_K" if i < 2 else "Q4_K",
        "Q3_K_L": "Q5_K",
        "Q4_K_S": "Q5_K" if i < 4 else base,
        "Q4_K_M": "Q6_K" if use_more_bits(i, n) else base,
        "Q5_K_M": "Q6_K" if use_more_bits(i, n) else base,
        "IQ4_XS": "Q5_K" if f.n_gqa >= 4 else base,
        "IQ4_NL": "Q5_K" if f.n_gqa >= 4 else base,
    }.get(ft, base)
    if f.arch == "llama" and f.n_layer == 80 and f.n_gqa > 1 and t in ("Q3_K", "Q4_K"):
        t = "Q5_K"  # Llama-2-70B-class: V is 8x smaller, extra bits are cheap
    return t


def _ffn_down_type(ft: str, base: str, i: int, n: int) -> str:
    if ft in _LOW_IQ:
        return ("IQ3_S" if ft in _LOW_IQ_SM else "Q2_K") if i < n // 8 else base
    return {
        "Q2_K": "Q3_K",
        "Q3_K_M": "Q5_K" if i < n // 16 else "Q4_K",
        "Q3_K_L": "Q5_K",
        "Q4_K_S": "Q5_K" if i < n // 8 else base,
        "Q4_K_M": "Q6_K" if use_more_bits(i, n) else base,
        "Q5_K_M": "Q6_K" if use_more_bits(i, n) else base,
        "IQ4_XS": "Q5_K" if i < n // 8 else base,
        "IQ4_NL": "Q5_K" if i < n // 8 else base,
        "IQ3_M": "Q4_K" if i < n // 8 else base,
    }.get(ft, base)


def _attn_output_type(ft: str, base: str, f: ModelFacts) -> str:
    if ft in _LOW_IQ:
        if f.n_expert == 8:
            return "Q5_K"
        return "IQ2_XXS" if ft in ("IQ1_S", "IQ1_M") else "IQ3_S" if ft in _LOW_IQ_SM else base
    if f.arch == "falcon":
        return base
    if f.n_expert == 8 and ft in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M", "IQ4_NL", "IQ4_XS", "IQ3_XS",
                                  "IQ3_XXS", "IQ3_S", "IQ3_M"):
        return "Q5_K"
    return {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_XXS": "IQ3_S", "IQ3_M": "Q4_K"}.get(ft, base)


def group_format_bytes(fmt: QuantFormat, n_elements: int) -> int:
    """Bytes of one quantized matrix in an MLX / MLC group format."""
    return int(round(n_elements * fmt.nominal_bpw / 8))
