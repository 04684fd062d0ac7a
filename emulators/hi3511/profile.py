"""Fixed facts of the Hi3511 board of seed 000 (SmartEye/Wansview NCH-536MW).

Sources: the seed's transcript (banner, help listing, flash map, kernel
command line), REFERENCE.md (memory map), U-Boot 1.1.4 sources (flinfo,
environment layout).

Choices where the seed is silent (documented assumptions):

* Flash: one CFI bank of 16 MiB at 0x34000000 on a 16-bit bus, 128 uniform
  sectors of 128 KiB (a Spansion S29GL128-class part). 128 KiB matches the
  erase block mkfs.jffs2 is told to use for such parts.
* At power-on ``flash_init`` (drivers/cfi_flash.c) protects the sectors the
  monitor's code occupies (``monitor_flash_len``: 0x17540 bytes from the
  banner's ``U-Boot code: E0500000 -> E0517540``, so sector 0) and the
  environment sector (REFERENCE.md "Captured from the real program").
* Environment: a little-endian CRC32 of the data, then ``name=value\\0``
  pairs ending with an empty string. Its place depends on the variant.

Two U-Boot variants (``uboot_variant``), :class:`Variant`:

* ``hisilicon``: HiSilicon's tree (github zhhejun/u-boot-1.1.4,
  ``board/hi3511v110``; its ``tftp`` usage equals the seed's help listing):
  ``include/configs/hi3511v110.h`` gives CFG_CBSIZE 1024, CONFIG_HISILICON,
  CONFIG_ZERO_BOOTDELAY_CHECK, CONFIG_BOOTDELAY 2, CFG_ENV_OFFSET 0x40000 with
  CFG_ENV_SIZE 0x20000, CFG_FLASH_PROTECTION, CFG_FLASH_USE_BUFFER_WRITE,
  CONFIG_HW_WATCHDOG and CFG_CMDLINE_HISTORYS 8. The seed's ``Hit any key to stop
  autoboot:  0`` fits a saved ``bootdelay`` of 0 or of 1 (what a terminal shows once
  the second has passed); both are modelled (harness.firmware.hi3511 saves 1).
* ``upstream``: U-Boot 1.1.4 as released (REFERENCE.md "U-Boot 1.1.4 console
  behaviour (upstream)"), with the seed's banner, prompt and help listing;
  environment at 0x80000, CFG_ENV_SIZE 0x10000 (assumption: a 512 KiB monitor
  area, then the environment sector); ``tftp addr file len`` uploads are the
  fork's addition, modelled with the download's texts (assumption).

Not modelled (the seed's board does not show them, so the seed wins): the public
tree's ``### main_loop:bootcmd=...`` debug line (common/main.c, a 2010 commit),
its CONFIG_IDENT_STRING `` Version: uboot-110v8001-1.09`` after the version, and
the automatic erase inside ``write_buff`` marked "define by yaxon" (REFERENCE.md:
the seed's CRC errors show the board has none).
"""

from __future__ import annotations

from dataclasses import dataclass

from emulators.flash import FlashGeometry

FLASH_BASE = 0x34000000
FLASH_SIZE = 16 << 20
SECTOR_SIZE = 0x20000
RAM_BASE = 0xE0000000
RAM_SIZE = 128 << 20

MONITOR_BASE = FLASH_BASE
MONITOR_LEN = 0x17540  # monitor_flash_len: _bss_start - _armboot_start (the banner)

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
    ("bootdelay", "1"),  # the variant's factory value replaces it
    ("baudrate", "115200"),
    ("ethaddr", "00:25:07:00:00:3b"),
    ("ipaddr", "192.168.1.10"),
    ("serverip", "192.168.1.1"),
    ("netmask", "255.255.255.0"),
    ("stdin", "serial"),
    ("stdout", "serial"),
    ("stderr", "serial"),
)

# The CFI query of the S29GL128-class part (assumption: Spansion IDs, AMD command set).
ERASE_TIMEOUT_MS = 4096
WRITE_TIMEOUT_MS = 1
BUFFER_WRITE_TIMEOUT_MS = 3
BUFFER_SIZE = 32  # bytes of the chip's write buffer
MANUFACTURER_ID = 0x01
DEVICE_ID = 0x7E
DEVICE_ID2 = 0x2101
FLASH_ID = 0x01000000  # FLASH_MAN_CFI, what ``Flash ID %08X`` prints

# Wall time from power-on to the autoboot check in real-time mode (boot ROM, DDR and
# flash set-up, relocation): an assumption; the banner's own pacing comes on top.
BOOT_TIME = 0.3


@dataclass(frozen=True)
class Variant:
    """What differs between the two U-Boot trees; every field names its source."""

    name: str
    env_offset: int  # CFG_ENV_OFFSET
    env_size: int  # CFG_ENV_SIZE (the data area holds env_size - 4 bytes)
    cbsize: int  # CFG_CBSIZE
    factory_bootdelay: str  # the bootdelay the factory saved (harness.firmware.hi3511)
    config_bootdelay: int  # CONFIG_BOOTDELAY, when bootdelay is unset
    tftp_timeout: float  # seconds before a TFTP resend (net/tftp.c TIMEOUT)
    tftp_timeout_option: int  # the ``timeout`` option in RRQ/WRQ
    tftp_timeout_count: int  # timeouts before "Retry count exceeded"

    @property
    def hisilicon(self) -> bool:
        return self.name == "hisilicon"

    @property
    def env_addr(self) -> int:
        return FLASH_BASE + self.env_offset


HISILICON = Variant(
    name="hisilicon",
    env_offset=0x40000,  # include/configs/hi3511v110.h CFG_ENV_OFFSET
    env_size=0x20000,  # include/configs/hi3511v110.h CFG_ENV_SIZE
    cbsize=1024,  # include/configs/hi3511v110.h CFG_CBSIZE
    factory_bootdelay="1",  # harness.firmware.hi3511's saved value (0 also fits the seed)
    config_bootdelay=2,  # include/configs/hi3511v110.h CONFIG_BOOTDELAY
    tftp_timeout=3.0,  # net/tftp.c TIMEOUT (3*CFG_HZ)
    tftp_timeout_option=20,  # net/tftp.c SERVER_TIME_OUT
    tftp_timeout_count=10,  # net/tftp.c (SERVER_TIME_OUT*3/2)/3
)
UPSTREAM = Variant(
    name="upstream",
    env_offset=0x80000,
    env_size=0x10000,
    cbsize=256,
    factory_bootdelay="1",
    config_bootdelay=1,
    tftp_timeout=5.0,  # U-Boot 1.1.4 net/tftp.c TIMEOUT
    tftp_timeout_option=5,  # REFERENCE.md: the RRQ carries "timeout" 5
    tftp_timeout_count=10,
)
VARIANTS = {v.name: v for v in (HISILICON, UPSTREAM)}
DEFAULT_VARIANT = "hisilicon"


def variant(name: str | None) -> Variant:
    if name is None:
        return VARIANTS[DEFAULT_VARIANT]
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown uboot_variant {name!r}: one of {', '.join(sorted(VARIANTS))}"
        ) from None


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
