# ruff: noqa: UP031  (printf-style formats kept verbatim from the C sources)
"""U-Boot 1.1.4 ``bootm`` model: uImage header checks and the text they print.

Modelled from upstream U-Boot 1.1.4 (tag U-Boot-1_1_4):

- ``common/cmd_bootm.c``: ``do_bootm`` (magic, header CRC, ``print_image_hdr``,
  data CRC, architecture, type and compression switch), ``print_type``;
- ``lib_generic/display_options.c``: ``print_size``;
- ``lib_arm/armlinux.c``: ``do_bootm_linux`` (``\\nStarting kernel ...\\n\\n``);
- ``include/image.h``: the header layout and the IH_* numbers.

Output convention: every function returns the exact characters U-Boot passes to
``puts``/``printf``, concatenated into one ``str`` with ``"\\n"`` line ends (the
PL011 serial driver, not modelled here, turns each ``\\n`` into ``\\r\\n``).
Bytes of the image name are mapped 1:1 through latin-1, so
``text.encode("latin-1")`` gives the device's bytes. Lines are split exactly
where U-Boot splits them; notably ``"   Verifying Checksum ... "`` and the
following ``"OK\\n"`` / ``"Bad Data CRC\\n"`` form one line, and for an
uncompressed image the loader prints nothing before the ``"OK\\n"`` that ends
the load step (a "lone OK" line).

Board assumptions (upstream behaviour where the Hi3511 fork is unknown):

- ARM build: ``ih_arch`` must be ``IH_CPU_ARM`` (2), otherwise
  ``Unsupported Architecture 0x%x``.
- No CONFIG_HW_WATCHDOG: an uncompressed image is copied silently (no
  ``   Loading Kernel Image ... ``); no CONFIG_BZIP2 (bzip2 images fail with
  ``Unimplemented compression type 2``); no CFG_CMD_DATE/CONFIG_TIMESTAMP
  (no ``   Created:`` line unless ``timestamp=True`` is passed).
- Note that ``do_bootm`` prints ``Bad Magic Number`` and ``Bad Header Checksum``
  without indentation (the indented forms belong to ``iminfo``).
- ``%d`` fields print the 32-bit value as a signed int, as the C code does.
- A multi-file image's length table is read until a zero word as U-Boot does,
  but at most 4096 entries (U-Boot would keep reading memory).
- ``read`` is called for the whole data length given by the header (up to
  4 GiB for a header with a valid CRC and a huge size): the board's memory
  model decides what lies beyond the image.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

IH_MAGIC = 0x27051956
IH_NMLEN = 32
HEADER_SIZE = 64

IH_OS_LINUX = 5
IH_CPU_ARM = 2
IH_TYPE_STANDALONE = 1
IH_TYPE_KERNEL = 2
IH_TYPE_MULTI = 4
IH_COMP_NONE = 0
IH_COMP_GZIP = 1
IH_COMP_BZIP2 = 2

_HDR = struct.Struct(">7I4B32s")

_OS_NAMES = {
    0: "Invalid OS",
    2: "NetBSD",
    5: "Linux",
    14: "VxWorks",
    16: "QNX",
    17: "U-Boot",
    18: "RTEMS",
}
_ARCH_NAMES = {
    0: "Invalid CPU",
    1: "Alpha",
    2: "ARM",
    3: "Intel x86",
    4: "IA64",
    5: "MIPS",
    6: "MIPS 64 Bit",
    7: "PowerPC",
    8: "IBM S390",
    9: "SuperH",
    10: "SPARC",
    11: "SPARC 64 Bit",
    12: "M68K",
    13: "Nios",
    14: "Microblaze",
    15: "Nios-II",
}
_TYPE_NAMES = {
    0: "Invalid Image",
    1: "Standalone Program",
    2: "Kernel Image",
    3: "RAMDisk Image",
    4: "Multi-File Image",
    5: "Firmware",
    6: "Script",
}
_COMP_NAMES = {0: "uncompressed", 1: "gzip compressed", 2: "bzip2 compressed"}

# do_bootm: uint unc_len = 0x400000 (maximum gunzip output).
_UNC_LEN = 0x400000
# U-Boot walks a multi-file length table until a zero word, however far that
# is; the model gives up after this many entries so garbage cannot hang it.
_MAX_MULTI = 4096


@dataclass
class UImageHeader:
    """The 64-byte big-endian uImage header (``image_header_t``)."""

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
    name: bytes  # the raw 32 bytes of ih_name

    def pack(self) -> bytes:
        """The header as stored (hcrc as given, not recomputed)."""
        return _HDR.pack(
            self.magic,
            self.hcrc,
            self.time,
            self.size,
            self.load,
            self.ep,
            self.dcrc,
            self.os,
            self.arch,
            self.type,
            self.comp,
            self.name,
        )

    @property
    def name_str(self) -> str:
        """``%.*s`` of ih_name: up to the first NUL, at most 32 bytes (latin-1)."""
        return self.name.split(b"\0", 1)[0].decode("latin-1")


def crc32(data: bytes) -> int:
    """U-Boot's crc32(0, ...): the standard zlib CRC-32."""
    return zlib.crc32(data) & 0xFFFFFFFF


