"""Recovery engine for HiSilicon Hi3511 cameras (U-Boot 1.1.4, ``hilinux # ``).

Written for a real camera on ``/dev/ttyUSB0`` (tested against the emulator).
Facts from the seed (000) and REFERENCE.md: console 115200 8N1, prompt
``hilinux # ``; RAM bank 0 at 0xE0000000 (128 MB); 16 MiB NOR at 0x34000000;
U-Boot 0x34000000, kernel uImage 0x34100000, JFFS2 root 0x34200000 (13 MiB),
settings 0x34F00000 (1 MiB); ``tftp addr file`` downloads, ``tftp addr file
len`` uploads ``len`` bytes from ``addr``.

What the engine does, and why:

* **Attach.** At power-on it catches ``Hit any key to stop autoboot`` and sends
  Ctrl-C (U-Boot 1.1.4's ``abortboot`` takes any key). To find a board already
  at its prompt it pokes with Ctrl-C, not CR: U-Boot repeats the last command on
  an empty line, and ``erase``, ``cp`` and ``tftp`` are repeatable; Ctrl-C only
  prints ``<INTERRUPT>`` and a fresh prompt. It then syncs with a unique ``echo`` marker and waits for the marker's output
  line followed by the prompt, so neither the typed echo nor text such as
  crc32's ``==>`` can be taken for the prompt. When it sees Linux it asks for
  a power cycle and keeps waiting for the boot loader until ``--wait`` runs out.
* **Commands.** Every line is checked before it is typed (no ``;``, quotes,
  ``$``, spaces in names; hex addresses inside the board map); the engine waits
  for the echo of the line, then for the prompt at the start of a line.
* **RAM staging.** Images are downloaded to 0xE1000000 (``LOAD_ADDRESS``):
  16 MiB above the RAM base, clear of U-Boot's code and BSS at
  0xE0500000..0xE051E2BC (banner) and of its malloc area and stack just below
  0xE0500000, and of the kernel's load address 0xE0008000; even a 16 MiB image
  ends at 0xE2000000, far inside the 128 MB bank.
* **Safe order** for every write: download into RAM, compare U-Boot's
  ``crc32`` of RAM with the file, and only then ``erase`` exactly the region,
  ``cp.b`` RAM to flash (in 1 MiB pieces, for progress), compare the flash's
  ``crc32``. A failed download never leaves an erased partition.
  ``--skip-erase`` reproduces the seed's mistake on purpose: ``tftp`` straight
  to the flash address with no erase (the flash ANDs old and new data).
* **Timeouts** come from the work: bytes at the console's baud for echoes,
  the flash's own erase timeout (``flinfo``) per sector, a worst-case word
  program time for copies, a minimum TFTP rate per byte, and stall timeouts
  on U-Boot's progress marks (``#`` per 10 TFTP blocks, ``.`` per erased
  sector).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import ipaddress
import json
import os
import re
import secrets
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery.common import (
    BootError,
    ConsoleError,
    DeviceError,
    ImageError,
    Interrupted,
    NetworkError,
    Progress,
    RecoveryError,
    RefusedError,
    UsageError,
    VerifyError,
    add_output_options,
    add_port_options,
    atomic_write_bytes,
    atomic_write_json,
    exit_codes_epilog,
    parse_host_port,
    parse_int,
    progress_enabled,
    run_operation,
    warn,
)
from recovery.images import looks_like_jffs2, parse_node_header, prepare_jffs2_image
from recovery.tftp import TftpServer, safe_path
from recovery.transport import Port, Timeout, TransportError

BOARD = "hi3511"
BAUD = 115200
PROMPT = "hilinux # "
PROMPT_RE = r"(?:\A|\n)hilinux # "
AUTOBOOT_RE = r"Hit any key to stop autoboot"
# Signs that Linux (not U-Boot) owns the console.
LINUX_RE = r"Starting kernel|Uncompressing Linux|Linux version|VFS: |Kernel panic|BusyBox|login: "
# A shell prompt at the start of a line: "# ", "$ " or "[root@cam /]# ".
SHELL_RE = r"(?:\A|\n)(?:\[[^\]\r\n]*\] ?)?[#$] "

FLASH_BASE = 0x34000000
FLASH_SIZE = 0x1000000
RAM_BASE = 0xE0000000
RAM_SIZE = 128 << 20
SECTOR_SIZE = 0x20000  # checked against flinfo at run time
KERNEL_ADDRESS = 0x34100000
LOAD_ADDRESS = 0xE1000000
# U-Boot's code/BSS (banner) with its malloc area and stack below: never load there.
UBOOT_RAM = (0xE0400000, 0xE0520000)
CBSIZE = 256
CP_CHUNK = 1 << 20

# Rates used to derive timeouts (worst cases, not typical values).
MIN_TFTP_RATE = 50_000  # bytes/s: a slow 10 Mbit link with 512-byte lock-step blocks
MIN_READ_RATE = 1_000_000  # bytes/s for crc32 over NOR or RAM on an ARM9
WORD_PROGRAM_MAX = 250e-6  # s per 16-bit word (NOR datasheets: ~10-60 us typ, 200+ max)
SCAN_RATE = 300_000  # bytes/s of JFFS2 mount scan on the camera's CPU


@dataclass(frozen=True)
class Region:
    name: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def describe(self) -> str:
        return f"{self.name} {self.start:#010x}..{self.end - 1:#010x}"


REGIONS: dict[str, Region] = {
    "bootloader": Region("bootloader", 0x34000000, 0x100000),
    "kernel": Region("kernel", 0x34100000, 0x100000),
    "rootfs": Region("rootfs", 0x34200000, 0xD00000),
    "settings": Region("settings", 0x34F00000, 0x100000),
}
JFFS2_REGIONS = ("rootfs", "settings")
DEFAULT_BACKUP = ("kernel", "rootfs", "settings")

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*(?:/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$")


def check_name(name: str, what: str = "file name") -> str:
    """A name U-Boot's parser reads as one word: letters, digits, ``._+-`` and ``/``."""
    if len(name) > 127 or not _NAME_RE.match(name) or ".." in name.split("/"):
        raise ImageError(
            f"unsafe {what} {name!r}: U-Boot's command parser could read it as more than one "
            "word or command (only letters, digits, '.', '_', '+', '-' and '/' are allowed)",
            flash_state="untouched",
            hint="rename the file, or pass --remote-name with a plain name",
        )
    return name


def in_flash(start: int, size: int) -> bool:
    return FLASH_BASE <= start and start + size <= FLASH_BASE + FLASH_SIZE


def check_load_address(addr: int, size: int) -> None:
    if addr % 4 or not (RAM_BASE <= addr and addr + size <= RAM_BASE + RAM_SIZE):
        raise UsageError(
            f"load address {addr:#x}+{size:#x} is not a word-aligned range in RAM "
            f"({RAM_BASE:#x}..{RAM_BASE + RAM_SIZE - 1:#x})"
        )
    if addr < UBOOT_RAM[1] and addr + size > UBOOT_RAM[0]:
        raise UsageError(
            f"load address {addr:#x}+{size:#x} overlaps U-Boot in RAM "
            f"({UBOOT_RAM[0]:#x}..{UBOOT_RAM[1]:#x}); use the default {LOAD_ADDRESS:#x}"
        )


# -- parsers of U-Boot output ---------------------------------------------------------


@dataclass
class FlashInfo:
    size: int
    sectors: list[int]  # start addresses
    protected: list[int]  # start addresses of (RO) sectors
    erase_timeout_ms: int = 4096
    write_timeout_ms: int = 1

    def sector_size(self, index: int) -> int:
        nxt = self.sectors[index + 1] if index + 1 < len(self.sectors) else FLASH_BASE + self.size
        return nxt - self.sectors[index]

    def sectors_in(self, region: Region) -> list[int]:
        return [s for s in self.sectors if region.start <= s < region.end]

    def aligned(self, region: Region) -> bool:
        starts = set(self.sectors) | {FLASH_BASE + self.size}
        return region.start in starts and region.end in starts

    def protected_in(self, region: Region) -> list[int]:
        return [s for s in self.protected if region.start <= s < region.end]


