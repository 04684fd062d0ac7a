"""Fixed facts of the Hi3511 board of seed 000 (SmartEye/Wansview NCH-536MW).

Sources: the seed's transcript (banner, help listing, flash map, kernel
command line), REFERENCE.md (memory map), U-Boot 1.1.4 sources (flinfo,
environment layout).

Choices where the seed is silent (documented assumptions):

* Flash: one CFI bank of 16 MiB at 0x34000000 on a 16-bit bus, 128 uniform
  sectors of 128 KiB (a Spansion S29GL128-class part). 128 KiB matches the
  erase block mkfs.jffs2 is told to use for such parts.
* Monitor 0x34000000..0x3407FFFF (4 sectors) and the environment sector
  0x34080000..0x3409FFFF are protected at power-on, as U-Boot's flash_init
  protects CFG_MONITOR_BASE..+CFG_MONITOR_LEN and the environment sector.
* Environment: CFG_ENV_SIZE 0x10000 at 0x34080000: a little-endian CRC32 of
  the data, then ``name=value\\0`` pairs ending with an empty string.
* The ``tftp`` help text and the upload output are the HiSilicon fork's
  addition; no document shows them, so they follow the download's format.
"""

from __future__ import annotations

from emulators.flash import FlashGeometry

FLASH_BASE = 0x34000000
FLASH_SIZE = 16 << 20
SECTOR_SIZE = 0x20000
RAM_BASE = 0xE0000000
RAM_SIZE = 128 << 20

MONITOR_BASE = FLASH_BASE
MONITOR_LEN = 0x80000
ENV_ADDR = 0x34080000
ENV_SECTOR_SIZE = SECTOR_SIZE
ENV_SIZE = 0x10000  # CFG_ENV_SIZE; the data area holds ENV_SIZE - 4 bytes

KERNEL_ADDR = 0x34100000
ROOT_ADDR = 0x34200000
ROOT_SIZE = 0xD00000
SETTINGS_ADDR = 0x34F00000
SETTINGS_SIZE = 0x100000

PARTITIONS = (
    ("boot", 0x000000, 0x200000),
    ("rootfs", 0x200000, 0xD00000),
    ("setting", 0xF00000, 0x100000),
)

PROMPT = "hilinux # "
CBSIZE = 256
MAXARGS = 16

VERSION_STRING = "U-Boot 1.1.4 (Apr  8 2009 - 11:41:01)"

BANNER_HEAD = (
    f"{VERSION_STRING}\n"
    "U-Boot code: E0500000 -> E0517540  BSS: -> E051E2BC\n"
    " HI_VERSION=U_BOOT_1_1_4-M08C0305B0301 @Hi3511v110_OSDrv_1_0_0_7 2009-03-18 20:44:35\n"
    "RAM Configuration:\n"
    "Bank #0: e0000000 128 MB\n"
    "Flash: 16 MB\n"
)
BANNER_TAIL = "In:    serial\nOut:   serial\nErr:   serial\nMAC:   00-25-07-00-00-3B\n"
BAD_ENV_WARNING = "*** Warning - bad CRC, using default environment\n\n"

BOOTARGS = (
    "mem=72M console=ttyAMA0,115200 root=1f01 rootfstype=jffs2 "
    "mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)"
)

DEFAULT_ENV: tuple[tuple[str, str], ...] = (
    ("bootargs", BOOTARGS),
    ("bootcmd", "bootm 0x34100000"),
    ("bootdelay", "1"),
    ("baudrate", "115200"),
    ("ethaddr", "00:25:07:00:00:3b"),
    ("ipaddr", "192.168.1.10"),
    ("serverip", "192.168.1.1"),
    ("netmask", "255.255.255.0"),
    ("stdin", "serial"),
    ("stdout", "serial"),
    ("stderr", "serial"),
)

FLINFO_TIMEOUTS = (
    " Erase timeout 4096 ms, write timeout 1 ms, buffer write timeout 3 ms, buffer size 32\n"
)


def flash_geometry() -> FlashGeometry:
    # S29GL128-class timing: 128 KiB sector erase ~0.5 s typ, word program ~60 us
    # (30 us per byte on a 16-bit bus).
    return FlashGeometry.uniform(
        FLASH_SIZE, SECTOR_SIZE, erase_time=0.5, program_time=30e-6, name="S29GL128"
    )


def in_flash(addr: int, length: int = 1) -> bool:
    return FLASH_BASE <= addr and addr + length <= FLASH_BASE + FLASH_SIZE


def in_ram(addr: int, length: int = 1) -> bool:
    return RAM_BASE <= addr and addr + length <= RAM_BASE + RAM_SIZE
