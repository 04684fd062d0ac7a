"""Flash images of the Hi3511 camera (Wansview NCH-536MW family, seed 000).

Layout, from the seed (offsets relative to the flash base 0x34000000) and the
kernel command line ``mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)``:

=========  =====================  =================================================
offset     size                   content
=========  =====================  =================================================
0x000000   0x100000 (boot, 1/2)   U-Boot 1.1.4; the rest of the area is 0xFF
0x100000   0x100000 (boot, 2/2)   kernel uImage "Linux-2.6.14", load/entry 0xE0008000
0x200000   0xD00000 (rootfs)      JFFS2 root (erase size 0x20000), then 0xFF
0xF00000   0x100000 (setting)     a small JFFS2 with the camera's settings, then 0xFF
=========  =====================  =================================================

Assumptions (the seed is silent on them):

* Sectors are a uniform 128 KiB (128 sectors), the JFFS2 erase size.
* The U-Boot blob is exactly as long as the banner's ``U-Boot code: E0500000 ->
  E0517540`` says (0x17540 bytes). It is a placeholder, not code: an ARM vector
  table and U-Boot 1.1.4's start.S words (_TEXT_BASE, _armboot_start, _bss_start,
  _bss_end from the banner), instruction-like words, and the strings a real image
  carries (banner, HI_VERSION, prompt, help texts, a default environment). The
  default environment inside it is decoration; nothing should parse it.
* The factory saved U-Boot's environment (``saveenv``) with U-Boot 1.1.4's layout
  (env_flash.c): a little-endian zlib CRC32 of the data area, then
  ``name=value\\0`` strings and an empty string, the data area being CFG_ENV_SIZE
  - 4 bytes. Where depends on the boot loader (``uboot``, as the emulator's
  ``uboot_variant``): HiSilicon's tree keeps it at 0x040000 with CFG_ENV_SIZE
  0x20000 (github zhhejun/u-boot-1.1.4 include/configs/hi3511v110.h); the upstream
  layout puts it at 0x080000 with 0x10000. The factory ``bootdelay`` is 1 (a
  terminal shows the seed's ``autoboot:  0`` once that second has passed, and the
  seed's author stopped it by pressing a key "at that step"); ``bootdelay="0"`` gives
  a board where only a key already waiting counts (REFERENCE.md says 0 fits the seed
  too). :func:`uboot_env` writes it; pass ``env=False`` to :func:`vendor_flash` for
  a board whose sector is blank. The settings JFFS2 uses only the first erase block of its partition.
* The root is what a user flashes: the mkfs.jffs2 output without padding, so
  everything after it up to 0xF00000 is 0xFF, as after ``erase`` + ``tftp``.
* ``.pkg`` header: the seed says only "144 bytes (188 in older versions), then the
  JFFS2 image". The layout written by :func:`vendor_pkg` is INVENTED (see there).
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

from .jffs2 import Tree, build_jffs2, firmware_tree
from .uimage import build_uimage, fake_kernel

FLASH_BASE = 0x34000000
FLASH_SIZE = 16 << 20
SECTOR = 0x20000
N_SECTORS = FLASH_SIZE // SECTOR

UBOOT_OFFSET = 0x000000
# boot loader variant -> (environment offset, CFG_ENV_SIZE, factory bootdelay)
ENV_LAYOUTS = {
    "hisilicon": (0x040000, 0x20000, "1"),
    "upstream": (0x080000, 0x10000, "1"),
}
DEFAULT_UBOOT = "hisilicon"
ENV_OFFSET, ENV_SIZE, _ = ENV_LAYOUTS[DEFAULT_UBOOT]
FACTORY_ENV = (
    ("bootargs", None),  # filled from BOOTARGS below
    ("bootcmd", "bootm 0x34100000"),
    ("bootdelay", "1"),
    ("baudrate", "115200"),
    ("ethaddr", "00:25:07:00:00:3b"),
    ("ipaddr", "192.168.1.10"),
    ("serverip", "192.168.1.1"),
    ("netmask", "255.255.255.0"),
)
UBOOT_AREA_SIZE = 0x100000
KERNEL_OFFSET = 0x100000
KERNEL_AREA_SIZE = 0x100000
ROOT_OFFSET = 0x200000
ROOT_SIZE = 0xD00000
SETTINGS_OFFSET = 0xF00000
SETTINGS_SIZE = 0x100000

KERNEL_LOAD = 0xE0008000
KERNEL_ENTRY = 0xE0008000
KERNEL_NAME = "Linux-2.6.14"
DEFAULT_KERNEL_SIZE = 0xD0000

UBOOT_BANNER = "U-Boot 1.1.4 (Apr  8 2009 - 11:41:01)"
UBOOT_HI_VERSION = (
    "HI_VERSION=U_BOOT_1_1_4-M08C0305B0301 @Hi3511v110_OSDrv_1_0_0_7 2009-03-18 20:44:35"
)
UBOOT_TEXT_BASE = 0xE0500000
UBOOT_CODE_END = 0xE0517540
UBOOT_BSS_END = 0xE051E2BC
UBOOT_SIZE = UBOOT_CODE_END - UBOOT_TEXT_BASE

BOOTARGS = (
    "mem=72M console=ttyAMA0,115200 root=1f01 rootfstype=jffs2 "
    "mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)"
)

#: The two stock firmwares used in tests: Wansview's and INSTAR's (names from the seed).
FIRMWARE_NAMES = {"A": "B12SE_V1", "B": "B12SE_V60.1.1.4_536mP1_60"}
# Build times of the two firmwares' root file systems (mkfs.jffs2 keeps the files'
# times): A is the vendor's 2009 build (the date in the seed's HI_VERSION), B a later
# OEM build. Trees that share their top-level layout but not their times give nodes
# whose headers match and whose CRCs do not: the seed's "Node CRC failed" lines.
FIRMWARE_MTIMES = {"A": 1237380275, "B": 1384339200}

PKG_MAGIC = b"SEIPCPKG"
PKG_HEADER_LENGTHS = (144, 188)


@dataclass(frozen=True)
class Partition:
    """One MTD partition of the kernel command line (offsets relative to flash base)."""

    name: str
    offset: int
    size: int


PARTITIONS = (
    Partition("boot", 0x000000, 0x200000),
    Partition("rootfs", ROOT_OFFSET, ROOT_SIZE),
    Partition("setting", SETTINGS_OFFSET, SETTINGS_SIZE),
)

_HELP = (
    "?       - alias for 'help'",
    "base    - print or set address offset",
    "bdinfo  - print Board Info structure",
    "bootm   - boot application image from memory",
    "bootp   - boot image via network using BootP/TFTP protocol",
    "cmp     - memory compare",
    "cp      - memory copy",
    "crc32   - checksum calculation",
    "erase   - erase FLASH memory",
    "flinfo  - print FLASH memory information",
    "md      - memory display",
    "printenv- print environment variables",
    "protect - enable or disable FLASH write protection",
    "saveenv - save environment variables to persistent storage",
    "setenv  - set environment variables",
    "tftp    - download or upload image via network using TFTP protocol",
    "version - print monitor version",
)


def uboot_blob(seed: int = 0) -> bytes:
    """Deterministic 0x17540-byte stand-in for the board's U-Boot (see module doc)."""
    rng = random.Random(f"camrescue-uboot:{seed}")
    vectors = struct.pack("<I", 0xEA000012)  # b reset (at 0x50)
    vectors += struct.pack("<I", 0xE59FF014) * 7  # ldr pc, _undefined_instruction ...
    handlers = [UBOOT_TEXT_BASE + 0x100 + 0x20 * i for i in range(7)]
    words = struct.pack("<7I", *handlers) + struct.pack("<I", 0xDEADBEEF)  # .balignl 16
    words += struct.pack("<4I", UBOOT_TEXT_BASE, UBOOT_TEXT_BASE, UBOOT_CODE_END, UBOOT_BSS_END)
    env = (
        f"bootargs={BOOTARGS}\0bootcmd=bootm 0x34100000\0bootdelay=1\0baudrate=115200\0"
        "ethaddr=00:25:07:00:00:3B\0ipaddr=192.168.1.10\0serverip=192.168.1.1\0"
        "netmask=255.255.255.0\0\0"
    )
    strings = "\0".join(
        (
            f"\n\n{UBOOT_BANNER}\n",
            f" {UBOOT_HI_VERSION}\n",
            "U-Boot code: %08lX -> %08lX  BSS: -> %08lX\n",
            "hilinux # ",
            "Hit any key to stop autoboot: %2d ",
            "## Booting image at %08lx ...\n",
            "Unknown command '%s' - try 'help'\n",
            *_HELP,
        )
    )
    rodata = strings.encode() + b"\0" + env.encode()
    rodata += b"\0" * (-len(rodata) % 4)
    head = vectors + words
    n_code = (UBOOT_SIZE - len(head) - len(rodata)) // 4
    vocab = [0xE0000000 | rng.getrandbits(28) for _ in range(96)]
    code = struct.pack(f"<{n_code}I", *rng.choices(vocab, k=n_code))
    blob = head + code + rodata
    return blob + b"\0" * (UBOOT_SIZE - len(blob))


