"""Direct tests of the Hi3511 engine's parsers (recovery/hi3511/parsers.py), issue 21.

The text fed to the parsers is what U-Boot 1.1.4 and the 2.6 kernel print, from the
seed (000: the kernel command line, the JFFS2 CRC error lines) and REFERENCE.md
(``flinfo``, ``printenv``, ``md.b``, ``crc32``, the uImage header). Each negative case
is a way the console can lie to the engine: a dropped or repeated ``md`` line, a
``crc32`` over another range, an erase range with one end off a sector boundary.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.errors import DeviceError
from recovery.hi3511.flashmap import FLASH_BASE, FLASH_SIZE, Region
from recovery.hi3511.parsers import (
    BootReport,
    FlashInfo,
    looks_like_garbage,
    note_kernel_line,
    parse_crc32,
    parse_env,
    parse_flinfo,
    parse_md_bytes,
    parse_mtdparts,
    parse_uimage_header,
)

SECTOR = 0x20000
SECTORS = [FLASH_BASE + i * SECTOR for i in range(128)]

# seed 000, verbatim
SEED_BOOTARGS = (
    "mem=72M console=ttyAMA0,115200 root=1f01 rootfstype=jffs2 "
    "mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)"
)
SEED_CRC_LINES = [
    "jffs2_scan_dirent_node(): Node CRC failed on node at 0x0000000c: Read 0x41c0224d, calculated 0x97e7f5c5",
    "jffs2_scan_inode_node(): CRC failed on node at 0x00000038: Read 0x5a000025, calculated 0x1b754c4d",
    "jffs2_scan_dirent_node(): Node CRC failed on node at 0x0000007c: Read 0x53804006, calculated 0x88f20f93",
    "jffs2_scan_inode_node(): CRC failed on node at 0x000000a8: Read 0x1a180001, calculated 0x05c7cb76",
]
# REFERENCE.md (Linux 2.6 JFFS2 mount scan), the node-header CRC form (sic)
INVALID_CRC_LINE = (
    "jffs2_scan_eraseblock(): Node at 0x00000200 {0x1985, 0xe002, 0x00000044) "
    "has invalid CRC 0x12345678 (calculated 0x9abcdef0)"
)


# -- builders of what U-Boot prints ---------------------------------------------------------


def flinfo_upstream(sectors=SECTORS, protected=(), size_mb=16, erase_ms=4096, write_ms=1):
    """``flinfo`` as upstream U-Boot 1.1.4's CFI driver prints it (REFERENCE.md)."""
    out = [
        "\nBank # 1: CFI conformant FLASH (16 x 16)",
        f"  Size: {size_mb} MB in {len(sectors)} Sectors\n",
        f" Erase timeout {erase_ms} ms, write timeout {write_ms} ms, "
        "buffer write timeout 3 ms, buffer size 32\n",
        "  Sector Start Addresses:",
    ]
    for i, s in enumerate(sectors):
        if i % 5 == 0:
            out.append("\n   ")
        out.append(f" {s:08X}{' (RO)' if s in protected else '     '}")
    out.append("\n")
    return "".join(out)


def flinfo_hisilicon(sectors=SECTORS, protected=(), empty=None, erase_ms=4096, write_ms=1):
    """``flinfo`` as HiSilicon's tree prints it (zhhejun/u-boot-1.1.4 drivers/cfi_flash.c):
    the timeouts with a colon, ``"  %08lX   %s "`` per sector with ``RO`` bare, or with
    CFG_FLASH_EMPTY_INFO ``"  %08lX %c %s "`` with an ``E`` for an erased sector."""
    out = [
        "\nBank # 1: CFI conformant FLASH (16 x 16)",
        f"  Size: 16 MB in {len(sectors)} Sectors\n",
        "  AMD Standard command set, Manufacturer ID: 0x01, Device ID: 0x227E2101\n",
        f"  Erase timeout: {erase_ms} ms, write timeout: {write_ms} ms\n",
        "  Buffer write timeout: 3 ms, buffer size: 32 bytes\n",
        "\n  Sector Start Addresses:",
    ]
    for i, s in enumerate(sectors):
        if i % 5 == 0:
            out.append("\n")
        ro = "RO" if s in protected else "  "
        if empty is None:
            out.append(f"  {s:08X}   {ro} ")
        else:
            out.append(f"  {s:08X} {'E' if s in empty else ' '} {ro} ")
    out.append("\n")
    return "".join(out)


