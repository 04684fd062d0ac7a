"""U-Boot 1.1.4's network commands as the Hi3511 runs them: TFTP client, BOOTP/DHCP/RARP, ping.

TFTP (net/tftp.c, REFERENCE.md): RFC 1350 with 512-byte blocks and no options
(REFERENCE.md; the fork's RRQ carries none). Output: ``TFTP from server
a.b.c.d; our IP address is a.b.c.d``, ``Filename '%s'.``, ``Load address:
0x%lx``, ``Loading: *\\b``, a ``#`` on every block whose number minus one is a
multiple of 10 and ``\\n\\t `` every 650 blocks, ``\\ndone\\n`` and ``Bytes
transferred = %ld (%lx hex)``. A 5 s timeout prints ``T `` and resends; after
10 timeouts ``\\nRetry count exceeded; starting again`` and the transfer starts
over, forever, as does a server error (``\\nTFTP error: '%s' (%d)\\nStarting
again\\n\\n``). Only Ctrl-C ends that (``\\nAbort``), unless ``netretry`` is
``no`` (then it fails at once). The first DATA's source port becomes the
server's transfer port; duplicate blocks are ignored.

The HiSilicon fork's upload (``tftp addr file len``) is modelled as a WRQ with
the same progress format, ``Upload address`` and ``Uploading``; no document
shows its text, so this is an assumption.

Network mapping (DESIGN.md principle 5): the device never sends to the address
in ``serverip``. Every TFTP packet goes to the loopback endpoint the harness
mapped for that server address (or its catch-all); with no mapping the device
behaves like a board with no server on the wire, and times out. A mapping to a
non-loopback address is refused when the device is built.

BOOTP/DHCP/RARP and ping get no answer on the emulated wire: they print what
U-Boot prints when nothing answers, with the timeouts shortened in fast mode.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from emulators.console import Console
from emulators.timing import Clock

TIMEOUT = 5.0
TIMEOUT_COUNT = 10
HASHES_PER_LINE = 65
BLOCK = 512
# Real-time mode: the Hi3511's MAC driver and U-Boot's net loop spend about this long on
# each packet (receive, copy, answer); with loopback's negligible wire time this gives
# the ~1.5 MB/s U-Boot 1.1.x reaches on a 100 Mbit/s LAN. An assumption, not a measurement.
PACKET_TIME = 0.0003

OP_RRQ, OP_WRQ, OP_DATA, OP_ACK, OP_ERROR = 1, 2, 3, 4, 5


def check_loopback(host: str) -> None:
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        raise ValueError(f"emulated devices may only reach loopback addresses, not {host}")


@dataclass
class NetMap:
    """Where the device's packets really go: server address -> loopback (host, port)."""

    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    default: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        for host, _ in [*self.routes.values(), *([self.default] if self.default else [])]:
            check_loopback(host)

    def resolve(self, server_ip: str) -> tuple[str, int] | None:
        return self.routes.get(server_ip, self.default)


class Abort(Exception):
    """Ctrl-C during a network operation (``\\nAbort``)."""


class NetFail(Exception):
    """The operation failed without retrying (netretry=no)."""


@dataclass
class NetSettings:
    ipaddr: int
    serverip: int
    netmask: int
    gatewayip: int
    retry: str  # "", "no" or "once"


def ip_to_int(text: str | None) -> int:
    """U-Boot's string_to_ip: missing or unparsable parts count as 0."""
    if not text:
        return 0
    value = 0
    parts = text.split(".")
    for i in range(4):
        part = parts[i] if i < len(parts) else ""
        digits = ""
        for ch in part:
            if ch.isdigit():
                digits += ch
            else:
                break
        value = (value << 8) | (int(digits) & 0xFF if digits else 0)
    return value


def int_to_ip(value: int) -> str:
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


