"""Direct tests of the W90P745 engine's parsers (recovery/w90p745/parsers.py), issue 21.

tests/test_w90_dump_parser.py round-trips pages, tables and the banner; this file
pins each check one at a time, so that a parser that quietly accepts a short page,
a manifest entry with a negative size or a banner whose configuration block never
ends fails a test. Facts: seed 001 (the page at 0x400, the ``ls -al`` table, the
banner and its configuration block) and REFERENCE.md (``d`` prints 16 lines of
``[%08X] %08X %08X - %08X %08X  <16 ascii>``; the ASCII column of the WBLv1_1
loader shows ``.`` for a byte <= 0x20 or > 0x7F and every other byte as itself,
DEL included).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.w90p745.parsers import (
    LINES_PER_PAGE,
    Footer,
    ImageEntry,
    LoaderInfo,
    PageError,
    ascii_char_ok,
    footer_address,
    loader_checksum,
    parse_banner,
    parse_footer,
    parse_image_line,
    parse_image_table,
    parse_page,
    parse_page_rows,
)

# seed 001, the first three and the last lines of the page at 0x400
SEED_FIRST = [
    "[00000400] A5810004 B3E00000 - A3A00000 E49DF004  ................",
    "[00000410] E52DE004 EBFFFFD3 - E3500000 A59F156C  ..-.......P.l...",
    "[00000420] A3A00980 A5810004 - B3E00000 A3A00000  ................",
]
SEED_LAST = "[000004F0] E3500980 23A00000 - 33A00D80 E1A0F00E  ..P....#...3...."


def shown(b: int) -> str:
    """The WBLv1_1 loader's ASCII column (REFERENCE.md)."""
    return "." if b <= 0x20 or b > 0x7F else chr(b)


def page_lines(data: bytes, address: int) -> list[str]:
    lines = [f"Displaying memory at 0x{address:X}"]
    for i in range(LINES_PER_PAGE):
        row = data[16 * i : 16 * i + 16]
        w = [int.from_bytes(row[k : k + 4], "little") for k in range(0, 16, 4)]
        text = "".join(shown(b) for b in row)
        lines.append(
            f"[{address + 16 * i:08X}] {w[0]:08X} {w[1]:08X} - {w[2]:08X} {w[3]:08X}  {text}"
        )
    return lines


def page(data: bytes, address: int) -> str:
    return "\r\n".join(page_lines(data, address)) + "\r\n"


DATA = bytes((i * 37 + 11) & 0xFF for i in range(256))


# -- the d page -----------------------------------------------------------------------------


def test_seed_lines_decode_to_little_endian_bytes():
    lines = page_lines(DATA, 0x400)
    lines[1:4] = SEED_FIRST
    lines[16] = SEED_LAST
    data = parse_page("\r\n".join(lines), 0x400)
    assert data[:16] == bytes.fromhex("040081A5 0000E0B3 0000A0A3 04F09DE4")
    assert data[0xF0:] == bytes.fromhex("800950E3 0000A023 800DA033 0EF0A0E1")


def test_a_page_whose_last_line_is_lost_is_refused():
    lines = page_lines(DATA, 0x400)
    with pytest.raises(PageError) as exc:
        parse_page("\r\n".join(lines[:-1]) + "\r\n", 0x400)
    assert str(exc.value) == "15 lines after the header, expected 16"


def test_a_page_with_a_line_too_many_is_refused():
    lines = page_lines(DATA, 0x400)
    with pytest.raises(PageError, match="17 lines after the header, expected 16"):
        parse_page("\r\n".join(lines + [lines[-1]]), 0x400)


def test_a_page_with_a_middle_line_lost_is_refused():
    lines = page_lines(DATA, 0x400)
    del lines[5]
    with pytest.raises(PageError, match="15 lines after the header"):
        parse_page("\r\n".join(lines), 0x400)


