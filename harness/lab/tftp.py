"""The harness's one TFTP server: tftpy (the third-party reference implementation)
serving a directory on a loopback port, downloads and uploads.

Used by the lab (between engine steps each networked device's TFTP port serves
the lab's work directory, so a person or a console step can type the seed's
``tftp`` commands by hand), by ``camrescue emulate hi3511 --tftp-root DIR`` and
by tests. tftpy's logger is kept at WARNING (DEBUG costs 4.5x the time) and its
select timeout at 0.2 s so stopping is quick (REFERENCE.md). A port that cannot
be bound raises :class:`OSError` saying why; :meth:`TftpServer.stop` lets a
transfer in flight finish (for 2 s) before it closes the sockets. Binds only to
loopback addresses (DESIGN.md, "Loopback only").
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from pathlib import Path

import tftpy

# tftpy resends after 0.2 s of silence and drops a session after this many resends in
# a row: 10 s, as the engine's server (recovery/tftp/server.py session_timeout). Its
# default, 3 (0.6 s), dropped a loaded host's emulated U-Boot in the middle of a lossy
# download: the device resends its ACK only on its own timer (issue 19).
RETRIES = 50


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def uploaded(path: Path, size: int, timeout: float = 10.0) -> bytes:
    """The file an upload to the server wrote, once it holds ``size`` bytes (or what it
    holds after ``timeout`` seconds). tftpy acknowledges the last block before it closes
    the file, so a client (or the emulated U-Boot's ``upload ok``) can be done before
    the file is complete."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= size:
            break
        time.sleep(0.01)
    return path.read_bytes() if path.exists() else b""


class TftpServer:
    """tftpy serving ``root`` (created if missing) on ``host:port`` in a thread.

    ``port`` 0 picks a free one; :attr:`port` holds the bound port after
    :meth:`start`. Use as a context manager or call :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self, root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the harness serves TFTP on loopback only, not {host}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        logging.getLogger("tftpy").setLevel(logging.WARNING)
        self._server = tftpy.TftpServer(str(self.root))
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> TftpServer:
        self.error = None

        def serve() -> None:
            try:
                self._server.listen(self.host, self.port, timeout=0.2, retries=RETRIES)
            except BaseException as e:  # reported by start(), not printed by the thread
                self.error = e
                self._server.is_running.set()

        self._thread = threading.Thread(target=serve, name="lab-tftp", daemon=True)
        self._thread.start()
        self._server.is_running.wait(5)
        if self.error is not None:
            self._thread.join(1)
            self._thread = None
            raise OSError(f"TFTP server cannot bind {self.host}:{self.port}: {self.error}")
        self.port = self._server.listenport
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop gracefully (a transfer in flight may finish, for 2 s), then at once."""
        if self._thread is None:
            return
        self._server.stop(now=False)
        self._thread.join(2)
        if self._thread.is_alive():
            self._server.stop(now=True)
            self._thread.join(5)
        self._thread = None
        # tftpy closes its listening socket but leaves sessions' sockets to the GC
        for sess in list(getattr(self._server, "sessions", {}).values()):
            with contextlib.suppress(Exception):
                sess.end()

    def __enter__(self) -> TftpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
