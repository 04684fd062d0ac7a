"""Preflight checks of firmware files before anything is sent to a camera.

JFFS2 (from the Linux 2.6 ``fs/jffs2`` on-flash format, REFERENCE.md "Linux 2.6
JFFS2 mount scan"; parsed here on its own, independent of the emulator and the
harness):

* A node starts with a 12-byte header: magic 0x1985, nodetype, totlen, hdr_crc,
  in the image's byte order (little-endian for these cameras, big-endian is
  recognised too). hdr_crc is crc32_le (seed 0, no final inversion) over the
  first 8 bytes with the ACCURATE bit (0x2000) of nodetype forced on, as the
  kernel's scanner checks it.
* Nodes are 4-byte aligned; 0xFF between nodes is erased flash (mkfs.jffs2 fills
  the end of an erase block with it). Inodes carry a node_crc over bytes 0..59,
  dirents over bytes 0..31 plus a name_crc.
* A node may not run over the end of an erase block (the kernel drops it as
  dirty space), so an image made for a larger erase size is refused.

Vendor ``.pkg`` files (seed 000): a 144-byte header (188 bytes in older files),
then the JFFS2 image. The header's layout is unknown, so a ``.pkg`` is
recognised by a valid JFFS2 node starting exactly at offset 144 or 188.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery.errors import ImageError

JFFS2_MAGIC = 0x1985
ACCURATE = 0x2000
NODE_TYPES = {
    0xE001: "dirent",
    0xE002: "inode",
    0x2003: "cleanmarker",
    0x2004: "padding",
    0x2006: "summary",
    0xE008: "xattr",
    0xE009: "xref",
}
PKG_HEADER_SIZES = (144, 188)
HEADER_SIZE = 12
INODE_SIZE = 68
DIRENT_SIZE = 40

_NOT_FF = re.compile(rb"[^\xff]")


def crc32_le(data: bytes) -> int:
    """The kernel's ``crc32(0, data, len)``: reflected 0xEDB88320, seed 0, no final xor."""
    return zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


@dataclass(frozen=True)
class NodeHeader:
    offset: int
    nodetype: int
    totlen: int
    hdr_crc: int
    endian: str  # "<" or ">"

    @property
    def kind(self) -> str:
        return NODE_TYPES.get(self.nodetype | ACCURATE, f"unknown-{self.nodetype:04x}")


def parse_node_header(data: bytes, offset: int = 0) -> NodeHeader | None:
    """The node header at ``offset`` if its magic and header CRC are right, else None."""
    raw = data[offset : offset + HEADER_SIZE]
    if len(raw) < HEADER_SIZE:
        return None
    for endian in ("<", ">"):
        magic, nodetype, totlen, hdr_crc = struct.unpack(endian + "HHII", raw)
        if magic != JFFS2_MAGIC:
            continue
        forced = struct.pack(endian + "HHI", magic, nodetype | ACCURATE, totlen)
        if crc32_le(forced) != hdr_crc or totlen < HEADER_SIZE:
            return None
        return NodeHeader(offset, nodetype, totlen, hdr_crc, endian)
    return None


@dataclass
class Jffs2Report:
    """What a walk over the nodes found."""

    endian: str | None = None  # "little" / "big"
    first_node: int | None = None
    nodes: int = 0
    types: dict[str, int] = field(default_factory=dict)
    end: int = 0  # offset after the last valid node
    errors: list[str] = field(default_factory=list)
    truncated: bool = False
    dirents: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.nodes > 0 and not self.errors and not self.truncated


