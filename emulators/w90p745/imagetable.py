"""The image table: one footer (``tfooter``) per image, kept in flash.

Source: the Winbond W90P710 boot loader "WBLv1_1" (the family of the seed's
W90P745 loader 1.1): ``Inc/flash.h`` (``tfooter``, ``SIGNATURE_WORD``, the
IMAGE_* flags, ``MAX_FOOTER_NUM 8``) and ``Src/flash.c`` (``FindFooter``,
``FindImage``, ``WriteImage``, ``DelImage``, ``CorruptCheck``,
``ImageCheck``). A footer, 52 bytes little-endian:

====== ===== =================================================
offset size  field
====== ===== =================================================
0x00   u32   num (image number)
0x04   u32   base (flash address)
0x08   u32   length in bytes (FX: the received size, rounded up to 4)
0x0C   u32   load_address (FX sets it equal to exec)
0x10   u32   exec_address
0x14   16    name, NUL padded (``strcpy``: at most 15 characters fit)
0x24   u32   image_checksum (over ``length`` bytes from base)
0x28   u32   signature 0xA0FFFF9F
0x2C   u32   type (a=0x01 c=0x02 x=0x04 f=0x08 z=0x10)
0x30   u32   checksum (of the 12 words before it)
====== ===== =================================================

Placement (``WriteImage``): the footer takes the last 52 bytes of the block
the image ends in; when fewer than 52 bytes are left there (an image that
ends on a block boundary included) it takes the last 52 bytes of the next
block, which is erased for it. The seed's linux image (0x7F020000 +
0xBF700) has its footer at 0x7F0DFFCC. ``FindFooter`` looks at the last 52
bytes of every block from block 1 on, in address order (the seed's order 0,
7, 6, 8), and keeps at most 8 footers with the right signature and checksum.

Checksum (both kinds, ``WriteImage``/``ImageCheck``; the same routine as
``SetImageChecksum`` in the ATEN IPMI SDK's ``MKIMG_Tool/Host/HERMON/
mkimage.c`` per REFERENCE.md): add the little-endian u32 words into a 64-bit
sum, fold once (``lo + hi``), complement, keep 32 bits.

``DelImage`` erases the blocks from base up to base+length, plus one more
block when the length is a whole number of blocks (where its footer went);
an image whose footer went to the next block for lack of room (a length
less than 52 bytes short of a block) keeps its footer, as on the loader.

``ls`` prints ``Image:%2d name:%s base:0x%08X size:0x%08X exec:0x%08X -``
and the flag letters in the order a c x f z (the seed's lines; the W90P710
source prints the hex in lower case, the seed's W90P745 build in upper case).
"""

from __future__ import annotations

import random
import struct
import sys
from array import array
from dataclasses import dataclass

from emulators.flash import NorFlash
from emulators.w90p745 import profile as P

SIGNATURE = 0xA0FFFF9F
RECORD = struct.Struct("<5I16s3I")  # the 48 bytes covered by the footer checksum
RECORD_SIZE = RECORD.size + 4
FOOTER = RECORD_SIZE  # 52 bytes at the end of a block
MAX_FOOTERS = 8  # MAX_FOOTER_NUM

FLAG_ACTIVE = 0x01
FLAG_COPY = 0x02
FLAG_EXEC = 0x04
FLAG_FILE = 0x08
FLAG_ZIP = 0x10
FLAG_LETTERS = (
    ("a", FLAG_ACTIVE),
    ("c", FLAG_COPY),
    ("x", FLAG_EXEC),
    ("f", FLAG_FILE),
    ("z", FLAG_ZIP),
)
NAME_MAX = 15
_M = 0xFFFFFFFF


def checksum32(data: bytes) -> int:
    """The loader's checksum: LE u32 words summed in 64 bits, folded once, complemented.

    A last partial word is zero-padded (the loader rounds the length up to 4
    and reads whatever follows; an FX download is whole 128-byte blocks).
    """
    pad = (-len(data)) % 4
    words = array("I", bytes(data) + b"\0" * pad)
    if sys.byteorder == "big":  # pragma: no cover
        words.byteswap()
    total = sum(words)
    return ~((total & _M) + (total >> 32)) & _M


def parse_flags(text: str) -> int:
    """``-acxz`` -> bits. Raises ValueError on an unknown letter."""
    bits = 0
    letters = dict(FLAG_LETTERS)
    for ch in text.lstrip("-").lower():
        if ch not in letters:
            raise ValueError(ch)
        bits |= letters[ch]
    return bits


def flag_text(flags: int) -> str:
    return "".join(ch for ch, bit in FLAG_LETTERS if flags & bit)