def test_a_line_with_the_wrong_address_is_refused():
    lines = page_lines(DATA, 0x400)
    lines[16] = lines[16].replace("[000004F0]", "[000005F0]")
    with pytest.raises(PageError) as exc:
        parse_page("\r\n".join(lines), 0x400)
    assert str(exc.value) == "line 16 shows address 000005F0, expected 000004F0"


def test_a_malformed_line_is_refused_and_quoted():
    lines = page_lines(DATA, 0x400)
    lines[2] = lines[2].replace(" - ", " ")
    with pytest.raises(PageError) as exc:
        parse_page("\r\n".join(lines), 0x400)
    assert str(exc.value) == f"line 2 is malformed: {lines[2][:70]!r}"
    lines = page_lines(DATA, 0x400)
    lines[3] += "[00000430] A3A00980"  # two lines merged: only 70 characters are quoted
    with pytest.raises(PageError) as exc:
        parse_page("\r\n".join(lines), 0x400)
    assert str(exc.value) == f"line 3 is malformed: {lines[3][:70]!r}"


def test_an_ascii_column_that_disagrees_names_the_byte():
    lines = page_lines(bytes(range(0x40, 0x40 + 16)) + bytes(240), 0x400)
    lines[1] = lines[1][:-1] + "Q"  # the last byte is 0x4F, shown as 'O'
    with pytest.raises(PageError) as exc:
        parse_page("\r\n".join(lines), 0x400)
    assert str(exc.value) == "line 1: ASCII column shows 'Q' for byte 0x4F at 0x0000040F"


def test_the_header_must_be_the_one_asked_for():
    text = page(DATA, 0x400)
    with pytest.raises(PageError) as exc:
        parse_page(text, 0x500)
    assert str(exc.value) == "header shows 0x400, asked for 0x500"
    headless = text.split("\r\n", 1)[1]
    with pytest.raises(PageError) as exc:
        parse_page(headless, 0x400)
    assert str(exc.value) == f"no 'Displaying memory at' header: {headless[:60]!r}"
    with pytest.raises(PageError) as exc:
        parse_page("\r\n\r\n", 0x400)
    assert str(exc.value) == "empty page"
    with pytest.raises(PageError, match="empty page"):
        parse_page("", 0x400)


def test_blank_lines_around_the_page_only():
    text = page(DATA, 0x7F000000)
    assert parse_page("\r\n\r\n" + text + "\r\n\n", 0x7F000000) == DATA
    assert parse_page(text.replace("\r\n", "\n"), 0x7F000000) == DATA
    lines = page_lines(DATA, 0x7F000000)
    lines.insert(8, "")
    with pytest.raises(PageError):
        parse_page("\r\n".join(lines), 0x7F000000)


def test_ascii_rule_of_the_loader():
    """WBLv1_1: '.' for <= 0x20 (space included) and > 0x7F; 0x21..0x7F as themselves."""
    assert ascii_char_ok(0x21, "!") and not ascii_char_ok(0x21, ".")
    assert ascii_char_ok(0x7E, "~")
    assert ascii_char_ok(0x7F, "\x7f") and not ascii_char_ok(0x7F, ".")
    assert ascii_char_ok(0x20, ".") and not ascii_char_ok(0x20, " ")
    assert ascii_char_ok(0x00, ".") and ascii_char_ok(0x80, ".") and ascii_char_ok(0xFF, ".")
    assert not ascii_char_ok(0x41, "B") and not ascii_char_ok(0x80, "\x80")
    assert ascii_char_ok(ord("."), ".")


def test_a_page_carrying_a_raw_del_byte():
    data = bytes([0x7F, 0x20, 0x2E, 0x00]) + DATA[4:]
    text = page(data, 0x400)
    assert "\x7f" in text
    assert parse_page(text, 0x400) == data


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=256, max_size=256), st.integers(0, 0xFFFFFF), st.integers(0, 15))
def test_page_round_trip_and_a_lost_line_anywhere(data, where, lost):
    address = where * 256
    lines = page_lines(data, address)
    assert parse_page("\r\n".join(lines), address) == data
    short = lines[: lost + 1] + lines[lost + 2 :]
    with pytest.raises(PageError):
        parse_page("\r\n".join(short), address)
    rows = parse_page_rows("\r\n".join(short), address)
    assert sorted(rows) == [i for i in range(16) if i != lost]


