"""The W90P745 ``d`` page, ``ls -al`` and banner parsers (recovery/w90p745/parsers.py).

Pages are rendered here by a small independent renderer written from the
seed's format (REFERENCE.md: ``[%08X] %08X %08X - %08X %08X  <16 ascii>``,
little-endian words), parsed back, and corrupted to check that damage is
caught.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery.w90p745.parsers import (
    ImageEntry,
    PageError,
    ascii_char_ok,
    parse_banner,
    parse_image_table,
    parse_page,
    parse_page_rows,
)

HEX = "0123456789ABCDEF"


def shown(b: int) -> str:
    """What the loader's ASCII column shows for byte ``b`` (WBLv1_1 sh.c
    HYC_DumpAddress): '.' for <= 0x20 or > 0x7F, the byte itself otherwise (DEL too)."""
    return "." if b <= 0x20 or b > 0x7F else chr(b)


def render_page(data: bytes, address: int) -> str:
    """The loader's page as it comes over the wire (CR LF line ends)."""
    out = [f"Displaying memory at 0x{address:X}\r\n"]
    for i in range(16):
        row = data[16 * i : 16 * i + 16]
        words = [int.from_bytes(row[k : k + 4], "little") for k in range(0, 16, 4)]
        text = "".join(shown(b) for b in row)
        out.append(
            f"[{address + 16 * i:08X}] {words[0]:08X} {words[1]:08X} - "
            f"{words[2]:08X} {words[3]:08X}  {text}\r\n"
        )
    return "".join(out)


# The seed's page, verbatim (seed 001, the Jedit capture).
SEED_PAGE = """Displaying memory at 0x400
[00000400] A5810004 B3E00000 - A3A00000 E49DF004  ................
[00000410] E52DE004 EBFFFFD3 - E3500000 A59F156C  ..-.......P.l...
[00000420] A3A00980 A5810004 - B3E00000 A3A00000  ................
[00000430] E49DF004 E52DE004 - EBFFFFCA E3500000  ......-.......P.
[00000440] A59F1548 A3A00840 - A5810004 B3E00000  H...@...........
[00000450] A3A00000 E49DF004 - E2800481 E3C00480  ................
[00000460] E35009FC 33A00B40 - 31A0F00E E59F151C  ..P.@..3...1....
[00000470] E5911004 E1500001 - 23A00000 33A00D80  ......P....#...3
[00000480] E1A0F00E E2800481 - E3C00480 E3500B40  ............@.P.
[00000490] 33A00D80 31A0F00E - E59F14F0 E5911004  ...3...1........
[000004A0] E1500001 23A00000 - 33A00B40 E1A0F00E  ..P....#@..3....
[000004B0] E2800481 E3C00480 - E3500B40 33A00D80  ........@.P....3
[000004C0] 31A0F00E E59F14C4 - E5911004 E1500001  ...1..........P.
[000004D0] 23A00000 33A00B40 - E1A0F00E E2800481  ...#@..3........
[000004E0] E3C00480 E350097C - 33A00B40 31A0F00E  ....|.P.@..3...1
[000004F0] E3500980 23A00000 - 33A00D80 E1A0F00E  ..P....#...3....
""".replace("\n", "\r\n")


def test_seed_page_parses_little_endian():
    data = parse_page(SEED_PAGE, 0x400)
    assert len(data) == 256
    # the word E35009FC at 0x460 is the bytes FC 09 50 E3 (REFERENCE.md)
    assert data[0x60:0x64] == bytes.fromhex("FC0950E3")
    assert data[:4] == bytes.fromhex("040081A5")
    assert render_page(data, 0x400) == SEED_PAGE


def test_seed_page_at_other_address_is_refused():
    with pytest.raises(PageError, match="asked for 0x500"):
        parse_page(SEED_PAGE, 0x500)


@given(data=st.binary(min_size=256, max_size=256), page=st.integers(0, 0xFFFFFF))
def test_round_trip(data, page):
    address = page * 256
    assert parse_page(render_page(data, address), address) == data


def test_del_is_raw_and_space_is_a_dot():
    data = bytes([0x7F, 0x20, 0x21, 0x80] * 64)
    text = render_page(data, 0x7F020000)
    assert "\x7f.!." in text
    assert parse_page(text, 0x7F020000) == data
    # the old friendlier forms are damage now: DEL shown as '.', a space shown as ' '
    with pytest.raises(PageError):
        parse_page(text.replace("\x7f", ".", 1), 0x7F020000)
    with pytest.raises(PageError):
        parse_page(text.replace("\x7f.!", "\x7f !", 1), 0x7F020000)


def test_dot_matches_any_byte_outside_0x21_to_0x7f():
    for b in range(256):
        assert ascii_char_ok(b, ".") == (b <= 0x20 or b > 0x7F or b == 0x2E)
        assert ascii_char_ok(b, chr(b)) == (0x21 <= b <= 0x7F)


