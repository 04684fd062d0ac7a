"""The emulated Hi3511 board: flash, RAM, network mapping, and U-Boot at power-on.

A new blank flash (no ``initial_flash``, no existing flash file) holds only
0xFF: U-Boot's environment then has a bad CRC and ``bootm`` finds no image.
The harness fills flash with realistic firmware from
:mod:`harness.firmware.hi3511` (``initial_flash`` or ``camrescue emulate
hi3511 --flash FILE``); the emulator itself carries no firmware builder, so
it never shares a JFFS2 writer with the code that checks it.
"""

from __future__ import annotations

from typing import Any

from emulators.device import Device
from emulators.flash import FlashGeometry
from emulators.hi3511 import profile
from emulators.hi3511.jffs2scan import ScanResult
from emulators.hi3511.net import NetMap
from emulators.memory import SparseRam


class Hi3511Device(Device):
    board = "hi3511"
    baud = 115200

    def __init__(
        self,
        *,
        tftp_server: tuple[str, int] | None = None,
        net_map: dict[str, tuple[str, int]] | None = None,
        **kw: Any,
    ) -> None:
        self.netmap = NetMap(dict(net_map or {}), tftp_server)
        self.ram = SparseRam(profile.RAM_BASE, profile.RAM_SIZE, seed=kw.get("seed", 0))
        self.last_scan: ScanResult | None = None
        super().__init__(**kw)

    @classmethod
    def flash_geometry(cls) -> FlashGeometry:
        return profile.flash_geometry()

    def on_power_on(self) -> None:
        self.ram.clear()
        self.last_scan = None
        for s in range(self.flash.sector_count):
            self.flash.protect(s, False)

    def run(self) -> None:
        from emulators.hi3511.uboot import UBoot

        UBoot(self).start()

    def boot_log(self) -> str:
        """Everything the device has printed on its link (the transcript), as text."""
        return self.transcript.device_output().decode("latin-1")
