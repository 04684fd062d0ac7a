"""The W90P745 engine against the loader's Xmodem receiver over a line with one fault.

The scenario schema cannot yet put a fault on one chosen byte, so these cases
are pytest tests: the engine talks to a pty whose other end is a small relay
(a "cable" in this test) that copies bytes to and from the emulator's pty and
damages exactly one: a byte of one Xmodem block (the loader NAKs, but its
write offset has already moved on, so the image grows by 128 bytes) or one
ACK (the engine's next block is then cancelled). Each restore must end with
the image byte-identical.
"""

from __future__ import annotations

import os
import random
import select
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import serial

from emulators.w90p745 import W90P745Device
from harness.firmware.w90p745 import flash_with, rich_image
from recovery.transport import Port
from recovery.w90p745.operations import dump, restore

BASE = 0x7F1A0000
DATA = rich_image(0x2380, seed=5)  # 71 blocks of 128
FLASH = flash_with([(9, "tiny", BASE, DATA, BASE, "a")])


def quiet(_msg: str) -> None:
    pass


class Cable:
    """Relay between a new pty (the engine's end) and the device's pty.

    ``to_device`` / ``to_host`` take the bytes read and return what to forward.
    """

    def __init__(
        self,
        device_path: str,
        to_device: Callable[[bytes], bytes] = lambda b: b,
        to_host: Callable[[bytes], bytes] = lambda b: b,
    ) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.dev = serial.Serial(device_path, 115200, timeout=0)
        self.to_device, self.to_host = to_device, to_host
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        dev_fd = self.dev.fileno()
        while not self._stop:
            r, _, _ = select.select([self.master, dev_fd], [], [], 0.05)
            if self.master in r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if data:
                    self.dev.write(self.to_device(data))
            if dev_fd in r:
                data = self.dev.read(4096)
                if data:
                    os.write(self.master, self.to_host(data))

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.dev.close()
        os.close(self.master)
        os.close(self._slave)


@contextmanager
def cable(dev: W90P745Device, **kw: Callable[[bytes], bytes]) -> Iterator[Cable]:
    c = Cable(dev.path, **kw)
    try:
        yield c
    finally:
        c.close()


def dumped(tmp_path) -> tuple[bytes, object]:
    """The flash with image 9, and a dump of it (the restore replaces it: fx asks,
    the engine answers y, the old image is deleted before the transfer)."""
    out = tmp_path / "dump"
    with W90P745Device(seed=4, initial_flash=FLASH) as dev, Port(dev.path) as port:
        dump(port, out, images=["tiny"], progress=False, notify=quiet, baud=115200)
    assert (out / "image9_tiny.bin").read_bytes() == DATA
    return FLASH, out


def test_restore_over_a_line_that_corrupts_one_block_byte(tmp_path):
    flash, out = dumped(tmp_path)
    state = {"seen": b"", "done": False}

    def corrupt_block_5(data: bytes) -> bytes:
        if state["done"]:
            return data
        seen = state["seen"] + data
        at = seen.find(b"\x01\x05\xfa")
        if at < 0 or len(seen) < at + 40:
            state["seen"] = seen[-64:]
            return data
        # the 30th payload byte of block 5 is flipped, once
        pos = at + 3 + 30 - (len(seen) - len(data))
        if 0 <= pos < len(data):
            state["done"] = True
            return data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :]
        state["seen"] = seen[-64:]
        return data

    told: list[str] = []
    with W90P745Device(seed=4, initial_flash=flash) as dev:
        with cable(dev, to_device=corrupt_block_5) as c, Port(c.path) as port:
            result = restore(port, out, progress=False, notify=told.append, baud=115200)
            log = port.transcript_text()
        assert state["done"]
        assert dev.flash.read(BASE - 0x7F000000, len(DATA)) == DATA
    assert result.images[0].verified
    # the retry is told as it happens and in the result (test_w90_restore_retry_report.py)
    assert result.images[0].attempts == 2
    assert "stored 0x2400 bytes for 0x2380 sent" in result.images[0].retried_because[0]
    assert [t for t in told if "sending it again (try 2 of 5)" in t]
    assert "image 9 (tiny) took 2 tries" in result.message
    # the loader NAKed block 5, took the resent copy 128 bytes later; the engine saw
    # the grown size in ls, deleted the image and sent it again
    assert "\\x15" in log
    assert "size:0x00002400" in log  # 0x2380 + 0x80
    assert "del 9" in log


