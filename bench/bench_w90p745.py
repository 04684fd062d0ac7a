"""W90P745: the engine's default dump and restore in real-time mode, at 115200 and at 460800,
as ratios of the wire limits of the loader's ``d`` format and of Xmodem-128.

The device runs in real-time mode (the link paced at its baud, flash at datasheet times,
the loader's Xmodem receiver with its 4 s first sleep and a ``C`` a second). The images are
rich in 0x7F and 0x20 (harness/firmware/w90p745.py): a 32 KiB image 9 at both rates, and
a 256 KiB image at 460800 (the fixed costs of one run weigh less in a larger dump; a
camera's flash holds about 2 MiB of images).

Limits (wire time only; 8N1 is 10 bits a byte):

* ``d``: the engine reads page after page with a bare ``d`` (the loader continues after
  the last page). Each page costs, on the device -> host wire, the echo ``d`` CR LF, the
  header ``Displaying memory at 0x%X`` CR LF, 16 lines of 68 bytes, CR LF and the prompt
  ``bootloader > `` (:func:`d_page_bytes`, 1139 bytes):
  ``d limit = 256 / (d_page_bytes x 10 / baud)`` bytes a second.
* Xmodem-128: 133 bytes on the host -> device wire per 128 payload bytes (the ACKs go the
  other way): ``Xmodem limit = 128 / (133 x 10 / baud)``.
* A default restore sends the image with Xmodem-128 and reads it back with ``d``
  (``--verify full``): ``restore limit = 1 / (1 / Xmodem limit + 1 / d limit)``.

What is timed. A dump runs as a user runs it, ``python -m recovery w90p745 dump`` in its
own process, on a loader already at its prompt (the device's boot and ESC window are not
counted); its time is the engine's own ``seconds`` (from the call of ``dump()``, after the
interpreter's start and the port's opening, to its return: the attach to the idle prompt,
``B``, ``ls``, the pages, the footer, the checksum, the files written and fsynced and the
loader back at 115200). Its phases come from the engine's ``--transcript``: "start"
(attach, ``B``, ``ls``) up to the first ``d``, the page loop (first ``d`` to the footer's
``d``), "end" (footer page, checksum, manifest, ``B 115200``, up to the return). The page
loop is split into its wire time (the pages' bytes at the baud) and the rest: the engine's
turnaround (from a page's last byte to the next bare ``d``: measured in-process at under
1 % of the loop) and the emulator's lateness (in real-time mode it paces its output in
10 ms pieces; a piece the machine's load delays by more than 5 ms is not made up, which a
real UART would not do). The dump's engine runs in its own process, as a user's does
(the earlier bench ran it in the bench's process; back to back the two agree within 0.03).

A restore runs in-process (``restore()``), timed from its call to its return; its transfer
phase is the first block to the ACK of EOT. Printed, not asserted; the machine's other load
shows in the spread of several runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from emulators.w90p745 import W90P745Device
from harness.firmware.w90p745 import flash_with, rich_image
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.operations import restore

BASE = 0x7F180000
SIZE = 0x8000
BIG = 0x40000
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


def restore_limit(baud: int) -> float:
    return 1 / (1 / xmodem_limit(baud) + 1 / d_limit(baud))


def _quiet(_text: str) -> None:
    pass


def _device(flash: bytes) -> W90P745Device:
    return W90P745Device(initial_flash=flash, realtime=True)


def _footer_page(size: int) -> int:
    from recovery.w90p745.parsers import footer_address

    return footer_address(BASE, size) & ~0xFF


def _transcript(path: Path) -> list[tuple[float, str, bytes]]:
    """The engine's ``--transcript``: (time of a run's first byte, direction, bytes)."""
    rows = []
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(\d+\.\d+) +(\S+) ?(.*)$", line)
        if m:
            data = m.group(3).encode("ascii").decode("unicode_escape").encode("latin-1")
            rows.append((float(m.group(1)), m.group(2), data))
    return rows


def run_dump(baud: int, size: int, flash: bytes, out: Path, data: bytes) -> None:
    """The dump as a user runs it: ``python -m recovery w90p745 dump`` in its own process
    (no interpreter shared with the emulator); the time is the engine's own ``seconds``
    (from its dump() call to its return: the interpreter's start and the port's opening
    are not counted)."""
    dev = _device(flash)
    log = out.parent / f"{out.name}.transcript"
    with closing(dev):
        dev.power_on()
        with Port(dev.path, 115200, timeout=10) as port:
            W90Console(port, notify=_quiet).attach(10)  # the boot and ESC window: not counted
        argv = ["w90p745", "dump", "--port", dev.path, "--out", str(out), "--images", "9"]
        argv += ["--baud", str(baud), "--json", "--transcript", str(log)]
        proc = subprocess.run(
            [sys.executable, "-m", "recovery", *argv], capture_output=True, text=True, timeout=900
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"the dump failed: {result.get('message')}")
    dump_s = float(result["seconds"])
    got = (out / result["images"][0]["file"]).read_bytes()
    rate = size / dump_s
    rows = _transcript(log)
    tx = [(t, d) for t, direction, d in rows if direction == "tx"]
    start = tx[0][0]
    first = next(t for t, d in tx if d == f"d 0x{BASE:08X}".encode())
    last = next(t for t, d in tx if d == f"d 0x{_footer_page(size):08X}".encode())
    end = start + dump_s  # the engine's return (its first byte goes out at once)
    loop = size / (last - first)
    lim = d_limit(baud)
    wire = (last - first) * loop / lim
    print(
        f"dump at {baud}, {size // 1024} KiB: {dump_s:.2f} s = {rate:.0f} B/s = "
        f"{rate / lim:.2f} of the d limit {lim:.0f} B/s; start {first - start:.2f} s, "
        f"page loop {last - first:.2f} s ({loop:.0f} B/s = {loop / lim:.2f}: wire "
        f"{wire:.2f} s, the rest {last - first - wire:.2f} s), end {end - last:.2f} s; "
        f"{'identical' if got == data else 'DIFFERENT'}"
    )


def run_restore(baud: int, size: int, flash: bytes, src: Path, data: bytes) -> None:
    dev = _device(flash)
    with closing(dev), Port(dev.path, 115200, timeout=10) as port:
        dev.power_on()
        W90Console(port, notify=_quiet).attach(10)
        mark = len(port.log)
        t0 = time.monotonic()
        restore(port, src, progress=False, notify=_quiet, baud=baud)
        total = time.monotonic() - t0
        log = list(port.log)[mark:]
        back = dev.flash.read(BASE - 0x7F000000, size)
    first = next(e.t for e in log if e.direction == "tx" and e.data[:3] == b"\x01\x01\xfe")
    eot = next(e.t for e in log if e.direction == "tx" and e.data == b"\x04" and e.t > first)
    ack = next(e.t for e in log if e.direction == "rx" and b"\x06" in e.data and e.t >= eot)
    xfer = ack - first
    xrate = size / xfer
    whole = size / total
    print(
        f"restore at {baud}, {size // 1024} KiB: {total:.2f} s = {whole:.0f} B/s = "
        f"{whole / restore_limit(baud):.2f} of the restore limit {restore_limit(baud):.0f} B/s "
        f"(Xmodem-128 then d; the loader's own 4 s receiver start and flash programming are "
        f"in the time, not in the limit); transfer {xfer:.2f} s = {xrate:.0f} B/s = "
        f"{xrate / xmodem_limit(baud):.2f} of the Xmodem-128 limit {xmodem_limit(baud):.0f} B/s"
        f"; {'identical' if back == data else 'DIFFERENT'}"
    )


def main() -> None:
    data = rich_image(SIZE, seed=745)
    flash = flash_with([(9, "bench", BASE, data, BASE, "a")])
    big = rich_image(BIG, seed=746)
    big_flash = flash_with([(9, "bench", BASE, big, BASE, "a")])
    print(
        f"d page: {d_page_bytes()} console bytes per 256 payload bytes; "
        f"Xmodem-128: 133 bytes per 128; limits: d = 256 / ({d_page_bytes()} x 10 / baud), "
        "Xmodem = 128 / (133 x 10 / baud), restore = 1 / (1 / Xmodem + 1 / d)"
    )
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for baud in (115200, 460800):
            out = tmp / f"dump{baud}"
            run_dump(baud, SIZE, flash, out, data)
            run_restore(baud, SIZE, flash, out, data)
        run_dump(460800, BIG, big_flash, tmp / "big", big)


if __name__ == "__main__":
    main()