class TftpClient:
    """One ``tftp`` command: download into ``store`` or upload from ``fetch``."""

    def __init__(
        self,
        con: Console,
        clock: Clock,
        netmap: NetMap,
        settings: NetSettings,
    ) -> None:
        self.con = con
        self.clock = clock
        self.netmap = netmap
        self.s = settings

    # -- shared ---------------------------------------------------------------
    def _header(self, verb: str, filename: str, addr: int) -> None:
        s = self.s
        self.con.puts(
            f"TFTP {verb} server {int_to_ip(s.serverip)}; our IP address is {int_to_ip(s.ipaddr)}"
        )
        if s.gatewayip and s.netmask and (s.ipaddr & s.netmask) != (s.serverip & s.netmask):
            self.con.puts(f"; sending through gateway {int_to_ip(s.gatewayip)}")
        self.con.puts("\n")
        self.con.puts(f"Filename '{filename}'.\n")

    def _hash(self, block: int) -> None:
        if (block - 1) % 10 == 0:
            self.con.puts("#")
        elif block % (10 * HASHES_PER_LINE) == 0:
            self.con.puts("\n\t ")

    def _wait(self, sock: socket.socket, seconds: float) -> tuple[bytes, tuple[str, int]] | None:
        """A datagram, or None after ``seconds`` of device time; Ctrl-C aborts."""
        deadline = time.monotonic() + self.clock.timeout(seconds)
        while True:
            if self.con.ctrlc():
                raise Abort()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([sock], [], [], min(left, 0.02))
            if r:
                return sock.recvfrom(65536)

    def _restart(self) -> None:
        """NetStartAgain: fail at once with netretry=no, else start over."""
        if self.s.retry == "no":
            raise NetFail()
        # the Ethernet driver is halted and initialised again; a short pause
        # stands for that so a retry loop against a missing file cannot spin
        self.clock.sleep(0.2)
        if not self.clock.realtime:
            time.sleep(0.01)

    def _error(self, pkt: bytes) -> None:
        (code,) = struct.unpack_from("!H", pkt, 2)
        msg = pkt[4:].split(b"\0", 1)[0].decode("latin-1")
        self.con.puts(f"\nTFTP error: '{msg}' ({code})\nStarting again\n\n")

    # -- download -------------------------------------------------------------
    def download(self, filename: str, addr: int, store: Callable[[int, bytes], None]) -> int:
        """Returns the byte count; raises Abort or NetFail. Retries forever otherwise."""
        while True:
            result = self._download_once(filename, addr, store)
            if result is not None:
                return result
            self._restart()

    def _download_once(
        self, filename: str, addr: int, store: Callable[[int, bytes], None]
    ) -> int | None:
        self._header("from", filename, addr)
        self.con.puts(f"Load address: 0x{addr:x}\n")
        self.con.puts("Loading: *\b")
        rrq = struct.pack("!H", OP_RRQ) + filename.encode("latin-1") + b"\0octet\0"
        last_block = 0
        size = 0
        with _Exchange(self, rrq, self.netmap.resolve(int_to_ip(self.s.serverip))) as ex:
            while True:
                got = ex.receive()
                if got is None:
                    return None
                pkt, src = got
                (op,) = struct.unpack_from("!H", pkt)
                if op == OP_ERROR:
                    self._error(pkt)
                    return None
                if op != OP_DATA:
                    continue
                (block,) = struct.unpack_from("!H", pkt, 2)
                data = pkt[4:]
                self._hash(block)
                if ex.server is None:
                    ex.server = src
                    if block != 1:
                        self.con.puts(
                            f"\nTFTP error: First block is not block 1 ({block})\nStarting again\n\n"
                        )
                        return None
                if block == last_block:
                    continue  # same block again: ignore it
                last_block = block
                ex.timeouts = 0
                offset = (block - 1) * BLOCK
                store(addr + offset, data)
                size = max(size, offset + len(data))
                self.clock.sleep(PACKET_TIME)
                ex.send(struct.pack("!HH", OP_ACK, block), ex.server)
                if len(data) < BLOCK:
                    self.con.puts("\ndone\n")
                    return size

    # -- upload ---------------------------------------------------------------
    def upload(
        self, filename: str, addr: int, length: int, fetch: Callable[[int, int], bytes]
    ) -> int:
        while True:
            result = self._upload_once(filename, addr, length, fetch)
            if result is not None:
                return result
            self._restart()

    def _upload_once(
        self, filename: str, addr: int, length: int, fetch: Callable[[int, int], bytes]
    ) -> int | None:
        self._header("to", filename, addr)
        self.con.puts(f"Upload address: 0x{addr:x}\n")
        self.con.puts("Uploading: *\b")
        wrq = struct.pack("!H", OP_WRQ) + filename.encode("latin-1") + b"\0octet\0"
        nblocks = length // BLOCK + 1  # a final short (possibly empty) block ends it
        block = 0
        with _Exchange(self, wrq, self.netmap.resolve(int_to_ip(self.s.serverip))) as ex:
            while True:
                got = ex.receive()
                if got is None:
                    return None
                pkt, src = got
                op, num = struct.unpack_from("!HH", pkt)
                if op == OP_ERROR:
                    self._error(pkt)
                    return None
                if op != OP_ACK or num != block:
                    continue
                if ex.server is None:
                    ex.server = src
                ex.timeouts = 0
                if block == nblocks:
                    self.con.puts("\ndone\n")
                    return length
                block += 1
                off = (block - 1) * BLOCK
                data = fetch(addr + off, min(BLOCK, length - off)) if off < length else b""
                self._hash(block)
                self.clock.sleep(PACKET_TIME)
                ex.send(struct.pack("!HH", OP_DATA, block) + data, ex.server)


