"""An emulated device's UART served on TCP, as a lab's serial server serves a real one:
RFC 2217 (``rfc2217://HOST:PORT``, the protocol of ser2net's telnet mode and of labgrid's
exporter) or a raw byte stream (``socket://HOST:PORT``, ser2net's raw mode, socat).

The server stands where a lab's serial server and its USB adapter stand. While a client
is connected it holds the device's pty open with pyserial as that adapter's tty (as
ser2net holds ``/dev/ttyUSB0``), and applies the client's RFC 2217 requests to it through
pyserial's own server half of the protocol, :class:`serial.rfc2217.PortManager` (pyserial
``serial/rfc2217.py``; the loop follows pyserial's ``examples/rfc2217_server.py``). The
device model reads the host's baud from its pty (:mod:`emulators.serial`), so a client's
``SET-BAUDRATE`` reaches the device exactly as a local program's ``tcsetattr`` does: at a
baud the device does not use, both directions are garbled the same way.

What an adapter wired to a camera's three-pin console (GND, TX, RX: seed 000) does with
the rest of RS-232, and so what this server does:

* RTS and DTR requests are accepted and acknowledged and go nowhere (not wired). A pty
  has no modem lines at all (``TIOCMBIS`` on it fails with ENOTTY, which is what makes
  pyserial's redirector example die on its first client), so the adapter keeps them as
  state.
* CTS, DSR, RI and CD read inactive: the inputs are not wired, and USB adapters (FT232R,
  CH340, CP2102) pull them up, which is the inactive level (assumption from their
  datasheets: internal pull-ups on the modem inputs).
* RTS/CTS flow control is accepted; with CTS inactive the adapter then sends nothing, so
  what the client writes is held until flow control is switched off again (what a real
  adapter does with CTS unwired).
* XON/XOFF flow control is set on the tty, where the line discipline acts on it as an
  adapter's driver does.
* A BREAK is acknowledged and not delivered: a pty carries no break condition
  (assumption: the device models never see one).
* A purge flushes the tty's buffers.
* Raw mode has no settings at all: the tty stays at the board's baud, like a ser2net port
  in raw mode.

Each connection starts at the board's baud (ser2net, too, sets a port to its configured
speed when a client connects); the device keeps its own baud, so a board whose firmware
was switched to another rate stays there until it is reset, as on a real bench.

One client at a time: a second connection gets one line, ``camrescue: ... busy ...``,
and is closed (ser2net's "Port already in use" convention). A local program that holds
the pty (picocom, a camrescue run) makes a connection fail the same way with the reason.
Binding defaults to 127.0.0.1: the port carries a console that can erase a flash.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial
from serial import rfc2217

from harness.lab.power import ControlSocket, PowerSwitch

SCHEMES = ("rfc2217", "socket")
DEFAULT_HOST = "127.0.0.1"
IAC = rfc2217.IAC


@dataclass(frozen=True)
class ServeAddress:
    """Where a device is served: ``scheme`` is "rfc2217" or "socket"."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_serve_url(text: str) -> ServeAddress:
    """``rfc2217://HOST:PORT`` or ``socket://HOST:PORT``; an empty host is 127.0.0.1 and
    port 0 picks a free port. Raises ValueError with what was expected."""
    scheme, sep, rest = text.partition("://")
    expected = f"expected rfc2217://HOST:PORT or socket://HOST:PORT, got {text!r}"
    if not sep or scheme not in SCHEMES:
        raise ValueError(expected)
    rest = rest.rstrip("/")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(expected)
    host = host.strip("[]") or DEFAULT_HOST
    return ServeAddress(scheme, host, int(port))


class AdapterPort(serial.Serial):
    """The adapter's tty: the device's pty opened with pyserial, its modem lines those of
    an adapter wired to a three-pin console header (see the module docstring)."""

    def _update_rts_state(self) -> None:
        """Kept as state (``self._rts_state``): RTS is not wired and a pty has no RTS."""

    def _update_dtr_state(self) -> None:
        """Kept as state (``self._dtr_state``): DTR is not wired and a pty has no DTR."""

    @property
    def cts(self) -> bool:
        return False

    @property
    def dsr(self) -> bool:
        return False

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return False