def md_b(addr: int, data: bytes) -> str:
    """``md.b addr len`` output: 16 bytes a line, four spaces, the ASCII column."""
    lines = []
    for i in range(0, len(data), 16):
        row = data[i : i + 16]
        hexpart = "".join(f" {b:02x}" for b in row)
        text = "".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in row)
        lines.append(f"{addr + i:08x}:{hexpart}    {text}")
    return "\r\n".join(lines) + "\r\n"


def uimage_header(name=b"Linux-2.6.14", size=0x15E2C4, load=0xE0008000, ep=0xE0008040, dcrc=0):
    """A 64-byte uImage header as mkimage writes it (REFERENCE.md, bootm)."""
    fields = [0x27051956, 0, 0x49DC3C3D, size, load, ep, dcrc, 5, 2, 2, 0]
    raw = struct.pack(">7I4B32s", *fields, name)
    hcrc = zlib.crc32(raw)
    return raw[:4] + hcrc.to_bytes(4, "big") + raw[8:]


# -- flinfo and the sector geometry ----------------------------------------------------------


def test_flinfo_of_the_16_mib_chip():
    info = parse_flinfo(flinfo_upstream(protected=SECTORS[:2] + SECTORS[-1:]))
    assert info.size == 16 << 20
    assert info.sectors == SECTORS
    assert info.protected == [SECTORS[0], SECTORS[1], SECTORS[-1]]
    assert info.sector_size(0) == SECTOR
    assert info.sector_size(127) == SECTOR  # the last one ends at the end of the chip


def test_flinfo_timeouts_are_read_when_printed():
    info = parse_flinfo(flinfo_upstream(erase_ms=8192, write_ms=2))
    assert (info.erase_timeout_ms, info.write_timeout_ms) == (8192, 2)


def test_flinfo_without_a_timeout_line_keeps_the_defaults():
    text = flinfo_upstream().replace(" Erase timeout", " Erase time-out")
    info = parse_flinfo(text)
    assert (info.erase_timeout_ms, info.write_timeout_ms) == (4096, 1)


def test_flinfo_of_hisilicons_tree():
    protected = [SECTORS[0], SECTORS[1], SECTORS[2]]
    info = parse_flinfo(flinfo_hisilicon(protected=protected, erase_ms=2048, write_ms=3))
    assert info.sectors == SECTORS
    assert info.protected == protected
    assert (info.erase_timeout_ms, info.write_timeout_ms) == (2048, 3)


def test_flinfo_of_hisilicons_tree_with_the_empty_column():
    protected = [SECTORS[0], SECTORS[127]]
    empty = set(SECTORS[16:])  # everything above the kernel erased
    info = parse_flinfo(flinfo_hisilicon(protected=protected, empty=empty))
    assert info.sectors == SECTORS
    assert info.protected == protected


@settings(max_examples=30, deadline=None)
@given(st.sets(st.integers(0, 127)), st.sets(st.integers(0, 127)), st.booleans())
def test_flinfo_protection_marks_property(ro, erased, hisilicon):
    protected = [SECTORS[i] for i in sorted(ro)]
    if hisilicon:
        text = flinfo_hisilicon(protected=protected, empty={SECTORS[i] for i in erased})
    else:
        text = flinfo_upstream(protected=protected)
    info = parse_flinfo(text)
    assert info.sectors == SECTORS and info.protected == protected


def test_flinfo_in_kilobytes():
    sectors = [FLASH_BASE + i * 0x10000 for i in range(8)]
    assert parse_flinfo(flinfo_upstream(sectors).replace("16 MB", "512 kB")).size == 512 << 10
    assert parse_flinfo(flinfo_upstream(sectors).replace("16 MB", "512 KB")).size == 512 << 10


def test_flinfo_boot_block_sizes_come_from_the_list():
    sectors = [FLASH_BASE, FLASH_BASE + 0x2000, FLASH_BASE + 0x4000] + [
        FLASH_BASE + 0x10000 * i for i in range(1, 16)
    ]
    info = parse_flinfo(flinfo_upstream(sectors, size_mb=1))
    sizes = [info.sector_size(i) for i in range(len(sectors))]
    assert sizes == [0x2000, 0x2000, 0xC000] + [0x10000] * 15
    assert sum(sizes) == 1 << 20


