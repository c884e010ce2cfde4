"""Strict JSON in and out: no NaN or Infinity (invalid JSON), no unbounded or non-regular files."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from fitcheck.errors import FitcheckError


def finite(obj: Any) -> Any:
    """A copy in which every non-finite float is None (what JSON can hold)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kw) -> str:
    return json.dumps(finite(obj), allow_nan=False, default=str, **kw)


def write_json_atomic(path: Path | str, obj: Any, what: str = "file", error=FitcheckError, indent: int = 2,
                      shared: bool = False) -> Path:
    """Write strict JSON to a temp file beside `path`, fsync, rename: a crash or a full disk leaves the old file.
    Private (0600) unless `shared` (then as the umask allows, as open() would)."""
    import tempfile

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    except OSError as e:
        raise error(f"cannot write the {what} in {path.parent}: {e.strerror or e}") from None
    try:
        if shared:
            mask = os.umask(0)
            os.umask(mask)
            os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "w") as f:
            f.write(dumps(obj, indent=indent))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError, RecursionError) as e:  # I/O, or data JSON cannot hold
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise error(f"cannot write the {what} {path}: {getattr(e, 'strerror', None) or e}") from None
    return path


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def read_json(path: Path, what: str, max_bytes: int, error=FitcheckError) -> Any:
    """Parse a regular file of at most max_bytes as strict JSON; `error` (a FitcheckError class) says why not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is not a regular file")
    if st.st_size > max_bytes:
        raise error(f"{what} {path} is {st.st_size} bytes, more than {max_bytes} (not one fitcheck wrote)")
    try:
        with open(path, "rb") as f:
            text = f.read(max_bytes + 1).decode("utf-8")
        return json.loads(text, parse_constant=_no_constants)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise error(f"{what} {path} is corrupt ({type(e).__name__}{where})") from None
