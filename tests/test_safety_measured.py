"""Issue 17, one test per line of its "Measured" list: the real command line
(``recovery.cli.main``) against the emulated cameras over their ptys and real UDP TFTP.
Each test failed on the main of the day the issue was filed and passes now.

The TFTP lines are in tests/test_recovery_tftp.py, tests/test_bad_input.py and
tests/test_safety_tftp_abuse.py; the interruption lines in tests/test_safety_signals.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from test_hi3511_engine import camera, run_engine

from emulators.xr872 import XR872Device
from harness.firmware import root_image, vendor_flash
from harness.firmware import xr872 as xfw
from recovery.cli import main

XR_FAST = ["--boot-wait", "0.5", "--timeout", "0.5", "--settle", "0.1"]
BOOT = (0, 0x100000)  # the U-Boot area, as offsets in the flash


def typed(dev, since: int = 0) -> bytes:
    """What the host sent to the device (after ``since`` transcript chunks)."""
    return b"".join(c.data for c in dev.transcript.chunks[since:] if c.direction == "host")


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def flash_a() -> bytes:
    return vendor_flash("A")


@pytest.fixture(scope="module")
def flash_b() -> bytes:
    return vendor_flash("B")


@pytest.fixture(scope="module")
def backup_a(flash_a, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("backup") / "cam-A.bin"
    with camera(flash_a) as (dev, opts):
        code, payload, _ = run_engine("hi3511", "backup", *opts, "--out", str(out))
    assert code == 0, payload
    return out


@pytest.fixture
def image_b(tmp_path) -> Path:
    p = tmp_path / "instar.jffs2"
    p.write_bytes(root_image("B"))
    return p


def refused_untouched(dev, before: bytes, mark: int, code: int, r: dict, expect: int) -> None:
    assert code == expect, r
    assert r["ok"] is False and r["flash_status"]["state"] == "untouched", r
    assert "internal error" not in r["message"]
    assert dev.flash.read(0, len(before)) == before
    assert typed(dev, mark) == b"", "the device was touched"


# -- "--transcript may name the backup or the output" ---------------------------------------


def test_a_transcript_naming_the_backup_is_refused(backup_a, image_b, flash_a, tmp_path):
    """``flash --backup mine.bin --transcript mine.bin`` destroyed the backup."""
    before = sha(backup_a)
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        code, r, _ = run_engine(
            "hi3511", "flash", *opts, str(image_b), "--backup", str(backup_a),
            "--transcript", str(backup_a), "--no-boot",
        )  # fmt: skip
        refused_untouched(dev, flash_a, mark, code, r, 2)
    assert "same file" in r["message"]
    assert sha(backup_a) == before
    # the manifest beside it, a hard link to it, a symlink to it: the same file too
    link = tmp_path / "hard.bin"
    os.link(backup_a, link)
    sym = tmp_path / "sym.txt"
    sym.symlink_to(backup_a.with_name(backup_a.name + ".json"))
    for t in (str(backup_a) + ".json", str(link), str(sym)):
        code, r, _ = run_engine(
            "hi3511", "flash", "--port", "/dev/null", "--json", str(image_b),
            "--backup", str(backup_a), "--transcript", t,
        )  # fmt: skip
        assert code == 2 and "same file" in r["message"], (t, r)
    assert sha(backup_a) == before


def test_xr872_a_transcript_naming_the_backup_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    img = tmp_path / "xr_system.img"
    img.write_bytes(xfw.build_image(xfw.xr872_sections(12)))
    mine = tmp_path / "mine.bin"
    with XR872Device(seed=3) as dev:
        before = dev.flash.snapshot()
        for argv in (
            ["--backup", str(mine), "--transcript", str(mine)],
            ["--backup", str(img), "--no-reboot"],  # the backup over the image itself
        ):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(
                    ["xr872", "write", str(img), "--port", dev.path, "--json", *XR_FAST, *argv]
                )
            r = json.loads(out.getvalue())
            assert code == 2 and "same file" in r["message"], r
            assert r["flash_status"]["state"] == "untouched"
        assert dev.flash.snapshot() == before
    assert not mine.exists()
    assert img.read_bytes() == xfw.build_image(xfw.xr872_sections(12))


# -- "existing files are overwritten silently" --------------------------------------------------


def test_an_existing_out_file_is_never_overwritten_without_force(flash_a, tmp_path):
    precious = tmp_path / "precious.bin"
    precious.write_bytes(b"an earlier backup")
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        code, r, _ = run_engine("hi3511", "backup", *opts, "--out", str(precious))
        refused_untouched(dev, flash_a, mark, code, r, 9)
        assert "--force" in r["hint"]
        assert precious.read_bytes() == b"an earlier backup"
        code, r, _ = run_engine("hi3511", "backup", *opts, "--out", str(precious), "--force")
    assert code == 0, r
    # the backup is private: it holds the camera's settings (Wi-Fi passwords)
    for p in (precious, precious.with_name(precious.name + ".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert precious.read_bytes() == flash_a[0x100000:]


def test_backup_out_over_the_image_is_refused(flash_a, image_b):
    before = sha(image_b)
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        code, r, _ = run_engine(
            "hi3511", "flash", *opts, str(image_b), "--backup-out", str(image_b), "--no-boot"
        )
        refused_untouched(dev, flash_a, mark, code, r, 2)
    assert sha(image_b) == before


def test_xr872_dump_never_overwrites_an_existing_file(tmp_path):
    old = tmp_path / "dump.bin"
    old.write_bytes(b"yesterday's dump")
    with XR872Device(seed=4) as dev:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(
                ["xr872", "dump", "--port", dev.path, "--out", str(old), "--json", *XR_FAST]
            )
        r = json.loads(out.getvalue())
    assert code == 9 and "already exists" in r["message"], r
    assert old.read_bytes() == b"yesterday's dump"


@pytest.fixture
def null_node(tmp_path) -> Path:
    """A private character device like /dev/null (1, 3): what "--out /dev/null" did to the
    real one is tried on this node, never on the machine's /dev/null."""
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    return node


