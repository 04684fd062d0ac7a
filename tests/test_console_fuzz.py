"""Arbitrary bytes on every console: what the emulator tests do not already fuzz.

Already covered elsewhere: U-Boot noise abandoned with Ctrl-C (test_emu_hi3511),
the W90P745 loader's command line with noise arguments (test_emu_w90p745), the
XR872 ROM parser not crashing on garbage frames (test_emu_xr872). Here:

* U-Boot lines that are *executed*: random bytes, overlong lines, control
  characters, noise arguments to real commands;
* the Hi3511's Linux root shell after boot;
* the XR872 firmware's login prompt, password prompt and shell;
* the XR872 ROM answering any frame with the error code its contract gives
  (docs/xr872-emulator.md, "Order of checks"), and still answering afterwards;
* the W90P745 Xmodem receiver fed noise: it gives up cleanly and writes nothing.

Every test asserts ``dev.crash is None`` and that the console still answers.
"""

from __future__ import annotations

import itertools
import re
import struct
import time
from collections.abc import Iterator

import pytest
import serial
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from emulators.hi3511 import Hi3511Device
from emulators.hi3511.shell import find_cmd, split_commands
from emulators.hi3511.uboot import TABLE
from emulators.w90p745 import W90P745Device
from emulators.xr872 import XR872Device
from harness.firmware.hi3511 import vendor_flash
from harness.lab.console import ConsoleClient as Term
from harness.lab.console import attach

FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
EDITING = {0x00, 0x03, 0x08, 0x0A, 0x0D, 0x15, 0x17, 0x7F}  # readline acts on these
noise = st.binary(max_size=400).map(lambda b: bytes(x for x in b if x not in EDITING))

# -- Hi3511: U-Boot -------------------------------------------------------------------------

UBOOT = "hilinux # "
# commands that boot, hang, wait on the network or scale with their arguments: the
# random-line test keeps away from them (noise arguments to some of them are fuzzed below)
UBOOT_AWAY = {
    "go", "loop", "mtest", "reset", "bootm", "bootp", "dhcp", "loadb", "tftp", "rarpboot",
    "ping", "md", "mw", "cp", "cmp", "crc32", "erase", "protect", "saveenv", "mm", "nm",
}  # fmt: skip


def _uboot_words(line: bytes) -> list[str]:
    """The commands U-Boot would run for ``line`` (as typed, after its line editing)."""
    text = line[:254].decode("latin-1")  # CFG_CBSIZE: the rest is refused with a bell
    out = []
    for part in split_commands(text):
        words = [w for w in re.split(r"[ \t]+", part) if w]
        if words:
            cmd = find_cmd(TABLE, words[0])
            out.append(cmd.name if cmd else "")
    return out


@pytest.fixture(scope="module")
def uboot() -> Iterator[tuple[Hi3511Device, Term]]:
    # upstream's CFG_CBSIZE 256 is what the overlong-line test counts bells against
    dev = Hi3511Device(initial_flash=vendor_flash("A", uboot="upstream"), uboot_variant="upstream")
    try:
        term = attach(dev)
        yield dev, term
        term.close()
    finally:
        dev.close()


_ALIVE = itertools.count()


def _alive(term: Term, prompt: str) -> None:
    """Ctrl-C, then a uniquely numbered ``echo``: its echo, its output and the prompt must
    follow each other exactly. The number makes output of the noise (or of an earlier
    check) unable to stand in for the answer, however the output is split in time."""
    n = next(_ALIVE)
    term.write(f"\x03echo alive-{n}\r".encode())
    # U-Boot echoes Enter as \r\r\n (its serial driver turns \n into \r\n)
    term.read_until(
        re.escape(f"echo alive-{n}") + r"\r*\n" + re.escape(f"alive-{n}\r\n{prompt}"),
        timeout=10,
    )


def _alive_uboot(dev: Hi3511Device, term: Term) -> None:
    _alive(term, UBOOT)
    assert dev.crash is None, dev.crash_text


@FUZZ
@given(line=noise)
def test_u_boot_runs_random_lines_without_crashing(uboot, line):
    dev, term = uboot
    assume(b"bootcmd" not in line and b"$" not in line)
    assume(not set(_uboot_words(line)) & UBOOT_AWAY)
    term.write(line + b"\r")
    _alive_uboot(dev, term)


