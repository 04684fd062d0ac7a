"""The W90P745 boot loader model, driven over its pty with pyserial.

Ground truth: seed 001 (banner, configuration block, ``ls -al`` lines and
the ``d 0x400`` page are copied below from the seed, with its HTML
non-breaking spaces turned back into spaces).
"""

from __future__ import annotations

import io
import os
import re
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager

import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xmodem import XMODEM

from emulators.w90p745 import W90P745Device
from emulators.w90p745.commands import COMMANDS

PROMPT = b"\r\nbootloader > "
ESC = b"\x1b"

SEED_BANNER = """\
W90P745 Boot Loader [ Version 1.1 $Revision: 1 $ ] Rebuilt on Dec 10 2009
Memory Size is 0x1000000 Bytes, Flash Size is 0x200000 Bytes
Board designed by Winbond
Hardware support provided at Winbond
Copyright (c) Winbond Limited 2001 - 2006. All rights reserved.
Boot Loader Configuration:

        MAC Address         : 0E:F2:B3:DC:0C:EF
        IP Address          :
        DHCP Client         : Enabled
        CACHE               : Enabled
        BL buffer base      : 0x00300000
        BL buffer size      : 0x00100000
        Baud Rate           : 115200
        USB Interface       : Enabled
        Serial Number       : 0xFFFFFFFF

For help on the available commands type 'h'

Press ESC to enter debug mode"""

SEED_LS = """\
Image: 0 name:BOOT INFO base:0x7F010000 size:0x00000048 exec:0x7F010000 -f
Image: 7 name:linux base:0x7F020000 size:0x000BF700 exec:0x00008000 -acxz
Image: 6 name:romfs.img base:0x7F0E0000 size:0x0008FF80 exec:0x7F0E0000 -a
Image: 8 name:webui base:0x7F180000 size:0x0006F700 exec:0x7F180000 -a
"""

SEED_PAGE_0x400 = """\
Displaying memory at 0x400
[00000400] A5810004 B3E00000 - A3A00000 E49DF004  ................
[00000410] E52DE004 EBFFFFD3 - E3500000 A59F156C  ..-.......P.l...
[00000420] A3A00980 A5810004 - B3E00000 A3A00000  ................
[00000430] E49DF004 E52DE004 - EBFFFFCA E3500000  ......-.......P.
[00000440] A59F1548 A3A00840 - A5810004 B3E00000  H...@...........
[00000450] A3A00000 E49DF004 - E2800481 E3C00480  ................
[00000460] E35009FC 33A00B40 - 31A0F00E E59F151C  ..P.@..3...1....
[00000470] E5911004 E1500001 - 23A00000 33A00D80  ......P....#...3
[00000480] E1A0F00E E2800481 - E3C00480 E3500B40  ............@.P.
[00000490] 33A00D80 31A0F00E - E59F14F0 E5911004  ...3...1........
[000004A0] E1500001 23A00000 - 33A00B40 E1A0F00E  ..P....#@..3....
[000004B0] E2800481 E3C00480 - E3500B40 33A00D80  ........@.P....3
[000004C0] 31A0F00E E59F14C4 - E5911004 E1500001  ...1..........P.
[000004D0] 23A00000 33A00B40 - E1A0F00E E2800481  ...#@..3........
[000004E0] E3C00480 E350097C - 33A00B40 31A0F00E  ....|.P.@..3...1
[000004F0] E3500980 23A00000 - 33A00D80 E1A0F00E  ..P....#...3....
"""

