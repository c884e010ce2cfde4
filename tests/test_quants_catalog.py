"""Catalog + quantization rules against real files: the packaged models and llama.cpp's own quantizer."""

from __future__ import annotations

import csv
import dataclasses
from importlib.resources import files

import pytest

from fitcheck.model.catalog import entries, resolve, spec_from_catalog
from fitcheck.errors import UsageError
from fitcheck.model.inspection import load_spec
from tests.llama_quantize import quantize_gguf, write_catalog_shape
from tests.test_catalog_archs import TINY
from fitcheck.model.quants import FORMATS, get_format, type_bpw


def types_of(spec) -> dict[str, str]:
    return {t.name: t.ggml_type for t in spec.tensors}


@pytest.mark.parametrize("fixture, catalog_id, quant", [
    ("smollm2_path", "smollm2-135m", "Q4_1"),
    ("gemma3_path", "gemma-3-270m", "Q4_K_M"),
])
def test_catalog_reproduces_real_files_tensor_by_tensor(request, fixture, catalog_id, quant):
    real = load_spec(request.getfixturevalue(fixture))
    pred = spec_from_catalog(entries()[catalog_id], quant)
    assert types_of(pred) == types_of(real)
    assert {t.name: t.shape for t in pred.tensors} == {t.name: t.shape for t in real.tensors}
    assert pred.weights_bytes == real.weights_bytes
    assert pred.parameter_count == real.parameter_count


# Shapes of catalog families, cut to a few layers and a small vocabulary so llama.cpp's
# quantizer runs in seconds; widths (which drive the block-size fallbacks) stay real.
FAMILIES = {
    "smollm2-360m": dict(n_layer=8),      # llama, hidden 960: K-quant fallbacks
    "qwen2.5-0.5b": dict(n_layer=4),      # qwen2: QKV biases, tied, GQA 7
    "gemma-3-1b": dict(n_layer=4),        # gemma3: q/k norms, post norms, hidden 1152
    "phi-3-mini": dict(n_layer=2),        # fused attn_qkv and gate+up
    "glm-4-9b": dict(n_layer=2),          # chatglm: fused qkv with bias, GQA 16
    "qwen3-30b-a3b": dict(n_layer=2, n_expert=16),  # MoE expert tensors (3-D)
    "mixtral-like": dict(n_layer=2, n_expert=8),     # the 8-expert rules
    **TINY,  # the 2025-26 families: recurrent, per-layer-embedding, AltUp/LAuReL and sink tensors
}
ALL_FTYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_0", "IQ4_XS", "Q3_K_M", "Q3_K_S", "Q2_K"]
CASES = [("smollm2-360m", q) for q in ALL_FTYPES] + [
    (fam, q) for fam in FAMILIES if fam != "smollm2-360m" for q in ("Q4_K_M", "Q3_K_M", "Q2_K")
] + [("gpt-oss-20b", "MXFP4_MOE")] + [
    (fam, q) for fam in ("smollm2-360m", "qwen2.5-0.5b", "qwen3-30b-a3b", "qwen3.5-0.8b", "phi-3-mini")
    for q in ("IQ3_S", "IQ3_M")  # IQ3_XXS / IQ3_XS need an imatrix (their IQ3_XXS tensors): rules from the source
]


@pytest.fixture(scope="module")
def f16_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalog-f16")
    cache = {}

    def get(fam):
        if fam not in cache:
            base = entries()["qwen3-30b-a3b" if fam == "mixtral-like" else fam]
            e = dataclasses.replace(base, n_vocab=1024, **FAMILIES[fam])
            cache[fam] = (e, write_catalog_shape(folder / f"{fam}-f16.gguf", e))
        return cache[fam]

    return get


@pytest.mark.parametrize("family, ftype", CASES)
@pytest.mark.slow
def test_rules_match_llama_cpp_quantizer(f16_sources, tmp_path, family, ftype):
    entry, src = f16_sources(family)
    out = tmp_path / f"{family}-{ftype}.gguf"
    quantize_gguf(str(src), str(out), ftype)
    real = load_spec(out)
    pred = spec_from_catalog(entry, ftype)
    assert types_of(pred) == types_of(real)
    assert pred.weights_bytes == real.weights_bytes


