"""A labgrid strategy for boards with U-Boot 1.1.4: from power-off to the boot loader's
prompt.

States: ``off`` (power off, console closed) and ``uboot`` (powered on from off, the
autoboot countdown caught by :class:`~harness.labgrid.ubootdriver.UBoot114Driver`, a
checked prompt). Going to ``uboot`` always passes through ``off``, so the board starts
from a real power-on, as the engine's procedures expect. The console is opened before
the power comes on, and the interrupt key is "held down" while the power driver runs: sent
every 50 ms from another thread until ``power.on()`` returns, as a person holds the space
bar while plugging a camera in. A board whose ``bootdelay`` is 0 (the seed's Hi3511 with
HiSilicon's U-Boot) stops only for a key already waiting when the countdown starts, and a
power driver that is an external command may take longer to return than the board takes
to get there. Keys sent while the board is still off are lost in its unpowered UART, as
on a real one. Shape: labgrid 26 labgrid/strategy/ubootstrategy.py (states,
``transition``, ``force``).
"""

from __future__ import annotations

import enum
import threading

import attr
from labgrid.factory import target_factory
from labgrid.strategy import Strategy, StrategyError
from labgrid.strategy.common import never_retry


class Status(enum.Enum):
    unknown = 0
    off = 1
    uboot = 2


@target_factory.reg_driver
@attr.s(eq=False)
class UBoot114Strategy(Strategy):
    """Power and console to reach U-Boot 1.1.4's prompt from power-off."""

    bindings = {
        "power": "PowerProtocol",
        "console": "ConsoleProtocol",
        "uboot": "UBoot114Driver",
    }

    status = attr.ib(default=Status.unknown)

    @never_retry
    def transition(self, status: Status | str) -> None:
        if not isinstance(status, Status):
            status = Status[status]
        if status == Status.unknown:
            raise StrategyError(f"can not transition to {status}")
        if status == self.status:
            return
        if status == Status.off:
            self.target.deactivate(self.console)
            self.target.activate(self.power)
            self.power.off()
        elif status == Status.uboot:
            self.transition(Status.off)
            self.target.activate(self.console)
            self._power_on_holding_the_key()
            self.target.activate(self.uboot)
        self.status = status

    def _power_on_holding_the_key(self) -> None:
        port = getattr(self.console, "serial", None)  # SerialDriver's pyserial port
        if port is None:
            self.power.on()
            return
        key = self.uboot.interrupt.encode("latin-1")
        stop = threading.Event()

        def hold() -> None:
            while not stop.wait(0.05):
                try:
                    port.write(key)
                except Exception:  # noqa: BLE001 - the console went away: stop holding
                    return

        holder = threading.Thread(target=hold, name="hold-interrupt-key", daemon=True)
        holder.start()
        try:
            self.power.on()
        finally:
            stop.set()
            holder.join()

    @never_retry
    def force(self, status: Status | str) -> None:
        """Take the target as being in ``status`` without changing anything."""
        if not isinstance(status, Status):
            status = Status[status]
        if status == Status.off:
            self.target.activate(self.power)
        elif status == Status.uboot:
            self.target.activate(self.uboot)
        else:
            raise StrategyError(f"can not force state {status}")
        self.status = status
