"""Direct tests of the XR872 engine's parsers, issue 21: the AWIH image chain, the
FDCM system-info record and the eFuse (recovery/xr872/image.py), and the BROM frame
checks (recovery/xr872/brom.py) that tests/test_xr872_engine_codec.py leaves out.

Facts (REFERENCE.md, XR872 section; XradioTech/xradio-skylark-sdk ``image.h``,
``fdcm.c``, ``sysinfo.h``, ``efpg``): a 64-byte little-endian section header (magic
0x48495741, version, header_chksum u16, data_chksum u16, data_size, load_addr, entry,
body_len, attribute, next_addr, id, priv[6]) whose checksum16 is 0xFFFF, and
checksum16(data) + data_chksum == 0xFFFF; the section ids; the XR872 loads into SRAM at
0x00200000.. (boot 0x00268000, app 0x00201000 in the skylark SDK) where an XR809 image
loads below 0x00100000 and may carry a ``net`` section; seed 002: an XR809 image on the
XR872 leaves it in recovery mode ("Verify boot error!"). Images here are assembled by
hand with a byte-loop checksum, never with the code under test.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.xr872 import brom as b
from recovery.xr872.image import (
    APP_ID,
    BOOT_ID,
    NET_ID,
    NO_ADDR,
    ImageCheck,
    Section,
    check_image,
    classify_chip,
    decode_efuse,
    format_mac,
    image_sectors,
    layout_problems,
    next_addr,
    parse_mac,
    parse_sections,
    parse_sysinfo,
)

MAGIC = 0x48495741
XIP_ID = 0xA5FD5A02


def cs16(data: bytes) -> int:
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += data[i] | data[i + 1] << 8
    if len(data) % 2:
        total += data[-1]
    return total & 0xFFFF


def section(
    sid, load, data, nxt=NO_ADDR, entry=None, version=0x00010000, bad_header=False, bad_data=False
):
    """A section header and its data, checksums filled in as the SDK's tools do."""
    dcs = (0xFFFF - cs16(data) + (1 if bad_data else 0)) & 0xFFFF
    entry = load if entry is None else entry
    fields = [MAGIC, version, 0, dcs, len(data), load, entry, len(data), 0, nxt, sid, b"\0" * 24]
    raw = struct.pack("<IIHHIIIIIII24s", *fields)
    hcs = (0xFFFF - cs16(raw) + (1 if bad_header else 0)) & 0xFFFF
    return raw[:8] + struct.pack("<H", hcs) + raw[10:] + data


def chain(*parts: tuple[int, bytes]) -> bytes:
    """Sections at the given offsets, 0xFF between them."""
    end = max(off + len(blob) for off, blob in parts)
    buf = bytearray(b"\xff" * end)
    for off, blob in parts:
        buf[off : off + len(blob)] = blob
    return bytes(buf)


BOOT = bytes(range(256)) * 8  # 2 KiB
APP = bytes((i * 7) & 0xFF for i in range(0x3001))  # odd length: the last byte summed alone


def xr872_image(app_load=0x00201000) -> bytes:
    return chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=0x1000)),
        (0x1000, section(APP_ID, app_load, APP, nxt=0x5000)),
        (0x5000, section(XIP_ID, NO_ADDR, b"xip code", nxt=NO_ADDR)),
    )


def xr809_image() -> bytes:
    return chain(
        (0, section(BOOT_ID, 0x00067000, BOOT, nxt=0x1000)),
        (0x1000, section(APP_ID, 0x00010000, APP, nxt=0x5000)),
        (0x5000, section(NET_ID, 0x00060000, b"net", nxt=NO_ADDR)),
    )


# -- the section chain ----------------------------------------------------------------------


def test_an_xr872_image_is_valid():
    img = xr872_image()
    check = check_image(img)
    assert check.valid and check.problems == []
    assert check.chip == "xr872"
    assert check.size == len(img)
    assert [(s.offset, s.name) for s in check.sections] == [
        (0, "boot"),
        (0x1000, "app"),
        (0x5000, "app_xip"),
    ]
    boot, app, xip = check.sections
    assert boot == Section(
        0, BOOT_ID, "boot", 0x00010000, len(BOOT), 0x00268000, 0x00268000, 0, 0x1000, True, True
    )
    assert (app.data_size, app.load_addr, app.next_addr, app.data_ok) == (
        len(APP),
        0x00201000,
        0x5000,
        True,
    )
    assert xip.next_addr == NO_ADDR
    assert check.end == 0x5000 + 64 + 8


