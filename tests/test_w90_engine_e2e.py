"""The W90P745 engine end to end against the emulated board over its pty:
attach, info, dump (byte-identical with the flash), resume, restore."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest

from emulators.w90p745 import W90P745Device
from recovery.errors import ConsoleError, ImageError, RefusedError, UsageError
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.dumpdir import load_dump
from recovery.w90p745.operations import FLASH_BASE, dump, info, restore
from recovery.w90p745.parsers import ImageEntry, parse_image_table

TINY = ImageEntry(9, "tiny", 0x7F1F0000, 16 * 1024 + 384, 0x7F1F0000, "a")
SEED_TABLE = [
    "Image: 0 name:BOOT INFO base:0x7F010000 size:0x00000048 exec:0x7F010000 -f",
    "Image: 7 name:linux base:0x7F020000 size:0x000BF700 exec:0x00008000 -acxz",
    "Image: 6 name:romfs.img base:0x7F0E0000 size:0x0008FF80 exec:0x7F0E0000 -a",
    "Image: 8 name:webui base:0x7F180000 size:0x0006F700 exec:0x7F180000 -a",
]


def flash_bytes(dev: W90P745Device, entry: ImageEntry | dict) -> bytes:
    base, size = (
        (entry.base, entry.size)
        if isinstance(entry, ImageEntry)
        else (
            int(entry["base"], 0),
            entry["size"],
        )
    )
    return dev.flash.read(base - FLASH_BASE, size)


def add_tiny(port: Port, data: bytes) -> None:
    """Write a small extra image with the loader's fx (the engine's own writer)."""
    con = W90Console(port, notify=lambda _m: None)
    con.attach(10)
    said = con.fx(TINY, data, lambda _n, _t: None)
    assert "Flash programming" in said


def quiet(_msg: str) -> None:
    pass


def test_info_at_power_on_shows_seed_profile():
    dev = W90P745Device(seed=1)
    try:
        with Port(dev.path) as port:
            dev.power_on()  # the person powers the camera on after starting camrescue
            got = info(port, wait=10, notify=quiet)
        assert dev.crash is None
    finally:
        dev.close()
    assert got.attached_by == "power-on"
    assert got.loader_version == "1.1"
    assert got.loader_built == "Dec 10 2009"
    assert got.memory_size == 0x1000000 and got.flash_size == 0x200000
    assert got.config["BL buffer base"] == "0x00300000"
    assert [e["line"] for e in got.images] == SEED_TABLE
    assert "Image: 7 name:linux base:0x7F020000" in got.message


def test_attach_at_an_idle_prompt():
    with W90P745Device(seed=2) as dev, Port(dev.path) as port:
        first = info(port, wait=10, notify=quiet)  # power-on or prompt, depending on timing
        again = info(port, wait=10, notify=quiet)
        assert again.attached_by == "prompt"
        assert again.images == first.images
        assert again.loader_version is None  # the banner is not shown again
        assert "power-on" in again.message and "not seen" in again.message
        assert dev.crash is None


def test_linux_running_asks_for_a_power_cycle():
    dev = W90P745Device(seed=3)
    try:
        with Port(dev.path) as port:
            dev.power_on()
            port.expect(r"Linux version", timeout=10)  # nobody pressed ESC: it boots
            said = []

            def notify(msg: str) -> None:
                said.append(msg)
                if "Linux is running" in msg:
                    dev.power_cycle()  # what the person does when asked

            got = info(port, wait=10, notify=notify)
        assert "power-cycle" in said[0].lower()
        assert got.attached_by == "power-on"
        assert dev.crash is None
    finally:
        dev.close()


def test_silent_camera_is_a_clear_error():
    dev = W90P745Device(seed=4)  # never powered on
    try:
        with Port(dev.path) as port, pytest.raises(ConsoleError) as e:
            info(port, wait=1.5, notify=quiet)
        assert "no boot loader" in e.value.message
        assert "power-cycle" in (e.value.hint or "")
    finally:
        dev.close()


def test_dump_is_byte_identical(tmp_path):
    data = random.Random(5).randbytes(TINY.size)
    out = tmp_path / "dump"
    with W90P745Device(seed=5) as dev, Port(dev.path) as port:
        add_tiny(port, data)
        result = dump(port, out, images=["0", "tiny"], progress=False, notify=quiet)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["complete"] is True
        assert [e["line"] for e in manifest["table"]] == SEED_TABLE + [TINY.line()]
        for rec in manifest["images"]:
            got = (out / rec["file"]).read_bytes()
            assert got == flash_bytes(dev, rec)
            assert len(got) == rec["size"]
        assert (out / "image9_tiny.bin").read_bytes() == data
        assert dev.crash is None
    assert [i.name for i in result.images] == ["BOOT INFO", "tiny"]
    assert result.page_retries == 0
    assert not list(out.glob("*.part")) and not (out / ".w90-dump-state.json").exists()
    table, images = load_dump(out)
    assert [e.line() for e in table] == SEED_TABLE + [TINY.line()]
    assert [d.entry.name for d in images] == ["BOOT INFO", "tiny"]


def test_dump_unknown_image_name(tmp_path):
    with W90P745Device(seed=6) as dev, Port(dev.path) as port:
        with pytest.raises(UsageError, match="no image 'kernel'") as e:
            dump(port, tmp_path / "d", images=["kernel"], progress=False, notify=quiet)
        assert "7 (linux)" in (e.value.hint or "")
        assert dev.crash is None


def test_interrupted_dump_resumes(tmp_path):
    data = random.Random(7).randbytes(TINY.size)
    out = tmp_path / "dump"
    part = out / "image9_tiny.bin.part"
    with W90P745Device(seed=7) as dev, Port(dev.path) as port:
        add_tiny(port, data)
        stop = threading.Event()

        def cut_power() -> None:
            while not stop.is_set():
                if part.exists() and part.stat().st_size >= 24 * 256:
                    dev.power_off()
                    return
                stop.wait(0.002)

        cutter = threading.Thread(target=cut_power)
        cutter.start()
        try:
            with pytest.raises(ConsoleError):
                dump(port, out, images=["tiny"], progress=False, notify=quiet, wait=2)
        finally:
            stop.set()
            cutter.join()
        assert part.exists() and not (out / "image9_tiny.bin").exists()
        assert json.loads((out / ".w90-dump-state.json").read_text())["entry"]["name"] == "tiny"
        dev.power_on()
        result = dump(port, out, images=["tiny"], progress=False, notify=quiet)
        assert dev.crash is None
    (img,) = result.images
    assert img.resumed_at >= 24 * 256 and img.resumed_at % 256 == 0
    assert result.bytes_read == TINY.size - img.resumed_at
    assert (out / "image9_tiny.bin").read_bytes() == data
    assert not part.exists()


def test_finished_images_are_not_read_again(tmp_path):
    out = tmp_path / "dump"
    with W90P745Device(seed=8) as dev, Port(dev.path) as port:
        dump(port, out, images=["0"], progress=False, notify=quiet)
        again = dump(port, out, images=["0"], progress=False, notify=quiet)
        assert dev.crash is None
    assert again.images[0].skipped and again.bytes_read == 0


def test_dump_refuses_a_directory_of_another_table(tmp_path):
    out = tmp_path / "dump"
    with W90P745Device(seed=9) as dev, Port(dev.path) as port:
        dump(port, out, images=["0"], progress=False, notify=quiet)
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["table"][1]["size"] += 128
        (out / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(RefusedError, match="different image table"):
            dump(port, out, images=["0"], progress=False, notify=quiet)
        assert dev.crash is None


def _ls(port: Port) -> list[str]:
    con = W90Console(port, notify=quiet)
    con.attach(10)
    return [e.line() for e in parse_image_table(con.run("ls -al"))]


def test_restore_to_a_board_whose_image_was_deleted(tmp_path):
    data = random.Random(10).randbytes(TINY.size)
    out = tmp_path / "dump"
    with W90P745Device(seed=10) as dev, Port(dev.path) as port:
        add_tiny(port, data)
        dump(port, out, images=["0", "tiny"], progress=False, notify=quiet)
        before = _ls(port)
        con = W90Console(port, notify=quiet)
        con.attach(10)
        assert "Deleting Image 9" in con.run("del 9")
        assert _ls(port) == before[:4]
        result = restore(port, out, progress=False, notify=quiet)
        assert _ls(port) == before
        assert flash_bytes(dev, TINY) == data
        assert dev.crash is None
    assert [(r.name, r.verified) for r in result.images] == [("tiny", True)]
    assert result.table_after == before


def test_restore_replaces_an_image_that_is_still_there(tmp_path):
    data = random.Random(16).randbytes(TINY.size)
    out = tmp_path / "dump"
    with W90P745Device(seed=16) as dev, Port(dev.path) as port:
        add_tiny(port, data)
        dump(port, out, images=["tiny"], progress=False, notify=quiet)
        dev.flash.program(TINY.base - FLASH_BASE + 5, b"\x00")  # bit rot in the image
        assert flash_bytes(dev, TINY) != data
        restore(port, out, progress=False, notify=quiet)
        assert flash_bytes(dev, TINY) == data
        assert dev.crash is None


@pytest.mark.slow
def test_full_round_trip_after_deleting_every_image(tmp_path):
    out = tmp_path / "dump"
    with W90P745Device(seed=17) as dev, Port(dev.path) as port:
        dump(port, out, progress=False, notify=quiet)
        manifest = json.loads((out / "manifest.json").read_text())
        originals = {r["name"]: flash_bytes(dev, r) for r in manifest["images"]}
        for rec in manifest["images"]:
            assert (out / rec["file"]).read_bytes() == originals[rec["name"]]
        before = _ls(port)
        assert before == SEED_TABLE
        con = W90Console(port, notify=quiet)
        con.attach(10)
        for number in (7, 6, 8):
            con.run(f"del {number}")
        assert _ls(port) == SEED_TABLE[:1]
        restore(port, out, progress=False, notify=quiet)
        assert _ls(port) == SEED_TABLE
        for rec in manifest["images"]:
            assert flash_bytes(dev, rec) == originals[rec["name"]]
        assert dev.crash is None


def _dump_dir(tmp_path: Path) -> Path:
    out = tmp_path / "dump"
    with W90P745Device(seed=11) as dev, Port(dev.path) as port:
        dump(port, out, images=["0"], progress=False, notify=quiet, reads=1)
    return out


@pytest.mark.parametrize("damage", ["missing", "json", "sha", "size", "incomplete", "file"])
def test_restore_refuses_a_bad_dump_before_touching_the_port(tmp_path, damage):
    out = _dump_dir(tmp_path)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    image = out / manifest["images"][0]["file"]
    if damage == "missing":
        manifest_path.unlink()
    elif damage == "json":
        manifest_path.write_text(manifest_path.read_text()[:-20])
    elif damage == "sha":
        blob = bytearray(image.read_bytes())
        blob[3] ^= 1
        image.write_bytes(bytes(blob))
    elif damage == "size":
        image.write_bytes(image.read_bytes() + b"\0")
    elif damage == "incomplete":
        manifest["complete"] = False
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "file":
        image.unlink()
    with W90P745Device(seed=12) as dev, Port(dev.path) as port:
        with pytest.raises(ImageError) as e:
            restore(port, out, images=["0"], progress=False, notify=quiet)
        assert not [entry for entry in port.log if entry.direction == "tx"]
        assert e.value.flash_state == "untouched"
        assert dev.crash is None


def test_restore_refuses_boot_info(tmp_path):
    out = _dump_dir(tmp_path)
    with W90P745Device(seed=13) as dev, Port(dev.path) as port:
        with pytest.raises(RefusedError, match="BOOT INFO"):
            restore(port, out, images=["0"], progress=False, notify=quiet)
        assert not [entry for entry in port.log if entry.direction == "tx" and b"fx" in entry.data]
        assert dev.crash is None


def test_restore_refuses_to_overwrite_another_image(tmp_path):
    data = random.Random(14).randbytes(TINY.size)
    out = tmp_path / "dump"
    with W90P745Device(seed=14) as dev, Port(dev.path) as port:
        add_tiny(port, data)
        dump(port, out, images=["tiny"], progress=False, notify=quiet, reads=1)
    other = ImageEntry(10, "other", TINY.base, 4096, TINY.base, "a")
    with W90P745Device(seed=15) as dev, Port(dev.path) as port:
        con = W90Console(port, notify=quiet)
        con.attach(10)
        con.fx(other, bytes(4096), lambda _n, _t: None)
        with pytest.raises(RefusedError, match="would overwrite image 10"):
            restore(port, out, progress=False, notify=quiet)
        assert flash_bytes(dev, other) == bytes(4096)
        assert dev.crash is None


def test_restore_refuses_an_image_over_boot_info_whatever_its_flags(tmp_path):
    """A dump directory whose image would land on BOOT INFO's block (a crafted or
    mixed-up manifest, flags without 'f') is refused by address, before anything."""
    out = tmp_path / "dump"
    with W90P745Device(seed=15) as dev, Port(dev.path) as port:
        dump(port, out, images=["webui"], progress=False, notify=quiet)
        manifest = json.loads((out / "manifest.json").read_text())
        for rec in manifest["images"]:
            if rec["number"] == 8:
                rec["base"] = 0x7F010000  # BOOT INFO's block
        (out / "manifest.json").write_text(json.dumps(manifest))
        before = dev.flash.snapshot()
        with pytest.raises(RefusedError) as info:  # its footer says 0x7F0A0000: odd
            restore(port, out, progress=False, notify=quiet, odd_ok=True)
        assert dev.flash.snapshot() == before
    assert "overlaps the loader's BOOT INFO" in str(info.value)
    assert "--include-bootloader" in (info.value.hint or "")
