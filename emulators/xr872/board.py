"""The XF16 camera board: XR872 mask ROM, 1 MiB SPI NOR, the camera firmware.

Power-on sequence modelled (XRadio SDK bootloader, PRCM boot flag, and the
field report that a bad image leaves the ROM silently waiting for PhoenixMC):

1. The ROM reads and clears the PRCM boot flag. If the boot pins are strapped
   (``boot_pins=True``, the scenario switch and ``--boot-pins``) or the flag
   says "system update" (set by the firmware's ``upgrade`` or by the
   bootloader after a failed check), it enters its UART download mode.
2. Otherwise it checks the boot section (:func:`image.check_boot_section`);
   a bad one (bad magic, checksum, or an XR809 boot section) leaves it in UART
   download mode: recovery mode. The ROM prints nothing in either case.
3. The bootloader checks the rest of the chain (:func:`image.check_image`);
   a failure sets the "system update" flag and resets (``bl_upgrade``), so the
   unit again ends up in the ROM's UART mode, silently.
4. A valid image runs the firmware (:mod:`emulators.xr872.firmware`).

The UART is back at 115200 after every reset. SRAM is lost at power-off (a
warm reset keeps it, but nothing relies on that). :attr:`mode` tells the
harness where the unit is: ``"off"``, ``"rom"`` or ``"firmware"``.
"""

from __future__ import annotations

import argparse
from typing import Any

from emulators.device import Device, DeviceReset
from emulators.flash import FlashGeometry, NorFlash
from emulators.memory import SparseRam
from emulators.xr872 import profile as P
from emulators.xr872 import sysinfo as S
from emulators.xr872.brom import BootRom
from emulators.xr872.firmware import Firmware
from emulators.xr872.image import BootCheck, check_image, factory_image, find_text

BOOT_COLD = 0
BOOT_UPGRADE = 2  # PRCM_CPUA_BOOT_FROM_SYS_UPDATE


def factory_flash_image(seed: int) -> bytes:
    """The 1 MiB a new unit leaves the factory with: firmware plus its own sysinfo."""
    img = bytearray(factory_image("xr872"))
    sector = S.SysInfo.for_seed(seed).sector()
    img[P.SYSINFO_OFFSET : P.SYSINFO_OFFSET + len(sector)] = sector
    return bytes(img)


class XR872Device(Device):
    """An XF16 camera (XR872). Extra keyword: ``boot_pins`` (strap the ROM into UART
    mode); ``rom_fast_timeout`` (the ROM's inter-byte timeout in fast mode)."""

    board = "xr872"
    baud = P.ROM_BAUD

    def __init__(
        self, *, boot_pins: bool = False, rom_fast_timeout: float = 0.5, **kw: Any
    ) -> None:
        self.boot_pins = boot_pins
        self.rom_fast_timeout = rom_fast_timeout
        self.boot_flag = BOOT_COLD
        self.mode = "off"
        self.last_check: BootCheck | None = None
        self._cold = True
        self.rom: BootRom | None = None
        super().__init__(**kw)
        self.ram = SparseRam(P.SRAM_BASE, P.SRAM_SIZE, seed=self.seed)

    # -- Device hooks -----------------------------------------------------------
    @classmethod
    def flash_geometry(cls) -> FlashGeometry:
        return P.flash_geometry()

    def factory_flash(self, flash: NorFlash) -> None:
        flash.load(0, factory_flash_image(self.seed))

    def power_on(self) -> None:
        with self._state_lock:
            if not self.powered:
                self._cold = True
                self.boot_flag = BOOT_COLD  # the PRCM register does not survive power loss
        super().power_on()

    def power_off(self) -> None:
        super().power_off()
        self.mode = "off"

    def on_power_on(self) -> None:
        if self._cold:
            self.ram.clear()
            self._cold = False
        self.uart.set_baud(P.ROM_BAUD)
        self.mode = "booting"

    def run(self) -> None:
        flag, self.boot_flag = self.boot_flag, BOOT_COLD
        if self.boot_pins or flag == BOOT_UPGRADE:
            self._rom()
            return
        check = check_image(self.flash.read)
        self.last_check = check
        if not check.ok:
            self.transcript.note(f"boot: {check.stage} refused the image: {check.reason}")
            if check.stage == "rom":
                self._rom()
                return
            self.boot_flag = BOOT_UPGRADE  # the bootloader's bl_upgrade()
            raise DeviceReset()
        self.mode = "firmware"
        Firmware(
            self.uart,
            self.clock,
            self.flash,
            self.seed,
            find_text(self.flash.read, check.sections),
            self._set_upgrade,
        ).run()

    # -- helpers -------------------------------------------------------------------
    def _rom(self) -> None:
        self.mode = "rom"
        self.rom = BootRom(
            self.uart,
            self.clock,
            self.flash,
            self.ram,
            self.transcript,
            fast_timeout=self.rom_fast_timeout,
        )
        self.rom.serve()

    def _set_upgrade(self) -> None:
        self.boot_flag = BOOT_UPGRADE

    def identity(self) -> tuple[str, str, bool]:
        """(MAC, AP name, record valid) as the firmware would read them from flash now."""
        rec = S.parse(self.flash.read(P.SYSINFO_OFFSET, S.RECORD_SIZE))
        info = rec if rec is not None else S.SysInfo.for_seed(self.seed)
        return S.format_mac(info.mac), info.ap_name, rec is not None


def add_emulate_options(parser: argparse.ArgumentParser) -> None:
    """Board flags for ``camrescue emulate xr872``."""
    parser.add_argument(
        "--boot-pins",
        action="store_true",
        help="strap the boot pins: the ROM stays in its UART download mode (recovery mode)",
    )


def emulate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor keywords from the parsed ``add_emulate_options`` flags."""
    return {"boot_pins": bool(getattr(args, "boot_pins", False))}
