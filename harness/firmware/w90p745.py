"""Builders of W90P745 flash images (2 MiB NOR at 0x7F000000) for tests and scenarios.

Harness-side code: it shares nothing with ``emulators/`` or ``recovery/``. The
layout is the Winbond boot loader's (WBLv1_1 ``Inc/flash.h`` ``tfooter`` and
``Src/flash.c`` ``WriteImage``; REFERENCE.md, W90P745 section): each image sits
at a 64 KiB block address; its 52-byte footer (num, base, length, load, exec,
name[16], image_checksum, signature 0xA0FFFF9F, type, checksum) takes the last
52 bytes of the block the image ends in, or of the next block when fewer than
52 bytes are left. Both checksums: little-endian u32 words summed in 64 bits,
folded once, complemented (``SetImageChecksum`` in the ATEN IPMI SDK's
mkimage.c). Block 0 is the boot loader's; BOOT INFO (image 0, 0x48 bytes,
``-f``) is at 0x7F010000 with the seed unit's configuration.

Functions (all deterministic for a given ``seed``):

* :func:`vendor_flash` -- the seed's table (BOOT INFO, linux 7, romfs.img 6,
  webui 8 at the seed's bases and sizes), image data from :func:`rich_image`
  or random bytes.
* :func:`rich_image` -- image data rich in 0x7F and 0x20 (the bytes the
  loader's ``d`` prints raw and as ``.``), plus every other byte value.
* :func:`flash_with` -- a flash holding BOOT INFO and the images given.
* :func:`footer` / :func:`footer_address` / :func:`checksum` -- the format.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

FLASH_BASE = 0x7F000000
FLASH_SIZE = 0x200000
BLOCK = 0x10000
FOOTER_SIZE = 52
SIGNATURE = 0xA0FFFF9F
FLAGS = {"a": 0x01, "c": 0x02, "x": 0x04, "f": 0x08, "z": 0x10}
BOOTINFO_BASE = 0x7F010000

# (number, name, base, size, exec, flags): seed 001's ls -al
SEED_TABLE = (
    (7, "linux", 0x7F020000, 0x000BF700, 0x00008000, "acxz"),
    (6, "romfs.img", 0x7F0E0000, 0x0008FF80, 0x7F0E0000, "a"),
    (8, "webui", 0x7F180000, 0x0006F700, 0x7F180000, "a"),
)


def checksum(data: bytes) -> int:
    data = bytes(data) + b"\0" * (-len(data) % 4)
    total = sum(struct.unpack(f"<{len(data) // 4}I", data))
    return ~((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def footer_address(base: int, size: int) -> int:
    size = -(-size // 4) * 4
    last = base + (max(size, 1) - 1) // BLOCK * BLOCK
    if BLOCK - (base + size - last) < FOOTER_SIZE:
        return last + 2 * BLOCK - FOOTER_SIZE
    return last + BLOCK - FOOTER_SIZE


def footer(number: int, name: str, base: int, data: bytes, exec_addr: int, flags: str) -> bytes:
    length = -(-len(data) // 4) * 4
    bits = 0
    for ch in flags:
        bits |= FLAGS[ch]
    head = struct.pack(
        "<5I16s3I",
        number,
        base,
        length,
        exec_addr,
        exec_addr,
        name.encode("latin-1")[:15].ljust(16, b"\0"),
        checksum(data),
        SIGNATURE,
        bits,
    )
    return head + struct.pack("<I", checksum(head))


def bootinfo() -> bytes:
    """The field unit's BOOT INFO (0x48 bytes, the layout of a real unit's dump)."""
    return struct.pack(
        "<II6s2sI12sII8sIIiII4s",
        0x48,
        1,
        bytes.fromhex("0EF2B3DC0CEF"),
        b"\0\0",
        0xFFFFFFFF,
        bytes(12),
        1,
        1,
        bytes(8),
        0x00300000,
        0x00100000,
        115200,
        1,
        0xFFFFFFFF,
        bytes(4),
    )


def rich_image(size: int, seed: int = 0, share: float = 0.4) -> bytes:
    """``size`` bytes where about ``share`` of the bytes are 0x7F or 0x20 (half each)
    and the rest are random, so every page holds raw DEL bytes and spaces."""
    rng = random.Random(f"w90p745:rich:{seed}")
    out = bytearray(rng.randbytes(size))
    for i in range(size):
        r = rng.random()
        if r < share / 2:
            out[i] = 0x7F
        elif r < share:
            out[i] = 0x20
    return bytes(out)


def flash_with(
    images: Sequence[tuple[int, str, int, bytes, int, str]], *, loader_seed: int = 0
) -> bytes:
    """A 2 MiB flash: a loader block, BOOT INFO and ``images`` as
    (number, name, base, data, exec, flags), each with its footer."""
    flash = bytearray(b"\xff" * FLASH_SIZE)
    rng = random.Random(f"w90p745:loader:{loader_seed}")
    flash[0:0xB400] = rng.randbytes(0xB400)
    for number, name, base, data, exec_addr, flags in [
        (0, "BOOT INFO", BOOTINFO_BASE, bootinfo(), BOOTINFO_BASE, "f"),
        *images,
    ]:
        off = base - FLASH_BASE
        if base % BLOCK or off < BLOCK or off + len(data) > FLASH_SIZE:
            raise ValueError(f"image {number} at 0x{base:08X} does not fit the flash")
        flash[off : off + len(data)] = data
        at = footer_address(base, len(data)) - FLASH_BASE
        flash[at : at + FOOTER_SIZE] = footer(number, name, base, data, exec_addr, flags)
    return bytes(flash)


def vendor_flash(seed: int = 0, rich: bool = True) -> bytes:
    """The field unit's image table (the W90P745 write-up) with deterministic data (``rich``: 0x7F/0x20-rich)."""
    images = []
    for number, name, base, size, exec_addr, flags in SEED_TABLE:
        data = (
            rich_image(size, seed * 100 + number)
            if rich
            else random.Random(f"w90p745:{seed}:{number}").randbytes(size)
        )
        images.append((number, name, base, data, exec_addr, flags))
    return flash_with(images, loader_seed=seed)


# What scenarios may name (``{builder: NAME, ...}``; ``camrescue scenarios builders``
# lists them with their arguments).
BUILDERS = ("vendor_flash", "rich_image", "bootinfo")
