"""W90P745 dump: the engine's ``d`` page reader in real-time mode at 115200, against the best the
``d`` format allows at that baud (target: at least 0.95 of it).

The figure is for ``reads=1`` (each page read once, trusted on the page checks); the default
``reads=2`` reads each page twice and so takes twice as long. A 64 KiB image (256 pages) is
written with the engine's ``fx`` in fast mode, then the device is restarted in real-time mode
on the same flash file and ``recovery.w90p745.dump`` reads it (about 27 s of wall time).

The best rate: the loader answers ``d 0x7F180000`` with the command's echo and CR LF, the header
``Displaying memory at 0x%X`` CR LF, 16 lines ``[%08X] %08X %08X - %08X %08X  <16 ascii>`` CR
LF, then ``\\r\\nbootloader > ``. The echo is paced by the host's typing, which runs on the
other wire at the same rate, so a page cannot take less than (echo + output) bytes x 10 bits
/ baud. Everything else the engine spends (waiting for the echo before CR, parsing, the
attach and ``ls -al`` at the start) lowers the ratio.
"""

from __future__ import annotations

import random
import tempfile
import time
from contextlib import closing
from pathlib import Path

from emulators.w90p745 import W90P745Device
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.operations import dump
from recovery.w90p745.parsers import ImageEntry

BAUD = 115200
BASE = 0x7F180000  # where the factory webui image (8) was: two free blocks once it is deleted
SIZE = 0x10000
TARGET = 0.95
PROMPT = "\r\nbootloader > "


def page_bytes(addr: int) -> int:
    """Console bytes one ``d`` page costs on the device -> host wire."""
    echo = f"d 0x{addr:08X}\r\n"
    header = f"Displaying memory at 0x{addr:X}\r\n"
    line = f"[{addr:08X}] {0:08X} {0:08X} - {0:08X} {0:08X}  {'.' * 16}\r\n"
    return len(echo) + len(header) + 16 * len(line) + len(PROMPT)


def best_rate(baud: int = BAUD) -> float:
    per_page = page_bytes(BASE)
    return 256 / (per_page * 10 / baud)


def _quiet(_text: str) -> None:
    pass


def _make_image(flash_file: Path, data: bytes) -> None:
    with closing(W90P745Device(flash_path=flash_file)) as dev, Port(dev.path, BAUD) as port:
        dev.power_on()
        con = W90Console(port, notify=_quiet)
        con.attach(10)
        con.run("del 8", timeout=30)
        entry = ImageEntry(9, "bench64", BASE, len(data), BASE, "a")
        con.fx(entry, data, lambda _done, _total: None)


def _dump(flash_file: Path, out: Path, reads: int) -> tuple[float, float, int, bytes]:
    """(dump() seconds, page-loop seconds, device bytes in the loop, the file)."""
    dev = W90P745Device(flash_path=flash_file, realtime=True)
    with closing(dev), Port(dev.path, BAUD, timeout=10) as port:
        dev.power_on()
        W90Console(port, notify=_quiet).attach(10)  # the ESC window is not counted
        t0 = time.monotonic()
        result = dump(port, out, images=["bench64"], reads=reads, progress=False, notify=_quiet)
        total = time.monotonic() - t0
        log = list(port.log)
    first = f"d 0x{BASE:08X}".encode()
    start = next(e.t for e in log if e.direction == "tx" and e.data.startswith(first))
    end = max(e.t for e in log if e.direction == "rx")
    rx = sum(len(e.data) for e in log if e.direction == "rx" and e.t > start)
    return total, end - start, rx, (out / result.images[0].file).read_bytes()


def main() -> None:
    data = random.Random(745).randbytes(SIZE)
    best = best_rate()
    per_page = page_bytes(BASE)
    print(
        f"`d` page at 115200: {per_page} console bytes per 256 payload bytes "
        f"(echo {len(f'd 0x{BASE:08X}') + 2}, header, 16 x 68, prompt {len(PROMPT)}) "
        f"-> best payload rate {best:.0f} B/s"
    )
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        flash_file = tmp / "w90.bin"
        t0 = time.monotonic()
        _make_image(flash_file, data)
        print(f"setup (fast mode): fx of a 64 KiB image took {time.monotonic() - t0:.2f} s")
        total, loop, rx, got = _dump(flash_file, tmp / "dump", 1)
        pages = SIZE // 256
        rate = SIZE / total
        print(
            f"engine dump, reads=1: 64 KiB in {total:.2f} s = {rate:.0f} B/s = "
            f"{rate / best:.3f} of the best {best:.0f} B/s (target {TARGET}); page loop alone "
            f"{loop:.2f} s = {SIZE / loop / best:.3f}; {rx / pages:.0f} bytes received per page; "
            f"data {'identical' if got == data else 'DIFFERENT'}"
        )
        print(
            f"the engine's default reads=2 reads every page twice: at the same efficiency "
            f"about {rate / 2:.0f} B/s, {2 * total:.0f} s for this image (not run, to keep the "
            f"benchmark short)"
        )


if __name__ == "__main__":
    main()
