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

Fault hooks for the harness (``arm_trigger``, ``reset``) are described in
:mod:`emulators.faults`.
"""

from __future__ import annotations

import os
import threading
import traceback
from typing import ClassVar

from emulators.console import Console
from emulators.faults import TRIGGER_ACTIONS, DeviceReset, LinkTrigger, _TappedUart, _Taps
from emulators.flash import FlashGeometry, NorFlash, PowerLossError
from emulators.serial import LinkDown, LinkFaults
from emulators.timing import Clock
from emulators.transcript import Transcript

__all__ = ["TRIGGER_ACTIONS", "Device", "DeviceReset", "LinkTrigger"]


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
