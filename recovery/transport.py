"""Open a camera's serial port and talk to it: expect/send for text consoles,
exact reads and writes for binary protocols, a transcript of both directions.

Any port pyserial can open works: a device path (``/dev/ttyUSB0``), a pty, or
a URL (``rfc2217://host:port`` for ser2net or a lab's exported port,
``socket://host:port`` for a raw TCP bridge). Reads go through pyserial, so
URLs without a file descriptor work too. A read takes everything that has arrived,
whatever the kind of port: pyserial's ``in_waiting`` counts the bytes held by a tty
(``TIOCINQ``) and by its RFC 2217 client, but over ``socket://`` it says only whether
something is there (1), so there the count comes from the socket itself (``FIONREAD``)
and a dump is not read a byte per call. Console output is decoded as
latin-1: every byte maps to one character, so garbage on the line (wrong
baud, noise) never raises.

The expect layer (:class:`ConsoleMatcher`) never skips text: every byte the
device sent ends up in exactly one match or one ``before``, whatever sizes
the reads return. A slow host, a USB adapter or a network bridge can deliver
kilobytes in one read; a matcher that searched only a window at the end of
the buffer (pexpect's ``searchwindowsize``, which this engine used before)
would start a line pattern in the middle of a line and swallow its start.
Searching the whole pending text again on every read would cost O(n^2) on a
long dump, so each search resumes where a match could still begin: for a
pattern of bounded length, that many characters before the end of what was
searched; for a pattern that holds a line feed only as its first or last
character (a line, a prompt at the start of a line), the last line feed. The
first match wins: the earliest start, on a tie the pattern listed first
(pexpect's rule, which the drivers were written against).
"""

from __future__ import annotations

import array
import fcntl
import re
import re._constants as sre_c
import re._parser as sre_parse
import socket
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import serial

from recovery import ports


class TransportError(Exception):
    """The port could not be opened or stopped answering. The message says what to do."""


class Timeout(TransportError):
    """An expected text did not arrive in time."""

    def __init__(self, message: str, seen: str = "") -> None:
        super().__init__(message)
        self.seen = seen


def _open_error(url: str, e: Exception) -> str:
    """What to tell a person whose port did not open."""
    text = str(e)
    if "://" in url:
        refused = ports.server_refusal(url)
        if refused is not None:  # pyserial says "Broken pipe"
            return ports.busy_server_text(url, refused)
        if "Connection refused" in text:
            return (
                f"cannot open serial port {url!r}: nothing accepts connections there. Start "
                "the serial server (camrescue emulate BOARD --serve URL, ser2net) or check "
                "the host and port."
            )
    if "lock" in text.lower():
        return (
            f"serial port {url!r} is busy: another program (picocom, minicom, screen, another "
            "camrescue) holds it. Close that program and run the command again."
        )
    if "Inappropriate ioctl" in text:
        return (
            f"{url!r} is not a serial port (not a terminal device). Give the adapter's device "
            "(ls /dev/ttyUSB* /dev/ttyACM*), a pty, or an rfc2217:// or socket:// URL."
        )
    return (
        f"cannot open serial port {url!r}: {text}. Check the device path (ls /dev/ttyUSB*), "
        "that no other program (minicom, picocom, screen) holds it, and your permissions "
        "(the 'dialout' group)."
    )


_UNBOUNDED = 1 << 32
# Categories of a character class that hold a line feed.
_NEWLINE_CATEGORIES = {
    sre_c.CATEGORY_SPACE,
    sre_c.CATEGORY_NOT_DIGIT,
    sre_c.CATEGORY_NOT_WORD,
    sre_c.CATEGORY_LINEBREAK,
    sre_c.CATEGORY_UNI_SPACE,
    sre_c.CATEGORY_UNI_NOT_DIGIT,
    sre_c.CATEGORY_UNI_NOT_WORD,
    sre_c.CATEGORY_UNI_LINEBREAK,
}
_SAFE_CATEGORIES = {
    sre_c.CATEGORY_DIGIT,
    sre_c.CATEGORY_WORD,
    sre_c.CATEGORY_NOT_SPACE,
    sre_c.CATEGORY_NOT_LINEBREAK,
    sre_c.CATEGORY_UNI_DIGIT,
    sre_c.CATEGORY_UNI_WORD,
    sre_c.CATEGORY_UNI_NOT_SPACE,
    sre_c.CATEGORY_UNI_NOT_LINEBREAK,
}


