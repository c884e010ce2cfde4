"""Runtime presets: the memory-relevant defaults of the runtimes people run (fitcheck/data/runtimes.csv).

The memory a model needs depends on the runtime's context length, batch sizes,
flash attention, SWA cache and mmap defaults; each preset row carries its
source and verification. A setting given on the command line wins over the
preset.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fitcheck.errors import UsageError

FIELDS = ("n_ctx", "n_batch", "n_ubatch", "flash_attn", "swa_full", "use_mmap")


@dataclass(frozen=True)
class RuntimePreset:
    id: str
    aliases: tuple[str, ...]
    n_ctx: int | None  # None: the model's trained context ("model")
    n_batch: int | None
    n_ubatch: int | None
    flash_attn: bool | None  # llama.cpp's "auto" is on wherever the backend has flash attention (CPU, Metal, CUDA)
    swa_full: bool | None
    use_mmap: bool | None
    source: str
    verification: str
    notes: str

    def defaults(self) -> dict[str, Any]:
        """The settings this preset fixes (those its source gives)."""
        return {k: getattr(self, k) for k in FIELDS if getattr(self, k) is not None}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _bool(v: str) -> bool | None:
    return {"true": True, "on": True, "auto": True, "false": False, "off": False}.get(v.strip().lower())


def _int(v: str) -> int | None:
    return int(v) if v.strip().isdigit() else None


@lru_cache(maxsize=1)
def presets() -> dict[str, RuntimePreset]:
    text = files("fitcheck").joinpath("data/runtimes.csv").read_text()
    out = {}
    for r in csv.DictReader(text.splitlines()):
        out[r["runtime"]] = RuntimePreset(
            r["runtime"], tuple(a for a in r["aliases"].split("|") if a), _int(r["n_ctx"]), _int(r["n_batch"]),
            _int(r["n_ubatch"]), _bool(r["flash_attn"]), _bool(r["swa_full"]), _bool(r["use_mmap"]), r["source"],
            r["verification"], r["notes"])
    return out


def find(name: str) -> RuntimePreset:
    """A preset by id or alias, insensitive to case and punctuation ('LM Studio', 'lmstudio', 'llama.cpp')."""
    table = {}
    for p in presets().values():
        for n in (p.id, *p.aliases):
            table.setdefault(_key(n), p)
    hit = table.get(_key(name))
    if hit is None:
        near = difflib.get_close_matches(_key(name), list(table), n=3, cutoff=0.5)
        names = sorted({table[n].id for n in near}) or sorted(presets())
        raise UsageError(f"unknown runtime {name!r}; {'did you mean' if near else 'known'}: {', '.join(names)}")
    return hit


BASE = {"n_ctx": 4096, "n_batch": 512, "n_ubatch": 512, "flash_attn": False, "swa_full": True, "use_mmap": True}


def runtime_settings(runtime: str | None, given: dict[str, Any], **fixed: Any):
    """(RuntimeSettings, preset or None, whether the context is the model's trained one): fitcheck's defaults,
    then the runtime's, then what was given (None = not given). `fixed` are settings no preset touches."""
    from fitcheck.estimator.settings import RuntimeSettings

    kw = dict(BASE)
    preset = find(runtime) if runtime is not None else None
    if preset is not None:
        kw.update(preset.defaults(), runtime=preset.id)
    kw.update({k: v for k, v in given.items() if v is not None})
    ctx_from_model = preset is not None and preset.n_ctx is None and given.get("n_ctx") is None
    return RuntimeSettings(**kw, **fixed), preset, ctx_from_model


def catalog_model_settings(runtime: str | None, ctx: int | None, model: str):
    """RuntimeSettings for one catalog model: a runtime whose default context is the model's takes its trained one."""
    from dataclasses import replace

    from fitcheck.model.catalog import resolve

    s, _, ctx_from_model = runtime_settings(runtime, {"n_ctx": ctx})
    return replace(s, n_ctx=resolve(model)[0].n_ctx_train) if ctx_from_model else s
