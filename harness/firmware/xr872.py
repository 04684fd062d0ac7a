"""Builders of XRadio flash images for the XR872 (board XF16) and, as the wrong
image of the seed's story, the XR809.

Harness-side and independent: it shares no code with ``emulators/xr872`` or
``recovery/xr872``. Facts (shared/REFERENCE.md and the public XRadio SDKs'
``include/image/image.h`` and ``image.cfg`` files):

* An image is a chain of sections. Each starts with a 64-byte little-endian
  header (``section_header_t``): magic 0x48495741 (``AWIH``), version,
  header_chksum u16, data_chksum u16, data_size, load_addr, entry, body_len,
  attribute, next_addr, id, priv[6]. ``next_addr`` is the flash offset of the
  next section header, 0xFFFFFFFF on the last one.
* Checksums are checksum16 (sum of little-endian u16 words, odd byte alone,
  16-bit wrap): a valid header sums to 0xFFFF including ``header_chksum``;
  ``data_chksum`` is chosen so checksum16(body) + data_chksum == 0xFFFF.
* XR872 layout (skylark SDK ``project/image_cfg/image.cfg``): boot at 0 K
  (load 0x00268000, entry 0x00268101), app at 32 K (0x00201000/0x00201101),
  app_xip at 75 K (attr 0x2, no load address), wlan_bl 980 K, wlan_fw 985 K,
  wlan_sdd 1017 K; image max_size 1020 K.
* XR809 layout (XR809 SDK ``image.cfg``): boot at 0 K (0x00067000/0x00067101),
  app at 32 K (0x00010000/0x00010101), app_xip 153 K, net 233 K
  (load 0x60000000), net_ap 455 K, wlan_bl 707 K, wlan_fw 710 K, wlan_sdd 838 K.

The sysinfo area (0xFF000, 4 KiB; SDK ``prj_conf_opt.h``) is the SDK's
``struct sysinfo`` (``sysinfo.h``; 236 bytes, MAC at +5) kept by FDCM
(``fdcm.c``): header {0xA55A5AA5, bitmap_size, data_size}, bitmap, slots. A
unit's MAC under the SDK default source (CHIPID) comes from its chip id
(``sysinfo.c``); the emulator's per-unit chip id is 16 bytes of SHA-256 of
``xr872-chipid-<seed>`` (docs/xr872-emulator.md), restated here in
:func:`chipid_mac`.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, replace

FLASH_SIZE = 0x100000
SECTOR = 0x1000
AWIH_MAGIC = 0x48495741
HEADER_SIZE = 64
NO_ADDR = 0xFFFFFFFF
IMAGE_VERSION = 3  # "0.3" in image.cfg

BOOT_ID = 0xA5FF5A00
APP_ID = 0xA5FE5A01
APP_XIP_ID = 0xA5FD5A02
NET_ID = 0xA5FC5A03
NET_AP_ID = 0xA5FB5A04
WLAN_BL_ID = 0xA5FA5A05
WLAN_FW_ID = 0xA5F95A06
WLAN_SDD_ID = 0xA5F85A07

_HDR = struct.Struct("<IIHHIIIIIII6I")


def checksum16(data: bytes) -> int:
    total = 0
    n = len(data) & ~1
    for (w,) in struct.iter_unpack("<H", data[:n]):
        total += w
    if len(data) & 1:
        total += data[-1]
    return total & 0xFFFF


@dataclass(frozen=True)
class SectionSpec:
    """One section to place: where it goes in flash and what it holds."""

    name: str
    id: int
    offset: int
    load_addr: int
    entry: int
    body: bytes
    attribute: int = 0x1
    priv: tuple[int, ...] = (0, 0, 0, 0, 0, 0)


def section_header(spec: SectionSpec, next_addr: int, version: int = IMAGE_VERSION) -> bytes:
    """The 64-byte header of ``spec`` with both checksums filled in."""
    data_cs = (0xFFFF - checksum16(spec.body)) & 0xFFFF
    fields = [
        AWIH_MAGIC,
        version,
        0,
        data_cs,
        len(spec.body),
        spec.load_addr,
        spec.entry,
        len(spec.body),
        spec.attribute,
        next_addr,
        spec.id,
        *spec.priv,
    ]
    raw = _HDR.pack(*fields)
    fields[2] = (0xFFFF - checksum16(raw)) & 0xFFFF
    return _HDR.pack(*fields)


def _body(rng: random.Random, size: int, text: bytes) -> bytes:
    """A body: an ARM-looking vector table, some text, then seeded bytes."""
    head = struct.pack("<II", 0x0027FFF0, 0x00000101) + text
    rest = size - len(head)
    return head + rng.randbytes(max(0, rest))


def xr872_sections(seed: int = 0, *, app_size: int = 40_000, xip_size: int = 120_000) -> list:
    """The sections of a realistic XR872 camera firmware (sizes scaled down)."""
    rng = random.Random(f"xr872-{seed}")
    k = 1024
    return [
        SectionSpec(
            "boot", BOOT_ID, 0, 0x00268000, 0x00268101,
            _body(rng, 11_500, b"XRADIO skylark boot 0.3 (XR872)\0"),
        ),
        SectionSpec(
            "app", APP_ID, 32 * k, 0x00201000, 0x00201101,
            _body(rng, app_size, b"XF16 camera app (XR872 skylark SDK)\0"),
        ),
        SectionSpec(
            "app_xip", APP_XIP_ID, 75 * k, NO_ADDR, NO_ADDR,
            _body(rng, xip_size, b"app_xip\0"), attribute=0x2,
        ),
        SectionSpec("wlan_bl", WLAN_BL_ID, 980 * k, NO_ADDR, NO_ADDR, _body(rng, 2_300, b"wlbl\0")),
        SectionSpec("wlan_fw", WLAN_FW_ID, 985 * k, NO_ADDR, NO_ADDR, _body(rng, 24_000, b"wlfw\0")),
        SectionSpec("wlan_sdd", WLAN_SDD_ID, 1017 * k, NO_ADDR, NO_ADDR, _body(rng, 1_900, b"sdd\0")),
    ]  # fmt: skip


def xr809_sections(seed: int = 0) -> list:
    """The sections of an XR809 firmware (as OpenXR809 builds it), sizes scaled down."""
    rng = random.Random(f"xr809-{seed}")
    k = 1024
    return [
        SectionSpec("boot", BOOT_ID, 0, 0x00067000, 0x00067101, _body(rng, 10_000, b"XR809 boot\0")),
        SectionSpec("app", APP_ID, 32 * k, 0x00010000, 0x00010101, _body(rng, 50_000, b"OpenXR809\0")),
        SectionSpec("app_xip", APP_XIP_ID, 153 * k, NO_ADDR, NO_ADDR, _body(rng, 60_000, b"xip\0"), attribute=0x2),
        SectionSpec("net", NET_ID, 233 * k, 0x60000000, NO_ADDR, _body(rng, 30_000, b"net\0")),
        SectionSpec("net_ap", NET_AP_ID, 455 * k, 0x60000000, NO_ADDR, _body(rng, 30_000, b"netap\0")),
        SectionSpec("wlan_bl", WLAN_BL_ID, 707 * k, NO_ADDR, NO_ADDR, _body(rng, 2_300, b"wlbl\0")),
        SectionSpec("wlan_fw", WLAN_FW_ID, 710 * k, NO_ADDR, NO_ADDR, _body(rng, 24_000, b"wlfw\0")),
        SectionSpec("wlan_sdd", WLAN_SDD_ID, 838 * k, NO_ADDR, NO_ADDR, _body(rng, 1_900, b"sdd\0")),
    ]  # fmt: skip


def build_image(sections: list, version: int = IMAGE_VERSION) -> bytes:
    """An ``xr_system.img``: the sections at their offsets, 0xFF between, ending
    with the last section's body."""
    secs = sorted(sections, key=lambda s: s.offset)
    end = max(s.offset + HEADER_SIZE + len(s.body) for s in secs)
    out = bytearray(b"\xff" * end)
    for i, s in enumerate(secs):
        nxt = secs[i + 1].offset if i + 1 < len(secs) else NO_ADDR
        if i + 1 < len(secs) and s.offset + HEADER_SIZE + len(s.body) > nxt:
            raise ValueError(f"section {s.name} overlaps {secs[i + 1].name}")
        blob = section_header(s, nxt, version) + s.body
        out[s.offset : s.offset + len(blob)] = blob
    return bytes(out)