def test_section_fields_come_from_their_own_offsets():
    raw = section(APP_ID, 0x00201000, b"abcd", entry=0x00201101, version=0x00020003)
    raw = raw[:28] + struct.pack("<I", 0x5A) + raw[32:]  # attribute
    raw = (
        raw[:8]
        + struct.pack("<H", (0xFFFF - cs16(raw[:8] + b"\0\0" + raw[10:64])) & 0xFFFF)
        + raw[10:]
    )
    (s,), problems = parse_sections(raw)
    assert problems == []
    assert (s.version, s.entry, s.attribute, s.id, s.data_size) == (
        0x00020003,
        0x00201101,
        0x5A,
        APP_ID,
        4,
    )
    assert next_addr(raw, 0) == NO_ADDR
    assert next_addr(xr872_image(), 0x1000) == 0x5000


def test_an_xr809_image_is_refused_for_the_xr872():
    """Seed 002: the XR809 image bricked the XR872 into recovery mode."""
    check = check_image(xr809_image())
    assert check.chip == "xr809"
    assert not check.valid
    assert check.problems == [
        "this image is built for the XR809 (it loads at 0x00067000); "
        "the XR872 ROM refuses it and stays in recovery mode"
    ]


def test_an_empty_file():
    check = check_image(b"")
    assert check == ImageCheck(0, [], "unknown", ["the file is empty"])
    assert not check.valid and check.end == 0


def test_a_file_larger_than_the_flash():
    img = xr872_image() + b"\xff" * (0x100000 - len(xr872_image()) + 1)
    check = check_image(img)
    assert check.problems == ["1048577 bytes do not fit a 1024 KiB flash"]
    assert check_image(img[:-1]).valid
    assert (
        check_image(xr872_image(), flash_size=0x4000).problems[0]
        == f"{len(xr872_image())} bytes do not fit a 16 KiB flash"
    )


def test_no_header_at_offset_0_and_a_broken_chain_later():
    _, problems = parse_sections(b"\xff" * 0x100)
    assert problems == ["no section header at 0x0: no AWIH magic (found b'\\xff\\xff\\xff\\xff')"]
    img = bytearray(xr872_image())
    img[0x5000:0x5004] = b"JUNK"
    secs, problems = parse_sections(bytes(img))
    assert len(secs) == 2
    assert problems == ["a broken section chain at 0x5000: no AWIH magic (found b'JUNK')"]


def test_a_truncated_image_and_a_chain_that_leaves_the_flash():
    img = xr872_image()
    secs, problems = parse_sections(img[:0x1020], limit=0x100000)
    assert [s.name for s in secs] == ["boot"]
    assert problems == [
        "section header at 0x1000 is past the end of the data (4128 bytes): the image is truncated"
    ]
    far = chain((0, section(BOOT_ID, 0x00268000, BOOT, nxt=0x200000)))
    _, problems = parse_sections(far, limit=0x100000)
    assert problems == ["section at 0x200000 points outside the flash"]
    # exactly at the limit: the header would end at the flash end, so the data is just short
    edge = chain((0, section(BOOT_ID, 0x00268000, BOOT, nxt=0xFFFC0)))
    _, problems = parse_sections(edge, limit=0x100000)
    assert problems[0].endswith("the image is truncated")
    # a header that would straddle the flash end is outside it
    straddle = chain((0, section(BOOT_ID, 0x00268000, BOOT, nxt=0xFFFE0)))
    _, problems = parse_sections(straddle, limit=0x100000)
    assert problems == ["section at 0xfffe0 points outside the flash"]
    # without a limit the data given is the limit
    _, problems = parse_sections(img[:0x1020])
    assert problems == ["section at 0x1000 points outside the flash"]
    # an image file checked before writing is short of the flash, not past its end
    check = check_image(img[:0x1020])
    assert check.problems[0] == (
        "section header at 0x1000 is past the end of the data (4128 bytes): the image is truncated"
    )


