"""Results as JSON: dataclasses, paths, enums and bytes as plain JSON values."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
from typing import Any, TextIO

# -- results --------------------------------------------------------------------


class _Absent:
    """A dataclass field set to :data:`ABSENT` is left out of the JSON object (a key a
    result has only in some cases), unlike None, which is written as null."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, enums, bytes, tuples and sets as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if getattr(obj, f.name) is not ABSENT
        }
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    return obj


def hex_address(n: int) -> str:
    """An address or offset as results and manifests write it: ``"0x34000000"`` (one
    rule for every board, issue 20: addresses and offsets are hex strings, sizes and
    counts stay integers)."""
    return f"{n:#x}"


def parse_address(value: Any) -> int:
    """An address or offset read back: a hex string, or an int (files written before
    addresses were hex strings)."""
    if isinstance(value, bool):
        raise ValueError(f"not an address: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16 if value.lower().startswith("0x") else 10)
    raise ValueError(f"not an address: {value!r}")


def hex_fields(obj: Any, keys: frozenset[str] | set[str]) -> Any:
    """``obj`` as JSON values (:func:`to_jsonable`) with the integers (or lists of
    integers) under ``keys``, at any depth, written by :func:`hex_address`: a result's
    addresses and offsets."""
    obj = to_jsonable(obj)
    if isinstance(obj, dict):
        return {k: _hex(v) if k in keys else hex_fields(v, keys) for k, v in obj.items()}
    if isinstance(obj, list):
        return [hex_fields(v, keys) for v in obj]
    return obj


def _hex(value: Any) -> Any:
    """An address, or a list of them (``[start, end]``, sector offsets), in hex."""
    if isinstance(value, int) and not isinstance(value, bool):
        return hex_address(value)
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return [hex_address(v) for v in value]
    return value


def print_json(obj: Any, stream: TextIO | None = None) -> None:
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(to_jsonable(obj)) + "\n")
    out.flush()
