"""The W90P745 image records and checksums (codec tests, no device)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from emulators.flash import NorFlash
from emulators.w90p745 import profile as P
from emulators.w90p745.commands import CommandError, decnum, hexnum, split_args
from emulators.w90p745.imagetable import (
    ImageRecord,
    build_factory,
    checksum32,
    flag_text,
    footer_address,
    parse_flags,
    place,
    scan,
)

M = 0xFFFFFFFF


def reference_checksum(data: bytes) -> int:
    """The one's-complement subtraction, one little-endian word at a time."""
    c = M
    data = data + b"\0" * (-len(data) % 4)
    for (w,) in struct.iter_unpack("<I", data):
        c -= w
        if c < 0:
            c = (c & M) - 1
    return c


@given(st.binary(max_size=600))
def test_checksum_is_the_ones_complement_difference(data):
    got = checksum32(data)
    assert 0 < got <= M
    assert got % M == reference_checksum(data) % M


@given(st.binary(max_size=200).map(lambda b: b + b"\0" * (-len(b) % 4)))
def test_checksum_of_data_and_its_checksum_is_zero(data):
    assert checksum32(data + struct.pack("<I", checksum32(data))) == M


records = st.builds(
    ImageRecord,
    number=st.integers(0, 31),
    name=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=15),
    base=st.integers(0, M),
    size=st.integers(0, M),
    load=st.integers(0, M),
    exec=st.integers(0, M),
    flags=st.integers(0, 0x1F),
    checksum=st.integers(0, M),
)


@given(records)
def test_record_roundtrip(rec):
    raw = rec.pack()
    assert len(raw) == 52 and raw[40:44] == b"\x9f\xff\xff\xa0"
    back = ImageRecord.unpack(raw)
    assert back == rec


@given(records, st.integers(0, 51), st.integers(1, 255))
def test_any_corrupted_byte_invalidates_the_record(rec, at, flip):
    raw = bytearray(rec.pack())
    raw[at] ^= flip
    assert ImageRecord.unpack(bytes(raw)) is None


@given(st.sets(st.sampled_from("acxfz")))
def test_flags_letters(letters):
    bits = parse_flags("-" + "".join(sorted(letters)))
    assert set(flag_text(bits)) == letters
    assert flag_text(bits) == "".join(c for c in "acxfz" if c in letters)


def test_footer_placement_of_the_seed_images():
    assert footer_address(0x7F020000, 0x000BF700) == 0x7F0DFFC0
    assert footer_address(0x7F0E0000, 0x0008FF80) == 0x7F16FFC0  # 128 bytes to spare
    assert footer_address(0x7F0E0000, 0x0008FFC0) == 0x7F16FFC0  # data meets the record
    assert footer_address(0x7F0E0000, 0x0008FFC1) == 0x7F17FFC0
    assert footer_address(0x7F010000, 0x48) == 0x7F01FFC0


def test_factory_flash_scans_to_the_seed_table():
    with NorFlash(P.flash_geometry()) as flash:
        build_factory(flash)
        lines = [r.ls_line() for r in scan(flash)]
        assert lines[1] == (
            "Image: 7 name:linux base:0x7F020000 size:0x000BF700 exec:0x00008000 -acxz"
        )
        assert [r.number for r in scan(flash)] == [0, 7, 6, 8]
        rec = place(ImageRecord(9, "x", 0x7F1F0000, 0, 0, 0, 1), b"abc")
        assert rec.footer == 0x7F1FFFC0 and rec.checksum == checksum32(b"abc")


@given(st.text(st.characters(max_codepoint=0xFF)))
def test_number_parsers_only_raise_the_loader_error(tok):
    for parse in (hexnum, lambda t: decnum(t, 31)):
        try:
            value = parse(tok)
        except CommandError as e:
            assert str(e) == f"ERROR: Invalid parameter '{tok}'"
        else:
            assert 0 <= value <= 0xFFFFFFFF


@given(
    st.lists(
        st.text(
            st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters='"\xa0\x85'),
            min_size=1,
        ),
        max_size=5,
    )
)
def test_split_args_words_and_quotes(words):
    assert split_args("  ".join(words)) == words
    assert split_args('fx 0 "BOOT INFO" 7f010000') == ["fx", "0", "BOOT INFO", "7f010000"]
