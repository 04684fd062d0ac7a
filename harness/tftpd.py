"""A loopback TFTP server for the harness (tftpy, the third-party reference implementation).

Used by ``camrescue emulate hi3511 --tftp-root DIR`` and by tests that type the
seed's commands by hand. Binds only to loopback addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from pathlib import Path

import tftpy


class TftpServer:
    """tftpy serving ``root`` on ``host:port`` (port 0 picks a free one) in a thread."""

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
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

    def _listen(self) -> None:
        try:
            self._server.listen(listenip=self.host, listenport=self.port, timeout=0.2)
        except BaseException as e:  # reported by start(), not printed by the thread
            self.error = e

    def start(self) -> TftpServer:
        self.error = None
        self._thread = threading.Thread(target=self._listen, name="tftpd", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.listenport and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise OSError(f"TFTP server could not bind {self.host}:{self.port}: {self.error}")
            time.sleep(0.005)
        self.port = self._server.listenport
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.stop(now=True)
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> TftpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