def test_section_data_cut_short_or_running_past_the_flash():
    img = xr872_image()
    secs, problems = parse_sections(img[: 0x1000 + 64 + 100], limit=0x100000)
    assert problems == [
        f"section app at 0x1000 needs {len(APP)} bytes of data, only 100 present: "
        "the image is truncated",
        "section header at 0x5000 is past the end of the data (4260 bytes): the image is truncated",
    ]
    assert secs[1].data_ok is None
    huge = chain((0, section(BOOT_ID, 0x00268000, b"")))
    huge = huge[:12] + struct.pack("<I", 0x100000) + huge[16:]  # data_size past the flash end
    huge = (
        huge[:8]
        + struct.pack("<H", (0xFFFF - cs16(huge[:8] + b"\0\0" + huge[10:64])) & 0xFFFF)
        + huge[10:]
    )
    secs, problems = parse_sections(huge, limit=0x100000)
    assert problems == ["section boot at 0x0 runs past the end of the flash"]
    # data that ends exactly at the flash end is only short in a short dump
    secs, problems = parse_sections(huge, limit=0x100000 + 64)
    assert problems[0].startswith("section boot at 0x0 needs 1048576 bytes of data, only 0")
    # a header that ends exactly where the data ends has nothing to be short of
    _, problems = parse_sections(img[: 0x1000 + 64 - 1], limit=0x100000)
    assert "0x1000" in problems[0] and "truncated" in problems[0]
    _, problems = parse_sections(img[: 0x1000 + 64], limit=0x100000)
    assert problems[0] == (
        f"section app at 0x1000 needs {len(APP)} bytes of data, only 0 present: "
        "the image is truncated"
    )
    _, problems = parse_sections(img[:0x1000], limit=0x100000)
    assert problems == [
        f"section header at 0x1000 is past the end of the data ({0x1000} bytes): the image is truncated"
    ]


def test_a_section_header_with_a_bad_checksum_stops_the_chain():
    img = chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=0x1000)),
        (0x1000, section(APP_ID, 0x00201000, APP, nxt=0x5000, bad_header=True)),
        (0x5000, section(XIP_ID, NO_ADDR, b"x")),
    )
    secs, problems = parse_sections(img)
    assert [s.header_ok for s in secs] == [True, False]
    assert problems == ["section app at 0x1000: bad header checksum"]


def test_a_section_with_bad_data():
    img = chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=0x1000, bad_data=True)),
        (0x1000, section(APP_ID, 0x00201000, APP)),
    )
    secs, problems = parse_sections(img)
    assert [s.data_ok for s in secs] == [False, True]
    assert problems == ["section boot at 0x0: bad data checksum"]
    secs, problems = parse_sections(img, check_data=False)
    assert [s.data_ok for s in secs] == [None, None] and problems == []
    assert check_image(img, check_data=False).valid
    assert not check_image(img).valid


def test_a_next_section_inside_the_current_one():
    img = chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=64 + len(BOOT) - 1)),
    )
    secs, problems = parse_sections(img + b"\xff" * 0x1000)
    assert problems == [f"section boot at 0x0: next section 0x{64 + len(BOOT) - 1:x} overlaps it"]
    # right after the data is fine
    img = chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=64 + len(BOOT))),
        (64 + len(BOOT), section(APP_ID, 0x00201000, b"app")),
    )
    assert check_image(img).valid


def test_a_chain_longer_than_allowed_is_taken_for_a_loop():
    img = xr872_image()
    secs, problems = parse_sections(img, max_sections=2)
    assert len(secs) == 2
    assert problems == ["the section chain loops at 0x5000"]
    assert parse_sections(img, max_sections=3)[1] == []


def _many(n: int) -> bytes:
    parts = []
    for i in range(n):
        sid = BOOT_ID if i == 0 else APP_ID
        nxt = 0x100 * (i + 1) if i < n - 1 else NO_ADDR
        parts.append((0x100 * i, section(sid, 0x00268000, b"s", nxt=nxt)))
    return chain(*parts)


