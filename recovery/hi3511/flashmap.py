"""The Hi3511 camera's memory map, and the checks on what the engine types into U-Boot.

Facts from the seed (000) and REFERENCE.md: console 115200 8N1; RAM bank 0 at
0xE0000000 (128 MB); 16 MiB NOR at 0x34000000 with U-Boot at 0x34000000, the
kernel uImage at 0x34100000, the JFFS2 root at 0x34200000 (13 MiB) and the
settings at 0x34F00000 (1 MiB). The partitions are named as the camera names them
(its kernel's ``mtdparts``): see :data:`REGIONS`.

RAM staging: images are downloaded to 0xE1000000 (:data:`LOAD_ADDRESS`), 16 MiB
above the RAM base, clear of U-Boot's code and BSS at 0xE0500000..0xE051E2BC
(banner) and of its malloc area and stack just below 0xE0500000, and of the
kernel's load address 0xE0008000; even a 16 MiB image ends at 0xE2000000, far
inside the 128 MB bank.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from recovery.errors import ImageError, UsageError

BOARD = "hi3511"
BAUD = 115200

FLASH_BASE = 0x34000000
FLASH_SIZE = 0x1000000
RAM_BASE = 0xE0000000
RAM_SIZE = 128 << 20
SECTOR_SIZE = 0x20000  # checked against flinfo at run time
KERNEL_ADDRESS = 0x34100000
LOAD_ADDRESS = 0xE1000000
# U-Boot's code/BSS (banner) with its malloc area and stack below: never load there.
UBOOT_RAM = (0xE0400000, 0xE0520000)


@dataclass(frozen=True)
class Region:
    name: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def describe(self) -> str:
        return f"{self.name} {self.start:#010x}..{self.end - 1:#010x}"


# One vocabulary (issue 20) for info, options, JSON, manifests and scenarios: the names
# the camera itself gives its flash, the kernel command line of the seed (000) and
# REFERENCE.md, ``mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)``; its
# first partition "boot" holds two things the engine writes apart, U-Boot (``uboot``,
# "0x34000000 is the U-Boot start area" in the seed) and the kernel uImage (``kernel``,
# ``bootm 0x34100000``).
REGIONS: dict[str, Region] = {
    "uboot": Region("uboot", 0x34000000, 0x100000),
    "kernel": Region("kernel", 0x34100000, 0x100000),
    "rootfs": Region("rootfs", 0x34200000, 0xD00000),
    "setting": Region("setting", 0x34F00000, 0x100000),
}
# names used before, still accepted (with a note) on the command line and in manifests
OLD_NAMES = {"bootloader": "uboot", "settings": "setting"}
JFFS2_REGIONS = ("rootfs", "setting")
DEFAULT_BACKUP = ("kernel", "rootfs", "setting")


def region_name(name: str, *, note: bool = True) -> str:
    """``name``, or the current name of an old one (with a one-line note on stderr)."""
    new = OLD_NAMES.get(name)
    if new is None:
        return name
    if note:
        print(f"note: '{name}' is now called '{new}'", file=sys.stderr)
    return new


_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*(?:/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$")


def check_name(name: str, what: str = "file name") -> str:
    """A name U-Boot's parser reads as one word: letters, digits, ``._+-`` and ``/``."""
    if len(name) > 127 or not _NAME_RE.match(name) or ".." in name.split("/"):
        raise ImageError(
            f"unsafe {what} {name!r}: U-Boot's command parser could read it as more than one "
            "word or command (only letters, digits, '.', '_', '+', '-' and '/' are allowed)",
            flash_state="untouched",
            hint="rename the file, or pass --remote-name with a plain name",
        )
    return name


def in_flash(start: int, size: int) -> bool:
    return FLASH_BASE <= start and start + size <= FLASH_BASE + FLASH_SIZE


def check_load_address(addr: int, size: int) -> None:
    if addr % 4 or not (RAM_BASE <= addr and addr + size <= RAM_BASE + RAM_SIZE):
        raise UsageError(
            f"load address {addr:#x}+{size:#x} is not a word-aligned range in RAM "
            f"({RAM_BASE:#x}..{RAM_BASE + RAM_SIZE - 1:#x})"
        )
    if addr < UBOOT_RAM[1] and addr + size > UBOOT_RAM[0]:
        raise UsageError(
            f"load address {addr:#x}+{size:#x} overlaps U-Boot in RAM "
            f"({UBOOT_RAM[0]:#x}..{UBOOT_RAM[1]:#x}); use the default {LOAD_ADDRESS:#x}"
        )
