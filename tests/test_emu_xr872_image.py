"""The emulator's AWIH image checks, factory image and sysinfo record."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.xr872.board import factory_flash_image
from emulators.xr872.image import (
    check_boot_section,
    check_image,
    checksum16,
    factory_image,
)
from emulators.xr872.sysinfo import SysInfo, efuse_mac, parse


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
    assert offsets == [0x0, 0x8000, 0x13000, 0xF5000, 0xF6000, 0xFE800]
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
@given(st.integers(0, 1 << 30), st.text(alphabet="ABCDEFXYZ-0123456789", max_size=31))
def test_sysinfo_roundtrip(seed, name):
    mac = efuse_mac(seed)
    assert mac[:3] == b"\xaa\xbb\xcc"
    rec = SysInfo(mac, name)
    raw = rec.pack()
    assert len(raw) == 64 and raw[:4] == b"SYSI"
    assert naive_cs16(raw) == 0xFFFF
    assert parse(raw) == rec
    damaged = bytearray(raw)
    damaged[0x08] ^= 0x01
    assert parse(bytes(damaged)) is None


def test_factory_sysinfo():
    info = SysInfo.for_seed(7)
    assert info.ap_name == f"XF16-{info.mac[4]:02X}{info.mac[5]:02X}"
    sector = factory_flash_image(7)[0xFF000:]
    assert parse(sector) == info
    assert sector[64:] == b"\xff" * (0x1000 - 64)
