"""Every rule of the NOR flash model, checked one by one (issue 21).

tests/test_flash.py shows the model's main behaviours; this file pins each rule
of emulators/flash.py so that a model that quietly becomes friendlier than a chip
fails a test. The facts come from REFERENCE.md and the seeds:

* seed 000: a file flashed over an unerased partition gives old AND new
  (old 0101 0101, new 1100 1100, flash 0100 0100) — the bits that could not be
  set are what the JFFS2 scan later reports as CRC errors;
* the Hi3511's 16 MiB CFI chip in 128 KiB sectors, U-Boot's 16-bit bus
  (``CFI conformant FLASH (16 x 16)``) so a checked ``cp`` works in 2-byte words;
* the XF16's 1 MiB SPI NOR: 4 KiB sectors, 256-byte pages, a page program that
  crosses the page end wraps to the page start;
* an interrupted erase leaves the sector neither erased nor as it was.

Where a rule needs a device's clock, the test swaps the module's ``time`` for a
recorder: what is checked is how long the model asks to wait, never how long it
took.
"""

from __future__ import annotations

import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emulators.flash as flash_mod
from emulators.flash import (
    FlashAlignmentError,
    FlashGeometry,
    FlashNotErasedError,
    FlashProtectedError,
    FlashRangeError,
    NorFlash,
    PowerLossError,
    sector_layout,
)
from emulators.hi3511 import profile as hi3511_profile
from emulators.xr872 import profile as xr872_profile

SMALL = FlashGeometry.uniform(0x4000, 0x1000)  # 4 sectors of 4 KiB, CFI-style (no pages)
XF16 = xr872_profile.flash_geometry()  # 1 MiB SPI NOR, 4 KiB sectors, 256-byte pages
OLD, NEW, ANDED = 0b01010101, 0b11001100, 0b01000100  # seed 000


