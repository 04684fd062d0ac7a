"""The W90P745 model's quirks, each shown on the wire (pyserial on the emulator's pty).

Source of every expectation: the Winbond W90P710 boot loader "WBLv1_1"
(``shell/sh.c``, ``Xmodem/xmodem.c``, ``Src/flash.c``) as summarised in
REFERENCE.md's W90P745 section; lrzsz for the third-party sender.
"""

from __future__ import annotations

import binascii
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import serial

from emulators.w90p745 import W90P745Device
from harness.firmware.w90p745 import flash_with

PROMPT = b"bootloader > "
SOH, STX, EOT, ACK, NAK, CAN = 1, 2, 4, 6, 0x15, 0x18

# image 9: bytes 0x1E..0x81 twice over, so d shows 0x20, 0x7F and 0x80 side by side
PATTERN = bytes(range(0x1E, 0x82)) * 2
FLASH = flash_with([(9, "pat", 0x7F1F0000, PATTERN + b"\0" * (256 - len(PATTERN)), 0, "a")])


@contextmanager
def loader(flash: bytes = FLASH) -> Iterator[tuple[W90P745Device, serial.Serial]]:
    with W90P745Device(seed=3, initial_flash=flash) as dev:
        ser = serial.Serial(dev.path, 115200, timeout=0.05)
        try:
            ser.write(b"\x1b")
            read_until(ser, PROMPT)
            yield dev, ser
        finally:
            ser.close()


