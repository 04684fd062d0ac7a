"""Tests of the emulator's Linux 2.6 JFFS2 mount-scan model.

Nodes are built here with an independent CRC (a table-driven crc32_le, seed 0,
no inversion) and struct; mkfs.jffs2 (mtd-utils) supplies real images.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.hi3511 import jffs2scan
from emulators.hi3511.jffs2scan import scan
from tests.test_emu_hi3511 import find_seed

ES = 0x20000
HAVE_MKFS = shutil.which("mkfs.jffs2") is not None
needs_mkfs = pytest.mark.skipif(not HAVE_MKFS, reason="mkfs.jffs2 (mtd-utils) not installed")

# --------------------------------------------------------------------------
# Independent node codec for the tests


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc(data: bytes) -> int:
    c = 0
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c


def node_header(nodetype: int, totlen: int, *, crc_type: int | None = None) -> bytes:
    """12-byte header; the CRC covers the type with ACCURATE forced on, unless
    crc_type says which type value to put into the CRC."""
    t = (nodetype | 0x2000) if crc_type is None else crc_type
    h = struct.pack("<HHI", 0x1985, nodetype, totlen)
    return h + struct.pack("<I", crc(struct.pack("<HHI", 0x1985, t, totlen)))


def cleanmarker() -> bytes:
    return node_header(0x2003, 12)


def dirent(
    pino: int, ino: int, name: bytes, *, version: int = 1, dtype: int = 8, mctime: int = 0
) -> bytes:
    totlen = 40 + len(name)
    body = node_header(0xE001, totlen) + struct.pack(
        "<IIIIBBH", pino, version, ino, mctime, len(name), dtype, 0
    )
    return body + struct.pack("<II", crc(body), crc(name)) + name


def inode(
    ino: int,
    data: bytes = b"",
    *,
    version: int = 1,
    mode: int = 0o100644,
    offset: int = 0,
    isize: int | None = None,
    compr: int = 0,
    dsize: int | None = None,
    mtime: int = 0,
    payload: bytes | None = None,
) -> bytes:
    """A raw inode node; ``payload`` is what is stored (default: data, compr 0)."""
    stored = data if payload is None else payload
    dsize = len(data) if dsize is None else dsize
    isize = offset + dsize if isize is None else isize
    totlen = 68 + len(stored)
    body = node_header(0xE002, totlen) + struct.pack(
        "<IIIHHIIIIIIIBBH",
        ino,
        version,
        mode,
        0,
        0,
        isize,
        0,
        mtime,
        0,
        offset,
        len(stored),
        dsize,
        compr,
        0,
        0,
    )
    assert len(body) == 60
    return body + struct.pack("<II", crc(stored), crc(body)) + stored


def image(nodes: list[tuple[int, bytes]], size: int = ES) -> bytes:
    buf = bytearray(b"\xff" * size)
    for ofs, data in nodes:
        buf[ofs : ofs + len(data)] = data
    return bytes(buf)


def pack_nodes(nodes: list[bytes], start: int = 0, size: int = ES) -> bytes:
    """Nodes laid out back to back, 4-aligned, 0xFF filled."""
    placed, ofs = [], start
    for n in nodes:
        placed.append((ofs, n))
        ofs += (len(n) + 3) & ~3
    return image(placed, size)


def walk_nodes(img: bytes, es: int) -> list[tuple[int, int, int]]:
    """(offset, nodetype, totlen) of every node with a valid header, walking
    each erase block the simple way mkfs.jffs2 lays them out."""
    out = []
    for blk in range(0, len(img) - len(img) % es, es):
        ofs = blk
        while ofs + 12 <= blk + es:
            magic, ntype, totlen, hcrc = struct.unpack_from("<HHII", img, ofs)
            if magic == 0x1985 and crc(struct.pack("<HHI", magic, ntype | 0x2000, totlen)) == hcrc:
                out.append((ofs, ntype, totlen))
                ofs += (totlen + 3) & ~3
            else:
                ofs += 4
    return out


KNOWN = [
    r"jffs2_scan_inode_node\(\): CRC failed on node at 0x[0-9a-f]{8}: "
    r"Read 0x[0-9a-f]{8}, calculated 0x[0-9a-f]{8}",
    r"jffs2_scan_dirent_node\(\): (Node|Name) CRC failed on node at 0x[0-9a-f]{8}: "
    r"Read 0x[0-9a-f]{8}, calculated 0x[0-9a-f]{8}",
    r"jffs2_scan_eraseblock\(\): Magic bitmask 0x1985 not found at 0x[0-9a-f]{8}: "
    r"0x[0-9a-f]{4} instead",
    r"jffs2_scan_eraseblock\(\): Node at 0x[0-9a-f]{8} \{0x1985, 0x[0-9a-f]{4}, "
    r"0x[0-9a-f]{8}\) has invalid CRC 0x[0-9a-f]{8} \(calculated 0x[0-9a-f]{8}\)",
    r"Further such events for this erase block will not be printed",
    r"Empty flash at 0x[0-9a-f]{8} ends at 0x[0-9a-f]{8}",
    r"Node at 0x[0-9a-f]{8} with length 0x[0-9a-f]{8} would run over the end of the "
    r"erase block",
    r"Perhaps the file system was created with the wrong erase size\?",
    r"Magic bitmask is backwards at offset 0x[0-9a-f]{8}\. Wrong endian filesystem\?",
    r"Old JFFS2 bitmask found at 0x[0-9a-f]{8}",
    r"You cannot use older JFFS2 filesystems with newer kernels",
    r"ofs 0x[0-9a-f]{8} has already been seen\. Skipping",
    r"CLEANMARKER node found at 0x[0-9a-f]{8} has totlen 0x[0-9a-f]+ != normal 0xc",
    r"CLEANMARKER node found at 0x[0-9a-f]{8}, not first node in block \(0x[0-9a-f]{8}\)",
    r"(Read-only compatible|Incompatible) feature node \(0x[0-9a-f]{4}\) found at "
    r"offset 0x[0-9a-f]{8}",
    r"Cowardly refusing to erase blocks on filesystem with no valid JFFS2 nodes",
    r"empty_blocks \d+, bad_blocks 0, c->nr_blocks \d+",
    r"Eep\. Child \".*\" \(ino #\d+\) of dir ino #\d+ doesn't exist!",
    r"Child dir \".*\" \(ino #\d+\) of dir ino #\d+ appears to be a hard link",
    r"This is mostly harmless, and probably caused by creating a JFFS2 image",
    r"using a buggy version of mkfs\.jffs2\. Use at least v1\.17\.",
    r"Inode #\d+ was a directory with children - removing those too\.\.\.",
    r"Cannot remove child \".*\", ino #\d+, because it doesn't exist",
    r"jffs2_get_inode_nodes\(\): .*",
    r"jffs2_do_read_inode\(\): .*",
    r"JFFS2 compression type 0x[0-9a-f]{2} not available\.",
]
KNOWN_RE = re.compile("|".join(f"(?:{k})" for k in KNOWN), re.S)

# The CRC lines of the seed transcript (shared/seeds/000_031bf1944ef4fc76.txt),
# printed by a Hi3511 camera whose root file system was flashed without an erase.
SEED_LINES = """\
jffs2_scan_dirent_node(): Node CRC failed on node at 0x0000000c: Read 0x41c0224d, calculated 0x97e7f5c5
jffs2_scan_inode_node(): CRC failed on node at 0x00000038: Read 0x5a000025, calculated 0x1b754c4d
jffs2_scan_dirent_node(): Node CRC failed on node at 0x0000007c: Read 0x53804006, calculated 0x88f20f93
jffs2_scan_inode_node(): CRC failed on node at 0x000000a8: Read 0x1a180001, calculated 0x05c7cb76
jffs2_scan_dirent_node(): Node CRC failed on node at 0x000000ec: Read 0x130c0000, calculated 0x84df6ac9
jffs2_scan_inode_node(): CRC failed on node at 0x00000118: Read 0xeb290421, calculated 0x5025ee1e
jffs2_scan_dirent_node(): Node CRC failed on node at 0x0000015c: Read 0x00006680, calculated 0x061da826
jffs2_scan_inode_node(): CRC failed on node at 0x00000188: Read 0xaa620051, calculated 0x4e976925
jffs2_scan_dirent_node(): Node CRC failed on node at 0x000001cc: Read 0x91724800, calculated 0x6a08a595
jffs2_scan_inode_node(): CRC failed on node at 0x000001f8: Read 0x10481681, calculated 0xceb194da
jffs2_scan_dirent_node(): Node CRC failed on node at 0x0000023c: Read 0x041c0010, calculated 0x936f78f5
jffs2_scan_inode_node(): CRC failed on node at 0x00000268: Read 0xadab3105, calculated 0x16f7db7a
jffs2_scan_dirent_node(): Node CRC failed on node at 0x000002ac: Read 0x0108e480, calculated 0xc7802b02
jffs2_scan_inode_node(): CRC failed on node at 0x000002dc: Read 0x13e23050, calculated 0xb31f5628
jffs2_scan_dirent_node(): Node CRC failed on node at 0x00000320: Read 0x0005c825, calculated 0x9bdee4df
jffs2_scan_inode_node(): CRC failed on node at 0x0000034c: Read 0x44643000, calculated 0xc2233f22
jffs2_scan_dirent_node(): Node CRC failed on node at 0x00000390: Read 0x0b70408d, calculated 0xd00bb938
jffs2_scan_inode_node(): CRC failed on node at 0x000003c0: Read 0x18509440, calculated 0xe7085f3d
jffs2_scan_dirent_node(): Node CRC failed on node at 0x00000410: Read 0x13400000, calculated 0xac90de05
jffs2_scan_inode_node(): CRC failed on node at 0x0000043c: Read 0x6d822094, calculated 0xd6ce08ab
""".splitlines()

_SEED_RE = re.compile(
    r"(jffs2_scan_(?:dirent|inode)_node)\(\): (?:Node )?CRC failed on node at "
    r"0x([0-9a-f]{8}): Read 0x([0-9a-f]{8}), calculated 0x([0-9a-f]{8})"
)


def assert_known(messages: list[str]) -> None:
    for m in messages:
        assert KNOWN_RE.fullmatch(m), m


# --------------------------------------------------------------------------
# CRC


def test_crc_function_matches_cleanmarker_self_check() -> None:
    cm = bytes.fromhex("851903200c000000b1b01ee4")
    assert cleanmarker() == cm
    assert jffs2scan.crc32(cm[:8]) == struct.unpack("<I", cm[8:])[0]


@given(st.binary(max_size=300))
def test_crc_matches_independent_crc(data: bytes) -> None:
    assert jffs2scan.crc32(data) == crc(data)


# --------------------------------------------------------------------------
# Seed transcript reproduced byte for byte


def _forge(prefix: bytearray, field_ofs: int, want: int) -> None:
    """Set the 4 bytes at field_ofs so that crc(prefix) == want (CRC without
    inversion is linear over GF(2): solve 32 equations for 32 bits)."""
    prefix[field_ofs : field_ofs + 4] = b"\0\0\0\0"
    base = crc(bytes(prefix))
    cols = []
    for bit in range(32):
        e = bytearray(len(prefix))
        e[field_ofs + bit // 8] = 1 << (bit % 8)
        cols.append(crc(bytes(e)))
    # Gaussian elimination on rows = output bits.
    rows = []
    for r in range(32):
        mask = sum(((cols[b] >> r) & 1) << b for b in range(32))
        rows.append([mask, ((want ^ base) >> r) & 1])
    sol = 0
    pivots = []
    for bit in range(32):
        p = next(i for i in range(len(rows)) if rows[i][0] >> bit & 1 and i not in pivots)
        pivots.append(p)
        for i in range(len(rows)):
            if i != p and rows[i][0] >> bit & 1:
                rows[i][0] ^= rows[p][0]
                rows[i][1] ^= rows[p][1]
    for p in pivots:
        bit = (rows[p][0] & -rows[p][0]).bit_length() - 1
        sol |= rows[p][1] << bit
    prefix[field_ofs : field_ofs + 4] = struct.pack("<I", sol)
    assert crc(bytes(prefix)) == want


def test_seed_crc_lines_reproduced_exactly() -> None:
    """Rebuild the seed's flash layout: every node has a valid header, a stored
    CRC equal to the seed's 'Read' value and content whose CRC is the seed's
    'calculated' value. The scan must print exactly the seed's 20 lines."""
    parsed = [_SEED_RE.fullmatch(line).groups() for line in SEED_LINES]
    offsets = [int(p[1], 16) for p in parsed]
    nodes = [(0, cleanmarker())]
    for i, (func, ofs_s, read_s, calc_s) in enumerate(parsed):
        ofs, read, calc = int(ofs_s, 16), int(read_s, 16), int(calc_s, 16)
        nxt = offsets[i + 1] if i + 1 < len(offsets) else ofs + 0x44
        totlen = nxt - ofs
        if func == "jffs2_scan_dirent_node":
            node = bytearray(node_header(0xE001, totlen))
            node += struct.pack("<IIIIBBH", 1, i + 1, 100 + i, 0, totlen - 40, 8, 0)
            _forge(node, 24, calc)  # mctime
            node += struct.pack("<II", read, 0) + b"n" * (totlen - 40)
        else:
            node = bytearray(node_header(0xE002, totlen))
            node += struct.pack(
                "<IIIHHIIIIIIIBBH", 200 + i, 1, 0o40755, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            )
            _forge(node, 36, calc)  # mtime
            node += struct.pack("<II", 0, read) + bytes(totlen - 68)
        nodes.append((ofs, bytes(node)))
    res = scan(image(nodes, 2 * ES))
    assert res.messages == SEED_LINES
    assert res.crc_errors == 20
    assert res.mounted
    text = find_seed().read_text()  # skipped without the seed, failed in CI
    for line in SEED_LINES:
        assert line in text


