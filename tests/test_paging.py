"""When a model does not fit: pages (mapped CPU weights re-read from storage) or killed — on real GGUFs and probes."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from .conftest import run_cli
from fitcheck.device.paging_rules import rule_for
from fitcheck.estimator.evaluate import Target, evaluate
from fitcheck.estimator.paging import RETAIN_FROM, reread_share
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import BackendParams, DeviceSpeedSpec
from fitcheck.model.inspection import load_spec

CPU = DeviceSpeedSpec("cpu", 20.0, 0.5)
PARAMS = BackendParams(0.8, {"f16": 1.0, "q8": 1.0, "q4": 1.0, "kq": 1.0}, 1e-5, {"f16": 0.5, "q8": 0.5, "q4": 0.5, "kq": 0.5})
S = RuntimeSettings(n_ctx=2048)


def _target(usable: int, backend: str = "cpu", storage_gbps: float | None = 2.0, repack: bool = False) -> Target:
    rule = rule_for("Linux", storage_gbps, "test storage", "x86-avx2", repack=repack)
    return Target("test", usable, "test rule", replace(CPU, backend=backend), PARAMS, paging=rule)


def test_a_model_over_the_limit_pages_at_storage_speed(smollm2_path):
    spec = load_spec(smollm2_path)
    inside = evaluate(spec, S, _target(1 << 34))
    assert inside.fit.verdict == "fits" and inside.paging is None
    pinned = inside.memory.resident_bytes - spec.weights_bytes
    ev = evaluate(spec, S, _target(pinned + spec.weights_bytes // 3))
    assert ev.fit.verdict == "pages" and ev.runs and not ev.in_memory
    pg = ev.paging
    assert pg.pinned_bytes == pinned and pg.pageable_bytes == spec.weights_bytes
    # a third of the weights cached: a cyclic scan keeps nothing, every weight read per token is read again
    embd = next(t.n_bytes for t in spec.tensors if t.name == "token_embd.weight")
    tied = not any(t.name == "output.weight" for t in spec.tensors)
    assert pg.reread_token_bytes == spec.weights_bytes - (0 if tied else embd)
    t_page = pg.reread_token_bytes / 2e9
    assert ev.speed.decode_tps == pytest.approx(1 / (1 / inside.speed.decode_tps + t_page))
    assert ev.speed.decode_tps < inside.speed.decode_tps / 5
    assert ev.in_memory_speed.decode_tps == inside.speed.decode_tps
    row = ev.row()
    assert row["verdict"] == "pages" and row["decode_tps"] == ev.speed.decode_tps and row["paging"]["regime"] == "pages"
    # more cache: the retained share of the scan is not read again
    more = evaluate(spec, S, _target(pinned + int(spec.weights_bytes * 0.95)))
    assert more.paging.reread_token_bytes < pg.reread_token_bytes and more.speed.decode_tps > ev.speed.decode_tps


def test_what_cannot_page_is_killed(smollm2_path):
    spec = load_spec(smollm2_path)
    free = evaluate(spec, S, _target(1 << 34))
    pinned = free.memory.resident_bytes - spec.weights_bytes
    half = pinned + spec.weights_bytes // 2
    for target, settings, why in (
        (_target(half, backend="metal"), S, "GPU buffers"),
        (_target(half), replace(S, use_mmap=False), "no mmap"),
        (_target(pinned // 2), S, "even with every mapped weight left on storage"),
    ):
        ev = evaluate(spec, settings, target)
        assert ev.fit.verdict == "killed" and not ev.runs, why
        assert why in ev.paging.reason
        assert ev.speed is None and ev.row()["decode_tps"] is None  # no in-memory speed for a setup that does not run
    # SmolLM2 is Q4_1 (mapped): an x86 llama.cpp that repacked Q4_1 would hold a copy in anonymous memory
    rep = _target(half)
    rep = replace(rep, paging=replace(rep.paging, repacked_types=frozenset({"Q4_1"})))
    ev = evaluate(spec, S, rep)
    assert ev.fit.verdict == "killed" and "repacked" in ev.paging.reason


def test_unknown_storage_pages_without_a_speed(smollm2_path):
    spec = load_spec(smollm2_path)
    free = evaluate(spec, S, _target(1 << 34))
    ev = evaluate(spec, S, _target(free.memory.resident_bytes - spec.weights_bytes // 2, storage_gbps=None))
    assert ev.fit.verdict == "pages" and ev.speed is None


def test_reread_share_bounds():
    assert reread_share(0.0) == 1.0 and reread_share(RETAIN_FROM) == 1.0 and reread_share(1.0) == 0.0
    assert 0 < reread_share((1 + RETAIN_FROM) / 2) < 1


def test_seed_iphone_7b_is_killed_when_loaded_and_pages_when_mapped():
    """The seed: Qwen2-7B on a 6 GB A16 iPhone — llama.cpp's Metal app killed, LLMFarm (mmap) at 0.71 t/s."""
    r = run_cli("estimate", "-m", "qwen2-7b", "--quant", "Q4_0", "-d", "iPhone 15", "--ctx", "2048", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["fit"]["verdict"] == "killed" and d["speed"] is None
    ways = {w["how"]: w for w in d["ways_out"]}
    ent = next(w for h, w in ways.items() if "entitlement" in h)
    assert ent["verdict"] == "pages" and 0.71 / 2 <= ent["decode_tps"] <= 0.71 * 2
    assert "GB/s" in ent["paging"]["storage_source"] and "[" in ent["paging"]["storage_source"]  # sourced, flagged
    text = run_cli("estimate", "-m", "qwen2-7b", "--quant", "Q4_0", "-d", "iPhone 15", "--ctx", "2048").stdout
    assert "killed" in text and "pages at" in text


def test_main_table_and_advise_show_paging():
    r = run_cli("--json", "-d", "Raspberry Pi 5 4GB")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    paged = [x for x in rows if x["verdict"] == "pages"]
    assert any(x["decode_tps"] is not None and x["decode_tps"] < 1 for x in paged)  # 7B from an SD card: unusable
    assert all(x["paging"]["regime"] == "pages" and x["paging"]["reread_token_bytes"] >= 0 for x in paged)
    a = run_cli("advise", "-m", "7b", "-d", "Raspberry Pi 5 4GB", "--json")
    assert a.returncode == 0, a.stderr
    ways = json.loads(a.stdout).get("ways_out", [])
    assert any("paging" in w["way"] and w.get("not_a_way") for w in ways)


def test_disk_probe_reads_through_page_faults(tmp_path):
    from probes import disk

    d = disk.probe(quick=True, directory=tmp_path)
    assert d["status"] == "ok", d
    assert d["fault_read_gbps"] > 0 and d["read_gbps"] > 0
    if d["paging_read_gbps"] is not None:  # root with a writable memory cgroup: paging measured for real
        assert d["paging_read_gbps"] > 0 and d["paging_random_read_gbps"] > 0 and "cgroup" in d["paging_note"]
    else:  # elsewhere it says why it could not
        assert os.geteuid() != 0 or not os.access("/sys/fs/cgroup/memory", os.W_OK) or d["paging_note"]
        assert d["paging_note"]


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no tmpfs at /dev/shm")
def test_disk_probe_on_tmpfs_says_it_is_memory(tmp_path):
    from probes import disk

    folder = f"/dev/shm/fitcheck-test-{os.getpid()}"
    d = disk.probe(quick=True, directory=folder)
    os.rmdir(folder)
    if d["status"] == "ok":
        assert d["fs_type"] == "tmpfs" and "not local storage" in d["warnings"][0]
    else:
        assert "free" in d["reason"]