class SleepRecorder:
    """Stands in for the ``time`` module: records the waits the model asks for."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    rec = SleepRecorder()
    monkeypatch.setattr(flash_mod, "time", types.SimpleNamespace(sleep=rec.sleep))
    return rec


# -- geometry -----------------------------------------------------------------------


def test_uniform_geometry_of_the_hi3511_chip():
    g = hi3511_profile.flash_geometry()
    assert g.regions == ((128, 0x20000),)
    assert g.size == 16 << 20
    assert g.page_size is None
    assert g.name == "S29GL128"  # keyword arguments reach the geometry
    assert g.erase_time == 0.5


def test_uniform_geometry_keeps_the_page_size_of_the_xf16_chip():
    assert XF16.regions == ((256, 0x1000),)
    assert XF16.page_size == 256


def test_uniform_geometry_refuses_a_size_that_is_not_whole_sectors():
    with pytest.raises(ValueError) as exc:
        FlashGeometry.uniform(0x4800, 0x1000)
    assert str(exc.value) == "size must be a multiple of the sector size"
    assert FlashGeometry.uniform(0x1000, 0x1000).regions == ((1, 0x1000),)


def test_sector_layout_lists_start_and_size_of_every_sector():
    boot_block = FlashGeometry(regions=((2, 0x800), (2, 0x1000)))
    with NorFlash(boot_block) as f:
        assert list(sector_layout(f)) == [
            (0, 0x800),
            (0x800, 0x800),
            (0x1000, 0x1000),
            (0x2000, 0x1000),
        ]


def test_sectors_in_an_empty_range_is_empty():
    with NorFlash(SMALL) as f:
        assert list(f.sectors_in(0, 0)) == []
        assert list(f.sectors_in(0x2000, 0)) == []
        assert list(f.sectors_in(0x2000, -5)) == []
        assert list(f.sectors_in(0xFFF, 2)) == [0, 1]


# -- range checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset,length",
    [(-1, 1), (0, -1), (0x3FFF, 2), (0x4000, 1), (0, 0x4001), (0x2000, 0x2001)],
)
def test_read_outside_the_chip_raises(offset, length):
    with NorFlash(SMALL) as f, pytest.raises(FlashRangeError, match="outside the 0x4000-byte chip"):
        f.read(offset, length)


def test_read_up_to_the_last_byte_works():
    with NorFlash(SMALL) as f:
        assert f.read(0x3FFF, 1) == b"\xff"
        assert f.read(0x4000, 0) == b""
        assert len(f.read(0, 0x4000)) == 0x4000


def test_program_and_erase_outside_the_chip_raise_and_change_nothing():
    with NorFlash(SMALL) as f:
        with pytest.raises(FlashRangeError):
            f.program(0x3FF0, b"\x00" * 0x20)
        with pytest.raises(FlashRangeError):
            f.program_checked(0x3FF0, b"\x00" * 0x20)
        with pytest.raises(FlashRangeError):
            f.erase(0x3000, 0x2000)
        with pytest.raises(FlashRangeError):
            f.load(0x3FFF, b"ab")
        assert f.snapshot() == b"\xff" * 0x4000


# -- load (factory programming) --------------------------------------------------------


def test_load_overwrites_cells_without_and_protection_or_statistics():
    with NorFlash(SMALL) as f:
        f.program(0x100, b"\x00\x00\x00")
        f.protect(0)
        f.arm_power_loss(program_bytes=0)
        f.load(0x100, b"\xaa\x55\xff")
        assert f.read(0x0FF, 5) == b"\xff\xaa\x55\xff\xff"
        assert f.stats.bytes_programmed == 3
        assert f.stats.lost_bits == [0, 0, 0, 0]


# -- programming: old AND new ----------------------------------------------------------


def test_seed_000_bits_that_could_not_be_set_are_counted_per_sector():
    with NorFlash(SMALL) as f:
        f.program(0x1000, bytes([OLD]))
        assert f.program(0x1000, bytes([NEW])) == 2
        assert f.read(0x1000, 1) == bytes([ANDED])
        assert f.stats.lost_bits == [0, 2, 0, 0]
        assert f.program(0x1000, bytes([NEW])) == 2  # still wanted, still lost
        assert f.stats.lost_bits == [0, 4, 0, 0]
        assert f.stats.total_lost_bits == 4


def test_a_program_across_a_sector_boundary_counts_each_side():
    with NorFlash(SMALL) as f:
        f.program(0xFF0, b"\x00" * 0x20)
        assert f.program(0xFF0, b"\xff" * 0x20) == 0x20 * 8
        assert f.stats.lost_bits == [0x10 * 8, 0x10 * 8, 0, 0]
        assert f.read(0xFF0, 0x20) == b"\x00" * 0x20
        assert f.program(0x1FF8, b"\x0f" * 0x10) == 0
        assert f.stats.lost_bits == [0x80, 0x80, 0, 0]


def test_program_on_erased_cells_loses_nothing_anywhere():
    with NorFlash(SMALL) as f:
        assert f.program(0x0FFE, b"\x12\x34\x56\x78") == 0
        assert f.stats.lost_bits == [0, 0, 0, 0]
        assert f.read(0x0FFE, 4) == b"\x12\x34\x56\x78"


def test_an_empty_program_does_nothing():
    with NorFlash(SMALL) as f:
        assert f.program(0x10, b"") == 0
        assert f.program_checked(0x10, b"") is None
        assert f.stats.bytes_programmed == 0
    with NorFlash(XF16) as f:
        assert f.program(0x10, b"") == 0


def test_bytes_programmed_adds_up():
    with NorFlash(SMALL) as f:
        f.program(0, b"abc")
        f.program(0x10, b"defgh")
        f.program_checked(0x20, b"ij", width=2)
        assert f.stats.bytes_programmed == 10


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 0x3FFF), st.binary(min_size=1, max_size=0x1800)),
        min_size=1,
        max_size=5,
    )
)
def test_lost_bits_per_sector_match_a_reference_count(writes):
    with NorFlash(SMALL) as f:
        cells = bytearray(b"\xff" * 0x4000)
        lost = [0, 0, 0, 0]
        for off, data in writes:
            data = data[: 0x4000 - off]
            expect = 0
            for i, b in enumerate(data):
                n = bin(~cells[off + i] & b & 0xFF).count("1")
                lost[(off + i) // 0x1000] += n
                expect += n
                cells[off + i] &= b
            assert f.program(off, data) == expect
        assert f.stats.lost_bits == lost
        assert f.snapshot() == bytes(cells)


# -- SPI page program ------------------------------------------------------------------


def test_spi_program_of_the_last_byte_of_the_chip():
    with NorFlash(XF16) as f:
        f.program(XF16.size - 1, b"\x5a")
        assert f.read(XF16.size - 2, 2) == b"\xff\x5a"
        with pytest.raises(FlashRangeError):
            f.program(XF16.size, b"\x00")


def test_spi_exactly_one_page_from_mid_page_wraps():
    with NorFlash(XF16) as f:
        data = bytes(range(256))
        f.program(0x2080, data)
        page = f.read(0x2000, 256)
        assert page == data[0x80:] + data[:0x80]


def test_spi_program_into_a_protected_sector_is_refused_and_changes_nothing():
    """flash.py's page path checks protection of the whole page it programs."""
    with NorFlash(XF16) as f:
        f.protect(3)
        with pytest.raises(FlashProtectedError) as exc:
            f.program(0x3010, b"\x00" * 16)
        assert (exc.value.sector, exc.value.offset) == (3, 0x3000)
        assert "sector 3 at 0x00003000 is protected" in str(exc.value)
        # a wrapped page program that starts in sector 2 never leaves it
        f.program(0x2FF0, b"\x00" * 0x20)
        assert f.read(0x2F00, 0x10) == b"\x00" * 0x10
        assert f.read(0x2FF0, 0x10) == b"\x00" * 0x10
        assert f.read(0x3000, 0x1000) == b"\xff" * 0x1000
        assert f.stats.bytes_programmed == 256


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 255), st.sets(st.integers(0, 255), min_size=1, max_size=3))
def test_spi_protection_of_any_sector_refuses_any_page_in_it(page_no, protected):
    with NorFlash(XF16) as f:
        for s in protected:
            f.protect(s)
        offset = page_no * 256 + 7
        try:
            f.program(offset, b"\x00" * 300)
        except FlashProtectedError as e:
            assert offset // 0x1000 in protected
            assert e.sector == offset // 0x1000
            assert f.snapshot() == b"\xff" * XF16.size
        else:
            assert offset // 0x1000 not in protected
            assert f.read(page_no * 256, 256) == b"\x00" * 256


