"""A loopback UDP proxy that damages TFTP traffic: loss, delay, duplicates, a server
that goes away mid-transfer, and a trigger after N datagrams (e.g. cut the camera's power).

Where it sits: between an emulated Hi3511's TFTP client (its ``tftp_server``
mapping) and the TFTP server the engine runs (``--tftp-bind``)::

    U-Boot (emulated) --UDP--> proxy.port  ==  proxy --UDP--> engine's server

TFTP (RFC 1350) changes ports after the request: the server answers from a
fresh port (its transfer identifier, TID) and the client sends the rest of the
transfer there. The proxy mirrors that: for each request it opens a socket
towards the server (``up``) and one towards the device (``down``); the first
answer from the server's TID goes to the device from ``down``, so the device
adopts ``down`` as the server's TID and talks to it for the whole transfer.

What is modelled, per datagram, seeded (one :class:`random.Random` per proxy,
drawn in the order datagrams arrive):

* ``loss``: the datagram is dropped;
* ``delay`` seconds added to a share ``delay_rate`` of the datagrams (held in
  a queue, never blocking the relay; later datagrams may overtake them, as on
  a real network);
* ``duplicate``: the datagram is delivered twice;
* ``gone_after``: after that many datagrams nothing passes any more in either
  direction: the server (or its machine) is gone; the device sees only
  silence, as when a process dies and the host's ICMP "port unreachable" is
  ignored by U-Boot;
* ``trigger_after``: after that many datagrams, ``on_trigger`` is called once
  (in a thread of its own), e.g. to cut the camera's power during a transfer.

``gone_after`` and ``trigger_after`` count from the moment the faults were set
(:meth:`TftpFaultProxy.set_faults`, or the proxy's start).

This is the harness's one network fault proxy: the lab puts it in front of a
device's TFTP port when a scenario or the campaign asks for network faults
(``LabDevice.proxy``); :func:`interpose` puts one in front of a lab device started
without it.

``direction`` limits loss/delay/duplicates to ``"to_server"`` or
``"to_device"`` datagrams (``"both"`` by default); ``gone_after`` and
``trigger_after`` count every datagram that arrives at the proxy.

Only 127.0.0.0/8 is used: the proxy binds a loopback address and refuses an
upstream outside it (DESIGN.md, "Loopback only").
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

DIRECTIONS = ("both", "to_server", "to_device")


@dataclass
class TftpFaults:
    """What the proxy does to the datagrams (all rates are probabilities, 0..1)."""

    loss: float = 0.0
    delay: float = 0.0
    delay_rate: float = 1.0
    duplicate: float = 0.0
    gone_after: int | None = None
    trigger_after: int | None = None
    direction: str = "both"

    def __post_init__(self) -> None:
        for name in ("loss", "delay_rate", "duplicate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} is a probability between 0 and 1, got {v}")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        for name in ("gone_after", "trigger_after"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")

    def with_trigger(self, after: int | None) -> TftpFaults:
        """The same faults with ``trigger_after`` set to ``after``."""
        return replace(self, trigger_after=after)

    def applies(self, to_server: bool) -> bool:
        return self.direction == "both" or (self.direction == "to_server") == to_server


@dataclass
class ProxyStats:
    """Datagrams seen and what happened to them."""

    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    delayed: int = 0
    duplicated: int = 0
    blocked: int = 0  # dropped because the server was gone
    sessions: int = 0
    triggered: bool = False
    gone: bool = False
    opcodes: dict[int, int] = field(default_factory=dict)


def _check_loopback(host: str) -> None:
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        raise ValueError(f"the TFTP fault proxy only works on loopback addresses, not {host}")


@dataclass
class _Session:
    device: tuple[str, int]
    up: socket.socket
    down: socket.socket
    server_tid: tuple[str, int] | None = None


class TftpFaultProxy:
    """The relay. Use as a context manager (or call :meth:`close`).

    ``upstream`` is the real server's ``(host, port)`` (the engine's
    ``--tftp-bind``); the device is pointed at :attr:`address`.
    ``faults`` may be replaced while it runs (:meth:`set_faults`).
    """

    MAX_SESSIONS = 32

    def __init__(
        self,
        upstream: tuple[str, int],
        faults: TftpFaults | None = None,
        *,
        seed: int = 0,
        on_trigger: Callable[[], None] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        _check_loopback(upstream[0])
        _check_loopback(host)
        self.upstream = (upstream[0], int(upstream[1]))
        self.faults = faults or TftpFaults()
        self.on_trigger = on_trigger
        self.stats = ProxyStats()
        self._base = 0  # stats.received when the faults were set
        self._rng = random.Random(seed)
        self._listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._listen.bind((host, 0))
        self.address: tuple[str, int] = self._listen.getsockname()
        self._sessions: list[_Session] = []
        self._queue: list[tuple[float, int, socket.socket, bytes, tuple[str, int]]] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tftp-fault-proxy", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.address[1]

    def set_faults(self, faults: TftpFaults, *, on_trigger: Any = ...) -> None:
        """Replace the faults (and, when given, ``on_trigger``); ``gone_after`` and
        ``trigger_after`` count from now."""
        with self._lock:
            self.faults = faults
            if on_trigger is not ...:
                self.on_trigger = on_trigger
            self._base = self.stats.received
            self.stats.triggered = False
            self.stats.gone = False

    def stats_snapshot(self) -> ProxyStats:
        with self._lock:
            return replace(self.stats, opcodes=dict(self.stats.opcodes))

    # -- the relay ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            socks: list[Any] = [self._listen, self._wake_r]
            for s in self._sessions:
                socks += [s.up, s.down]
            wait = 0.5
            if self._queue:
                wait = max(0.0, min(wait, self._queue[0][0] - time.monotonic()))
            try:
                ready, _, _ = select.select(socks, [], [], wait)
            except (OSError, ValueError):
                return
            if self._wake_r in ready or self._closed:
                return
            for r in ready:
                try:
                    self._receive(r)
                except OSError:
                    continue
            self._flush_due()

    def _receive(self, sock: socket.socket) -> None:
        data, addr = sock.recvfrom(65536)
        if sock is self._listen:
            sess = next(
                (s for s in self._sessions if s.device == addr and s.server_tid is None), None
            )
            if sess is None:
                sess = self._new_session(addr)
            self._relay(data, sess.up, self.upstream, to_server=True)
            return
        for s in self._sessions:
            if sock is s.up:
                s.server_tid = addr
                self._relay(data, s.down, s.device, to_server=False)
                return
            if sock is s.down:
                s.device = addr
                if s.server_tid is not None:
                    self._relay(data, s.up, s.server_tid, to_server=True)
                return

    def _new_session(self, device: tuple[str, int]) -> _Session:
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.bind((self.address[0], 0))
        down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        down.bind((self.address[0], 0))
        sess = _Session(device, up, down)
        self._sessions.append(sess)
        self.stats.sessions += 1
        while len(self._sessions) > self.MAX_SESSIONS:
            old = self._sessions.pop(0)
            old.up.close()
            old.down.close()
        return sess

    def _relay(
        self, data: bytes, via: socket.socket, to: tuple[str, int], *, to_server: bool
    ) -> None:
        with self._lock:
            f = self.faults
            base = self._base
        st = self.stats
        st.received += 1
        if len(data) >= 2:
            op = int.from_bytes(data[:2], "big")
            st.opcodes[op] = st.opcodes.get(op, 0) + 1
        if (
            f.trigger_after is not None
            and not st.triggered
            and st.received - base > f.trigger_after
        ):
            st.triggered = True
            if self.on_trigger is not None:
                threading.Thread(target=self.on_trigger, name="tftp-trigger", daemon=True).start()
        if f.gone_after is not None and st.received - base > f.gone_after:
            st.gone = True
            st.blocked += 1
            return
        rng = self._rng
        applies = f.applies(to_server)
        # draw every number for every datagram so the stream of draws does not
        # depend on which faults are switched on
        r_loss, r_delay, r_dup = rng.random(), rng.random(), rng.random()
        if applies and r_loss < f.loss:
            st.dropped += 1
            return
        copies = 2 if applies and r_dup < f.duplicate else 1
        if copies == 2:
            st.duplicated += 1
        if applies and f.delay > 0 and r_delay < f.delay_rate:
            st.delayed += 1
            due = time.monotonic() + f.delay
            for _ in range(copies):
                self._seq += 1
                heapq.heappush(self._queue, (due, self._seq, via, data, to))
            return
        for _ in range(copies):
            self._send(via, data, to)

    def _send(self, via: socket.socket, data: bytes, to: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            via.sendto(data, to)
            self.stats.forwarded += 1

    def _flush_due(self) -> None:
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            _, _, via, data, to = heapq.heappop(self._queue)
            if via.fileno() >= 0:
                self._send(via, data, to)

    # -- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(2)
        for s in self._sessions:
            s.up.close()
            s.down.close()
        self._sessions.clear()
        self._listen.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> TftpFaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def interpose(lab_device: Any, faults: TftpFaults | None = None, **kw: Any) -> TftpFaultProxy:
    """Put a proxy between a lab's Hi3511 and the port the engine's TFTP server binds
    (``lab_device.tftp_bind``): the device's TFTP traffic is re-routed to the proxy.

    The lab device should be started with ``tftp_server=False`` (the lab then does
    not serve its own directory on that port). The caller closes the proxy."""
    dev = lab_device.device
    netmap = getattr(dev, "netmap", None)
    if netmap is None:
        raise ValueError(f"{lab_device.board} has no network to put a TFTP proxy on")
    proxy = TftpFaultProxy(("127.0.0.1", lab_device.server_port), faults, **kw)
    netmap.default = proxy.address
    return proxy
