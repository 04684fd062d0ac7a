"""Recover an XR872 camera (board XF16) over its UART: info, dump, write, clone.

The engine talks to the XRadio boot ROM's UART protocol (recovery.xr872_brom),
the one PhoenixMC speaks. Getting there (shared/REFERENCE.md, seed 002):

* A unit whose image does not verify, or whose boot pins are strapped, sits in
  the ROM's UART mode (recovery mode): 0x55 is answered with ``OK``.
* A working unit runs its firmware console at 115200; ``upgrade`` drops it
  into the ROM, so no pins are needed (log in first when it asks: the XF16
  console's defaults are ``admin``/``xf16cam``, options ``--user/--password``).
* Otherwise the user has to strap PB02/PB03 to GND and power-cycle.

Then, as the vendor tool does, the baud is raised with SETUART to the fastest
rate that syncs (3000000, 1500000, 921600; else it stays at 115200).

Images (XRadio SDK ``image.h``): a chain of 64-byte ``AWIH`` section headers
from offset 0, the boot section first; checksums are checksum16 with a valid
header summing to 0xFFFF and checksum16(data) + data_chksum == 0xFFFF. An
image is for the XR872 when its boot/app sections load into the XR872's SRAM
(0x00200000-0x0027FFFF: boot 0x00268000, app 0x00201000 in the skylark SDK);
an XR809/XR871 image loads below 0x00100000 (boot 0x00067000 or 0x00010000,
app 0x00010000) and may carry a ``net`` section, which the XR872 has not.

The system-info record (MAC address, AP name) sits in the last 4 KiB sector,
:data:`SYSINFO_OFFSET` (the XF16 layout, see :func:`parse_sysinfo`).

Everything the engine writes is written atomically; it backs up before it
writes, erases only the sectors that need it, reads back what it wrote, and
reboots to see whether the unit boots. Errors are ``recovery.common``
errors (exit codes in ``recovery.common.EXIT_CODES``): ConsoleError 4 (port,
no ROM, no console), ImageError 3 (refused image), VerifyError 6, DeviceError
7 (the ROM refused a command or the line kept corrupting data), BootError 8
(written and verified but the unit did not boot), RefusedError 9 (a backup
would be overwritten), 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recovery import xr872_brom as brom
from recovery.common import (
    BootError,
    ConsoleError,
    DeviceError,
    ImageError,
    Progress,
    RefusedError,
    UsageError,
    VerifyError,
    add_output_options,
    add_port_options,
    atomic_write_json,
    exit_codes_epilog,
    parse_int,
    progress_enabled,
    run_operation,
    say,
)
from recovery.transport import Port, TransportError

# -- board facts -------------------------------------------------------------------
FLASH_SIZE = 0x100000
SECTOR = 0x1000
BLOCK = 0x10000
WRITE_UNIT = brom.FLASH_UNIT  # FLASH_READ/FLASH_WRITE granularity (512 bytes)
ROM_BAUD = 115200
BAUD_LADDER = (3_000_000, 1_500_000, 921_600)
SYSINFO_OFFSET = 0xFF000  # the last 4 KiB sector (docs/xr872-emulator.md)
SYSINFO_SIZE = 0x1000
SYSINFO_MAGIC = b"SYSI"
IMAGE_AREA_END = SYSINFO_OFFSET  # the image may not run into the system info

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "xf16cam"
LOGIN_RE = r"(?i)login: ?$"
PASSWORD_RE = r"(?i)password: ?$"
PROMPT_RE = r"[#$>] $"
INCORRECT_RE = r"(?i)(login incorrect|denied|failed)"
BANNER_RE = r"(XRadio IoT WLAN SDK|(?i:login:) ?$)"

STRAP_HELP = (
    "put the XR872 into its UART recovery mode by hand: power it off, connect PB02 and "
    "PB03 to GND, power it on (the ROM then waits for 0x55 at 115200), and run the command "
    "again. Check the wiring too: adapter TX -> camera RX, RX -> TX, common GND, 3.3 V."
)
UNTOUCHED = "untouched (nothing was written)"

# -- image format ------------------------------------------------------------------
AWIH_MAGIC = 0x48495741
SECTION_HEADER = struct.Struct("<IIHHIIIIIII24s")
SECTION_NAMES = {
    0xA5FF5A00: "boot",
    0xA5FE5A01: "app",
    0xA5FD5A02: "app_xip",
    0xA5FC5A03: "net",
    0xA5FB5A04: "net_ap",
    0xA5FA5A05: "wlan_bl",
    0xA5F95A06: "wlan_fw",
    0xA5F85A07: "wlan_sdd",
    0xA5F75A08: "app_ext",
    0xA5F65A09: "app_psram",
}
BOOT_ID = 0xA5FF5A00
APP_ID = 0xA5FE5A01
NET_ID = 0xA5FC5A03
NO_ADDR = 0xFFFFFFFF
XR872_SRAM = (0x00200000, 0x00280000)


@dataclass
class Section:
    offset: int
    id: int
    name: str
    version: int
    data_size: int
    load_addr: int
    entry: int
    attribute: int
    next_addr: int
    header_ok: bool
    data_ok: bool | None  # None: the body was not (fully) available


@dataclass
class ImageCheck:
    """What the engine thinks of an image or a flash dump."""

    size: int
    sections: list[Section]
    chip: str  # "xr872", "xr809", "unknown"
    problems: list[str]

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def end(self) -> int:
        """One past the last byte of the last section."""
        return max((s.offset + 64 + s.data_size for s in self.sections), default=0)


def _checksum16(data: bytes) -> int:
    return brom.checksum16(data)


def parse_sections(
    buf: bytes, *, max_sections: int = 32, limit: int | None = None, check_data: bool = True
) -> tuple[list[Section], list[str]]:
    """Follow the AWIH chain from offset 0. Returns the sections and the problems found."""
    limit = len(buf) if limit is None else limit
    secs: list[Section] = []
    problems: list[str] = []
    off = 0
    seen: set[int] = set()
    while off != NO_ADDR:
        if off in seen or len(secs) >= max_sections:
            problems.append(f"the section chain loops at 0x{off:x}")
            break
        seen.add(off)
        if off + 64 > len(buf):
            problems.append(
                f"section header at 0x{off:x} is past the end of the data ({len(buf)} bytes): "
                "the image is truncated"
                if off + 64 <= limit
                else f"section at 0x{off:x} points outside the flash"
            )
            break
        raw = buf[off : off + 64]
        f = SECTION_HEADER.unpack(raw)
        magic, version, _hcs, dcs, dsize, load, entry, _blen, attr, nxt, sid, _priv = f
        if magic != AWIH_MAGIC:
            what = "no section header" if off == 0 else "a broken section chain"
            problems.append(f"{what} at 0x{off:x}: no AWIH magic (found {raw[:4]!r})")
            break
        header_ok = _checksum16(raw) == 0xFFFF
        name = SECTION_NAMES.get(sid, f"0x{sid:08x}")
        data_ok: bool | None = None
        body_end = off + 64 + dsize
        if body_end > len(buf):
            if body_end <= limit:
                problems.append(
                    f"section {name} at 0x{off:x} needs {dsize} bytes of data, only "
                    f"{max(0, len(buf) - off - 64)} present: the image is truncated"
                )
            else:
                problems.append(f"section {name} at 0x{off:x} runs past the end of the flash")
        elif check_data:
            data_ok = (_checksum16(buf[off + 64 : body_end]) + dcs) & 0xFFFF == 0xFFFF
        if not header_ok:
            problems.append(f"section {name} at 0x{off:x}: bad header checksum")
        if data_ok is False:
            problems.append(f"section {name} at 0x{off:x}: bad data checksum")
        secs.append(
            Section(off, sid, name, version, dsize, load, entry, attr, nxt, header_ok, data_ok)
        )
        if not header_ok:
            break  # its next_addr cannot be trusted
        if nxt != NO_ADDR and nxt < body_end:
            problems.append(f"section {name} at 0x{off:x}: next section 0x{nxt:x} overlaps it")
            break
        off = nxt
    return secs, problems


def classify_chip(sections: list[Section]) -> str:
    """xr872 / xr809 from where the boot and app sections load (see module docstring)."""
    votes = set()
    for s in sections:
        if s.id in (BOOT_ID, APP_ID) and s.load_addr != NO_ADDR:
            if XR872_SRAM[0] <= s.load_addr < XR872_SRAM[1]:
                votes.add("xr872")
            elif s.load_addr < 0x00100000:
                votes.add("xr809")
            else:
                votes.add("unknown")
        if s.id == NET_ID:
            votes.add("xr809")
    if len(votes) == 1:
        return votes.pop()
    return "xr809" if "xr809" in votes else "unknown"


def _layout_problems(secs: list[Section], chip: str) -> list[str]:
    """What is wrong with a section chain as a whole (boot first, an app, the chip)."""
    problems: list[str] = []
    if secs:
        if secs[0].id != BOOT_ID:
            problems.append(f"the first section is {secs[0].name}, not boot")
        if not any(s.id == APP_ID for s in secs):
            problems.append("there is no app section")
        if chip == "xr809":
            problems.append(
                "this image is built for the XR809 (it loads at "
                f"0x{secs[0].load_addr:08x}); the XR872 ROM refuses it and stays in recovery mode"
            )
        elif chip != "xr872":
            problems.append("the load addresses are not those of an XR872 image")
    end = max((s.offset + 64 + s.data_size for s in secs), default=0)
    if end > IMAGE_AREA_END:
        problems.append(
            f"the image runs to 0x{end:x}, into the system-info sector at 0x{IMAGE_AREA_END:x}"
        )
    return problems


def check_image(buf: bytes, flash_size: int = FLASH_SIZE, *, check_data: bool = True) -> ImageCheck:
    """Everything that makes ``buf`` unfit to be written to an XR872 at offset 0."""
    problems: list[str] = []
    if not buf:
        return ImageCheck(0, [], "unknown", ["the file is empty"])
    if len(buf) > flash_size:
        problems.append(f"{len(buf)} bytes do not fit a {flash_size // 1024} KiB flash")
    secs, sp = parse_sections(buf, limit=flash_size, check_data=check_data)
    problems += sp
    chip = classify_chip(secs)
    problems += _layout_problems(secs, chip)
    return ImageCheck(len(buf), secs, chip, problems)


# -- system info (MAC, AP name) ------------------------------------------------------
@dataclass
class Identity:
    mac: str  # "fc:ee:91:12:34:56"
    ap_name: str

    @property
    def mac_bytes(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_mac(text: str) -> str:
    digits = re.sub(r"[^0-9a-fA-F]", "", text)
    if len(digits) != 12:
        raise ValueError(f"{text!r} is not a MAC address (12 hex digits)")
    return format_mac(bytes.fromhex(digits))


_SYSINFO = struct.Struct("<4sHH6sBB32s16s")  # 64 bytes


def parse_sysinfo(area: bytes) -> Identity | None:
    """The identity in a system-info area (the 4 KiB at :data:`SYSINFO_OFFSET`), or None.

    The XF16 record (docs/xr872-emulator.md), 64 bytes little-endian: magic
    ``SYSI``, version u16 (1), checksum u16 (checksum16 of the 64 bytes is
    0xFFFF), MAC[6] in transmission order, wlan mode u8, reserved u8, AP name
    [32] NUL padded, reserved [16].
    """
    if len(area) < _SYSINFO.size:
        return None
    rec = bytes(area[: _SYSINFO.size])
    magic, version, _cs, mac, _mode, _r, name, _r2 = _SYSINFO.unpack(rec)
    if magic != SYSINFO_MAGIC or version != 1 or _checksum16(rec) != 0xFFFF:
        return None
    return Identity(format_mac(mac), name.split(b"\0", 1)[0].decode("latin-1"))


def patch_sysinfo(flash: bytes, ident: Identity) -> bytes:
    """``flash`` (a whole dump) with ``ident`` in its system-info record, checksum fixed;
    the record's other fields are kept."""
    rec = flash[SYSINFO_OFFSET : SYSINFO_OFFSET + _SYSINFO.size]
    if parse_sysinfo(rec) is None:
        raise ValueError("the donor's system-info record is not valid, it cannot be patched")
    name = ident.ap_name.encode("ascii")
    if len(name) > 31:
        raise ValueError("the AP name is at most 31 characters")
    magic, version, _cs, _mac, mode, r, _name, r2 = _SYSINFO.unpack(rec)
    new = _SYSINFO.pack(magic, version, 0, ident.mac_bytes, mode, r, name.ljust(32, b"\0"), r2)
    cs = ~_checksum16(new) & 0xFFFF
    new = new[:6] + struct.pack("<H", cs) + new[8:]
    out = bytearray(flash)
    out[SYSINFO_OFFSET : SYSINFO_OFFSET + len(new)] = new
    return bytes(out)


