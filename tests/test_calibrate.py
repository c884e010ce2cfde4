"""`fitcheck calibrate`: real llama.cpp runs on this machine feed every later forecast."""

from __future__ import annotations

import json

import pytest

from fitcheck.calibration.llama_run import LlamaRunError, RunSettings, run_llama
from fitcheck.calibration.synth import SynthModel, write_gguf, write_synthetic

from .conftest import run_cli

pytestmark = pytest.mark.slow  # real llama.cpp runs (one calibration, shared by the module)


@pytest.fixture(scope="module")
def calibrated_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cal-home")
    env = {"FITCHECK_HOME": str(home)}
    out = home / "bench.json"
    r = run_cli("calibrate", "--quick", "--json", "--llama-bench-out", str(out), env=env, timeout=1200)
    refused = r.returncode != 0
    if refused:
        # a machine that stayed too busy for the fit to reproduce its own runs: one line, nothing stored, the runs
        # kept; they are then stored marked as such (deterministic from here: the same records, the same fit)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not stored: the fitted model misses" in r.stderr, r.stderr
        assert f"the runs are in {out}" in r.stderr and "calibration" not in json.loads((home / "profile.json").read_text())
        r = run_cli("calibrate", "--from-llama-bench", str(out), "--store-anyway", "--json", env=env)
        assert r.returncode == 0 and "stored with --store-anyway although it misses" in r.stderr, r.stderr
    return home, env, json.loads(r.stdout), r.stderr, out, refused


def test_calibration_runs_and_is_saved(calibrated_home):
    home, env, d, stderr, _, refused = calibrated_home
    assert d["source"] == ("llama-bench" if refused else "synthetic") and len(d["runs"]) == 3
    assert [r["weight_type"] for r in d["runs"]] == ["Q4_K", "Q8_0", "Q4_0"]  # Q4_K_M (Q4_K + Q6_K), Q8_0, Q4_0
    llc = json.loads((home / "profile.json").read_text())["cpu"]["llc_bytes"]
    sizes = [r["weights_bytes"] for r in d["runs"]]
    assert sizes[0] >= max(16 * llc, 1 << 30) * 0.97 and sizes[0] > sizes[1] > sizes[2] >= 4 * llc * 0.95
    for r in d["runs"]:
        assert r["prompt_tps"] > 0 and r["generation_tps"] > 0 and (refused or r["peak_memory_bytes"] > 0)
    f = d["factors"]
    assert f["model"] == "llama.cpp kernel model" and 0.2 <= f["bw_eff"] <= 1.5
    worst = max(abs(r["error"]) for r in f["residuals"])
    # it reproduces its own runs, or it was stored only on request and says by how much it misses
    assert worst <= 0.10 if not refused else f["missed_own_run"]["error"] == pytest.approx(
        next(r["error"] for r in f["residuals"] if abs(r["error"]) == worst), abs=1e-4)
    assert {r["run"] for r in f["leave_one_out"]} == {r["model"] for r in d["runs"]}
    prof = json.loads((home / "profile.json").read_text())
    assert prof["calibration"]["created"] == d["created"]
    if d.get("crashed_first"):  # the AMX repack path dies on these CPUs: reported and retried
        assert "retried with weight repacking off" in stderr


def test_estimate_uses_calibration(calibrated_home):
    _, env, _, _, _, *_ = calibrated_home
    r = run_cli("estimate", "-m", "1.8b", "--json", env=env)
    d = json.loads(r.stdout)
    assert d["basis"]["speed_inputs"]["calibrated"] is True
    assert "calibrated on this device" in d["basis"]["speed_inputs"]["note"]


def test_llama_bench_round_trip(calibrated_home, tmp_path):
    home, env, d, _, bench, refused = calibrated_home
    records = json.loads(bench.read_text())
    assert {"model_filename", "model_size", "model_n_params", "n_prompt", "n_gen", "n_threads", "avg_ts", "stddev_ts"} <= records[0].keys()
    own = tmp_path / "home"  # a copy: storing this calibration must not replace the one the other tests stand on
    own.mkdir()
    (own / "profile.json").write_text((home / "profile.json").read_text())
    r = run_cli("calibrate", "--from-llama-bench", str(bench), "--json", *(["--store-anyway"] if refused else []),
                env={**env, "FITCHECK_HOME": str(own)})
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["source"] == "llama-bench"
    assert again["factors"]["bw_eff"] == pytest.approx(d["factors"]["bw_eff"], rel=1e-6)


