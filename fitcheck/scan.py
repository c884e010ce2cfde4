"""`fitcheck scan`: find the GGUF models already on this machine and answer for each.

Searched: Ollama's store (manifests -> model-layer blobs; OLLAMA_MODELS),
LM Studio, Jan, llama.cpp's cache (LLAMA_CACHE), the Hugging Face hub cache
(HF_HUB_CACHE / HF_HOME; snapshot symlinks into blobs/), GPT4All, and paths
given. Only headers are read. A split model counts once (its first part
reads the rest), a file reached twice (symlinks, one Ollama blob under two
tags) is listed once with every name it has, and a file that cannot be read
is listed with the reason; nothing stops the scan.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from fitcheck.errors import FitcheckError
from fitcheck.model.gguf_reader import SPLIT_NAME, read_model

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_REGISTRY = "registry.ollama.ai"
PROJECTOR = re.compile(r"mmproj", re.IGNORECASE)  # vision projectors: GGUF, but not a language model


@dataclass(frozen=True)
class Candidate:
    path: str
    name: str
    source: str
    declared_size: int | None = None  # what an Ollama manifest says the blob holds
    root: str | None = None  # the store it was found in: a link out of it is not followed


@dataclass
class Found:
    name: str
    source: str
    path: str
    also: list[str] = field(default_factory=list)  # other names of the same file
    file_size_bytes: int | None = None
    splits: int = 1
    architecture: str | None = None
    quant: str | None = None
    parameter_count: int | None = None
    needed_bytes: int | None = None
    verdict: str | None = None
    decode_tps: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Location:
    source: str
    path: Path
    kind: str  # ollama | tree | hf


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def locations(env: dict[str, str] | None = None) -> list[Location]:
    """Every store fitcheck knows, with environment overrides, in listing priority."""
    env = dict(os.environ if env is None else env)
    h = _home()
    hf_home = Path(env["HF_HOME"]) if env.get("HF_HOME") else h / ".cache" / "huggingface"
    hf_hub = Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE") else hf_home / "hub"
    mac = h / "Library"
    out = [Location("ollama", Path(env["OLLAMA_MODELS"]) if env.get("OLLAMA_MODELS") else h / ".ollama" / "models", "ollama"),
           Location("lm-studio", h / ".lmstudio" / "models", "tree"),
           Location("lm-studio", h / ".cache" / "lm-studio" / "models", "tree"),
           Location("jan", h / "jan" / "models", "tree"),
           Location("jan", h / ".local" / "share" / "Jan" / "data", "tree"),
           Location("jan", h / ".config" / "Jan" / "data", "tree"),
           Location("jan", mac / "Application Support" / "Jan" / "data", "tree"),
           Location("llama.cpp", Path(env["LLAMA_CACHE"]) if env.get("LLAMA_CACHE") else h / ".cache" / "llama.cpp", "tree"),
           Location("llama.cpp", mac / "Caches" / "llama.cpp", "tree"),
           Location("huggingface", hf_hub, "hf"),
           Location("gpt4all", h / ".local" / "share" / "nomic.ai" / "GPT4All", "tree"),
           Location("gpt4all", mac / "Application Support" / "nomic.ai" / "GPT4All", "tree")]
    seen, unique = set(), []
    for loc in out:
        if loc.path not in seen:
            seen.add(loc.path)
            unique.append(loc)
    return unique


def _ollama_name(rel: tuple[str, ...]) -> str:
    """manifests/<registry>/<namespace>/<model>/<tag> -> Ollama's own name for it."""
    *repo, tag = rel
    if len(repo) >= 2 and repo[0] == OLLAMA_DEFAULT_REGISTRY:
        repo = repo[2:] if repo[1] == "library" else repo[1:]
    return f"{'/'.join(repo)}:{tag}"


MAX_MANIFEST_BYTES = 1 << 20  # Ollama manifests are a few hundred bytes