# -- checked program (U-Boot's CFI word path) -------------------------------------------


def test_checked_program_counts_words_of_two_bytes_by_default():
    """U-Boot's bus is 16 x 16: a word that cannot be written is 2 bytes wide."""
    with NorFlash(SMALL) as f:
        f.program(0x103, b"\x00")
        with pytest.raises(FlashNotErasedError) as exc:
            f.program_checked(0x100, b"\x11\x22\x33\x44\x55\x66")
        assert exc.value.offset == 0x102
        assert str(exc.value) == "flash not erased at 0x00000102"
        assert f.read(0x100, 6) == b"\x11\x22\xff\x00\xff\xff"


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=1, max_size=40),
    st.binary(min_size=1, max_size=40),
    st.sampled_from([1, 2, 4]),
    st.integers(0, 8),
)
def test_checked_program_stops_on_a_word_boundary(old, new, width, at):
    n = min(len(old), len(new))
    old, new = old[:n], new[:n]
    offset = 0x200 + at
    with NorFlash(SMALL) as f:
        f.program(offset, old)
        try:
            f.program_checked(offset, new, width=width)
        except FlashNotErasedError as e:
            ok = e.offset - offset
            assert ok % width == 0
            bad = next(i for i in range(n) if old[i] & new[i] != new[i])
            assert ok <= bad < ok + width
            assert f.read(offset, ok) == new[:ok]
            assert f.read(offset + ok, n - ok) == old[ok:]
        else:
            assert all(o & w == w for o, w in zip(old, new, strict=True))
            assert f.read(offset, n) == new


def test_checked_program_refuses_a_protected_sector():
    with NorFlash(SMALL) as f:
        f.protect(2)
        with pytest.raises(FlashProtectedError):
            f.program_checked(0x1FFE, b"\x00" * 4)
        assert f.snapshot() == b"\xff" * 0x4000


# -- erase -------------------------------------------------------------------------------


def test_erase_of_nothing_erases_nothing():
    with NorFlash(SMALL) as f:
        f.program(0, b"\x00" * 0x4000)
        assert f.erase(0x1000, 0) == 0
        assert f.stats.sectors_erased == 0
        assert f.snapshot() == b"\x00" * 0x4000


@pytest.mark.parametrize(
    "offset,length,where",
    [
        (0, 1, "0x00000001"),
        (0x1000, 1, "0x00001001"),
        (0x0800, 0x800, "0x00000800"),
        (0x1000, 0x0800, "0x00001800"),
        (0x1000, 0x1001, "0x00002001"),
        (0x0FFF, 0x1001, "0x00000fff"),
    ],
)
def test_erase_with_one_end_off_a_sector_boundary_is_refused(offset, length, where):
    with NorFlash(SMALL) as f:
        f.program(0, b"\x00" * 0x4000)
        with pytest.raises(FlashAlignmentError, match=f"{where} is not on a sector boundary"):
            f.erase(offset, length)
        assert f.snapshot() == b"\x00" * 0x4000
        assert f.stats.sectors_erased == 0


