"""Flash model speed: erase and program a whole 16 MiB chip in fast mode (target under 0.2 s)."""

from __future__ import annotations

import os
import time

from emulators.flash import FlashGeometry, NorFlash

TARGET = 0.2


def main() -> None:
    geometry = FlashGeometry.uniform(16 << 20, 0x20000)
    data = os.urandom(16 << 20)
    with NorFlash(geometry) as flash:
        t0 = time.perf_counter()
        flash.erase(0, flash.size)
        t1 = time.perf_counter()
        flash.program(0, data)
        t2 = time.perf_counter()
        flash.erase(0, flash.size)
        for off in range(0, flash.size, 512):  # as TFTP blocks arrive
            flash.program(off, data[off : off + 512])
        t3 = time.perf_counter()
    whole = t2 - t0
    print(f"erase 16 MiB: {t1 - t0:.3f} s; program 16 MiB in one call: {t2 - t1:.3f} s")
    print(f"erase + program whole chip: {whole:.3f} s = {whole / TARGET:.2f} x the 0.2 s target")
    print(
        f"erase + program in 512-byte blocks: {t3 - t2:.3f} s ({(16 << 20) / (t3 - t2) / 1e6:.0f} MB/s)"
    )
