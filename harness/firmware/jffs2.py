"""JFFS2 image writer that models ``mkfs.jffs2`` (mtd-utils 2.1.5), little-endian.

What is modelled, from mtd-utils ``jffsX-utils/mkfs.jffs2.c``, ``compr.c``,
``compr_zlib.c`` and ``compr_rtime.c`` (read for facts, not copied):

* Node order: the root directory is inode 1 and gets no inode node of its own.
  Each directory's entries are visited in ``alphasort`` order (byte order in the C
  locale); every entry gets a dirent followed by its inode node(s); only then are
  the sub-directories recursed into. Inode numbers are handed out in that visiting
  order, so they follow the traversal, not the sorted list of full paths.
* Dirent versions come from one global counter that starts at 0; inode node
  versions count from 1 per inode. Directories and symlinks get one inode node
  with version 1; directories have ``isize`` 0.
* Regular files are read ``page_size`` bytes at a time; each page becomes one or
  more inode nodes (more when an erase block boundary cuts it). An empty file gets
  one inode node without data.
* Layout: nodes are 4-byte aligned and the gaps are filled with 0xFF (never 0x00,
  never PADDING nodes: mkfs.jffs2 writes no PADDING node at all). A node never
  spans an erase block: before a dirent/symlink/device node mkfs checks that the
  whole node fits, before a data node that ``68 + JFFS2_MIN_DATA_LEN`` (128) bytes
  fit, and otherwise fills the rest of the block with 0xFF. A data node at the end
  of a block stores only as much as fits.
* Cleanmarkers (12 bytes) are written lazily: at a block start just before the
  first node that lands in that block. So a block the image ends exactly in front
  of gets no cleanmarker, and without ``pad_to`` the output ends right after the
  last node.
* ``pad_to=-1`` is ``-p``: 0xFF to the end of the last erase block. ``pad_to=N``
  is ``-p N``: with cleanmarkers, 0xFF to the block end and then a cleanmarker at
  the start of every further block until N is reached (a size that is not a
  multiple of the erase size is rounded up to whole blocks, as mkfs does); without
  cleanmarkers, 0xFF up to exactly N. Deviation: mkfs silently writes an image
  larger than N; this module raises ``ValueError`` instead.
* Compression (``-m priority``, the default of mkfs): ``"priority"`` tries zlib
  then rtime then stores the data; ``"zlib"`` is ``-x rtime`` (zlib or stored);
  ``"none"`` is ``-m none``. The zlib compressor is mkfs's: ``deflateInit`` level
  3, input fed in pieces no larger than the remaining output space with
  ``Z_PARTIAL_FLUSH``, 12 bytes kept back for ``Z_FINISH``, rejected unless the
  result is shorter than the input it consumed. The simulation reproduces zlib's
  stream byte for byte, including the case where the output space runs out in the
  middle of a flush (tested against the real mkfs.jffs2).
* CRCs: crc32_le with seed 0 and no final inversion (``mtd_crc32(0, ...)``):
  hdr_crc over bytes 0..7, inode node_crc over 0..59, dirent node_crc over 0..31,
  data_crc over the stored (compressed) bytes, name_crc over the name.

The owner of every entry is uid 0 / gid 0 (as ``mkfs.jffs2 -U``), and all
timestamps are ``mtime`` (``-f`` gives 0, the default here).
"""

from __future__ import annotations

import os
import random
import re
import stat
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

JFFS2_MAGIC = 0x1985
NODETYPE_DIRENT = 0xE001
NODETYPE_INODE = 0xE002
NODETYPE_CLEANMARKER = 0x2003
NODETYPE_PADDING = 0x2004

COMPR_NONE = 0x00
COMPR_RTIME = 0x02
COMPR_ZLIB = 0x06

NODE_HEADER_SIZE = 12
INODE_HEADER_SIZE = 68
DIRENT_HEADER_SIZE = 40
CLEANMARKER_SIZE = 12
MIN_DATA_LEN = 128
MAX_NAME_LEN = 254
MAX_SYMLINK_LEN = 254
ZLIB_STREAM_END_SPACE = 12

