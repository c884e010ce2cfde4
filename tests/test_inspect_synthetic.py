"""The reader on GGUF files written by gguf-py's GGUFWriter: types, splits, per-layer heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from fitcheck.errors import GGUFError
from fitcheck.model.gguf_reader import read_model
from fitcheck.model.inspection import inspect_gguf, load_spec
from fitcheck.calibration.synth import SynthModel, write_synthetic

from .conftest import run_cli

MIXED = SynthModel(
    n_layer=3, n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_vocab=300,
    weight_type="Q4_K",
    type_overrides={"token_embd": "Q8_0", "output": "Q6_K", "attn_v": "F16", "ffn_down": "Q4_0"},
)


def expected_bytes(shape, type_name):
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    n = 1
    for d in shape:
        n *= d
    return n // block * size


def test_mixed_types_counted_per_type(tmp_path):
    (path,) = write_synthetic(tmp_path / "mixed.gguf", MIXED)
    d = inspect_gguf(path)
    want: dict[str, dict[str, int]] = {}
    for _, shape, t in MIXED.tensor_plan():
        e = want.setdefault(t, {"bytes": 0, "elements": 0, "count": 0})
        e["bytes"] += expected_bytes(shape, t)
        e["elements"] += shape[0] * (shape[1] if len(shape) > 1 else 1)
        e["count"] += 1
    assert d["tensor_types"] == want
    assert d["parameter_count"] == sum(e["elements"] for e in want.values())
    # no llama file type is called MOSTLY_Q4_K, so the writer left it out: named by bytes
    assert d["file_type"] == "Q4_K (guessed)"
    assert d["head_count"] == 4 and d["head_count_kv"] == 2
    assert d["vocab_size"] == 300


def test_file_type_read_from_header(tmp_path):
    (path,) = write_synthetic(tmp_path / "q8.gguf", SynthModel(weight_type="Q8_0"))
    assert inspect_gguf(path)["file_type"] == "Q8_0"


def test_per_layer_head_counts(tmp_path):
    m = SynthModel(n_layer=4, n_embd=256, n_head=(4, 4, 8, 8), n_head_kv=(1, 2, 2, 4), n_ff=256)
    (path,) = write_synthetic(tmp_path / "openelm-like.gguf", m)
    spec = load_spec(path)
    assert spec.n_head == (4, 4, 8, 8)
    assert spec.n_head_kv == (1, 2, 2, 4)
    assert spec.head_dim_k == 256 // 8
    assert [spec.n_embd_k_gqa(i) for i in range(4)] == [32, 64, 64, 128]
    d = inspect_gguf(path)
    assert d["head_count"] == [4, 4, 8, 8] and d["head_count_kv"] == [1, 2, 2, 4]


def test_split_model_read_as_one(tmp_path):
    (tmp_path / "one").mkdir()
    single = write_synthetic(tmp_path / "one" / "m.gguf", MIXED)
    parts = write_synthetic(tmp_path / "m.gguf", MIXED, split_max_tensors=8)
    assert len(parts) == 4 and parts[0].name == "m-00001-of-00004.gguf"
    whole = inspect_gguf(single[0])
    for part in (parts[0], parts[2]):  # any part names the whole model
        d = inspect_gguf(part)
        assert d["splits"] == 4
        assert d["parameter_count"] == whole["parameter_count"]
        assert d["tensor_types"] == whole["tensor_types"]
        assert d["file_size_bytes"] == sum(p.stat().st_size for p in parts)
    m = read_model(parts[1])
    assert sorted({t.split for t in m.tensors}) == [0, 1, 2, 3]


def test_split_model_missing_part(tmp_path):
    parts = write_synthetic(tmp_path / "m.gguf", MIXED, split_max_tensors=8)
    parts[2].unlink()
    with pytest.raises(GGUFError, match="missing part m-00003-of-00004.gguf"):
        read_model(parts[0])


def test_renamed_split_part_is_refused(tmp_path):
    parts = write_synthetic(tmp_path / "m.gguf", MIXED, split_max_tensors=8)
    lone = tmp_path / "renamed.gguf"
    parts[0].rename(lone)
    with pytest.raises(GGUFError, match="one part of a 4-part split model"):
        read_model(lone)


def test_big_endian_file(tmp_path):
    import numpy as np
    from gguf import GGUFEndian, GGUFWriter

    path = tmp_path / "be.gguf"
    w = GGUFWriter(path, "llama", endianess=GGUFEndian.BIG)
    for k, v in (("block_count", 1), ("embedding_length", 32), ("attention.head_count", 2), ("context_length", 128)):
        w.add_uint32(f"llama.{k}", v)
    w.add_token_list(["a", "b", "c"])
    w.add_tensor("token_embd.weight", np.ones((3, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    d = inspect_gguf(path)
    assert d["block_count"] == 1 and d["embedding_length"] == 32 and d["vocab_size"] == 3
    assert d["parameter_count"] == 96


def test_sparse_multi_gb_file_reads_header_only(tmp_path):
    m = SynthModel(n_layer=16, n_embd=4096, n_head=32, n_head_kv=8, n_ff=11008, n_vocab=32000, weight_type="Q8_0")
    (path,) = write_synthetic(tmp_path / "big.gguf", m, sparse=True)
    assert path.stat().st_size > 2 * 1024**3
    assert path.stat().st_blocks * 512 < 64 * 1024**2  # a hole, not data
    d = inspect_gguf(path)
    assert d["tensor_data_bytes"] <= d["file_size_bytes"]
    assert d["block_count"] == 16 and d["head_count_kv"] == 8


def test_cli_json_on_split(tmp_path):
    parts = write_synthetic(tmp_path / "m.gguf", MIXED, split_max_tensors=8)
    r = run_cli("inspect", str(parts[3]), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["splits"] == 4 and Path(d["paths"][0]).name == "m-00001-of-00004.gguf"