class _Connection:
    """What PortManager writes to: the client's socket, one writer at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # the session notices the broken connection on its next recv


class _Session:
    """One connected client: the adapter tty open, two copy loops."""

    def __init__(self, server: PortServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.conn = _Connection(sock)
        self.held = bytearray()  # what the client sent while RTS/CTS held the adapter
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self.port = AdapterPort(
            server.pty_path, server.baud, timeout=0, write_timeout=None, exclusive=True
        )
        self.manager: rfc2217.PortManager | None = None
        if server.address.scheme == "rfc2217":
            # the stubs want rfc2217.Serial for both; pyserial takes any serial port and
            # any object with write() (serial/rfc2217.py PortManager docstring)
            self.manager = rfc2217.PortManager(self.port, self.conn)  # type: ignore[arg-type]
        self._threads = [
            threading.Thread(target=self._net_to_device, name="serve-rx", daemon=True),
            threading.Thread(target=self._device_to_net, name="serve-tx", daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    @property
    def alive(self) -> bool:
        return not self.closed.is_set()

    # -- client -> device ---------------------------------------------------------------
    def _filter(self, data: bytes) -> bytes:
        """Telnet commands out, data bytes through (PortManager.filter, which yields byte by
        byte, only when the chunk holds an IAC or a command is half read)."""
        pm = self.manager
        assert pm is not None
        if pm.mode == rfc2217.M_NORMAL and pm.suboption is None and IAC not in data:
            return data
        return b"".join(pm.filter(data))

    def _net_to_device(self) -> None:
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if self.manager is not None:
                    data = self._filter(data)
                with self.lock:
                    if self.port.rtscts:
                        self.held += data  # CTS is inactive: the adapter sends nothing
                        continue
                    if self.held:
                        data = bytes(self.held) + data
                        self.held.clear()
                if data:
                    self.port.write(data)
        except (serial.SerialException, OSError):
            pass  # the pty went away (the device was closed): the adapter is unplugged
        finally:
            self.close()

    # -- device -> client ---------------------------------------------------------------
    def _device_to_net(self) -> None:
        fd = self.port.fileno()
        try:
            while not self.closed.is_set():
                try:
                    r, _, _ = select.select([fd, self._wake_r], [], [], 1.0)
                except (OSError, ValueError):
                    break  # the session closed the tty under us
                if self._wake_r in r:
                    break
                if fd not in r:
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    break  # EIO: the device closed its pty
                if not data:
                    continue
                if self.manager is not None:
                    data = data.replace(IAC, IAC + IAC)
                self.conn.write(data)
        finally:
            self.close()

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
        self.server._session_ended(self)

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


class PortServer:
    """Serve the pty at ``pty_path`` on ``address`` (a :class:`ServeAddress` or its URL).
    Use as a context manager, or :meth:`start` and :meth:`stop`.

    ``baud`` is the board's console speed: the adapter's speed whenever a client
    connects. ``log`` gets one line per client connected, refused or gone.
    """

    def __init__(
        self,
        pty_path: str,
        address: ServeAddress | str,
        *,
        baud: int = 115200,
        name: str = "device",
        log: Callable[[str], None] | None = None,
    ) -> None:
        addr = parse_serve_url(address) if isinstance(address, str) else address
        self.pty_path = pty_path
        self.baud = baud
        self.name = name
        self.log = log or (lambda _line: None)
        family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
        self._listener = socket.create_server((addr.host, addr.port), family=family)
        self.address = ServeAddress(addr.scheme, addr.host, self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._ended: list[_Session] = []
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._accept_loop, name="serve", daemon=True)
        self.connections = 0
        self.refused = 0

    @property
    def url(self) -> str:
        """The URL a client opens, e.g. ``rfc2217://127.0.0.1:4000``."""
        return self.address.url

    @property
    def client(self) -> str | None:
        """The connected client's address, if one is connected."""
        with self._lock:
            s = self._session
        return s.peer if s is not None and s.alive else None

    @property
    def held(self) -> int:
        """Bytes the client sent that RTS/CTS flow control holds (CTS is inactive)."""
        with self._lock:
            s = self._session
        if s is None:
            return 0
        with s.lock:
            return len(s.held)

    def start(self) -> PortServer:
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self._listener.fileno(), self._wake_r], [], [])
            if self._wake_r in r or self._stop.is_set():
                break
            try:
                sock, addr = self._listener.accept()
            except OSError:
                continue
            peer = f"{addr[0]}:{addr[1]}"
            self._reap()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                current = self._session
            if current is not None and current.alive:
                self._refuse(sock, f"in use by {current.peer} (one client at a time)")
                continue
            try:
                session = _Session(self, sock, peer)
            except (serial.SerialException, OSError) as e:
                self._refuse(sock, f"cannot open {self.pty_path}: {e}")
                continue
            with self._lock:
                self._session = session
                self.connections += 1
            self.log(f"{self.url}: client {peer} connected")
            session.start()

    def _reap(self) -> None:
        with self._lock:
            ended, self._ended = self._ended, []
        for s in ended:
            s.join()

    def _refuse(self, sock: socket.socket, why: str) -> None:
        self.refused += 1
        line = f"camrescue: {self.url} ({self.name}) is busy: {why}\r\n"
        self.log(line.strip())
        try:
            sock.sendall(line.encode())
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _session_ended(self, session: _Session) -> None:
        with self._lock:
            if self._session is session:
                self._session = None
            self._ended.append(session)
        if not self._stop.is_set():
            self.log(f"{self.url}: client {session.peer} gone")

    def disconnect(self) -> None:
        """Drop the connected client, if any (the lab pulls the network cable)."""
        with self._lock:
            s = self._session
        if s is not None:
            s.close()
            s.join()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        self._listener.close()
        self.disconnect()
        self._reap()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> PortServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- camrescue emulate --serve/--control ---------------------------------------------------