def _check_node_body(data: bytes, h: NodeHeader, errors: list[str], names: list[str]) -> None:
    e = h.endian
    body = data[h.offset : h.offset + h.totlen]
    kind = h.kind
    if kind == "inode":
        if h.totlen < INODE_SIZE:
            errors.append(f"inode at {h.offset:#x} is too short ({h.totlen} bytes)")
            return
        (node_crc,) = struct.unpack_from(e + "I", body, 64)
        if crc32_le(body[:60]) != node_crc:
            errors.append(f"inode at {h.offset:#x}: node CRC mismatch")
            return
        (csize,) = struct.unpack_from(e + "I", body, 48)
        (data_crc,) = struct.unpack_from(e + "I", body, 60)
        payload = body[INODE_SIZE : INODE_SIZE + csize]
        if len(payload) != csize or (csize and crc32_le(payload) != data_crc):
            errors.append(f"inode at {h.offset:#x}: data CRC mismatch")
    elif kind == "dirent":
        if h.totlen < DIRENT_SIZE:
            errors.append(f"dirent at {h.offset:#x} is too short ({h.totlen} bytes)")
            return
        (node_crc,) = struct.unpack_from(e + "I", body, 32)
        if crc32_le(body[:32]) != node_crc:
            errors.append(f"dirent at {h.offset:#x}: node CRC mismatch")
            return
        nsize = body[28]
        (name_crc,) = struct.unpack_from(e + "I", body, 36)
        name = body[DIRENT_SIZE : DIRENT_SIZE + nsize]
        if len(name) != nsize or crc32_le(name) != name_crc:
            errors.append(f"dirent at {h.offset:#x}: name CRC mismatch")
            return
        if len(names) < 10000:
            names.append(name.decode("latin-1"))


def walk_jffs2(
    data: bytes,
    *,
    erase_size: int | None = None,
    max_nodes: int | None = None,
    check_bodies: bool = True,
) -> Jffs2Report:
    """Walk the nodes of an image from offset 0; stop at the first error.

    ``max_nodes`` limits the walk (a quick look); ``erase_size`` enables the
    check that no node runs over an erase block's end.
    """
    rep = Jffs2Report()
    n = len(data)
    pos = 0
    while pos < n:
        if max_nodes is not None and rep.nodes >= max_nodes:
            break
        m = _NOT_FF.search(data, pos)
        if m is None:
            break
        pos = m.start() & ~3
        h = parse_node_header(data, pos)
        if h is None:
            if n - pos < HEADER_SIZE:
                rep.truncated = True
            else:
                rep.errors.append(f"no valid JFFS2 node header at {pos:#x}")
            break
        endian = "little" if h.endian == "<" else "big"
        if rep.endian is None:
            rep.endian, rep.first_node = endian, pos
        elif rep.endian != endian:
            rep.errors.append(f"node at {pos:#x} is {endian}-endian, the image is {rep.endian}")
            break
        if pos + h.totlen > n:
            rep.truncated = True
            rep.errors.append(f"node at {pos:#x} ({h.totlen} bytes) runs past the end of the file")
            break
        if erase_size and pos // erase_size != (pos + h.totlen - 1) // erase_size:
            rep.errors.append(
                f"node at {pos:#x} ({h.totlen} bytes) runs over an erase block end: the image "
                f"was made for a larger erase size than {erase_size:#x} (mkfs.jffs2 -e)"
            )
            break
        if check_bodies:
            _check_node_body(data, h, rep.errors, rep.dirents)
            if rep.errors:
                break
        rep.nodes += 1
        rep.types[h.kind] = rep.types.get(h.kind, 0) + 1
        pos += (h.totlen + 3) & ~3
        rep.end = min(pos, n)
    return rep


def looks_like_jffs2(data: bytes, offset: int = 0) -> bool:
    """True when a valid JFFS2 node header starts at ``offset`` (0xFF words before it skipped)."""
    m = _NOT_FF.search(data, offset)
    if m is None:
        return False
    pos = offset + ((m.start() - offset) & ~3)
    return parse_node_header(data, pos) is not None


