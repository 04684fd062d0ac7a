"""The U-Boot 1.1.4 monitor running on the emulated Hi3511: state, address space, flash access.

Sources: REFERENCE.md, U-Boot 1.1.4 ``common/flash.c``, github zhhejun/u-boot-1.1.4 ``drivers/cfi_flash.c``.

Address space (REFERENCE.md): RAM bank 0 at 0xE0000000 (128 MB, sparse),
flash at 0x34000000 (16 MiB). Flash writes by ``cp`` and TFTP downloads go
through common/flash.c ``flash_write`` (range, then protection: ``Can't write
to protected Flash sectors``) and drivers/cfi_flash.c ``write_buff`` with
CFG_FLASH_USE_BUFFER_WRITE (REFERENCE.md "Captured from the real program";
github zhhejun/u-boot-1.1.4 drivers/cfi_flash.c): an unaligned first or last
16-bit word goes through ``flash_write_cfiword``, which checks that the cells
are erased enough (``Flash not Erased``); the aligned bulk goes through the
chip's write buffer, which has no such check, so old and new data are ANDed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from emulators.device import DeviceReset
from emulators.flash import FlashNotErasedError, FlashProtectedError
from emulators.hi3511 import cmd_flash, cmd_mem, cmd_misc, cmd_net, profile
from emulators.hi3511.console import UBootConsole
from emulators.hi3511.env import Environment
from emulators.hi3511.kernel import Linux
from emulators.hi3511.progressbar import ProgressBar
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
        self.variant = dev.variant
        self.con: UBootConsole = dev.con
        self.clock = dev.clock
        self.flash = dev.flash
        self.ram = dev.ram
        self.netmap = dev.netmap
        self.table = dict(TABLE)
        if self.variant.hisilicon:
            for name, (use, text) in cmd_net.HISILICON_TEXTS.items():
                self.table[name] = dataclasses.replace(TABLE[name], usage=use, help=text)
        self.env = Environment.defaults(self.variant)
        self.base = 0
        self.upload_size = 0  # net/tftp.c keeps it from one tftp command to the next
        self.upload_addr = 0xE0008000
        self.load_addr = 0xE0008000
        self.had_ctrlc = False
        self.md_state = {"addr": 0, "size": 4, "length": 0x40}
        self.mm_state = {"addr": 0, "size": 4}
        self.shell = Shell(self, self.table)
        self.bar = ProgressBar()

    # -- boot -------------------------------------------------------------------
    def start(self) -> None:
        """Power-on: protect the monitor and environment, load the environment, banner,
        main loop."""
        f = self.flash
        v = self.variant
        for s in f.sectors_in(0, profile.MONITOR_LEN):
            f.protect(s, True)
        for s in f.sectors_in(v.env_offset, profile.SECTOR_SIZE):
            f.protect(s, True)
        self.con.puts(profile.BANNER_HEAD)
        env = Environment.decode(f.read(v.env_offset, v.env_size), v.env_size)
        if env is None:
            self.con.puts(profile.BAD_ENV_WARNING)
            env = Environment.defaults(v)
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

    def store_download(self, addr: int, data: bytes) -> str:
        """A TFTP block (net/tftp.c store_block): into flash through ``flash_write``
        (quietly), else memory. Returns flash_perror's text, '' when stored."""
        if profile.in_flash(addr):
            return self.flash_write(data, addr)
        self.mem_write(addr, data)
        return ""

    def flash_write(self, data: bytes, dest: int, quiet: bool = True) -> str:
        """common/flash.c flash_write + cfi_flash.c write_buff: '' on success, else
        flash_perror's text. Not ``quiet`` (``cp``), HiSilicon's tree prints ``Flash ID
        %08X`` and a progress bar over the bulk, redrawn every 4 KiB of buffered writes
        (a bulk that does not start on a write-buffer boundary never hits a 4 KiB count,
        so it shows only its end)."""
        if not data:
            return ""
        if not profile.in_flash(dest, len(data)):
            return "Outside available Flash\n"
        off = dest - profile.FLASH_BASE
        f = self.flash
        for s in f.sectors_in(off, len(data)):
            if f.is_protected(s):
                return "Can't write to protected Flash sectors\n"
        loud = not quiet and self.variant.hisilicon
        if loud:
            self.con.puts(f"Flash ID {profile.FLASH_ID:08X}\n")
        width = 2  # the 16-bit port
        end = off + len(data)
        bulk = min(end, -(-off // width) * width)
        tail = max(bulk, end - end % width)
        base = profile.FLASH_BASE
        try:
            if bulk > off:  # unaligned start: one checked word (flash_write_cfiword)
                f.program_checked(off, data[: bulk - off], width=width)
            if loud:
                self.con.puts(self.bar.init(base + bulk, base + end, 20))
            aligned = bulk % profile.BUFFER_SIZE == 0
            pos = bulk
            while pos < tail:  # flash_write_cfibuffer: no erased check
                n = min(tail - pos, 4096 - (pos - bulk) % 4096)
                f.program(pos, data[pos - off : pos - off + n])
                pos += n
                if loud and aligned and (pos - bulk) % 4096 == 0:
                    self.con.puts(self.bar.show(base + pos))
            if loud:
                self.con.puts(self.bar.show(base + end) + "\n")
            if end > tail:  # unaligned tail: one checked word
                f.program_checked(tail, data[tail - off :], width=width)
        except FlashNotErasedError:
            return "Flash not Erased\n"
        except FlashProtectedError:
            return "Can't write to protected Flash sectors\n"
        return ""
