"""Hi3511 backup in real-time mode: the engine's TFTP path against reading the same 1 MiB
through ``md`` over the 115200 console (the ratio is why the engine uses the network).

* TFTP: ``recovery.hi3511.backup`` (kernel 1 MiB, rootfs 13 MiB, settings 1 MiB) against a
  real-time device, the engine's own TFTP server on 127.0.0.1. The 1 MiB figure is the
  kernel range: its ``upload kernel`` step (``tftp 0x34100000 name 0x100000``) plus its
  ``verify kernel`` step (``crc32``), as the engine reports them.
* Console: ``md.b`` of 64 KiB of the same range, read by a plain pyserial terminal and parsed
  with the engine's ``parse_md_bytes``, extrapolated to 1 MiB (the full 1 MiB would take about
  7.5 minutes of wall time). ``md.b`` prints 79 characters per 16 bytes, so the console carries
  about 4.9 bytes per byte. (The engine's own ``UBoot.md_bytes`` is not used: its timeout,
  ``line_time(count * 5)``, leaves almost no slack for 64 KiB and it has timed out here; the
  engine only ever reads 64 bytes with it.)
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import serial

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import vendor_flash
from recovery.hi3511.network import NetOptions
from recovery.hi3511.operations import Connection, backup
from recovery.hi3511.parsers import parse_md_bytes

BAUD = 115200
KERNEL = 0x34100000
MD_BYTES = 0x10000


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_autoboot(dev: Hi3511Device) -> None:
    """A person at a terminal stops the countdown; the engine then finds the prompt."""
    with serial.Serial(dev.path, BAUD, timeout=0.05) as term:
        dev.power_on()
        seen = b""
        deadline = time.monotonic() + 10
        while b"Hit any key to stop autoboot" not in seen:
            if time.monotonic() > deadline:
                raise TimeoutError(seen[-200:])
            seen += term.read(4096)
        term.write(b" ")
        while not seen.endswith(b"hilinux # "):
            if time.monotonic() > deadline:
                raise TimeoutError(seen[-200:])
            seen += term.read(4096)


def tftp_backup(flash: bytes) -> tuple[float, dict[str, float], bool]:
    """(total seconds, step seconds by name, backup identical to the flash)."""
    udp = _free_udp_port()
    dev = Hi3511Device(initial_flash=flash, tftp_server=("127.0.0.1", udp), realtime=True)
    try:
        _stop_autoboot(dev)
        with tempfile.TemporaryDirectory() as name:
            out = Path(name) / "backup.bin"
            t0 = time.monotonic()
            result = backup(
                Connection(port=dev.path, wait=10), out, NetOptions(tftp_bind=("127.0.0.1", udp))
            )
            total = time.monotonic() - t0
            same = out.read_bytes() == flash[0x100000:]
        if dev.crash is not None:
            raise RuntimeError(dev.crash_text)
    finally:
        dev.close()
    return total, {s.name: s.seconds for s in result["steps"]}, same


def md_read(flash: bytes) -> tuple[float, bool]:
    """Seconds for ``md.b`` of MD_BYTES at the kernel address, captured by a plain terminal
    reader and parsed with the engine's ``parse_md_bytes``; data intact."""
    dev = Hi3511Device(initial_flash=flash, realtime=True)
    try:
        _stop_autoboot(dev)
        with serial.Serial(dev.path, BAUD, timeout=0.05) as term:
            line = f"md.b {KERNEL:#x} {MD_BYTES:#x}\r".encode()
            term.write(line)
            t0 = time.monotonic()
            buf = bytearray()
            deadline = t0 + MD_BYTES * 6 * 10 / BAUD + 10
            while not buf.endswith(b"\nhilinux # ") and time.monotonic() < deadline:
                buf += term.read(max(1, term.in_waiting))
            spent = time.monotonic() - t0
    finally:
        dev.close()
    data = parse_md_bytes(buf.decode("latin-1").replace("\r\n", "\n"), KERNEL)
    return spent, data == flash[0x100000 : 0x100000 + MD_BYTES]


def main() -> None:
    flash = vendor_flash("A")
    total, steps, same = tftp_backup(flash)
    tftp_1m = steps["upload kernel"] + steps["verify kernel"]
    uploads = sum(v for k, v in steps.items() if k.startswith("upload"))
    print(
        f"engine backup over TFTP (real time): 15 MiB in {total:.2f} s end to end "
        f"(uploads {uploads:.2f} s = {15 / uploads:.2f} MiB/s); backup "
        f"{'identical to the flash' if same else 'DIFFERENT from the flash'}"
    )
    print(
        f"  1 MiB (kernel range): upload {steps['upload kernel']:.2f} s + crc32 verify "
        f"{steps['verify kernel']:.3f} s = {tftp_1m:.2f} s"
    )
    spent, intact = md_read(flash)
    per_mib = spent * (1 << 20) / MD_BYTES
    wire = (1 << 20) // 16 * 79 * 10 / BAUD
    print(
        f"md.b over the console at 115200 (real time): 64 KiB in {spent:.2f} s "
        f"({MD_BYTES / spent:.0f} B/s of data; data {'intact' if intact else 'DAMAGED'}); "
        f"extrapolated to 1 MiB: {per_mib:.0f} s (the wire alone: {wire:.0f} s)"
    )
    print(
        f"TFTP is {per_mib / tftp_1m:.0f} x faster than md for 1 MiB "
        f"({tftp_1m:.2f} s vs {per_mib:.0f} s); the whole 15 MiB backup through md would take "
        f"about {per_mib * 15 / 60:.0f} minutes"
    )


if __name__ == "__main__":
    main()