@given(
    data=st.binary(min_size=256, max_size=256),
    before=st.sampled_from(["", "\r\n", "\r\n\r\n"]),
    after=st.sampled_from(["", "\r\n", "\n"]),
)
def test_blank_lines_around_page(data, before, after):
    assert parse_page(before + render_page(data, 0x100) + after, 0x100) == data


def _positions(text: str) -> list[tuple[int, str]]:
    """(index, kind) of every character: header, addr, hex, sep, ascii, eol."""
    kinds = []
    for line_no, line in enumerate(text.split("\r\n")[:-1]):
        base = sum(len(x) + 2 for x in text.split("\r\n")[:line_no])
        for col, _ in enumerate(line):
            if line_no == 0:
                kind = "header"
            elif col < 11:
                kind = "addr"
            elif col < 48:
                kind = "sep" if line[col] in " -" else "hex"
            elif col < 50:
                kind = "sep"
            else:
                kind = "ascii"
            kinds.append((base + col, kind))
        kinds.append((base + len(line), "eol"))
        kinds.append((base + len(line) + 1, "eol"))
    return kinds


@given(data=st.binary(min_size=256, max_size=256), pick=st.randoms(use_true_random=False))
def test_corrupted_char_is_detected_or_changes_only_an_invisible_byte(data, pick):
    address = 0x7F0E0000
    text = render_page(data, address)
    index, kind = pick.choice(_positions(text))
    old = text[index]
    new = pick.choice([c for c in (HEX + "xX .-[]\r\n\x00\xff@Pq") if c != old])
    bad = text[:index] + new + text[index + 1 :]
    if kind == "eol" and new in "\r\n":
        # a line end turned into another line end: the lines are intact
        with contextlib.suppress(PageError):
            assert parse_page(bad, address) == data
        return
    if kind != "hex" or new not in HEX:
        with pytest.raises(PageError):
            parse_page(bad, address)
        return
    # A hex digit turned into another hex digit: caught by the ASCII column
    # unless the old and the new byte show the same character there.
    try:
        got = parse_page(bad, address)
    except PageError:
        return
    diff = [i for i in range(256) if got[i] != data[i]]
    assert len(diff) == 1
    old_b, new_b = data[diff[0]], got[diff[0]]
    assert ascii_char_ok(new_b, shown(old_b))  # the ASCII column cannot tell them apart


@given(data=st.binary(min_size=256, max_size=256), pick=st.randoms(use_true_random=False))
def test_dropped_char_is_detected(data, pick):
    text = render_page(data, 0x2000)
    index = pick.randrange(len(text) - 2)  # the final CR LF only frames the page
    if text[index] == "\r":
        index += 2  # a lost CR alone leaves the line intact
    bad = text[:index] + text[index + 1 :]
    with pytest.raises(PageError):
        parse_page(bad, 0x2000)


@given(
    data=st.binary(min_size=256, max_size=256),
    pick=st.randoms(use_true_random=False),
    n=st.integers(2, 200),
)
def test_lost_burst_is_detected(data, pick, n):
    text = render_page(data, 0x2000)
    index = pick.randrange(len(text) - n - 2)
    bad = text[:index] + text[index + n :]
    with pytest.raises(PageError):
        parse_page(bad, 0x2000)


@given(data=st.binary(min_size=512, max_size=512))
def test_two_pages_or_garbage_line_refused(data):
    two = render_page(data[:256], 0x100) + render_page(data[256:], 0x200)
    with pytest.raises(PageError):
        parse_page(two, 0x100)
    with pytest.raises(PageError):
        parse_page(render_page(data[:256], 0x100) + "Unknown command\r\n", 0x100)
    with pytest.raises(PageError):
        parse_page("garbage\r\n" + render_page(data[:256], 0x100), 0x100)


def test_lowercase_hex_refused():
    page = render_page(bytes(range(256)), 0)
    assert "0F0E0D0C" in page
    with pytest.raises(PageError, match="malformed"):
        parse_page(page.replace("0F0E0D0C", "0f0e0d0c"), 0)


SEED_LS = """ls -al\r
Image: 0 name:BOOT INFO base:0x7F010000 size:0x00000048 exec:0x7F010000 -f\r
Image: 7 name:linux base:0x7F020000 size:0x000BF700 exec:0x00008000 -acxz\r
Image: 6 name:romfs.img base:0x7F0E0000 size:0x0008FF80 exec:0x7F0E0000 -a\r
Image: 8 name:webui base:0x7F180000 size:0x0006F700 exec:0x7F180000 -a\r
"""


def test_seed_image_table():
    table = parse_image_table(SEED_LS)
    assert [e.number for e in table] == [0, 7, 6, 8]
    boot, linux, romfs, webui = table
    assert boot.name == "BOOT INFO" and boot.is_boot_info and boot.size == 0x48
    assert linux == ImageEntry(7, "linux", 0x7F020000, 0xBF700, 0x8000, "acxz")
    assert linux.pages == 3063  # the seed's own arithmetic
    assert romfs.pages == 2304
    assert webui.end == 0x7F180000 + 0x6F700
    assert [e.line() for e in table] == SEED_LS.replace("\r", "").splitlines()[1:]


