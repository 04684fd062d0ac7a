"""A device: one emulated board = profile + flash + link + firmware thread.

Every board subclasses :class:`Device` and implements :meth:`Device.run`, the
code that runs from power-on (boot loader, ROM, kernel) in the device's own
thread, talking to the host only through ``self.uart``/``self.con``.

Lifecycle (a context manager): the link (pty) exists from construction to
:meth:`close`; power comes and goes with :meth:`power_on`, :meth:`power_off`
and :meth:`power_cycle`. A power cut interrupts whatever the firmware is doing
(its next read or write of the link raises :class:`~emulators.serial.LinkDown`),
RAM is lost, the flash keeps what it holds. A :class:`~emulators.flash.PowerLossError`
raised by the flash (an injected fault) cuts the power the same way; the device
stays off until powered on. ``reset`` from the firmware restarts :meth:`run`.

An exception other than these is an emulator bug: it is recorded in
:attr:`Device.crash`, printed to the transcript, and the device goes dark.

Fault hooks for the harness (harness/fuzz.py), all off unless armed:

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

import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from emulators.console import Console
from emulators.flash import FlashGeometry, NorFlash, PowerLossError
from emulators.serial import LinkDown, LinkFaults, VirtualUart
from emulators.timing import Clock
from emulators.transcript import Transcript


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


class Device:
    board: ClassVar[str] = "device"
    baud: ClassVar[int] = 115200

    def __init__(
        self,
        *,
        flash_path: str | os.PathLike[str] | None = None,
        realtime: bool = False,
        seed: int = 0,
        link_path: str | os.PathLike[str] | None = None,
        faults: LinkFaults | None = None,
        transcript: Transcript | None = None,
        initial_flash: bytes | None = None,
    ) -> None:
        self.seed = seed
        self.realtime = realtime
        self.clock = Clock(realtime)
        self.flash = NorFlash(self.flash_geometry(), flash_path, seed=seed, realtime=realtime)
        if initial_flash is not None:
            if len(initial_flash) != self.flash.size:
                raise ValueError(
                    f"{self.board}: initial flash is {len(initial_flash)} bytes, "
                    f"the chip holds {self.flash.size}"
                )
            self.flash.load(0, initial_flash)
        elif self.flash.fresh:
            self.factory_flash(self.flash)
        self.transcript = transcript if transcript is not None else Transcript()
        self._taps = _Taps()
        self.uart = _TappedUart(
            self.baud,
            realtime=realtime,
            faults=faults,
            seed=seed,
            link_path=link_path,
            transcript=self.transcript,
        )
        self.uart.taps = self._taps
        self.con = Console(self.uart)
        self.powered = False
        self.boots = 0
        self.crash: BaseException | None = None
        self.crash_text = ""
        self.power_lost = False
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._reset_requested = False

    # -- to be provided by boards -------------------------------------------
    @classmethod
    def flash_geometry(cls) -> FlashGeometry:
        raise NotImplementedError

    def factory_flash(self, flash: NorFlash) -> None:
        """Fill a new, blank flash with the board's default firmware."""

    def on_power_on(self) -> None:
        """Reset volatile state (RAM, registers) before :meth:`run`."""

    def run(self) -> None:
        """The firmware, from reset until the link goes down."""
        raise NotImplementedError

    # -- host-facing ------------------------------------------------------------
    @property
    def path(self) -> str:
        """The host's serial port, e.g. ``/dev/pts/7``."""
        return self.uart.path

    def power_on(self) -> None:
        with self._state_lock:
            if self.powered:
                return
            self.uart.resume()
            self.powered = True
            self.power_lost = False
            self.transcript.note("power on")
            self._thread = threading.Thread(
                target=self._main, name=f"{self.board}-firmware", daemon=True
            )
            self._thread.start()

    def power_off(self) -> None:
        with self._state_lock:
            if not self.powered and self._thread is None:
                return
            self.powered = False
            self.uart.interrupt()
            t = self._thread
            self._thread = None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=10)
            if t.is_alive():  # pragma: no cover - an emulator bug
                raise RuntimeError(f"{self.board}: firmware thread did not stop")
        self.flash.flush()
        self.transcript.note("power off")

    def power_cycle(self) -> None:
        self.power_off()
        self.power_on()

    def reset(self) -> None:
        """Reset the CPU from outside (watchdog timer, reset button): the firmware
        restarts at its next link access; power and flash stay. No-op when off."""
        with self._state_lock:
            if not self.powered or not self.alive:
                return
            self._reset_requested = True
            self.uart.interrupt()

    # -- fault hooks ----------------------------------------------------------------
    def arm_trigger(self, trigger: LinkTrigger) -> LinkTrigger:
        """Arm a :class:`LinkTrigger`; ``after`` counts from now. Returns it."""
        self._taps.arm(trigger)
        return trigger

    def disarm_triggers(self) -> None:
        self._taps.clear()

    @property
    def link_counts(self) -> tuple[int, int]:
        """(bytes the firmware has read from the host, bytes it has written) so far."""
        return self._taps.read_count, self._taps.write_count

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the firmware thread has ended (power lost, crash, halt)."""
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    @property
    def alive(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def close(self) -> None:
        self.power_off()
        self.uart.close()
        self.flash.close()

    def __enter__(self) -> Device:
        self.power_on()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- firmware thread ----------------------------------------------------------
    def _main(self) -> None:
        try:
            while True:
                self.boots += 1
                self.on_power_on()
                try:
                    self.run()
                    return
                except DeviceReset:
                    self.transcript.note("reset")
                    continue
        except LinkDown:
            with self._state_lock:
                again = self._reset_requested and self.powered
                self._reset_requested = False
                if again:
                    self.uart.resume()
            if again:
                self.transcript.note("reset (from outside)")
                self._main()
            return
        except PowerLossError as e:
            self.power_lost = True
            self.transcript.note(f"power lost: {e}")
            self.powered = False
        except Exception as e:  # an emulator bug: record it loudly
            self.crash = e
            self.crash_text = traceback.format_exc()
            self.transcript.note("EMULATOR CRASH\n" + self.crash_text)
