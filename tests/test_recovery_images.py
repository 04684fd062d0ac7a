"""recovery.images: JFFS2 detection and the preflight of firmware files.

Ground truth: the node layout and CRC rule of REFERENCE.md (the cleanmarker's
bytes are given there), the harness's JFFS2 writer, and mkfs.jffs2 itself.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.firmware import Tree, build_jffs2, root_image, vendor_pkg
from recovery.errors import ImageError
from recovery.hi3511.images import (
    crc32_le,
    find_payload,
    identify,
    looks_like_jffs2,
    parse_node_header,
    prepare_jffs2_image,
    walk_jffs2,
)

CLEANMARKER_LE = bytes.fromhex("85190320 0c000000 b1b01ee4")
ROOT = 0xD00000
SECTOR = 0x20000


def kernel_crc(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


def dirent(name: bytes, endian: str = "<", pino: int = 1, ino: int = 2) -> bytes:
    """A raw dirent built from REFERENCE.md's layout (test-side, independent of the engine)."""
    totlen = 40 + len(name)
    head = struct.pack(endian + "HHI", 0x1985, 0xE001, totlen)
    head += struct.pack(endian + "I", kernel_crc(head))
    body = head + struct.pack(endian + "IIII", pino, 1, ino, 0) + bytes([len(name), 8, 0, 0])
    body += struct.pack(endian + "I", kernel_crc(body))
    body += struct.pack(endian + "I", kernel_crc(name)) + name
    return body + b"\xff" * (-len(body) % 4)


def test_crc_matches_the_reference_cleanmarker():
    assert crc32_le(CLEANMARKER_LE[:8]) == 0xE41EB0B1
    h = parse_node_header(CLEANMARKER_LE)
    assert h is not None and h.kind == "cleanmarker" and h.totlen == 12 and h.endian == "<"


def test_the_accurate_bit_is_forced_on_before_the_header_check():
    obsolete = bytearray(CLEANMARKER_LE)
    obsolete[3] &= ~0x20  # nodetype 0x2003 -> 0x0003, as the kernel marks obsolete nodes
    assert parse_node_header(bytes(obsolete)) is not None


@given(st.integers(min_value=0, max_value=11 * 8 - 1))
def test_any_other_single_bit_flip_in_a_header_is_caught(bit):
    if bit == 3 * 8 + 5:  # the ACCURATE bit, see above
        return
    damaged = bytearray(CLEANMARKER_LE)
    damaged[bit // 8] ^= 1 << (bit % 8)
    assert parse_node_header(bytes(damaged)) is None


@given(st.binary(max_size=256))
def test_detector_never_crashes_and_agrees_with_the_walk(data):
    report = walk_jffs2(data)
    if report.nodes:
        assert looks_like_jffs2(data)
    if not looks_like_jffs2(data):
        assert report.nodes == 0


@given(
    st.binary(min_size=1, max_size=60).filter(lambda b: b"/" not in b and b"\0" not in b),
    st.sampled_from(["<", ">"]),
    st.integers(min_value=0, max_value=64).map(lambda n: 4 * n),
)
def test_hand_made_dirents_are_found_after_erased_space(name, endian, gap):
    data = b"\xff" * gap + dirent(name, endian)
    assert looks_like_jffs2(data)
    report = walk_jffs2(data)
    assert report.ok and report.first_node == gap
    assert report.dirents == [name.decode("latin-1")]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.text(alphabet="abcdefgh", min_size=1, max_size=8).map(lambda s: "/" + s),
        st.binary(max_size=3000),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([True, False]),
)
def test_every_builder_image_walks_clean(files, cleanmarkers):
    image = build_jffs2(Tree(files=files), erase_size=SECTOR, cleanmarkers=cleanmarkers)
    report = walk_jffs2(image, erase_size=SECTOR)
    assert report.ok, report.errors
    assert report.endian == "little"
    assert sorted(report.dirents) == sorted(p[1:] for p in files)
    assert report.types.get("cleanmarker", 0) == (1 if cleanmarkers else 0) * (
        (len(image) + SECTOR - 1) // SECTOR
    )


def test_big_endian_nodes_are_recognised():
    node = dirent(b"etc", ">")
    h = parse_node_header(node)
    assert h is not None and h.endian == ">" and h.kind == "dirent"
    report = walk_jffs2(node)
    assert report.ok and report.endian == "big" and report.dirents == ["etc"]


def test_damaged_dirent_crcs_are_reported():
    node = bytearray(dirent(b"passwd"))
    node[20] ^= 1  # ino: node CRC
    assert "node CRC mismatch" in walk_jffs2(bytes(node)).errors[0]
    node = bytearray(dirent(b"passwd"))
    node[41] ^= 1  # name: name CRC
    assert "name CRC mismatch" in walk_jffs2(bytes(node)).errors[0]


