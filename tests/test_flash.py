"""The NOR flash model: AND programming, sector erase, pages, protection, faults."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.flash import (
    FlashAlignmentError,
    FlashGeometry,
    FlashNotErasedError,
    FlashProtectedError,
    NorFlash,
    PowerLossError,
)

SMALL = FlashGeometry.uniform(0x4000, 0x1000)  # 16 KiB, 4 sectors of 4 KiB
BOOT_BLOCK = FlashGeometry(regions=((4, 0x800), (3, 0x1000)))
SPI = FlashGeometry.uniform(0x4000, 0x1000, page_size=256)


def test_seed_example_old_and_new():
    """Seed 000: old 0101 0101, new 1100 1100, flash 0100 0100."""
    with NorFlash(SMALL) as f:
        f.program(0x10, bytes([0b01010101]))
        lost = f.program(0x10, bytes([0b11001100]))
        assert f.read(0x10, 1) == bytes([0b01000100])
        assert lost == 2  # bits 7 and 3 wanted 1 but were 0
        assert f.stats.lost_bits[0] == 2


def test_erase_sets_sector_to_ff_and_counts_wear():
    with NorFlash(SMALL) as f:
        f.program(0x1000, b"\x00" * 0x1000)
        assert f.erase(0x1000, 0x1000) == 1
        assert f.read(0x1000, 0x1000) == b"\xff" * 0x1000
        assert f.stats.erase_counts == [0, 1, 0, 0]


@pytest.mark.parametrize("off,length", [(0x800, 0x800), (0x1000, 0x800), (0x0, 0x1800)])
def test_unaligned_erase_is_refused_and_changes_nothing(off, length):
    with NorFlash(SMALL) as f:
        f.program(0, b"\x00" * 0x4000)
        with pytest.raises(FlashAlignmentError):
            f.erase(off, length)
        assert f.read(0, 0x4000) == b"\x00" * 0x4000


def test_boot_block_geometry():
    with NorFlash(BOOT_BLOCK) as f:
        assert f.size == 4 * 0x800 + 3 * 0x1000
        assert f.sector_count == 7
        assert f.sector_of(0x1FFF) == 3
        assert f.sector_of(0x2000) == 4
        assert f.sector_size(4) == 0x1000
        f.program(0x1800, b"\x00" * 0x1800)
        assert f.erase(0x1800, 0x1800) == 2


def test_spi_page_program_wraps_to_page_start():
    with NorFlash(SPI) as f:
        f.program(0x1F0, bytes(range(0x20)))  # 16 bytes fit, 16 wrap to 0x100
        assert f.read(0x1F0, 0x10) == bytes(range(0x10))
        assert f.read(0x100, 0x10) == bytes(range(0x10, 0x20))
        assert f.read(0x200, 0x10) == b"\xff" * 0x10


def test_spi_more_than_a_page_keeps_the_last_page_sent():
    with NorFlash(SPI) as f:
        data = bytes(i & 0xFF for i in range(300))
        f.program(0x300, data)
        # only the last 256 bytes sent survive; with start 0 they land at 300-256=44
        page = f.read(0x300, 256)
        expect = bytearray(256)
        for i, b in enumerate(data[-256:]):
            expect[(44 + i) % 256] = b
        assert page == bytes(expect)


def test_protected_sector_refuses_program_and_erase():
    with NorFlash(SMALL) as f:
        f.protect(1)
        before = f.snapshot()
        with pytest.raises(FlashProtectedError):
            f.program(0xFF0, b"\x00" * 0x20)  # touches sectors 0 and 1
        with pytest.raises(FlashProtectedError):
            f.erase(0, 0x2000)
        assert f.snapshot() == before
        f.protect(1, False)
        f.erase(0, 0x2000)


def test_checked_program_stops_at_first_bad_word():
    with NorFlash(SMALL) as f:
        f.program(0x104, b"\x00")  # byte 4 of the write below cannot go back to 1
        with pytest.raises(FlashNotErasedError) as exc:
            f.program_checked(0x100, b"\x11\x22\x33\x44\x55\x66\x77\x88", width=2)
        assert exc.value.offset == 0x104
        assert f.read(0x100, 8) == b"\x11\x22\x33\x44\x00\xff\xff\xff"


def test_checked_program_on_erased_flash_writes_everything():
    with NorFlash(SMALL) as f:
        f.program_checked(0x10, b"hello, flash", width=4)
        assert f.read(0x10, 12) == b"hello, flash"


def test_power_loss_during_erase_leaves_partial_state():
    with NorFlash(SMALL, seed=3) as f:
        f.program(0, b"\x00" * 0x4000)
        f.arm_power_loss(erase_sectors=1)
        with pytest.raises(PowerLossError):
            f.erase(0, 0x4000)
        assert f.read(0, 0x1000) == b"\xff" * 0x1000  # first sector finished
        cut = f.read(0x1000, 0x1000)
        assert cut != b"\xff" * 0x1000 and cut != b"\x00" * 0x1000
        assert f.read(0x2000, 0x2000) == b"\x00" * 0x2000  # never started


def test_power_loss_is_deterministic_for_a_seed():
    def run(seed):
        with NorFlash(SMALL, seed=seed) as f:
            f.program(0, b"\x00" * 0x1000)
            f.arm_power_loss(erase_sectors=0)
            with pytest.raises(PowerLossError):
                f.erase(0, 0x1000)
            return f.read(0, 0x1000)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_power_loss_during_program_leaves_a_prefix():
    with NorFlash(SMALL) as f:
        f.arm_power_loss(program_bytes=100)
        f.program(0, b"\x00" * 60)
        with pytest.raises(PowerLossError):
            f.program(60, b"\x00" * 60)
        assert f.read(0, 100) == b"\x00" * 100
        assert f.read(100, 20) == b"\xff" * 20


def test_persistence_across_instances(tmp_path):
    path = tmp_path / "flash.bin"
    with NorFlash(SMALL, path) as f:
        assert f.fresh
        f.program(0x20, b"kept")
    assert path.stat().st_size == 0x4000
    with NorFlash(SMALL, path) as f:
        assert not f.fresh
        assert f.read(0x20, 4) == b"kept"


def test_wrong_size_file_is_refused(tmp_path):
    path = tmp_path / "flash.bin"
    path.write_bytes(b"\xff" * 100)
    with pytest.raises(Exception, match="100 bytes"):
        NorFlash(SMALL, path)


# -- properties ------------------------------------------------------------------

ops = st.lists(st.tuples(st.integers(0, 0x3FFF), st.binary(min_size=1, max_size=300)), max_size=8)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_program_is_and_and_touches_nothing_else(writes):
    with NorFlash(SMALL) as f:
        model = bytearray(b"\xff" * 0x4000)
        for off, data in writes:
            data = data[: 0x4000 - off]
            f.program(off, data)
            for i, b in enumerate(data):
                model[off + i] &= b
        assert f.snapshot() == bytes(model)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 0x3FFF), st.binary(min_size=1, max_size=200))
def test_program_is_idempotent(off, data):
    data = data[: 0x4000 - off]
    with NorFlash(SMALL) as f:
        f.program(off, data)
        once = f.snapshot()
        assert f.program(off, data) == 0
        assert f.snapshot() == once


@settings(max_examples=40, deadline=None)
@given(ops, st.integers(0, 3))
def test_erase_restores_ff_only_in_its_sector(writes, sector):
    with NorFlash(SMALL) as f:
        for off, data in writes:
            f.program(off, data[: 0x4000 - off])
        before = f.snapshot()
        f.erase(sector * 0x1000, 0x1000)
        after = f.snapshot()
        lo, hi = sector * 0x1000, (sector + 1) * 0x1000
        assert after[lo:hi] == b"\xff" * 0x1000
        assert after[:lo] == before[:lo] and after[hi:] == before[hi:]


@settings(max_examples=40, deadline=None)
@given(ops, st.sets(st.integers(0, 3), min_size=1))
def test_protection_is_respected(writes, protected):
    with NorFlash(SMALL) as f:
        for s in protected:
            f.protect(s)
        for off, data in writes:
            data = data[: 0x4000 - off]
            before = f.snapshot()
            try:
                f.program(off, data)
            except FlashProtectedError:
                assert f.snapshot() == before
                assert any(f.sector_of(off + i) in protected for i in range(len(data)))
        for s in protected:
            assert f.read(s * 0x1000, 0x1000) == b"\xff" * 0x1000


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=64))
def test_checked_program_agrees_with_raw_when_it_succeeds(old, new):
    n = min(len(old), len(new))
    with NorFlash(SMALL) as a:
        a.program(0, old[:n])
        try:
            a.program_checked(0, new[:n], width=1)
        except FlashNotErasedError as e:
            bad = e.offset
            assert (old[bad] & new[bad]) != new[bad]
            assert all((old[i] & new[i]) == new[i] for i in range(bad))
            assert a.read(0, bad) == new[:bad]
        else:
            assert a.read(0, n) == new[:n]
