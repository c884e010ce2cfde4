"""The reader on real model files, checked field by field and against llama.cpp and gguf-py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fitcheck.model.inspection import inspect_gguf, load_spec

from .conftest import run_cli

# llama.cpp's own view of a model: parameter count and tensor bytes (llama_model_n_params,
# llama_model_size), loaded with repacking off (the AMX path crashes on these machines).
LLAMA_REF = r"""
import json, sys
import llama_cpp.llama_cpp as C
C.llama_backend_init()
p = C.llama_model_default_params()
p.use_extra_bufts = False
p.vocab_only = False
m = C.llama_model_load_from_file(sys.argv[1].encode(), p)
print(json.dumps({"n_params": C.llama_model_n_params(m), "size": C.llama_model_size(m),
                  "n_layer": C.llama_model_n_layer(m), "n_embd": C.llama_model_n_embd(m),
                  "n_head": C.llama_model_n_head(m), "n_ctx_train": C.llama_model_n_ctx_train(m)}))
"""


def llama_cpp_view(path) -> dict:
    r = subprocess.run([sys.executable, "-c", LLAMA_REF, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def gguf_py_view(path) -> dict:
    """gguf-py's reader is trusted on these known-good files."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    return {t.name: (tuple(int(x) for x in t.shape), t.tensor_type.name, int(t.n_elements), int(t.n_bytes)) for t in r.tensors}


def test_smollm2_fields(smollm2_path):
    d = inspect_gguf(smollm2_path)
    assert d["architecture"] == "llama"
    assert d["block_count"] == 30
    assert d["head_count"] == 9
    assert d["head_count_kv"] == 3
    assert d["embedding_length"] == 576
    assert d["feed_forward_length"] == 1536
    assert d["context_length"] == 8192
    assert d["key_length"] == d["value_length"] == 64
    assert d["vocab_size"] == 49152
    assert d["file_type"] == "Q4_1"
    assert d["size_label"] == "135M"
    assert d["sliding_window"] is None and d["sliding_layers"] == []
    assert d["expert_count"] == 0
    assert d["rope"]["freq_base"] == pytest.approx(100000.0)
    assert d["file_size_bytes"] == smollm2_path.stat().st_size
    assert set(d["tensor_types"]) == {"Q4_1", "Q8_0", "F32"}
    assert d["tensor_types"]["Q8_0"]["elements"] == 576 * 49152  # tied embedding kept at Q8_0
    assert d["tensor_count"] == 272


def test_gemma3_fields_and_sliding_layout(gemma3_path):
    d = inspect_gguf(gemma3_path)
    assert d["architecture"] == "gemma3"
    assert d["block_count"] == 18
    assert d["head_count"] == 4 and d["head_count_kv"] == 1
    assert d["key_length"] == d["value_length"] == 256
    assert d["embedding_length"] == 640
    assert d["vocab_size"] == 262144
    assert d["file_type"] == "Q4_K_M"
    assert d["sliding_window"] == 512
    # llama.cpp's gemma3 pattern: every 6th layer (5, 11, 17) attends globally.
    assert d["sliding_layers"] == [i for i in range(18) if i % 6 != 5]
    assert set(d["tensor_types"]) == {"Q8_0", "Q5_0", "Q4_K", "Q6_K", "F32"}


@pytest.mark.parametrize("which", ["smollm2_path", "gemma3_path"])
@pytest.mark.slow
def test_tensor_table_matches_gguf_py_and_llama_cpp(which, request):
    path = request.getfixturevalue(which)
    spec = load_spec(path)
    ref = gguf_py_view(path)
    mine = {t.name: (t.shape, t.ggml_type, t.n_elements, t.n_bytes) for t in spec.tensors}
    assert mine == ref
    ll = llama_cpp_view(path)
    assert spec.parameter_count == ll["n_params"]
    assert spec.weights_bytes == ll["size"]
    assert spec.n_layer == ll["n_layer"]
    assert spec.n_embd == ll["n_embd"]
    assert spec.n_head[0] == ll["n_head"]
    assert spec.n_ctx_train == ll["n_ctx_train"]


def test_bits_per_weight_is_bytes_over_params(smollm2_path):
    d = inspect_gguf(smollm2_path)
    assert d["bits_per_weight"] == pytest.approx(d["tensor_data_bytes"] * 8 / d["parameter_count"], abs=1e-4)
    assert 5.0 < d["bits_per_weight"] < 6.5  # Q4_1 body (5 bpw) + Q8_0 embeddings


def test_cli_json_has_required_keys(gemma3_path):
    r = run_cli("inspect", str(gemma3_path), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("architecture", "parameter_count", "block_count", "head_count", "head_count_kv",
                "embedding_length", "context_length", "feed_forward_length", "vocab_size",
                "file_size_bytes", "bits_per_weight", "file_type", "tensor_types", "sliding_window"):
        assert key in d
    assert d["tensor_types"]["Q4_K"]["bytes"] > 0


def test_cli_table(smollm2_path):
    r = run_cli("inspect", str(smollm2_path))
    assert r.returncode == 0, r.stderr
    assert "llama" in r.stdout and "Q4_1" in r.stdout and "134.52M" in r.stdout
