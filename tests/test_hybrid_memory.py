"""KV cache and recurrent state of 2025-26 architectures, read from a GGUF's own metadata, against llama.cpp.

Synthetic GGUFs of each architecture (tests/synth_arch.py: the tensors and keys llama.cpp's loader requires)
are loaded by this llama-cpp-python's llama.cpp, which prints its KV caches and recurrent state; fitcheck's
estimate from the same file must agree to llama.cpp's printed precision (0.01 MiB a figure).
"""

from __future__ import annotations

import types

import pytest

from fitcheck.estimator.memory import estimate_memory
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.model.inspection import load_spec

from . import synth_arch

MIB = 1 << 20
CONFIGS = {  # llama-cpp-python's defaults, and llama.cpp's tools' (window-sized SWA cache, flash attention)
    "defaults": dict(n_ctx=2048, swa_full=True, flash_attn=False),
    "tools": dict(n_ctx=3000, swa_full=False, flash_attn=True),
}


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("arch", synth_arch.ARCHS)
def test_kv_and_state_match_llama_cpp(arch, config, tmp_path):
    c = CONFIGS[config]
    path = synth_arch.write_gguf(arch, str(tmp_path))
    opts = types.SimpleNamespace(n_ctx=c["n_ctx"], n_batch=512, n_ubatch=512, swa_full=int(c["swa_full"]),
                                 flash_attn=int(c["flash_attn"]), n_seq=1, kv_unified=0)
    rc, log = synth_arch.run_child(path, opts)
    assert rc == 0 and "CHILD_OK" in log, log[-2000:]
    got = synth_arch.parse_log(log)
    kv_got = sum(x["k"] + x["v"] for x in got["kv"])
    rs_got = sum(x["r"] + x["s"] for x in got["rs"])
    mem = estimate_memory(load_spec(path), RuntimeSettings(n_ctx=c["n_ctx"], swa_full=c["swa_full"],
                                                           flash_attn=c["flash_attn"]))
    assert mem.kv_cache_bytes / MIB == pytest.approx(kv_got, abs=0.011 * 2 * len(got["kv"]), rel=0.01)
    assert mem.recurrent_state_bytes / MIB == pytest.approx(rs_got, abs=0.011 * 2 * len(got["rs"]), rel=0.01)
    if arch in ("qwen35", "qwen3next", "lfm2", "granitehybrid"):
        assert got["rs"] and mem.recurrent_state_bytes > 0  # a hybrid: state instead of KV on its recurrent layers


@pytest.mark.slow
def test_mla_keeps_no_v_cache_and_mtp_blocks_are_not_loaded(tmp_path):
    """DeepSeek-style MLA: K only (V is a view of the latent), and the MTP block a converted file carries is
    skipped at load (llama.cpp's model buffer is the weights without it)."""
    path = synth_arch.write_gguf("deepseek2", str(tmp_path))
    opts = types.SimpleNamespace(n_ctx=2048, n_batch=512, n_ubatch=512, swa_full=1, flash_attn=0, n_seq=1, kv_unified=0)
    rc, log = synth_arch.run_child(path, opts)
    assert rc == 0 and "CHILD_OK" in log, log[-2000:]
    got = synth_arch.parse_log(log)
    spec = load_spec(path)
    mem = estimate_memory(spec, RuntimeSettings(n_ctx=2048))
    assert spec.mla and spec.n_nextn == 1 and got["kv"][0]["v"] == 0
    assert mem.weights_bytes / MIB == pytest.approx(sum(b for _, b in got["model"]), abs=0.011)
    assert spec.weights_bytes > mem.weights_bytes  # the file holds the MTP block all the same


def test_per_layer_embeddings_are_looked_up_not_streamed(tmp_path):
    """Gemma-3n/4 read one row of their per-layer embedding table per token, as of the token embeddings."""
    from fitcheck.estimator.speed import active_weights

    spec = load_spec(synth_arch.write_gguf("gemma4", str(tmp_path)))
    ple = next(t for t in spec.tensors if t.name == "per_layer_token_embd.weight")
    assert active_weights(spec)[0] == spec.weights_bytes - ple.n_bytes  # tied: token_embd doubles as the output


def test_hybrid_layers_from_metadata(tmp_path):
    spec = load_spec(synth_arch.write_gguf("qwen35", str(tmp_path)))
    rec = [il for il in range(spec.n_layer) if spec.is_recurrent(il)]
    kv = [il for il in range(spec.n_layer) if spec.has_kv(il)]
    assert rec and kv and not set(rec) & set(kv) and spec.n_embd_r > 0 and spec.n_embd_s > 0
    g = load_spec(synth_arch.write_gguf("gemma4", str(tmp_path)))
    assert g.n_layer_kv is not None and not any(g.has_kv(il) for il in range(g.n_layer_kv, g.n_layer))
