"""The engine's embedded TFTP server, for the camera's ``tftp`` command.

A camera's boot loader (U-Boot's ``tftp``) is a TFTP client: it downloads
firmware from, and uploads flash dumps to, the server at ``serverip`` on UDP
port 69. :class:`TftpServer` is a small server of its own (RFC 1350, with the
option extension of RFC 2347 and the blksize, timeout and tsize options of RFC
2348/2349) in one thread, written for a hostile network (issue 17):

* **Read-only by default, only this job's files.** It serves nothing from disk:
  only what the engine published (:meth:`TftpServer.publish`). It accepts a WRQ
  only for the one name the engine expects (:meth:`TftpServer.expect_upload`),
  of at most the expected size, from an allowed client (the camera's address;
  a server bound to a loopback address also accepts 127.0.0.1); the data goes
  to a private temporary file (mode 0600, in a private directory), renamed
  when the transfer is complete. It never creates directories, never writes
  anywhere else, never follows a name into the file system.
* **Every datagram is judged, none kills it.** A request with a name that is
  not printable ASCII, a name with ``..``, ``\\``, a drive letter, a leading or
  doubled ``/``, a mode other than octet, a malformed or oversized request, or
  a request nobody expects gets an ERROR packet; a packet from an unknown
  transfer ID gets ERROR 5 (RFC 1350); anything else that makes no sense is
  dropped. The loop catches everything per datagram.
* **Floods cost nothing.** At most ``max_sessions`` transfers are open; when a
  new request finds the table full, the oldest session that never got past its
  first packet (half-open) is dropped for it, so hundreds of half-open
  sessions never stall a camera's transfer that is making progress.
* **Options** (RFC 2347): the HiSilicon U-Boot asks ``timeout`` 20 (upstream
  U-Boot 5) in its RRQ/WRQ; the server answers an OACK carrying the accepted
  options (``timeout`` 1..255 echoed as asked, RFC 2349; ``blksize`` 8..65464,
  reduced to :data:`MAX_BLKSIZE` if larger, RFC 2348; ``tsize``: the file's size
  in an RRQ, the announced size echoed in a WRQ, which is refused with ERROR 3
  if larger than expected). After an OACK a reader ACKs block 0 and a writer
  sends DATA 1. Unknown options are ignored (RFC 2347); a request with none
  gets a plain DATA 1 / ACK 0. The server resends a packet after
  ``retransmit`` seconds of silence, or the agreed timeout if that is shorter,
  and gives a transfer up after ``session_timeout`` seconds without an answer.
* Every request is recorded (:attr:`TftpServer.transfers`) so the engine can
  wait for an upload and say which file a camera asked for.

Sources: RFC 1350, 2347, 2348, 2349; U-Boot's ``net/tftp.c``
(zhhejun/u-boot-1.1.4: the client sends the timeout option and answers an OACK
with ACK 0 before the data).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import selectors
import shutil
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from recovery.errors import NetworkError
from recovery.files import make_tempdir

OP_RRQ, OP_WRQ, OP_DATA, OP_ACK, OP_ERROR, OP_OACK = 1, 2, 3, 4, 5, 6
ERR_UNDEF, ERR_NOT_FOUND, ERR_ACCESS, ERR_FULL, ERR_ILLEGAL, ERR_TID = 0, 1, 2, 3, 4, 5
BLKSIZE = 512
MAX_BLKSIZE = 1468  # one Ethernet frame
MAX_REQUEST = 512  # RFC 1350: a request fits in one 512-byte packet
MAX_NAME = 255


class UnsafeName(ValueError):
    """A requested name that could mean a path outside the served files."""


_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


def check_name(name: str) -> str:
    """A plain relative name of printable ASCII: no ``..``, ``.`` or empty parts, no
    backslash, no drive letter, no leading or trailing ``/``."""
    if not name or len(name) > MAX_NAME or not _PRINTABLE.match(name):
        raise UnsafeName(f"bad file name {name!r}")
    if "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise UnsafeName(f"file name {name!r} has a backslash or a drive letter")
    if name.startswith("/"):
        raise UnsafeName(f"absolute file name {name!r}")
    if any(p in ("", ".", "..") for p in name.split("/")):
        raise UnsafeName(f"file name {name!r} has empty, '.' or '..' parts")
    return name


def safe_path(root: Path, name: str) -> Path:
    """``root/name`` if ``name`` passes :func:`check_name` and stays inside ``root``
    (symbolic links resolved); for a user's own TFTP root (``--no-server``)."""
    check_name(name)
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
    reason: str = ""


