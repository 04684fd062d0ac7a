"""The W90P745 engine through a link that hands the loader's output over in bursts
(``LinkFaults.chunk``). The banner and configuration block, the ``ls -al`` image
table and the 256-byte ``d`` pages must read the same whatever the pieces (issue 19).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emulators.serial import LinkFaults
from emulators.w90p745 import W90P745Device
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.operations import FLASH_BASE, info

BURSTS = {
    "4 KiB pieces": LinkFaults(chunk=4096),
    "pieces of 1 to 5000 bytes": LinkFaults(chunk=5000, chunk_min=1),
    "pieces of 1 to 3 bytes": LinkFaults(chunk=3, chunk_min=1),
}
PAGES = (0x7F010000, 0x7F020000, 0x7F0E0100, 0x7F1FFF00)


def quiet(_msg: str) -> None:
    pass


def _power_on_info(faults: LinkFaults | None):
    dev = W90P745Device(seed=7, faults=faults)
    try:
        with Port(dev.path) as port:
            dev.power_on()  # the engine waits at power-on: it sees banner and configuration
            got = info(port, wait=10, notify=quiet)
        assert dev.crash is None
        return got, list(dev.uart.burst_sizes)
    finally:
        dev.close()


@pytest.fixture(scope="module")
def plain_info():
    got, _ = _power_on_info(None)
    assert got.attached_by == "power-on" and got.loader_version
    return got


@pytest.mark.parametrize("name", list(BURSTS))
def test_banner_configuration_and_table_read_the_same_through_bursts(name, plain_info):
    got, sizes = _power_on_info(BURSTS[name])
    assert len(sizes) > 3
    assert got.attached_by == "power-on"
    for key in ("loader_version", "loader_built", "memory_size", "flash_size", "config", "images"):
        assert getattr(got, key) == getattr(plain_info, key), key


@pytest.fixture(scope="module")
def board() -> Iterator[tuple[W90P745Device, list]]:
    """A board and its image table as read over the plain link."""
    with W90P745Device(seed=8) as dev, Port(dev.path) as port:
        con = W90Console(port, notify=quiet)
        con.attach(10)
        table = con.list_images()
        port.close()
        yield dev, table


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(largest=1, smallest=1)
@example(largest=4096, smallest=4096)
@given(
    largest=st.integers(min_value=1, max_value=6000),
    smallest=st.integers(min_value=1, max_value=6000),
)
def test_pages_and_image_table_read_the_same_through_any_pieces(board, largest, smallest):
    dev, plain_table = board
    dev.uart.faults = LinkFaults(chunk=max(largest, smallest), chunk_min=min(largest, smallest))
    try:
        with Port(dev.path) as port:
            con = W90Console(port, notify=quiet)
            con.attach(10)
            table = con.list_images()
            pages = [con.read_page(a, reads=1) for a in PAGES]
    finally:
        dev.uart.faults = LinkFaults()
    assert dev.crash is None
    # (a page read again after a slow answer on a busy machine is allowed: the bytes decide)
    assert pages == [dev.flash.read(a - FLASH_BASE, 256) for a in PAGES]
    assert table == plain_table and table[0].name == "BOOT INFO"
