"""The XR872's flash contents: AWIH images and the system-info record; pure bytes -> data.

Images (XRadio SDK ``image.h``): a chain of 64-byte ``AWIH`` section headers
from offset 0, the boot section first; checksums are checksum16 with a valid
header summing to 0xFFFF and checksum16(data) + data_chksum == 0xFFFF. An
image is for the XR872 when its boot/app sections load into the XR872's SRAM
(0x00200000-0x0027FFFF: boot 0x00268000, app 0x00201000 in the skylark SDK);
an XR809/XR871 image loads below 0x00100000 (boot 0x00067000 or 0x00010000,
app 0x00010000) and may carry a ``net`` section, which the XR872 has not.

The unit's own data (XradioTech/xradio-skylark-sdk): ``sysinfo``, the SDK's
``struct sysinfo`` (236 bytes: version u32, a dhcp bit, ``mac_addr`` at +5,
wlan mode, STA and AP ssid/psk, netifs; ``sysinfo.h``) kept by FDCM
(``fdcm.c``) in the 4 KiB at :data:`SYSINFO_OFFSET` = 0xFF000
(``prj_conf_opt.h``; phoenixMC ``dwSysinfoAddr=000FF000``). FDCM: header
{0xA55A5AA5, bitmap_size u16, data_size u16} little-endian, a bitmap whose
cleared bits mark used slots, then the slots; the current record is the last
used one. The firmware rebuilds a missing or invalid sysinfo from defaults at
boot (``sysinfo.c``). The eFuse (128 bytes, bit n = byte n//8 bit n%8;
``efpg_i.h`` for chip arch 2): chip id at bit 114 (16 bytes), MAC flag at 615
(6 bits, the trailing ones pick slot 1..3), MAC slots of 48 bits at 621, 669,
717; the SDK's CHIPID MAC is ``id[i]^id[i+6]^id[i+12]`` (i<2),
``id[i]^id[i+6]^id[i+10]`` (i>=2), ``mac[0] &= 0xFC`` (``sysinfo.c``).
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
SYSINFO_OFFSET = 0xFF000  # PRJCONF_SYSINFO_ADDR (1024 - 4) * 1024
SYSINFO_SIZE = 0x1000
SYSINFO_RECORD = 236  # sizeof(struct sysinfo) with the SDK's defaults
FDCM_ID = 0xA55A5AA5
IMAGE_AREA_END = SYSINFO_OFFSET  # image.cfg max_size 1020K: the image may not reach sysinfo

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


def image_sectors(sections: list[Section], sector: int = SECTOR) -> set[int]:
    """The offsets of the sectors that hold part of a section (header or data)."""
    out: set[int] = set()
    for sec in sections:
        end = sec.offset + 64 + sec.data_size
        out.update(range(sec.offset // sector * sector, end, sector))
    return out


# -- sysinfo (FDCM) and eFuse ----------------------------------------------------------
def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_mac(text: str) -> str:
    digits = re.sub(r"[^0-9a-fA-F]", "", text)
    if len(digits) != 12:
        raise ValueError(f"{text!r} is not a MAC address (12 hex digits)")
    return format_mac(bytes.fromhex(digits))


@dataclass
class SysInfo:
    """What the firmware's FDCM read finds in the sysinfo area."""

    valid: bool
    reason: str  # why not valid ("" when valid)
    mac: str | None = None
    sta_ssid: str | None = None
    ap_ssid: str | None = None
    slots_used: int = 0
    erased: bool = False


def _used_slots(bitmap: bytes) -> int:
    """Slots in use: 8 per all-cleared byte, then the highest cleared bit of the first
    byte that is not all cleared (fdcm.c counts the same way)."""
    for i, b in enumerate(bitmap):
        if b:
            return 8 * i + (~b & 0xFF).bit_length()
    return 8 * len(bitmap)


def _ssid(raw: bytes, off: int) -> str:
    n = min(raw[off + 32], 32)
    return raw[off : off + n].decode("latin-1")


def parse_sysinfo(area: bytes) -> SysInfo:
    """The sysinfo record as ``fdcm_read`` finds it in ``area`` (the 4 KiB at 0xFF000)."""
    if len(area) < 8:
        return SysInfo(False, "the area is missing")
    if area == b"\xff" * len(area):
        return SysInfo(False, "the area is erased", erased=True)
    ident, bsize, dsize = struct.unpack_from("<IHH", area)
    if ident != FDCM_ID:
        return SysInfo(False, f"no FDCM header (id 0x{ident:08x})")
    if dsize != SYSINFO_RECORD:
        return SysInfo(False, f"FDCM records of {dsize} bytes, not {SYSINFO_RECORD}")
    if bsize == 0 or bsize + 8 >= len(area):
        return SysInfo(False, f"bad FDCM bitmap size {bsize}")
    used = _used_slots(area[8 : 8 + bsize])
    if used == 0:
        return SysInfo(False, "the FDCM bitmap marks no record")
    off = 8 + bsize + dsize * (used - 1)
    if off + dsize > len(area):
        return SysInfo(False, f"the FDCM record {used} lies outside the area")
    rec = area[off : off + dsize]
    return SysInfo(True, "", format_mac(rec[5:11]), _ssid(rec, 12), _ssid(rec, 110), used, False)


@dataclass
class Efuse:
    """A unit's eFuse bytes and the MACs the SDK derives from them."""

    hex: str
    chip_id: str
    efuse_mac: str | None  # efpg_read(MAC), None when the eFuse holds none
    chipid_mac: str  # what PRJCONF_MAC_ADDR_SOURCE = CHIPID (the SDK default) gives


def _bits(raw: bytes, start: int, n: int) -> bytes:
    return ((int.from_bytes(raw, "little") >> start) & ((1 << n) - 1)).to_bytes(
        (n + 7) // 8, "little"
    )


def decode_efuse(raw: bytes) -> Efuse:
    chipid = _bits(raw, 114, 128)
    flag = _bits(raw, 615, 6)[0]
    emac: bytes | None = None
    if 0 < flag <= 7:
        idx = 0
        while flag & 1:
            flag >>= 1
            idx += 1
        mac = bytearray(_bits(raw, 621 + (idx - 1) * 48, 48))
        if mac[3:6] == b"\x6d\x44\xdc" and mac[0] & 1:
            mac.reverse()
        emac = bytes(mac)
    cm = bytearray(6)
    for i in range(2):
        cm[i] = chipid[i] ^ chipid[i + 6] ^ chipid[i + 12]
    for i in range(2, 6):
        cm[i] = chipid[i] ^ chipid[i + 6] ^ chipid[i + 10]
    cm[0] &= 0xFC
    return Efuse(raw.hex(), chipid.hex(), format_mac(emac) if emac else None, format_mac(bytes(cm)))