DT_DIR = 4
DT_REG = 8
DT_LNK = 10

Compression = Literal["priority", "zlib", "none"]


def crc32_le(data: bytes, crc: int = 0) -> int:
    """The kernel's ``crc32_le`` as JFFS2 uses it: seed 0, no pre/post inversion."""
    return zlib.crc32(data, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass
class Tree:
    """A file-system tree to put into an image. All paths are absolute ("/etc/passwd").

    ``dirs`` lists directories that must exist even when empty (parents of files
    are implied). ``modes`` holds permission bits per path; the defaults are 0644
    for files, 0755 for directories and 0777 for symlinks.
    """

    files: dict[str, bytes]
    dirs: set[str] = field(default_factory=set)
    symlinks: dict[str, str] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)

    def all_dirs(self) -> set[str]:
        """Every directory of the tree except "/", explicit or implied by a path."""
        out = set(self.dirs)
        for p in (*self.files, *self.symlinks, *self.dirs):
            parts = p.strip("/").split("/")
            out.update("/" + "/".join(parts[:i]) for i in range(1, len(parts)))
        out.discard("/")
        return out

    def mode_of(self, path: str) -> int:
        """Full st_mode (type and permission bits) of ``path``."""
        if path in self.files:
            return stat.S_IFREG | self.modes.get(path, 0o644)
        if path in self.symlinks:
            return stat.S_IFLNK | 0o777
        return stat.S_IFDIR | self.modes.get(path, 0o755)

    def validate(self) -> None:
        """Raise ValueError for paths mkfs.jffs2 could not have produced."""
        given = (*self.files, *self.symlinks, *self.dirs)
        for p in given:
            if not p.startswith("/") or p.endswith("/") or "//" in p:
                raise ValueError(f"not a normalised absolute path: {p!r}")
            parts = p.split("/")[1:]
            if any(part in (".", "..") for part in parts):
                raise ValueError(f"bad path component in {p!r}")
            if any(len(part.encode()) > MAX_NAME_LEN for part in parts):
                raise ValueError(f"name longer than {MAX_NAME_LEN} bytes in {p!r}")
        leaves = (*self.files, *self.symlinks)
        if len(set(leaves)) != len(leaves) or set(leaves) & self.all_dirs():
            raise ValueError("a path is given twice (as file, symlink or directory)")
        for p, target in self.symlinks.items():
            if not target or len(target.encode()) > MAX_SYMLINK_LEN:
                raise ValueError(f"symlink target empty or too long: {p!r}")

    def write_to(self, root: Path) -> None:
        """Create the tree under the existing directory ``root`` (for mkfs.jffs2 -d)."""
        self.validate()
        root = Path(root)
        for d in sorted(self.all_dirs()):
            (root / d[1:]).mkdir(parents=True, exist_ok=True)
        for p, data in self.files.items():
            (root / p[1:]).write_bytes(data)
            os.chmod(root / p[1:], self.modes.get(p, 0o644))
        for p, target in self.symlinks.items():
            os.symlink(target, root / p[1:])
        for d in self.all_dirs():
            os.chmod(root / d[1:], self.modes.get(d, 0o755))

    @classmethod
    def from_dir(cls, root: Path) -> Tree:
        """Read a tree back from disk (e.g. what jefferson extracted)."""
        root = Path(root)
        tree = cls(files={})
        for dirpath, dirnames, filenames in os.walk(root):
            rel = "/" + os.path.relpath(dirpath, root).replace(os.sep, "/")
            rel = "/" if rel == "/." else rel
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                p = (rel.rstrip("/") + "/" + name) if rel != "/" else "/" + name
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    tree.symlinks[p] = os.readlink(full)
                elif stat.S_ISDIR(st.st_mode):
                    tree.dirs.add(p)
                else:
                    tree.files[p] = Path(full).read_bytes()
                    tree.modes[p] = stat.S_IMODE(st.st_mode)
        return tree


