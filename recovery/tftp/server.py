"""The engine's embedded TFTP server (tftpy), for the camera's ``tftp`` command.

A camera's boot loader (U-Boot's ``tftp``) is a TFTP client: it downloads
firmware from, and uploads flash dumps to, the server at ``serverip`` on UDP
port 69. :class:`TftpServer` runs tftpy's server in a thread:

* It serves one root directory and nothing else: absolute names, ``..``,
  backslashes and symbolic links leading out of the root are refused (the
  client gets "File not found"; the refusal is recorded). Files can also be
  published by name without touching the root (:meth:`TftpServer.publish`).
* Uploads land inside the root, written to a temporary file that is renamed
  to its name only when the transfer completed; a broken transfer leaves no
  file that looks complete.
* Every request is recorded (:attr:`TftpServer.transfers`) so the engine can
  wait for an upload to be on disk and can say which file a camera asked for.
* tftpy uses one number for its select() timeout and its per-packet
  retransmission timeout; a short one (0.2 s) lets :meth:`TftpServer.stop`
  return quickly (REFERENCE.md, tftpy notes), and the retry count is raised so
  that a transfer is only dropped after ``session_timeout`` seconds of silence.
  Its logger is set to WARNING (DEBUG makes transfers 4.5x slower) and given a
  NullHandler, so a user's terminal only shows tftpy's messages when the
  application configures logging.
"""

from __future__ import annotations

import errno
import io
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tftpy

from recovery.errors import NetworkError

_log = logging.getLogger("tftpy")
_log.setLevel(logging.WARNING)
if not any(isinstance(h, logging.NullHandler) for h in _log.handlers):
    _log.addHandler(logging.NullHandler())

DEFAULT_BIND = ("0.0.0.0", 69)


class UnsafeName(ValueError):
    """A requested name that would leave the served root."""


