"""The CPU's view of memory as the loader's D/E/CP/MSET commands see it.

Sources: REFERENCE.md's W90P745 memory map and a real unit's transcript (openipcam.com topic 84); the flash-destination message is an assumption (ours).

* 0x00000000-0x00FFFFFF: SDRAM (:class:`~emulators.memory.SparseRam`).
* 0x7F000000-0x7F1FFFFF: the NOR flash, read as memory. A plain CPU write to
  NOR in read-array mode does not change it (programming needs the chip's
  command sequence, which only FX/SET/DEL issue), so E/MSET/CP refuse a flash
  destination with ``ERROR: Address 0x%08X is in flash`` (message ours).
* Anything else: the ARM7 gets a data abort. The loader's handler prints
  ``ERROR: Data Abort @ pc=0x%08X`` (the text of a real unit's transcript,
  openipcam.com topic 84) and returns to the prompt; the pc is a fixed
  address inside the emulated loader's memory routines.
"""

from __future__ import annotations

from emulators.flash import NorFlash
from emulators.memory import SparseRam
from emulators.w90p745 import profile as P

ABORT_PC = 0x00001680


class DataAbort(Exception):
    def __init__(self, addr: int) -> None:
        super().__init__(f"ERROR: Data Abort @ pc=0x{ABORT_PC:08X}")
        self.addr = addr


class FlashWrite(Exception):
    def __init__(self, addr: int) -> None:
        super().__init__(f"ERROR: Address 0x{addr:08X} is in flash")
        self.addr = addr


class Bus:
    def __init__(self, ram: SparseRam, flash: NorFlash) -> None:
        self.ram = ram
        self.flash = flash

    @staticmethod
    def in_flash(addr: int, length: int = 1) -> bool:
        return P.FLASH_BASE <= addr and addr + length <= P.FLASH_BASE + P.FLASH_SIZE

    def in_ram(self, addr: int, length: int = 1) -> bool:
        return self.ram.contains(addr, length)

    def read(self, addr: int, length: int) -> bytes:
        if length <= 0:
            return b""
        if self.in_ram(addr, length):
            return self.ram.read(addr, length)
        if self.in_flash(addr, length):
            return self.flash.read(addr - P.FLASH_BASE, length)
        raise DataAbort(addr)

    def check_write(self, addr: int, length: int) -> None:
        """Raise what a write of ``length`` bytes at ``addr`` would raise."""
        if length <= 0 or self.in_ram(addr, length):
            return
        if self.in_flash(addr) or self.in_flash(addr + length - 1):
            raise FlashWrite(addr)
        raise DataAbort(addr)

    def write(self, addr: int, data: bytes) -> None:
        self.check_write(addr, len(data))
        if data:
            self.ram.write(addr, data)
