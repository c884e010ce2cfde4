"""`fitcheck scan`: real store layouts (Ollama, LM Studio, HF cache, llama.cpp cache) in a temporary home."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from fitcheck.model.inspection import load_spec
from fitcheck.estimator.memory import estimate_memory
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.calibration.synth import SynthModel, write_synthetic

from .conftest import run_cli

STORE_ENV = ("OLLAMA_MODELS", "LLAMA_CACHE", "HF_HOME", "HF_HUB_CACHE")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ollama_manifest(store: Path, name: str, tag: str, blob: Path, namespace: str = "library") -> str:
    """Put `blob` in an Ollama store the way `ollama pull` does: blobs/sha256-<hex> plus a manifest."""
    digest = sha256(blob)
    (store / "blobs").mkdir(parents=True, exist_ok=True)
    target = store / "blobs" / f"sha256-{digest}"
    if not target.exists():
        shutil.copyfile(blob, target)
    template = b"{{ .Prompt }}"
    tdigest = hashlib.sha256(template).hexdigest()
    (store / "blobs" / f"sha256-{tdigest}").write_bytes(template)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": f"sha256:{tdigest}", "size": len(template)},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": blob.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{tdigest}", "size": len(template)},
        ],
    }
    mdir = store / "manifests" / "registry.ollama.ai" / namespace / name
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / tag).write_text(json.dumps(manifest))
    return digest


@pytest.fixture(scope="module")
def home(tmp_path_factory, smollm2_path) -> Path:
    root = tmp_path_factory.mktemp("scan")
    h = root / "home"
    src = root / "src"
    src.mkdir()
    small = write_synthetic(src / "small.gguf", SynthModel(n_layer=3, name="small", seed=1))[0]
    other = write_synthetic(src / "other.gguf", SynthModel(n_layer=4, n_embd=384, n_head=6, n_head_kv=2, name="other", seed=2))[0]
    # Ollama: a real model under two tags (one blob), another model in a user namespace, a missing blob, a bad manifest
    store = h / ".ollama" / "models"
    ollama_manifest(store, "smollm2", "135m", smollm2_path)
    ollama_manifest(store, "smollm2", "latest", smollm2_path)
    ollama_manifest(store, "tiny", "q8", other, namespace="someone")
    gone = ollama_manifest(store, "gone", "latest", small)
    (store / "blobs" / f"sha256-{gone}").unlink()
    bad = store / "manifests" / "registry.ollama.ai" / "library" / "broken"
    bad.mkdir(parents=True)
    (bad / "latest").write_text("{not json")
    # LM Studio: publisher/repo/file, a split model, a vision projector, a malformed file
    lms = h / ".lmstudio" / "models" / "acme" / "small-GGUF"
    lms.mkdir(parents=True)
    shutil.copyfile(small, lms / "small-Q8_0.gguf")
    parts = write_synthetic(lms / "split.gguf", SynthModel(n_layer=4, name="split", seed=3), split_max_tensors=6)
    assert len(parts) > 1
    shutil.copyfile(small, lms / "mmproj-small-f16.gguf")
    (lms / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    # Hugging Face hub cache: two snapshots linking one blob, and a dangling link
    repo = h / ".cache" / "huggingface" / "hub" / "models--org--tiny-GGUF"
    (repo / "blobs").mkdir(parents=True)
    digest = sha256(other)
    shutil.copyfile(other, repo / "blobs" / digest)
    for rev in ("a" * 40, "b" * 40):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "tiny-Q8_0.gguf").symlink_to(Path("../..") / "blobs" / digest)
    (repo / "snapshots" / ("a" * 40) / "gone-Q4_0.gguf").symlink_to(Path("../..") / "blobs" / ("0" * 64))
    # llama.cpp's cache, moved by LLAMA_CACHE
    cache = root / "llama-cache"
    cache.mkdir()
    shutil.copyfile(small, cache / "acme_small-GGUF_small-Q8_0.gguf")
    return h


def scan_json(home: Path, *args: str, env: dict | None = None) -> dict:
    e = {k: "" for k in STORE_ENV} | {"HOME": str(home), "LLAMA_CACHE": str(home.parent / "llama-cache")} | (env or {})
    r = run_cli("scan", "--device", "macbook-air-13-m1:16", *args, "--json", env=e)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def by_name(d: dict) -> dict[str, dict]:
    names = [m["name"] for m in d["models"]]
    assert len(names) == len(set(names)), names
    return {m["name"]: m for m in d["models"]}


def test_every_store_is_found_and_each_model_listed_once(home, smollm2_path):
    d = scan_json(home)
    m = by_name(d)
    parts = sorted((home / ".lmstudio/models/acme/small-GGUF").glob("split-*"))
    first = f"acme/small-GGUF/{parts[0].name}"
    assert set(m) == {"smollm2:135m", "someone/tiny:q8", "acme/small-GGUF/small-Q8_0.gguf", first,
                      "org/tiny-GGUF/tiny-Q8_0.gguf", "acme_small-GGUF_small-Q8_0.gguf"}
    assert m["smollm2:135m"]["also"] == ["smollm2:latest"]  # one blob, two tags
    assert m["smollm2:135m"]["source"] == "ollama" and m["smollm2:135m"]["quant"] == "Q4_1"
    assert m["smollm2:135m"]["parameter_count"] == load_spec(smollm2_path).parameter_count
    split = m[first]
    assert split["splits"] == len(parts) > 1 and split["name"].endswith(f"-00001-of-{len(parts):05d}.gguf")
    assert split["file_size_bytes"] == sum(p.stat().st_size for p in parts)
    assert {x["source"] for x in d["searched"] if x["exists"]} == {"ollama", "lm-studio", "huggingface", "llama.cpp"}


def test_estimates_are_the_estimators_own(home):
    d = scan_json(home, "--ctx", "2048")
    for m in d["models"]:
        spec = load_spec(m["path"])
        assert m["needed_bytes"] == estimate_memory(spec, RuntimeSettings(n_ctx=2048)).total_bytes
        assert m["verdict"] == "fits" and m["decode_tps"] > 0


def test_problems_are_listed_with_reasons_and_do_not_stop_the_scan(home):
    d = scan_json(home)
    reasons = {p["name"]: p["error"] for p in d["problems"]}
    assert "dangling symlink" in reasons["org/tiny-GGUF/gone-Q4_0.gguf"]
    assert "no such file" in reasons["gone:latest"].lower() or "No such file" in reasons["gone:latest"]
    assert "unreadable manifest" in reasons["broken:latest"]
    assert reasons["acme/small-GGUF/broken.gguf"]
    assert [s["name"] for s in d["skipped"]] == ["acme/small-GGUF/mmproj-small-f16.gguf"]


def test_a_path_reaching_a_known_blob_is_not_listed_twice(home):
    snap_link = next((home / ".cache/huggingface/hub/models--org--tiny-GGUF/snapshots").glob("*/tiny-Q8_0.gguf"))
    # the Ollama blobs folder given as a path: blobs have no .gguf name, fitcheck knows them by their magic
    d = scan_json(home, str(snap_link.resolve()), str(home / ".ollama/models/blobs"))
    m = by_name(d)
    assert len(m) == 6
    assert snap_link.resolve().name in m["org/tiny-GGUF/tiny-Q8_0.gguf"]["also"]
    assert any(a.startswith("sha256-") for a in m["smollm2:135m"]["also"])
    assert not [p for p in d["problems"] if "blobs" in p["path"] and "gone" not in p["name"]]  # the template blob is no model


def test_ollama_models_env_moves_the_store(home, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(home / ".ollama" / "models", moved, symlinks=True)
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    d = scan_json(empty_home, env={"OLLAMA_MODELS": str(moved), "LLAMA_CACHE": str(tmp_path / "none")})
    assert set(by_name(d)) == {"smollm2:135m", "someone/tiny:q8"}


def test_verdict_follows_the_memory_given(home):
    e = {k: "" for k in STORE_ENV} | {"HOME": str(home)}
    r = run_cli("scan", "--memory-gb", "0.05", "--no-stores", str(home / ".lmstudio"), "--json", env=e)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["models"] and all(m["verdict"] == "killed" for m in d["models"])  # below what cannot page


def test_a_folder_of_many_models_is_scanned_whole(tmp_path):
    src = write_synthetic(tmp_path / "one.gguf", SynthModel(n_layer=2, name="one"))[0]
    many = tmp_path / "many"
    many.mkdir()
    for i in range(120):
        shutil.copyfile(src, many / f"model-{i:03d}.gguf")
    r = run_cli("scan", "--no-stores", "--memory-gb", "8", str(many), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert len(d["models"]) == 120 and not d["problems"]


def test_missing_path_is_a_problem_not_a_crash(tmp_path):
    r = run_cli("scan", "--no-stores", "--memory-gb", "8", str(tmp_path / "nope.gguf"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["problems"][0]["error"] == "no such file or directory"


def test_bad_device_is_one_line():
    r = run_cli("scan", "--device", "nokia-3310", "--no-stores")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "unknown device" in r.stderr


def test_a_fifo_named_gguf_is_a_problem_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.gguf")  # opening it for reading would block forever
    r = run_cli("scan", "--no-stores", "--memory-gb", "8", str(tmp_path), "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["problems"][0]["error"] == "not a regular file"


def test_a_blob_shorter_than_its_manifest_says_is_an_incomplete_download(tmp_path):
    src = write_synthetic(tmp_path / "src.gguf", SynthModel(n_layer=2, name="cut"))[0]
    store = tmp_path / "store"
    digest = ollama_manifest(store, "cut", "latest", src)
    blob = store / "blobs" / f"sha256-{digest}"
    with blob.open("r+b") as f:
        f.truncate(blob.stat().st_size // 2)  # an interrupted pull
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    d = scan_json(empty_home, env={"OLLAMA_MODELS": str(store), "LLAMA_CACHE": str(tmp_path / "none")})
    assert d["models"] == [] and "incomplete download" in d["problems"][0]["error"]
