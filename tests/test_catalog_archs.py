"""The 2025-26 architectures in the catalog: their layouts as llama.cpp reads them, and checked by llama.cpp.

Each new family's catalog table (fitcheck/model/arch_layouts.py) is written as a small GGUF with the catalog's
own keys and tensors, loaded by this llama-cpp-python's llama.cpp (which refuses a missing, extra or misshapen
tensor), and its KV cache, recurrent state and compute buffer compared with fitcheck's estimate for the same file.
"""

from __future__ import annotations

import csv
import dataclasses
import types

import pytest

from fitcheck.estimator.memory import estimate_memory
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.model.arch_layouts import FAMILIES
from fitcheck.model.catalog import entries, resolve, spec_from_catalog
from fitcheck.model.inspection import load_spec
from fitcheck.model.quants import FORMATS

from . import synth_arch
from .llama_quantize import write_catalog_shape

MIB = 1 << 20
NEW = [e for e in entries().values() if e.arch in FAMILIES]


def test_every_model_of_the_2025_table_is_in_the_catalog():
    from .test_runtimes import SHARED

    path = SHARED / "model_configs_2025.csv"
    if not path.exists():
        pytest.skip("shared/data is not beside this checkout")
    rows = list(csv.DictReader(path.open()))
    assert not [r["id"] for r in rows if r["id"] not in entries()]
    for r in rows:  # verification levels carried over
        assert entries()[r["id"]].verification == r["verification"]


@pytest.mark.parametrize("entry", NEW, ids=lambda e: e.id)
def test_new_entries_build_with_every_llama_cpp_format(entry):
    for name, fmt in FORMATS.items():
        if fmt.runtime == "llama.cpp":
            spec = spec_from_catalog(entry, name)
            assert spec.weights_bytes > 0 and spec.source == f"catalog:{entry.id}"


@pytest.mark.parametrize("model, recurrent, kv_layers, swa_layers", [
    ("qwen3.5-0.8b", 18, 6, 0),        # 3 gated delta net : 1 attention; the MTP block has neither
    ("lfm2.5-1.2b", 10, 6, 0),         # short convolutions on all but 2,5,8,10,12,14
    ("granite-4.0-h-micro", 36, 4, 0),  # Mamba2 except 5,15,25,35
    ("gemma-3n-e2b", 0, 20, 16),       # KV in the first 20 layers only, 4 sliding : 1 full
    ("gemma-4-e2b", 0, 15, 12),        # the last 20 layers reuse KV
    ("gpt-oss-20b", 0, 24, 12),        # alternating 128-token window
])
def test_hybrid_layouts_read_back_as_the_configs_say(model, recurrent, kv_layers, swa_layers):
    spec = spec_from_catalog(resolve(model)[0], "Q4_K_M")
    layers = range(spec.n_layer)
    assert sum(spec.is_recurrent(il) for il in layers) == recurrent
    assert sum(spec.has_kv(il) for il in layers) == kv_layers
    assert sum(spec.has_kv(il) and spec.is_swa(il) for il in layers) == swa_layers


def test_parameter_counts_match_the_model_cards():
    """Published exact counts (model cards, via model_configs_2025.csv) for the text models."""
    exact = {"lfm2-350m": 354_483_968, "lfm2-700m": 742_489_344, "lfm2-1.2b": 1_170_340_608}
    for model, n in exact.items():
        assert spec_from_catalog(entries()[model], "F16").parameter_count == n
    assert spec_from_catalog(entries()["gpt-oss-20b"], "F16").parameter_count / 1e9 == pytest.approx(20.9, rel=0.01)


def test_state_is_fixed_and_kv_grows_only_on_attention_layers():
    spec = spec_from_catalog(resolve("Qwen/Qwen3.5-2B")[0], "Q4_K_M")
    small, big = (estimate_memory(spec, RuntimeSettings(n_ctx=n)) for n in (2048, 8192))
    assert small.recurrent_state_bytes == big.recurrent_state_bytes > 18 * MIB  # 18 GDN layers, ~1 MiB each
    assert big.kv_cache_bytes == 4 * small.kv_cache_bytes  # 6 attention layers of 24