def test_a_calibration_that_misses_its_own_runs_is_not_stored(calibrated_home, tmp_path):
    home, env, _, _, bench, *_ = calibrated_home
    before = (home / "profile.json").read_text()
    records = json.loads(bench.read_text())
    tg = next(r for r in records if r["n_gen"] and "q8_0" in r["model_type"].lower())
    tg["avg_ts"] *= 2.5  # one run that no single device could have produced beside the others
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    r = run_cli("calibrate", "--from-llama-bench", str(bad), env=env)
    assert r.returncode == 1 and "not stored: the fitted model misses its own" in r.stderr, r.stderr
    assert (home / "profile.json").read_text() == before


def test_check_predicts_runs_and_compares(calibrated_home, tmp_path):
    _, env, _, _, _, *_ = calibrated_home
    # 0.56 GB: streamed from RAM as the models the kernel model is for (one near the cache size is not)
    m = SynthModel(n_layer=12, n_embd=2560, n_head=20, n_head_kv=4, n_ff=6912, n_vocab=32000, weight_type="Q4_0", seed=77)
    (path,) = write_synthetic(tmp_path / "unseen.gguf", m)
    r = run_cli("calibrate", "--check", str(path), "--quick", "--json", env=env)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    rows = {x["metric"]: x for x in d["rows"]}
    assert d["calibrated"] and rows["decode t/s"]["measured"] > 0 and rows["prefill t/s"]["measured"] > 0
    for row in rows.values():  # the comparison, not its size: the benchmark holds the accuracy figure
        assert row["error"] == pytest.approx(row["predicted"] / row["measured"] - 1)