def published_bpw(model: str) -> dict[str, float]:
    text = files("fitcheck").joinpath("data/quant_quality.csv").read_text()
    return {r["quant"]: float(r["bpw"]) for r in csv.DictReader(text.splitlines()) if r["model"] == model and r["bpw"]}


def test_llama31_8b_bpw_matches_llama_cpp_published_table():
    pub = published_bpw("Llama-3.1-8B")  # tools/quantize/README.md table, copied with its source
    checked = 0
    for q, bpw in pub.items():
        if q in FORMATS and FORMATS[q].runtime == "llama.cpp" and q != "IQ2_XS":
            mine = spec_from_catalog(entries()["llama-3.1-8b"], q).bits_per_weight
            assert mine == pytest.approx(bpw, rel=0.005), q
            checked += 1
    assert checked >= 10


def test_mlx_and_mlc_formats():
    e = entries()["llama-3.2-1b"]
    f16 = spec_from_catalog(e, "F16")
    for q, bpw in (("MLX_4BIT", 4.5), ("MLX_8BIT", 8.5), ("MLC_Q4F16_1", 4.5), ("MLC_Q3F16_1", 3.6), ("MLC_Q0F16", 16.0)):
        s = spec_from_catalog(e, q)
        assert s.parameter_count == f16.parameter_count
        assert s.bits_per_weight == pytest.approx(bpw, rel=0.01), q


def test_aliases_and_unknowns():
    e, alias = resolve("7b")
    assert e.id == "qwen2-7b" and alias == "7b"
    assert resolve("Llama-3.1-8B")[0].id == "llama-3.1-8b"
    assert resolve("qwen2-7")[0].id == "qwen2-7b"  # a family and a bare number: Ollama's default of that family
    with pytest.raises(UsageError, match="nearest: qwen2-7b"):
        resolve("qwen2-7z")
    with pytest.raises(UsageError, match="unknown quantization 'Q9_K'"):
        get_format("Q9_K")
    assert get_format("q4_k_m").name == "Q4_K_M" and get_format("mlx-4bit").name == "MLX_4BIT"


# published counts that are not the text model's exact count
NOT_EXACT = {
    "qwen2-7b",  # its published 7.07B disagrees with its shape (see catalog notes)
    "qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b", "qwen3.5-9b",  # the name only; checkpoints include vision
    "gemma-3n-e2b", "gemma-3n-e4b", "gemma-4-e2b", "gemma-4-e4b",  # "effective" counts, without per-layer embeddings
    "ministral-3-3b", "ministral-3-8b", "gemma-4-12b",  # the name, vision tower included
    "falcon3-7b", "falcon3-10b", "internlm2.5-7b", "baichuan2-7b", "baichuan2-13b",  # only the name's size published
    "falcon-40b", "starcoder2-15b", "olmo2-7b", "olmo2-13b", "orca-mini-7b",  # the same
    "llama-3.2-11b-vision", "qwen2.5-vl-7b", "moondream2",  # the published count holds the vision tower
    "glm-4.5-air",  # the published 106B leaves out its MTP block
}


def test_every_catalog_entry_builds_with_every_format():
    for e in entries().values():
        for q in FORMATS:
            s = spec_from_catalog(e, q)
            assert s.weights_bytes > 0
        assert e.source and e.verification  # every config carries its source
        # the published parameter count agrees with the shape (catalog sanity), where it is exact
        f16 = spec_from_catalog(e, "F16")
        if e.id not in NOT_EXACT:
            assert f16.parameter_count / 1e9 == pytest.approx(e.params_b_published, rel=0.03), e.id


def test_type_bpw_table():
    assert type_bpw("Q4_0") == 4.5 and type_bpw("Q6_K") == 6.5625 and type_bpw("Q8_0") == 8.5
