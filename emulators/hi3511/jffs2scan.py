# ruff: noqa: UP031  (printf-style formats kept verbatim from the C sources)
"""Model of the Linux 2.6 JFFS2 mount: scan, build passes, and the file tree.

What is modelled, and from which source (Linux 2.6.12/2.6.13 era, little-endian
NOR flash, ``cleanmarker_size`` 12):

- ``fs/jffs2/scan.c`` (v1.115/v1.121) ``jffs2_scan_medium`` and
  ``jffs2_scan_eraseblock``: per erase block, ``EMPTY_SCAN_SIZE`` = min(1024,
  sector) of 0xFF means an erased block (silent, rest of the block ignored);
  0xFF at a block's start is skipped silently; later 0xFF runs print
  ``Empty flash at 0x%08x ends at 0x%08x`` when something follows them in the
  block and are silent when they run to the block's end; the "cleanmarker
  then 0xFF to the end of the first 1024-byte read buffer" bail-out treats the
  rest of such a block as free and never looks at it (the kernel reads the
  flash through a PAGE_SIZE buffer because the AMD-style CFI driver of that
  era has no ``point()``; ``mtd_point=True`` models a driver with ``point()``,
  where that bail-out only happens at the block's end); 0x0000 words are
  skipped silently; a bad magic or a bad header CRC skips 4 bytes and prints
  through ``noisy_printk`` (10 per block, then ``Further such events for this
  erase block will not be printed``); the header CRC is computed with the
  ACCURATE bit (0x2000) forced on; a node running over the block end prints
  two warnings and skips 4 bytes; a node with ACCURATE clear is obsolete and
  skipped silently; cleanmarkers (wrong length / not first), padding, and
  unknown node types by their compat bits (ROCOMPAT prints a notice and is
  skipped on a read-only mount -- the root is mounted read-only because the
  command line has no ``rw`` -- or fails the mount on a read-write one;
  INCOMPAT prints a notice and fails the mount; RWCOMPAT_* are silent).
- ``jffs2_scan_inode_node``: the node CRC (bytes 0..59) is checked *only* when
  no inode cache exists yet for that ino (the first node seen for it, unless a
  valid dirent already named it as a parent); the data CRC is not checked at
  scan time. ``jffs2_scan_dirent_node``: node CRC (bytes 0..31), then name CRC.
  These messages are not noise-limited.
- The end of ``jffs2_scan_medium``: ``Cowardly refusing to erase blocks on
  filesystem with no valid JFFS2 nodes`` and the ``empty_blocks %d, bad_blocks
  %d, c->nr_blocks %d`` line that follows it in the source; the mount fails.
- ``fs/jffs2/build.c`` (v1.69) passes 1 and 2: ``Eep. Child "%s" (ino #%u) of
  dir ino #%u doesn't exist!``, the hard-linked directory notices, ``Inode #%u
  was a directory with children - removing those too...`` and ``Cannot remove
  child ...``, in the kernel's inode-cache hash order (bucket ino % 128, then
  ino) and dirent order (name hash, ``full_name_hash`` of 2.6).
- ``fs/jffs2/nodelist.c`` (``jffs2_add_fd_to_list``, ``jffs2_get_inode_nodes``)
  and ``readinode.c``: when an inode is first read, unchecked nodes get their
  node CRC, sanity and data CRC checked (messages ``jffs2_get_inode_nodes(): ...``
  and ``jffs2_do_read_inode(): No data nodes found ...``). These are returned
  per inode in ``read_messages`` (the kernel prints them when the inode is
  first looked up; the root inode's are printed at mount and are appended to
  ``messages``). Nodes failing them are dropped from the file contents.
- File contents: inode nodes applied in version order (later versions
  overwrite), holes read as zeros, truncated to the latest node's isize;
  compression none (0), zero (1), rtime (2, decompressor written from the
  algorithm in compr_rtime.c), zlib (6, with or without the zlib header as
  compr_zlib.c accepts). Other types (rubin, copy, lzo) were not built into
  the kernel: the inode becomes unreadable (``JFFS2 compression type 0x%02x
  not available.``). Symlink targets are the inode data; device nodes, fifos
  and sockets are reported in ``special`` with their mode.

Deviations, all in cases that need a valid 32-bit header CRC over garbage:
the kernel reads nodes through its scan buffer, so a node shorter than the
struct it is parsed as (an "inode" with totlen < 68 at the end of a block, or
a dirent whose nsize runs past totlen) would see stale buffer bytes; this
model reads the flash bytes instead (0xFF past the partition end). A node
whose totlen makes the 32-bit offset wrap backwards would make the kernel
rescan earlier bytes; this model stops scanning that block instead. Among
inode nodes with equal versions the earliest on flash wins (the rb-tree order
of nodelist.c v1.98). Two read-time texts come from sources slightly newer
than 2.6.12 and may differ on the device: the ``Inode corrupted`` sanity line
(nodelist.c v1.98) and the spelling of ``not available.`` in compr.c.

Offsets in messages are relative to the partition start, as the kernel prints
them (the MTD device is the partition). Message strings have no trailing
newline; names are decoded as latin-1 so that ``encode("latin-1")`` gives the
kernel's bytes. Paths are absolute, also latin-1. Only whole erase blocks are
scanned (``nr_blocks = len(image) // erase_size``), as the kernel does.
"""

