"""The emulated Hi3511 board: flash, RAM, network mapping, and U-Boot at power-on.

A new blank flash (no ``initial_flash``, no existing flash file) holds only
0xFF: U-Boot's environment then has a bad CRC and ``bootm`` finds no image.
The harness fills flash with realistic firmware from
:mod:`harness.firmware.hi3511` (``initial_flash`` or ``camrescue emulate
hi3511 --flash FILE``); the emulator itself carries no firmware builder, so
it never shares a JFFS2 writer with the code that checks it.

``uboot_variant`` picks the boot loader: ``hisilicon`` (HiSilicon's tree, the
seed's board) or ``upstream`` (U-Boot 1.1.4 as released); see
:mod:`emulators.hi3511.profile`. ``idle_bootcmd`` (seconds, default off) models
CONFIG_BOOT_RETRY_TIME of include/configs/hi3511v110.h (60 there): with no input
for that long at the prompt, U-Boot prints ``\nTimed out waiting for command\n``
and runs ``bootcmd``. The idle time is wall time in both modes (it is the host's
silence, not device work).
"""

from __future__ import annotations

import argparse
from typing import Any

from emulators.device import Device
from emulators.flash import FlashGeometry
from emulators.hi3511 import profile
from emulators.hi3511.console import UBootConsole
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
        uboot_variant: str | None = None,
        idle_bootcmd: float | None = None,
        **kw: Any,
    ) -> None:
        self.variant = profile.variant(uboot_variant)
        self.idle_bootcmd = idle_bootcmd
        self.netmap = NetMap(dict(net_map or {}), tftp_server)
        self.ram = SparseRam(profile.RAM_BASE, profile.RAM_SIZE, seed=kw.get("seed", 0))
        self.last_scan: ScanResult | None = None
        super().__init__(**kw)
        self.con: UBootConsole = UBootConsole(self.uart, self.variant)

    @classmethod
    def flash_geometry(cls) -> FlashGeometry:
        return profile.flash_geometry()

    def on_power_on(self) -> None:
        self.ram.clear()
        self.con = UBootConsole(self.uart, self.variant)  # the history is in RAM
        self.last_scan = None
        for s in range(self.flash.sector_count):
            self.flash.protect(s, False)

    def run(self) -> None:
        from emulators.hi3511.uboot import UBoot

        UBoot(self).start()

    def boot_log(self) -> str:
        """Everything the device has printed on its link (the transcript), as text."""
        return self.transcript.device_output().decode("latin-1")


def add_emulate_options(parser: argparse.ArgumentParser) -> None:
    """``camrescue emulate hi3511`` flags (harness/cli.py calls this)."""
    parser.add_argument(
        "--uboot",
        choices=sorted(profile.VARIANTS),
        default=profile.DEFAULT_VARIANT,
        help=f"which U-Boot 1.1.4 tree the board runs (default {profile.DEFAULT_VARIANT})",
    )
    parser.add_argument(
        "--idle-bootcmd",
        type=float,
        metavar="S",
        help="run bootcmd after S seconds without input at the prompt (the "
        "HiSilicon config has 60); default off",
    )


def emulate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor keywords from the parsed ``add_emulate_options`` flags."""
    return {"uboot_variant": args.uboot, "idle_bootcmd": args.idle_bootcmd}
