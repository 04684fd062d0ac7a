"""The XR872's identity: per-unit eFuse bytes and the SDK's ``sysinfo`` kept by FDCM.

Sources (XradioTech/xradio-skylark-sdk):

* ``project/common/framework/sysinfo.h``: ``struct sysinfo`` = version u32,
  ``sta_use_dhcp:1`` (a u32 bit-field), ``mac_addr[6]``, ``enum wlan_mode``,
  STA {ssid[32], ssid_len, psk[65]}, AP {ssid[32], ssid_len, psk[65],
  channel}, STA and AP netif {ip, mask, gw} (ip4_addr_t, u32 each). Laid out
  by GCC for ARM (a byte member packs into the tail of the bit-field's word;
  arm-none-eabi uses short enums): MAC at +5, wlan_mode at +11, STA at +12,
  AP at +110, netifs at +212 and +224, 236 bytes. (Derived from the header,
  not checked against a stock dump: an assumption in that sense.)
* ``project/common/prj_conf_opt.h``: sysinfo saved to flash, at
  ``(1024 - 4) * 1024`` = 0xFF000, 4 KiB; ``PRJCONF_MAC_ADDR_SOURCE`` defaults
  to ``SYSINFO_MAC_ADDR_CHIPID``.
* ``project/common/framework/sysinfo.c``: ``sysinfo_init`` loads the record
  through FDCM; when that fails (area blank, corrupt, or another record size)
  ``sysinfo_default`` zeroes it, sets the MAC, ``sta_use_dhcp = 1``, the AP
  netif 192.168.51.1/255.255.255.0/192.168.51.1, and **saves it** (FDCM
  write). When the load succeeds and the source is not FLASH, the MAC is
  recomputed at every boot in RAM only (the flash keeps whatever MAC it holds).
  MAC sources: CODE 00:80:e1:29:e8:d1; EFUSE (``efpg_read(MAC)``, random if
  none); CHIPID (``mac[i] = id[i]^id[i+6]^id[i+12]`` for i<2,
  ``id[i]^id[i+6]^id[i+10]`` for i>=2, ``mac[0] &= 0xFC``; random if all zero);
  FLASH (the MAC of the record in flash; random when it cannot be read).
  ``wlan_mode`` default STA (WLAN_MODE_STA = 0) when the STA interface is
  built in (assumption for the stock firmware).
* ``src/rom/rom_bin/src/image/fdcm.c``: FDCM area = header {id_code
  0xA55A5AA5 u32, bitmap_size u16, data_size u16} (little-endian), a bitmap
  (bit cleared = slot used; the used count is the 0-bits of the leading 0x00
  bytes plus the highest cleared bit of the first non-zero byte), then the
  slots. Read: header must carry the id, ``data_size`` equal to the size
  asked and ``0 < bitmap_size`` with ``bitmap_size + 8 < area size``;
  the record is slot ``used - 1``. Write: a header that does not fit is
  rewritten (erase the area, header, bitmap byte 0xFE, slot 0); otherwise
  the next bit is cleared and the next slot programmed; when the bitmap or the
  area is full, rewrite. ``bitmap_size = (size - 8 - 1) / (8 * data_size + 1) + 1``.
* ``src/efpg/efpg_i.h`` / ``efpg_efuse.c`` / ``src/driver/chip/hal_efuse.c``
  (chip arch 2 = XR872): 1024 eFuse bits (128 bytes) read as little-endian
  32-bit words, bit ``n`` = byte ``n // 8`` bit ``n % 8``. CHIPID: bits
  114..241 (16 bytes). MAC: flag bits 615..620 (1..7: the number of trailing
  one bits picks slot 1..3), slots of 48 bits at 621, 669, 717; a MAC whose
  bytes 3..5 are 6d 44 dc and whose byte 0 is odd is stored reversed.

Per-unit values (this model's choice): the chip id is 16 bytes of SHA-256 of
``xr872-chipid-<seed>``; the eFuse MAC (slot 1, flag 1) is ``02:80:72`` and
three bytes of SHA-256 of ``xr872-efuse-mac-<seed>``. Whether stock XF16 units
have an eFuse MAC is not known (assumption). Random MACs (the SDK's OS_Rand32)
are drawn from a generator seeded by the unit seed and the boot count.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field

from emulators.xr872 import profile as P

# -- MAC sources (sysinfo.h) ------------------------------------------------------------
MAC_CODE, MAC_EFUSE, MAC_CHIPID, MAC_FLASH = 0, 1, 2, 3
MAC_SOURCES = {"code": MAC_CODE, "efuse": MAC_EFUSE, "chipid": MAC_CHIPID, "flash": MAC_FLASH}
CODE_MAC = bytes([0x00, 0x80, 0xE1, 0x29, 0xE8, 0xD1])

WLAN_MODE_STA = 0
WLAN_MODE_HOSTAP = 1

# -- struct sysinfo (236 bytes, see the module docstring) ----------------------------------
SYSINFO_SIZE = 236
OFF_MAC = 5
OFF_WLAN_MODE = 11
OFF_STA = 12
OFF_AP = 110
OFF_NETIF_STA = 212
OFF_NETIF_AP = 224

# -- FDCM -----------------------------------------------------------------------------------
FDCM_ID = 0xA55A5AA5
FDCM_HEADER = struct.Struct("<IHH")
FDCM_INDEX_MAX = 1 << 10

# -- eFuse (arch 2) ------------------------------------------------------------------------
EFUSE_BYTES = 128
CHIPID_START, CHIPID_BITS = 114, 128
MAC_FLAG_START, MAC_FLAG_BITS = 615, 6
MAC_ADDR_START, MAC_ADDR_BITS = 621, 48


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# -- eFuse ------------------------------------------------------------------------------------
def _get_bits(efuse: bytes, start: int, n: int) -> bytes:
    value = int.from_bytes(efuse, "little") >> start
    value &= (1 << n) - 1
    return value.to_bytes((n + 7) // 8, "little")


def _set_bits(efuse: bytearray, start: int, n: int, data: bytes) -> None:
    whole = int.from_bytes(efuse, "little")
    mask = ((1 << n) - 1) << start
    whole = (whole & ~mask) | ((int.from_bytes(data, "little") << start) & mask)
    efuse[:] = whole.to_bytes(len(efuse), "little")


def unit_efuse(seed: int, *, with_mac: bool = True) -> bytes:
    """The unit's 128 eFuse bytes: its chip id and (by default) an eFuse MAC in slot 1."""
    fuse = bytearray(EFUSE_BYTES)
    chipid = hashlib.sha256(f"xr872-chipid-{seed}".encode()).digest()[:16]
    _set_bits(fuse, CHIPID_START, CHIPID_BITS, chipid)
    if with_mac:
        mac = (
            bytes([0x02, 0x80, 0x72])
            + hashlib.sha256(f"xr872-efuse-mac-{seed}".encode()).digest()[:3]
        )
        _set_bits(fuse, MAC_FLAG_START, MAC_FLAG_BITS, b"\x01")
        _set_bits(fuse, MAC_ADDR_START, MAC_ADDR_BITS, mac)
    return bytes(fuse)


