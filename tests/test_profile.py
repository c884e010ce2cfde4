"""`fitcheck probe`: the whole profile, saved atomically, loaded back, faults handled."""

from __future__ import annotations

import json

import pytest

from fitcheck.device import profile
from fitcheck.errors import ProfileError

from .conftest import run_cli


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    r = run_cli("probe", "--quick", "--json", env={"FITCHECK_HOME": str(home)}, timeout=300)
    assert r.returncode == 0, r.stderr
    return home, json.loads(r.stdout), r.stderr


@pytest.mark.slow
def test_profile_json_has_required_keys(probed):
    _, p, _ = probed
    for dotted in ("memory.total_bytes", "memory.available_bytes", "memory.limit_bytes", "cpu.model",
                   "cpu.physical_cores", "cpu.logical_cores", "cpu.flags", "cpu.llc_bytes",
                   "bandwidth.read_gbps", "bandwidth.copy_gbps", "bandwidth.triad_gbps",
                   "compute.fp32_gflops", "disk.read_gbps"):
        section, key = dotted.split(".")
        assert p[section][key] is not None, dotted
    assert isinstance(p["accelerators"], list) and p["accelerators"]
    assert p["bandwidth"]["llc_multiple"] >= 2


@pytest.mark.slow
def test_saved_profile_round_trips(probed, monkeypatch):
    home, p, _ = probed
    monkeypatch.setenv("FITCHECK_HOME", str(home))
    assert profile.load() == p
    assert not list(home.glob(".profile-*"))  # no temp file left behind


@pytest.mark.slow
def test_no_save_leaves_no_profile(fitcheck_home):
    r = run_cli("probe", "--quick", "--no-save", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["memory"]["total_bytes"] > 0
    assert not (fitcheck_home / "profile.json").exists()


def test_corrupt_profile_is_a_clear_error(fitcheck_home):
    fitcheck_home.mkdir(parents=True)
    (fitcheck_home / "profile.json").write_text('{"schema": "fitcheck-profile", "version": 1, ')
    with pytest.raises(ProfileError, match="corrupt"):
        profile.load()
    (fitcheck_home / "profile.json").write_text('{"hello": 1}')
    with pytest.raises(ProfileError, match="not a fitcheck profile"):
        profile.load()


def test_missing_profile():
    with pytest.raises(ProfileError, match="run `fitcheck probe`"):
        profile.load()


@pytest.mark.slow
def test_unwritable_user_dir_still_produces_profile(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_cli("probe", "--quick", "--json", env={"FITCHECK_HOME": str(blocker / "home")}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cpu"]["model"]
    assert "profile not saved" in r.stderr and "Traceback" not in r.stderr


def test_save_is_atomic_on_failure(tmp_path):
    target = tmp_path / "profile.json"
    target.write_text("old")
    with pytest.raises(ProfileError, match="cannot write"):
        profile.save({"schema": profile.SCHEMA, "version": 1, "cycle": _cycle()}, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]


def _cycle():
    a = []
    a.append(a)
    return a


def test_probe_that_raises_is_recorded_not_fatal():
    result, secs = profile._run("broken", lambda: 1 / 0)
    assert result == {"status": "error", "reason": "ZeroDivisionError: division by zero"}
    assert secs >= 0