def test_restore_over_a_line_that_loses_one_ack(tmp_path):
    flash, out = dumped(tmp_path)
    state = {"acks": 0, "dropped": False, "armed": False}

    def drop_tenth_ack(data: bytes) -> bytes:
        if b"Press Ctrl-x to cancel" in data:
            state["armed"] = True
        if not state["armed"] or state["dropped"]:
            return data
        out = bytearray()
        for b in data:
            if b == 0x06:
                state["acks"] += 1
                if state["acks"] == 10:
                    state["dropped"] = True
                    continue
            out.append(b)
        return bytes(out)

    told: list[str] = []
    with W90P745Device(seed=4, initial_flash=flash) as dev:
        with cable(dev, to_host=drop_tenth_ack) as c, Port(c.path) as port:
            result = restore(port, out, progress=False, notify=told.append, baud=115200)
            log = port.transcript_text()
        assert state["dropped"]
        assert dev.flash.read(BASE - 0x7F000000, len(DATA)) == DATA
    assert result.images[0].verified
    assert result.images[0].attempts == 2
    assert "Xmodem download" in result.images[0].retried_because[0]
    assert [t for t in told if "sending it again (try 2 of 5)" in t]
    # the engine ended the stuck transfer with CAN, the loader said so, fx ran again
    assert "\\x18\\x18\\x18\\x18\\x18" in log
    assert "Download error!" in log
    assert log.count("tx fx 9 tiny") == 2


def test_dump_of_an_image_rich_in_del_and_space_is_identical(tmp_path):
    data = rich_image(0x6F700, seed=11)
    assert data.count(0x7F) > 0x6F700 // 10 and data.count(0x20) > 0x6F700 // 10
    flash = flash_with([(8, "webui", 0x7F180000, data, 0x7F180000, "a")])
    with W90P745Device(seed=6, initial_flash=flash) as dev, Port(dev.path) as port:
        result = dump(port, tmp_path, images=["webui"], progress=False, notify=quiet)
    assert (tmp_path / "image8_webui.bin").read_bytes() == data
    assert result.page_retries == 0  # every page passed the ASCII cross-check once
    import json

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    rec = next(r for r in manifest["images"] if r["number"] == 8)
    assert rec["verified"] == "footer image_checksum matches"