@lru_cache(maxsize=16)
def root_image(firmware: str, *, size_hint: int = 1 << 20, seed: int = 0) -> bytes:
    """The JFFS2 root of ``firmware`` alone (what a user flashes), erase size 0x20000.

    ``firmware`` "A"/"B" map to the names in :data:`FIRMWARE_NAMES`; any other string
    is used as the name itself. ``size_hint`` is the total size of the files; the
    image comes out at about 0.6-0.7 of it (zlib saves the rest).
    """
    name = FIRMWARE_NAMES.get(firmware, firmware)
    mtime = FIRMWARE_MTIMES.get(firmware, 0)
    image = build_jffs2(
        firmware_tree(name, size=size_hint, seed=seed), erase_size=SECTOR, mtime=mtime
    )
    if len(image) > ROOT_SIZE:
        raise ValueError(f"root image {len(image):#x} bytes does not fit in {ROOT_SIZE:#x}")
    return image


def settings_image(seed: int = 0) -> bytes:
    """A small JFFS2 like the camera's ``setting`` partition (mounted at /mnt/mtd)."""
    rng = random.Random(f"camrescue-settings:{seed}")
    tree = Tree(
        files={
            "/network.conf": (
                b"dhcp=0\nipaddr=192.168.1.10\nnetmask=255.255.255.0\n"
                b"gateway=192.168.1.1\ndns=192.168.1.1\nhttpport=80\n"
            ),
            "/user.conf": b"admin:" + rng.randbytes(8).hex().encode() + b":255\n",
            "/alarm.conf": b"motion=0\nsensitivity=5\nmail=0\nftp=0\n",
            "/camera.conf": b"resolution=1280x720\nbitrate=2048\nframerate=25\nir=auto\n",
        }
    )
    return build_jffs2(tree, erase_size=SECTOR)


