"""Dump rate over RFC 2217 on loopback as a ratio of the direct pty rate (goal: >= 0.9).

A W90P745 with a 16 KiB image runs in real-time mode at 115200 baud (the wire sets the
pace, as on a bench); the engine's ``dump`` (``reads=1``, ``baud=115200``) reads the image
once straight from the pty and once through :class:`harness.lab.serve.PortServer` at
``rfc2217://127.0.0.1:PORT`` (and, for information, through ``socket://``). Attaching (the loader's ESC window) is not counted: the
engine attaches first, then the dump is timed; the two paths take turns, twice, and the
best run of each counts (on a busy machine single runs vary). What RFC 2217 adds: a TCP round trip per
page command and pyserial's client, which queues every received byte on its own.

For information, the same in fast mode (the emulator does not pace, so the figures are
CPU-bound: they show what each path costs per byte, not what a lab sees), with
``socket://`` too.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from contextlib import closing, nullcontext
from pathlib import Path

from emulators.w90p745 import W90P745Device
from harness.firmware import w90p745 as w90fw
from harness.lab.serve import PortServer
from recovery.transport import Port
from recovery.w90p745.driver import W90Console
from recovery.w90p745.operations import dump

BAUD = 115200
SIZE = 0x4000
BASE = 0x7F180000
GOAL = 0.9
ROUNDS = 2


def _quiet(_text: str) -> None:
    pass


def _dump_rate(flash: bytes, data: bytes, scheme: str | None, realtime: bool, out: Path) -> float:
    """Bytes per second of one dump of the image; checks the bytes."""
    dev = W90P745Device(initial_flash=flash, realtime=realtime)
    with closing(dev):
        server = PortServer(dev.path, f"{scheme}://127.0.0.1:0") if scheme else None
        with server or nullcontext():
            url = server.url if server else dev.path
            with Port(url, BAUD, timeout=10) as port:
                dev.power_on()
                W90Console(port, notify=_quiet).attach(30)
                t0 = time.monotonic()
                result = dump(
                    port, out, images=["bench16"], reads=1, progress=False,
                    notify=_quiet, baud=BAUD,
                )  # fmt: skip
                took = time.monotonic() - t0
    got = (out / result.images[0].file).read_bytes()
    if got != data:
        raise AssertionError(f"the dump over {scheme or 'the pty'} differs from the image")
    return len(data) / took


def main() -> None:
    data = w90fw.rich_image(SIZE, seed=random.Random(18).randrange(1000))
    flash = w90fw.flash_with([(9, "bench16", BASE, data, BASE, "a")])
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # interleaved, best of ROUNDS each: a busy machine slows single runs at random
        pty = rfc = sock = 0.0
        for i in range(ROUNDS):
            pty = max(pty, _dump_rate(flash, data, None, True, tmp / f"pty{i}"))
            rfc = max(rfc, _dump_rate(flash, data, "rfc2217", True, tmp / f"rfc{i}"))
            sock = max(sock, _dump_rate(flash, data, "socket", True, tmp / f"sock{i}"))
        print(
            f"real-time, {BAUD} baud, 16 KiB W90P745 dump, best of {ROUNDS}: pty {pty:.0f} B/s, "
            f"rfc2217 on loopback {rfc:.0f} B/s -> ratio {rfc / pty:.3f} (goal >= {GOAL}), "
            f"socket {sock:.0f} B/s -> {sock / pty:.3f}; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        fast = {s: _dump_rate(flash, data, s, False, tmp / f"f{s}") for s in (None, "rfc2217")}
        fast["socket"] = _dump_rate(flash, data, "socket", False, tmp / "fsocket")
        base = fast[None]
        print(
            f"fast mode (CPU-bound, for information): pty {base:.0f} B/s, "
            f"rfc2217 {fast['rfc2217']:.0f} B/s ({fast['rfc2217'] / base:.2f}), "
            f"socket {fast['socket']:.0f} B/s ({fast['socket'] / base:.2f})"
        )


if __name__ == "__main__":
    main()
