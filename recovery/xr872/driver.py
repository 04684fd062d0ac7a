"""One connection to an XR872's boot ROM: getting there, the baud, verified reads, reboot.

The engine talks to the XRadio boot ROM's UART protocol (recovery/xr872/brom.py),
the one PhoenixMC and BK7231GUIFlashTool speak. Getting there, as those tools
do (shared/REFERENCE.md; BK7231GUIFlashTool ``XRBaseFlasher.cs``
``TryEnterDownloadModeByUpgradeCommand`` and ``Sync``; SDK ``cmd_upgrade.c``):

* At 115200 the engine sends ``\\n``, ``upgrade``, ``\\n\\0`` blind (no login,
  no prompt awaited): a running firmware console answers ``<ACK> 200 OK`` and
  reboots into the ROM's UART download mode. A unit already in the ROM
  ignores those bytes (none is 0x55).
* Sync: 0x55, answered ``OK``.
* Otherwise the documented fallback: PB02 and PB03 to GND, then power-cycle.

Then GET_FLASH_ID and the eFuse bytes (READ4/WRITE4 at the eFuse controller,
as ``XRRomFlasherBase.cs`` reads them), then one SETUART to the chosen rate:
921600 by default (BK7231GUIFlashTool's default; phoenixMC's Linux
settings.ini), 1000000/1500000/3000000 only when asked with ``--max-baud``
(cheap USB-TTL adapters often fail above 921600). The host port is tried at
the new rate first: an adapter that refuses it is a clear error before SETUART.
When SETUART is acknowledged but the new rate does not sync, the engine syncs
again at the new rate, then at 115200, and then says exactly what to do.

After a write, :meth:`Session.reboot_and_check` reboots the unit and listens at
115200 for the SDK boot log (``platform_init.c``): ``XRADIO Skylark SDK`` and
the ``mac address:`` block with its ``efuse:`` and ``in use:`` lines; a
console that answers Enter with ``$ `` means it booted too; a ROM that answers
the sync means it is back in recovery mode.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import serial

from recovery.errors import ConsoleError, DeviceError, Interrupted
from recovery.progress import Progress
from recovery.transport import Port, TransportError
from recovery.xr872 import brom
from recovery.xr872.image import FLASH_SIZE, Efuse, decode_efuse

ROM_BAUD = 115200
DEFAULT_BAUD = 921_600
TOOL_BAUDS = brom.TOOL_BAUDS
UPGRADE_PREAMBLE = b"\nupgrade\n\x00"  # XRBaseFlasher.TryEnterDownloadModeByUpgradeCommand

PROMPT_RE = r"\$ $"
BANNER_RE = r"XRADIO Skylark SDK"
MAC_BLOCK_RE = r"mac address:\r?\n\s+efuse\s*: ([0-9a-f:]{17})\r?\n\s+in use\s*: ([0-9a-f:]{17})"

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
    max_baud: int = DEFAULT_BAUD
    timeout: float = 2.0
    retries: int = 4
    transcript: str | None = None
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
    chip_type: int | None = None  # the ROM's answer to command 0x17
    efuse: Efuse | None = None  # None when the ROM would not give the eFuse words


@dataclass
class BootCheck:
    state: str  # booted | recovery mode | silent
    booted: bool
    output: str = ""
    mac_efuse: str | None = None  # the boot log's "efuse:" line
    mac_in_use: str | None = None  # the boot log's "in use:" line (None: not seen)


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
        self.chip_type: int | None = None
        self.efuse: Efuse | None = None
        self.heard = ""  # what the firmware printed while the engine got into the ROM

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

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is not None and isinstance(exc, KeyboardInterrupt):
            # Ctrl-C between two exchanges: the same report as during one
            try:
                raise self._interrupted() from exc
            finally:
                if self.port:
                    self.port.close()
        try:
            if self.client and self.baud != ROM_BAUD and self.entered_via and not self.rebooted:
                try:
                    self.client.retries = 0
                    self.client.set_uart(ROM_BAUD, sync_attempts=3)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
        finally:
            if self.port:
                self.port.close()

    def link(self) -> LinkInfo:
        assert self.flash and self.client
        return LinkInfo(
            self.opts.port, self.entered_via, self.fast_baud, self.flash.jedec_hex,
            self.flash.size, self.client.stats.retries, self.rereads, self.chip_type, self.efuse,
        )  # fmt: skip

    # -- getting into the ROM ------------------------------------------------------
    def enter(self) -> None:
        """Reach the ROM, read the flash id and the eFuse, raise the baud."""
        assert self.port and self.client
        self.entered_via = self._enter_rom()
        self.log(f"in the boot ROM (via {self.entered_via}) at {self.port.baud} baud")
        self.flash = self._call(self.client.flash_info)
        if not self.flash.size:
            self.log(f"unknown capacity in JEDEC id {self.flash.jedec_hex}; assuming 1 MiB")
            self.flash.size = FLASH_SIZE
        self.chip_type = self.client.chip_type()
        try:
            self.efuse = decode_efuse(self.client.read_efuse())
        except brom.BromError as e:
            self.log(f"could not read the eFuse through the ROM ({e})")
            self.client.resync()
        self.baud = self.fast_baud = self._raise_baud()
        self.log(
            f"flash JEDEC id {self.flash.jedec_hex}, {self.flash.size // 1024} KiB; "
            f"link at {self.baud} baud"
        )

    def _enter_rom(self) -> str:
        port, client = self.port, self.client
        assert port and client
        first_rx = len(port.log)
        # a booting unit prints its log: let it finish before typing anything
        heard = port.drain_input(quiet=self.opts.settle, limit=4.0)
        port.write(UPGRADE_PREAMBLE)  # blind, as the tools do
        heard += port.drain_input(quiet=0.12, limit=1.0)
        # one probe whose answer is kept: a unit at another baud answers with garbage
        port.write(brom.SYNC_BYTE)
        reply = client.read_reply(0.3)
        heard += reply
        text = heard.decode("latin-1")
        self.heard = text
        rom_ok = reply.endswith(b"OK") and not reply.endswith(b" OK")  # not "<ACK> 200 OK"
        if rom_ok or client.sync(attempts=10, wait=0.2):
            port.clear_buffer()
            via = "console" if "<ACK> 200 OK" in text else "recovery mode"
            if via == "console":
                self.log("the firmware console took 'upgrade'")
            return via
        for rate in TOOL_BAUDS:  # an interrupted earlier run may have left it raised
            if rate <= ROM_BAUD or not self._host_rate_ok(rate):
                continue
            if client.sync(attempts=2, wait=0.1):
                self.log(f"the ROM was still at {rate} baud from an earlier run")
                self.baud = rate
                return "recovery mode"
        self._set_host_baud(self.opts.baud)
        # judge by everything the unit sent, the answers to the sync attempts included
        heard = b"".join(e.data for e in port.log[first_rx:] if e.direction == "rx")
        text = heard.decode("latin-1")
        msg = (
            f"no XR872 boot ROM on {self.opts.port}: 0x55 was not answered with OK, and "
            f"'upgrade' sent at {self.opts.baud} baud did not start it."
        )
        hint = STRAP_HELP
        if heard and not _looks_like_text(heard):
            msg += f" Something sent unreadable bytes ({heard[:16].hex()}): a baud mismatch."
            hint = (
                f"the XR872 ROM and console talk at {ROM_BAUD} baud: rerun with --baud "
                f"{ROM_BAUD}; if that fails too, " + STRAP_HELP
            )
        elif "<ACK> 200 OK" in text:
            msg += " The firmware console answered 'upgrade' but the ROM did not answer after."
            hint = "power-cycle the unit and run the command again, or " + STRAP_HELP
        elif heard and self.opts.baud == ROM_BAUD:
            msg += f" The unit printed text but did not take 'upgrade' ({text.strip()[-60:]!r})."
        elif heard:
            # text, but at a rate the ROM never uses: a few bytes read in the moment the
            # port was opened, before its rate was set, can be readable
            msg += (
                f" The unit printed ({text.strip()[-60:]!r}) but did not take 'upgrade' at"
                f" {self.opts.baud} baud, which is not the {ROM_BAUD} the ROM and console"
                " use: most likely a baud mismatch."
            )
            hint = f"rerun with --baud {ROM_BAUD}; if that fails too, " + STRAP_HELP
        elif self.opts.baud != ROM_BAUD:
            msg += (
                f" Nothing at all came back at {self.opts.baud} baud, which is not the"
                f" {ROM_BAUD} the ROM and console use: most likely a baud mismatch."
            )
            hint = (
                f"rerun with --baud {ROM_BAUD} (a unit that had finished booting before the"
                " port opened prints nothing more); if that fails too, " + STRAP_HELP
            )
        else:
            msg += " Nothing at all came back."
        raise ConsoleError(msg, flash_state=UNTOUCHED, hint=hint)

    def _set_host_baud(self, rate: int) -> None:
        """Switch the host's adapter; pyserial's refusal becomes a TransportError."""
        assert self.port
        old = self.port.baud
        try:
            self.port.set_baud(rate)
        except (serial.SerialException, ValueError, OSError) as e:
            self.port.baud = old
            try:
                self.port.ser.baudrate = old
            except (serial.SerialException, ValueError, OSError):
                pass
            raise TransportError(f"the serial adapter refuses {rate} baud: {e}") from e

    def _host_rate_ok(self, rate: int) -> bool:
        try:
            self._set_host_baud(rate)
        except TransportError:
            return False
        return True

    def _raise_baud(self) -> int:
        """One SETUART to ``max_baud`` (the tools' way); see the module docstring."""
        assert self.port and self.client
        current, rate = self.port.baud, self.opts.max_baud
        if rate == current:
            return current
        if self.opts.port.startswith("socket://"):
            # pyserial's socket:// cannot change the far adapter's rate: SETUART would garble
            self.log(f"{self.opts.port}: the link's rate cannot be changed; staying at {current}")
            return current
        # try the host side first: an adapter that refuses the rate stops us before SETUART
        try:
            self._set_host_baud(rate)
            self._set_host_baud(current)
        except TransportError as e:
            raise ConsoleError(
                f"{e} (the unit was not told to change its rate; it is still at {current} baud)",
                flash_state=UNTOUCHED,
                hint=f"run again with --max-baud {DEFAULT_BAUD} (most USB-TTL adapters do it) "
                f"or --max-baud {ROM_BAUD}",
            ) from e
        try:
            self.client.command(
                brom.Request(brom.Cmd.SETUART, value=brom.LCR_8N1 | (rate & 0xFFFFFF))
            )
        except brom.BromError as e:
            self.log(f"the ROM refused {rate} baud ({e}); staying at {current}")
            self.client.resync()
            return current
        self._set_host_baud(rate)
        if self.client.sync(attempts=10, wait=0.1):
            return rate
        self.log(f"SETUART {rate} was acknowledged but the ROM does not answer at {rate}")
        if self.client.sync(attempts=10, wait=0.2):
            return rate
        self._set_host_baud(ROM_BAUD)
        if self.client.sync(attempts=5, wait=0.2):
            self.log(f"the ROM answers at {ROM_BAUD} again; staying there")
            return ROM_BAUD
        again = (
            "the engine types 'upgrade' for you again"
            if self.entered_via == "console"
            else "strap PB02/PB03 to GND again if the unit has no working firmware"
        )
        raise DeviceError(
            f"the ROM acknowledged the switch to {rate} baud, but it answers neither at {rate} "
            f"nor at {ROM_BAUD}: your USB-TTL adapter does not really do {rate} baud. The "
            f"ROM stays at {rate} until it is reset",
            flash_state=UNTOUCHED,
            hint=f"power-cycle the unit (its ROM starts again at {ROM_BAUD}; {again}), then run "
            f"the same command with --max-baud {DEFAULT_BAUD if rate > DEFAULT_BAUD else ROM_BAUD}"
            + (f" (or --max-baud {ROM_BAUD}, the safest)" if rate > DEFAULT_BAUD else ""),
        )

    @contextlib.contextmanager
    def _whole_exchange(self) -> Iterator[None]:
        """Hold a Ctrl-C or SIGTERM that comes during one exchange with the ROM until the
        exchange is complete, so no frame is left half-sent; a second one is not held."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        held: list[int] = []

        def hold(signum: int, _frame: object) -> None:
            if held:
                raise KeyboardInterrupt(f"signal {signum}")
            held.append(signum)

        old = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        if held:
            raise KeyboardInterrupt(f"signal {held[0]}")

    def _interrupted(self) -> Interrupted:
        """After Ctrl-C or SIGTERM: the ROM in step (a frame cut by a second Ctrl-C is
        ended by the ROM's inter-byte timeout), back at 115200 if the engine raised it;
        the error says what the flash holds and what finishes the job."""
        where = "the ROM waits at 115200 for the next run"
        if self.client and self.entered_via and not self.rebooted:
            try:
                self.client.retries = 0
                self.client.resync()
                if self.baud != ROM_BAUD:
                    if not self.client.set_uart(ROM_BAUD, sync_attempts=3):
                        raise brom.BromError("no answer at 115200")
                    self.baud = ROM_BAUD
            except (brom.BromError, TransportError):
                where = (
                    f"the ROM did not answer after it (it may still be at {self.baud} baud; "
                    "the next run looks for it there)"
                )
        return Interrupted(
            f"interrupted (Ctrl-C or SIGTERM) between two exchanges with the ROM; {where}",
            flash_state="untouched" if self.state.startswith("untouched") else self.state,
            hint=self.restore_hint or None,
        )

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            with self._whole_exchange():
                return fn(*args)
        except KeyboardInterrupt as e:
            raise self._interrupted() from e
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
        """REBOOT, then listen at 115200 for the SDK boot log and its ``mac address:``
        block; a console that answers Enter with ``$ `` booted too; a ROM that answers the
        sync means recovery mode."""
        assert self.port and self.client
        self._call(self.client.reboot)
        self.rebooted = True
        self._set_host_baud(ROM_BAUD)
        self.baud = ROM_BAUD
        self.port.clear_buffer()
        try:
            self.port.expect([BANNER_RE], timeout=self.opts.boot_wait)
            seen = self.port.match.group(0)
            try:
                self.port.expect([MAC_BLOCK_RE], timeout=max(1.0, self.opts.boot_wait / 2))
                m = self.port.match
                text = (seen + self.port.before + m.group(0))[-600:]
                return BootCheck("booted", True, text.strip(), m.group(1), m.group(2))
            except TransportError:
                return BootCheck("booted", True, (seen + self.port.pending_text()).strip()[-600:])
        except TransportError:
            heard = self.port.pending_text()
        # the log may have gone by while the host was still at the raised baud:
        # the SDK console answers a line with "$ ", the ROM ignores it
        self.port.clear_buffer()
        self.port.sendline("")
        try:
            self.port.expect([PROMPT_RE], timeout=1.0)
            return BootCheck("booted", True, (heard + self.port.before).strip()[-600:])
        except TransportError:
            heard += self.port.pending_text()
        if self.client.sync(attempts=5, wait=0.2):
            return BootCheck("recovery mode", False, heard.strip()[-600:])
        return BootCheck("silent", False, heard.strip()[-600:])


def _looks_like_text(data: bytes) -> bool:
    """Mostly printable and holding a word (three letters in a row): what the ROM or
    the console prints at the right rate. Bytes heard at the wrong rate can be
    printable by chance (a 115200 banner's '=====' rule read at 9600 came out as a
    run of '='), but not words."""
    if not data:
        return False
    printable = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.9 * len(data) and re.search(rb"[A-Za-z]{3}", data) is not None