def test_more_than_32_sections_are_taken_for_a_loop():
    secs, problems = parse_sections(_many(33))
    assert len(secs) == 32 and problems == ["the section chain loops at 0x2000"]
    secs, problems = parse_sections(_many(32))
    assert len(secs) == 32 and problems == []


def test_unknown_section_ids_are_named_by_number():
    img = chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=0x1000)),
        (0x1000, section(0x12345678, NO_ADDR, b"?", nxt=0x2000)),
        (0x2000, section(APP_ID, 0x00201000, APP)),
    )
    check = check_image(img)
    assert [s.name for s in check.sections] == ["boot", "0x12345678", "app"]
    assert check.valid


# -- the layout as a whole ------------------------------------------------------------------


def test_the_first_section_must_be_boot_and_an_app_must_exist():
    only_app = chain((0, section(APP_ID, 0x00201000, APP)))
    assert check_image(only_app).problems == ["the first section is app, not boot"]
    only_boot = chain((0, section(BOOT_ID, 0x00268000, BOOT)))
    assert check_image(only_boot).problems == ["there is no app section"]


def test_load_addresses_of_no_known_chip():
    check = check_image(xr872_image(app_load=0x00300000))
    assert check.chip == "unknown"
    assert check.problems == ["the load addresses are not those of an XR872 image"]


def test_an_image_that_reaches_the_sysinfo_sector():
    big = chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=0x1000)),
        (0x1000, section(APP_ID, 0x00201000, b"\0" * (0xFE000 - 64 + 1))),
    )
    assert check_image(big).problems == [
        "the image runs to 0xff001, into the system-info sector at 0xff000"
    ]
    fits = chain(
        (0, section(BOOT_ID, 0x00268000, BOOT, nxt=0x1000)),
        (0x1000, section(APP_ID, 0x00201000, b"\0" * (0xFE000 - 64))),
    )
    assert check_image(fits).valid


def _sec(sid, load, offset=0, size=0):
    return Section(offset, sid, "s", 0, size, load, load, 0, NO_ADDR, True, True)


@pytest.mark.parametrize(
    "load,chip",
    [
        (0x00200000, "xr872"),
        (0x0027FFFF, "xr872"),
        (0x00280000, "unknown"),
        (0x001FFFFF, "unknown"),
        (0x00100000, "unknown"),
        (0x000FFFFF, "xr809"),
        (0x00010000, "xr809"),
    ],
)
def test_chip_from_the_load_address(load, chip):
    assert classify_chip([_sec(BOOT_ID, load)]) == chip
    assert classify_chip([_sec(APP_ID, load)]) == chip


def test_chip_votes():
    assert classify_chip([]) == "unknown"
    assert classify_chip([_sec(XIP_ID, 0x00201000)]) == "unknown"  # only boot and app vote
    assert classify_chip([_sec(BOOT_ID, NO_ADDR), _sec(APP_ID, 0x00201000)]) == "xr872"
    assert classify_chip([_sec(BOOT_ID, 0x00268000), _sec(NET_ID, NO_ADDR)]) == "xr809"
    assert classify_chip([_sec(NET_ID, NO_ADDR)]) == "xr809"
    assert classify_chip([_sec(BOOT_ID, 0x00268000), _sec(APP_ID, 0x00010000)]) == "xr809"
    assert classify_chip([_sec(BOOT_ID, 0x00268000), _sec(APP_ID, 0x00300000)]) == "unknown"


def test_layout_of_no_sections_and_the_xr809_message():
    assert layout_problems([], "unknown") == []
    secs = [_sec(BOOT_ID, 0x00010000), _sec(APP_ID, 0x00010000)]
    assert layout_problems(secs, "xr809") == [
        "this image is built for the XR809 (it loads at 0x00010000); "
        "the XR872 ROM refuses it and stays in recovery mode"
    ]


