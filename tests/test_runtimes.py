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
def test_dev_phone_runs_are_answerable_with_llama_cpp_buffers():
    """The dev phone's llama.cpp runs (PocketPal, context 2048), by the model name and quant they publish: every run
    answerable; KV cache as llama.cpp reported it within 1 %; compute buffer within 15 % on average."""
    import csv

    from fitcheck.estimator.memory import estimate_memory
    from fitcheck.estimator.settings import RuntimeSettings
    from fitcheck.model.catalog import resolve, spec_from_catalog

    rows = list(csv.DictReader((SHARED / "phone_llm_results_dev.csv").open()))
    kv_checked, compute_err = 0, []
    for r in rows:
        entry, _ = resolve(r["model"])  # raises for an unanswerable name
        s = RuntimeSettings(n_ctx=int(r["n_ctx"]), swa_full=False, flash_attn="flash_attn=on" in r["notes"])
        mem = estimate_memory(spec_from_catalog(entry, r["quant"]), s)
        if r["compute_MiB"]:
            compute_err.append(abs(mem.compute_bytes / 2**20 / float(r["compute_MiB"]) - 1))
        if entry.swa_window:
            continue  # llama.rn reports one of Gemma's two KV caches (the sliding-window one) as the model's
        assert mem.kv_cache_bytes / 2**20 == pytest.approx(float(r["kv_MiB"]), rel=0.01), r["model"]
        kv_checked += 1
    assert kv_checked >= 150 and len(compute_err) == len(rows)
    assert sum(compute_err) / len(compute_err) <= 0.15


def test_advise_takes_a_runtime_too():
    r = run_cli("advise", "-m", "qwen3-1.7b", "-d", "Galaxy S23", "--runtime", "llama-server", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_ctx"] == 40960  # llama-server's "model" context: Qwen3's trained 40960
    r = run_cli("advise", "-m", "qwen3-1.7b", "-d", "Galaxy S23", "--runtime", "ollama", "--ctx", "1024", "--json")
    assert json.loads(r.stdout)["n_ctx"] == 1024


def test_main_job_forecast_and_scan_take_a_runtime(smollm2_path):
    """The same presets on the main table, the forecast and a scan of files on disk."""
    plain = json.loads(run_cli("-d", "Galaxy S23", "--json").stdout)
    r = run_cli("-d", "Galaxy S23", "--runtime", "llama-server", "--json")
    assert r.returncode == 0, r.stderr
    served = json.loads(r.stdout)
    assert served["settings"]["n_ctx"] == "each model's trained context" and served["settings"]["runtime"] == "llama-server"
    need = {(x["size"], x["quant"]): x["total_bytes"] for x in plain["rows"]}
    assert all(x["total_bytes"] > need[(x["size"], x["quant"])] for x in served["rows"])  # 32k-131k tokens of KV, not 4k
    d = json.loads(run_cli("forecast", "-s", "4b", "--runtime", "pocketpal", "--json").stdout)
    assert d["n_ctx"] == find("pocketpal").n_ctx
    for runtime, ctx in (("llama-server", "each model's trained context"), ("pocketpal", find("pocketpal").n_ctx)):
        r = run_cli("scan", "--no-stores", str(smollm2_path), "--runtime", runtime, "-d", "Galaxy S23", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["n_ctx"] == ctx
