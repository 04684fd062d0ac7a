"""Open a camera's serial port and talk to it: expect/send for text consoles,
exact reads and writes for binary protocols, a transcript of both directions.

Any port pyserial can open works: a device path (``/dev/ttyUSB0``), a pty, or
a URL (``rfc2217://host:port`` for ser2net or a lab's exported port,
``socket://host:port`` for a raw TCP bridge). The expect layer is pexpect's
own matcher (``pexpect.spawnbase.SpawnBase``) fed from pyserial reads, so it
works on URLs that have no file descriptor. Console output is decoded as
latin-1: every byte maps to one character, so garbage on the line (wrong
baud, noise) never raises.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pexpect
import serial
from pexpect.spawnbase import SpawnBase


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


class _SerialSpawn(SpawnBase):
    """pexpect's matcher on top of a pyserial port."""

    def __init__(self, port: Port, timeout: float) -> None:
        # Search only new data plus the tail before it: re-scanning a long dump on
        # every read would cost more CPU than the wire time.
        super().__init__(
            timeout=timeout,
            maxread=65536,
            searchwindowsize=4096,
            encoding="latin-1",
            codec_errors="strict",
        )
        self._port = port

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> str:
        if timeout == -1:
            timeout = self.timeout
        data = self._port.read_some(size, timeout)
        if not data:
            raise pexpect.TIMEOUT("no data")
        s = self._decoder.decode(data, final=False)
        self._log(s, "read")
        return s

    def send(self, s: str | bytes) -> int:  # type: ignore[override]
        data = s.encode("latin-1") if isinstance(s, str) else s
        self._port.write(data)
        return len(data)


@dataclass
class TranscriptEntry:
    t: float
    direction: str
    data: bytes


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
            self.ser = serial.serial_for_url(url, baudrate=baud, timeout=0, exclusive=True)
        except (serial.SerialException, ValueError, OSError) as e:
            raise TransportError(_open_error(url, e)) from e
        self.spawn = _SerialSpawn(self, timeout)

    # -- raw bytes ------------------------------------------------------------
    def _record(self, direction: str, data: bytes) -> None:
        if data:
            self.log.append(TranscriptEntry(time.monotonic() - self._t0, direction, bytes(data)))

    def read_some(self, size: int, timeout: float | None) -> bytes:
        """At least one byte (up to ``size``) or b"" after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                waiting = self.ser.in_waiting
                if waiting:
                    data = self.ser.read(min(size, waiting))
                else:
                    left = 0.05 if deadline is None else max(0.0, deadline - time.monotonic())
                    self.ser.timeout = min(left, 0.05)
                    data = self.ser.read(1)
            except (serial.SerialException, OSError) as e:
                raise TransportError(
                    f"lost the serial port {self.url}: {e} (adapter unplugged, or the device went away)"
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
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"cannot write to {self.url}: {e}") from e

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
    def send(self, text: str) -> None:
        self.spawn.send(text)

    def sendline(self, text: str, eol: str = "\r") -> None:
        self.spawn.send(text + eol)

    def expect(
        self, patterns: str | re.Pattern[str] | Sequence[str | re.Pattern[str]], timeout: float
    ) -> int:
        """Wait for one of ``patterns`` (regexes); return its index.

        After a match, :attr:`before` holds the text before it and :attr:`match`
        the match object. Raises :class:`Timeout` with the text seen.
        """
        if isinstance(patterns, (str, re.Pattern)):
            patterns = [patterns]
        compiled = [re.compile(p) if isinstance(p, str) else p for p in patterns]
        try:
            return self.spawn.expect(compiled, timeout=timeout)
        except pexpect.TIMEOUT:
            seen = self.spawn.buffer if isinstance(self.spawn.buffer, str) else ""
            raise Timeout(
                f"timed out after {timeout:.1f} s waiting for {[p.pattern for p in compiled]}",
                seen,
            ) from None
        except pexpect.EOF as e:  # pragma: no cover - SpawnBase never reports EOF here
            raise TransportError(f"the port {self.url} closed") from e

    def expect_exact(self, text: str, timeout: float) -> None:
        self.expect(re.escape(text), timeout)

    @property
    def before(self) -> str:
        return self.spawn.before or ""

    @property
    def match(self) -> re.Match[str]:
        return self.spawn.match  # type: ignore[return-value]

    def pending_text(self) -> str:
        """Text received but not yet consumed by an expect."""
        return self.spawn.buffer if isinstance(self.spawn.buffer, str) else ""

    def clear_buffer(self) -> None:
        self.spawn.buffer = ""

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
