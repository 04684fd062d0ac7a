"""Flash and file images from the firmware builders, and their cache.

Flash contents come from the firmware builders (``harness.firmware.<board>``),
from a file, or are left erased; see :func:`build_image` and
:func:`parse_flash_source`. Built images are cached in memory and, keyed by the
builders' source code, on disk (set ``CAMRESCUE_IMAGE_CACHE=0`` to switch the
disk cache off, or to a directory to move it).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.boards import Unavailable, board_spec, import_attr

_MEMO: dict[str, bytes] = {}
_MEMO_LOCK = threading.Lock()


def _cache_dir() -> Path | None:
    env = os.environ.get("CAMRESCUE_IMAGE_CACHE")
    if env == "0":
        return None
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"camrescue-image-cache-{os.getuid()}"


def _builders_fingerprint(module: Any) -> str:
    """A hash of the firmware builders' source, so a changed builder misses the cache."""
    h = hashlib.sha256()
    pkg_dir = Path(module.__file__).resolve().parent
    for p in sorted(pkg_dir.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def builder_function(board: str, name: str) -> Callable[..., Any]:
    spec = board_spec(board)
    if spec.firmware is None:
        raise Unavailable(f"board {board} has no firmware builders")
    module = import_attr(spec.firmware)
    fname = spec.builder_aliases.get(name, name)
    fn = getattr(module, fname, None)
    if not callable(fn):
        have = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", "") == module.__name__
        )
        raise ValueError(
            f"{spec.firmware} has no builder {fname!r} (it has: {', '.join(have) or 'none'})"
        )
    return fn


def _call_builder(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        sig = inspect.signature(fn)
        sig.bind(**kwargs)
    except TypeError:
        # ``root_image("B")``-style builders whose one parameter has another name
        if len(kwargs) == 1:
            return fn(next(iter(kwargs.values())))
        raise
    except ValueError:  # no signature (a builtin)
        pass
    return fn(**kwargs)


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str | os.PathLike):
        return Path(value).read_bytes()
    for attr in ("data", "image", "blob"):
        inner = getattr(value, attr, None)
        if isinstance(inner, bytes | bytearray):
            return bytes(inner)
    if hasattr(value, "to_bytes") and callable(value.to_bytes):
        return bytes(value.to_bytes())
    raise TypeError(f"{what} returned {type(value).__name__}, not bytes")


def build_image(board: str, name: str, **kwargs: Any) -> bytes:
    """Bytes from ``harness.firmware.<board>.<name>(**kwargs)`` (``vendor`` is
    ``vendor_flash``). Arguments that are themselves ``{"builder": ...}`` dicts are
    built first, so ``vendor_pkg(root={"builder": "root_image", "firmware": "B"})``
    works. Results are cached."""
    resolved = {k: _resolve_arg(board, v) for k, v in kwargs.items()}
    fn = builder_function(board, name)
    module = sys.modules[fn.__module__]
    key_src = json.dumps(
        [board, name, {k: _key_of(v) for k, v in sorted(kwargs.items())}], sort_keys=True
    )
    with _MEMO_LOCK:
        fp = _builders_fingerprint(module)
        key = hashlib.sha256((fp + key_src).encode()).hexdigest()
        if key in _MEMO:
            return _MEMO[key]
    cache = _cache_dir()
    cached = cache / f"{key}.bin" if cache else None
    if cached is not None and cached.is_file():
        data = cached.read_bytes()
    else:
        data = _as_bytes(_call_builder(fn, resolved), f"{board} builder {name}")
        if cached is not None:
            with contextlib.suppress(OSError):
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                tmp.replace(cached)
    with _MEMO_LOCK:
        _MEMO[key] = data
    return data


def _key_of(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return {"sha256": hashlib.sha256(v).hexdigest()}
    if isinstance(v, dict):
        return {k: _key_of(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_key_of(x) for x in v]
    return v


def _resolve_arg(board: str, v: Any) -> Any:
    if isinstance(v, dict) and "builder" in v:
        args = {k: x for k, x in v.items() if k != "builder"}
        return build_image(board, v["builder"], **args)
    return v


def parse_flash_source(board: str, source: Any, flash_size: int) -> bytes | None:
    """A device's starting flash from a short description.

    ``None`` (the board's factory firmware), ``"erased"``, ``"vendor:A"`` (the
    ``vendor`` builder with ``firmware="A"``), ``"builder:NAME"``, a path, bytes,
    or a ``{"builder": NAME, ...}`` dict.
    """
    if source is None:
        return None
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    elif isinstance(source, dict):
        data = _resolve_arg(board, source)
    elif isinstance(source, Path):
        data = source.read_bytes()
    elif source == "erased":
        data = b"\xff" * flash_size
    elif isinstance(source, str) and ":" in source and not os.path.exists(source):
        name, _, firmware = source.partition(":")
        data = build_image(board, name, **({"firmware": firmware} if firmware else {}))
    else:
        data = Path(source).read_bytes()
    if len(data) > flash_size:
        raise ValueError(f"{board}: flash image is {len(data)} bytes, the chip holds {flash_size}")
    return data + b"\xff" * (flash_size - len(data))
