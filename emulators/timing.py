"""Fast mode and real-time mode: how much wall time a device spends.

Source: the datasheet times live in each board's profile; how fast mode opens a key
window is this project's assumption (a test facility, not device behaviour).

In real-time mode delays are spent as on the device. In fast mode nothing
sleeps, with one necessary exception: a *key window* (U-Boot's autoboot
countdown, the W90P745's ESC prompt) must give a host the chance to answer.
On the device the window opens when the prompt is printed and lasts the
device's time; a host on the wire sees the prompt at once. In fast mode the
device prints without spending its boot time, so the window opens once the
host has read everything the device printed, and then lasts the device's own
window: a host quick enough for the device is quick enough here, however
loaded the machine (a shorter fast-mode window made correct hosts miss it
under load; issue 19). With no host reading at all, the window opens after
the device's window has passed once. A key that arrives closes the window at
once, so a host that interrupts costs no wall time; one that lets the device
boot waits the window out, as on the device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from emulators.serial import VirtualUart

POLL = 0.005  # s between looks at the host's progress while waiting for it


@dataclass
class Clock:
    realtime: bool = False

    def sleep(self, seconds: float) -> None:
        """Spend device time (only in real-time mode)."""
        if self.realtime and seconds > 0:
            time.sleep(seconds)

    def host_read(self, uart: VirtualUart, seconds: float, *, or_input: bool = True) -> None:
        """Fast mode: return once the host has read everything the device printed (or,
        with ``or_input``, has sent something), or ``seconds`` have passed without it
        reading."""
        deadline = time.monotonic() + seconds
        while uart.pending_to_host() and not (or_input and uart.input_waiting()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(POLL, left))

    def key_window(self, uart: VirtualUart, seconds: float) -> bytes:
        """Wait up to ``seconds`` of device time for host input; return what came."""
        if self.realtime:
            return uart.read(1, timeout=seconds)
        self.host_read(uart, seconds)
        return uart.read(1, timeout=seconds)

    def input_window(self, uart: VirtualUart, seconds: float) -> bool:
        """Spend ``seconds`` of device time; True if host input is then waiting (it is
        not taken). Fast mode: the window of :meth:`key_window`, ended by the input."""
        if self.realtime:
            self.sleep(seconds)
            return bool(uart.input_waiting())
        self.host_read(uart, seconds)
        deadline = time.monotonic() + seconds
        while not uart.input_waiting():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL, left))
        return True

    def settle(self, uart: VirtualUart, seconds: float, fast: float = 0.03) -> None:
        """A reset or reboot: the chip is silent for ``seconds`` before it prints again.
        In fast mode: once the host has read what was sent before, a short ``fast`` pause,
        so a host that switches its baud after the last answer is not outrun."""
        if self.realtime:
            time.sleep(seconds)
            return
        self.host_read(uart, 0.5, or_input=False)
        time.sleep(min(seconds, fast))

    def timeout(self, seconds: float, fast: float = 0.05) -> float:
        """A device-side wait for a network answer: real or shortened."""
        return seconds if self.realtime else min(seconds, fast)
