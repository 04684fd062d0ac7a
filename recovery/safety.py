"""What the flash holds while an operation runs, and the areas nothing writes by accident.

* :class:`FlashTracker`: every operation that writes tells it which range it is
  about to change (:meth:`~FlashTracker.writing`), which it has written
  (:meth:`~FlashTracker.written`) and verified (:meth:`~FlashTracker.verified`),
  and which command finishes the job (:attr:`~FlashTracker.resume`); an operation
  that knows its ranges up front says so (:meth:`~FlashTracker.plan`), so that an
  interruption between two ranges is "partially written", not "verified".
  :func:`recovery.cliutil.run_operation` keeps one per operation
  (:func:`flash_tracker` returns it) and reports it however the operation ends
  (success, error, Ctrl-C, SIGTERM, a vanished port) as ``flash_status``:
  ``untouched``, ``partially written`` (with the ranges), ``complete but
  unverified``, ``verified``; or ``unknown`` when a writing operation did not
  say.
* :func:`check_protected`: a range that intersects a protected area (a boot
  loader's sectors) is refused unless the user said so explicitly, whatever a
  manifest calls the range: judged by address, never by name.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recovery.errors import RefusedError
from recovery.jsonout import hex_address

UNTOUCHED = "untouched"
PARTIAL = "partially written"
UNVERIFIED = "complete but unverified"
VERIFIED = "verified"
UNKNOWN = "unknown"
PENDING = "not yet written (old contents)"


@dataclass
class FlashTracker:
    """The flash state of one operation (see the module docstring)."""

    tracked: bool = False
    ranges: dict[tuple[int, int], str] = field(default_factory=dict)
    resume: str | None = None
    planned: list[tuple[int, int]] = field(default_factory=list)
    finished: bool = False  # set by run_operation when the operation returned

    def plan(self, ranges: Iterable[tuple[int, int]]) -> FlashTracker:
        """The ranges the operation is going to write, all of them."""
        self.tracked = True
        self.planned = [(a, b) for a, b in ranges]
        return self

    def start(self) -> FlashTracker:
        """The operation will report what it writes: until then the flash is untouched."""
        self.tracked = True
        return self

    def writing(self, start: int, end: int) -> None:
        """``start..end`` (end exclusive) is about to change (erase or program)."""
        self.tracked = True
        self.ranges[(start, end)] = PARTIAL

    def written(self, start: int, end: int) -> None:
        self.tracked = True
        self.ranges[(start, end)] = UNVERIFIED

    def verified(self, start: int, end: int) -> None:
        self.tracked = True
        self.ranges[(start, end)] = VERIFIED

    def _pending(self) -> list[tuple[int, int]]:
        return [r for r in self.planned if r not in self.ranges]

    @property
    def state(self) -> str:
        """The state of the flash as a whole for the job (see the module docstring)."""
        if not self.tracked:
            return UNKNOWN
        states = set(self.ranges.values())
        if not states:
            return UNTOUCHED
        if PARTIAL in states or self._pending():
            return PARTIAL  # a mix of old and new
        if not self.planned and not self.finished:
            return PARTIAL  # stopped between ranges it had not announced
        if UNVERIFIED in states:
            return UNVERIFIED
        return VERIFIED

    def as_dict(self) -> dict[str, Any]:
        every = {**{r: PENDING for r in self._pending()}, **self.ranges}
        return {
            "state": self.state,
            # addresses as hex strings, as every address in the JSON (issue 20)
            "ranges": [
                {"start": hex_address(a), "end": hex_address(b), "state": s}
                for (a, b), s in sorted(every.items())
            ],
            "resume": self.resume if self.state not in (UNTOUCHED, VERIFIED) else None,
        }

    def describe(self) -> str:
        text = self.state
        every = {**{r: PENDING for r in self._pending()}, **self.ranges}
        if every and self.state != VERIFIED:
            text += ": " + ", ".join(
                f"{a:#x}..{b - 1:#x} {s}" for (a, b), s in sorted(every.items())
            )
        return text


_current: contextvars.ContextVar[FlashTracker | None] = contextvars.ContextVar(
    "camrescue_flash_tracker", default=None
)


def flash_tracker() -> FlashTracker:
    """The tracker of the running operation (a throwaway one outside run_operation)."""
    t = _current.get()
    return t if t is not None else FlashTracker()


def set_tracker(t: FlashTracker | None) -> contextvars.Token[FlashTracker | None]:
    return _current.set(t)


def reset_tracker(token: contextvars.Token[FlashTracker | None]) -> None:
    _current.reset(token)


# -- protected areas ---------------------------------------------------------------


@dataclass(frozen=True)
class Area:
    name: str
    start: int
    end: int  # exclusive

    def intersects(self, start: int, end: int) -> bool:
        return start < self.end and self.start < end


def check_protected(
    ranges: Iterable[tuple[str, int, int]],
    areas: Sequence[Area],
    *,
    allowed: bool,
    option: str = "--include-bootloader",
) -> None:
    """Refuse any ``(name, start, end)`` range that intersects a protected area
    unless ``allowed`` (the user gave ``option``), whatever the range is called."""
    if allowed:
        return
    for name, start, end in ranges:
        for area in areas:
            if area.intersects(start, end):
                raise RefusedError(
                    f"the range {name!r} ({start:#x}..{end - 1:#x}) overlaps the {area.name} "
                    f"({area.start:#x}..{area.end - 1:#x}): refused, whatever the range is called",
                    flash_state=UNTOUCHED,
                    hint=f"if you really mean to rewrite the {area.name}, add {option} (if it "
                    "goes wrong only a flash programmer brings the camera back)",
                )
