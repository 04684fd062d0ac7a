"""Cutting text and values down for failure messages and the report.

Console output is shown with its line ends and every other control byte as
``\\xNN``; long values are clipped; a match is shown with its surrounding lines.
"""

from __future__ import annotations

import re
from typing import Any


def clip(v: Any, n: int = 200) -> str:
    """``repr(v)``, cut to ``n`` characters."""
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def tail(text: str, n: int = 1500) -> str:
    """The last ``n`` characters of ``text``, printable."""
    text = text if len(text) <= n else "..." + text[-n:]
    return printable(text)


def printable(text: str) -> str:
    """Console text for a report: line ends kept, other control bytes as \\xNN."""
    text = text.replace("\r\n", "\n").replace("\r", "")
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: f"\\x{ord(m.group(0)):02x}", text)


def line_at(text: str, i: int) -> str:
    """The lines around offset ``i`` (about 300 characters each side), printable."""
    a = text.rfind("\n", 0, max(0, i - 300)) + 1
    b = text.find("\n", i + 300)
    b = len(text) if b < 0 else b
    return printable(text[a:b])
