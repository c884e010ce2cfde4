"""--runtime presets: a runtime's memory-relevant defaults, each sourced; options given on the command line win."""

from __future__ import annotations

import json

import pytest

from fitcheck.errors import UsageError
from fitcheck.runtimes import find, presets

from .conftest import run_cli


def _estimate(*args: str) -> dict:
    r = run_cli("estimate", "-m", "gemma-3-1b", "-q", "Q4_0", "-d", "Galaxy S23", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_preset_is_sourced_and_names_resolve_as_typed():
    for p in presets().values():
        assert p.source and p.verification in ("primary", "secondary", "UNVERIFIED")
    assert find("LM Studio").id == find("lmstudio").id == "lm-studio"
    assert find("llama.cpp").id == "llama-cli" and find("Ollama").id == "ollama"


def test_preset_defaults_set_the_memory_and_explicit_options_win():
    base = _estimate()
    ollama = _estimate("--runtime", "ollama")
    s = ollama["basis"]["settings"]
    assert (s["n_ctx"], s["flash_attn"], s["swa_full"], s["runtime"]) == (4096, True, False, "ollama")
    assert ollama["basis"]["runtime"]["source"]
    # gemma-3's sliding-window layers: window + ubatch cells instead of the full context
    assert ollama["memory"]["kv_cache_bytes"] < base["memory"]["kv_cache_bytes"]
    assert _estimate("--runtime", "ollama", "--ctx", "1024")["basis"]["settings"]["n_ctx"] == 1024
    pp = _estimate("--runtime", "pocketpal")["basis"]["settings"]
    assert (pp["n_ctx"], pp["use_mmap"]) == (2048, False)


def test_model_context_presets_take_the_trained_context():
    d = _estimate("--runtime", "llama-server")
    assert d["basis"]["settings"]["n_ctx"] == d["model"]["n_ctx_train"]


def test_unknown_runtime_is_one_line_with_suggestions():
    r = run_cli("estimate", "-m", "7b", "--runtime", "olama")
    assert r.returncode != 0 and "ollama" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(UsageError):
        find("no-such-runtime-at-all")


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "phone_llm_results_dev.csv").exists(), reason="shared/data is not beside this checkout")
def test_kv_cache_matches_llama_cpp_on_the_dev_phone():
    """The dev phone's llama.cpp runs (PocketPal, context 2048): KV cache as llama.cpp reported it, within 1 %."""
    import csv

    from fitcheck.estimator.memory import estimate_memory
    from fitcheck.estimator.settings import RuntimeSettings
    from fitcheck.model.catalog import resolve, spec_from_catalog
    from fitcheck.errors import UnknownModelError

    checked = 0
    for r in csv.DictReader((SHARED / "phone_llm_results_dev.csv").open()):
        try:
            entry, _ = resolve(r["model"])
        except UnknownModelError:
            continue  # hybrid and per-layer-embedding architectures are not in the catalog yet
        if entry.swa_window:
            continue  # llama.rn reports one of Gemma's two KV caches (the sliding-window one) as the model's
        s = RuntimeSettings(n_ctx=int(r["n_ctx"]), swa_full=False, flash_attn="flash_attn=on" in r["notes"])
        kv = estimate_memory(spec_from_catalog(entry, "Q4_0"), s).kv_cache_bytes / 2**20
        assert kv == pytest.approx(float(r["kv_MiB"]), rel=0.01), r["model"]
        checked += 1
    assert checked >= 50


def test_advise_takes_a_runtime_too():
    r = run_cli("advise", "-m", "qwen3-1.7b", "-d", "Galaxy S23", "--runtime", "llama-server", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_ctx"] == 40960  # llama-server's "model" context: Qwen3's trained 40960
    r = run_cli("advise", "-m", "qwen3-1.7b", "-d", "Galaxy S23", "--runtime", "ollama", "--ctx", "1024", "--json")
    assert json.loads(r.stdout)["n_ctx"] == 1024