class _Unknown(Exception):
    """The pattern uses something the resume analysis does not reason about."""


def _class_has_newline(items: list) -> bool:
    negate = False
    hit = False
    for op, av in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            hit = hit or av == 10
        elif op is sre_c.RANGE:
            hit = hit or av[0] <= 10 <= av[1]
        elif op is sre_c.CATEGORY:
            if av in _NEWLINE_CATEGORIES:
                hit = True
            elif av not in _SAFE_CATEGORIES:
                raise _Unknown
        else:
            raise _Unknown
    return hit != negate


def _can_match_newline(items: list, flags: int) -> bool:
    """Whether the parsed (sub)pattern ``items`` can consume a line feed."""
    for op, av in items:
        if op is sre_c.LITERAL:
            if av == 10:
                return True
        elif op is sre_c.NOT_LITERAL:
            if av != 10:
                return True
        elif op is sre_c.ANY:
            if flags & re.DOTALL:
                return True
        elif op is sre_c.IN:
            if _class_has_newline(av):
                return True
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
            if _can_match_newline(list(av[2]), flags):
                return True
        elif op is sre_c.SUBPATTERN:
            if _can_match_newline(list(av[3]), (flags | av[1]) & ~av[2]):
                return True
        elif op is sre_c.ATOMIC_GROUP:
            if _can_match_newline(list(av), flags):
                return True
        elif op is sre_c.BRANCH:
            if any(_can_match_newline(list(b), flags) for b in av[1]):
                return True
        elif op is sre_c.AT:
            if av in (sre_c.AT_BOUNDARY, sre_c.AT_NON_BOUNDARY) or "BOUNDARY" in str(av):
                raise _Unknown  # depends on the character after the match
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            if av[0] > 0:
                raise _Unknown  # a lookahead reads past the match
            # a lookbehind reads text before the match start: already received
        else:
            raise _Unknown  # back references, conditionals: be safe
    return False


def _end_dependent(items: list) -> bool:
    """Whether a match can depend on where the text ends (``$``, ``\\Z``, a lookahead,
    a word boundary): such a pattern is never searched with an end position."""
    for op, av in items:
        if op is sre_c.AT and av not in (sre_c.AT_BEGINNING, sre_c.AT_BEGINNING_STRING):
            return True
        if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            if av[0] > 0 or _end_dependent(list(av[1])):
                return True
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
            if _end_dependent(list(av[2])):
                return True
        elif op is sre_c.SUBPATTERN:
            if _end_dependent(list(av[3])):
                return True
        elif op is sre_c.ATOMIC_GROUP:
            if _end_dependent(list(av)):
                return True
        elif op is sre_c.BRANCH:
            if any(_end_dependent(list(b)) for b in av[1]):
                return True
        elif op in (sre_c.GROUPREF_EXISTS,):
            return True
    return False


def _width(items: list) -> int:
    w = sre_parse.SubPattern(sre_parse.State(), items).getwidth()[1]
    return _UNBOUNDED if w >= _UNBOUNDED else w