def test_image_sectors_cover_headers_and_data():
    secs = [
        _sec(BOOT_ID, 0, 0, 0x1000 - 64),
        _sec(APP_ID, 0, 0x1000, 0x1000 - 63),
        _sec(XIP_ID, 0, 0x5800, 8),
    ]
    assert image_sectors(secs) == {0x0, 0x1000, 0x2000, 0x5000}
    assert image_sectors(secs, sector=0x10000) == {0}
    assert image_sectors([]) == set()
    # a section ending exactly on a sector boundary does not reach the next sector
    assert image_sectors([_sec(BOOT_ID, 0, 0x2000, 0x1000 - 64)]) == {0x2000}
    assert image_sectors([_sec(BOOT_ID, 0, 0x2000, 0x1000 - 63)]) == {0x2000, 0x3000}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 1023))
def test_any_damage_to_a_header_or_its_data_is_caught(byte, pos):
    img = bytearray(xr872_image())
    at = [0, 0x1000, 0x5000][pos % 3] + pos % 64 if pos < 512 else 0x1000 + 64 + pos
    old = img[at]
    img[at] = (old + 1 + byte % 255) & 0xFF
    check = check_image(bytes(img))
    assert not check.valid


# -- MAC text -------------------------------------------------------------------------------


def test_mac_text():
    assert format_mac(bytes.fromhex("0280720a0b0c")) == "02:80:72:0a:0b:0c"
    assert parse_mac("02:80:72:0A:0B:0C") == "02:80:72:0a:0b:0c"
    assert parse_mac("0280.720a.0b0c") == "02:80:72:0a:0b:0c"
    assert parse_mac("02-80-72-0a-0b-0c") == "02:80:72:0a:0b:0c"
    with pytest.raises(ValueError, match="'02:80:72:0a:0b' is not a MAC address"):
        parse_mac("02:80:72:0a:0b")
    with pytest.raises(ValueError):
        parse_mac("02:80:72:0a:0b:0c:0d")


# -- sysinfo (FDCM) -------------------------------------------------------------------------

RECORD = 236
BITMAP = 4087 // (8 * RECORD + 1) + 1  # REFERENCE.md: 3


def sysinfo_record(mac: bytes, sta: bytes = b"", ap: bytes = b"") -> bytes:
    rec = bytearray(RECORD)
    rec[0:4] = (1).to_bytes(4, "little")
    rec[5:11] = mac
    rec[12 : 12 + len(sta)] = sta
    rec[44] = len(sta)
    rec[110 : 110 + len(ap)] = ap
    rec[142] = len(ap)
    return bytes(rec)


def fdcm_area(
    records: list[bytes], bitmap_size=BITMAP, data_size=RECORD, ident=0xA55A5AA5
) -> bytes:
    area = bytearray(b"\xff" * 0x1000)
    area[0:8] = struct.pack("<IHH", ident, bitmap_size, data_size)
    used = len(records)
    bits = (1 << (8 * bitmap_size)) - 1
    bits &= ~((1 << used) - 1)  # a cleared bit per used slot, from bit 0 on
    area[8 : 8 + bitmap_size] = bits.to_bytes(bitmap_size, "little")
    for i, rec in enumerate(records):
        off = 8 + bitmap_size + data_size * i
        area[off : off + len(rec)] = rec
    return bytes(area)


MAC1 = bytes.fromhex("028072a1b2c3")
MAC2 = bytes.fromhex("028072d4e5f6")


def test_the_current_record_is_the_last_used_slot():
    one = parse_sysinfo(fdcm_area([sysinfo_record(MAC1, b"home", b"XF16-AP")]))
    assert one.valid is True and one.reason == ""
    assert (one.mac, one.sta_ssid, one.ap_ssid, one.slots_used) == (
        "02:80:72:a1:b2:c3",
        "home",
        "XF16-AP",
        1,
    )
    assert one.erased is False
    two = parse_sysinfo(fdcm_area([sysinfo_record(MAC1), sysinfo_record(MAC2, b"x" * 32, b"y")]))
    assert (two.mac, two.sta_ssid, two.ap_ssid, two.slots_used) == (
        "02:80:72:d4:e5:f6",
        "x" * 32,
        "y",
        2,
    )


def test_slots_counted_across_bitmap_bytes():
    records = [sysinfo_record(bytes([2, 0, 0, 0, 0, i])) for i in range(10)]
    area = fdcm_area(records, bitmap_size=3)
    info = parse_sysinfo(area)
    assert info.slots_used == 10 and info.mac == "02:00:00:00:00:09"


