"""Text that every database and every browser can hold: what the model says is cleaned, and
what people send is checked, here and nowhere else.

JSON text can carry a NUL (which PostgreSQL refuses to store) and lone surrogates (which no
UTF-8 encoder accepts); tool arguments can carry NaN and Infinity (which JSON columns refuse).
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with NUL dropped and lone surrogates replaced by U+FFFD (a no-op for ordinary text).

    Surrogate code points that do make a pair become the one character they stand for.
    """
    if not _UNSTORABLE.search(text):
        return text
    return text.replace("\x00", "").encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def clean_value(value: Any) -> Any:
    """A JSON-like value with every string in it (keys too) cleaned by `clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_value(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    return value


def unstorable_character(text: str) -> str | None:
    """What makes `text` unstorable ("a NUL character", "a lone surrogate"), or None when it is fine."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone surrogate"


def refuse_constant(name: str) -> Any:
    """`json.loads(..., parse_constant=refuse_constant)`: NaN and Infinity are not JSON numbers."""
    raise ValueError(f"{name} is not a valid JSON number")