def identify(data: bytes) -> str:
    """A short description of what a non-JFFS2 file looks like, for error messages."""
    if not data:
        return "the file is empty"
    if _NOT_FF.search(data) is None:
        return "the file is all 0xFF (erased flash)"
    if not data.strip(b"\0"):
        return "the file is all zeros"
    head = data[:8]
    known = [
        (b"\x27\x05\x19\x56", "a U-Boot uImage (a kernel?), not a root file system"),
        (b"\x1f\x8b", "gzip-compressed: unpack it first"),
        (b"PK\x03\x04", "a ZIP archive: unpack it first"),
        (b"hsqs", "a SquashFS image (this camera's root is JFFS2)"),
        (b"sqsh", "a SquashFS image (this camera's root is JFFS2)"),
        (b"\x45\x3d\xcd\x28", "a cramfs image (this camera's root is JFFS2)"),
        (b"\x7fELF", "an ELF executable"),
        (b"UBI#", "a UBI image (NAND), not JFFS2 for NOR"),
    ]
    for magic, text in known:
        if head.startswith(magic):
            return text
    if data[:2] in (b"\x85\x19", b"\x19\x85"):
        return "it starts with the JFFS2 magic, but the first node header's CRC is wrong"
    return f"unknown content (starts with {head.hex(' ')})"


@dataclass(frozen=True)
class Payload:
    offset: int  # where the JFFS2 image starts in the file
    kind: str  # "jffs2" or "pkg"


def find_payload(data: bytes) -> Payload:
    """Where the JFFS2 image starts: at 0 (raw) or after a 144/188-byte ``.pkg`` header."""
    if parse_node_header(data, 0) is not None:
        return Payload(0, "jffs2")
    for size in PKG_HEADER_SIZES:
        if parse_node_header(data, size) is not None:
            return Payload(size, "pkg")
    if looks_like_jffs2(data[:0x20000]):
        return Payload(0, "jffs2")
    raise ImageError(
        f"not a JFFS2 image or a vendor .pkg: {identify(data)}",
        flash_state="untouched",
        hint="give the raw JFFS2 root image (e.g. the .pkg minus its header: "
        "dd if=FW.pkg bs=1 skip=144 of=root.jffs2) or the vendor .pkg itself",
    )


@dataclass
class PreparedImage:
    """A checked image, ready to send. ``data`` is the JFFS2 payload (header removed)."""

    path: Path
    kind: str
    header_size: int
    data: bytes = field(repr=False)
    report: Jffs2Report = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def crc32(self) -> int:
        return zlib.crc32(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "header_size": self.header_size,
            "size": self.size,
            "crc32": f"{self.crc32:08x}",
            "sha256": self.sha256,
            "endian": self.report.endian,
            "nodes": self.report.nodes,
        }


def prepare_jffs2_image(
    path: str | os.PathLike[str], *, partition_size: int, erase_size: int | None = None
) -> PreparedImage:
    """Read and check a raw JFFS2 image or ``.pkg`` for a partition; raise :class:`ImageError`."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise ImageError(f"cannot read the image {p}: {e.strerror}", flash_state="untouched") from e
    if not p.is_file():
        raise ImageError(f"{p} is not a regular file", flash_state="untouched")
    if st.st_size > partition_size + max(PKG_HEADER_SIZES):
        raise ImageError(
            f"{p} is {st.st_size} bytes ({st.st_size / 2**20:.2f} MiB): too large for the "
            f"{partition_size / 2**20:g} MiB partition",
            flash_state="untouched",
            hint="check you picked the root file system image for this camera",
        )
    data = p.read_bytes()
    try:
        payload = find_payload(data)
    except ImageError as e:  # name the file: the person may have given several
        e.message = f"{p}: {e.message}"
        raise
    body = data[payload.offset :]
    if len(body) > partition_size:
        raise ImageError(
            f"the JFFS2 image in {p} is {len(body)} bytes: too large for the "
            f"{partition_size:#x}-byte partition",
            flash_state="untouched",
        )
    report = walk_jffs2(body, erase_size=erase_size)
    if not report.ok:
        problem = report.errors[0] if report.errors else "no JFFS2 nodes found"
        raise ImageError(
            f"{p}: the JFFS2 image is damaged: {problem}",
            flash_state="untouched",
            hint="download the firmware again; a damaged root image does not boot",
        )
    if report.endian != "little":
        raise ImageError(
            f"{p}: the JFFS2 image is {report.endian}-endian; this camera (ARM) needs little-endian "
            "(mkfs.jffs2 -l)",
            flash_state="untouched",
        )
    return PreparedImage(p, payload.kind, payload.offset, body, report)