def parse_flinfo(text: str) -> FlashInfo:
    m = re.search(r"Size:\s*(\d+)\s*(MB|kB|KB)\s+in\s+(\d+)\s+Sectors", text)
    if not m:
        raise DeviceError(
            "could not read the flash geometry from 'flinfo'", facts={"flinfo": text[-500:]}
        )
    size = int(m.group(1)) << (20 if m.group(2) == "MB" else 10)
    tail = text.split("Sector Start Addresses:", 1)[-1]
    sectors, protected = [], []
    for sm in re.finditer(r"\b([0-9A-Fa-f]{8})\b( \(RO\))?", tail):
        addr = int(sm.group(1), 16)
        sectors.append(addr)
        if sm.group(2):
            protected.append(addr)
    if len(sectors) != int(m.group(3)):
        raise DeviceError(
            f"'flinfo' announced {m.group(3)} sectors but listed {len(sectors)}",
            facts={"flinfo": text[-500:]},
        )
    info = FlashInfo(size, sectors, protected)
    tm = re.search(r"Erase timeout (\d+) ms, write timeout (\d+) ms", text)
    if tm:
        info.erase_timeout_ms, info.write_timeout_ms = int(tm.group(1)), int(tm.group(2))
    return info


def parse_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Environment size:"):
            break
        name, sep, value = line.partition("=")
        if sep and name and " " not in name:
            env[name] = value
    return env


def parse_md_bytes(text: str, start: int) -> bytes:
    """Bytes of an ``md.b`` dump (``%08lx: xx xx ...    ascii``), checked for contiguity."""
    out = bytearray()
    for line in text.splitlines():
        m = re.match(r"^([0-9a-fA-F]{8}):((?: [0-9a-fA-F]{2})+)", line)
        if not m:
            continue
        if int(m.group(1), 16) != start + len(out):
            raise DeviceError(f"md printed address {m.group(1)}, expected {start + len(out):08x}")
        out += bytes.fromhex(m.group(2))
    return bytes(out)


def parse_mtdparts(bootargs: str) -> list[dict[str, Any]]:
    """``mtdparts=id:2M(boot),13M(rootfs),1M(setting)`` as offsets and sizes."""
    m = re.search(r"mtdparts=[^:\s]+:(\S+)", bootargs)
    if not m:
        return []
    parts, offset = [], 0
    for item in m.group(1).split(","):
        pm = re.match(r"^(\d+|-)([kKmM]?)(?:@(\w+))?\(([^)]*)\)", item)
        if not pm:
            break
        if pm.group(3):
            offset = int(pm.group(3), 0)
        if pm.group(1) == "-":
            size = FLASH_SIZE - offset
        else:
            size = int(pm.group(1)) << {"": 0, "k": 10, "K": 10, "m": 20, "M": 20}[pm.group(2)]
        parts.append(
            {"name": pm.group(4), "address": FLASH_BASE + offset, "size": size, "offset": offset}
        )
        offset += size
    return parts


@dataclass
class UImageInfo:
    magic_ok: bool
    header_crc_ok: bool = False
    name: str = ""
    data_size: int = 0
    load: int = 0
    entry: int = 0


def parse_uimage_header(blob: bytes) -> UImageInfo:
    if len(blob) < 64 or blob[:4] != b"\x27\x05\x19\x56":
        return UImageInfo(False)
    hcrc = int.from_bytes(blob[4:8], "big")
    ok = zlib.crc32(blob[:4] + b"\0\0\0\0" + blob[8:64]) == hcrc
    return UImageInfo(
        True,
        ok,
        blob[32:64].split(b"\0", 1)[0].decode("latin-1"),
        int.from_bytes(blob[12:16], "big"),
        int.from_bytes(blob[16:20], "big"),
        int.from_bytes(blob[20:24], "big"),
    )


def _looks_like_garbage(text: str) -> bool:
    """Bytes a console at another baud produces: mostly outside printable ASCII."""
    if len(text) < 2:
        return False
    printable = sum(1 for c in text if c in "\r\n\t\b\a" or " " <= c <= "~")
    return printable / len(text) < 0.8


# -- the U-Boot driver ----------------------------------------------------------------


@dataclass
class TftpResult:
    bytes: int
    marks: int
    timeouts: int
    seconds: float


@dataclass
class BootReport:
    """What the kernel printed after ``bootm``."""

    started: bool = False
    mounted: bool = False
    filesystem: str | None = None
    panic: str | None = None
    image_error: str | None = None
    crc_errors: int = 0  # crc_failed + invalid_crc
    crc_failed: int = 0  # "... CRC failed on node at ..." (inode/dirent node or name CRC)
    invalid_crc: int = 0  # "Node at ... has invalid CRC" (node header CRC)
    crc_error_lines: list[str] = field(default_factory=list)
    jffs2_messages: int = 0
    jffs2_lines: list[str] = field(default_factory=list)
    shell: bool = False
    files: dict[str, list[str]] = field(default_factory=dict)
    cat: dict[str, str] = field(default_factory=dict)
    kernel_lines: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return self.mounted and self.crc_errors == 0 and self.panic is None


@dataclass(frozen=True)
class ShellQuery:
    """What to look at in the booted system's root shell: ``ls`` and ``cat`` of paths."""

    ls: tuple[str, ...] = ("/",)
    cat: tuple[str, ...] = ()


