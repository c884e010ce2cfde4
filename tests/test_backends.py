"""Backend classes: which a device runs, --backend / --threads, and the per-class fits on the dev runs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

import device_db
from fitcheck.backtest import backend_of, backtest, threads_of
from fitcheck.device.backends import BACKENDS, clusters, cpu_compute, default_threads
from fitcheck.device.device_speed import from_device, params_for
from fitcheck.errors import FitcheckError
from fitcheck.estimator.speed import estimate_speed, split_work
from fitcheck.model.catalog import entries, spec_from_catalog
from .conftest import run_cli

DB = Path(device_db.__file__).parent


def _dev(name: str):
    from fitcheck.device.names import resolve

    return resolve(name).device


def test_every_device_runs_known_classes_and_answers_prefill_on_its_default():
    """Prefill for every device in the database that has a bandwidth: its default backend has a compute rate."""
    no_rate = []
    for d in device_db.devices().values():
        assert d.backends and set(d.backends) <= set(BACKENDS), d.id
        if d.bw_gbps:
            spec, _ = from_device(d)
            if not spec.peak_tflops:
                no_rate.append(d.id)
    assert no_rate == []


@pytest.mark.parametrize("name, runs, default", [
    ("Galaxy S23", {"cpu", "opencl", "hexagon"}, "cpu"),  # Snapdragon 8 Gen 2: Adreno and HTP v73
    ("Galaxy S22", {"cpu", "opencl"}, "cpu"),  # HTP v69: below what llama.cpp's Hexagon backend takes
    ("Pixel 8", {"cpu", "vulkan"}, "cpu"),
    ("RTX 4090", {"cuda", "vulkan"}, "cuda"),
    ("RX 7900 XTX", {"vulkan", "rocm"}, "vulkan"),
    ("MacBook Air 13 M2", {"metal", "cpu", "mlx"}, "metal"),
    ("Pi 5", {"cpu"}, "cpu"),
])
def test_device_backends(name, runs, default):
    d = _dev(name)
    assert runs <= set(d.backends) and d.backends[0] == default
    assert "hexagon" not in d.backends or "Hexagon v7" in d.npu or "Hexagon v8" in d.npu


def test_cpu_compute_follows_threads_and_core_types():
    flops = {k: c.fp32_flops_per_cycle for k, c in device_db.cpu_cores().items()}
    s23 = _dev("Galaxy S23").cpu
    assert [c.count for c in clusters(s23)] == [1, 2, 2, 3] and default_threads(s23, "phone") == 6
    one, six, eight = (cpu_compute(s23, n, flops).tflops for n in (1, 6, 8))
    assert one < six < eight and one == pytest.approx(3.19 * 32 / 1000)  # the X3 first: four 128-bit FMA pipes
    assert default_threads("8x5.7 Golden-Cove + 16x4.4 Gracemont", "desktop") == 8  # llama.cpp: P-cores on x86 hybrids
    assert cpu_compute("4x1.0 Unknown-Core", 4, flops) is None


def test_threads_slow_a_cpu_bound_device_down():
    spec = spec_from_catalog(entries()["llama-2-7b"], "Q4_0")
    pi = _dev("Pi 5")
    rates = [estimate_speed(spec, s, params_for("cpu")[0], n_prompt=64).decode_tps
             for s in (from_device(pi, "cpu", n)[0] for n in (1, 2, 4))]
    assert rates[0] < rates[1] < rates[2]


def test_published_rows_name_their_backend():
    row = {"backend": "llama.cpp CPU", "device": "NVIDIA Jetson AGX Orin (CPU only)", "device_variant": "12 threads",
           "notes": ""}
    assert backend_of(row) == "cpu" and threads_of(row) == 12
    assert backend_of({"backend": "Ollama / llama.cpp", "device": "Raspberry Pi 5 16GB", "device_variant": "CPU"}) == "cpu"
    assert backend_of({"backend": "llama.cpp Vulkan (llama-bench)", "device": "RTX 4090", "device_variant": ""}) == "vulkan"
    assert backend_of({"backend": "Ollama / llama.cpp", "device": "M4 Mac mini", "device_variant": "GPU"}) is None


def test_cpu_only_row_is_never_a_gpu_prediction():
    d = backtest(DB / "published_benchmarks_dev.csv")
    cpu = [r for r in d["rows"] if r.get("category") == "cpu_tmac" and "predicted" in r]
    assert len(cpu) == 16  # every T-MAC CPU row answered ...
    jetson = [r for r in cpu if "jetson" in r["device"]]
    assert jetson and all(r["predicted"] < 15 for r in jetson)  # ... on the CPU, not the Orin's GPU (66 t/s)


def test_dev_phone_runs_by_backend():
    """The 217 dev-phone runs: every one answered; decode error per backend on the dev set within what the fit
    reached (README accuracy table)."""
    d = backtest(DB / "phone_runs_dev.csv")
    assert d["overall"]["unresolved"] == 0 and d["overall"]["n"] == 434
    s = d["summary"]
    assert s["phone_cpu/decode"]["mape"] < 0.15 and s["phone_cpu/prefill"]["mape"] < 0.3
    assert s["phone_hexagon/decode"]["mape"] < 0.3 and s["phone_opencl/decode"]["mape"] < 0.4
    # the three backends differ where the data does: Hexagon decodes Q4_0 far faster than the CPU
    rows = {(r["model"], r["category"], r["metric"]): r["predicted"] for r in d["rows"] if "predicted" in r}
    q40 = [k for k in rows if "Q4_0" in k[0] and k[1] == "phone_hexagon" and k[2] == "prefill"]
    assert q40 and statistics.fmean(rows[k] / rows[(k[0], "phone_cpu", k[2])] for k in q40) > 1.5


@pytest.mark.parametrize("args, words", [
    (["--backend", "npu"], "unknown backend 'npu'"),
    (["-d", "Galaxy S23", "--backend", "cuda"], "cannot run the cuda backend"),
    (["-d", "Galaxy S22", "--backend", "hexagon"], "cannot run the hexagon backend"),
    (["-d", "Galaxy S23", "--threads", "0"], "--threads must be at least 1"),
    (["-d", "Galaxy S23", "--threads", "9"], "has 8 cores"),
    (["--backend", "metal"], "this device cannot run the metal backend"),
])
def test_bad_backend_and_threads(args, words):
    r = run_cli("estimate", "-m", "1.8b", *args)
    assert r.returncode == 1 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1 and not r.stdout


def test_estimate_json_names_backend_and_threads():
    out = json.loads(run_cli("estimate", "-m", "1.8b", "-d", "Galaxy S23", "--backend", "hexagon", "--json").stdout)
    assert out["device"]["backend"] == "hexagon" and "hexagon" in out["device"]["backends"]
    four = json.loads(run_cli("estimate", "-m", "1.8b", "-d", "Galaxy S23", "--threads", "4", "--json").stdout)
    six = json.loads(run_cli("estimate", "-m", "1.8b", "-d", "Galaxy S23", "--json").stdout)
    assert four["speed"]["prefill_tps"] < six["speed"]["prefill_tps"]
    assert "4 of 8 cores" in four["basis"]["speed_inputs"]["note"] or "4 of 8 cores" in json.dumps(four)


def test_classes_without_own_fit_borrow_and_say_so():
    p, note = params_for("sycl")  # too few published SYCL rows to fit a class of its own (refit.MIN_ROWS)
    assert "vulkan class is used" in note
    assert "fitted" in params_for("rocm")[1]
    with pytest.raises(FitcheckError):
        from_device(_dev("RTX 4090"), "cpu")


@pytest.mark.parametrize("device, cls", [("Galaxy S23", "opencl"), ("MacBook Air 13 M2", "metal")])
def test_mlc_speed_follows_the_gpu_api_it_compiles_to(device, cls):
    """MLC has no fit of its own: on an Adreno phone it runs OpenCL, on a Mac Metal."""
    dev = _dev(device)
    spec, basis = from_device(dev, "mlc")
    assert spec.backend == "mlc" and spec.params_class == cls and f"fitted {cls} class" in basis["backend"]
    own = from_device(dev, cls)[0]
    assert spec.peak_tflops == own.peak_tflops


def test_backtest_prints_held_out_errors_per_class(tmp_path):
    """`backtest --lofo` refits each class on the file without one group at a time: here the dev phone's CPU and
    Hexagon runs of four models, each model held out in turn."""
    lines = (DB / "phone_runs_dev.csv").read_text().splitlines()
    keep = [ln for ln in lines[1:] if any(m in ln for m in ("qwen3-1.7b", "gemma-3-1b", "smollm2-1.7b", "phi-4-mini"))
            and (",cpu," in ln or ",hexagon," in ln)]
    p = tmp_path / "runs.csv"
    p.write_text("\n".join([lines[0]] + keep) + "\n")
    r = run_cli("backtest", str(p), "--lofo", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d["held_out"]) == {"cpu", "hexagon"}
    for b in ("cpu", "hexagon"):
        assert d["held_out"][b]["decode"]["n"] == d["by_class"][f"{b}/decode"]["n"] > 10
        # held-out errors: of the order of the shipped fit's on the same rows, and finite
        assert d["by_class"][f"{b}/decode"]["mape"] * 0.5 < d["held_out"][b]["decode"]["mape"] < 2.0


@pytest.mark.parametrize("soc", [
    "Snapdragon 8 Gen 1", "Snapdragon 8 Gen 2", "Snapdragon 8 Gen 3", "Snapdragon 8 Elite", "Snapdragon 8 Elite Gen 5",
    "Snapdragon 7+ Gen 3", "Snapdragon 8s Gen 3", "Dimensity 8300", "Dimensity 8400", "Dimensity 9200", "Dimensity 9300",
    "Dimensity 9400", "Dimensity 9500", "Tensor G2", "Tensor G3", "Tensor G4", "Tensor G5", "Exynos 2200", "Exynos 2400",
    "Exynos 2500", "A15 Bionic 5-core", "A16 Bionic", "A17 Pro", "A18 Pro", "A19 Pro",
])
def test_phone_socs_answer_by_name(soc):
    """The issue's phone SoCs of 2022-2026 resolve by name, with CPU clusters and a RAM option, and answer decode and
    prefill on their CPU at the phone apps' thread count."""
    d = _dev(soc)
    assert d.kind == "chip" and d.cpu and d.ram_options_gb and "source" and d.source
    spec, basis = from_device(d, "cpu")
    assert spec.peak_tflops and "6 of" in basis["compute"]
    est = estimate_speed(spec_from_catalog(entries()["qwen3-1.7b"], "Q4_K_M"), spec, params_for("cpu")[0], n_prompt=256)
    assert 1 < est.decode_tps < 100 and 5 < est.prefill_tps < 2000


