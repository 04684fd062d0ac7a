"""Hi3511 emulator: a 13 MiB root image over TFTP into flash plus the boot scan, in fast mode
(target 5 s or less), and the memory one running device costs (target under 40 MiB)."""

from __future__ import annotations

import gc
import os
import re
import resource
import tempfile
import time
import tracemalloc
from contextlib import closing
from pathlib import Path

import serial

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import ROOT_SIZE, vendor_flash
from harness.lab.tftp import TftpServer


def _until(ser: serial.Serial, pattern: bytes, timeout: float = 120) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while not rx.search(buf):
        if time.monotonic() > deadline:
            raise TimeoutError(pattern)
        buf += ser.read(65536)
    return buf


def main() -> None:
    flash = vendor_flash("A")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # a 13 MiB JFFS2-sized payload: the vendor root padded with real nodes' worth of data
        payload = flash[0x200000 : 0x200000 + ROOT_SIZE]
        (root / "root.bin").write_bytes(payload)
        with (
            TftpServer(root) as server,
            closing(
                Hi3511Device(initial_flash=flash, tftp_server=("127.0.0.1", server.port))
            ) as dev,
        ):
            ser = serial.Serial(dev.path, 115200, timeout=0.05)
            dev.power_on()
            _until(ser, b"autoboot")
            ser.write(b" ")
            _until(ser, b"hilinux # ")
            t0 = time.perf_counter()
            ser.write(b"erase 0x34200000 +0xd00000\r")
            _until(ser, b"Erased 104 sectors\r\nhilinux # ")
            t1 = time.perf_counter()
            ser.write(b"tftp 0x34200000 root.bin\r")
            _until(ser, rb"Bytes transferred = \d+.*\r\nhilinux # ")
            t2 = time.perf_counter()
            ser.write(b"bootm 0x34100000\r")
            _until(ser, rb"\r\n# ")
            t3 = time.perf_counter()
            ser.close()
    total = t3 - t0
    print(
        f"erase 13 MiB: {t1 - t0:.2f} s; TFTP 13 MiB into flash: {t2 - t1:.2f} s "
        f"({ROOT_SIZE / (t2 - t1) / 1e6:.1f} MB/s); boot + JFFS2 scan: {t3 - t2:.2f} s"
    )
    print(f"total {total:.2f} s = {total / 5.0:.2f} x the 5 s target")

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    devs = []
    for i in range(4):
        d = Hi3511Device(initial_flash=flash, seed=i)
        d.power_on()
        devs.append(d)
    start = (time.perf_counter() - t0) / 4
    time.sleep(0.5)
    used = (tracemalloc.get_traced_memory()[0] - before) / 4
    tracemalloc.stop()
    for d in devs:
        d.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"memory per running device (Python heap): {used / 2**20:.1f} MiB = "
        f"{used / (40 << 20):.2f} x the 40 MiB target (flash is a 16 MiB mapping on top); "
        f"start-up {start * 1000:.0f} ms; process peak RSS {rss:.0f} MiB; pid {os.getpid()}"
    )