def parse_header(raw64: bytes) -> UImageHeader:
    """Decode 64 header bytes (no checks)."""
    if len(raw64) < HEADER_SIZE:
        raise ValueError("uImage header needs 64 bytes")
    f = _HDR.unpack_from(raw64, 0)
    return UImageHeader(*f)


def header_crc_ok(raw64: bytes) -> bool:
    """The do_bootm header check: CRC of the header with ih_hcrc zeroed."""
    stored = struct.unpack_from(">I", raw64, 4)[0]
    blank = bytes(raw64[:4]) + b"\0\0\0\0" + bytes(raw64[8:HEADER_SIZE])
    return crc32(blank) == stored


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def format_size(size: int) -> str:
    """``print_size(size, "")`` of lib_generic/display_options.c (ulong = 32 bit)."""
    size &= 0xFFFFFFFF
    d, c = 1 << 20, "M"
    if size < d:
        d, c = 1 << 10, "k"
    n = size // d
    m = (10 * (size - n * d) + d // 2) // d
    if m >= 10:
        m -= 10
        n += 1
    out = "%2d" % n
    if m:
        out += ".%d" % m
    return out + " %sB" % c


def image_type_string(hdr: UImageHeader) -> str:
    """``print_type``: ``"<arch> <os> <type> (<comp>)"``."""
    os_name = _OS_NAMES.get(hdr.os, "Unknown OS")
    arch = _ARCH_NAMES.get(hdr.arch, "Unknown Architecture")
    typ = _TYPE_NAMES.get(hdr.type, "Unknown Image")
    comp = _COMP_NAMES.get(hdr.comp, "unknown compression")
    return f"{arch} {os_name} {typ} ({comp})"


def _created_line(t: int) -> str:
    import time as _time

    tm = _time.gmtime(t & 0xFFFFFFFF)
    return "   Created:      %4d-%02d-%02d  %2d:%02d:%02d UTC\n" % (
        tm.tm_year,
        tm.tm_mon,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
    )


def print_image_hdr(
    hdr: UImageHeader,
    read: Callable[[int, int], bytes] | None = None,
    addr: int = 0,
    timestamp: bool = False,
) -> str:
    """Text of ``print_image_hdr``. ``read``/``addr`` are needed only for the
    ``Contents:`` table of a multi-file image (lengths follow the header)."""
    out = "   Image Name:   %s\n" % hdr.name_str
    if timestamp:
        out += _created_line(hdr.time)
    out += "   Image Type:   " + image_type_string(hdr)
    out += "\n   Data Size:    %d Bytes = " % _s32(hdr.size) + format_size(hdr.size) + "\n"
    out += "   Load Address: %08x\n   Entry Point:  %08x\n" % (hdr.load, hdr.ep)
    if hdr.type == IH_TYPE_MULTI and read is not None:
        out += "   Contents:\n"
        p = addr + HEADER_SIZE
        for i in range(_MAX_MULTI):
            length = struct.unpack(">I", bytes(read(p, 4)))[0]
            if not length:
                break
            out += "   Image %d: %8d Bytes = " % (i, _s32(length)) + format_size(length) + "\n"
            p += 4
    return out


def bootm_check(
    read: Callable[[int, int], bytes],
    addr: int,
    verify: bool = True,
    timestamp: bool = False,
) -> tuple[str, UImageHeader | None]:
    """The checks ``bootm addr`` makes before loading.

    ``read(address, length)`` returns the bytes of the board's address space.
    Returns ``(text, header)``: the text U-Boot prints (see the module
    docstring) and the decoded header when every check passed, else None.
    ``verify`` mirrors the ``verify`` environment variable (``n...`` = off).
    """
    out = "## Booting image at %08x ...\n" % (addr & 0xFFFFFFFF)
    raw = bytes(read(addr, HEADER_SIZE))
    hdr = parse_header(raw)
    if hdr.magic != IH_MAGIC:
        return out + "Bad Magic Number\n", None
    if not header_crc_ok(raw):
        return out + "Bad Header Checksum\n", None
    out += print_image_hdr(hdr, read, addr, timestamp)
    if verify:
        out += "   Verifying Checksum ... "
        data = bytes(read(addr + HEADER_SIZE, hdr.size))
        if crc32(data) != hdr.dcrc:
            return out + "Bad Data CRC\n", None
        out += "OK\n"
    return out, hdr


def _gunzip_check(src: bytes) -> str | None:
    """U-Boot's gunzip() (cmd_bootm.c) into a 4 MiB buffer: None if it succeeds,
    else the error text it prints."""
    if len(src) < 10 or src[2] != 8 or (src[3] & 0xE0):
        return "Error: Bad gzipped data\n"
    flags = src[3]
    i = 10
    try:
        if flags & 4:
            i = 12 + src[10] + (src[11] << 8)
        if flags & 8:
            while src[i] != 0:
                i += 1
            i += 1
        if flags & 0x10:
            while src[i] != 0:
                i += 1
            i += 1
    except IndexError:
        return "Error: gunzip out of data in header\n"
    if flags & 2:
        i += 2
    if i >= len(src):
        return "Error: gunzip out of data in header\n"
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(src[i:], _UNC_LEN + 1)
    except zlib.error:
        return "Error: inflate() returned -3\n"
    if len(out) > _UNC_LEN:
        # Z_FINISH with a full output buffer: inflate returns Z_BUF_ERROR (-5).
        return "Error: inflate() returned -5\n"
    if not d.eof:
        return "Error: inflate() returned -5\n"
    return None


def bootm_boot(
    read: Callable[[int, int], bytes],
    addr: int,
    hdr: UImageHeader,
    *,
    watchdog: bool = False,
) -> tuple[str, str]:
    """What ``bootm`` prints after a successful :func:`bootm_check`.

    With ``watchdog`` (CONFIG_HW_WATCHDOG, HiSilicon's tree: github
    zhhejun/u-boot-1.1.4 common/cmd_bootm.c) an uncompressed image that is not
    executed in place is copied in chunks after ``   Loading %s ... ``.

    Returns ``(text, outcome)`` with outcome one of ``"linux"`` (text ends with
    ``\\nStarting kernel ...\\n\\n``; the kernel runs next), ``"standalone"``
    (the application at ``hdr.ep`` would run), ``"fail"`` (back to the prompt)
    or ``"reset"`` (U-Boot resets the board, after a gunzip error).
    """
    if hdr.arch != IH_CPU_ARM:
        return "Unsupported Architecture 0x%x\n" % hdr.arch, "fail"
    names = {
        IH_TYPE_STANDALONE: "Standalone Application",
        IH_TYPE_KERNEL: "Kernel Image",
        IH_TYPE_MULTI: "Multi-File Image",
    }
    if hdr.type not in names:
        return "Wrong Image Type for bootm command\n", "fail"
    name = names[hdr.type]
    data_addr = addr + HEADER_SIZE
    length = hdr.size
    if hdr.type == IH_TYPE_MULTI:
        length = struct.unpack(">I", bytes(read(data_addr, 4)))[0]
        p = data_addr + 4
        data_addr += 8
        for _ in range(_MAX_MULTI):
            if not struct.unpack(">I", bytes(read(p, 4)))[0]:
                break
            data_addr += 4
            p += 4
    out = ""
    if hdr.comp == IH_COMP_NONE:
        if hdr.load == (addr & 0xFFFFFFFF):
            out += "   XIP %s ... " % name
        elif watchdog:
            out += "   Loading %s ... " % name
    elif hdr.comp == IH_COMP_GZIP:
        out += "   Uncompressing %s ... " % name
        err = _gunzip_check(bytes(read(data_addr, length)))
        if err is not None:
            return out + err + "GUNZIP ERROR - must RESET board to recover\n", "reset"
    else:
        return "Unimplemented compression type %d\n" % hdr.comp, "fail"
    out += "OK\n"
    if hdr.type == IH_TYPE_STANDALONE:
        return out, "standalone"
    # do_bootm_linux (lib_arm/armlinux.c), no initrd argument.
    return out + "\nStarting kernel ...\n\n", "linux"
