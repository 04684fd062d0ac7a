"""Emulator cost in fast mode: start-up time and memory per running device for each board, and how
many Hi3511 devices one process runs at once.

* Start-up: construction (flash file created and loaded, as the lab does it), then from
  ``power_on()`` to the first banner byte a pyserial host reads, and to the device's first
  interactive point (U-Boot's autoboot line, the W90P745's ESC prompt, the XR872's boot log MAC line).
* Memory: ``K`` devices of a board running side by side at their interactive point; the Python
  heap from :mod:`tracemalloc` and the process's ``VmRSS`` from /proc/self/status, divided by
  ``K``. The flash is a file-backed shared mmap: its pages show up as ``RssFile`` (page cache,
  reclaimable), RAM models and Python objects as ``RssAnon``. Targets: a 16 MiB Hi3511 under
  40 MiB of heap (as in bench_hi3511).
* Many devices: N Hi3511 devices (N = 8, 16, 32, 64) powered on together, autoboot stopped on
  each, then each asked ``version``; RSS, threads and whether every one answered. Bounded far
  below the machine's limits (each device is one thread, two ptys and a 16 MiB flash file).
"""

from __future__ import annotations

import gc
import os
import re
import resource
import selectors
import statistics
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial

from emulators.device import Device
from emulators.hi3511 import Hi3511Device
from emulators.w90p745 import W90P745Device
from emulators.xr872 import XR872Device
from harness.firmware.hi3511 import vendor_flash

HEAP_TARGET = 40 << 20
MANY = (8, 16, 32, 64)
MANY_BUDGET = 40.0  # seconds for the whole many-devices part


@dataclass
class Board:
    name: str
    make: Callable[[Path, int], Device]
    ready: bytes  # regex: the first interactive point after power-on
    stop: bytes | None  # what a host types to stay in the boot loader
    prompt: bytes | None


def _boards() -> list[Board]:
    hi_flash = vendor_flash("A")
    return [
        Board(
            "hi3511 (16 MiB)",
            lambda p, s: Hi3511Device(flash_path=p, initial_flash=hi_flash, seed=s),
            rb"Hit any key to stop autoboot",
            b" ",
            rb"hilinux # ",
        ),
        Board(
            "w90p745 (2 MiB)",
            lambda p, s: W90P745Device(flash_path=p, seed=s),
            rb"Press ESC to enter debug mode",
            b"\x1b",
            rb"bootloader > ",
        ),
        Board(
            "xr872 (1 MiB)",
            lambda p, s: XR872Device(flash_path=p, seed=s),
            rb"in use        : ",
            None,
            None,
        ),
    ]


def _status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem and Threads from /proc/self/status (kB or count)."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
            out[key] = int(value.split()[0])
    out["fds"] = len(os.listdir("/proc/self/fd"))
    return out


def _until(ser: serial.Serial, pattern: bytes, timeout: float = 30.0) -> tuple[bytes, float]:
    """Read until ``pattern``; return the text and the time the first byte came."""
    rx = re.compile(pattern)
    buf = b""
    first = 0.0
    deadline = time.monotonic() + timeout
    while not rx.search(buf):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pattern!r} not seen; got {buf[-200:]!r}")
        chunk = ser.read(max(1, ser.in_waiting))
        if chunk and not buf:
            first = time.monotonic()
        buf += chunk
    return buf, first


def _bring_up(board: Board, path: Path, seed: int) -> tuple[Device, serial.Serial, dict]:
    t0 = time.perf_counter()
    dev = board.make(path, seed)
    t1 = time.perf_counter()
    ser = serial.Serial(dev.path, dev.baud, timeout=0.02)
    t2 = time.monotonic()
    dev.power_on()
    _, first = _until(ser, board.ready)
    t3 = time.monotonic()
    if board.stop is not None and board.prompt is not None:
        ser.write(board.stop)
        _until(ser, board.prompt)
    times = {"construct": t1 - t0, "first_byte": first - t2, "ready": t3 - t2}
    return dev, ser, times


def per_board(board: Board, tmp: Path, k: int = 4) -> None:
    # start-up, without tracemalloc (it slows Python down several times)
    runs = []
    for i in range(3):
        dev, ser, times = _bring_up(board, tmp / f"start{i}.bin", i)
        runs.append(times)
        ser.close()
        dev.close()
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(
        f"{board.name}: construct {med['construct'] * 1000:.0f} ms, power-on to first banner "
        f"byte {med['first_byte'] * 1000:.1f} ms, to {board.ready.decode()!r} "
        f"{med['ready'] * 1000:.0f} ms (median of 3)"
    )
    # memory: k devices running side by side
    gc.collect()
    st0 = _status()
    tracemalloc.start()
    heap0 = tracemalloc.get_traced_memory()[0]
    live = [_bring_up(board, tmp / f"mem{i}.bin", 10 + i) for i in range(k)]
    time.sleep(0.2)
    heap = (tracemalloc.get_traced_memory()[0] - heap0) / k
    tracemalloc.stop()
    st1 = _status()
    for dev, ser, _ in live:
        ser.close()
        if dev.crash is not None:
            print(f"  device crashed: {dev.crash!r}")
        dev.close()

    def d(key: str) -> float:
        return (st1[key] - st0[key]) / k / 1024

    print(
        f"  per running device ({k} side by side): Python heap {heap / 2**20:.2f} MiB "
        f"(= {heap / HEAP_TARGET:.2f} x the 40 MiB target); VmRSS +{d('VmRSS'):.1f} MiB "
        f"(anon +{d('RssAnon'):.1f}, flash file pages +{d('RssFile'):.1f}, "
        f"shmem +{d('RssShmem'):.1f}); threads +{(st1['Threads'] - st0['Threads']) / k:.0f}"
    )