def test_erase_counts_wear_and_sectors_and_resets_lost_bits():
    with NorFlash(SMALL) as f:
        f.program(0x1000, bytes([OLD]) * 4)
        f.program(0x1000, bytes([NEW]) * 4)
        f.program(0x2000, b"\x00")
        f.program(0x2000, b"\x01")
        assert f.stats.lost_bits == [0, 8, 1, 0]
        assert f.erase(0x1000, 0x1000) == 1
        assert f.stats.lost_bits == [0, 0, 1, 0]  # only the erased sector forgets
        assert f.stats.sectors_erased == 1
        assert f.erase(0x1000, 0x3000) == 3
        assert f.stats.lost_bits == [0, 0, 0, 0]
        assert f.stats.erase_counts == [0, 2, 1, 1]
        assert f.stats.sectors_erased == 4
        # after the erase the same write loses nothing: the seed's fix
        f.program(0x1000, bytes([NEW]))
        assert f.read(0x1000, 1) == bytes([NEW])
        assert f.stats.lost_bits == [0, 0, 0, 0]


def test_erase_sector_of_a_protected_sector_raises_and_changes_nothing():
    with NorFlash(SMALL) as f:
        f.program(0x2000, b"\x00" * 0x1000)
        f.protect(2)
        assert f.is_protected(2) and not f.is_protected(1)
        with pytest.raises(FlashProtectedError) as exc:
            f.erase_sector(2)
        assert (exc.value.sector, exc.value.offset) == (2, 0x2000)
        assert str(exc.value) == "sector 2 at 0x00002000 is protected"
        assert f.read(0x2000, 0x1000) == b"\x00" * 0x1000
        assert f.stats.erase_counts == [0, 0, 0, 0] and f.stats.sectors_erased == 0


def test_range_erase_over_a_protected_sector_names_it_and_erases_nothing():
    with NorFlash(SMALL) as f:
        f.program(0, b"\x00" * 0x4000)
        f.protect(2)
        with pytest.raises(FlashProtectedError) as exc:
            f.erase(0, 0x4000)
        assert (exc.value.sector, exc.value.offset) == (2, 0x2000)
        assert f.snapshot() == b"\x00" * 0x4000
        assert f.stats.sectors_erased == 0


# -- power loss --------------------------------------------------------------------------


def test_power_loss_during_erase_fires_once_then_the_chip_works():
    with NorFlash(SMALL, seed=5) as f:
        f.program(0, b"\x00" * 0x4000)
        f.arm_power_loss(erase_sectors=2)
        with pytest.raises(PowerLossError, match="power lost while erasing sector 2"):
            f.erase(0, 0x4000)
        assert f.stats.sectors_erased == 2
        assert f.stats.erase_counts == [1, 1, 0, 0]  # the cut sector is not counted
        assert f.read(0x3000, 0x1000) == b"\x00" * 0x1000
        # the plan is spent: the same erase now completes, and so do programs
        assert f.erase(0, 0x4000) == 4
        assert f.snapshot() == b"\xff" * 0x4000
        f.program(0, b"\x00" * 0x4000)
        assert f.snapshot() == b"\x00" * 0x4000


def test_power_loss_during_program_fires_once_then_the_chip_works():
    with NorFlash(SMALL) as f:
        f.arm_power_loss(program_bytes=10)
        f.program(0, b"\x00" * 10)  # exactly the budget: no cut yet
        assert f.read(0, 10) == b"\x00" * 10
        with pytest.raises(
            PowerLossError, match="power lost after 0 bytes of a program at 0x00000010"
        ):
            f.program(0x10, b"\x00" * 4)
        assert f.read(0x10, 4) == b"\xff" * 4
        assert f.stats.bytes_programmed == 10
        f.program(0x10, b"\x00" * 4)  # the plan is spent
        assert f.read(0x10, 4) == b"\x00" * 4
        assert f.stats.bytes_programmed == 14


def test_power_loss_in_a_program_keeps_the_prefix_and_counts_it():
    with NorFlash(SMALL) as f:
        f.arm_power_loss(program_bytes=3)
        with pytest.raises(PowerLossError, match="after 3 bytes"):
            f.program(0x20, b"\x01\x02\x03\x04\x05")
        assert f.read(0x20, 5) == b"\x01\x02\x03\xff\xff"
        assert f.stats.bytes_programmed == 3


