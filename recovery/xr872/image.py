"""The XR872's flash contents: AWIH images and the system-info record; pure bytes -> data.

Images (XRadio SDK ``image.h``): a chain of 64-byte ``AWIH`` section headers
from offset 0, the boot section first; checksums are checksum16 with a valid
header summing to 0xFFFF and checksum16(data) + data_chksum == 0xFFFF. An
image is for the XR872 when its boot/app sections load into the XR872's SRAM
(0x00200000-0x0027FFFF: boot 0x00268000, app 0x00201000 in the skylark SDK);
an XR809/XR871 image loads below 0x00100000 (boot 0x00067000 or 0x00010000,
app 0x00010000) and may carry a ``net`` section, which the XR872 has not.

The system-info record (MAC address, AP name) sits in the last 4 KiB sector,
:data:`SYSINFO_OFFSET` (the XF16 layout, see :func:`parse_sysinfo`).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from recovery.xr872 import brom

# -- flash layout --------------------------------------------------------------------
FLASH_SIZE = 0x100000
SECTOR = 0x1000
BLOCK = 0x10000
SYSINFO_OFFSET = 0xFF000  # the last 4 KiB sector (docs/xr872-emulator.md)
SYSINFO_SIZE = 0x1000
SYSINFO_MAGIC = b"SYSI"
IMAGE_AREA_END = SYSINFO_OFFSET  # the image may not run into the system info

# -- image format ------------------------------------------------------------------
AWIH_MAGIC = 0x48495741
SECTION_HEADER = struct.Struct("<IIHHIIIIIII24s")
SECTION_NAMES = {
    0xA5FF5A00: "boot",
    0xA5FE5A01: "app",
    0xA5FD5A02: "app_xip",
    0xA5FC5A03: "net",
    0xA5FB5A04: "net_ap",
    0xA5FA5A05: "wlan_bl",
    0xA5F95A06: "wlan_fw",
    0xA5F85A07: "wlan_sdd",
    0xA5F75A08: "app_ext",
    0xA5F65A09: "app_psram",
}
BOOT_ID = 0xA5FF5A00
APP_ID = 0xA5FE5A01
NET_ID = 0xA5FC5A03
NO_ADDR = 0xFFFFFFFF
XR872_SRAM = (0x00200000, 0x00280000)


@dataclass
class Section:
    offset: int
    id: int
    name: str
    version: int
    data_size: int
    load_addr: int
    entry: int
    attribute: int
    next_addr: int
    header_ok: bool
    data_ok: bool | None  # None: the body was not (fully) available


@dataclass
class ImageCheck:
    """What the engine thinks of an image or a flash dump."""

    size: int
    sections: list[Section]
    chip: str  # "xr872", "xr809", "unknown"
    problems: list[str]

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def end(self) -> int:
        """One past the last byte of the last section."""
        return max((s.offset + 64 + s.data_size for s in self.sections), default=0)


def _checksum16(data: bytes) -> int:
    return brom.checksum16(data)


def parse_sections(
    buf: bytes, *, max_sections: int = 32, limit: int | None = None, check_data: bool = True
) -> tuple[list[Section], list[str]]:
    """Follow the AWIH chain from offset 0. Returns the sections and the problems found."""
    limit = len(buf) if limit is None else limit
    secs: list[Section] = []
    problems: list[str] = []
    off = 0
    seen: set[int] = set()
    while off != NO_ADDR:
        if off in seen or len(secs) >= max_sections:
            problems.append(f"the section chain loops at 0x{off:x}")
            break
        seen.add(off)
        if off + 64 > len(buf):
            problems.append(
                f"section header at 0x{off:x} is past the end of the data ({len(buf)} bytes): "
                "the image is truncated"
                if off + 64 <= limit
                else f"section at 0x{off:x} points outside the flash"
            )
            break
        raw = buf[off : off + 64]
        f = SECTION_HEADER.unpack(raw)
        magic, version, _hcs, dcs, dsize, load, entry, _blen, attr, nxt, sid, _priv = f
        if magic != AWIH_MAGIC:
            what = "no section header" if off == 0 else "a broken section chain"
            problems.append(f"{what} at 0x{off:x}: no AWIH magic (found {raw[:4]!r})")
            break
        header_ok = _checksum16(raw) == 0xFFFF
        name = SECTION_NAMES.get(sid, f"0x{sid:08x}")
        data_ok: bool | None = None
        body_end = off + 64 + dsize
        if body_end > len(buf):
            if body_end <= limit:
                problems.append(
                    f"section {name} at 0x{off:x} needs {dsize} bytes of data, only "
                    f"{max(0, len(buf) - off - 64)} present: the image is truncated"
                )
            else:
                problems.append(f"section {name} at 0x{off:x} runs past the end of the flash")
        elif check_data:
            data_ok = (_checksum16(buf[off + 64 : body_end]) + dcs) & 0xFFFF == 0xFFFF
        if not header_ok:
            problems.append(f"section {name} at 0x{off:x}: bad header checksum")
        if data_ok is False:
            problems.append(f"section {name} at 0x{off:x}: bad data checksum")
        secs.append(
            Section(off, sid, name, version, dsize, load, entry, attr, nxt, header_ok, data_ok)
        )
        if not header_ok:
            break  # its next_addr cannot be trusted
        if nxt != NO_ADDR and nxt < body_end:
            problems.append(f"section {name} at 0x{off:x}: next section 0x{nxt:x} overlaps it")
            break
        off = nxt
    return secs, problems


def next_addr(buf: bytes | bytearray, off: int) -> int:
    """The ``next_addr`` field of the section header at ``off``."""
    return SECTION_HEADER.unpack_from(buf, off)[9]


def classify_chip(sections: list[Section]) -> str:
    """xr872 / xr809 from where the boot and app sections load (see module docstring)."""
    votes = set()
    for s in sections:
        if s.id in (BOOT_ID, APP_ID) and s.load_addr != NO_ADDR:
            if XR872_SRAM[0] <= s.load_addr < XR872_SRAM[1]:
                votes.add("xr872")
            elif s.load_addr < 0x00100000:
                votes.add("xr809")
            else:
                votes.add("unknown")
        if s.id == NET_ID:
            votes.add("xr809")
    if len(votes) == 1:
        return votes.pop()
    return "xr809" if "xr809" in votes else "unknown"


def layout_problems(secs: list[Section], chip: str) -> list[str]:
    """What is wrong with a section chain as a whole (boot first, an app, the chip)."""
    problems: list[str] = []
    if secs:
        if secs[0].id != BOOT_ID:
            problems.append(f"the first section is {secs[0].name}, not boot")
        if not any(s.id == APP_ID for s in secs):
            problems.append("there is no app section")
        if chip == "xr809":
            problems.append(
                "this image is built for the XR809 (it loads at "
                f"0x{secs[0].load_addr:08x}); the XR872 ROM refuses it and stays in recovery mode"
            )
        elif chip != "xr872":
            problems.append("the load addresses are not those of an XR872 image")
    end = max((s.offset + 64 + s.data_size for s in secs), default=0)
    if end > IMAGE_AREA_END:
        problems.append(
            f"the image runs to 0x{end:x}, into the system-info sector at 0x{IMAGE_AREA_END:x}"
        )
    return problems


def check_image(buf: bytes, flash_size: int = FLASH_SIZE, *, check_data: bool = True) -> ImageCheck:
    """Everything that makes ``buf`` unfit to be written to an XR872 at offset 0."""
    problems: list[str] = []
    if not buf:
        return ImageCheck(0, [], "unknown", ["the file is empty"])
    if len(buf) > flash_size:
        problems.append(f"{len(buf)} bytes do not fit a {flash_size // 1024} KiB flash")
    secs, sp = parse_sections(buf, limit=flash_size, check_data=check_data)
    problems += sp
    chip = classify_chip(secs)
    problems += layout_problems(secs, chip)
    return ImageCheck(len(buf), secs, chip, problems)


# -- system info (MAC, AP name) ------------------------------------------------------
@dataclass
class Identity:
    mac: str  # "fc:ee:91:12:34:56"
    ap_name: str

    @property
    def mac_bytes(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_mac(text: str) -> str:
    digits = re.sub(r"[^0-9a-fA-F]", "", text)
    if len(digits) != 12:
        raise ValueError(f"{text!r} is not a MAC address (12 hex digits)")
    return format_mac(bytes.fromhex(digits))


_SYSINFO = struct.Struct("<4sHH6sBB32s16s")  # 64 bytes


def parse_sysinfo(area: bytes) -> Identity | None:
    """The identity in a system-info area (the 4 KiB at :data:`SYSINFO_OFFSET`), or None.

    The XF16 record (docs/xr872-emulator.md), 64 bytes little-endian: magic
    ``SYSI``, version u16 (1), checksum u16 (checksum16 of the 64 bytes is
    0xFFFF), MAC[6] in transmission order, wlan mode u8, reserved u8, AP name
    [32] NUL padded, reserved [16].
    """
    if len(area) < _SYSINFO.size:
        return None
    rec = bytes(area[: _SYSINFO.size])
    magic, version, _cs, mac, _mode, _r, name, _r2 = _SYSINFO.unpack(rec)
    if magic != SYSINFO_MAGIC or version != 1 or _checksum16(rec) != 0xFFFF:
        return None
    return Identity(format_mac(mac), name.split(b"\0", 1)[0].decode("latin-1"))


def patch_sysinfo(flash: bytes, ident: Identity) -> bytes:
    """``flash`` (a whole dump) with ``ident`` in its system-info record, checksum fixed;
    the record's other fields are kept."""
    rec = flash[SYSINFO_OFFSET : SYSINFO_OFFSET + _SYSINFO.size]
    if parse_sysinfo(rec) is None:
        raise ValueError("the donor's system-info record is not valid, it cannot be patched")
    name = ident.ap_name.encode("ascii")
    if len(name) > 31:
        raise ValueError("the AP name is at most 31 characters")
    magic, version, _cs, _mac, mode, r, _name, r2 = _SYSINFO.unpack(rec)
    new = _SYSINFO.pack(magic, version, 0, ident.mac_bytes, mode, r, name.ljust(32, b"\0"), r2)
    cs = ~_checksum16(new) & 0xFFFF
    new = new[:6] + struct.pack("<H", cs) + new[8:]
    out = bytearray(flash)
    out[SYSINFO_OFFSET : SYSINFO_OFFSET + len(new)] = new
    return bytes(out)