def efuse_chipid(efuse: bytes) -> bytes:
    return _get_bits(efuse, CHIPID_START, CHIPID_BITS)


def efuse_mac(efuse: bytes) -> bytes | None:
    """``efpg_read(EFPG_FIELD_MAC)``: the MAC of the slot the flag names, or None."""
    flag = _get_bits(efuse, MAC_FLAG_START, MAC_FLAG_BITS)[0]
    if flag == 0 or flag > 7:
        return None
    idx = 0
    while flag & 1:
        flag >>= 1
        idx += 1
    mac = bytearray(_get_bits(efuse, MAC_ADDR_START + (idx - 1) * MAC_ADDR_BITS, MAC_ADDR_BITS))
    if mac[3:6] == b"\x6d\x44\xdc" and mac[0] & 1:
        mac.reverse()
    return bytes(mac)


def chipid_mac(chipid: bytes) -> bytes:
    """``sysinfo_gen_mac_by_chipid``."""
    mac = bytearray(6)
    for i in range(2):
        mac[i] = chipid[i] ^ chipid[i + 6] ^ chipid[i + 12]
    for i in range(2, 6):
        mac[i] = chipid[i] ^ chipid[i + 6] ^ chipid[i + 10]
    mac[0] &= 0xFC
    return bytes(mac)


def random_mac(rng: random.Random) -> bytes:
    mac = bytearray(rng.randrange(256) for _ in range(6))
    mac[0] &= 0xFC
    return bytes(mac)


# -- struct sysinfo -------------------------------------------------------------------------
@dataclass
class SysInfo:
    """The fields of ``struct sysinfo`` the model uses; ``raw`` keeps the rest."""

    raw: bytearray = field(default_factory=lambda: bytearray(SYSINFO_SIZE))

    @property
    def mac(self) -> bytes:
        return bytes(self.raw[OFF_MAC : OFF_MAC + 6])

    @mac.setter
    def mac(self, value: bytes) -> None:
        self.raw[OFF_MAC : OFF_MAC + 6] = value

    @property
    def wlan_mode(self) -> int:
        return self.raw[OFF_WLAN_MODE]

    @property
    def sta_ssid(self) -> str:
        n = min(self.raw[OFF_STA + 32], 32)
        return bytes(self.raw[OFF_STA : OFF_STA + n]).decode("latin-1")

    @property
    def ap_ssid(self) -> str:
        n = min(self.raw[OFF_AP + 32], 32)
        return bytes(self.raw[OFF_AP : OFF_AP + n]).decode("latin-1")

    @classmethod
    def default(cls, mac: bytes) -> SysInfo:
        """``sysinfo_default``: zeroes, the MAC, STA mode, DHCP, the AP netif."""
        info = cls()
        info.mac = mac
        info.raw[4] |= 1  # sta_use_dhcp
        info.raw[OFF_WLAN_MODE] = WLAN_MODE_STA
        ip, mask = bytes([192, 168, 51, 1]), bytes([255, 255, 255, 0])
        info.raw[OFF_NETIF_AP : OFF_NETIF_AP + 12] = ip + mask + ip
        return info

    def pack(self) -> bytes:
        return bytes(self.raw)


