"""The Winbond W90P745 camera board: the boot loader of seed 001 on the foundation.

Power-on (see :mod:`emulators.w90p745.boot`): the loader protects its flash
block, copies itself to RAM at 0, reads BOOT INFO (recreating it when
missing), prints the banner and configuration, and opens the ESC window;
ESC gives the ``bootloader > `` shell (:mod:`emulators.w90p745.commands`),
otherwise it boots the active images. The UART always starts at 115200 (a
``B`` change lasts until the next power-on; the configuration's Baud Rate is
only displayed).
"""

from __future__ import annotations

from emulators.device import Device
from emulators.flash import FlashGeometry, NorFlash
from emulators.memory import SparseRam
from emulators.w90p745 import boot
from emulators.w90p745 import profile as P
from emulators.w90p745.bus import Bus
from emulators.w90p745.commands import Shell
from emulators.w90p745.imagetable import build_factory, find, image_data


class W90P745Device(Device):
    """A W90P745 camera: 16 MiB RAM, 2 MiB NOR at 0x7F000000, Winbond loader."""

    board = "w90p745"
    baud = P.BAUD

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.ram = SparseRam(P.RAM_BASE, P.RAM_SIZE, seed=self.seed)
        self.bus = Bus(self.ram, self.flash)
        self.config = P.FACTORY_CONFIG
        self.cache = True
        self.d_next = 0
        self.shell = Shell(self)

    @classmethod
    def flash_geometry(cls) -> FlashGeometry:
        return P.flash_geometry()

    def factory_flash(self, flash: NorFlash) -> None:
        build_factory(flash)

    def on_power_on(self) -> None:
        self.ram.clear()
        self.flash.protect(P.LOADER_BLOCK, True)
        self.ram.write(0, self.flash.read(0, P.BLOCK_SIZE))
        self.d_next = 0
        self.uart.set_baud(P.BAUD)

    def load_config(self) -> None:
        rec = find(self.flash, 0)
        data = image_data(self.flash, rec) if rec is not None else None
        self.config = P.BootConfig.unpack(data or b"")
        self.cache = self.config.cache == 1

    def run(self) -> None:
        boot.ensure_bootinfo(self)
        self.load_config()
        boot.banner(self)
        if not boot.esc_window(self):
            self.con.puts("\n")
            boot.boot_images(self)
        self.con.puts("\n\n")  # sh(): uprintf("\n\n") before the first prompt
        self.shell.loop()