class _Exchange:
    """One TFTP transfer's socket: resends the last packet on each timeout (``T ``) and
    gives up after TIMEOUT_COUNT of them, printing U-Boot's message."""

    def __init__(self, client: TftpClient, first: bytes, dest: tuple[str, int] | None) -> None:
        self.client = client
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.server: tuple[str, int] | None = None
        self.timeouts = 0
        self.last: tuple[bytes, tuple[str, int] | None] = (first, dest)
        self.send(first, dest)

    def send(self, pkt: bytes, to: tuple[str, int] | None) -> None:
        self.last = (pkt, to)
        if to is not None:  # no mapping: the packet goes out on a wire with nobody on it
            self.sock.sendto(pkt, to)

    def receive(self) -> tuple[bytes, tuple[str, int]] | None:
        """The next datagram of at least 4 bytes from the server, or None when the
        retries are exhausted."""
        while True:
            got = self.client._wait(self.sock, TIMEOUT)
            if got is None:
                self.timeouts += 1
                if self.timeouts > TIMEOUT_COUNT:
                    self.client.con.puts("\nRetry count exceeded; starting again\n")
                    return None
                self.client.con.puts("T ")
                self.send(*self.last)
                continue
            pkt, src = got
            if len(pkt) < 4 or (self.server is not None and src != self.server):
                continue
            return pkt, src

    def __enter__(self) -> _Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def wait_for_ctrlc(con: Console, seconds: float) -> None:
    """Spend ``seconds`` waiting on the line; Ctrl-C raises Abort, other keys are eaten
    (U-Boot's ctrlc() consumes what it reads)."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if con.uart.read(1, timeout=left) == b"\x03":
            raise Abort()


def broadcast_forever(con: Console, clock: Clock, name: str, retry: str) -> None:
    """BOOTP/DHCP/RARP with nobody answering: ``%s broadcast %d`` every timeout,
    then ``Retry count exceeded; starting again`` and over again, until Ctrl-C."""
    while True:
        for attempt in range(1, TIMEOUT_COUNT + 1):
            con.puts(f"{name} broadcast {attempt}\n")
            wait_for_ctrlc(con, clock.timeout(TIMEOUT, fast=0.02))
        con.puts("\nRetry count exceeded; starting again\n")
        if retry == "no":
            raise NetFail()