def _many(n: int, flash: bytes, tmp: Path) -> tuple[int, float, float, dict, dict]:
    """Start n Hi3511 devices at once, stop autoboot on each, ask each ``version``.
    Returns (answered, seconds to all prompts, seconds for all versions, status before, after)."""
    gc.collect()
    st0 = _status()
    devs: list[Device] = []
    sers: list[serial.Serial] = []
    sel = selectors.DefaultSelector()
    bufs: dict[int, bytes] = {}
    state: dict[int, str] = {}
    try:
        for i in range(n):
            dev = Hi3511Device(flash_path=tmp / f"many{i}.bin", initial_flash=flash, seed=i)
            devs.append(dev)
            ser = serial.Serial(dev.path, 115200, timeout=0)
            sers.append(ser)
            sel.register(ser.fileno(), selectors.EVENT_READ, i)
            bufs[i] = b""
            state[i] = "banner"
        t0 = time.monotonic()
        for dev in devs:
            dev.power_on()

        def pump(until_state: str, deadline: float) -> None:
            while any(s != until_state for s in state.values()) and time.monotonic() < deadline:
                for key, _ in sel.select(0.1):
                    i = key.data
                    bufs[i] += sers[i].read(65536)
                    if state[i] == "banner" and b"stop autoboot" in bufs[i]:
                        sers[i].write(b" ")
                        state[i], bufs[i] = "stopping", b""
                    elif state[i] == "stopping" and b"hilinux # " in bufs[i]:
                        state[i], bufs[i] = "prompt", b""
                    elif state[i] == "asked" and re.search(
                        rb"U-Boot 1\.1\.4.*hilinux # ", bufs[i], re.S
                    ):
                        state[i] = "answered"

        pump("prompt", t0 + 30)
        t1 = time.monotonic()
        st1 = _status()
        for i, ser in enumerate(sers):
            if state[i] == "prompt":
                ser.write(b"version\r")
                state[i] = "asked"
        pump("answered", t1 + 10)
        t2 = time.monotonic()
        answered = sum(1 for s in state.values() if s == "answered")
        crashed = [d.crash for d in devs if d.crash is not None]
        if crashed:
            print(f"  crashes: {crashed[:3]!r}")
        return answered, t1 - t0, t2 - t1, st0, st1
    finally:
        sel.close()
        for ser in sers:
            ser.close()
        for dev in devs:
            dev.close()
        for i in range(n):
            (tmp / f"many{i}.bin").unlink(missing_ok=True)


def _ceiling(rss_each: float, fds_each: float, fd_limit: int, pty_max: int) -> None:
    """Print which limit would stop one process first (an estimate from the measured costs)."""
    meminfo = dict(
        (k, int(v.split()[0]))
        for k, _, v in (
            line.partition(":") for line in Path("/proc/meminfo").read_text().splitlines()
        )
    )
    avail = meminfo["MemAvailable"] / 1024
    limits = {
        "open files": fd_limit / fds_each,
        "ptys": pty_max,
        "memory (flash pages resident)": avail / rss_each,
    }
    name, value = min(limits.items(), key=lambda kv: kv[1])
    print(
        "estimated ceiling for one process: "
        + ", ".join(f"{k} {v:.0f}" for k, v in limits.items())
        + f" -> about {value:.0f} Hi3511 devices, bounded by {name} "
        f"({avail / 1024:.1f} GiB available); CPU is idle at a prompt"
    )


def main() -> None:
    print(f"pid {os.getpid()}, {os.cpu_count()} CPUs; all devices in fast mode, flash in files")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        boards = _boards()
        for board in boards:
            per_board(board, tmp)
            for f in tmp.glob("*.bin"):
                f.unlink()
        flash = vendor_flash("A")
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        ptys = Path("/proc/sys/kernel/pty/max").read_text().strip()
        print(f"limits: {soft} open files per process, {ptys} ptys per machine")
        started = time.monotonic()
        last: tuple[float, float] | None = None
        for n in MANY:
            if time.monotonic() - started > MANY_BUDGET:
                print(f"{n} Hi3511 devices: skipped (the {MANY_BUDGET:.0f} s budget is spent)")
                break
            answered, up, ask, st0, st1 = _many(n, flash, tmp)
            rss = (st1["VmRSS"] - st0["VmRSS"]) / 1024
            anon = (st1["RssAnon"] - st0["RssAnon"]) / 1024
            print(
                f"{n:>2} Hi3511 devices at once: {answered}/{n} answered 'version' "
                f"(= {answered / n:.2f}); all at the prompt in {up:.2f} s, all answers in "
                f"{ask:.2f} s; VmRSS +{rss:.0f} MiB ({rss / n:.1f} MiB each, anon "
                f"{anon / n:.1f}); {st1['Threads']} threads, "
                f"{(st1['fds'] - st0['fds']) / n:.0f} file descriptors each; "
                f"{threading.active_count()} Python threads after close"
            )
            last = (rss / n, (st1["fds"] - st0["fds"]) / n)
            if answered < n:
                print("  stopping: not every device answered")
                break
        if last is not None:
            _ceiling(*last, soft, int(ptys))


if __name__ == "__main__":
    main()