def read_until(ser: serial.Serial, token: bytes, timeout: float = 10.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while token not in buf:
        assert time.monotonic() < deadline, f"timeout waiting for {token!r}; got {buf[-300:]!r}"
        buf += ser.read(4096)
    return buf


def run(ser: serial.Serial, line: str) -> bytes:
    ser.write(line.encode() + b"\r")
    out = read_until(ser, PROMPT)
    return out[: out.rindex(PROMPT)]


def page_line(out: bytes, row: int) -> bytes:
    return out.split(b"\r\n")[2 + row]


def test_d_ascii_column_prints_del_raw_and_space_as_dot():
    with loader() as (_dev, ser):
        out = run(ser, "d 0x7F1F0000")
        # bytes 0x1E 0x1F 0x20 0x21 | ... the ASCII column of row 0
        row0 = page_line(out, 0)
        assert row0.startswith(
            b"[7F1F0000] 21201F1E 25242322 - 29282726 2D2C2B2A  ...!\"#$%&'()*+,-"
        )
        assert page_line(out, 5).endswith(b"nopqrstuvwxyz{|}")
        # row 6: 0x7E 0x7F 0x80 0x81 0x1E 0x1F 0x20 0x21 ...: DEL printed as itself
        row6 = page_line(out, 6)
        assert row6.startswith(b"[7F1F0060] 81807F7E 21201F1E")
        assert row6[-16:-8] == b"~\x7f.....!"


def test_d_unaligned_start_prints_blanks_and_needs_0x():
    with loader() as (_dev, ser):
        out = run(ser, "d 0x7F1F0002")
        assert out.split(b"\r\n")[1] == b"Displaying memory at 0x7F1F0002"
        row0 = page_line(out, 0)
        assert row0.startswith(b"[7F1F0000]          25242322 - 29282726 2D2C2B2A  ")
        assert row0[-16:] == b"  .!\"#$%&'()*+,-"
        # no 0x: the word is ignored and d continues after the last page
        out = run(ser, "d 7F1F0000")
        assert out.split(b"\r\n")[1] == b"Displaying memory at 0x7F1F0100"
        out = run(ser, "d")
        assert out.split(b"\r\n")[1] == b"Displaying memory at 0x7F1F0200"


def test_unknown_command_and_the_80_character_line():
    with loader() as (_dev, ser):
        assert run(ser, "dump").endswith(b"dump\r\nERROR: unrecognised command\r\n\r\n")
        ser.write(b"x" * 85)  # the 80th byte ends the line without a line end
        out = read_until(ser, b"ERROR: unrecognised command\r\n\r\n" + PROMPT + b"xxxxx")
        assert out.startswith(b"x" * 80 + b"ERROR: unrecognised command")


def test_backspace_redraws_the_line():
    with loader() as (_dev, ser):
        ser.write(b"lsx\b")
        out = read_until(ser, b" \b")
        assert out.endswith(b"lsx\r" + PROMPT + b"ls \b")


def test_fx_asks_then_deletes_the_old_image_before_receiving():
    with loader() as (dev, ser):
        ser.write(b"fx 9 pat 0x7F1F0000 0x00000000 -a\r")
        out = read_until(ser, b"[y/N]\r\n")
        assert out.endswith(b"Find image 9 existed!\r\nDo you want to delete it?[y/N]\r\n")
        ser.write(b"y")
        out = read_until(ser, b"Press Ctrl-x to cancel ... \r\n")
        assert b"Deleting image 9 ...\r\n." in out
        assert b"Waiting for download\r\nPress Ctrl-x to cancel ... \r\n" in out
        # nothing sent yet, and the old image is already gone
        assert dev.flash.read(0x1F0000, 0x10000) == b"\xff" * 0x10000
        ser.write(bytes([CAN]))
        assert read_until(ser, PROMPT).find(b"\r\nDownload error!\r\n") >= 0
        assert b"name:pat" not in run(ser, "ls")


def test_fx_answered_no_keeps_the_image():
    with loader() as (dev, ser):
        ser.write(b"fx 9 pat 0x7F1F0000 0x00000000 -a\r")
        read_until(ser, b"[y/N]\r\n")
        ser.write(b"n")
        read_until(ser, PROMPT)
        assert b"name:pat" in run(ser, "ls")


def test_del_strings():
    with loader() as (_dev, ser):
        assert b"ERROR: Image 5 is not existed\r\n" in run(ser, "del 5")
        assert b"Deleting Image 9 ...\r\n." in run(ser, "del 9")


def block(n: int, payload: bytes, *, crc: int | None = None, comp: int | None = None) -> bytes:
    c = binascii.crc_hqx(payload, 0) if crc is None else crc
    return (
        bytes([SOH, n & 0xFF, (0xFF - n) & 0xFF if comp is None else comp])
        + payload
        + c.to_bytes(2, "big")
    )


def start_receiver(ser: serial.Serial, number: int = 10) -> None:
    ser.write(f"fx {number} t 0x7F1A0000 0x7F1A0000 -a\r".encode())
    read_until(ser, b"Press Ctrl-x to cancel ... \r\n")
    read_until(ser, b"C")


def replies(ser: serial.Serial, n: int, timeout: float = 3.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += ser.read(n - len(got))
    return got


def test_receiver_c_until_the_first_block_then_stray_ack_and_ack():
    with loader() as (_dev, ser):
        start_receiver(ser)
        assert replies(ser, 2, timeout=30) == b"CC"  # C repeats while nobody sends
        ser.write(block(1, bytes(128)))
        got = replies(ser, 2)
        while got[:1] == b"C":  # one more C went out before the block arrived
            got = got[1:] + replies(ser, 1)
        assert got == bytes([ACK, ACK])  # the stray ACK, then the block's
        ser.write(block(2, bytes(128)))  # at once: a short gap
        assert replies(ser, 1) == bytes([ACK])
        time.sleep(1.5)  # a pause (fast mode: longer than the last gap + 1 s)
        assert ser.read(100) == b""  # no more C once a block came
        ser.write(bytes([EOT]))
        # the stray ACK after the pause, then EOT's, at once
        assert replies(ser, 2) == bytes([ACK, ACK])
        out = read_until(ser, PROMPT)
        assert b"\r\nFlash programming ...  \r\n" in out


def test_receiver_never_times_out():
    with loader() as (dev, ser):
        start_receiver(ser)
        time.sleep(3.0)  # far longer than any sender's patience in fast mode
        assert ser.read(100).count(b"C") >= 8  # still asking
        ser.write(block(1, b"Z" * 128))
        assert replies(ser, 2) == bytes([ACK, ACK])
        ser.write(bytes([EOT]))
        read_until(ser, PROMPT)
        assert dev.flash.read(0x1A0000, 128) == b"Z" * 128


def test_receiver_cancels_a_repeated_block_with_five_can():
    with loader() as (_dev, ser):
        start_receiver(ser)
        ser.write(block(1, bytes(128)))
        assert replies(ser, 2) == bytes([ACK, ACK])
        ser.write(block(1, bytes(128)))  # a retransmission after a lost ACK
        assert replies(ser, 5) == bytes([CAN] * 5)
        assert b"\r\nDownload error!\r\n" in read_until(ser, PROMPT)


def test_receiver_cancels_a_bad_complement():
    with loader() as (_dev, ser):
        start_receiver(ser)
        ser.write(block(1, bytes(128), comp=0x00))
        got = replies(ser, 6)
        assert got.endswith(bytes([CAN] * 5))


def test_crc_error_naks_and_the_resent_block_lands_128_bytes_later():
    with loader() as (dev, ser):
        start_receiver(ser)
        a, b = b"A" * 128, b"B" * 128
        ser.write(block(1, a))
        assert replies(ser, 2) == bytes([ACK, ACK])
        ser.write(block(2, b, crc=0))  # damaged on the line
        assert replies(ser, 1) == bytes([NAK])
        ser.write(block(2, b))  # the sender resends block 2
        assert replies(ser, 1) == bytes([ACK])
        ser.write(bytes([EOT]))
        assert replies(ser, 1) == bytes([ACK])
        read_until(ser, PROMPT)
        line = [x for x in run(ser, "ls").split(b"\r\n") if b"name:t " in x][0]
        assert b"size:0x00000180" in line  # three blocks for two sent
        assert dev.flash.read(0x1A0000, 384) == a + b + b


def test_a_1k_block_is_loose_bytes_and_ends_in_a_cancel():
    with loader() as (_dev, ser):
        start_receiver(ser)
        data = bytes(range(256)) * 4
        ser.write(bytes([STX, 1, 0xFE]) + data + binascii.crc_hqx(data, 0).to_bytes(2, "big"))
        got = replies(ser, 6)
        assert got == bytes([ACK] + [CAN] * 5)  # stray ACK, then block "0xFE" is wrong
        assert b"Download error!" in read_until(ser, PROMPT)


def test_b_switches_at_once_without_an_answer_and_reset_returns_to_115200():
    with loader() as (dev, ser):
        assert b"Unsupported speed.\r\n" in run(ser, "B 12345")
        assert b"Invalid number - fast\r\n" in run(ser, "B fast")
        ser.write(b"B 460800\r")
        out = read_until(ser, b"B 460800\r\n", timeout=3)
        assert PROMPT not in out  # the echo, then the prompt at 460800: unreadable here
        ser.baudrate = 460800
        time.sleep(0.1)
        ser.reset_input_buffer()
        ser.write(b"\r")
        assert read_until(ser, PROMPT).endswith(b"\r\n" + PROMPT)
        assert dev.uart.baud == 460800
        ser.baudrate = 115200
        dev.power_cycle()
        ser.write(b"\x1b")
        read_until(ser, PROMPT)
        assert dev.uart.baud == 115200


needs_sx = pytest.mark.skipif(shutil.which("sx") is None, reason="lrzsz sx is not installed")


def run_sx(
    dev: W90P745Device, tmp_path, opts: list[str], payload: bytes
) -> subprocess.CompletedProcess:
    (tmp_path / "image.bin").write_bytes(payload)
    fd = os.open(dev.path, os.O_RDWR | os.O_NOCTTY)
    try:
        # current Debian lrzsz refuses absolute names as root ("Security Violation")
        return subprocess.run(
            ["sx", *opts, "image.bin"],
            stdin=fd,
            stdout=fd,
            stderr=subprocess.PIPE,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        os.close(fd)


@needs_sx
def test_lrzsz_sx_128_gets_through(tmp_path):
    payload = os.urandom(20000)
    with loader() as (dev, ser):
        start_receiver(ser)
        proc = run_sx(dev, tmp_path, [], payload)
        assert proc.returncode == 0, proc.stderr
        ser.write(b"\r")
        read_until(ser, PROMPT)
        time.sleep(0.2)
        ser.reset_input_buffer()
        padded = payload + b"\x1a" * (-len(payload) % 128)
        assert f"size:0x{len(padded):08X}".encode() in run(ser, "ls")
        assert dev.flash.read(0x1A0000, len(padded)) == padded


@needs_sx
def test_lrzsz_sx_1k_fails_as_on_the_camera(tmp_path):
    payload = os.urandom(20000)
    with loader() as (dev, ser):
        start_receiver(ser)
        proc = run_sx(dev, tmp_path, ["-k"], payload)
        assert proc.returncode != 0
        ser.write(b"\r")
        read_until(ser, PROMPT)
        time.sleep(0.2)
        ser.reset_input_buffer()
        assert b"name:t " not in run(ser, "ls")
        assert dev.flash.read(0x1A0000, 16) == b"\xff" * 16


def test_mx_without_an_address_asks_for_one():
    with loader() as (dev, ser):
        ser.write(b"mx\r")
        read_until(ser, b"Please enter destination address (0x8000):")
        ser.write(b"400\r")  # not 0x hex: the default
        out = read_until(ser, b"Press Ctrl-x to cancel ... \r\n")
        assert b"400\r\nImage load address default to 0x00008000\r\nWaiting for download" in out
        read_until(ser, b"C")
        ser.write(block(1, b"M" * 128))
        assert replies(ser, 2) == bytes([ACK, ACK])
        ser.write(bytes([EOT]))
        assert b"\r\nDownload successed!\r\n" in read_until(ser, PROMPT)
        assert dev.ram.read(0x8000, 128) == b"M" * 128