# --- compressors (models of mkfs.jffs2's) ---------------------------------------------


def _zlib_compress(data: bytes, dstlen: int) -> tuple[bytes, int] | None:
    """mtd-utils ``jffs2_zlib_compress``: (compressed, bytes consumed) or None.

    The C loop calls ``deflate(Z_PARTIAL_FLUSH)`` with ``avail_out = dstlen - 12 -
    total_out`` and ``avail_in = min(left, avail_out)`` until the output space is
    used up or the input is consumed, then ``deflate(Z_FINISH)`` with the 12 spare
    bytes. When a flush does not fit, zlib keeps the rest pending; if even the data
    block did not fit, the partial-flush marker is never emitted (``need_more``) and
    ``Z_FINISH`` appends an empty final block. ``Z_BLOCK`` reproduces that stream.
    """
    if dstlen <= ZLIB_STREAM_END_SPACE:
        return None
    limit = dstlen - ZLIB_STREAM_END_SPACE
    comp = zlib.compressobj(3)
    out = bytearray()
    total_in = 0
    while len(out) < limit and total_in < len(data):
        avail_out = limit - len(out)
        chunk = data[total_in : total_in + min(len(data) - total_in, avail_out)]
        total_in += len(chunk)
        probe = comp.copy()
        block = probe.compress(chunk) + probe.flush(zlib.Z_BLOCK)
        if len(block) >= avail_out:
            out += block
            comp = probe
            break
        out += comp.compress(chunk) + comp.flush(zlib.Z_PARTIAL_FLUSH)
    out += comp.flush(zlib.Z_FINISH)
    if len(out) > dstlen or len(out) >= total_in:
        return None
    return bytes(out), total_in


def _rtime_compress(data: bytes, dstlen: int) -> tuple[bytes, int] | None:
    """mtd-utils ``jffs2_rtime_compress``: literal byte + run length of a repeat of
    the data after the previous occurrence of that byte value."""
    positions = [0] * 256
    out = bytearray()
    pos = 0
    n = len(data)
    room = (dstlen - 2) & 0xFFFFFFFF  # unsigned arithmetic, as in C
    while pos < n and len(out) <= room:
        value = data[pos]
        out.append(value)
        pos += 1
        backpos = positions[value]
        positions[value] = pos
        run = 0
        while backpos < pos and pos < n and data[pos] == data[backpos] and run < 255:
            pos += 1
            backpos += 1
            run += 1
        out.append(run)
    if len(out) >= pos:
        return None
    return bytes(out), pos


# --- the writer ------------------------------------------------------------------------


