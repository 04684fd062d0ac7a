"""The ``bootloader > `` command shell.

Source: the Winbond W90P710 boot loader "WBLv1_1" ``shell/sh.c`` (the family
of the seed's W90P745 loader 1.1): ``NU_parse`` (line editor), ``_parser``
and ``_tryTable`` (words, double quotes, case-insensitive names),
``ERROR_action``, ``validhex``/``s2hex``/``validdec``/``s2dec``, and the
actions ``D``, ``B``, ``MX``, ``FX``, ``DEL``, ``LS``, ``CHK``. Seed 001 gives
the prompt, the ``ls -al`` lines (upper-case hex) and the ``d`` page.

* Line editor (``NU_parse``): the prompt, then bytes into an 80-byte buffer;
  ``\r`` is stored and echoed as ``\n`` and ends the line; backspace (0x08
  only) redraws ``\r<prompt><line> \b``; ESC reads one more byte, and
  ``ESC [ A``/``ESC [ B`` recall the last two commands (redrawn after a
  79-space line); every other byte (Ctrl-C, DEL, NUL included) is stored and
  echoed. An 80th byte ends the line too, without a line end. A line whose
  first byte is the line end does nothing; any other line runs and is
  followed by one ``\n``; then the prompt comes again (no line break before it).
* Unknown command: ``ERROR: unrecognised command``.
* Numbers (``validhex``): ``0x`` and 1..8 hex digits (3..10 characters);
  ``d 400`` is not an address (the word is ignored and ``d`` continues).
  Image numbers are decimal (``validdec``).
* ``D [-w|-h|-b] [-s] [0xADDR]``: ``Displaying memory at 0x%X`` (the address
  as given), then 16 lines from the address rounded down to 4:
  ``[%08X]`` and the units (`` %08X``/`` %04X``/`` %02X``, `` -`` before the
  middle one), two spaces and the ASCII column, ``\r\n``. Units and ASCII
  characters before an unaligned address print as blanks. ASCII: a byte
  ``<= 0x20`` or ``> 0x7F`` prints ``.``, 0x21..0x7F print as themselves (a raw
  DEL byte included). Without an address it continues at the end of the
  last page (the static ``hexAddress``, 0 at power-on).
* ``B rate``: ``Invalid number of arguments`` and the rate list, ``Invalid
  number - %s``, ``Unsupported speed.``; a supported rate switches the UART
  at once, with nothing printed (a reset returns to 115200).
* ``FX N name base exec -flags``: fewer than 5 arguments or an unknown flag
  letter print the usage. If image N exists: ``Find image %d existed!``,
  ``Do you want to delete it?[y/N]``, one key read without echo; ``y``/``Y``
  prints ``Deleting image %d ...`` and **deletes it before anything is
  received** (a dot per erased block), any other key ends the command.
  Then ``ERROR: Invalid parameters!`` (base/exec not ``0x`` hex or N not
  decimal), ``ERROR: Data corrupted, please check the free space of flash.``
  (``CorruptCheck`` with a one-block length), else ``Waiting for download``,
  ``Press Ctrl-x to cancel ... `` and the Xmodem receive into RAM at the exec
  address (0x100000 when that is in flash). Success: ``\nFlash programming
  ...  `` and ``WriteImage`` (a dot per block; ``ERROR: Write failed.`` when
  it refuses); failure: ``\nDownload error!``, nothing written.
* ``DEL N``: ``Deleting Image %d ...`` (capital I, a dot per block) or
  ``ERROR: Image %d is not existed``; ``DEL bN`` erases block N (not 0);
  ``DEL -all`` erases blocks 2.. with ``Deleting ... Block %d``. ``DEL``
  alone deletes image 0 (a user's report, openipcam.com topic 84: the
  source reads a stale argument there).
* ``LS``: the footers (see imagetable), or ``No image found!``.
* ``CHK``: ``ERROR: Image %d checksum error found !`` per bad image 1..7, then
  ``Image check finished. %d checksum error found.``
* ``MX [0xADDR]``: ``Waiting for download``, ``Press Ctrl-x to cancel ... ``,
  then ``\nDownload successed!`` or ``\nDownload error!``.

The other commands (E, G, CP, MSET, SET, RUN, TERM, CACHE, UNZIP) keep this
model's earlier behaviour (wording ours where no source shows it).
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
    FLAG_LETTERS,
    FLAG_ZIP,
    ImageRecord,
    blocks_of,
    checksum32,
    corrupt,
    find,
    image_data,
    place,
    scan,
)
from emulators.w90p745.xmodem import XmodemReceiver, XmodemResult, XmodemTiming

if TYPE_CHECKING:
    from emulators.w90p745.board import W90P745Device

BAUDS = (1200, 2400, 4800, 9600, 14400, 19200, 28800, 38400, 57600, 115200, 230400, 460800)
LINE_MAX = 80  # NU_parse: char buffer[80]
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


def validhex(tok: str) -> bool:
    """``validhex``: ``0x``/``0X`` and hex digits, 3..10 characters."""
    if not 2 < len(tok) <= 10 or tok[0] != "0" or tok[1] not in "xX":
        return False
    return all(c in "0123456789abcdefABCDEF" for c in tok[2:])


def hexnum(tok: str) -> int:
    if not validhex(tok):
        raise CommandError(f"ERROR: Invalid parameter '{tok}'")
    return int(tok[2:10], 16)


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


def ascii_char(b: int) -> str:
    """``HYC_DumpAddress``: <= 0x20 or > 0x7F print '.', the rest (0x7F too) as is."""
    return "." if b <= 0x20 or b > 0x7F else chr(b)


def ascii_column(data: bytes) -> str:
    return "".join(ascii_char(b) for b in data)


class Shell:
    def __init__(self, dev: W90P745Device) -> None:
        self.dev = dev
        self.con = dev.con
        self.table = {c.name.lower(): c for c in COMMANDS}

    def puts(self, text: str) -> None:
        self.con.puts(text)

    # -- the loop -------------------------------------------------------------
    def loop(self) -> None:
        self.history: list[str] = []
        while True:
            line = self.readline()
            if line.startswith("\n"):
                continue
            self.execute(line)
            self.puts("\n")

    def readline(self) -> str:
        """``NU_parse``'s editor; the line as stored (with its ``\n`` if it has one)."""
        con = self.con
        prompt = P.PROMPT
        self.puts(prompt)
        buf: list[str] = []
        recall = -1
        while len(buf) < LINE_MAX:
            c = con.getc()
            if c is None:
                continue
            if c == 0x08:
                if buf:
                    buf.pop()
                    self.puts(f"\r{prompt}{''.join(buf)} \b")
                continue
            if c == 0x1B:
                k1 = con.getc()
                if k1 == 0x5B and self.history:
                    k2 = con.getc()
                    if k2 in (0x41, 0x42):
                        if recall < 0:
                            recall = len(self.history) - 1
                        buf = list(self.history[recall])
                        self.puts("\r" + " " * 79)
                        self.puts(f"\r{prompt}{''.join(buf)} \b")
                        step = -1 if k2 == 0x41 else 1
                        recall = (recall + step) % len(self.history)
                continue
            ch = "\n" if c == 0x0D else chr(c)
            buf.append(ch)
            self.puts(ch)
            if ch == "\n":
                break
        line = "".join(buf)
        if not line.startswith("\n"):
            self.history = (self.history + [line.rstrip("\n")])[-2:]
        return line

    def execute(self, line: str) -> None:
        args = split_args(line)
        if not args:
            return
        name = args[0][:-1] if args[0].endswith("&") else args[0]
        cmd = self.table.get(name.lower())
        if cmd is None:
            self.puts("ERROR: unrecognised command\n")
            return
        if "-?" in args[1:]:
            self.puts(cmd.usage)
            return
        try:
            cmd.handler(self, args[1:])
        except (CommandError, flashops.FlashOpError, DataAbort, FlashWrite) as e:
            self.puts(f"{e}\n")

    # -- helpers --------------------------------------------------------------
    def xmodem(self, addr: int) -> XmodemResult:
        self.puts("Waiting for download\nPress Ctrl-x to cancel ... \n")
        ram = self.dev.ram

        def store(offset: int, data: bytes) -> None:
            a = addr + offset
            if ram.contains(a, len(data)):
                ram.write(a, data)  # past the end of RAM the writes go nowhere

        rx = XmodemReceiver(self.dev.uart, XmodemTiming.for_mode(self.dev.realtime), store)
        return rx.receive()


