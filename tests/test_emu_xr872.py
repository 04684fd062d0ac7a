"""The XR872 emulator driven over its pty with pyserial.

The frame builder and response reader here are the test's own, written from
docs/xr872-emulator.md; they do not import the emulator's codec.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.xr872 import XR872Device
from emulators.xr872.board import factory_flash_image
from emulators.xr872.image import factory_image

# -- test-side protocol codec ------------------------------------------------------

CHECK = 0x04
ACK = 0x02
ERROR = 0x01
UNKNOWNCMD, TIMEOUT, CHECKSUM, INVALID, NOMEM = 1, 2, 3, 4, 5

# command id -> field widths after the id (big-endian on the wire)
FIELDS = {
    0: (4,),
    1: (4, 1),
    2: (4,),
    3: (4, 2),
    4: (4,),
    5: (4, 4),
    6: (4,),
    7: (4, 8),
    8: (4, 4),
    9: (4, 4, 2),
    16: (4,),
    17: (1,),
    18: (),
    19: (4,),
    20: (1,),
    24: (),
    25: (1, 4),
    26: (4, 4),
    27: (4, 4, 2),
}
SRAM = 0x00200000
JEDEC = b"\xc7\x40\x14"  # an id seen on XF16 units
# MEMRW values go little-endian on the wire (BK7231GUIFlashTool WriteLe32)
LE_FIELDS = {1, 3, 5, 7}


def cs16(data: bytes) -> int:
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += data[i] | (data[i + 1] << 8)
    if len(data) % 2:
        total += data[-1]
    return total & 0xFFFF


def frame(cmd: int, *values: int, flags: int = CHECK, corrupt: bool = False) -> bytes:
    """A request: the checksum is the complement of cs16 over the little-endian pre-image."""
    widths = FIELDS.get(cmd, ())
    wire = bytes([cmd]) + b"".join(
        v.to_bytes(w, "little" if (cmd in LE_FIELDS and i == 1) else "big")
        for i, (v, w) in enumerate(zip(values, widths, strict=False))
    )
    pre = bytes([cmd]) + b"".join(
        v.to_bytes(w, "little") for v, w in zip(values, widths, strict=False)
    )
    n = len(wire)
    head_pre = b"BROM" + bytes([flags, 0]) + b"\0\0" + n.to_bytes(4, "little")
    cs = ~cs16(head_pre + pre) & 0xFFFF
    if corrupt:
        cs ^= 0x0100
    return b"BROM" + bytes([flags, 0]) + cs.to_bytes(2, "big") + n.to_bytes(4, "big") + wire


def dcs(data: bytes) -> int:
    return ~cs16(data) & 0xFFFF


def read_n(ser: serial.Serial, n: int, timeout: float = 3.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += ser.read(n - len(out))
    return bytes(out)


def response(ser: serial.Serial, timeout: float = 3.0, value: bool = False) -> tuple[int, bytes]:
    """Read one response: (flags, payload), and verify its checksum over the pre-image
    (``value``: the payload is a MEMRW value, little-endian in the pre-image)."""
    head = read_n(ser, 12, timeout)
    assert head[:4] == b"BROM", head
    flags, ver = head[4], head[5]
    assert ver & 0x0F == 2  # BROM version 2
    cs = int.from_bytes(head[6:8], "big")
    n = int.from_bytes(head[8:12], "big")
    payload = read_n(ser, n, timeout)
    assert len(payload) == n
    pre = b"BROM" + head[4:6] + cs.to_bytes(2, "little") + n.to_bytes(4, "little")
    assert cs16(pre + payload) == 0xFFFF  # MEMRW values are little-endian in both
    return flags, payload


def expect_ack(ser: serial.Serial, value: bool = False) -> bytes:
    flags, payload = response(ser, value=value)
    assert flags & ERROR == 0 and flags & ACK, (flags, payload)
    return payload


def expect_error(ser: serial.Serial, code: int) -> None:
    flags, payload = response(ser)
    assert flags & ERROR and payload == bytes([code]), (flags, payload)


def sync(ser: serial.Serial) -> None:
    ser.write(b"\x55")
    assert read_n(ser, 2) == b"OK"


def silent(ser: serial.Serial, wait: float = 0.3) -> bool:
    ser.timeout = wait
    got = ser.read(64)
    ser.timeout = 0.2
    return got == b""


# -- fixtures ---------------------------------------------------------------------


def open_device(**kw) -> tuple[XR872Device, serial.Serial]:
    """Construct, open the host port, then power on: the host sees everything printed."""
    dev = XR872Device(**kw)
    ser = serial.Serial(dev.path, 115200, timeout=0.2, write_timeout=5)
    dev.power_on()
    return dev, ser


@pytest.fixture
def rom() -> Iterator[tuple[XR872Device, serial.Serial]]:
    dev, ser = open_device(boot_pins=True, rom_fast_timeout=0.05)
    sync(ser)
    yield dev, ser
    ser.close()
    dev.close()
    assert dev.crash is None, dev.crash_text


# -- sync and framing ------------------------------------------------------------------


def test_sync_and_the_captured_phoenixmc_getinfo_frame(rom):
    dev, ser = rom
    # a frame captured from PhoenixMC, CHECK flag set
    ser.write(bytes.fromhex("42524f4d040060510000000118"))
    flags, payload = response(ser)
    assert flags == ACK | CHECK
    assert payload == JEDEC  # 1 << 0x14 = 1 MiB
    # the same request built here
    ser.write(frame(24, flags=CHECK))
    assert response(ser) == (ACK | CHECK, JEDEC)
    assert frame(24) == bytes.fromhex("42524f4d040060510000000118")


def test_nothing_before_sync_and_resync_between_frames():
    dev, ser = open_device(boot_pins=True)
    try:
        ser.write(frame(24))  # unsynced: ignored
        assert silent(ser)
        sync(ser)
        sync(ser)  # 0x55 between frames is answered again
        ser.write(frame(24))
        assert expect_ack(ser) == JEDEC
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


def test_garbage_and_wrong_magic_are_skipped(rom):
    dev, ser = rom
    ser.write(b"\x00\xffBRO\x13BRXMgarbage" + b"BRON" + b"\x00" * 8 + frame(24))
    assert expect_ack(ser) == JEDEC


def test_check_flag_with_a_bad_checksum_is_refused(rom):
    dev, ser = rom
    ser.write(frame(24, corrupt=True))
    expect_error(ser, CHECKSUM)
    ser.write(frame(4, SRAM, corrupt=True))
    expect_error(ser, CHECKSUM)
    # without CHECK the ROM does not look at the checksum
    ser.write(frame(24, flags=0, corrupt=True))
    flags, payload = response(ser)
    assert flags == ACK and payload == JEDEC


def test_a_checksum_over_the_wire_bytes_is_wrong(rom):
    dev, ser = rom
    wire = bytearray(frame(24))
    wire[6:8] = b"\0\0"
    wire[6:8] = (~cs16(bytes(wire)) & 0xFFFF).to_bytes(2, "big")
    assert bytes(wire[6:8]) == b"\x5f\x52"
    ser.write(bytes(wire))
    expect_error(ser, CHECKSUM)


def test_unknown_command(rom):
    dev, ser = rom
    for cmd in (0x15, 0x1C, 0x40, 0xFF):
        ser.write(frame(cmd))
        expect_error(ser, UNKNOWNCMD)


def test_bad_lengths(rom):
    dev, ser = rom
    # READ4 with a 3-byte address
    raw = b"BROM\x00\x00\x00\x00" + (4).to_bytes(4, "big") + b"\x04\x00\x20\x00"
    ser.write(raw)
    expect_error(ser, INVALID)
    ser.write(b"BROM\x00\x00\x00\x00\x00\x00\x00\x00")  # empty payload
    expect_error(ser, INVALID)
    ser.write(b"BROM\x04\x00\x00\x00\x00\x01\x00\x00")  # 64 KiB command: answered at once
    expect_error(ser, NOMEM)


def test_truncated_header_and_payload_time_out(rom):
    dev, ser = rom
    ser.write(frame(24)[:7])
    expect_error(ser, TIMEOUT)
    ser.write(frame(26, 0, 1)[:15])
    expect_error(ser, TIMEOUT)
    ser.write(frame(24))  # and it is still serving
    assert expect_ack(ser) == JEDEC


# -- memory --------------------------------------------------------------------------


def test_memrw_all_widths(rom):
    dev, ser = rom
    for cmd, width, value in (
        (1, 1, 0x5A),
        (3, 2, 0xBEEF),
        (5, 4, 0xDEADBEEF),
        (7, 8, 0x0123456789ABCDEF),
    ):
        addr = SRAM + 0x100 + width * 8
        ser.write(frame(cmd, addr, value))
        assert expect_ack(ser) == b""
        # memory holds it little-endian, as the Cortex-M4 stores it
        assert dev.ram.read(addr, width) == value.to_bytes(width, "little")
        ser.write(frame(cmd - 1, addr))
        # and comes back little-endian on the wire (BK7231GUIFlashTool ReadLe32)
        assert expect_ack(ser) == value.to_bytes(width, "little")


def test_memrw_errors(rom):
    dev, ser = rom
    ser.write(frame(4, SRAM + 2))  # unaligned word
    expect_error(ser, INVALID)
    ser.write(frame(4, 0x40000000))  # not mapped
    expect_error(ser, INVALID)
    ser.write(frame(5, 0x00000100, 1))  # ROM is read-only
    expect_error(ser, INVALID)
    ser.write(frame(4, 0x00000100))  # but readable
    assert len(expect_ack(ser, value=True)) == 4


def test_seq_write_and_read(rom):
    dev, ser = rom
    data = bytes(range(256)) * 5 + b"odd"
    ser.write(frame(9, SRAM + 0x2000, len(data), dcs(data)))
    assert expect_ack(ser) == b""
    ser.write(data)
    assert expect_ack(ser) == b""
    assert dev.ram.read(SRAM + 0x2000, len(data)) == data
    ser.write(frame(8, SRAM + 0x2000, len(data)))
    flags, payload = response(ser)
    assert payload == data


def test_seq_write_errors(rom):
    dev, ser = rom
    before = dev.ram.read(SRAM + 0x3000, 64)
    data = b"\x11" * 64
    ser.write(frame(9, SRAM + 0x3000, 64, dcs(data) ^ 1))
    expect_ack(ser)
    ser.write(data)
    expect_error(ser, CHECKSUM)
    assert dev.ram.read(SRAM + 0x3000, 64) == before
    ser.write(frame(9, SRAM + 0x3000, 64, dcs(data)))
    expect_ack(ser)
    ser.write(data[:10])  # the line stops: data phase times out
    expect_error(ser, TIMEOUT)
    assert dev.ram.read(SRAM + 0x3000, 64) == before
    ser.write(frame(9, 0x00000000, 16, 0))  # no writable memory there: refused before the data
    expect_error(ser, INVALID)
    ser.write(frame(8, SRAM + 0x6FFF0, 0x100))  # runs past the end of SRAM
    expect_error(ser, INVALID)


# -- system commands ------------------------------------------------------------------


def test_setjtag_setckcs(rom):
    dev, ser = rom
    for cmd in (17, 20):
        ser.write(frame(cmd, 1))
        expect_ack(ser)
        ser.write(frame(cmd, 7))
        expect_error(ser, INVALID)


def test_setuart_host_follows(rom):
    dev, ser = rom
    ser.write(frame(16, 921600 | 0x03000000))
    expect_ack(ser)
    ser.baudrate = 921600
    ser.write(frame(24))  # unsynced after SETUART: ignored
    assert silent(ser)
    sync(ser)
    ser.write(frame(26, 0, 8))
    assert expect_ack(ser) == dev.flash.read(0, 4096)
    assert dev.uart.baud == 921600


def test_setuart_host_does_not_follow(rom):
    dev, ser = rom
    ser.write(frame(16, 1500000 | 0x03000000))
    expect_ack(ser)
    for _ in range(3):
        ser.write(b"\x55")
        ser.timeout = 0.2
        assert ser.read(2) != b"OK"
    # the ROM is still there at 1.5 Mbaud
    ser.baudrate = 1500000
    sync(ser)


def test_setuart_invalid(rom):
    dev, ser = rom
    ser.write(frame(16, 0x03000000))  # 0 baud
    expect_error(ser, INVALID)
    ser.write(frame(16, 0x03000000 | 4000000))
    expect_error(ser, INVALID)
    assert dev.uart.baud == 115200


def test_setpc(rom):
    dev, ser = rom
    ser.write(frame(19, 0x30000000))
    expect_error(ser, INVALID)
    ser.write(frame(19, SRAM + 0x1001))
    expect_ack(ser)
    ser.write(b"\x55" + frame(24))  # the CPU runs code we do not model: silence
    assert silent(ser)


def test_reboot_with_boot_pins_stays_in_rom(rom):
    dev, ser = rom
    ser.write(frame(18))
    expect_ack(ser)
    assert silent(ser)
    sync(ser)
    assert dev.mode == "rom" and dev.boots == 2


# -- flash ------------------------------------------------------------------------------


def flash_read(ser: serial.Serial, offset: int, length: int) -> bytes:
    out = bytearray()
    while len(out) < length:
        n = min(32, (length - len(out)) // 512)
        ser.write(frame(26, (offset + len(out)) // 512, n))
        out += expect_ack(ser)
    return bytes(out)


def test_flash_read_is_byte_exact(rom):
    dev, ser = rom
    assert flash_read(ser, 0, 0x10000) == dev.flash.read(0, 0x10000)
    assert flash_read(ser, 0xFF000, 0x1000) == dev.flash.read(0xFF000, 0x1000)


def test_flash_read_errors(rom):
    dev, ser = rom
    ser.write(frame(26, 0, 33))  # 16.5 KiB: more than the ROM's buffer
    expect_error(ser, NOMEM)
    ser.write(frame(26, 2047, 2))  # past the end of the 1 MiB
    expect_error(ser, INVALID)
    ser.write(frame(26, 0, 0))
    expect_error(ser, INVALID)


@pytest.mark.parametrize("mode,addr,size", [(1, 0x23000, 0x1000), (3, 0x30000, 0x10000)])
def test_flash_erase_sizes(rom, mode, addr, size):
    dev, ser = rom
    before = dev.flash.snapshot()
    ser.write(frame(25, mode, addr))
    expect_ack(ser)
    after = dev.flash.snapshot()
    assert after[addr : addr + size] == b"\xff" * size
    assert after[:addr] == before[:addr] and after[addr + size :] == before[addr + size :]


def test_flash_chip_erase_and_erase_errors(rom):
    dev, ser = rom
    ser.write(frame(25, 3, 0x1000))  # 64 KiB erase not on a 64 KiB boundary
    expect_error(ser, INVALID)
    ser.write(frame(25, 9, 0))  # no such erase mode
    expect_error(ser, INVALID)
    for mode in (2, 4):  # no source shows a 32 KiB code; 4 is not the chip erase
        ser.write(frame(25, mode, 0x20000))
        expect_error(ser, INVALID)
    ser.write(frame(25, 1, 0x100000))  # past the end
    expect_error(ser, INVALID)
    ser.write(frame(25, 0, 0))  # chip erase carries no address
    expect_error(ser, INVALID)
    assert dev.flash.read(0, 4) == b"AWIH"
    FIELDS[25] = (1,)
    try:
        ser.write(frame(25, 0))  # mode 0, no address: the whole chip
    finally:
        FIELDS[25] = (1, 4)
    expect_ack(ser)
    assert dev.flash.snapshot() == b"\xff" * (1 << 20)


def flash_write(ser, sector: int, data: bytes, flags: int = CHECK, bad: bool = False) -> None:
    cs = dcs(data) ^ (1 if bad else 0)
    ser.write(frame(27, sector, len(data) // 512, cs, flags=flags))
    expect_ack(ser)
    ser.write(data)


def test_flash_write_after_erase_is_byte_exact(rom):
    dev, ser = rom
    data = bytes((i * 7 + 3) & 0xFF for i in range(0x4000))
    ser.write(frame(25, 1, 0x40000))
    expect_ack(ser)
    ser.write(frame(25, 1, 0x41000))
    expect_ack(ser)
    ser.write(frame(25, 1, 0x42000))
    expect_ack(ser)
    ser.write(frame(25, 1, 0x43000))
    expect_ack(ser)
    flash_write(ser, 0x40000 // 512, data)
    expect_ack(ser)
    assert dev.flash.read(0x40000, 0x4000) == data
    assert flash_read(ser, 0x40000, 0x4000) == data


def test_flash_write_without_erase_ands(rom):
    dev, ser = rom
    ser.write(frame(25, 1, 0x50000))
    expect_ack(ser)
    flash_write(ser, 0x50000 // 512, b"\x55" * 512)
    expect_ack(ser)
    flash_write(ser, 0x50000 // 512, b"\xcc" * 512)  # the ROM does not erase for you
    expect_ack(ser)
    assert dev.flash.read(0x50000, 512) == b"\x44" * 512
    assert dev.flash.stats.lost_bits[0x50] > 0


def test_flash_write_errors(rom):
    dev, ser = rom
    before = dev.flash.read(0x8000, 1024)
    flash_write(ser, 0x8000 // 512, b"\x00" * 1024, bad=True)
    expect_error(ser, CHECKSUM)
    assert dev.flash.read(0x8000, 1024) == before
    # without CHECK the data checksum is not looked at
    flash_write(ser, 0x8000 // 512, b"\x00" * 1024, flags=0, bad=True)
    flags, payload = response(ser)
    assert flags == ACK and dev.flash.read(0x8000, 1024) == b"\x00" * 1024
    ser.write(frame(27, 0, 64, 0))
    expect_error(ser, NOMEM)
    ser.write(frame(27, 0x7FF, 2, 0))
    expect_error(ser, INVALID)
    ser.write(frame(27, 0x100, 1, 0))
    expect_ack(ser)
    ser.write(b"\x00" * 100)  # short data phase
    expect_error(ser, TIMEOUT)


# -- boot paths ----------------------------------------------------------------------------


def read_until(ser: serial.Serial, token: bytes, timeout: float = 3.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while token not in out and time.monotonic() < deadline:
        out += ser.read(max(1, ser.in_waiting))
    assert token in out, bytes(out)
    return bytes(out)


def boot_log(ser: serial.Serial) -> bytes:
    return read_until(ser, b"=" * 68 + b"\r\n\r\n")


def macs(log: bytes) -> tuple[str, str]:
    """The ``efuse:`` and ``in use:`` MACs of a boot log."""
    text = log.decode("latin-1")
    efuse = text.split("    efuse         : ")[1][:17]
    in_use = text.split("    in use        : ")[1][:17]
    return efuse, in_use


def test_valid_image_boots_the_firmware_console():
    dev, ser = open_device(seed=4)
    try:
        log = boot_log(ser)
        assert b"XRADIO Skylark SDK 1.2.1 " in log
        assert b"cpu  clock 240000000 Hz\r\n" in log
        assert b"    XIP           : enable\r\n" in log
        assert b"mac address:\r\n    efuse         : 02:80:72:" in log
        efuse, in_use = macs(log)
        assert in_use == dev.mac_in_use() == dev.sysinfo_mac() and efuse != in_use
        assert b"login" not in log.lower() and not log.endswith(b"$ ")  # no login, no prompt
        ser.write(b"telnetd\r")
        out = read_until(ser, b"$ ")
        assert out.startswith(b"telnetd\r\n")  # echoed
        assert (
            b"[cmd ERR] cmd_exec():51, unknown cmd 'telnetd'\r\n<ACK> 400 Unknown command\r\n"
            b"Use 'help' to list available subcommands\r\n$ "
        ) in out
        ser.write(b"\r")  # an empty line: just the prompt again
        assert read_until(ser, b"$ ") == b"\r\n$ "
        ser.write(b"\x55")  # the firmware is not the ROM: an echoed U
        ser.write(b"\x03help\r")  # Ctrl-C drops the line silently
        out = read_until(ser, b"$ ")
        assert b"OK" not in out.split(b"<ACK>")[0] and b"[*] upgrade\r\n" in out
        assert b"unknown cmd" not in out
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


def test_blind_upgrade_preamble_drops_into_the_rom_and_reboot_boots_again():
    dev, ser = open_device(rom_fast_timeout=0.05)
    try:
        boot_log(ser)
        ser.write(b"\nupgrade\n\x00")  # BK7231GUIFlashTool, no login
        out = read_until(ser, b"<ACK> 200 OK\r\n")
        assert out == b"\r\n$ upgrade\r\n<ACK> 200 OK\r\n"
        assert silent(ser)  # the ROM says nothing
        sync(ser)
        assert dev.mode == "rom"
        ser.write(frame(26, 0, 1))
        assert expect_ack(ser)[:4] == b"AWIH"
        ser.write(frame(18))  # REBOOT into the valid image
        expect_ack(ser)
        boot_log(ser)
        assert dev.mode == "firmware"
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


def test_xr809_image_leaves_the_unit_in_recovery_mode():
    dev = XR872Device()
    dev.flash.load(0, factory_image("xr809"))
    ser = serial.Serial(dev.path, 115200, timeout=0.2)
    dev.power_on()
    try:
        assert silent(ser, 0.5)  # no boot log, no ROM text
        sync(ser)
        assert dev.mode == "rom" and "XR872 SRAM" in dev.last_check.reason
        ser.write(frame(24))
        assert expect_ack(ser) == JEDEC
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


@pytest.mark.parametrize("offset", [0x0000, 0x0008, 0x8100, 0xF5010])
def test_corrupt_image_is_recovery_mode(offset):
    dev = XR872Device()
    byte = dev.flash.read(offset, 1)[0]
    dev.flash.load(offset, bytes([byte ^ 0x10]))  # a header field or data byte
    ser = serial.Serial(dev.path, 115200, timeout=0.2)
    dev.power_on()
    try:
        assert silent(ser, 0.5)
        sync(ser)
        assert dev.mode == "rom"
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


def _write_whole_flash(ser: serial.Serial, image: bytes) -> None:
    for block in range(0, 1 << 20, 0x10000):
        ser.write(frame(25, 3, block))
        expect_ack(ser)
    for off in range(0, 1 << 20, 0x4000):
        chunk = image[off : off + 0x4000]
        if chunk == b"\xff" * len(chunk):
            continue
        flash_write(ser, off // 512, chunk)
        expect_ack(ser)


@pytest.mark.parametrize("source", ["chipid", "flash"])
def test_a_donor_dump_written_whole(source):
    """The seed's story in miniature: a unit bricked by an XR809 image gets a donor's
    whole dump. CHIPID (SDK default): the unit keeps its own MAC; FLASH: the donor's."""
    donor = factory_flash_image(5, source)
    dev = XR872Device(seed=9, rom_fast_timeout=0.05, mac_source=source)
    dev.flash.load(0, factory_image("xr809"))
    ser = serial.Serial(dev.path, 115200, timeout=0.2, write_timeout=5)
    dev.power_on()
    try:
        sync(ser)
        ser.write(frame(16, 921600 | 0x03000000))
        expect_ack(ser)
        ser.baudrate = 921600
        sync(ser)
        _write_whole_flash(ser, donor)
        assert dev.flash.snapshot() == donor
        ser.write(frame(18))
        expect_ack(ser)
        ser.baudrate = 115200
        _, in_use = macs(boot_log(ser))
        own = factory_flash_image(9, source)
        donor_mac = dev.sysinfo_mac()
        assert donor_mac == sysinfo_mac_of(donor) != sysinfo_mac_of(own)
        if source == "flash":
            assert in_use == donor_mac  # the donor's MAC came along
        else:
            assert in_use == sysinfo_mac_of(own)  # recomputed from this chip
        assert dev.flash.snapshot() == donor  # a valid record is not rewritten
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