# -- rows of a page (the noisy-line reader) ---------------------------------------------------


def test_rows_of_the_page_asked_for_only():
    lines = page_lines(DATA, 0x400)
    rows = parse_page_rows("\r\n".join(lines), 0x400)
    assert rows == {i: DATA[16 * i : 16 * i + 16] for i in range(16)}
    # a row 16 bytes before or 256 bytes after belongs to another page
    other = page_lines(DATA, 0x3F0)[1] + "\r\n" + page_lines(DATA, 0x500)[1]
    assert parse_page_rows(other, 0x400) == {}
    # an address between rows is nobody's row
    odd = lines[1].replace("[00000400]", "[00000408]")
    assert parse_page_rows(odd, 0x400) == {}
    # and such lines do not hide the rows that follow them
    assert parse_page_rows(other + "\r\n" + odd + "\r\n" + lines[5], 0x400) == {4: DATA[64:80]}


def test_rows_that_disagree_with_their_ascii_column_are_dropped():
    lines = page_lines(bytes(range(0x40, 0x140 - 0xC0)) + bytes(0xC0), 0x400)
    lines[1] = lines[1][:-1] + "Q"
    rows = parse_page_rows("\r\n".join(lines), 0x400)
    assert 0 not in rows and sorted(rows) == list(range(1, 16))


def test_the_same_row_twice_identical_is_kept_differently_is_dropped():
    a = page_lines(DATA, 0x400)
    b = page_lines(bytes(256), 0x400)
    same = parse_page_rows("\r\n".join(a + a[1:3]), 0x400)
    assert same[0] == DATA[:16] and same[1] == DATA[16:32]
    mixed = parse_page_rows("\r\n".join(a + b[1:3]), 0x400)
    assert 0 not in mixed and 1 not in mixed and mixed[2] == DATA[32:48]
    # and a third copy after the conflict does not bring the row back wrong
    again = parse_page_rows("\r\n".join(a + b[1:2] + b[1:2]), 0x400)
    assert again.get(0) in (None, bytes(16))


# -- ls -al and the manifest entry ------------------------------------------------------------


SEED_LS = [
    "Image: 0 name:BOOT INFO base:0x7F010000 size:0x00000048 exec:0x7F010000 -f",
    "Image: 7 name:linux base:0x7F020000 size:0x000BF700 exec:0x00008000 -acxz",
    "Image: 6 name:romfs.img base:0x7F0E0000 size:0x0008FF80 exec:0x7F0E0000 -a",
    "Image: 8 name:webui base:0x7F180000 size:0x0006F700 exec:0x7F180000 -a",
]


def test_seed_table_fields():
    table = parse_image_table("bootloader > ls -al\r\n" + "\r\n".join(SEED_LS) + "\r\n")
    assert table[1] == ImageEntry(7, "linux", 0x7F020000, 0xBF700, 0x8000, "acxz")
    assert table[0].is_boot_info and not table[1].is_boot_info
    assert [e.pages for e in table] == [1, 3063, 2304, 1783]
    assert table[2].end == 0x7F0E0000 + 0x8FF80
    assert ImageEntry(1, "x", 0, 0, 0, "a").pages == 0
    assert ImageEntry(1, "x", 0, 257, 0, "a").pages == 2


def test_image_line_needs_every_field():
    assert parse_image_line(SEED_LS[1] + "\r\n") == ImageEntry(
        7, "linux", 0x7F020000, 0xBF700, 0x8000, "acxz"
    )
    assert parse_image_line(SEED_LS[1].replace("exec:", "exe:")) is None
    assert parse_image_line(SEED_LS[1] + " trailing") is None
    assert parse_image_line("bootloader > ") is None
    assert parse_image_line(SEED_LS[1] + " ") is None
    assert parse_image_line("\t" + SEED_LS[1]) is None