# -- commands -----------------------------------------------------------------


def cmd_help(sh: Shell, args: list[str]) -> None:
    out = f"\n{P.HELP_HEADER}\n\n"
    for c in COMMANDS:
        if c.listed:
            out += f"{c.name:<9}{c.summary}\n"
    sh.puts(out)


def cmd_ls(sh: Shell, args: list[str]) -> None:
    recs = scan(sh.dev.flash)
    if not recs:
        sh.puts("No image found!\n")
        return
    sh.puts("".join(r.ls_line() + "\n" for r in recs))


def cmd_d(sh: Shell, args: list[str]) -> None:
    width, swap = 4, False
    for a in args:
        if validhex(a):
            sh.dev.d_next = int(a[2:10], 16)
        elif a.startswith("-") and len(a) > 1:
            opt = a[1]
            if opt == "?":
                sh.puts(DISPLAY_USAGE)
                return
            if opt in "sS":
                swap = True
            else:
                width = {"h": 2, "H": 2, "b": 1, "B": 1}.get(opt, 4)
    addr = sh.dev.d_next
    sh.puts(f"Displaying memory at 0x{addr:X}\n")
    start = addr & ~3
    out: list[str] = []
    try:
        for row in range(16):
            p = (start + 16 * row) & 0xFFFFFFFF
            data = sh.dev.bus.read(p, 16)
            line = f"[{p:08X}]"
            for idx in range(0, 16, width):
                if idx == 8:
                    line += " -"
                if p + idx < addr:
                    line += " " * (2 * width + 1)
                    continue
                unit = data[idx : idx + width]
                value = int.from_bytes(unit, "big" if swap else "little")
                line += f" {value:0{2 * width}X}"
            line += "  " + "".join(
                " " if p + i < addr else ascii_char(b) for i, b in enumerate(data)
            )
            out.append(line + "\r\n")
    finally:
        sh.con.raw("".join(out).encode("latin-1"))
    sh.dev.d_next = (start + 256) & 0xFFFFFFFF


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
            # EditMemory's ScanUserInput takes hex digits without 0x
            if not validhex("0x" + line):
                raise CommandError(f"ERROR: Invalid parameter '{line}'")
            v = int(line[:8], 16)
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
    if not args:
        # GetAddress: up to 10 characters, backspace "\b \b", CR or LF ends it
        sh.puts("Please enter destination address (0x8000):")
        text = ""
        while True:
            c = sh.con.getc()
            if c is None:
                continue
            if c in (0x0A, 0x0D):
                sh.puts("\n")
                break
            if c == 0x08:
                if text:
                    text = text[:-1]
                    sh.puts("\b \b")
            elif len(text) < 10:
                text += chr(c)
                sh.puts(chr(c))
        if validhex(text):
            addr = int(text[2:10], 16)
        else:
            addr = 0x8000
            sh.puts(f"Image load address default to 0x{addr:08x}\n")
        res = sh.xmodem(addr)
        sh.puts("\nDownload successed!\n" if res.ok else "\nDownload error!\n")
        return
    if not validhex(args[0]):
        sh.puts(f"Invalid hex address ({args[0]})\n")
        return
    res = sh.xmodem(hexnum(args[0]))
    sh.puts("\nDownload successed!\n" if res.ok else "\nDownload error!\n")