@pytest.mark.parametrize("board", ["hi3511", "xr872"])
def test_out_naming_a_device_node_is_refused_and_the_node_survives(flash_a, null_node, board):
    """Run as root, ``--out /dev/null`` replaced the device node with a regular file."""
    if board == "hi3511":
        with camera(flash_a) as (dev, opts):
            mark = len(dev.transcript.chunks)
            code, r, _ = run_engine("hi3511", "backup", *opts, "--out", str(null_node))
            refused_untouched(dev, flash_a, mark, code, r, 2)
    else:
        with XR872Device(seed=5) as dev:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(
                    [
                        "xr872",
                        "dump",
                        "--port",
                        dev.path,
                        "--out",
                        str(null_node),
                        "--json",
                        *XR_FAST,
                    ]
                )
            r = json.loads(out.getvalue())
        assert code == 2, r
    assert "not a regular file" in r["message"]
    st = null_node.stat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


@pytest.mark.parametrize("board", ["hi3511", "xr872"])
def test_out_under_dev_is_refused_before_the_port_is_opened(board):
    """``--out /dev/null`` is refused by its path before anything else (the port named here
    does not exist, so even an engine without the check cannot write there)."""
    code, r, _ = run_engine(board, "backup" if board == "hi3511" else "dump",
                            "--port", "/nonexistent/ttyUSB9", "--json", "--out", "/dev/null")  # fmt: skip
    assert code == 2 and "/dev" in r["message"], r
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# -- "any 15 MiB file is accepted as a backup" ----------------------------------------------


@pytest.fixture
def random_dump(tmp_path) -> Path:
    p = tmp_path / "random.bin"
    p.write_bytes(os.urandom(0xF00000))  # the seed's dump size: kernel..settings
    return p


def test_a_random_15_mib_file_is_not_a_backup(flash_a, random_dump, image_b):
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        code, r, _ = run_engine("hi3511", "restore", *opts, str(random_dump), "--no-backup")
        refused_untouched(dev, flash_a, mark, code, r, 3)
        assert "uImage" in r["message"] and "JFFS2" in r["message"]
        assert "--i-know-the-backup-is-odd" in r["hint"]
        code, r, _ = run_engine(
            "hi3511", "flash", *opts, str(image_b), "--backup", str(random_dump), "--no-boot"
        )
        refused_untouched(dev, flash_a, mark, code, r, 3)


def test_a_backup_that_does_not_match_its_manifest_is_refused(flash_a, backup_a, tmp_path):
    bad = tmp_path / "bad.bin"
    data = bytearray(backup_a.read_bytes())
    data[0x200000] ^= 1
    bad.write_bytes(data)
    bad.with_name("bad.bin.json").write_text(
        backup_a.with_name(backup_a.name + ".json").read_text()
    )
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        code, r, _ = run_engine("hi3511", "restore", *opts, str(bad), "--no-backup")
        refused_untouched(dev, flash_a, mark, code, r, 3)
    assert "manifest" in r["message"]


def test_restore_backs_up_what_it_overwrites(flash_a, flash_b, tmp_path):
    b_backup = tmp_path / "cam-B.bin"
    with camera(flash_b) as (dev, opts):
        code, r, _ = run_engine("hi3511", "backup", *opts, "--out", str(b_backup))
    assert code == 0, r
    before = tmp_path / "before.bin"
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine(
            "hi3511", "restore", *opts, str(b_backup), "--partition", "kernel", "--no-boot",
            "--other-camera", "--backup-out", str(before),
        )  # fmt: skip
        assert code == 0, r
        assert dev.flash.read(0x100000, 0x100000) == flash_b[0x100000:0x200000]
    saved = before.read_bytes()
    assert saved == flash_a[0x100000:]  # what was there before, all of it
    assert stat.S_IMODE(before.stat().st_mode) == 0o600
    assert r["backup_before_restore"]["sha256"] == hashlib.sha256(saved).hexdigest()


# -- "the boot loader is guarded by range name, not address" --------------------------------