def test_table_lenient_and_strict():
    text = "\r\n".join(["bootloader > ls -al"] + SEED_LS + ["", "bootloader > "])
    assert len(parse_image_table(text)) == 4
    with pytest.raises(
        ValueError, match="unexpected line in the image table: 'bootloader > ls -al'"
    ):
        parse_image_table(text, strict=True)
    assert len(parse_image_table("\r\n".join(SEED_LS + ["", "  "]), strict=True)) == 4
    with pytest.raises(ValueError, match="unreadable image table line"):
        parse_image_table(SEED_LS[0].replace("base:0x7F010000", "base:0x7F01000"))


def test_manifest_entry_round_trip():
    e = ImageEntry(7, "linux", 0x7F020000, 0xBF700, 0x8000, "acxz")
    d = e.to_json()
    assert d == {
        "number": 7,
        "name": "linux",
        "base": "0x7f020000",
        "size": 0xBF700,
        "exec_addr": "0x8000",
        "flags": "acxz",
        "line": e.line(),
    }
    assert ImageEntry.from_json(d) == e
    # a dump made before addresses were hex strings still reads
    assert ImageEntry.from_json({**d, "base": 0x7F020000, "exec_addr": 0x8000}) == e


@pytest.mark.parametrize(
    "change",
    [
        {"size": -1},
        {"base": -0x100},
        {"flags": "A"},
        {"flags": "a x"},
        {"number": "seven"},
        {"size": None},
        {"base": "7F020000"},
        {"base": "0x"},
        {"exec_addr": True},
        {"exec_addr": 0x8000 + 0.5},
    ],
)
def test_manifest_entry_with_a_bad_field_is_refused(change):
    d = ImageEntry(7, "linux", 0x7F020000, 0xBF700, 0x8000, "acxz").to_json()
    d.update(change)
    with pytest.raises(ValueError, match="bad image entry"):
        ImageEntry.from_json(d)


@pytest.mark.parametrize("key", ["number", "name", "base", "size", "exec_addr", "flags"])
def test_manifest_entry_with_a_field_missing_is_refused(key):
    d = ImageEntry(7, "linux", 0x7F020000, 0xBF700, 0x8000, "acxz").to_json()
    del d[key]
    with pytest.raises(ValueError, match=f"bad image entry .*'{key}'"):
        ImageEntry.from_json(d)


def test_manifest_entry_at_zero_is_accepted():
    d = {"number": 0, "name": "", "base": 0, "size": 0, "exec_addr": 0, "flags": ""}
    assert ImageEntry.from_json(d) == ImageEntry(0, "", 0, 0, 0, "")


# -- the banner -------------------------------------------------------------------------------

SEED_BANNER = [
    "W90P745 Boot Loader [ Version 1.1 $Revision: 1 $ ] Rebuilt on Dec 10 2009",
    "Memory Size is 0x1000000 Bytes, Flash Size is 0x200000 Bytes",
    "Board designed by Winbond",
    "Hardware support provided at Winbond",
    "Copyright (c) Winbond Limited 2001 - 2006. All rights reserved.",
    "Boot Loader Configuration:",
    "",
    "        MAC Address         : 0E:F2:B3:DC:0C:EF",
    "        IP Address          :",
    "        DHCP Client         : Enabled",
    "        CACHE               : Enabled",
    "        BL buffer base      : 0x00300000",
    "        BL buffer size      : 0x00100000",
    "        Baud Rate           : 115200",
    "        USB Interface       : Enabled",
    "        Serial Number       : 0xFFFFFFFF",
    "",
    "For help on the available commands type 'h'",
    "",
    "Press ESC to enter debug mode",
]


