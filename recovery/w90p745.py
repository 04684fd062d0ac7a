"""Recovery engine for W90P745 cameras (Winbond boot loader, ``bootloader > ``).

Written for a real camera on ``/dev/ttyUSB0`` and tested against the
emulator. Facts from seed 001 and REFERENCE.md: console 115200 8N1; at
power-on the loader prints its banner and ``Press ESC to enter debug mode``;
ESC in that window gives the prompt ``bootloader > ``. 2 MiB NOR flash at
0x7F000000, the loader in its first 64 KiB, BOOT INFO (image 0) at
0x7F010000. ``ls -al`` lists the image table; ``d 0x<addr>`` shows 256 bytes
(format in :mod:`recovery.w90_dump`); ``fx`` programs an image into flash
from an Xmodem-CRC/1K download.

What the engine does, and why:

* **Attach.** It sends ESC as soon as the port is open (that catches a boot
  that is already in its ESC window), then watches: on ``Press ESC`` it sends
  ESC three more times; at an idle prompt it sends CR and waits for the
  prompt at the start of a line. When it sees Linux booting or running it
  asks for a power cycle and keeps waiting for the boot loader.
* **Commands.** Each command is typed, its echo is read back and compared,
  and only then is CR sent: a command damaged on the way in (``d`` and ``e``
  differ by one bit) is never executed. The prompt is matched only at the
  start of a line, so ``bootloader > `` inside a page's ASCII column (the
  loader's own strings) is not taken for it.
* **Dumps** read every 256-byte page with ``d``. Each line of a page is
  checked on its own (well formed, the address column one of the page's
  rows, the hex and ASCII columns agreeing); a row is accepted when two
  reads that passed these checks agree on it and no other reading competes
  (``reads=2``, the default), so a page hit by noise is assembled from the
  good rows of several reads. Agreement is needed because a flipped bit can
  turn one hex digit into another while the ASCII column shows ``.`` for
  both values; measured on the emulator at a bit error rate of 1e-4, single
  reads gave a silently wrong 8.6 KiB image in 23 runs of 30, agreeing reads
  in none. When more than 0.5 % of the rows read are damaged the engine asks
  for three agreeing reads. ``reads=1`` trusts one read that passes the
  strict page check (header, 16 lines, all checks): twice as fast, for
  clean lines only. A page that cannot be confirmed in ``page_tries`` reads
  is a clear error naming its address. The image table (``ls -al``) is
  read until two complete listings agree, and a line that is not an image
  line fails the listing (so a damaged line cannot make an image vanish).
  The image is appended to ``<file>.part`` and a state file names the
  image, so an interrupted dump resumes at the last whole page. Finished
  images are renamed into place and listed in ``manifest.json`` (table
  entry, size, sha256, date), written atomically after each image; a
  directory that holds a dump of a different table is refused.
* **Restores** check the dump first (manifest readable, every file present
  with its size and sha256) and the plan (inside the flash, clear of the
  loader and of images that stay), then write each image with ``fx`` over
  Xmodem-CRC (1K blocks while 1024 bytes remain, then 128: the loader keeps
  the received length as the image size, so a size that is a multiple of
  128 comes back exactly), then read it back with ``d`` and compare. An
  image whose number is still in use is deleted first (``fx`` refuses a
  used number); BOOT INFO is never rewritten. The Xmodem sender waits for a
  ``C`` that stands alone: the loader's ``Press Ctrl-x to cancel`` holds one.
* **Cancelling a line.** When an echo is wrong the engine erases the line
  with backspaces (universal on boot loaders). A backspace that a bit error
  turns into LF (0x08 -> 0x0A) would run the partial line; partial ``d``
  lines only display memory.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery.common import (
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
    progress_enabled,
    run_operation,
)
from recovery.transport import Port, Timeout, TransportError
from recovery.w90_dump import (
    LINES_PER_PAGE,
    PAGE_SIZE,
    ImageEntry,
    LoaderInfo,
    PageError,
    parse_banner,
    parse_image_table,
    parse_page,
    parse_page_rows,
)
from recovery.xmodem_send import XmodemError, padded_length
from recovery.xmodem_send import send as xmodem_send

FLASH_BASE = 0x7F000000
DEFAULT_FLASH_SIZE = 0x200000
FLASH_BLOCK = 0x10000  # the loader erases and places images in 64 KiB blocks
RECORD_SIZE = 64  # an image record sits in the last 64 bytes of the image's last block
LOADER_END = 0x7F010000  # the boot loader's own block; BOOT INFO starts here
MANIFEST = "manifest.json"
STATE = ".w90-dump-state.json"
FORMAT = "camrescue-w90p745-dump/1"

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

Notify = Callable[[str], None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class EchoError(Exception):
    """The loader's echo of a typed command was not the command."""