from __future__ import annotations

import bisect
import re
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = 0x1985
MAGIC_BACKWARDS = 0x8519
OLD_MAGIC = 0x1984
NODE_ACCURATE = 0x2000
COMPAT_MASK = 0xC000
FEATURE_INCOMPAT = 0xC000
FEATURE_ROCOMPAT = 0x8000
FEATURE_RWCOMPAT_COPY = 0x4000
FEATURE_RWCOMPAT_DELETE = 0x0000
NODETYPE_DIRENT = 0xE001
NODETYPE_INODE = 0xE002
NODETYPE_CLEANMARKER = 0x2003
NODETYPE_PADDING = 0x2004

COMPR_NONE = 0x00
COMPR_ZERO = 0x01
COMPR_RTIME = 0x02
COMPR_ZLIB = 0x06

CLEANMARKER_SIZE = 12
RAW_INODE_SIZE = 68
RAW_DIRENT_SIZE = 40
DEFAULT_EMPTY_SCAN_SIZE = 1024
INOCACHE_HASHSIZE = 128
DT_DIR = 4

S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000

_M32 = 0xFFFFFFFF
_U32 = struct.Struct("<I")
_HDR = struct.Struct("<HHII")
_INODE = struct.Struct("<HHIIIIIHHIIIIIIIBBHII")
_DIRENT = struct.Struct("<HHIIIIIIBBBBII")

_NON_FF = re.compile(rb"[^\xff]")
_NON_ZERO = re.compile(rb"[^\x00]")
# Words a silent scan must stop at once noise is used up: 0xFFFFFFFF (empty
# flash), 0x1985 (a node) and 0x1984 (old magic, always printed).
_CANDIDATE = re.compile(rb"\x85\x19|\x84\x19|\xff\xff\xff\xff")

# Block states returned by the block scan (scan.c BLK_STATE_*).
_ALLFF, _CLEAN, _PARTDIRTY, _CLEANMARKER, _ALLDIRTY = range(5)


def crc32(data: bytes) -> int:
    """crc32_le as JFFS2 uses it: reflected 0xEDB88320, seed 0, no inversion."""
    return zlib.crc32(data, _M32) ^ _M32


def pad4(x: int) -> int:
    """PAD(): round up to 4, in 32-bit arithmetic."""
    return (x + 3) & ~3 & _M32


def full_name_hash(name: bytes) -> int:
    """Linux 2.6 dcache name hash (32-bit unsigned long, as on ARM)."""
    h = 0
    for c in name:
        h = ((h + (c << 4) + (c >> 4)) * 11) & _M32
    return h


def rtime_decompress(src: bytes, destlen: int) -> bytes:
    """The rtime decompressor of fs/jffs2/compr_rtime.c."""
    out = bytearray()
    positions = [0] * 256
    pos = 0
    while len(out) < destlen:
        value = src[pos]
        repeat = src[pos + 1]
        pos += 2
        out.append(value)
        outpos = len(out)
        backoffs = positions[value]
        positions[value] = outpos & 0xFFFF
        if repeat:
            if backoffs + repeat >= outpos:
                for _ in range(repeat):
                    out.append(out[backoffs])
                    backoffs += 1
            else:
                out += out[backoffs : backoffs + repeat]
    return bytes(out[:destlen])


def _zlib_decompress(src: bytes, destlen: int) -> bytes:
    """compr_zlib.c: zlib header when the first two bytes look like one, else
    raw deflate. Output limited to destlen; a short or broken stream yields what
    inflated before the error (the kernel only logs it)."""
    if len(src) > 2 and (src[0] & 0x0F) == 8 and ((src[0] << 8) + src[1]) % 31 == 0:
        d = zlib.decompressobj()
    else:
        d = zlib.decompressobj(-15)
    try:
        out = d.decompress(src, destlen)
    except zlib.error:
        out = b""
    return out[:destlen]


