"""Write synthetic random-weight GGUF models that llama.cpp loads and runs.

Used for calibration (a model of known shape at a chosen size) and by tests.
Quantized blocks are written as random bytes with every f16 scale field set to
a small finite value, so any supported type is valid data without running a
quantizer; tensors are streamed to disk one at a time, so a multi-GB model
needs little RAM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fitcheck.errors import UsageError

# Byte offsets of the f16 scale/min fields inside one block of each type
# (ggml-common.h block layouts). Everything else in a block is free bits.
F16_FIELDS = {
    "Q4_0": (0,),
    "Q4_1": (0, 2),
    "Q5_0": (0,),
    "Q5_1": (0, 2),
    "Q8_0": (0,),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
}
FLOAT_TYPES = ("F32", "F16", "BF16")
SUPPORTED_TYPES = FLOAT_TYPES + tuple(F16_FIELDS)
_SCALE_F16 = 0x1C00  # 2**-8 as IEEE half: keeps random activations finite


@dataclass(frozen=True)
class SynthModel:
    """Shape and types of a synthetic llama-family model."""

    n_layer: int = 2
    n_embd: int = 256
    n_head: int | tuple[int, ...] = 4
    n_head_kv: int | tuple[int, ...] = 2
    n_ff: int = 512
    n_vocab: int = 512
    n_ctx: int = 2048
    weight_type: str = "Q8_0"
    # per-role overrides: token_embd, output, attn_q, attn_k, attn_v, attn_output,
    # ffn_gate, ffn_up, ffn_down
    type_overrides: dict[str, str] = field(default_factory=dict)
    tied_embeddings: bool = False
    arch: str = "llama"
    name: str = "fitcheck-synthetic"
    extra_metadata: dict = field(default_factory=dict)
    seed: int = 0
    n_expert: int = 0  # > 0: every FFN is a mixture of n_expert experts of width n_ff (Mixtral's layout)
    n_expert_used: int = 0

    def heads(self, value) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * self.n_layer

    @property
    def head_dim(self) -> int:
        return self.n_embd // max(self.heads(self.n_head))

    def tensor_plan(self) -> list[tuple[str, tuple[int, int] | tuple[int], str]]:
        """(name, shape in ggml order (ne0, ne1), type) for every tensor."""
        t = lambda role: self.type_overrides.get(role, self.weight_type)  # noqa: E731
        hd = self.head_dim
        plan = [("token_embd.weight", (self.n_embd, self.n_vocab), t("token_embd"))]
        for il, (nh, nkv) in enumerate(zip(self.heads(self.n_head), self.heads(self.n_head_kv))):
            b = f"blk.{il}."
            plan += [
                (b + "attn_norm.weight", (self.n_embd,), "F32"),
                (b + "attn_q.weight", (self.n_embd, nh * hd), t("attn_q")),
                (b + "attn_k.weight", (self.n_embd, nkv * hd), t("attn_k")),
                (b + "attn_v.weight", (self.n_embd, nkv * hd), t("attn_v")),
                (b + "attn_output.weight", (nh * hd, self.n_embd), t("attn_output")),
                (b + "ffn_norm.weight", (self.n_embd,), "F32"),
            ]
            if self.n_expert:
                ne = self.n_expert
                plan += [(b + "ffn_gate_inp.weight", (self.n_embd, ne), "F32"),
                         (b + "ffn_gate_exps.weight", (self.n_embd, self.n_ff, ne), t("ffn_gate")),
                         (b + "ffn_up_exps.weight", (self.n_embd, self.n_ff, ne), t("ffn_up")),
                         (b + "ffn_down_exps.weight", (self.n_ff, self.n_embd, ne), t("ffn_down"))]
            else:
                plan += [(b + "ffn_gate.weight", (self.n_embd, self.n_ff), t("ffn_gate")),
                         (b + "ffn_up.weight", (self.n_embd, self.n_ff), t("ffn_up")),
                         (b + "ffn_down.weight", (self.n_ff, self.n_embd), t("ffn_down"))]
        plan.append(("output_norm.weight", (self.n_embd,), "F32"))
        if not self.tied_embeddings:
            plan.append(("output.weight", (self.n_embd, self.n_vocab), t("output")))
        return plan


def _random_tensor(rng, shape, type_name: str):
    import numpy as np
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    n = 1
    for d in shape:
        n *= d
    if type_name == "F32":
        return (rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32)
    if type_name == "F16":
        return (rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float16)
    if type_name == "BF16":
        f = (rng.standard_normal(n, dtype=np.float32) * 0.02).view(np.uint32)
        return (f >> 16).astype(np.uint16)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    blocks = rng.integers(0, 256, size=(n // block, size), dtype=np.uint8)
    view = blocks.view(np.uint8)
    for off in F16_FIELDS[type_name]:
        view[:, off] = _SCALE_F16 & 0xFF
        view[:, off + 1] = _SCALE_F16 >> 8
    if type_name in ("Q4_K", "Q5_K"):  # 6-bit scales/mins: keep mins small so values stay centred
        view[:, 4:16] &= 0x0F
    return blocks.reshape(-1)


def _nbytes(shape, type_name: str) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    n = 1
    for d in shape:
        n *= d
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    return n // block * size


def spm_vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary llama.cpp accepts: specials, 256 byte tokens, fillers."""
    if n_vocab < 259 + 1:
        raise UsageError(f"synthetic vocabulary needs at least 260 tokens, got {n_vocab}")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    tokens += [f"\u2581t{i}" for i in range(n_vocab - len(tokens))]
    types += [1] * (n_vocab - len(types))
    scores = [0.0] * 259 + [-float(i) for i in range(n_vocab - 259)]
    return tokens, scores, types