class UBoot:
    """Talks to U-Boot 1.1.4 over a :class:`~recovery.transport.Port`."""

    def __init__(
        self,
        port: Port,
        *,
        baud: int = BAUD,
        progress: bool = False,
        status: Callable[[str], None] | None = None,
    ) -> None:
        self.port = port
        self.baud = baud
        self.progress = progress
        self.status = status or (lambda text: None)
        self.flinfo: FlashInfo | None = None

    # -- timing -------------------------------------------------------------------------
    def line_time(self, nbytes: int) -> float:
        """Seconds the console needs for ``nbytes`` (10 bits a byte for 8N1), plus slack."""
        return 2.0 + nbytes * 10 / self.baud

    # -- attaching ------------------------------------------------------------------------
    def attach(self, wait: float, *, reboot: bool = False) -> str:
        """Get to the prompt. Returns how: "autoboot", "prompt" or "reboot".

        With ``reboot``, a Linux root shell found on the console is told to ``reboot``
        (as good as a power cycle, without touching the camera) and the countdown of
        the boot loader that follows is caught.
        """
        deadline = time.monotonic() + max(wait, 0.5)
        patterns = [AUTOBOOT_RE, PROMPT_RE, SHELL_RE, LINUX_RE]
        rebooted = False
        consumed = ""
        linux_seen = False
        asked = False
        # Ctrl-C is the poke: it stops the autoboot countdown (any key does), gives a fresh
        # prompt in U-Boot without repeating the last command (an empty line would: erase,
        # cp and tftp are repeatable in 1.1.4), and a fresh prompt in a Linux shell.
        self.port.write(b"\x03")
        pokes = 1
        garbage_rounds = last_len = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            slot = min(left, 0.25 if pokes < 3 else 1.0)
            try:
                idx = self.port.expect(patterns, timeout=slot)
            except Timeout:
                pending = consumed + self.port.pending_text()
                if len(pending) > last_len and _looks_like_garbage(pending[-400:]):
                    # the line keeps answering with garbage (a noise burst at plug-in
                    # happens once): give up early after three such rounds
                    garbage_rounds += 1
                    if garbage_rounds >= 3:
                        break
                last_len = len(pending)
                self.port.write(b"\x03")
                pokes += 1
                if pokes == 4 and not asked and not linux_seen and left > 2:
                    asked = True
                    self.status(
                        f"no prompt yet on {self.port.url}: power the camera on (or cycle its "
                        f"power) now; waiting {max(0.0, deadline - time.monotonic()):.0f} s"
                    )
                continue
            consumed += self.port.before + self.port.match.group(0)
            if idx == 0:
                self.port.write(b"\x03")
                self.sync()
                return "reboot" if rebooted else "autoboot"
            if idx == 1:
                self.sync()
                return "prompt"
            if idx == 2 and reboot and not rebooted:
                rebooted = True
                linux_seen = True
                self.status("the camera is running Linux: typing 'reboot' in its shell")
                self.port.sendline("reboot")
                continue
            if not linux_seen:
                linux_seen = True
                self.status(
                    "the camera is running Linux, not U-Boot: power-cycle it now (unplug, plug "
                    f"in); waiting {max(0.0, deadline - time.monotonic()):.0f} s for its boot loader"
                )
        seen = consumed + self.port.pending_text()
        tail = seen[-300:]
        if _looks_like_garbage(seen[-400:]):
            raise ConsoleError(
                f"garbage on {self.port.url}: the console is probably not at {self.baud} baud",
                flash_state="untouched",
                hint=f"use --baud 115200 (the Hi3511 console is 115200 8N1); check GND; seen: {tail!r}",
            )
        if linux_seen:
            raise ConsoleError(
                "the camera is running Linux: the engine needs U-Boot's prompt",
                flash_state="untouched",
                hint="power-cycle the camera and run the command again right away (or with "
                "--wait 30 and cycle the power while it waits): the engine stops the "
                "autoboot countdown. With a root shell on the console, --reboot types "
                "'reboot' instead",
            )
        if seen.strip():
            raise ConsoleError(
                f"no U-Boot prompt on {self.port.url} (the camera printed something else)",
                flash_state="untouched",
                hint=f"check --baud and that this is a Hi3511 camera; seen: {tail!r}",
            )
        raise ConsoleError(
            f"no answer from the camera on {self.port.url} within {wait:.1f} s",
            flash_state="untouched",
            hint="check that the camera is powered, that TX/RX are crossed (adapter TX to "
            "camera RX), GND is connected, and the port is right; give --wait N to have "
            "time to power it on",
        )

    def sync(self) -> None:
        """Be sure the next thing on the line is a fresh prompt: a unique echo marker."""
        marker = "CRSYNC" + secrets.token_hex(4).upper()
        line = f"echo {marker}"
        # Ctrl-C drops whatever a person may have half typed.
        self.port.write(b"\x03")
        self.port.sendline(line)
        try:
            self.port.expect(r"(?:\A|\n)" + marker + r"\r?\n" + "hilinux # ", self.line_time(64))
        except Timeout as t:
            raise ConsoleError(
                "U-Boot did not answer the sync marker",
                hint=f"check --baud and the wiring; seen: {t.seen[-200:]!r}",
            ) from None

    # -- commands ------------------------------------------------------------------------
    def _send(self, line: str) -> None:
        if len(line) >= CBSIZE or not all(" " <= c <= "~" for c in line):
            raise ValueError(f"refusing to type {line!r}")
        self.port.sendline(line)
        try:
            self.port.expect(re.escape(line) + r"\r?\n", self.line_time(len(line) + 2))
        except Timeout as t:
            raise ConsoleError(
                f"U-Boot did not echo the command {line!r}",
                hint=f"check --baud and the wiring; seen: {t.seen[-200:]!r}",
            ) from None

    def command(self, line: str, timeout: float) -> str:
        """Type ``line``, wait for the prompt; return the output (``\\n`` line ends)."""
        self._send(line)
        try:
            self.port.expect(PROMPT_RE, timeout + self.line_time(0))
        except Timeout as t:
            raise ConsoleError(
                f"no prompt after {line!r} within {timeout:.1f} s",
                hint=f"seen: {t.seen[-300:]!r}",
            ) from None
        return self.port.before.replace("\r\n", "\n").replace("\r", "")

    def version(self) -> str:
        out = self.command("version", 5)
        for line in out.splitlines():
            if line.startswith("U-Boot"):
                return line.strip()
        return out.strip()

    def printenv(self) -> dict[str, str]:
        return parse_env(self.command("printenv", self.line_time(0x10000)))

    def setenv(self, name: str, value: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
            raise UsageError(f"unsafe environment value {name}={value!r}")
        out = self.command(f"setenv {name} {value}", 5)
        if out.strip():
            raise DeviceError(f"setenv {name} failed: {out.strip()}")

    def read_flinfo(self) -> FlashInfo:
        self.flinfo = parse_flinfo(self.command("flinfo", self.line_time(8192)))
        return self.flinfo

    def md_bytes(self, addr: int, count: int) -> bytes:
        out = self.command(f"md.b {addr:#x} {count:#x}", self.line_time(count * 5))
        data = parse_md_bytes(out, addr)
        if len(data) != count:
            raise DeviceError(f"md.b {addr:#x} {count:#x} printed {len(data)} bytes")
        return data

    def crc32(self, addr: int, length: int) -> int:
        out = self.command(f"crc32 {addr:#x} {length:#x}", 5 + length / MIN_READ_RATE)
        m = re.search(
            r"CRC32 for ([0-9a-fA-F]{8}) \.\.\. ([0-9a-fA-F]{8}) ==> ([0-9a-fA-F]{8})", out
        )
        if not m:
            raise DeviceError(f"crc32 printed no checksum: {out.strip()[-200:]!r}")
        if int(m.group(1), 16) != addr or int(m.group(2), 16) != addr + length - 1:
            raise DeviceError(f"crc32 covered {m.group(1)}..{m.group(2)}, not what was asked")
        return int(m.group(3), 16)

    def _abort(self) -> str:
        """Ctrl-C a running network command and get back to the prompt."""
        self.port.write(b"\x03")
        try:
            self.port.expect(PROMPT_RE, 10)
        except Timeout as t:
            raise ConsoleError(
                "U-Boot did not come back after Ctrl-C", hint=f"seen: {t.seen[-200:]!r}"
            ) from None
        return self.port.before

    def tftp(
        self, addr: int, name: str, size: int, *, upload: bool, label: str | None = None
    ) -> TftpResult:
        """``tftp addr name`` (download of ``size`` bytes) or ``tftp addr name size`` (upload)."""
        check_name(name)
        line = f"tftp {addr:#x} {name}" + (f" {size:#x}" if upload else "")
        self._send(line)
        patterns = [
            r"(?<!hilinux )#+",
            r"(?<![A-Za-z])T ",
            r"TFTP error: '([^'\r\n]*)' \((\d+)\)",
            r"Retry count exceeded",
            r"\*\*\* ERROR: `(\w+)' not set",
            r"Bytes transferred = (\d+) \(([0-9a-fA-F]+) hex\)",
            PROMPT_RE,
        ]
        stall = 15.0 + self.line_time(0)
        deadline = time.monotonic() + 30 + size / MIN_TFTP_RATE
        marks = timeouts = restarts = 0
        last_progress = time.monotonic()
        transferred: int | None = None
        problem: str | None = None
        t0 = time.monotonic()
        bar = Progress(label or f"tftp {name}", size, enabled=self.progress)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = problem or "the transfer took too long"
                    self._abort()
                    break
                if time.monotonic() - last_progress > stall:
                    problem = (
                        f"no progress for {stall:.0f} s ({timeouts} TFTP timeouts): is serverip "
                        "this computer's address on the camera's network, and does a firewall "
                        "allow UDP port 69?"
                    )
                    self._abort()
                    break
                try:
                    idx = self.port.expect(patterns, min(stall, left))
                except Timeout:
                    continue
                m = self.port.match
                if idx == 0:
                    marks += len(m.group(0))
                    restarts = 0
                    last_progress = time.monotonic()
                    bar.update(min(size, marks * 5120))
                elif idx == 1:
                    timeouts += 1
                elif idx == 2:
                    problem = f"the TFTP server answered: {m.group(1)} (error {m.group(2)})"
                    self._abort()
                    break
                elif idx == 3:
                    # U-Boot starts the whole transfer over; twice in a row without
                    # progress means nobody answers (20 timeouts: 100 s on hardware).
                    restarts += 1
                    marks = 0
                    if restarts >= 2:
                        problem = (
                            "the camera gets no answer from the TFTP server (repeated "
                            "timeouts): is serverip this computer's address on the camera's "
                            "network, and does a firewall allow UDP port 69?"
                        )
                        self._abort()
                        break
                elif idx == 4:
                    problem = f"the camera's '{m.group(1)}' is not set"
                elif idx == 5:
                    transferred = int(m.group(1))
                    bar.update(transferred)
                else:
                    break
        finally:
            bar.close(ok=problem is None and transferred is not None)
        if problem is None and transferred is None:
            problem = "tftp printed no 'Bytes transferred' line"
        if problem is not None:
            raise NetworkError(
                f"tftp {'upload' if upload else 'download'} of {name!r} failed: {problem}"
            )
        assert transferred is not None
        if transferred != size:
            raise VerifyError(
                f"tftp of {name!r} moved {transferred} bytes, expected {size}",
            )
        return TftpResult(transferred, marks, timeouts, time.monotonic() - t0)

    def erase(self, region: Region) -> int:
        """``erase start +len`` of exactly ``region`` (checked against flinfo first)."""
        info = self.flinfo or self.read_flinfo()
        if not info.aligned(region) or not in_flash(region.start, region.size):
            raise DeviceError(f"{region.describe()} is not on sector boundaries; refusing to erase")
        sectors = info.sectors_in(region)
        per_sector = info.erase_timeout_ms / 1000 + 2.0
        self._send(f"erase {region.start:#x} +{region.size:#x}")
        patterns = [r"\.+", PROMPT_RE]
        dots = 0
        text = ""
        with Progress(
            f"erase {region.name}", len(sectors), unit="sectors", enabled=self.progress
        ) as bar:
            while True:
                try:
                    idx = self.port.expect(patterns, per_sector + self.line_time(0))
                except Timeout as t:
                    raise DeviceError(
                        f"erase of {region.describe()} stalled after {dots} sectors",
                        flash_state=f"{region.name}: erase interrupted after {dots} sectors",
                        hint=f"seen: {t.seen[-200:]!r}",
                    ) from None
                text += self.port.before + self.port.match.group(0)
                if idx == 0:
                    dots += len(self.port.match.group(0))
                    bar.update(dots)
                else:
                    break
        m = re.search(r"Erased (\d+) sectors", text)
        if "Warning" in text or "Error" in text or not m or int(m.group(1)) != len(sectors):
            raise DeviceError(
                f"erase of {region.describe()} did not complete: {text.strip()[-300:]!r}",
                flash_state=f"{region.name}: partly erased",
            )
        return len(sectors)

    def copy_to_flash(self, src: int, dst: int, length: int, label: str) -> None:
        """``cp.b`` in 1 MiB pieces; each piece's timeout from a worst-case word program time."""
        errors = (
            "Flash not Erased",
            "Can't write to protected Flash sectors",
            "Outside available Flash",
            "Timeout writing to Flash",
            "Zero length",
        )
        with Progress(f"write {label}", length, enabled=self.progress) as bar:
            done = 0
            while done < length:
                n = min(CP_CHUNK, length - done)
                out = self.command(
                    f"cp.b {src + done:#x} {dst + done:#x} {n:#x}", 10 + n / 2 * WORD_PROGRAM_MAX
                )
                bad = [e for e in errors if e in out]
                if bad or "done" not in out:
                    raise DeviceError(
                        f"copy to flash at {dst + done:#x} failed: {out.strip()[-200:]!r}",
                        flash_state=f"{label}: erased, then programmed up to {dst + done:#x}",
                    )
                done += n
                bar.update(done)

    def protect(self, on: bool, region: Region) -> None:
        word = "on" if on else "off"
        out = self.command(f"protect {word} {region.start:#x} +{region.size:#x}", 10)
        if "rotected" not in out:
            raise DeviceError(f"protect {word} failed: {out.strip()!r}")

    def bootm(
        self,
        addr: int = KERNEL_ADDRESS,
        *,
        scan_bytes: int = 0xD00000,
        shell: ShellQuery | None = None,
    ) -> BootReport:
        """``bootm`` and read the kernel log until root is mounted (then query the shell) or not."""
        rep = BootReport()
        t0 = time.monotonic()
        self._send(f"bootm {addr:#x}")
        patterns = [PROMPT_RE, r"[^\r\n]*\r?\n", r"Kernel panic - not syncing:[^\r\n]*"]
        stall = 10 + scan_bytes / SCAN_RATE
        deadline = time.monotonic() + 60 + 2 * scan_bytes / SCAN_RATE
        bar = Progress("boot", None, unit="lines", enabled=self.progress)
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    idx = self.port.expect(patterns, max(0.1, min(stall, left)))
                except Timeout as t:
                    rep.image_error = rep.image_error or (
                        f"the kernel stopped printing before the root file system was mounted "
                        f"(last: {t.seen[-120:]!r})"
                    )
                    break
                text = self.port.match.group(0)
                if idx == 0:
                    before = self.port.before
                    bad = re.search(r"Bad Magic Number|Bad Header Checksum|Bad Data CRC", before)
                    rep.image_error = bad.group(0) if bad else "bootm returned to the prompt"
                    return rep
                line = text.strip()
                rep.kernel_lines += 1
                bar.update(rep.kernel_lines)
                if "Starting kernel" in line:
                    rep.started = True
                self._note_kernel_line(rep, line)
                if "Kernel panic - not syncing:" in line:
                    rep.panic = line[line.index("Kernel panic") :]
                    break
                mounted = re.search(r"VFS: Mounted root \(([^)]*)\)", line)
                if mounted:
                    rep.mounted = True
                    rep.filesystem = mounted.group(1)
                    break
        finally:
            bar.close()
        if rep.mounted:
            self._shell(rep, shell or ShellQuery(), stall)
        rep.seconds = time.monotonic() - t0
        return rep

    @staticmethod
    def _note_kernel_line(rep: BootReport, line: str) -> None:
        if "CRC failed" in line or "invalid CRC" in line:
            rep.crc_errors += 1
            if "CRC failed" in line:
                rep.crc_failed += 1
            else:
                rep.invalid_crc += 1
            if len(rep.crc_error_lines) < 50:
                rep.crc_error_lines.append(line)
        if line.startswith("jffs2") or "JFFS2" in line or "Empty flash at" in line:
            rep.jffs2_messages += 1
            if len(rep.jffs2_lines) < 50:
                rep.jffs2_lines.append(line)

    def _shell(self, rep: BootReport, query: ShellQuery, stall: float) -> None:
        """Wait for the root shell's ``# ``, then run the ``ls``/``cat`` of ``query``."""
        shell_prompt = r"(?:\A|\n)[^\r\n]*# "
        try:
            self.port.expect(shell_prompt, stall)
        except Timeout:
            self.port.write(b"\r")
            try:
                self.port.expect(shell_prompt, 5)
            except Timeout:
                return
        for line in self.port.before.replace("\r", "").splitlines():
            self._note_kernel_line(rep, line.strip())
        rep.shell = True
        jobs = [("ls", p) for p in query.ls] + [("cat", p) for p in query.cat]
        for verb, path in jobs:
            if not re.fullmatch(r"/[A-Za-z0-9._/+-]*", path):
                continue
            cmd = f"{verb} {path}"
            self.port.sendline(cmd)
            try:
                self.port.expect(re.escape(cmd) + r"\r?\n", self.line_time(len(cmd) + 2))
                self.port.expect(shell_prompt, 10 + self.line_time(65536))
            except Timeout:
                break
            text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", self.port.before).replace("\r\n", "\n")
            if verb == "ls":
                rep.files[path] = sorted(text.split())
            else:
                rep.cat[path] = text


# -- network --------------------------------------------------------------------------


@dataclass
class NetOptions:
    ipaddr: str | None = None
    serverip: str | None = None
    netmask: str | None = None
    tftp_bind: tuple[str, int] = ("0.0.0.0", 69)
    tftp_root: str | None = None
    server: bool = True
    load_address: int = LOAD_ADDRESS


@dataclass
class NetSettings:
    ipaddr: str
    serverip: str
    netmask: str
    changed: dict[str, str]


def _ip(value: str | None, what: str) -> ipaddress.IPv4Address | None:
    if value in (None, ""):
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise NetworkError(
            f"{what} {value!r} is not an IPv4 address", flash_state="untouched"
        ) from None


def resolve_network(env: dict[str, str], opts: NetOptions) -> NetSettings:
    """The camera's ipaddr/serverip/netmask after the options; checked for one subnet."""
    changed = {}
    values = {}
    for key in ("ipaddr", "serverip", "netmask"):
        given = getattr(opts, key)
        if given is not None:
            _ip(given, f"--{key}")
            if env.get(key) != given:
                changed[key] = given
            values[key] = given
        else:
            values[key] = env.get(key, "")
    ip = _ip(values["ipaddr"], "the camera's ipaddr")
    server = _ip(values["serverip"], "the camera's serverip")
    missing = [k for k, v in (("ipaddr", ip), ("serverip", server)) if v is None]
    if missing:
        raise NetworkError(
            "the camera has no " + " and no ".join(missing) + " set",
            flash_state="untouched",
            hint="give --ipaddr (a free address for the camera), --serverip (this computer's "
            "address on the camera's network) and --netmask, e.g. --ipaddr 192.168.1.10 "
            "--serverip 192.168.1.1 --netmask 255.255.255.0",
        )
    assert ip is not None and server is not None
    mask_text = values["netmask"] or "255.255.255.0"
    try:
        net = ipaddress.IPv4Network(f"{ip}/{mask_text}", strict=False)
    except ValueError:
        raise NetworkError(f"netmask {mask_text!r} is not valid", flash_state="untouched") from None
    if server not in net or ip == server:
        raise NetworkError(
            f"ipaddr {ip} and serverip {server} are not two addresses on one subnet "
            f"({net}): U-Boot 1.1.4 would try a gateway and the transfer would fail",
            flash_state="untouched",
            hint="give --ipaddr/--serverip/--netmask on the network of this computer's "
            "card that the camera is plugged into",
        )
    return NetSettings(str(ip), str(server), mask_text, changed)


class _Files:
    """The TFTP side as the engine needs it: offer files, collect uploads."""

    def __init__(self, opts: NetOptions, status: Callable[[str], None]) -> None:
        self.opts = opts
        self.status = status
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.server: TftpServer | None = None
        self._staged: list[Path] = []
        if opts.tftp_root:
            self.root = Path(opts.tftp_root)
            if not self.root.is_dir():
                raise NetworkError(
                    f"--tftp-root {self.root} is not a directory", flash_state="untouched"
                )
        elif not opts.server:
            raise UsageError("--no-server needs --tftp-root DIR (the root of your TFTP server)")
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="camrescue-")
            self.root = Path(self._tmp.name)

    def __enter__(self) -> _Files:
        if self.opts.server:
            try:
                self.server = TftpServer(self.root, self.opts.tftp_bind).start()
            except BaseException:
                self.__exit__()
                raise
            self.status(
                f"TFTP server on {self.opts.tftp_bind[0]}:{self.server.port}, root {self.root}"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        for p in self._staged:
            with contextlib.suppress(OSError):
                p.unlink()
        if self._tmp is not None:
            self._tmp.cleanup()

    def offer(self, name: str, data: bytes) -> None:
        if self.server is not None:
            self.server.publish(name, data)
            return
        path = safe_path(self.root, name)
        if path.exists():
            if path.is_file() and path.read_bytes() == data:
                return  # the user's own copy: serve it, keep it
            raise UsageError(
                f"{path} already exists in the TFTP root with other content",
                flash_state="untouched",
                hint="give --remote-name with another name",
            )
        atomic_write_bytes(path, data)
        self._staged.append(path)

    def expect_upload(self, name: str) -> int:
        """Before an upload: drop a stale file of that name; return the transfer mark."""
        if self.server is None:
            with contextlib.suppress(FileNotFoundError):
                safe_path(self.root, name).unlink()
        return self.mark()

    def mark(self) -> int:
        return len(self.server.transfers) if self.server is not None else 0

    def collect(self, name: str, length: int, since: int) -> bytes:
        """The uploaded file ``name`` (removed from the root afterwards)."""
        path = safe_path(self.root, name)
        if self.server is not None:
            t = self.server.wait_upload(name, 10.0, since)
            if t is None or t.status != "done":
                raise NetworkError(f"the TFTP server did not receive {name!r} completely")
        else:
            deadline = time.monotonic() + 10.0
            while not (path.is_file() and path.stat().st_size >= length):
                if time.monotonic() > deadline:
                    raise NetworkError(
                        f"{path} did not appear with {length} bytes: does your TFTP server "
                        "allow uploads (tftpd-hpa needs -c) and serve --tftp-root?"
                    )
                time.sleep(0.05)
        data = path.read_bytes()
        with contextlib.suppress(OSError):
            path.unlink()
        return data

    def explain_missing(self, name: str) -> str:
        if self.server is None:
            return f"is {self.root} the root of your TFTP server?"
        reqs = self.server.requests(name)
        if not reqs:
            return (
                f"the camera never reached this computer's TFTP server ({self.opts.tftp_bind[0]}:"
                f"{self.server.port}): check serverip, the cable and the firewall"
            )
        return f"the server saw the request ({reqs[-1].status})"


# -- operations -----------------------------------------------------------------------


@dataclass
class Connection:
    port: str
    baud: int = BAUD
    wait: float = 20.0
    reboot: bool = False
    transcript: str | None = None
    progress: bool = False


@dataclass
class Step:
    name: str
    seconds: float


class Session:
    """One attached camera: the port, the driver, the flash state and step timings."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.state = "untouched"
        self.steps: list[Step] = []
        self.port: Port | None = None
        self.uboot: UBoot | None = None
        self.attached_via = ""
        self.env: dict[str, str] = {}
        self.version = ""

    def status(self, text: str) -> None:
        if self.conn.progress:
            print(text, file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.steps.append(Step(name, round(time.monotonic() - t0, 3)))

    def __enter__(self) -> Session:
        try:
            self.port = Port(self.conn.port, self.conn.baud, transcript=self.conn.transcript)
        except TransportError as e:
            raise ConsoleError(str(e), flash_state="untouched") from None
        self.uboot = UBoot(
            self.port, baud=self.conn.baud, progress=self.conn.progress, status=self.status
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.port is not None:
            self.port.close()

    @contextlib.contextmanager
    def guard(self) -> Iterator[Session]:
        """Open, and turn every failure into a RecoveryError that carries the flash state."""
        try:
            with self:
                try:
                    yield self
                except KeyboardInterrupt:
                    if self.port is not None:  # stop a running tftp loop in U-Boot too
                        with contextlib.suppress(Exception):
                            self.port.write(b"\x03")
                    raise
        except KeyboardInterrupt:
            raise Interrupted("interrupted", flash_state=self.state, hint=self._hint()) from None
        except RecoveryError as e:
            if e.flash_state is None:
                e.flash_state = self.state
            if e.hint is None:
                e.hint = self._hint()
            e.facts.setdefault("steps", [s.__dict__ for s in self.steps])
            raise
        except TransportError as e:
            raise ConsoleError(
                str(e),
                flash_state=self.state,
                hint=self._hint(),
                facts={"seen": getattr(e, "seen", "")[-300:]},
            ) from None

    def _hint(self) -> str | None:
        if self.state == "untouched":
            return None
        return (
            "do not power the camera off; run 'camrescue hi3511 restore' with your backup (or "
            "'flash' again); the boot loader itself was not touched"
        )

    def attach(self) -> UBoot:
        assert self.uboot is not None
        with self.step("attach"):
            self.attached_via = self.uboot.attach(self.conn.wait, reboot=self.conn.reboot)
        with self.step("identify"):
            self.version = self.uboot.version()
            self.env = self.uboot.printenv()
            self.uboot.read_flinfo()
        return self.uboot

    def check_geometry(self, regions: list[Region]) -> None:
        assert self.uboot is not None and self.uboot.flinfo is not None
        info = self.uboot.flinfo
        if info.size != FLASH_SIZE or FLASH_BASE not in info.sectors:
            raise DeviceError(
                f"the flash is {info.size} bytes at {info.sectors[0]:#x}, not the Hi3511's "
                "16 MiB at 0x34000000: is this the right camera?",
                flash_state="untouched",
            )
        for r in regions:
            if not info.aligned(r):
                raise DeviceError(
                    f"{r.describe()} is not on sector boundaries", flash_state="untouched"
                )

    def network(self, opts: NetOptions) -> NetSettings:
        assert self.uboot is not None
        net = resolve_network(self.env, opts)
        for key, value in net.changed.items():
            self.uboot.setenv(key, value)
            self.env[key] = value
        return net

    def write_region(
        self, files: _Files, opts: NetOptions, region: Region, data: bytes, name: str
    ) -> dict[str, Any]:
        """The safe path: RAM, verify, erase exactly, copy, verify."""
        assert self.uboot is not None
        ub = self.uboot
        check_load_address(opts.load_address, len(data))
        crc = zlib.crc32(data)
        files.offer(name, data)
        with self.step(f"download {region.name} to RAM"):
            try:
                ub.tftp(
                    opts.load_address, name, len(data), upload=False, label=f"tftp {region.name}"
                )
            except NetworkError as e:
                e.hint = e.hint or files.explain_missing(name)
                raise
        with self.step(f"verify {region.name} in RAM"):
            ram_crc = ub.crc32(opts.load_address, len(data))
        if ram_crc != crc:
            raise VerifyError(
                f"the copy in RAM has crc32 {ram_crc:08x}, the file {crc:08x}: the download was "
                "damaged",
                hint="run the command again; nothing was erased",
            )
        if region.name == "bootloader":
            ub.protect(False, region)
        self.state = f"{region.describe()} is being erased"
        with self.step(f"erase {region.name}"):
            sectors = ub.erase(region)
        self.state = f"{region.describe()} is erased (blank): its old contents are gone"
        with self.step(f"write {region.name}"):
            ub.copy_to_flash(opts.load_address, region.start, len(data), region.name)
        self.state = f"{region.describe()} is written but not verified"
        with self.step(f"verify {region.name} in flash"):
            flash_crc = ub.crc32(region.start, len(data))
        if flash_crc != crc:
            self.state = f"{region.describe()} holds data that does not match the image"
            raise VerifyError(
                f"the flash has crc32 {flash_crc:08x} after writing, the image {crc:08x}"
            )
        if region.name == "bootloader":
            ub.protect(True, region)
        self.state = f"{region.describe()} written and verified"
        return {
            "region": region.name,
            "address": region.start,
            "length": len(data),
            "crc32": f"{crc:08x}",
            "erased_sectors": sectors,
        }

    def boot(self, shell: ShellQuery) -> BootReport:
        assert self.uboot is not None
        with self.step("boot"):
            return self.uboot.bootm(KERNEL_ADDRESS, scan_bytes=REGIONS["rootfs"].size, shell=shell)


def _boot_facts(rep: BootReport) -> dict[str, Any]:
    return {
        "boot": rep,
        "mounted": rep.mounted,
        "crc_errors": rep.crc_errors,
        "panic": rep.panic,
        "files": rep.files,
        "cat": rep.cat,
    }


def _boot_verdict(rep: BootReport, facts: dict[str, Any], what: str) -> None:
    if rep.image_error:
        raise BootError(f"{what}, but the kernel did not boot: {rep.image_error}", facts=facts)
    if rep.panic:
        raise BootError(f"{what}, but the kernel panicked: {rep.panic}", facts=facts)
    if not rep.mounted:
        raise BootError(f"{what}, but the root file system was not mounted", facts=facts)
    if rep.crc_errors:
        raise BootError(
            f"{what}; root mounted but the kernel reported {rep.crc_errors} JFFS2 CRC errors "
            "(was the partition erased before writing?)",
            facts=facts,
        )


# -- backup manifests -------------------------------------------------------------------


@dataclass
class BackupImage:
    path: Path
    base: int
    data: bytes
    ranges: list[dict[str, Any]]
    manifest: dict[str, Any] | None

    def range_data(self, r: dict[str, Any]) -> bytes:
        off = r["address"] - self.base
        return self.data[off : off + r["length"]]


def manifest_path(image: Path) -> Path:
    return image.with_name(image.name + ".json")


def load_backup(path: str | os.PathLike[str], address: int | None = None) -> BackupImage:
    """A backup image with its manifest (or a seed-style dump located by size/--address)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImageError(
            f"cannot read the backup {p}: {e.strerror}", flash_state="untouched"
        ) from e
    mpath = manifest_path(p)
    manifest = None
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as e:
            raise ImageError(
                f"the manifest {mpath} is unreadable: {e}", flash_state="untouched"
            ) from e
        if manifest.get("board") != BOARD:
            raise ImageError(f"{mpath} is not a Hi3511 backup manifest", flash_state="untouched")
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256") or len(data) != manifest.get(
            "size"
        ):
            raise ImageError(
                f"{p} does not match its manifest (size or sha256): the backup is damaged",
                flash_state="untouched",
            )
        base = int(manifest["base"])
        ranges = [dict(r) for r in manifest["ranges"]]
        for r in ranges:
            piece = data[r["address"] - base : r["address"] - base + r["length"]]
            if f"{zlib.crc32(piece):08x}" != r["crc32"]:
                raise ImageError(
                    f"range {r['name']} of {p} fails its crc32", flash_state="untouched"
                )
    else:
        base = (
            address
            if address is not None
            else {0xF00000: 0x34100000, FLASH_SIZE: FLASH_BASE}.get(len(data), -1)
        )
        if base < 0:
            raise ImageError(
                f"{p} has no manifest ({mpath.name}) and its size {len(data):#x} is not a "
                "known dump (0xf00000 from 0x34100000 as in the seed, or 0x1000000)",
                flash_state="untouched",
                hint="give --address with the flash address the dump starts at",
            )
        if not in_flash(base, len(data)):
            raise ImageError(f"{p} does not fit the flash at {base:#x}", flash_state="untouched")
        ranges = []
        for r in REGIONS.values():
            lo, hi = max(r.start, base), min(r.end, base + len(data))
            if lo < hi:
                if (lo, hi) != (r.start, r.end):
                    raise ImageError(
                        f"{p} at {base:#x} covers only part of the {r.name} region",
                        flash_state="untouched",
                    )
                piece = data[lo - base : hi - base]
                ranges.append(
                    {
                        "name": r.name,
                        "address": lo,
                        "length": hi - lo,
                        "crc32": f"{zlib.crc32(piece):08x}",
                    }
                )
    return BackupImage(p, base, data, ranges, manifest)