@dataclass
class _Session:
    transfer: Transfer
    sock: socket.socket
    peer: tuple[str, int]
    blksize: int
    rto: float
    last_packet: bytes = b""
    last_sent: float = 0.0
    last_heard: float = 0.0
    block: int = 0  # download: the block last sent; upload: the block last acked
    progressed: bool = False
    dally_until: float = 0.0
    # download
    data: bytes = b""
    final_sent: bool = False
    # upload
    max_size: int = 0
    tmp: Path | None = None
    fh: object = None
    received: int = 0
    chunks: list[bytes] = field(default_factory=list)


def _packet(op: int, *fields: bytes) -> bytes:
    return struct.pack("!H", op) + b"".join(fields)


def _error(code: int, message: str) -> bytes:
    return struct.pack("!HH", OP_ERROR, code) + message.encode("ascii", "replace") + b"\0"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class TftpServer:
    """The server on ``bind`` (host, port); port 0 picks a free port (:attr:`port`).

    ``clients``: the addresses allowed to upload (None: any); a server bound to a
    loopback address accepts 127.0.0.1 too (the emulated camera). ``root`` is
    accepted for compatibility and not served: only published files are.
    Raises :class:`~recovery.errors.NetworkError` with a clear message when the
    address cannot be bound (privileged port, port in use, foreign address).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        bind: tuple[str, int] = ("127.0.0.1", 69),
        *,
        clients: set[str] | None = None,
        retransmit: float = 0.2,
        session_timeout: float = 10.0,
        max_sessions: int = 32,
        select_timeout: float = 0.2,
    ) -> None:
        self.bind = bind
        self.clients = set(clients) if clients is not None else None
        self.retransmit = retransmit
        self.session_timeout = session_timeout
        self.max_sessions = max_sessions
        self.select_timeout = select_timeout
        self.transfers: list[Transfer] = []
        self.dropped = 0  # datagrams judged and dropped or refused
        self._published: dict[str, bytes] = {}
        self._expected: dict[str, int] = {}
        self._uploads: dict[str, Path] = {}
        self._cond = threading.Condition()
        self._private: Path | None = None
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._sessions: dict[socket.socket, _Session] = {}
        self._sel: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._upload_n = 0

    # -- what is served and accepted -------------------------------------------------
    def publish(self, name: str, data: bytes) -> str:
        """Serve ``data`` under ``name`` (kept in memory, forgotten at stop)."""
        check_name(name)
        with self._cond:
            self._published[name] = bytes(data)
        return name

    def expect_upload(self, name: str, max_size: int) -> int:
        """Accept one WRQ for ``name`` of at most ``max_size`` bytes; return the
        transfer mark to give :meth:`wait_upload`."""
        check_name(name)
        with self._cond:
            self._expected[name] = max_size
            old = self._uploads.pop(name, None)
            if old is not None:
                with contextlib.suppress(OSError):
                    old.unlink()
            return len(self.transfers)

    def take_upload(self, name: str) -> bytes:
        """The bytes of the completed upload of ``name`` (then forgotten)."""
        with self._cond:
            path = self._uploads.pop(name)
        try:
            return path.read_bytes()
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def _record(self, t: Transfer) -> Transfer:
        with self._cond:
            self.transfers.append(t)
            self._cond.notify_all()
        return t

    def _finish(self, t: Transfer, status: str, nbytes: int, reason: str = "") -> None:
        with self._cond:
            t.status, t.bytes, t.t_end = status, nbytes, time.monotonic()
            t.reason = reason or t.reason
            self._cond.notify_all()

    def wait_upload(self, name: str, timeout: float, since: int = 0) -> Transfer | None:
        """The first finished upload of ``name`` recorded at or after index ``since``
        (refused requests, e.g. from another host, are skipped)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t in self.transfers[since:]:
                    if t.kind == "upload" and t.name == name and t.status in ("done", "failed"):
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def requests(self, name: str | None = None) -> list[Transfer]:
        with self._cond:
            return [t for t in self.transfers if name is None or t.name == name]

    def _allowed(self, host: str) -> bool:
        if self.clients is None or host in self.clients:
            return True
        return _is_loopback(self.bind[0]) and host == "127.0.0.1"

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the TFTP server is not running")
        return int(self._sock.getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        return self.bind[0], self.port

    def start(self) -> TftpServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(self.bind)
        except OSError as e:
            sock.close()
            raise self._bind_error(e) from None
        self._sock = sock
        self._private = make_tempdir("tftp")
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tftp-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in list(self._sessions):
            self._close(self._sessions[s], "failed", "the server stopped")
        for sock in (self._sock, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._sel is not None:
            self._sel.close()
        self._sock = self._wake_r = self._wake_w = None
        self._sel = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        with self._cond:
            self._published.clear()
            self._uploads.clear()

    def __enter__(self) -> TftpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind_error(self, e: OSError) -> NetworkError:
        host, port = self.bind
        where = f"UDP {host}:{port}"
        if e.errno in (errno.EACCES, errno.EPERM):
            return NetworkError(
                f"cannot start the TFTP server on {where}: permission denied (ports below 1024 "
                "need root)",
                flash_state="untouched",
                hint="run with sudo, or allow it once: sudo setcap cap_net_bind_service=+ep "
                "$(readlink -f $(which python3)); or use an existing TFTP server with "
                "--no-server --tftp-root DIR. The camera always asks port 69.",
            )
        if e.errno == errno.EADDRINUSE:
            return NetworkError(
                f"cannot start the TFTP server on {where}: the port is in use (another TFTP "
                "server such as tftpd-hpa, atftpd or dnsmasq?)",
                flash_state="untouched",
                hint="stop the other server, or use it: --no-server --tftp-root <its directory>",
            )
        if e.errno == errno.EADDRNOTAVAIL:
            return NetworkError(
                f"cannot start the TFTP server on {where}: {host} is not an address of this "
                "computer",
                flash_state="untouched",
                hint="give --serverip as this computer's address on the camera's network "
                "(the server listens there), or --tftp-bind with that address",
            )
        return NetworkError(
            f"cannot start the TFTP server on {where}: {e}", flash_state="untouched"
        )

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        assert self._sel is not None
        try:
            while not self._stop.is_set():
                for key, _ in self._sel.select(self._next_wait()):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._wake_r:
                        continue
                    try:
                        data, peer = sock.recvfrom(65536)
                    except OSError:
                        continue
                    try:
                        if sock is self._sock:
                            self._on_request(data, peer)
                        elif sock in self._sessions:
                            self._on_session(self._sessions[sock], data, peer)
                    except Exception:  # noqa: BLE001 - one bad datagram never stops the server
                        self.dropped += 1
                        sess = self._sessions.get(sock)
                        if sess is not None:
                            self._close(sess, "failed", "internal error on a packet")
                self._tick()
        except BaseException as e:  # noqa: BLE001 - kept for stop()
            self._error = e

    def _next_wait(self) -> float:
        wait = self.select_timeout
        now = time.monotonic()
        for s in self._sessions.values():
            due = s.dally_until if s.dally_until else s.last_sent + s.rto
            wait = min(wait, max(0.0, due - now))
        return wait

    def _tick(self) -> None:
        now = time.monotonic()
        for s in list(self._sessions.values()):
            if s.dally_until:
                if now >= s.dally_until:
                    self._close(s, None)
                continue
            if now - s.last_heard > self.session_timeout:
                self._close(s, "failed", "the client went silent")
            elif now - s.last_sent >= s.rto and s.last_packet:
                self._send(s, s.last_packet)

    def _send(self, s: _Session, pkt: bytes) -> None:
        s.last_packet, s.last_sent = pkt, time.monotonic()
        with contextlib.suppress(OSError):
            s.sock.sendto(pkt, s.peer)

    def _reply(self, peer: tuple[str, int], pkt: bytes) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendto(pkt, peer)

    def _refuse(
        self, peer: tuple[str, int], code: int, message: str, t: Transfer | None = None
    ) -> None:
        self.dropped += 1
        if t is not None:
            t.reason = message
            self._record(t)
        self._reply(peer, _error(code, message))

    def _on_request(self, data: bytes, peer: tuple[str, int]) -> None:
        if len(data) < 4:
            self.dropped += 1
            return
        (op,) = struct.unpack_from("!H", data)
        if op not in (OP_RRQ, OP_WRQ):
            if op != OP_ERROR:
                self._refuse(peer, ERR_TID if op in (OP_DATA, OP_ACK) else ERR_ILLEGAL, "no")
            return
        if len(data) > MAX_REQUEST:
            self._refuse(peer, ERR_ILLEGAL, "request too long")
            return
        if not data.endswith(b"\0"):
            self._refuse(peer, ERR_ILLEGAL, "malformed request")
            return
        parts = data[2:-1].split(b"\0")
        if len(parts) < 2 or len(parts) % 2:
            self._refuse(peer, ERR_ILLEGAL, "malformed request")
            return
        kind = "download" if op == OP_RRQ else "upload"
        raw_name = parts[0]
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            name = raw_name.decode("latin-1")
            t = Transfer(kind, name, f"{peer[0]}:{peer[1]}", "refused", t_start=time.monotonic())
            self._refuse(peer, ERR_ACCESS, "file name is not ASCII", t)
            return
        t = Transfer(kind, name, f"{peer[0]}:{peer[1]}", t_start=time.monotonic())
        try:
            check_name(name)
        except UnsafeName as e:
            t.status = "refused"
            self._refuse(peer, ERR_ACCESS, str(e), t)
            return
        try:
            mode = parts[1].decode("ascii").lower()
            opts = {
                parts[i].decode("ascii").lower(): parts[i + 1].decode("ascii")
                for i in range(2, len(parts), 2)
            }
        except UnicodeDecodeError:
            t.status = "refused"
            self._refuse(peer, ERR_ILLEGAL, "mode and options must be ASCII", t)
            return
        if mode != "octet":
            t.status = "refused"
            self._refuse(peer, ERR_ILLEGAL, "only octet mode is served", t)
            return
        if op == OP_RRQ:
            self._start_download(t, name, opts, peer)
        else:
            self._start_upload(t, name, opts, peer)

    def _negotiate(
        self, opts: dict[str, str], tsize: int | None
    ) -> tuple[dict[str, str], int, float]:
        """The accepted options, the block size and the resend interval."""
        accepted: dict[str, str] = {}
        blksize, rto = BLKSIZE, self.retransmit
        value = opts.get("blksize", "")
        if value.isdigit() and 8 <= int(value) <= 65464:
            blksize = min(int(value), MAX_BLKSIZE)
            accepted["blksize"] = str(blksize)
        value = opts.get("timeout", "")
        if value.isdigit() and 1 <= int(value) <= 255:
            accepted["timeout"] = value
            rto = min(rto, float(int(value)))
        if "tsize" in opts and tsize is not None:
            accepted["tsize"] = str(tsize)
        return accepted, blksize, rto

    def _oack(self, accepted: dict[str, str]) -> bytes:
        body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in accepted.items())
        return _packet(OP_OACK, body)

    def _open_session(
        self, t: Transfer, peer: tuple[str, int], blksize: int, rto: float
    ) -> _Session | None:
        if len(self._sessions) >= self.max_sessions:
            idle = [s for s in self._sessions.values() if not s.progressed or s.dally_until]
            if not idle:
                t.status = "refused"
                self._refuse(peer, ERR_UNDEF, "server busy", t)
                return None
            self._close(min(idle, key=lambda s: s.last_heard), "failed", "dropped: half-open")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self._sock.getsockname()[0] if self._sock else self.bind[0], 0))
        now = time.monotonic()
        s = _Session(t, sock, peer, blksize, rto, last_heard=now, last_sent=now)
        self._sessions[sock] = s
        assert self._sel is not None
        self._sel.register(sock, selectors.EVENT_READ, None)
        self._record(t)
        return s

    def _close(self, s: _Session, status: str | None, reason: str = "") -> None:
        self._sessions.pop(s.sock, None)
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s.sock)
        s.sock.close()
        if s.fh is not None:
            with contextlib.suppress(OSError):
                s.fh.close()  # type: ignore[attr-defined]
            s.fh = None
        if status == "failed" and s.tmp is not None:
            with contextlib.suppress(OSError):
                s.tmp.unlink()
        if status is not None and s.transfer.status == "started":
            if s.transfer.kind == "upload":
                done = s.received
            elif status == "done":
                done = len(s.data)
            else:
                done = min(len(s.data), max(0, s.block - 1) * s.blksize)
            self._finish(s.transfer, status, done, reason)

    # -- downloads (RRQ) -----------------------------------------------------------------
    def _start_download(
        self, t: Transfer, name: str, opts: dict[str, str], peer: tuple[str, int]
    ) -> None:
        with self._cond:
            data = self._published.get(name)
        if data is None:
            t.status = "missing"
            self._refuse(peer, ERR_NOT_FOUND, "File not found", t)
            return
        accepted, blksize, rto = self._negotiate(opts, len(data))
        s = self._open_session(t, peer, blksize, rto)
        if s is None:
            return
        s.data = data
        if accepted:
            s.block = 0
            self._send(s, self._oack(accepted))
        else:
            self._send_block(s, 1)

    def _send_block(self, s: _Session, block: int) -> None:
        s.block = block
        chunk = s.data[(block - 1) * s.blksize : block * s.blksize]
        s.final_sent = len(chunk) < s.blksize
        self._send(s, _packet(OP_DATA, struct.pack("!H", block & 0xFFFF), chunk))

    def _on_session(self, s: _Session, data: bytes, peer: tuple[str, int]) -> None:
        if peer != s.peer:
            self.dropped += 1
            with contextlib.suppress(OSError):
                s.sock.sendto(_error(ERR_TID, "Unknown transfer ID"), peer)
            return
        if len(data) < 4:
            self.dropped += 1
            return
        op, number = struct.unpack_from("!HH", data)
        if op == OP_ERROR:
            self._close(s, "failed", "the client sent an error")
            return
        s.last_heard = time.monotonic()
        if s.transfer.kind == "download":
            self._on_ack(s, op, number)
        else:
            self._on_data(s, op, number, data[4:])

    def _on_ack(self, s: _Session, op: int, number: int) -> None:
        if op != OP_ACK or s.dally_until:
            self.dropped += int(op != OP_ACK)
            return
        if number != s.block & 0xFFFF:
            return  # a duplicate: the resend timer deals with loss (no Sorcerer's Apprentice)
        if s.block >= 1:
            s.progressed = True
        if s.block >= 1 and s.final_sent:
            self._close(s, "done")
            return
        self._send_block(s, s.block + 1)

    # -- uploads (WRQ) ---------------------------------------------------------------------
    def _start_upload(
        self, t: Transfer, name: str, opts: dict[str, str], peer: tuple[str, int]
    ) -> None:
        if not self._allowed(peer[0]):
            t.status = "refused"
            self._refuse(peer, ERR_ACCESS, "uploads are accepted from the camera only", t)
            return
        with self._cond:
            limit = self._expected.get(name)
        busy = any(
            s.transfer.kind == "upload" and s.transfer.name == name and not s.dally_until
            for s in self._sessions.values()
        )
        if limit is None or busy:
            t.status = "refused"
            self._refuse(peer, ERR_ACCESS, "no upload of this name is expected", t)
            return
        announced = opts.get("tsize", "")
        if announced.isdigit() and int(announced) > limit:
            t.status = "refused"
            self._refuse(peer, ERR_FULL, f"larger than the expected {limit} bytes", t)
            return
        accepted, blksize, rto = self._negotiate(
            opts, int(announced) if announced.isdigit() else None
        )
        s = self._open_session(t, peer, blksize, rto)
        if s is None:
            return
        assert self._private is not None
        self._upload_n += 1
        s.tmp = self._private / f"upload-{self._upload_n}.part"
        fd = os.open(s.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        s.fh = os.fdopen(fd, "wb")
        s.max_size = limit
        s.block = 0
        self._send(s, self._oack(accepted) if accepted else _packet(OP_ACK, b"\0\0"))

    def _on_data(self, s: _Session, op: int, number: int, payload: bytes) -> None:
        if op != OP_DATA:
            self.dropped += 1
            return
        if number == s.block & 0xFFFF and s.block:
            self._send(s, _packet(OP_ACK, struct.pack("!H", number)))  # our ACK was lost
            return
        if number != (s.block + 1) & 0xFFFF or s.dally_until:
            return
        if len(payload) > s.blksize:
            self._reply_in(s, ERR_ILLEGAL, "block larger than agreed")
            self._close(s, "failed", "block larger than agreed")
            return
        if s.received + len(payload) > s.max_size:
            self._reply_in(s, ERR_FULL, f"larger than the expected {s.max_size} bytes")
            self._close(s, "failed", "larger than expected")
            return
        s.fh.write(payload)  # type: ignore[attr-defined]
        s.received += len(payload)
        s.block += 1
        s.progressed = True
        if len(payload) < s.blksize:
            self._complete_upload(s)  # on disk and recorded before the client hears it
        self._send(s, _packet(OP_ACK, struct.pack("!H", number)))

    def _reply_in(self, s: _Session, code: int, message: str) -> None:
        with contextlib.suppress(OSError):
            s.sock.sendto(_error(code, message), s.peer)

    def _complete_upload(self, s: _Session) -> None:
        assert s.tmp is not None and s.fh is not None
        s.fh.flush()  # type: ignore[attr-defined]
        os.fsync(s.fh.fileno())  # type: ignore[attr-defined]
        s.fh.close()  # type: ignore[attr-defined]
        s.fh = None
        final = s.tmp.with_suffix(".bin")
        os.replace(s.tmp, final)
        s.tmp = None
        name = s.transfer.name
        with self._cond:
            self._uploads[name] = final
            self._expected.pop(name, None)
        self._finish(s.transfer, "done", s.received)
        # stay a moment to ACK a resent last block whose ACK was lost
        s.dally_until = time.monotonic() + max(s.rto * 2, 0.5)
