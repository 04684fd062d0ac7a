"""The boot loader's Xmodem receiver (MX and FX): Xmodem-CRC, 128 and 1K blocks.

Written from the protocol descriptions (Christensen's XMODEM, Forsberg's
XMODEM/CRC and XMODEM-1K notes); it is this emulator's own code and shares
nothing with any sender. What it does:

* It asks for CRC mode by sending ``C`` (0x43) and never falls back to the
  checksum mode: the family's loaders are documented as "Xmodem with CRC",
  and a real unit's transcript shows 32 ``C`` in a row while the user was
  starting the sender (computersolutions.cn, "IP Cam hacking pt6"), i.e. no
  fallback to NAK after ~10 tries. Real time: one ``C`` a second, 60 of them,
  then the download fails with a timeout. Fast mode: one every 0.25 s.
  While waiting, bytes other than SOH/STX/EOT/CAN are ignored (keyboard
  noise), and a single CAN (a person pressing Ctrl-X, "Press Ctrl-x to
  cancel") cancels.
* Packets: SOH + 128 bytes or STX + 1024 bytes, block number and its
  complement, CRC-16/XMODEM (poly 0x1021, init 0, big-endian on the wire;
  computed with the standard library's ``binascii.crc_hqx``). Both sizes may
  be mixed in one transfer.
* Block number = expected: stored, ACK. Block number = previous: a duplicate
  (our ACK was lost), ACK and dropped. Any other number: the transfer is
  out of sync and is aborted with CAN CAN CAN. Bad complement, bad CRC, a
  short packet (a byte did not come within the character timeout) or an
  unexpected byte where a header was due: the line is purged until it has
  been quiet for a while, then NAK.
* EOT: the first one is answered with NAK and only a repeated EOT is ACKed
  and ends the transfer, so that a lost SOH followed by block number 4 is not
  taken for the end of the file (lrzsz and the ``xmodem`` package both resend
  EOT on NAK).
* CAN CAN where a header is due aborts (the sender cancelled).
* 10 consecutive errors, or no header within the packet timeout 10 times in
  a row, abort with CAN CAN CAN. Timeouts: 10 s for a packet header, 1 s
  between bytes of a packet (fast mode: 1 s and 0.25 s).
* The received data keeps the sender's padding of the last block (0x1A from
  lrzsz and the ``xmodem`` package): the loader cannot know the real length,
  so an image written by FX is a multiple of 128 bytes long.
* ``limit``: more data than fits (the BL buffer for FX, the end of RAM for MX)
  aborts with CAN CAN CAN.
"""

from __future__ import annotations

import binascii
import time
from dataclasses import dataclass

from emulators.serial import VirtualUart

SOH = 0x01
STX = 0x02
EOT = 0x04
ACK = 0x06
NAK = 0x15
CAN = 0x18
CRC_REQUEST = 0x43  # 'C'


@dataclass(frozen=True)
class XmodemTiming:
    c_interval: float
    c_tries: int
    packet: float
    char: float
    purge: float
    max_errors: int = 10

    @classmethod
    def for_mode(cls, realtime: bool) -> XmodemTiming:
        if realtime:
            return cls(c_interval=1.0, c_tries=60, packet=10.0, char=1.0, purge=1.0)
        return cls(c_interval=0.25, c_tries=60, packet=1.0, char=0.25, purge=0.05)


@dataclass
class XmodemResult:
    """``status``: ok, cancelled, timeout, errors, sequence, overflow."""

    status: str
    data: bytes
    packets: int = 0
    errors: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class XmodemReceiver:
    """Receive one file over ``uart``. Use :meth:`receive` once."""

    def __init__(self, uart: VirtualUart, timing: XmodemTiming, limit: int | None = None) -> None:
        self.uart = uart
        self.t = timing
        self.limit = limit
        self.data = bytearray()
        self.expected = 1
        self.packets = 0
        self.errors = 0
        self.total_errors = 0

    # -- helpers ---------------------------------------------------------------
    def _send(self, byte: int) -> None:
        self.uart.write(bytes([byte]))

    def _read(self, timeout: float) -> int | None:
        b = self.uart.read(1, timeout)
        return b[0] if b else None

    def _purge(self) -> None:
        """Drop input until the line has been quiet for ``purge`` seconds."""
        deadline = time.monotonic() + max(5.0, 20 * self.t.purge)
        while time.monotonic() < deadline:
            if not self.uart.read(4096, self.t.purge):
                return

    def _result(self, status: str) -> XmodemResult:
        return XmodemResult(status, bytes(self.data), self.packets, self.total_errors)

    def _abort(self, status: str) -> XmodemResult:
        self.uart.write(bytes([CAN, CAN, CAN]))
        self._purge()
        return self._result(status)

    def _error(self) -> XmodemResult | None:
        """Count an error: purge and NAK, or abort past the limit."""
        self.errors += 1
        self.total_errors += 1
        if self.errors > self.t.max_errors:
            return self._abort("errors")
        self._purge()
        self._send(NAK)
        return None

    # -- protocol --------------------------------------------------------------
    def _start(self) -> int | XmodemResult:
        """Send 'C' until the sender starts; the first header byte, or a result."""
        for _ in range(self.t.c_tries):
            self._send(CRC_REQUEST)
            deadline = time.monotonic() + self.t.c_interval
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                c = self._read(left)
                if c is None:
                    break
                if c in (SOH, STX, EOT):
                    return c
                if c == CAN:
                    self._purge()
                    return self._result("cancelled")
                # anything else: keyboard noise while the user starts the sender
        return self._result("timeout")

    def _packet(self, header: int) -> XmodemResult | None:
        size = 128 if header == SOH else 1024
        body = self.uart.read_exact(size + 4, self.t.char)
        if len(body) < size + 4:
            return self._error()
        blk, cblk = body[0], body[1]
        if blk ^ cblk != 0xFF:
            return self._error()
        payload = body[2 : 2 + size]
        if binascii.crc_hqx(payload, 0) != int.from_bytes(body[-2:], "big"):
            return self._error()
        if blk == self.expected & 0xFF:
            if self.limit is not None and len(self.data) + size > self.limit:
                return self._abort("overflow")
            self.data += payload
            self.expected += 1
            self.packets += 1
            self.errors = 0
            self._send(ACK)
            return None
        if blk == (self.expected - 1) & 0xFF:
            self.errors = 0
            self._send(ACK)  # a duplicate: our ACK was lost
            return None
        return self._abort("sequence")

    def receive(self) -> XmodemResult:
        first = self._start()
        if isinstance(first, XmodemResult):
            return first
        c: int | None = first
        eot_pending = False
        while True:
            if c is None:
                done = self._error()  # no header within the packet timeout
            elif c in (SOH, STX):
                eot_pending = False
                done = self._packet(c)
            elif c == EOT:
                if eot_pending:
                    self._send(ACK)
                    return self._result("ok")
                eot_pending = True
                self._send(NAK)
                done = None
            elif c == CAN:
                nxt = self._read(self.t.char)
                if nxt == CAN:
                    self._purge()
                    return self._result("cancelled")
                done = self._error()
            else:
                done = self._error()
            if done is not None:
                return done
            c = self._read(self.t.packet)