def _overlap(rec: ImageRecord, others: list[ImageRecord]) -> ImageRecord | None:
    mine = set(blocks_of(rec))
    for o in others:
        if mine & set(blocks_of(o)):
            return o
    return None


def _fx_usage(sh: Shell) -> None:
    sh.puts(FX_USAGE)


def cmd_fx(sh: Shell, args: list[str]) -> None:
    if len(args) < 5:
        return _fx_usage(sh)
    flags = 0
    letters = dict(FLAG_LETTERS)
    nofooter = False
    for a in args:
        if a == "-nofooter":
            nofooter = True
        elif a.startswith("-"):
            for ch in a[1:]:
                if ch not in letters:
                    return _fx_usage(sh)
                flags |= letters[ch]
    number = int(args[0]) if is_dec(args[0]) else 0xFFFFFFFF  # s2dec: -1
    flash = sh.dev.flash
    if find(flash, number) is not None:
        sh.puts(f"Find image {number} existed!\nDo you want to delete it?[y/N]\n")
        key = sh.con.getc()
        if key not in (ord("y"), ord("Y")):
            return
        sh.puts(f"Deleting image {number} ...\n")
        _del_image(sh, number)
    if not validhex(args[2]) or not validhex(args[3]) or not is_dec(args[0]):
        sh.puts("ERROR: Invalid parameters!\n")
        return
    name, base, ex = args[1], hexnum(args[2]), hexnum(args[3])
    if corrupt(number, base, P.BLOCK_SIZE, scan(flash)):
        sh.puts("ERROR: Data corrupted, please check the free space of flash.\n")
        return
    src = 0x100000 if ex > P.FLASH_BASE else ex
    res = sh.xmodem(src)
    if not res.ok:
        sh.puts("\nDownload error!\n")
        return
    sh.puts("\nFlash programming ...  \n")
    if res.size == 0:
        # an EOT before any block (a loose 0x04 counts): WriteImage's block loop does
        # not run, nothing is erased or written, and its final check compares the
        # checksum of nothing with an unset field (assumption: they differ)
        sh.puts("ERROR: Write failed.\n")
        return
    data = sh.dev.ram.read(src, res.size) if sh.dev.bus.in_ram(src, res.size) else bytes(res.size)
    rec = place(ImageRecord(number, name, base, 0, ex, ex, flags), data)
    if base % P.BLOCK_SIZE or corrupt(number, base, rec.size, scan(flash)):
        sh.puts("ERROR: Write failed.\n")
        return
    flashops.write_image(flash, rec, data, footer=not nofooter, dots=sh.puts)