@FUZZ
@given(
    word=st.sampled_from(["printenv", "setenv", "echo", "help", "version", "bdinfo", "base", "?"]),
    args=st.lists(noise.map(lambda b: b.replace(b";", b"").replace(b"$", b"")[:60]), max_size=4),
)
def test_u_boot_commands_with_noise_arguments(uboot, word, args):
    dev, term = uboot
    assume(not any(a.startswith(b"bootcmd") or a.startswith(b"ethaddr") for a in args))
    term.write(word.encode() + b" " + b" ".join(args) + b"\r")
    _alive_uboot(dev, term)


@FUZZ
@given(
    word=st.sampled_from(["md", "md.b", "md.w", "crc32", "cmp", "mw", "cp.b", "base", "mm", "nm"]),
    args=st.lists(st.text("0123456789abcdefxX.-+ghz", min_size=1, max_size=4), max_size=4),
)
def test_u_boot_memory_commands_with_odd_numbers(uboot, word, args):
    """Short arguments keep the work bounded (md 0xffff at most): what counts is the
    parser meeting '0x', signs, dots and letters."""
    dev, term = uboot
    term.write(f"{word} {' '.join(args)}\r".encode())
    _alive_uboot(dev, term)


def test_u_boot_overlong_lines_and_every_control_character(uboot):
    dev, term = uboot
    for length in (253, 254, 255, 256, 300, 1000, 5000):
        term.write(b"echo " + b"x" * length + b"\r")
        out = term.read_until(UBOOT, timeout=10)
        assert out.count(b"\x07") == max(0, 5 + length - 254)  # one bell per refused byte
        term.buf = b""
    for c in range(0x20):
        if c in (0x03, 0x0A, 0x0D):
            continue
        term.write(b"echo a" + bytes([c]) + b"b\r")
        term.read_until(UBOOT, timeout=10)
        term.buf = b""
    _alive_uboot(dev, term)


# -- Hi3511: the Linux root shell --------------------------------------------------------------


@pytest.fixture(scope="module")
def linux() -> Iterator[tuple[Hi3511Device, Term]]:
    dev = Hi3511Device(initial_flash=vendor_flash("A"))
    try:
        term = attach(dev, interrupt=None)  # let it boot
        term.read_until(r"(?:^|\n)# $", timeout=30)
        yield dev, term
        term.close()
    finally:
        dev.close()


@FUZZ
@given(line=noise)
def test_the_linux_shell_takes_any_line(linux, line):
    dev, term = linux
    words = line.split()
    assume(not words or words[0] != b"reboot")
    term.write(line + b"\r")
    _alive(term, "# ")
    assert dev.crash is None, dev.crash_text


# -- XR872: the firmware console -------------------------------------------------------------


@pytest.fixture(scope="module")
def xf16() -> Iterator[tuple[XR872Device, Term]]:
    dev = XR872Device(seed=5)
    try:
        term = attach(dev, interrupt=None)
        term.read_until(r"in use\s+: [0-9a-f:]{17}\r\n=+\r\n\r\n", timeout=10)
        yield dev, term
        term.close()
    finally:
        dev.close()


def _alive_xf16(dev: XR872Device, term: Term) -> None:
    """The SDK console (no login): Ctrl-C drops a half line, then ``help`` answers."""
    term.write(b"\x03")
    term.read_for(0.2)  # whatever a multi-line noise still prints
    assert "[*] upgrade" in term.cmd("help", prompt="$ ")
    assert dev.crash is None, dev.crash_text
    assert dev.mode == "firmware"


XF16_FUZZ = settings(FUZZ, max_examples=12)


@XF16_FUZZ
@given(line=noise)
def test_the_xf16_shell_takes_any_line(xf16, line):
    dev, term = xf16
    # a line that ends in upgrade or reboot (after a dropped prefix) would reset the unit
    assume(not any(w in line for w in (b"reboot", b"upgrade")))
    term.buf = b""
    term.write(line + b"\r")
    term.read_until(r"\$ $", timeout=10)
    _alive_xf16(dev, term)


