"""W90P745: the engine's default dump and restore in real-time mode, at 115200 and at 460800,
as ratios of the wire limits of the loader's ``d`` format and of Xmodem-128.

The device runs in real-time mode (the link paced at its baud, flash at datasheet times,
the loader's Xmodem receiver with its 4 s first sleep and a ``C`` a second). The image is
a 32 KiB image 9 rich in 0x7F and 0x20 (harness/firmware/w90p745.py).

Limits:

* ``d``: the engine reads page after page with a bare ``d`` (the loader continues after
  the last page). Each page costs, on the device -> host wire, the echo ``d`` CR LF, the
  header ``Displaying memory at 0x%X`` CR LF, 16 lines of 68 bytes, CR LF and the prompt
  ``bootloader > ``: 256 payload bytes per that many bytes x 10 bits / baud.
* Xmodem-128: 133 bytes on the host -> device wire per 128 payload bytes (the ACKs go the
  other way), so 128 / (133 x 10 / baud).

The default dump reads each page once and checks the image against its footer's
image_checksum (one more page for the footer); the default restore sends the image with
Xmodem-128 (the transfer phase is measured from the first block to the ACK of EOT), checks
``ls`` and reads the image back (``--verify full``). Printed, not asserted.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import closing
from pathlib import Path

from emulators.w90p745 import W90P745Device
from harness.firmware.w90p745 import flash_with, rich_image
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.operations import dump, restore

BASE = 0x7F180000
SIZE = 0x8000
PROMPT = "bootloader > "


def d_page_bytes(addr: int = BASE) -> int:
    echo = "d\r\n"
    header = f"Displaying memory at 0x{addr:X}\r\n"
    line = f"[{addr:08X}] {0:08X} {0:08X} - {0:08X} {0:08X}  {'.' * 16}\r\n"
    return len(echo) + len(header) + 16 * len(line) + 2 + len(PROMPT)


def d_limit(baud: int) -> float:
    return 256 / (d_page_bytes() * 10 / baud)


def xmodem_limit(baud: int) -> float:
    return 128 / (133 * 10 / baud)


def _quiet(_text: str) -> None:
    pass


def _device(flash: bytes) -> W90P745Device:
    return W90P745Device(initial_flash=flash, realtime=True)


def run(baud: int, flash: bytes, tmp: Path, data: bytes) -> None:
    out = tmp / f"dump{baud}"
    dev = _device(flash)
    with closing(dev), Port(dev.path, 115200, timeout=10) as port:
        dev.power_on()
        W90Console(port, notify=_quiet).attach(10)  # the ESC window is not counted
        t0 = time.monotonic()
        result = dump(port, out, images=["9"], progress=False, notify=_quiet, baud=baud)
        dump_s = time.monotonic() - t0
        log = list(port.log)
    got = (out / result.images[0].file).read_bytes()
    rate = SIZE / dump_s
    first = next(e.t for e in log if e.direction == "tx" and e.data == f"d 0x{BASE:08X}".encode())
    footer = f"d 0x{BASE + 0xFF00:08X}".encode()
    last = next(e.t for e in log if e.direction == "tx" and e.data == footer)
    loop = SIZE / (last - first)
    print(
        f"dump at {baud}: {SIZE // 1024} KiB in {dump_s:.2f} s = {rate:.0f} B/s = "
        f"{rate / d_limit(baud):.2f} of the d limit {d_limit(baud):.0f} B/s "
        f"(attach, ls, speed changes, footer page included); the page loop alone "
        f"{loop:.0f} B/s = {loop / d_limit(baud):.2f}; {'identical' if got == data else 'DIFFERENT'}"
    )
    dev = _device(flash)
    with closing(dev), Port(dev.path, 115200, timeout=10) as port:
        dev.power_on()
        W90Console(port, notify=_quiet).attach(10)
        t0 = time.monotonic()
        restore(port, out, progress=False, notify=_quiet, baud=baud)
        total = time.monotonic() - t0
        log = list(port.log)
        back = dev.flash.read(BASE - 0x7F000000, SIZE)
    first = next(e.t for e in log if e.direction == "tx" and e.data[:3] == b"\x01\x01\xfe")
    eot = next(e.t for e in log if e.direction == "tx" and e.data == b"\x04" and e.t > first)
    ack = next(e.t for e in log if e.direction == "rx" and b"\x06" in e.data and e.t >= eot)
    xfer = ack - first
    xrate = SIZE / xfer
    print(
        f"restore at {baud}: transfer {xfer:.2f} s = {xrate:.0f} B/s = "
        f"{xrate / xmodem_limit(baud):.2f} of the Xmodem-128 limit {xmodem_limit(baud):.0f} B/s; "
        f"whole restore {total:.2f} s ({SIZE / total:.0f} B/s: 4 s receiver start, flash "
        f"programming, ls, read-back); {'identical' if back == data else 'DIFFERENT'}"
    )


def main() -> None:
    data = rich_image(SIZE, seed=745)
    flash = flash_with([(9, "bench", BASE, data, BASE, "a")])
    print(
        f"d page: {d_page_bytes()} console bytes per 256 payload bytes; "
        f"Xmodem-128: 133 bytes per 128"
    )
    with tempfile.TemporaryDirectory() as name:
        for baud in (115200, 460800):
            run(baud, flash, Path(name), data)


if __name__ == "__main__":
    main()
