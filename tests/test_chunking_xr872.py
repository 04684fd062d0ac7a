"""The XR872 engine's BROM frame reader through a link that hands the ROM's answers
over in bursts (``LinkFaults.chunk``): a dump reads the same bytes whatever the pieces
(issue 19). The frames are binary and read with exact reads; a piece may end inside a
header, inside a payload or hold the next answer's first bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emulators.serial import LinkFaults
from emulators.xr872 import XR872Device
from recovery.xr872 import operations as x
from recovery.xr872.driver import Session

# the engine's own answer timeout (2 s): a busy machine may be slow, never lossy
FAST = {"boot_wait": 0.5, "settle": 0.1, "progress": False}


def _dump(faults: LinkFaults, tmp_path, name: str) -> None:
    with XR872Device(seed=3, faults=faults) as dev:
        snap = dev.flash.snapshot()
        x.dump(x.Options(port=dev.path, max_baud=921_600, **FAST), tmp_path / name)
        assert dev.crash is None
        assert (tmp_path / name).read_bytes() == snap
        assert len(dev.uart.burst_sizes) > 100


@pytest.mark.parametrize(
    "faults",
    [LinkFaults(chunk=4096), LinkFaults(chunk=10000, chunk_min=1)],
    ids=["4 KiB pieces", "pieces of 1 to 10000 bytes"],
)
def test_a_dump_through_bursts_is_byte_exact(faults, tmp_path):
    _dump(faults, tmp_path, "u.bin")


@settings(max_examples=8, deadline=None)
@example(largest=1, smallest=1)
@example(largest=4096, smallest=4096)
@given(
    largest=st.integers(min_value=1, max_value=20000),
    smallest=st.integers(min_value=1, max_value=20000),
)
def test_frames_read_the_same_through_any_pieces(largest, smallest):
    """The ROM's frames (entry, baud switch, flash reads) through pieces of any size,
    single bytes included: 16 KiB read in 4 KiB frames are the flash's bytes."""
    faults = LinkFaults(chunk=max(largest, smallest), chunk_min=min(largest, smallest))
    with XR872Device(seed=5, faults=faults) as dev:
        snap = dev.flash.snapshot()
        with Session(x.Options(port=dev.path, max_baud=921_600, **FAST)) as s:
            s.enter()
            got = s.read_range(0xF8000, 0x4000)
            # no frame was misread (a retry after a slow answer would not count here)
            assert s.client is not None and s.client.stats.checksum_errors == 0
        assert dev.crash is None
    assert got == snap[0xF8000:0xFC000]