@dataclass(frozen=True)
class _ResumeRule:
    """How far back a search must start again once the text up to ``n`` held no match.

    A match that was not there before must end in the new text (no lookahead,
    no word boundary: nothing else can change). So it starts no earlier than
    ``n - width + 1`` when the pattern is at most ``width`` characters long, and
    no earlier than the last line feed before ``n`` when the pattern can only
    hold a line feed as its first or last character (a line pattern, a prompt
    at the start of a line). ``None``: search from the start every time.

    ``bounded``: the pattern is at most ``width`` characters long and its match
    does not depend on where the text ends, so once another pattern matched at
    ``s``, searching up to ``s + width`` finds any earlier match of this one.
    ``needs_newline``: every match holds a line feed (a line pattern), so there
    is nothing to search for until one has arrived: a regex engine would try a
    line pattern from every position of a long unfinished line (O(n^2)).
    """

    width: int | None
    newline_safe: bool
    bounded: bool = False
    needs_newline: bool = False

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> _ResumeRule:
        try:
            items = list(sre_parse.parse(pattern.pattern, pattern.flags))
            _can_match_newline(items, pattern.flags)  # raises _Unknown on lookaheads
            width = _width(items)
            inner = items[1:-1]
            ends = [items[0], items[-1]] if items else []
            newline_safe = not _can_match_newline(inner, pattern.flags) and all(
                not _can_match_newline([it], pattern.flags) or _width([it]) <= 1 for it in ends
            )
            bounded = width < _UNBOUNDED and not _end_dependent(items)
            needs_newline = (sre_c.LITERAL, 10) in items
        except Exception:  # noqa: BLE001 - a pattern not understood is searched whole
            return cls(None, False)
        return cls(width if width < _UNBOUNDED else None, newline_safe, bounded, needs_newline)

    def resume(self, text: str, n: int) -> int:
        """The position a search must start from, given no match in ``text[:n]``."""
        at = 0
        if self.width is not None:
            at = max(at, n - self.width + 1)
        if self.newline_safe:
            at = max(at, text.rfind("\n", 0, n))
        return max(at, 0)


_RULES: dict[re.Pattern[str], _ResumeRule] = {}


def _rule(pattern: re.Pattern[str]) -> _ResumeRule:
    rule = _RULES.get(pattern)
    if rule is None:
        if len(_RULES) > 512:
            _RULES.clear()
        rule = _RULES[pattern] = _ResumeRule.of(pattern)
    return rule


class ConsoleMatcher:
    """Console text received and not yet consumed, and the search for patterns in it.

    Every character fed in ends up in exactly one match or one ``before`` (or
    stays pending): a search always covers the unconsumed text from its start,
    whatever sizes the text arrived in. The first match wins (the earliest
    start; on a tie the pattern listed first), as with pexpect. To keep a long
    wait linear, each search starts where a match could still begin (see
    :class:`_ResumeRule`) instead of at the start again; and once one pattern
    has matched, a pattern of bounded length is searched only as far as it
    could still match earlier, so reading a long output line by line while
    also watching for a prompt stays linear too.
    """

    def __init__(self) -> None:
        self.buffer = ""
        self.before = ""
        self.match: re.Match[str] | None = None
        self._resume: list[int] = []
        self._rules: list[_ResumeRule] = []
        self._order: list[int] = []
        self._searched = 0

    def start(self, patterns: Sequence[re.Pattern[str]]) -> None:
        """A new expect for ``patterns``: search the held text from its start."""
        self._rules = [_rule(p) for p in patterns]
        # the patterns that can be cut short by an earlier match go last
        self._order = sorted(range(len(patterns)), key=lambda i: self._rules[i].bounded)
        self._resume = [0] * len(patterns)
        self._searched = 0

    def feed(self, text: str) -> None:
        self.buffer += text

    def search(self, patterns: Sequence[re.Pattern[str]]) -> int | None:
        """Index of the pattern that matches first; consumes through the match."""
        buf = self.buffer
        best: re.Match[str] | None = None
        best_i = -1
        for i in self._order:
            pat, rule, pos = patterns[i], self._rules[i], self._resume[i]
            if rule.needs_newline and buf.find("\n", pos) < 0:
                continue
            if best is not None and rule.bounded:
                assert rule.width is not None
                # an earlier start, or the same start when listed before the best
                end = best.start() + rule.width - (1 if i > best_i else 0)
                if end < pos:
                    continue
                m = pat.search(buf, pos, end)
            else:
                m = pat.search(buf, pos)
            if m is not None and (
                best is None
                or m.start() < best.start()
                or (m.start() == best.start() and i < best_i)
            ):
                best, best_i = m, i
        if best is None:
            n = len(buf)
            if n > self._searched:
                self._resume = [
                    max(r, rule.resume(buf, n))
                    for r, rule in zip(self._resume, self._rules, strict=True)
                ]
                self._searched = n
            return None
        self.before = buf[: best.start()]
        self.match = best
        self.buffer = buf[best.end() :]
        self._resume = [0] * len(patterns)
        self._searched = 0
        return best_i

    def clear(self) -> None:
        self.buffer = ""
        self._resume = [0] * len(self._resume)
        self._searched = 0


