"""Strings from outside (model and file names, GGUF metadata, profile fields) made safe for a terminal.

Control characters (escape sequences that clear the screen, set the title or
write the clipboard), bidi overrides that reorder what is shown, and line
breaks inside a name become visible placeholders; rich markup is escaped.
"""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_SHOWN = 200  # a name longer than this is cut, with a mark, so one field cannot flood the screen


def clean(v: Any, limit: int = MAX_SHOWN) -> str:
    s = _UNSAFE.sub("?", str(v))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def esc(v: Any, limit: int = MAX_SHOWN) -> str:
    """Clean, then escape rich markup ("[/]" is shown, not parsed)."""
    from rich.markup import escape

    return escape(clean(v, limit))
