"""A llama.cpp child never outlives fitcheck, and an interrupted calibration leaves nothing half-written.

Real `fitcheck calibrate --quick` processes are signalled while llama.cpp runs (SIGINT, SIGTERM, SIGHUP,
SIGKILL) or while a synthetic model is written; then no child may be left within 2 s, no temp file, the
profile as it was, and the next calibration works.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from .conftest import run_cli_process

pytestmark = pytest.mark.slow  # real probes and llama.cpp runs


def children_running() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "fitcheck.calibration._llama_child" in " ".join(p.info["cmdline"] or []):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


@pytest.fixture(scope="module")
def probed_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("probed")
    r = run_cli_process("probe", "--quick", "--json", env={"FITCHECK_HOME": str(home)}, timeout=300)
    assert r.returncode == 0, r.stderr
    return home


def start_calibration(home: Path, cache: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "FITCHECK_HOME": str(home), **({"FITCHECK_CACHE": str(cache)} if cache else {})}
    return subprocess.Popen([sys.executable, "-m", "fitcheck", "calibrate", "--quick"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def temp_files() -> list[Path]:
    return list(Path(os.environ["FITCHECK_CACHE"]).rglob("*.tmp*"))


def wait_for(cond, timeout: float = 120, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_no_llama_child_outlives_fitcheck(probed_home, tmp_path, sig):
    home = tmp_path / "home"
    shutil.copytree(probed_home, home)
    before = (home / "profile.json").read_text()
    assert not children_running()
    proc = start_calibration(home)
    try:
        assert wait_for(children_running), "the llama.cpp child never started"
        time.sleep(0.5)  # inside the run
        proc.send_signal(sig)
        proc.wait(timeout=60)  # how fast is benchmarks/interrupts.py's figure; here: that it ends, and cleanly
        assert wait_for(lambda: not children_running(), timeout=20), f"a llama.cpp child outlived fitcheck ({sig.name})"
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in children_running():
            c.kill()
    err = proc.stderr.read()
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig, (proc.returncode, err)
        assert err.strip().splitlines()[-1] == f"fitcheck: error: interrupted ({sig.name})", err
    assert (home / "profile.json").read_text() == before  # the calibration was not half-stored
    assert not list(home.rglob("*.tmp*")) and not temp_files(), temp_files()


def test_interrupt_while_writing_a_calibration_model_leaves_no_temp_file(probed_home, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(probed_home / "profile.json", home / "profile.json")
    cache = tmp_path / "cache"  # empty: the calibration models must be written
    cache.mkdir()
    (cache / "kernels").symlink_to(Path(os.environ["FITCHECK_CACHE"]) / "kernels")  # the probe's models, not rewritten
    proc = start_calibration(home, cache)
    try:
        tmp = wait_for(lambda: next(iter((cache / "calibration").glob("*.tmp.gguf")), None) if (cache / "calibration").exists() else None)
        assert tmp, "no model was being written"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert not list(home.rglob("*.tmp*")) and not list(cache.rglob("*.tmp*"))
    # the next calibration runs over what the interrupted one left, and stores its result
    before = (home / "profile.json").read_text()
    for _ in range(3):  # a calibration on a noisy machine may refuse itself ("not stored"): it says so
        r = run_cli_process("calibrate", "--quick", "--json", env={"FITCHECK_HOME": str(home), "FITCHECK_CACHE": str(cache)},
                            timeout=600)
        if "not stored" not in r.stderr:
            break
    if r.returncode == 1 and "not stored" in r.stderr:  # three refusals on a busy machine: honest, one line, nothing stored
        assert r.stderr.count("\n") == 1 and (home / "profile.json").read_text() == before
    else:
        assert r.returncode == 0, r.stderr
        assert json.loads((home / "profile.json").read_text())["calibration"]["created"] == json.loads(r.stdout)["created"]
    assert not list(home.rglob("*.tmp*")) and not list(cache.rglob("*.tmp*"))


def test_parallel_probes_and_reports_end_with_valid_files(probed_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(probed_home, home)
    env = {**os.environ, "FITCHECK_HOME": str(home)}
    out = tmp_path / "r.html"
    procs = [subprocess.Popen([sys.executable, "-m", "fitcheck", "probe", "--quick"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    procs += [subprocess.Popen([sys.executable, "-m", "fitcheck", "report", "-d", "iPhone 15", "-o", str(out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for p in procs:
        p.wait(timeout=300)
        assert p.returncode == 0, p.stderr.read()
    assert json.loads((home / "profile.json").read_text())["schema"] == "fitcheck-profile"
    assert out.read_text().rstrip().endswith("</html>")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fitcheck-report-")]