# -- sysinfo (FDCM) -----------------------------------------------------------------
SYSINFO_OFFSET = 0xFF000
SYSINFO_SIZE = 0x1000
SYSINFO_RECORD = 236
FDCM_ID = 0xA55A5AA5


def chipid_mac(seed: int) -> bytes:
    """The MAC the SDK's CHIPID source gives the emulated unit ``seed``."""
    cid = hashlib.sha256(f"xr872-chipid-{seed}".encode()).digest()[:16]
    mac = bytearray(cid[i] ^ cid[i + 6] ^ cid[i + 12] for i in range(2))
    mac += bytes(cid[i] ^ cid[i + 6] ^ cid[i + 10] for i in range(2, 6))
    mac[0] &= 0xFC
    return bytes(mac)


def sysinfo_record(mac: bytes, *, sta_ssid: str = "", sta_psk: str = "") -> bytes:
    """``struct sysinfo`` as ``sysinfo_default`` fills it (version 0, DHCP on, STA mode,
    AP netif 192.168.51.1/24), with ``mac`` and optionally a station SSID/PSK."""
    if len(mac) != 6:
        raise ValueError("a MAC address is 6 bytes")
    ssid, psk = sta_ssid.encode(), sta_psk.encode()
    if len(ssid) > 32 or len(psk) > 64:
        raise ValueError("an SSID is at most 32 bytes, a PSK at most 64")
    rec = bytearray(SYSINFO_RECORD)
    rec[4] = 1  # sta_use_dhcp
    rec[5:11] = mac
    rec[11] = 0  # WLAN_MODE_STA
    rec[12 : 12 + len(ssid)] = ssid
    rec[44] = len(ssid)
    rec[45 : 45 + len(psk)] = psk
    rec[224:236] = bytes([192, 168, 51, 1, 255, 255, 255, 0, 192, 168, 51, 1])
    return bytes(rec)