def test_types_the_npu_lacks_run_on_the_cpu():
    """Q2_K has no Hexagon matrix-product kernel (ggml-hexagon.cpp): its share runs on the phone's CPU, so fewer CPU
    threads slow a Q2_K model on the NPU far more than a Q4_0 one, of which only the lm-head (over 16 Ki rows, too
    large for the NPU) runs on the CPU."""
    s23 = _dev("Galaxy S23")
    p = params_for("hexagon")[0]
    assert "q2_k" in p.cpu_types and p.cpu is not None and "q4_0" not in p.cpu_types
    rates = {}
    for q in ("Q2_K", "Q4_0"):
        spec = spec_from_catalog(entries()["qwen3-1.7b"], q)
        rates[q] = [estimate_speed(spec, from_device(s23, "hexagon", n)[0], p, n_prompt=256).decode_tps for n in (2, 6)]
        sp = split_work(spec, p, from_device(s23, "hexagon", 6)[0])
        assert sp.out_on_cpu and sp.trips >= 1
    assert rates["Q2_K"][0] < rates["Q2_K"][1] * 0.7
    assert rates["Q4_0"][1] / rates["Q4_0"][0] < (rates["Q2_K"][1] / rates["Q2_K"][0]) ** 0.5


@pytest.mark.parametrize("backend, slow, fast", [
    # HMX takes quantized rows in multiples of 256 (htp/matmul-ops.c): Gemma-3 1B's 1152-wide rows go to HVX
    ("hexagon", "gemma-3-1b", "qwen2.5-1.5b"),
    # Adreno's kernels want both sides >= 512 (ggml-opencl.cpp use_adreno_kernels): Qwen2.5's K/V have 256 rows
    ("opencl", "qwen2.5-1.5b", "qwen3-1.7b"),
])
def test_matrices_that_miss_the_fast_prefill_kernels(backend, slow, fast):
    """On the dev phone a Q4_0 prompt ran 2.3-2.5x faster on the accelerator than on the CPU for most models and
    0.4-0.5x for these (shared/data phone_llm_results_dev.csv): the rule that decides it is in the model."""
    s23 = _dev("Galaxy S23")
    ratio = {}
    for name in (slow, fast):
        spec = spec_from_catalog(entries()[name], "Q4_0")
        acc = estimate_speed(spec, from_device(s23, backend, 6)[0], params_for(backend)[0], n_prompt=256)
        cpu = estimate_speed(spec, from_device(s23, "cpu", 6)[0], params_for("cpu")[0], n_prompt=256)
        ratio[name] = acc.prefill_tps / cpu.prefill_tps
    assert ratio[slow] < 0.8 and ratio[fast] > 1.5


