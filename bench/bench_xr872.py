"""XR872 dump in real-time mode: the engine's FLASH_READ path at 115200, at its default SETUART
rate (921600) and at 3000000 (``--max-baud``), against the wire limit baud/10 bytes/s (target:
at least 0.9), and the speedup the raise gives.

At 115200 the run reads 256 KiB, not the whole 1 MiB (that would take 91 s of wall time); the
rate is the same per byte. At the raised baud the engine's ``dump`` reads the whole 1 MiB. The
rates count only the reading (after the engine entered the ROM and raised the baud); the
end-to-end ``dump`` time (blind ``upgrade``, sync, GET_FLASH_ID, the eFuse words, SETUART, read,
manifest) is printed too.

The protocol's own ceiling: each 4 KiB chunk is a 21-byte FLASH_READ request, then a 12-byte
response header and the data; the ROM answers only after the whole request arrived, so a chunk
costs at least 21 + 12 + 4096 byte times: 0.992 of the wire limit.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import closing
from pathlib import Path

from emulators.xr872 import XR872Device
from recovery.xr872.driver import Options, Session
from recovery.xr872.operations import dump

TARGET = 0.9
SLOW = 115200
SLOW_SIZE = 256 << 10
CHUNK = 0x1000


def _quiet(_text: str) -> None:
    pass


def read_rate(max_baud: int, size: int, seed: int) -> tuple[int, float, float, bool]:
    """Enter the ROM with the engine, read ``size`` bytes; (baud, enter s, read s, intact)."""
    dev = XR872Device(realtime=True, seed=seed)
    with closing(dev):
        opts = Options(port=dev.path, max_baud=max_baud, chunk=CHUNK, progress=False)
        with Session(opts, _quiet) as s:
            dev.power_on()
            t0 = time.monotonic()
            s.enter()
            t1 = time.monotonic()
            data = s.read_range(0, size)
            t2 = time.monotonic()
            baud = s.link().baud
        intact = data == dev.flash.read(0, size)
    return baud, t1 - t0, t2 - t1, intact


def whole_dump(seed: int, out: Path) -> tuple[int, float, bool]:
    """The engine's ``dump`` of the whole flash at its default baud (921600)."""
    dev = XR872Device(realtime=True, seed=seed)
    with closing(dev):
        opts = Options(port=dev.path, chunk=CHUNK, progress=False)
        dev.power_on()  # the engine opens the port itself: it finds the unit booting
        t0 = time.monotonic()
        result = dump(opts, out, reboot=False, log=_quiet)
        spent = time.monotonic() - t0
        intact = out.read_bytes() == dev.flash.snapshot()
    return result.link.baud, spent, intact


def _line(label: str, baud: int, size: int, seconds: float, intact: bool) -> float:
    rate = size / seconds
    wire = baud / 10
    print(
        f"{label}: {size >> 10} KiB at {baud} baud in {seconds:.2f} s = {rate:.0f} B/s = "
        f"{rate / wire:.3f} of the wire limit {wire:.0f} B/s (target {TARGET}); "
        f"data {'identical' if intact else 'DIFFERENT'}"
    )
    return rate


def main() -> None:
    ceiling = CHUNK / (21 + 12 + CHUNK)
    print(f"protocol ceiling with {CHUNK}-byte FLASH_READs: {ceiling:.3f} of the wire limit")
    baud, enter, seconds, intact = read_rate(SLOW, SLOW_SIZE, seed=1)
    print(f"entering the ROM at {baud} (blind upgrade, sync, flash id, eFuse): {enter:.2f} s")
    slow = _line("read at 115200 (256 KiB, not 1 MiB, to keep it short)", baud, SLOW_SIZE,
                 seconds, intact)  # fmt: skip
    baud, enter, seconds, intact = read_rate(921_600, 1 << 20, seed=2)
    print(f"entering the ROM and raising the baud to {baud} (the default): {enter:.2f} s")
    _line("read at the default raised baud", baud, 1 << 20, seconds, intact)
    baud, enter, seconds, intact = read_rate(3_000_000, 1 << 20, seed=2)
    print(f"entering the ROM and raising the baud to {baud} (--max-baud): {enter:.2f} s")
    fast = _line("read at 3000000", baud, 1 << 20, seconds, intact)
    print(
        f"speedup of the baud raise: {fast / slow:.1f} x "
        f"(the bauds alone: {baud / SLOW:.1f} x); a whole 1 MiB at 115200 would take about "
        f"{(1 << 20) / slow:.0f} s, at {baud} {(1 << 20) / fast:.1f} s"
    )
    with tempfile.TemporaryDirectory() as name:
        baud, spent, intact = whole_dump(3, Path(name) / "xr872.bin")
    print(
        f"engine dump end to end (enter, raise to {baud}, read 1 MiB, manifest): {spent:.2f} s; "
        f"file {'identical to the flash' if intact else 'DIFFERENT from the flash'}"
    )


if __name__ == "__main__":
    main()