def test_flinfo_sizes_of_a_top_boot_chip_end_at_the_chip_end():
    sectors = [FLASH_BASE + 0x10000 * i for i in range(15)] + [
        FLASH_BASE + 0xF0000 + 0x8000 * i for i in range(2)
    ]
    info = parse_flinfo(flinfo_upstream(sectors, size_mb=1))
    assert [info.sector_size(i) for i in range(13, 17)] == [0x10000, 0x10000, 0x8000, 0x8000]


def test_flinfo_with_a_sector_missing_is_refused():
    text = flinfo_upstream().replace(f" {SECTORS[7]:08X}", "")
    with pytest.raises(DeviceError) as exc:
        parse_flinfo(text)
    assert exc.value.message == "'flinfo' announced 128 sectors but listed 127"
    assert exc.value.facts == {"flinfo": text[-500:]}
    assert len(text) > 501


def test_flinfo_without_a_size_line_is_refused():
    text = flinfo_upstream().replace("Size:", "Sz:")
    with pytest.raises(DeviceError) as exc:
        parse_flinfo(text)
    assert exc.value.message == "could not read the flash geometry from 'flinfo'"
    assert exc.value.facts == {"flinfo": text[-500:]}


def test_flinfo_counts_only_words_after_the_list_header():
    """An eight-digit hex word before the list (line noise, a vendor's ID line) is no sector."""
    text = flinfo_upstream().replace("Bank # 1:", "Bank # 1: 0BADF00D")
    assert parse_flinfo(text).sectors == SECTORS


def test_flinfo_with_the_list_header_lost_still_checks_the_count():
    text = flinfo_upstream().replace("Sector Start Addresses:", "Sector Start Addr")
    assert parse_flinfo(text).sectors == SECTORS
    with pytest.raises(DeviceError, match="announced 128 sectors but listed 129"):
        parse_flinfo(text.replace("Bank # 1:", "Bank # 1: 0BADF00D"))


def test_aligned_needs_both_ends_on_a_sector_boundary():
    info = FlashInfo(16 << 20, SECTORS, [])
    rootfs = Region("rootfs", 0x34200000, 0xD00000)
    assert info.aligned(rootfs)
    assert info.aligned(Region("all", FLASH_BASE, FLASH_SIZE))  # ends at the chip's end
    assert not info.aligned(Region("tail off", 0x34200000, 0xD00000 - 0x100))
    assert not info.aligned(Region("head off", 0x34200100, 0xD00000 - 0x100))
    assert not info.aligned(Region("both off", 0x34200100, 0x1000))


def test_sectors_and_protected_in_a_region_are_half_open():
    info = FlashInfo(16 << 20, SECTORS, [SECTORS[0], SECTORS[16], SECTORS[120]])
    kernel = Region("kernel", 0x34100000, 0x100000)
    assert info.sectors_in(kernel) == SECTORS[8:16]
    assert info.protected_in(kernel) == []
    assert info.protected_in(Region("k+", 0x34100000, 0x100001)) == [SECTORS[16]]
    assert info.protected_in(Region("boot", FLASH_BASE, 0x100000)) == [SECTORS[0]]
    assert info.sectors_in(Region("one", SECTORS[3], 1)) == [SECTORS[3]]


@settings(max_examples=50, deadline=None)
@given(
    st.integers(0, 127), st.integers(1, 128), st.integers(0, SECTOR - 1), st.integers(0, SECTOR - 1)
)
def test_aligned_property(first, count, head, tail):
    count = min(count, 128 - first)
    info = FlashInfo(16 << 20, SECTORS, [])
    start = SECTORS[first] + head
    end = SECTORS[first] + count * SECTOR - tail
    if end <= start:
        return
    assert info.aligned(Region("r", start, end - start)) == (head == 0 and tail == 0)


# -- printenv ------------------------------------------------------------------------------


PRINTENV = (
    "bootargs=" + SEED_BOOTARGS + "\r\n"
    "bootcmd=bootm 0x34100000\r\n"
    "bootdelay=0\r\n"
    "baudrate=115200\r\n"
    "ethaddr=00:25:07:00:00:3B\r\n"
    "ipaddr=192.168.1.10\r\n"
    "serverip=192.168.1.2\r\n"
    "netmask=255.255.255.0\r\n"
    "eq=a=b\r\n"
    "\r\n"
    "Environment size: 362/131068 bytes\r\n"
)


def test_printenv_name_value_lines():
    env = parse_env(PRINTENV)
    assert env["bootargs"] == SEED_BOOTARGS
    assert env["bootcmd"] == "bootm 0x34100000"
    assert env["eq"] == "a=b"  # only the first '=' separates
    assert len(env) == 9