class _Writer:
    def __init__(self, erase_size: int, cleanmarkers: bool, compression: Compression):
        if erase_size < 0x2000 or erase_size % 4:
            raise ValueError("erase_size must be a multiple of 4 and at least 8 KiB")
        if compression not in ("priority", "zlib", "none"):
            raise ValueError(f"unknown compression {compression!r}")
        self.ebs = erase_size
        self.cleanmarkers = cleanmarkers
        self.compression = compression
        self.out = bytearray()
        self.dirent_version = 0
        self.cleanmarker = self._header(NODETYPE_CLEANMARKER, CLEANMARKER_SIZE)

    @staticmethod
    def _header(nodetype: int, totlen: int) -> bytes:
        head = struct.pack("<HHI", JFFS2_MAGIC, nodetype, totlen)
        return head + struct.pack("<I", crc32_le(head))

    def _padword(self) -> None:
        self.out += b"\xff" * (-len(self.out) % 4)

    def _padblock(self) -> None:
        self.out += b"\xff" * (-len(self.out) % self.ebs)

    def _cleanmarker_if_block_start(self) -> None:
        if self.cleanmarkers and len(self.out) % self.ebs == 0:
            self.out += self.cleanmarker

    def _pad_block_if_less_than(self, req: int) -> None:
        self._cleanmarker_if_block_start()
        if len(self.out) % self.ebs + req > self.ebs:
            self._padblock()
        self._cleanmarker_if_block_start()

    def dirent(self, pino: int, ino: int, name: str, dtype: int, mctime: int) -> None:
        raw = name.encode()
        head = self._header(NODETYPE_DIRENT, DIRENT_HEADER_SIZE + len(raw))
        body = head + struct.pack(
            "<IIIIBBxx", pino, self.dirent_version, ino, mctime, len(raw), dtype
        )
        self.dirent_version += 1
        node = body + struct.pack("<II", crc32_le(body), crc32_le(raw)) + raw
        self._pad_block_if_less_than(len(node))
        self.out += node
        self._padword()

    @staticmethod
    def _inode(
        ino: int,
        version: int,
        mode: int,
        isize: int,
        mtime: int,
        offset: int,
        dsize: int,
        compr: int,
        payload: bytes,
    ) -> bytes:
        head = _Writer._header(NODETYPE_INODE, INODE_HEADER_SIZE + len(payload))
        body = head + struct.pack(
            "<IIIHHIIIIIIIBBH",
            ino,
            version,
            mode,
            0,  # uid
            0,  # gid
            isize,
            mtime,  # atime
            mtime,
            mtime,  # ctime
            offset,
            len(payload),
            dsize,
            compr,
            0,  # usercompr
            0,  # flags
        )
        return body + struct.pack("<II", crc32_le(payload), crc32_le(body)) + payload

    def special_inode(self, ino: int, mode: int, isize: int, mtime: int, payload: bytes) -> None:
        """Directory (no payload) or symlink (target as payload): one node, version 1."""
        node = self._inode(ino, 1, mode, isize, mtime, 0, len(payload), COMPR_NONE, payload)
        self._pad_block_if_less_than(len(node))
        self.out += node
        self._padword()

    def _compress(self, data: bytes, space: int) -> tuple[int, bytes, int]:
        if self.compression != "none":
            z = _zlib_compress(data, space)
            if z is not None:
                return COMPR_ZLIB, z[0], z[1]
            if self.compression == "priority":
                r = _rtime_compress(data, space)
                if r is not None:
                    return COMPR_RTIME, r[0], r[1]
        return COMPR_NONE, data[:space], space

    def regular_file(self, ino: int, mode: int, mtime: int, data: bytes, page_size: int) -> None:
        version = 0
        offset = 0
        for page_start in range(0, len(data), page_size):
            page = data[page_start : page_start + page_size]
            pos = 0
            while pos < len(page):
                self._pad_block_if_less_than(INODE_HEADER_SIZE + MIN_DATA_LEN)
                left = len(page) - pos
                space = min(self.ebs - len(self.out) % self.ebs - INODE_HEADER_SIZE, left)
                compr, payload, used = self._compress(page[pos:], space)
                version += 1
                self.out += self._inode(
                    ino, version, mode, len(data), mtime, offset, used, compr, payload
                )
                self._padword()
                pos += used
                offset += used
        if version == 0:
            self._pad_block_if_less_than(INODE_HEADER_SIZE)
            self.out += self._inode(ino, 1, mode, 0, mtime, 0, 0, COMPR_NONE, b"")
            self._padword()

    def pad(self, pad_to: int) -> None:
        if pad_to == -1:
            self._padblock()
            return
        if len(self.out) > pad_to:
            raise ValueError(f"image is {len(self.out):#x} bytes, larger than pad_to {pad_to:#x}")
        if self.cleanmarkers and pad_to:
            self._padblock()
            while len(self.out) < pad_to:
                self.out += self.cleanmarker
                self._padblock()
        else:
            self.out += b"\xff" * (pad_to - len(self.out))


