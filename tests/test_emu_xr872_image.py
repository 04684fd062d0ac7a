"""The emulator's AWIH image checks, factory image and sysinfo record."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.xr872 import sysinfo as S
from emulators.xr872.board import factory_flash_image
from emulators.xr872.image import (
    check_boot_section,
    check_image,
    checksum16,
    factory_image,
)


def naive_cs16(data: bytes) -> int:
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += data[i] + 256 * data[i + 1]
    if len(data) % 2:
        total += data[-1]
    return total % 65536


@given(st.binary(max_size=300))
def test_checksum16_matches_the_definition(data):
    assert checksum16(data) == naive_cs16(data)


def reader(img: bytes):
    return lambda off, n: img[off : off + n]


def test_factory_image_layout_and_sums():
    img = factory_image()
    assert len(img) == 1 << 20
    res = check_image(reader(img))
    assert res.ok, res.reason
    offsets = [off for off, _ in res.sections]
    # skylark SDK project/image_cfg/image.cfg: 0K, 32K, 75K, 980K, 985K, 1017K
    assert offsets == [0x0, 0x8000, 75 << 10, 980 << 10, 985 << 10, 1017 << 10]
    assert [h.name for _, h in res.sections] == [
        "boot",
        "app",
        "app_xip",
        "wlan_bl",
        "wlan_fw",
        "wlan_sdd",
    ]
    for off, hdr in res.sections:
        raw = img[off : off + 64]
        assert raw[:4] == b"AWIH"
        assert naive_cs16(raw) == 0xFFFF  # a valid header sums to 0xFFFF
        body = img[off + 64 : off + 64 + hdr.data_size]
        assert (hdr.data_chksum + naive_cs16(body)) % 65536 == 0xFFFF
    boot = res.sections[0][1]
    assert (boot.load_addr, boot.entry) == (0x00268000, 0x00268101)
    assert img[0xFF000:] == b"\xff" * 0x1000  # no sysinfo in the bare image


def test_xr809_image_is_refused_by_the_rom():
    img = factory_image("xr809")
    res = check_image(reader(img))
    assert not res.ok and res.stage == "rom"
    assert "0x00010000" in res.reason
    # its headers and sums are otherwise fine: only the chip differs
    assert naive_cs16(img[:64]) == 0xFFFF


def test_same_firmware_for_every_unit_different_sysinfo():
    a, b = factory_flash_image(1), factory_flash_image(2)
    assert a[:0xFF000] == b[:0xFF000]
    assert a[0xFF000:] != b[0xFF000:]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, (1 << 20) - 1), st.binary(min_size=1, max_size=8))))
def test_check_image_never_raises_on_damage(patches):
    img = bytearray(factory_image())
    for off, data in patches:
        img[off : off + len(data)] = data
    res = check_image(reader(bytes(img[: 1 << 20])))
    assert res.stage in ("ok", "rom", "bootloader")


@given(st.binary(min_size=64, max_size=64), st.integers(0, 0xFFFFFFFF))
def test_random_headers_do_not_pass(raw, nxt):
    raw = b"AWIH" + raw[4:32] + struct.pack("<I", nxt) + raw[36:]
    img = raw + b"\xff" * ((1 << 20) - 64)
    res = check_boot_section(reader(img))
    if res.ok:  # only if the random header happens to be a consistent boot section
        assert naive_cs16(raw) == 0xFFFF


@settings(max_examples=40)
@given(st.integers(0, 1 << 30), st.integers(1, 20))
def test_fdcm_slots(seed, writes):
    """fdcm.c: each write takes the next slot and clears the next bitmap bit; a full
    area (17 slots of 236 bytes in 4 KiB) is erased and rewritten from slot 0."""
    area = bytearray(b"\xff" * 0x1000)
    last = b""
    for k in range(writes):
        last = bytes([k]) * S.SYSINFO_SIZE
        op = S.fdcm_write(bytes(area), last)
        if op.erase:
            area[:] = b"\xff" * 0x1000
        for off, data in op.programs:
            for i, b in enumerate(data):
                area[off + i] &= b  # NOR programming only clears bits
        assert S.fdcm_read(bytes(area)) == last
    assert int.from_bytes(area[:4], "little") == 0xA55A5AA5
    assert S.bitmap_size(0x1000, S.SYSINFO_SIZE) == 3
    used = (writes - 1) % 17 + 1
    bits = int.from_bytes(area[8:11], "little")
    assert bits == (~((1 << used) - 1)) & 0xFFFFFF
    assert S.fdcm_read(bytes(area), S.SYSINFO_SIZE + 1) is None  # another record size


def test_efuse_fields_and_the_chipid_mac():
    fuse = S.unit_efuse(7)
    assert len(fuse) == 128
    chipid = S.efuse_chipid(fuse)
    bits = int.from_bytes(fuse, "little")
    assert chipid == ((bits >> 114) & ((1 << 128) - 1)).to_bytes(16, "little")
    mac = S.efuse_mac(fuse)
    assert mac is not None and mac[:3] == b"\x02\x80\x72"
    assert (bits >> 615) & 0x3F == 1  # flag: slot 1
    assert S.efuse_mac(S.unit_efuse(7, with_mac=False)) is None
    cm = S.chipid_mac(chipid)
    assert cm[0] & 3 == 0
    assert cm[2] == chipid[2] ^ chipid[8] ^ chipid[12]
    assert cm[1] == chipid[1] ^ chipid[7] ^ chipid[13]


def test_factory_sysinfo():
    sector = factory_flash_image(7)[0xFF000:]
    raw = S.fdcm_read(sector)
    assert raw is not None and len(raw) == 236
    info = S.SysInfo(bytearray(raw))
    assert info.mac == S.chipid_mac(S.efuse_chipid(S.unit_efuse(7)))
    assert raw[4] & 1 and info.wlan_mode == S.WLAN_MODE_STA
    assert raw[224:236] == bytes([192, 168, 51, 1, 255, 255, 255, 0, 192, 168, 51, 1])
    assert sector[11 + 236 :] == b"\xff" * (0x1000 - 11 - 236)