def sysinfo_area(*records: bytes) -> bytes:
    """A 4 KiB FDCM area holding ``records`` in slots 0, 1, ... (the last one is current)."""
    bsize = (SYSINFO_SIZE - 8 - 1) // (SYSINFO_RECORD * 8 + 1) + 1
    out = bytearray(b"\xff" * SYSINFO_SIZE)
    out[0:8] = struct.pack("<IHH", FDCM_ID, bsize, SYSINFO_RECORD)
    bits = ~((1 << len(records)) - 1) & ((1 << (8 * bsize)) - 1)
    out[8 : 8 + bsize] = bits.to_bytes(bsize, "little")
    for k, rec in enumerate(records):
        off = 8 + bsize + SYSINFO_RECORD * k
        out[off : off + SYSINFO_RECORD] = rec
    return bytes(out)


def build_flash(
    image: bytes,
    *,
    sysinfo: bytes | None = None,
    base: bytes | None = None,
    size: int = FLASH_SIZE,
) -> bytes:
    """A whole flash: ``base`` (default: erased) with ``image`` at offset 0 (the
    sectors it covers erased first) and the system-info sector."""
    out = bytearray(base if base is not None else b"\xff" * size)
    if len(out) != size:
        raise ValueError(f"base is {len(out)} bytes, flash is {size}")
    if len(image) > size:
        raise ValueError("image larger than the flash")
    end = -(-len(image) // SECTOR) * SECTOR
    out[:end] = b"\xff" * end
    out[: len(image)] = image
    if sysinfo is not None:
        if len(image) > SYSINFO_OFFSET:
            raise ValueError("the image runs into the system-info area")
        out[SYSINFO_OFFSET : SYSINFO_OFFSET + len(sysinfo)] = sysinfo
    return bytes(out)


def xr872_flash(
    seed: int = 0,
    *,
    mac: bytes | None = None,
    sta_ssid: str = "",
    sysinfo: str = "valid",
) -> bytes:
    """A working XF16 camera's full 1 MiB flash: the image and its sysinfo, whose first
    record ``sysinfo_default`` saved (the MAC the SDK default CHIPID gives unit ``seed``,
    or ``mac``); ``sta_ssid`` adds a second record as after a Wi-Fi setup.
    ``sysinfo="blank"`` leaves the area erased, ``"corrupt"`` breaks its FDCM header."""
    rec = sysinfo_record(mac if mac is not None else chipid_mac(seed))
    records = [rec]
    if sta_ssid:
        records.append(sysinfo_record(rec[5:11], sta_ssid=sta_ssid, sta_psk=f"psk-{seed}"))
    if sysinfo == "blank":
        area = b"\xff" * SYSINFO_SIZE
    elif sysinfo in ("valid", "corrupt"):
        area = sysinfo_area(*records)
        if sysinfo == "corrupt":
            area = b"\x00" + area[1:]
    else:
        raise ValueError("sysinfo is valid, blank or corrupt")
    return build_flash(build_image(xr872_sections(seed)), sysinfo=area)


def bricked_flash(original: bytes, seed: int = 0) -> bytes:
    """The field case's brick (the XR872 write-up): an XR809 ``xr_system.img`` written at 0 over a working
    XR872 flash (PhoenixMC erases and writes only what the image covers, so the
    rest, including the system info, stays)."""
    return build_flash(build_image(xr809_sections(seed)), base=original)


# -- deliberately broken images --------------------------------------------------------
CORRUPTIONS = ("magic", "header_checksum", "data_checksum", "truncate", "chain", "not_boot_first")


def corrupt_image(image: bytes, kind: str, section_offset: int = 0) -> bytes:
    """``image`` with one defect in the section whose header is at ``section_offset``."""
    out = bytearray(image)
    o = section_offset
    if kind == "magic":
        out[o : o + 4] = b"AWIX"
    elif kind == "header_checksum":
        out[o + 20] ^= 0x01  # entry low byte: the header no longer sums to 0xFFFF
    elif kind == "data_checksum":
        out[o + HEADER_SIZE + 100] ^= 0x80
    elif kind == "truncate":
        size = struct.unpack_from("<I", out, o + 12)[0]
        return bytes(out[: o + HEADER_SIZE + size // 2])
    elif kind == "chain":
        _rewrite_header(out, o, next_addr=0x00200000)
    elif kind == "not_boot_first":  # always the first section
        _rewrite_header(out, 0, id=APP_ID)
    else:
        raise ValueError(f"unknown corruption {kind!r}; one of {CORRUPTIONS}")
    return bytes(out)


def _rewrite_header(buf: bytearray, o: int, **changes: int) -> None:
    """Change header fields and fix the header checksum, so only the change is wrong."""
    names = ("magic", "version", "hcs", "dcs", "data_size", "load_addr", "entry", "body_len",
             "attribute", "next_addr", "id")  # fmt: skip
    fields = list(_HDR.unpack_from(buf, o))
    for k, v in changes.items():
        fields[names.index(k)] = v
    fields[2] = 0
    fields[2] = (0xFFFF - checksum16(_HDR.pack(*fields))) & 0xFFFF
    buf[o : o + HEADER_SIZE] = _HDR.pack(*fields)


def with_sections(sections: list, **changes: object) -> list:
    """Copy of ``sections`` with fields of the named sections replaced:
    ``with_sections(s, app={"load_addr": 0x10000})``."""
    return [replace(s, **changes[s.name]) if s.name in changes else s for s in sections]  # type: ignore[arg-type]


# What scenarios may name (``{builder: NAME, ...}``; ``camrescue scenarios builders``
# lists them with their arguments) and the values some arguments take there.
BUILDERS = ("xr872_flash", "bricked_flash", "corrupt_image")
BUILDER_CHOICES = {"sysinfo": ("valid", "blank", "corrupt"), "kind": CORRUPTIONS}