def build_jffs2(
    tree: Tree,
    *,
    erase_size: int = 0x20000,
    cleanmarkers: bool = True,
    pad_to: int | None = None,
    compression: Compression = "priority",
    mtime: int = 0,
    page_size: int = 4096,
) -> bytes:
    """Build a little-endian JFFS2 image of ``tree`` the way ``mkfs.jffs2`` does.

    Equivalent command line: ``mkfs.jffs2 -l -U -f -e ERASE_SIZE -s PAGE_SIZE
    [-n] [-p[=PAD_TO]] [-x rtime | -m none] -d DIR`` (with ``mtime`` 0 for ``-f``).
    """
    tree.validate()
    w = _Writer(erase_size, cleanmarkers, compression)
    children: dict[str, list[tuple[bytes, str]]] = {"/": []}
    for d in tree.all_dirs():
        children.setdefault(d, [])
    for p in (*tree.files, *tree.symlinks, *tree.all_dirs()):
        parent, name = p.rsplit("/", 1)
        children[parent or "/"].append((name.encode(), p))
    next_ino = 2

    def populate(dir_path: str, dir_ino: int) -> None:
        nonlocal next_ino
        subdirs: list[tuple[str, int]] = []
        for raw_name, path in sorted(children[dir_path]):
            ino = next_ino
            next_ino += 1
            mode = tree.mode_of(path)
            name = raw_name.decode()
            if path in tree.files:
                w.dirent(dir_ino, ino, name, DT_REG, mtime)
                w.regular_file(ino, mode, mtime, tree.files[path], page_size)
            elif path in tree.symlinks:
                target = tree.symlinks[path].encode()
                w.dirent(dir_ino, ino, name, DT_LNK, mtime)
                w.special_inode(ino, mode, len(target), mtime, target)
            else:
                w.dirent(dir_ino, ino, name, DT_DIR, mtime)
                w.special_inode(ino, mode, 0, mtime, b"")
                subdirs.append((path, ino))
        for path, ino in subdirs:
            populate(path, ino)

    populate("/", 1)
    if pad_to is not None:
        w.pad(pad_to)
    return bytes(w.out)


# --- a small node walker for the harness's own checks -----------------------------------


@dataclass(frozen=True)
class Node:
    """One node found by :func:`iter_nodes` (``hdr_ok`` tells whether hdr_crc matched)."""

    offset: int
    nodetype: int
    totlen: int
    hdr_ok: bool


def iter_nodes(image: bytes) -> Iterator[Node]:
    """Walk a little-endian image the way ``mkfs.jffs2 -i`` parses one: skip 0xFFFFFFFF
    words, step over a node by its padded totlen, step 4 bytes over anything else."""
    pos = 0
    while pos + NODE_HEADER_SIZE <= len(image):
        magic, nodetype, totlen, hdr_crc = struct.unpack_from("<HHII", image, pos)
        if magic != JFFS2_MAGIC or totlen < NODE_HEADER_SIZE:
            pos += 4
            continue
        ok = crc32_le(image[pos : pos + 8]) == hdr_crc
        yield Node(pos, nodetype, totlen, ok)
        pos += _pad4(totlen) if ok else 4


# --- deterministic test roots ------------------------------------------------------------


def _split_words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_WORDS = _split_words(
    "camera video stream motion alarm network wireless ptz preset user admin config record "
    "schedule mail ftp ddns upnp http rtsp port server client device channel audio image "
    "brightness contrast infrared night mode enable disable status error timeout buffer frame "
    "rate bitrate resolution encoder sensor flash update firmware version reboot default "
    "gateway netmask dns ipaddr dhcp osd title time zone sync ntp snapshot upload alias"
)

_WEB_POOL = _split_words(
    "login live setup network wireless alarm record ptz video audio users datetime upgrade "
    "reboot log status ddns ftp mail osd motion schedule snapshot storage factory about "
    "player viewer multi mobile style common lang_en lang_de lang_cn public jquery md5 base64 "
    "ajax menu tree tabs ocx plugin html5 dashboard wizard"
)

