"""Paths into an engine's JSON result, as keys of a step's ``expect: {json: ...}``.

A key that holds ``.`` or ``[`` is a path: ``ranges[0].crc32`` is
``result["ranges"][0]["crc32"]``, ``a.b[2].c`` goes three objects and one
list deep, ``ranges[-1]`` is the last element. Any other key is one key of the
object. :func:`parse_path` reads one (``ValueError`` when it is malformed);
:func:`walk` follows it and says, when it cannot, where and why.
"""

from __future__ import annotations

import re
from typing import Any

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d+)\]")


def is_path(key: str) -> bool:
    return "." in key or "[" in key


def parse_path(key: str) -> list[str | int]:
    """``"ranges[0].crc32"`` -> ``["ranges", 0, "crc32"]``."""
    out: list[str | int] = []
    i = 0
    while i < len(key):
        if out and key[i] == ".":
            i += 1
            m = _PART.match(key, i)
            if m is None or m.group(1) is None:
                raise ValueError(f"{key!r}: expected a key name after '.' at position {i + 1}")
        else:
            m = _PART.match(key, i)
            if m is None or (out and m.group(1) is not None):
                raise ValueError(
                    f"{key!r}: expected a key name or [INDEX] at position {i + 1} "
                    "(paths look like ranges[0].crc32)"
                )
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        i = m.end()
    if not out:
        raise ValueError("an empty path")
    return out


def show(parts: list[str | int]) -> str:
    s = ""
    for p in parts:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else p)
    return s


def walk(value: Any, parts: list[str | int]) -> tuple[bool, Any, str]:
    """``(found, value, why_not)``: the value at ``parts`` under ``value``, or why
    there is none (``why_not`` names the part that is missing and what is there)."""
    done: list[str | int] = []
    for p in parts:
        here = show(done) or "the result"
        if isinstance(p, int):
            if not isinstance(value, list):
                return False, None, f"{here} is {_kind(value)}, not a list"
            if not -len(value) <= p < len(value):
                n = len(value)
                return False, None, f"{here} has {n} element{'' if n == 1 else 's'}, so no [{p}]"
            value = value[p]
        else:
            if not isinstance(value, dict):
                return False, None, f"{here} is {_kind(value)}, not an object"
            if p not in value:
                keys = ", ".join(sorted(map(str, value))) or "none"
                return False, None, f"{here} has no key {p!r} (its keys: {keys})"
            value = value[p]
        done.append(p)
    return True, value, ""


def _kind(v: Any) -> str:
    if isinstance(v, list):
        return f"a list of {len(v)}"
    if isinstance(v, dict):
        return "an object"
    if v is None:
        return "null"
    return f"{v!r}"
