"""The harness's XR872/XR809 image builder (harness/firmware/xr872.py).

Checked field by field with struct and a byte-loop checksum written here, and
cross-checked against the engine's independent image checker.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.firmware import xr872 as fw
from recovery.xr872 import operations as engine


def cs16(data: bytes) -> int:
    t = 0
    for i in range(0, len(data) - 1, 2):
        t += data[i] + 256 * data[i + 1]
    if len(data) % 2:
        t += data[-1]
    return t % 65536


def headers(img: bytes) -> list[dict]:
    out, off = [], 0
    while off != 0xFFFFFFFF:
        f = struct.unpack_from("<IIHHIIIIIII", img, off)
        keys = (
            "magic",
            "version",
            "hcs",
            "dcs",
            "size",
            "load",
            "entry",
            "blen",
            "attr",
            "next",
            "id",
        )
        h = dict(zip(keys, f, strict=True), offset=off)
        out.append(h)
        off = h["next"]
    return out


def test_xr872_image_layout_and_checksums():
    img = fw.build_image(fw.xr872_sections(seed=3))
    hs = headers(img)
    # skylark SDK project/image_cfg/image.cfg
    assert [h["offset"] for h in hs] == [0, 32768, 75 * 1024, 980 * 1024, 985 * 1024, 1017 * 1024]
    assert [h["id"] for h in hs] == [
        0xA5FF5A00, 0xA5FE5A01, 0xA5FD5A02, 0xA5FA5A05, 0xA5F95A06, 0xA5F85A07,
    ]  # fmt: skip
    assert hs[0]["load"] == 0x00268000 and hs[0]["entry"] == 0x00268101
    assert hs[1]["load"] == 0x00201000 and hs[1]["entry"] == 0x00201101
    assert hs[2]["attr"] == 0x2 and hs[2]["load"] == 0xFFFFFFFF
    for h in hs:
        o = h["offset"]
        assert img[o : o + 4] == b"AWIH"
        assert cs16(img[o : o + 64]) == 0xFFFF
        body = img[o + 64 : o + 64 + h["size"]]
        assert len(body) == h["size"] == h["blen"]
        assert (cs16(body) + h["dcs"]) % 65536 == 0xFFFF
    assert len(img) == hs[-1]["offset"] + 64 + hs[-1]["size"]
    # gaps are erased flash
    assert img[hs[0]["offset"] + 64 + hs[0]["size"] : 32768] == b"\xff" * (
        32768 - 64 - hs[0]["size"]
    )


def test_xr809_image_loads_low_and_has_a_net_section():
    hs = headers(fw.build_image(fw.xr809_sections()))
    assert hs[0]["load"] == 0x00067000 and hs[1]["load"] == 0x00010000
    assert 0xA5FC5A03 in [h["id"] for h in hs]


def test_builds_are_deterministic_per_seed():
    assert fw.xr872_flash(1) == fw.xr872_flash(1)
    assert fw.xr872_flash(1) != fw.xr872_flash(2)


def test_full_flash_has_an_fdcm_sysinfo():
    mac = bytes.fromhex("fcee91a1b2c3")
    flash = fw.xr872_flash(0, mac=mac, sta_ssid="home")
    assert len(flash) == fw.FLASH_SIZE
    area = flash[0xFF000:]
    # fdcm.c header: id, bitmap_size (4087 // 1889 + 1 = 3), data_size 236
    assert area[:8] == bytes.fromhex("a55a5aa5") + b"\x03\x00" + b"\xec\x00"
    assert area[8:11] == b"\xfc\xff\xff"  # two slots used
    second = area[11 + 236 : 11 + 472]
    assert second[5:11] == mac and second[12:16] == b"home" and second[44] == 4
    si = engine.parse_sysinfo(area)
    assert si.valid and si.mac == "fc:ee:91:a1:b2:c3" and si.sta_ssid == "home"
    assert si.slots_used == 2


def test_sysinfo_variants_and_the_chipid_mac():
    assert fw.xr872_flash(3)[0xFF000 + 11 + 5 : 0xFF000 + 11 + 11] == fw.chipid_mac(3)
    assert fw.chipid_mac(3)[0] & 3 == 0 and fw.chipid_mac(3) != fw.chipid_mac(4)
    assert fw.xr872_flash(3, sysinfo="blank")[0xFF000:] == b"\xff" * 0x1000
    bad = engine.parse_sysinfo(fw.xr872_flash(3, sysinfo="corrupt")[0xFF000:])
    assert not bad.valid and "FDCM" in bad.reason
    with pytest.raises(ValueError):
        fw.xr872_flash(3, sysinfo="other")


def test_bricked_flash_keeps_the_units_sysinfo_and_tail():
    good = fw.xr872_flash(5)
    bad = fw.bricked_flash(good)
    img = fw.build_image(fw.xr809_sections())
    assert bad[: len(img)] == img
    end = -(-len(img) // fw.SECTOR) * fw.SECTOR
    assert bad[len(img) : end] == b"\xff" * (end - len(img))
    assert bad[end:] == good[end:]


def test_engine_accepts_what_the_builder_calls_valid():
    flash = fw.xr872_flash(7)
    img = fw.build_image(fw.xr872_sections(7))
    for buf in (flash, img):
        chk = engine.check_image(buf)
        assert chk.valid, chk.problems
        assert chk.chip == "xr872"
        assert [s.name for s in chk.sections][:3] == ["boot", "app", "app_xip"]


def test_engine_refuses_the_xr809_image():
    chk = engine.check_image(fw.build_image(fw.xr809_sections()))
    assert chk.chip == "xr809"
    assert any("XR809" in p for p in chk.problems)


@pytest.mark.parametrize("kind", fw.CORRUPTIONS)
@pytest.mark.parametrize("where", [0, 32768])
def test_each_corruption_is_caught_by_the_engine(kind, where):
    img = fw.build_image(fw.xr872_sections(1))
    bad = fw.corrupt_image(img, kind, where)
    assert bad != img
    chk = engine.check_image(bad)
    assert not chk.valid
    words = {
        "magic": "AWIH",
        "header_checksum": "header checksum",
        "data_checksum": "data checksum",
        "truncate": "truncated",
        "chain": "flash",
        "not_boot_first": "not boot",
    }
    assert any(words[kind] in p for p in chk.problems), chk.problems


def test_corrupt_header_rewrite_keeps_the_header_checksum_valid():
    img = fw.build_image(fw.xr872_sections(1))
    bad = fw.corrupt_image(img, "chain", 0)
    assert cs16(bad[:64]) == 0xFFFF
    assert struct.unpack_from("<I", bad, 32)[0] == 0x00200000


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(0, 2**32 - 1))
def test_section_header_checksums_for_any_body(body, load):
    spec = fw.SectionSpec("x", 0xA5FE5A01, 0, load, load ^ 0x101, body)
    h = fw.section_header(spec, 0xFFFFFFFF)
    assert len(h) == 64 and cs16(h) == 0xFFFF
    dcs = struct.unpack_from("<H", h, 10)[0]
    assert (cs16(body) + dcs) % 65536 == 0xFFFF


def test_sysinfo_rejects_bad_input():
    with pytest.raises(ValueError):
        fw.sysinfo_record(b"\x00" * 5)
    with pytest.raises(ValueError):
        fw.sysinfo_record(b"\x00" * 6, sta_ssid="x" * 33)
    with pytest.raises(ValueError):
        fw.build_image(fw.with_sections(fw.xr872_sections(), boot={"offset": 32768 - 100}))