def test_a_cpu_fallback_costs_round_trips_per_layer():
    """OpenCL lacks Q2_K kernels: every layer holding one splits the graph (4-6 t/s measured on the dev phone
    against 12-14 on its CPU), which the model charges per layer."""
    s23 = _dev("Galaxy S23")
    p = params_for("opencl")[0]
    spec = spec_from_catalog(entries()["qwen3-1.7b"], "Q2_K")
    sp = split_work(spec, p, from_device(s23, "opencl", 6)[0])
    assert sp.trips == spec.n_layer and not sp.out_on_cpu and p.t_split_s > 0  # its Q6_K head runs on the GPU
    gpu = estimate_speed(spec, from_device(s23, "opencl", 6)[0], p, n_prompt=256).decode_tps
    cpu = estimate_speed(spec, from_device(s23, "cpu", 6)[0], params_for("cpu")[0], n_prompt=256).decode_tps
    assert gpu < 0.6 * cpu


def test_newer_htps_take_half_the_vendors_claimed_gain():
    """Qualcomm claims +98 % (8 Gen 3, v75), +45 % (8 Elite, v79): v79 is rated sqrt(1.98 x 1.45) of the measured v73,
    an unknown version as the v73; the prefill interval spans "as claimed" to "no faster"."""
    from fitcheck.device.device_speed import htp_rate

    assert htp_rate(73)[0] == 1.0
    assert htp_rate(79)[0] == pytest.approx((1.98 * 1.45) ** 0.5)
    assert htp_rate(90)[0] == 1.0 and "no claimed gain" in htp_rate(90)[1]
    spec = spec_from_catalog(entries()["qwen2.5-1.5b"], "Q4_0")
    old, new = (estimate_speed(spec, from_device(_dev(n), "hexagon", 6)[0], params_for("hexagon")[0], n_prompt=256)
                for n in ("Galaxy S23", "Snapdragon 8 Elite"))
    assert 1.3 < new.prefill_tps / old.prefill_tps < htp_rate(79)[0] * 1.1


