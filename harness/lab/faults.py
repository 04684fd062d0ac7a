"""The faults a test, a scenario step or the fault campaign can arm on a lab device: one
vocabulary for all three.

=====================  =========================================================  ==========================
dataclass              what happens                                               scenario step ``fault:``
=====================  =========================================================  ==========================
:class:`PowerLoss`     the flash model loses power after the next N programmed    ``power_loss``
                       bytes or N erased sectors
:class:`LinkByteFault` at the N-th byte the host sends (``direction: host``) or    ``power_cut``, ``watchdog``,
                       the device prints (``device``): the power is cut, the      ``log_lines``,
                       watchdog resets the board, log lines are injected, or      ``corrupt_byte``,
                       that one byte is damaged or lost on the line               ``drop_byte``
``LinkFaults``         link noise: bit errors, drops, lost bursts, silence        ``link``
                       (:class:`emulators.serial.LinkFaults`)
``TftpFaults``         TFTP datagram loss, delay, duplicates, a server gone       ``network``
                       (:class:`harness.lab.netfaults.TftpFaults`)
:class:`TftpPowerCut`  the power is cut after N TFTP datagrams                    ``tftp_power_cut``
=====================  =========================================================  ==========================

``corrupt_byte`` and ``drop_byte`` are the line's (:class:`emulators.serial.ByteFault`),
not the device's: the byte is XORed with ``xor`` (default 0x01) or lost between the two
UARTs, once, and the device gets what a real cable would deliver. They may count from
the end of ``after_text`` in the device's output instead of from arming, and count only
bytes of one ``value`` (``value: 0x06``: the N-th ACK). The other link-byte actions count
the bytes the firmware reads or writes (:class:`emulators.device.LinkTrigger`).

``power_back`` (seconds, on :class:`PowerLoss`, a ``power_cut`` :class:`LinkByteFault`
and :class:`TftpPowerCut`): the power comes back that long after it was lost, as when a
person plugs the camera back in while the engine waits; None leaves it off.

:meth:`harness.lab.devices.LabDevice.arm` arms one and returns an :class:`ArmedFault`,
which says whether it fired and undoes it (:meth:`ArmedFault.disarm`). Counts start
when the fault is armed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulators.device import LinkTrigger
from emulators.serial import ByteFault, LinkFaults
from harness.lab.netfaults import TftpFaults

LINK_BYTE_ACTIONS = ("power_cut", "watchdog", "log_lines", "corrupt_byte", "drop_byte")
_TRIGGER_ACTION = {"power_cut": "power_loss", "watchdog": "reset", "log_lines": "inject"}
# the line's one-byte faults (emulators.serial.ByteFault)
_LINE_ACTION = {"corrupt_byte": "corrupt", "drop_byte": "drop"}


def _check_back(power_back: float | None) -> None:
    if power_back is not None and power_back < 0:
        raise ValueError(f"power_back is seconds >= 0 (or null: it stays off), got {power_back}")


@dataclass(frozen=True)
class PowerLoss:
    """The power goes after the next ``program_bytes`` programmed bytes or
    ``erase_sectors`` erased sectors (exactly one of them)."""

    program_bytes: int | None = None
    erase_sectors: int | None = None
    power_back: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.program_bytes, self.erase_sectors) if v is not None]
        if len(given) != 1:
            raise ValueError("give one of program_bytes: N or erase_sectors: N")
        if given[0] < 0:
            raise ValueError("the count must be >= 0")
        _check_back(self.power_back)


@dataclass(frozen=True)
class LinkByteFault:
    """At byte ``at_byte`` (counted from arming) of what the host sends (``direction``
    ``"host"``) or the device prints (``"device"``): ``action`` ``power_cut``,
    ``watchdog`` (a reset), ``log_lines`` (``text`` is injected into the output),
    ``corrupt_byte`` (that byte XORed with ``xor`` on the line) or ``drop_byte`` (that
    byte lost on the line). The two line actions may count from the end of
    ``after_text`` in the device's output and count only bytes of ``value``."""

    action: str
    at_byte: int
    direction: str = "host"
    text: str = ""
    power_back: float | None = None
    xor: int | None = None
    after_text: str = ""
    value: int | None = None

    def __post_init__(self) -> None:
        if self.action not in LINK_BYTE_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(LINK_BYTE_ACTIONS)}")
        if self.direction not in ("host", "device"):
            raise ValueError(f"direction must be host or device, not {self.direction!r}")
        if self.at_byte < 0:
            raise ValueError("at_byte must be >= 0")
        if self.action == "log_lines" and not self.text:
            raise ValueError("log_lines needs the text to inject")
        if self.action != "log_lines" and self.text:
            raise ValueError("text is for log_lines only")
        if self.action != "power_cut" and self.power_back is not None:
            raise ValueError("power_back is for a power cut only")
        _check_back(self.power_back)
        if self.action != "corrupt_byte" and self.xor is not None:
            raise ValueError("xor is for corrupt_byte only")
        if self.action not in _LINE_ACTION and (self.after_text or self.value is not None):
            raise ValueError("after_text and value are for corrupt_byte and drop_byte only")
        if self.action in _LINE_ACTION:
            try:
                self.after_text.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("after_text must be text the device prints (latin-1)") from None
            self.line_fault()  # the line's own checks (xor, value)

    def line_fault(self) -> ByteFault:
        """The line's :class:`~emulators.serial.ByteFault` for ``corrupt_byte`` or
        ``drop_byte`` (a new one each call)."""
        return ByteFault(
            self.direction,
            self.at_byte,
            _LINE_ACTION[self.action],
            xor=0x01 if self.xor is None else self.xor,
            after_text=self.after_text.encode("latin-1"),
            value=self.value,
        )


