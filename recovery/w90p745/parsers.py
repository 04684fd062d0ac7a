"""Parsers for the W90P745 boot loader's console text: ``d`` pages, the
``ls -al`` image table and the power-on banner. Pure functions, no I/O.

Formats, from shared/REFERENCE.md (W90P745 section) and seed 001:

* ``d 0x<addr>`` prints ``Displaying memory at 0x%X`` and then 16 lines
  ``[%08X] %08X %08X - %08X %08X  <16 ascii>``. Each word is printed as a
  32-bit little-endian value, so the word ``E35009FC`` is the bytes
  ``FC 09 50 E3`` in memory; the ASCII column shows those bytes in memory
  order. The loader's ``HYC_DumpAddress`` (WBLv1_1 ``shell/sh.c``) prints
  ``.`` for a byte ``<= 0x20`` (space included) or ``> 0x7F`` and every
  other byte as itself, **0x7F (DEL) included**: a page can carry a raw DEL.
  The column is a cross-check: a ``.`` matches any byte <= 0x20 or > 0x7F.
* ``ls -al`` prints ``Image:%2d name:%s base:0x%08X size:0x%08X exec:0x%08X -flags``.
* The banner starts ``W90P745 Boot Loader [ Version ...`` and has a line
  ``Memory Size is 0x%X Bytes, Flash Size is 0x%X Bytes``.

:func:`parse_page` is deliberately strict: every check that can fail on a
line hit by noise (a dropped byte, a flipped bit, a lost burst, a merged
line) makes the page fail, so the caller reads it again.
:func:`parse_page_rows` applies the same checks line by line and keeps the
rows that pass, so reads of a page on a noisy line can be combined. Neither
can catch a flipped bit that turns one hex digit into another while the
ASCII column shows ``.`` for both values; the engine covers that by
accepting a row only when two reads agree on it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from recovery.jsonout import hex_address

PAGE_SIZE = 256
LINES_PER_PAGE = 16
PROMPT = "bootloader > "

_HEADER = re.compile(r"Displaying memory at 0x([0-9A-Fa-f]{1,8})")
_LINE = re.compile(
    r"\[([0-9A-F]{8})\] ([0-9A-F]{8}) ([0-9A-F]{8}) - ([0-9A-F]{8}) ([0-9A-F]{8})  (.{16})"
)
_IMAGE = re.compile(
    r"Image: *(\d+) name:(.*?) base:0x([0-9A-Fa-f]{8}) size:0x([0-9A-Fa-f]{8}) "
    r"exec:0x([0-9A-Fa-f]{8}) -([a-z]*)"
)
_VERSION = re.compile(
    r"W90P745 Boot Loader \[ Version ([^\]$]*?)\s*(?:\$Revision: *([^$]*?) *\$)?\s*\]"
    r"(?: Rebuilt on (.+))?"
)
_SIZES = re.compile(r"Memory Size is 0x([0-9A-Fa-f]+) Bytes, Flash Size is 0x([0-9A-Fa-f]+) Bytes")
_CONFIG = re.compile(r"^\s+([A-Za-z][A-Za-z ]*?)\s+: ?(.*)$")


class PageError(ValueError):
    """A ``d`` page failed a check; the message says which one."""


def ascii_char_ok(byte: int, char: str) -> bool:
    """Whether ``char`` is what the loader's ASCII column shows for ``byte``."""
    if 0x21 <= byte <= 0x7F:
        return char == chr(byte)
    return char == "."


def _lines(text: str) -> list[str]:
    """Split console text into lines; a line may end in CR LF or LF."""
    out = []
    for raw in text.split("\n"):
        out.append(raw[:-1] if raw.endswith("\r") else raw)
    return out


