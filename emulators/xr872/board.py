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

The UART is back at 115200 after every reset. Each unit has its own 128 eFuse
bytes (chip id, eFuse MAC: :func:`emulators.xr872.sysinfo.unit_efuse`), which
the ROM serves through its eFuse registers and the firmware uses for the MAC.

Profile options (keywords, scenario ``options:``, ``camrescue emulate`` flags):

* ``mac_source``: ``chipid`` (the SDK default ``PRJCONF_MAC_ADDR_SOURCE``: the
  MAC comes from the chip at every boot), ``flash`` (the MAC of the sysinfo
  record in flash, so a clone carries the donor's), ``efuse`` or ``code``.
  Which one the stock XF16 firmware uses is not known (REFERENCE.md).
* ``adapter_max_baud``: simulates the host's USB-TTL adapter. A host rate
  above it is not what goes on the wire: the adapter runs at its own top rate
  instead (assumption: what a given adapter does with a rate it cannot make
  varies), so both ends see garbage. 0 (default): the adapter does any rate. SRAM is lost at power-off (a
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

MAC_SOURCE_NAMES = tuple(S.MAC_SOURCES)

BOOT_COLD = 0
BOOT_UPGRADE = 2  # PRCM_CPUA_BOOT_FROM_SYS_UPDATE


def factory_flash_image(seed: int, mac_source: str = "chipid") -> bytes:
    """The 1 MiB of a unit whose firmware has booted once: the image plus the sysinfo
    its first boot saved (defaults, the MAC per ``mac_source``)."""
    img = bytearray(factory_image("xr872"))
    area = S.factory_sysinfo_area(seed, S.MAC_SOURCES[mac_source])
    img[P.SYSINFO_OFFSET : P.SYSINFO_OFFSET + len(area)] = area
    return bytes(img)


class XR872Device(Device):
    """An XF16 camera (XR872). Extra keywords: ``boot_pins`` (strap the ROM into UART
    mode); ``rom_fast_timeout`` (the ROM's inter-byte timeout in fast mode);
    ``mac_source`` and ``adapter_max_baud`` (see the module docstring)."""

    board = "xr872"
    baud = P.ROM_BAUD

    def __init__(
        self,
        *,
        boot_pins: bool = False,
        rom_fast_timeout: float = 0.5,
        mac_source: str = "chipid",
        adapter_max_baud: int = 0,
        **kw: Any,
    ) -> None:
        if mac_source not in S.MAC_SOURCES:
            raise ValueError(f"mac_source must be one of {', '.join(MAC_SOURCE_NAMES)}")
        self.boot_pins = boot_pins
        self.mac_source = mac_source
        self.adapter_max_baud = int(adapter_max_baud or 0)
        self.firmware: Firmware | None = None
        self.rom_fast_timeout = rom_fast_timeout
        self.boot_flag = BOOT_COLD
        self.mode = "off"
        self.last_check: BootCheck | None = None
        self._cold = True
        self.rom: BootRom | None = None
        super().__init__(**kw)
        self.efuse = S.unit_efuse(self.seed)
        self.ram = SparseRam(P.SRAM_BASE, P.SRAM_SIZE, seed=self.seed)
        if self.adapter_max_baud:
            self._limit_adapter(self.adapter_max_baud)

    def _limit_adapter(self, top: int) -> None:
        """The host's adapter cannot go above ``top``: the wire runs at ``top`` instead."""
        real = self.uart.host_baud

        def wire_baud() -> int:
            baud = real()
            return top if baud > top else baud

        self.uart.host_baud = wire_baud  # type: ignore[method-assign]

    # -- Device hooks -----------------------------------------------------------
    @classmethod
    def flash_geometry(cls) -> FlashGeometry:
        return P.flash_geometry()

    def factory_flash(self, flash: NorFlash) -> None:
        flash.load(0, factory_flash_image(self.seed, self.mac_source))

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
        self.firmware = Firmware(
            self.uart,
            self.clock,
            self.flash,
            self.seed,
            find_text(self.flash.read, check.sections),
            self._set_upgrade,
            efuse=self.efuse,
            mac_source=S.MAC_SOURCES[self.mac_source],
            boot_count=self.boots,
        )
        self.firmware.run()

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
            efuse=self.efuse,
        )
        self.rom.serve()

    def _set_upgrade(self) -> None:
        self.boot_flag = BOOT_UPGRADE

    def mac_in_use(self) -> str | None:
        """The MAC the running firmware uses (``in use:`` in its boot log), if it runs."""
        fw = self.firmware
        return S.format_mac(fw.info.mac) if fw is not None and self.mode == "firmware" else None

    def sysinfo_mac(self) -> str | None:
        """The MAC in the sysinfo record in flash now, or None when FDCM finds none."""
        raw = S.fdcm_read(self.flash.read(P.SYSINFO_OFFSET, P.SYSINFO_SIZE))
        return None if raw is None else S.format_mac(raw[S.OFF_MAC : S.OFF_MAC + 6])


def add_emulate_options(parser: argparse.ArgumentParser) -> None:
    """Board flags for ``camrescue emulate xr872``."""
    parser.add_argument(
        "--boot-pins",
        action="store_true",
        help="strap the boot pins: the ROM stays in its UART download mode (recovery mode)",
    )
    parser.add_argument(
        "--mac-source",
        choices=MAC_SOURCE_NAMES,
        default="chipid",
        help="where the firmware takes its MAC: chipid (the SDK default, from the chip at "
        "every boot), flash (from sysinfo), efuse, code",
    )
    parser.add_argument(
        "--adapter-max-baud",
        type=int,
        default=0,
        help="simulate a USB-TTL adapter that cannot go above this rate (0: any rate)",
    )


def emulate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor keywords from the parsed ``add_emulate_options`` flags."""
    return {
        "boot_pins": bool(getattr(args, "boot_pins", False)),
        "mac_source": getattr(args, "mac_source", "chipid"),
        "adapter_max_baud": int(getattr(args, "adapter_max_baud", 0) or 0),
    }
