"""U-Boot legacy uImage builder, and a fake ARM Linux zImage to put in it.

The header is U-Boot's ``image_header_t`` (``include/image.h``, same layout in
U-Boot 1.1.4 and in today's mkimage): 64 bytes, all fields big-endian:
magic 0x27051956, hcrc, time, size, load, ep, dcrc, os, arch, type, comp,
name[32]. hcrc is the zlib CRC-32 of the header with hcrc set to 0, dcrc the
zlib CRC-32 of the data. ``build_uimage(blob, name=N, time=0)`` equals
``SOURCE_DATE_EPOCH=0 mkimage -A arm -O linux -T kernel -C none -a 0xe0008000
-e 0xe0008000 -n N -d blob`` byte for byte (tested). Like mkimage's
``strncpy(name, ..., IH_NMLEN)``, a 32-byte name is stored without a NUL;
longer names are refused here instead of being cut.

``fake_kernel`` is not a kernel: it is a deterministic blob shaped like an ARM
zImage (``arch/arm/boot/compressed/head.S``: eight ``mov r0, r0``, a branch,
the magic 0x016F2818 at 0x24, start and end addresses at 0x28/0x2C), followed
by decompressor-like words, the decompressor's messages and a gzip "piggy"
holding a Linux 2.6.14 banner and mostly incompressible data.
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from dataclasses import dataclass

IH_MAGIC = 0x27051956
IH_NMLEN = 32
HEADER_SIZE = 64
IH_OS_LINUX = 5
IH_ARCH_ARM = 2
IH_TYPE_KERNEL = 2
IH_COMP_NONE = 0
IH_COMP_GZIP = 1
IH_COMP_BZIP2 = 2

ZIMAGE_MAGIC = 0x016F2818
_HEADER = struct.Struct(">IIIIIIIBBBB32s")


@dataclass(frozen=True)
class UImageHeader:
    """The fields of a legacy uImage header, plus whether its two CRCs check out."""

    magic: int
    hcrc: int
    time: int
    size: int
    load: int
    ep: int
    dcrc: int
    os: int
    arch: int
    type: int
    comp: int
    name: str
    hcrc_ok: bool
    dcrc_ok: bool


def build_uimage(
    data: bytes,
    *,
    name: str,
    load: int = 0xE0008000,
    entry: int = 0xE0008000,
    os: int = IH_OS_LINUX,
    arch: int = IH_ARCH_ARM,
    type: int = IH_TYPE_KERNEL,
    comp: int = IH_COMP_NONE,
    time: int = 0,
) -> bytes:
    """Return the 64-byte header followed by ``data``."""
    raw_name = name.encode("latin-1")
    if len(raw_name) > IH_NMLEN:
        raise ValueError(f"image name longer than {IH_NMLEN} bytes: {name!r}")
    fields = [IH_MAGIC, 0, time, len(data), load, entry, zlib.crc32(data), os, arch, type, comp]
    header = _HEADER.pack(*fields, raw_name)
    fields[1] = zlib.crc32(header)
    return _HEADER.pack(*fields, raw_name) + data


def parse_uimage(blob: bytes) -> tuple[UImageHeader, bytes]:
    """Split ``blob`` into its header and data (``size`` bytes after the header).

    Raises ValueError when the blob is shorter than a header or the magic is wrong;
    CRC problems are reported in ``hcrc_ok``/``dcrc_ok`` rather than raised.
    """
    if len(blob) < HEADER_SIZE:
        raise ValueError("shorter than a uImage header")
    magic, hcrc, time, size, load, ep, dcrc, os, arch, type_, comp, raw_name = _HEADER.unpack_from(
        blob
    )
    if magic != IH_MAGIC:
        raise ValueError(f"bad magic {magic:#010x}")
    zeroed = blob[:4] + b"\0\0\0\0" + blob[8:HEADER_SIZE]
    data = blob[HEADER_SIZE : HEADER_SIZE + size]
    header = UImageHeader(
        magic=magic,
        hcrc=hcrc,
        time=time,
        size=size,
        load=load,
        ep=ep,
        dcrc=dcrc,
        os=os,
        arch=arch,
        type=type_,
        comp=comp,
        name=raw_name.split(b"\0", 1)[0].decode("latin-1"),
        hcrc_ok=zlib.crc32(zeroed) == hcrc,
        dcrc_ok=len(data) == size and zlib.crc32(data) == dcrc,
    )
    return header, data


_BANNER = (
    b"Linux version 2.6.14 (root@hisilicon) (gcc version 3.4.3 (release) "
    b"(CodeSourcery ARM 2005q3-2)) #1 Wed Apr 8 11:41:01 CST 2009\n"
)
_MESSAGES = (
    b"Uncompressing Linux...\0 done, booting the kernel.\n\0"
    b"\n\nError: unrecognized/unsupported processor variant.\n\0"
    b"invalid compressed format (err=1)\0\n\n -- System halted\0"
)


def fake_kernel(size: int, seed: int = 0) -> bytes:
    """A deterministic ``size``-byte blob laid out like an ARM zImage (see module doc)."""
    if size < 0x4000:
        raise ValueError("fake_kernel needs at least 16 KiB")
    rng = random.Random(f"camrescue-zimage:{seed}")
    head = struct.pack("<8I", *([0xE1A00000] * 8))  # mov r0, r0
    head += struct.pack("<4I", 0xEA000002, ZIMAGE_MAGIC, 0, size)  # b 1f; magic; start; end
    vocab = [0xE0000000 | rng.getrandbits(28) for _ in range(64)]
    code = struct.pack("<1536I", *rng.choices(vocab, k=1536))
    prefix = head + code + _MESSAGES
    prefix += b"\0" * (-len(prefix) % 16)
    room = size - len(prefix)
    payload_len = room - 64
    for _ in range(8):
        payload = _BANNER + rng.randbytes(payload_len - len(_BANNER))
        piggy = gzip.compress(payload, compresslevel=9, mtime=0)
        if len(piggy) <= room:
            break
        payload_len -= len(piggy) - room
    else:  # pragma: no cover - gzip overhead on random data is small and predictable
        raise RuntimeError("could not size the fake kernel")
    return prefix + piggy + b"\0" * (room - len(piggy))