WORD_LINE = re.compile(
    rb"\[([0-9A-F]{8})\] ([0-9A-F]{8}) ([0-9A-F]{8}) - ([0-9A-F]{8}) ([0-9A-F]{8})  (.{16})\r\n"
)
BYTE_LINE = re.compile(
    rb"\[([0-9A-F]{8})\] ((?:[0-9A-F]{2} ){8})- ((?:[0-9A-F]{2} ?){8})  (.{16})\r\n"
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("latin-1")


# -- host-side helpers -----------------------------------------------------------


def read_until(ser: serial.Serial, pattern: bytes, timeout: float = 5.0) -> bytes:
    """Read until ``pattern`` has arrived; everything read up to its end."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        buf += ser.read(max(1, ser.in_waiting))
        at = buf.find(pattern)
        if at >= 0:
            rest = bytes(buf[at + len(pattern) :])
            if rest:  # keep what came after for the next read
                raise AssertionError(f"unexpected bytes after {pattern!r}: {rest!r}")
            return bytes(buf)
    raise AssertionError(f"timeout waiting for {pattern!r}; got {bytes(buf)[-400:]!r}")


def read_for(ser: serial.Serial, pattern: bytes, timeout: float = 5.0) -> bytes:
    """Like read_until, but tolerant of bytes after the pattern (returned too)."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        buf += ser.read(max(1, ser.in_waiting))
        if pattern in buf:
            return bytes(buf)
    raise AssertionError(f"timeout waiting for {pattern!r}; got {bytes(buf)[-400:]!r}")


@contextmanager
def board(**kw: object) -> Iterator[tuple[W90P745Device, serial.Serial]]:
    """A device and a host port at 115200, opened before power-on."""
    dev = W90P745Device(**kw)  # type: ignore[arg-type]
    try:
        with serial.Serial(dev.path, 115200, timeout=0.05) as ser:
            dev.power_on()
            yield dev, ser
            assert dev.crash is None, dev.crash_text
    finally:
        dev.close()


def enter_shell(ser: serial.Serial) -> bytes:
    """ESC (sent at once: it waits in the UART's FIFO for the ESC window, as a key
    pressed early does), then the banner and the prompt; returns the banner."""
    ser.write(ESC)
    out = read_for(ser, b"Press ESC to enter debug mode" + b"\r\n" + PROMPT)
    banner, sep, rest = out.partition(b"Press ESC to enter debug mode")
    assert rest == b"\r\n" + PROMPT, rest
    return banner + sep


@contextmanager
def shell(**kw: object) -> Iterator[tuple[W90P745Device, serial.Serial]]:
    with board(**kw) as (dev, ser):
        enter_shell(ser)
        yield dev, ser


def cmd(ser: serial.Serial, line: str, timeout: float = 5.0) -> bytes:
    """Run one command; its output without the echo line and the next prompt."""
    ser.write(line.encode("latin-1") + b"\r")
    out = read_until(ser, PROMPT, timeout)
    echo = line.encode("latin-1") + b"\r\n"
    assert out.startswith(echo), out[:80]
    return out[len(echo) : -len(PROMPT)]


def xmodem_sender(ser: serial.Serial, mode: str = "xmodem1k") -> XMODEM:
    def getc(size: int, timeout: float = 1) -> bytes | None:
        ser.timeout = timeout
        try:
            return ser.read(size) or None
        finally:
            ser.timeout = 0.05

    def putc(data: bytes, timeout: float = 1) -> int:
        return ser.write(data)

    return XMODEM(getc, putc, mode=mode)


def parse_words(out: bytes) -> tuple[int, bytes]:
    """(first address, bytes) of a ``d`` page in word view; checks ascii too."""
    lines = WORD_LINE.findall(out)
    assert len(lines) == 16, out
    data = bytearray()
    for i, (addr, *words, text) in enumerate(lines):
        chunk = b"".join(struct.pack("<I", int(w, 16)) for w in words)
        assert int(addr, 16) == int(lines[0][0], 16) + 16 * i
        assert text == bytes(b if 0x21 <= b <= 0x7F else 0x2E for b in chunk)
        data += chunk
    return int(lines[0][0], 16), bytes(data)


# -- power-on --------------------------------------------------------------------


def test_banner_verbatim_then_esc_gives_prompt():
    with board() as (_dev, ser):
        banner = enter_shell(ser)
        assert banner == crlf(SEED_BANNER)


def test_no_key_boots_the_linux_image():
    with board() as (dev, ser):
        out = read_for(ser, b"Freeing init memory: 40K\r\n")
        assert crlf(SEED_BANNER + " ......\nCache enabled!\nProcessing image 1 ...\n") in out
        tail = out[out.index(b"Processing image 6 ...") :]
        assert tail.startswith(
            crlf("Processing image 6 ...\nProcessing image 7 ...\nUnzip image 7 ...\n")
            + crlf("Executing image 7 ...\nLinux version 2.4.20-uc0 (root@maverick-linux)")
        )
        assert b"Processing image 8" not in out  # the kernel never returns
        assert b"0: 7F0E0000-7F16FFFF [VIRTUAL 7F0E0000-7F16FFFF] (RO)\r\n" in out
        assert b"VFS: Mounted root (romfs filesystem) readonly.\r\n" in out
        # the kernel image was unzipped (copied) to its exec address
        assert dev.ram.read(0x8000, 0x1000) == dev.flash.read(0x20000, 0x1000)
        ser.write(b"\r\nls\r\n")  # the running system ignores the console
        time.sleep(0.1)
        assert ser.read(100) == b""


def test_boot_without_romfs_panics_and_without_kernel_stops_at_prompt():
    with shell() as (_dev, ser):
        assert cmd(ser, "del 6").startswith(b"Deleting Image 6 ...\r\n.")
        ser.write(b"run\r")
        out = read_for(ser, b"Unable to mount root fs on 1f:00\r\n")
        assert b'VFS: Cannot open root device "rom0" or 1f:00\r\n' in out
    with shell() as (_dev, ser):
        assert cmd(ser, "del 7").startswith(b"Deleting Image 7 ...\r\n.")
        out = cmd(ser, "run")
        assert out == crlf(
            "Cache enabled!\n" + "".join(f"Processing image {n} ...\n" for n in range(1, 9))
        )


def test_missing_boot_info_is_recreated_at_power_on():
    with shell() as (dev, ser):
        assert cmd(ser, "del") == b"Deleting Image 0 ...\r\n."  # no number: image 0 (sic)
        assert b"BOOT INFO" not in cmd(ser, "ls")
        dev.power_cycle()
        out = read_until(ser, b"Press ESC to enter debug mode")
        assert out.startswith(
            crlf("WARNING: Image 0 was not found. Try to create one ...\n.Image 0 created\n\n\n")
            + crlf(SEED_BANNER.split("\n")[0])
        )
        assert b"MAC Address         : 00:00:00:00:00:00\r\n" in out
        assert b"Baud Rate           : -1\r\n" in out
        ser.write(ESC)
        read_until(ser, PROMPT)
        ls = cmd(ser, "ls").decode()
        assert ls.startswith(
            "Image: 0 name:BOOT INFO base:0x7F010000 size:0x00000048 exec:0x7F010000 -af\r\n"
        )


# -- ls and d ----------------------------------------------------------------------


def test_ls_al_is_the_seed_table_and_commands_are_case_insensitive():
    with shell() as (_dev, ser):
        assert cmd(ser, "ls -al") == crlf(SEED_LS)
        assert cmd(ser, "LS -AL") == crlf(SEED_LS)
        assert cmd(ser, "Ls") == crlf(SEED_LS)


def test_d_0x400_is_the_seed_page():
    with shell() as (_dev, ser):
        assert cmd(ser, "d 0x400") == crlf(SEED_PAGE_0x400)
        assert cmd(ser, "D 0x400") == crlf(SEED_PAGE_0x400)


def test_d_words_are_little_endian_flash_bytes_and_d_continues():
    with shell() as (dev, ser):
        out = cmd(ser, "d 0x7F020000")
        assert out.startswith(b"Displaying memory at 0x7F020000\r\n")
        addr, data = parse_words(out)
        assert addr == 0x7F020000 and data == dev.flash.read(0x20000, 256)
        assert data[:4] == bytes.fromhex("D3F021E3")  # msr cpsr_c, #0xD3
        for page in (1, 2):
            out = cmd(ser, "d")
            assert out.startswith(
                f"Displaying memory at 0x{0x7F020000 + 256 * page:X}\r\n".encode()
            )
            addr, data = parse_words(out)
            assert data == dev.flash.read(0x20000 + 256 * page, 256)


def test_d_byte_view():
    with shell() as (dev, ser):
        out = cmd(ser, "d -b 0x7F0E0000")
        assert out.startswith(b"Displaying memory at 0x7F0E0000\r\n")
        lines = BYTE_LINE.findall(out)
        assert len(lines) == 16
        got = b"".join(bytes.fromhex((a + b).decode()) for _, a, b, _ in lines)
        assert got == dev.flash.read(0xE0000, 256)
        assert got.startswith(b"-rom1fs-")
        assert out.splitlines()[1] == (
            b"[7F0E0000] 2D 72 6F 6D 31 66 73 2D - 00 08 FF 80 5A 3C 1E 0F  -rom1fs-....Z<.."
        )


def test_d_outside_ram_and_flash_is_a_data_abort():
    with shell() as (_dev, ser):
        assert cmd(ser, "d 0x20000000") == (
            b"Displaying memory at 0x20000000\r\nERROR: Data Abort @ pc=0x00001680\r\n"
        )
        # not validhex: the word is ignored; the aborted d never set the next address
        assert cmd(ser, "d 0xzz").startswith(b"Displaying memory at 0x20000000\r\n")


# -- memory commands ----------------------------------------------------------------


def test_e_mset_cp_change_ram_not_flash():
    with shell() as (dev, ser):
        assert cmd(ser, "e 0x100000 0x12345678 0x9abcdef0") == b""
        assert dev.ram.read(0x100000, 8) == bytes.fromhex("78563412f0debc9a")
        _, data = parse_words(cmd(ser, "d 0x100000"))
        assert data[:8] == bytes.fromhex("78563412f0debc9a")
        assert cmd(ser, "e -b 0x100001 0xaa") == b""
        assert dev.ram.read(0x100000, 4) == bytes.fromhex("78aa3412")
        assert cmd(ser, "mset 0x200000 0x5a 0x40") == b""
        assert dev.ram.read(0x200000, 0x40) == b"\x5a" * 0x40
        assert cmd(ser, "mset -w 0x200000 0x11223344 0x8") == b""
        assert dev.ram.read(0x200000, 12) == bytes.fromhex("44332211443322115a5a5a5a")
        assert cmd(ser, "cp 0x7F020000 0x400000 0x100") == b""
        assert dev.ram.read(0x400000, 0x100) == dev.flash.read(0x20000, 0x100)
        before = dev.flash.snapshot()
        assert cmd(ser, "e 0x7F020000 0x0") == b"ERROR: Address 0x7F020000 is in flash\r\n"
        assert cmd(ser, "mset 0x7F1F0000 0x0 0x10").startswith(
            b"ERROR: Address 0x7F1F0000 is in flash"
        )
        assert dev.flash.snapshot() == before


def test_e_interactive():
    with shell() as (dev, ser):
        dev.ram.write(0x500000, bytes.fromhex("0100000002000000"))
        ser.write(b"e 0x500000\r")
        read_until(ser, b"[00500000] 00000001 : ")
        ser.write(b"cafe\r")
        read_until(ser, b"[00500004] 00000002 : ")
        ser.write(b"\r")
        tail = read_for(ser, b"[00500008] ").split(b"[00500008] ")[1]
        if not tail.endswith(b" : "):
            read_for(ser, b" : ")
        ser.write(b".\r")
        read_until(ser, PROMPT)
        assert dev.ram.read(0x500000, 8) == bytes.fromhex("feca000002000000")


# -- Xmodem and flash ---------------------------------------------------------------


def start_fx(ser: serial.Serial, line: str) -> None:
    """Type an FX command; return once the loader waits (its first 'C' left unread)."""
    ser.write(line.encode() + b"\r")
    want = line.encode() + b"\r\nWaiting for download\r\nPress Ctrl-x to cancel ... \r\n"
    got = read_for(ser, want)
    assert got == want


def test_fx_writes_an_image_and_del_removes_it():
    payload = os.urandom(70000)  # two blocks: the footer goes at 0x7F19FFCC
    padded = payload + b"\x1a" * (-len(payload) % 128)  # the sender pads its last block
    with shell() as (dev, ser):
        assert cmd(ser, "del 8").startswith(b"Deleting Image 8 ...\r\n")  # room at 0x7F180000
        start_fx(ser, 'fx 9 "new ui" 0x7F180000 0x7F180000 -a')
        read_for(ser, b"C")
        ser.reset_input_buffer()  # queued C's would be taken for answers to block 1
        assert xmodem_sender(ser, "xmodem").send(io.BytesIO(payload), retry=4)
        out = read_until(ser, PROMPT)
        # the sender's last bytes: the ACK of EOT; WriteImage prints a dot per block
        assert out.endswith(crlf("\nFlash programming ...  \n..") + PROMPT)
        assert dev.flash.read(0x180000, len(padded)) == padded
        line = f"Image: 9 name:new ui base:0x7F180000 size:0x{len(padded):08X} exec:0x7F180000 -a"
        assert cmd(ser, "ls").decode().splitlines()[-1] == line
        rec = dev.flash.read(0x19FFCC, 52)  # the last 52 bytes of the last block
        assert struct.unpack_from("<5I", rec) == (
            9,
            0x7F180000,
            len(padded),
            0x7F180000,
            0x7F180000,
        )
        assert rec[20:36] == b"new ui".ljust(16, b"\0")
        assert rec[40:44] == b"\x9f\xff\xff\xa0" and rec[44] == 0x01
        assert cmd(ser, "chk") == b"Image check finished. 0 checksum error found.\r\n"
        assert cmd(ser, "del 9") == b"Deleting Image 9 ...\r\n.."
        assert b"Image: 9" not in cmd(ser, "ls")
        assert dev.flash.read(0x180000, 0x20000) == b"\xff" * 0x20000


def test_fx_refusals_leave_flash_alone():
    with shell() as (dev, ser):
        before = dev.flash.snapshot()
        assert cmd(ser, "fx 9 x 0x7F000000 0x7F000000 -a") == (
            b"ERROR: Data corrupted, please check the free space of flash.\r\n"
        )
        assert cmd(ser, "del b0") == b""  # DelBlock(0) refuses the loader's block
        assert cmd(ser, "fx 9 x 7F1F0000 0x8000 -a") == b"ERROR: Invalid parameters!\r\n"
        assert cmd(ser, "fx 9 x 0x7F1F0000 0x8000 -q").startswith(b"Usage: FX [ImageNo.]")
        assert cmd(ser, "fx 9 x 0x7F1F0000 0x8000").startswith(b"Usage: FX [ImageNo.]")
        # one block at 0x7F170000 would run into the webui image at 0x7F180000
        assert cmd(ser, "fx 9 big 0x7F170000 0x7F170000 -a") == (
            b"ERROR: Data corrupted, please check the free space of flash.\r\n"
        )
        assert dev.flash.snapshot() == before
        assert dev.flash.stats.sectors_erased == 0


def test_del_block_and_corrupted_records():
    with shell() as (dev, ser):
        assert cmd(ser, "del b31") == b""
        assert dev.flash.stats.erase_counts[31] == 1
        assert cmd(ser, "del bx") == b"ERROR: Invalid block number\r\n"
        # one flipped bit in linux's footer: the image is gone from ls
        off = 0x0DFFCC + 21
        dev.flash.load(off, bytes([dev.flash.read(off, 1)[0] ^ 0x02]))
        assert cmd(ser, "ls") == crlf("\n".join(SEED_LS.splitlines()[i] for i in (0, 2, 3)) + "\n")
        # a flipped data byte in romfs: still listed, but CHK finds it
        dev.flash.load(0xE1000, bytes([dev.flash.read(0xE1000, 1)[0] ^ 0x80]))
        assert cmd(ser, "chk") == crlf(
            "ERROR: Image 6 checksum error found !\nImage check finished. 1 checksum error found.\n"
        )


def test_mx_downloads_to_ram():
    a = os.urandom(300)
    with shell() as (dev, ser):
        ser.write(b"mx 0x600000\r")
        read_for(ser, b"Press Ctrl-x to cancel ... \r\nC")
        ser.reset_input_buffer()  # queued C's would be taken for answers to block 1
        assert xmodem_sender(ser, "xmodem").send(io.BytesIO(a), retry=4)
        # (a leading ACK: the loader's stray first ACK put the sender one ACK ahead)
        assert read_for(ser, PROMPT).endswith(b"\r\nDownload successed!\r\n" + PROMPT)
        assert dev.ram.read(0x600000, 300) == a
        assert cmd(ser, "mx 600000") == b"Invalid hex address (600000)\r\n"


# -- configuration, baud, help --------------------------------------------------------


def test_set_is_stored_in_boot_info_and_survives_power_cycle(tmp_path):
    path = tmp_path / "flash.bin"
    with shell(flash_path=path) as (dev, ser):
        out = cmd(ser, "set -mac 00:11:22:AA:BB:CC -ip 192.168.1.9 -usb 0")
        assert b"MAC Address         : 00:11:22:AA:BB:CC\r\n" in out
        assert dev.flash.read(0x10008, 6) == bytes.fromhex("001122aabbcc")
        assert dev.flash.read(0x10010, 4) == bytes([192, 168, 1, 9])
        assert cmd(ser, "set -dhcp 2") == b"ERROR: Invalid parameter '2'\r\n"
    with board(flash_path=path) as (_dev, ser):
        banner = enter_shell(ser)
        assert b"MAC Address         : 00:11:22:AA:BB:CC\r\n" in banner
        assert b"IP Address          : 192.168.1.9\r\n" in banner
        assert b"USB Interface       : Disabled\r\n" in banner
        assert cmd(ser, "ls").startswith(
            b"Image: 0 name:BOOT INFO base:0x7F010000 size:0x00000048 exec:0x7F010000 -f\r\n"
        )


def test_help_and_usage_for_every_command_and_unknown_command():
    with shell() as (_dev, ser):
        listing = cmd(ser, "h").decode()
        assert listing.startswith("\r\nW90P745 Command Shell v1.0 Rebuilt on Dec 10 2009")
        for name in ("H", "B", "D", "E", "G", "MX", "MT", "FT", "FX", "CP", "LS", "SET", "CHK"):
            assert f"\r\n{name:<9}" in listing
        assert "FX       Program the flash by Xmodem. FX -? for help\r\n" in listing
        for c in COMMANDS:
            out = cmd(ser, f"{c.name.lower()} -?").decode()
            assert out.lower().startswith("usage: ") or out.startswith("Invalid number"), (
                c.name,
                out,
            )
        assert cmd(ser, "frobnicate 1 2") == b"ERROR: unrecognised command\r\n"
        ser.write(b"\r")  # an empty line: just the prompt again
        assert read_until(ser, PROMPT) == PROMPT


def test_g_into_the_unzipped_kernel_boots_it():
    with shell() as (_dev, ser):
        assert cmd(ser, "unzip 7") == b"Unzip image 7 ...\r\nImage 7 unzipped to 0x00008000\r\n"
        ser.write(b"g 0x8000\r")
        out = read_for(ser, b"Freeing init memory: 40K\r\n")
        assert b"Linux version 2.4.20-uc0" in out


# -- robustness -----------------------------------------------------------------------

# the loader's line editor (NU_parse): CR/LF end a line, BS edits, ESC takes the next byte
_EDITING = {0x08, 0x0A, 0x0D, 0x1B}


def test_binary_noise_and_long_lines_do_not_crash_the_loader():
    safe_words = [
        "d",
        "ls",
        "set",
        "del",
        "chk",
        "cp",
        "mset",
        "h",
        "cache",
        "term",
        "xyz",
        "unzip",
    ]
    noise = st.binary(max_size=600).map(lambda b: bytes(x for x in b if x not in _EDITING))
    with shell() as (dev, ser):
        counter = iter(range(1_000_000))

        @settings(
            max_examples=100,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(
            raw=noise,
            word=st.sampled_from(safe_words),
            args=st.lists(noise.map(lambda b: b[:40]), max_size=3),
        )
        def feed(raw: bytes, word: str, args: list[bytes]) -> None:
            ser.write(raw + b"\r")  # binary lines (the 80th byte runs one), then run
            ser.write(word.encode() + b" " + b" ".join(args) + b"\r")
            addr = 0x700000 + 0x1000 * next(counter)
            ser.write(f"d 0x{addr:X}\r".encode())
            marker = f"Displaying memory at 0x{addr:X}\r\n".encode()
            buf = bytearray()
            deadline = time.monotonic() + 10
            while marker not in buf or PROMPT not in buf[buf.index(marker) :]:
                assert time.monotonic() < deadline, bytes(buf[-300:])
                buf += ser.read(max(1, ser.in_waiting))
            assert dev.crash is None, dev.crash_text

        feed()
        assert dev.alive and dev.crash is None
