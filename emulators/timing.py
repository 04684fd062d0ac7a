"""Fast mode and real-time mode: how much wall time a device spends.

Source: the datasheet times live in each board's profile; the fast-mode key window below is this project's assumption (a test facility, not device behaviour).

In real-time mode delays are spent as on the device. In fast mode nothing
sleeps, with one necessary exception: a *key window* (U-Boot's autoboot
countdown, the W90P745's ESC prompt) must give a host the chance to answer.
In fast mode the window closes once the host has read everything the device
printed and then stayed silent for ``fast_grace`` seconds (or, with no host
reading at all, after ``fast_absent`` seconds). That keeps interruption at
power-on testable without spending the real window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from emulators.serial import VirtualUart


@dataclass
class Clock:
    realtime: bool = False
    fast_grace: float = 0.5
    fast_absent: float = 0.5

    def sleep(self, seconds: float) -> None:
        """Spend device time (only in real-time mode)."""
        if self.realtime and seconds > 0:
            time.sleep(seconds)

    def key_window(self, uart: VirtualUart, seconds: float) -> bytes:
        """Wait up to ``seconds`` of device time for host input; return what came."""
        if self.realtime:
            return uart.read(1, timeout=seconds)
        deadline = time.monotonic() + self.fast_absent
        while uart.pending_to_host() and time.monotonic() < deadline:
            got = uart.read(1, timeout=0.005)
            if got:
                return got
        return uart.read(1, timeout=self.fast_grace)

    def settle(self, uart: VirtualUart, seconds: float, fast: float = 0.03) -> None:
        """A reset or reboot: the chip is silent for ``seconds`` before it prints again.
        In fast mode: once the host has read what was sent before, a short ``fast`` pause,
        so a host that switches its baud after the last answer is not outrun."""
        if self.realtime:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + self.fast_absent
        while uart.pending_to_host() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(min(seconds, fast))

    def timeout(self, seconds: float, fast: float = 0.05) -> float:
        """A device-side wait for a network answer: real or shortened."""
        return seconds if self.realtime else min(seconds, fast)