@dataclass
class TranscriptEntry:
    t: float
    direction: str
    data: bytes


READ_SLICE = 0.05  # s: the longest single wait of a read; set once on the port


def _raw_socket(ser: serial.SerialBase) -> socket.socket | None:
    """The TCP socket under a ``socket://`` port (pyserial's ``protocol_socket``, which
    keeps it as ``_socket``; its ``in_waiting`` is 1 whatever has arrived), else None."""
    if not type(ser).__module__.endswith(".protocol_socket"):
        return None
    sock = getattr(ser, "_socket", None)
    return sock if isinstance(sock, socket.socket) else None


class Port:
    """A serial port opened for the engine. Use as a context manager."""

    def __init__(
        self,
        url: str,
        baud: int = 115200,
        *,
        timeout: float = 10.0,
        transcript: str | Path | None = None,
    ) -> None:
        self.url = url
        self.baud = baud
        self.timeout = timeout
        self.transcript_path = Path(transcript) if transcript else None
        self.log: list[TranscriptEntry] = []
        self._t0 = time.monotonic()
        try:
            # exclusive: take the same flock() picocom and minicom take, so two programs
            # never fight over one camera's bytes
            # the read timeout is set once: over rfc2217:// every change of it re-sends the
            # port settings and waits for the server's answer (pyserial's SerialBase)
            self.ser = serial.serial_for_url(url, baudrate=baud, timeout=READ_SLICE, exclusive=True)
        except (serial.SerialException, ValueError, OSError) as e:
            raise TransportError(_open_error(url, e)) from e
        self.console = ConsoleMatcher()
        self._socket = _raw_socket(self.ser)

    def _in_waiting(self) -> int:
        """Bytes a read takes at once without waiting."""
        if self._socket is None:
            return self.ser.in_waiting
        count = array.array("i", [0])
        fcntl.ioctl(self._socket.fileno(), termios.FIONREAD, count)
        return count[0]

    def _refused(self) -> str | None:
        """Over a network URL whose connection failed: what to say when the serial server
        refused it (busy with another client; its line is among the first bytes this
        connection received, still in the socket, or the answer to one more connection)."""
        if "://" not in self.url:
            return None
        head = b"".join(e.data for e in self.log if e.direction == "rx")[:4096]
        if self._socket is not None:
            try:
                head += self._socket.recv(4096)
            except OSError:
                pass
        refused = ports.server_refusal(self.url, head)
        return None if refused is None else ports.busy_server_text(self.url, refused)

    # -- raw bytes ------------------------------------------------------------
    def _record(self, direction: str, data: bytes) -> None:
        if data:
            self.log.append(TranscriptEntry(time.monotonic() - self._t0, direction, bytes(data)))

    def read_some(self, size: int, timeout: float | None) -> bytes:
        """At least one byte (up to ``size``) or b"" after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                waiting = self._in_waiting()
                if waiting:
                    data = self.ser.read(min(size, waiting))
                else:
                    left = READ_SLICE if deadline is None else deadline - time.monotonic()
                    if left >= READ_SLICE:
                        data = self.ser.read(1)  # waits at most READ_SLICE
                        if data and size > 1:  # and what came with it
                            more = self._in_waiting()
                            if more:
                                data += self.ser.read(min(size - 1, more))
                    else:  # less than a slice left: poll, so the deadline is kept
                        if left > 0:
                            time.sleep(min(left, 0.005))
                        data = b""
            except (serial.SerialException, OSError) as e:
                raise TransportError(
                    self._refused()
                    or f"lost the serial port {self.url}: {e} (adapter unplugged, or the device went away)"
                ) from e
            if data:
                self._record("rx", data)
                return data
            if deadline is not None and time.monotonic() >= deadline:
                return b""

    def read_exact(self, n: int, timeout: float) -> bytes:
        """Exactly ``n`` bytes, or what arrived before ``timeout`` passed with nothing new."""
        out = bytearray()
        while len(out) < n:
            chunk = self.read_some(n - len(out), timeout)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        self._record("tx", data)
        try:
            self.ser.write(data)
            self.ser.flush()
        except serial.SerialTimeoutException as e:
            raise TransportError(self._refused() or f"cannot write to {self.url}: {e}") from e
        except (serial.SerialException, OSError) as e:
            # after the port was opened, a failing write is the port gone (EIO when the
            # adapter is pulled): the same words as a failing read
            raise TransportError(
                self._refused()
                or f"lost the serial port {self.url}: cannot write: {e} (adapter unplugged,"
                " or the device went away)"
            ) from e

    def drain_input(self, quiet: float = 0.05, limit: float = 2.0) -> bytes:
        """Read and return whatever arrives until the line is quiet for ``quiet`` seconds."""
        out = bytearray()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            chunk = self.read_some(65536, quiet)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def set_baud(self, baud: int) -> None:
        self.baud = baud
        self.ser.baudrate = baud
        self._record("--", f"host baud {baud}".encode())

    # -- text console -----------------------------------------------------------
    READ_SIZE = 16384

    def send(self, text: str) -> None:
        self.write(text.encode("latin-1"))

    def sendline(self, text: str, eol: str = "\r") -> None:
        self.send(text + eol)

    def expect(
        self, patterns: str | re.Pattern[str] | Sequence[str | re.Pattern[str]], timeout: float
    ) -> int:
        """Wait for one of ``patterns`` (regexes); return its index.

        After a match, :attr:`before` holds the text before it and :attr:`match`
        the match object; the text after it stays pending for the next expect.
        The earliest match in the pending text wins (on a tie, the pattern
        listed first). Raises :class:`Timeout` with the text seen; that text
        stays pending.
        """
        if isinstance(patterns, (str, re.Pattern)):
            patterns = [patterns]
        compiled = [re.compile(p) if isinstance(p, str) else p for p in patterns]
        con = self.console
        con.start(compiled)
        deadline = time.monotonic() + timeout
        while True:
            idx = con.search(compiled)
            if idx is not None:
                return idx
            left = deadline - time.monotonic()
            data = self.read_some(self.READ_SIZE, left) if left > 0 else b""
            if not data:
                raise Timeout(
                    f"timed out after {timeout:.1f} s waiting for {[p.pattern for p in compiled]}",
                    con.buffer,
                )
            con.feed(data.decode("latin-1"))

    def expect_exact(self, text: str, timeout: float) -> None:
        self.expect(re.escape(text), timeout)

    @property
    def before(self) -> str:
        return self.console.before

    @property
    def match(self) -> re.Match[str]:
        m = self.console.match
        if m is None:
            raise RuntimeError("no expect has matched yet")
        return m

    def pending_text(self) -> str:
        """Text received but not yet consumed by an expect."""
        return self.console.buffer

    def clear_buffer(self) -> None:
        self.console.clear()

    # -- transcript and lifecycle -------------------------------------------------
    def transcript_text(self) -> str:
        """One line per run of bytes in one direction (timestamp of its first byte)."""
        merged: list[TranscriptEntry] = []
        for e in self.log:
            if merged and merged[-1].direction == e.direction:
                merged[-1] = TranscriptEntry(merged[-1].t, e.direction, merged[-1].data + e.data)
            else:
                merged.append(e)
        lines = []
        for e in merged:
            shown = e.data.decode("latin-1").encode("unicode_escape").decode("ascii")
            lines.append(f"{e.t:10.6f} {e.direction:>3} {shown}")
        return "\n".join(lines) + ("\n" if lines else "")

    def save_transcript(self, path: str | Path | None = None) -> Path | None:
        target = Path(path) if path else self.transcript_path
        if target is None:
            return None
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(self.transcript_text(), encoding="utf-8")
        tmp.replace(target)
        return target

    def close(self) -> None:
        try:
            self.save_transcript()
        finally:
            try:
                self.ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished port is fine
                pass

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