def test_an_ssid_length_past_32_is_cut_to_32():
    rec = bytearray(sysinfo_record(MAC1, b"s" * 32))
    rec[44] = 200
    assert parse_sysinfo(fdcm_area([bytes(rec)])).sta_ssid == "s" * 32


@pytest.mark.parametrize(
    "area,reason",
    [
        (b"\xff" * 7, "the area is missing"),
        (b"", "the area is missing"),
        (fdcm_area([sysinfo_record(MAC1)], ident=0xA55A5AA4), "no FDCM header (id 0xa55a5aa4)"),
        (fdcm_area([sysinfo_record(MAC1)], data_size=235), "FDCM records of 235 bytes, not 236"),
        (fdcm_area([], bitmap_size=0), "bad FDCM bitmap size 0"),
        (fdcm_area([sysinfo_record(MAC1)])[: 8 + BITMAP], f"bad FDCM bitmap size {BITMAP}"),
        (fdcm_area([]), "the FDCM bitmap marks no record"),
    ],
)
def test_sysinfo_that_the_firmware_would_rebuild(area, reason):
    info = parse_sysinfo(area)
    assert info.valid is False and info.reason == reason
    assert info.mac is None and info.erased is False


def test_an_erased_sysinfo_area():
    info = parse_sysinfo(b"\xff" * 0x1000)
    assert (info.valid, info.reason, info.erased) == (False, "the area is erased", True)
    assert parse_sysinfo(b"\xff" * 8).erased


def test_a_bitmap_just_inside_the_area():
    area = fdcm_area([sysinfo_record(MAC1)])[: 8 + BITMAP + 1]
    info = parse_sysinfo(area)
    assert info.reason == "the FDCM record 1 lies outside the area"
    assert info.valid is False
    assert parse_sysinfo(fdcm_area([sysinfo_record(MAC1)])[: 8 + BITMAP + RECORD]).valid


def test_a_bitmap_that_claims_more_slots_than_the_area_holds():
    area = bytearray(fdcm_area([sysinfo_record(MAC1)]))
    area[8 : 8 + BITMAP] = bytes(BITMAP)  # all 24 slots used
    info = parse_sysinfo(bytes(area))
    assert info.reason == "the FDCM record 24 lies outside the area"


# -- eFuse ------------------------------------------------------------------------------------


def efuse(chip_id: bytes, flag: int = 0, slots: dict[int, bytes] | None = None) -> bytes:
    """128 eFuse bytes, bit n = byte n // 8 bit n % 8 (efpg): chip id at 114, flag at 615,
    MAC slots at 621, 669, 717."""
    v = int.from_bytes(chip_id, "little") << 114
    v |= flag << 615
    for slot, mac in (slots or {}).items():
        v |= int.from_bytes(mac, "little") << (621 + 48 * (slot - 1))
    return v.to_bytes(128, "little")


CHIP_ID = bytes(range(0x11, 0x21))


def test_efuse_chip_id_and_the_chipid_mac():
    e = decode_efuse(efuse(CHIP_ID))
    assert e.chip_id == CHIP_ID.hex()
    assert e.hex == efuse(CHIP_ID).hex()
    cid = CHIP_ID
    mac = [cid[i] ^ cid[i + 6] ^ cid[i + 12] for i in range(2)]
    mac += [cid[i] ^ cid[i + 6] ^ cid[i + 10] for i in range(2, 6)]
    mac[0] &= 0xFC
    assert e.chipid_mac == format_mac(bytes(mac))
    assert e.efuse_mac is None


@pytest.mark.parametrize("flag,slot", [(0b1, 1), (0b11, 2), (0b111, 3), (0b101, 1)])
def test_efuse_mac_slot_from_the_flag(flag, slot):
    macs = {
        1: bytes.fromhex("0280720a0b01"),
        2: bytes.fromhex("0280720a0b02"),
        3: bytes.fromhex("0280720a0b03"),
    }
    e = decode_efuse(efuse(CHIP_ID, flag, macs))
    assert e.efuse_mac == format_mac(macs[slot])


