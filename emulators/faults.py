"""Fault hooks of a device (used by the harness's fault campaign, harness/fuzz.py).

All off unless armed:

* :meth:`Device.arm_trigger` with a :class:`LinkTrigger`: when the firmware has
  read (``direction="host"``) or written (``"device"``) that many more bytes of
  the link, the device thread itself acts, at exactly that byte: ``"reset"``
  (a watchdog reset: the CPU restarts :meth:`run`, RAM is lost, the flash and
  the power stay; host input not yet read is lost with the UART's FIFO), ``"power_loss"`` (the power is cut as by a PowerLossError:
  the device stays off until :meth:`power_on`) or ``"inject"`` (``text`` is
  sent right after the next line end the firmware prints: a log line that
  arrives between a command's echo and its output or prompt, as a kernel or a
  second CPU printing on a shared UART would). Counting bytes rather than time
  makes a fault land on the same byte in every run with the same seed.
* :meth:`Device.reset`: a reset from outside (a watchdog timer, the reset
  button) at whatever the firmware is doing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from emulators.flash import PowerLossError
from emulators.serial import VirtualUart


class DeviceReset(Exception):
    """Raised by firmware code to reset the CPU (U-Boot ``reset``, a watchdog)."""


TRIGGER_ACTIONS = ("reset", "power_loss", "inject")


@dataclass
class LinkTrigger:
    """A fault that fires when the link has carried ``after`` more bytes.

    ``direction``: ``"host"`` counts bytes the firmware read from the host,
    ``"device"`` bytes the firmware wrote. ``action``: ``"reset"``,
    ``"power_loss"`` or ``"inject"`` (see the module docstring); ``text`` is
    what ``inject`` sends. ``on_fire`` is called in the device thread when it
    fires (keep it short: start a thread for anything slow). ``fired`` is set
    then.
    """

    direction: str
    after: int
    action: str
    text: bytes = b""
    on_fire: Callable[[LinkTrigger], None] | None = None
    fired: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("host", "device"):
            raise ValueError(f"direction must be 'host' or 'device', not {self.direction!r}")
        if self.action not in TRIGGER_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(TRIGGER_ACTIONS)}")
        if self.after < 0:
            raise ValueError("after must be >= 0")


class _Taps:
    """The armed triggers and the link byte counts (shared by host and device threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.triggers: list[tuple[int, LinkTrigger]] = []  # (absolute count, trigger)
        self.read_count = 0
        self.write_count = 0
        self.inject: list[bytes] = []

    def arm(self, trig: LinkTrigger) -> None:
        with self.lock:
            base = self.read_count if trig.direction == "host" else self.write_count
            self.triggers.append((base + trig.after, trig))

    def clear(self) -> None:
        with self.lock:
            self.triggers.clear()
            self.inject.clear()

    def _due(self, direction: str, count: int) -> LinkTrigger | None:
        for i, (at, trig) in enumerate(self.triggers):
            if trig.direction == direction and count >= at:
                del self.triggers[i]
                trig.fired = True
                return trig
        return None

    def fire(self, trig: LinkTrigger, where: str, uart: VirtualUart) -> None:
        """Act in the device thread (raises for reset and power loss)."""
        if trig.on_fire is not None:
            trig.on_fire(trig)
        if trig.action == "reset":
            uart.discard_input()  # the reset UART loses what sat in its FIFO
            raise DeviceReset()
        if trig.action == "power_loss":
            raise PowerLossError(f"power cut at {where}")
        with self.lock:
            self.inject.append(trig.text)

    def next_read_limit(self, n: int) -> int:
        """How many of ``n`` bytes may be read before a host-side trigger is due."""
        with self.lock:
            left = [at - self.read_count for at, t in self.triggers if t.direction == "host"]
        return max(1, min([n, *left])) if left else n


class _TappedUart(VirtualUart):
    """The board's UART with the device's link triggers on its read/write path.

    Without armed triggers it behaves exactly as :class:`VirtualUart`."""

    taps: _Taps

    def read(self, n: int = 1, timeout: float | None = None) -> bytes:
        taps = self.taps
        if not taps.triggers:
            data = super().read(n, timeout)
            taps.read_count += len(data)
            return data
        data = super().read(taps.next_read_limit(n), timeout)
        if data:
            with taps.lock:
                taps.read_count += len(data)
                trig = taps._due("host", taps.read_count)
            if trig is not None:
                taps.fire(trig, f"host byte {taps.read_count}", self)
        return data

    def unread(self, data: bytes) -> None:
        super().unread(data)
        with self.taps.lock:
            self.taps.read_count -= len(data)

    def write(self, data: bytes | str) -> None:
        taps = self.taps
        if isinstance(data, str):
            data = data.encode("latin-1")
        if not taps.triggers and not taps.inject:
            taps.write_count += len(data)
            super().write(data)
            return
        with taps.lock:
            limit = [at - taps.write_count for at, t in taps.triggers if t.direction == "device"]
        cut = min(limit) if limit else None
        if cut is not None and cut < len(data):
            head = data[: max(0, cut)]
            self._write_injecting(head)
            with taps.lock:
                trig = taps._due("device", taps.write_count)
            if trig is not None:
                taps.fire(trig, f"device byte {taps.write_count}", self)
            self.write(data[len(head) :])
            return
        self._write_injecting(data)
        with taps.lock:
            trig = taps._due("device", taps.write_count)
        if trig is not None:
            taps.fire(trig, f"device byte {taps.write_count}", self)

    def _write_injecting(self, data: bytes) -> None:
        taps = self.taps
        pending = b""
        if b"\n" in data:
            with taps.lock:
                if taps.inject:
                    pending = b"".join(taps.inject)
                    taps.inject.clear()
        taps.write_count += len(data)  # injected text is not the firmware's output
        if not pending:
            super().write(data)
            return
        i = data.index(b"\n") + 1
        super().write(data[:i])
        super().write(pending)
        super().write(data[i:])