# -- session -------------------------------------------------------------------------
@dataclass
class Options:
    """How to reach the unit and how careful to be."""

    port: str
    baud: int = ROM_BAUD
    max_baud: int = BAUD_LADDER[0]
    timeout: float = 2.0
    retries: int = 4
    transcript: str | None = None
    user: str = DEFAULT_USER
    password: str = DEFAULT_PASSWORD
    check: bool = True
    chunk: int = 0x1000
    verify: str = "auto"  # auto: the ROM's checksum, else read twice | twice | none
    boot_wait: float = 3.0  # how long a rebooted unit may take to print its banner
    settle: float = 0.5  # quiet time on the line before the engine types anything
    progress: bool = True


@dataclass
class LinkInfo:
    port: str
    entered_via: str  # "console" | "recovery mode"
    baud: int  # the rate the transfers ran at
    jedec_id: str
    flash_size: int
    retries: int = 0  # exchanges repeated after a corrupted frame or a ROM error
    rereads: int = 0  # chunks read again to compare


@dataclass
class BootCheck:
    state: str  # booted | recovery mode | silent
    booted: bool
    output: str = ""


class Session:
    """One connection to the unit's ROM. Context manager: opens the port; on exit puts a
    raised ROM back to 115200 (when it was not rebooted) and saves the transcript."""

    def __init__(self, opts: Options, log: Callable[[str], None] | None = None) -> None:
        self.opts = opts
        self.log = log or (lambda _m: None)
        self.port: Port | None = None
        self.client: brom.BromClient | None = None
        self.entered_via = ""
        self.baud = opts.baud
        self.fast_baud = opts.baud
        self.flash: brom.FlashInfo | None = None
        self.rebooted = False
        self.rereads = 0
        self.state = "untouched (only read)"  # what the flash holds, for error messages
        self.restore_hint = ""

    def __enter__(self) -> Session:
        try:
            self.port = Port(self.opts.port, self.opts.baud, transcript=self.opts.transcript)
        except TransportError as e:
            raise ConsoleError(str(e), flash_state=UNTOUCHED) from e
        self.client = brom.BromClient(
            self.port,
            check=self.opts.check,
            timeout=self.opts.timeout,
            retries=self.opts.retries,
            log=self.log,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.client and self.baud != ROM_BAUD and self.entered_via and not self.rebooted:
                try:
                    self.client.retries = 0
                    self.client.set_uart(ROM_BAUD)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
        finally:
            if self.port:
                self.port.close()

    def link(self) -> LinkInfo:
        assert self.flash and self.client
        return LinkInfo(
            self.opts.port, self.entered_via, self.fast_baud, self.flash.jedec_hex,
            self.flash.size, self.client.stats.retries, self.rereads,
        )  # fmt: skip

    # -- getting into the ROM ------------------------------------------------------
    def enter(self) -> None:
        """Reach the ROM, raise the baud, read the flash id."""
        assert self.port and self.client
        self.entered_via = self._enter_rom()
        self.log(f"in the boot ROM (via {self.entered_via}) at {self.port.baud} baud")
        self.baud = self.fast_baud = self._raise_baud()
        self.flash = self._call(self.client.flash_info)
        if not self.flash.size:
            self.log(f"unknown capacity in JEDEC id {self.flash.jedec_hex}; assuming 1 MiB")
            self.flash.size = FLASH_SIZE
        self.log(
            f"flash JEDEC id {self.flash.jedec_hex}, {self.flash.size // 1024} KiB; "
            f"link at {self.baud} baud"
        )

    def _enter_rom(self) -> str:
        port, client = self.port, self.client
        assert port and client
        # a booting unit prints its log: let it finish before typing anything
        heard = port.drain_input(quiet=self.opts.settle, limit=4.0)
        if _looks_like_text(heard) and self._console_upgrade(heard.decode("latin-1")):
            return "console"
        port.write(brom.SYNC_BYTE)
        reply = client.read_reply(0.3)
        if any(reply.endswith(r) for r in brom.SYNC_REPLIES):
            return "recovery mode"
        heard += reply
        if _looks_like_text(reply) and self._console_upgrade(reply.decode("latin-1")):
            return "console"
        if client.sync(attempts=4, wait=0.2):
            return "recovery mode"
        if self._console_upgrade(""):
            return "console"
        for rate in BAUD_LADDER:  # an interrupted earlier run may have left it raised
            port.set_baud(rate)
            if client.sync(attempts=2, wait=0.1):
                self.log(f"the ROM was still at {rate} baud from an earlier run")
                self.baud = rate
                return "recovery mode"
        port.set_baud(self.opts.baud)
        heard += port.drain_input(quiet=0.05, limit=0.3)
        msg = (
            f"no XR872 boot ROM on {self.opts.port}: 0x55 was not answered with OK and no "
            f"firmware console answered at {self.opts.baud} baud."
        )
        hint = STRAP_HELP
        if heard and not _looks_like_text(heard):
            msg += f" Something sent unreadable bytes ({heard[:16].hex()}): a baud mismatch."
            hint = (
                f"the XR872 ROM and console talk at {ROM_BAUD} baud: rerun with --baud "
                f"{ROM_BAUD}; if that fails too, " + STRAP_HELP
            )
        elif not heard:
            msg += " Nothing at all came back."
        raise ConsoleError(msg, flash_state=UNTOUCHED, hint=hint)

    def _console_upgrade(self, heard: str) -> bool:
        """Log in if asked, type ``upgrade``, and sync with the ROM it starts.

        ``heard`` is what the unit printed so far: when it ends with a prompt we
        answer it; otherwise we wait for one, then press Enter. Bytes typed too
        early (our 0x55 probe, or Enter during the boot log) end up as a junk
        login: it is answered with an empty password and the login is tried once
        more before the console counts as refusing the credentials."""
        port, client = self.port, self.client
        assert port and client
        patterns = [LOGIN_RE, PASSWORD_RE, PROMPT_RE, INCORRECT_RE]
        wait = min(2.0, max(0.5, self.opts.timeout))
        tail = heard.rstrip("\r\n")[-80:] if heard.endswith((" ", ":", "$", "#", ">")) else ""
        i = next((k for k, p in enumerate(patterns[:3]) if re.search(p, tail)), None)
        port.clear_buffer()
        if i is None:
            if heard:
                try:  # the log may still be coming
                    i = port.expect(patterns, timeout=wait)
                except TransportError:
                    i = None
            if i is None:
                port.sendline("")
        sent_user = sent_password = False
        refusals = 0
        for _ in range(8):
            if i is None:
                try:
                    i = port.expect(patterns, timeout=wait)
                except TransportError:
                    return False
            if i == 0:
                port.sendline(self.opts.user)
                sent_user, sent_password = True, False
            elif i == 1:
                port.sendline(self.opts.password if sent_user else "")
                sent_password = sent_user
            elif i == 3:
                refusals += sent_password
                if refusals >= 2:
                    raise ConsoleError(
                        f"the firmware console refused the login (user {self.opts.user!r})",
                        flash_state=UNTOUCHED,
                        hint="give the right --user/--password, or " + STRAP_HELP,
                    )
                sent_user = sent_password = False
            else:
                break
            i = None
        else:
            return False
        self.log("firmware console found: typing 'upgrade'")
        port.sendline("upgrade")
        if client.sync(attempts=30, wait=0.1):
            port.clear_buffer()
            return True
        raise ConsoleError(
            "the firmware console took 'upgrade' but the boot ROM did not answer the sync",
            flash_state=UNTOUCHED,
            hint="power-cycle the unit and try again, or " + STRAP_HELP,
        )

    def _raise_baud(self) -> int:
        assert self.port and self.client
        current = self.port.baud
        for rate in BAUD_LADDER:
            if rate > self.opts.max_baud or rate <= current:
                continue
            try:
                ok = self.client.set_uart(rate)
            except brom.BromError as e:
                self.log(f"the ROM refused {rate} baud ({e})")
                self.client.resync()
                continue
            if ok:
                return rate
            self.log(f"no sync at {rate} baud; back to {current}")
            self.port.set_baud(current)
            if not self.client.sync(attempts=5, wait=0.1):
                raise DeviceError(
                    f"the ROM switched to {rate} baud and then answered neither at {rate} "
                    f"nor at {current}",
                    flash_state=UNTOUCHED,
                    hint=f"power-cycle the unit and rerun with --max-baud {current}",
                )
        return self.port.baud

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except brom.BromError as e:
            raise DeviceError(str(e), flash_state=self.state, hint=self.restore_hint or None) from e
        except TransportError as e:
            raise ConsoleError(
                str(e), flash_state=self.state, hint=self.restore_hint or None
            ) from e

    # -- flash access --------------------------------------------------------------
    def read_chunk(self, off: int, n: int, attempts: int = 5) -> bytes:
        """``n`` bytes at ``off``, verified: by the response checksum (verify=auto, when the
        ROM sends one) or by reading until two reads agree."""
        assert self.client
        first = self._call(self.client.flash_read, off, n)
        if self.opts.verify == "none" or (self.opts.verify == "auto" and self.client.last_checked):
            return first
        for _ in range(attempts):
            self.rereads += 1
            again = self._call(self.client.flash_read, off, n)
            if again == first:
                return first
            first = again
        raise DeviceError(
            f"reading 0x{off:x}..0x{off + n:x} gave different data {attempts + 1} times: "
            "the line is unreliable",
            hint="check the wiring (short wires, common GND) or use a lower --max-baud",
        )

    def read_range(
        self,
        start: int,
        size: int,
        bar: Progress | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> bytes:
        out = bytearray()
        for off in range(start, start + size, self.opts.chunk):
            data = self.read_chunk(off, min(self.opts.chunk, start + size - off))
            out += data
            if sink:
                sink(data)
            if bar:
                bar.advance(len(data))
        return bytes(out)

    def erase(self, kind: brom.Erase, addr: int) -> None:
        assert self.client
        self._call(self.client.flash_erase, kind, addr)

    def program(self, addr: int, data: bytes) -> None:
        assert self.client
        self._call(self.client.flash_write, addr, data)

    # -- reboot ----------------------------------------------------------------------
    def reboot_and_check(self) -> BootCheck:
        """REBOOT, then listen at 115200: a firmware banner (or a console that answers
        Enter) means it booted; a ROM that answers the sync means recovery mode."""
        assert self.port and self.client
        self._call(self.client.reboot)
        self.rebooted = True
        self.port.set_baud(ROM_BAUD)
        self.baud = ROM_BAUD
        self.port.clear_buffer()
        try:
            self.port.expect([BANNER_RE], timeout=self.opts.boot_wait)
            text = (self.port.before + self.port.match.group(0))[-400:]
            return BootCheck("booted", True, text.strip())
        except TransportError:
            heard = self.port.pending_text()
        # the banner may have gone by while the host was still at the raised baud:
        # a running firmware answers Enter with a prompt, the ROM ignores it
        self.port.clear_buffer()
        self.port.sendline("")
        try:
            self.port.expect([LOGIN_RE, PASSWORD_RE, PROMPT_RE], timeout=1.0)
            return BootCheck("booted", True, (heard + self.port.before).strip()[-400:])
        except TransportError:
            heard += self.port.pending_text()
        if self.client.sync(attempts=5, wait=0.2):
            return BootCheck("recovery mode", False, heard.strip()[-400:])
        return BootCheck("silent", False, heard.strip()[-400:])


def _looks_like_text(data: bytes) -> bool:
    if not data:
        return False
    printable = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.9 * len(data) and any(32 < b < 127 for b in data)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- results ---------------------------------------------------------------------------
@dataclass
class InfoResult:
    link: LinkInfo
    chip: str
    sections: list[Section]
    problems: list[str]
    identity: Identity | None
    boot: BootCheck | None = None


@dataclass
class DumpResult:
    link: LinkInfo
    path: str
    manifest: str
    size: int
    sha256: str
    resumed_from: int
    seconds: float
    chip: str
    identity: Identity | None
    boot: BootCheck | None = None


@dataclass
class WriteResult:
    link: LinkInfo
    image: str
    image_sha256: str
    backup: str | None
    sectors_total: int
    sectors_changed: int
    sectors_erased: int
    bytes_programmed: int
    verified: bool
    boot: BootCheck | None
    forced: bool = False
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class CloneResult:
    write: WriteResult
    donor: Identity
    unit: Identity
    written: Identity | None


# -- operations ------------------------------------------------------------------------
def _want_reboot(s: Session, reboot: bool | None) -> bool:
    return reboot if reboot is not None else s.entered_via == "console"


def info(
    opts: Options, *, reboot: bool | None = None, log: Callable[[str], None] | None = None
) -> InfoResult:
    """Chip, flash id and size, the image sections in flash, MAC and AP name.

    Reads only the section headers (along the chain) and the system-info sector.
    Reboots afterwards when the unit was entered from its console (``reboot``)."""
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        heads = bytearray(b"\xff" * s.flash.size)
        have: set[int] = set()
        off, hops = 0, 0
        while off != NO_ADDR and hops < 32 and off + 64 <= s.flash.size:
            for unit in range(off // WRITE_UNIT * WRITE_UNIT, off + 64, WRITE_UNIT):
                if unit not in have:
                    heads[unit : unit + WRITE_UNIT] = s.read_chunk(unit, WRITE_UNIT)
                    have.add(unit)
            magic, nxt = struct.unpack_from("<I", heads, off)[0], _next_addr(heads, off)
            if magic != AWIH_MAGIC or (nxt != NO_ADDR and nxt <= off):
                break
            off, hops = nxt, hops + 1
        secs, problems = parse_sections(bytes(heads), limit=s.flash.size, check_data=False)
        chip = classify_chip(secs)
        problems += _layout_problems(secs, chip)
        ident = parse_sysinfo(s.read_chunk(SYSINFO_OFFSET, SYSINFO_SIZE))
        chk = ImageCheck(s.flash.size, secs, chip, problems)
        boot = s.reboot_and_check() if _want_reboot(s, reboot) else None
        return InfoResult(s.link(), chk.chip, secs, problems, ident, boot)


def _next_addr(buf: bytes | bytearray, off: int) -> int:
    return SECTION_HEADER.unpack_from(buf, off)[9]


def _part_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".part"), out.with_name(out.name + ".part.json")


def _dump_into(s: Session, out: Path, resume: bool, label: str) -> tuple[bytes, int]:
    """Read the whole flash into ``out``: chunks are appended to ``out.part`` (state in
    ``out.part.json``) so an interrupted dump resumes; at the end it is fsynced and renamed."""
    assert s.flash
    size, chunk = s.flash.size, s.opts.chunk
    part, state_path = _part_paths(out)
    state = {"version": 1, "jedec_id": s.flash.jedec_hex, "size": size, "chunk": chunk}
    start = 0
    if resume and part.exists() and state_path.exists():
        try:
            old = json.loads(state_path.read_text())
        except (OSError, ValueError):
            old = {}
        if {k: old.get(k) for k in state} == state:
            start = min(part.stat().st_size // chunk * chunk, size)
            s.log(f"resuming {part} at 0x{start:x}")
        else:
            s.log(f"{part} belongs to another flash or chunk size: starting over")
    if start == 0:
        atomic_write_json(state_path, state)
        part.write_bytes(b"")
    with open(part, "r+b") as f, Progress(label, size - start, enabled=s.opts.progress) as bar:
        f.truncate(start)
        f.seek(start)

        def sink(data: bytes) -> None:
            f.write(data)
            f.flush()

        s.read_range(start, size - start, bar, sink)
        os.fsync(f.fileno())
    data = part.read_bytes()
    if len(data) != size:
        raise VerifyError(
            f"{part} holds {len(data)} bytes, expected {size}",
            flash_state="untouched (only read)",
            hint="run the same command again to resume",
        )
    os.replace(part, out)
    _fsync_parent(out)
    state_path.unlink(missing_ok=True)
    return data, start


def _fsync_parent(path: Path) -> None:
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _manifest(s: Session, out: Path, data: bytes, extra: dict[str, Any]) -> Path:
    assert s.flash
    man = {
        "file": out.name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "jedec_id": s.flash.jedec_hex,
        "flash_size": s.flash.size,
        "chunk_size": s.opts.chunk,
        "date": _now(),
        "port": s.opts.port,
        "baud": s.fast_baud,
        "verify": s.opts.verify,
        "tool": "camrescue xr872",
        **extra,
    }
    path = out.with_name(out.name + ".json")
    atomic_write_json(path, man)
    return path


def _identity_facts(data: bytes) -> tuple[ImageCheck, Identity | None]:
    return check_image(data), parse_sysinfo(data[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])


def dump(
    opts: Options,
    out: str | os.PathLike[str],
    *,
    resume: bool = True,
    reboot: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> DumpResult:
    """The whole flash to ``out`` and a manifest to ``out.json``; resumes ``out.part``."""
    out = Path(out)
    t0 = time.monotonic()
    with Session(opts, log) as s:
        s.enter()
        data, start = _dump_into(s, out, resume, "dump")
        chk, ident = _identity_facts(data)
        man = _manifest(
            s, out, data,
            {"chip": chk.chip, "image_valid": chk.valid,
             "mac": ident.mac if ident else None, "ap_name": ident.ap_name if ident else None},
        )  # fmt: skip
        boot = s.reboot_and_check() if _want_reboot(s, reboot) else None
        return DumpResult(
            s.link(), str(out), str(man), len(data), hashlib.sha256(data).hexdigest(), start,
            round(time.monotonic() - t0, 3), chk.chip, ident, boot,
        )  # fmt: skip


@dataclass
class WritePlan:
    erases: list[tuple[brom.Erase, int]]
    writes: list[tuple[int, bytes]]
    changed: list[int]  # sector offsets whose content changes
    erased: int  # sectors erased


def plan_write(current: bytes, target: bytes) -> WritePlan:
    """What to erase and program to turn ``current`` into ``target`` (same length,
    sector-aligned). Sectors that match are left alone; a sector whose new content only
    clears bits is programmed without an erase; the others are erased (a whole 64 KiB
    block at once when all its sectors need it) and their non-blank units programmed."""
    if len(current) != len(target) or len(current) % SECTOR:
        raise ValueError("plan_write needs sector-aligned buffers of equal length")
    need_erase: list[int] = []
    writes: list[tuple[int, bytes]] = []
    changed: list[int] = []
    blank = b"\xff" * WRITE_UNIT
    for off in range(0, len(target), SECTOR):
        cur, new = current[off : off + SECTOR], target[off : off + SECTOR]
        if cur == new:
            continue
        changed.append(off)
        c, n = int.from_bytes(cur, "big"), int.from_bytes(new, "big")
        erase = (c & n) != n
        if erase:
            need_erase.append(off)
        run = None
        for u in range(off, off + SECTOR + WRITE_UNIT, WRITE_UNIT):
            busy = u < off + SECTOR and target[u : u + WRITE_UNIT] != (
                blank if erase else current[u : u + WRITE_UNIT]
            )
            if busy and run is None:
                run = u
            elif not busy and run is not None:
                writes.append((run, target[run:u]))
                run = None
    erases: list[tuple[brom.Erase, int]] = []
    todo = set(need_erase)
    for blk in range(0, len(target) - BLOCK + 1, BLOCK):
        inside = set(range(blk, blk + BLOCK, SECTOR))
        if inside <= todo:
            erases.append((brom.Erase.BLOCK_64K, blk))
            todo -= inside
    erases += [(brom.Erase.SECTOR_4K, o) for o in sorted(todo)]
    erases.sort(key=lambda e: e[1])
    return WritePlan(erases, writes, changed, len(need_erase))


def _apply(s: Session, current: bytes, target: bytes, backup: str | None) -> WritePlan:
    """Erase, program, read back; a sector that reads back wrong is redone twice at most."""
    plan = plan_write(current, target)
    total = sum(len(d) for _, d in plan.writes) + SECTOR * plan.erased
    with Progress("write", total, enabled=s.opts.progress) as bar:
        for kind, addr in plan.erases:
            s.erase(kind, addr)
            bar.advance(brom.ERASE_SIZE.get(kind, SECTOR))
        for addr, data in plan.writes:
            for o in range(0, len(data), s.opts.chunk):
                s.program(addr + o, data[o : o + s.opts.chunk])
            bar.advance(len(data))
    restore = f"camrescue xr872 write {backup} --force" if backup else "a backup"
    with Progress("verify", len(plan.changed) * SECTOR, enabled=s.opts.progress) as bar:
        for sector in plan.changed:
            want = target[sector : sector + SECTOR]
            for attempt in range(3):
                if s.read_chunk(sector, SECTOR) == want:
                    break
                if attempt == 2:
                    raise VerifyError(
                        f"sector 0x{sector:x} does not read back what was written (3 tries)",
                        flash_state="partly written: it will not boot as it is",
                        hint=f"run the same command again; if it fails again write the backup "
                        f"back ({restore}) and check the wiring and the power supply "
                        "(a write-protected flash also ends here)",
                    )
                s.log(f"sector 0x{sector:x} read back wrong; erasing and writing it again")
                s.erase(brom.Erase.SECTOR_4K, sector)
                for u in range(0, SECTOR, WRITE_UNIT):
                    if want[u : u + WRITE_UNIT] != b"\xff" * WRITE_UNIT:
                        s.program(sector + u, want[u : u + WRITE_UNIT])
            bar.advance(SECTOR)
    s.state = "holds the new image, verified"
    return plan


def _backup_path(s: Session, backup: str | None) -> Path:
    assert s.flash
    path = Path(backup) if backup else Path(
        f"xr872-backup-{s.flash.jedec_hex}-{_dt.datetime.now():%Y%m%d-%H%M%S}.bin"
    )  # fmt: skip
    if path.exists():
        raise RefusedError(
            f"the backup file {path} already exists (an existing backup is never overwritten)",
            flash_state=UNTOUCHED,
            hint="give another --backup name",
        )
    return path


def _read_current(
    s: Session, backup: str | None, no_backup: bool, end: int
) -> tuple[bytes, str | None]:
    """This unit's flash before writing: saved as a backup (with a manifest), or only the
    first ``end`` bytes read (``--no-backup``)."""
    assert s.flash
    if no_backup:
        with Progress("read", end, enabled=s.opts.progress) as bar:
            return s.read_range(0, end, bar) + b"\xff" * (s.flash.size - end), None
    path = _backup_path(s, backup)
    current, _ = _dump_into(s, path, False, "backup")
    _manifest(s, path, current, {"kind": "backup before write"})
    s.log(f"backup of the flash saved to {path}")
    return current, str(path)


def _write_image(
    s: Session,
    image: bytes,
    current: bytes,
    backup: str | None,
    *,
    name: str,
    forced: bool,
    problems: list[str],
) -> WriteResult:
    """Put ``image`` at offset 0 over ``current`` (what the flash holds), verified."""
    assert s.flash
    end = -(-len(image) // SECTOR) * SECTOR
    target = bytearray(current[:end])
    target[: len(image)] = image
    plan = _apply(s, current[:end], bytes(target), backup)
    s.log(
        f"{len(plan.changed)} of {end // SECTOR} sectors changed, {plan.erased} erased; "
        "all read back correctly"
    )
    return WriteResult(
        s.link(), name, hashlib.sha256(image).hexdigest(), backup, end // SECTOR,
        len(plan.changed), plan.erased, sum(len(d) for _, d in plan.writes), True, None,
        forced, problems,
    )  # fmt: skip


def _load(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e}", flash_state=UNTOUCHED) from e


def _refuse(path: str | os.PathLike[str], chk: ImageCheck) -> ImageError:
    return ImageError(
        f"{path} is not a valid XR872 image: " + "; ".join(chk.problems),
        flash_state=UNTOUCHED,
        hint="check that it is an XR872 (XF16) image or dump; --force writes it anyway",
    )


def write(
    opts: Options,
    image: str | os.PathLike[str],
    *,
    force: bool = False,
    backup: str | None = None,
    no_backup: bool = False,
    reboot: bool = True,
    log: Callable[[str], None] | None = None,
) -> WriteResult:
    """Write ``image`` (an xr_system.img or a whole-flash dump) at offset 0: checked
    before anything is touched, the flash backed up, only the needed sectors erased,
    everything read back, then REBOOT and report whether the firmware booted."""
    data = _load(image)
    chk = check_image(data)
    if not chk.valid and not force:
        raise _refuse(image, chk)
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        if len(data) > s.flash.size:
            raise ImageError(
                f"{image} is {len(data)} bytes, the flash only {s.flash.size}",
                flash_state=UNTOUCHED,
            )
        end = -(-len(data) // SECTOR) * SECTOR
        current, bpath = _read_current(s, backup, no_backup, end)
        warnings = []
        new_id = parse_sysinfo(data[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])
        old_id = parse_sysinfo(current[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])
        if new_id and new_id != old_id:
            warnings.append(
                f"the image carries the identity MAC {new_id.mac} / AP {new_id.ap_name!r}; "
                f"this unit had {old_id.mac if old_id else 'none'}: use 'clone' to keep it"
            )
            s.log(warnings[-1])
        res = _write_image(
            s, data, current, bpath, name=str(image), forced=force and not chk.valid,
            problems=chk.problems,
        )  # fmt: skip
        res.warnings = warnings
        if reboot:
            res.boot = s.reboot_and_check()
        return res


def clone(
    opts: Options,
    donor: str | os.PathLike[str],
    *,
    force: bool = False,
    backup: str | None = None,
    no_backup: bool = False,
    mac: str | None = None,
    ap_name: str | None = None,
    reboot: bool = True,
    log: Callable[[str], None] | None = None,
) -> CloneResult:
    """Write a donor's whole-flash dump but keep this unit's MAC address and AP name:
    read them from this unit's flash first (or take ``mac``/``ap_name``), patch them into
    the donor's system-info record, write, verify, reboot."""
    data = _load(donor)
    if len(data) != FLASH_SIZE:
        raise ImageError(
            f"{donor} is {len(data)} bytes; a donor dump is the whole "
            f"{FLASH_SIZE // 1024} KiB flash ('camrescue xr872 dump' of the donor)",
            flash_state=UNTOUCHED,
        )
    chk, donor_id = _identity_facts(data)
    if not chk.valid and not force:
        raise _refuse(donor, chk)
    if donor_id is None:
        raise ImageError(
            f"{donor} has no valid system-info record at 0x{SYSINFO_OFFSET:x}, so its "
            "identity cannot be replaced",
            flash_state=UNTOUCHED,
            hint="is it a dump of an XR872 (XF16) camera?",
        )
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        if s.flash.size != len(data):
            raise ImageError(
                f"this unit's flash is {s.flash.size} bytes, the donor dump {len(data)}",
                flash_state=UNTOUCHED,
            )
        current, bpath = _read_current(s, backup, no_backup, s.flash.size)
        unit_id = parse_sysinfo(current[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])
        if mac or ap_name:
            base = unit_id or Identity("", "")
            unit_id = Identity(parse_mac(mac) if mac else base.mac, ap_name or base.ap_name)
        if unit_id is None or not unit_id.mac or not unit_id.ap_name:
            raise ImageError(
                "this unit's flash holds no valid MAC/AP name, so it cannot keep its identity",
                flash_state=UNTOUCHED + (f"; backup in {bpath}" if bpath else ""),
                hint="give them with --mac and --ap-name (the MAC is often on the label)",
            )
        s.log(f"this unit: MAC {unit_id.mac}, AP {unit_id.ap_name!r}; donor: {donor_id.mac}")
        try:
            patched = patch_sysinfo(data, unit_id)
        except ValueError as e:
            raise ImageError(str(e), flash_state=UNTOUCHED) from e
        res = _write_image(
            s, patched, current, bpath, name=str(donor), forced=force and not chk.valid,
            problems=chk.problems,
        )  # fmt: skip
        written = parse_sysinfo(s.read_chunk(SYSINFO_OFFSET, SYSINFO_SIZE))
        if written != unit_id:
            raise VerifyError(
                "the system-info record does not hold this unit's identity after the write",
                flash_state="the donor's image is written",
                hint="run clone again",
            )
        if reboot:
            res.boot = s.reboot_and_check()
        return CloneResult(res, donor_id, unit_id, written)


# -- command line ----------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    add_port_options(p, baud=ROM_BAUD)
    add_output_options(p)
    p.add_argument(
        "--max-baud", type=int, default=BAUD_LADDER[0],
        help="fastest rate to raise the link to with SETUART (default 3000000; 115200 "
        "keeps the link where it is)",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    p.add_argument("--retries", type=int, default=4, help="retries of a corrupted exchange")
    p.add_argument(
        "--boot-wait", type=float, default=3.0,
        help="seconds a rebooted unit may take to print its banner (3)",
    )  # fmt: skip
    p.add_argument(
        "--settle", type=float, default=0.5,
        help="seconds the line must be quiet before the engine types anything (0.5)",
    )  # fmt: skip
    p.add_argument("--user", default=DEFAULT_USER, help="firmware console login (admin)")
    p.add_argument("--password", default=DEFAULT_PASSWORD, help="console password (xf16cam)")
    p.add_argument("--chunk", type=parse_int, default=0x1000, help="bytes per read (4k)")
    p.add_argument(
        "--verify", choices=("auto", "twice", "none"), default="auto",
        help="per-chunk check: the ROM's checksum when it sends one, else read twice "
        "(auto); always read twice; none",
    )  # fmt: skip


def _options(a: argparse.Namespace) -> Options:
    if a.chunk <= 0 or a.chunk % WRITE_UNIT:
        raise UsageError(f"--chunk must be a positive multiple of {WRITE_UNIT} bytes")
    return Options(
        port=a.port, baud=a.baud, max_baud=a.max_baud, timeout=a.timeout, retries=a.retries,
        transcript=a.transcript, user=a.user, password=a.password, chunk=a.chunk,
        verify=a.verify, boot_wait=a.boot_wait, settle=a.settle, progress=progress_enabled(a),
    )  # fmt: skip


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``xr872 info|dump|write|clone``; each sets ``func(args) -> exit code``."""
    p = subparsers.add_parser(
        "xr872",
        help="XR872 cameras (XF16): info, dump, write, clone through the boot ROM",
        description="Talk to an XR872's boot ROM over a USB-TTL adapter (docs/xr872.md).",
        epilog=exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp = p.add_subparsers(dest="xr872_command", required=True, metavar="ACTION")
    _sub = {"epilog": exit_codes_epilog(), "formatter_class": argparse.RawDescriptionHelpFormatter}

    q = sp.add_parser("info", **_sub, help="chip, flash id/size, image sections, MAC and AP name")
    _add_common(q)
    _add_reboot(q)
    q.set_defaults(func=_cli_info)

    q = sp.add_parser("dump", **_sub, help="read the whole flash to a file (+ manifest); resumable")
    _add_common(q)
    q.add_argument("--out", required=True, help="output file (written atomically)")
    q.add_argument("--no-resume", action="store_true", help="ignore an interrupted .part file")
    _add_reboot(q)
    q.set_defaults(func=_cli_dump)

    q = sp.add_parser("write", **_sub, help="write an XR872 image: checked, backed up, verified")
    _add_common(q)
    q.add_argument("image", help="xr_system.img or a whole-flash dump")
    _add_write_options(q)
    q.set_defaults(func=_cli_write)

    q = sp.add_parser(
        "clone", **_sub, help="write a donor's dump, keeping this unit's MAC and AP name"
    )
    _add_common(q)
    q.add_argument("--from", dest="donor", required=True, help="the donor's 1 MiB dump")
    q.add_argument("--mac", help="this unit's MAC, if its flash no longer holds it")
    q.add_argument("--ap-name", help="this unit's AP name, if its flash no longer holds it")
    _add_write_options(q)
    q.set_defaults(func=_cli_clone)
    return p


def _add_reboot(q: argparse.ArgumentParser) -> None:
    g = q.add_mutually_exclusive_group()
    g.add_argument(
        "--reboot", dest="reboot", action="store_true", default=None,
        help="reboot afterwards (the default when the unit was entered from its console)",
    )  # fmt: skip
    g.add_argument(
        "--no-reboot", dest="reboot", action="store_false", help="leave it in the boot ROM"
    )


def _add_write_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--force", action="store_true", help="write even if the image looks wrong")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--backup", help="where to save the flash first (default: an automatic name)")
    g.add_argument("--no-backup", action="store_true", help="do not save the flash first")
    q.add_argument(
        "--no-reboot", dest="reboot", action="store_false", default=True,
        help="do not reboot after writing",
    )  # fmt: skip


def _logger(a: argparse.Namespace) -> Callable[[str], None]:
    return lambda m: say(a, f"xr872: {m}")


def _boot_text(b: dict[str, Any] | None) -> str:
    if not b:
        return "left in the boot ROM (not rebooted)"
    if b["booted"]:
        return "rebooted: the firmware booted"
    return f"rebooted: the unit did NOT boot its firmware ({b['state']})"


def _facts(result: Any, message: str) -> dict[str, Any]:
    return {**asdict(result), "message": message}


def _check_boot(facts: dict[str, Any], boot: BootCheck | None) -> dict[str, Any]:
    if boot is not None and not boot.booted:
        raise BootError(
            f"the image is written and verified, but the unit did not boot ({boot.state})",
            flash_state="holds the new image, verified",
            hint="the image does not start on this board: write the backup back, or try "
            "another image (a dump of a working XF16)",
            facts=facts,
        )
    return facts


def _cli_info(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = info(_options(a), reboot=a.reboot, log=_logger(a))
        return _facts(r, f"{r.chip.upper()} image, flash {r.link.jedec_id}")

    def render(f: dict[str, Any]) -> str:
        link = f["link"]
        lines = [
            f"port      {link['port']} (via {link['entered_via']}, {link['baud']} baud)",
            f"flash     JEDEC id {link['jedec_id']}, {link['flash_size'] // 1024} KiB",
            f"image     {f['chip'].upper()}",
        ]
        for sec in f["sections"]:
            lines.append(
                f"  0x{sec['offset']:06x} {sec['name']:<9} {sec['data_size']:>7} bytes, load "
                f"0x{sec['load_addr']:08x}{'' if sec['header_ok'] else '  BAD HEADER'}"
            )
        lines += [f"  problem: {p}" for p in f["problems"]]
        ident = f["identity"]
        lines.append(f"MAC       {ident['mac']}" if ident else "MAC       (no valid record)")
        lines.append(f"AP name   {ident['ap_name']}" if ident else "")
        if f["boot"]:
            lines.append(_boot_text(f["boot"]))
        return "\n".join(x for x in lines if x)

    return run_operation(a, "xr872 info", run, render=render)


def _cli_dump(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = dump(_options(a), a.out, resume=not a.no_resume, reboot=a.reboot, log=_logger(a))
        msg = f"dumped {r.size} bytes to {r.path} (sha256 {r.sha256}); manifest {r.manifest}"
        if r.resumed_from:
            msg += f"; resumed at 0x{r.resumed_from:x}"
        if r.boot:
            msg += "\n" + _boot_text(asdict(r.boot))
        return _facts(r, msg)

    return run_operation(a, "xr872 dump", run)


def _write_message(r: WriteResult) -> str:
    return (
        f"wrote {r.image}: {r.sectors_changed} of {r.sectors_total} sectors changed "
        f"({r.sectors_erased} erased), all read back OK"
        + (f"; backup in {r.backup}" if r.backup else "; no backup kept")
        + "".join(f"\nwarning: {w}" for w in r.warnings)
        + "\n"
        + _boot_text(asdict(r.boot) if r.boot else None)
    )


def _cli_write(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = write(
            _options(a), a.image, force=a.force, backup=a.backup, no_backup=a.no_backup,
            reboot=a.reboot, log=_logger(a),
        )  # fmt: skip
        return _check_boot(_facts(r, _write_message(r)), r.boot)

    return run_operation(a, "xr872 write", run)


def _cli_clone(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = clone(
            _options(a), a.donor, force=a.force, backup=a.backup, no_backup=a.no_backup,
            mac=a.mac, ap_name=a.ap_name, reboot=a.reboot, log=_logger(a),
        )  # fmt: skip
        msg = (
            f"donor identity   MAC {r.donor.mac}  AP {r.donor.ap_name}\n"
            f"this unit keeps  MAC {r.unit.mac}  AP {r.unit.ap_name}\n" + _write_message(r.write)
        )
        return _check_boot(_facts(r, msg), r.write.boot)

    return run_operation(a, "xr872 clone", run)


def main(argv: list[str] | None = None) -> int:
    """``python -m recovery.xr872 info --port ...``: the same as ``camrescue xr872 ...``
    (a leading ``xr872`` is accepted too)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "xr872":
        argv.insert(0, "xr872")
    parser = argparse.ArgumentParser(prog="camrescue")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