# -- the public API ---------------------------------------------------------------------


def info(conn: Connection) -> dict[str, Any]:
    """U-Boot version, flash geometry, environment, partition map, root fs check."""
    sess = Session(conn)
    with sess.guard():
        ub = sess.attach()
        assert ub.flinfo is not None
        root = ub.md_bytes(REGIONS["rootfs"].start, 64)
        kernel = parse_uimage_header(ub.md_bytes(KERNEL_ADDRESS, 64))
        settings = ub.md_bytes(REGIONS["settings"].start, 64)
        jffs2 = looks_like_jffs2(root)
        head = parse_node_header(root, 0)
        partitions = parse_mtdparts(sess.env.get("bootargs", ""))
        fi = ub.flinfo
        return {
            "message": f"{sess.version}; root file system {'looks like JFFS2' if jffs2 else 'is NOT JFFS2'}",
            "attached": sess.attached_via,
            "uboot_version": sess.version,
            "flash": {
                "base": FLASH_BASE,
                "size": fi.size,
                "sectors": len(fi.sectors),
                "sector_size": fi.sector_size(0),
                "protected": [f"{a:#010x}" for a in fi.protected],
                "erase_timeout_ms": fi.erase_timeout_ms,
            },
            "env": sess.env,
            "partitions": partitions,
            "regions": {k: {"address": r.start, "size": r.size} for k, r in REGIONS.items()},
            "rootfs_jffs2": jffs2,
            "rootfs_first_node": head.kind if head else None,
            "rootfs_empty": root == b"\xff" * len(root),
            "settings_jffs2": looks_like_jffs2(settings),
            "kernel": kernel,
            "steps": sess.steps,
        }