def sysinfo_mac_of(flash: bytes) -> str:
    """The MAC at +5 of slot 0 of a freshly written FDCM area (header 8, bitmap 3)."""
    area = flash[0xFF000:]
    assert int.from_bytes(area[:4], "little") == 0xA55A5AA5
    assert area[4:8] == (3).to_bytes(2, "little") + (236).to_bytes(2, "little")
    return ":".join(f"{b:02x}" for b in area[11 + 5 : 11 + 11])


@pytest.mark.parametrize("damage", ["blank", "corrupt"])
@pytest.mark.parametrize("source", ["chipid", "flash"])
def test_missing_or_corrupt_sysinfo_is_rebuilt_at_boot(source, damage):
    dev = XR872Device(seed=3, mac_source=source)
    own = dev.sysinfo_mac()
    if damage == "blank":
        dev.flash.erase(0xFF000, 0x1000)
    else:
        dev.flash.load(0xFF000, b"\x00")  # the FDCM id code
    ser = serial.Serial(dev.path, 115200, timeout=0.2)
    dev.power_on()
    try:
        _, in_use = macs(boot_log(ser))
        rebuilt = dev.sysinfo_mac()
        assert rebuilt == in_use  # defaults saved to flash
        area = dev.flash.read(0xFF000, 0x1000)
        assert area[:11] == bytes.fromhex("a55a5aa5 0300 ec00 feffff")  # header, bitmap
        if source == "chipid":
            assert in_use == own  # the same chip gives the same MAC
        else:
            assert in_use != own  # FLASH with nothing to read: a random MAC
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


