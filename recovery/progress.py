"""A textual progress bar on stderr with rate and ETA, and the one notice a person must
see whatever the output mode (:func:`stderr_notify`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

Notify = Callable[[str], None]


def stderr_notify(text: str) -> None:
    """A line for a person on stderr, also with --json or --quiet (a retry, a retype)."""
    print(text, file=sys.stderr, flush=True)


# -- progress -------------------------------------------------------------------


def _human(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:.0f}"
    for scale, suffix in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n:.0f} B"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """A textual progress bar on stderr: label, bar, percent, amount, rate, ETA.

    ``total`` may be None (unknown: no bar or ETA). On a terminal the line is
    redrawn in place at most every ``min_interval`` seconds; on a file or pipe
    only the final line is written. ``enabled=False`` prints nothing.
    """

    WIDTH = 24

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "B",
        enabled: bool = True,
        stream: TextIO | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.done = 0
        self.t0 = time.monotonic()
        self._last_draw = 0.0
        self._closed = False
        try:
            self._tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False

    def render(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = self.done / elapsed
        unit = "" if self.unit == "B" else f" {self.unit}"
        text = f"{self.label:<18}"
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * self.WIDTH)
            text += f" [{'#' * filled}{'.' * (self.WIDTH - filled)}] {frac * 100:3.0f}%"
            text += f" {_human(self.done, self.unit)}/{_human(self.total, self.unit)}{unit}"
        else:
            text += f" {_human(self.done, self.unit)}{unit}"
        text += f" {_human(rate, self.unit)}{unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f" ETA {_clock((self.total - self.done) / rate)}"
        else:
            text += f" {_clock(elapsed)}"
        return text

    def update(self, done: int) -> None:
        self.done = done
        if not (self.enabled and self._tty) or self._closed:
            return
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval:
            self._last_draw = now
            self.stream.write("\r" + self.render() + "\x1b[K")
            self.stream.flush()

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def close(self, ok: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        line = self.render() + ("" if ok else "  FAILED")
        self.stream.write(("\r" + line + "\x1b[K\n") if self._tty else line + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(ok=exc_type is None)