# -- XR872: the boot ROM's error codes --------------------------------------------------------
# The frame codec below is written from docs/xr872-emulator.md ("The BROM wire
# contract"), independently of the emulator's parser.

ERROR, ACK, CHECK = 0x01, 0x02, 0x04
UNKNOWNCMD, CHECKSUM, INVALID, NOMEM = 1, 3, 4, 5
FIELDS = {  # command id -> widths of the fields after the id byte
    0: (4,), 1: (4, 1), 2: (4,), 3: (4, 2), 4: (4,), 5: (4, 4), 6: (4,), 7: (4, 8),
    8: (4, 4), 9: (4, 4, 2), 16: (4,), 17: (1,), 18: (), 19: (4,), 20: (1,),
    23: (), 24: (), 25: (1, 4), 26: (4, 4), 27: (4, 4, 2),
}  # fmt: skip
LE_VALUE = {1, 3, 5, 7}  # MEMRW writes: the value is little-endian on the wire


def checksum16(buf: bytes) -> int:
    if len(buf) % 2:
        buf += b"\0"
    return sum(struct.unpack(f"<{len(buf) // 2}H", buf)) & 0xFFFF


def brom_frame(flags: int, payload_wire: bytes, payload_pre: bytes, *, good_sum: bool) -> bytes:
    """A request: ``payload_wire`` as sent, ``payload_pre`` as it is summed."""
    n = len(payload_wire)
    pre = b"BROM" + bytes([flags, 0]) + b"\0\0" + struct.pack("<I", n) + payload_pre
    s = ~checksum16(pre) & 0xFFFF
    if not good_sum:
        s ^= 0x0101
    return b"BROM" + bytes([flags, 0]) + struct.pack(">HI", s, n) + payload_wire


def brom_response(flags: int, payload: bytes) -> bytes:
    """What the ROM sends (version 2, a correct checksum)."""
    n = len(payload)
    pre = b"BROM" + bytes([flags, 2]) + b"\0\0" + struct.pack("<I", n) + payload
    s = ~checksum16(pre) & 0xFFFF
    return b"BROM" + bytes([flags, 2]) + struct.pack(">HI", s, n) + payload


@st.composite
def bad_requests(draw) -> tuple[bytes, int, int]:
    """(frame, expected error code, the CHECK flag it was sent with)."""
    check = draw(st.sampled_from([0, CHECK]))
    kind = draw(st.sampled_from(["unknown", "empty", "too_long", "wrong_length", "bad_sum"]))
    if kind == "empty":
        return brom_frame(check, b"", b"", good_sum=True), INVALID, check
    if kind == "too_long":  # answered at once; the payload is never read
        n = draw(st.integers(65, 0xFFFFFFFF))
        hdr = b"BROM" + bytes([check, 0]) + struct.pack(">HI", 0, n)
        return hdr, NOMEM, check
    if kind == "unknown":
        cmd = draw(st.integers(0, 255).filter(lambda c: c not in FIELDS))
        rest = draw(st.binary(max_size=20))
        body = bytes([cmd]) + rest
        return (
            brom_frame(check, body, body, good_sum=draw(st.booleans())),
            UNKNOWNCMD,
            check,
        )
    cmd = draw(st.sampled_from(sorted(FIELDS)))
    need = sum(FIELDS[cmd])
    if kind == "wrong_length":
        # (an ERASE of 1 byte, mode 0, is the chip erase: a valid length)
        n = draw(st.integers(0, 40).filter(lambda k: k != need and not (cmd == 25 and k == 1)))
        body = bytes([cmd]) + draw(st.binary(min_size=n, max_size=n))
        return brom_frame(check, body, body, good_sum=True), INVALID, check
    # right length, CHECK, wrong checksum
    wire = [draw(st.integers(0, (1 << (8 * w)) - 1)) for w in FIELDS[cmd]]
    body_wire = bytes([cmd]) + b"".join(
        v.to_bytes(w, "little" if cmd in LE_VALUE and i else "big")
        for i, (v, w) in enumerate(zip(wire, FIELDS[cmd], strict=True))
    )
    body_pre = bytes([cmd]) + b"".join(
        v.to_bytes(w, "little") for v, w in zip(wire, FIELDS[cmd], strict=True)
    )
    return brom_frame(CHECK, body_wire, body_pre, good_sum=False), CHECKSUM, CHECK