def test_efuse_flag_out_of_range_gives_no_mac():
    macs = {1: bytes.fromhex("0280720a0b01")}
    assert decode_efuse(efuse(CHIP_ID, 0b1000, macs)).efuse_mac is None
    assert decode_efuse(efuse(CHIP_ID, 0b111111, macs)).efuse_mac is None


def test_efuse_mac_stored_reversed():
    """efpg: a MAC whose bytes 3..5 are 6d 44 dc and whose byte 0 is odd is stored reversed."""
    stored = bytes.fromhex("0d0c0b6d44dc")  # byte 0 odd
    assert decode_efuse(efuse(CHIP_ID, 1, {1: stored})).efuse_mac == "dc:44:6d:0b:0c:0d"
    even = bytes.fromhex("0c0c0b6d44dc")
    assert decode_efuse(efuse(CHIP_ID, 1, {1: even})).efuse_mac == format_mac(even)
    other = bytes.fromhex("0d0c0b6d44dd")
    assert decode_efuse(efuse(CHIP_ID, 1, {1: other})).efuse_mac == format_mac(other)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=6, max_size=6), st.integers(1, 3))
def test_efuse_property(chip_id, mac, slot):
    if mac[3:6] == b"\x6d\x44\xdc":
        return
    flag = (1 << slot) - 1
    e = decode_efuse(efuse(chip_id, flag, {slot: mac}))
    assert e.chip_id == chip_id.hex()
    assert e.efuse_mac == format_mac(mac)


# -- BROM frames: what the engine refuses ------------------------------------------------------


def test_header_unpack_refuses_a_short_header_and_bad_magic():
    good = b.frame(b"\x18")[:12]
    assert b.Header.unpack(good).payload_len == 1
    with pytest.raises(ValueError, match="a BROM header is 12 bytes, got 11"):
        b.Header.unpack(good[:11])
    with pytest.raises(ValueError, match="bad BROM magic b'BRON'"):
        b.Header.unpack(b"BRON" + good[4:])


def test_a_frame_whose_payload_was_damaged_fails_its_sum():
    raw = b.frame_request(b.Request(b.Cmd.FLASH_READ, addr=8, length=8))
    h = b.Header.unpack(raw[:12])
    good = b.encode_request(b.Request(b.Cmd.FLASH_READ, addr=8, length=8), "<")
    assert b.frame_sums_ok(h, good)
    assert not b.frame_sums_ok(h, good[:-1] + bytes([good[-1] ^ 1]))
    assert not b.frame_sums_ok(h, raw[12:])  # the wire order is not the pre-image


def test_a_response_copies_check_and_carries_an_error_byte():
    raw = b.encode_response(b"\x01\x02", check=False)
    h = b.Header.unpack(raw[:12])
    assert h.flags == b.Flag.ACK and raw[12:] == b"\x01\x02"
    err = b.encode_response(error=b.ErrCode.INVALID)
    h = b.Header.unpack(err[:12])
    assert h.flags == b.Flag.ACK | b.Flag.CHECK | b.Flag.ERROR
    assert err[12:] == b"\x04" and h.payload_len == 1
    assert b.frame_sums_ok(h, err[12:])
    assert b.Response(h, err[:12]).checked
    assert not b.Response(b.Header(b.Flag.ACK), b"").checked


def test_a_data_checksum_is_the_complement():
    data = bytes(range(256)) * 4 + b"\x07"
    assert b.data_checksum(data) == 0xFFFF - cs16(data)
    assert (b.data_checksum(data) + b.checksum16(data)) & 0xFFFF == 0xFFFF


def test_command_ids_are_group_and_key():
    """REFERENCE.md: command id = (group << 3) | key; GETINFO 0x18, READ4 0x04."""
    assert b.cmd_id(3, 0) == 0x18
    assert b.cmd_id(3, 3) == 0x1B
    assert b.cmd_id(0, 4) == 0x04
    assert b.cmd_id(2, 2) == 0x12


