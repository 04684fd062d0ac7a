"""The Hi3511 engine against bad input and broken setups: every refusal comes with the
documented exit code, a message saying what to do, and the flash untouched."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket

import pytest

from harness.firmware import root_image
from harness.lab.tftp import TftpServer as HarnessTftpServer
from recovery.ports import existing_ports_text
from tests.test_hi3511_engine import (
    ROOT_OFF,
    ROOT_SIZE,
    VARIANTS,
    camera,
    device,
    flash_for,
    free_udp_port,
    run_engine,
    stop_autoboot,
)


@pytest.fixture(scope="module", params=VARIANTS)
def flash_a(request) -> bytes:
    """Every test of this module runs on both U-Boot trees."""
    return flash_for("A", request.param)


@pytest.fixture
def image_b(tmp_path):
    p = tmp_path / "instar.jffs2"
    p.write_bytes(root_image("B"))
    return p


def host_bytes(dev) -> bytes:
    return b"".join(c.data for c in dev.transcript.chunks if c.direction == "host")


@contextlib.contextmanager
def typed_by_engine(dev):
    """What the engine typed to the camera inside the block."""
    before = len(host_bytes(dev))
    typed = bytearray()
    yield typed
    typed += host_bytes(dev)[before:]


def test_a_port_that_does_not_exist(tmp_path):
    code, r, _ = run_engine("hi3511", "info", "--port", str(tmp_path / "ttyUSB9"), "--json")
    assert code == 4 and r["message"].endswith("ttyUSB9 does not exist. " + existing_ports_text())


def test_a_board_that_does_not_answer():
    master, slave = os.openpty()
    try:
        code, r, _ = run_engine(
            "hi3511", "info", "--port", os.ttyname(slave), "--json", "--wait", "0.5"
        )
    finally:
        os.close(master)
        os.close(slave)
    assert code == 4
    assert "no answer" in r["message"] and "TX/RX" in r["hint"] and r["flash_state"] == "untouched"


@pytest.mark.parametrize("baud", ["9600", "57600"])
def test_wrong_baud_sees_garbage(flash_a, baud):
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine("hi3511", "info", *opts, "--baud", baud, "--wait", "1")
    assert code == 4
    assert "baud" in r["message"] and "--baud 115200" in r["hint"]


def test_not_jffs2_is_refused_before_the_port_is_opened(flash_a, tmp_path):
    kernel = tmp_path / "uImage"
    kernel.write_bytes(flash_a[0x100000:0x1D0040])
    with camera(flash_a) as (dev, opts), typed_by_engine(dev) as typed:
        code, r, _ = run_engine("hi3511", "flash", *opts, str(kernel), "--no-backup")
    assert typed == b""  # the engine never typed a byte
    assert code == 3 and "uImage" in r["message"] and r["flash_state"] == "untouched"


def test_an_image_too_large_for_the_partition(flash_a, tmp_path):
    big = tmp_path / "big.jffs2"
    big.write_bytes(root_image("B") + b"\xff" * ROOT_SIZE)
    with camera(flash_a) as (dev, opts), typed_by_engine(dev) as typed:
        code, r, _ = run_engine("hi3511", "flash", *opts, str(big), "--no-backup")
    assert typed == b""
    assert code == 3 and "too large" in r["message"]


@pytest.mark.parametrize("name", ["a;reset", "fw $x.jffs2", "it's.jffs2", 'q"x'])
def test_a_dangerous_file_name_is_refused(flash_a, tmp_path, name):
    evil = tmp_path / name
    evil.write_bytes(root_image("B"))
    with camera(flash_a) as (dev, opts), typed_by_engine(dev) as typed:
        code, r, _ = run_engine("hi3511", "flash", *opts, str(evil), "--no-backup")
    assert typed == b""
    assert code == 3 and "unsafe" in r["message"]


def test_a_safe_remote_name_makes_a_dangerous_file_usable(flash_a, tmp_path):
    evil = tmp_path / "a;reset"
    evil.write_bytes(root_image("B"))
    with camera(flash_a) as (dev, opts), typed_by_engine(dev) as typed:
        code, r, _ = run_engine(
            "hi3511", "flash", *opts, str(evil), "--no-backup", "--remote-name", "b.jffs2",
            "--no-boot",
        )  # fmt: skip
    assert code == 0, r
    assert b"tftp 0xe1000000 b.jffs2\r" in typed and b"reset" not in typed


def test_a_file_missing_on_the_tftp_server_leaves_the_flash_alone(flash_a, image_b, tmp_path):
    """--no-server: the engine stages the image in --tftp-root, but the server the camera
    reaches serves another directory, so the camera gets 'File not found'."""
    staged = tmp_path / "staged"
    staged.mkdir()
    port = free_udp_port()
    with HarnessTftpServer(tmp_path / "other", port=port):
        dev = device(flash_a, tftp_server=("127.0.0.1", port))
        try:
            stop_autoboot(dev)
            code, r, _ = run_engine(
                "hi3511", "flash", "--port", dev.path, "--json", "--no-backup",
                "--no-server", "--tftp-root", str(staged), str(image_b),
            )  # fmt: skip
            root = dev.flash.read(ROOT_OFF, ROOT_SIZE)
        finally:
            dev.close()
        assert dev.crash is None
    assert code == 5
    assert "File not found" in r["message"] and r["flash_state"] == "untouched"
    # the addresses in use (issue 20)
    assert re.search(
        r"\[camera [\d.]+ -> server [\d.]+.*; this computer: lo 127\.0\.0\.1/8", r["message"]
    )
    assert root == flash_a[ROOT_OFF : ROOT_OFF + ROOT_SIZE]
    assert list(staged.iterdir()) == []  # the staged copy is cleaned up


def test_settings_not_on_one_subnet_are_refused(flash_a, image_b):
    with camera(flash_a) as (dev, opts), typed_by_engine(dev) as typed:
        code, r, _ = run_engine(
            "hi3511", "flash", *opts, str(image_b), "--no-backup", "--serverip", "10.0.0.1"
        )
    assert b"tftp" not in typed and b"erase" not in typed
    assert code == 5 and "not two addresses on one subnet" in r["message"]
    assert "--ipaddr" in r["hint"]


def test_missing_ipaddr_is_a_clear_request(flash_a, image_b):
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine(
            "hi3511", "flash", *opts, str(image_b), "--no-backup", "--ipaddr", ""
        )
    assert code == 5 and "no ipaddr" in r["message"] and "--serverip" in r["hint"]


def test_tftp_port_in_use(flash_a, image_b):
    with camera(flash_a) as (dev, opts), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", int(opts[-1].rsplit(":", 1)[1])))
        code, r, _ = run_engine("hi3511", "flash", *opts, str(image_b), "--no-backup")
        root = dev.flash.read(ROOT_OFF, ROOT_SIZE)
    assert code == 5 and "in use" in r["message"]
    assert root == flash_a[ROOT_OFF : ROOT_OFF + ROOT_SIZE]


def test_flash_needs_a_backup_of_this_camera(flash_a, image_b, tmp_path):
    data = flash_a[0x100000:]
    bk = tmp_path / "other.bin"
    bk.write_bytes(data)
    from recovery.hi3511.backupfile import load_backup

    manifest = {
        "board": "hi3511",
        "base": 0x34100000,
        "size": len(data),
        "sha256": __import__("hashlib").sha256(data).hexdigest(),
        "ethaddr": "00:25:07:00:00:99",
        "ranges": load_backup(bk).ranges,
    }
    (tmp_path / "other.bin.json").write_text(json.dumps(manifest))
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine("hi3511", "flash", *opts, str(image_b), "--backup", str(bk))
        root = dev.flash.read(ROOT_OFF, ROOT_SIZE)
    assert code == 9 and "another camera" in r["message"]
    assert root == flash_a[ROOT_OFF : ROOT_OFF + ROOT_SIZE]


def test_a_damaged_backup_is_refused(tmp_path, flash_a):
    good = tmp_path / "bk.bin"
    good.write_bytes(flash_a[0x100000:])
    from recovery.hi3511.backupfile import load_backup

    ranges = load_backup(good).ranges
    data = bytearray(good.read_bytes())
    data[0x500000] ^= 1
    (tmp_path / "bk.bin.json").write_text(
        json.dumps(
            {
                "board": "hi3511",
                "base": 0x34100000,
                "size": len(data),
                "sha256": __import__("hashlib").sha256(flash_a[0x100000:]).hexdigest(),
                "ranges": ranges,
            }
        )
    )
    good.write_bytes(bytes(data))
    code, r, _ = run_engine("hi3511", "restore", "--port", "/dev/null", "--json", str(good))
    assert code == 3 and "damaged" in r["message"]


def test_restoring_the_boot_loader_needs_confirmation(tmp_path, flash_a):
    full = tmp_path / "full.bin"
    full.write_bytes(flash_a)
    code, r, _ = run_engine(
        "hi3511", "restore", "--port", "/dev/null", "--json", str(full), "--include-bootloader"
    )
    assert code == 9 and "--confirm-bootloader" in r["message"]


def test_bad_command_lines_give_json_too():
    code, r, _ = run_engine("hi3511", "flash", "--json", "--port", "x")
    assert code == 2 and r["operation"] == "hi3511 flash"
    code, r, _ = run_engine("hi3511", "backup", "--json", "--port", "x", "--tftp-bind", "h:p")
    assert code == 2


def test_register_adds_the_boards_to_another_command_line():
    import argparse

    from recovery.cli import main, register

    parser = argparse.ArgumentParser(prog="camrescue")
    sub = parser.add_subparsers(dest="command")
    assert "hi3511" in register(sub)
    args = parser.parse_args(["hi3511", "boot", "--port", "/dev/ttyUSB0", "--wait", "3"])
    assert callable(args.func) and args.wait == 3.0 and args.baud == 115200
    assert main([]) == 2
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["hi3511", "--help"]) == 0
    assert "exit codes:" in out.getvalue()


def test_python_dash_m_recovery_help_lists_exit_codes():
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "recovery", "hi3511", "flash", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    assert "exit codes:" in r.stdout and "130  interrupted" in r.stdout
    assert "--skip-erase" in r.stdout and "--tftp-bind" in r.stdout


@pytest.mark.skipif(shutil.which("in.tftpd") is None, reason="tftpd-hpa is not installed")
@pytest.mark.interop
def test_no_server_mode_with_tftpd_hpa(flash_a, image_b, tmp_path):
    """An existing server (tftpd-hpa with -c for uploads) instead of the embedded one."""
    import subprocess
    import time

    root = tmp_path / "tftpboot"
    root.mkdir()
    port = free_udp_port()
    proc = subprocess.Popen(
        [
            shutil.which("in.tftpd"),
            "-L",
            "-c",
            "-s",
            "-a",
            f"127.0.0.1:{port}",
            "-u",
            "root",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    break  # tftpd holds the port
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""

        dev = device(flash_a, tftp_server=("127.0.0.1", port))
        stop_autoboot(dev)
        with dev:
            code, r, _ = run_engine(
                "hi3511", "flash", "--port", dev.path, "--json", "--no-server",
                "--tftp-root", str(root), str(image_b), "--backup-out", str(tmp_path / "bk.bin"),
            )  # fmt: skip
            rootfs = dev.flash.read(ROOT_OFF, ROOT_SIZE)
    finally:
        proc.terminate()
        proc.wait(5)
    assert code == 0, r
    assert (tmp_path / "bk.bin").read_bytes() == flash_a[0x100000:]
    image = image_b.read_bytes()
    assert rootfs[: len(image)] == image
