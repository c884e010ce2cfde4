"""Where fitcheck keeps its files: state (the profile) and a cache (synthetic probe and calibration models)."""

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


def cache_dir() -> Path:
    """Synthetic models the probe and calibration run: deterministic and checksummed, so shared by every profile.

    FITCHECK_CACHE if set, else the XDG cache dir (~/.cache/fitcheck)."""
    env = os.environ.get("FITCHECK_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fitcheck"
