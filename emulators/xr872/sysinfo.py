"""The XF16 system-info record: the unit's MAC address and AP name.

Where and what (an assumption of this model, documented in
docs/xr872-emulator.md; the XRadio SDK keeps its ``sysinfo`` in a flash
sector outside the image, and the XR872 SDK's image.cfg ends the image at
1020 KiB): the last 4 KiB sector of the 1 MiB flash, offset 0xFF000, holds one
64-byte little-endian record, the rest of the sector is erased (0xFF):

====== ====== ==========================================================
offset size   field
====== ====== ==========================================================
0x00   4      magic ``SYSI`` (0x53 0x59 0x53 0x49)
0x04   2      version, 1
0x06   2      checksum: XRadio checksum16 over the 64 bytes is 0xFFFF
0x08   6      MAC address, in transmission order
0x0E   1      wlan mode: 0 station, 1 hostap
0x0F   1      reserved, 0
0x10   32     AP name (SSID), ASCII, NUL padded
0x30   16     reserved, 0
====== ====== ==========================================================

A unit's MAC comes from its efuse: deterministic per emulator seed,
``aa:bb:cc:`` followed by three bytes of SHA-256 of ``xr872-mac-<seed>``. The
factory AP name is ``XF16-`` and the last two MAC bytes in upper-case hex.
When the record is missing or its checksum is wrong the firmware falls back
to the efuse MAC and the default AP name.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from emulators.xr872 import profile as P
from emulators.xr872.image import checksum16

MAGIC = b"SYSI"
VERSION = 1
RECORD_SIZE = 64
_RECORD = struct.Struct("<4sHH6sBB32s16s")
assert _RECORD.size == RECORD_SIZE

WLAN_STA = 0
WLAN_HOSTAP = 1


def efuse_mac(seed: int) -> bytes:
    """The unit's own MAC (its efuse), deterministic per seed."""
    return bytes([0xAA, 0xBB, 0xCC]) + hashlib.sha256(f"xr872-mac-{seed}".encode()).digest()[:3]


def default_ap_name(mac: bytes) -> str:
    return f"XF16-{mac[4]:02X}{mac[5]:02X}"


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@dataclass(frozen=True)
class SysInfo:
    mac: bytes
    ap_name: str
    wlan_mode: int = WLAN_HOSTAP

    def pack(self) -> bytes:
        name = self.ap_name.encode("ascii")
        if len(name) > 31:
            raise ValueError("AP name longer than 31 bytes")
        if len(self.mac) != 6:
            raise ValueError("a MAC address has 6 bytes")
        raw = _RECORD.pack(MAGIC, VERSION, 0, self.mac, self.wlan_mode, 0, name, b"")
        cs = ~checksum16(raw) & 0xFFFF
        return raw[:6] + struct.pack("<H", cs) + raw[8:]

    def sector(self) -> bytes:
        """The whole 4 KiB sysinfo sector as the factory programs it."""
        rec = self.pack()
        return rec + b"\xff" * (P.SYSINFO_SIZE - len(rec))

    @classmethod
    def for_seed(cls, seed: int) -> SysInfo:
        mac = efuse_mac(seed)
        return cls(mac, default_ap_name(mac))


def parse(raw: bytes) -> SysInfo | None:
    """The record at the start of ``raw``, or None if it is absent or corrupt."""
    if len(raw) < RECORD_SIZE:
        return None
    rec = bytes(raw[:RECORD_SIZE])
    magic, version, _cs, mac, mode, _r, name, _r2 = _RECORD.unpack(rec)
    if magic != MAGIC or version != VERSION or checksum16(rec) != 0xFFFF:
        return None
    text = name.split(b"\0", 1)[0].decode("latin-1")
    return SysInfo(bytes(mac), text, mode)
