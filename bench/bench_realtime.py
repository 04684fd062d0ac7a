"""Real-time windows are not stretched: measured here, asserted nowhere.

tests/test_realtime.py proves the lower bounds (no window cut short, no line faster than
the wire), which hold on any machine. Whether a window also ends on time depends on the
machine's speed, so it is printed here: U-Boot's autoboot countdown (1 s a step), the
W90P745's ESC window (2 s in six ticks), a Hi3511 sector erase (0.5 s a 128 KiB sector),
each as seen by a pyserial host, with the ratio to the device's own time (target: within
15 %; a host on a loaded machine reads late, which shows up here and nowhere else).
"""

from __future__ import annotations

import re
import struct
import time
import zlib
from contextlib import closing

import serial

from emulators.hi3511 import Hi3511Device
from emulators.w90p745 import W90P745Device
from harness.firmware.hi3511 import vendor_flash

ENV_OFFSET, ENV_SIZE = 0x80000, 0x10000


def _flash_with_bootdelay(bootdelay: int) -> bytes:
    env = {"bootcmd": "bootm 0x34100000", "bootdelay": str(bootdelay), "baudrate": "115200"}
    body = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()) + b"\0"
    body += b"\0" * (ENV_SIZE - 4 - len(body))
    flash = bytearray(vendor_flash("A"))
    flash[ENV_OFFSET : ENV_OFFSET + ENV_SIZE] = struct.pack("<I", zlib.crc32(body)) + body
    return bytes(flash)


def _arrivals(ser: serial.Serial, patterns: list[bytes], timeout: float = 30) -> list[float]:
    """Arrival time of each pattern in turn."""
    data, out, pos = b"", [], 0
    deadline = time.monotonic() + timeout
    for pat in patterns:
        rx = re.compile(pat)
        while not (m := rx.search(data, pos)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pat!r} not seen; got {data[-200:]!r}")
            data += ser.read(max(1, ser.in_waiting))
        out.append(time.monotonic())
        pos = m.end()
    return out


def _line(what: str, measured: float, expected: float) -> None:
    ratio = measured / expected
    verdict = "within" if abs(ratio - 1) <= 0.15 else "OUTSIDE"
    print(f"{what}: {measured:.3f} s vs {expected:.3f} s = {ratio:.3f} ({verdict} 15 %)")


def main() -> None:
    with closing(Hi3511Device(initial_flash=_flash_with_bootdelay(2), realtime=True)) as dev:
        with serial.Serial(dev.path, 115200, timeout=0.005) as ser:
            dev.power_on()
            t = _arrivals(ser, [rb"autoboot:  2 ", rb"\x08\x08\x08 1 ", rb"\x08\x08\x08 0 "])
        _line("hi3511 countdown step 2->1", t[1] - t[0], 1.0)
        _line("hi3511 countdown step 1->0", t[2] - t[1], 1.0)
    with closing(W90P745Device(realtime=True)) as dev:
        with serial.Serial(dev.path, 115200, timeout=0.005) as ser:
            dev.power_on()
            t = _arrivals(ser, [rb"Press ESC to enter debug mode", rb" \."] + [rb"\."] * 5)
        _line("w90p745 ESC window (six ticks)", t[-1] - t[0], 2.0)
    with closing(Hi3511Device(initial_flash=vendor_flash("A"), realtime=True)) as dev:
        with serial.Serial(dev.path, 115200, timeout=0.005) as ser:
            dev.power_on()
            _arrivals(ser, [rb"Hit any key to stop autoboot"])
            ser.write(b" ")
            _arrivals(ser, [rb"hilinux # "])
            ser.write(b"erase 0x34200000 +0x80000\r")
            t = _arrivals(ser, [rb"\+0x80000\r*\n"] + [rb"\."] * 4)
        _line("hi3511 erase, 4 sectors", t[-1] - t[0], 4 * 0.5)


if __name__ == "__main__":
    main()
