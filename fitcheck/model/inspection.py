"""`fitcheck inspect`: a model's header, summarised for people and for JSON."""

from __future__ import annotations

import os
from typing import Any

from fitcheck.model.gguf_reader import ArraySummary, GGUFModel
from fitcheck.model.model_spec import ModelSpec, spec_from_gguf


def _scalar_or_list(values: tuple[int, ...]) -> int | list[int]:
    return values[0] if len(set(values)) == 1 else list(values)


def _jsonable(v: Any) -> Any:
    if isinstance(v, ArraySummary):
        return {"array_of": v.item_type, "count": v.count}
    return v


def load_spec(path: str | os.PathLike) -> ModelSpec:
    """Read a GGUF file (or split set) and return its ModelSpec."""
    from fitcheck.model.remote import read_any_model

    return spec_from_gguf(read_any_model(path))


def inspect_gguf(path: str | os.PathLike) -> dict[str, Any]:
    """Everything `fitcheck inspect --json` prints about one model."""
    from fitcheck.model.remote import read_any_model

    return describe(read_any_model(path))


def describe(model: GGUFModel) -> dict[str, Any]:
    """A model read from its header, summarised (the same dict for a file and for bytes in memory)."""
    spec = spec_from_gguf(model)
    params = spec.parameter_count
    return {
        "path": model.path,
        "paths": list(model.paths),
        "splits": model.splits,
        "gguf_version": model.version,
        "architecture": spec.architecture,
        "name": spec.name,
        "size_label": spec.size_label,
        "parameter_count": params,
        "file_size_bytes": model.file_size_bytes,
        "tensor_data_bytes": spec.weights_bytes,
        "tensor_count": len(spec.tensors),
        "bits_per_weight": round(spec.bits_per_weight, 4),
        "file_type": spec.file_type,
        "tensor_types": spec.tensor_types(),
        "context_length": spec.n_ctx_train,
        "embedding_length": spec.n_embd,
        "block_count": spec.n_layer,
        "head_count": _scalar_or_list(spec.n_head),
        "head_count_kv": _scalar_or_list(spec.n_head_kv),
        "key_length": spec.head_dim_k,
        "value_length": spec.head_dim_v,
        "feed_forward_length": _scalar_or_list(spec.n_ff),
        "expert_count": spec.n_expert,
        "expert_used_count": spec.n_expert_used,
        "sliding_window": spec.sliding_window,
        "sliding_layers": [i for i, s in enumerate(spec.swa_layers) if s],
        "vocab_size": spec.n_vocab,
        "rope": {k: _jsonable(v) for k, v in spec.rope},
        "metadata": {
            k: _jsonable(v)
            for k, v in model.metadata.items()
            if not k.startswith("tokenizer.chat_template")
        },
    }