def _s32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v & 0x80000000 else v


def _cstr(name: bytes) -> bytes:
    return name.split(b"\0", 1)[0]


@dataclass
class ScanResult:
    """Outcome of mounting a JFFS2 partition.

    ``messages``: the kernel lines of the mount, in order: scan, then build
    passes, then the root inode's read-time lines. ``mounted`` is False after
    "Cowardly refusing ..." or an INCOMPAT (or, read-write, ROCOMPAT) node; the
    caller prints the VFS/panic lines. ``crc_errors`` counts scan-time CRC
    failures: header CRCs (also those noise-limited away), inode node CRCs and
    dirent node/name CRCs. ``read_messages[ino]`` holds the lines the kernel
    prints when that inode is first read (``inodes`` maps paths to inos);
    ``unreadable`` paths fail with EIO. The file tree is empty when not mounted.
    """

    messages: list[str]
    mounted: bool
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    symlinks: dict[str, str] = field(default_factory=dict)
    crc_errors: int = 0
    # Extras beyond the brief's minimum:
    special: dict[str, int] = field(default_factory=dict)  # path -> st_mode (dev/fifo/sock)
    modes: dict[str, int] = field(default_factory=dict)  # every path -> st_mode
    inodes: dict[str, int] = field(default_factory=dict)  # every path -> ino
    unreadable: set[str] = field(default_factory=set)  # paths whose inode read fails (EIO)
    read_messages: dict[int, list[str]] = field(default_factory=dict)  # ino -> lines


@dataclass
class _Ref:
    """A raw node reference (inode or dirent) in its inode cache."""

    ofs: int
    totlen: int
    kind: int  # NODETYPE_INODE or NODETYPE_DIRENT
    obsolete: bool = False


@dataclass
class _Dirent:
    ref: _Ref
    pino: int
    version: int
    ino: int
    type: int
    name: bytes  # C string (up to the first NUL)
    nsize: int
    nhash: int


@dataclass
class _Ic:
    """struct jffs2_inode_cache as the scan builds it."""

    ino: int
    nlink: int = 0
    refs: list[_Ref] = field(default_factory=list)  # scan order
    scan_dents: list[_Dirent] = field(default_factory=list)
    dent_hashes: list[int] = field(default_factory=list)  # nhash of scan_dents
    dents: list[_Dirent] = field(default_factory=list)  # winners, kept for the tree


@dataclass
class _Jeb:
    offset: int
    used: int = 0
    unchecked: int = 0
    dirty: int = 0
    wasted: int = 0
    nodes: int = 0  # nodes on the block's next_phys list


@dataclass
class _InodeView:
    mode: int
    data: bytes = b""
    unreadable: bool = False


class _MountError(Exception):
    """scan_medium returned an error: the mount fails."""