def parse_page(text: str, address: int) -> bytes:
    """The 256 bytes of a ``d 0x<address>`` page.

    ``text`` is what the loader printed after the echoed command line and
    before the next prompt. Blank lines around the page are allowed; any
    other extra line, a header or address column other than the one asked
    for, a malformed line, or an ASCII column that disagrees with the hex
    raises :class:`PageError`.
    """
    lines = _lines(text)
    while lines and lines[0] == "":
        lines.pop(0)
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise PageError("empty page")
    header = _HEADER.fullmatch(lines[0])
    if header is None:
        raise PageError(f"no 'Displaying memory at' header: {lines[0][:60]!r}")
    if int(header.group(1), 16) != address:
        raise PageError(f"header shows 0x{int(header.group(1), 16):X}, asked for 0x{address:X}")
    body = lines[1:]
    if len(body) != LINES_PER_PAGE:
        raise PageError(f"{len(body)} lines after the header, expected {LINES_PER_PAGE}")
    out = bytearray()
    for i, line in enumerate(body):
        want = address + 16 * i
        m = _LINE.fullmatch(line)
        if m is None:
            raise PageError(f"line {i + 1} is malformed: {line[:70]!r}")
        if int(m.group(1), 16) != want:
            raise PageError(f"line {i + 1} shows address {m.group(1)}, expected {want:08X}")
        row = b"".join(int(m.group(k), 16).to_bytes(4, "little") for k in range(2, 6))
        for j, (b, c) in enumerate(zip(row, m.group(6), strict=True)):
            if not ascii_char_ok(b, c):
                raise PageError(
                    f"line {i + 1}: ASCII column shows {c!r} for byte 0x{b:02X} at 0x{want + j:08X}"
                )
        out += row
    return bytes(out)


def _parse_row(line: str) -> tuple[int, bytes] | None:
    """(address, 16 bytes) of one well-formed data line whose columns agree, else None."""
    m = _LINE.fullmatch(line)
    if m is None:
        return None
    row = b"".join(int(m.group(k), 16).to_bytes(4, "little") for k in range(2, 6))
    if not all(ascii_char_ok(b, c) for b, c in zip(row, m.group(6), strict=True)):
        return None
    return int(m.group(1), 16), row


def parse_page_rows(text: str, address: int) -> dict[int, bytes]:
    """The rows of a ``d 0x<address>`` page that pass every check a single line allows.

    Returns {row index 0-15: 16 bytes} for each line that is well formed, whose
    hex and ASCII columns agree, and whose address column names a row of this
    page. Damaged lines are left out, so several reads of a page on a noisy
    line can be combined row by row. Lines of any other page are ignored.
    """
    rows: dict[int, bytes] = {}
    seen: set[int] = set()
    for line in _lines(text):
        parsed = _parse_row(line)
        if parsed is None:
            continue
        at, row = parsed
        index, rest = divmod(at - address, 16)
        if rest or not 0 <= index < LINES_PER_PAGE:
            continue
        if index in seen and rows.get(index) != row:
            rows.pop(index, None)  # the same row twice, differently: trust neither
            continue
        seen.add(index)
        rows[index] = row
    return rows


