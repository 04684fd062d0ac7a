"""XRadio AWIH images: section headers, checksums, verification, factory image.

Modelled on the XRadio SDK (``include/sys/image.h``, ``src/image/image.c``) and
REFERENCE.md:

* An image is a chain of sections. Each starts with a 64-byte little-endian
  header: magic 0x48495741 (``AWIH``), version, header_chksum u16,
  data_chksum u16, data_size, load_addr, entry, body_len, attribute,
  next_addr, id, priv[6]. The section data (``data_size`` bytes: the body of
  ``body_len`` bytes followed by an optional tailer) follows the header.
* ``next_addr`` is the flash offset of the next section header, relative to
  the image start (offset 0 here); 0xFFFFFFFF ends the chain. The boot
  section (id 0xA5FF5A00) comes first; its ``next_addr`` is the boot size.
* checksum16 adds the buffer as little-endian 16-bit words (a trailing odd
  byte alone), wrapping at 16 bits. A valid header sums to 0xFFFF over its 64
  bytes (``header_chksum`` is the complement of the sum with the field zero).
  ``data_chksum`` is the complement of checksum16 over the ``data_size``
  bytes after the header, so ``data_chksum + checksum16(data) == 0xFFFF``
  (``_image_check_section`` in the SDK walks exactly ``data_size`` bytes).

Who checks what (assumption, following the SDK bootloader ``bl_load_app_bin``
and the field report that an invalid app header makes the bootloader call
``bl_upgrade()`` and leave the ROM silently waiting for PhoenixMC):

* the ROM checks the boot section: magic, header checksum, id, size, data
  checksum, and that load address and entry lie in XR872 SRAM. An XR809 boot
  section loads at 0x00010000 (XR809 SRAM, XR872 ROM) and is refused;
* the bootloader then walks the chain from the boot section's ``next_addr``
  and checks every section's header and data checksum, that the chain stays
  inside the 1020 KiB image area without loops, and that an app section with
  a load address in XR872 SRAM exists.

This module is emulator-side only; the engine has its own parser.
"""

from __future__ import annotations

import random
import struct
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from emulators.xr872 import profile as P

IMAGE_MAGIC = 0x48495741
HEADER_SIZE = 64
END_OF_CHAIN = 0xFFFFFFFF

BOOT_ID = 0xA5FF5A00
APP_ID = 0xA5FE5A01
APP_XIP_ID = 0xA5FD5A02
NET_ID = 0xA5FC5A03
NET_AP_ID = 0xA5FB5A04
WLAN_BL_ID = 0xA5FA5A05
WLAN_FW_ID = 0xA5F95A06
WLAN_SDD_ID = 0xA5F85A07

SECTION_NAMES = {
    BOOT_ID: "boot",
    APP_ID: "app",
    APP_XIP_ID: "app_xip",
    NET_ID: "net",
    NET_AP_ID: "net_ap",
    WLAN_BL_ID: "wlan_bl",
    WLAN_FW_ID: "wlan_fw",
    WLAN_SDD_ID: "wlan_sdd",
}

_HEADER = struct.Struct("<IIHHIIIIIII6I")
assert _HEADER.size == HEADER_SIZE


def checksum16(data: bytes | bytearray | memoryview) -> int:
    """XRadio checksum16: little-endian 16-bit words summed with 16-bit wrap."""
    data = bytes(data)
    n = len(data) & ~1
    words = array("H", data[:n])
    if sys.byteorder == "big":  # pragma: no cover - the words are little-endian
        words.byteswap()
    total = sum(words)
    if len(data) & 1:
        total += data[-1]
    return total & 0xFFFF


