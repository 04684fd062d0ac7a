"""One connection to an XR872's boot ROM: getting there, the baud, verified reads, reboot.

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

After a write, :meth:`Session.reboot_and_check` reboots the unit and listens at
115200: a firmware banner (or a console that answers Enter) means it booted, a
ROM that answers the sync means it is back in recovery mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recovery.errors import ConsoleError, DeviceError
from recovery.progress import Progress
from recovery.transport import Port, TransportError
from recovery.xr872 import brom
from recovery.xr872.image import FLASH_SIZE

ROM_BAUD = 115200
BAUD_LADDER = (3_000_000, 1_500_000, 921_600)

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
