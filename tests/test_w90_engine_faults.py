"""The W90P745 engine on a bad line (the emulator's seeded LinkFaults): at these
fault rates a dump must come out byte-identical (pages re-read where the
ASCII cross-check or the footer checksum fails) and a restore must verify
(grown or cancelled transfers are sent again)."""

from __future__ import annotations

import json
import random

import pytest

from emulators.serial import LinkFaults
from emulators.w90p745 import W90P745Device
from recovery.errors import RecoveryError
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.operations import FLASH_BASE, dump, restore
from recovery.w90p745.parsers import ImageEntry

TINY = ImageEntry(9, "tiny", 0x7F1F0000, 8 * 1024 + 640, 0x7F1F0000, "a")


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def flash_with_tiny(tmp_path_factory):
    """A flash file: the factory images plus a small image 9, written on a clean line."""
    path = tmp_path_factory.mktemp("w90") / "flash.bin"
    data = random.Random(99).randbytes(TINY.size)
    with W90P745Device(seed=1, flash_path=path) as dev, Port(dev.path) as port:
        con = W90Console(port, notify=quiet)
        con.attach(10)
        con.fx(TINY, data, lambda _n, _t: None)
        assert dev.flash.read(TINY.base - FLASH_BASE, TINY.size) == data
    return path.read_bytes(), data


FAULTS = {
    "bit errors": LinkFaults(bit_error_rate=3e-5),
    "dropped bytes": LinkFaults(drop_rate=1e-4),
    "lost bursts": LinkFaults(burst_rate=2e-5, burst_len=64),
    "all three": LinkFaults(bit_error_rate=2e-5, drop_rate=3e-5, burst_rate=5e-6),
    "device to host only": LinkFaults(bit_error_rate=4e-5, drop_rate=4e-5, directions="tx"),
}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", list(FAULTS))
def test_dump_on_a_bad_line_is_identical_or_a_clear_error(tmp_path, flash_with_tiny, kind, seed):
    image, data = flash_with_tiny
    out = tmp_path / "dump"
    with W90P745Device(seed=seed, initial_flash=image, faults=FAULTS[kind]) as dev:
        with Port(dev.path) as port:
            result = dump(
                port, out, images=["0", "tiny"], progress=False, notify=quiet, baud=115200
            )
        boot_info = dev.flash.read(0x10000, 0x48)
        assert dev.crash is None
    files = {p.name: p.read_bytes() for p in out.glob("*.bin")}
    assert files == {"image0_BOOT_INFO.bin": boot_info, "image9_tiny.bin": data}
    assert [i.number for i in result.images] == [0, 9]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True


def test_faults_force_retries_and_still_give_identical_bytes(tmp_path, flash_with_tiny):
    image, data = flash_with_tiny
    faults = LinkFaults(bit_error_rate=5e-5, directions="tx")
    with W90P745Device(seed=5, initial_flash=image, faults=faults) as dev:
        with Port(dev.path) as port:
            result = dump(port, tmp_path, images=["tiny"], progress=False, notify=quiet)
        assert dev.crash is None
    assert result.page_retries > 0
    assert (tmp_path / "image9_tiny.bin").read_bytes() == data


def _wiped(tmp_path, flash_with_tiny, seed):
    image, data = flash_with_tiny
    out = tmp_path / "dump"
    with W90P745Device(seed=seed, initial_flash=image) as dev, Port(dev.path) as port:
        dump(port, out, images=["tiny"], progress=False, notify=quiet)
        con = W90Console(port, notify=quiet)
        con.attach(10)
        con.run("del 9")
        wiped = dev.flash.snapshot()
    return out, wiped, data


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restore_on_a_bad_line_verifies(tmp_path, flash_with_tiny, seed):
    """Every damaged transfer is sent again (the loader's receiver cannot recover
    one: a NAKed block grows the image, a lost ACK cancels): the image verifies."""
    out, wiped, data = _wiped(tmp_path, flash_with_tiny, seed)
    faults = LinkFaults(bit_error_rate=3e-6, drop_rate=3e-6, burst_rate=1e-6)
    with W90P745Device(seed=seed, initial_flash=wiped, faults=faults) as dev:
        with Port(dev.path) as port:
            result = restore(port, out, progress=False, notify=quiet, baud=115200)
        written = dev.flash.read(TINY.base - FLASH_BASE, TINY.size)
        assert dev.crash is None
    assert result.images[0].verified
    assert written == data


def test_restore_on_a_hopeless_line_names_the_missing_image_and_the_command(
    tmp_path, flash_with_tiny
):
    """A line no transfer survives (commands get through with retries, 9 KB of
    Xmodem never does): the error says image 9 may be missing, which images are
    intact, and the command that finishes the job."""
    out, wiped, _data = _wiped(tmp_path, flash_with_tiny, 4)
    faults = LinkFaults(bit_error_rate=1e-3, directions="rx")
    with W90P745Device(seed=4, initial_flash=wiped, faults=faults) as dev:
        with Port(dev.path) as port, pytest.raises(RecoveryError) as info:
            restore(port, out, progress=False, notify=quiet, baud=115200, tries=2)
        assert dev.crash is None
    err = info.value
    assert "image 9 (tiny) may be missing" in err.flash_state
    assert "0 (BOOT INFO, untouched)" in err.flash_state
    assert f"restore {out} --images 9" in err.hint
    assert err.facts["missing"] == 9