def write_synthetic(
    path: str | os.PathLike,
    model: SynthModel,
    *,
    split_max_tensors: int = 0,
    sparse: bool = False,
) -> list[Path]:
    """Write `model` as GGUF at `path` (split into shards if asked); returns the files.

    With sparse=True only the header is written and the file is extended to its
    full size without data (a hole), for header-reading benchmarks.
    """
    a = model.arch
    meta: dict = {
        f"{a}.context_length": model.n_ctx,
        f"{a}.embedding_length": model.n_embd,
        f"{a}.block_count": model.n_layer,
        f"{a}.feed_forward_length": model.n_ff,
        f"{a}.attention.head_count": list(model.n_head) if isinstance(model.n_head, (tuple, list)) else model.n_head,
        f"{a}.attention.head_count_kv": list(model.n_head_kv) if isinstance(model.n_head_kv, (tuple, list)) else model.n_head_kv,
        f"{a}.rope.dimension_count": model.head_dim,
        f"{a}.rope.freq_base": 10000.0,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-5,
        **({f"{a}.expert_count": model.n_expert, f"{a}.expert_used_count": model.n_expert_used} if model.n_expert else {}),
        **model.extra_metadata,
    }
    return write_gguf(path, model.arch, model.tensor_plan(), meta, n_vocab=model.n_vocab, name=model.name,
                      file_type=model.weight_type, seed=model.seed, split_max_tensors=split_max_tensors, sparse=sparse)


def _add_metadata(w, meta: dict) -> None:
    for k, v in meta.items():
        if isinstance(v, bool):
            w.add_bool(k, v)
        elif isinstance(v, int):
            w.add_uint32(k, v)
        elif isinstance(v, float):
            w.add_float32(k, v)
        elif isinstance(v, str):
            w.add_string(k, v)
        else:
            w.add_array(k, list(v))


def write_gguf(
    path: str | os.PathLike,
    arch: str,
    plan: list[tuple[str, tuple[int, ...], str]],
    metadata: dict,
    *,
    n_vocab: int,
    name: str = "fitcheck-synthetic",
    file_type: str | None = None,
    seed: int = 0,
    split_max_tensors: int = 0,
    sparse: bool = False,
) -> list[Path]:
    """Write any tensor plan (name, ggml shape, type) with random data and an SPM vocabulary."""
    import numpy as np
    from gguf import GGUFWriter
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    for tname_, shape, tname in plan:
        if tname not in SUPPORTED_TYPES:
            raise UsageError(f"synthetic models support {', '.join(SUPPORTED_TYPES)}; not {tname}")
        block = GGML_QUANT_SIZES[GGMLQuantizationType[tname]][0]
        if shape[0] % block:
            raise UsageError(f"{tname_}: row length {shape[0]} is not a multiple of {tname}'s block of {block}")
    path = Path(path)
    w = GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    w.add_name(name)
    _add_metadata(w, metadata)
    if file_type:
        ft = "ALL_F32" if file_type == "F32" else f"MOSTLY_{file_type}"
        if ft in LlamaFileType.__members__:
            w.add_file_type(LlamaFileType[ft])
    tokens, scores, types = spm_vocab(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for tensor_name, shape, tname in plan:
        qtype = GGMLQuantizationType[tname]
        w.add_tensor_info(tensor_name, tuple(reversed(shape)), np.dtype(np.float32), _nbytes(shape, tname), raw_dtype=qtype)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    files = w.format_shard_names(path)
    if sparse:
        w.close()
        if len(files) != 1:
            raise UsageError("sparse synthetic models cannot be split")
        from fitcheck.model.gguf_reader import read_header  # the header tells where data starts

        with open(files[0], "r+b") as f:
            f.truncate(_sparse_size(files[0], plan))
        read_header(files[0])
        return files
    rng = np.random.default_rng(seed)
    for _, shape, tname in plan:
        w.write_tensor_data(_random_tensor(rng, shape, tname))
    w.close()
    return files


def _sparse_size(path: Path, plan) -> int:
    header_end = path.stat().st_size
    data_offset = -(-header_end // 32) * 32
    total = 0
    for _, shape, tname in plan:
        total = -(-total // 32) * 32 + _nbytes(shape, tname)
    return data_offset + total


def spec_of(model: SynthModel):
    """The ModelSpec a file written from `model` will have (without writing it)."""
    from fitcheck.model.model_spec import ModelSpec, TensorSpec
    from fitcheck.model.quants import type_bytes

    def n(shape):
        out = 1
        for s in shape:
            out *= s
        return out

    tensors = tuple(TensorSpec(name, t, shape, n(shape), type_bytes(t, n(shape))) for name, shape, t in model.tensor_plan())
    hd = model.head_dim
    return ModelSpec(name=model.name, architecture=model.arch, source="synthetic", n_layer=model.n_layer,
                     n_embd=model.n_embd, n_ctx_train=model.n_ctx, n_vocab=model.n_vocab,
                     n_head=model.heads(model.n_head), n_head_kv=model.heads(model.n_head_kv), head_dim_k=hd,
                     head_dim_v=hd, n_ff=(model.n_ff,) * model.n_layer, tensors=tensors, file_type=model.weight_type,
                     n_expert=model.n_expert, n_expert_used=model.n_expert_used)