# Small copies of each family: few layers, small vocabulary, the real widths where the rules look at them
TINY = {
    "qwen3.5-0.8b": dict(n_layer=4),
    "lfm2-350m": dict(n_layer=4, arch_params="attn_layers=2;l_cache=3"),
    "granite-4.0-h-1b": dict(n_layer=3, n_embd=512, n_ff=1024,
                             arch_params="attn_layers=1;conv=4;d_state=128;n_groups=1;d_inner=1024;ssm_heads=16"),
    "granite-4.0-h-tiny": dict(n_layer=2, n_embd=512, n_expert=8, n_ff=256, expert_ff=256,
                               arch_params="attn_layers=1;conv=4;d_state=64;n_groups=1;d_inner=1024;ssm_heads=16;shexp_ff=512"),
    "gemma-3n-e2b": dict(n_embd=256, n_ff=512),
    # KV-sharing layers reuse the last KV layer of their type: the last must be global, the one before sliding
    "gemma-4-e2b": dict(n_layer=10, n_embd=512, n_ff=1024, arch_params="head_dim_swa=256;shared_kv=5;ff_shared=2048;ple=64"),
    "gpt-oss-20b": dict(n_layer=2, n_embd=512, n_head=8, n_expert=4, n_expert_used=2, expert_ff=512),
    "olmoe-1b-7b": dict(n_layer=2, n_embd=512, n_head=4, n_head_kv=4, n_expert=4, n_expert_used=2, expert_ff=512),
    "smollm3-3b": dict(n_layer=2, n_embd=512, n_ff=2816, n_head=4, n_head_kv=2),
}


def tiny(model: str):
    return dataclasses.replace(entries()[model], n_vocab=512, **TINY[model])


CONFIGS = {  # llama-cpp-python's defaults; llama.cpp's tools' (window-sized SWA cache, flash attention)
    "defaults": dict(n_ctx=2048, swa_full=True, flash_attn=False),
    "tools": dict(n_ctx=3000, swa_full=False, flash_attn=True),
}


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("model", sorted(TINY))
def test_catalog_layout_loads_in_llama_cpp_with_the_predicted_buffers(model, config, tmp_path):
    c = CONFIGS[config]
    entry = tiny(model)
    path = write_catalog_shape(tmp_path / f"{model}.gguf", entry)
    opts = types.SimpleNamespace(n_ctx=c["n_ctx"], n_batch=512, n_ubatch=512, swa_full=int(c["swa_full"]),
                                 flash_attn=int(c["flash_attn"]), n_seq=1, kv_unified=0)
    rc, log = synth_arch.run_child(str(path), opts)
    assert rc == 0 and "CHILD_OK" in log, log[-2000:]
    got = synth_arch.parse_log(log)
    spec = load_spec(path)
    assert spec.weights_bytes == spec_from_catalog(entry, "F16").weights_bytes  # the file is the catalog's table
    mem = estimate_memory(spec, RuntimeSettings(n_ctx=c["n_ctx"], swa_full=c["swa_full"], flash_attn=c["flash_attn"]))
    kv = sum(x["k"] + x["v"] for x in got["kv"])
    rs = sum(x["r"] + x["s"] for x in got["rs"])
    compute = sum(v for _, v in got["compute"])
    assert mem.kv_cache_bytes / MIB == pytest.approx(kv, abs=0.011 * 2 * len(got["kv"]), rel=0.01)
    assert mem.recurrent_state_bytes / MIB == pytest.approx(rs, abs=0.011 * 2 * len(got["rs"]), rel=0.01)
    assert mem.compute_bytes / MIB == pytest.approx(compute, rel=0.15)


def test_weights_read_per_token():
    """Routed experts only (shared experts always), per-layer embeddings looked up, MTP blocks not run: the active
    counts the model cards publish (gpt-oss-20b 3.6B, Gemma-4 26B-A4B 3.8B, Gemma-4 E2B 2.3B effective)."""
    from fitcheck.estimator.speed import active_weights

    for model, published in (("gpt-oss-20b", 3.6), ("gemma-4-26b-a4b", 3.8), ("gemma-4-e2b", 2.3)):
        assert active_weights(spec_from_catalog(entries()[model], "F16"))[2] / 1e9 == pytest.approx(published, rel=0.03)
    spec = spec_from_catalog(entries()["qwen3.5-2b"], "F16")
    mtp = sum(t.n_elements for t in spec.tensors if t.name.startswith(f"blk.{spec.n_layer - 1}."))
    assert active_weights(spec)[2] == spec.parameter_count - mtp  # tied: the embedding table is read as the output
    tiny_moe = spec_from_catalog(entries()["granite-4.0-h-tiny"], "F16")
    shexp = sum(t.n_elements for t in tiny_moe.tensors if "_shexp" in t.name)
    exps = sum(t.n_elements for t in tiny_moe.tensors if "_exps." in t.name)
    assert active_weights(tiny_moe)[2] == tiny_moe.parameter_count - exps + exps * 6 // 64  # shexp in full
    assert shexp > 0
