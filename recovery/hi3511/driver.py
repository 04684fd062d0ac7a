"""The console driver for the Hi3511's U-Boot 1.1.4 (prompt ``hilinux # ``).

Talks to the boot loader over a :class:`~recovery.transport.Port`: gets to its
prompt, types checked commands and reads their output, and drives the
long-running ones (``tftp``, ``erase``, ``cp.b``, ``bootm``) with progress and
stall timeouts. Facts from the seed (000) and REFERENCE.md; the lines the seed
does not show are modelled on U-Boot 1.1.4's sources.

Two U-Boot trees run on these cameras (REFERENCE.md): upstream 1.1.4 and
HiSilicon's (github zhhejun/u-boot-1.1.4, the seed's board). The driver works on
both without asking which:

* **Attach.** From the first moment it sends a space about every 30 ms until a
  prompt shows, then Enter. HiSilicon's ``abortboot`` stops only on a space, and
  with ``bootdelay`` 0 only on a key already waiting when the countdown starts;
  upstream stops on any key. The spaces typed meanwhile make the line non-empty,
  so upstream's repeat of the last command on an empty line cannot happen. It
  then syncs with a unique ``echo`` marker (after a Ctrl-C that drops a
  half-typed line: upstream prints ``<INTERRUPT>``, HiSilicon a newline) and waits
  for the marker's output line followed by the prompt, so neither the typed echo
  nor text such as crc32's ``==>`` can be taken for the prompt. When it sees
  Linux it asks for a power cycle and keeps waiting for the boot loader until
  ``--wait`` runs out.
* **Line ends.** The serial driver sends every ``\\n`` as ``\\r\\n``, so the
  echo of Enter is ``\\r\\r\\n``: lines are matched with ``\\r*\\n``.
* **Commands.** Every line is checked before it is typed (no ``;``, quotes,
  ``$``, spaces in names; hex addresses inside the board map); the engine types
  it without Enter and sends Enter only once the echo is exactly the line (a
  damaged echo: Ctrl-C, a sync, the line again), then waits for the prompt at
  the start of a line. While it
  waits for the echo or any answer, the power-on banner (``U-Boot code:``, ``RAM
  Configuration:``, the countdown) means the board restarted (a power cut while a
  line was being typed, or later): the countdown is stopped and the restart is
  reported at once with the flash state, never after the echo's timeout.
* **Timeouts** come from the work: bytes at the console's baud for echoes and
  output, the flash's own erase timeout (``flinfo``) times the sectors for
  ``erase`` (any output is progress: dots upstream, a redrawn ``[ nn%]`` bar in
  HiSilicon's tree), a worst-case word program time for copies, a minimum TFTP
  rate per byte, and for TFTP silence two of U-Boot's resend periods (it prints
  ``T `` or ``T`` on each) plus the flash work between two progress marks; lost
  servers are left to U-Boot's own retry count (``Retry count exceeded``).
* **TFTP ends** on ``Bytes transferred`` (downloads, both trees; its count must
  match) or ``upload ok`` (HiSilicon's uploads print no count): an upload is
  judged by the size and crc32 of the file received (recovery/hi3511/operations.py).

The order of the operations (what is erased when) is not decided here but in
recovery/hi3511/operations.py; the output parsers are in recovery/hi3511/parsers.py.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from recovery.errors import ConsoleError, DeviceError, NetworkError, UsageError, VerifyError
from recovery.hi3511.flashmap import BAUD, KERNEL_ADDRESS, Region, check_name, in_flash
from recovery.hi3511.parsers import (
    BootReport,
    FlashInfo,
    looks_like_garbage,
    note_kernel_line,
    parse_crc32,
    parse_env,
    parse_flinfo,
    parse_md_bytes,
)
from recovery.progress import Notify, Progress, stderr_notify
from recovery.transport import Port, Timeout

PROMPT = "hilinux # "
PROMPT_RE = r"(?:\A|\n)hilinux # "
AUTOBOOT_RE = r"Hit any key to stop autoboot"
# Lines U-Boot prints only while starting: the board restarted (power cut, watchdog,
# reset). Not the version line: the version command prints that too.
BANNER_RE = r"U-Boot code: |RAM Configuration:|Hit any key to stop autoboot"
EOL = r"\r*\n"
POKE_INTERVAL = 0.03  # seconds between the spaces that stop the countdown
# Signs that Linux (not U-Boot) owns the console.
LINUX_RE = r"Starting kernel|Uncompressing Linux|Linux version|VFS: |Kernel panic|BusyBox|login: "
# A shell prompt at the start of a line: "# ", "$ " or "[root@cam /]# ".
SHELL_RE = r"(?:\A|\n)(?:\[[^\]\r\n]*\] ?)?[#$] "

CBSIZE = 256
CP_CHUNK = 1 << 20

# Rates used to derive timeouts (worst cases, not typical values).
MIN_TFTP_RATE = 50_000  # bytes/s: a slow 10 Mbit link with 512-byte lock-step blocks
TFTP_RESEND = 5.0  # s: U-Boot's TFTP resend period (5 upstream, 3 in HiSilicon's tree)
ABORT_DELAY = 1.0  # s: net/net.c waits this long after printing "Abort"
TFTP_BLOCKS_PER_MARK = 64  # HiSilicon prints a # every 64 blocks (upstream every 10)
MIN_READ_RATE = 1_000_000  # bytes/s for crc32 over NOR or RAM on an ARM9
WORD_PROGRAM_MAX = 250e-6  # s per 16-bit word (NOR datasheets: ~10-60 us typ, 200+ max)
SCAN_RATE = 300_000  # bytes/s of JFFS2 mount scan on the camera's CPU


@dataclass
class TftpResult:
    bytes: int
    marks: int
    timeouts: int
    seconds: float


@dataclass(frozen=True)
class ShellQuery:
    """What to look at in the booted system's root shell: ``ls`` and ``cat`` of paths."""

    ls: tuple[str, ...] = ("/",)
    cat: tuple[str, ...] = ()


