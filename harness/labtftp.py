"""The lab's TFTP server: tftpy serving the lab's work directory on a device's port.

Between engine steps the lab serves its work directory on each networked
device's TFTP port, so a person (or a console step) can type the seed's
``tftp`` commands by hand. The tftpy wiring is :class:`harness.tftpd.TftpServer`'s
(loopback only, tftpy's logger at WARNING since DEBUG costs 4.5x the time, a
0.2 s select timeout so stopping is quick; REFERENCE.md); :class:`LabTftpServer`
adds what the lab needs on top: a bind failure reported with its cause, and a
stop that lets a transfer in flight finish before it closes the sockets.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from harness.tftpd import TftpServer


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LabTftpServer(TftpServer):
    """tftpy serving ``root`` on ``host:port`` in a thread (downloads and uploads).

    ``port`` 0 picks a free one; :attr:`port` holds the bound port after
    :meth:`start`. A port that cannot be bound raises :class:`OSError` saying why.
    """

    def __init__(self, root: str | os.PathLike[str], port: int = 0, host: str = "127.0.0.1"):
        super().__init__(os.fspath(root), host=host, port=port)
        self._error: BaseException | None = None

    def start(self) -> LabTftpServer:
        def serve() -> None:
            try:
                self._server.listen(self.host, self.port, timeout=0.2)
            except BaseException as e:  # reported by start()
                self._error = e
                self._server.is_running.set()

        self._thread = threading.Thread(target=serve, name="lab-tftp", daemon=True)
        self._thread.start()
        self._server.is_running.wait(5)
        if self._error is not None:
            self._thread.join(1)
            raise OSError(f"lab TFTP server cannot bind {self.host}:{self.port}: {self._error}")
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
            super().stop()  # tftpy's immediate stop
        self._thread = None
        # tftpy leaves its listening socket closed but sessions' sockets to the GC
        for sess in list(getattr(self._server, "sessions", {}).values()):
            with contextlib.suppress(Exception):
                sess.end()

    def __enter__(self) -> LabTftpServer:
        return self.start()