@pytest.fixture(scope="module")
def rom() -> Iterator[tuple[XR872Device, serial.Serial]]:
    dev = XR872Device(boot_pins=True, rom_fast_timeout=0.05)
    ser = serial.Serial(dev.path, 115200, timeout=0.02)
    dev.power_on()
    ser.write(b"\x55")
    assert _read(ser, 2) == b"OK"
    yield dev, ser
    ser.close()
    dev.close()


def _read(ser: serial.Serial, n: int, timeout: float = 3.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += ser.read(n - len(out))
    return out


GETINFO = brom_frame(CHECK, b"\x18", b"\x18", good_sum=True)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    junk=st.binary(max_size=30).filter(lambda b: b"B" not in b and b"\x55" not in b),
    req=bad_requests(),
)
def test_the_rom_answers_every_bad_frame_with_its_error_code(rom, junk, req):
    dev, ser = rom
    frame, code, check = req
    ser.reset_input_buffer()
    ser.write(junk + frame)  # bytes before a magic are skipped silently
    want = brom_response(ERROR | check, bytes([code]))
    got = _read(ser, len(want))
    assert got == want, (frame.hex(" "), got.hex(" "))
    ser.write(GETINFO)  # and the ROM still answers a good frame
    assert _read(ser, 15) == brom_response(ACK | CHECK, bytes([0xC7, 0x40, 0x14]))
    assert ser.read(64) == b""  # exactly one answer each
    assert dev.crash is None, dev.crash_text


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stream=st.binary(max_size=300))
def test_the_rom_survives_any_byte_stream_and_resyncs(rom, stream):
    dev, ser = rom
    ser.write(stream)
    time.sleep(0.06)  # let a frame that the stream started run into the byte timeout
    while ser.read(4096):
        pass
    # a stream may have been a SETUART or a SETPC: reset the unit when it stopped answering
    ser.write(b"\x55")
    if _read(ser, 2, 0.5)[-2:] != b"OK":
        dev.power_cycle()
        ser.baudrate = 115200
        ser.reset_input_buffer()
        ser.write(b"\x55")
        assert _read(ser, 2) == b"OK"
    ser.write(GETINFO)
    assert _read(ser, 15) == brom_response(ACK | CHECK, bytes([0xC7, 0x40, 0x14]))
    assert dev.crash is None, dev.crash_text


# -- W90P745: the Xmodem receiver fed noise -----------------------------------------------------

W90 = b"bootloader > "


@pytest.fixture(scope="module")
def loader() -> Iterator[tuple[W90P745Device, Term]]:
    dev = W90P745Device()
    try:
        term = Term(dev.path)  # open first, then power on (pyserial flushes at open)
        dev.power_on()
        term.read_until("Press ESC to enter debug mode")
        term.write(b"\x1b")
        term.read_until(W90)
        yield dev, term
        term.close()
    finally:
        dev.close()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(junk=st.binary(min_size=1, max_size=2000))
def test_fx_fed_noise_gives_up_and_writes_nothing(loader, junk):
    dev, term = loader
    before = dev.flash.snapshot()
    term.write(b"fx 9 junk 0x7F1F0000 0x7F1F0000 -a\r")
    term.read_until(b"C", timeout=10)
    term.write(junk)
    # the sender gives up too: its CANs first complete any block the noise began (the
    # receiver never times out), then cancel; what is left reaches the line editor,
    # which the Enter before ls empties
    term.write(b"\x18" * 140)
    term.read_until(W90, timeout=30)
    # an aborted download must leave the flash as it was (a whole valid transfer
    # cannot hide in random bytes: it would need an EOT after good CRC packets)
    assert dev.flash.snapshot() == before
    term.write(b"\rls -al\r")  # the loader still answers
    term.read_until(r"name:webui[^\n]*\n", timeout=10)
    term.read_until(W90, timeout=10)
    assert dev.crash is None, dev.crash_text