def test_printenv_stops_at_environment_size():
    text = PRINTENV + "junk=after the listing\r\n"
    assert "junk" not in parse_env(text)
    assert parse_env("Environment size: 1/2 bytes\nlate=1\n") == {}


def test_printenv_ignores_lines_that_are_not_variables():
    text = "hilinux # printenv\r\nUnknown command 'x y=z' - try 'help'\r\n=value\r\nplain line\r\nok=1\r\n"
    assert parse_env(text) == {"ok": "1"}
    assert parse_env("a b=c\n") == {}
    assert parse_env("empty=\n") == {"empty": ""}


# -- md.b ----------------------------------------------------------------------------------


def test_md_bytes_of_a_uimage_header():
    head = uimage_header()
    assert parse_md_bytes(md_b(0x34100000, head), 0x34100000) == head


def test_md_bytes_skip_the_echo_and_the_prompt():
    data = bytes(range(48))
    text = "md.b 0x34100000 0x30\r\r\n" + md_b(0x34100000, data) + "hilinux # "
    assert parse_md_bytes(text, 0x34100000) == data


def test_md_bytes_with_a_dropped_line_are_refused():
    lines = md_b(0x34100000, bytes(64)).splitlines()
    del lines[1]
    with pytest.raises(DeviceError, match="md printed address 34100020, expected 34100010"):
        parse_md_bytes("\n".join(lines), 0x34100000)


def test_md_bytes_with_a_repeated_line_are_refused():
    lines = md_b(0x34100000, bytes(64)).splitlines()
    lines.insert(2, lines[1])
    with pytest.raises(DeviceError, match="md printed address 34100010, expected 34100020"):
        parse_md_bytes("\n".join(lines), 0x34100000)


def test_md_bytes_starting_elsewhere_are_refused():
    with pytest.raises(DeviceError, match="expected 34100000"):
        parse_md_bytes(md_b(0x34100010, bytes(32)), 0x34100000)


def test_md_bytes_in_upper_case_hex_and_a_short_last_line():
    text = "34100000: AB CD EF 01    ....\n"
    assert parse_md_bytes(text, 0x34100000) == b"\xab\xcd\xef\x01"


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 0xFFFF), st.data())
def test_md_bytes_property(data, page, draw):
    addr = FLASH_BASE + page * 16
    text = md_b(addr, data)
    assert parse_md_bytes(text, addr) == data
    lines = text.splitlines()
    if len(lines) >= 2:
        i = draw.draw(st.integers(0, len(lines) - 2))
        damaged = lines[:i] + lines[i + 1 :]  # a line lost in the middle
        with pytest.raises(DeviceError):
            parse_md_bytes("\n".join(damaged), addr)
        repeated = lines[: i + 1] + lines[i:]
        with pytest.raises(DeviceError):
            parse_md_bytes("\n".join(repeated), addr)


# -- crc32 ---------------------------------------------------------------------------------


def test_crc32_over_the_range_asked():
    text = "crc32 0x34200000 0xd00000\r\r\nCRC32 for 34200000 ... 34efffff ==> 5a1b2c3d\r\n"
    assert parse_crc32(text, 0x34200000, 0xD00000) == 0x5A1B2C3D


@pytest.mark.parametrize(
    "line",
    [
        "CRC32 for 34200000 ... 34f00000 ==> 5a1b2c3d",  # one byte too far
        "CRC32 for 34200000 ... 34effffe ==> 5a1b2c3d",  # one byte short
        "CRC32 for 34200001 ... 34efffff ==> 5a1b2c3d",  # another start
        "CRC32 for e1000000 ... e1cfffff ==> 5a1b2c3d",  # another buffer
    ],
)
def test_crc32_over_another_range_is_refused(line):
    with pytest.raises(DeviceError, match="not what was asked"):
        parse_crc32(line + "\r\n", 0x34200000, 0xD00000)


def test_crc32_over_another_range_says_which():
    with pytest.raises(DeviceError) as exc:
        parse_crc32("CRC32 for 34200000 ... 34f00000 ==> 5a1b2c3d\n", 0x34200000, 0xD00000)
    assert exc.value.message == "crc32 covered 34200000..34f00000, not what was asked"


