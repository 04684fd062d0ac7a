"""The XR872 model driven the way BK7231GUIFlashTool drives a real unit.

The frames are built here as ``XRBaseFlasher.cs`` ``BuildBromPacket`` and
``XRRomFlasherBase.cs`` build them (openshwprojects/BK7231GUIFlashTool): a
pre-image with every field little-endian and the checksum field zero, its
checksum16 complemented, then the wire copy with header fields, addresses and
counts big-endian, MEMRW values little-endian, and the request-type byte (0, or
1 for READ32/WRITE32/SEQRD). The unit starts running its firmware: the host
gets it into the ROM with the tool's blind ``\\n`` ``upgrade`` ``\\n\\0``.
Nothing here imports the emulator's or the engine's codec.
"""

from __future__ import annotations

import time

import serial

from emulators.xr872 import XR872Device
from emulators.xr872.board import factory_flash_image

QUERY, PAYLOAD = 0x00, 0x01


def compute_checksum(data: bytes) -> int:  # XRBaseFlasher.ComputeChecksum
    total = 0
    for i in range(0, len(data) - 1, 2):
        total = (total + (data[i] | data[i + 1] << 8)) & 0xFFFF
    if len(data) & 1:
        total = (total + data[-1]) & 0xFFFF
    return ~total & 0xFFFF


def build_brom_packet(opcode: int, pre: bytes, wire: bytes, request_type: int = QUERY) -> bytes:
    n = 1 + len(pre)
    head_pre = b"BROM" + bytes([0x04, request_type, 0, 0]) + n.to_bytes(4, "little")
    cs = compute_checksum(head_pre + bytes([opcode]) + pre)
    return (
        b"BROM"
        + bytes([0x04, request_type])
        + cs.to_bytes(2, "big")
        + n.to_bytes(4, "big")
        + (bytes([opcode]) + wire)
    )


def le32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def be32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def read32(addr: int) -> bytes:
    return build_brom_packet(0x04, le32(addr), be32(addr), PAYLOAD)


def write32(addr: int, value: int) -> bytes:
    return build_brom_packet(0x05, le32(addr) + le32(value), be32(addr) + le32(value), PAYLOAD)


def erase(mode: int, addr: int | None) -> bytes:
    if addr is None:
        return build_brom_packet(0x19, bytes([mode]), bytes([mode]))
    return build_brom_packet(0x19, bytes([mode]) + le32(addr), bytes([mode]) + be32(addr))


def read_sectors(index: int, count: int) -> bytes:
    return build_brom_packet(0x1A, le32(index) + le32(count), be32(index) + be32(count))


def write_sectors(index: int, count: int, dcs: int) -> bytes:
    pre = le32(index) + le32(count) + dcs.to_bytes(2, "little")
    wire = be32(index) + be32(count) + dcs.to_bytes(2, "big")
    return build_brom_packet(0x1B, pre, wire)


def change_baud(baud: int) -> bytes:
    v = baud | 0x03000000
    return build_brom_packet(0x10, le32(v), be32(v))


GET_FLASH_ID = bytes.fromhex("42 52 4F 4D 04 00 60 51 00 00 00 01 18")
CHIP_TYPE = bytes.fromhex("42 52 4F 4D 04 00 60 52 00 00 00 01 17")