def read_manifest(mpath: Path) -> list[dict]:
    """The model layers of an Ollama manifest; FitcheckError with the reason for anything else.

    Only a regular file inside the store, under a size cap, is opened (a FIFO would hang, /dev/zero
    would fill memory); JSON of any depth or shape is refused, never crashes the scan.
    """
    try:
        st = mpath.stat()
    except OSError as e:
        raise FitcheckError(f"cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FitcheckError("not a regular file")
    if st.st_size > MAX_MANIFEST_BYTES:
        raise FitcheckError(f"{st.st_size} bytes, more than a manifest holds")
    try:
        with mpath.open("rb") as f:
            doc = json.loads(f.read(MAX_MANIFEST_BYTES + 1).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise FitcheckError(f"not JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        raise FitcheckError("no list of layers")
    return [x for x in doc["layers"] if isinstance(x, dict) and x.get("mediaType") == OLLAMA_MODEL_LAYER]


def ollama_candidates(root: Path, problem: Callable[[str, str, str, str], None]) -> Iterator[Candidate]:
    manifests = root / "manifests"
    for dirpath, _, files in os.walk(manifests):
        for f in sorted(files):
            mpath = Path(dirpath) / f
            name = _ollama_name(mpath.relative_to(manifests).parts)
            try:
                layers = read_manifest(mpath)
            except FitcheckError as e:
                problem(name, "ollama", str(mpath), f"unreadable manifest: {e}")
                continue
            if not layers:
                problem(name, "ollama", str(mpath), "manifest has no model layer")
            for layer in layers:
                digest = str(layer.get("digest", ""))
                if not re.fullmatch(r"sha256[:-][0-9a-f]{64}", digest):
                    problem(name, "ollama", str(mpath), f"model layer digest {digest!r} is not sha256:<64 hex>")
                    continue
                blob = root / "blobs" / digest.replace(":", "-")
                if not blob.exists() and (root / "blobs" / digest).exists():
                    blob = root / "blobs" / digest  # older Ollama kept the colon
                size = layer.get("size")
                yield Candidate(str(blob), name, "ollama", size if isinstance(size, int) else None, str(root))


def _has_gguf_magic(p: Path) -> bool:
    try:
        if not stat.S_ISREG(p.stat().st_mode):
            return False
        with p.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def tree_candidates(root: Path, source: str, hf: bool = False, sniff: bool = False) -> Iterator[Candidate]:
    """Every *.gguf under root (with `sniff`, any file starting with GGUF's magic, e.g. Ollama blobs).

    Directory symlinks are not followed: no loops."""
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        if hf and Path(dirpath).name == "blobs":
            dirs.clear()  # reached through snapshots/, which carry the file names
            continue
        for f in sorted(files):
            p = Path(dirpath) / f
            if f.lower().endswith(".gguf") or (sniff and _has_gguf_magic(p)):
                yield Candidate(str(p), _display_name(p, root, hf), source, root=None if sniff else str(root))


def _display_name(p: Path, root: Path, hf: bool) -> str:
    rel = p.relative_to(root).parts
    if hf and rel and rel[0].startswith("models--") and len(rel) >= 4 and rel[1] == "snapshots":
        repo = rel[0].removeprefix("models--").replace("--", "/")
        return f"{repo}/{'/'.join(rel[3:])}"
    return "/".join(rel)


def given_candidates(paths: Iterable[str], problem) -> Iterator[Candidate]:
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            yield from tree_candidates(p, "path", sniff=True)
        elif p.exists() or p.is_symlink():
            yield Candidate(str(p), p.name, "path")
        else:
            problem(p.name, "path", str(p), "no such file or directory")


def _split_key(path: Path) -> tuple | None:
    m = SPLIT_NAME.match(path.name)  # the reader's own rule for what a split part is
    return (str(path.parent), m["stem"].lower(), m["count"]) if m else None


class _Scan:
    """Collects what a scan finds: each candidate is checked, deduplicated, read and evaluated on its own."""

    def __init__(self, target, settings, follow_links: bool = False, ctx_from_model: bool = False):
        self.target, self.settings, self.follow_links = target, settings, follow_links
        self.ctx_from_model = ctx_from_model  # each model at its trained context (the runtime's default)
        self.found: list[Found] = []
        self.by_file: dict[tuple, Found] = {}
        self.by_split: dict[tuple, Found] = {}
        self.skipped: list[dict[str, str]] = []

    def problem(self, name: str, source: str, path: str, reason: str) -> None:
        self.found.append(Found(name, source, path, error=reason))

    def add(self, c: Candidate) -> None:
        p = Path(c.path)
        if PROJECTOR.search(p.name) or PROJECTOR.search(c.name):
            self.skipped.append({"name": c.name, "path": c.path, "reason": "vision projector (mmproj), not a language model"})
            return
        st = self._regular_file(c, p)
        if st is None:
            return
        key, split = (st.st_dev, st.st_ino), _split_key(p)
        same = self.by_file.get(key) or (self.by_split.get(split) if split else None)
        if same is not None:  # the same file (or split set) under another name
            if c.name != same.name and c.name not in same.also:
                same.also.append(c.name)
            self.by_file.setdefault(key, same)
            return
        entry = Found(c.name, c.source, c.path)
        self.by_file[key] = entry
        if split:
            self.by_split[split] = entry
        self.found.append(entry)
        if c.declared_size is not None and st.st_size != c.declared_size:
            entry.error = f"blob holds {st.st_size} bytes, the manifest says {c.declared_size} (incomplete download?)"
            return
        try:
            self._evaluate(entry, p)
        except Exception as e:  # one model's unexpected failure must not sink the others' answers
            entry.error = f"could not be evaluated ({type(e).__name__})"

    def _regular_file(self, c: Candidate, p: Path) -> os.stat_result | None:
        if p.is_symlink() and not p.exists():
            self.problem(c.name, c.source, c.path, "dangling symlink")
            return None
        if c.root and not self.follow_links and not _inside(p, Path(c.root)):
            self.problem(c.name, c.source, c.path, "links outside the store; not read (--follow-links reads it)")
            return None
        try:
            st = p.stat()
        except OSError as e:
            self.problem(c.name, c.source, c.path, e.strerror or str(e))
            return None
        if not stat.S_ISREG(st.st_mode):
            self.problem(c.name, c.source, c.path, "not a regular file")
            return None
        return st

    def _evaluate(self, entry: Found, p: Path) -> None:
        from fitcheck.estimator.memory import estimate_memory
        from fitcheck.model.model_spec import spec_from_gguf

        try:
            model = read_model(p)
            spec = spec_from_gguf(model)
        except FitcheckError as e:
            entry.error = getattr(e, "problem", None) or str(e)
            return
        except (OSError, MemoryError) as e:
            entry.error = f"cannot read: {e}"
            return
        entry.file_size_bytes = model.file_size_bytes
        entry.splits = model.splits
        entry.architecture = spec.architecture
        entry.quant = spec.file_type
        entry.parameter_count = spec.parameter_count
        settings = replace(self.settings, n_ctx=spec.n_ctx_train) if self.ctx_from_model else self.settings
        if self.target is None:
            entry.needed_bytes = estimate_memory(spec, settings).total_bytes
            return
        from fitcheck.estimator.evaluate import evaluate

        row = evaluate(spec, settings, self.target).row()
        entry.needed_bytes, entry.verdict, entry.decode_tps = row["total_bytes"], row["verdict"], row["decode_tps"]


def _inside(p: Path, root: Path) -> bool:
    try:
        return os.path.realpath(p).startswith(os.path.realpath(root) + os.sep)
    except (OSError, ValueError):
        return False


def _streams(paths: Iterable[str], include_stores: bool, env, problem) -> tuple[list[Iterator[Candidate]], list[dict]]:
    searched, streams = [], []
    if include_stores:
        for loc in locations(env):
            searched.append({"source": loc.source, "path": str(loc.path), "exists": loc.path.is_dir()})
            if loc.path.is_dir():
                streams.append(ollama_candidates(loc.path, problem) if loc.kind == "ollama"
                               else tree_candidates(loc.path, loc.source, hf=loc.kind == "hf"))
    streams.append(given_candidates(paths, problem))
    return streams, searched


def scan(paths: Iterable[str] = (), include_stores: bool = True, target=None, settings=None,
         env: dict[str, str] | None = None, follow_links: bool = False, ctx_from_model: bool = False) -> dict[str, Any]:
    """Find models, read their headers, evaluate each on `target` (a Target; None: memory only)."""
    from fitcheck.estimator.settings import RuntimeSettings

    t0 = time.perf_counter()
    s = settings or RuntimeSettings()
    run = _Scan(target, s, follow_links, ctx_from_model)
    streams, searched = _streams(paths, include_stores, env, run.problem)
    for stream in streams:
        for c in stream:
            run.add(c)
    order = {"fits": 0, "tight": 1, "pages": 2, "killed": 3, None: 4}
    models = sorted((f for f in run.found if f.error is None),
                    key=lambda f: (order[f.verdict], -(f.parameter_count or 0), f.name))
    problems = sorted((f for f in run.found if f.error is not None), key=lambda f: (f.source, f.name))
    return {"models": [asdict(m) for m in models], "problems": [asdict(p) for p in problems], "skipped": run.skipped,
            "searched": searched, "device": target.to_dict() if target else None,
            "usable_bytes": target.usable_bytes if target else None,
            "n_ctx": "each model's trained context" if ctx_from_model else s.n_ctx, "runtime": s.runtime,
            "elapsed_s": round(time.perf_counter() - t0, 3)}
