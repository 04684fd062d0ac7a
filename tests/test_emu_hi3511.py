"""The emulated Hi3511, driven over its pty like a person with picocom (seed 000)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import time
import zlib
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import root_image, vendor_flash
from harness.lab.console import ConsoleClient as Term
from harness.lab.tftp import uploaded

SEED_NAME = "000_031bf1944ef4fc76.txt"


def find_seed(name: str = SEED_NAME) -> Path:
    """The seed transcript: in $CAMRESCUE_SEEDS, else in ../shared/seeds beside the
    repository. Missing, the test is skipped, except in CI (CI=true), where that is a
    setup error and the test fails saying where it looked."""
    env = os.environ.get("CAMRESCUE_SEEDS")
    root = Path(__file__).resolve().parents[1]
    places = ([Path(env)] if env else []) + [root.parent / "shared" / "seeds"]
    for place in places:
        if (place / name).is_file():
            return place / name
    where = ", ".join(str(p) for p in places)
    if os.environ.get("CI") == "true":
        pytest.fail(f"seed {name} not found (looked in {where}); set CAMRESCUE_SEEDS")
    pytest.skip(f"seed {name} not found (looked in {where}); set CAMRESCUE_SEEDS")


PROMPT = "hilinux # "
ROOT = 0x34200000
VARIANTS = ["hisilicon", "upstream"]


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def vendor_a(variant) -> bytes:
    return vendor_flash("A", uboot=variant)


def attach(dev: Hi3511Device, *, interrupt: bool | None = True) -> Term:
    """Open the port, power on and (with ``interrupt``) stop the autoboot the way that
    works on both trees: spaces from power-on until the prompt, then Enter."""
    term = Term(dev.path)
    dev.power_on()
    if interrupt:
        stop_autoboot(term)
    return term


def stop_autoboot(term: Term) -> None:
    """Spaces every ~30 ms until the prompt, then Enter (as the engine does)."""
    deadline = time.monotonic() + 20
    while True:
        term.write(b" ")
        try:
            term.read_until(PROMPT, 0.03)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    term.write(b"\r")
    term.read_until(PROMPT)
    term.buf = b""


def Dev(variant: str, **kw) -> Hi3511Device:  # noqa: N802
    kw.setdefault("initial_flash", vendor_flash("A", uboot=variant))
    return Hi3511Device(uboot_variant=variant, **kw)


@pytest.fixture
def board(variant, vendor_a, tftp_server):
    root, port = tftp_server
    dev = Dev(variant, initial_flash=vendor_a, tftp_server=("127.0.0.1", port))
    try:
        term = attach(dev)
        yield dev, term, root
        term.close()
        assert dev.crash is None, dev.crash_text
    finally:
        dev.close()


def seed_text() -> str:
    return find_seed().read_text()


# -- power-on -------------------------------------------------------------------


def _seed_banner() -> list[str]:
    text = seed_text()
    start = text.index("U-Boot 1.1.4 (Apr")
    return text[start : text.index("Hit any key", start)].splitlines()


def test_banner_and_autoboot_interrupt_are_byte_exact(variant, vendor_a):
    with closing(Dev(variant, initial_flash=vendor_a)) as dev:
        term = attach(dev, interrupt=None)
        head = term.read_until(r"autoboot: ")
        term.write(b" ")  # the one key both trees take during the countdown
        rest = term.read_until(PROMPT)
        expect = "\r\n".join(_seed_banner()) + "\r\nHit any key to stop autoboot: "
        assert head.decode() == expect
        assert rest == b" 1 \x08\x08\x08 0 \r\nhilinux # "
        assert term.cmd("") == ""  # nothing to repeat
        term.close()


def test_upstream_any_key_stops_the_countdown():
    with closing(Dev("upstream")) as dev:
        term = attach(dev, interrupt=None)
        term.read_until(r"autoboot: ")
        term.write(b"x")
        assert term.read_until(PROMPT) == b" 1 \x08\x08\x08 0 \r\nhilinux # "


def test_hisilicon_takes_only_a_space_during_the_countdown():
    """common/main.c CONFIG_HISILICON: another key is read and ends the second early."""
    with closing(Dev("hisilicon")) as dev:
        term = attach(dev, interrupt=None)
        term.read_until(r"autoboot: ")
        term.write(b"x")
        out = term.read_until(r"## Booting image at 34100000 \.\.\.").decode()
        assert out == " 1 \x08\x08\x08 0 \r\n## Booting image at 34100000 ..."


@pytest.mark.parametrize("variant", VARIANTS)
def test_bootdelay_0_counts_only_a_key_already_waiting(variant):
    """CONFIG_ZERO_BOOTDELAY_CHECK: with bootdelay 0 a key sent while the board starts
    stops it (any key, in both trees); one sent after the countdown line is too late."""
    flash = vendor_flash("A", uboot=variant, bootdelay="0")
    with closing(Dev(variant, initial_flash=flash)) as dev:
        term = attach(dev, interrupt=None)
        term.read_until(r"MAC: [^\n]*\n")
        term.write(b"x")
        assert term.read_until(PROMPT) == (
            b"Hit any key to stop autoboot:  0 \x08\x08\x08 0\r\nhilinux # "
        )
        term.close()
        dev.power_off()
        term = attach(dev, interrupt=None)
        term.read_until(r"autoboot:  0 ")
        term.write(b" ")
        assert term.read_until(r"## Booting image[^\n]*\n").startswith(b"\r\n## Booting")
        term.close()


def test_blank_environment_sector_gives_the_bad_crc_warning(variant):
    flash = vendor_flash("A", env=False, uboot=variant)
    with closing(Dev(variant, initial_flash=flash)) as dev:
        term = attach(dev, interrupt=None)
        head = term.read_until(r"autoboot: ").decode()
        lines = _seed_banner()
        expect = "\r\n".join(lines[:6]) + "\r\n"
        expect += "*** Warning - bad CRC, using default environment\r\n\r\n"
        expect += "\r\n".join(lines[6:]) + "\r\nHit any key to stop autoboot: "
        assert head == expect
        term.write(b" ")  # the default environment's CONFIG_BOOTDELAY is 2 / 1
        term.read_until(PROMPT)
        assert term.cmd("printenv bootcmd") == "bootcmd=bootm 0x34100000\r\n"
        term.close()


def test_no_key_boots_linux_and_mounts_root(variant, vendor_a):
    with closing(Dev(variant, initial_flash=vendor_a)) as dev:
        term = attach(dev, interrupt=None)
        out = term.read_until(r"\r\n# ", timeout=20).decode("latin-1")
        assert "## Booting image at 34100000 ..." in out
        # HiSilicon's CONFIG_HW_WATCHDOG copies the image after "Loading Kernel Image ..."
        load = "   Loading Kernel Image ... " if variant == "hisilicon" else ""
        assert f"   Verifying Checksum ... OK\r\n{load}OK\r\n\r\nStarting kernel ...\r\n\r\n" in out
        assert "Kernel command line: mem=72M console=ttyAMA0,115200 root=1f01" in out
        assert "VFS: Mounted root (jffs2 filesystem)." in out
        assert "CRC failed" not in out
        ls = term.cmd("ls /etc", prompt="# ")
        assert "passwd" in ls
        assert dev.last_scan is not None and dev.last_scan.mounted
        assert term.cmd("cat /etc/version", prompt="# ").strip() != ""
        mtd = term.cmd("cat /proc/mtd", prompt="# ")
        assert 'mtd1: 00d00000 00020000 "rootfs"' in mtd


def test_help_listing_matches_the_seed(board):
    dev, term, _ = board
    text = seed_text()
    block = text[text.index("hilinux # help") : text.index("Of those")]
    expected = [ln for ln in block.splitlines()[1:] if ln.strip()]
    raw = term.cmd("help").splitlines()
    # a terminal shows the TABs of bootp, dhcp, ping (REFERENCE.md) in the seed's columns
    tabbed = ["bootp", "dhcp", "ping"] + (["tftp"] if dev.variant.hisilicon else [])
    assert [ln.split("\t")[0] for ln in raw if "\t" in ln] == tabbed
    got = [ln.expandtabs(8) for ln in raw]
    assert got == expected


# -- line editor and parser -----------------------------------------------------------


def test_line_editing_backspace_ctrl_c_and_overflow(board):
    dev, term, _ = board
    hisi = dev.variant.hisilicon
    term.write("verz\x08sion\r")
    out = term.read_until(PROMPT).decode()
    assert out.startswith("verz\x08 \x08sion\r\r\n\r\nU-Boot 1.1.4")
    term.write("md 0\x03")
    # HiSilicon's main loop prints only a newline for Ctrl-C
    assert term.read_until(PROMPT).decode() == (
        "md 0\r\nhilinux # " if hisi else "md 0<INTERRUPT>\r\nhilinux # "
    )
    term.write("x" * 1100)
    out = term.read_until(b"\x07").decode()
    assert out.count("x") == (1022 if hisi else 254)  # CFG_CBSIZE 1024 / 256, minus 2
    term.write("\x03")
    term.read_until(PROMPT)


def test_semicolons_variables_quotes_and_prefixes(board):
    _, term, _ = board
    assert term.cmd("setenv a hello; echo ${a} $(a) world") == "hello hello world\r\n"
    assert term.cmd("echo 'x;y' \\$a") == "x;y $a\r\n"
    assert term.cmd("printe a") == "a=hello\r\n"
    assert term.cmd("p a") == "Unknown command 'p' - try 'help'\r\n"
    assert term.cmd("frobnicate") == "Unknown command 'frobnicate' - try 'help'\r\n"
    assert term.cmd("version 1") == "Usage:\r\nversion - print monitor version\r\n\r\n"


def test_md_repeats_on_empty_line_and_md_b_w(board):
    dev, term, _ = board
    first = term.cmd("md 0x34100000 4")
    assert first.startswith("34100000: 56190527 ")
    nxt = term.cmd("")
    if dev.variant.hisilicon:
        assert nxt == ""  # HiSilicon's main loop runs nothing for an empty line
        nxt = term.cmd("md 0x34100010 4")
    assert nxt.startswith("34100010: ")
    raw = dev.flash.read(0x100000, 16)
    line = term.cmd("md.b 0x34100000 10")
    assert (
        line
        == "34100000: "
        + " ".join(f"{b:02x}" for b in raw)
        + "    "
        + "".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in raw)
        + "\r\n"
    )
    assert term.cmd("md.w 0x34100000 2").startswith("34100000: 0527 5619    ")


def test_mw_cmp_crc32_and_base(board):
    _, term, _ = board
    assert term.cmd("mw.l 0xe1000000 0x12345678 4") == ""
    assert term.cmd("md.l 0xe1000000 2").startswith("e1000000: 12345678 12345678")
    assert term.cmd("cmp.l 0xe1000000 0xe1000004 3") == "Total of 3 words were the same\r\n"
    crc = zlib.crc32(bytes.fromhex("78563412" * 2))
    assert term.cmd("crc32 0xe1000000 8") == f"CRC32 for e1000000 ... e1000007 ==> {crc:08x}\r\n"
    assert term.cmd("base 0xe1000000") == "Base Address: 0xe1000000\r\n"
    assert term.cmd("md.l 0 1").startswith("e1000000: 12345678")
    term.cmd("base 0")


def test_cmp_reports_the_first_difference(board):
    _, term, _ = board
    term.cmd("mw.b 0xe2000000 0x11 8")
    term.cmd("mw.b 0xe2000100 0x11 8")
    term.cmd("mw.b 0xe2000105 0xaa")
    assert term.cmd("cmp.b 0xe2000000 0xe2000100 8") == (
        "byte at 0xe2000005 (0x11) != byte at 0xe2000105 (0xaa)\r\n"
        "Total of 5 bytes were the same\r\n"
    )


# -- flash commands --------------------------------------------------------------------


def test_flinfo_marks_monitor_and_env_read_only(board):
    dev, term, _ = board
    out = term.cmd("flinfo")
    assert out.startswith(
        "\r\nBank # 1: CFI conformant FLASH (16 x 16)  Size: 16 MB in 128 Sectors\r\n"
    )
    # the monitor's code (0x17540 bytes: sector 0) and the environment sector
    if dev.variant.hisilicon:
        assert out[out.index("\r\n") + 2 :].startswith(
            "Bank # 1: CFI conformant FLASH (16 x 16)  Size: 16 MB in 128 Sectors\r\n"
            "  AMD Standard command set, Manufacturer ID: 0x01, Device ID: 0x7E2101\r\n"
            "  Erase timeout: 4096 ms, write timeout: 1 ms\r\n"
            "  Buffer write timeout: 3 ms, buffer size: 32 bytes\r\n"
            "\r\n  Sector Start Addresses:\r\n"
            "  34000000   RO   34020000        34040000   RO   34060000        34080000      \r\n"
        )
        assert out.endswith("  34FA0000        34FC0000        34FE0000      \r\n")
    else:
        assert (
            "\r\n    34000000 (RO) 34020000      34040000      34060000      34080000 (RO)\r\n"
            in out
        )
        assert (
            "    340A0000      340C0000      340E0000      34100000      34120000     \r\n" in out
        )


def test_erase_messages(board):
    dev, term, _ = board
    if dev.variant.hisilicon:
        bar = (
            "[  0%]#--------------------|"
            + "\b" * 28
            + "[  0%]#\b"
            + "\b" * 6
            + "[ 50%]#"
            + "#" * 10
            + "\b" * 11
            + "\b" * 6
            + "[100%]#"
            + "#" * 20
            + "\b" * 21
        )
        assert term.cmd("erase 0x34200000 +0x40000") == (
            f"Erase Flash from 0x34200000 to 0x3423ffff in Bank # 1 \r\n{bar}\r\n"
            "Erased 2 sectors\r\n"
        )
        assert term.cmd("erase 0x34FE0000 +0x20000").startswith(
            "Erase Flash from 0x34fe0000 to 0xffffffff in Bank # 1 "  # start[s_last+1] is 0
        )
    else:
        assert term.cmd("erase 0x34200000 +0x40000") == "\r\n.. done\r\nErased 2 sectors\r\n"
        assert term.cmd("erase 0x34200000 +0x1") == "\r\n. done\r\nErased 1 sectors\r\n"
        assert term.cmd("erase 0x34000000 0x340BFFFF") == (
            "- Warning: 2 protected sectors will not be erased!\r\n.... done\r\n"
            "Erased 6 sectors\r\n"
        )
    assert dev.flash.read(0x200000, 0x40000) == b"\xff" * 0x40000
    assert (
        term.cmd("erase 0x34200004 0x3421FFFF") == "Error: start address not on sector boundary\r\n"
    )
    assert (
        term.cmd("erase 0x34200000 0x34200FFF") == "Error: end address not on sector boundary\r\n"
    )
    assert term.cmd("erase 0x34FE0000 +0x40000") == (
        "Error: end address (0x3501ffff) not in flash!\r\nBad address format\r\n"
    )
    assert term.cmd("erase 0x10000000 0x1001FFFF") == (
        "Error: start and/or end address not on sector boundary\r\n"
    )
    assert term.cmd("erase zz 0x1") == "Bad address format\r\n"
    assert term.cmd("erase 0x34300000 0x34200000").startswith(
        "Usage:\r\nerase   - erase FLASH memory"
    )


def test_protect_on_off(board):
    dev, term, _ = board
    # CFG_FLASH_PROTECTION: a dot per sector
    assert term.cmd("protect off 0x34000000 +0xa0000") == ".....\r\nUn-Protected 5 sectors\r\n"
    assert term.cmd("protect on 0x34200000 0x3423FFFF") == "..\r\nProtected 2 sectors\r\n"
    assert dev.flash.is_protected(16) and not dev.flash.is_protected(0)
    out = term.cmd("erase 0x34200000 +0x20000")
    assert "- Warning: 1 protected sectors will not be erased!\r\n" in out
    assert out.endswith("Erased 1 sectors\r\n")
    assert term.cmd("protect off all") == "Un-Protect Flash Bank # 1\r\n" + "." * 128 + " done\r\n"
    assert not any(dev.flash.is_protected(i) for i in range(128))


def _copy(hisi: bool, body: str, bulk: bool = True) -> str:
    """What ``cp`` into flash prints around ``body`` (HiSilicon: a newline, the Flash ID
    and, once the first word is through, the progress bar)."""
    if not hisi:
        return "Copy to Flash... " + body
    head = "Copy to Flash... \r\nFlash ID 01000000\r\n"
    return head + body if not bulk else head + "[  0%]#--------------------|" + body


def test_cp_to_flash_buffered_write_ands_and_checks_only_odd_words(board):
    dev, term, _ = board
    hisi = dev.variant.hisilicon
    old = dev.flash.read(0x200000, 0x100)
    term.cmd("mw.l 0xe1000000 0x00ff00ff 0x50")
    # aligned: the write buffer has no erased check; the chip ANDs old and new
    out = term.cmd("cp.b 0xe1000000 0x34200000 0x100")
    assert out.startswith(_copy(hisi, "")) and out.endswith("done\r\n")
    assert "Flash not Erased" not in out
    want = bytes(a & b for a, b in zip(old, bytes.fromhex("ff00ff00") * 0x40, strict=True))
    assert dev.flash.read(0x200000, 0x100) == want
    # an unaligned first word goes through the checked single-word write
    out = term.cmd("cp.b 0xe1000000 0x34200001 0x10")
    assert out == _copy(hisi, "Flash not Erased\r\n", bulk=False)
    # an unaligned last word too, after the bulk
    out = term.cmd("cp.b 0xe1000000 0x34200100 0x11")
    assert out.endswith("Flash not Erased\r\n") and "done" not in out
    assert term.cmd("erase 0x34200000 +0x20000").endswith("Erased 1 sectors\r\n")
    out = term.cmd("cp.b 0xe1000001 0x34200001 0x101")
    assert out.endswith("done\r\n")
    assert dev.flash.read(0x200001, 0x101) == (bytes.fromhex("ff00ff00") * 0x41)[1:0x102]
    assert (
        term.cmd("cp.b 0xe1000000 0x34000000 0x10")
        == ("Copy to Flash... \r\n" if hisi else "Copy to Flash... ")
        + "Can't write to protected Flash sectors\r\n"
    )
    assert term.cmd("cp 0xe1000000 0xe1001000 0") == "Zero length ???\r\n"


def test_saveenv_survives_power_cycle(variant, vendor_a):
    with closing(Dev(variant, initial_flash=vendor_a)) as dev:
        term = attach(dev)
        assert term.cmd("setenv ethaddr 11:22:33:44:55:66") == 'Can\'t overwrite "ethaddr"\r\n'
        term.cmd("setenv serverip 10.0.0.2")
        out = term.cmd("saveenv")
        if variant == "hisilicon":
            env = 0x34040000
            assert out.startswith(
                "Saving Environment to Flash...\r\n.\r\nUn-Protected 1 sectors\r\n"
                "Erasing Flash...Erase Flash from 0x34040000 to 0x3405ffff in Bank # 1 \r\n[  0%]"
            )
            assert "\r\nErased 1 sectors\r\nWriting to Flash... Flash ID 01000000\r\n[  0%]" in out
            assert out.endswith("\r\ndone\r\n.\r\nProtected 1 sectors\r\n")
        else:
            env = 0x34080000
            assert out == (
                "Saving Environment to Flash...\r\n.\r\nUn-Protected 1 sectors\r\n"
                "Erasing Flash...\r\n. done\r\nErased 1 sectors\r\nWriting to Flash... done\r\n"
                ".\r\nProtected 1 sectors\r\n"
            )
        assert b"serverip=10.0.0.2\0" in dev.flash.read(env - 0x34000000, 0x1000)
        term.close()
        dev.power_off()
        term = attach(dev)
        assert "bad CRC" not in term.seen.decode("latin-1")
        assert term.cmd("printenv serverip") == "serverip=10.0.0.2\r\n"
        assert term.cmd("printenv nosuch") == '## Error: "nosuch" not defined\r\n'
        term.close()


# -- tftp -----------------------------------------------------------------------------------


def test_tftp_download_to_ram_sets_filesize(board):
    dev, term, root = board
    data = bytes(range(256)) * 41 + b"tail"  # 10500 bytes: 21 blocks
    (root / "blob.bin").write_bytes(data)
    out = term.cmd("tftp 0xe1000000 blob.bin")
    if dev.variant.hisilicon:
        # (a loaded test machine may make the fast-mode 3 s timeout fire: "T" and the
        # RRQ again with its "%")
        assert re.fullmatch(
            re.escape(
                "TFTP from server 192.168.1.1; our IP address is 192.168.1.10\r\n"
                "Download Filename 'blob.bin'.\r\nDownload to address: 0xe1000000\r\n"
                "Downloading: *\x08%"
            )
            + "(?:T%)*"
            + re.escape(
                "#\t[ Connected ]\r\n"
                "\r\n\t 0.010 MB download ok.\r\nBytes transferred = 10500 (2904 hex)\r\n"
            ),
            out,
        ), out
    else:
        assert out == (
            "TFTP from server 192.168.1.1; our IP address is 192.168.1.10\r\n"
            "Filename 'blob.bin'.\r\nLoad address: 0xe1000000\r\n"
            "Loading: *\x08###\r\ndone\r\nBytes transferred = 10500 (2904 hex)\r\n"
        )
    assert term.cmd("printenv filesize fileaddr") == "filesize=2904\r\nfileaddr=E1000000\r\n"
    crc = zlib.crc32(data)
    assert term.cmd("crc32 0xe1000000 0x2904").endswith(f"==> {crc:08x}\r\n")


def test_tftp_upload_sends_the_flash_range(board):
    dev, term, root = board
    out = term.cmd("tftp 0x34100000 backup.bin 0x20000")
    if dev.variant.hisilicon:  # no byte count after an upload
        assert re.fullmatch(
            re.escape(
                "TFTP to server 192.168.1.1; our IP address is 192.168.1.10\r\n"
                "Upload Filename 'backup.bin'.\r\n"
                "Upload from address: 0x34100000, 0.128 MB to be send ...\r\n"
                "Uploading: *\x08%"
            )
            + "(?:T%)*%?"  # tftpy answers the WRQ with ACK 0, a repeat of block 0: "%"
            + re.escape("#\t[ Connected ]\r\n####\r\n\t 0.128 MB upload ok.\r\n"),
            out,
        ), out
    else:
        assert "Bytes transferred = 131072 (20000 hex)" in out
    # the server finishes the file after the device's last ACK: wait for it
    assert uploaded(root / "backup.bin", 0x20000) == dev.flash.read(0x100000, 0x20000)


def test_tftp_missing_file_retries_until_ctrl_c(board):
    _, term, _ = board
    term.write("tftp 0xe1000000 nosuch.bin\r")
    term.read_until(r"TFTP error: 'File not found' \(1\)\r\nStarting again\r\n\r\n")
    term.read_until("TFTP from server")  # it starts again by itself
    term.write("\x03")
    out = term.read_until(PROMPT).decode()
    assert "\r\nAbort\r\n" in out


def test_tftp_with_no_server_times_out(variant, vendor_a):
    with closing(Dev(variant, initial_flash=vendor_a, tftp_server=None)) as dev:
        term = attach(dev)
        term.write("tftp 0xe1000000 x.bin\r")
        out = term.read_until("Retry count exceeded; starting again\r\n").decode()
        if variant == "hisilicon":  # "T" per 3 s timeout, "%" per RRQ sent (again)
            assert "Downloading: *\x08%" + "T%" * 10 + "\r\nRetry" in out
        else:
            assert "Loading: *\x08T T T T T T T T T T \r\nRetry" in out
        term.write("\x03")
        term.read_until(PROMPT)
        term.cmd("setenv serverip")
        assert term.cmd("tftp 0xe1000000 x.bin") == "*** ERROR: `serverip' not set\r\n"
        term.close()


def test_net_map_never_targets_a_real_address():
    with pytest.raises(ValueError, match="loopback"):
        Hi3511Device(tftp_server=("192.168.1.100", 69))


def test_bootp_and_ping_without_answer(board):
    _, term, _ = board
    assert term.cmd("ping 192.168.1.1") == "ping failed; host 192.168.1.1 is not alive\r\n"
    term.write("dhcp\r")
    term.read_until("BOOTP broadcast 2\r\n")
    term.write("\x03")
    assert "Abort" in term.read_until(PROMPT).decode()


def test_bootm_bad_magic_returns_to_prompt(board):
    _, term, _ = board
    assert (
        term.cmd("bootm 0x34200000") == "## Booting image at 34200000 ...\r\nBad Magic Number\r\n"
    )


# -- the seed's crossgrade: with and without erase --------------------------------------------

CRC_LINE = re.compile(
    r"jffs2_scan_(dirent|inode)_node\(\): (?:Node )?CRC failed on node at 0x([0-9a-f]{8}): "
    r"Read 0x([0-9a-f]{8}), calculated 0x([0-9a-f]{8})"
)


def _boot(term: Term) -> str:
    term.write("bootm 0x34100000\r")
    return term.read_until(r"(\r\n# |Kernel panic[^\n]*\n)", timeout=30).decode("latin-1")


def test_flashing_without_erase_gives_the_seeds_crc_errors(board):
    dev, term, root = board
    b = root_image("B")
    (root / "instar.jffs2").write_bytes(b)
    out = term.cmd("tftp 0x34200000 instar.jffs2", timeout=30)
    assert f"Bytes transferred = {len(b)} ({len(b):x} hex)" in out
    rootfs_sectors = range(16, 16 + 0xD00000 // 0x20000)
    assert sum(dev.flash.stats.lost_bits[s] for s in rootfs_sectors) > 0
    log = _boot(term)
    hits = CRC_LINE.findall(log)
    assert len(hits) >= 5
    flash = dev.flash.read(0x200000, len(b))
    for kind, off, read, calc in hits[:20]:
        o = int(off, 16)
        # dirent: node_crc at 32 over bytes 0..31; inode: node_crc at 64 over bytes 0..59
        crc_at, covered = (32, 32) if kind == "dirent" else (64, 60)
        assert flash[o : o + 2] == b"\x85\x19"
        stored = int.from_bytes(flash[o + crc_at : o + crc_at + 4], "little")
        assert int(read, 16) == stored
        expect = zlib.crc32(flash[o : o + covered], 0xFFFFFFFF) ^ 0xFFFFFFFF
        assert int(calc, 16) == expect
        assert stored != expect


def test_flashing_with_erase_boots_clean_with_the_new_files(board):
    dev, term, root = board
    b = root_image("B")
    (root / "instar.jffs2").write_bytes(b)
    out = term.cmd("erase 0x34200000 +0xd00000")
    if dev.variant.hisilicon:
        assert out.startswith("Erase Flash from 0x34200000 to 0x34efffff in Bank # 1 \r\n")
        assert "[100%]" in out and out.endswith("\r\nErased 104 sectors\r\n")
    else:
        assert out == "\r\n" + "." * 104 + " done\r\nErased 104 sectors\r\n"
    term.cmd("tftp 0x34200000 instar.jffs2", timeout=30)
    assert dev.flash.read(0x200000, len(b)) == b
    log = _boot(term)
    assert "CRC failed" not in log
    assert "VFS: Mounted root (jffs2 filesystem)." in log
    version = term.cmd("cat /etc/version", prompt="# ")
    assert "B12SE_V60" in version
    assert dev.last_scan is not None and dev.last_scan.crc_errors == 0


def test_reset_and_power_cycle_keep_flash_lose_ram(board):
    dev, term, _ = board
    term.cmd("mw.l 0xe1000000 0xcafef00d")
    term.cmd("erase 0x34E00000 +0x20000")
    term.write("reset\r")
    term.read_until("reset\r\r\n")
    stop_autoboot(term)
    assert not term.cmd("md.l 0xe1000000 1").startswith("e1000000: cafef00d")
    assert dev.flash.read(0xE00000, 0x20000) == b"\xff" * 0x20000


# -- robustness ------------------------------------------------------------------------------


_NOISE = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=400))
@example(noise=b"\x1b")
@example(noise=b"\x1b[")
def test_noise_on_the_console_never_crashes_it(board, noise):
    dev, term, _ = board
    term.write(noise.replace(b"\r", b"").replace(b"\n", b""))
    # Ctrl-C drops the line; in HiSilicon's editor a noise that ends inside an ESC
    # sequence takes the first Ctrl-C as the sequence's next byte, so two. The numbered
    # echo cannot be matched by an earlier prompt
    n = next(_NOISE)
    term.write(f"\x03\x03echo alive-{n}\r".encode())
    term.read_until(re.escape(f"echo alive-{n}") + r"\r\r\n" + re.escape(f"alive-{n}\r\n{PROMPT}"))
    assert dev.crash is None


@pytest.mark.interop
@pytest.mark.skipif(
    shutil.which("in.tftpd") is None, reason="tftpd-hpa (in.tftpd) is not installed"
)
def test_tftp_against_tftpd_hpa(variant, vendor_a, tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    data = bytes(range(256)) * 20
    (root / "hpa.bin").write_bytes(data)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(
        [
            "in.tftpd",
            "--foreground",
            "--listen",
            "--address",
            f"127.0.0.1:{port}",
            "--secure",
            "--user",
            "root",
            str(root),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.3)
        if proc.poll() is not None:
            pytest.skip(f"in.tftpd did not start: {proc.stderr.read().decode()[:200]}")
        with closing(Dev(variant, initial_flash=vendor_a, tftp_server=("127.0.0.1", port))) as dev:
            term = attach(dev)
            out = term.cmd("tftp 0xe1000000 hpa.bin")
            assert "Bytes transferred = 5120 (1400 hex)" in out
            assert term.cmd("crc32 0xe1000000 0x1400").endswith(f"==> {zlib.crc32(data):08x}\r\n")
            term.close()
    finally:
        proc.terminate()
        proc.wait(5)


def test_mm_and_nm_modify_memory_interactively(board):
    _, term, _ = board
    term.cmd("mw.l 0xe1000000 0x11111111 2")
    term.write("mm.l 0xe1000000\r")
    assert term.read_until(r" \? ").decode().endswith("e1000000: 11111111 ? ")
    term.write("cafef00d\r")
    term.read_until(r"e1000004: 11111111 \? ")
    term.write("\r")  # keep, go on
    term.read_until(r"e1000008: [0-9a-f]{8} \? ")
    term.write("q\r")  # not a number: leave
    term.read_until(PROMPT)
    assert term.cmd("md.l 0xe1000000 2").startswith("e1000000: cafef00d 11111111")
    term.write("nm.b 0xe1000000\r")
    term.read_until(r"e1000000: 0d \? ")
    term.write("aa\r")
    term.read_until(r"e1000000: aa \? ")  # nm keeps the address
    term.write("\x03")
    term.read_until(PROMPT)
    assert term.cmd("md.b 0xe1000000 1").startswith("e1000000: aa")
    assert term.cmd("mm") == "Usage:\r\nmm      - memory modify (auto-incrementing)\r\n\r\n"


def test_help_for_one_command_and_an_unknown_one(board):
    _, term, _ = board
    assert term.cmd("help md") == (
        "md [.b, .w, .l] address [# of objects]\r\n    - memory display\r\n\r\n"
    )
    assert term.cmd("help nosuch") == (
        "Unknown command 'nosuch' - try 'help' without arguments for list of all known "
        "commands\r\n\r\n"
    )


def test_mtest_and_loadb_stop_on_ctrl_c(board):
    _, term, _ = board
    term.write("mtest 0xe1000000 0xe1001000\r")
    term.read_until(r"Testing e1000000 \.\.\. e1001000:\r\n")
    term.read_until("Reading...")
    term.write("\x03")
    term.read_until(PROMPT)
    term.write("loadb 0xe1000000\r")
    term.read_until(
        r"## Ready for binary \(kermit\) download to 0xE1000000 at 115200 bps\.\.\.\r\n"
    )
    term.write("\x03")
    assert "## Binary (kermit) download aborted" in term.read_until(PROMPT).decode()


def test_go_and_loop_hang_until_power_cycle(board):
    dev, term, _ = board
    assert term.cmd("go") == "Usage:\r\ngo      - start application at address 'addr'\r\n\r\n"
    term.write("go 0xe1000000\r")
    term.read_until(r"## Starting application at 0xE1000000 \.\.\.\r\n")
    term.write("\r\x03help\r")
    time.sleep(0.3)  # a hung CPU answers nothing, whatever is typed
    assert term.read_for(0.2) == b""
    dev.power_cycle()
    stop_autoboot(term)
    term.write("loop.b 0xe1000000 4\r")
    term.read_until("loop.b 0xe1000000 4\r\r\n")
    term.write("\r")
    assert term.read_for(0.3) == b""
    assert dev.crash is None
