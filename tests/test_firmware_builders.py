"""Tests of harness.firmware against the third-party ground truth.

jefferson must extract our JFFS2 images to exactly the source tree without a CRC
complaint; mkfs.jffs2 (mtd-utils) must produce byte-identical images from the same
tree; mkimage must produce byte-identical uImages and list our headers. The node
walk and CRC checks in this file are written here from REFERENCE.md, independently
of the builders.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.firmware import (
    FLASH_SIZE,
    KERNEL_OFFSET,
    PKG_MAGIC,
    ROOT_OFFSET,
    ROOT_SIZE,
    SECTOR,
    SETTINGS_OFFSET,
    UBOOT_BANNER,
    Tree,
    build_jffs2,
    build_uimage,
    crc32_le,
    fake_kernel,
    firmware_tree,
    iter_nodes,
    parse_uimage,
    root_image,
    uboot_blob,
    vendor_flash,
    vendor_pkg,
)
from harness.firmware.hi3511 import ENV_OFFSET, ENV_SIZE

JEFFERSON = shutil.which("jefferson", path=str(Path(sys.executable).parent)) or shutil.which(
    "jefferson"
)
MKFS = shutil.which("mkfs.jffs2") or shutil.which("mkfs.jffs2", path="/usr/sbin:/sbin")
MKIMAGE = shutil.which("mkimage")

needs_jefferson = pytest.mark.skipif(JEFFERSON is None, reason="jefferson not installed")
needs_mkfs = pytest.mark.skipif(MKFS is None, reason="mkfs.jffs2 (mtd-utils) not installed")
needs_mkimage = pytest.mark.skipif(MKIMAGE is None, reason="mkimage (u-boot-tools) not installed")

CLEANMARKER_LE = bytes.fromhex("851903200c000000b1b01ee4")  # REFERENCE.md check value
COMPLAINTS = (
    "does not match",
    "data length mismatch",
    "Decompression error",
    "compression not implemented",
)

# --- helpers -----------------------------------------------------------------------------


def jefferson_extract(image: bytes, workdir: Path) -> tuple[Tree, str]:
    """Run jefferson on ``image``; return the extracted tree and its stdout+stderr."""
    img = workdir / "image.jffs2"
    dest = workdir / "extracted"
    img.write_bytes(image)
    proc = subprocess.run(
        [JEFFERSON, "-d", str(dest), str(img)], capture_output=True, text=True, timeout=60
    )
    return Tree.from_dir(dest), proc.stdout + proc.stderr


def assert_same_tree(got: Tree, want: Tree) -> None:
    assert got.files == want.files
    assert {p: got.modes[p] for p in got.files} == {p: want.mode_of(p) & 0o7777 for p in want.files}
    assert got.symlinks == want.symlinks
    assert got.all_dirs() == want.all_dirs()


def assert_jefferson_roundtrip(image: bytes, tree: Tree) -> None:
    with tempfile.TemporaryDirectory() as d:
        got, out = jefferson_extract(image, Path(d))
    assert not [c for c in COMPLAINTS if c in out], out
    assert_same_tree(got, tree)


def mkfs_image(tree: Tree, *args: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "root"
        root.mkdir()
        tree.write_to(root)
        out = Path(d) / "out.img"
        cmd = [MKFS, "-l", "-U", "-f", "-d", str(root), "-o", str(out), *args]
        subprocess.run(cmd, check=True, capture_output=True, env={"LC_ALL": "C"}, timeout=60)
        return out.read_bytes()


def check_structure(image: bytes, erase_size: int, cleanmarkers: bool) -> list[tuple[int, int]]:
    """Independent check of every node: CRCs, alignment, no node across an erase block,
    0xFF between nodes, cleanmarkers where expected. Returns (offset, type) of nodes."""
    nodes = []
    pos = 0
    while pos < len(image):
        if image[pos : pos + 4] == b"\xff\xff\xff\xff":
            pos += 4
            continue
        assert pos % 4 == 0
        magic, ntype, totlen, hdr_crc = struct.unpack_from("<HHII", image, pos)
        assert magic == 0x1985, f"garbage at {pos:#x}"
        assert crc32_le(image[pos : pos + 8]) == hdr_crc
        assert pos // erase_size == (pos + totlen - 1) // erase_size, f"node at {pos:#x} spans"
        node = image[pos : pos + totlen]
        if ntype == 0x2003:
            assert totlen == 12 and pos % erase_size == 0 and cleanmarkers
        elif ntype == 0xE001:
            pino, _ver, ino, _t, nsize, dtype, node_crc, name_crc = struct.unpack_from(
                "<IIIIBBxxII", node, 12
            )
            assert totlen == 40 + nsize and dtype in (4, 8, 10) and ino > 1 and pino >= 1
            assert crc32_le(node[:32]) == node_crc
            assert crc32_le(node[40:]) == name_crc
        elif ntype == 0xE002:
            csize, dsize, compr = struct.unpack_from("<IIB", node, 48)
            data_crc, node_crc = struct.unpack_from("<II", node, 60)
            assert totlen == 68 + csize and compr in (0, 2, 6)
            assert crc32_le(node[:60]) == node_crc
            assert crc32_le(node[68:]) == data_crc
            assert dsize <= 4096 and (compr != 0 or csize == dsize)
        else:
            raise AssertionError(f"unexpected node type {ntype:#x} at {pos:#x}")
        if cleanmarkers and pos % erase_size == 0:
            assert ntype == 0x2003, f"block at {pos:#x} starts without a cleanmarker"
        gap_end = pos + ((totlen + 3) & ~3)
        gap = image[pos + totlen : gap_end]
        assert gap == b"\xff" * len(gap)
        nodes.append((pos, ntype))
        pos = gap_end
    return nodes


# --- hypothesis strategies ---------------------------------------------------------------

_names = st.text(alphabet="abcdefgXYZ0123456789._-", min_size=1, max_size=10).filter(
    lambda s: s not in (".", "..")
)
_paths = st.lists(_names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
_contents = st.one_of(
    st.binary(max_size=9000),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=6), st.integers(1, 2500)),
    st.just(bytes(12)),
)


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    entries = draw(
        st.dictionaries(
            _paths,
            st.tuples(
                st.sampled_from(["file", "file", "dir", "link"]),
                _contents,
                _names,
                st.sampled_from([0o644, 0o755, 0o600, 0o444]),
            ),
            min_size=1,
            max_size=10,
        )
    )
    tree = Tree(files={})
    for path, (kind, data, target, mode) in sorted(entries.items()):
        parts = path.split("/")
        ancestors = {"/".join(parts[:i]) for i in range(2, len(parts))}
        if ancestors & (tree.files.keys() | tree.symlinks.keys()):
            continue
        if kind == "file":
            tree.files[path] = data
            tree.modes[path] = mode
        elif kind == "dir":
            tree.dirs.add(path)
        else:
            tree.symlinks[path] = target
    return tree


# --- JFFS2: basic layout -----------------------------------------------------------------


def small_tree() -> Tree:
    return Tree(
        files={
            "/etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
            "/bin/busybox": bytes(range(256)) * 40,
        },
        dirs={"/tmp"},
        symlinks={"/bin/sh": "busybox"},
        modes={"/bin/busybox": 0o755},
    )


def test_image_starts_with_the_reference_cleanmarker():
    image = build_jffs2(small_tree())
    assert image[:12] == CLEANMARKER_LE
    assert build_jffs2(small_tree(), cleanmarkers=False)[:2] == b"\x85\x19"


def test_node_layout_is_consistent_and_ordered_like_mkfs():
    tree = small_tree()
    image = build_jffs2(tree, compression="none")
    nodes = check_structure(image, 0x20000, cleanmarkers=True)
    types = [t for _, t in nodes]
    # "/" entries first (bin, etc, tmp: dirent + dir inode each), then bin's children
    # (busybox: dirent + 3 data nodes of 4096/4096/2048; sh: dirent + inode), then etc's.
    assert types == [0x2003] + [0xE001, 0xE002] * 3 + [0xE001] + [0xE002] * 3 + [0xE001, 0xE002] * 2
    names = [image[o + 40 : o + 40 + image[o + 28]] for o, t in nodes if t == 0xE001]
    assert names == [b"bin", b"etc", b"tmp", b"busybox", b"sh", b"passwd"]


def test_nodes_never_span_erase_blocks_and_gaps_are_ff():
    tree = firmware_tree("gaps", n_files=20, size=120_000)
    for erase in (0x2000, 0x4000):
        for cm in (True, False):
            image = build_jffs2(tree, erase_size=erase, cleanmarkers=cm)
            nodes = check_structure(image, erase, cleanmarkers=cm)
            assert len({o // erase for o, _ in nodes}) == -(-len(image) // erase)


def test_padding_options():
    tree = small_tree()
    plain = build_jffs2(tree)
    assert len(plain) % 4 == 0 and not plain.endswith(b"\xff\xff\xff\xff")
    to_block = build_jffs2(tree, pad_to=-1)
    assert to_block == plain + b"\xff" * (0x20000 - len(plain))
    padded = build_jffs2(tree, pad_to=0x60000)
    assert len(padded) == 0x60000 and padded.startswith(to_block)
    assert padded[0x20000:0x2000C] == CLEANMARKER_LE == padded[0x40000:0x4000C]
    assert set(padded[0x2000C:0x40000]) == set(padded[0x4000C:]) == {0xFF}
    bare = build_jffs2(tree, cleanmarkers=False)
    assert build_jffs2(tree, cleanmarkers=False, pad_to=0x12345) == bare + b"\xff" * (
        0x12345 - len(bare)
    )
    with pytest.raises(ValueError):
        build_jffs2(tree, pad_to=0x100)


def test_deterministic_and_name_dependent():
    assert firmware_tree("A", size=50_000) == firmware_tree("A", size=50_000)
    assert build_jffs2(firmware_tree("A", size=50_000)) == build_jffs2(
        firmware_tree("A", size=50_000)
    )
    a, b = firmware_tree("A", size=50_000), firmware_tree("B", size=50_000)
    assert set(a.files) != set(b.files)
    assert b"FIRMWARE=A" in a.files["/etc/version"]


def test_firmware_tree_size_and_content_mix():
    tree = firmware_tree("sized", n_files=40, size=1 << 20)
    total = sum(map(len, tree.files.values()))
    assert len(tree.files) == 40
    assert abs(total - (1 << 20)) < 4096
    assert tree.files["/bin/busybox"].startswith(b"\x7fELF")
    ratio = len(build_jffs2(tree)) / total
    assert 0.4 < ratio < 0.85, ratio  # neither all-random nor all-text


def test_bad_trees_are_refused():
    with pytest.raises(ValueError):
        build_jffs2(Tree(files={"relative": b""}))
    with pytest.raises(ValueError):
        build_jffs2(Tree(files={"/" + "x" * 255: b""}))
    with pytest.raises(ValueError):
        build_jffs2(Tree(files={"/a": b""}, symlinks={"/a": "b"}))
    with pytest.raises(ValueError):
        build_jffs2(Tree(files={"/a": b"", "/a/b": b""}))
    with pytest.raises(ValueError):
        build_jffs2(Tree(files={"/a/../b": b""}))
    assert build_jffs2(Tree(files={"/" + "x" * 254: b""}))


@given(tree=trees(), erase=st.sampled_from([0x2000, 0x10000]), cm=st.booleans())
@settings(max_examples=60, deadline=None)
def test_crc_fields_are_self_consistent(tree: Tree, erase: int, cm: bool):
    image = build_jffs2(tree, erase_size=erase, cleanmarkers=cm)
    nodes = check_structure(image, erase, cleanmarkers=cm)
    assert [(n.offset, n.nodetype) for n in iter_nodes(image)] == nodes
    n_entries = len(tree.files) + len(tree.symlinks) + len(tree.all_dirs())
    assert sum(1 for _, t in nodes if t == 0xE001) == n_entries


# --- JFFS2 against jefferson --------------------------------------------------------------


@needs_jefferson
@pytest.mark.interop
@pytest.mark.parametrize("compression", ["priority", "none"])
def test_jefferson_extracts_firmware_tree(compression: str):
    tree = firmware_tree("A", size=200_000)
    assert_jefferson_roundtrip(build_jffs2(tree, compression=compression), tree)


@needs_jefferson
@pytest.mark.interop
def test_jefferson_complains_about_corruption():
    tree = firmware_tree("A", size=60_000)
    image = bytearray(build_jffs2(tree))
    inode = next(n for n in iter_nodes(image) if n.nodetype == 0xE002 and n.totlen > 200)
    image[inode.offset + 100] ^= 0x01  # inside the data: data_crc must fail
    dirent = next(n for n in iter_nodes(image) if n.nodetype == 0xE001)
    image[dirent.offset + 20] ^= 0x01  # the ino field: node_crc must fail
    with tempfile.TemporaryDirectory() as d:
        _, out = jefferson_extract(bytes(image), Path(d))
    assert "data_crc does not match!" in out
    assert "node_crc does not match!" in out


@needs_jefferson
@pytest.mark.interop
@given(tree=trees(), erase=st.sampled_from([0x2000, 0x20000]), cm=st.booleans())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_jefferson_roundtrip_random_trees(tree: Tree, erase: int, cm: bool):
    assert_jefferson_roundtrip(build_jffs2(tree, erase_size=erase, cleanmarkers=cm), tree)


# --- JFFS2 against mkfs.jffs2 -------------------------------------------------------------

_MODES = {"priority": (), "zlib": ("-x", "rtime"), "none": ("-m", "none")}


@needs_mkfs
@pytest.mark.interop
@pytest.mark.parametrize("compression", ["priority", "zlib", "none"])
@pytest.mark.parametrize("cleanmarkers", [True, False])
def test_identical_to_mkfs_jffs2(compression: str, cleanmarkers: bool):
    tree = firmware_tree("B", size=300_000, n_files=50)
    flags = [*_MODES[compression], "-e", "0x20000"] + ([] if cleanmarkers else ["-n"])
    ours = build_jffs2(tree, compression=compression, cleanmarkers=cleanmarkers)
    assert ours == mkfs_image(tree, *flags)


@needs_mkfs
@pytest.mark.interop
@pytest.mark.parametrize(
    ("erase", "pad", "page", "flags"),
    [
        (0x2000, -1, 4096, ["-p"]),
        (0x4000, 0x80000, 1024, ["-p0x80000", "-s", "1024"]),
        (0x2000, 0x29000, 4096, ["-p0x29000"]),  # not a block multiple: mkfs rounds up
        (0x2000, 0x29000, 4096, ["-p0x29000", "-n"]),
    ],
)
def test_identical_to_mkfs_jffs2_small_blocks_and_padding(erase, pad, page, flags):
    # Small erase blocks put many data nodes at block ends, where mkfs's zlib loop
    # runs out of output space and stores only part of a page.
    tree = firmware_tree("C", size=100_000, n_files=30)
    ours = build_jffs2(
        tree, erase_size=erase, pad_to=pad, page_size=page, cleanmarkers="-n" not in flags
    )
    assert ours == mkfs_image(tree, "-e", hex(erase), *flags)


@needs_mkfs
@pytest.mark.interop
def test_rtime_is_used_where_mkfs_uses_it():
    # 12 zero bytes: zlib refuses (no room for its 12-byte stream end), rtime wins.
    tree = Tree(files={"/zeros": bytes(12), "/text": b"abc" * 500})
    ours = build_jffs2(tree)
    comprs = {ours[n.offset + 56] for n in iter_nodes(ours) if n.nodetype == 0xE002}
    assert comprs == {0x02, 0x06}
    assert ours == mkfs_image(tree, "-e", "0x20000")


@needs_mkfs
@pytest.mark.interop
@given(tree=trees(), erase=st.sampled_from([0x2000, 0x20000]), cm=st.booleans())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_identical_to_mkfs_jffs2_random_trees(tree: Tree, erase: int, cm: bool):
    flags = ["-e", hex(erase)] + ([] if cm else ["-n"])
    assert build_jffs2(tree, erase_size=erase, cleanmarkers=cm) == mkfs_image(tree, *flags)


@needs_mkfs
@needs_jefferson
@pytest.mark.interop
def test_mkfs_output_extracts_like_ours():
    # The comparison method itself: jefferson sees the same tree in mkfs's image.
    tree = firmware_tree("D", size=80_000)
    assert_jefferson_roundtrip(mkfs_image(tree, "-e", "0x20000"), tree)


# --- uImage ------------------------------------------------------------------------------


def test_uimage_header_fields():
    data = fake_kernel(0x8000)
    image = build_uimage(data, name="Linux-2.6.14")
    assert image[:4] == b"\x27\x05\x19\x56" and len(image) == 64 + len(data)
    hdr, payload = parse_uimage(image)
    assert (hdr.size, hdr.load, hdr.ep, hdr.os, hdr.arch, hdr.type, hdr.comp) == (
        len(data),
        0xE0008000,
        0xE0008000,
        5,
        2,
        2,
        0,
    )
    assert hdr.hcrc_ok and hdr.dcrc_ok and payload == data and hdr.name == "Linux-2.6.14"
    zeroed = image[:4] + bytes(4) + image[8:64]
    assert struct.unpack(">I", image[4:8])[0] == zlib.crc32(zeroed)
    with pytest.raises(ValueError):
        build_uimage(b"", name="x" * 33)


@given(
    data=st.binary(max_size=3000),
    name=st.text(alphabet="abcXYZ0-9.-_ ", max_size=32),
    load=st.integers(0, 0xFFFFFFFF),
    flip=st.integers(0, 10_000),
)
@settings(max_examples=100)
def test_uimage_roundtrip_and_crc_detects_flips(data, name, load, flip):
    image = build_uimage(data, name=name, load=load, entry=load)
    hdr, payload = parse_uimage(image)
    assert (hdr.name, hdr.load, hdr.ep, payload) == (name, load, load, data)
    assert hdr.hcrc_ok and hdr.dcrc_ok
    pos = 4 + flip % (len(image) - 4)  # any byte after the magic
    bad = bytearray(image)
    bad[pos] ^= 0x40
    bhdr, _ = parse_uimage(bytes(bad))
    assert not (bhdr.hcrc_ok and bhdr.dcrc_ok)


def test_fake_kernel_looks_like_a_zimage():
    k = fake_kernel(0x30000, seed=3)
    assert len(k) == 0x30000 and k == fake_kernel(0x30000, seed=3) != fake_kernel(0x30000)
    assert k[:32] == bytes.fromhex("0000a0e1") * 8
    assert struct.unpack_from("<III", k, 0x24) == (0x016F2818, 0, 0x30000)
    assert b"Uncompressing Linux..." in k
    piggy = k.index(b"\x1f\x8b\x08")
    inflated = zlib.decompressobj(31).decompress(k[piggy:])
    assert inflated.startswith(b"Linux version 2.6.14 ")
    assert len(gzip.compress(inflated, mtime=0)) > 0.9 * len(inflated)  # incompressible


@needs_mkimage
@pytest.mark.interop
def test_uimage_identical_to_mkimage(tmp_path: Path):
    blob = fake_kernel(0x20000, seed=1)
    (tmp_path / "blob").write_bytes(blob)
    cmd = [MKIMAGE, "-A", "arm", "-O", "linux", "-T", "kernel", "-C", "none"]
    cmd += ["-a", "0xe0008000", "-e", "0xe0008000", "-n", "Linux-2.6.14"]
    cmd += ["-d", str(tmp_path / "blob"), str(tmp_path / "ref")]
    subprocess.run(cmd, check=True, capture_output=True, env={"SOURCE_DATE_EPOCH": "0"})
    assert build_uimage(blob, name="Linux-2.6.14") == (tmp_path / "ref").read_bytes()


def mkimage_list(image: bytes, tmp_path: Path) -> str:
    (tmp_path / "u").write_bytes(image)
    proc = subprocess.run([MKIMAGE, "-l", str(tmp_path / "u")], capture_output=True, text=True)
    return proc.stdout


@needs_mkimage
@pytest.mark.interop
def test_mkimage_lists_our_header_and_rejects_a_bad_crc(tmp_path: Path):
    image = build_uimage(b"\x01\x02" * 5000, name="Linux-2.6.14", load=0xE0008000)
    out = mkimage_list(image, tmp_path)
    assert "Image Name:   Linux-2.6.14" in out
    assert "Image Type:   ARM Linux Kernel Image (uncompressed)" in out
    assert "Data Size:    10000 Bytes" in out
    assert "Load Address: e0008000" in out and "Entry Point:  e0008000" in out
    bad = bytearray(image)
    bad[200] ^= 1  # data CRC no longer matches: mkimage no longer sees a uImage
    assert "Image Name:" not in mkimage_list(bytes(bad), tmp_path)


# --- Hi3511 flash, root images, .pkg ------------------------------------------------------


def test_uboot_blob():
    blob = uboot_blob()
    assert len(blob) == 0x17540 and blob == uboot_blob()
    assert blob[:4] == bytes.fromhex("120000ea") and blob[4:8] == bytes.fromhex("14f09fe5")
    assert UBOOT_BANNER.encode() in blob
    assert struct.unpack_from("<4I", blob, 0x40) == (0xE0500000, 0xE0500000, 0xE0517540, 0xE051E2BC)


def test_vendor_flash_layout():
    flash = vendor_flash("A")
    assert len(flash) == FLASH_SIZE == 16 << 20
    assert flash.startswith(uboot_blob()) and set(flash[0x17540:ENV_OFFSET]) == {0xFF}
    env = flash[ENV_OFFSET : ENV_OFFSET + ENV_SIZE]
    assert int.from_bytes(env[:4], "little") == zlib.crc32(env[4:])
    assert b"\0bootcmd=bootm 0x34100000\0" in env
    assert set(flash[ENV_OFFSET + ENV_SIZE : KERNEL_OFFSET]) == {0xFF}
    assert set(vendor_flash("A", env=False)[0x17540:KERNEL_OFFSET]) == {0xFF}
    hdr, kernel = parse_uimage(flash[KERNEL_OFFSET:])
    assert hdr.hcrc_ok and hdr.dcrc_ok and hdr.name == "Linux-2.6.14"
    assert (hdr.load, hdr.ep) == (0xE0008000, 0xE0008000)
    assert KERNEL_OFFSET + 64 + hdr.size <= ROOT_OFFSET
    assert set(flash[KERNEL_OFFSET + 64 + hdr.size : ROOT_OFFSET]) == {0xFF}
    root = root_image("A")
    assert flash[ROOT_OFFSET : ROOT_OFFSET + len(root)] == root
    assert root.startswith(CLEANMARKER_LE)
    assert set(flash[ROOT_OFFSET + len(root) : ROOT_OFFSET + ROOT_SIZE]) == {0xFF}
    assert ROOT_OFFSET + ROOT_SIZE == SETTINGS_OFFSET
    settings_part = flash[SETTINGS_OFFSET:]
    assert settings_part.startswith(CLEANMARKER_LE)
    check_structure(settings_part.rstrip(b"\xff"), SECTOR, cleanmarkers=True)


@needs_mkimage
@pytest.mark.interop
def test_vendor_flash_kernel_is_listed_by_mkimage(tmp_path: Path):
    flash = vendor_flash("A")
    hdr, _ = parse_uimage(flash[KERNEL_OFFSET:])
    out = mkimage_list(flash[KERNEL_OFFSET : KERNEL_OFFSET + 64 + hdr.size], tmp_path)
    assert "Image Name:   Linux-2.6.14" in out and f"Data Size:    {hdr.size} Bytes" in out


@needs_jefferson
@pytest.mark.interop
def test_vendor_flash_root_extracts(tmp_path: Path):
    part = vendor_flash("B")[ROOT_OFFSET : ROOT_OFFSET + ROOT_SIZE]
    got, out = jefferson_extract(part, tmp_path)
    assert not [c for c in COMPLAINTS if c in out]
    assert b"FIRMWARE=B12SE_V60.1.1.4_536mP1_60" in got.files["/etc/version"]
    assert got.symlinks["/bin/sh"] == "busybox"


def test_a_and_b_collide_when_flashed_without_erase():
    a, b = root_image("A"), root_image("B")
    assert a != b and len(b) > len(a)
    merged = bytes(x & y for x, y in zip(a, b, strict=False)) + b[len(a) :]  # old AND new
    b_nodes = [x for x in iter_nodes(b) if x.nodetype != 0x2003]

    def damaged(nodes):
        return [
            x
            for x in nodes
            if merged[x.offset : x.offset + x.totlen] != b[x.offset : x.offset + x.totlen]
        ]

    # Only the first few directory nodes, identical in both, and B's tail beyond the
    # end of A survive; every data node written over A's data is broken.
    assert len(damaged(b_nodes)) > 0.8 * len(b_nodes)
    over_a = [x for x in b_nodes if x.nodetype == 0xE002 and x.totlen > 200 and x.offset < len(a)]
    assert len(over_a) > 100 and damaged(over_a) == over_a


def test_vendor_pkg():
    root = root_image("A")
    pkg = vendor_pkg(root)
    assert len(pkg) == 144 + len(root) and pkg[144:] == root and pkg.startswith(PKG_MAGIC)
    hlen, plen, pcrc, ptype = struct.unpack_from("<IIII", pkg, 8)
    assert (hlen, plen, pcrc, ptype) == (144, len(root), zlib.crc32(root), 1)
    assert struct.unpack_from("<I", pkg, 140)[0] == zlib.crc32(pkg[:140])
    old = vendor_pkg(root, 188, version="B12SE_V60.1.1.4")
    assert old[188:] == root and b"B12SE_V60.1.1.4\0" in old[:188]
    assert vendor_pkg(root) == pkg != vendor_pkg(root, seed=1)
    with pytest.raises(ValueError):
        vendor_pkg(root, 100)