@dataclass
class SectionHeader:
    """One 64-byte AWIH section header (fields as in the SDK's section_header_t)."""

    id: int
    data_size: int
    load_addr: int = 0
    entry: int = 0
    body_len: int = 0
    attribute: int = 0
    next_addr: int = END_OF_CHAIN
    version: int = 0
    header_chksum: int = 0
    data_chksum: int = 0
    priv: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    magic: int = IMAGE_MAGIC

    def pack(self) -> bytes:
        return _HEADER.pack(
            self.magic,
            self.version,
            self.header_chksum,
            self.data_chksum,
            self.data_size,
            self.load_addr,
            self.entry,
            self.body_len,
            self.attribute,
            self.next_addr,
            self.id,
            *self.priv,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> SectionHeader:
        f = _HEADER.unpack(bytes(raw[:HEADER_SIZE]))
        return cls(
            magic=f[0],
            version=f[1],
            header_chksum=f[2],
            data_chksum=f[3],
            data_size=f[4],
            load_addr=f[5],
            entry=f[6],
            body_len=f[7],
            attribute=f[8],
            next_addr=f[9],
            id=f[10],
            priv=tuple(f[11:17]),
        )

    @property
    def name(self) -> str:
        return SECTION_NAMES.get(self.id, f"id_{self.id:08x}")


def header_valid(raw: bytes) -> bool:
    """The SDK's image_check_header: magic and a 64-byte sum of 0xFFFF."""
    if len(raw) < HEADER_SIZE:
        return False
    return (
        int.from_bytes(raw[:4], "little") == IMAGE_MAGIC and checksum16(raw[:HEADER_SIZE]) == 0xFFFF
    )


def data_valid(header: SectionHeader, data: bytes) -> bool:
    return (header.data_chksum + checksum16(data)) & 0xFFFF == 0xFFFF


def build_section(header: SectionHeader, data: bytes) -> bytes:
    """Header (with both checksums filled in) followed by ``data``."""
    header.data_size = len(data)
    if not header.body_len:
        header.body_len = len(data)
    header.data_chksum = ~checksum16(data) & 0xFFFF
    header.header_chksum = 0
    header.header_chksum = ~checksum16(header.pack()) & 0xFFFF
    return header.pack() + bytes(data)


@dataclass
class SectionSpec:
    """What to put where: a section's flash offset, header fields and data."""

    offset: int
    id: int
    data: bytes
    load_addr: int = 0
    entry: int = 0
    attribute: int = 0x1
    priv: tuple[int, ...] = (0, 0, 0, 0, 0, 0)


def build_image(specs: list[SectionSpec], size: int = P.FLASH_SIZE, fill: int = 0xFF) -> bytes:
    """Lay the sections out at their offsets, chained in list order."""
    out = bytearray([fill]) * size
    for i, spec in enumerate(specs):
        nxt = specs[i + 1].offset if i + 1 < len(specs) else END_OF_CHAIN
        hdr = SectionHeader(
            id=spec.id,
            data_size=len(spec.data),
            load_addr=spec.load_addr,
            entry=spec.entry,
            attribute=spec.attribute,
            next_addr=nxt,
            priv=spec.priv,
        )
        blob = build_section(hdr, spec.data)
        if spec.offset + len(blob) > size:
            raise ValueError(f"section {hdr.name} does not fit at 0x{spec.offset:x}")
        out[spec.offset : spec.offset + len(blob)] = blob
    return bytes(out)


# -- verification -------------------------------------------------------------


@dataclass
class BootCheck:
    """The result of the ROM's and the bootloader's checks."""

    ok: bool
    stage: str  # "rom" or "bootloader": who refused (or "ok")
    reason: str
    sections: list[tuple[int, SectionHeader]] = field(default_factory=list)


def _in_xr872_sram(addr: int, length: int) -> bool:
    return P.SRAM_BASE <= addr and addr + length <= P.SRAM_END


def check_boot_section(read: Callable[[int, int], bytes]) -> BootCheck:
    """What the XR872 mask ROM checks before it runs the boot section at offset 0."""
    raw = read(P.BOOT_OFFSET, HEADER_SIZE)
    if int.from_bytes(raw[:4], "little") != IMAGE_MAGIC:
        return BootCheck(False, "rom", "boot section: bad magic")
    if not header_valid(raw):
        return BootCheck(False, "rom", "boot section: header checksum")
    hdr = SectionHeader.unpack(raw)
    if hdr.id != BOOT_ID:
        return BootCheck(False, "rom", f"boot section: id 0x{hdr.id:08x} is not boot")
    if hdr.data_size == 0 or hdr.data_size > P.BOOT_MAX_LEN - HEADER_SIZE:
        return BootCheck(False, "rom", "boot section: bad size")
    if not _in_xr872_sram(hdr.load_addr, hdr.data_size):
        return BootCheck(
            False, "rom", f"boot section: load address 0x{hdr.load_addr:08x} not in XR872 SRAM"
        )
    if not hdr.load_addr <= (hdr.entry & ~1) < hdr.load_addr + hdr.data_size:
        return BootCheck(False, "rom", f"boot section: entry 0x{hdr.entry:08x} outside the code")
    if not data_valid(hdr, read(P.BOOT_OFFSET + HEADER_SIZE, hdr.data_size)):
        return BootCheck(False, "rom", "boot section: data checksum")
    return BootCheck(True, "ok", "boot section valid", [(P.BOOT_OFFSET, hdr)])


def check_image(read: Callable[[int, int], bytes]) -> BootCheck:
    """The ROM's boot-section check, then the bootloader's walk of the chain."""
    res = check_boot_section(read)
    if not res.ok:
        return res
    sections = list(res.sections)
    seen = {P.BOOT_OFFSET}
    addr = sections[0][1].next_addr
    have_app = False
    while addr != END_OF_CHAIN:
        if addr in seen:
            return BootCheck(False, "bootloader", f"section chain loops at 0x{addr:x}", sections)
        if addr + HEADER_SIZE > P.IMAGE_MAX_SIZE:
            return BootCheck(False, "bootloader", f"section at 0x{addr:x} outside image", sections)
        seen.add(addr)
        raw = read(addr, HEADER_SIZE)
        if not header_valid(raw):
            return BootCheck(False, "bootloader", f"section at 0x{addr:x}: bad header", sections)
        hdr = SectionHeader.unpack(raw)
        if addr + HEADER_SIZE + hdr.data_size > P.IMAGE_MAX_SIZE:
            return BootCheck(False, "bootloader", f"{hdr.name} at 0x{addr:x}: too big", sections)
        if not data_valid(hdr, read(addr + HEADER_SIZE, hdr.data_size)):
            return BootCheck(
                False, "bootloader", f"{hdr.name} at 0x{addr:x}: data checksum", sections
            )
        if hdr.id == APP_ID:
            if not _in_xr872_sram(hdr.load_addr, hdr.data_size):
                return BootCheck(
                    False,
                    "bootloader",
                    f"app load address 0x{hdr.load_addr:08x} not in XR872 SRAM",
                    sections,
                )
            have_app = True
        sections.append((addr, hdr))
        addr = hdr.next_addr
    if not have_app:
        return BootCheck(False, "bootloader", "no app section", sections)
    return BootCheck(True, "ok", "image valid", sections)


def find_text(read: Callable[[int, int], bytes], sections: list[tuple[int, SectionHeader]]) -> str:
    """The firmware version string embedded in the app section (``XF16-FW <ver>``)."""
    for off, hdr in sections:
        if hdr.id == APP_ID:
            body = read(off + HEADER_SIZE, min(hdr.data_size, 256))
            if body.startswith(b"XF16-FW "):
                return body[8:].split(b"\0", 1)[0].decode("latin-1")
    return "unknown"


# -- the factory image -----------------------------------------------------------

# Section sizes of the model's firmware (assumption: no stock dump is public); each
# fits between its image.cfg offset and the next one.
_BOOT_LEN = 10 * 1024
_APP_LEN = 21 * 1024
_XIP_LEN = 160 * 1024
_WLAN_BL_LEN = 2 * 1024
_WLAN_FW_LEN = 30 * 1024
_WLAN_SDD_LEN = 1024


def _body(rng: random.Random, n: int, prefix: bytes = b"") -> bytes:
    return (prefix + rng.randbytes(n))[:n]


def factory_sections(chip: str = "xr872", version: str = P.FIRMWARE_VERSION) -> list[SectionSpec]:
    """The XF16 firmware's sections. ``chip="xr809"`` gives the same firmware
    linked for an XR809 (boot and app in XR809 SRAM): what bricked the seed's unit."""
    if chip == "xr872":
        boot = (P.XR872_BOOT_LOAD, P.XR872_BOOT_ENTRY)
        app = (P.XR872_APP_LOAD, P.XR872_APP_ENTRY)
    elif chip == "xr809":
        boot = (P.XR809_BOOT_LOAD, P.XR809_BOOT_ENTRY)
        app = (P.XR809_APP_LOAD, P.XR809_APP_ENTRY)
    else:
        raise ValueError(f"unknown chip {chip!r}")
    # Same bytes for every unit of a firmware version: only the sysinfo differs.
    rng = random.Random(f"xf16-firmware-{chip}-{version}")
    return [
        SectionSpec(
            P.BOOT_OFFSET,
            BOOT_ID,
            _body(rng, _BOOT_LEN),
            *boot,
            priv=(0, END_OF_CHAIN, 0, 0, 0, 0),
        ),
        SectionSpec(
            P.APP_OFFSET,
            APP_ID,
            _body(rng, _APP_LEN, b"XF16-FW " + version.encode() + b"\0"),
            *app,
        ),
        SectionSpec(
            P.APP_XIP_OFFSET,
            APP_XIP_ID,
            _body(rng, _XIP_LEN),
            P.NO_LOAD,
            P.NO_LOAD,
            attribute=0x2,
        ),
        SectionSpec(P.WLAN_BL_OFFSET, WLAN_BL_ID, _body(rng, _WLAN_BL_LEN), P.NO_LOAD, P.NO_LOAD),
        SectionSpec(P.WLAN_FW_OFFSET, WLAN_FW_ID, _body(rng, _WLAN_FW_LEN), P.NO_LOAD, P.NO_LOAD),
        SectionSpec(
            P.WLAN_SDD_OFFSET, WLAN_SDD_ID, _body(rng, _WLAN_SDD_LEN), P.NO_LOAD, P.NO_LOAD
        ),
    ]


def factory_image(chip: str = "xr872", version: str = P.FIRMWARE_VERSION) -> bytes:
    """A full 1 MiB flash picture of the firmware, with the sysinfo area erased."""
    return build_image(factory_sections(chip, version))
