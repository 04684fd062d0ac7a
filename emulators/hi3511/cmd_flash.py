"""Flash commands of U-Boot 1.1.4 (common/cmd_flash.c, drivers/cfi_flash.c): erase, protect, flinfo.

Sources: U-Boot 1.1.4 ``common/cmd_flash.c`` and ``drivers/cfi_flash.c``; HiSilicon's differences from github zhhejun/u-boot-1.1.4.

* ``erase start end``, ``erase start +len`` (``addr_spec``: the end of a
  ``+len`` range is rounded up to its sector's end, or ``Error: end address
  (0x%08lx) not in flash!`` then ``Bad address format``), ``erase all``,
  ``erase bank N``, ``erase N:S[-E]``. ``flash_fill_sect_ranges`` gives
  ``Error: start address not on sector boundary``, ``Error: end address not
  on sector boundary``, ``Error: end sector precedes start sector``, or, when
  no sector matched at all, ``Error: start and/or end address not on sector
  boundary``. ``flash_erase`` prints ``\\n`` or ``- Warning: %d protected
  sectors will not be erased!\\n``, a ``.`` per erased sector and `` done``;
  then ``Erased %d sectors`` counts every sector of the range.
* ``protect on|off start end|+len|all``: with CFG_FLASH_PROTECTION a ``.`` per
  sector (``flash_real_protect``), then ``\\n`` and ``Protected %d sectors`` /
  ``Un-Protected %d sectors``; ``all``, ``bank N`` and ``N:S-E`` print their
  ``Protect Flash ...`` line, the dots and `` done`` (REFERENCE.md "Captured from
  the real program"; github zhhejun/u-boot-1.1.4 common/cmd_flash.c).
* ``flinfo``: the CFI driver's listing, five sector addresses a line with
  `` (RO)`` for protected sectors.

HiSilicon's tree (github zhhejun/u-boot-1.1.4):

* common/cmd_flash.c ``flash_sect_erase`` prints ``Erase Flash from 0x%08lx to
  0x%08lx in Bank # 1 `` (the end is ``start[s_last+1] - 1``: for the last sector
  that reads the zeroed entry past the table, so it prints 0xffffffff).
* drivers/cfi_flash.c ``flash_erase`` draws common/console.c's progress bar
  (:mod:`emulators.hi3511.progressbar`, 20 steps over the sectors) instead of dots
  and `` done``: ``progressbar_show`` after each erased sector, once more at the
  end, then ``\\n``.
* drivers/cfi_flash.c ``flash_print_info``: ``  AMD Standard command set,
  Manufacturer ID: 0x%02X, Device ID: 0x%02X`` (``%04X`` of the second ID for
  0x7E), ``  Erase timeout: %ld ms, write timeout: %ld ms``, ``  Buffer write
  timeout: %ld ms, buffer size: %d bytes``, a blank line, and each sector as
  ``  %08lX   RO `` or ``  %08lX      `` (five a line, ``\\n`` before each group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.hi3511 import profile
from emulators.hi3511.cmd_mem import strtoul, usage
from emulators.hi3511.shell import Command

if TYPE_CHECKING:
    from emulators.hi3511.uboot import UBoot


def _starts(ub: UBoot) -> list[int]:
    f = ub.flash
    return [profile.FLASH_BASE + f.sector_start(i) for i in range(f.sector_count)]


def _end_of(ub: UBoot, i: int) -> int:
    return profile.FLASH_BASE + ub.flash.sector_start(i) + ub.flash.sector_size(i) - 1


def addr_spec(ub: UBoot, arg1: str, arg2: str) -> tuple[int, int] | None:
    first, rest = strtoul(arg1)
    if rest == arg1 or rest:
        return None
    plus = arg2.startswith("+")
    a2 = arg2[1:] if plus else arg2
    last, rest = strtoul(a2)
    if rest == a2 or rest:
        return None
    if plus:
        last = (first + last - 1) & 0xFFFFFFFF
        for i in range(ub.flash.sector_count):
            start = profile.FLASH_BASE + ub.flash.sector_start(i)
            end = _end_of(ub, i)
            if start <= last <= end:
                last = end
                break
        else:
            ub.con.puts(f"Error: end address (0x{last:08x}) not in flash!\n")
            return None
    return first, last


def fill_sect_ranges(ub: UBoot, first: int, last: int) -> tuple[int, int, int]:
    """(rcode, s_first, s_last); s_first < 0 means nothing planned."""
    starts = _starts(ub)
    b_end = profile.FLASH_BASE + profile.FLASH_SIZE - 1
    s_first = s_last = -1
    for i, start in enumerate(starts):
        end = _end_of(ub, i)
        if first > end or last < start:
            continue
        if first == start:
            s_first = i
        if last == end:
            s_last = i
    if s_first >= 0:
        if s_last < 0:
            if last > b_end:
                s_last = len(starts) - 1
            else:
                ub.con.puts("Error: end address not on sector boundary\n")
                return 1, -1, -1
        if s_last < s_first:
            ub.con.puts("Error: end sector precedes start sector\n")
            return 1, -1, -1
        return 0, s_first, s_last
    if starts[0] <= first < b_end:
        ub.con.puts("Error: start address not on sector boundary\n")
        return 1, -1, -1
    return 0, -1, -1


def flash_erase(ub: UBoot, s_first: int, s_last: int) -> int:
    con = ub.con
    if s_first < 0 or s_first > s_last:
        con.puts("- no sectors to erase\n")
        return 1
    prot = sum(ub.flash.is_protected(s) for s in range(s_first, s_last + 1))
    con.puts(f"- Warning: {prot} protected sectors will not be erased!\n" if prot else "\n")
    hisi = ub.variant.hisilicon
    if hisi:
        con.puts(ub.bar.init(s_first, s_last + 1, 20))
    for s in range(s_first, s_last + 1):
        if not ub.flash.is_protected(s):
            ub.flash.erase_sector(s)
            con.puts(ub.bar.show(s) if hisi else ".")
    con.puts(ub.bar.show(s_last + 1) + "\n" if hisi else " done\n")
    return 0


def sect_erase(ub: UBoot, first: int, last: int) -> int:
    rcode, s_first, s_last = fill_sect_ranges(ub, first, last)
    if s_first >= 0 and rcode == 0:
        if ub.variant.hisilicon:
            n = ub.flash.sector_count
            end = 0xFFFFFFFF if s_last == n - 1 else _end_of(ub, s_last)
            ub.con.puts(
                f"Erase Flash from 0x{_starts(ub)[s_first]:08x} to 0x{end:08x} in Bank # 1 "
            )
        rcode = flash_erase(ub, s_first, s_last)
        ub.con.puts(f"Erased {s_last - s_first + 1} sectors\n")
    elif rcode == 0:
        ub.con.puts("Error: start and/or end address not on sector boundary\n")
        rcode = 1
    return rcode


def sect_protect(ub: UBoot, on: bool, first: int, last: int) -> int:
    rcode, s_first, s_last = fill_sect_ranges(ub, first, last)
    if s_first >= 0 and rcode == 0:
        for s in range(s_first, s_last + 1):
            ub.flash.protect(s, on)
        dots = "." * (s_last - s_first + 1)
        ub.con.puts(f"{dots}\n{'' if on else 'Un-'}Protected {s_last - s_first + 1} sectors\n")
    elif rcode == 0:
        ub.con.puts("Error: start and/or end address not on sector boundary\n")
        rcode = 1
    return rcode


def _abbrev(ub: UBoot, arg: str) -> tuple[int, int] | None | bool:
    """``bank:first[-last]``: False when not that form, None when bad."""
    if ":" not in arg:
        return False
    bank_s, _, sect = arg.partition(":")
    if bank_s != "1":
        return None
    a, _, b = sect.partition("-")
    try:
        first = int(a, 10)
        last = int(b, 10) if b else first
    except ValueError:
        return None
    if not (0 <= first <= last < ub.flash.sector_count):
        return None
    return first, last


def do_erase(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 2:
        return usage(ub, "erase")
    n = ub.flash.sector_count
    if argv[1] == "all":
        ub.con.puts("Erase Flash Bank # 1 ")
        return flash_erase(ub, 0, n - 1)
    ab = _abbrev(ub, argv[1])
    if ab is None:
        ub.con.puts("Bad sector specification\n")
        return 1
    if ab:
        first, last = ab  # type: ignore[misc]
        ub.con.puts(f"Erase Flash Sectors {first}-{last} in Bank # 1 ")
        return flash_erase(ub, first, last)
    if argv[1] == "bank":
        if len(argv) != 3 or strtoul(argv[2], 10)[0] != 1:
            ub.con.puts("Only FLASH Banks # 1 ... # 1 supported\n")
            return 1
        ub.con.puts("Erase Flash Bank # 1 ")
        return flash_erase(ub, 0, n - 1)
    if len(argv) != 3:
        return usage(ub, "erase")
    spec = addr_spec(ub, argv[1], argv[2])
    if spec is None:
        ub.con.puts("Bad address format\n")
        return 1
    first, last = spec
    if first >= last:
        return usage(ub, "erase")
    return sect_erase(ub, first, last)


def do_protect(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 3:
        return usage(ub, "protect")
    if argv[1] == "off":
        on = False
    elif argv[1] == "on":
        on = True
    else:
        return usage(ub, "protect")
    n = ub.flash.sector_count
    if argv[2] == "all" or argv[2] == "bank":
        if argv[2] == "bank":
            if len(argv) != 4:
                return usage(ub, "protect")
            if strtoul(argv[3])[0] != 1:
                ub.con.puts("Only FLASH Banks # 1 ... # 1 supported\n")
                return 1
        for s in range(n):
            ub.flash.protect(s, on)
        ub.con.puts(f"{'' if on else 'Un-'}Protect Flash Bank # 1\n" + "." * n + " done\n")
        return 0
    ab = _abbrev(ub, argv[2])
    if ab is None:
        ub.con.puts("Bad sector specification\n")
        return 1
    if ab:
        first, last = ab  # type: ignore[misc]
        ub.con.puts(f"{'' if on else 'Un-'}Protect Flash Sectors {first}-{last} in Bank # 1\n")
        for s in range(first, last + 1):
            ub.flash.protect(s, on)
        ub.con.puts("." * (last - first + 1) + " done\n")
        return 0
    if len(argv) != 4:
        return usage(ub, "protect")
    spec = addr_spec(ub, argv[2], argv[3])
    if spec is None:
        ub.con.puts("Bad address format\n")
        return 1
    first, last = spec
    if first >= last:
        return usage(ub, "protect")
    return sect_protect(ub, on, first, last)


def do_flinfo(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) == 2 and strtoul(argv[1])[0] != 1:
        ub.con.puts("Only FLASH Banks # 1 ... # 1 supported\n")
        return 1
    ub.con.puts(flinfo_text(ub))
    return 0


def flinfo_text(ub: UBoot) -> str:
    f = ub.flash
    p = profile
    out = [
        "\nBank # 1: CFI conformant FLASH (16 x 16)",
        f"  Size: {f.size >> 20} MB in {f.sector_count} Sectors\n",
    ]
    if ub.variant.hisilicon:
        out += [
            f"  AMD Standard command set, Manufacturer ID: 0x{p.MANUFACTURER_ID:02X}, "
            f"Device ID: 0x{p.DEVICE_ID:02X}{p.DEVICE_ID2:04X}\n",
            f"  Erase timeout: {p.ERASE_TIMEOUT_MS} ms, write timeout: {p.WRITE_TIMEOUT_MS} ms\n",
            f"  Buffer write timeout: {p.BUFFER_WRITE_TIMEOUT_MS} ms, "
            f"buffer size: {p.BUFFER_SIZE} bytes\n",
            "\n  Sector Start Addresses:",
        ]
        for i in range(f.sector_count):
            if i % 5 == 0:
                out.append("\n")
            ro = "RO" if f.is_protected(i) else "  "
            out.append(f"  {p.FLASH_BASE + f.sector_start(i):08X}   {ro} ")
    else:
        out += [
            f" Erase timeout {p.ERASE_TIMEOUT_MS} ms, write timeout {p.WRITE_TIMEOUT_MS} ms, "
            f"buffer write timeout {p.BUFFER_WRITE_TIMEOUT_MS} ms, buffer size {p.BUFFER_SIZE}\n",
            "  Sector Start Addresses:",
        ]
        for i in range(f.sector_count):
            if i % 5 == 0:
                out.append("\n   ")
            ro = " (RO)" if f.is_protected(i) else "     "
            out.append(f" {p.FLASH_BASE + f.sector_start(i):08X}{ro}")
    out.append("\n")
    return "".join(out)


COMMANDS = [
    Command(
        "erase",
        3,
        True,
        do_erase,
        "erase   - erase FLASH memory\n",
        "start end\n    - erase FLASH from addr 'start' to addr 'end'\n"
        "erase start +len\n    - erase FLASH from addr 'start' to the end of sect "
        "w/addr 'start'+'len'-1\n"
        "erase N:SF[-SL]\n    - erase sectors SF-SL in FLASH bank # N\n"
        "erase bank N\n    - erase FLASH bank # N\n"
        "erase all\n    - erase all FLASH banks\n",
    ),
    Command(
        "protect",
        4,
        True,
        do_protect,
        "protect - enable or disable FLASH write protection\n",
        "on  start end\n    - protect FLASH from addr 'start' to addr 'end'\n"
        "protect on start +len\n    - protect FLASH from addr 'start' to end of sect "
        "w/addr 'start'+'len'-1\n"
        "protect on  N:SF[-SL]\n    - protect sectors SF-SL in FLASH bank # N\n"
        "protect on  bank N\n    - protect FLASH bank # N\n"
        "protect on  all\n    - protect all FLASH banks\n"
        "protect off start end\n    - make FLASH from addr 'start' to addr 'end' writable\n"
        "protect off start +len\n    - make FLASH from addr 'start' to end of sect "
        "w/addr 'start'+'len'-1 wrtable\n"
        "protect off N:SF[-SL]\n    - make sectors SF-SL writable in FLASH bank # N\n"
        "protect off bank N\n    - make FLASH bank # N writable\n"
        "protect off all\n    - make all FLASH banks writable\n",
    ),
    Command(
        "flinfo",
        2,
        True,
        do_flinfo,
        "flinfo  - print FLASH memory information\n",
        "\n    - print information for all FLASH memory banks\n"
        "flinfo N\n    - print information for FLASH memory bank # N\n",
    ),
]
