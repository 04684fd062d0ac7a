"""U-Boot 1.1.4's network commands as the Hi3511 runs them: TFTP client, BOOTP/DHCP/RARP, ping.

TFTP, both variants: 512-byte blocks; the RRQ/WRQ carries the ``timeout`` option
(``timeout\\0<n>\\0`` after ``octet``; REFERENCE.md, github zhhejun/u-boot-1.1.4
net/tftp.c ``TftpSend``), so a server that honours options answers with an OACK:
for a download the client then ACKs block 0; for an upload it sends block 1. The
first DATA (or OACK, or ACK) fixes the server's port; packets from other ports
are ignored. After ``tftp_timeout_count`` timeouts it prints ``\\nRetry count
exceeded; starting again``; a server error prints ``\\nTFTP error: '%s'
(%d)\\nStarting again\\n\\n``; both start over (net/net.c ``NetStartAgain``:
after 10 s, or at once failing with ``netretry`` = ``no``). Ctrl-C ends it with
``\\nAbort``. ``Bytes transferred = %ld (%lx hex)`` follows a download of more than
0 bytes (net/net.c ``NetLoop``; it sets ``filesize`` and ``fileaddr``).

Upstream (REFERENCE.md "U-Boot 1.1.4 console behaviour"): ``TFTP from server
a.b.c.d; our IP address is a.b.c.d``, ``Filename '%s'.``, ``Load address:
0x%lx``, ``Loading: *\\b``, a ``#`` on every block whose number minus one is a
multiple of 10 and ``\\n\\t `` every 650 blocks, ``\\ndone``; ``T `` per 5 s
timeout (option value 5); a duplicated block is ignored silently. A block that
cannot be stored in flash prints flash_perror's text and fails the transfer
(a short last block still ends it with ``done``). The fork's upload (``tftp addr
file len``) is modelled with the same progress format, ``TFTP to server``,
``Upload address`` and ``Uploading`` and ends like a download (assumption: no
document shows it).

HiSilicon (github zhhejun/u-boot-1.1.4 net/tftp.c): ``TFTP from server`` / ``TFTP
to server``, ``Download Filename '%s'.`` / ``Upload Filename '%s'.``, ``Download to
address: 0x%lx`` / ``Upload from address: 0x%lx, %lu.%03lu MB to be send ...``,
``Downloading: *\\b`` / ``Uploading: *\\b``; every RRQ/WRQ sent (again) prints
``%``; a ``#`` every 64 blocks, ``\\t[ Connected ]\\n`` at the first block and
``\\t[%2lu.%03lu MB]\\n`` every 2048 blocks; a duplicated block or ACK prints ``%``;
a timeout (3 s, option value 20) prints ``T`` and resends. A download ends with
``\\n\\t %lu.%03lu MB download ok.\\n`` (the offset of the last block), an upload
with ``\\n\\t %lu.%03lu MB upload ok.\\n`` and no ``Bytes transferred`` line (only
downloads count bytes). An upload ends when an ACK's block times 512 exceeds the
length (a length that is a multiple of 512 sends a final empty block). ACK numbers
are taken as they come. A block that cannot be stored (``store_block`` through
``flash_write``, e.g. onto a protected sector) prints ``\\n`` and flash_perror's
text, sends an ERROR packet (``Hisilicon tftp-client error``) and fails. Ctrl-C
during an upload first runs the timeout handler (``T``).

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
from emulators.hi3511.profile import Variant
from emulators.timing import Clock

TIMEOUT = 5.0  # BOOTP/DHCP/RARP
TIMEOUT_COUNT = 10
HASHES_PER_LINE = 65
BLOCK = 512
# Real-time mode: the Hi3511's MAC driver and U-Boot's net loop spend about this long on
# each packet (receive, copy, answer); with loopback's negligible wire time this gives
# the ~1.5 MB/s U-Boot 1.1.x reaches on a 100 Mbit/s LAN. An assumption, not a measurement.
PACKET_TIME = 0.0003

# Fast mode: the client's resend timeout (net/tftp.c TIMEOUT, 3 or 5 s on the device).
# Ten of them without progress end in "Retry count exceeded", so 2.5 s of silence: long
# enough that a loaded host's server is not given up on (the device itself waits 30 or
# 50 s), short enough to resend before the lab's tftpy server, which resends every 0.2 s
# and drops a session after 3 of those, gives up on an ACK lost on the way.
FAST_TFTP_TIMEOUT = 0.25
OP_RRQ, OP_WRQ, OP_DATA, OP_ACK, OP_ERROR, OP_OACK = 1, 2, 3, 4, 5, 6


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


class Restart(Exception):
    """NetStartAgain: the transfer starts over."""


def _mb(n: int) -> str:
    return f"{n >> 20}.{(n & 0xFFFFF) >> 10:03d}"


class TftpClient:
    """One ``tftp`` command: download into ``store`` or upload from ``fetch``."""

    def __init__(
        self,
        con: Console,
        clock: Clock,
        netmap: NetMap,
        settings: NetSettings,
        variant: Variant,
    ) -> None:
        self.con = con
        self.clock = clock
        self.netmap = netmap
        self.s = settings
        self.v = variant
        self.hisi = variant.hisilicon

    # -- shared ---------------------------------------------------------------
    def _header(self, upload: bool) -> None:
        s = self.s
        verb = "to" if upload and self.hisi else ("to" if upload else "from")
        self.con.puts(
            f"TFTP {verb} server {int_to_ip(s.serverip)}; our IP address is {int_to_ip(s.ipaddr)}"
        )
        if s.gatewayip and s.netmask and (s.ipaddr & s.netmask) != (s.serverip & s.netmask):
            self.con.puts(f"; sending through gateway {int_to_ip(s.gatewayip)}")
        self.con.puts("\n")

    def _request(self, op: int, filename: str) -> bytes:
        opt = str(self.v.tftp_timeout_option).encode()
        return (
            struct.pack("!H", op) + filename.encode("latin-1") + b"\0octet\0timeout\0" + opt + b"\0"
        )

    def _marks(self, block: int) -> None:
        """What a new block prints (upstream before, HiSilicon after the duplicate check)."""
        if self.hisi:
            n = block - 1
            if n % 64 == 0:
                self.con.puts("#")
            if n % (64 * 32) == 0:
                self.con.puts(
                    "\t[ Connected ]\n"
                    if n == 0
                    else f"\t[{n * BLOCK >> 20:2d}.{(n * BLOCK & 0xFFFFF) >> 10:03d} MB]\n"
                )
        elif (block - 1) % 10 == 0:
            self.con.puts("#")
        elif block % (10 * HASHES_PER_LINE) == 0:
            self.con.puts("\n\t ")

    def deadline(self) -> float:
        """NetSetTimeout(TIMEOUT, TftpTimeout): when the armed timer fires. Fast mode
        shortens TIMEOUT to FAST_TFTP_TIMEOUT."""
        return time.monotonic() + self.clock.timeout(self.v.tftp_timeout, fast=FAST_TFTP_TIMEOUT)

    def _wait(self, sock: socket.socket, deadline: float) -> tuple[bytes, tuple[str, int]] | None:
        """A datagram, or None once ``deadline`` has passed; Ctrl-C aborts."""
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
        """NetStartAgain: fail at once with netretry=no, else start over after 10 s
        (startAgainTimeout; Ctrl-C works meanwhile)."""
        if self.s.retry == "no":
            raise NetFail()
        deadline = time.monotonic() + self.clock.timeout(10.0, fast=0.01)
        while time.monotonic() < deadline:
            if self.con.ctrlc():
                raise Abort()
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def _error(self, pkt: bytes) -> None:
        (code,) = struct.unpack_from("!H", pkt, 2)
        msg = pkt[4:].split(b"\0", 1)[0].decode("latin-1")
        self.con.puts(f"\nTFTP error: '{msg}' ({code})\nStarting again\n\n")

    def _run(self, once: Callable[[], int | None]) -> int:
        while True:
            try:
                result = once()
            except Restart:
                self._restart()
                continue
            if result is None:
                raise NetFail()
            return result

    # -- download -------------------------------------------------------------
    def download(self, filename: str, addr: int, store: Callable[[int, bytes], str]) -> int:
        """Returns the byte count; raises Abort or NetFail. Retries forever otherwise."""
        return self._run(lambda: self._download_once(filename, addr, store))

    def _download_once(
        self, filename: str, addr: int, store: Callable[[int, bytes], str]
    ) -> int | None:
        con = self.con
        self._header(False)
        if self.hisi:
            con.puts(f"Download Filename '{filename}'.\n")
            con.puts(f"Download to address: 0x{addr:x}\n")
            con.puts("Downloading: *\b")
        else:
            con.puts(f"Filename '{filename}'.\n")
            con.puts(f"Load address: 0x{addr:x}\n")
            con.puts("Loading: *\b")
        last_block = 0
        size = 0
        state = "rrq"
        with _Exchange(self, self._request(OP_RRQ, filename), download=True) as ex:
            while True:
                pkt, src = ex.receive(state)
                (op,) = struct.unpack_from("!H", pkt)
                if op == OP_ERROR:
                    self._error(pkt)
                    raise Restart()
                if op == OP_OACK:
                    if state != "rrq" and src != ex.server:
                        continue
                    state = "oack"
                    ex.server = src
                    ex.send(struct.pack("!HH", OP_ACK, 0), src)
                    continue
                if op != OP_DATA:
                    continue
                (block,) = struct.unpack_from("!H", pkt, 2)
                data = pkt[4:]
                if not self.hisi:
                    self._marks(block)
                if state in ("rrq", "oack"):
                    state = "data"
                    ex.server = src
                    if block != 1:
                        con.puts(
                            f"\nTFTP error: First block is not block 1 ({block})\n"
                            "Starting again\n\n"
                        )
                        raise Restart()
                if block == last_block:
                    if self.hisi:
                        con.puts("%")
                    continue  # same block again: ignore it
                if self.hisi:
                    self._marks(block)
                last_block = block
                ex.timeouts = 0
                ex.arm()
                offset = (block - 1) * BLOCK
                self.clock.sleep(PACKET_TIME)
                if self.hisi:
                    ex.send(struct.pack("!HH", OP_ACK, block), ex.server)
                err = store(addr + offset, data)
                if not err:
                    size = max(size, offset + len(data))
                if self.hisi and err:
                    con.puts("\n" + err)
                    ex.send(ex.error_packet(), ex.server)
                    return None
                if err:
                    con.puts(err)
                if not self.hisi:
                    ex.send(struct.pack("!HH", OP_ACK, block), ex.server)
                if len(data) < BLOCK:
                    if self.hisi:
                        con.puts(f"\n\t {_mb(offset)} MB download ok.\n")
                    else:
                        con.puts("\ndone\n")
                    return size
                if err:
                    return None

    # -- upload ---------------------------------------------------------------
    def upload(
        self, filename: str, addr: int, length: int, fetch: Callable[[int, int], bytes]
    ) -> int:
        return self._run(lambda: self._upload_once(filename, addr, length, fetch))

    def _upload_once(
        self, filename: str, addr: int, length: int, fetch: Callable[[int, int], bytes]
    ) -> int | None:
        con = self.con
        self._header(True)
        if self.hisi:
            con.puts(f"Upload Filename '{filename}'.\n")
            con.puts(f"Upload from address: 0x{addr:x}, {_mb(length)} MB to be send ...\n")
            con.puts("Uploading: *\b")
        else:
            con.puts(f"Filename '{filename}'.\n")
            con.puts(f"Upload address: 0x{addr:x}\n")
            con.puts("Uploading: *\b")

        def data_after(block: int) -> bytes:
            off = block * BLOCK
            n = max(0, min(BLOCK, length - off))
            body = fetch(addr + off, n) if n else b""
            return struct.pack("!HH", OP_DATA, (block + 1) & 0xFFFF) + body

        state = "wrq"
        block = 0  # HiSilicon: TftpBlock (the last ACK); upstream: the last block sent
        last = 0
        with _Exchange(self, self._request(OP_WRQ, filename), upload=True) as ex:
            while True:
                pkt, src = ex.receive(state)
                op, num = struct.unpack_from("!HH", pkt)
                if op == OP_ERROR:
                    self._error(pkt)
                    raise Restart()
                if op == OP_OACK:
                    ex.server = src
                    if state != "wrq":  # TftpSend in STATE_OACK sends an ACK
                        state = "oack"
                        ex.send(struct.pack("!HH", OP_ACK, block & 0xFFFF), src)
                        continue
                    state = "ack"
                    block = 0
                elif op != OP_ACK:
                    continue
                elif self.hisi:
                    ex.server = src
                    state = "ack"
                    block = num
                    if last == block:
                        con.puts("%")
                    else:
                        self._marks(block)
                        ex.timeouts = 0
                    last = block
                    ex.arm()  # any ACK, a repeated one too
                    if BLOCK * block > length:
                        con.puts(f"\n\t {_mb(length)} MB upload ok.\n")
                        return 0
                else:
                    if num != block:
                        continue
                    ex.server = src
                    state = "ack"
                    ex.timeouts = 0
                    ex.arm()
                    if block * BLOCK > length:
                        con.puts("\ndone\n")
                        return length
                self.clock.sleep(PACKET_TIME)
                if not self.hisi:
                    self._marks(block + 1)
                ex.send(data_after(block), ex.server)
                if not self.hisi:
                    block += 1


class _Exchange:
    """One TFTP transfer's socket: on each timeout resends what the state calls for
    (net/tftp.c TftpTimeout) and gives up after ``tftp_timeout_count`` of them.

    One timer per transfer, as NetSetTimeout's: armed at the start, by a new DATA block
    and (HiSilicon) by every ACK of an upload, and again by each timeout. A packet that
    is ignored (a repeated DATA block, an OACK, another port's) does not re-arm it, so
    a server that keeps resending a block the device already has does not keep the
    device from resending its ACK."""

    def __init__(
        self, client: TftpClient, request: bytes, *, download: bool = False, upload: bool = False
    ) -> None:
        self.client = client
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.dest = client.netmap.resolve(int_to_ip(client.s.serverip))
        self.server: tuple[str, int] | None = None
        self.timeouts = 0
        self.request = request
        self.upload = upload
        self.last: tuple[bytes, tuple[str, int] | None] = (request, self.dest)
        self.arm()
        self.send_request()

    def arm(self) -> None:
        self.expires = self.client.deadline()

    def send_request(self) -> None:
        if self.client.hisi:
            self.client.con.puts("%")  # net/tftp.c: printf("%") after each RRQ/WRQ
        self.send(self.request, self.dest)

    def send(self, pkt: bytes, to: tuple[str, int] | None) -> None:
        self.last = (pkt, to)
        if to is not None:  # no mapping: the packet goes out on a wire with nobody on it
            self.sock.sendto(pkt, to)

    def error_packet(self) -> bytes:
        return struct.pack("!HH", OP_ERROR, 0) + b"Hisilicon tftp-client error\0"

    def timeout(self, state: str) -> None:
        """TftpTimeout; raises Restart when the retries are exhausted."""
        c = self.client
        self.timeouts += 1
        if self.timeouts > c.v.tftp_timeout_count:
            if c.hisi:
                self.send(self.error_packet(), self.server or self.dest)
            c.con.puts("\nRetry count exceeded; starting again\n")
            raise Restart()
        c.con.puts("T" if c.hisi else "T ")
        self.arm()
        if state in ("rrq", "wrq"):
            self.send_request()
        else:
            self.send(*self.last)

    def receive(self, state: str) -> tuple[bytes, tuple[str, int]]:
        """The next datagram of at least 4 bytes from the server (any port before the
        server's is known); raises Restart when the retries are exhausted."""
        c = self.client
        while True:
            try:
                got = c._wait(self.sock, self.expires)
            except Abort:
                if self.upload and c.hisi:
                    # NetLoop runs the timeout handler before "Abort"
                    try:
                        self.timeout(state)
                    except Restart:
                        pass
                raise
            if got is None:
                self.timeout(state)
                continue
            pkt, src = got
            if len(pkt) < 4:
                continue
            if state not in ("rrq", "wrq") and src != self.server:
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