@dataclass(frozen=True)
class ImageEntry:
    """One line of ``ls -al``: an image record of the loader's image table."""

    number: int
    name: str
    base: int
    size: int
    exec_addr: int
    flags: str

    @property
    def pages(self) -> int:
        """How many 256-byte ``d`` pages cover the image (rounded up)."""
        return -(-self.size // PAGE_SIZE)

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def is_boot_info(self) -> bool:
        return "f" in self.flags

    def line(self) -> str:
        """The entry as ``ls -al`` prints it."""
        return (
            f"Image:{self.number:2d} name:{self.name} base:0x{self.base:08X} "
            f"size:0x{self.size:08X} exec:0x{self.exec_addr:08X} -{self.flags}"
        )

    def to_json(self) -> dict[str, object]:
        """The entry as manifests and ``--json`` write it: ``base`` and ``exec_addr`` as
        hex strings (one rule for addresses, :func:`recovery.jsonout.hex_address`)."""
        d: dict[str, object] = asdict(self)
        d["base"] = hex_address(self.base)
        d["exec_addr"] = hex_address(self.exec_addr)
        d["line"] = self.line()
        return d

    @classmethod
    def from_json(cls, d: dict[str, object]) -> ImageEntry:
        try:
            entry = cls(
                number=int(d["number"]),  # type: ignore[call-overload]
                name=str(d["name"]),
                base=_address(d["base"]),
                size=int(d["size"]),  # type: ignore[call-overload]
                exec_addr=_address(d["exec_addr"]),
                flags=str(d["flags"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad image entry {d!r}: {e}") from e
        if not re.fullmatch(r"[a-z]*", entry.flags) or entry.size < 0 or entry.base < 0:
            raise ValueError(f"bad image entry {d!r}")
        return entry


def parse_image_line(line: str) -> ImageEntry | None:
    """One ``ls -al`` line, or None if the line is not an image line."""
    m = _IMAGE.fullmatch(line.strip("\r\n"))
    if m is None:
        return None
    return ImageEntry(
        number=int(m.group(1)),
        name=m.group(2),
        base=int(m.group(3), 16),
        size=int(m.group(4), 16),
        exec_addr=int(m.group(5), 16),
        flags=m.group(6),
    )


def parse_image_table(text: str, *, strict: bool = False) -> list[ImageEntry]:
    """All image lines of an ``ls -al`` listing, in the order shown.

    Raises ValueError for a line that starts like an image line but does not
    parse (a corrupted listing must not look like a shorter table). With
    ``strict`` (``text`` is exactly the command's output) any other non-blank
    line is an error too: a line whose ``Image:`` was damaged must not vanish.
    """
    out = []
    for line in _lines(text):
        if not line.startswith("Image:"):
            if strict and line.strip():
                raise ValueError(f"unexpected line in the image table: {line!r}")
            continue
        entry = parse_image_line(line)
        if entry is None:
            raise ValueError(f"unreadable image table line: {line!r}")
        out.append(entry)
    return out


@dataclass(frozen=True)
class LoaderInfo:
    """What the power-on banner says about the loader and the board."""

    version: str | None = None
    revision: str | None = None
    built: str | None = None
    memory_size: int | None = None
    flash_size: int | None = None
    config: tuple[tuple[str, str], ...] = ()


def parse_banner(text: str) -> LoaderInfo:
    """Version, memory and flash size, and the configuration block, where shown."""
    version = revision = built = None
    memory = flash = None
    config: list[tuple[str, str]] = []
    in_config = False
    for line in _lines(text):
        if m := _VERSION.search(line):
            version, revision = m.group(1).strip(), m.group(2)
            built = m.group(3).strip() if m.group(3) else None
        elif m := _SIZES.search(line):
            memory, flash = int(m.group(1), 16), int(m.group(2), 16)
        elif line.startswith("Boot Loader Configuration"):
            in_config = True
        elif in_config:
            if m := _CONFIG.match(line):
                config.append((m.group(1).strip(), m.group(2).strip()))
            elif line.strip():
                in_config = False
    return LoaderInfo(version, revision, built, memory, flash, tuple(config))


# -- the image footer (``tfooter``) ------------------------------------------------

FOOTER_SIZE = 52
FOOTER_SIGNATURE = 0xA0FFFF9F
FLASH_BLOCK = 0x10000


def loader_checksum(data: bytes) -> int:
    """The loader's image and footer checksum (WBLv1_1 ``flash.c`` ``WriteImage``;
    ``SetImageChecksum`` in the ATEN IPMI SDK's mkimage.c): the little-endian u32
    words summed in 64 bits, folded once (``lo + hi``), complemented, 32 bits.
    A last partial word is zero-padded."""
    data = bytes(data) + b"\0" * (-len(data) % 4)
    total = sum(int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4))
    return ~((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def footer_address(base: int, size: int) -> int:
    """Where the loader's ``WriteImage`` put the footer of an image: the last 52
    bytes of the block the image ends in, or of the next block when fewer than
    52 bytes are left (a whole-block image included)."""
    size = -(-size // 4) * 4
    last = base + (max(size, 1) - 1) // FLASH_BLOCK * FLASH_BLOCK
    if FLASH_BLOCK - (base + size - last) < FOOTER_SIZE:
        return last + 2 * FLASH_BLOCK - FOOTER_SIZE
    return last + FLASH_BLOCK - FOOTER_SIZE


@dataclass(frozen=True)
class Footer:
    number: int
    base: int
    length: int
    load: int
    exec_addr: int
    name: str
    image_checksum: int
    flags: int


def parse_footer(raw: bytes) -> Footer | None:
    """The footer in 52 bytes, or None unless its signature and checksum are right."""
    if len(raw) < FOOTER_SIZE:
        return None
    w = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, FOOTER_SIZE, 4)]
    if w[10] != FOOTER_SIGNATURE or loader_checksum(raw[:48]) != w[12]:
        return None
    name = raw[20:36].split(b"\0", 1)[0].decode("latin-1")
    return Footer(w[0], w[1], w[2], w[3], w[4], name, w[9], w[11])


def _address(value: object) -> int:
    """A manifest's address: a ``0x`` hex string, or an int (dumps made before
    addresses were written in hex). Anything else is refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"0[xX][0-9A-Fa-f]{1,8}", value):
        return int(value, 16)
    raise ValueError(f"not an address: {value!r}")