def test_disarm_cancels_a_planned_power_loss():
    with NorFlash(SMALL) as f:
        f.arm_power_loss(erase_sectors=0, program_bytes=0)
        f.disarm()
        assert f.erase(0, 0x1000) == 1
        assert f.program(0, b"\x00") == 0
        assert f.read(0, 1) == b"\x00"
        f.arm_power_loss(program_bytes=0)
        f.disarm()
        f.arm_power_loss(erase_sectors=1)
        f.disarm()
        assert f.erase(0, 0x4000) == 4


def _interrupted(old: bytes, seed: int) -> bytes:
    """The sector after an erase of ``old`` that lost power at once."""
    geometry = FlashGeometry.uniform(len(old), len(old))
    with NorFlash(geometry, seed=seed) as f:
        f.load(0, old)
        f.arm_power_loss(erase_sectors=0)
        with pytest.raises(PowerLossError):
            f.erase_sector(0)
        assert f.stats.erase_counts == [0] and f.stats.sectors_erased == 0
        return f.read(0, len(old))


PATTERN = bytes((i * 7 + 3) & 0x7F for i in range(0x1000))  # no 0xFF byte, not symmetric


def test_an_interrupted_erase_sets_whole_bytes_in_place():
    for seed in range(8):
        after = _interrupted(PATTERN, seed)
        assert all(a in (o, 0xFF) for a, o in zip(after, PATTERN, strict=True)), seed


def test_partial_erase_fraction_stays_between_a_tenth_and_nine_tenths():
    """Neither erased nor untouched: the share of bytes set is in [0.1, 0.9)."""
    shares = []
    for seed in range(60):
        after = _interrupted(PATTERN, seed)
        shares.append(sum(1 for b in after if b == 0xFF) / len(after))
    assert min(shares) > 0.05
    assert max(shares) < 0.95
    assert max(shares) - min(shares) > 0.3  # the seed picks the share


def test_an_interrupted_erase_never_reads_as_erased():
    """Old data one 0 bit away from erased: the guard keeps one bit cleared."""
    old = b"\xff" * 0x100 + b"\x7f" + b"\xff" * 0xEFF
    outcomes = {_interrupted(old, seed) for seed in range(40)}
    guarded = b"\xfe" + b"\xff" * 0xFFF
    assert outcomes == {old, guarded}


def test_an_interrupted_erase_of_an_erased_sector_still_shows_a_cleared_bit():
    assert _interrupted(b"\xff" * 0x100, 1) == b"\xfe" + b"\xff" * 0xFF


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=64, max_size=64), st.integers(0, 2**16))
def test_interrupted_erase_property(old, seed):
    after = _interrupted(old, seed)
    assert after != b"\xff" * 64
    for i, (a, o) in enumerate(zip(after, old, strict=True)):
        if i == 0 and a == 0xFE:
            continue  # the guard's cleared bit
        assert a in (o, 0xFF)


# -- timing (what the model asks to wait, never measured) -------------------------------


def test_real_time_mode_waits_the_datasheet_times(clock):
    g = FlashGeometry.uniform(0x4000, 0x1000, erase_time=0.25, program_time=0.001)
    with NorFlash(g, realtime=True) as f:
        f.erase(0, 0x2000)
        f.program(0, b"\x00" * 8)
    assert clock.waits == [0.25, 0.25, pytest.approx(0.008)]


def test_fast_mode_never_waits(clock):
    with NorFlash(SMALL) as f:
        f.erase(0, 0x4000)
        f.program(0, b"\x00" * 8)
        f.program_checked(0x10, b"\x00" * 8)
    assert clock.waits == []


def test_real_time_mode_does_not_wait_for_nothing(clock):
    g = FlashGeometry.uniform(0x4000, 0x1000, erase_time=0.0, program_time=0.0)
    with NorFlash(g, realtime=True) as f:
        f.erase(0, 0x1000)
        f.program(0, b"\x00")
    assert clock.waits == []


# -- persistence ------------------------------------------------------------------------


def test_flush_and_close_keep_the_file_and_close_is_idempotent(tmp_path):
    path = tmp_path / "chip.bin"
    f = NorFlash(SMALL, path)
    f.program(0x40, b"\x00\x01")
    f.flush()
    assert path.read_bytes()[0x40:0x42] == b"\x00\x01"
    f.close()
    f.close()
    with NorFlash(SMALL) as mem:
        mem.flush()  # an in-memory chip has nothing to flush
        assert mem.fresh