def test_dump_and_restore_at_460800(tmp_path):
    data = random.Random(7).randbytes(0x4000)
    flash = flash_with([(9, "tiny", BASE, data, BASE, "a")])
    out = tmp_path / "dump"
    with W90P745Device(seed=8, initial_flash=flash) as dev:
        with Port(dev.path) as port:
            dump(port, out, images=["tiny"], progress=False, notify=quiet, baud=460800)
            log = port.transcript_text()
        assert "host baud 460800" in log and "B 460800" in log
        assert (out / "image9_tiny.bin").read_bytes() == data
        assert dev.uart.baud == 115200  # left where the next run looks for it
        dev.flash.erase_sector((BASE - 0x7F000000) // 0x10000)
        with Port(dev.path) as port:
            result = restore(port, out, progress=False, notify=quiet, baud=460800)
            log = port.transcript_text()
        assert "host baud 460800" in log
        assert result.images[0].verified
        assert dev.flash.read(BASE - 0x7F000000, len(data)) == data


def test_restore_default_speed_is_the_fastest_rate_that_answers(tmp_path):
    data = random.Random(9).randbytes(0x1000)
    flash = flash_with([(9, "tiny", BASE, data, BASE, "a")])
    out = tmp_path / "dump"
    with W90P745Device(seed=9, initial_flash=flash) as dev, Port(dev.path) as port:
        dump(port, out, images=["tiny"], progress=False, notify=quiet)
        log = port.transcript_text()
    assert "B 460800" in log and "host baud 460800" in log
    assert (out / "image9_tiny.bin").read_bytes() == data


def test_a_restart_during_the_transfer_is_noticed_from_the_banner(tmp_path):
    """A watchdog reset (or a power blip) in the middle of fx: the loader's banner
    comes back, and the engine stops at once with the missing image named, instead
    of waiting for a prompt that never comes."""
    from emulators.faults import LinkTrigger
    from recovery.errors import RecoveryError

    flash, out = dumped(tmp_path)
    with W90P745Device(seed=4, initial_flash=flash) as dev, Port(dev.path) as port:
        trig = dev.arm_trigger(LinkTrigger("host", after=3000, action="reset"))
        try:
            restore(port, out, progress=False, notify=quiet, baud=115200)
        except RecoveryError as e:
            err = e
        else:  # pragma: no cover - the reset must end the restore
            raise AssertionError("restore went through a reset")
        assert trig.fired
    assert "restarted" in err.message
    assert "image 9 (tiny) may be missing" in err.flash_state
    assert f"restore {out} --images 9" in err.hint


def test_default_speed_falls_back_to_115200_and_a_power_cycle_recovers(tmp_path):
    """A line that does not carry the raised rate (this relay stays at 115200 on the
    camera's side, as an adapter that cannot do it would): the prompt does not
    answer at 460800, the loader does not understand the way back either, the
    person is asked to power-cycle, and the dump goes on at 115200."""
    out = tmp_path / "dump"
    with W90P745Device(seed=12, initial_flash=FLASH) as dev:
        asked: list[str] = []

        def notify(msg: str) -> None:
            asked.append(msg)
            if "power-cycle" in msg:
                threading.Thread(target=dev.power_cycle, daemon=True).start()

        with cable(dev) as c, Port(c.path) as port:
            result = dump(port, out, images=["tiny"], progress=False, notify=notify)
            assert port.baud == 115200
        assert dev.uart.baud == 115200
    assert any("power-cycle the camera" in m for m in asked)
    assert any("working at 115200" in m for m in asked)
    assert (out / "image9_tiny.bin").read_bytes() == DATA
    assert result.images[0].number == 9


def test_a_damaged_image_on_the_camera_is_reported_by_its_footer_checksum(tmp_path):
    """Flash that differs from what the loader wrote (a bit lost in the chip): the
    checksum fails, every page is read again (alike), and the manifest says so."""
    import json

    flash = bytearray(FLASH)
    flash[BASE - 0x7F000000 + 0x123] ^= 0x04
    with W90P745Device(seed=13, initial_flash=bytes(flash)) as dev, Port(dev.path) as port:
        dump(port, tmp_path, images=["tiny"], progress=False, notify=quiet)
        log = port.transcript_text()
    got = (tmp_path / "image9_tiny.bin").read_bytes()
    assert got == bytes(flash[BASE - 0x7F000000 :][: len(DATA)])  # what the flash holds
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    rec = next(r for r in manifest["images"] if r["number"] == 9)
    assert "footer image_checksum does NOT match" in rec["verified"]
    # the pages were read a second time
    assert log.count(f"tx d 0x{BASE:08X}") == 2


def test_ctrl_c_during_the_transfer_leaves_the_loader_at_its_prompt():
    """KeyboardInterrupt (Ctrl-C, SIGTERM) in the middle of fx: the engine ends the
    loader's receiver with CAN before it lets go, so the next run finds the prompt."""
    import pytest

    from recovery.w90p745.driver import W90Console
    from recovery.w90p745.parsers import ImageEntry

    entry = ImageEntry(10, "new", 0x7F1F0000, 0x1000, 0x7F1F0000, "a")

    def progress(done: int, _total: int) -> None:
        if done >= 0x800:
            raise KeyboardInterrupt

    with W90P745Device(seed=14, initial_flash=FLASH) as dev, Port(dev.path) as port:
        con = W90Console(port, notify=quiet)
        con.attach(10)
        with pytest.raises(KeyboardInterrupt):
            con.fx(entry, bytes(0x1000), progress)
        table = con.run("ls -al")
        assert "name:tiny" in table and "name:new" not in table
        assert dev.flash.read(0x1F0000, 16) == b"\xff" * 16


def test_verify_size_checks_the_listed_size_and_reads_nothing_back(tmp_path):
    flash, out = dumped(tmp_path)
    with W90P745Device(seed=16, initial_flash=flash) as dev, Port(dev.path) as port:
        result = restore(port, out, progress=False, notify=quiet, baud=115200, verify="size")
        log = port.transcript_text()
        assert dev.flash.read(BASE - 0x7F000000, len(DATA)) == DATA
    assert not result.images[0].verified  # only the size was checked
    after_fx = log[log.index("tx fx 9 tiny") :]
    assert "tx d 0x" not in after_fx and "size checked only" in result.message
