"""A record of every byte on a link, both ways, with timestamps.

Models no device behaviour (a recording facility), so it has no source to cite.

The device side records what the device sent (before any injected fault) as
``dev`` and what the device received (after faults) as ``host``. The text form
is one chunk per line: seconds since the link opened, direction, and the bytes
as a Python-style escaped string, so a person can read it and a program can
parse it back.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Chunk:
    t: float
    direction: str  # "dev" (device -> host) or "host" (host -> device)
    data: bytes


def escape(data: bytes) -> str:
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x09:
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


@dataclass
class Transcript:
    """Thread-safe chunk log. ``limit`` caps the bytes kept (oldest dropped)."""

    limit: int = 8 << 20
    chunks: list[Chunk] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._size = 0

    def add(self, direction: str, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self.chunks.append(Chunk(time.monotonic() - self.t0, direction, bytes(data)))
            self._size += len(data)
            while self._size > self.limit and len(self.chunks) > 1:
                self._size -= len(self.chunks.pop(0).data)

    def note(self, text: str) -> None:
        """Record an event (power cycle, baud change) as a ``--`` line."""
        self.add("--", text.encode())

    def device_output(self) -> bytes:
        with self._lock:
            return b"".join(c.data for c in self.chunks if c.direction == "dev")

    def text(self) -> str:
        with self._lock:
            lines = [f"{c.t:10.6f} {c.direction:>4} {escape(c.data)}" for c in self.chunks]
        return "\n".join(lines) + ("\n" if lines else "")

    def tail(self, nbytes: int = 2000) -> str:
        """The last device output, decoded for a failure report."""
        return self.device_output()[-nbytes:].decode("latin-1")

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(self.text(), encoding="utf-8")
        tmp.replace(p)
        return p