_MODULE_POOL = _split_words(
    "hi3511_base hi3511_sys hi3511_vou hi3511_viu hi3511_venc hi3511_vpp hi3511_group "
    "hi3511_md hi3511_aio hi3511_ai hi3511_ao hi3511_aenc hi3511_adec hi3511_dsu hi3511_tde "
    "hi3511_h264e hi3511_jpege hi3511_chnl hi3511_sio hi3511_dmac mmz gpio i2c tw2815 ov7725 "
    "rt73 rt2870 wdt ssp pwm ir_remote"
)

_SYMLINKS = {
    "/bin/sh": "busybox",
    "/bin/ls": "busybox",
    "/bin/cat": "busybox",
    "/bin/mount": "busybox",
    "/bin/ps": "busybox",
    "/bin/vi": "busybox",
    "/sbin/init": "../bin/busybox",
    "/sbin/ifconfig": "../bin/busybox",
    "/linuxrc": "bin/busybox",
    "/lib/ld-uClibc.so.0": "ld-uClibc-0.9.28.so",
    "/lib/libc.so.0": "libuClibc-0.9.28.so",
    "/lib/libpthread.so.0": "libpthread-0.9.28.so",
}

_EMPTY_DIRS = (
    "/dev",
    "/proc",
    "/sys",
    "/tmp",
    "/var",
    "/mnt/mtd",
    "/root",
    "/usr/bin",
    "/usr/sbin",
)

_ELF_TYPES = {"exec": 2, "dyn": 3, "rel": 1}


def _text(rng: random.Random, n: int) -> bytes:
    words = rng.choices(_WORDS, k=n // 5 + 2)
    lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)]
    return "\n".join(lines).encode()[:n]


