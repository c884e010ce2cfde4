"""Names as people type them: one normal form (fullwidth '７Ｂ' is '7B'), bounded, shown safely in messages."""

from __future__ import annotations

import unicodedata

from fitcheck.errors import UsageError

MAX_NAME = 300  # longer than any model or device name; a pasted document is not a name


def shown(text: str, limit: int = 60) -> str:
    """`text` quoted for a one-line message, cut to `limit` characters (the rest counted, not printed)."""
    s = str(text)
    return repr(s) if len(s) <= limit else f"{s[:limit]!r}... ({len(s)} characters)"


def clean_name(text: str, what: str = "name") -> str:
    """The name in Unicode's compatibility form (NFKC), stripped; UsageError for control characters or a name
    longer than MAX_NAME, said before the name so the reason survives."""
    if not isinstance(text, str):
        raise UsageError(f"the {what} must be text, got {type(text).__name__}")
    t = unicodedata.normalize("NFKC", text).strip()
    if len(t) > MAX_NAME:
        raise UsageError(f"the {what} is too long ({len(t)} characters, at most {MAX_NAME}): {shown(t)}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in t):
        raise UsageError(f"the {what} {shown(t)} contains control or unassigned characters")
    return t