def uboot_env(
    variables: dict[str, str] | None = None,
    *,
    uboot: str = DEFAULT_UBOOT,
    bootdelay: str | None = None,
) -> bytes:
    """The environment's CFG_ENV_SIZE bytes as ``saveenv`` writes them."""
    _, size, factory_delay = ENV_LAYOUTS[uboot]
    if variables is None:
        variables = {k: (v if v is not None else BOOTARGS) for k, v in FACTORY_ENV}
        variables["bootdelay"] = bootdelay if bootdelay is not None else factory_delay
    body = b"".join(f"{k}={v}".encode("latin-1") + b"\0" for k, v in variables.items()) + b"\0"
    if len(body) > size - 4:
        raise ValueError("environment does not fit in CFG_ENV_SIZE")
    body += b"\0" * (size - 4 - len(body))
    return struct.pack("<I", zlib.crc32(body)) + body


@lru_cache(maxsize=8)
def vendor_flash(
    firmware: str = "A",
    *,
    root_size: int = 1 << 20,
    seed: int = 0,
    kernel_size: int = DEFAULT_KERNEL_SIZE,
    env: bool = True,
    uboot: str = DEFAULT_UBOOT,
    bootdelay: str | None = None,
) -> bytes:
    """A full 16 MiB flash image as the camera leaves the factory (see module doc),
    for the boot loader ``uboot`` (``hisilicon`` or ``upstream``).

    ``root_size`` is the ``size_hint`` of :func:`root_image` (about 14 MiB gives the
    ~9.5 MiB roots of the real firmware files; the default keeps tests fast).
    """
    if kernel_size + 64 > KERNEL_AREA_SIZE:
        raise ValueError("kernel does not fit in its 1 MiB area")
    flash = bytearray(b"\xff" * FLASH_SIZE)

    def put(offset: int, data: bytes) -> None:
        flash[offset : offset + len(data)] = data

    put(UBOOT_OFFSET, uboot_blob(seed))
    if env:
        put(ENV_LAYOUTS[uboot][0], uboot_env(uboot=uboot, bootdelay=bootdelay))
    put(KERNEL_OFFSET, build_uimage(fake_kernel(kernel_size, seed), name=KERNEL_NAME))
    put(ROOT_OFFSET, root_image(firmware, size_hint=root_size, seed=seed))
    put(SETTINGS_OFFSET, settings_image(seed))
    return bytes(flash)


def vendor_pkg(
    root: bytes,
    header_len: int = 144,
    seed: int = 0,
    *,
    version: str = "B12SE_V1",
    model: str = "NCH-536MW",
) -> bytes:
    """A firmware update file: a ``header_len``-byte header, then ``root`` unchanged.

    The header layout is INVENTED (the seed gives only its length); all integers
    little-endian::

        0x00  8   magic b"SEIPCPKG"
        0x08  4   header length
        0x0C  4   payload length (the JFFS2 image)
        0x10  4   zlib CRC-32 of the payload
        0x14  4   payload type: 1 = JFFS2 root file system
        0x18  32  version string, NUL padded
        0x38  32  model string, NUL padded
        0x58  16  build date "2016-11-13", NUL padded
        0x68  ..  reserved: seeded pseudo-random bytes
        -4    4   zlib CRC-32 of the header bytes before it
    """
    if header_len < 0x6C or header_len % 4:
        raise ValueError("header_len must be a multiple of 4 and at least 108")
    rng = random.Random(f"camrescue-pkg:{seed}:{version}")
    head = PKG_MAGIC + struct.pack("<IIII", header_len, len(root), zlib.crc32(root), 1)
    head += version.encode()[:32].ljust(32, b"\0")
    head += model.encode()[:32].ljust(32, b"\0")
    head += b"2016-11-13".ljust(16, b"\0")
    head += rng.randbytes(header_len - 4 - len(head))
    return head + struct.pack("<I", zlib.crc32(head)) + root


# What scenarios may name (``{builder: NAME, ...}``; ``camrescue scenarios builders``
# lists them with their arguments) and the values some arguments take there.
BUILDERS = ("vendor_flash", "root_image", "settings_image", "uboot_blob", "uboot_env", "vendor_pkg")
BUILDER_CHOICES = {"firmware": tuple(FIRMWARE_NAMES), "uboot": tuple(ENV_LAYOUTS)}
