"""Shared test helpers: a host-side terminal on an emulated device's pty, and a loopback TFTP server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from harness.tftpd import TftpServer


class Term:
    """What a person with picocom does: read the device's output, type lines."""

    def __init__(self, path: str, baud: int = 115200) -> None:
        self.ser = serial.Serial(path, baud, timeout=0)
        self.buf = b""
        self.seen = b""

    def read_until(self, pattern: bytes | str, timeout: float = 10.0) -> bytes:
        """Consume and return output up to and including the first match of ``pattern`` (regex)."""
        pat = re.compile(pattern.encode("latin-1") if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = pat.search(self.buf)
            if m:
                out, self.buf = self.buf[: m.end()], self.buf[m.end() :]
                return out
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {pat.pattern!r}; got {self.buf[-2000:]!r}"
                )
            self.ser.timeout = 0.05
            chunk = self.ser.read(65536)
            self.buf += chunk
            self.seen += chunk

    def write(self, data: bytes | str) -> None:
        self.ser.write(data.encode("latin-1") if isinstance(data, str) else data)

    def cmd(self, line: str, prompt: str = "hilinux # ", timeout: float = 10.0) -> str:
        """Type a line, return what the device printed before the next prompt (echo removed)."""
        self.write(line + "\r")
        out = self.read_until(re.escape(prompt), timeout).decode("latin-1")
        echo = line + "\r\n"
        if out.startswith(echo):
            out = out[len(echo) :]
        return out[: -len(prompt)]

    def close(self) -> None:
        self.ser.close()


def attach(dev: object, *, interrupt: bytes | None = b" ", prompt: str = "hilinux # ") -> Term:
    """Open the device's port first (pyserial flushes input on open, as on any tty),
    then power it on; with ``interrupt``, stop autoboot and wait for the prompt."""
    term = Term(dev.path)  # type: ignore[attr-defined]
    dev.power_on()  # type: ignore[attr-defined]
    if interrupt is not None:
        term.read_until("Hit any key to stop autoboot")
        term.write(interrupt)
        term.read_until(prompt)
    return term


@pytest.fixture
def tftp_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A tftpy server on 127.0.0.1 serving (and accepting uploads into) a fresh directory."""
    with TftpServer(tmp_path / "tftp") as server:
        yield server.root, server.port
