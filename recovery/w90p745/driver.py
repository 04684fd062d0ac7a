"""The W90P745 boot loader's console (``bootloader > ``): the driver the operations use.

Facts from seed 001, REFERENCE.md and the family's loader source (WBLv1_1
``shell/sh.c``, ``Xmodem/xmodem.c``): console 115200 8N1; at power-on the
loader prints its banner and ``Press ESC to enter debug mode``; ESC in that
window gives the prompt ``bootloader > ``. ``ls -al`` lists the image table;
``d 0x<addr>`` shows 256 bytes and a bare ``d`` the next 256 (format in
:mod:`recovery.w90p745.parsers`); ``fx`` programs an image into flash from an
Xmodem-CRC download in 128-byte blocks.

What the driver does, and why:

* **Attach.** It sends ESC and two CRs as soon as the port is open (the ESC
  catches a boot that is already in its ESC window; at an idle prompt the
  line editor takes ESC and the next byte as an escape sequence, and the
  second CR brings a fresh prompt at once), then watches: on ``Press ESC`` it sends
  ESC three more times; at an idle prompt it sends CR and waits for the
  prompt at the start of a line. When it sees Linux booting or running it
  asks for a power cycle and keeps waiting for the boot loader.
* **Commands.** Each command is typed, its echo is read back and compared,
  and only then is CR sent: a command damaged on the way in (``d`` and ``e``
  differ by one bit) is never executed. The prompt is matched only at the
  start of a line, so ``bootloader > `` inside a page's ASCII column (the
  loader's own strings) is not taken for it.
* **Pages** are read with ``d``. Each line of a page is checked on its own
  (well formed, the address column one of the page's rows, the hex and ASCII
  columns agreeing: DEL printed raw, ``.`` for any byte <= 0x20 or > 0x7F).
  ``reads=1`` (what dumps use: the image is then checked against its
  footer's checksum by the operations) takes one read that passes the strict
  page check. With ``reads=2`` a row is accepted when two reads that passed
  the checks agree on it and no other reading competes, so a page hit by
  noise is assembled from the good rows of several reads; agreement catches
  a flipped bit that turns one hex digit into another behind a ``.`` in the
  ASCII column. When more than 0.5 % of the rows read are damaged the driver
  asks for one more agreeing read. A
  page that cannot be confirmed in ``page_tries`` reads is a clear error
  naming its address. The image table (``ls -al``) is read until two
  complete listings agree, and a line that is not an image line fails the
  listing (so a damaged line cannot make an image vanish).
* **Writes** use ``fx`` over Xmodem-CRC with 128-byte blocks only
  (:mod:`recovery.xmodem`; the loader's ``xmodem.c`` knows no 1K blocks).
  ``fx`` asks ``Find image %d existed!`` / ``Do you want to delete it?[y/N]``
  when the number is in use and deletes the old image *before* receiving:
  :meth:`W90Console.fx` answers ``y`` only when told to (the caller has
  checked the new image first). The sender waits for the block-1 ACK the
  receiver sends before reading the block and for the block's own one, gives
  up at once when a block gets no answer (the receiver never times out: a
  resent block would be taken for the rest of a block that lost a byte) and
  ends the receiver with CAN bytes; a cancelled download raises
  :class:`TransferFailed` (nothing was written; the old image is gone).
  :func:`check_fx_entry` refuses what ``fx`` cannot recreate exactly.
* **A restart** (power cut, watchdog) is noticed from the loader's banner
  in any reply (:class:`DeviceRestarted`), not after a prompt timeout.
* **Speed**: :meth:`W90Console.set_speed` sends ``B rate`` (the loader
  switches at once, without an answer), follows on the host and checks the
  prompt at the new rate; :meth:`W90Console.read_page` continues with a bare
  ``d`` after a page that was read at the address asked for.
* **Cancelling a line.** When an echo is wrong the driver erases the line
  with backspaces (universal on boot loaders). A backspace that a bit error
  turns into LF (0x08 -> 0x0A) would run the partial line; partial ``d``
  lines only display memory.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import NoReturn

from recovery.errors import ConsoleError, DeviceError, ImageError, VerifyError
from recovery.progress import Notify, stderr_notify
from recovery.transport import Port, Timeout
from recovery.w90p745.parsers import (
    LINES_PER_PAGE,
    ImageEntry,
    LoaderInfo,
    PageError,
    parse_banner,
    parse_image_table,
    parse_page,
    parse_page_rows,
)
from recovery.xmodem import XmodemError, XmodemResult
from recovery.xmodem import send as xmodem_send

FLASH_BLOCK = 0x10000  # the loader erases and places images in 64 KiB blocks

ESC = "\x1b"
PROMPT_RE = re.compile(r"[\r\n]bootloader > ")
PROMPT_END_RE = re.compile(r"[\r\n]bootloader > \Z")
PRESS_ESC_RE = re.compile(r"Press ESC to enter debug mode")
BANNER_RE = re.compile(r"W90P745 Boot Loader")
LINUX_RE = re.compile(
    r"Linux version|Uncompressing Linux|Kernel command line|Freeing init memory|"
    r"VFS: Mounted root|BusyBox|login: |[\r\n](?:\S*)# "
)
_ERROR_RE = re.compile(r"(?i)\b(error|fail(?:ed)?|invalid|unknown|not found|protected|abort)")


class EchoError(Exception):
    """The loader's echo of a typed command was not the command."""