def test_banner_config_block_ends_at_the_first_other_line():
    text = "\r\n".join(SEED_BANNER + ["        Not Config        : after the block"])
    info = parse_banner(text)
    assert len(info.config) == 9
    assert info.config[0] == ("MAC Address", "0E:F2:B3:DC:0C:EF")
    assert info.config[1] == ("IP Address", "")
    assert info.config[-1] == ("Serial Number", "0xFFFFFFFF")
    assert "Not Config" not in dict(info.config)


def test_banner_blank_lines_do_not_end_the_config_block():
    lines = SEED_BANNER[:8] + ["", "", "        Baud Rate  : 115200"]
    assert dict(parse_banner("\n".join(lines)).config) == {
        "MAC Address": "0E:F2:B3:DC:0C:EF",
        "Baud Rate": "115200",
    }


def test_banner_config_lines_before_the_block_are_not_config():
    lines = ["        Baud Rate  : 9600"] + SEED_BANNER
    assert dict(parse_banner("\n".join(lines)).config)["Baud Rate"] == "115200"
    assert len(parse_banner("\n".join(lines)).config) == 9


def test_banner_version_revision_build_and_sizes():
    info = parse_banner("\r\n".join(SEED_BANNER))
    assert (info.version, info.revision, info.built) == ("1.1", "1", "Dec 10 2009")
    assert (info.memory_size, info.flash_size) == (0x1000000, 0x200000)


def test_no_banner_at_all():
    assert parse_banner("") == LoaderInfo()
    assert parse_banner("bootloader > \r\n").version is None


def test_banner_without_revision_or_build_date():
    info = parse_banner("W90P745 Boot Loader [ Version 1.2 ]\r\n")
    assert (info.version, info.revision, info.built) == ("1.2", None, None)
    assert info.memory_size is None and info.config == ()


# -- the image footer (tfooter, REFERENCE.md) ---------------------------------------------------


