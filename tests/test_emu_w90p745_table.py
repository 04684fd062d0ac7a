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
    """WBLv1_1 flash.c WriteImage, written out: a 64-bit sum of the LE words,
    ``~((sum & 0xFFFFFFFF) + (sum >> 32))`` kept to 32 bits."""
    data = data + b"\0" * (-len(data) % 4)
    total = 0
    for (w,) in struct.iter_unpack("<I", data):
        total = (total + w) & 0xFFFFFFFFFFFFFFFF
    return (~((total & M) + (total >> 32))) & M


@given(st.binary(max_size=600))
def test_checksum_is_the_loaders_folded_sum(data):
    assert checksum32(data) == reference_checksum(data)


def test_checksum_known_values():
    assert checksum32(b"") == M  # ~0
    assert checksum32(struct.pack("<I", 1)) == M - 1
    # two words that carry into the high half: folded once
    assert checksum32(struct.pack("<2I", M, 2)) == (~(1 + 1)) & M


def test_checksum_matches_the_harness_builder():
    from harness.firmware.w90p745 import checksum

    data = bytes(range(256)) * 7 + b"xyz"
    assert checksum32(data) == checksum(data)


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
    # WriteImage: the last 52 bytes of the last block, or of the next one when
    # fewer than 52 bytes are left (a whole-block image included)
    assert footer_address(0x7F020000, 0x000BF700) == 0x7F0DFFCC
    assert footer_address(0x7F0E0000, 0x0008FF80) == 0x7F16FFCC  # 128 bytes to spare
    assert footer_address(0x7F0E0000, 0x0008FFCC) == 0x7F16FFCC  # data meets the footer
    assert footer_address(0x7F0E0000, 0x0008FFD0) == 0x7F17FFCC
    assert footer_address(0x7F0E0000, 0x00090000) == 0x7F17FFCC
    assert footer_address(0x7F010000, 0x48) == 0x7F01FFCC


def test_factory_flash_scans_to_the_seed_table():
    with NorFlash(P.flash_geometry()) as flash:
        build_factory(flash)
        lines = [r.ls_line() for r in scan(flash)]
        assert lines[1] == (
            "Image: 7 name:linux base:0x7F020000 size:0x000BF700 exec:0x00008000 -acxz"
        )
        assert [r.number for r in scan(flash)] == [0, 7, 6, 8]
        rec = place(ImageRecord(9, "x", 0x7F1F0000, 0, 0, 0, 1), b"abc")
        assert rec.footer == 0x7F1FFFCC and rec.checksum == checksum32(b"abc")
        assert rec.size == 4  # rounded up to 4, as WriteImage does


@given(st.text(st.characters(max_codepoint=0xFF)))
def test_number_parsers_only_raise_the_loader_error(tok):
    for parse in (hexnum, lambda t: decnum(t, 31)):
        try:
            value = parse(tok)
        except CommandError as e:
            assert str(e) == f"ERROR: Invalid parameter '{tok}'"
        else:
            assert 0 <= value <= 0xFFFFFFFF


def test_hex_numbers_need_0x_as_validhex_does():
    assert hexnum("0x7F020000") == 0x7F020000
    assert hexnum("0X1") == 1
    for bad in ("400", "0x", "x400", "0x7F0200001", "0xg"):
        try:
            hexnum(bad)
        except CommandError:
            continue
        raise AssertionError(bad)


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