class UBoot:
    """Talks to U-Boot 1.1.4 over a :class:`~recovery.transport.Port`."""

    def __init__(
        self,
        port: Port,
        *,
        baud: int = BAUD,
        progress: bool = False,
        status: Callable[[str], None] | None = None,
        notice: Notify = stderr_notify,
    ) -> None:
        self.port = port
        self.baud = baud
        self.progress = progress
        self.status = status or (lambda text: None)
        self.notice = notice  # what a person must hear even with --json (a retyped command)
        self.flinfo: FlashInfo | None = None

    # -- timing -------------------------------------------------------------------------
    def line_time(self, nbytes: int) -> float:
        """Seconds the console needs for ``nbytes`` (10 bits a byte for 8N1), plus slack."""
        return 2.0 + nbytes * 10 / self.baud

    # -- attaching ------------------------------------------------------------------------
    def attach(self, wait: float, *, reboot: bool = False) -> str:
        """Get to the prompt. Returns how: "autoboot", "prompt" or "reboot".

        With ``reboot``, a Linux root shell found on the console is told to ``reboot``
        (as good as a power cycle, without touching the camera) and the countdown of
        the boot loader that follows is caught.
        """
        deadline = time.monotonic() + max(wait, 0.5)
        # the countdown's first line, or one of its per-second redraws
        patterns = [AUTOBOOT_RE + r"|\x08\x08\x08[ \d]\d ", PROMPT_RE, SHELL_RE, LINUX_RE]
        rebooted = False
        consumed = ""
        linux_seen = False
        asked = False
        countdown = False
        garbage_rounds = last_len = 0
        started = time.monotonic()
        last_check = quiet_since = started
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # a space now and then: it stops either tree's countdown, even one of 0 s
            self.port.write(b" ")
            try:
                idx = self.port.expect(patterns, timeout=min(left, POKE_INTERVAL))
            except Timeout:
                now = time.monotonic()
                if now - last_check < 0.25:
                    continue
                last_check = now
                pending = consumed + self.port.pending_text()
                if pending[last_len:].strip(" "):
                    quiet_since = now  # the board printed something of its own
                elif now - quiet_since >= 0.25 and not countdown:
                    # only our spaces come back (a prompt or a shell), or nothing (a command
                    # still running, or no power): Ctrl-C gives a fresh prompt in U-Boot and
                    # in a shell and stops a running tftp; it is not sent while a countdown
                    # may be running (HiSilicon's takes a key other than a space as a
                    # shorter second)
                    self.port.write(b"\x03")
                    quiet_since = now
                if len(pending) > last_len and looks_like_garbage(pending[-400:]):
                    # the line keeps answering with garbage (a noise burst at plug-in
                    # happens once): give up early after three such rounds
                    garbage_rounds += 1
                    if garbage_rounds >= 3:
                        break
                last_len = len(pending)
                if now - started > 2 and not asked and not linux_seen and left > 2:
                    asked = True
                    self.status(
                        f"no prompt yet on {self.port.url}: power the camera on (or cycle its "
                        f"power) now; waiting {max(0.0, deadline - time.monotonic()):.0f} s"
                    )
                continue
            consumed += self.port.before + self.port.match.group(0)
            if idx == 0:
                countdown = True
                continue
            if idx == 1:
                # sync's Ctrl-C ends the line of spaces typed meanwhile (not Enter: an
                # empty line would repeat the last command in upstream U-Boot)
                self.sync()
                if countdown:
                    return "reboot" if rebooted else "autoboot"
                return "prompt"
            if idx == 2 and reboot and not rebooted:
                rebooted = True
                linux_seen = True
                self.status("the camera is running Linux: typing 'reboot' in its shell")
                self.port.write(b"\x03")
                self.port.sendline("reboot")
                continue
            if not linux_seen:
                linux_seen = True
                self.status(
                    "the camera is running Linux, not U-Boot: power-cycle it now (unplug, plug "
                    f"in); waiting {max(0.0, deadline - time.monotonic()):.0f} s for its boot loader"
                )
        seen = consumed + self.port.pending_text()
        tail = seen[-300:]
        if looks_like_garbage(seen[-400:]):
            raise ConsoleError(
                f"garbage on {self.port.url}: the console is probably not at {self.baud} baud",
                flash_state="untouched",
                hint=f"use --baud 115200 (the Hi3511 console is 115200 8N1); check GND; seen: {tail!r}",
            )
        if linux_seen:
            raise ConsoleError(
                "the camera is running Linux: the engine needs U-Boot's prompt",
                flash_state="untouched",
                hint="power-cycle the camera and run the command again right away (or with "
                "--wait 30 and cycle the power while it waits): the engine stops the "
                "autoboot countdown. With a root shell on the console, --reboot types "
                "'reboot' instead",
            )
        if seen.strip():
            raise ConsoleError(
                f"no U-Boot prompt on {self.port.url} (the camera printed something else)",
                flash_state="untouched",
                hint=f"check --baud and that this is a Hi3511 camera; seen: {tail!r}",
            )
        raise ConsoleError(
            f"no answer from the camera on {self.port.url} within {wait:.1f} s",
            flash_state="untouched",
            hint="check that the camera is powered, that TX/RX are crossed (adapter TX to "
            "camera RX), GND is connected, and the port is right; give --wait N to have "
            "time to power it on",
        )

    def sync(self, *, again: bool = True, tries: int = 3) -> None:
        """Be sure the next thing on the line is a fresh prompt: a unique echo marker.

        A restart banner instead of the marker (the power came back as the engine
        attached) is met once more: the countdown is stopped and the marker typed again.
        A marker that does not come back (damaged on the line) is typed again, with a
        new value, ``tries`` times in all: ``echo`` changes nothing, whatever arrives."""
        seen = ""
        for attempt in range(1, tries + 1):
            marker = "CRSYNC" + secrets.token_hex(4).upper()
            # Ctrl-C drops whatever a person (or a damaged earlier line) half typed.
            self.port.write(b"\x03")
            self.port.sendline(f"echo {marker}")
            try:
                which = self.port.expect(
                    [r"(?:\A|\n)" + marker + EOL + "hilinux # ", BANNER_RE], self.line_time(64)
                )
            except Timeout as t:
                seen = t.seen[-200:]
                if attempt < tries:
                    self.notice(
                        f"U-Boot's answer to the sync marker did not come back (line noise?): "
                        f"typing a new one ({attempt + 1} of {tries})"
                    )
                continue
            if which == 1:
                # restarted while the marker was typed (a power cycle as the engine
                # attached): nothing was written yet; stop the countdown and sync once more
                if not again:
                    self._restarted("the typing of the sync marker")
                self._catch_countdown()
                self.sync(again=False)
            return
        raise ConsoleError(
            f"U-Boot did not answer the sync marker ({tries} tries)",
            hint=f"check --baud and the wiring; seen: {seen!r}",
        )

    # -- commands ------------------------------------------------------------------------
    def _send(self, line: str, tries: int = 3) -> None:
        """Type ``line`` and press Enter only once its echo came back exactly.

        U-Boot runs whatever reached it when Enter arrives, so a byte damaged or lost
        on the way (line noise, a loose wire) would run a different command: a flipped
        bit turns ``+0xd00000`` into ``+0xf00000``. The line is typed without Enter, its
        echo compared, and on a difference Ctrl-C drops it (``readline`` returns -1 on
        ^C, U-Boot 1.1.4 common/main.c) and it is typed again, ``tries`` times in all.
        """
        if len(line) >= CBSIZE or not all(" " <= c <= "~" for c in line):
            raise ValueError(f"refusing to type {line!r}")
        seen = ""
        for attempt in range(1, tries + 1):
            if attempt > 1:
                self.notice(
                    f"the echo of {line!r} came back different (line noise?): "
                    f"dropped it with Ctrl-C, typing it again ({attempt} of {tries})"
                )
                self.sync()
            self.port.send(line)
            try:
                # the power-on banner instead of the echo: the board restarted while the
                # line was being typed (issue 17); say so now, not after the echo's timeout
                if self.port.expect([re.escape(line), BANNER_RE], self.line_time(len(line))):
                    self._restarted(f"the typing of {line!r}")
                self.port.send("\r")
                if self.port.expect([EOL, BANNER_RE], self.line_time(3)):
                    self._restarted(f"the typing of {line!r}")
                return
            except Timeout as t:
                seen = t.seen[-200:]
        raise ConsoleError(
            f"U-Boot did not echo the command {line!r} ({tries} tries)",
            hint=f"check --baud and the wiring (a noisy or loose RX/TX line); seen: {seen!r}",
        )

    def command(self, line: str, timeout: float) -> str:
        """Type ``line``, wait for the prompt; return the output (``\\n`` line ends)."""
        self._send(line)
        try:
            which = self.port.expect([PROMPT_RE, BANNER_RE], timeout + self.line_time(0))
        except Timeout as t:
            raise ConsoleError(
                f"no prompt after {line!r} within {timeout:.1f} s",
                hint=f"seen: {t.seen[-300:]!r}",
            ) from None
        if which == 1:
            # the board started again (power cut, watchdog): keep it in U-Boot rather
            # than let it boot whatever the flash now holds
            self._restarted(repr(line))
        return self.port.before.replace("\r\n", "\n").replace("\r", "")

    def _restarted(self, during: str) -> NoReturn:
        """The boot banner showed up: keep the board in U-Boot and say so."""
        self._catch_countdown()
        raise ConsoleError(
            f"the camera restarted (power cut or watchdog) during {during}; it is stopped "
            "at the U-Boot prompt",
            hint="check the camera's power supply and its cable before going on",
        )

    def _catch_countdown(self) -> None:
        """Spaces until the prompt after a restart was seen (its countdown may be 0 s)."""
        until = time.monotonic() + self.line_time(2048) + 3.0  # the banner, then the countdown
        while time.monotonic() < until:
            self.port.write(b" ")
            try:
                self.port.expect(PROMPT_RE, POKE_INTERVAL)
            except Timeout:
                continue
            self.port.write(b"\x03")  # drops the spaces typed after the prompt
            with contextlib.suppress(Timeout):
                self.port.expect(PROMPT_RE, self.line_time(0))
            return

    def version(self) -> str:
        out = self.command("version", self.line_time(128))
        for line in out.splitlines():
            if line.startswith("U-Boot"):
                return line.strip()
        return out.strip()

    def printenv(self) -> dict[str, str]:
        # CFG_ENV_SIZE: 0x10000 upstream, 0x20000 in HiSilicon's tree
        return parse_env(self.command("printenv", self.line_time(0x20000)))

    def setenv(self, name: str, value: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
            raise UsageError(f"unsafe environment value {name}={value!r}")
        out = self.command(f"setenv {name} {value}", self.line_time(64))
        if out.strip():
            raise DeviceError(f"setenv {name} failed: {out.strip()}")

    def read_flinfo(self, tries: int = 3) -> FlashInfo:
        """``flinfo``, read again (it only reads) when its listing does not add up:
        a byte lost on the line drops a sector from the list."""
        for attempt in range(2, tries + 1):
            try:
                self.flinfo = parse_flinfo(self.command("flinfo", self.line_time(8192)))
                return self.flinfo
            except DeviceError as e:
                self.notice(f"{e} (line noise?): reading it again ({attempt} of {tries})")
        self.flinfo = parse_flinfo(self.command("flinfo", self.line_time(8192)))
        return self.flinfo

    def md_bytes(self, addr: int, count: int) -> bytes:
        # md.b prints 79 characters per 16 bytes (address, hex, ASCII, CR LF): ~5 a byte
        out = self.command(f"md.b {addr:#x} {count:#x}", self.line_time(count * 6 + 128))
        data = parse_md_bytes(out, addr)
        if len(data) != count:
            raise DeviceError(f"md.b {addr:#x} {count:#x} printed {len(data)} bytes")
        return data

    def crc32(self, addr: int, length: int) -> int:
        out = self.command(
            f"crc32 {addr:#x} {length:#x}", length / MIN_READ_RATE + self.line_time(128)
        )
        return parse_crc32(out, addr, length)

    def _abort(self) -> str:
        """Ctrl-C a running network command and get back to the prompt."""
        self.port.write(b"\x03")
        try:
            # the net loop notices Ctrl-C within a poll, then waits 1 s (net/net.c
            # udelay(1000000)) before it returns
            self.port.expect(PROMPT_RE, ABORT_DELAY + self.line_time(256))
        except Timeout as t:
            raise ConsoleError(
                "U-Boot did not come back after Ctrl-C", hint=f"seen: {t.seen[-200:]!r}"
            ) from None
        return self.port.before

    def tftp(
        self, addr: int, name: str, size: int, *, upload: bool, label: str | None = None
    ) -> TftpResult:
        """``tftp addr name`` (download of ``size`` bytes) or ``tftp addr name size`` (upload).

        A download must end with ``Bytes transferred`` = ``size``; an upload ends with
        ``upload ok`` or ``Bytes transferred`` and the caller checks the received file.
        """
        check_name(name)
        line = f"tftp {addr:#x} {name}" + (f" {size:#x}" if upload else "")
        self._send(line)
        patterns = [
            r"(?<!hilinux )#+",  # 0 progress marks
            r"(?<![A-Za-z])T(?![A-Za-z])",  # 1 a resend after a timeout ("T " or "T")
            r"TFTP error: '([^'\r\n]*)' \((\d+)\)",  # 2
            r"Retry count exceeded",  # 3
            r"\*\*\* ERROR: `(\w+)' not set",  # 4
            r"Bytes transferred = (\d+) \(([0-9a-fA-F]+) hex\)",  # 5
            r"upload ok",  # 6 HiSilicon: the end of an upload
            r"Can't write to protected Flash sectors|Flash not Erased|Outside available "
            r"Flash|Timeout writing to Flash",  # 7 a block could not be stored
            PROMPT_RE,  # 8
            BANNER_RE,  # 9 the board restarted
        ]
        to_flash = not upload and in_flash(addr, max(size, 1))
        # the longest silence: two resend periods, plus the flash work between two marks
        mark_work = TFTP_BLOCKS_PER_MARK * 512 / 2 * WORD_PROGRAM_MAX if to_flash else 0.0
        stall = 2 * TFTP_RESEND + mark_work + self.line_time(0)
        budget = size / MIN_TFTP_RATE + stall
        if to_flash:
            # a download straight into NOR also waits for every word to be programmed
            budget += size / 2 * WORD_PROGRAM_MAX
        deadline = time.monotonic() + budget
        marks = timeouts = restarts = 0
        transferred: int | None = None
        finished = False
        problem: str | None = None
        t0 = time.monotonic()
        bar = Progress(label or f"tftp {name}", size, enabled=self.progress)
        per_mark = 512 * 10  # upstream; HiSilicon's marks are 64 blocks apart
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = problem or "the transfer took too long"
                    self._abort()
                    break
                try:
                    idx = self.port.expect(patterns, min(stall, left))
                except Timeout:
                    problem = (
                        f"the camera printed nothing for {stall:.0f} s during the transfer "
                        f"({timeouts} TFTP timeouts)"
                    )
                    self._abort()
                    break
                m = self.port.match
                if idx == 0:
                    if "[ Connected ]" in self.port.pending_text()[:40]:
                        per_mark = 512 * TFTP_BLOCKS_PER_MARK
                    marks += len(m.group(0))
                    restarts = 0
                    bar.update(min(size, marks * per_mark))
                elif idx == 1:
                    timeouts += 1
                elif idx == 2:
                    problem = f"the TFTP server answered: {m.group(1)} (error {m.group(2)})"
                    self._abort()
                    break
                elif idx == 3:
                    # U-Boot starts the whole transfer over; twice in a row without
                    # progress means nobody answers
                    restarts += 1
                    marks = 0
                    if restarts >= 2:
                        problem = (
                            "the camera gets no answer from the TFTP server (repeated "
                            "timeouts): is serverip this computer's address on the camera's "
                            "network, and does a firewall allow UDP port 69?"
                        )
                        self._abort()
                        break
                elif idx == 4:
                    problem = f"the camera's '{m.group(1)}' is not set"
                elif idx == 5:
                    transferred = int(m.group(1))
                    finished = True
                    bar.update(transferred)
                elif idx == 6:
                    finished = True
                    bar.update(size)
                elif idx == 7:
                    problem = f"the camera could not store the data: {m.group(0)}"
                elif idx == 8:
                    break
                else:
                    self._restarted(f"tftp {'upload' if upload else 'download'} of {name!r}")
        finally:
            bar.close(ok=problem is None and finished)
        if problem is None and not finished:
            problem = "tftp printed neither 'Bytes transferred' nor 'upload ok'"
        if problem is not None:
            raise NetworkError(
                f"tftp {'upload' if upload else 'download'} of {name!r} failed: {problem}"
            )
        if transferred is not None and transferred != size:
            raise VerifyError(
                f"tftp of {name!r} moved {transferred} bytes, expected {size}",
            )
        return TftpResult(transferred or size, marks, timeouts, time.monotonic() - t0)

    def erase(self, region: Region) -> int:
        """``erase start +len`` of exactly ``region`` (checked against flinfo first)."""
        info = self.flinfo or self.read_flinfo()
        if not info.aligned(region) or not in_flash(region.start, region.size):
            raise DeviceError(f"{region.describe()} is not on sector boundaries; refusing to erase")
        sectors = info.sectors_in(region)
        # progress is any output (dots, or a bar redrawn with backspaces); the whole erase
        # may take the chip's erase timeout per sector, plus the text at the console's rate
        limit = len(sectors) * info.erase_timeout_ms / 1000 + self.line_time(len(sectors) * 64)
        self._send(f"erase {region.start:#x} +{region.size:#x}")
        deadline = time.monotonic() + limit
        patterns = [r"\.+|\[\s*(\d+)%\]", PROMPT_RE, BANNER_RE]
        done = 0
        text = ""
        with Progress(
            f"erase {region.name}", len(sectors), unit="sectors", enabled=self.progress
        ) as bar:
            while True:
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        raise Timeout("erase", self.port.pending_text())
                    idx = self.port.expect(patterns, left)
                except Timeout as t:
                    raise DeviceError(
                        f"erase of {region.describe()} did not finish within {limit:.0f} s "
                        f"({len(sectors)} sectors x the chip's erase timeout)",
                        flash_state=f"{region.name}: erase interrupted after about {done} sectors",
                        hint=f"seen: {t.seen[-200:]!r}",
                    ) from None
                text += self.port.before + self.port.match.group(0)
                if idx == 2:
                    self._restarted(f"erase of {region.describe()}")
                if idx == 0:
                    m = self.port.match
                    if m.group(1) is not None:
                        done = len(sectors) * int(m.group(1)) // 100
                    else:
                        done += len(m.group(0))
                    bar.update(min(done, len(sectors)))
                else:
                    break
        erased = re.search(r"Erased (\d+) sectors", text)
        if (
            "Warning" in text
            or "Error" in text
            or not erased
            or int(erased.group(1)) != len(sectors)
        ):
            shown = re.sub(r"\[[ \d]+%\]#*-*\|?|\x08", "", text)
            raise DeviceError(
                f"erase of {region.describe()} did not complete: {shown.strip()[-300:]!r}",
                flash_state=f"{region.name}: partly erased",
            )
        return len(sectors)

    def copy_to_flash(self, src: int, dst: int, length: int, label: str) -> None:
        """``cp.b`` in 1 MiB pieces; each piece's timeout from a worst-case word program time."""
        errors = (
            "Flash not Erased",
            "Can't write to protected Flash sectors",
            "Outside available Flash",
            "Timeout writing to Flash",
            "Zero length",
        )
        with Progress(f"write {label}", length, enabled=self.progress) as bar:
            done = 0
            while done < length:
                n = min(CP_CHUNK, length - done)
                # HiSilicon's progress bar: up to ~40 characters per 4 KiB redraw
                out = self.command(
                    f"cp.b {src + done:#x} {dst + done:#x} {n:#x}",
                    n / 2 * WORD_PROGRAM_MAX + self.line_time(n // 4096 * 40 + 256),
                )
                bad = [e for e in errors if e in out]
                if bad or "done" not in out:
                    raise DeviceError(
                        f"copy to flash at {dst + done:#x} failed: {out.strip()[-200:]!r}",
                        flash_state=f"{label}: erased, then programmed up to {dst + done:#x}",
                    )
                done += n
                bar.update(done)

    def protect(self, on: bool, region: Region) -> None:
        word = "on" if on else "off"
        # CFG_FLASH_PROTECTION: each sector's (un)lock may take the chip's erase timeout
        info = self.flinfo or self.read_flinfo()
        sectors = max(1, len(info.sectors_in(region)))
        out = self.command(
            f"protect {word} {region.start:#x} +{region.size:#x}",
            sectors * info.erase_timeout_ms / 1000 + self.line_time(sectors + 64),
        )
        if "rotected" not in out:
            raise DeviceError(f"protect {word} failed: {out.strip()!r}")

    def bootm(
        self,
        addr: int = KERNEL_ADDRESS,
        *,
        scan_bytes: int = 0xD00000,
        shell: ShellQuery | None = None,
    ) -> BootReport:
        """``bootm`` and read the kernel log until root is mounted (then query the shell) or not."""
        rep = BootReport()
        t0 = time.monotonic()
        self._send(f"bootm {addr:#x}")
        patterns = [PROMPT_RE, r"[^\r\n]*\r?\n", r"Kernel panic - not syncing:[^\r\n]*"]
        stall = 10 + scan_bytes / SCAN_RATE
        deadline = time.monotonic() + 60 + 2 * scan_bytes / SCAN_RATE
        bar = Progress("boot", None, unit="lines", enabled=self.progress)
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    idx = self.port.expect(patterns, max(0.1, min(stall, left)))
                except Timeout as t:
                    rep.image_error = rep.image_error or (
                        f"the kernel stopped printing before the root file system was mounted "
                        f"(last: {t.seen[-120:]!r})"
                    )
                    break
                text = self.port.match.group(0)
                if idx == 0:
                    before = self.port.before
                    bad = re.search(r"Bad Magic Number|Bad Header Checksum|Bad Data CRC", before)
                    rep.image_error = bad.group(0) if bad else "bootm returned to the prompt"
                    return rep
                line = text.strip()
                rep.kernel_lines += 1
                bar.update(rep.kernel_lines)
                if "Starting kernel" in line:
                    rep.started = True
                note_kernel_line(rep, line)
                if "Kernel panic - not syncing:" in line:
                    rep.panic = line[line.index("Kernel panic") :]
                    break
                mounted = re.search(r"VFS: Mounted root \(([^)]*)\)", line)
                if mounted:
                    rep.mounted = True
                    rep.filesystem = mounted.group(1)
                    break
        finally:
            bar.close()
        if rep.mounted:
            self._shell(rep, shell or ShellQuery(), stall)
        rep.seconds = time.monotonic() - t0
        return rep

    def _shell(self, rep: BootReport, query: ShellQuery, stall: float) -> None:
        """Wait for the root shell's ``# ``, then run the ``ls``/``cat`` of ``query``."""
        shell_prompt = r"(?:\A|\n)[^\r\n]*# "
        try:
            self.port.expect(shell_prompt, stall)
        except Timeout:
            self.port.write(b"\r")
            try:
                self.port.expect(shell_prompt, self.line_time(256))
            except Timeout:
                return
        for line in self.port.before.replace("\r", "").splitlines():
            note_kernel_line(rep, line.strip())
        rep.shell = True
        jobs = [("ls", p) for p in query.ls] + [("cat", p) for p in query.cat]
        for verb, path in jobs:
            if not re.fullmatch(r"/[A-Za-z0-9._/+-]*", path):
                continue
            cmd = f"{verb} {path}"
            self.port.sendline(cmd)
            try:
                self.port.expect(re.escape(cmd) + r"\r?\n", self.line_time(len(cmd) + 2))
                self.port.expect(shell_prompt, 10 + self.line_time(65536))
            except Timeout:
                break
            text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", self.port.before).replace("\r\n", "\n")
            if verb == "ls":
                rep.files[path] = sorted(text.split())
            else:
                rep.cat[path] = text
