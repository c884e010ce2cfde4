"""Splits over devices: llama.cpp's placement rules, memory per device, speed with the links, the CLI and its bad
input. The placement follows llama.cpp's loader: these tests check the rules on real catalog shapes; the RPC tests
at the end run llama.cpp's own rpc-server and llama-bench (slow tier)."""

from __future__ import annotations

import json
import socket

import pytest

from fitcheck.estimator.placement import Link, SplitOptions, Unit, memory, place, speed
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import DeviceSpeedSpec, estimate_speed
from fitcheck.device.device_speed import backend_params
from fitcheck.errors import UsageError
from fitcheck.model.catalog import entries, spec_from_catalog

from .conftest import run_cli

CPU = DeviceSpeedSpec("cpu", 80.0, 2.0, cpu_tflops=2.0, threads=16)
GPU = DeviceSpeedSpec("cuda", 1008.0, 82.6, params_class="cuda", gpu_arch="nvidia")
PCIE = Link("PCIe 4.0 x16", 252.0, 1e-5, "pcie")


def _units(*gpus: int, host_bytes: int = 64 * 10**9):
    units = [Unit("host", "host", CPU, backend_params("cpu"), host_bytes)]
    units += [Unit(f"gpu{i}", "gpu", GPU, backend_params("cuda"), b, PCIE, offload_op=True) for i, b in enumerate(gpus)]
    return tuple(units)


def _spec(name="llama-3.1-8b", quant="Q4_K_M"):
    return spec_from_catalog(entries()[name], quant)


def test_gpu_layers_follow_llama_cpp_the_head_counts_as_a_layer():
    spec = _spec()
    n = spec.n_layer
    every = place(spec, _units(24 * 10**9), SplitOptions())
    assert set(every.layer_at) == {1} and every.output_at == 1 and every.where["token_embd.weight"] == 0
    for ngl in (1, 10, n):
        pl = place(spec, _units(24 * 10**9), SplitOptions(n_gpu_layers=ngl))
        # llama-model.cpp: i_gpu_start = n_layer + 1 - ngl, the head is "layer" n_layer
        assert pl.layer_at.count(1) == ngl - 1 and pl.output_at == 1
        assert all(u == 0 for u in pl.layer_at[: n + 1 - ngl])
    none = place(spec, _units(24 * 10**9), SplitOptions(n_gpu_layers=0))
    assert set(none.layer_at) == {0} and none.output_at == 0


def test_tensor_split_and_free_memory_share_layers_like_upper_bound():
    spec = _spec()
    pl = place(spec, _units(24 * 10**9, 8 * 10**9), SplitOptions(tensor_split=(3, 1)))
    on = [pl.layer_at.count(i) for i in (1, 2)]
    assert on[0] + on[1] == spec.n_layer and 23 <= on[0] <= 25  # 3/4 of 33 "layers" (the head included)
    by_memory = place(spec, _units(24 * 10**9, 8 * 10**9), SplitOptions())  # default: by free memory, 3:1 here too
    assert by_memory.layer_at == pl.layer_at
    with pytest.raises(UsageError, match="2 devices"):
        place(spec, _units(24 * 10**9, 8 * 10**9), SplitOptions(tensor_split=(1, 1, 1)))


def test_experts_on_the_cpu_by_n_cpu_moe_and_override():
    spec = _spec("qwen3-30b-a3b")
    pl = place(spec, _units(24 * 10**9), SplitOptions(n_cpu_moe=10))
    exps = [name for name in pl.where if "_exps." in name]
    for name in exps:
        il = int(name.split(".")[1])
        assert pl.where[name] == (0 if il < 10 else 1), name
    assert all(pl.where[n] == 1 for n in pl.where if ".attn_q." in n)  # attention stays on the GPU
    every = place(spec, _units(24 * 10**9), SplitOptions(cpu_moe=True))
    assert all(every.where[n] == 0 for n in exps)
    ot = place(spec, _units(24 * 10**9), SplitOptions(overrides=((r"blk\.[0-4]\.ffn_down_exps", "CPU"),)))
    assert sorted(int(n.split(".")[1]) for n in ot.where if "ffn_down_exps" in n and ot.where[n] == 0) == [0, 1, 2, 3, 4]
    with pytest.raises(UsageError, match="matches no tensor"):
        place(spec, _units(24 * 10**9), SplitOptions(overrides=((r"nothing_here", "CPU"),)))
    with pytest.raises(UsageError, match="none of the devices"):
        place(spec, _units(24 * 10**9), SplitOptions(overrides=((r"exps", "CUDA7"),)))


