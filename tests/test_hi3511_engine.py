"""The Hi3511 engine end to end against the emulated camera: every operation over the
pty and real UDP TFTP on 127.0.0.1, with assertions on the flash, the JSON and the
console text."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from emulators.hi3511 import Hi3511Device
from harness.firmware import FIRMWARE_NAMES, root_image, vendor_flash, vendor_pkg
from recovery.cli import main
from recovery.hi3511.driver import UBoot
from recovery.transport import Port

ROOT_OFF, ROOT_SIZE = 0x200000, 0xD00000
SEED_DIRENT = re.compile(
    r"^jffs2_scan_dirent_node\(\): (Node|Name) CRC failed on node at 0x[0-9a-f]{8}: "
    r"Read 0x[0-9a-f]{8}, calculated 0x[0-9a-f]{8}$"
)
SEED_INODE = re.compile(
    r"^jffs2_scan_inode_node\(\): CRC failed on node at 0x[0-9a-f]{8}: "
    r"Read 0x[0-9a-f]{8}, calculated 0x[0-9a-f]{8}$"
)
HDR_CRC = re.compile(
    r"^jffs2_scan_eraseblock\(\): Node at 0x[0-9a-f]{8} \{0x1985, 0x[0-9a-f]{4}, "
    r"0x[0-9a-f]{8}\) has invalid CRC 0x[0-9a-f]{8} \(calculated 0x[0-9a-f]{8}\)$"
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_engine(*argv: str) -> tuple[int, dict, str]:
    """``recovery.cli.main`` in-process; returns (exit code, the JSON result, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1, out.getvalue()
    payload = json.loads(lines[0])
    assert payload["exit_code"] == code and payload["ok"] is (code == 0)
    assert {"ok", "operation", "message"} <= set(payload)
    return code, payload, err.getvalue()


VARIANTS = ["hisilicon", "upstream"]


class Flash(bytes):
    """A flash image and the U-Boot tree (``uboot_variant``) it was built for."""

    uboot: str | None = None

    @classmethod
    def of(cls, data: bytes, uboot: str | None) -> Flash:
        f = cls(data)
        f.uboot = uboot
        return f


def flash_for(firmware: str, uboot: str | None, **kw) -> Flash:
    return Flash.of(vendor_flash(firmware, uboot=uboot or "upstream", **kw), uboot)


def device(flash: bytes, **kw) -> Hi3511Device:
    """The emulated camera running the U-Boot tree the flash image was built for."""
    return Hi3511Device(initial_flash=flash, uboot_variant=getattr(flash, "uboot", None), **kw)


def stop_autoboot(dev: Hi3511Device) -> None:
    """Power on with a terminal attached and stop the countdown, as a person would (a
    space every ~30 ms: HiSilicon's countdown of 0 s takes only a key already waiting), so
    the engine finds the prompt however slowly the test machine gets to run it."""
    with serial.Serial(dev.path, 115200, timeout=0.03) as term:
        dev.power_on()
        seen = b""
        deadline = time.monotonic() + 10
        while b"hilinux # " not in seen:
            assert time.monotonic() < deadline, seen
            term.write(b" ")
            seen += term.read(4096)
        term.write(b"\x03")  # drops the spaces typed after the prompt
        seen = b""
        while not seen.endswith(b"hilinux # "):
            assert time.monotonic() < deadline, seen
            seen += term.read(4096)


@contextlib.contextmanager
def camera(flash: bytes, *, at_prompt: bool = True) -> Iterator[tuple[Hi3511Device, list[str]]]:
    """A powered emulated camera (at its prompt, or left to boot Linux) and the engine
    options that reach it."""
    port = free_udp_port()
    dev = device(flash, tftp_server=("127.0.0.1", port))
    try:
        if at_prompt:
            stop_autoboot(dev)
        else:
            dev.power_on()
        yield dev, ["--port", dev.path, "--json", "--tftp-bind", f"127.0.0.1:{port}"]
        assert dev.crash is None, dev.crash_text
    finally:
        dev.close()


@pytest.fixture(scope="module", params=VARIANTS)
def flash_a(request) -> Flash:
    """Every test of this module runs on both U-Boot trees."""
    return flash_for("A", request.param)


@pytest.fixture(scope="module")
def backup_a(flash_a, tmp_path_factory) -> tuple[Path, dict]:
    """One verified backup of a stock camera, shared by the tests that need one."""
    out = tmp_path_factory.mktemp("backup") / "cam-A.bin"
    with camera(flash_a) as (dev, opts):
        code, payload, _ = run_engine("hi3511", "backup", *opts, "--out", str(out))
    assert code == 0, payload
    return out, payload


@pytest.fixture
def image_b(tmp_path) -> Path:
    p = tmp_path / "instar.jffs2"
    p.write_bytes(root_image("B"))
    return p


def test_info_reads_the_board(flash_a, tmp_path):
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine("hi3511", "info", *opts, "--transcript", str(tmp_path / "t.txt"))
    assert code == 0
    assert r["uboot_version"] == "U-Boot 1.1.4 (Apr  8 2009 - 11:41:01)"
    assert r["flash"]["size"] == 16 << 20 and r["flash"]["sectors"] == 128
    assert r["flash"]["sector_size"] == 0x20000
    assert "0x34000000" in r["flash"]["protected"]
    assert r["env"]["bootcmd"] == "bootm 0x34100000" and r["env"]["ipaddr"] == "192.168.1.10"
    assert [(p["name"], p["address"], p["size"]) for p in r["partitions"]] == [
        ("boot", "0x34000000", 0x200000),
        ("rootfs", "0x34200000", 0xD00000),
        ("setting", "0x34f00000", 0x100000),
    ]
    # the engine's regions carry the camera's names (its mtdparts); addresses in hex
    assert r["regions"] == {
        "uboot": {"address": "0x34000000", "size": 0x100000},
        "kernel": {"address": "0x34100000", "size": 0x100000},
        "rootfs": {"address": "0x34200000", "size": 0xD00000},
        "setting": {"address": "0x34f00000", "size": 0x100000},
    }
    assert r["flash"]["base"] == "0x34000000" and r["kernel"]["load"] == "0xe0008000"
    assert r["rootfs_jffs2"] is True and r["rootfs_first_node"] == "cleanmarker"
    assert r["kernel"]["magic_ok"] and r["kernel"]["header_crc_ok"]
    assert r["kernel"]["name"] == "Linux-2.6.14"
    transcript = (tmp_path / "t.txt").read_text()
    # typed, echoed, and only then Enter (a garbled echo is never run)
    assert re.search(r" tx flinfo\n[ .0-9]+ rx flinfo\n[ .0-9]+ tx \\r\n", transcript)
    assert re.search(r" rx .*CFI conformant FLASH", transcript)


def test_attach_catches_the_autoboot_countdown_at_power_on(flash_a):
    dev = device(flash_a)
    try:
        with Port(dev.path) as port:
            dev.power_on()
            ub = UBoot(port)
            assert ub.attach(wait=10) == "autoboot"
            assert ub.version().startswith("U-Boot 1.1.4")
        assert "Starting kernel" not in dev.boot_log()
    finally:
        dev.close()
    assert dev.crash is None


@pytest.mark.parametrize("uboot", VARIANTS)
def test_attach_stops_a_countdown_of_0_s(uboot):
    """bootdelay 0 (CONFIG_ZERO_BOOTDELAY_CHECK): only a key already waiting when the
    countdown starts counts; the engine's spaces from power-on are that key."""
    flash = Flash.of(vendor_flash("A", uboot=uboot, bootdelay="0"), uboot)
    dev = device(flash)
    try:
        with Port(dev.path) as port:
            ub = UBoot(port)
            t = threading.Thread(target=lambda: (time.sleep(0.2), dev.power_on()))
            t.start()
            assert ub.attach(wait=10) == "autoboot"
            t.join()
            assert ub.version().startswith("U-Boot 1.1.4")
        assert "Hit any key to stop autoboot:  0 \r\n" not in dev.boot_log()  # it stopped
        assert "Starting kernel" not in dev.boot_log()
    finally:
        dev.close()
    assert dev.crash is None


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_linux_running_asks_for_a_power_cycle(flash_a):
    with camera(flash_a, at_prompt=False) as (dev, opts):
        wait_for(lambda: "VFS: Mounted root" in dev.boot_log())  # nobody stopped autoboot
        # the engine waits out --wait for a power cycle once it has seen Linux; 10 s
        # leaves a loaded host's shell room to answer (0.6 s did not, in a busy run)
        code, r, _ = run_engine("hi3511", "info", *opts, "--wait", "10")
    assert code == 4
    assert "running Linux" in r["message"] and "power-cycle" in r["hint"]


def test_reboot_gets_from_the_linux_shell_back_to_u_boot(flash_a):
    with camera(flash_a, at_prompt=False) as (dev, opts):
        wait_for(lambda: "VFS: Mounted root" in dev.boot_log())
        code, r, _ = run_engine("hi3511", "info", *opts, "--reboot", "--wait", "10")
        assert "Restarting system." in dev.boot_log()
    assert code == 0 and r["attached"] == "reboot"


def test_a_power_cycle_while_waiting_is_caught(flash_a):
    with camera(flash_a, at_prompt=False) as (dev, _):
        wait_for(lambda: "VFS: Mounted root" in dev.boot_log())
        result: dict[str, str] = {}
        with Port(dev.path) as port:
            ub = UBoot(port)
            t = threading.Thread(target=lambda: result.setdefault("how", ub.attach(wait=20)))
            t.start()
            # the engine's Ctrl-C reaches the Linux shell, then the user cycles the power
            wait_for(
                lambda: (
                    b"\x03"
                    in b"".join(c.data for c in dev.transcript.chunks if c.direction == "host")
                )
            )
            dev.power_cycle()
            t.join(20)
            assert result == {"how": "autoboot"}
            assert ub.version().startswith("U-Boot 1.1.4")


def test_backup_is_the_flash_and_verified(backup_a, flash_a):
    out, r = backup_a
    assert r["operation"] == "backup"
    assert out.read_bytes() == flash_a[0x100000:]
    manifest = json.loads(Path(r["manifest"]).read_text())
    assert manifest["board"] == "hi3511" and manifest["base"] == "0x34100000"
    assert manifest["uboot_version"].startswith("U-Boot 1.1.4")
    assert manifest["ethaddr"] == "00:25:07:00:00:3b" and manifest["date"]
    assert [(x["name"], x["address"], x["offset"], x["length"]) for x in manifest["ranges"]] == [
        ("kernel", "0x34100000", "0x0", 0x100000),
        ("rootfs", "0x34200000", "0x100000", 0xD00000),
        ("setting", "0x34f00000", "0xe00000", 0x100000),
    ]
    for x in manifest["ranges"]:
        piece = flash_a[int(x["address"], 16) - 0x34000000 :][: x["length"]]
        assert x["crc32"] == f"{zlib.crc32(piece):08x}"
    assert r["ranges"] == manifest["ranges"]


def test_backup_including_the_boot_loader(flash_a, tmp_path):
    out = tmp_path / "full.bin"
    root = tmp_path / "tftpboot"
    root.mkdir()
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine(
            "hi3511", "backup", *opts, "--out", str(out), "--include-bootloader", "--quiet",
            "--tftp-root", str(root),
        )  # fmt: skip
    assert code == 0
    assert out.read_bytes() == flash_a
    assert list(root.iterdir()) == []  # the uploads landed there and were collected
    assert [x["name"] for x in r["ranges"]] == ["uboot", "kernel", "rootfs", "setting"]


def test_flash_with_erase_boots_clean_with_the_new_files(flash_a, backup_a, image_b, tmp_path):
    transcript = tmp_path / "flash.txt"
    with camera(flash_a) as (dev, opts):
        code, r, err = run_engine(
            "hi3511", "flash", *opts, str(image_b), "--backup", str(backup_a[0]),
            "--cat", "/etc/version", "--ls", "/home", "--transcript", str(transcript),
        )  # fmt: skip
        root = dev.flash.read(ROOT_OFF, ROOT_SIZE)
    assert code == 0, r
    image = image_b.read_bytes()
    assert root == image + b"\xff" * (ROOT_SIZE - len(image))
    assert r["mounted"] is True and r["crc_errors"] == 0 and r["panic"] is None
    assert f"FIRMWARE={FIRMWARE_NAMES['B']}" in r["cat"]["/etc/version"]
    assert "bin" in r["files"]["/"] and "etc" in r["files"]["/"]
    assert r["files"]["/home"]
    assert r["write"]["erased_sectors"] == 104 and r["flash_matches_image"] is True
    assert r["image"]["kind"] == "jffs2" and r["backup"]["given"] is True
    # the safe order, read from the wire
    typed = "".join(
        line.split(" tx ", 1)[1] for line in transcript.read_text().splitlines() if " tx " in line
    )
    sent = re.findall(r"((?:tftp|crc32|erase|cp\.b|bootm) [^\\]*)\\r", typed)
    kinds = [s.split()[0] for s in sent]
    assert kinds[:4] == ["tftp", "crc32", "erase", "cp.b"] and kinds[-2:] == ["crc32", "bootm"]
    assert sent[0] == f"tftp 0xe1000000 {image_b.name}"
    assert sent[2] == "erase 0x34200000 +0xd00000"
    names = [c["name"] for c in r["steps"]]
    assert names.index("verify rootfs in RAM") < names.index("erase rootfs")


def test_flash_a_pkg_makes_a_backup_first(flash_a, tmp_path):
    pkg = tmp_path / "B12SE_V60.pkg"
    pkg.write_bytes(vendor_pkg(root_image("B"), header_len=188))
    bk = tmp_path / "before.bin"
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine(
            "hi3511", "flash", *opts, str(pkg), "--backup-out", str(bk), "--cat", "/etc/version"
        )
    assert code == 0, r
    assert r["image"]["kind"] == "pkg" and r["image"]["header_size"] == 188
    assert bk.read_bytes() == flash_a[0x100000:]
    assert Path(str(bk) + ".json").is_file()
    assert FIRMWARE_NAMES["B"] in r["cat"]["/etc/version"]
    steps = [s["name"] for s in r["steps"]]
    assert steps.index("write backup") < steps.index("erase rootfs")


def test_skip_erase_reproduces_the_seeds_crc_errors(flash_a, image_b):
    with camera(flash_a) as (dev, opts):
        code, r, err = run_engine(
            "hi3511", "flash", *opts, str(image_b), "--no-backup", "--skip-erase"
        )
        root = dev.flash.read(ROOT_OFF, ROOT_SIZE)
    image = image_b.read_bytes()
    old = flash_a[ROOT_OFF : ROOT_OFF + ROOT_SIZE]
    anded = bytes(a & b for a, b in zip(old, image, strict=False))
    assert root == anded + old[len(image) :]
    assert code == 8 and r["error"] == "BootError"
    assert "WARNING: --skip-erase" in err and r["warnings"]
    assert r["flash_matches_image"] is False
    assert (
        r["crc_errors"] > 0
        and r["crc_errors"] == r["boot"]["crc_failed"] + r["boot"]["invalid_crc"]
    )
    for line in r["boot"]["crc_error_lines"]:
        assert SEED_DIRENT.match(line) or SEED_INODE.match(line) or HDR_CRC.match(line), line
    assert "old AND new" in r["flash_state"]


def test_restore_puts_the_backup_back(backup_a, flash_a, tmp_path):
    with camera(flash_for("B", flash_a.uboot)) as (dev, opts):
        code, r, _ = run_engine(
            "hi3511", "restore", *opts, str(backup_a[0]), "--cat", "/etc/version", "--no-backup"
        )
        after = dev.flash.read(0x100000, 0xF00000)
    assert code == 0, r
    assert after == flash_a[0x100000:]
    assert [x["region"] for x in r["ranges"]] == ["kernel", "rootfs", "setting"]
    assert FIRMWARE_NAMES["A"] in r["cat"]["/etc/version"] and r["crc_errors"] == 0


def test_restore_a_seed_style_dump_without_manifest(backup_a, flash_a, tmp_path):
    dump = tmp_path / "recovery.bin"  # the seed's `tftp 0x34100000 recovery.bin 0xf00000`
    dump.write_bytes(backup_a[0].read_bytes())
    with camera(flash_for("B", flash_a.uboot)) as (dev, opts):
        code, r, _ = run_engine(
            "hi3511",
            "restore",
            *opts,
            str(dump),
            "--partition",
            "rootfs",
            "--no-boot",
            "--no-backup",
        )
        root = dev.flash.read(ROOT_OFF, ROOT_SIZE)
    assert code == 0, r
    assert root == flash_a[ROOT_OFF : ROOT_OFF + ROOT_SIZE]
    assert [x["region"] for x in r["ranges"]] == ["rootfs"] and "not booted" in r["message"]


def test_boot_reports_the_mount(flash_a):
    with camera(flash_a) as (dev, opts):
        code, r, _ = run_engine("hi3511", "boot", *opts, "--cat", "/proc/mtd")
    assert code == 0
    assert r["mounted"] and r["boot"]["filesystem"] == "jffs2 filesystem"
    assert 'mtd1: 00d00000 00020000 "rootfs"' in r["cat"]["/proc/mtd"]


def test_boot_of_a_zeroed_root_reports_the_panic(flash_a):
    blank = bytearray(flash_a)
    blank[ROOT_OFF : ROOT_OFF + ROOT_SIZE] = bytes(ROOT_SIZE)  # no valid node anywhere
    with camera(Flash.of(bytes(blank), flash_a.uboot)) as (dev, opts):
        code, r, _ = run_engine("hi3511", "boot", *opts)
    assert code == 8 and r["mounted"] is False
    assert r["panic"].startswith("Kernel panic - not syncing: VFS: Unable to mount root fs")