def _serve_arg(text: str) -> ServeAddress:
    try:
        return parse_serve_url(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """``--serve URL`` and ``--control PATH`` for ``camrescue emulate BOARD``."""
    parser.add_argument(
        "--serve",
        type=_serve_arg,
        metavar="URL",
        help="also serve the console on TCP: rfc2217://HOST:PORT (RFC 2217, settings "
        "reach the device) or socket://HOST:PORT (raw); one client at a time; an empty "
        "HOST is 127.0.0.1, PORT 0 picks one",
    )
    parser.add_argument(
        "--control",
        type=Path,
        metavar="PATH",
        help="power control socket: camrescue power on|off|cycle|status --control PATH",
    )


@dataclass
class Serving:
    """What :func:`serving` started: the power switch SIGHUP and ``--control`` share, and
    the served URL (None without ``--serve``)."""

    switch: PowerSwitch
    url: str | None = None


@contextlib.contextmanager
def serving(device: Any, args: argparse.Namespace, log: Callable[[str], None]) -> Iterator[Serving]:
    """Start what ``--serve`` and ``--control`` ask for around a powered ``device``."""
    lab = Serving(PowerSwitch(device, log=log))
    with contextlib.ExitStack() as stack:
        if getattr(args, "serve", None) is not None:
            try:
                server = PortServer(
                    device.path, args.serve, baud=device.baud, name=device.board, log=log
                )
            except OSError as e:
                raise SystemExit(
                    f"camrescue emulate: cannot serve {args.serve.url}: {e.strerror or e}"
                ) from None
            lab.url = stack.enter_context(server).url
            log(f"{device.board}: serving {lab.url} (one client at a time)")
        if getattr(args, "control", None) is not None:
            stack.enter_context(ControlSocket(args.control, lab.switch))
            log(f"power: camrescue power on|off|cycle|status --control {args.control}")
        yield lab