def reference_checksum(data: bytes) -> int:
    """REFERENCE.md: LE u32 words summed in 64 bits, folded once, complemented, 32 bits."""
    data = data + bytes(-len(data) % 4)
    total = sum(struct.unpack(f"<{len(data) // 4}I", data))
    return ~((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def tfooter(number, base, length, load, exe, name, image_checksum, flags, signature=0xA0FFFF9F):
    head = struct.pack(
        "<5I16s3I", number, base, length, load, exe, name, image_checksum, signature, flags
    )
    return head + struct.pack("<I", reference_checksum(head))


def test_checksum_known_values():
    assert loader_checksum(b"") == 0xFFFFFFFF
    assert loader_checksum(b"\x01\x00\x00\x00") == 0xFFFFFFFE
    assert loader_checksum(b"\x01") == 0xFFFFFFFE  # a partial word is zero-padded
    assert loader_checksum(b"\x00\x01") == 0xFFFFFEFF
    assert loader_checksum(b"\x01\x02\x03\x04\x05") == ~(0x04030201 + 5) & 0xFFFFFFFF
    # a carry out of 32 bits is folded back once: 0xFFFFFFFF + 2 = 0x1_00000001 -> 2
    assert loader_checksum(b"\xff\xff\xff\xff\x02\x00\x00\x00") == 0xFFFFFFFD
    # many carries: 0x100 words of 0xFFFFFFFF = 0xFF_FFFFFF00 -> 0xFFFFFF00 + 0xFF
    assert loader_checksum(b"\xff" * 0x400) == 0
    # folded once only: 0x1_FFFFFFFF -> 0xFFFFFFFF + 1 = 0x1_00000000, kept to 32 bits
    assert loader_checksum(b"\xff" * 8 + b"\x01\x00\x00\x00") == 0xFFFFFFFF


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_checksum_property(data):
    assert loader_checksum(data) == reference_checksum(data)
    assert loader_checksum(bytearray(data)) == reference_checksum(data)


def test_footer_places_of_the_seed_images():
    """The seed's images: a footer in the last 52 bytes of the block an image ends in."""
    assert footer_address(0x7F010000, 0x48) == 0x7F01FFCC  # BOOT INFO
    assert footer_address(0x7F020000, 0x000BF700) == 0x7F0DFFCC  # linux, before romfs
    assert footer_address(0x7F0E0000, 0x0008FF80) == 0x7F16FFCC  # romfs, before webui
    assert footer_address(0x7F180000, 0x0006F700) == 0x7F1EFFCC  # webui


def test_footer_moves_to_the_next_block_when_fewer_than_52_bytes_are_left():
    assert footer_address(0x7F020000, 0xFFCC) == 0x7F02FFCC  # exactly 52 left
    assert footer_address(0x7F020000, 0xFFC9) == 0x7F02FFCC  # rounded up to 0xFFCC
    assert footer_address(0x7F020000, 0xFFCD) == 0x7F03FFCC  # 51 left once rounded
    assert footer_address(0x7F020000, 0x10000) == 0x7F03FFCC  # a whole block
    assert footer_address(0x7F020000, 0x10001) == 0x7F03FFCC
    assert footer_address(0x7F020000, 0x1FFCC) == 0x7F03FFCC
    assert footer_address(0x7F020000, 0x1FFD0) == 0x7F04FFCC
    assert footer_address(0x7F020000, 0) == 0x7F02FFCC


@settings(max_examples=60, deadline=None)
@given(st.integers(0x7F01, 0x7F1F), st.integers(0, 0x60000))
def test_footer_address_property(block, size):
    base = block * 0x10000
    at = footer_address(base, size)
    assert isinstance(at, int)  # an address, printed later with %08X
    assert at % 0x10000 == 0x10000 - 52  # always the last 52 bytes of a block
    padded = -(-size // 4) * 4
    assert at >= base + padded  # after the (padded) image
    assert at < base + padded + 0x10000  # in its last block or the next one


LINUX_FOOTER = tfooter(
    7, 0x7F020000, 0xBF700, 0x8000, 0x8000, b"linux", 0x1234ABCD, 0x01 | 0x02 | 0x04 | 0x10
)


def test_footer_fields():
    f = parse_footer(LINUX_FOOTER)
    assert f == Footer(7, 0x7F020000, 0xBF700, 0x8000, 0x8000, "linux", 0x1234ABCD, 0x17)
    full = tfooter(8, 1, 2, 3, 4, b"ABCDEFGHIJKLMNOP", 5, 0x20)
    assert parse_footer(full) == Footer(8, 1, 2, 3, 4, "ABCDEFGHIJKLMNOP", 5, 0x20)
    assert parse_footer(LINUX_FOOTER + b"\xff" * 12) == f  # only the first 52 bytes count


def test_footer_name_stops_at_the_first_nul():
    assert parse_footer(tfooter(6, 1, 2, 3, 4, b"romfs\0img", 5, 1)).name == "romfs"
    assert parse_footer(tfooter(6, 1, 2, 3, 4, b"\xe9t\xe9", 5, 1)).name == "\xe9t\xe9"


def test_footer_short_or_damaged_is_no_footer():
    assert parse_footer(LINUX_FOOTER[:51]) is None
    assert parse_footer(b"\xff" * 52) is None  # erased flash
    wrong_sig = tfooter(
        7, 0x7F020000, 0xBF700, 0x8000, 0x8000, b"linux", 0, 0x17, signature=0xA0FFFF9E
    )
    assert parse_footer(wrong_sig) is None  # its checksum is right, its signature is not
    bad = (reference_checksum(LINUX_FOOTER[:48]) + 1) & 0xFFFFFFFF
    assert parse_footer(LINUX_FOOTER[:48] + bad.to_bytes(4, "little")) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 52 * 8 - 1))
def test_any_flipped_bit_of_a_footer_is_caught(bit):
    raw = bytearray(LINUX_FOOTER)
    raw[bit // 8] ^= 1 << (bit % 8)
    assert parse_footer(bytes(raw)) is None
