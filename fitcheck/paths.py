"""Where fitcheck keeps its files (profiles, calibration models)."""

from __future__ import annotations

import os
from pathlib import Path


def user_dir() -> Path:
    """FITCHECK_HOME if set, else the XDG data dir (~/.local/share/fitcheck)."""
    env = os.environ.get("FITCHECK_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "fitcheck"
