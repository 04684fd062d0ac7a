"""The ``bootloader > `` command shell.

Sources: seed 001 (prompt, ``ls -al`` lines, the ``d`` page), the W90N740
and W90P745 ``h`` listings (bluewatersys.com, openipcam.com topic 76: the
names and one-line descriptions below), the ``d -b`` byte view of a real
unit (openipcam.com topic 84: ``[00008000] 00 11 A0 20 48 82 03 C0 - 85 45
04 42 40 E0 80 23  ....H....E.B@..#``), FX as users typed it (``fx 6
romfs.img 0x7f0e0000 0x7f0e0000 -a``, ``fx 0 "BOOT INFO" 0x7F010000
0x7F010000 -f``, answered by ``Waiting for download`` / ``Press Ctrl-x to
cancel ...`` / ``CCCC`` / ``Flash programming ...``), and ``del`` without a
number deleting image 0 (a user's report, openipcam.com topic 84).

Shell behaviour: each prompt is preceded by a line break (``\\nbootloader >
``), so ESC and every command's output are followed by a blank line, as in
the seed. Command names and options are case-insensitive; ``X -?`` prints a
usage text (ours). Numbers: image numbers are decimal; addresses, values and
lengths are hex with or without ``0x``; a malformed number is refused with
``ERROR: Invalid parameter '...'``. Double quotes group a name with spaces.
An unknown command prints ``ERROR: Unknown command '...'`` (wording ours).
Ctrl-C abandons the line. See docs/w90p745-emulator.md for each command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulators.console import Interrupted
from emulators.w90p745 import boot, flashops
from emulators.w90p745 import profile as P
from emulators.w90p745.bus import DataAbort, FlashWrite
from emulators.w90p745.imagetable import (
    FLAG_ACTIVE,
    FLAG_EXEC,
    FLAG_FILE,
    FLAG_ZIP,
    ImageRecord,
    blocks_of,
    checksum32,
    find,
    footer_address,
    image_data,
    in_flash,
    parse_flags,
    place,
    scan,
)
from emulators.w90p745.xmodem import XmodemReceiver, XmodemResult, XmodemTiming

if TYPE_CHECKING:
    from emulators.w90p745.board import W90P745Device

BAUDS = (4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400, 460800)
MAX_IMAGE = boot.MAX_IMAGE


class CommandError(Exception):
    """The message is printed as the command's output."""


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    usage: str
    handler: Callable[[Shell, list[str]], None]
    listed: bool = True


def split_args(line: str) -> list[str]:
    """Whitespace-separated words; double quotes group (no escapes)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    have = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            have = True
        elif ch.isspace() and not quoted:
            if have:
                out.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(ch)
            have = True
    if have:
        out.append("".join(cur))
    return out


def hexnum(tok: str) -> int:
    t = tok.lower()
    if t.startswith("0x"):
        t = t[2:]
    if not t or len(t) > 8 or any(c not in "0123456789abcdef" for c in t):
        raise CommandError(f"ERROR: Invalid parameter '{tok}'")
    return int(t, 16)


def is_dec(tok: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts e.g. superscripts)."""
    return tok.isascii() and tok.isdigit()


def decnum(tok: str, top: int) -> int:
    if not is_dec(tok) or int(tok) > top:
        raise CommandError(f"ERROR: Invalid parameter '{tok}'")
    return int(tok)


def width_of(args: list[str]) -> tuple[int, list[str]]:
    """Strip a -b/-h/-w option: (bytes per unit, remaining args)."""
    width = 4
    rest = []
    for a in args:
        low = a.lower()
        if low in ("-b", "-h", "-w"):
            width = {"-b": 1, "-h": 2, "-w": 4}[low]
        else:
            rest.append(a)
    return width, rest


def ascii_column(data: bytes) -> str:
    return "".join(chr(b) if 0x21 <= b <= 0x7E else "." for b in data)