class _Scanner:
    def __init__(self, image: bytes, erase_size: int, readonly: bool, mtd_point: bool):
        if erase_size <= 0 or erase_size % 4:
            raise ValueError("erase_size must be a positive multiple of 4")
        self.img = bytes(image)
        self.es = erase_size
        self.readonly = readonly
        self.mtd_point = mtd_point
        self.nr_blocks = len(self.img) // erase_size
        self.messages: list[str] = []
        self.crc_errors = 0
        self.ics: dict[int, _Ic] = {}
        self.used_size = 0
        self.cur_jeb: _Jeb | None = None

    # -- helpers -----------------------------------------------------------

    def _u32(self, ofs: int) -> int:
        if ofs + 4 <= len(self.img):
            return _U32.unpack_from(self.img, ofs)[0]
        return _U32.unpack(self._bytes(ofs, 4))[0]

    def _bytes(self, ofs: int, n: int) -> bytes:
        b = self.img[ofs : ofs + n]
        if len(b) < n:
            b += b"\xff" * (n - len(b))
        return b

    def _first_non_ff(self, start: int, end: int) -> int | None:
        """Offset of the first 32-bit word in [start, end) that is not all 0xFF."""
        m = _NON_FF.search(self.img, start, end)
        return None if m is None else m.start() & ~3

    def _skip_zero_low(self, ofs: int, end: int) -> int:
        """First word at/after ofs whose low half (the magic) is not 0x0000."""
        while ofs < end:
            m = _NON_ZERO.search(self.img, ofs, end)
            if m is None:
                return end
            p = m.start()
            w = p & ~3
            if p - w < 2:
                return w
            ofs = w + 4
        return end

    def _skip_silent(self, ofs: int, end: int) -> int:
        """With noise used up: first word at/after ofs that is 0xFFFFFFFF or has
        magic 0x1985/0x1984; every word before it would be skipped silently."""
        while ofs < end:
            m = _CANDIDATE.search(self.img, ofs, end)
            if m is None:
                return end
            p = m.start()
            if not p & 3:
                return p
            ofs = p + 1
        return end

    def _ic(self, ino: int) -> _Ic:
        ic = self.ics.get(ino)
        if ic is None:
            ic = self.ics[ino] = _Ic(ino, nlink=1 if ino == 1 else 0)
        return ic

    # -- scan_medium -------------------------------------------------------

    def scan_medium(self) -> bool:
        empty = free = erasing = 0
        for i in range(self.nr_blocks):
            state, dirty = self._scan_block(i * self.es)
            if state == _ALLFF:
                empty += 1
                erasing += 1
            elif state == _CLEANMARKER:
                if dirty:
                    erasing += 1
                else:
                    free += 1
            elif state == _ALLDIRTY:
                erasing += 1
        if erasing and not self.used_size and (free + empty != self.nr_blocks):
            self.messages.append(
                "Cowardly refusing to erase blocks on filesystem with no valid JFFS2 nodes"
            )
            self.messages.append(
                "empty_blocks %d, bad_blocks %d, c->nr_blocks %d" % (empty, 0, self.nr_blocks)
            )
            return False
        return True

    # -- scan_eraseblock ---------------------------------------------------

    def _noisy(self, noise: list[int], msg: str) -> None:
        if noise[0]:
            self.messages.append(msg)
            noise[0] -= 1
            if not noise[0]:
                self.messages.append("Further such events for this erase block will not be printed")

    def _scan_block(self, blk: int) -> tuple[int, int]:
        es = self.es
        end = blk + es
        ess = min(es, DEFAULT_EMPTY_SCAN_SIZE)
        msgs = self.messages
        first = self._first_non_ff(blk, blk + ess)
        if first is None:
            return _ALLFF, 0
        jeb = self.cur_jeb = _Jeb(blk)
        jeb.dirty += first - blk
        ofs = first
        prevofs = blk - 1
        noise = [10]
        while ofs < end:
            if ofs == prevofs:
                msgs.append("ofs 0x%08x has already been seen. Skipping" % ofs)
                jeb.dirty += 4
                ofs += 4
                continue
            prevofs = ofs
            if end < ofs + 12:
                jeb.dirty += end - ofs
                break
            word = self._u32(ofs)
            if word == _M32:
                empty_start = ofs
                nxt = self._first_non_ff(ofs + 4, end)
                bail_possible = (
                    not self.mtd_point
                    and jeb.nodes == 1
                    and jeb.used == CLEANMARKER_SIZE
                    and not jeb.dirty
                    and empty_start < blk + ess
                )
                if bail_possible and (nxt is None or nxt >= blk + ess):
                    # "%d bytes at start of block seems clean... assuming all clean"
                    return _CLEANMARKER, 0
                if nxt is None:
                    break  # empty to the end of the block: free space
                msgs.append("Empty flash at 0x%08x ends at 0x%08x" % (empty_start, nxt))
                jeb.dirty += nxt - empty_start
                ofs = nxt
                continue
            magic = word & 0xFFFF
            if ofs == blk and magic == MAGIC_BACKWARDS:
                msgs.append(
                    "Magic bitmask is backwards at offset 0x%08x. Wrong endian filesystem?" % ofs
                )
                jeb.dirty += 4
                ofs += 4
                continue
            if magic == 0:
                nxt = self._skip_zero_low(ofs + 4, end)
                jeb.dirty += nxt - ofs
                ofs = nxt
                continue
            if magic == OLD_MAGIC:
                msgs.append("Old JFFS2 bitmask found at 0x%08x" % ofs)
                msgs.append("You cannot use older JFFS2 filesystems with newer kernels")
                jeb.dirty += 4
                ofs += 4
                continue
            if magic != MAGIC:
                self._noisy(
                    noise,
                    "jffs2_scan_eraseblock(): Magic bitmask 0x%04x not found at 0x%08x: "
                    "0x%04x instead" % (MAGIC, ofs, magic),
                )
                nxt = ofs + 4 if noise[0] else self._skip_silent(ofs + 4, end)
                jeb.dirty += nxt - ofs
                ofs = nxt
                continue
            _, nodetype, totlen, hdr_crc = _HDR.unpack_from(self.img, ofs)
            calc = crc32(_HDR.pack(magic, nodetype | NODE_ACCURATE, totlen, 0)[:8])
            if calc != hdr_crc:
                self.crc_errors += 1
                self._noisy(
                    noise,
                    "jffs2_scan_eraseblock(): Node at 0x%08x {0x%04x, 0x%04x, 0x%08x) "
                    "has invalid CRC 0x%08x (calculated 0x%08x)"
                    % (ofs, magic, nodetype, totlen, hdr_crc, calc),
                )
                nxt = ofs + 4 if noise[0] else self._skip_silent(ofs + 4, end)
                jeb.dirty += nxt - ofs
                ofs = nxt
                continue
            if (ofs + totlen) & _M32 > end:
                msgs.append(
                    "Node at 0x%08x with length 0x%08x would run over the end of the "
                    "erase block" % (ofs, totlen)
                )
                msgs.append("Perhaps the file system was created with the wrong erase size?")
                jeb.dirty += 4
                ofs += 4
                continue
            step = pad4(totlen)
            if not nodetype & NODE_ACCURATE:
                jeb.dirty += step
            elif nodetype == NODETYPE_INODE:
                self._scan_inode(jeb, ofs, totlen)
            elif nodetype == NODETYPE_DIRENT:
                self._scan_dirent(jeb, ofs, totlen)
            elif nodetype == NODETYPE_CLEANMARKER:
                if totlen != CLEANMARKER_SIZE:
                    msgs.append(
                        "CLEANMARKER node found at 0x%08x has totlen 0x%x != normal 0x%x"
                        % (ofs, totlen, CLEANMARKER_SIZE)
                    )
                    jeb.dirty += 12
                elif jeb.nodes:
                    msgs.append(
                        "CLEANMARKER node found at 0x%08x, not first node in block (0x%08x)"
                        % (ofs, blk)
                    )
                    jeb.dirty += 12
                else:
                    jeb.nodes = 1
                    jeb.used += CLEANMARKER_SIZE
                    self.used_size += CLEANMARKER_SIZE
                step = 12
            elif nodetype == NODETYPE_PADDING:
                jeb.dirty += step
            else:
                compat = nodetype & COMPAT_MASK
                if compat == FEATURE_ROCOMPAT:
                    msgs.append(
                        "Read-only compatible feature node (0x%04x) found at offset 0x%08x"
                        % (nodetype, ofs)
                    )
                    if not self.readonly:
                        raise _MountError
                    jeb.dirty += step
                elif compat == FEATURE_INCOMPAT:
                    msgs.append(
                        "Incompatible feature node (0x%04x) found at offset 0x%08x"
                        % (nodetype, ofs)
                    )
                    raise _MountError
                elif compat == FEATURE_RWCOMPAT_DELETE:
                    jeb.dirty += step
                else:  # RWCOMPAT_COPY
                    jeb.used += step
                    self.used_size += step
            new = (ofs + step) & _M32
            if new < ofs:
                break  # wrapped: see the module docstring
            ofs = new
        # "mark_node_obsolete can add to wasted !!"
        jeb.dirty += jeb.wasted
        jeb.wasted = 0
        used = jeb.used + jeb.unchecked
        if used == CLEANMARKER_SIZE and not jeb.dirty and jeb.nodes <= 1:
            return _CLEANMARKER, 0
        if es - used <= RAW_INODE_SIZE + 128:  # !ISDIRTY()
            return _CLEAN, jeb.dirty
        if used:
            return _PARTDIRTY, jeb.dirty
        return _ALLDIRTY, jeb.dirty

    def _scan_inode(self, jeb: _Jeb, ofs: int, totlen: int) -> None:
        ino = self._u32(ofs + 12)
        if ino not in self.ics:
            raw = self._bytes(ofs, RAW_INODE_SIZE)
            crc = crc32(raw[:60])
            node_crc = _U32.unpack_from(raw, 64)[0]
            if crc != node_crc:
                self.crc_errors += 1
                self.messages.append(
                    "jffs2_scan_inode_node(): CRC failed on node at 0x%08x: "
                    "Read 0x%08x, calculated 0x%08x" % (ofs, node_crc, crc)
                )
                jeb.dirty += pad4(totlen)
                return
        ic = self._ic(ino)
        ic.refs.append(_Ref(ofs, totlen, NODETYPE_INODE))
        jeb.nodes += 1
        jeb.unchecked += pad4(totlen)

    def _scan_dirent(self, jeb: _Jeb, ofs: int, totlen: int) -> None:
        raw = self._bytes(ofs, RAW_DIRENT_SIZE)
        f = _DIRENT.unpack(raw)
        pino, version, ino = f[4], f[5], f[6]
        nsize, dtype, node_crc, name_crc = f[8], f[9], f[12], f[13]
        crc = crc32(raw[:32])
        if crc != node_crc:
            self.crc_errors += 1
            self.messages.append(
                "jffs2_scan_dirent_node(): Node CRC failed on node at 0x%08x: "
                "Read 0x%08x, calculated 0x%08x" % (ofs, node_crc, crc)
            )
            jeb.dirty += pad4(totlen)
            return
        name = self._bytes(ofs + RAW_DIRENT_SIZE, nsize)
        crc = crc32(name)
        if crc != name_crc:
            self.crc_errors += 1
            self.messages.append(
                "jffs2_scan_dirent_node(): Name CRC failed on node at 0x%08x: "
                "Read 0x%08x, calculated 0x%08x" % (ofs, name_crc, crc)
            )
            jeb.dirty += pad4(totlen)
            return
        ic = self._ic(pino)
        ref = _Ref(ofs, totlen, NODETYPE_DIRENT)
        ic.refs.append(ref)
        jeb.nodes += 1
        jeb.used += pad4(totlen)
        self.used_size += pad4(totlen)
        fd = _Dirent(ref, pino, version, ino, dtype, _cstr(name), nsize, full_name_hash(name))
        self._add_fd_to_list(fd, ic)

    def _add_fd_to_list(self, new: _Dirent, ic: _Ic) -> None:
        """nodelist.c jffs2_add_fd_to_list: sorted by nhash (a new entry goes
        after equal hashes); for the same name the higher version stays (ties go
        to the newer node) and the other is obsoleted. bisect finds the same
        place the kernel's linear walk does."""
        lst, hashes = ic.scan_dents, ic.dent_hashes
        lo = bisect.bisect_left(hashes, new.nhash)
        hi = bisect.bisect_right(hashes, new.nhash, lo)
        for i in range(lo, hi):
            old = lst[i]
            if old.name == new.name:
                loser = new if new.version < old.version else old
                if loser is old:
                    lst[i] = new
                self._obsolete_dirent(loser)
                return
        lst.insert(hi, new)
        hashes.insert(hi, new.nhash)

    def _obsolete_dirent(self, fd: _Dirent) -> None:
        """jffs2_mark_node_obsolete during the scan: the node's space leaves
        used_size; in its own block it becomes dirty (or wasted while the block
        is clean and the total stays below ISDIRTY). Blocks already classified
        keep their state, as in the kernel."""
        fd.ref.obsolete = True
        size = pad4(fd.ref.totlen)
        self.used_size -= size
        jeb = self.cur_jeb
        if jeb is not None and jeb.offset <= fd.ref.ofs < jeb.offset + self.es:
            jeb.used -= size
            if jeb.dirty or jeb.wasted + size > RAW_INODE_SIZE + 128:
                jeb.dirty += size
            else:
                jeb.wasted += size

    # -- build.c passes ----------------------------------------------------

    def _hash_order(self) -> list[_Ic]:
        return [self.ics[i] for i in sorted(self.ics, key=lambda i: (i % INOCACHE_HASHSIZE, i))]

    def build(self) -> None:
        msgs = self.messages
        for ic in self.ics.values():
            ic.dents = list(ic.scan_dents)
        for ic in self._hash_order():
            for fd in ic.scan_dents:
                if not fd.ino:
                    continue
                child = self.ics.get(fd.ino)
                if child is None:
                    msgs.append(
                        'Eep. Child "%s" (ino #%d) of dir ino #%d doesn\'t exist!'
                        % (fd.name.decode("latin-1"), fd.ino, ic.ino)
                    )
                    fd.ref.obsolete = True
                    continue
                old = child.nlink
                child.nlink = (child.nlink + 1) & _M32
                if old and fd.type == DT_DIR:
                    msgs.append(
                        'Child dir "%s" (ino #%d) of dir ino #%d appears to be a hard link'
                        % (fd.name.decode("latin-1"), fd.ino, ic.ino)
                    )
                    if fd.ino == 1 and ic.ino == 1:
                        msgs.append(
                            "This is mostly harmless, and probably caused by creating a JFFS2 image"
                        )
                        msgs.append("using a buggy version of mkfs.jffs2. Use at least v1.17.")
        dead: list[_Dirent] = []
        for ic in self._hash_order():
            if ic.nlink:
                continue
            self._remove_unlinked(ic, dead)
        while dead:
            fd = dead.pop(0)
            child = self.ics.get(fd.ino)
            if child is not None:
                self._remove_unlinked(child, dead)

    def _remove_unlinked(self, ic: _Ic, dead: list[_Dirent]) -> None:
        for ref in ic.refs:
            ref.obsolete = True
        whinged = False
        while ic.scan_dents:
            fd = ic.scan_dents.pop(0)
            if not fd.ino:
                continue
            if not whinged:
                whinged = True
                self.messages.append(
                    "Inode #%d was a directory with children - removing those too..." % ic.ino
                )
            child = self.ics.get(fd.ino)
            if child is None:
                self.messages.append(
                    'Cannot remove child "%s", ino #%d, because it doesn\'t exist'
                    % (fd.name.decode("latin-1"), fd.ino)
                )
                continue
            child.nlink = (child.nlink - 1) & _M32
            if not child.nlink:
                dead.insert(0, fd)

    # -- reading inodes (readinode.c / nodelist.c) ---------------------------

    def read_inode(self, ino: int, cache: dict[int, _InodeView], rmsgs: list[str]) -> _InodeView:
        if ino in cache:
            return cache[ino]
        ic = self.ics.get(ino)
        refs = [r for r in (ic.refs if ic else []) if not r.obsolete]
        tns: list[tuple[int, tuple]] = []  # (version, fields) in ic->nodes order
        has_dents = False
        for ref in reversed(refs):  # ic->nodes is a LIFO list
            if ref.kind == NODETYPE_DIRENT:
                nsize = self.img[ref.ofs + 28] if ref.ofs + 28 < len(self.img) else 0xFF
                if pad4(nsize + RAW_DIRENT_SIZE) != pad4(ref.totlen):
                    rmsgs.append(
                        "jffs2_get_inode_nodes(): Illegal nsize in node at 0x%08x: "
                        "nsize 0x%02x, totlen %04x" % (ref.ofs, nsize, ref.totlen)
                    )
                    ref.obsolete = True
                    continue
                has_dents = True
                continue
            raw = self._bytes(ref.ofs, RAW_INODE_SIZE)
            f = _INODE.unpack(raw)
            crc = crc32(raw[:60])
            if crc != f[20]:
                rmsgs.append(
                    "jffs2_get_inode_nodes(): CRC failed on node at 0x%08x: "
                    "Read 0x%08x, calculated 0x%08x" % (ref.ofs, f[20], crc)
                )
                ref.obsolete = True
                continue
            isize, offset, csize, dsize, compr = f[9], f[13], f[14], f[15], f[16]
            if offset > isize or pad4(csize + RAW_INODE_SIZE) != pad4(f[2]):
                rmsgs.append(
                    "jffs2_get_inode_nodes(): Inode corrupted at 0x%08x, totlen %d, #ino  %d, "
                    "version %d, isize %d, csize %d, dsize %d "
                    % (
                        ref.ofs,
                        _s32(f[2]),
                        _s32(f[4]),
                        _s32(f[5]),
                        _s32(isize),
                        _s32(csize),
                        _s32(dsize),
                    )
                )
                ref.obsolete = True
                continue
            if compr != COMPR_ZERO and csize:
                dcrc = crc32(self._bytes(ref.ofs + RAW_INODE_SIZE, csize))
                if dcrc != f[19]:
                    rmsgs.append(
                        "jffs2_get_inode_nodes(): Data CRC failed on node at 0x%08x: "
                        "Read 0x%08x, calculated 0x%08x" % (ref.ofs, f[19], dcrc)
                    )
                    ref.obsolete = True
                    continue
            tns.append((f[5], (ref, f)))
        # Stable sort by version: equal versions keep ic->nodes order.
        tns.sort(key=lambda t: t[0])
        view = self._assemble(ino, tns, has_dents, rmsgs)
        cache[ino] = view
        return view

    def _assemble(self, ino: int, tns: list, has_dents: bool, rmsgs: list[str]) -> _InodeView:
        dir_mode = S_IFDIR | 0o755
        if not tns:
            if ino != 1:
                rmsgs.append("jffs2_do_read_inode(): No data nodes found for ino #%d" % ino)
                if not has_dents:
                    return _InodeView(0, unreadable=True)
                rmsgs.append(
                    "jffs2_do_read_inode(): But it has children so we fake some modes for it"
                )
            return _InodeView(dir_mode)
        buf = bytearray()
        for _version, (ref, f) in tns:
            offset, csize, dsize, compr = f[13], f[14], f[15], f[16]
            size = csize if (compr == COMPR_ZERO and not dsize and csize) else dsize
            if not size:
                continue
            data = self._node_data(ref.ofs, compr, csize, size)
            if data is None:
                rmsgs.append("JFFS2 compression type 0x%02x not available." % compr)
                return _InodeView(f[6], unreadable=True)
            if len(buf) < offset:
                buf += bytes(offset - len(buf))
            buf[offset : offset + size] = data
        latest = tns[-1][1][1]
        mode, isize, dsize = latest[6], latest[9], latest[15]
        if mode & S_IFMT == S_IFLNK and not isize:
            isize = dsize
        if len(buf) < isize:
            buf += bytes(isize - len(buf))
        return _InodeView(mode, bytes(buf[:isize]))

    def _node_data(self, ofs: int, compr: int, csize: int, size: int) -> bytes | None:
        if compr == COMPR_ZERO:
            return bytes(size)
        src = self._bytes(ofs + RAW_INODE_SIZE, csize)
        if compr == COMPR_NONE:
            out = src[:size]
        elif compr == COMPR_ZLIB:
            out = _zlib_decompress(src, size)
        elif compr == COMPR_RTIME:
            try:
                out = rtime_decompress(src, size)
            except IndexError:
                out = b""
        else:
            return None
        return out + bytes(size - len(out))

    # -- tree ----------------------------------------------------------------

    def tree(self, res: ScanResult) -> None:
        cache: dict[int, _InodeView] = {}
        root_msgs: list[str] = []
        self.read_inode(1, cache, root_msgs)
        res.read_messages[1] = root_msgs
        res.messages.extend(root_msgs)
        res.dirs.add("/")
        res.modes["/"] = cache[1].mode if cache[1].mode & S_IFMT == S_IFDIR else S_IFDIR | 0o755
        res.inodes["/"] = 1
        stack: list[tuple[str, int]] = [("/", 1)]
        seen_dirs = {1}
        while stack:
            path, dino = stack.pop()
            ic = self.ics.get(dino)
            for fd in ic.dents if ic else []:
                if fd.ref.obsolete or not fd.ino:
                    continue
                name = fd.name.decode("latin-1")
                if not name or name in (".", "..") or "/" in name:
                    continue
                child_path = path.rstrip("/") + "/" + name
                rmsgs: list[str] = []
                first_read = fd.ino not in cache
                view = self.read_inode(fd.ino, cache, rmsgs)
                if first_read:
                    res.read_messages[fd.ino] = rmsgs
                res.inodes[child_path] = fd.ino
                if view.unreadable:
                    res.unreadable.add(child_path)
                    continue
                res.modes[child_path] = view.mode
                kind = view.mode & S_IFMT
                if kind == S_IFDIR:
                    res.dirs.add(child_path)
                    if fd.ino not in seen_dirs:
                        seen_dirs.add(fd.ino)
                        stack.append((child_path, fd.ino))
                elif kind == S_IFREG:
                    res.files[child_path] = view.data
                elif kind == S_IFLNK:
                    res.symlinks[child_path] = view.data.decode("latin-1")
                else:
                    res.special[child_path] = view.mode


def scan(
    image: bytes,
    erase_size: int = 0x20000,
    *,
    readonly: bool = True,
    mtd_point: bool = False,
) -> ScanResult:
    """Mount-scan a JFFS2 partition image as Linux 2.6 would (see module doc).

    ``readonly`` is the root mount's read-only flag (True without ``rw`` on the
    kernel command line); ``mtd_point`` models an MTD driver with ``point()``.
    """
    sc = _Scanner(image, erase_size, readonly, mtd_point)
    try:
        ok = sc.scan_medium()
    except _MountError:
        ok = False
    res = ScanResult(messages=sc.messages, mounted=ok, crc_errors=sc.crc_errors)
    if not ok:
        return res
    sc.build()
    sc.tree(res)
    return res