def test_boot_pins_hold_a_good_unit_in_the_rom():
    dev, ser = open_device(boot_pins=True)
    try:
        assert silent(ser, 0.5)
        sync(ser)
        dev.boot_pins = False  # unstrap, then REBOOT
        ser.write(frame(18))
        expect_ack(ser)
        boot_log(ser)
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


# -- fuzz ----------------------------------------------------------------------------------

_COMMON = sorted(set(FIELDS) - {16, 18, 19})  # SETUART/REBOOT/SETPC end the session
_u32 = st.one_of(
    st.integers(0, 8),
    st.sampled_from([SRAM, SRAM + 0x1000, 0x100, 0x0026FFFC, 0x00270000, 0xFFFFFFFF]),
    st.sampled_from([115200 | 0x03000000, 921600 | 0x03000000, 1 << 24]),
    st.integers(0, 0xFFFFFFFF),
)


def _value(width: int) -> st.SearchStrategy[int]:
    if width == 4:
        return _u32
    return st.integers(0, 6) | st.integers(0, (1 << (8 * width)) - 1)


@st.composite
def _chunks(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "frame", "frame", "frame", "write", "cut", "lie"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    pick = draw(st.integers(0, 19))
    if kind == "write":
        cmd = draw(st.sampled_from([9, 27]))
    elif pick == 0:
        cmd = draw(st.sampled_from([16, 18, 19]))
    elif pick <= 2:
        cmd = draw(st.integers(0, 255))
    else:
        cmd = draw(st.sampled_from(_COMMON))
    widths = FIELDS.get(cmd, (4,))
    values = [draw(_value(w)) for w in widths]
    if cmd in (8, 9, 26, 27):  # small transfers keep the fuzz fast
        values[1] = draw(st.integers(0, 4))
    if cmd in (8, 9) and draw(st.booleans()):
        values[0] = SRAM + draw(st.integers(0, 0x100))
    if cmd == 25 and draw(st.booleans()):  # erase: a real mode at a sector boundary
        values[0] = draw(st.integers(0, 5))
        values[1] = draw(st.integers(0, 0x100)) * 0x1000
    data = b""
    if kind == "write":
        n = values[1] * (512 if cmd == 27 else 1)
        data = draw(st.binary(min_size=n, max_size=n))
        values[2] = dcs(data) ^ draw(st.sampled_from([0, 0, 1]))
    flags = draw(st.sampled_from([0, CHECK]) | st.integers(0, 255))
    raw = frame(cmd, *values, flags=flags, corrupt=draw(st.integers(0, 3)) == 0)
    if kind == "cut":
        return raw[: draw(st.integers(0, len(raw)))]
    if kind == "lie":  # a payload_len that does not match
        return raw[:8] + struct.pack(">I", draw(st.integers(0, 200))) + raw[12:]
    return raw + data


@pytest.fixture(scope="module")
def fuzz_dev() -> Iterator[tuple[XR872Device, serial.Serial]]:
    dev = XR872Device(boot_pins=True, rom_fast_timeout=0.01)
    ser = serial.Serial(dev.path, 115200, timeout=0, write_timeout=5)
    yield dev, ser
    ser.close()
    dev.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(_chunks(), max_size=16))
def test_fuzz_the_rom_parser(fuzz_dev, chunks):
    dev, ser = fuzz_dev
    dev.power_on()
    try:
        ser.reset_input_buffer()
        for chunk in [b"\x55", *chunks]:
            ser.write(chunk)
            ser.read(ser.in_waiting)  # keep the device's output flowing
        deadline = time.monotonic() + 2
        idle = 0
        while idle < 3 and time.monotonic() < deadline:
            ser.read(ser.in_waiting)
            idle = idle + 1 if dev.uart.input_waiting() == 0 else 0
            time.sleep(0.002)
    finally:
        dev.power_off()
        dev.flash.load(0, factory_image())  # undo any fuzzed erase/write
    assert dev.crash is None, dev.crash_text