def test_crc32_without_a_checksum_quotes_the_last_200_characters():
    text = "crc32 0x34200000 0x10\r\n" + "x" * 300 + "0123456789" + "\r\nhilinux # "
    with pytest.raises(DeviceError) as exc:
        parse_crc32(text, 0x34200000, 0x10)
    assert exc.value.message == f"crc32 printed no checksum: {text.strip()[-200:]!r}"


def test_crc32_without_a_checksum_line_is_refused():
    with pytest.raises(DeviceError, match="crc32 printed no checksum: 'Usage:"):
        parse_crc32("Usage:\ncrc32 address count [addr]\n", 0x34200000, 0x10)


# -- mtdparts ------------------------------------------------------------------------------


def test_mtdparts_of_the_seed():
    parts = parse_mtdparts(SEED_BOOTARGS)
    assert parts == [
        {"name": "boot", "address": 0x34000000, "size": 0x200000, "offset": 0},
        {"name": "rootfs", "address": 0x34200000, "size": 0xD00000, "offset": 0x200000},
        {"name": "setting", "address": 0x34F00000, "size": 0x100000, "offset": 0xF00000},
    ]


def test_mtdparts_dash_takes_the_rest_of_the_chip():
    parts = parse_mtdparts("root=1f01 mtdparts=phys_mapped_flash:1M(boot),-(rest) quiet")
    assert parts[1] == {"name": "rest", "address": 0x34100000, "size": 0xF00000, "offset": 0x100000}


def test_mtdparts_suffixes_and_explicit_offsets():
    parts = parse_mtdparts(
        "mtdparts=nor:256k(u-boot),128K(env),3m@0x100000(kernel),4096(tiny),1M(x)"
    )
    assert [(p["name"], p["offset"], p["size"]) for p in parts] == [
        ("u-boot", 0, 0x40000),
        ("env", 0x40000, 0x20000),
        ("kernel", 0x100000, 0x300000),
        ("tiny", 0x400000, 4096),
        ("x", 0x401000, 0x100000),
    ]
    assert parts[2]["address"] == 0x34100000


def test_mtdparts_dash_after_an_offset():
    parts = parse_mtdparts("mtdparts=nor:-@0x200000(rootfs)")
    assert parts == [
        {"name": "rootfs", "address": 0x34200000, "size": 0xE00000, "offset": 0x200000}
    ]


def test_mtdparts_stops_at_a_malformed_item_and_needs_the_key():
    assert parse_mtdparts("mtdparts=nor:1M(a),junk,1M(b)") == [
        {"name": "a", "address": FLASH_BASE, "size": 0x100000, "offset": 0}
    ]
    assert parse_mtdparts("mem=72M console=ttyAMA0,115200") == []
    assert parse_mtdparts("") == []


# -- the uImage header ---------------------------------------------------------------------


def test_uimage_header_fields():
    info = parse_uimage_header(uimage_header())
    assert info.magic_ok and info.header_crc_ok
    assert info.name == "Linux-2.6.14"
    assert (info.data_size, info.load, info.entry) == (0x15E2C4, 0xE0008000, 0xE0008040)


def test_uimage_header_name_of_32_bytes_and_latin1():
    info = parse_uimage_header(uimage_header(name=b"\xe9" + b"N" * 31))
    assert info.name == "\xe9" + "N" * 31
    assert parse_uimage_header(uimage_header(name=b"ab\0cd")).name == "ab"
    # the name field is 32 bytes even when data follows the header
    assert parse_uimage_header(uimage_header(name=b"N" * 32) + b"DATA").name == "N" * 32


def test_uimage_header_with_a_bad_checksum():
    raw = bytearray(uimage_header())
    raw[12] ^= 1  # the size changed after the checksum was made
    info = parse_uimage_header(bytes(raw))
    assert info.magic_ok and not info.header_crc_ok
    raw = bytearray(uimage_header())
    raw[7] ^= 0x80  # the stored checksum itself
    assert not parse_uimage_header(bytes(raw)).header_crc_ok


def test_uimage_header_longer_blob_checks_only_the_header():
    assert parse_uimage_header(uimage_header() + b"\xff" * 64).header_crc_ok


def test_not_a_uimage():
    assert parse_uimage_header(b"\xff" * 64) == parse_uimage_header(b"")
    assert parse_uimage_header(b"\xff" * 64).magic_ok is False
    assert not parse_uimage_header(uimage_header()[:63]).magic_ok
    wrong = b"\x27\x05\x19\x57" + uimage_header()[4:]
    info = parse_uimage_header(wrong)
    assert not info.magic_ok and not info.header_crc_ok and info.name == ""