def _elf(rng: random.Random, kind: str, n: int) -> bytes:
    """ARM ELF32 little-endian file of ``n`` bytes: header, then a mix of incompressible
    bytes, instruction-like words from a small vocabulary, and string tables."""
    ident = b"\x7fELF\x01\x01\x01\x61" + bytes(8)  # ELFOSABI_ARM, as old ARM toolchains
    entry = 0x8000 + 4 * rng.randrange(0x100, 0x4000) if kind == "exec" else 0
    head = ident + struct.pack(
        "<HHIIIIIHHHHHH", _ELF_TYPES[kind], 40, 1, entry, 52, n // 2, 0x2, 52, 32, 4, 40, 24, 23
    )
    vocab = [0xE0000000 | rng.getrandbits(28) for _ in range(48)]
    out = bytearray(head)
    while len(out) < n:
        seg = rng.randrange(256, 8192)
        pick = rng.random()
        if pick < 0.45:
            out += rng.randbytes(seg)
        elif pick < 0.85:
            out += struct.pack(f"<{seg // 4}I", *rng.choices(vocab, k=seg // 4))
        else:
            out += _text(rng, seg).replace(b" ", b"\x00", seg // 16)
    return bytes(out[:n])


def _gif(rng: random.Random, n: int) -> bytes:
    return (b"GIF89a" + rng.randbytes(max(0, n - 7)) + b";")[:n]


def _fixed_files(name: str, rng: random.Random) -> dict[str, bytes]:
    version = f"V{rng.randrange(1, 60)}.{rng.randrange(0, 9)}.{rng.randrange(0, 9)}"
    return {
        "/etc/version": (
            f"FIRMWARE={name}\nSYSTEM_VERSION={version}\nKERNEL=Linux-2.6.14\n"
            f"BOARD=Hi3511\nBUILD=2009-04-08\n"
        ).encode(),
        "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
        "/etc/group": b"root:x:0:root\n",
        "/etc/shadow": b"root:$1$" + rng.randbytes(6).hex().encode() + b"$:0:0:99999:7:::\n",
        "/etc/inittab": b"::sysinit:/etc/init.d/rcS\n::respawn:-/bin/sh\n::restart:/sbin/init\n",
        "/etc/fstab": (
            b"proc /proc proc defaults 0 0\nsysfs /sys sysfs defaults 0 0\n"
            b"tmpfs /tmp tmpfs defaults 0 0\n"
        ),
        "/etc/hosts": b"127.0.0.1 localhost\n",
        "/etc/profile": b"export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1='[\\u@\\h \\W]# '\n",
        "/etc/init.d/rcS": (
            b"#! /bin/sh\n/bin/mount -a\n"
            b"mount -t jffs2 /dev/mtdblock2 /mnt/mtd\n"
            b"for m in /komod/*.ko; do insmod $m; done\n"
            b"ifconfig lo 127.0.0.1\n"
            b"/home/ipcam &\n"
        ),
        "/home/web/index.html": (
            f"<html><head><title>{name}</title>"
            f'<meta http-equiv="refresh" content="0;url=login.htm"></head>'
            f"<body>{name} {version}</body></html>\n"
        ).encode(),
    }


def firmware_tree(name: str, n_files: int = 40, size: int = 1 << 20, seed: int = 0) -> Tree:
    """A plausible Hi3511 camera root file system, fully determined by (name, seed).

    ``n_files`` regular files holding about ``size`` bytes in total (never less than
    the few fixed text files need): /etc (passwd, inittab, init.d/rcS, version with
    ``name`` in it, ...), /bin/busybox and uClibc (ARM ELF), the camera daemon
    /home/ipcam, web pages and kernel modules whose names and sizes depend on
    ``name``, busybox symlinks and the usual empty mount points. Binaries mix random
    (incompressible) bytes with repetitive code and strings, so zlib saves about a
    third; two names give trees that differ in file set, sizes and content.
    """
    if n_files < 14:
        raise ValueError("n_files must be at least 14 (the fixed part of the tree)")
    rng = random.Random(f"camrescue-firmware:{name}:{seed}")
    files = _fixed_files(name, rng)
    binaries = {
        "/bin/busybox": ("exec", 0.22),
        "/lib/ld-uClibc-0.9.28.so": ("dyn", 0.015),
        "/lib/libuClibc-0.9.28.so": ("dyn", 0.11),
        "/lib/libpthread-0.9.28.so": ("dyn", 0.02),
        "/home/ipcam": ("exec", 0.33),
    }
    n_extra = n_files - len(files) - len(binaries)
    web = [f"/home/web/{w}" for w in rng.sample(_WEB_POOL, min(len(_WEB_POOL), n_extra // 2))]
    web = [p + rng.choice((".htm", ".js", ".css", ".gif")) for p in web]
    mods = [
        f"/komod/{m}.ko"
        for m in rng.sample(_MODULE_POOL, min(len(_MODULE_POOL), n_extra - len(web)))
    ]
    extra = web + mods
    stem = re.sub(r"[^a-z0-9_.-]", "_", name.lower())
    extra += [f"/usr/share/{stem}_{i:03d}.dat" for i in range(n_extra - len(extra))]

    budget = max(0, size - sum(len(v) for v in files.values()))
    weights = {p: w for p, (_, w) in binaries.items()}
    rest = 1.0 - sum(weights.values())
    extra_w = [rng.random() + 0.05 for _ in extra]
    for p, w in zip(extra, extra_w, strict=True):
        weights[p] = rest * w / sum(extra_w)
    for p in sorted(weights):
        n = max(1, int(budget * weights[p]))
        if p in binaries:
            files[p] = _elf(rng, binaries[p][0], n)
        elif p.endswith(".ko"):
            files[p] = _elf(rng, "rel", n)
        elif p.endswith((".gif", ".dat")):
            files[p] = _gif(rng, n) if p.endswith(".gif") else rng.randbytes(n)
        else:
            files[p] = _text(rng, n)

    modes = {p: 0o755 for p in (*binaries, "/etc/init.d/rcS")}
    modes["/etc/shadow"] = 0o600
    modes["/tmp"] = 0o1777
    return Tree(files=files, dirs=set(_EMPTY_DIRS), symlinks=dict(_SYMLINKS), modes=modes)
