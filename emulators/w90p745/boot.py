"""Power-on, the image processing loop, and the modelled uClinux kernel.

Sources: seed 001 (banner, configuration block, ``Press ESC to enter debug
mode``, ESC -> blank line and prompt) and real units' boot transcripts of the
same loader build (computersolutions.cn "IPCam Hacking pt 2": ``Press ESC to
enter debug mode ......``, ``Cache enabled!``, ``Processing image 1 ...``
up to the executed image, ``Unzip image 7 ...``, ``Executing image 7 ...``,
then the kernel's ``Linux version 2.4.20-uc0 ...`` and the next lines;
openipcam.com topic 84: ``WARNING: Image 0 was not found. Try to create one
...``, ``.Image 0 created``).

Modelled:

* The ESC window. Real time: six ticks of 1/3 s (2 s in all); the first dot
  comes with a space, so a unit interrupted at once prints the seed's line
  exactly and one that boots prints ``Press ESC to enter debug mode ......``.
  Only ESC (0x1B) stops the boot; other keys are read and ignored. Fast mode:
  the foundation's ``key_window`` decides, and the six dots are printed at
  once when it closes.
* A missing image 0 is recreated at power-on with the loader's built-in
  defaults (MAC 00:00:00:00:00:00, baud -1, USB disabled) and flags ``-af``.
* Boot: ``Cache enabled!`` when the cache is on; then image numbers 1 up to
  the highest present (at most 31) are processed in turn. An active image
  with ``z`` is unzipped to its exec address: real gzip data is inflated;
  data that is not gzip (this emulator's factory kernel) is copied when its
  image checksum is right, otherwise ``ERROR: Unzip image N failed`` and the
  image is skipped. ``c`` without ``z`` copies to the load address (``Copy
  image N ...``, our wording). ``x`` then executes it: the only program the
  emulator can run is a Linux kernel, recognised by its ``Linux version``
  banner in the first MiB; anything else leaves the CPU running garbage and
  the board silent until power is cut. If no image executes, the loader
  falls into its command shell.
* The kernel prints a short uClinux 2.4 log (its banner line is the one found
  in the image), mounts the romfs it finds at 0x7F0E0000 (``-rom1fs-``
  magic; blkmem range from the volume size rounded up to 1 KiB) or panics
  when there is none, then stays silent (the camera application does not
  use the console) and ignores input until power is cut.
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import TYPE_CHECKING, NoReturn

from emulators.w90p745 import flashops
from emulators.w90p745 import profile as P
from emulators.w90p745.imagetable import (
    FLAG_ACTIVE,
    FLAG_COPY,
    FLAG_EXEC,
    FLAG_FILE,
    FLAG_ZIP,
    ImageRecord,
    checksum32,
    find,
    image_data,
    place,
    scan,
)

if TYPE_CHECKING:
    from emulators.w90p745.board import W90P745Device

ESC = b"\x1b"
MAX_IMAGE = 31
ROMFS_BASE = 0x7F0E0000


def ensure_bootinfo(dev: W90P745Device) -> None:
    """Recreate image 0 when it is missing, as the loader does at power-on."""
    if find(dev.flash, 0) is not None:
        return
    dev.con.puts("WARNING: Image 0 was not found. Try to create one ...\n")
    data = P.DEFAULT_CONFIG.pack()
    rec = place(
        ImageRecord(
            0, "BOOT INFO", P.BOOTINFO_BASE, 0, P.BOOTINFO_BASE, P.BOOTINFO_BASE,
            FLAG_ACTIVE | FLAG_FILE,
        ),
        data,
    )  # fmt: skip
    dev.con.puts(".")
    try:
        flashops.write_image(dev.flash, rec, data)
    except flashops.FlashOpError as e:
        dev.con.puts(f"\n{e}\n")
        return
    dev.con.puts("Image 0 created\n\n\n")


def banner(dev: W90P745Device) -> None:
    dev.con.puts(
        P.BANNER
        + dev.config.lines()
        + "\nFor help on the available commands type 'h'\n\n"
        + P.ESC_PROMPT
    )


def esc_window(dev: W90P745Device) -> bool:
    """True when ESC came within the window."""
    uart = dev.uart
    if dev.realtime:
        for tick in range(P.ESC_TICKS):
            deadline = time.monotonic() + P.ESC_TICK
            while (left := deadline - time.monotonic()) > 0:
                got = uart.read(1, left)
                if got == ESC:
                    return True
                if not got:
                    break
            dev.con.puts(" ." if tick == 0 else ".")
        return False
    for _ in range(1024):
        got = dev.clock.key_window(uart, P.ESC_TICKS * P.ESC_TICK)
        if not got:
            break
        if got == ESC:
            return True
    dev.con.puts(" " + "." * P.ESC_TICKS)
    return False


def boot_images(dev: W90P745Device) -> None:
    """The loader's boot: process images 1..N; returns if none executes."""
    if dev.cache:
        dev.con.puts("Cache enabled!\n")
    records = [r for r in scan(dev.flash) if 1 <= r.number <= MAX_IMAGE]
    if not records:
        return
    for n in range(1, max(r.number for r in records) + 1):
        dev.con.puts(f"Processing image {n} ...\n")
        rec = next((r for r in records if r.number == n), None)
        if rec is None or not rec.flags & FLAG_ACTIVE:
            continue
        run_image(dev, rec)