def test_a_node_across_an_erase_block_end_is_refused():
    image = CLEANMARKER_LE + b"\xff" * (SECTOR - 12 - 20) + dirent(b"longer_name_here")
    report = walk_jffs2(image, erase_size=SECTOR)
    assert not report.ok and "erase block" in report.errors[0]
    assert walk_jffs2(image).ok  # without the erase size the same bytes are fine


def test_find_payload_raw_and_pkg_headers():
    root = root_image("A")
    assert find_payload(root).offset == 0
    for size in (144, 188):
        p = find_payload(vendor_pkg(root, header_len=size))
        assert (p.offset, p.kind) == (size, "pkg")
    with pytest.raises(ImageError, match="not a JFFS2 image"):
        find_payload(b"\0" * 100 + root)


@pytest.mark.parametrize(
    "data, text",
    [
        (b"", "empty"),
        (b"\xff" * 4096, "0xFF"),
        (b"\0" * 4096, "zeros"),
        (b"\x27\x05\x19\x56" + bytes(60), "uImage"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"hsqs" + bytes(60), "SquashFS"),
        (b"\x85\x19\x03\x20" + bytes(8), "CRC is wrong"),
    ],
)
def test_identify_names_what_a_wrong_file_is(data, text):
    assert text in identify(data)


def test_prepare_accepts_raw_and_pkg(tmp_path):
    root = root_image("B")
    raw = tmp_path / "instar.jffs2"
    raw.write_bytes(root)
    pkg = tmp_path / "B12SE_V60.pkg"
    pkg.write_bytes(vendor_pkg(root, header_len=188))
    for path, kind, header in ((raw, "jffs2", 0), (pkg, "pkg", 188)):
        img = prepare_jffs2_image(path, partition_size=ROOT, erase_size=SECTOR)
        assert (img.kind, img.header_size, img.data) == (kind, header, root)
        s = img.summary()
        assert s["crc32"] == f"{zlib.crc32(root):08x}" and s["size"] == len(root)


def test_prepare_refuses_what_would_not_boot(tmp_path):
    big = tmp_path / "big.jffs2"
    big.write_bytes(CLEANMARKER_LE + b"\xff" * (ROOT + 4096))
    with pytest.raises(ImageError, match="too large"):
        prepare_jffs2_image(big, partition_size=ROOT)
    kernel = tmp_path / "uImage"
    kernel.write_bytes(b"\x27\x05\x19\x56" + bytes(4096))
    with pytest.raises(ImageError, match="uImage") as e:
        prepare_jffs2_image(kernel, partition_size=ROOT)
    assert e.value.flash_state == "untouched"
    damaged = bytearray(root_image("A"))
    damaged[200] ^= 0xFF
    bad = tmp_path / "bad.jffs2"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(ImageError, match="damaged"):
        prepare_jffs2_image(bad, partition_size=ROOT)
    be = tmp_path / "be.jffs2"
    be.write_bytes(dirent(b"etc", ">"))
    with pytest.raises(ImageError, match="big-endian"):
        prepare_jffs2_image(be, partition_size=ROOT)
    with pytest.raises(ImageError, match="cannot read"):
        prepare_jffs2_image(tmp_path / "missing.jffs2", partition_size=ROOT)


mkfs = shutil.which("mkfs.jffs2")


@pytest.mark.interop
@pytest.mark.skipif(mkfs is None, reason="mkfs.jffs2 (mtd-utils) is not installed")
@pytest.mark.parametrize(
    "flags, ok",
    [
        (["-l"], True),
        (["-l", "-n"], True),
        (["-l", "-p"], True),
        (["-l", "-e", "0x10000"], True),
        (["-b"], False),
    ],
)
def test_mkfs_jffs2_images(tmp_path, flags, ok):
    src = tmp_path / "root"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "version").write_text("FIRMWARE=test\n")
    (src / "bin").mkdir()
    (src / "bin" / "busybox").write_bytes(bytes(range(256)) * 200)
    out = tmp_path / "root.jffs2"
    args = [mkfs, "-r", str(src), "-o", str(out), *flags]
    if "-e" not in flags:
        args += ["-e", "0x20000"]
    subprocess.run(args, check=True, capture_output=True)
    if ok:
        img = prepare_jffs2_image(out, partition_size=ROOT, erase_size=SECTOR)
        assert {"etc", "bin", "version", "busybox"} <= set(img.report.dirents)
    else:
        with pytest.raises(ImageError, match="big-endian"):
            prepare_jffs2_image(out, partition_size=ROOT, erase_size=SECTOR)