def read_exact(ser: serial.Serial, n: int, timeout: float = 3.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += ser.read(n - len(out))
    return bytes(out)


def response(ser: serial.Serial) -> tuple[int, int, bytes]:
    """ReadBromResponse: (flags, brom version, payload)."""
    head = read_exact(ser, 12)
    assert head[:4] == b"BROM", head
    n = int.from_bytes(head[8:12], "big")
    return head[4], head[5], read_exact(ser, n)


def ok(ser: serial.Serial) -> bytes:
    flags, _, payload = response(ser)
    assert not flags & 0x01, payload
    return payload


def drain(ser: serial.Serial, quiet: float = 0.15, limit: float = 0.75) -> bytes:
    """XRBaseFlasher.DrainInput: read until the line has been quiet for ``quiet``."""
    out = bytearray()
    end = time.monotonic() + limit
    last = time.monotonic()
    while time.monotonic() < end and time.monotonic() - last < quiet:
        got = ser.read(max(1, ser.in_waiting))
        if got:
            out += got
            last = time.monotonic()
    return bytes(out)


def sync(ser: serial.Serial) -> bool:  # XRBaseFlasher.Sync
    for _ in range(10):
        drain(ser)
        ser.write(b"\x55")
        if read_exact(ser, 2, 1.5) == b"OK":
            drain(ser)
            return True
    return False


def test_the_tools_frames_are_the_captured_ones():
    assert build_brom_packet(0x18, b"", b"") == GET_FLASH_ID
    assert build_brom_packet(0x17, b"", b"") == CHIP_TYPE


def test_a_running_unit_driven_like_bk7231guiflashtool():
    dev = XR872Device(seed=21, rom_fast_timeout=0.05)
    ser = serial.Serial(dev.path, 115200, timeout=0.2, write_timeout=5)
    dev.power_on()
    try:
        deadline = time.monotonic() + 5
        log = b""
        while b"in use" not in log and time.monotonic() < deadline:
            log += ser.read(256)
        # TryEnterDownloadModeByUpgradeCommand: blind, no login
        ser.write(b"\n")
        ser.write(b"upgrade")
        ser.write(b"\n\x00")
        time.sleep(0.12)  # XR_UPGRADE_SETTLE_MS
        drain(ser, 0.04, 0.2)
        assert sync(ser)
        assert dev.mode == "rom"

        ser.write(GET_FLASH_ID)
        flags, version, payload = response(ser)
        assert flags & 0x02 and not flags & 0x01 and version >= 2  # the XR872 path needs 2+
        assert payload == b"\xc7\x40\x14"  # 1 << 0x14 = 1 MiB
        ser.write(CHIP_TYPE)
        assert len(ok(ser)) == 1

        # ReadXrEfuse: timing, then per word: CTRL read, base, read start, poll, value
        ser.write(write32(0x40043C90, 0x63321190))
        ok(ser)
        fuse = bytearray()
        for word in range(32):
            ser.write(read32(0x40043C40))
            base = int.from_bytes(ok(ser), "little") | 0x10000000
            base &= ~(0x00FF0000 | 0x0000FF00 | 0x2 | 0x1)
            ser.write(write32(0x40043C40, base))
            ok(ser)
            ser.write(write32(0x40043C40, base | (word * 4) << 16 | 0xAC00 | 0x2))
            ok(ser)
            ser.write(read32(0x40043C40))
            assert int.from_bytes(ok(ser), "little") & 0x6 == 0
            ser.write(read32(0x40043C60))
            fuse += ok(ser)  # WriteLe32(result, offset, ReadLe32(payload))
        assert bytes(fuse) == dev.efuse
        # the eFuse MAC the firmware printed is in there
        efuse_line = log.split(b"efuse         : ")[1][:17].decode()
        bits = int.from_bytes(fuse, "little")
        mac = ((bits >> 621) & ((1 << 48) - 1)).to_bytes(6, "little")
        assert ":".join(f"{b:02x}" for b in mac) == efuse_line

        # ChangeBaudAndResync to BK7231GUIFlashTool's default 921600
        ser.write(change_baud(921600))
        ok(ser)
        ser.baudrate = 921600
        assert sync(ser)

        # InternalRead: 8 sectors of 512 bytes per command
        ser.write(read_sectors(0, 8))
        assert ok(ser) == dev.flash.read(0, 0x1000)

        # range erase (4K) and a 16 KiB write, then read back
        data = bytes((i * 13) & 0xFF for i in range(0x4000))
        for a in range(0x40000, 0x44000, 0x1000):
            ser.write(erase(0x01, a))
            ok(ser)
        ser.write(write_sectors(0x40000 // 512, 32, compute_checksum(data)))
        ok(ser)
        ser.write(data)
        ok(ser)
        assert dev.flash.read(0x40000, 0x4000) == data
        ser.write(erase(0x03, 0x50000))  # 64 KiB
        ok(ser)
        assert dev.flash.read(0x50000, 0x10000) == b"\xff" * 0x10000

        # EraseChip: mode 0 and no address
        ser.write(erase(0x00, None))
        ok(ser)
        assert dev.flash.snapshot() == b"\xff" * (1 << 20)

        # closePort: back to 115200 (no REBOOT)
        ser.write(change_baud(115200))
        ok(ser)
        ser.baudrate = 115200
        assert sync(ser)
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None


def test_rates_the_tools_do_not_use_are_refused():
    dev = XR872Device(boot_pins=True, rom_fast_timeout=0.05)
    ser = serial.Serial(dev.path, 115200, timeout=0.2, write_timeout=5)
    dev.power_on()
    try:
        assert sync(ser)
        for rate in (230400, 460800, 2000000):
            ser.write(change_baud(rate))
            flags, _, payload = response(ser)
            assert flags & 0x01 and payload == b"\x04"  # INVALID: the ROM stays put
        ser.write(GET_FLASH_ID)
        assert ok(ser) == b"\xc7\x40\x14"
        assert factory_flash_image(0) == dev.flash.snapshot()
    finally:
        ser.close()
        dev.close()
    assert dev.crash is None