def test_reprobing_keeps_the_calibration(calibrated_home):
    home, env, d, _, _, *_ = calibrated_home
    r = run_cli("probe", "--quick", "--json", env=env)
    assert r.returncode == 0, r.stderr
    prof = json.loads((home / "profile.json").read_text())
    assert prof["calibration"]["created"] == d["created"] and not prof["calibration"].get("stale")
    est = json.loads(run_cli("estimate", "-m", "1.8b", "--json", env=env).stdout)
    assert est["basis"]["speed_inputs"]["calibrated"] is True


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"not a model at all", "not a GGUF file"),
])
def test_bad_model_is_one_line_and_profile_untouched(calibrated_home, tmp_path, content, message):
    home, env, _, _, _, *_ = calibrated_home
    before = (home / "profile.json").read_text()
    p = tmp_path / "m.gguf"
    if content is not None:
        p.write_bytes(content)
    r = run_cli("calibrate", "--model", str(p), env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr
    assert (home / "profile.json").read_text() == before


def test_model_llama_cpp_cannot_load(calibrated_home, tmp_path):
    home, env, _, _, _, *_ = calibrated_home
    before = (home / "profile.json").read_text()
    m = SynthModel(n_layer=2, n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_vocab=300)
    meta = {"nosucharch.block_count": 2, "nosucharch.embedding_length": 256, "nosucharch.attention.head_count": 4}
    (path,) = write_gguf(tmp_path / "alien.gguf", "nosucharch", m.tensor_plan(), meta, n_vocab=300)
    r = run_cli("calibrate", "--model", str(path), "--force", env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "could not load" in r.stderr
    assert (home / "profile.json").read_text() == before


def test_too_large_model_is_refused(calibrated_home, tmp_path):
    _, env, _, _, _, *_ = calibrated_home
    m = SynthModel(n_layer=64, n_embd=8192, n_head=64, n_head_kv=8, n_ff=28672, n_vocab=32000, weight_type="Q8_0")
    (path,) = write_synthetic(tmp_path / "huge.gguf", m, sparse=True)  # ~60 GB, a hole on disk
    r = run_cli("calibrate", "--model", str(path), env=env)
    assert r.returncode == 1 and "refusing (use --force" in r.stderr


def test_small_model_warns_about_cache(calibrated_home, smollm2_path):
    _, env, _, _, _, *_ = calibrated_home
    r = run_cli("calibrate", "--model", str(smollm2_path), "--quick", "--json", env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "last-level cache" in r.stderr and "bandwidth reads high" in r.stderr


def test_timeout_kills_the_run(smollm2_path):
    with pytest.raises(LlamaRunError, match="timed out after"):
        run_llama(smollm2_path, n_prompt=512, n_gen=512, reps=5, settings=RunSettings(n_ctx=2048), timeout_s=1.0)


def test_bad_llama_bench_json(calibrated_home, tmp_path):
    _, env, _, _, _, *_ = calibrated_home
    p = tmp_path / "lb.json"
    p.write_text("{nope")
    r = run_cli("calibrate", "--from-llama-bench", str(p), env=env)
    assert r.returncode == 1 and "cannot read llama-bench JSON" in r.stderr
    p.write_text(json.dumps([{"model_filename": "/nowhere/x.gguf", "n_prompt": 512, "n_gen": 0, "avg_ts": 10.0}]))
    r = run_cli("calibrate", "--from-llama-bench", str(p), env=env)
    assert r.returncode == 1 and "model file not found here" in r.stderr


def test_kernel_probe_keeps_each_class_fastest_round(calibrated_home):
    """The profile's llama.cpp kernel probe ran every class in at least two rounds and kept the fastest (a
    neighbour's burst only slows a run), with the spread across rounds as its uncertainty."""
    home, *_ = calibrated_home
    k = json.loads((home / "profile.json").read_text())["kernels"]
    assert k["status"] == "ok" and k["rounds"] >= 1
    if k["rounds"] == 1:  # a quick probe on a busy machine stops at its budget, and says so
        assert any("one round only" in c for c in k["cut_short"])
        assert any(w.startswith("kernel probe: one round only") for w in json.loads((home / "profile.json").read_text())["warnings"])
    for cls, r in k["rates"].items():
        assert len(r["rounds_tg_tps"]) == k["rounds"], cls
        assert r["tg_tps"] == pytest.approx(max(r["rounds_tg_tps"]), rel=0.01) and r["tg_cv"] > 0


def test_no_repack_uses_the_kernels_probed_without_repacking(calibrated_home):
    """The kernel probe also runs the classes llama.cpp repacks with repacking off; `--no-repack` (an LLMFarm-style
    app) predicts from those rates, not the repacked ones."""
    home, env, *_ = calibrated_home
    k = json.loads((home / "profile.json").read_text())["kernels"]
    if not k["repack"]:
        pytest.skip("repacking crashed here: the probe ran every class without it already")
    q4 = k["rates"]["q4_0"]
    if "unrepacked" not in q4:  # a quick probe on a busy machine ran out of its budget first, and said so
        assert any("q4_0 without repacking not measured" in c for c in k["cut_short"])
        off = json.loads(run_cli("estimate", "-m", "1.8b", "-q", "Q4_0", "--no-repack", "--json", env=env).stdout)
        assert any("without repacking not measured" in w for w in off["device"]["warnings"])
        return
    assert q4["unrepacked"]["pp_elems_per_s"] > 0 and q4["unrepacked"]["tg_elems_per_s"] > 0
    on = json.loads(run_cli("estimate", "-m", "1.8b", "-q", "Q4_0", "--json", env=env).stdout)["speed"]
    off = json.loads(run_cli("estimate", "-m", "1.8b", "-q", "Q4_0", "--no-repack", "--json", env=env).stdout)["speed"]
    slower = q4["unrepacked"]["pp_elems_per_s"] < q4["pp_elems_per_s"]
    assert (off["prefill_tps"] < on["prefill_tps"]) == slower and off["prefill_tps"] != on["prefill_tps"]


def test_a_cache_deleted_mid_run_is_one_line_and_leaves_the_profile(calibrated_home, fitcheck_cache, tmp_path):
    """The model cache removed while llama.cpp runs (a cleaner, the user): the next model cannot load; one line,
    a non-zero exit, the previous profile and calibration as they were."""
    import os
    import shutil
    import subprocess
    import sys
    import time

    home, env, *_ = calibrated_home
    own, cache = tmp_path / "home", tmp_path / "cache" / "calibration"
    own.mkdir()
    before = (home / "profile.json").read_text()
    (own / "profile.json").write_text(before)
    cache.mkdir(parents=True)
    for f in (fitcheck_cache / "calibration").iterdir():  # the session's models, linked: no 2 GB written again
        os.link(f, cache / f.name)
    p = subprocess.Popen([sys.executable, "-m", "fitcheck", "calibrate", "--quick"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "FITCHECK_HOME": str(own), "FITCHECK_CACHE": str(cache.parent)})
    # the first model is running once llama.cpp's child has its log open; then the cache goes
    deadline = time.monotonic() + 600
    while p.poll() is None and time.monotonic() < deadline:
        kids = subprocess.run(["pgrep", "-f", "fitcheck.calibration._llama_child"], capture_output=True, text=True)
        if any(int(x) != p.pid for x in kids.stdout.split()):
            break
        time.sleep(0.05)
    shutil.rmtree(cache.parent)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 1 and err.count("\n") == 1 and err.startswith("fitcheck: error:"), err
    assert "does not exist" in err or "cannot write" in err
    assert (own / "profile.json").read_text() == before and sorted(x.name for x in own.iterdir()) == ["profile.json"]
