"""Tests of the emulator's U-Boot 1.1.4 ``bootm`` header checks.

Headers are built here with struct and zlib; mkimage (u-boot-tools) provides
real images for the interop tests.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.hi3511.uimage import (
    UImageHeader,
    bootm_boot,
    bootm_check,
    format_size,
    parse_header,
)

ADDR = 0x34100000
HAVE_MKIMAGE = shutil.which("mkimage") is not None
needs_mkimage = pytest.mark.skipif(not HAVE_MKIMAGE, reason="mkimage (u-boot-tools) not installed")


def make_uimage(
    data: bytes,
    *,
    name: bytes = b"Linux-2.6.14",
    load: int = 0xE0008000,
    ep: int = 0xE0008000,
    os_: int = 5,
    arch: int = 2,
    typ: int = 2,
    comp: int = 0,
    time: int = 0x49DC2F40,
    size: int | None = None,
    magic: int = 0x27051956,
    dcrc: int | None = None,
) -> bytes:
    size = len(data) if size is None else size
    dcrc = zlib.crc32(data) if dcrc is None else dcrc
    fields = [magic, 0, time, size, load, ep, dcrc, os_, arch, typ, comp, name.ljust(32, b"\0")]
    hdr = struct.pack(">7I4B32s", *fields)
    fields[1] = zlib.crc32(hdr)
    return struct.pack(">7I4B32s", *fields) + data


class Memory:
    """A flat address space holding one image at ADDR, 0xFF elsewhere."""

    def __init__(self, blob: bytes, base: int = ADDR) -> None:
        self.blob, self.base = blob, base

    def read(self, addr: int, length: int) -> bytes:
        out = bytearray(b"\xff" * length)
        lo, hi = max(addr, self.base), min(addr + length, self.base + len(self.blob))
        if lo < hi:
            out[lo - addr : hi - addr] = self.blob[lo - self.base : hi - self.base]
        return bytes(out)


def test_good_kernel_image_text() -> None:
    data = os.urandom(1468006)
    mem = Memory(make_uimage(data))
    text, hdr = bootm_check(mem.read, ADDR)
    assert text == (
        "## Booting image at 34100000 ...\n"
        "   Image Name:   Linux-2.6.14\n"
        "   Image Type:   ARM Linux Kernel Image (uncompressed)\n"
        "   Data Size:    1468006 Bytes =  1.4 MB\n"
        "   Load Address: e0008000\n"
        "   Entry Point:  e0008000\n"
        "   Verifying Checksum ... OK\n"
    )
    assert hdr is not None
    assert (hdr.size, hdr.load, hdr.ep, hdr.os, hdr.arch, hdr.type) == (
        1468006,
        0xE0008000,
        0xE0008000,
        5,
        2,
        2,
    )
    boot, outcome = bootm_boot(mem.read, ADDR, hdr)
    assert (boot, outcome) == ("OK\n\nStarting kernel ...\n\n", "linux")


def test_bad_magic() -> None:
    mem = Memory(b"\xff" * 256)
    assert bootm_check(mem.read, ADDR) == (
        "## Booting image at 34100000 ...\nBad Magic Number\n",
        None,
    )


def test_bad_header_checksum() -> None:
    img = bytearray(make_uimage(b"kernel"))
    img[40] ^= 1  # a name byte
    assert bootm_check(Memory(bytes(img)).read, ADDR) == (
        "## Booting image at 34100000 ...\nBad Header Checksum\n",
        None,
    )


def test_bad_data_crc() -> None:
    img = bytearray(make_uimage(b"k" * 5000))
    img[64 + 100] ^= 0x80
    text, hdr = bootm_check(Memory(bytes(img)).read, ADDR)
    assert hdr is None
    assert text.endswith("   Entry Point:  e0008000\n   Verifying Checksum ... Bad Data CRC\n")
    # With verify=n the data is not checked.
    text, hdr = bootm_check(Memory(bytes(img)).read, ADDR, verify=False)
    assert hdr is not None and "Verifying" not in text
    assert text.endswith("   Entry Point:  e0008000\n")


def test_flash_overwritten_image_with_and_semantics() -> None:
    """Two kernels programmed over each other without erase: the header CRC fails."""
    a = make_uimage(os.urandom(4000), name=b"old")
    b = make_uimage(os.urandom(4000), name=b"new")
    anded = bytes(x & y for x, y in zip(a, b, strict=True))
    text, hdr = bootm_check(Memory(anded).read, ADDR)
    assert (text, hdr) == ("## Booting image at 34100000 ...\nBad Header Checksum\n", None)


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, " 0 kB"),
        (1, " 0 kB"),
        (512, " 0.5 kB"),
        (1023, " 1 kB"),
        (1536, " 1.5 kB"),
        (10 * 1024, "10 kB"),
        (1048575, "1024 kB"),
        (1048576, " 1 MB"),
        # Values seen in real U-Boot 1.1.x boot logs:
        (1288395, " 1.2 MB"),
        (1161762, " 1.1 MB"),
        (6161733, " 5.9 MB"),
        (3 * 1048576 + 943718, " 3.9 MB"),
        (0xFFFFFFFF, "4096 MB"),
    ],
)
def test_print_size(size: int, shown: str) -> None:
    assert format_size(size) == shown


def test_type_strings_and_signed_size() -> None:
    img = make_uimage(b"", os_=17, arch=5, typ=7, comp=2, name=b"x" * 32, size=0x80000000)
    text, hdr = bootm_check(Memory(img).read, ADDR, verify=False)
    assert "   Image Name:   " + "x" * 32 + "\n" in text
    assert "   Image Type:   MIPS U-Boot Unknown Image (bzip2 compressed)\n" in text
    assert "   Data Size:    -2147483648 Bytes = 2048 MB\n" in text
    img = make_uimage(b"", os_=99, arch=99, typ=99, comp=9)
    text, _ = bootm_check(Memory(img).read, ADDR)
    assert "Unknown Architecture Unknown OS Unknown Image (unknown compression)" in text


def test_multi_file_table_without_terminator_does_not_hang() -> None:
    img = make_uimage(struct.pack(">II", 8, 4) + b"\xff" * 8, typ=4)
    mem = Memory(img + b"\xff" * 64)
    text, hdr = bootm_check(mem.read, ADDR)
    assert hdr is not None
    assert "   Contents:\n   Image 0:        8 Bytes =  0 kB\n" in text
    assert "   Image 1:        4 Bytes =  0 kB\n" in text
    assert "   Image 2:       -1 Bytes = 4096 MB\n" in text  # %8ld of a ulong


def test_name_stops_at_nul_and_keeps_raw_bytes() -> None:
    img = make_uimage(b"d", name=b"caf\xe9\0junk")
    text, _ = bootm_check(Memory(img).read, ADDR)
    assert "   Image Name:   caf\xe9\n" in text
    assert text.encode("latin-1").count(b"caf\xe9\n") == 1


def test_boot_outcomes() -> None:
    def boot(**kw: object) -> tuple[str, str]:
        data = kw.pop("data", b"payload")
        mem = Memory(make_uimage(data, **kw))  # type: ignore[arg-type]
        text, hdr = bootm_check(mem.read, ADDR)
        assert hdr is not None, text
        return bootm_boot(mem.read, ADDR, hdr)

    assert boot(arch=5) == ("Unsupported Architecture 0x5\n", "fail")
    assert boot(typ=3) == ("Wrong Image Type for bootm command\n", "fail")
    assert boot(comp=2) == ("Unimplemented compression type 2\n", "fail")
    assert boot(typ=1) == ("OK\n", "standalone")
    assert boot(load=ADDR) == (
        "   XIP Kernel Image ... OK\n\nStarting kernel ...\n\n",
        "linux",
    )
    assert boot(comp=1, data=gzip.compress(b"vmlinux" * 1000)) == (
        "   Uncompressing Kernel Image ... OK\n\nStarting kernel ...\n\n",
        "linux",
    )
    text, outcome = boot(comp=1, data=b"not gzip at all")
    assert outcome == "reset"
    assert text == (
        "   Uncompressing Kernel Image ... Error: Bad gzipped data\n"
        "GUNZIP ERROR - must RESET board to recover\n"
    )
    too_big = gzip.compress(bytes(0x400001))
    assert boot(comp=1, data=too_big)[1] == "reset"


@given(
    st.builds(
        UImageHeader,
        magic=st.integers(0, 2**32 - 1),
        hcrc=st.integers(0, 2**32 - 1),
        time=st.integers(0, 2**32 - 1),
        size=st.integers(0, 2**32 - 1),
        load=st.integers(0, 2**32 - 1),
        ep=st.integers(0, 2**32 - 1),
        dcrc=st.integers(0, 2**32 - 1),
        os=st.integers(0, 255),
        arch=st.integers(0, 255),
        type=st.integers(0, 255),
        comp=st.integers(0, 255),
        name=st.binary(min_size=32, max_size=32),
    )
)
def test_parse_header_roundtrip(h: UImageHeader) -> None:
    raw = h.pack()
    assert len(raw) == 64
    assert parse_header(raw) == h
    assert struct.unpack(">I", raw[12:16])[0] == h.size


@given(st.binary(min_size=64, max_size=200))
def test_random_headers_are_rejected_or_consistent(blob: bytes) -> None:
    text, hdr = bootm_check(Memory(blob).read, ADDR)
    assert text.startswith("## Booting image at 34100000 ...\n")
    if hdr is None:
        assert text.endswith(("Bad Magic Number\n", "Bad Header Checksum\n", "Bad Data CRC\n"))
    else:
        assert blob[:4] == b"\x27\x05\x19\x56"


# --------------------------------------------------------------------------
# mkimage interop


def _mkimage(tmp_path: Path, *args: str) -> bytes:
    out = tmp_path / "out.uimg"
    subprocess.run(
        ["mkimage", *args, str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "0"},
    )
    return out.read_bytes()


@pytest.mark.interop
@needs_mkimage
def test_mkimage_kernel(tmp_path: Path) -> None:
    blob = tmp_path / "zImage"
    blob.write_bytes(os.urandom(1_500_000))
    img = _mkimage(
        tmp_path,
        *("-A", "arm", "-O", "linux", "-T", "kernel", "-C", "none"),
        *("-a", "0xe0008000", "-e", "0xe0008000", "-n", "Linux-2.6.14", "-d", str(blob)),
    )
    text, hdr = bootm_check(Memory(img).read, ADDR)
    assert text == (
        "## Booting image at 34100000 ...\n"
        "   Image Name:   Linux-2.6.14\n"
        "   Image Type:   ARM Linux Kernel Image (uncompressed)\n"
        "   Data Size:    1500000 Bytes =  1.4 MB\n"
        "   Load Address: e0008000\n"
        "   Entry Point:  e0008000\n"
        "   Verifying Checksum ... OK\n"
    )
    assert hdr is not None
    listing = subprocess.run(
        ["mkimage", "-l", str(tmp_path / "out.uimg")], capture_output=True, text=True, check=True
    ).stdout
    assert f"Load Address: {hdr.load:08x}" in listing
    assert f"Image Name:   {hdr.name_str}" in listing


@pytest.mark.interop
@needs_mkimage
def test_mkimage_gzip_multi_and_ramdisk(tmp_path: Path) -> None:
    k = tmp_path / "k.gz"
    k.write_bytes(gzip.compress(b"kernel code " * 5000))
    img = _mkimage(
        tmp_path,
        *("-A", "arm", "-O", "linux", "-T", "kernel", "-C", "gzip"),
        *("-a", "0xe0008000", "-e", "0xe0008000", "-n", "gz", "-d", str(k)),
    )
    text, hdr = bootm_check(Memory(img).read, ADDR)
    assert "ARM Linux Kernel Image (gzip compressed)" in text and hdr is not None
    assert bootm_boot(Memory(img).read, ADDR, hdr)[1] == "linux"

    r = tmp_path / "r"
    r.write_bytes(b"ramdisk!")
    img = _mkimage(
        tmp_path,
        *("-A", "arm", "-O", "linux", "-T", "multi", "-C", "none", "-a", "0", "-e", "0"),
        *("-n", "multi", "-d", f"{k}:{r}"),
    )
    text, hdr = bootm_check(Memory(img).read, ADDR)
    assert hdr is not None
    k_len = k.stat().st_size
    assert text.endswith(
        "   Entry Point:  00000000\n"
        "   Contents:\n"
        f"   Image 0: {k_len:8d} Bytes = {format_size(k_len)}\n"
        "   Image 1:        8 Bytes =  0 kB\n"
        "   Verifying Checksum ... OK\n"
    )

    img = _mkimage(
        tmp_path,
        *("-A", "arm", "-O", "linux", "-T", "ramdisk", "-C", "none", "-a", "0", "-e", "0"),
        *("-n", "rd", "-d", str(r)),
    )
    text, hdr = bootm_check(Memory(img).read, ADDR)
    assert "ARM Linux RAMDisk Image (uncompressed)" in text and hdr is not None
    assert bootm_boot(Memory(img).read, ADDR, hdr) == (
        "Wrong Image Type for bootm command\n",
        "fail",
    )