# -- FDCM ------------------------------------------------------------------------------------
def bitmap_size(area_size: int, data_size: int) -> int:
    return min((area_size - FDCM_HEADER.size - 1) // (data_size * 8 + 1) + 1, FDCM_INDEX_MAX)


def _used(bitmap: bytes) -> int:
    count = 0
    for b in bitmap:
        if b == 0:
            count += 8
            continue
        val = ~b & 0xFF
        while val:
            val >>= 1
            count += 1
        break
    return count


def fdcm_read(
    area: bytes,
    data_size: int = SYSINFO_SIZE,
    base: int = P.SYSINFO_OFFSET,
    flash: bytes | None = None,
) -> bytes | None:
    """``fdcm_read`` over ``area`` (the 4 KiB at ``base``); None when it returns 0.

    With no used slot the SDK reads the ``data_size`` bytes just before the
    slots (its address arithmetic wraps); ``flash`` (the whole chip) lets the
    model do the same."""
    if len(area) < FDCM_HEADER.size:
        return None
    ident, bsize, dsize = FDCM_HEADER.unpack_from(area)
    if (
        ident != FDCM_ID
        or dsize != data_size
        or bsize == 0
        or bsize + FDCM_HEADER.size >= len(area)
    ):
        return None
    used = _used(area[FDCM_HEADER.size : FDCM_HEADER.size + bsize])
    off = FDCM_HEADER.size + bsize + data_size * (used - 1)
    if off < 0:
        if flash is None:
            return None
        start = base + off
        return bytes(flash[start : start + data_size])
    if off + data_size > len(area):
        return bytes(area[off:]) + b"\xff" * (off + data_size - len(area))
    return bytes(area[off : off + data_size])


@dataclass
class FdcmWrite:
    """What ``fdcm_write`` does to the flash: erase the area first or not, then program."""

    erase: bool
    programs: list[tuple[int, bytes]]  # (offset in the area, bytes)


def fdcm_write(area: bytes, data: bytes) -> FdcmWrite:
    size = len(area)
    ident, bsize, dsize = FDCM_HEADER.unpack_from(area)
    if ident != FDCM_ID or dsize != len(data) or bsize == 0 or bsize + FDCM_HEADER.size >= size:
        return _rewrite(size, data)
    used = _used(area[FDCM_HEADER.size : FDCM_HEADER.size + bsize])
    if used >= 8 * bsize or FDCM_HEADER.size + bsize + len(data) * (used + 1) > size:
        return _rewrite(size, data)
    index = used // 8
    byte = area[FDCM_HEADER.size + index] & ~(1 << (used % 8)) & 0xFF
    slot = FDCM_HEADER.size + bsize + len(data) * used
    return FdcmWrite(False, [(FDCM_HEADER.size + index, bytes([byte])), (slot, data)])


def _rewrite(size: int, data: bytes) -> FdcmWrite:
    bsize = bitmap_size(size, len(data))
    head = FDCM_HEADER.pack(FDCM_ID, bsize, len(data))
    return FdcmWrite(
        True, [(0, head), (FDCM_HEADER.size, b"\xfe"), (FDCM_HEADER.size + bsize, data)]
    )


def fdcm_area(data: bytes, size: int = P.SYSINFO_SIZE) -> bytes:
    """A freshly rewritten FDCM area holding ``data`` in slot 0."""
    out = bytearray(b"\xff" * size)
    for off, chunk in _rewrite(size, data).programs:
        out[off : off + len(chunk)] = chunk
    return bytes(out)


def factory_sysinfo_area(seed: int, mac_source: int = MAC_CHIPID) -> bytes:
    """The sysinfo area of a unit whose firmware booted once on a blank area."""
    fuse = unit_efuse(seed)
    if mac_source == MAC_CHIPID:
        mac = chipid_mac(efuse_chipid(fuse))
    elif mac_source == MAC_EFUSE:
        mac = efuse_mac(fuse) or random_mac(random.Random(f"xr872-{seed}-0"))
    elif mac_source == MAC_CODE:
        mac = CODE_MAC
    else:  # FLASH on a blank area: fdcm_read fails, a random MAC is saved
        mac = random_mac(random.Random(f"xr872-{seed}-0"))
    return fdcm_area(SysInfo.default(mac).pack())
