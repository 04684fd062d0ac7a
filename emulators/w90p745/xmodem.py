"""The boot loader's Xmodem receiver (MX and FX), as the loader's source has it.

Source: the Winbond W90P710 boot loader "WBLv1_1", ``Xmodem/xmodem.c`` and
``Inc/xmodem.h`` (``XMODEM1K`` commented out, so the 128-byte branch is the
one built; the seed's W90P745 loader 1.1 is of the same family). The receiver
is one polling loop:

* While no byte is waiting it counts idle polls; before the first block it
  sends ``C`` every 0x40000 polls. The very first idle poll sleeps once
  (``sleep(4000)``, "fix the fifo keep problem of linux"). It never times out
  (``delayCnt > 0xFFFFFFFF`` cannot be true).
* When a byte is waiting and the idle count is more than 10000 polls above
  the previous idle count, it sends ACK *before* reading the byte: the
  **stray ACK after a pause**. The idle count runs on through the ``C``
  phase, so the first block always gets one.
* SOH: the next byte must be the expected block number, else five CAN and
  the end (``X_SPACKET_NUM_ERROR``; a retransmission after a lost ACK
  included). The next must be its complement, else five CAN and the end
  (the source leaves the status unset there; this model reports a failed
  download, an assumption). Then 128 data bytes are stored at the write
  offset, **the offset advances by 128 before the CRC is checked**, and the
  CRC-16 (computed here with ``binascii.crc_hqx``, the same CCITT table) is
  compared: ACK and the next block number, or NAK with the block number
  unchanged, so the retransmitted block lands 128 bytes later and the
  received size grows by 128.
* EOT: ACK at once, success. CAN (one byte, Ctrl-X): cancelled, nothing sent.
  Any other byte where a block header is due is dropped: an STX (1K block)
  is such a loose byte, and the 1K block's number byte 0x01 is then taken for
  an SOH.
* Bytes inside a block are read without a timeout (``ugetchar`` waits).

Timing (assumption: the poll loop rate is not in the source). Real time:
0x40000 polls a second, so one ``C`` a second after the 4 s sleep, and a
stray ACK when a byte comes more than 38 ms (10000 polls) later than the
previous gap. Fast mode: no sleep, a ``C`` every 0.25 s, and a pause counts
from 1 s (a wide margin, so a loaded test machine does not trigger it);
the first byte after the ``C`` phase counts as a 2 s gap, so it always gets
the stray ACK, as in the source (0x40000 polls against 10000).
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass

from emulators.serial import VirtualUart

SOH = 0x01
STX = 0x02
EOT = 0x04
ACK = 0x06
NAK = 0x15
CAN = 0x18
CRC_REQUEST = 0x43  # 'C'
BLOCK = 128


@dataclass(frozen=True)
class XmodemTiming:
    first_sleep: float  # the one sleep(4000) at the first idle poll
    c_interval: float  # 0x40000 polls
    pause: float  # 10000 polls
    c_phase: float  # the least idle count a byte after a 'C' sees (0x40000 polls)

    @classmethod
    def for_mode(cls, realtime: bool) -> XmodemTiming:
        if realtime:
            return cls(first_sleep=4.0, c_interval=1.0, pause=10000 / 0x40000, c_phase=1.0)
        return cls(first_sleep=0.0, c_interval=0.25, pause=1.0, c_phase=2.0)


@dataclass
class XmodemResult:
    """``status``: ok, cancelled, sequence (wrong block number), complement."""

    status: str
    size: int  # fileSize: 128 per block received, good or not
    blocks: int = 0
    naks: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class XmodemReceiver:
    """``xmodem(buffer, &fileSize)``: store blocks through ``store(offset, data)``."""

    def __init__(
        self, uart: VirtualUart, timing: XmodemTiming, store: Callable[[int, bytes], None]
    ) -> None:
        self.uart = uart
        self.t = timing
        self.store = store

    def _send(self, byte: int) -> None:
        self.uart.write(bytes([byte]))

    def _getc(self) -> int:
        while True:
            b = self.uart.read(1, None)
            if b:
                return b[0]

    def _cancel(self, status: str, size: int, blocks: int, naks: int) -> XmodemResult:
        self.uart.write(bytes([CAN] * 5))
        return XmodemResult(status, size, blocks, naks)

    def receive(self) -> XmodemResult:
        size = 0
        packet_no = 1
        started = False
        blocks = naks = 0
        old_gap = 0.0
        slept = False
        c_sent = False
        idle_since = time.monotonic()
        next_c = idle_since + self.t.c_interval
        while True:
            if not self.uart.input_waiting():
                if not slept:
                    slept = True
                    if self.t.first_sleep:
                        time.sleep(self.t.first_sleep)
                        next_c = time.monotonic() + self.t.c_interval
                now = time.monotonic()
                if not started and now >= next_c:
                    self._send(CRC_REQUEST)
                    c_sent = True
                    next_c = now + self.t.c_interval
                wait = max(0.0, next_c - now) if not started else None
                got = self.uart.read(1, wait)
                if not got:
                    continue
                self.uart.unread(got)
            gap = time.monotonic() - idle_since
            if not started and c_sent:
                gap = max(gap, self.t.c_phase)  # the count ran through the C phase
            if gap > old_gap + self.t.pause:
                self._send(ACK)  # the stray ACK after a pause
            old_gap = gap
            ch = self._getc()
            if ch == SOH:
                started = True
                if self._getc() != packet_no:
                    return self._cancel("sequence", size, blocks, naks)
                if (self._getc() + packet_no) != 0xFF:
                    return self._cancel("complement", size, blocks, naks)
                data = bytes(self._getc() for _ in range(BLOCK))
                self.store(size, data)
                size += BLOCK
                crc = (self._getc() << 8) | self._getc()
                if crc == binascii.crc_hqx(data, 0):
                    self._send(ACK)
                    packet_no = (packet_no + 1) & 0xFF
                    blocks += 1
                else:
                    self._send(NAK)
                    naks += 1
            elif ch == EOT:
                self._send(ACK)
                return XmodemResult("ok", size, blocks, naks)
            elif ch == CAN:
                return XmodemResult("cancelled", size, blocks, naks)
            idle_since = time.monotonic()
