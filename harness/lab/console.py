"""A host-side terminal on an emulated device's pty, like picocom with an expect script.

:class:`ConsoleClient` puts the pty in raw mode at the device's baud, reads it in
a thread (so the device never blocks on output), keeps everything it read and
waits for text with :meth:`ConsoleClient.expect`. Tests use the same client
with a byte-oriented helper set (:meth:`~ConsoleClient.read_until`,
:meth:`~ConsoleClient.write`, :meth:`~ConsoleClient.cmd`) and :func:`attach`,
which opens a device's port, powers it on and stops its autoboot.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import termios
import threading
import time
import tty
from dataclasses import dataclass
from typing import Any

BAUDS = {
    int(n[1:]): getattr(termios, n) for n in dir(termios) if n.startswith("B") and n[1:].isdigit()
}


@dataclass
class ExpectResult:
    index: int
    before: str
    match: str


class ConsoleTimeout(Exception):
    def __init__(self, message: str, seen: str) -> None:
        super().__init__(message)
        self.seen = seen


class ConsoleClient:
    """A terminal on a device's pty, as picocom would be: raw mode at the given
    baud, a reader thread that never lets the device block, and expect.

    Opening does not flush: output the device printed while nobody had the port
    open is read too. :meth:`expect` searches what arrived since the last match
    (or the last :meth:`mark`); everything read is kept in :attr:`received`.
    """

    def __init__(self, path: str, baud: int = 115200) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            speed = BAUDS[baud]
            attrs[4] = attrs[5] = speed
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        except BaseException:
            os.close(self.fd)
            raise
        self.baud = baud
        self.received = bytearray()
        self._pos = 0
        self._cond = threading.Condition()
        self._eof = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._reader, name="lab-console", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while True:
            try:
                r, _, _ = select.select([self.fd, self._wake_r], [], [], 1.0)
            except (OSError, ValueError):
                break
            if self._wake_r in r:
                break
            if self.fd in r:
                try:
                    data = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the device closed the link
                    break
                with self._cond:
                    self.received += data
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        view = memoryview(data)
        deadline = time.monotonic() + 10
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.path}: the device does not read its input") from None
                select.select([], [self.fd], [], 0.05)

    def mark(self) -> None:
        """Forget unread output for matching (it stays in :attr:`received`)."""
        with self._cond:
            self._pos = len(self.received)

    def pending_text(self) -> str:
        with self._cond:
            return self.received[self._pos :].decode("latin-1")

    def expect(
        self, patterns: list[str] | str, timeout: float = 10.0, *, regex: bool = False
    ) -> ExpectResult:
        """Wait until one of ``patterns`` appears; the earliest match wins."""
        if isinstance(patterns, str):
            patterns = [patterns]
        compiled = [re.compile(p if regex else re.escape(p)) for p in patterns]
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self.received[self._pos :].decode("latin-1")
                best: tuple[int, int, re.Match[str]] | None = None
                for i, c in enumerate(compiled):
                    m = c.search(text)
                    if m and (best is None or m.start() < best[2].start()):
                        best = (i, m.start(), m)
                if best is not None:
                    i, _, m = best
                    self._pos += len(text[: m.end()].encode("latin-1"))
                    return ExpectResult(i, text[: m.start()], m.group(0))
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    why = "the link closed" if self._eof else f"{timeout:g} s passed"
                    raise ConsoleTimeout(
                        f"waited for {' or '.join(repr(p) for p in patterns)}; {why}", text
                    )
                self._cond.wait(min(left, 0.2))

    # -- the helpers tests use (bytes in, bytes out) ------------------------------------
    def write(self, data: bytes | str) -> None:
        """Type ``data`` (the same as :meth:`send`)."""
        self.send(data)

    def read_until(self, pattern: bytes | str, timeout: float = 10.0) -> bytes:
        """Consume and return the unread output up to and including the first match of
        the regular expression ``pattern``; :class:`ConsoleTimeout` when it does not come."""
        pat = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
        r = self.expect(pat, timeout, regex=True)
        return (r.before + r.match).encode("latin-1")

    def cmd(self, line: str, prompt: str = "hilinux # ", timeout: float = 10.0) -> str:
        """Type a line, return what the device printed before the next prompt (echo removed)."""
        self.write(line + "\r")
        out = self.read_until(re.escape(prompt), timeout).decode("latin-1")
        echo = re.match(re.escape(line) + r"\r*\n", out)  # U-Boot echoes Enter as \r\r\n
        if echo:
            out = out[echo.end() :]
        return out[: -len(prompt)]

    def read_for(self, seconds: float) -> bytes:
        """Wait ``seconds``, then consume and return whatever arrived unread."""
        time.sleep(seconds)
        with self._cond:
            out = bytes(self.received[self._pos :])
            self._pos = len(self.received)
        return out

    @property
    def buf(self) -> bytes:
        """The output not consumed yet; ``buf = b""`` forgets it (:meth:`mark`)."""
        with self._cond:
            return bytes(self.received[self._pos :])

    @buf.setter
    def buf(self, value: bytes) -> None:
        if value:
            raise ValueError("only b'' can be assigned: it forgets the unread output")
        self.mark()

    @property
    def seen(self) -> bytes:
        """Everything read since the port was opened."""
        with self._cond:
            return bytes(self.received)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(2)
        for fd in (self.fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach(
    dev: Any,
    *,
    interrupt: bytes | None = b" ",
    prompt: str = "hilinux # ",
    autoboot: str = "Hit any key to stop autoboot",
    baud: int = 115200,
) -> ConsoleClient:
    """Open the device's port first, then power it on (as a person with picocom does);
    with ``interrupt``, stop the autoboot and wait for the prompt."""
    con = ConsoleClient(dev.path, baud)
    try:
        dev.power_on()
        if interrupt is not None:
            con.read_until(re.escape(autoboot))
            con.write(interrupt)
            con.read_until(re.escape(prompt))
    except BaseException:
        con.close()
        raise
    return con