def safe_path(root: Path, name: str) -> Path:
    """``root/name`` if ``name`` is a plain relative path that stays inside ``root``."""
    if not name or "\0" in name or "\\" in name:
        raise UnsafeName(f"bad file name {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeName(f"absolute file name {name!r}")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeName(f"file name {name!r} has empty, '.' or '..' parts")
    base = root.resolve()
    target = (base / name).resolve()
    if target != base and base not in target.parents:
        raise UnsafeName(f"file name {name!r} leads out of the root")
    return base / name


@dataclass
class Transfer:
    """One request the server saw."""

    kind: str  # "download" (client reads) or "upload" (client writes)
    name: str
    client: str
    status: str = "started"  # started, done, failed, missing, refused
    bytes: int = 0
    t_start: float = 0.0
    t_end: float = 0.0


class _TrackedFile(io.FileIO):
    """A real file (tftpy flocks it and logs its name) that reports when it is closed."""

    def __init__(self, path: Path, mode: str, on_close: Callable[[_TrackedFile], None]) -> None:
        super().__init__(path, mode)
        self._on_close: Callable[[_TrackedFile], None] | None = on_close
        self.position = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = super().read(size)
        self.position += len(data or b"")
        return data  # type: ignore[return-value]

    def write(self, data) -> int:  # type: ignore[override]
        n = super().write(data)
        self.position += n or 0
        return n or 0

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        callback, self._on_close = self._on_close, None
        if callback is not None:
            callback(self)


class TftpServer:
    """tftpy's server on ``bind`` serving ``root``; a context manager (enter = listening).

    ``bind`` port 0 picks a free port (see :attr:`port`). Raises
    :class:`~recovery.errors.NetworkError` with a clear message when the
    address cannot be bound (privileged port, port in use, foreign address).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        bind: tuple[str, int] = DEFAULT_BIND,
        *,
        select_timeout: float = 0.2,
        session_timeout: float = 10.0,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NetworkError(f"TFTP root {self.root} is not a directory")
        self.bind = bind
        self.select_timeout = select_timeout
        # tftpy counts each resend to a silent client as a duplicate and, at MAX_DUPS,
        # raises out of listen() and takes the whole server down: stay below it.
        self.retries = min(
            max(3, math.ceil(session_timeout / select_timeout)), tftpy.TftpShared.MAX_DUPS - 1
        )
        self.transfers: list[Transfer] = []
        self._published: dict[str, Path] = {}
        self._cond = threading.Condition()
        self._private: Path | None = None
        self._server: tftpy.TftpServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- files ----------------------------------------------------------------------
    def publish(self, name: str, data: bytes) -> str:
        """Serve ``data`` under ``name`` (kept outside the root, removed at stop)."""
        safe_path(self.root, name)  # the same rules as for files in the root
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="camrescue-tftp-"))
        store = self._private / "published"
        store.mkdir(exist_ok=True)
        path = store / f"{len(self._published):04d}.bin"
        path.write_bytes(data)
        self._published[name] = path
        return name

    def _record(self, t: Transfer) -> Transfer:
        with self._cond:
            self.transfers.append(t)
            self._cond.notify_all()
        return t

    def _finish(self, t: Transfer, status: str, nbytes: int) -> None:
        with self._cond:
            t.status, t.bytes, t.t_end = status, nbytes, time.monotonic()
            self._cond.notify_all()

    def _open_download(self, name: str, raddress: str = "", rport: int = 0) -> io.FileIO | None:
        try:
            return self._open_download_checked(name, raddress, rport)
        except OSError:
            return None  # tftpy answers "File not found"

    def _open_download_checked(self, name: str, raddress: str, rport: int) -> io.FileIO | None:
        client = f"{raddress}:{rport}"
        t = Transfer("download", name, client, t_start=time.monotonic())
        path = self._published.get(name)
        if path is None:
            try:
                path = safe_path(self.root, name)
            except UnsafeName:
                self._record(t).status = "refused"
                return None
        if not path.is_file():
            self._record(t).status = "missing"
            return None
        size = path.stat().st_size
        self._record(t)

        def done(f: _TrackedFile) -> None:
            self._finish(t, "done" if f.position >= size else "failed", f.position)

        return _TrackedFile(path, "rb", done)

    def _open_upload(self, tftpy_path: str, context: object) -> io.FileIO | None:
        try:
            return self._open_upload_checked(context)
        except OSError:
            return None  # tftpy answers "Access violation"

    def _open_upload_checked(self, context: Any) -> io.FileIO | None:
        name = str(context.file_to_transfer)
        t = Transfer("upload", name, f"{context.host}:{context.port}", t_start=time.monotonic())
        try:
            target = safe_path(self.root, name)
        except UnsafeName:
            self._record(t).status = "refused"
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        self._record(t)

        def done(f: _TrackedFile) -> None:
            if context.state is None:  # tftpy sets state to None once the last block is in
                os.replace(tmp, target)
                self._finish(t, "done", f.position)
            else:
                os.unlink(tmp)
                self._finish(t, "failed", f.position)

        return _TrackedFile(Path(tmp), "wb", done)

    def wait_upload(self, name: str, timeout: float, since: int = 0) -> Transfer | None:
        """The first finished upload of ``name`` recorded at or after index ``since``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t in self.transfers[since:]:
                    if t.kind == "upload" and t.name == name and t.status != "started":
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def requests(self, name: str | None = None) -> list[Transfer]:
        with self._cond:
            return [t for t in self.transfers if name is None or t.name == name]

    # -- lifecycle --------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None or self._server.listenport is None:
            raise RuntimeError("the TFTP server is not running")
        return int(self._server.listenport)

    @property
    def address(self) -> tuple[str, int]:
        return self.bind[0], self.port

    def _run(self) -> None:
        assert self._server is not None
        try:
            self._server.listen(
                self.bind[0], self.bind[1], timeout=self.select_timeout, retries=self.retries
            )
        except BaseException as e:  # noqa: BLE001 - reported by start() or stop()
            self._error = e

    def start(self) -> TftpServer:
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="camrescue-tftp-"))
        empty = self._private / "empty"
        empty.mkdir(exist_ok=True)
        # tftpy's own root is an empty directory: every read goes through
        # _open_download and every write through _open_upload, with our checks.
        self._server = tftpy.TftpServer(
            str(empty), dyn_file_func=self._open_download, upload_open=self._open_upload
        )
        self._thread = threading.Thread(target=self._run, name="tftp-server", daemon=True)
        self._thread.start()
        while not self._server.is_running.wait(0.01):
            if not self._thread.is_alive():
                self._thread.join()
                self._cleanup()
                raise self._bind_error(self._error)
        return self

    def _bind_error(self, e: BaseException | None) -> NetworkError:
        host, port = self.bind
        where = f"UDP {host}:{port}"
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM):
            return NetworkError(
                f"cannot start the TFTP server on {where}: permission denied (ports below 1024 "
                "need root)",
                flash_state="untouched",
                hint="run with sudo, or allow it once: sudo setcap cap_net_bind_service=+ep "
                "$(readlink -f $(which python3)); or use an existing TFTP server with "
                "--no-server --tftp-root DIR. The camera always asks port 69.",
            )
        if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
            return NetworkError(
                f"cannot start the TFTP server on {where}: the port is in use (another TFTP "
                "server such as tftpd-hpa, atftpd or dnsmasq?)",
                flash_state="untouched",
                hint="stop the other server, or use it: --no-server --tftp-root <its directory>",
            )
        if isinstance(e, OSError) and e.errno == errno.EADDRNOTAVAIL:
            return NetworkError(
                f"cannot start the TFTP server on {where}: {host} is not an address of this "
                "computer",
                flash_state="untouched",
                hint="use --tftp-bind 0.0.0.0:69 or the address of the network card the "
                "camera is plugged into",
            )
        return NetworkError(
            f"cannot start the TFTP server on {where}: {e}", flash_state="untouched"
        )

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.stop(now=True)
            self._thread.join(timeout=5 + self.select_timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        self._published.clear()

    def __enter__(self) -> TftpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