def test_vulkan_prefill_depends_on_the_gpu_architecture():
    """On Vulkan, NVIDIA's and RDNA4's prompts ran about 110 t/s per FP32 TFLOP on Llama-2 7B Q4_0 and Intel Arc's
    45-55 (#10879 in shared/data): the class carries a fitted factor per architecture, named in the basis; one
    without rows (RDNA2) takes none."""
    from fitcheck.device.backends import gpu_arch
    from fitcheck.estimator.speed import arch_factor

    assert [gpu_arch(n) for n in ("NVIDIA GeForce RTX 4090", "AMD Radeon RX 9070 XT", "AMD Radeon RX 6800 XT",
                                  "Intel Arc B580", "AMD Ryzen AI Max+ 395 (Strix Halo)")] == \
        ["nvidia-ada", "rdna4", "rdna2", "intel-arc", "rdna3"]
    p = params_for("vulkan")[0]
    assert p.pp_arch["nvidia"] > 1.5 * p.pp_arch["intel-arc"] and "rdna2" not in p.pp_arch
    # a generation the class has no factor of its own for takes its maker's ("nvidia-ada" -> "nvidia")
    assert arch_factor(p.pp_arch, "nvidia-ada") == p.pp_arch["nvidia"] and arch_factor(p.pp_arch, "rdna2") == 1.0
    spec = spec_from_catalog(entries()["llama-2-7b"], "Q4_0")
    per_tflop = {}
    for name in ("RTX 4090", "Arc B580"):
        s, basis = from_device(_dev(name), "vulkan")
        assert s.gpu_arch in basis["compute"]
        per_tflop[name] = estimate_speed(spec, s, p, n_prompt=512).prefill_tps / s.peak_tflops
    assert per_tflop["RTX 4090"] > 1.5 * per_tflop["Arc B580"]


def test_prefill_is_answered_for_every_device_and_backend_it_runs():
    """Every device in the database, on every backend it runs, answers decode and prefill from published specs;
    the only exceptions are a phone GPU or NPU path whose GPU FLOPS nobody publishes (most Adreno and Mali parts of
    mid-range SoCs, the Xclipse 960): its prefill is unknown, said so, never guessed; its CPU path answers."""
    import device_db

    spec = spec_from_catalog(entries()["llama-3.2-3b"], "Q4_K_M")
    unanswered = set()
    for d in device_db.devices().values():
        for b in d.backends or (d.backend,):
            s = from_device(d, b)[0]
            e = estimate_speed(spec, s, params_for(s.params_class or s.backend)[0], n_prompt=512)
            assert e.decode_tps > 0
            if not e.prefill_tps:
                unanswered.add((d.id, b))
    table = device_db.devices()
    assert ("samsung-exynos-2600", "vulkan") in unanswered  # Xclipse 960 FLOPS unpublished
    for dev_id, b in unanswered:
        d = table[dev_id]
        assert b in ("vulkan", "opencl", "mlc") and d.fp32_tflops is None and d.kind in ("chip", "phone", "tablet"), \
            (dev_id, b)
        assert (dev_id, "cpu") not in unanswered and "cpu" in d.backends, dev_id