def run_image(dev: W90P745Device, rec: ImageRecord) -> bool:
    """Copy/unzip and execute one image. Returns False if it could not be loaded."""
    entry = load_image(dev, rec)
    if entry is None:
        return False
    if rec.flags & FLAG_EXEC:
        dev.con.puts(f"Executing image {rec.number} ...\n")
        execute(dev, entry)
    return True


def load_image(dev: W90P745Device, rec: ImageRecord) -> int | None:
    """Bring an image where it runs; the entry address, or None after an error."""
    data = image_data(dev.flash, rec)
    n = rec.number
    if data is None:
        dev.con.puts(f"ERROR: Image {n} is out of the flash\n")
        return None
    if rec.flags & FLAG_ZIP:
        dev.con.puts(f"Unzip image {n} ...\n")
        raw = unzip(data, rec)
        if raw is None or not dev.bus.in_ram(rec.exec, len(raw)):
            dev.con.puts(f"ERROR: Unzip image {n} failed\n")
            return None
        dev.ram.write(rec.exec, raw)
        return rec.exec
    if rec.flags & FLAG_COPY:
        dev.con.puts(f"Copy image {n} ...\n")
        if not dev.bus.in_ram(rec.load, len(data)):
            dev.con.puts(f"ERROR: Copy image {n} failed\n")
            return None
        dev.ram.write(rec.load, data)
    return rec.exec


def unzip(data: bytes, rec: ImageRecord) -> bytes | None:
    if data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(data, P.RAM_SIZE)
        except zlib.error:
            return None
        return out if d.eof else None
    return data if checksum32(data) == rec.checksum else None


def execute(dev: W90P745Device, entry: int) -> NoReturn:
    """Jump to ``entry``: a Linux kernel runs, anything else hangs the CPU."""
    if dev.bus.in_ram(entry):
        code = dev.ram.read(entry, min(0x100000, P.RAM_SIZE - entry))
    elif dev.bus.in_flash(entry):
        code = dev.flash.read(entry - P.FLASH_BASE, P.FLASH_BASE + P.FLASH_SIZE - entry)
    else:
        code = b""
    at = code.find(b"Linux version ")
    if at < 0:
        hang(dev)
    end = min(x for x in (code.find(b"\n", at), code.find(b"\0", at), at + 200) if x >= 0)
    kernel(dev, code[at:end])


def hang(dev: W90P745Device) -> NoReturn:
    """The CPU is off in code we do not model: nothing more is printed."""
    while True:
        dev.uart.read(4096, None)


def kernel(dev: W90P745Device, version: bytes) -> NoReturn:
    pages = P.RAM_SIZE // 4096
    log = [
        version.decode("latin-1"),
        "Processor: Winbond W90N745 revision 1",
        "Architecture: W90N745",
        f"On node 0 totalpages: {pages}",
        "zone(0): 0 pages.",
        f"zone(1): {pages} pages.",
        "zone(2): 0 pages.",
        "Kernel command line: root=/dev/rom0 rw",
        "Calibrating delay loop... 39.83 BogoMIPS",
        f"Memory: {P.RAM_SIZE >> 20}MB = {P.RAM_SIZE >> 20}MB total",
        "Memory: 14348KB available (1420K code, 281K data, 40K init)",
        "Dentry cache hash table entries: 2048 (order: 2, 16384 bytes)",
        "Inode cache hash table entries: 1024 (order: 1, 8192 bytes)",
        "Mount-cache hash table entries: 512 (order: 0, 4096 bytes)",
        "Buffer-cache hash table entries: 1024 (order: 0, 4096 bytes)",
        "Page-cache hash table entries: 4096 (order: 2, 16384 bytes)",
        "POSIX conformance testing by UNIFIX",
        "Linux NET4.0 for Linux 2.4",
        "Based upon Swansea University Computer Society NET3.039",
        "Initializing RT netlink socket",
        "Starting kswapd",
        "W90N745 Serial driver version 1.0 (2005-08-15) with no serial options enabled",
        "ttyS00 at 0xfff80000 (irq = 9) is a W90N745",
        "Blkmem copyright 1998,1999 D. Jeff Dionne",
        "Blkmem copyright 1998 Kenneth Albanowski",
    ]
    head = dev.flash.read(ROMFS_BASE - P.FLASH_BASE, 16)
    romfs = head[:8] == b"-rom1fs-"
    if romfs:
        (size,) = struct.unpack(">I", head[8:12])
        end = ROMFS_BASE + max(1024, -(-size // 1024) * 1024) - 1
        end = min(end, P.FLASH_BASE + P.FLASH_SIZE - 1)
        log += [
            "Blkmem 1 disk images:",
            f"0: {ROMFS_BASE:08X}-{end:08X} [VIRTUAL {ROMFS_BASE:08X}-{end:08X}] (RO)",
        ]
    else:
        log += ["Blkmem 0 disk images:"]
    log += [
        "NET4: Linux TCP/IP 1.0 for NET4.0",
        "IP Protocols: ICMP, UDP, TCP",
        "IP: routing cache hash table of 512 buckets, 4Kbytes",
        "TCP: Hash tables configured (established 1024 bind 2048)",
        "NET4: Unix domain sockets 1.0/SMP for Linux NET4.0.",
    ]
    if romfs:
        log += ["VFS: Mounted root (romfs filesystem) readonly.", "Freeing init memory: 40K"]
    else:
        log += [
            'VFS: Cannot open root device "rom0" or 1f:00',
            'Please append a correct "root=" boot option',
            "Kernel panic: VFS: Unable to mount root fs on 1f:00",
        ]
    dev.con.puts("\n".join(log) + "\n")
    hang(dev)