@dataclass
class ImageRecord:
    number: int
    name: str
    base: int
    size: int
    load: int
    exec: int
    flags: int
    checksum: int = 0
    footer: int = 0  # absolute address of the record, set by scan()/place()

    def pack(self) -> bytes:
        name = self.name.encode("latin-1")[:NAME_MAX].ljust(16, b"\0")
        head = RECORD.pack(
            self.number,
            self.base,
            self.size,
            self.load,
            self.exec,
            name,
            self.checksum,
            SIGNATURE,
            self.flags,
        )
        return head + struct.pack("<I", checksum32(head))

    @classmethod
    def unpack(cls, raw: bytes, footer: int = 0) -> ImageRecord | None:
        """A record from the 52 bytes at its slot, or None when invalid."""
        if len(raw) < RECORD_SIZE:
            return None
        head = raw[: RECORD.size]
        num, base, size, load, ex, name, cks, sig, flags = RECORD.unpack(head)
        (fcks,) = struct.unpack_from("<I", raw, RECORD.size)
        if sig != SIGNATURE or fcks != checksum32(head):
            return None
        text = name.split(b"\0", 1)[0].decode("latin-1")
        return cls(num, text, base, size, load, ex, flags, cks, footer)

    def ls_line(self) -> str:
        return (
            f"Image:{self.number:2d} name:{self.name} base:0x{self.base:08X} "
            f"size:0x{self.size:08X} exec:0x{self.exec:08X} -{flag_text(self.flags)}"
        )

    @property
    def end(self) -> int:
        """First address after the block holding the footer."""
        return self.footer + FOOTER