def test_broken_table_line_is_an_error():
    with pytest.raises(ValueError, match="unreadable"):
        parse_image_table("Image: 7 name:linux base:0x7F02000 size:0x000BF700 exec:0x1 -a\r\n")


@given(
    number=st.integers(0, 99),
    name=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=15),
    base=st.integers(0, 0xFFFFFFFF),
    size=st.integers(0, 0xFFFFFFFF),
    exe=st.integers(0, 0xFFFFFFFF),
    flags=st.sampled_from(["", "a", "acxz", "f", "ax"]),
)
def test_table_line_round_trip(number, name, base, size, exe, flags):
    e = ImageEntry(number, name, base, size, exe, flags)
    assert parse_image_table(e.line() + "\r\n") == [e]
    assert ImageEntry.from_json(e.to_json()) == e


SEED_BANNER = """W90P745 Boot Loader [ Version 1.1 $Revision: 1 $ ] Rebuilt on Dec 10 2009
Memory Size is 0x1000000 Bytes, Flash Size is 0x200000 Bytes
Board designed by Winbond
Hardware support provided at Winbond
Copyright (c) Winbond Limited 2001 - 2006. All rights reserved.
Boot Loader Configuration:

        MAC Address         : 0E:F2:B3:DC:0C:EF
        IP Address          :
        DHCP Client         : Enabled
        CACHE               : Enabled
        BL buffer base      : 0x00300000
        BL buffer size      : 0x00100000
        Baud Rate           : 115200
        USB Interface       : Enabled
        Serial Number       : 0xFFFFFFFF

For help on the available commands type 'h'

Press ESC to enter debug mode
""".replace("\n", "\r\n")


def test_seed_banner():
    info = parse_banner(SEED_BANNER)
    assert info.version == "1.1"
    assert info.revision == "1"
    assert info.built == "Dec 10 2009"
    assert info.memory_size == 0x1000000
    assert info.flash_size == 0x200000
    config = dict(info.config)
    assert config["MAC Address"] == "0E:F2:B3:DC:0C:EF"
    assert config["IP Address"] == ""
    assert config["BL buffer base"] == "0x00300000"
    assert config["Serial Number"] == "0xFFFFFFFF"
    assert len(config) == 9


def test_banner_missing():
    info = parse_banner("bootloader > \r\n")
    assert info.version is None and info.flash_size is None and info.config == ()


@given(data=st.binary(min_size=256, max_size=256), page=st.integers(0, 0xFFFFFF))
def test_rows_of_a_clean_page(data, page):
    address = page * 256
    rows = parse_page_rows(render_page(data, address), address)
    assert rows == {i: data[16 * i : 16 * i + 16] for i in range(16)}


@given(data=st.binary(min_size=256, max_size=256), pick=st.randoms(use_true_random=False))
def test_rows_survive_damage_elsewhere(data, pick):
    """A damaged character costs at most the rows it touches; no row comes back wrong
    except when a hex digit became another behind a '.' in the ASCII column."""
    text = render_page(data, 0x4000)
    index = pick.randrange(len(text))
    new = pick.choice([c for c in (HEX + "x .-[]\r\n@") if c != text[index]])
    rows = parse_page_rows(text[:index] + new + text[index + 1 :], 0x4000)
    assert len(rows) >= 14
    wrong = [i for i, row in rows.items() if row != data[16 * i : 16 * i + 16]]
    assert len(wrong) <= 1
    for i in wrong:
        diff = [j for j in range(16) if rows[i][j] != data[16 * i + j]]
        assert len(diff) == 1
        old_b, new_b = data[16 * i + diff[0]], rows[i][diff[0]]
        assert ascii_char_ok(new_b, shown(old_b))  # the ASCII column cannot tell them apart


@given(data=st.binary(min_size=512, max_size=512))
def test_rows_ignore_other_pages_and_conflicts(data):
    mine, other = data[:256], data[256:]
    text = render_page(other, 0x300) + render_page(mine, 0x200) + "garbage\r\n"
    assert parse_page_rows(text, 0x200) == {i: mine[16 * i : 16 * i + 16] for i in range(16)}
    # the same row twice with different contents: neither is kept
    twice = render_page(mine, 0x200) + render_page(bytes(256), 0x200)
    rows = parse_page_rows(twice, 0x200)
    assert all(rows[i] == bytes(16) == mine[16 * i : 16 * i + 16] for i in rows)


def test_strict_table_refuses_a_damaged_line():
    damaged = SEED_LS.split("\r\n", 1)[1].replace("Image: 8", "Imqge: 8")
    assert len(parse_image_table(damaged)) == 3  # lenient: the line vanishes
    with pytest.raises(ValueError, match="unexpected line"):
        parse_image_table(damaged, strict=True)
    assert len(parse_image_table(SEED_LS.split("\r\n", 1)[1] + "\r\n", strict=True)) == 4
