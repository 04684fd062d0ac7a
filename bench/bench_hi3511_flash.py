"""``camrescue hi3511 flash`` of a 13 MiB-class root image against the emulated camera in fast
mode, end to end: backup of 15 MiB, download to RAM, crc32, erase, copy to flash, crc32, boot
and the JFFS2 mount scan, ``cat /etc/version`` (target: 15 s or less).

The command runs as its own process (``camrescue``, as a user types it) against a device in this
process, whose autoboot was stopped at a terminal first. The time of each step is the engine's
own report (``steps`` in its JSON).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import ROOT_SIZE, root_image, vendor_flash

TARGET = 15.0
SIZE_HINT = 19 << 20  # files of about 19 MiB: a JFFS2 image of about 12.6 MiB


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_autoboot(dev: Hi3511Device) -> None:
    with serial.Serial(dev.path, 115200, timeout=0.05) as term:
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


def _command() -> list[str]:
    exe = shutil.which("camrescue", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "recovery"]


def main() -> None:
    t0 = time.monotonic()
    image = root_image("B", size_hint=SIZE_HINT)
    flash = vendor_flash("A")
    print(
        f"image: JFFS2 root of {len(image) / 2**20:.2f} MiB (partition {ROOT_SIZE / 2**20:.0f} "
        f"MiB), built in {time.monotonic() - t0:.1f} s (not counted)"
    )
    udp = _free_udp_port()
    dev = Hi3511Device(initial_flash=flash, tftp_server=("127.0.0.1", udp))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        img = tmp / "root-B.jffs2"
        img.write_bytes(image)
        try:
            _stop_autoboot(dev)
            argv = [
                *_command(), "hi3511", "flash", "--port", dev.path, "--json", "--quiet",
                "--tftp-bind", f"127.0.0.1:{udp}", "--backup-out", str(tmp / "backup.bin"),
                "--cat", "/etc/version", str(img),
            ]  # fmt: skip
            t1 = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            total = time.monotonic() - t1
            root = dev.flash.read(0x200000, ROOT_SIZE)
            crash = dev.crash_text if dev.crash is not None else None
        finally:
            dev.close()
        backup_ok = (tmp / "backup.bin").read_bytes() == flash[0x100000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if proc.returncode != 0 or crash:
        print(f"the command failed (exit {proc.returncode}): {result.get('message')!r}")
        print(proc.stderr[-1000:])
        if crash:
            print(crash)
    written = root == image + b"\xff" * (ROOT_SIZE - len(image))
    print(
        f"camrescue hi3511 flash, end to end: {total:.2f} s = {total / TARGET:.2f} x the "
        f"{TARGET:.0f} s target (exit {proc.returncode}; flash {'holds the image' if written else 'WRONG'}; "
        f"backup {'identical' if backup_ok else 'DIFFERENT'}; mounted {result.get('mounted')}, "
        f"CRC errors {result.get('crc_errors')})"
    )
    steps = result.get("steps", [])
    counted = sum(s["seconds"] for s in steps)
    for s in steps:
        print(f"  {s['name']:<36} {s['seconds']:7.3f} s")
    print(f"  {'(process start, TFTP server, JSON)':<36} {total - counted:7.3f} s")


if __name__ == "__main__":
    main()