def test_memory_per_device_adds_up_and_kv_follows_its_layers():
    spec = _spec()
    s = RuntimeSettings(n_ctx=8192)
    pl = place(spec, _units(24 * 10**9), SplitOptions(n_gpu_layers=20))
    host, gpu = memory(spec, s, pl)
    assert host.weights_bytes + gpu.weights_bytes == spec.weights_bytes
    assert gpu.kv_bytes == pytest.approx((19 / spec.n_layer) * (host.kv_bytes + gpu.kv_bytes), rel=1e-9)
    nkvo = memory(spec, s, place(spec, _units(24 * 10**9), SplitOptions(n_gpu_layers=20, no_kv_offload=True)))
    assert nkvo[1].kv_bytes == 0 and nkvo[0].kv_bytes == host.kv_bytes + gpu.kv_bytes
    over = memory(spec, s, place(spec, _units(2 * 10**9), SplitOptions()))
    assert over[1].fit.verdict not in ("fits", "tight")


def test_a_split_with_everything_on_one_gpu_is_that_gpus_estimate():
    spec = _spec()
    s = RuntimeSettings()
    sp = speed(spec, place(spec, _units(24 * 10**9), SplitOptions()), s, n_prompt=512)
    alone = estimate_speed(spec, GPU, backend_params("cuda"), n_prompt=512)
    # the same terms; what differs is the link (hidden state in, logits out: microseconds)
    assert sp.decode_tps == pytest.approx(alone.decode_tps, rel=0.05)
    assert sp.prefill_tps == pytest.approx(alone.prefill_tps, rel=0.1)


def test_more_on_the_slower_device_is_slower_and_a_slow_link_costs():
    spec = _spec()
    s = RuntimeSettings()
    rates = [speed(spec, place(spec, _units(24 * 10**9), SplitOptions(n_gpu_layers=n)), s).decode_tps
             for n in (33, 24, 16, 8, 0)]
    assert rates == sorted(rates, reverse=True)
    units = list(_units())
    fast = units + [Unit("rpc0", "rpc", GPU, backend_params("cuda"), 24 * 10**9, Link("10gbe", 9.4, 1e-4))]
    slow = units + [Unit("rpc0", "rpc", GPU, backend_params("cuda"), 24 * 10**9, Link("wifi", 0.05, 20e-3))]
    a, b = (speed(spec, place(spec, tuple(u), SplitOptions()), s) for u in (fast, slow))
    assert b.round_trips >= 1 and b.link_decode_s > 10 * a.link_decode_s and b.decode_tps < a.decode_tps