def footer_address(base: int, size: int) -> int:
    """Where ``WriteImage`` puts the footer of an image at ``base`` of ``size`` bytes."""
    size = -(-size // 4) * 4
    last_block_start = base + ((size - 1) // P.BLOCK_SIZE) * P.BLOCK_SIZE if size else base
    used = base + size - last_block_start
    if P.BLOCK_SIZE - used < FOOTER:
        return last_block_start + 2 * P.BLOCK_SIZE - FOOTER
    return last_block_start + P.BLOCK_SIZE - FOOTER


def place(rec: ImageRecord, data: bytes) -> ImageRecord:
    """Fill in size (rounded up to 4, as ``WriteImage`` does), checksum and footer address."""
    rec.size = -(-len(data) // 4) * 4
    rec.checksum = checksum32(data)
    rec.footer = footer_address(rec.base, rec.size)
    return rec


def in_flash(addr: int, length: int = 1) -> bool:
    return P.FLASH_BASE <= addr and addr + length <= P.FLASH_BASE + P.FLASH_SIZE


def scan(flash: NorFlash) -> list[ImageRecord]:
    """``FindFooter``: valid footers at block ends from block 1 on, at most 8."""
    out: list[ImageRecord] = []
    for block in range(1, flash.size // P.BLOCK_SIZE):
        off = (block + 1) * P.BLOCK_SIZE - FOOTER
        raw = flash.read(off, RECORD_SIZE)
        if raw[40:44] != b"\x9f\xff\xff\xa0":
            continue
        rec = ImageRecord.unpack(raw, P.FLASH_BASE + off)
        if rec is not None and len(out) < MAX_FOOTERS:
            out.append(rec)
    return out


def find(flash: NorFlash, number: int) -> ImageRecord | None:
    for rec in scan(flash):
        if rec.number == number:
            return rec
    return None


def blocks_of(rec: ImageRecord) -> range:
    """Chip block indices from the image's base to its footer, clamped to the chip."""
    lo = max(P.FLASH_BASE, min(rec.base, rec.footer))
    first = (lo - P.FLASH_BASE) // P.BLOCK_SIZE
    last = (rec.footer - P.FLASH_BASE) // P.BLOCK_SIZE
    return range(first, last + 1)


def del_blocks(rec: ImageRecord) -> range:
    """The blocks ``DelImage`` erases: base up to base+length, one more for a
    length that is a whole number of blocks."""
    end = rec.base + rec.size
    if rec.size % P.BLOCK_SIZE == 0:
        end += P.BLOCK_SIZE
    first = max(0, (rec.base - P.FLASH_BASE) // P.BLOCK_SIZE)
    last = min(P.FLASH_SIZE // P.BLOCK_SIZE, -(-(end - P.FLASH_BASE) // P.BLOCK_SIZE))
    return range(first, last)


def corrupt(number: int, base: int, length: int, others: list[ImageRecord]) -> bool:
    """``CorruptCheck``: True when an image ``number`` at ``base`` of ``length``
    bytes may not be written (in the loader's block, past the chip, a used
    number, or overlapping another image as the loader computes it)."""
    if base < P.FLASH_BASE + P.BLOCK_SIZE or base + length > P.FLASH_BASE + P.FLASH_SIZE:
        return True
    if any(o.number == number for o in others):
        return True
    bs = P.BLOCK_SIZE
    b0 = base
    b1 = base + length + (bs if bs - length % bs < FOOTER else 0)
    for o in others:
        a0 = o.base
        grow = bs - o.size % bs < FOOTER or o.size % bs == 0
        a1 = o.base + o.size + (bs if grow else 0)
        if a0 <= b0 < a1 or a0 <= b1 < a1 or (a0 > b0 and a1 < b1):
            return True
    return False


def image_data(flash: NorFlash, rec: ImageRecord) -> bytes | None:
    """The image's bytes, or None when the record points outside the chip."""
    if not in_flash(rec.base, rec.size):
        return None
    return flash.read(rec.base - P.FLASH_BASE, rec.size)


# -- factory firmware -----------------------------------------------------------

LINUX_BANNER = (
    b"Linux version 2.4.20-uc0 (root@maverick-linux) (gcc version 3.0) "
    b"#1013 \xc8\xfd 12\xd4\xc2 2 13:17:32 CST 2009\n\0"
)
_KERNEL_HEAD = [
    0xE321F0D3, 0xE3A00000, 0xE59F1074, 0xE59F2074, 0xE1510002, 0x34810004, 0x3AFFFFFC, 0xE59FD06C,
    0xE59F0060, 0xE3A01C01, 0xE28110A1, 0xEB000012, 0xE3A00000, 0xEA0000B4, 0xE1A00000, 0xE1A00000,
]  # fmt: skip


def linux_image(size: int = 0x000BF700) -> bytes:
    """The kernel: ARM code from the first word, with the version banner inside."""
    data = P.arm_like(random.Random("w90p745:linux"), size)
    data[0:64] = struct.pack("<16I", *_KERNEL_HEAD)
    data[0x9A040 : 0x9A040 + len(LINUX_BANNER)] = LINUX_BANNER
    return bytes(data)


def romfs_image(size: int = 0x0008FF80) -> bytes:
    """A romfs volume header (``-rom1fs-``, big-endian size) and file bytes."""
    rng = random.Random("w90p745:romfs")
    data = bytearray(rng.randbytes(size))
    head = b"-rom1fs-" + struct.pack(">II", size, 0x5A3C1E0F) + b"rom 4b1f3a2c".ljust(16, b"\0")
    data[0 : len(head)] = head
    text = b"#!/bin/sh\nmount -t proc none /proc\n/bin/camera &\n"
    data[0x400 : 0x400 + len(text)] = text
    return bytes(data)


def webui_image(size: int = 0x0006F700) -> bytes:
    rng = random.Random("w90p745:webui")
    data = bytearray(rng.randbytes(size))
    text = b"<html><head><title>IP Camera</title></head>"
    data[0x10 : 0x10 + len(text)] = text
    return bytes(data)


FACTORY_IMAGES = (
    # number, name, base, exec, flags, builder
    (
        7,
        "linux",
        0x7F020000,
        0x00008000,
        FLAG_ACTIVE | FLAG_COPY | FLAG_EXEC | FLAG_ZIP,
        linux_image,
    ),
    (6, "romfs.img", 0x7F0E0000, 0x7F0E0000, FLAG_ACTIVE, romfs_image),
    (8, "webui", 0x7F180000, 0x7F180000, FLAG_ACTIVE, webui_image),
)


def factory_load(flash: NorFlash, rec: ImageRecord, data: bytes) -> None:
    """Put an image and its record in place as a chip programmer would."""
    place(rec, data)
    flash.load(rec.base - P.FLASH_BASE, data)
    flash.load(rec.footer - P.FLASH_BASE, rec.pack())


def bootinfo_record(flags: int = FLAG_FILE) -> ImageRecord:
    return ImageRecord(0, "BOOT INFO", P.BOOTINFO_BASE, 0, P.BOOTINFO_BASE, P.BOOTINFO_BASE, flags)


def build_factory(flash: NorFlash) -> None:
    """The seed's flash: loader, BOOT INFO and the linux/romfs/webui images."""
    flash.load(0, P.loader_image())
    info = P.FACTORY_CONFIG.pack()
    factory_load(flash, bootinfo_record(), info)
    for number, name, base, ex, flags, build in FACTORY_IMAGES:
        factory_load(flash, ImageRecord(number, name, base, 0, ex, ex, flags), build())