def _backup_ranges(include_bootloader: bool) -> list[Region]:
    names = (("bootloader",) if include_bootloader else ()) + DEFAULT_BACKUP
    return [REGIONS[n] for n in names]


def _do_backup(sess: Session, files: _Files, out: Path, include_bootloader: bool) -> dict[str, Any]:
    assert sess.uboot is not None
    ub = sess.uboot
    regions = _backup_ranges(include_bootloader)
    mac = re.sub(r"[^0-9a-fA-F]", "", sess.env.get("ethaddr", "")).lower() or "unknown"
    pieces: list[bytes] = []
    ranges: list[dict[str, Any]] = []
    for r in regions:
        name = f"camrescue-{mac}-{r.name}.bin"
        since = files.expect_upload(name)
        with sess.step(f"upload {r.name}"):
            try:
                ub.tftp(r.start, name, r.size, upload=True, label=f"backup {r.name}")
            except NetworkError as e:
                e.hint = e.hint or files.explain_missing(name)
                raise
            data = files.collect(name, r.size, since)
        if len(data) != r.size:
            raise VerifyError(f"received {len(data)} bytes of {r.name}, expected {r.size}")
        with sess.step(f"verify {r.name}"):
            dev_crc = ub.crc32(r.start, r.size)
        crc = zlib.crc32(data)
        if crc != dev_crc:
            raise VerifyError(
                f"backup of {r.name}: the camera's crc32 is {dev_crc:08x}, the received file's "
                f"{crc:08x}: the upload was damaged",
                hint="run the backup again",
            )
        pieces.append(data)
        ranges.append(
            {
                "name": r.name,
                "address": r.start,
                "offset": r.start - regions[0].start,
                "length": r.size,
                "crc32": f"{crc:08x}",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    image = b"".join(pieces)
    manifest = {
        "format": "camrescue-backup/1",
        "board": BOARD,
        "image": out.name,
        "base": regions[0].start,
        "size": len(image),
        "crc32": f"{zlib.crc32(image):08x}",
        "sha256": hashlib.sha256(image).hexdigest(),
        "ranges": ranges,
        "uboot_version": sess.version,
        "ethaddr": sess.env.get("ethaddr"),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "env": sess.env,
    }
    with sess.step("write backup"):
        atomic_write_bytes(out, image)
        atomic_write_json(manifest_path(out), manifest)
    return {
        "path": str(out),
        "manifest": str(manifest_path(out)),
        "size": len(image),
        "sha256": manifest["sha256"],
        "ranges": ranges,
    }


def backup(
    conn: Connection,
    out: str | os.PathLike[str],
    net: NetOptions,
    *,
    include_bootloader: bool = False,
) -> dict[str, Any]:
    """Upload kernel, root and settings (and the boot loader) and verify each range's crc32."""
    target = Path(out)
    _check_writable(target)
    sess = Session(conn)
    with sess.guard():
        sess.attach()
        sess.check_geometry(_backup_ranges(include_bootloader))
        settings = sess.network(net)
        with _Files(net, sess.status) as files:
            facts = _do_backup(sess, files, target, include_bootloader)
        return {
            "message": f"backup of {len(facts['ranges'])} ranges written to {target} (verified by crc32)",
            **facts,
            "network": settings,
            "uboot_version": sess.version,
            "steps": sess.steps,
        }


def _check_writable(target: Path) -> None:
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {target}: {parent} is not a writable directory")


def _default_backup_path() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(f"hi3511-backup-{stamp}.bin")


def flash(
    conn: Connection,
    image: str | os.PathLike[str],
    net: NetOptions,
    *,
    partition: str = "rootfs",
    backup_file: str | None = None,
    no_backup: bool = False,
    backup_out: str | None = None,
    skip_erase: bool = False,
    boot: bool = True,
    remote_name: str | None = None,
    shell: ShellQuery | None = None,
) -> dict[str, Any]:
    """Write a JFFS2 image (raw or .pkg) to a partition the safe way, then boot and report."""
    if partition not in JFFS2_REGIONS:
        raise UsageError(f"--partition must be one of {', '.join(JFFS2_REGIONS)}")
    region = REGIONS[partition]
    prepared = prepare_jffs2_image(image, partition_size=region.size, erase_size=SECTOR_SIZE)
    if remote_name is None:
        stem = Path(image).name
        remote_name = stem if prepared.kind == "jffs2" else f"{Path(image).stem}.jffs2"
    check_name(remote_name, "file name for the camera")
    existing = None
    if backup_file:
        existing = load_backup(backup_file)
    elif not no_backup:
        out = Path(backup_out) if backup_out else _default_backup_path()
        _check_writable(out)
    warnings: list[str] = []
    if skip_erase:
        text = (
            f"--skip-erase: the image is written with tftp straight to {region.start:#x} WITHOUT "
            "erasing. NOR flash can only clear bits, so the result is old AND new data: expect "
            "JFFS2 CRC errors (this reproduces the seed's mistake on purpose)"
        )
        warn(text)
        warnings.append(text)
    sess = Session(conn)
    facts: dict[str, Any] = {
        "partition": partition,
        "image": prepared.summary(),
        "warnings": warnings,
    }
    with sess.guard():
        sess.attach()
        sess.check_geometry([region])
        if existing is not None:
            mac = existing.manifest.get("ethaddr") if existing.manifest else None
            if mac and sess.env.get("ethaddr") and mac.lower() != sess.env["ethaddr"].lower():
                raise RefusedError(
                    f"the backup {backup_file} is of another camera (ethaddr {mac}, this one "
                    f"{sess.env['ethaddr']})",
                    hint="make a backup of this camera first (drop --backup)",
                )
            facts["backup"] = {"path": str(existing.path), "given": True}
        net_settings = sess.network(net)
        facts["network"] = net_settings
        with _Files(net, sess.status) as files:
            if existing is None and not no_backup:
                facts["backup"] = _do_backup(sess, files, out, include_bootloader=False)
            elif no_backup:
                facts["backup"] = None
            assert sess.uboot is not None
            if skip_erase:
                files.offer(remote_name, prepared.data)
                sess.state = (
                    f"{region.describe()} is being programmed over its old contents (no erase)"
                )
                with sess.step(f"tftp {partition} straight to flash"):
                    sess.uboot.tftp(
                        region.start,
                        remote_name,
                        prepared.size,
                        upload=False,
                        label=f"tftp {partition}",
                    )
                sess.state = f"{region.describe()} holds old AND new data (written without erase)"
                with sess.step(f"crc32 {partition}"):
                    flash_crc = sess.uboot.crc32(region.start, prepared.size)
                facts["flash_crc32"] = f"{flash_crc:08x}"
                facts["flash_matches_image"] = flash_crc == prepared.crc32
            else:
                facts["write"] = sess.write_region(files, net, region, prepared.data, remote_name)
                facts["flash_crc32"] = facts["write"]["crc32"]
                facts["flash_matches_image"] = True
        facts["steps"] = sess.steps
        what = f"{partition} written from {Path(image).name}" + (
            " without erase" if skip_erase else " and verified"
        )
        if not boot:
            return {"message": what + " (not booted)", **facts}
        rep = sess.boot(shell or ShellQuery())
        facts.update(_boot_facts(rep))
        _boot_verdict(rep, facts, what)
        return {"message": f"{what}; booted, root mounted with no CRC errors", **facts}


def restore(
    conn: Connection,
    backup_path: str | os.PathLike[str],
    net: NetOptions,
    *,
    partitions: list[str] | None = None,
    include_bootloader: bool = False,
    confirm_bootloader: bool = False,
    address: int | None = None,
    boot: bool = True,
    shell: ShellQuery | None = None,
) -> dict[str, Any]:
    """Write a backup's ranges back, each the safe way, then boot and report."""
    bk = load_backup(backup_path, address)
    ranges = bk.ranges
    if partitions:
        unknown = set(partitions) - {r["name"] for r in ranges}
        if unknown:
            raise UsageError(f"the backup has no {', '.join(sorted(unknown))} range")
        ranges = [r for r in ranges if r["name"] in partitions]
    if any(r["name"] == "bootloader" for r in ranges):
        if not include_bootloader:
            ranges = [r for r in ranges if r["name"] != "bootloader"]
        elif not confirm_bootloader:
            raise RefusedError(
                "restoring the boot loader area needs --confirm-bootloader: if it goes wrong the "
                "camera no longer starts and only a flash programmer can fix it",
                flash_state="untouched",
            )
    if not ranges:
        raise UsageError("nothing to restore")
    sess = Session(conn)
    facts: dict[str, Any] = {"backup": str(bk.path), "ranges": []}
    with sess.guard():
        sess.attach()
        regions = [Region(r["name"], r["address"], r["length"]) for r in ranges]
        sess.check_geometry(regions)
        facts["network"] = sess.network(net)
        with _Files(net, sess.status) as files:
            for r, region in zip(ranges, regions, strict=True):
                name = f"camrescue-restore-{region.name}.bin"
                facts["ranges"].append(
                    sess.write_region(files, net, region, bk.range_data(r), name)
                )
        facts["steps"] = sess.steps
        what = f"restored {', '.join(r.name for r in regions)} from {bk.path.name}"
        if not boot:
            return {"message": what + " (not booted)", **facts}
        rep = sess.boot(shell or ShellQuery())
        facts.update(_boot_facts(rep))
        _boot_verdict(rep, facts, what)
        return {"message": f"{what}; booted, root mounted with no CRC errors", **facts}


def boot(conn: Connection, *, shell: ShellQuery | None = None) -> dict[str, Any]:
    """Boot the kernel and report CRC errors and the mount result."""
    sess = Session(conn)
    with sess.guard():
        sess.attach()
        rep = sess.boot(shell or ShellQuery())
        facts = {**_boot_facts(rep), "steps": sess.steps}
        _boot_verdict(rep, facts, "booted")
        return {"message": "booted, root mounted with no CRC errors", **facts}


# -- command line ---------------------------------------------------------------------------


def _conn(args: argparse.Namespace) -> Connection:
    return Connection(
        args.port,
        args.baud,
        wait=args.wait,
        reboot=args.reboot,
        transcript=args.transcript,
        progress=progress_enabled(args),
    )


def _net(args: argparse.Namespace) -> NetOptions:
    return NetOptions(
        ipaddr=args.ipaddr,
        serverip=args.serverip,
        netmask=args.netmask,
        tftp_bind=args.tftp_bind,
        tftp_root=args.tftp_root,
        server=not args.no_server,
        load_address=args.load_address,
    )


def _render(payload: dict[str, Any]) -> str:
    """The result for a person (stdout without --json)."""
    lines = [payload.get("message", "")]
    for key in ("uboot_version", "path", "manifest", "flash_crc32", "flash_state"):
        if payload.get(key) not in (None, ""):
            lines.append(f"  {key}: {payload[key]}")
    fl = payload.get("flash")
    if isinstance(fl, dict):
        lines.append(
            f"  flash: {fl['size'] >> 20} MiB at {fl['base']:#x}, {fl['sectors']} sectors of "
            f"{fl['sector_size'] >> 10} KiB, protected: {' '.join(fl['protected']) or 'none'}"
        )
    for part in payload.get("partitions") or []:
        lines.append(f"  partition {part['name']}: {part['address']:#x} +{part['size']:#x}")
    kernel = payload.get("kernel")
    if isinstance(kernel, dict) and kernel.get("magic_ok"):
        crc = "ok" if kernel["header_crc_ok"] else "BAD"
        lines.append(f"  kernel: {kernel['name']}, {kernel['data_size']} bytes, header CRC {crc}")
    env = payload.get("env") or {}
    for key in ("ethaddr", "ipaddr", "serverip", "netmask", "bootcmd"):
        if key in env:
            lines.append(f"  env {key}={env[key]}")
    if "rootfs_jffs2" in payload:
        lines.append(f"  rootfs looks like JFFS2: {payload['rootfs_jffs2']}")
    for key in ("mounted", "crc_errors", "panic"):
        if key in payload and payload[key] is not None:
            lines.append(f"  {key}: {payload[key]}")
    for path, names in (payload.get("files") or {}).items():
        lines.append(f"  ls {path}: {' '.join(names)}")
    for path, text in (payload.get("cat") or {}).items():
        lines.append(f"  cat {path}:")
        lines += [f"    {line}" for line in text.splitlines()]
    for step in payload.get("steps") or []:
        lines.append(f"  step {step['name']}: {step['seconds']:.2f} s")
    return "\n".join(lines)


def _common(p: argparse.ArgumentParser) -> None:
    add_port_options(p, baud=BAUD)
    add_output_options(p)
    p.add_argument(
        "--wait",
        type=float,
        default=20.0,
        metavar="S",
        help="how long to wait for U-Boot (time to power the camera on); default 20",
    )
    p.add_argument(
        "--reboot",
        action="store_true",
        help="if the camera runs Linux with a root shell on the console, type 'reboot' to "
        "get back to U-Boot (instead of asking for a power cycle)",
    )


def _network_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network (the camera's U-Boot TFTP client)")
    g.add_argument("--ipaddr", help="the camera's address (default: its ipaddr variable)")
    g.add_argument("--serverip", help="this computer's address as the camera sees it")
    g.add_argument("--netmask", help="netmask (default: the camera's, else 255.255.255.0)")
    g.add_argument(
        "--tftp-bind",
        type=lambda s: parse_host_port(s, 69),
        default=("0.0.0.0", 69),
        metavar="HOST:PORT",
        help="where the embedded TFTP server listens (default 0.0.0.0:69, needs root); "
        "127.0.0.1:6969 for the emulator",
    )
    g.add_argument("--tftp-root", metavar="DIR", help="directory the TFTP server serves")
    g.add_argument(
        "--no-server",
        action="store_true",
        help="use an existing TFTP server whose root is --tftp-root (uploads must be allowed)",
    )
    g.add_argument(
        "--load-address",
        type=parse_int,
        default=LOAD_ADDRESS,
        metavar="ADDR",
        help=f"RAM address images are downloaded to before flashing (default {LOAD_ADDRESS:#x})",
    )


def _shell_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("after booting (the root shell)")
    g.add_argument(
        "--ls",
        action="append",
        metavar="DIR",
        help="directory to list in the booted system's shell, besides / (repeatable)",
    )
    g.add_argument(
        "--cat",
        action="append",
        metavar="FILE",
        help="file to print (repeatable), e.g. /etc/version",
    )


def _shell_query(args: argparse.Namespace) -> ShellQuery:
    return ShellQuery(tuple(dict.fromkeys(["/", *(args.ls or [])])), tuple(args.cat or []))


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``hi3511 {info,backup,flash,restore,boot}`` to an argparse subparsers object."""
    fmt = argparse.RawDescriptionHelpFormatter
    top = subparsers.add_parser(
        "hi3511",
        help="HiSilicon Hi3511 cameras (U-Boot 1.1.4): info, backup, flash, restore, boot",
        description="Back up, crossgrade and restore a Hi3511 camera through its U-Boot console "
        "and TFTP. See docs/hi3511.md.",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    sub = top.add_subparsers(dest="hi3511_command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "info",
        help="U-Boot version, flash, environment, partitions",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    _network_options(p)
    p.set_defaults(func=lambda a: run_operation(a, "info", lambda: info(_conn(a)), render=_render))

    p = sub.add_parser(
        "backup",
        help="upload kernel, root and settings over TFTP, verified",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    _network_options(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="backup image (a FILE.json manifest is written beside it)",
    )
    p.add_argument(
        "--include-bootloader", action="store_true", help="all 16 MiB, boot loader included"
    )
    p.set_defaults(
        func=lambda a: run_operation(
            a,
            "backup",
            lambda: backup(_conn(a), a.out, _net(a), include_bootloader=a.include_bootloader),
            render=_render,
        )
    )

    p = sub.add_parser(
        "flash",
        help="write a JFFS2 image or vendor .pkg to a partition, then boot",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    _network_options(p)
    _shell_options(p)
    p.add_argument("image", metavar="IMAGE", help="raw JFFS2 image or vendor .pkg")
    p.add_argument("--partition", default="rootfs", choices=JFFS2_REGIONS)
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--backup", metavar="FILE", help="an existing backup of this camera (with its manifest)"
    )
    g.add_argument(
        "--no-backup", action="store_true", help="do not back up first (not recommended)"
    )
    g.add_argument(
        "--backup-out",
        metavar="FILE",
        help="where the backup made first goes (default ./hi3511-backup-DATE.bin)",
    )
    p.add_argument(
        "--skip-erase",
        action="store_true",
        help="reproduce the seed's mistake: tftp to flash without erase",
    )
    p.add_argument("--no-boot", action="store_true", help="do not boot after writing")
    p.add_argument(
        "--remote-name", metavar="NAME", help="file name the camera asks the TFTP server for"
    )

    def _flash(a: argparse.Namespace) -> int:
        return run_operation(
            a,
            "flash",
            lambda: flash(
                _conn(a),
                a.image,
                _net(a),
                partition=a.partition,
                backup_file=a.backup,
                no_backup=a.no_backup,
                backup_out=a.backup_out,
                skip_erase=a.skip_erase,
                boot=not a.no_boot,
                remote_name=a.remote_name,
                shell=_shell_query(a),
            ),
            render=_render,
        )

    p.set_defaults(func=_flash)

    p = sub.add_parser(
        "restore",
        help="write a backup back (safe order), then boot",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    _network_options(p)
    _shell_options(p)
    p.add_argument(
        "backup", metavar="BACKUP", help="backup image (its FILE.json manifest beside it)"
    )
    p.add_argument(
        "--partition",
        action="append",
        choices=list(REGIONS),
        help="restore only this range (repeatable)",
    )
    p.add_argument("--address", type=parse_int, help="flash address a manifest-less dump starts at")
    p.add_argument(
        "--include-bootloader", action="store_true", help="also restore the boot loader area"
    )
    p.add_argument(
        "--confirm-bootloader", action="store_true", help="yes, rewrite the boot loader area"
    )
    p.add_argument("--no-boot", action="store_true", help="do not boot after writing")

    def _restore(a: argparse.Namespace) -> int:
        return run_operation(
            a,
            "restore",
            lambda: restore(
                _conn(a),
                a.backup,
                _net(a),
                partitions=a.partition,
                include_bootloader=a.include_bootloader,
                confirm_bootloader=a.confirm_bootloader,
                address=a.address,
                boot=not a.no_boot,
                shell=_shell_query(a),
            ),
            render=_render,
        )

    p.set_defaults(func=_restore)

    p = sub.add_parser(
        "boot",
        help="boot the kernel and report CRC errors and the mount",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    _network_options(p)
    _shell_options(p)
    p.set_defaults(
        func=lambda a: run_operation(
            a, "boot", lambda: boot(_conn(a), shell=_shell_query(a)), render=_render
        )
    )
    return top


# Names kept for the CLI module and tests.
__all__ = [
    "BOARD",
    "KERNEL_ADDRESS",
    "LOAD_ADDRESS",
    "REGIONS",
    "BootReport",
    "Connection",
    "NetOptions",
    "Region",
    "ShellQuery",
    "UBoot",
    "backup",
    "boot",
    "check_name",
    "flash",
    "info",
    "load_backup",
    "parse_env",
    "parse_flinfo",
    "parse_md_bytes",
    "parse_mtdparts",
    "register_cli",
    "resolve_network",
    "restore",
]