# --------------------------------------------------------------------------
# mkfs.jffs2 images


def make_tree(root: Path) -> None:
    (root / "etc/init.d").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "empty_dir").mkdir()
    (root / "etc/passwd").write_bytes(b"root::0:0:root:/root:/bin/sh\n")
    (root / "etc/init.d/rcS").write_bytes(b"#!/bin/sh\nmount -a\n" * 300)
    (root / "etc/init.d/rcS").chmod(0o755)
    (root / "empty").write_bytes(b"")
    (root / "page").write_bytes(bytes(range(256)) * 16)  # exactly 4096
    (root / "page_plus").write_bytes(bytes(range(256)) * 16 + b"!")
    rnd = bytes((i * 2654435761 >> 13) & 0xFF for i in range(150_000))
    (root / "bin/busybox").write_bytes(rnd)
    (root / "zeros").write_bytes(bytes(20000))
    os.symlink("busybox", root / "bin/sh")
    os.symlink("/etc/passwd", root / "pw")
    os.link(root / "etc/passwd", root / "etc/passwd.hard")
    (root / "caf\xe9").write_bytes(b"latin")


def expected_tree(root: Path) -> tuple[dict[str, bytes], set[str], dict[str, str], dict]:
    files, dirs, links, modes = {}, {"/"}, {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = "/" + os.fsencode(full.relative_to(root)).decode("latin-1")
            st = full.lstat()
            modes[rel] = st.st_mode
            if full.is_symlink():
                links[rel] = os.fsencode(os.readlink(full)).decode("latin-1")
            elif full.is_dir():
                dirs.add(rel)
            else:
                files[rel] = full.read_bytes()
    return files, dirs, links, modes


def mkfs(src: Path, out: Path, *opts: str, erase: int = ES) -> bytes:
    subprocess.run(
        ["mkfs.jffs2", "-l", "-e", hex(erase), "-d", str(src), "-o", str(out), *opts],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def partition(img: bytes, blocks: int | None = None, es: int = ES) -> bytes:
    n = blocks if blocks is not None else len(img) // es + 2
    assert len(img) <= n * es
    return img + b"\xff" * (n * es - len(img))


@pytest.mark.interop
@needs_mkfs
@pytest.mark.parametrize(
    "opts",
    [(), ("-n",), ("-p",), ("-x", "zlib"), ("-x", "rtime"), ("-x", "zlib", "-x", "rtime")],
)
def test_mkfs_image_reads_back_identically(tmp_path: Path, opts: tuple[str, ...]) -> None:
    src = tmp_path / "src"
    make_tree(src)
    img = mkfs(src, tmp_path / "out.jffs2", *opts)
    res = scan(partition(img))
    files, dirs, links, modes = expected_tree(src)
    assert res.messages == []
    assert res.mounted
    assert res.crc_errors == 0
    assert res.files == files
    assert res.dirs == dirs
    assert res.symlinks == links
    assert res.special == {}
    assert res.unreadable == set()
    for path, mode in modes.items():
        assert res.modes[path] == mode, path
    assert res.inodes["/etc/passwd"] == res.inodes["/etc/passwd.hard"]


@pytest.mark.interop
@needs_mkfs
def test_mkfs_image_with_its_own_erase_size(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    img = mkfs(src, tmp_path / "out.jffs2", erase=0x10000)
    res = scan(partition(img, es=0x10000), 0x10000)
    assert res.messages == []
    assert res.files == expected_tree(src)[0]


@pytest.mark.interop
@needs_mkfs
def test_mkfs_image_with_wrong_erase_size(tmp_path: Path) -> None:
    """A 64 KiB-block image scanned with 128 KiB blocks: every odd 64 KiB
    boundary has 0xFF padding then a cleanmarker in the middle of a block."""
    src = tmp_path / "src"
    make_tree(src)
    img = mkfs(src, tmp_path / "out.jffs2", erase=0x10000)
    part = partition(img)
    nodes = walk_nodes(part, 0x10000)
    expected = []
    for b in range(0x10000, len(img), 0x20000):
        last_end = max((o + t + 3) & ~3 for o, _ty, t in nodes if o < b)
        if last_end < b:
            expected.append(f"Empty flash at 0x{last_end:08x} ends at 0x{b:08x}")
        expected.append(
            f"CLEANMARKER node found at 0x{b:08x}, not first node in block (0x{b - 0x10000:08x})"
        )
    res = scan(part)
    assert res.messages == expected
    assert res.files == expected_tree(src)[0]


@pytest.mark.interop
@needs_mkfs
def test_mkfs_device_table_special_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dev").mkdir(parents=True)
    table = tmp_path / "devtable"
    table.write_text(
        "/dev\td\t755\t0\t0\t-\t-\t-\t-\t-\n"
        "/dev/console\tc\t600\t0\t0\t5\t1\t0\t0\t-\n"
        "/dev/initctl\tp\t644\t0\t0\t-\t-\t-\t-\t-\n"
    )
    img = mkfs(src, tmp_path / "out.jffs2", "-D", str(table))
    res = scan(partition(img))
    assert res.messages == []
    assert res.special == {"/dev/console": 0o020600, "/dev/initctl": 0o010644}
    assert res.dirs == {"/", "/dev"}


def _and(a: bytes, b: bytes) -> bytes:
    return bytes(x & y for x, y in zip(a, b, strict=True))


@pytest.mark.interop
@needs_mkfs
def test_flashing_over_old_image_without_erase(tmp_path: Path) -> None:
    """The seed's case: image B programmed over image A (AND). Every CRC line
    names a node start of B, with the stored CRC and the CRC of the ANDed bytes."""
    a_src, b_src = tmp_path / "a", tmp_path / "b"
    make_tree(a_src)
    make_tree(b_src)
    (b_src / "etc/passwd").write_bytes(b"admin:x:0:0::/:/bin/sh\n")
    (b_src / "bin/busybox").write_bytes(os.urandom(200_000))
    for root, t in ((a_src, 1_000_000_000), (b_src, 1_300_000_000)):
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                os.utime(Path(dirpath) / n, (t, t), follow_symlinks=False)
    a = mkfs(a_src, tmp_path / "a.jffs2")
    b = mkfs(b_src, tmp_path / "b.jffs2")
    assert len(b) > len(a)  # B covers A: every damaged node is one of B's
    n = max(len(a), len(b)) // ES + 2
    a, b = partition(a, n), partition(b, n)
    flash = _and(a, b)
    b_starts = {o: t for o, t, _ in walk_nodes(b, ES)}
    res = scan(flash)
    assert_known(res.messages)
    crc_lines = [m for m in res.messages if "CRC failed" in m]
    assert len(crc_lines) >= 5
    for line in crc_lines:
        m = re.fullmatch(
            r"(jffs2_scan_\w+)\(\): (Node CRC|Name CRC|CRC) failed on node at 0x([0-9a-f]{8}): "
            r"Read 0x([0-9a-f]{8}), calculated 0x([0-9a-f]{8})",
            line,
        )
        assert m, line
        func, what, ofs, read, calc = m[1], m[2], int(m[3], 16), int(m[4], 16), int(m[5], 16)
        if func == "jffs2_scan_inode_node":
            assert b_starts[ofs] == 0xE002
            assert read == struct.unpack_from("<I", flash, ofs + 64)[0]
            assert calc == crc(flash[ofs : ofs + 60])
        elif what == "Node CRC":
            assert b_starts[ofs] == 0xE001
            assert read == struct.unpack_from("<I", flash, ofs + 32)[0]
            assert calc == crc(flash[ofs : ofs + 32])
        else:
            assert b_starts[ofs] == 0xE001
            nsize = flash[ofs + 28]
            assert read == struct.unpack_from("<I", flash, ofs + 36)[0]
            assert calc == crc(flash[ofs + 40 : ofs + 40 + nsize])
    assert res.crc_errors >= len(crc_lines)


# --------------------------------------------------------------------------
# Scan rules on hand-built blocks


def test_erased_partition_mounts_empty() -> None:
    res = scan(b"\xff" * (4 * ES))
    assert res.mounted and res.messages == []
    assert res.dirs == {"/"} and res.files == {}


def test_no_valid_nodes_refuses_to_mount() -> None:
    img = bytes(ES) + b"\xff" * (3 * ES)  # one block of zeros: dirty, nothing valid
    res = scan(img)
    assert not res.mounted
    assert res.messages == [
        "Cowardly refusing to erase blocks on filesystem with no valid JFFS2 nodes",
        "empty_blocks 3, bad_blocks 0, c->nr_blocks 4",
    ]


def test_files_from_hand_built_nodes() -> None:
    nodes = [
        cleanmarker(),
        dirent(1, 2, b"dir", dtype=4),
        inode(2, mode=0o40755),
        dirent(2, 3, b"file"),
        inode(3, b"hello world"),
        inode(3, b"WORLD", version=2, offset=6),
        dirent(1, 4, b"link", dtype=10),
        inode(4, b"dir/file", mode=0o120777),
        dirent(1, 5, b"gone"),
        inode(5, b"x"),
        dirent(1, 0, b"gone", version=2),
        dirent(1, 6, b"hole"),
        inode(6, b"ab"),
        inode(6, b"", version=2, offset=2, dsize=3, compr=1, isize=5),
        inode(6, b"cd", version=3, offset=5),
        dirent(1, 7, b"short"),
        inode(7, b"0123456789"),
        inode(7, b"", version=2, isize=4),
    ]
    res = scan(pack_nodes(nodes) + b"\xff" * ES)
    assert res.messages == []
    assert res.files == {
        "/dir/file": b"hello WORLD",
        "/hole": b"ab\0\0\0cd",
        "/short": b"0123",
    }
    assert res.dirs == {"/", "/dir"}
    assert res.symlinks == {"/link": "dir/file"}


def test_empty_flash_message_and_gap() -> None:
    img = image(
        [
            (0, cleanmarker()),
            (12, dirent(1, 2, b"a")),
            (56, inode(2, b"A")),  # ends at 56 + 72 = 0x80
            (0x2000, dirent(1, 3, b"b")),
            (0x202C, inode(3, b"B")),
        ]
    )
    res = scan(img)
    assert res.messages == ["Empty flash at 0x00000080 ends at 0x00002000"]
    assert res.files == {"/a": b"A", "/b": b"B"}


def test_dirent_without_inode() -> None:
    res = scan(pack_nodes([cleanmarker(), dirent(1, 7, b"nobody"), dirent(1, 2, b"ok"), inode(2)]))
    assert res.messages == ['Eep. Child "nobody" (ino #7) of dir ino #1 doesn\'t exist!']
    assert res.files == {"/ok": b""}


def test_cleanmarker_then_erased_first_kilobyte_ignores_rest_of_block() -> None:
    """scan.c: a block holding only a cleanmarker whose first 1024-byte read
    buffer is otherwise 0xFF is taken as clean without reading further."""
    late = [(0x800, dirent(1, 2, b"late")), (0x800 + 44, inode(2, b"data"))]
    img = image([(0, cleanmarker()), *late])
    res = scan(img)
    assert res.messages == []
    assert res.files == {}
    pointed = scan(img, mtd_point=True)
    assert pointed.messages == ["Empty flash at 0x0000000c ends at 0x00000800"]
    assert pointed.files == {"/late": b"data"}
    # Data inside the first kilobyte is seen either way.
    img2 = image([(0, cleanmarker()), (0x200, dirent(1, 2, b"x")), (0x22C, inode(2, b"y"))])
    assert scan(img2).messages == ["Empty flash at 0x0000000c ends at 0x00000200"]
    assert scan(img2).files == {"/x": b"y"}


def test_block_starting_with_erased_kilobyte_is_empty() -> None:
    img = image([(0x400, cleanmarker()), (0x40C, dirent(1, 2, b"f")), (0x438, inode(2, b"z"))])
    res = scan(img + b"\xff" * ES)
    assert res.files == {} and res.messages == []
    img = image([(0x3FC, cleanmarker()), (0x408, dirent(1, 2, b"f")), (0x434, inode(2, b"z"))])
    res = scan(img + b"\xff" * ES)
    assert res.files == {"/f": b"z"} and res.messages == []


def test_noise_limit_is_per_erase_block() -> None:
    junk = struct.pack("<I", 0x12345678) * 12
    bad_hdr = node_header(0xE001, 0x40)[:8] + b"\0\0\0\0"
    blk0 = image([(0, cleanmarker()), (12, junk)])
    blk1 = image([(0, bad_hdr), (12, junk)])
    res = scan(blk0 + blk1)
    b0 = [
        "jffs2_scan_eraseblock(): Magic bitmask 0x1985 not found at "
        f"0x{12 + 4 * i:08x}: 0x5678 instead"
        for i in range(10)
    ]
    good = crc(struct.pack("<HHI", 0x1985, 0xE001, 0x40))
    b1 = [
        "jffs2_scan_eraseblock(): Node at 0x00020000 {0x1985, 0xe001, 0x00000040) has "
        f"invalid CRC 0x00000000 (calculated 0x{good:08x})",
        # skip 4: the totlen word; then the zero hdr_crc word is skipped silently
        "jffs2_scan_eraseblock(): Magic bitmask 0x1985 not found at 0x00020004: 0x0040 instead",
    ]
    b1 += [
        "jffs2_scan_eraseblock(): Magic bitmask 0x1985 not found at "
        f"0x{0x2000C + 4 * i:08x}: 0x5678 instead"
        for i in range(8)
    ]
    further = "Further such events for this erase block will not be printed"
    assert res.messages == [*b0, further, *b1, further]
    assert res.crc_errors == 1
    assert res.mounted  # the cleanmarker counts as used space: no "Cowardly" refusal


def test_header_crc_is_checked_with_accurate_bit_forced() -> None:
    obsolete = node_header(0xC002, 0x44) + bytes(0x44 - 12)  # ACCURATE clear, CRC forced
    wrong = node_header(0xC002, 0x44, crc_type=0xC002)
    img = image([(0, cleanmarker()), (12, obsolete), (12 + 0x44, wrong)])
    res = scan(img)
    calc = crc(struct.pack("<HHI", 0x1985, 0xE002, 0x44))
    stored = crc(struct.pack("<HHI", 0x1985, 0xC002, 0x44))
    assert res.messages[0] == (
        "jffs2_scan_eraseblock(): Node at 0x00000050 {0x1985, 0xc002, 0x00000044) has "
        f"invalid CRC 0x{stored:08x} (calculated 0x{calc:08x})"
    )


def test_node_running_over_block_end() -> None:
    start = pack_nodes([cleanmarker(), dirent(1, 2, b"f"), inode(2, b"x")])[:0x80]
    img = image([(0, start), (ES - 0x20, node_header(0xE002, 0x44))]) + b"\xff" * ES
    res = scan(img)
    assert res.messages[:3] == [
        f"Empty flash at 0x00000080 ends at 0x{ES - 0x20:08x}",
        f"Node at 0x{ES - 0x20:08x} with length 0x00000044 would run over the end of the "
        "erase block",
        "Perhaps the file system was created with the wrong erase size?",
    ]


@pytest.mark.parametrize(
    ("nodetype", "readonly", "line", "mounted"),
    [
        (0xE00A, True, "Incompatible feature node (0xe00a) found at offset 0x0000000c", False),
        (
            0xA00A,
            True,
            "Read-only compatible feature node (0xa00a) found at offset 0x0000000c",
            True,
        ),
        (
            0xA00A,
            False,
            "Read-only compatible feature node (0xa00a) found at offset 0x0000000c",
            False,
        ),
        (0x600A, True, None, True),
        (0x200A, True, None, True),
    ],
)
def test_unknown_node_types_by_compat_bits(
    nodetype: int, readonly: bool, line: str | None, mounted: bool
) -> None:
    odd = node_header(nodetype, 16) + b"\0" * 4
    img = pack_nodes([cleanmarker(), odd, dirent(1, 2, b"f"), inode(2, b"ok")])
    res = scan(img + b"\xff" * ES, readonly=readonly)
    assert res.messages == ([line] if line else [])
    assert res.mounted is mounted
    if mounted:
        assert res.files == {"/f": b"ok"}


def test_cleanmarker_checks_and_magic_oddities() -> None:
    img = image(
        [
            (0, struct.pack(">HHI", 0x1985, 0x2003, 12) + b"\0" * 4),  # big-endian node
            (12, cleanmarker()),
            (24, node_header(0x2003, 16) + b"\0" * 4),
            (40, cleanmarker()),
            (52, struct.pack("<HH", 0x1984, 0)),
            (56, node_header(0x2004, 0)),  # padding, totlen 0: offset does not move
        ]
    )
    res = scan(img)
    assert res.messages[:6] == [
        "Magic bitmask is backwards at offset 0x00000000. Wrong endian filesystem?",
        "CLEANMARKER node found at 0x00000018 has totlen 0x10 != normal 0xc",
        "CLEANMARKER node found at 0x00000028, not first node in block (0x00000000)",
        "Old JFFS2 bitmask found at 0x00000034",
        "You cannot use older JFFS2 filesystems with newer kernels",
        "ofs 0x00000038 has already been seen. Skipping",
    ]


def test_inode_crc_checked_at_scan_only_for_first_node_of_an_ino() -> None:
    good = inode(2, b"first")
    bad = bytearray(inode(2, b"second", version=2))
    bad[64:68] = b"\xde\xad\xbe\xef"
    res = scan(pack_nodes([cleanmarker(), dirent(1, 2, b"f"), good, bytes(bad)]) + b"\xff" * ES)
    assert res.messages == []
    assert res.files == {"/f": b"first"}
    calc = crc(bytes(bad[:60]))
    bad_ofs = 12 + 44 + 76
    assert res.read_messages[2] == [
        f"jffs2_get_inode_nodes(): CRC failed on node at 0x{bad_ofs:08x}: "
        f"Read 0xefbeadde, calculated 0x{calc:08x}"
    ]
    # The other order: the first node seen is checked and reported at scan time.
    res = scan(pack_nodes([cleanmarker(), bytes(bad), dirent(1, 2, b"f"), good]) + b"\xff" * ES)
    assert res.messages == [
        f"jffs2_scan_inode_node(): CRC failed on node at 0x0000000c: "
        f"Read 0xefbeadde, calculated 0x{calc:08x}"
    ]
    assert res.files == {"/f": b"first"}


def test_data_crc_checked_when_inode_is_read() -> None:
    node = bytearray(inode(2, b"payload"))
    node[68] ^= 0xFF
    res = scan(pack_nodes([cleanmarker(), dirent(1, 2, b"f"), bytes(node)]) + b"\xff" * ES)
    assert res.messages == []
    assert res.unreadable == {"/f"}
    assert res.read_messages[2] == [
        "jffs2_get_inode_nodes(): Data CRC failed on node at 0x00000038: "
        f"Read 0x{crc(b'payload'):08x}, calculated 0x{crc(bytes(node[68:75])):08x}",
        "jffs2_do_read_inode(): No data nodes found for ino #2",
    ]


def test_dirent_name_crc_failure() -> None:
    d = bytearray(dirent(1, 2, b"name"))
    d[40] = ord("N")
    res = scan(pack_nodes([cleanmarker(), bytes(d), inode(2, b"x")]) + b"\xff" * ES)
    assert res.messages == [
        "jffs2_scan_dirent_node(): Name CRC failed on node at 0x0000000c: "
        f"Read 0x{crc(b'name'):08x}, calculated 0x{crc(b'Name'):08x}"
    ]
    assert res.files == {}


def test_orphaned_directory_children_removed() -> None:
    nodes = [
        cleanmarker(),
        dirent(9, 3, b"child"),  # dir ino 9 is named by no dirent: nlink 0
        inode(3, b"c"),
        dirent(9, 8, b"ghost"),
    ]
    res = scan(pack_nodes(nodes) + b"\xff" * ES)
    assert res.messages == [
        'Eep. Child "ghost" (ino #8) of dir ino #9 doesn\'t exist!',
        "Inode #9 was a directory with children - removing those too...",
        'Cannot remove child "ghost", ino #8, because it doesn\'t exist',
    ]
    assert res.files == {}


def test_unavailable_compression_makes_inode_unreadable() -> None:
    res = scan(
        pack_nodes([cleanmarker(), dirent(1, 2, b"r"), inode(2, b"abc", compr=5, payload=b"xyz")])
        + b"\xff" * ES
    )
    assert res.unreadable == {"/r"}
    assert res.read_messages[2] == ["JFFS2 compression type 0x05 not available."]


# --------------------------------------------------------------------------
# Decompressors


def rtime_compress(data: bytes) -> bytes:
    """The rtime compressor (compr_rtime.c), written here for the tests."""
    positions = [0] * 256
    out = bytearray()
    pos = 0
    while pos < len(data):
        value = data[pos]
        out.append(value)
        pos += 1
        backpos = positions[value]
        positions[value] = pos
        run = 0
        while backpos < pos and pos < len(data) and data[pos] == data[backpos] and run < 255:
            pos += 1
            backpos += 1
            run += 1
        out.append(run)
    return bytes(out)


@given(st.binary(max_size=4096) | st.lists(st.sampled_from(b"ab\0"), max_size=3000).map(bytes))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_rtime_roundtrip(data: bytes) -> None:
    assert jffs2scan.rtime_decompress(rtime_compress(data), len(data)) == data


def test_rtime_and_zlib_nodes() -> None:
    text = b"abcabcabcabd" * 100
    nodes = [
        cleanmarker(),
        dirent(1, 2, b"rt"),
        inode(2, text, compr=2, payload=rtime_compress(text)),
        dirent(1, 3, b"zl"),
        inode(3, text, compr=6, payload=zlib.compress(text)),
    ]
    res = scan(pack_nodes(nodes) + b"\xff" * ES)
    assert res.files == {"/rt": text, "/zl": text}


# --------------------------------------------------------------------------
# Robustness


@given(st.binary(min_size=0, max_size=3 * 4096))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_crash(data: bytes) -> None:
    res = scan(data, 4096)
    assert_known(res.messages)
    assert all(p.startswith("/") for p in res.files)


@given(st.data())
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_corrupted_image_never_crashes(data: st.DataObject) -> None:
    base = bytearray(
        pack_nodes(
            [
                cleanmarker(),
                dirent(1, 2, b"d", dtype=4),
                inode(2, mode=0o40755),
                dirent(2, 3, b"f"),
                inode(3, b"x" * 300),
                dirent(1, 4, b"l"),
                inode(4, b"d/f", mode=0o120777),
            ],
            size=8192,
        )
    )
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, 700))
        base[i] &= data.draw(st.integers(0, 255))
    res = scan(bytes(base), 4096)
    assert_known(res.messages)