def test_a_crafted_settings_range_over_u_boot_is_refused(flash_a, tmp_path):
    """A manifest whose "settings" range starts at 0x340A0000 erased the U-Boot area."""
    crafted = bytearray(flash_a)
    crafted[0xA0000:0x100000] = os.urandom(0x60000)
    piece = bytes(crafted[0xA0000:0x100000])
    img = tmp_path / "crafted.bin"
    img.write_bytes(crafted)
    manifest = {
        "format": "camrescue-backup/1",
        "board": "hi3511",
        "image": img.name,
        "base": 0x34000000,
        "size": len(crafted),
        "crc32": f"{zlib.crc32(crafted):08x}",
        "sha256": hashlib.sha256(crafted).hexdigest(),
        "ranges": [
            {
                "name": "settings",
                "address": 0x340A0000,
                "offset": 0xA0000,
                "length": 0x60000,
                "crc32": f"{zlib.crc32(piece):08x}",
                "sha256": hashlib.sha256(piece).hexdigest(),
            }
        ],
        "ethaddr": None,
    }
    img.with_name(img.name + ".json").write_text(json.dumps(manifest))
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        code, r, _ = run_engine(
            "hi3511", "restore", *opts, str(img), "--no-backup", "--no-boot",
            "--i-know-the-backup-is-odd",
        )  # fmt: skip
        assert code == 9, r
        assert "boot loader" in r["message"] and "--include-bootloader" in r["hint"]
        assert dev.flash.read(*BOOT) == flash_a[BOOT[0] : BOOT[1]]
        assert dev.flash.read(0, len(flash_a)) == flash_a
        assert b"erase" not in typed(dev, mark)


# -- "disk full, --out naming a directory, '', /proc or /sys" --------------------------------


@pytest.mark.parametrize("where", ["dir", "", "/proc/camrescue.bin", "/sys/camrescue.bin"])
def test_bad_output_paths_are_refused_before_the_device_is_touched(flash_a, tmp_path, where):
    out = str(tmp_path) if where == "dir" else where
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        code, r, err = run_engine("hi3511", "backup", *opts, "--out", out)
        refused_untouched(dev, flash_a, mark, code, r, 2)
    assert "Traceback" not in err


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB file system (tmpfs; needs root and mount rights, else skipped)."""
    d = tmp_path / "tiny"
    d.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)


def test_a_full_disk_is_refused_before_the_upload(flash_a, tiny_disk):
    with camera(flash_a) as (dev, opts):
        mark = len(dev.transcript.chunks)
        t0 = time.monotonic()
        code, r, err = run_engine("hi3511", "backup", *opts, "--out", str(tiny_disk / "b.bin"))
        refused_untouched(dev, flash_a, mark, code, r, 9)
    assert "free space" in r["message"] and "Traceback" not in err
    assert list(tiny_disk.iterdir()) == []
    assert time.monotonic() - t0 < 30


# -- "--json usage errors are not JSON" and "/tmp/camrescue-* left after SIGKILL" -----------


@pytest.mark.parametrize(
    "argv",
    [
        ["hi3511", "backup", "--json", "--port", "x"],  # --out missing
        ["hi3511", "backup", "--json", "--port", "x", "--out", "o", "--baud", "7"],
        ["xr872", "dump", "--json", "--out", "o"],  # --port missing
        ["w90p745", "dump", "--json", "--port", "x", "--nonsense"],
        ["hi3511", "nonsense", "--json"],
    ],
)
def test_json_usage_errors_are_json_from_the_camrescue_command(argv):
    """The installed ``camrescue`` command (harness/cli.py), as a user runs it."""
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, r
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    payload = json.loads(lines[0])
    assert payload["ok"] is False and payload["exit_code"] == 2
    assert payload["error"] == "UsageError" and payload["flash_state"] == "untouched"


def test_temporary_directories_of_a_killed_run_are_removed_at_the_next_start(flash_a, tmp_path):
    """SIGKILL leaves the embedded TFTP server's private directory behind; the next run
    (any operation) removes it; a live run's directory is left alone."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    out = tmp_path / "b.bin"
    with camera(flash_a) as (dev, opts):
        proc = subprocess.Popen(
            [sys.executable, "-m", "recovery", "hi3511", "backup", *opts, "--out", str(out)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not list(tmp.glob(f"camrescue-{proc.pid}-tftp-*")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.kill()
        proc.wait(10)
        left = list(tmp.glob("camrescue-*"))
        assert left, "the killed run left nothing to clean (nothing to test)"
        alive = tmp / f"camrescue-{os.getpid()}-tftp-keep"
        alive.mkdir()
        (alive / ".camrescue-owner").write_text(f"{os.getpid()}\n")
        r = subprocess.run(
            [sys.executable, "-m", "recovery", "hi3511", "info", "--port", "/dev/null", "--json"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert json.loads(r.stdout)["ok"] is False  # it started; the port is no camera
    assert [p.name for p in tmp.glob("camrescue-*")] == [alive.name]
    assert not out.exists()