@dataclass(frozen=True)
class TftpPowerCut:
    """The power is cut after ``after_packets`` TFTP datagrams (counted from arming)."""

    after_packets: int
    power_back: float | None = None

    def __post_init__(self) -> None:
        if self.after_packets < 0:
            raise ValueError("after_packets must be >= 0")
        _check_back(self.power_back)


Fault = PowerLoss | LinkByteFault | LinkFaults | TftpFaults | TftpPowerCut
FAULT_TYPES = (PowerLoss, LinkByteFault, LinkFaults, TftpFaults, TftpPowerCut)


class PowerBack:
    """Bring the power back ``delay`` seconds after the device lost it (or never)."""

    def __init__(self, device: Any, delay: float | None) -> None:
        self.device = device
        self.delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seen = False  # the power did go

    def start(self) -> PowerBack:
        if self.delay is not None:
            self._thread = threading.Thread(target=self._run, name="power-back", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self.delay is not None
        while not self._stop.wait(0.002):
            if self.device.power_lost and not self.device.powered:
                self.seen = True
                if not self._stop.wait(self.delay):
                    self.device.power_on()
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None


class ArmedFault:
    """A fault armed on a device: :attr:`fired` says whether it struck (None: cannot
    say), :meth:`disarm` undoes it, :meth:`stop` only stops bringing the power back."""

    def __init__(
        self,
        fault: Fault,
        fired: Callable[[], bool | None],
        undo: Callable[[], None],
        power_back: PowerBack | None = None,
    ) -> None:
        self.fault = fault
        self._fired = fired
        self._undo = undo
        self.power_back = power_back
        self._fired_at_disarm: bool | None = None
        self.disarmed = False

    @property
    def fired(self) -> bool | None:
        return self._fired_at_disarm if self.disarmed else self._fired()

    def stop(self) -> None:
        if self.power_back is not None:
            self.power_back.stop()

    def disarm(self) -> None:
        if self.disarmed:
            return
        self.stop()
        self._fired_at_disarm = self._fired()
        self.disarmed = True
        self._undo()


def arm(lab_device: Any, fault: Fault) -> ArmedFault:
    """Arm ``fault`` on a :class:`~harness.lab.devices.LabDevice` (use its :meth:`arm`)."""
    device = lab_device.device
    if isinstance(fault, PowerLoss):
        back = PowerBack(device, fault.power_back)
        if fault.program_bytes is not None:
            lab_device.flash.arm_power_loss(program_bytes=fault.program_bytes)
        else:
            lab_device.flash.arm_power_loss(erase_sectors=fault.erase_sectors)
        back.start()
        return ArmedFault(
            fault,
            lambda: back.seen or bool(device.power_lost),
            lab_device.flash.disarm,
            back,
        )
    if isinstance(fault, LinkByteFault) and fault.action in _LINE_ACTION:
        hit = device.uart.arm_byte_fault(fault.line_fault())
        return ArmedFault(fault, lambda: hit.fired, lambda: device.uart.disarm_byte_fault(hit))
    if isinstance(fault, LinkByteFault):
        trigger = LinkTrigger(
            fault.direction,
            fault.at_byte,
            _TRIGGER_ACTION[fault.action],
            fault.text.encode("latin-1"),
        )
        device.arm_trigger(trigger)
        back = PowerBack(device, fault.power_back).start()
        return ArmedFault(fault, lambda: trigger.fired, device.disarm_triggers, back)
    if isinstance(fault, LinkFaults):
        device.uart.faults = fault

        def link_fired() -> bool | None:
            if fault.silent_after is not None:
                return bool(device.uart.silent())
            return fault != LinkFaults() or None

        def link_undo() -> None:
            device.uart.faults = LinkFaults()

        return ArmedFault(fault, link_fired, link_undo)
    proxy = lab_device.proxy
    if proxy is None:
        raise ValueError(
            f"{lab_device.name}: TFTP faults need the lab's fault proxy "
            "(start the device with network=... )"
        )
    if isinstance(fault, TftpFaults):
        proxy.set_faults(fault)
        base = proxy.stats_snapshot()

        def net_fired() -> bool:
            st = proxy.stats
            return st.gone or (st.dropped, st.duplicated, st.delayed) != (
                base.dropped,
                base.duplicated,
                base.delayed,
            )

        return ArmedFault(fault, net_fired, lambda: proxy.set_faults(TftpFaults()))
    if isinstance(fault, TftpPowerCut):

        def cut() -> None:  # the power goes; PowerBack may bring it back
            device.power_off()
            device.power_lost = True

        back = PowerBack(device, fault.power_back)
        proxy.set_faults(proxy.faults.with_trigger(fault.after_packets), on_trigger=cut)
        back.start()

        def undo_cut() -> None:
            proxy.set_faults(proxy.faults.with_trigger(None), on_trigger=None)

        return ArmedFault(fault, lambda: proxy.stats.triggered, undo_cut, back)
    raise TypeError(f"not a fault: {fault!r}")