def test_checksum16_on_a_big_endian_host_sums_the_same():
    """The portable path (``_sum_le``) that checksum16 takes where u16 is big-endian."""
    for data in (b"", b"\x01\x02", b"\xff\xff\x02\x00", bytes(range(256)) * 3):
        assert b._sum_le(memoryview(data)) == sum(
            data[i] | data[i + 1] << 8 for i in range(0, len(data), 2)
        )


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"", "empty payload"),
        (bytes([0x1F]), "unknown command id 31"),
        (bytes([0x1A, 0, 0, 0, 0, 0, 0, 0]), "FLASH_READ payload is 9 bytes, got 8"),
        (bytes([0x12, 0]), "REBOOT payload is 1 bytes, got 2"),
        (bytes([0x19, 1]), "FLASH_ERASE payload is 6 bytes, got 2"),
    ],
)
def test_decode_request_says_what_is_wrong(payload, message):
    with pytest.raises(ValueError) as exc:
        b.decode_request(payload)
    assert str(exc.value) == message


def test_a_chip_erase_carries_no_address():
    assert b.decode_request(bytes([0x19, 0])) == b.Request(b.Cmd.FLASH_ERASE, value=0)
    assert b.encode_request(b.Request(b.Cmd.FLASH_ERASE, value=0)) == bytes([0x19, 0])


@pytest.mark.parametrize(
    "req",
    [
        b.Request(b.Cmd.READ4, addr=0x80000000),
        b.Request(b.Cmd.WRITE4, addr=0xFFFFFFFC, data=b"\x01\x02\x03\x04"),
        b.Request(b.Cmd.SETPC, value=0x80000001),
        b.Request(b.Cmd.SEQRD, addr=0xC0000000, length=0x80000000),
        b.Request(b.Cmd.FLASH_READ, addr=0x80000000, length=0x80000000),
        b.Request(b.Cmd.FLASH_ERASE, value=b.Erase.BLOCK_64K, addr=0xFFFF0000),
    ],
)
def test_u32_fields_above_2_gib_round_trip(req):
    """Addresses and values are unsigned 32-bit on the wire."""
    wire = b.encode_request(req)
    assert b.decode_request(wire) == req


def test_encode_request_refusals():
    with pytest.raises(ValueError) as exc:
        b.encode_request(b.Request(b.Cmd.WRITE4, addr=0, data=b"\x01"))
    assert str(exc.value) == "WRITE4 carries 4 bytes"
    with pytest.raises(ValueError) as exc:
        b.encode_request(b.Request(0x1F))
    assert str(exc.value) == "unknown command id 31"


def test_frame_refuses_a_pre_image_of_another_length():
    with pytest.raises(ValueError) as exc:
        b.frame(b"ab", preimage=b"a")
    assert str(exc.value) == "a pre-image has the length of its payload"


def test_a_frame_of_64_kib_or_more_still_sums_to_ffff():
    """payload_len is a u32: its high half takes part in the header sum."""
    payload = bytes(range(256)) * 0x101  # 0x10100 bytes
    raw = b.frame(payload, b.Flag.ACK)
    h = b.Header.unpack(raw[:12])
    assert h.payload_len == 0x10100
    assert b.frame_sums_ok(h, payload)
    pre = raw[:6] + raw[6:8][::-1] + raw[8:12][::-1] + payload
    assert cs16(pre) == 0xFFFF


def test_frame_request_keeps_the_flags_asked_for():
    r = b.Request(b.Cmd.FLASH_GETINFO)
    plain = b.frame_request(r, flags=0)
    assert b.Header.unpack(plain[:12]).flags == 0
    assert b.frame_sums_ok(b.Header.unpack(plain[:12]), plain[12:])
    assert b.Header.unpack(b.frame_request(r)[:12]).flags == b.Flag.CHECK


def test_the_reserved_high_nibble_of_the_version_byte_is_summed_in_place():
    h = b.Header(b.Flag.ACK, version=2, checksum=0, payload_len=1, reserved=0x5)
    pre = b.header_preimage(h)
    assert pre[5] == 0x52
    assert pre == b"BROM" + bytes([b.Flag.ACK, 0x52]) + b"\0\0" + (1).to_bytes(4, "little")
    assert b.Header.unpack(h.pack()).reserved == 0x5
