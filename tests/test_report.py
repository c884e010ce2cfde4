"""`fitcheck report`: HTML + Markdown with real matplotlib PNGs, rendered by a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

PNG = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: the test command installs Debian's chromium first")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return exe


def browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def m1_report(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report") / "m1.html"
    r = run_cli("report", "--device", "macbook-air-13-m1:16", "--out", str(out), "--json", timeout=180)
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_report_writes_html_markdown_and_valid_pngs(m1_report):
    import matplotlib.image as mpimg

    out, d = m1_report
    assert Path(d["html"]) == out and out.exists() and Path(d["markdown"]).exists()
    names = sorted(Path(p).name for p in d["images"])
    assert names == ["forecast.png", "memory.png", "speed.png"]
    for p in d["images"]:
        assert Path(p).read_bytes()[:8] == PNG
        img = mpimg.imread(p)
        assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 0.05
    md = Path(d["markdown"]).read_text()
    for name in names:  # the Markdown links the PNGs that exist beside it
        assert f"]({out.stem}_files/{name})" in md
    assert d["forecast_class"] == "apple-m-base"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".fitcheck-report-")]


@pytest.mark.slow
def test_html_is_self_contained_and_renders_in_chromium(m1_report, tmp_path):
    out, d = m1_report
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3 and "src=\"http" not in page and "<script" not in page
    dom = browser(tmp_path, "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for heading in ("Device", "Size x quantization", "Memory breakdown", "Speed by size", "Forecast", "Sources"):
        assert f"<h2>{heading}</h2>" in dom.stdout
    assert dom.stdout.count("<tr>") > 21 + 7 and "Qwen2-7B" in dom.stdout
    shot = tmp_path / "shot.png"
    r = browser(tmp_path, "--window-size=1200,4000", f"--screenshot={shot}", out.as_uri())
    assert r.returncode == 0 and shot.read_bytes()[:8] == PNG
    import matplotlib.image as mpimg

    px = (mpimg.imread(shot)[..., :3] * 255).astype(int)
    # matplotlib's default blue (#1f77b4) only appears where the browser painted a plot
    blue = np.all(np.abs(px - np.array([0x1F, 0x77, 0xB4])) < 12, axis=-1).sum()
    assert blue > 5000, f"only {blue} plot-blue pixels: the embedded plots did not render"


@pytest.mark.slow
def test_report_on_this_device_uses_its_profile(fitcheck_home, tmp_path):
    out = tmp_path / "this.html"
    r = run_cli("report", "--out", str(out), "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    page = out.read_text()
    prof = json.loads((fitcheck_home / "profile.json").read_text())
    assert str(prof["bandwidth"]["read_gbps"]) in page and "fitcheck probe" in page
    assert d["forecast_class"] == "phone-flagship" and len(d["answers"]) == 3


def test_report_on_a_phone_says_7b_does_not_fit(tmp_path):
    out = tmp_path / "p.html"
    r = run_cli("report", "--device", "iphone-15", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["answers"][2].startswith("7B (Qwen2-7B): no") and d["forecast_class"] == "phone-flagship"
    assert "iOS" in out.read_text()


@pytest.mark.parametrize("args, words", [
    (["--device", "nokia-3310"], "unknown device"),
    (["--device", "iphone-15", "--class", "toaster"], "unknown device class"),
    (["--device", "iphone-15", "--out", "{tmp}/missing/r.html"], "no such directory"),
    (["--device", "iphone-15", "--out", "{tmp}/r.pdf"], "give a path ending in .html"),
])
def test_bad_input_is_one_line_and_writes_nothing(args, words, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = subprocess.run([sys.executable, "-m", "fitcheck", "report", *args], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)  # cwd: the default reports/ folder must not appear either
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