class Shell:
    def __init__(self, dev: W90P745Device) -> None:
        self.dev = dev
        self.con = dev.con
        self.table = {c.name.lower(): c for c in COMMANDS}

    def puts(self, text: str) -> None:
        self.con.puts(text)

    # -- the loop -------------------------------------------------------------
    def loop(self) -> None:
        while True:
            self.puts("\n")
            try:
                line = self.con.readline(P.PROMPT)
            except Interrupted:
                continue
            self.execute(line)

    def execute(self, line: str) -> None:
        args = split_args(line)
        if not args:
            return
        cmd = self.table.get(args[0].lower())
        if cmd is None:
            self.puts(f"ERROR: Unknown command '{args[0]}'\n")
            return
        if "-?" in args[1:]:
            self.puts(cmd.usage)
            return
        try:
            cmd.handler(self, args[1:])
        except (CommandError, flashops.FlashOpError, DataAbort, FlashWrite) as e:
            self.puts(f"{e}\n")

    # -- helpers --------------------------------------------------------------
    def xmodem(self, addr: int, limit: int) -> XmodemResult:
        self.puts("Waiting for download\nPress Ctrl-x to cancel ...\n")
        rx = XmodemReceiver(self.dev.uart, XmodemTiming.for_mode(self.dev.realtime), limit)
        res = rx.receive()
        if res.ok:
            self.dev.ram.write(addr, res.data)
            return res
        msg = {
            "cancelled": "ERROR: Download cancelled",
            "timeout": "ERROR: Download timeout",
            "overflow": f"ERROR: Download too large (limit 0x{limit:08X} bytes)",
        }.get(res.status, "ERROR: Download failed")
        raise CommandError("\n" + msg)


# -- commands -----------------------------------------------------------------


def cmd_help(sh: Shell, args: list[str]) -> None:
    out = f"\n{P.HELP_HEADER}\n\n"
    for c in COMMANDS:
        if c.listed:
            out += f"{c.name:<9}{c.summary}\n"
    sh.puts(out)


def cmd_ls(sh: Shell, args: list[str]) -> None:
    for a in args:
        if a.lower() not in ("-a", "-l", "-al", "-la"):
            raise CommandError(f"ERROR: Invalid parameter '{a}'")
    sh.puts("".join(r.ls_line() + "\n" for r in scan(sh.dev.flash)))


def cmd_d(sh: Shell, args: list[str]) -> None:
    byte_view = False
    rest = []
    for a in args:
        low = a.lower()
        if low == "-b":
            byte_view = True
        elif low == "-w":
            byte_view = False
        else:
            rest.append(a)
    if len(rest) > 1:
        raise CommandError(f"ERROR: Invalid parameter '{rest[1]}'")
    addr = hexnum(rest[0]) if rest else sh.dev.d_next
    if not byte_view:
        addr &= ~3
    out = [f"Displaying memory at 0x{addr:X}\n"]
    try:
        for i in range(16):
            a = (addr + 16 * i) & 0xFFFFFFFF
            data = sh.dev.bus.read(a, 16)
            if byte_view:
                h = " ".join(f"{b:02X}" for b in data)
                out.append(f"[{a:08X}] {h[:23]} - {h[24:]}  {ascii_column(data)}\n")
            else:
                w = [int.from_bytes(data[k : k + 4], "little") for k in range(0, 16, 4)]
                out.append(
                    f"[{a:08X}] {w[0]:08X} {w[1]:08X} - {w[2]:08X} {w[3]:08X}"
                    f"  {ascii_column(data)}\n"
                )
    finally:
        sh.puts("".join(out))
    sh.dev.d_next = (addr + 256) & 0xFFFFFFFF


def _check_aligned(addr: int, width: int) -> None:
    if addr % width:
        raise CommandError(f"ERROR: Address 0x{addr:08X} is not aligned")


