"""Memory commands of U-Boot 1.1.4 (common/cmd_mem.c): md, mm, nm, mw, cp, cmp, crc32, base, loop, mtest.

``cp`` into flash goes through ``flash_write`` (:meth:`UBoot.flash_write
<emulators.hi3511.uboot.UBoot.flash_write>`: the buffered write ANDs an aligned
bulk, an unaligned first or last word answers ``Flash not Erased``); it prints
``Copy to Flash... `` then ``done`` or the flash_perror message (``Flash not
Erased``, ``Can't write to protected Flash sectors``, ``Outside available
Flash``). HiSilicon's common/cmd_mem.c (github zhhejun/u-boot-1.1.4) prints
``Copy to Flash... \n``, and its flash_write ``Flash ID %08X`` and a progress
bar. The count is in units of the size suffix (common/cmd_mem.c passes
``count*size`` bytes to flash_write, so ``cp.w`` is no stricter than ``cp.b``). Writes with ``mw``/
``mm``/``nm`` to a flash address are plain bus writes, which a CFI chip
ignores without its command sequence: they change nothing (assumption).
Reads outside RAM and flash return zeros (peripheral space; assumption).
``loop`` spins forever, like the real command, until power cycle or reset.
``mtest`` reports the patterns it would write but, to stay cheap on a sparse
128 MB RAM, does not really write every word: emulated RAM never fails.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

from emulators.hi3511.shell import CMD_FLAG_REPEAT, Command

if TYPE_CHECKING:
    from emulators.hi3511.uboot import UBoot

DISP_LINE_LEN = 16
_FMT = {1: "<B", 2: "<H", 4: "<I"}


def strtoul(text: str, base: int = 16) -> tuple[int, str]:
    """simple_strtoul: value and the unparsed rest ("0x" prefix allowed for base 16)."""
    s = text
    if base == 16 and s[:2].lower() == "0x":
        s = s[2:]
    digits = "0123456789abcdef"[:base]
    value = 0
    i = 0
    while i < len(s) and s[i].lower() in digits:
        value = value * base + digits.index(s[i].lower())
        i += 1
    if i == 0:
        return 0, text
    return value & 0xFFFFFFFF, s[i:]


def hexarg(text: str) -> int:
    return strtoul(text)[0]


def data_size(arg: str, default: int) -> int:
    if len(arg) > 2 and arg[-2] == ".":
        return {"b": 1, "w": 2, "l": 4}.get(arg[-1], -1)
    return default


def usage(ub: UBoot, name: str) -> int:
    ub.con.puts(f"Usage:\n{ub.table[name].usage}\n")
    return 1


def read_obj(ub: UBoot, addr: int, size: int) -> int:
    return struct.unpack(_FMT[size], ub.mem_read(addr, size))[0]


def do_md(ub: UBoot, argv: list[str], flag: int) -> int:
    st = ub.md_state
    addr, size, length = st["addr"], st["size"], st["length"]
    if not flag & CMD_FLAG_REPEAT:
        size = data_size(argv[0], 4)
        if size < 0:
            return 1
        if len(argv) < 2:
            return usage(ub, "md")
        addr = (hexarg(argv[1]) + ub.base) & 0xFFFFFFFF
        if len(argv) > 2:
            length = hexarg(argv[2])
    nbytes = length * size
    rc = 0
    out = []
    while nbytes > 0:
        linebytes = min(nbytes, DISP_LINE_LEN)
        raw = ub.mem_read(addr, linebytes)
        parts = [f"{addr:08x}:"]
        for i in range(0, linebytes, size):
            (v,) = struct.unpack_from(_FMT[size], raw, i)
            parts.append(f" {v:0{size * 2}x}")
        parts.append("    ")
        parts.append("".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in raw))
        parts.append("\n")
        out.append("".join(parts))
        addr = (addr + linebytes) & 0xFFFFFFFF
        nbytes -= linebytes
        if len(out) >= 64:
            ub.con.puts("".join(out))
            out.clear()
            if ub.ctrlc():
                rc = 1
                break
    ub.con.puts("".join(out))
    ub.md_state.update(addr=addr, size=size, length=length)
    return rc


def _mod_mem(ub: UBoot, argv: list[str], flag: int, incr: bool) -> int:
    name = "mm" if incr else "nm"
    st = ub.mm_state
    addr, size = st["addr"], st["size"]
    if len(argv) != 2:
        return usage(ub, name)
    if not flag & CMD_FLAG_REPEAT:
        size = data_size(argv[0], 4)
        if size < 0:
            return 1
        addr = (hexarg(argv[1]) + ub.base) & 0xFFFFFFFF
    from emulators.console import Interrupted

    while True:
        v = read_obj(ub, addr, size)
        ub.con.puts(f"{addr:08x}: {v:0{size * 2}x}")
        try:
            line = ub.con.readline(" ? ")
        except Interrupted:
            ub.con.puts("\n")
            break
        if line == "" or line == "-":
            if incr:
                addr = (addr + (-size if line else size)) & 0xFFFFFFFF
            continue
        value, rest = strtoul(line)
        if rest == line:
            break  # not a number: leave
        ub.mem_write(addr, struct.pack(_FMT[size], value & ((1 << (8 * size)) - 1)))
        if incr:
            addr = (addr + size) & 0xFFFFFFFF
    st.update(addr=addr, size=size)
    return 0


def do_mm(ub: UBoot, argv: list[str], flag: int) -> int:
    return _mod_mem(ub, argv, flag, True)


def do_nm(ub: UBoot, argv: list[str], flag: int) -> int:
    return _mod_mem(ub, argv, flag, False)


def do_mw(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 3:
        return usage(ub, "mw")
    size = data_size(argv[0], 4)
    if size < 0:
        return 1
    addr = (hexarg(argv[1]) + ub.base) & 0xFFFFFFFF
    value = hexarg(argv[2]) & ((1 << (8 * size)) - 1)
    count = hexarg(argv[3]) if len(argv) > 3 else 1
    ub.mem_write(addr, struct.pack(_FMT[size], value) * count)
    return 0


def do_cp(ub: UBoot, argv: list[str], flag: int) -> int:
    size = data_size(argv[0], 4)
    if size < 0:
        return 1
    if len(argv) != 4:
        return usage(ub, "cp")
    src = (hexarg(argv[1]) + ub.base) & 0xFFFFFFFF
    dst = (hexarg(argv[2]) + ub.base) & 0xFFFFFFFF
    count = hexarg(argv[3])
    if count == 0:
        ub.con.puts("Zero length ???\n")
        return 1
    nbytes = count * size
    if ub.addr_in_flash(dst):
        ub.con.puts("Copy to Flash... \n" if ub.variant.hisilicon else "Copy to Flash... ")
        rc = ub.flash_write(ub.mem_read(src, nbytes), dst, quiet=False)
        if rc:
            ub.con.puts(rc)
            return 1
        ub.con.puts("done\n")
        return 0
    ub.mem_write(dst, ub.mem_read(src, nbytes))
    return 0


def do_cmp(ub: UBoot, argv: list[str], flag: int) -> int:
    size = data_size(argv[0], 4)
    if size < 0:
        return 1
    if len(argv) != 4:
        return usage(ub, "cmp")
    a1 = (hexarg(argv[1]) + ub.base) & 0xFFFFFFFF
    a2 = (hexarg(argv[2]) + ub.base) & 0xFFFFFFFF
    count = hexarg(argv[3])
    kind = {4: "word", 2: "halfword", 1: "byte"}[size]
    d1, d2 = ub.mem_read(a1, count * size), ub.mem_read(a2, count * size)
    ngood, rc = 0, 0
    if d1 != d2:
        first = next(i for i in range(len(d1)) if d1[i] != d2[i]) // size
        ngood = first
        off = first * size
        (w1,) = struct.unpack_from(_FMT[size], d1, off)
        (w2,) = struct.unpack_from(_FMT[size], d2, off)
        w = size * 2
        ub.con.puts(
            f"{kind} at 0x{a1 + off:08x} (0x{w1:0{w}x}) != {kind} at 0x{a2 + off:08x} (0x{w2:0{w}x})\n"
        )
        rc = 1
    else:
        ngood = count
    ub.con.puts(f"Total of {ngood} {kind}{'' if ngood == 1 else 's'} were the same\n")
    return rc


def do_crc32(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 3:
        return usage(ub, "crc32")
    addr = (hexarg(argv[1]) + ub.base) & 0xFFFFFFFF
    length = hexarg(argv[2])
    crc = zlib.crc32(ub.mem_read(addr, length)) if length else 0
    # an ARM926 at ~200 MHz running U-Boot's table-driven crc32 over NOR: ~10 MB/s (assumed)
    ub.clock.sleep(length / 10e6)
    ub.con.puts(f"CRC32 for {addr:08x} ... {(addr + length - 1) & 0xFFFFFFFF:08x} ==> {crc:08x}\n")
    if len(argv) > 3:
        ub.mem_write(hexarg(argv[3]), struct.pack("<I", crc))
    return 0


def do_base(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) > 1:
        ub.base = hexarg(argv[1])
    ub.con.puts(f"Base Address: 0x{ub.base:08x}\n")
    return 0


def do_loop(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 3:
        return usage(ub, "loop")
    ub.hang()
    return 0


def do_mtest(ub: UBoot, argv: list[str], flag: int) -> int:
    start = hexarg(argv[1]) if len(argv) > 1 else 0xE0000000
    end = hexarg(argv[2]) if len(argv) > 2 else 0xE3F00000
    pattern = hexarg(argv[3]) if len(argv) > 3 else 0
    ub.con.puts(f"Testing {start:08x} ... {end:08x}:\n")
    while True:
        if ub.ctrlc():
            ub.con.puts("\n")
            return 0
        ub.con.puts(f"\rPattern {pattern:08X}  Writing...{'':12s}" + "\b" * 10)
        ub.clock.sleep((end - start) / 50e6)
        ub.con.puts("Reading...")
        pattern = (-pattern & 0xFFFFFFFF) if pattern & 0x80000000 else (~pattern & 0xFFFFFFFF)
        if ub.con.uart.read(1, timeout=0.01) == b"\x03":
            ub.con.puts("\n")
            return 0


COMMANDS = [
    Command(
        "md",
        3,
        True,
        do_md,
        "md      - memory display\n",
        "[.b, .w, .l] address [# of objects]\n    - memory display\n",
    ),
    Command(
        "mm",
        2,
        True,
        do_mm,
        "mm      - memory modify (auto-incrementing)\n",
        "[.b, .w, .l] address\n    - memory modify, auto increment address\n",
    ),
    Command(
        "nm",
        2,
        True,
        do_nm,
        "nm      - memory modify (constant address)\n",
        "[.b, .w, .l] address\n    - memory modify, read and keep address\n",
    ),
    Command(
        "mw",
        4,
        True,
        do_mw,
        "mw      - memory write (fill)\n",
        "[.b, .w, .l] address value [count]\n    - write memory\n",
    ),
    Command(
        "cp",
        4,
        True,
        do_cp,
        "cp      - memory copy\n",
        "[.b, .w, .l] source target count\n    - copy memory\n",
    ),
    Command(
        "cmp",
        4,
        True,
        do_cmp,
        "cmp     - memory compare\n",
        "[.b, .w, .l] addr1 addr2 count\n    - compare memory\n",
    ),
    Command(
        "crc32",
        4,
        True,
        do_crc32,
        "crc32   - checksum calculation\n",
        "address count [addr]\n    - compute CRC32 checksum [save at addr]\n",
    ),
    Command(
        "base",
        2,
        True,
        do_base,
        "base    - print or set address offset\n",
        "\n    - print address offset for memory commands\n"
        "base off\n    - set address offset for memory commands to 'off'\n",
    ),
    Command(
        "loop",
        3,
        True,
        do_loop,
        "loop    - infinite loop on address range\n",
        "[.b, .w, .l] address number_of_objects\n    - loop on a set of addresses\n",
    ),
    Command(
        "mtest",
        4,
        True,
        do_mtest,
        "mtest   - simple RAM test\n",
        "[start [end [pattern]]]\n    - simple RAM read/write test\n",
    ),
]
