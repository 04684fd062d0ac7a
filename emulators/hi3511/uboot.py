"""The U-Boot 1.1.4 monitor running on the emulated Hi3511: state, address space, flash access.

Address space (REFERENCE.md): RAM bank 0 at 0xE0000000 (128 MB, sparse),
flash at 0x34000000 (16 MiB). Flash writes by ``cp`` go through the CFI
driver's checked write (``flash_write``: range, then protection, then word by
word with the not-erased check); TFTP downloads to flash are raw (see
:mod:`emulators.hi3511.cmd_net`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.device import DeviceReset
from emulators.flash import FlashNotErasedError, FlashProtectedError
from emulators.hi3511 import cmd_flash, cmd_mem, cmd_misc, cmd_net, profile
from emulators.hi3511.env import Environment
from emulators.hi3511.kernel import Linux
from emulators.hi3511.shell import Command, Shell

if TYPE_CHECKING:
    from emulators.hi3511.board import Hi3511Device

TABLE: dict[str, Command] = {
    c.name: c
    for c in [*cmd_mem.COMMANDS, *cmd_flash.COMMANDS, *cmd_net.COMMANDS, *cmd_misc.COMMANDS]
}


class UBoot:
    def __init__(self, dev: Hi3511Device) -> None:
        self.dev = dev
        self.con = dev.con
        self.clock = dev.clock
        self.flash = dev.flash
        self.ram = dev.ram
        self.netmap = dev.netmap
        self.table = TABLE
        self.env = Environment.defaults()
        self.base = 0
        self.load_addr = 0xE0008000
        self.had_ctrlc = False
        self.md_state = {"addr": 0, "size": 4, "length": 0x40}
        self.mm_state = {"addr": 0, "size": 4}
        self.shell = Shell(self, TABLE)

    # -- boot -------------------------------------------------------------------
    def start(self) -> None:
        """Power-on: protect the monitor, load the environment, banner, main loop."""
        f = self.flash
        for s in f.sectors_in(0, profile.MONITOR_LEN + profile.ENV_SECTOR_SIZE):
            f.protect(s, True)
        self.con.puts(profile.BANNER_HEAD)
        blob = f.read(profile.ENV_ADDR - profile.FLASH_BASE, profile.ENV_SIZE)
        env = Environment.decode(blob)
        if env is None:
            self.con.puts(profile.BAD_ENV_WARNING)
            env = Environment.defaults()
        self.env = env
        self.con.puts(profile.BANNER_TAIL)
        self.shell.main_loop()

    # -- environment --------------------------------------------------------------
    def getenv(self, name: str) -> str | None:
        return self.env.get(name)

    def setenv(self, name: str, value: str | None) -> None:
        self.env.set(name, value)

    # -- console --------------------------------------------------------------------
    def ctrlc(self) -> bool:
        if self.con.ctrlc():
            self.had_ctrlc = True
            return True
        return False

    def hang(self) -> None:
        """The CPU is gone (``loop``, ``go``, a panic): silent until reset or power cycle."""
        while True:
            self.con.uart.read(4096, timeout=None)

    def reset(self) -> None:
        raise DeviceReset()

    def boot_linux(self, hdr: object) -> None:
        Linux(self).boot()

    # -- address space ------------------------------------------------------------------
    def addr_in_flash(self, addr: int) -> bool:
        return profile.in_flash(addr)

    def mem_read(self, addr: int, length: int) -> bytes:
        out = bytearray()
        while length > 0:
            if profile.in_flash(addr):
                n = min(length, profile.FLASH_BASE + profile.FLASH_SIZE - addr)
                out += self.flash.read(addr - profile.FLASH_BASE, n)
            elif profile.in_ram(addr):
                n = min(length, profile.RAM_BASE + profile.RAM_SIZE - addr)
                out += self.ram.read(addr, n)
            else:
                n = length
                for lo in (profile.FLASH_BASE, profile.RAM_BASE):
                    if addr < lo:
                        n = min(n, lo - addr)
                out += bytes(n)
            addr = (addr + n) & 0xFFFFFFFF
            length -= n
        return bytes(out)

    def mem_write(self, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            a = (addr + pos) & 0xFFFFFFFF
            left = len(data) - pos
            if profile.in_ram(a):
                n = min(left, profile.RAM_BASE + profile.RAM_SIZE - a)
                self.ram.write(a, data[pos : pos + n])
            elif profile.in_flash(a):
                n = min(left, profile.FLASH_BASE + profile.FLASH_SIZE - a)
            else:
                n = left
                for lo in (profile.FLASH_BASE, profile.RAM_BASE):
                    if a < lo:
                        n = min(n, lo - a)
            pos += n

    def store_download(self, addr: int, data: bytes) -> None:
        """A TFTP block: raw AND into flash (the fork's direct flash TFTP), else memory."""
        if profile.in_flash(addr, len(data)):
            self.flash.program(addr - profile.FLASH_BASE, data)
        else:
            self.mem_write(addr, data)

    def flash_write(self, data: bytes, dest: int) -> str:
        """common/flash.c flash_write + cfi write_buff: '' on success, else flash_perror's text."""
        if not profile.in_flash(dest, len(data)):
            return "Outside available Flash\n"
        off = dest - profile.FLASH_BASE
        for s in self.flash.sectors_in(off, len(data)):
            if self.flash.is_protected(s):
                return "Can't write to protected Flash sectors\n"
        try:
            self.flash.program_checked(off, data, width=2)
        except FlashNotErasedError:
            return "Flash not Erased\n"
        except FlashProtectedError:
            return "Can't write to protected Flash sectors\n"
        return ""
