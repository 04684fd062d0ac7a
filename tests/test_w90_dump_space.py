"""A W90P745 dump is refused before the long read when its directory cannot hold it
(issue 17: "enough free space for the whole result ... before the device is touched"):
the engine sums the sizes ``ls`` lists for the images still to read and compares them
(with the margin for the manifest) with the free space of the dump directory.

The small disk is a real one: a 2 MiB tmpfs mounted for the test (root and mount
rights needed, else the test is skipped). The same disk takes a dump of a small image,
so the refusal is about the sizes, not about the disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emulators.w90p745 import W90P745Device
from recovery.errors import RefusedError
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.operations import FLASH_BASE, dump


def _tmpfs(d: Path, size: str) -> Path:
    """``d`` as a tmpfs of ``size`` (root and mount rights needed, else the test is skipped)."""
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       capture_output=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    return d


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB file system."""
    d = _tmpfs(tmp_path / "tiny", "2m")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)


def _camera() -> W90P745Device:
    """The seed's camera (linux, romfs.img, webui: about 1.9 MiB of images) at its prompt."""
    dev = W90P745Device(seed=41)
    dev.power_on()
    with Port(dev.path) as port:
        W90Console(port, notify=lambda _m: None).attach(30)
    return dev


def _pages_asked(dev: W90P745Device, mark: int) -> list[bytes]:
    host = b"".join(c.data for c in dev.transcript.chunks[mark:] if c.direction == "host")
    return [line for line in host.split(b"\r") if line.strip().startswith(b"d")]


def test_the_cli_refuses_a_dump_that_does_not_fit_before_reading_a_page(tiny_disk):
    dev = _camera()
    try:
        mark = len(dev.transcript.chunks)
        out = tiny_disk / "dump"
        argv = ["w90p745", "dump", "--port", dev.path, "--out", str(out), "--json"]
        proc = subprocess.run(
            [sys.executable, "-m", "recovery", *argv], capture_output=True, text=True, timeout=120
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == RefusedError.exit_code, (proc.stdout, proc.stderr[-2000:])
        assert r["ok"] is False and r["flash_state"] == "untouched"
        assert "not enough free space" in r["message"] and str(out) in r["message"]
        assert "KiB free" in r["message"] and "--out" in r["hint"]
        assert "Traceback" not in proc.stderr
        assert _pages_asked(dev, mark) == [], "a page was read before the refusal"
        assert list(tiny_disk.iterdir()) == []  # the directory it made is gone again
        # the loader was left at 115200 at its prompt: the same disk takes a small image
        mark = len(dev.transcript.chunks)
        argv += ["--images", "BOOT INFO"]
        proc = subprocess.run(
            [sys.executable, "-m", "recovery", *argv], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:])
        boot_info = dev.flash.read(0x7F010000 - FLASH_BASE, 0x48)
        assert (out / "image0_BOOT_INFO.bin").read_bytes() == boot_info
        assert _pages_asked(dev, mark)
    finally:
        dev.close()


def test_the_engine_counts_only_what_is_left_to_read(tmp_path):
    """Room is needed only for the images not yet in the directory: on a 1600 KiB disk
    webui (446 KiB) fits with the 1 MiB margin; once it is there, adding BOOT INFO in the
    same directory needs only BOOT INFO's room (webui again would not fit), and a dump of
    every image is refused with the sizes (in ``facts``) before a page is read."""
    disk = _tmpfs(tmp_path / "disk", "1600k")
    dev = _camera()
    quiet = {"progress": False, "notify": lambda _m: None}
    try:
        out = disk / "dump"
        with Port(dev.path) as port:
            first = dump(port, out, images=["webui"], **quiet)
            webui = first.images[0]
            free = subprocess.run(["df", "-B1", "--output=avail", str(disk)],
                                  capture_output=True, text=True).stdout.split()[-1]  # fmt: skip
            assert webui.size + (1 << 20) > int(free), "webui must not fit a second time"
            both = dump(port, out, images=["BOOT INFO", "webui"], **quiet)
            assert [i.skipped for i in both.images] == [False, True]
            mark = len(dev.transcript.chunks)
            with pytest.raises(RefusedError) as err:
                dump(port, disk / "all", **quiet)
        assert err.value.flash_state == "untouched"
        assert err.value.facts["needed"] > err.value.facts["free"]
        assert _pages_asked(dev, mark) == []
        data = dev.flash.read(webui_base(first) - FLASH_BASE, webui.size)
    finally:
        dev.close()
        listed = sorted(p.name for p in disk.iterdir())
        got = (out / webui.file).read_bytes() if (out / webui.file).exists() else b""
        subprocess.run(["umount", str(disk)], check=False)
    assert listed == ["dump"]
    assert got == data


def webui_base(result) -> int:
    manifest = json.loads(Path(result.manifest).read_text())
    return next(int(i["base"], 0) for i in manifest["images"] if i["name"] == "webui")


def test_an_unwritable_dump_directory_is_refused_before_reading(tmp_path):
    """A directory the user cannot write (a read-only bind of tmp_path's directory)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {r.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=False)
        probe = Path(ro) / "probe"
        try:
            probe.write_bytes(b"x")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("the read-only bind mount is writable here")
        dev = _camera()
        try:
            mark = len(dev.transcript.chunks)
            argv = ["w90p745", "dump", "--port", dev.path, "--out", str(ro), "--json"]
            proc = subprocess.run(
                [sys.executable, "-m", "recovery", *argv],
                capture_output=True,
                text=True,
                timeout=120,
            )
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            assert proc.returncode != 0 and res["ok"] is False, proc.stdout
            assert res["flash_state"] == "untouched" and "Traceback" not in proc.stderr
            assert "writ" in res["message"], res
            assert _pages_asked(dev, mark) == []
        finally:
            dev.close()
    finally:
        subprocess.run(["umount", str(ro)], check=False)