# -- the console -------------------------------------------------------------------


class W90Console:
    """The boot loader's console on an open :class:`Port`."""

    def __init__(
        self,
        port: Port,
        *,
        notify: Notify = _stderr,
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
        # ESC stops a boot that is in its ESC window; CR answers at an idle prompt
        # (the loader reports the ESC as an unknown command, harmlessly).
        port.write(ESC + "\r")
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
        self.port.expect(PROMPT_RE, timeout=timeout)
        return self.port.before

    def run(self, text: str, timeout: float = 5.0, tries: int = 3) -> str:
        """:meth:`command` with resync-and-retry on a bad echo or a timeout."""
        last: Exception | None = None
        for _ in range(tries):
            try:
                return self.command(text, timeout + self.wire(4096))
            except (EchoError, Timeout) as e:
                last = e
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
    def read_page(self, address: int, *, reads: int = 2, expect: bytes | None = None) -> bytes:
        """The 256 bytes at ``address``, read until they are trustworthy.

        ``reads=1`` trusts one read that passes every page check. Otherwise
        the page is assembled row by row: a 16-byte row is accepted when
        ``reads`` reads that passed the line's checks agree on it (a row hit by
        noise in one read is taken from the others). With ``expect`` (the
        read-back after a write) one complete read equal to it is enough.
        Raises VerifyError when ``page_tries`` reads do not get there.
        """
        votes: list[Counter[bytes]] = [Counter() for _ in range(LINES_PER_PAGE)]
        problems: list[str] = []
        cmd = f"d 0x{address:08X}"
        for attempt in range(self.page_tries):
            if attempt >= max(reads, 1):
                self.page_retries += 1
            try:
                out = self.command(cmd, timeout=1.0 + self.wire(1400) * 3)
            except (EchoError, Timeout) as e:
                problems.append(str(e).splitlines()[0][:100])
                self.sync()
                continue
            self.pages_read += 1
            if reads <= 1 or expect is not None:
                try:
                    data = parse_page(out, address)
                except PageError as e:
                    # The prompt came back, so the loader is idle: read again at once.
                    # Stray output (a prompt faked by a lost burst) fails the next echo.
                    problems.append(str(e)[:100])
                else:
                    if reads <= 1 or data == expect:
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

    # -- flash writes ------------------------------------------------------------------
    def _await_receiver(self, timeout: float) -> None:
        """Wait for the loader's Xmodem receiver to ask for CRC blocks with ``C``.

        A ``C`` counts when it starts a line (or repeats) and no more text
        follows it: the loader's own messages (``Press Ctrl-x ...``) hold
        C's too. Raises DeviceError when the loader answers with a prompt.
        """
        port = self.port
        buf = port.pending_text().encode("latin-1")
        port.clear_buffer()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tail = buf.rstrip(b"C")
            calls = len(buf) - len(tail)
            if calls and (not tail or tail.endswith(b"\n") or calls >= 2):
                more = port.read_some(4096, 0.15)
                if not more.strip(b"C"):
                    return
                buf += more
                continue
            text = buf.decode("latin-1")
            if PROMPT_RE.search(text):
                raise DeviceError(
                    f"the loader refused the write: {text.strip()[:200]!r}",
                    flash_state="unchanged by this command",
                    hint="see the loader's message; run the restore again",
                )
            buf += port.read_some(4096, min(0.5, max(0.0, deadline - time.monotonic())))
        raise DeviceError(
            f"the loader did not start its Xmodem receiver (seen {buf[-120:]!r})",
            flash_state="unchanged by this command",
            hint="run the restore again",
        )

    def fx(self, entry: ImageEntry, data: bytes, on_progress: Callable[[int, int], None]) -> str:
        """Program ``data`` as image ``entry`` with the loader's ``fx`` and Xmodem."""
        self._type(fx_command(entry))
        self.port.send("\r")
        self._await_receiver(15.0)
        try:
            result = xmodem_send(
                self.port,
                data,
                started=True,
                ack_timeout=2.0 + self.wire(1100) * 2,
                eot_timeout=5.0,
                eot_silent_tries=2,
                on_progress=on_progress,
            )
        except XmodemError as e:
            self.sync()
            raise DeviceError(
                f"writing image {entry.number} ({entry.name}) failed: {e}",
                flash_state=f"image {entry.number} may be missing or partly written",
                hint="run the restore again",
            ) from e
        # the loader erases and programs after the transfer: allow the datasheet's worst case
        erase_blocks = -(-len(data) // 0x10000) + 1
        self.port.expect(PROMPT_RE, timeout=30.0 + 5.0 * erase_blocks)
        out = self.port.before
        self.sync()
        if _ERROR_RE.search(out):
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


# -- results -----------------------------------------------------------------------------


@dataclass
class BoardInfo:
    message: str
    attached_by: str
    loader_version: str | None
    loader_built: str | None
    memory_size: int | None
    flash_size: int | None
    config: dict[str, str]
    images: list[dict[str, Any]]


@dataclass
class DumpedImage:
    number: int
    name: str
    file: str
    size: int
    sha256: str
    resumed_at: int = 0  # bytes already on disk when this run started
    skipped: bool = False  # already complete in the directory


@dataclass
class DumpResult:
    message: str
    out_dir: str
    manifest: str
    images: list[DumpedImage]
    seconds: float
    bytes_read: int
    page_retries: int


@dataclass
class RestoredImage:
    number: int
    name: str
    size: int
    verified: bool
    loader_said: str = ""


@dataclass
class RestoreResult:
    message: str
    dump_dir: str
    images: list[RestoredImage]
    table_after: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- helpers ------------------------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_name(entry: ImageEntry) -> str:
    """Where image ``entry`` goes in a dump directory: ``image7_linux.bin``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", entry.name) or "unnamed"
    return f"image{entry.number}_{safe}.bin"


def select_images(table: list[ImageEntry], names: Sequence[str] | None) -> list[ImageEntry]:
    """The entries named (by name or number) in ``names``, in table order; all when None."""
    if not names:
        return list(table)
    wanted = []
    for n in names:
        hit = [e for e in table if e.name == n or str(e.number) == n]
        if not hit:
            raise UsageError(
                f"no image {n!r} on the camera",
                hint="images: " + ", ".join(f"{e.number} ({e.name})" for e in table),
            )
        wanted += hit
    return [e for e in table if e in wanted]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- info ---------------------------------------------------------------------------------


def _attach(port: Port, wait: float, notify: Notify) -> W90Console:
    con = W90Console(port, notify=notify)
    try:
        con.attach(wait)
    except TransportError as e:
        raise ConsoleError(str(e), flash_state="untouched") from e
    return con


def _board_info(con: W90Console, table: list[ImageEntry]) -> BoardInfo:
    li = con.loader_info()
    lines = [
        f"Loader: W90P745 Boot Loader {li.version or '(version not seen)'}"
        + (f", built {li.built}" if li.built else ""),
    ]
    if li.memory_size is not None:
        lines.append(f"Memory: 0x{li.memory_size:X} bytes; flash: 0x{li.flash_size:X} bytes")
    elif con.attached_by == "prompt":
        lines.append(
            "Memory and flash size: not seen (the loader prints them only in its power-on "
            "banner; start camrescue first, then power the camera on, to see them)"
        )
    lines += [e.line() for e in table]
    return BoardInfo(
        message="\n".join(lines),
        attached_by=con.attached_by,
        loader_version=li.version,
        loader_built=li.built,
        memory_size=li.memory_size,
        flash_size=li.flash_size,
        config=dict(li.config),
        images=[e.to_json() for e in table],
    )


def info(port: Port, *, wait: float = 30.0, notify: Notify = _stderr) -> BoardInfo:
    """Attach and report the loader version, memory and flash size, and the image table."""
    con = _attach(port, wait, notify)
    return _board_info(con, con.list_images())


# -- dump -----------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ImageError(
            f"{path} is unreadable: {e}",
            flash_state="untouched",
            hint=f"use an intact copy, or move it away / choose another directory than {path.parent}",
        ) from e
    if not isinstance(obj, dict):
        raise ImageError(f"{path} is not a camrescue manifest", flash_state="untouched")
    return obj


def _write_manifest(
    out: Path,
    table: list[ImageEntry],
    done: dict[int, dict[str, Any]],
    loader: LoaderInfo,
    complete: bool,
) -> Path:
    manifest = {
        "format": FORMAT,
        "board": "w90p745",
        "complete": complete,
        "written": _now(),
        "loader": {
            "version": loader.version,
            "built": loader.built,
            "memory_size": loader.memory_size,
            "flash_size": loader.flash_size,
        },
        "table": [e.to_json() for e in table],
        "images": [done[k] for k in sorted(done, key=lambda n: [e.number for e in table].index(n))],
    }
    return atomic_write_json(out / MANIFEST, manifest)


def _dump_image(
    con: W90Console,
    out: Path,
    entry: ImageEntry,
    reads: int,
    bar: Progress,
    base_done: int,
) -> tuple[dict[str, Any], int]:
    """Dump one image (resuming a partial file); return its manifest record and resume offset."""
    final = out / file_name(entry)
    part = out / (final.name + ".part")
    state_path = out / STATE
    state = _read_json(state_path) or {}
    start = 0
    if state.get("entry") == entry.to_json() and part.exists():
        start = (part.stat().st_size // PAGE_SIZE) * PAGE_SIZE
        start = min(start, entry.pages * PAGE_SIZE)
    atomic_write_json(state_path, {"entry": entry.to_json(), "file": part.name})
    with part.open("r+b" if part.exists() else "wb") as f:
        f.truncate(start)
        f.seek(start)
        last_sync = time.monotonic()
        for offset in range(start, entry.pages * PAGE_SIZE, PAGE_SIZE):
            page = con.read_page(entry.base + offset, reads=reads)
            f.write(page[: max(0, min(PAGE_SIZE, entry.size - offset))])
            bar.update(base_done + min(offset + PAGE_SIZE, entry.size))
            if time.monotonic() - last_sync > 1.0:
                f.flush()
                os.fsync(f.fileno())
                last_sync = time.monotonic()
        f.flush()
        os.fsync(f.fileno())
    if part.stat().st_size != entry.size:  # pragma: no cover - a logic error
        raise VerifyError(f"{part} holds {part.stat().st_size} bytes, expected {entry.size}")
    digest = _sha256_file(part)
    os.replace(part, final)
    _fsync_dir(out)
    state_path.unlink(missing_ok=True)
    record = {
        **entry.to_json(),
        "file": final.name,
        "sha256": digest,
        "dumped": _now(),
    }
    return record, start


def dump(
    port: Port,
    out_dir: str | os.PathLike[str],
    *,
    images: Sequence[str] | None = None,
    reads: int = 2,
    wait: float = 30.0,
    progress: bool = True,
    notify: Notify = _stderr,
) -> DumpResult:
    """Dump the camera's images into ``out_dir`` (resuming an interrupted dump there)."""
    if reads < 1:
        raise UsageError("reads must be at least 1")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out}: {e}") from e
    old = _read_json(out / MANIFEST)
    t0 = time.monotonic()
    con = _attach(port, wait, notify)
    table = con.list_images()
    chosen = select_images(table, images)
    done: dict[int, dict[str, Any]] = {}
    if old is not None:
        if old.get("format") != FORMAT or old.get("table") != [e.to_json() for e in table]:
            raise RefusedError(
                f"{out} already holds a dump of a different image table",
                flash_state="untouched",
                hint="choose an empty directory for this camera's dump",
            )
        for rec in old.get("images", []):
            path = out / str(rec.get("file", ""))
            if path.is_file() and _sha256_file(path) == rec.get("sha256"):
                done[int(rec["number"])] = rec
    results: list[DumpedImage] = []
    total = sum(e.size for e in chosen)
    loader = con.loader_info()
    read_bytes = 0
    with Progress("dump", total, enabled=progress) as bar:
        base_done = 0
        for entry in chosen:
            if entry.number in done:
                rec = done[entry.number]
                results.append(
                    DumpedImage(
                        entry.number,
                        entry.name,
                        rec["file"],
                        entry.size,
                        rec["sha256"],
                        skipped=True,
                    )
                )
            else:
                rec, start = _dump_image(con, out, entry, reads, bar, base_done)
                read_bytes += entry.size - start
                done[entry.number] = rec
                results.append(
                    DumpedImage(
                        entry.number,
                        entry.name,
                        rec["file"],
                        entry.size,
                        rec["sha256"],
                        resumed_at=start,
                    )
                )
                complete = all(e.number in done for e in chosen)
                _write_manifest(out, table, done, loader, complete)
            base_done += entry.size
            bar.update(base_done)
    manifest = _write_manifest(out, table, done, loader, all(e.number in done for e in chosen))
    seconds = time.monotonic() - t0
    lines = [f"{r.file}: {r.size} bytes sha256 {r.sha256[:16]}..." for r in results]
    return DumpResult(
        message=f"dumped {len(results)} image(s) into {out} in {seconds:.1f} s\n"
        + "\n".join(lines),
        out_dir=str(out),
        manifest=str(manifest),
        images=results,
        seconds=seconds,
        bytes_read=read_bytes,
        page_retries=con.page_retries,
    )


# -- restore ----------------------------------------------------------------------------------


@dataclass
class DumpImage:
    entry: ImageEntry
    path: Path
    data: bytes


def load_dump(dump_dir: str | os.PathLike[str]) -> tuple[list[ImageEntry], list[DumpImage]]:
    """A dump directory's table and images, checked against its manifest.

    Raises ImageError when the manifest is missing or damaged, the dump was not
    finished, or a file is missing or does not match its size and sha256.
    """
    d = Path(dump_dir)
    what_to_do = "use a complete dump made by 'camrescue w90p745 dump' (or finish it by running the dump again)"
    manifest = _read_json(d / MANIFEST)
    if manifest is None:
        raise ImageError(f"{d} has no {MANIFEST}", flash_state="untouched", hint=what_to_do)
    if manifest.get("format") != FORMAT:
        raise ImageError(
            f"{d / MANIFEST} is not a W90P745 dump manifest",
            flash_state="untouched",
            hint=what_to_do,
        )
    if manifest.get("complete") is not True:
        raise ImageError(
            f"the dump in {d} was interrupted", flash_state="untouched", hint=what_to_do
        )
    try:
        table = [ImageEntry.from_json(e) for e in manifest["table"]]
        records = list(manifest["images"])
    except (KeyError, TypeError, ValueError) as e:
        raise ImageError(
            f"{d / MANIFEST} is damaged: {e}", flash_state="untouched", hint=what_to_do
        ) from e
    out = []
    for rec in records:
        try:
            entry = ImageEntry.from_json(rec)
            name = str(rec["file"])
            digest = str(rec["sha256"])
        except (KeyError, TypeError, ValueError) as e:
            raise ImageError(
                f"{d / MANIFEST} is damaged: {e}", flash_state="untouched", hint=what_to_do
            ) from e
        path = d / name
        if Path(name).name != name or not path.is_file():
            raise ImageError(f"{path} is missing", flash_state="untouched", hint=what_to_do)
        data = path.read_bytes()
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != digest:
            raise ImageError(
                f"{path} does not match its manifest (size {len(data)}, expected {entry.size}; "
                "or a different sha256)",
                flash_state="untouched",
                hint="the backup file was changed or damaged; use another copy of the dump",
            )
        out.append(DumpImage(entry, path, data))
    return table, out


def _plan_checks(todo: list[DumpImage], current: list[ImageEntry], flash_size: int) -> None:
    flash_end = FLASH_BASE + flash_size
    replaced = {d.entry.number for d in todo}
    for d in todo:
        e = d.entry
        if e.is_boot_info:
            raise RefusedError(
                f"image {e.number} ({e.name}) is the loader's BOOT INFO; camrescue does not "
                "rewrite it with fx",
                flash_state="untouched",
                hint="leave it out of --images; set the configuration with the loader's SET",
            )
        check_fx_entry(e)
        if e.base < LOADER_END or e.end > flash_end:
            raise RefusedError(
                f"image {e.number} ({e.name}) at 0x{e.base:08X}..0x{e.end:08X} is outside "
                f"the image area 0x{LOADER_END:08X}..0x{flash_end:08X}",
                flash_state="untouched",
            )
        for other in current:
            if other.number in replaced:
                continue
            if _blocks(e, padded_length(e.size)) & _blocks(other, other.size):
                raise RefusedError(
                    f"image {e.number} ({e.name}) would overwrite image {other.number} "
                    f"({other.name}) at 0x{other.base:08X}",
                    flash_state="untouched",
                    hint=f"delete image {other.number} first if you mean to replace it",
                )


def _blocks(entry: ImageEntry, size: int) -> set[int]:
    """The flash blocks an image occupies: its data and, after it, its record."""
    first = entry.base // FLASH_BLOCK
    last = (entry.base + size + RECORD_SIZE - 1) // FLASH_BLOCK
    return set(range(first, last + 1))


def restore(
    port: Port,
    dump_dir: str | os.PathLike[str],
    *,
    images: Sequence[str] | None = None,
    wait: float = 30.0,
    progress: bool = True,
    notify: Notify = _stderr,
) -> RestoreResult:
    """Write a dump's images back with ``fx`` over Xmodem, then read them back and compare."""
    table, dumped = load_dump(dump_dir)
    t0 = time.monotonic()
    if images:
        chosen = {e.number for e in select_images([d.entry for d in dumped], images)}
        todo = [d for d in dumped if d.entry.number in chosen]
    else:
        todo = [d for d in dumped if not d.entry.is_boot_info]
    if not todo:
        raise UsageError("nothing to restore", hint="name the images with --images")
    con = _attach(port, wait, notify)
    current = con.list_images()
    flash_size = con.loader_info().flash_size or DEFAULT_FLASH_SIZE
    _plan_checks(todo, current, flash_size)
    done: list[RestoredImage] = []
    total = sum(len(d.data) for d in todo)
    with Progress("restore", total, enabled=progress) as bar:
        base = 0
        for d in todo:
            e = d.entry
            if any(c.number == e.number for c in current):
                con.run(f"del {e.number}", timeout=30.0)
            size = len(d.data)
            said = con.fx(e, d.data, lambda n, _t, b=base, s=size: bar.update(b + min(n, s)))
            base += len(d.data)
            done.append(RestoredImage(e.number, e.name, e.size, False, said.strip()[-200:]))
    after = con.list_images()
    by_number = {e.number: e for e in after}
    with Progress("verify", total, enabled=progress) as bar:
        base = 0
        for d, r in zip(todo, done, strict=True):
            e = d.entry
            now = by_number.get(e.number)
            if now is None or (now.base, now.exec_addr, now.name) != (e.base, e.exec_addr, e.name):
                raise VerifyError(
                    f"after fx the table shows {now.line() if now else 'no image'} for image "
                    f"{e.number}, expected {e.line()}",
                    flash_state=f"image {e.number} was written but is not listed as it was",
                    hint="run the restore again; if it repeats, report it with the transcript",
                )
            _verify_image(con, d, bar, base)
            base += len(d.data)
            r.verified = True
    table_after = [e.line() for e in after]
    seconds = time.monotonic() - t0
    return RestoreResult(
        message=f"restored and verified {len(done)} image(s) from {dump_dir} in {seconds:.1f} s\n"
        + "\n".join(table_after),
        dump_dir=str(dump_dir),
        images=done,
        table_after=table_after,
        seconds=seconds,
    )


def _verify_image(con: W90Console, d: DumpImage, bar: Progress, base: int) -> None:
    e = d.entry
    for offset in range(0, e.size, PAGE_SIZE):
        want = d.data[offset : offset + PAGE_SIZE]
        page = con.read_page(
            e.base + offset, reads=2, expect=want if len(want) == PAGE_SIZE else None
        )
        if page[: len(want)] != want:
            bad = next(i for i in range(len(want)) if page[i] != want[i])
            raise VerifyError(
                f"image {e.number} ({e.name}) differs from {d.path.name} at "
                f"0x{e.base + offset + bad:08X} after writing",
                flash_state=f"image {e.number} is damaged in flash",
                hint="run the restore again; if it repeats, the flash block may be worn out",
            )
        bar.update(base + offset + len(want))


# -- command line --------------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Port:
    """Open ``--port``; a device path that does not exist yet (an adapter being
    plugged in, an emulator being started) is waited for during ``--wait``."""
    path = args.port
    if "://" not in path and not os.path.exists(path):
        if progress_enabled(args):
            print(f"waiting for {path} to appear ...", file=sys.stderr, flush=True)
        deadline = time.monotonic() + args.wait
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
    try:
        return Port(path, args.baud, transcript=args.transcript)
    except TransportError as e:
        raise ConsoleError(str(e), flash_state="untouched") from e


def _names(value: str | None) -> list[str] | None:
    return [n for n in value.split(",") if n] if value else None


def _with_port(args: argparse.Namespace, fn: Callable[[Port], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with _open(args) as port:
            try:
                return fn(port)
            except TransportError as e:
                raise ConsoleError(str(e), hint="check the adapter and run again") from e

    return run


def _common(p: argparse.ArgumentParser) -> None:
    add_port_options(p)
    add_output_options(p)
    p.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="S",
        help="how long to wait for the boot loader (power the camera on meanwhile; default 30)",
    )


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``w90p745 {info,dump,restore}`` to an argparse subparsers object."""
    fmt = argparse.RawDescriptionHelpFormatter
    top = subparsers.add_parser(
        "w90p745",
        help="Winbond W90P745 cameras (bootloader >): info, dump, restore",
        description="Back up and restore a W90P745 camera's flash images through its boot "
        "loader's serial console. See docs/w90p745.md.",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    sub = top.add_subparsers(dest="w90p745_command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "info",
        help="loader version, memory and flash size, image table",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    p.set_defaults(
        func=lambda a: run_operation(a, "info", _with_port(a, lambda port: info(port, wait=a.wait)))
    )

    p = sub.add_parser(
        "dump",
        help="dump images page by page with 'd' (resumable)",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="dump directory (created)")
    p.add_argument(
        "--images", metavar="NAMES", help="comma-separated image names or numbers (default: all)"
    )
    p.add_argument(
        "--reads",
        type=int,
        default=2,
        metavar="N",
        help="reads that must agree on every row (default 2; 1 trusts the page "
        "checks alone: twice as fast, but a flipped bit can pass them - clean lines only)",
    )
    p.set_defaults(
        func=lambda a: run_operation(
            a,
            "dump",
            _with_port(
                a,
                lambda port: dump(
                    port,
                    a.out,
                    images=_names(a.images),
                    reads=a.reads,
                    wait=a.wait,
                    progress=progress_enabled(a),
                ),
            ),
        )
    )

    p = sub.add_parser(
        "restore",
        help="write a dump back with fx over Xmodem, then verify",
        epilog=exit_codes_epilog(),
        formatter_class=fmt,
    )
    _common(p)
    p.add_argument("dir", metavar="DIR", help="a dump directory (with manifest.json)")
    p.add_argument(
        "--images",
        metavar="NAMES",
        help="comma-separated image names or numbers (default: all but BOOT INFO)",
    )
    p.set_defaults(
        func=lambda a: run_operation(
            a,
            "restore",
            _with_port(
                a,
                lambda port: restore(
                    port, a.dir, images=_names(a.images), wait=a.wait, progress=progress_enabled(a)
                ),
            ),
        )
    )
    return top