def _del_image(sh: Shell, number: int) -> None:
    rec = find(sh.dev.flash, number)
    if rec is not None:
        flashops.delete_image(sh.dev.flash, rec, dots=sh.puts)


def cmd_del(sh: Shell, args: list[str]) -> None:
    flash = sh.dev.flash
    arg = args[0] if args else "0"  # no argument: image 0 (topic 84)
    if arg == "-all":
        sh.puts("Press Ctrl-c to stop\n")
        for block in range(2, P.FLASH_SIZE // P.BLOCK_SIZE):
            sh.puts(f"Deleting ... Block {block}\n")
            flashops.erase_blocks(flash, range(block, block + 1))
            if sh.dev.uart.input_waiting() and sh.con.getc() == 3:
                break
        return
    if arg[:1] in ("b", "B"):
        if is_dec("0" + arg[1:]):
            block = int("0" + arg[1:])
            if 0 < block < P.FLASH_SIZE // P.BLOCK_SIZE:
                flashops.erase_blocks(flash, range(block, block + 1))
        else:
            sh.puts("ERROR: Invalid block number\n")
        return
    if not is_dec(arg):
        sh.puts(DEL_USAGE)
        return
    number = int(arg)
    if find(flash, number) is None:
        sh.puts(f"ERROR: Image {number} is not existed\n")
        return
    sh.puts(f"Deleting Image {number} ...\n")
    _del_image(sh, number)


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
            if not all(validhex("0x" + p) for p in parts):
                raise CommandError(f"ERROR: Invalid parameter '{v}'")
            cfg.mac = bytes(int(p, 16) for p in parts)
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
    if args and not is_dec(args[0]):
        sh.puts("Usage: CHK [ImageNo.]")
        return
    numbers = [int(args[0])] if args else list(range(1, 8))
    bad = 0
    for n in numbers:
        rec = find(sh.dev.flash, n)
        if rec is None:
            continue
        data = image_data(sh.dev.flash, rec)
        if data is None or checksum32(data[: rec.size // 4 * 4]) != rec.checksum:
            sh.puts(f"ERROR: Image {n} checksum error found !\n")
            bad += 1
    sh.puts(f"Image check finished. {bad} checksum error found.\n")


def cmd_b(sh: Shell, args: list[str]) -> None:
    if len(args) != 1:
        sh.puts("Invalid number of arguments\n[" + ",".join(map(str, BAUDS)) + "]\n")
        return
    if not is_dec(args[0]):
        sh.puts(f"Invalid number - {args[0]}\n")
        return
    rate = int(args[0])
    if rate not in BAUDS:
        sh.puts("Unsupported speed.\n")
        return
    sh.dev.uart.drain()
    sh.dev.uart.set_baud(rate)  # init_serial: at once, nothing printed


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
    "usage: D -[w,h,b,s] <taddr>\n"
    "       -w, -W\tWord alignment\n"
    "       -h, -H\tHalf-word alignment\n"
    "       -b, -B\tByte alignment\n"
    "       -s, -S\tSwap target\n"
    "       <taddr>\tTarget memory address.\n"
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
    "Usage: FX [ImageNo.] [ImageName] [base address] [exec address] -[a,c,x,f,z] -nofooter\n"
    "\t\t-a \t\tActive image\n"
    "\t\t-c \t\tImage needs to be copy to RAM\n"
    "\t\t-x \t\tExecutable image\n"
    "\t\t-f \t\tFile system image\n"
    "\t\t-z \t\tCompressed image\n"
    "\t\t-nofooter\tNo footer be written\n"
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
    "Usage: DEL [ImageNo.] [b{blockNo.}] [-all]\n"
    "       [ImageNo.]\tDelete the image\n"
    "       [b{blockNo.}]\tDelete the block\n"
    "       -all\t\tDelete all blocks\n"
)
MSET_USAGE = (
    "Usage: MSET [-b|-h|-w] <address> <value> <length>\n"
    "    Fill length bytes of memory with value (hex); -b (default), -h, -w\n"
)
TERM_USAGE = "Usage: TERM [port]\n    Change the terminal output port\n"
CACHE_USAGE = "Usage: CACHE [on|off]\n    Show or change the cache setting\n"
UNZIP_USAGE = "Usage: UNZIP <image no>\n    Unzip a compressed image to its exec address\n"
B_USAGE = "Invalid number of arguments\n[" + ",".join(map(str, BAUDS)) + "]\n"
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