def test_estimate_answers_the_issue_examples_with_devices_speed_and_command():
    r = run_cli("estimate", "-m", "gpt-oss-120b", "-d", "RTX 4090", "--host", "Ryzen 9 7950X 64GB", "--n-cpu-moe", "28",
                "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [m["device"].startswith("host") for m in d["memory"]] == [True, False]
    assert d["speed"]["decode_tps"] > 0 and d["speed"]["prefill_tps"] > 0
    assert "--n-cpu-moe 28" in d["command"]
    # no --quant: gpt-oss's released format (MXFP4 experts, Q8_0 rest), the file llama-bench lists as 59.02 GiB
    # (eunomia-bpf/gpu_ext workloads/llama.cpp/README.md, build 10e97801)
    weights = sum(m["weights_bytes"] for m in d["memory"])
    assert d["basis"]["quant"] == "MXFP4_MOE" and abs(weights / (59.02 * 2**30) - 1) < 0.01, weights
    r = run_cli("estimate", "-m", "llama-3.1-70b", "-d", "Mac mini M4 Pro 64GB + rpc:Mac mini M4 Pro 64GB",
                "--link", "10gbe", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    roles = [x["role"] for x in d["split"]["devices"]]
    assert roles == ["host", "gpu", "rpc"] and d["speed"]["round_trips"] == 1 and "--rpc" in d["command"]
    assert d["memory"][0]["note"] and d["memory"][2]["weights_bytes"] > 10e9  # one Mac's CPU and GPU share its memory
    text = run_cli("estimate", "-m", "llama-3.1-70b", "-d", "Mac mini M4 Pro 64GB + rpc:Mac mini M4 Pro 64GB")
    assert text.returncode == 0 and "llama.cpp: llama-server" in text.stdout


@pytest.mark.parametrize("args, words", [
    (("--link", "fast"), "not a link"),
    (("--link", "0/5"), "not a link"),
    (("-ts", "1,x"), "--tensor-split"),
    (("-ts", "0,0"), "--tensor-split"),
    (("-ts", "1,1,1"), "shares for 2 devices"),
    (("-ot", "nothing_matches=CPU"), "matches no tensor"),
    (("-ot", "exps"), "REGEX=DEVICE"),
    (("-ot", "(=CPU"), "not a regular expression"),
    (("-sm", "diagonal"), "--split-mode"),
    (("--n-cpu-moe", "-2"), "--n-cpu-moe"),
])
def test_bad_split_input_is_one_line(args, words):
    r = run_cli("estimate", "-m", "qwen3-30b-a3b", "-d", "RTX 4090 + RTX 3090", "--host", "Ryzen 9 7950X 64GB", *args)
    assert r.returncode != 0
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_rpc_servers_that_do_not_answer_or_repeat_are_one_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("estimate", "-m", "1.8b", "--host", "Ryzen 9 7950X 64GB", "--rpc", f"127.0.0.1:{port}")
    assert r.returncode != 0 and "not reachable" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("estimate", "-m", "1.8b", "--host", "Ryzen 9 7950X 64GB", "--rpc", "127.0.0.1:5000,127.0.0.1:5000")
    assert r.returncode != 0 and "twice" in r.stderr
    with socket.socket() as srv:  # a server that accepts and says nothing useful: refused within the deadline
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        r = run_cli("estimate", "-m", "1.8b", "--host", "Ryzen 9 7950X 64GB", "--rpc", f"127.0.0.1:{srv.getsockname()[1]}",
                    timeout=60)
    assert r.returncode != 0 and "did not answer" in r.stderr


def test_link_calibrated_without_a_calibration_says_what_to_run():
    r = run_cli("estimate", "-m", "1.8b", "-d", "Pi 5 8GB + rpc:Pi 5 8GB", "--link", "calibrated")
    assert r.returncode != 0 and "calibrate --rpc" in r.stderr


def test_gpu_layers_on_a_cpu_only_machine_say_so():
    r = run_cli("estimate", "-m", "1.8b", "-d", "Pi 5 8GB", "--gpu-layers", "10", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["memory"]["gpu_layers"] == 0 and any("no accelerator" in w for w in d["warnings"])


# ---- the real thing: llama.cpp's rpc-server and llama-bench (built once from the vendored llama.cpp) ----

def _lab_or_skip():
    from fitcheck.calibration.rpc_lab import available

    why = available()
    if why:
        pytest.skip(f"no RPC lab here: {why}")


@pytest.fixture(scope="module")
def rpc_model(tmp_path_factory):
    from fitcheck.calibration.calibrate import ensure_model
    from fitcheck.calibration.rpc_fit import CALIBRATION_MODEL
    from fitcheck.calibration.synth import SynthModel, spec_of

    m = SynthModel(**CALIBRATION_MODEL)
    return ensure_model(m, tmp_path_factory.mktemp("rpc")), spec_of(m)


@pytest.mark.slow
def test_memory_on_each_rpc_server_is_what_llama_cpp_allocates_there(rpc_model):
    """Every device's weights, KV cache and compute buffer against the sizes llama.cpp logs for it (llama-bench -v)."""
    _lab_or_skip()
    from fitcheck.calibration.rpc import bench
    from fitcheck.calibration.rpc_fit import Run, units_here
    from fitcheck.calibration.rpc_lab import Lab

    path, spec = rpc_model
    with Lab(2, None, 0.0, threads=1) as lab:
        for ngl, ts in ((spec.n_layer + 1, "3/1"), (9, "1/1")):
            r = bench(path, lab.endpoints, n_gpu_layers=ngl, tensor_split=ts, threads=1, n_gen=4, reps=1)
            run = Run(spec, ngl, ts, n_prompt=128, n_gen=4)
            units = units_here(DeviceSpeedSpec("cpu", 30.0, None), None, Link("lab", 1.0, 1e-3), 2)
            pl = place(spec, units, SplitOptions(n_gpu_layers=ngl, tensor_split=tuple(float(x) for x in ts.split("/"))))
            mem = memory(spec, run.settings(), pl)
            for k, ep in enumerate(lab.endpoints):
                got = next(v for d, v in r.buffers.items() if ep in d)
                assert mem[k + 1].weights_bytes == pytest.approx(got["model"], rel=0.001)
                assert mem[k + 1].kv_bytes == got["KV"]
                need = mem[k + 1].weights_bytes + mem[k + 1].kv_bytes + mem[k + 1].compute_bytes
                assert need == pytest.approx(sum(got.values()), rel=0.05), (ngl, ts, ep, got)
    import subprocess

    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lab.tag not in left  # nothing left behind


@pytest.mark.slow
def test_calibrate_rpc_stores_a_link_or_refuses_and_keeps_the_previous(rpc_model):
    _lab_or_skip()
    from fitcheck.calibration.rpc_lab import Lab
    from fitcheck.device import profile

    assert run_cli("probe", "--quick", timeout=300).returncode == 0
    with Lab(1, 0.5, 2.0, threads=2) as lab:
        r = run_cli("calibrate", "--rpc", lab.endpoints[0], "--json", timeout=600)
    prof = profile.load()
    if r.returncode == 0:  # stored: the link it fitted is the one the estimate then uses
        link = json.loads(r.stdout)["link"]
        assert prof["rpc"]["link"] == link and 0 < link["gbit_s"] < 400
        e = run_cli("estimate", "-m", "1.8b", "-d", "this + rpc:this", "--link", "calibrated", "--json")
        assert e.returncode == 0, e.stderr
        assert json.loads(e.stdout)["split"]["devices"][1]["link"]["gbit_s"] == pytest.approx(link["gbit_s"])
    else:  # refused on a noisy machine: one line, and nothing stored
        assert len(r.stderr.strip().splitlines()) == 1 and "rpc" not in prof, r.stderr
    before = profile.load().get("rpc")
    dead = run_cli("calibrate", "--rpc", lab.endpoints[0])  # the lab is gone: its server no longer answers
    assert dead.returncode != 0 and "not reachable" in dead.stderr and profile.load().get("rpc") == before


def test_advise_takes_the_fewest_devices_that_do():
    base = ("advise", "-m", "llama-3.1-70b", "--host", "Ryzen 9 7950X 64GB", "--json")
    d = json.loads(run_cli(*base, "-d", "RTX 4090 + RTX 3090", "--target-tps", "10").stdout)
    # the host's CPU alone, then with one card: too slow; with both cards: fast enough
    assert len(d["sets"]) == 3 and d["sets"][0]["best"] is None and d["sets"][1]["best"] is None
    assert len(d["choice"]["devices"]) == 3 and d["choice"]["decode_tps"] >= 10 and "-ngl" in d["choice"]["command"]
    easy = json.loads(run_cli(*base, "-d", "RTX 4090 + RTX 3090").stdout)  # no target: 64 GB of RAM holds it alone
    assert len(easy["sets"]) == 1 and len(easy["choice"]["devices"]) == 1


def test_split_backtest_reads_llama_cpp_flags_as_published():
    from fitcheck.split_backtest import parse_options

    opts, sets = parse_options("-ngl 99 --n-cpu-moe 24 -fa 1 -ub 2048 -ts 3/1 -ot 'blk\\.1\\.ffn_up_exps=CPU' -nkvo -c 8192")
    # -ngl 99 (or all) offloads everything, the head included
    assert (opts.n_gpu_layers, opts.n_cpu_moe, opts.tensor_split, opts.no_kv_offload) == (None, 24, (3.0, 1.0), True)
    assert parse_options("-ngl 20 (of 33)")[0].n_gpu_layers == 20
    assert opts.overrides == (("blk\\.1\\.ffn_up_exps", "CPU"),)
    assert sets == {"flash_attn": True, "n_ubatch": 2048, "n_ctx": 8192}
    assert parse_options("-fa -sm row")[1] == {"flash_attn": True} and parse_options("-fa -sm row")[0].split_mode == "row"


def test_every_link_has_its_figures_and_source():
    import device_db
    from fitcheck.split import parse_link

    for key, f in device_db.links().items():
        assert f.source and f.verification and f.gbit_s >= 0 and f.rtt_ms >= 0, key
        if f.kind == "network":
            assert parse_link(key).gbit_s == f.gbit_s and parse_link(key).rtt_s == pytest.approx(f.rtt_ms / 1e3)
    given = parse_link("0.3/5")
    assert (given.gbit_s, given.rtt_s) == (0.3, 0.005)


def test_several_of_one_device_as_people_write_it():
    """"2x RTX 3090", "dual RTX 3090", "8*A6000": a split over that many of the device, as "A + A" is."""
    from fitcheck.split import split_devices

    assert split_devices("2x RTX 3090") == split_devices("RTX 3090 + RTX 3090") == [("RTX 3090", False)] * 2
    assert split_devices("dual RTX 3090") == [("RTX 3090", False)] * 2 and len(split_devices("8*A6000")) == 8
    assert split_devices("RTX 4090 + 2x RTX 3090") == [("RTX 4090", False), ("RTX 3090", False), ("RTX 3090", False)]
    assert split_devices("14 Pro") == [("14 Pro", False)]  # a number that is part of a name is not a count
    d = json.loads(run_cli("estimate", "-m", "70b", "-d", "2x RTX 3090", "--json").stdout)
    assert len([u for u in d["split"]["devices"] if "RTX 3090" in u["name"]]) == 2
    assert sum(1 for m in d["memory"] if "RTX 3090" in m["device"] and m["weights_bytes"] > 0) == 2
    r = run_cli("estimate", "-m", "70b", "-d", "40x RTX 3090")
    assert r.returncode == 1 and "at most 16 devices" in r.stderr and r.stderr.count("\n") == 1
