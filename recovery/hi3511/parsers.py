"""Parsers of what the Hi3511's U-Boot 1.1.4 prints and stores; pure text/bytes -> data.

Formats from the seed (000) and REFERENCE.md, and U-Boot 1.1.4's sources for
the lines the seed does not show: ``flinfo`` (``Size: 16 MB in 128 Sectors``,
the sector start list with `` (RO)`` marks, or ``RO`` in HiSilicon's tree, the CFI
erase/write timeouts with or without a colon),
``printenv`` (``name=value`` lines up to ``Environment size:``), ``md.b``
(``%08lx: xx xx ...    ascii``), ``crc32`` (``CRC32 for a ... b ==> crc``),
the kernel's ``mtdparts=`` in ``bootargs``, the 64-byte uImage header, and the
kernel log lines of a ``bootm`` (JFFS2 CRC errors, panics, the root mount).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from recovery.errors import DeviceError
from recovery.hi3511.flashmap import FLASH_BASE, FLASH_SIZE, Region


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
    # upstream: " 34000000 (RO)"; HiSilicon's tree: "  34000000   RO " (and an "E" column
    # with CFG_FLASH_EMPTY_INFO)
    for sm in re.finditer(r"\b([0-9A-Fa-f]{8})\b((?: +E)? +\(?RO\b\)?)?", tail):
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
    tm = re.search(r"Erase timeout:? (\d+) ms, write timeout:? (\d+) ms", text, re.IGNORECASE)
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


def parse_crc32(text: str, addr: int, length: int) -> int:
    """The checksum of a ``crc32 addr len`` line, checked to cover exactly what was asked."""
    m = re.search(r"CRC32 for ([0-9a-fA-F]{8}) \.\.\. ([0-9a-fA-F]{8}) ==> ([0-9a-fA-F]{8})", text)
    if not m:
        raise DeviceError(f"crc32 printed no checksum: {text.strip()[-200:]!r}")
    if int(m.group(1), 16) != addr or int(m.group(2), 16) != addr + length - 1:
        raise DeviceError(f"crc32 covered {m.group(1)}..{m.group(2)}, not what was asked")
    return int(m.group(3), 16)


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


def looks_like_garbage(text: str) -> bool:
    """Bytes a console at another baud produces: mostly outside printable ASCII."""
    if len(text) < 2:
        return False
    printable = sum(1 for c in text if c in "\r\n\t\b\a" or " " <= c <= "~")
    return printable / len(text) < 0.8


# -- the kernel's boot log ---------------------------------------------------------------


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


def note_kernel_line(rep: BootReport, line: str) -> None:
    """Count one kernel log line's JFFS2 CRC error or JFFS2 message into ``rep``."""
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