@settings(max_examples=40, deadline=None)
@given(
    st.binary(max_size=32).filter(lambda b: b"\0" not in b),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 63),
)
def test_uimage_header_property(name, size, load, ep, flip):
    raw = uimage_header(name=name, size=size, load=load, ep=ep)
    info = parse_uimage_header(raw)
    assert (info.magic_ok, info.header_crc_ok) == (True, True)
    assert (info.name, info.data_size, info.load, info.entry) == (
        name.decode("latin-1"),
        size,
        load,
        ep,
    )
    if flip >= 4:  # any flipped bit after the magic breaks the header checksum
        bad = bytearray(raw)
        bad[flip] ^= 0x10
        assert not parse_uimage_header(bytes(bad)).header_crc_ok


# -- garbage detection ----------------------------------------------------------------------


def test_console_text_is_not_garbage():
    assert not looks_like_garbage("U-Boot 1.1.4 (Apr  8 2009 - 11:41:01)\r\n")
    assert not looks_like_garbage("Loading: *\b#\t\a~ ")
    assert not looks_like_garbage("x")
    assert not looks_like_garbage("\xff")  # too short to judge


def test_text_at_another_baud_is_garbage():
    assert looks_like_garbage("\x80\xfe\x00\x1c\xe0\xf8\x86\x9e")
    assert looks_like_garbage("\x7f\x1f")  # DEL and a control byte are not printable


def test_garbage_threshold_is_four_fifths_printable():
    assert not looks_like_garbage("    \xfe")  # spaces are printable
    assert not looks_like_garbage("~~~~\xfe")  # and so is the tilde
    assert not looks_like_garbage("abcd\xfe")  # exactly 80 % printable
    assert looks_like_garbage("abc\xfe\xfe")  # 60 %
    assert not looks_like_garbage("abcdefghi\xfe")  # 90 %


# -- the kernel's boot log -----------------------------------------------------------------


def test_boot_report_clean_needs_a_mount_no_crc_error_and_no_panic():
    assert not BootReport().clean
    assert BootReport(mounted=True).clean
    assert not BootReport(mounted=True, crc_errors=1).clean
    assert not BootReport(mounted=True, panic="Kernel panic - not syncing").clean


def test_seed_crc_lines_are_counted_by_kind_and_kept():
    rep = BootReport()
    for line in SEED_CRC_LINES:
        note_kernel_line(rep, line)
    note_kernel_line(rep, INVALID_CRC_LINE)
    note_kernel_line(rep, INVALID_CRC_LINE)
    assert (rep.crc_errors, rep.crc_failed, rep.invalid_crc) == (6, 4, 2)
    assert rep.crc_error_lines == SEED_CRC_LINES + [INVALID_CRC_LINE] * 2
    assert rep.jffs2_messages == 6  # they all start with "jffs2"
    assert rep.jffs2_lines == SEED_CRC_LINES + [INVALID_CRC_LINE] * 2
    assert not BootReport(mounted=True, crc_errors=rep.crc_errors).clean


def test_jffs2_messages_without_a_crc_error():
    rep = BootReport()
    note_kernel_line(rep, "Empty flash at 0x00cfff00 ends at 0x00d00000")
    note_kernel_line(rep, "VFS: Mounted root (jffs2 filesystem) readonly.")
    note_kernel_line(rep, "Further such events for this erase block will not be printed")
    note_kernel_line(rep, "JFFS2 version 2.2. (C) 2001-2003 Red Hat, Inc.")
    assert rep.crc_errors == rep.crc_failed == rep.invalid_crc == 0
    assert rep.crc_error_lines == []
    assert rep.jffs2_messages == 2
    assert rep.jffs2_lines == [
        "Empty flash at 0x00cfff00 ends at 0x00d00000",
        "JFFS2 version 2.2. (C) 2001-2003 Red Hat, Inc.",
    ]


def test_kept_lines_stop_at_fifty_but_counts_go_on():
    rep = BootReport()
    for i in range(60):
        note_kernel_line(rep, SEED_CRC_LINES[i % 2].replace("0x0000", f"0x{i:04x}", 1))
    assert rep.crc_errors == rep.crc_failed == 60
    assert len(rep.crc_error_lines) == 50 and len(rep.jffs2_lines) == 50
    assert rep.crc_error_lines[49] == SEED_CRC_LINES[1].replace("0x0000", "0x0031", 1)
    assert rep.jffs2_messages == 60