def cmd_e(sh: Shell, args: list[str]) -> None:
    width, rest = width_of(args)
    if not rest:
        raise CommandError(EDIT_USAGE.rstrip("\n"))
    addr = hexnum(rest[0])
    _check_aligned(addr, width)
    bus = sh.dev.bus
    if len(rest) > 1:
        values = [hexnum(v) for v in rest[1:]]
        for v in values:
            bus.write(addr, (v & ((1 << 8 * width) - 1)).to_bytes(width, "little"))
            addr += width
        return
    while True:
        cur = int.from_bytes(bus.read(addr, width), "little")
        try:
            line = sh.con.readline(f"[{addr:08X}] {cur:0{2 * width}X} : ").strip()
        except Interrupted:
            sh.puts("\n")
            return
        if line in (".", "q", "Q") or "\x1b" in line:
            return
        if line:
            v = hexnum(line)
            bus.write(addr, (v & ((1 << 8 * width) - 1)).to_bytes(width, "little"))
        addr = (addr + width) & 0xFFFFFFFF


def cmd_mset(sh: Shell, args: list[str]) -> None:
    width, rest = width_of(args)
    if not {"-h", "-w"} & {a.lower() for a in args}:
        width = 1  # MSET fills bytes unless told otherwise
    if len(rest) != 3:
        raise CommandError(MSET_USAGE.rstrip("\n"))
    addr, value, length = (hexnum(x) for x in rest)
    _check_aligned(addr, width)
    if length % width:
        raise CommandError(f"ERROR: Invalid parameter '{rest[2]}'")
    bus = sh.dev.bus
    bus.check_write(addr, length)
    unit = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
    bus.write(addr, unit * (length // width))


def cmd_cp(sh: Shell, args: list[str]) -> None:
    if len(args) != 3:
        raise CommandError(CP_USAGE.rstrip("\n"))
    src, dst, length = (hexnum(x) for x in args)
    sh.dev.bus.check_write(dst, length)
    data = sh.dev.bus.read(src, length)
    sh.dev.bus.write(dst, data)


def cmd_g(sh: Shell, args: list[str]) -> None:
    if len(args) != 1:
        raise CommandError(GO_USAGE.rstrip("\n"))
    boot.execute(sh.dev, hexnum(args[0]))


def cmd_mx(sh: Shell, args: list[str]) -> None:
    if len(args) > 1:
        raise CommandError(MX_USAGE.rstrip("\n"))
    addr = hexnum(args[0]) if args else sh.dev.config.buf_base
    if not sh.dev.bus.in_ram(addr):
        raise CommandError(f"ERROR: Address 0x{addr:08X} is not in RAM")
    res = sh.xmodem(addr, P.RAM_BASE + P.RAM_SIZE - addr)
    sh.puts(f"\nDownloaded 0x{len(res.data):08X} bytes to 0x{addr:08X}\n")


def _overlap(rec: ImageRecord, others: list[ImageRecord]) -> ImageRecord | None:
    mine = set(blocks_of(rec))
    for o in others:
        if mine & set(blocks_of(o)):
            return o
    return None


def cmd_fx(sh: Shell, args: list[str]) -> None:
    flag_args = [a for a in args if a.startswith("-")]
    pos = [a for a in args if not a.startswith("-")]
    if len(pos) != 4 or len(flag_args) > 1:
        raise CommandError(FX_USAGE.rstrip("\n"))
    number = decnum(pos[0], MAX_IMAGE)
    name = pos[1]
    base, ex = hexnum(pos[2]), hexnum(pos[3])
    try:
        flags = parse_flags(flag_args[0]) if flag_args else 0
    except ValueError as e:
        raise CommandError(f"ERROR: Invalid parameter '{flag_args[0]}'") from e
    flash = sh.dev.flash
    if not in_flash(base) or (base - P.FLASH_BASE) % P.BLOCK_SIZE:
        raise CommandError(f"ERROR: Base address 0x{base:08X} is not a flash block address")
    block = (base - P.FLASH_BASE) // P.BLOCK_SIZE
    flashops.check_writable(flash, range(block, block + 1))
    if find(flash, number) is not None:
        raise CommandError(f"ERROR: Image {number} already exists")
    cfg = sh.dev.config
    buf, limit = cfg.buf_base, cfg.buf_size
    if not sh.dev.bus.in_ram(buf, max(1, limit)):
        raise CommandError(f"ERROR: Invalid BL buffer 0x{buf:08X} size 0x{limit:08X}")
    res = sh.xmodem(buf, limit)
    data = res.data
    if not data:
        raise CommandError("\nERROR: Nothing was downloaded")
    rec = place(ImageRecord(number, name, base, 0, ex, ex, flags), data)
    if footer_address(base, len(data)) + 64 > P.FLASH_BASE + P.FLASH_SIZE:
        raise CommandError("\nERROR: Image does not fit in the flash")
    other = _overlap(rec, scan(flash))
    if other is not None:
        raise CommandError(f"\nERROR: Flash space is used by image {other.number}")
    sh.puts("\nFlash programming ...\n")
    flashops.write_image(flash, rec, data)
    sh.puts(f"Image {number} programmed, 0x{len(data):08X} bytes\n")


def cmd_del(sh: Shell, args: list[str]) -> None:
    flash = sh.dev.flash
    if args and args[0].lower() == "-b":
        if len(args) != 2:
            raise CommandError(DEL_USAGE.rstrip("\n"))
        addr = hexnum(args[1])
        if not in_flash(addr) or (addr - P.FLASH_BASE) % P.BLOCK_SIZE:
            raise CommandError(f"ERROR: 0x{addr:08X} is not a flash block address")
        block = (addr - P.FLASH_BASE) // P.BLOCK_SIZE
        flashops.erase_blocks(flash, range(block, block + 1))
        sh.puts(f"Block 0x{addr:08X} erased\n")
        return
    if len(args) > 1:
        raise CommandError(DEL_USAGE.rstrip("\n"))
    number = decnum(args[0], 0xFFFFFFFF) if args else 0  # no number: image 0 (sic)
    rec = find(flash, number)
    if rec is None:
        raise CommandError(f"ERROR: Image {number} not found")
    flashops.delete_image(flash, rec)
    sh.puts(f"Image {number} deleted\n")


def cmd_run(sh: Shell, args: list[str]) -> None:
    if len(args) > 1:
        raise CommandError(RUN_USAGE.rstrip("\n"))
    if not args:
        boot.boot_images(sh.dev)
        return
    number = decnum(args[0], 0xFFFFFFFF)
    rec = find(sh.dev.flash, number)
    if rec is None:
        raise CommandError(f"ERROR: Image {number} not found")
    if not rec.flags & FLAG_EXEC:
        raise CommandError(f"ERROR: Image {number} is not executable")
    sh.puts(f"Processing image {number} ...\n")
    boot.run_image(sh.dev, rec)


def _onoff(tok: str) -> int:
    if tok not in ("0", "1"):
        raise CommandError(f"ERROR: Invalid parameter '{tok}'")
    return int(tok)


def cmd_set(sh: Shell, args: list[str]) -> None:
    dev = sh.dev
    if not args:
        sh.puts(dev.config.lines())
        return
    cfg = P.BootConfig.unpack(dev.config.pack())
    i = 0

    def take(n: int) -> list[str]:
        nonlocal i
        if i + n > len(args):
            raise CommandError(SET_USAGE.rstrip("\n"))
        got = args[i : i + n]
        i += n
        return got

    while i < len(args):
        opt = take(1)[0].lower()
        if opt == "-mac":
            (v,) = take(1)
            parts = v.split(":")
            if len(parts) != 6 or any(len(p) != 2 for p in parts):
                raise CommandError(f"ERROR: Invalid parameter '{v}'")
            cfg.mac = bytes(hexnum(p) for p in parts)
        elif opt == "-ip":
            (v,) = take(1)
            parts = v.split(".")
            if len(parts) != 4 or not all(is_dec(p) and int(p) < 256 for p in parts):
                raise CommandError(f"ERROR: Invalid parameter '{v}'")
            cfg.ip = bytes(int(p) for p in parts)
        elif opt == "-dhcp":
            cfg.dhcp = _onoff(take(1)[0])
        elif opt == "-cache":
            cfg.cache = _onoff(take(1)[0])
        elif opt == "-usb":
            cfg.usb = _onoff(take(1)[0])
        elif opt == "-buf":
            b, s = take(2)
            cfg.buf_base, cfg.buf_size = hexnum(b), hexnum(s)
            if not dev.bus.in_ram(cfg.buf_base, max(1, cfg.buf_size)):
                raise CommandError(f"ERROR: Invalid parameter '{b}'")
        elif opt == "-baud":
            (v,) = take(1)
            if v != "-1" and (not is_dec(v) or int(v) not in BAUDS):
                raise CommandError(f"ERROR: Invalid parameter '{v}'")
            cfg.baud = int(v)
        elif opt == "-sn":
            cfg.serial = hexnum(take(1)[0])
        else:
            raise CommandError(f"ERROR: Invalid parameter '{opt}'")
    old = find(dev.flash, 0)
    flags = old.flags if old is not None else FLAG_ACTIVE | FLAG_FILE
    base = old.base if old is not None else P.BOOTINFO_BASE
    data = cfg.pack()
    rec = place(ImageRecord(0, "BOOT INFO", base, 0, base, base, flags), data)
    if old is not None:
        flashops.erase_blocks(dev.flash, blocks_of(old))
    flashops.write_image(dev.flash, rec, data)
    dev.config = cfg
    sh.puts(cfg.lines())


def cmd_chk(sh: Shell, args: list[str]) -> None:
    out = []
    for rec in scan(sh.dev.flash):
        data = image_data(sh.dev.flash, rec)
        ok = data is not None and checksum32(data) == rec.checksum
        out.append(
            f"Checking image {rec.number} ({rec.name}) ... {'OK' if ok else 'checksum error'}\n"
        )
    sh.puts("".join(out))


def cmd_b(sh: Shell, args: list[str]) -> None:
    if not args:
        sh.puts(f"Baud rate: {sh.dev.uart.baud}\n")
        return
    if len(args) != 1 or not is_dec(args[0]) or int(args[0]) not in BAUDS:
        raise CommandError(f"ERROR: Invalid baud rate '{args[0]}'")
    rate = int(args[0])
    sh.puts(f"Baud rate set to {rate}\n")
    sh.dev.uart.set_baud(rate)


def cmd_term(sh: Shell, args: list[str]) -> None:
    if args and args[0] not in ("0",):
        raise CommandError("ERROR: Only UART 0 is available on this board")
    sh.puts("Terminal output port: UART 0\n")


def cmd_cache(sh: Shell, args: list[str]) -> None:
    if args:
        a = args[0].lower()
        if a not in ("on", "off") or len(args) > 1:
            raise CommandError(f"ERROR: Invalid parameter '{args[0]}'")
        sh.dev.cache = a == "on"
    sh.puts(f"Cache {'enabled' if sh.dev.cache else 'disabled'}\n")


def cmd_unzip(sh: Shell, args: list[str]) -> None:
    if len(args) != 1:
        raise CommandError(UNZIP_USAGE.rstrip("\n"))
    number = decnum(args[0], 0xFFFFFFFF)
    rec = find(sh.dev.flash, number)
    if rec is None:
        raise CommandError(f"ERROR: Image {number} not found")
    if not rec.flags & FLAG_ZIP:
        raise CommandError(f"ERROR: Image {number} is not compressed")
    if boot.load_image(sh.dev, rec) is not None:
        sh.puts(f"Image {number} unzipped to 0x{rec.exec:08X}\n")


def cmd_tftp(sh: Shell, args: list[str]) -> None:
    raise CommandError("ERROR: TFTP is not available (no network in this emulator)")


HELP_USAGE = "Usage: H\n    Display the available commands\n"
LS_USAGE = "Usage: LS [-al]\n    List the images in flash\n"
DISPLAY_USAGE = (
    "Usage: D [-b|-w] [address]\n"
    "    Display 256 bytes of memory from address (hex); without an address,\n"
    "    continue after the last page displayed.\n"
    "    -w  32-bit words, little-endian (default)\n"
    "    -b  bytes\n"
)
EDIT_USAGE = (
    "Usage: E [-b|-h|-w] <address> [value ...]\n"
    "    Write the values (hex) from address, or edit interactively:\n"
    "    enter a new value, an empty line for the next unit, '.' to quit.\n"
    "    -b byte, -h 16-bit, -w 32-bit (default)\n"
)
GO_USAGE = "Usage: G <address>\n    Jump to address (hex)\n"
MX_USAGE = (
    "Usage: MX [address]\n"
    "    Xmodem (CRC, 128/1K) download to RAM at address (hex);\n"
    "    default: the BL buffer base\n"
)
FX_USAGE = (
    "Usage: FX <image no> <image name> <base address> <exec address> [-acxzf]\n"
    "    Xmodem (CRC, 128/1K) download, then program it in flash as an image.\n"
    "    image no: 0-31 (decimal), not in use; base: a flash block address\n"
    "    -a active  -c copy to RAM  -x executable  -z compressed  -f file\n"
)
CP_USAGE = "Usage: CP <source> <destination> <length>\n    Copy memory (hex arguments)\n"
SET_USAGE = (
    "Usage: SET [-mac xx:xx:xx:xx:xx:xx] [-ip a.b.c.d] [-dhcp 0|1] [-cache 0|1]\n"
    "           [-buf <base> <size>] [-baud <rate>] [-usb 0|1] [-sn <hex>]\n"
    "    Without options: show the configuration\n"
)
CHK_USAGE = "Usage: CHK\n    Check the checksum of every image in flash\n"
RUN_USAGE = "Usage: RUN [image no]\n    Boot as at power-on, or execute one image\n"
DEL_USAGE = (
    "Usage: DEL [image no]\n"
    "    Delete an image (default: image 0)\n"
    "       DEL -b <block address>\n"
    "    Erase one flash block\n"
)
MSET_USAGE = (
    "Usage: MSET [-b|-h|-w] <address> <value> <length>\n"
    "    Fill length bytes of memory with value (hex); -b (default), -h, -w\n"
)
TERM_USAGE = "Usage: TERM [port]\n    Change the terminal output port\n"
CACHE_USAGE = "Usage: CACHE [on|off]\n    Show or change the cache setting\n"
UNZIP_USAGE = "Usage: UNZIP <image no>\n    Unzip a compressed image to its exec address\n"
B_USAGE = "Usage: B [rate]\n    Set the baud rate: " + ", ".join(map(str, BAUDS)) + "\n"
MT_USAGE = "Usage: MT <address> <file name>\n    TFTP download (not available)\n"
FT_USAGE = "Usage: FT <image no> <image name> <base address> <exec address> [-acxzf]\n"


COMMANDS = [
    Command("H", "Display the available commands", HELP_USAGE, cmd_help),
    Command("B", "Set Baud Rate", B_USAGE, cmd_b),
    Command("D", "Display memory. D -? for help", DISPLAY_USAGE, cmd_d),
    Command("E", "Edit memory. E -? for help", EDIT_USAGE, cmd_e),
    Command("G", "<hex> Goto address", GO_USAGE, cmd_g),
    Command("MX", "Xmodem download", MX_USAGE, cmd_mx),
    Command("MT", "TFTP download", MT_USAGE, cmd_tftp),
    Command("FT", "Program the flash by TFTP. FT -? for help", FT_USAGE, cmd_tftp),
    Command("FX", "Program the flash by Xmodem. FX -? for help", FX_USAGE, cmd_fx),
    Command("CP", "Memory copy", CP_USAGE, cmd_cp),
    Command("LS", "List the images in flash", LS_USAGE, cmd_ls),
    Command("SET", "Setting boot loader configuration. SET -? for help", SET_USAGE, cmd_set),
    Command("CHK", "Check the flash", CHK_USAGE, cmd_chk),
    Command("RUN", "Execute image", RUN_USAGE, cmd_run),
    Command("DEL", "DEL the image or flash block", DEL_USAGE, cmd_del),
    Command("MSET", "Fill memory", MSET_USAGE, cmd_mset),
    Command("TERM", "Change the terminal output port", TERM_USAGE, cmd_term),
    Command("CACHE", "Cache setting", CACHE_USAGE, cmd_cache),
    Command("UNZIP", "Unzip image", UNZIP_USAGE, cmd_unzip),
    Command("BOOT", "Boot (same as RUN)", RUN_USAGE, cmd_run, listed=False),
]