class DeviceRestarted(ConsoleError):
    """The loader's banner came back: the camera restarted (power cut, watchdog)."""


class TransferFailed(DeviceError):
    """The Xmodem download into ``fx`` failed; the loader wrote nothing."""


ASK_DELETE_RE = re.compile(r"Do you want to delete it\?\[y/N\]\r?\n")
RECEIVER_RE = re.compile(r"Press Ctrl-x to cancel \.\.\. \r?\n")
LOADER_BAUDS = (460800, 230400, 115200)  # the fast end of B's list
# The loader's output is ASCII (d prints bytes > 0x7F as '.'): a run of other
# bytes at a raised rate is its 115200 banner after a restart.
GARBLED_RE = re.compile(r"[\x00\x80-\xff]{4}")
_LINE_END_RE = re.compile(r"\n")


# -- the console -------------------------------------------------------------------


class W90Console:
    """The boot loader's console on an open :class:`Port`."""

    def __init__(
        self,
        port: Port,
        *,
        notify: Notify = stderr_notify,
        page_tries: int = 16,
    ) -> None:
        self.port = port
        self.notify = notify
        self.page_tries = page_tries
        self.banner = ""
        self.attached_by = ""
        self.page_retries = 0
        self.pages_read = 0
        self.rows_read = 0
        self.rows_bad = 0
        self.d_next: int | None = None  # where a bare 'd' continues
        self.prefetch: int | None = None  # a page whose bare 'd' was sent ahead

    # -- timing from the wire ------------------------------------------------------
    def wire(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the line (8N1: 10 bits a byte)."""
        return nbytes * 10.0 / max(self.port.baud, 1)

    # -- attach ----------------------------------------------------------------------
    def attach(self, wait: float = 30.0) -> str:
        """Reach an idle ``bootloader > `` prompt; return how ("power-on" or "prompt")."""
        port = self.port
        started = time.monotonic()
        deadline = started + wait
        # ESC stops a boot that is in its ESC window. At an idle prompt the line
        # editor (NU_parse) takes ESC and the byte after it as an escape sequence,
        # so the first CR is swallowed and the second answers with a fresh prompt
        # at once (one CR alone left the engine waiting for the idle poke).
        port.write(ESC + "\r\r")
        seen = ""
        told_linux = False
        told_power = False
        got_esc_prompt = False
        last_rx = time.monotonic()
        last_poke = 0.0
        pending = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                i = port.expect(
                    [PRESS_ESC_RE, PROMPT_RE, LINUX_RE, BANNER_RE], timeout=min(0.3, left)
                )
            except Timeout:
                now = time.monotonic()
                if len(port.pending_text()) != pending:
                    pending = len(port.pending_text())
                    last_rx = now
                elif now - last_rx > 0.3 and now - last_poke > 1.0:
                    port.send("\r")  # an idle prompt answers with a fresh one
                    last_poke = now
                if not (told_power or told_linux) and now - started > 1.5:
                    told_power = True
                    self.notify(
                        f"Waiting for the boot loader on {port.url}: power the camera on now."
                    )
                continue
            last_rx = time.monotonic()
            pending = 0
            seen += port.before + port.match.group(0)
            if i == 0:
                port.write(ESC * 3)
                got_esc_prompt = True
                self.banner = seen
            elif i == 1:
                self.sync()
                self.attached_by = "power-on" if got_esc_prompt else "prompt"
                return self.attached_by
            elif i == 2 and not told_linux:
                told_linux = True
                self.notify(
                    "Linux is running on the camera. Power-cycle the camera now (unplug and "
                    "replug its power); camrescue catches the boot loader as it starts."
                )
            elif i == 3:
                seen = port.match.group(0)
        if told_linux:
            raise ConsoleError(
                f"Linux kept running: the camera was not power-cycled within {wait:.0f} s",
                flash_state="untouched",
                hint="run the command again and power-cycle the camera while it waits",
            )
        raise ConsoleError(
            f"no boot loader on {port.url} within {wait:.0f} s "
            f"(seen: {port.pending_text()[-80:]!r})",
            flash_state="untouched",
            hint="check the wiring (camera TX to adapter RX, GND), the baud (115200) and that "
            "no other program holds the port. If the camera has already booted (Linux may "
            "print nothing), power-cycle it while camrescue waits",
        )

    def sync(self, tries: int = 8) -> None:
        """Wait until the line is quiet, then send CRs until the output ends in a fresh prompt.

        Each try sends twice as many CRs as the last (up to 64): a USB adapter
        that loses a burst of input can swallow a few of them.
        """
        port = self.port
        self.prefetch = None
        port.drain_input(quiet=0.05, limit=5.0)
        for attempt in range(tries):
            port.clear_buffer()
            port.send("\r" * min(1 << attempt, 64))
            try:
                port.expect(PROMPT_RE, timeout=0.5 + self.wire(64 * 16))
            except Timeout:
                continue
            rest = port.pending_text() + port.drain_input(quiet=0.03, limit=5.0).decode("latin-1")
            port.clear_buffer()
            if not rest or PROMPT_END_RE.search(rest):
                return
        raise ConsoleError(
            "the boot loader prompt does not answer cleanly",
            flash_state="untouched by this step",
            hint="check the line (a USB adapter that drops data, a loose wire); "
            "power-cycle the camera and run again",
        )

    # -- commands --------------------------------------------------------------------
    def _type(self, text: str) -> None:
        """Type ``text`` and check its echo; on a bad echo erase the line and raise EchoError."""
        self._flush_prefetch()
        port = self.port
        port.clear_buffer()
        port.send(text)
        echo = port.read_exact(len(text), timeout=0.5 + self.wire(len(text)) * 2)
        if echo != text.encode("latin-1"):
            port.send("\b" * (len(text) + 2))
            port.drain_input(quiet=0.05, limit=2.0)
            port.clear_buffer()
            raise EchoError(f"echo {echo!r} for {text!r}")

    def command(self, text: str, timeout: float) -> str:
        """Run one command; return what it printed before the next prompt (echo excluded)."""
        self._type(text)
        self.port.send("\r")
        return self.wait_prompt(timeout)

    def wait_prompt(self, timeout: float) -> str:
        """The text before the next prompt; DeviceRestarted when the banner comes instead
        (or, at a raised rate, bytes no loader output holds: the banner at 115200)."""
        pats = [PROMPT_RE, BANNER_RE]
        if self.port.baud != 115200:
            pats.append(GARBLED_RE)
        if self.port.expect(pats, timeout=timeout) != 0:
            self.restarted()
        return self.port.before

    def restarted(self) -> NoReturn:
        self.d_next = None
        if self.port.baud != 115200:
            self.port.set_baud(115200)  # a reset returns the loader to 115200
        raise DeviceRestarted(
            "the camera restarted (its boot loader banner came back): power cut or reset",
            hint="check the camera's power supply, then run the command again",
        )

    def run(self, text: str, timeout: float = 5.0, tries: int = 3) -> str:
        """:meth:`command` with resync-and-retry on a bad echo or a timeout."""
        last: Exception | None = None
        for _ in range(tries):
            try:
                return self.command(text, timeout + self.wire(4096))
            except (EchoError, Timeout) as e:
                last = e
                self.d_next = None
                self.sync()
        raise ConsoleError(
            f"the boot loader did not run {text!r}: {last}",
            hint="check the line and the camera; run again",
        )

    # -- what the loader knows -----------------------------------------------------------
    def loader_info(self) -> LoaderInfo:
        return parse_banner(self.banner)

    def list_images(self, tries: int = 12) -> list[ImageEntry]:
        """The image table from ``ls -al``, read until two complete reads agree.

        Every line of the listing must be an image line, so a line damaged on
        the wire fails the read instead of dropping out of the table.
        """
        seen: list[list[ImageEntry]] = []
        for _ in range(tries):
            out = self.run("ls -al")
            try:
                table = parse_image_table(out, strict=True)
            except ValueError:
                continue
            if table in seen:
                return table
            seen.append(table)
        raise ConsoleError(
            "could not read the image table twice alike (ls -al)",
            flash_state="untouched",
            hint="the serial line is damaging data: use a shorter cable or another adapter",
        )

    # -- pages -------------------------------------------------------------------------
    def _flush_prefetch(self) -> None:
        """Consume the page a bare ``d`` sent ahead asked for, when nobody wants it."""
        if self.prefetch is None:
            return
        self.prefetch = None
        try:
            self.wait_prompt(1.0 + self.wire(1400) * 3)
        except Timeout:
            self.sync()

    def read_page(
        self, address: int, *, reads: int = 2, expect: bytes | None = None, ahead: bool = False
    ) -> bytes:
        """The 256 bytes at ``address``, read until they are trustworthy.

        ``reads=1`` trusts one read that passes every page check. Otherwise
        the page is assembled row by row: a 16-byte row is accepted when
        ``reads`` reads that passed the line's checks agree on it (a row hit by
        noise in one read is taken from the others). With ``expect`` (the
        read-back after a write) one complete read equal to it is enough.
        Raises VerifyError when ``page_tries`` reads do not get there.

        ``ahead`` (the caller reads the next page next): once this page was
        read, a bare ``d`` is sent at once, so the loader prints the next page
        without waiting for the host (two bytes wait in its UART's receive
        FIFO while it prints); the next call takes that page, its echo first.
        """
        votes: list[Counter[bytes]] = [Counter() for _ in range(LINES_PER_PAGE)]
        problems: list[str] = []
        for attempt in range(self.page_tries):
            cmd = "d" if self.d_next == address else f"d 0x{address:08X}"
            self.d_next = None
            if attempt >= max(reads, 1):
                self.page_retries += 1
            try:
                if attempt == 0 and self.prefetch == address:
                    self.prefetch = None
                    out = self.wait_prompt(1.0 + self.wire(1400) * 3)
                    head, sep, rest = out.partition("\n")
                    if head.rstrip("\r") != "d" or not sep:
                        raise EchoError(f"echo {head[:20]!r} for 'd' sent ahead")
                    out = rest
                else:
                    out = self.command(cmd, timeout=1.0 + self.wire(1400) * 3)
            except (EchoError, Timeout) as e:
                problems.append(str(e).splitlines()[0][:100])
                self.sync()
                continue
            if "Displaying memory at" in out and f"0x{address:X}\n" in out.replace("\r", ""):
                self.d_next = address + 256
            self.pages_read += 1
            if reads <= 1 or expect is not None:
                try:
                    data = parse_page(out, address)
                except PageError as e:
                    # The prompt came back, so the loader is idle: read again at once.
                    # Stray output (a prompt faked by a lost burst) fails the next echo.
                    problems.append(str(e)[:100])
                else:
                    self.d_next = address + 256
                    if reads <= 1 or data == expect:
                        if ahead:
                            self.port.send("d\r")
                            self.prefetch = self.d_next
                        return data
            rows = parse_page_rows(out, address)
            self.rows_read += LINES_PER_PAGE
            self.rows_bad += LINES_PER_PAGE - len(rows)
            for index, row in rows.items():
                votes[index][row] += 1
            need = self.agreement(reads)
            if all(_lead(v) >= need for v in votes):
                return b"".join(v.most_common(1)[0][0] for v in votes)
        need = self.agreement(reads)
        missing = [f"0x{address + 16 * i:08X}" for i, v in enumerate(votes) if _lead(v) < need]
        raise VerifyError(
            f"the page at 0x{address:08X} could not be read reliably in {self.page_tries} tries "
            f"(rows not confirmed: {', '.join(missing[:4]) or 'none'}"
            f"{'; last problems: ' + '; '.join(problems[-2:]) if problems else ''})",
            flash_state="untouched (dumps only read)",
            hint="the serial line is losing or damaging data: try a shorter cable, another "
            "USB adapter or a real RS-232 port, then run the same command again (it resumes)",
            facts={"bad_page": f"0x{address:08X}"},
        )

    def agreement(self, reads: int) -> int:
        """How far a row's most frequent reading must lead all others together.

        ``reads`` on a clean line. Once more than 0.5 % of the rows read were
        damaged, one more: on a line that noisy the same undetectable flip (a
        hex digit turned into another behind a '.' in the ASCII column) can hit
        two reads of a row, and three agreeing reads make that negligible.
        """
        noisy = self.rows_bad > 2 + 0.005 * self.rows_read
        return reads + 1 if noisy else reads

    # -- speed -----------------------------------------------------------------------
    def can_open(self, rate: int) -> bool:
        """Whether the host's port takes ``rate`` (tried and set back; nothing sent)."""
        port = self.port
        old = port.baud
        try:
            port.set_baud(rate)
        except Exception:  # noqa: BLE001 - pyserial raises ValueError/SerialException/OSError
            with contextlib.suppress(Exception):
                port.set_baud(old)
            return False
        port.set_baud(old)
        return True

    def set_speed(self, rate: int) -> bool:
        """``B rate``: the loader switches at once without an answer; follow on the host
        and check the prompt. False when the prompt does not answer at ``rate``: then
        the loader is asked back to the old rate, and when it does not answer there
        either the person is asked to power-cycle the camera (it starts at 115200)
        and camrescue attaches again."""
        port = self.port
        old = port.baud
        if rate == old:
            return True
        if not self.can_open(rate):
            return False
        self._type(f"B {rate}")
        port.send("\r")
        # the echo's line end comes at the old rate, then the loader switches at once:
        # follow as soon as it is here (sync drains what comes garbled meanwhile)
        with contextlib.suppress(Timeout):
            port.expect(_LINE_END_RE, timeout=0.05 + self.wire(16))
        port.set_baud(rate)
        self.d_next = None
        try:
            self.sync(tries=4)
            return True
        except ConsoleError:
            pass
        # the camera may be at ``rate`` on a line that garbles it: ask it back
        port.send("\r\rB " + str(old) + "\r")
        port.drain_input(quiet=0.1, limit=1.0)
        port.set_baud(old)
        try:
            self.sync(tries=4)
            return False
        except ConsoleError:
            pass
        port.set_baud(115200)
        self.notify(
            f"The boot loader does not answer at {rate} or {old} baud: power-cycle the camera "
            "now (unplug and replug its power; it starts at 115200). camrescue waits for it."
        )
        self.attach(wait=60.0)
        return False

    # -- flash writes ------------------------------------------------------------------
    def abort_transfer(self) -> None:
        """End the loader's Xmodem receiver: a CAN where a block header is due ends it;
        inside a block it waits for the block's bytes, so CANs fill it up (NAK) first."""
        port = self.port
        port.write(bytes([0x18]) * 5)
        seen = port.drain_input(quiet=0.2 + self.wire(64), limit=2.0)
        if b"Download error" not in seen and b"bootloader > " not in seen:
            port.write(bytes([0x18]) * 140)
            port.drain_input(quiet=0.2 + self.wire(200), limit=3.0)
        self.d_next = None
        self.sync()

    def _fx_transfer(
        self,
        entry: ImageEntry,
        data: bytes,
        on_progress: Callable[[int, int], None],
        replace: bool,
        blocks: int,
    ) -> XmodemResult:
        """From the typed fx to the end of the Xmodem transfer."""
        port = self.port
        pats = [ASK_DELETE_RE, RECEIVER_RE, PROMPT_RE, BANNER_RE]
        i = port.expect(pats, timeout=10.0 + self.wire(400))
        if i == 0:
            if not replace:
                port.send("n")
                self.wait_prompt(10.0)
                raise DeviceError(
                    f"image {entry.number} exists and was not to be replaced",
                    flash_state="unchanged by this command",
                )
            port.send("y")
            i = port.expect(pats[1:], timeout=30.0 + 3.0 * blocks) + 1
        if i == 3:
            self.restarted()
        if i == 2:
            said = port.before.strip()
            raise DeviceError(
                f"the loader refused fx for image {entry.number} ({entry.name}): {said[-200:]!r}",
                flash_state="unchanged by this command"
                if "Deleting" not in said
                else f"image {entry.number} was deleted",
                hint="see the loader's message",
            )
        started = "C" in port.pending_text()
        port.clear_buffer()
        try:
            result = xmodem_send(
                port,
                data,
                use_1k=False,
                started=started,
                start_timeout=30.0,
                ack_timeout=1.0 + self.wire(133) * 4,
                retries=10,
                eot_timeout=2.0,
                eot_silent_tries=2,
                on_progress=on_progress,
                first_block_acks=2,
                abort_on=b"W90P745 Boot Loader",
                resend_on_timeout=False,
            )
        except XmodemError as e:
            if "restarted" in str(e):
                self.restarted()
            self.abort_transfer()
            raise TransferFailed(
                f"the Xmodem download of image {entry.number} ({entry.name}) failed: {e}",
                flash_state=f"image {entry.number} is not written (fx deleted the old one)",
                hint="run the restore again",
            ) from e
        return result

    def fx(
        self,
        entry: ImageEntry,
        data: bytes,
        on_progress: Callable[[int, int], None],
        *,
        replace: bool = False,
    ) -> str:
        """Program ``data`` as image ``entry`` with the loader's ``fx`` and Xmodem-128.

        ``replace``: answer ``y`` when ``fx`` asks to delete an existing image N
        (it deletes it before receiving). Raises TransferFailed when the
        download failed (nothing written), DeviceError when the loader refused.
        """
        port = self.port
        self.d_next = None
        blocks = -(-len(data) // FLASH_BLOCK) + 1
        text = fx_command(entry)
        entered = False
        try:
            for attempt in range(4):
                try:
                    self._type(text)
                    break
                except EchoError:
                    if attempt == 3:
                        raise TransferFailed(
                            f"could not type the fx command for image {entry.number}",
                            flash_state="unchanged by this command",
                        ) from None
                    self.sync()
            entered = True
            port.send("\r")
            result = self._fx_transfer(entry, data, on_progress, replace, blocks)
        except KeyboardInterrupt:
            # Ctrl-C, SIGTERM: leave the loader at its prompt. Before the CR the typed
            # line is erased (the next CR would start fx); after it the receiver,
            # waiting or receiving, is ended with CAN (it never times out).
            with contextlib.suppress(Exception):
                if entered:
                    self.abort_transfer()
                else:
                    port.send("\b" * (len(text) + 2))
                    port.drain_input(quiet=0.05, limit=2.0)
                    self.sync()
            raise
        out = self.wait_prompt(30.0 + 5.0 * blocks)
        self.sync()
        if "Download error" in out:
            raise TransferFailed(
                f"the loader reported a failed download of image {entry.number} ({entry.name})",
                flash_state=f"image {entry.number} is not written (fx deleted the old one)",
                hint="run the restore again",
            )
        if "Flash programming" not in out or _ERROR_RE.search(out):
            raise DeviceError(
                f"the loader reported a problem writing image {entry.number} ({entry.name}): "
                f"{out.strip()[-200:]!r}",
                flash_state=f"image {entry.number} may be missing or partly written",
                hint="run the restore again",
            )
        return f"{out.strip()} (xmodem: {result.blocks} blocks, {result.retransmissions} resent)"


def _lead(votes: Counter[bytes]) -> int:
    """Votes of the most frequent reading minus the votes of all the others."""
    if not votes:
        return 0
    top = votes.most_common(1)[0][1]
    return top - (sum(votes.values()) - top)


def fx_command(entry: ImageEntry) -> str:
    """The ``fx`` command line that writes ``entry`` (number, name, base, exec, flags).

    A name with spaces goes in double quotes (the loader's syntax for ``"BOOT INFO"``).
    """
    check_fx_entry(entry)
    name = f'"{entry.name}"' if " " in entry.name else entry.name
    flags = f" -{entry.flags}" if entry.flags else ""
    return f"fx {entry.number} {name} 0x{entry.base:08X} 0x{entry.exec_addr:08X}{flags}"


def check_fx_entry(entry: ImageEntry) -> None:
    """Refuse what ``fx`` cannot recreate exactly: the loader keeps 15 name characters,
    image numbers 0-31 and the flags a/c/x/z/f; a name cannot hold quotes."""
    problem = None
    if not 0 <= entry.number <= 31:
        problem = f"image number {entry.number} is outside 0-31"
    elif (
        not entry.name
        or len(entry.name) > 15
        or '"' in entry.name
        or entry.name != entry.name.strip()
    ):
        problem = f"image name {entry.name!r} cannot be given to fx (1-15 characters, no quotes)"
    elif not set(entry.flags) <= set("acxzf"):
        problem = f"flags -{entry.flags} are not the loader's (a, c, x, z, f)"
    elif entry.base % FLASH_BLOCK:
        problem = f"base 0x{entry.base:08X} is not a flash block address"
    if problem:
        raise ImageError(
            f"image {entry.number} ({entry.name}): {problem}",
            flash_state="untouched",
            hint="restore the other images with --images",
        )
