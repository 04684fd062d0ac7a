"""An Xmodem-CRC / Xmodem-1K sender for boot loaders that receive files.

The protocol (Ward Christensen's Xmodem with Chuck Forsberg's CRC and 1K
extensions, as lrzsz ``sx`` speaks it): the receiver asks for CRC mode by
sending ``C`` (or for the original checksum mode with NAK); each block is
``SOH|STX, n, 255-n, 128|1024 data bytes, CRC-16/XMODEM (big-endian)`` or a
one-byte sum in checksum mode; the receiver answers ACK or NAK; a receiver
that sees the previous block again ACKs and drops it; the sender ends with
EOT until ACKed; two CAN bytes cancel.

Block sizes: 1024-byte blocks while at least 1024 bytes remain, then
128-byte blocks, so the padded length is the data rounded up to 128 bytes
(never to 1024). The W90P745 loader records an image's size as what it
received, and the seed's images are all multiples of 128 bytes: this keeps
a restored image the size it had. The pad byte is SUB (0x1A).

``use_1k=False`` sends 128-byte SOH blocks only: the W90 loader's receiver
(``xmodem.c``, ``XMODEM1K`` off) knows no other.

The link is anything with ``write(bytes)`` and ``read_some(n, timeout) -> bytes``
(b"" on timeout), e.g. :class:`recovery.transport.Port`.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

SOH, STX, EOT, ACK, NAK, CAN, CRC_REQ = 0x01, 0x02, 0x04, 0x06, 0x15, 0x18, ord("C")
PAD = 0x1A


class Link(Protocol):
    def write(self, data: bytes) -> None: ...

    def read_some(self, size: int, timeout: float | None) -> bytes: ...


class XmodemError(Exception):
    """The transfer failed; the message says where and why."""


@dataclass
class XmodemResult:
    """How a transfer went."""

    sent_bytes: int  # data bytes including padding
    blocks: int
    retransmissions: int
    crc: bool
    eot_acked: bool  # False: every block was ACKed but the ACK to EOT never came


def crc16_xmodem(data: bytes, crc: int = 0) -> int:
    """CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection
    (the standard library's table-driven ``binascii.crc_hqx``)."""
    return binascii.crc_hqx(data, crc)


def padded_length(size: int) -> int:
    """How many bytes the receiver gets for ``size`` bytes of data."""
    return -(-size // 128) * 128


def blocks_for(data: bytes, use_1k: bool = True) -> list[bytes]:
    """Split ``data`` into Xmodem payloads: 1024 bytes while that many remain, then 128."""
    out = []
    i = 0
    while i < len(data):
        left = len(data) - i
        size = 1024 if use_1k and left >= 1024 else 128
        chunk = data[i : i + size]
        out.append(chunk + bytes([PAD]) * (size - len(chunk)))
        i += size
    return out


def frame(seq: int, payload: bytes, crc: bool) -> bytes:
    """One block on the wire."""
    head = bytes([STX if len(payload) == 1024 else SOH, seq & 0xFF, 0xFF - (seq & 0xFF)])
    if crc:
        return head + payload + crc16_xmodem(payload).to_bytes(2, "big")
    return head + payload + bytes([sum(payload) & 0xFF])


class _Restarted(Exception):
    pass


def _wait_reply(
    link: Link, timeout: float, accept: bytes, abort_on: bytes | None = None
) -> int | None:
    """The first byte in ``accept`` that arrives before ``timeout``; other bytes are noise."""
    deadline = time.monotonic() + timeout
    cans = 0
    noise = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        chunk = link.read_some(1, left)
        if abort_on:
            noise = (noise + chunk)[-(len(abort_on) + 64) :]
            if abort_on in noise:
                raise _Restarted()
        for b in chunk:
            if b == CAN:
                cans += 1
                if cans >= 2:
                    return CAN
                continue
            cans = 0
            if b in accept:
                return b
        if not chunk:
            return None


def _purge(link: Link) -> None:
    """Drop whatever the receiver sent that has not been read yet."""
    for _ in range(1000):
        if not link.read_some(4096, 0.0):
            return


def send(
    link: Link,
    data: bytes,
    *,
    use_1k: bool = True,
    start_timeout: float = 60.0,
    ack_timeout: float = 10.0,
    retries: int = 10,
    started: bool = False,
    eot_timeout: float = 10.0,
    eot_silent_tries: int = 3,
    on_progress: Callable[[int, int], None] | None = None,
    first_block_acks: int = 1,
    abort_on: bytes | None = None,
    resend_on_timeout: bool = True,
) -> XmodemResult:
    """Send ``data``; return once the receiver ACKed every block and EOT.

    Waits up to ``start_timeout`` for the receiver's ``C`` (CRC) or NAK
    (checksum); ``started=True`` means the caller already saw the ``C`` (a
    console's text around it can hold a ``C`` too, so only the caller can tell).
    Bytes already waiting are dropped before the first block and before every
    retransmission, so a queued ``C`` or a late ACK is not taken for the answer
    to the block being sent. A ``C`` counts as NAK only for block 1. Each block is sent up to ``retries`` times. After the last
    block, EOT is sent until ACKed; lrzsz ``rx`` purges the line for about a
    second after the first EOT before it answers, so ``eot_timeout`` must be
    longer than that. ``eot_silent_tries`` EOTs without any answer end the
    transfer as sent (``eot_acked`` False). Raises
    :class:`XmodemError` on cancel, silence or too many retries.

    ``first_block_acks=2`` is for a receiver that sends a stray ACK before it
    reads the first block (the W90 loader's ``xmodem.c`` does, after its ``C``
    phase): block 1 then waits for a second ACK (briefly, in case this
    receiver did not send the stray one), so the sender stays in step with
    the receiver. ``abort_on``: text that, seen among the replies, ends the
    transfer at once (a boot loader's banner: the receiver restarted).
    """
    first = CRC_REQ if started else _wait_reply(link, start_timeout, bytes([CRC_REQ, NAK]))
    if first is None:
        raise XmodemError(
            f"the receiver never asked for data (no 'C' or NAK in {start_timeout:.0f} s)"
        )
    if first == CAN:
        raise XmodemError("the receiver cancelled before the transfer started")
    crc = first == CRC_REQ
    _purge(link)
    payloads = blocks_for(data, use_1k)
    total = sum(len(p) for p in payloads)
    done = 0
    retrans = 0
    for n, payload in enumerate(payloads):
        seq = (n + 1) & 0xFF
        packet = frame(seq, payload, crc)
        accept = bytes([ACK, NAK, CRC_REQ]) if n == 0 else bytes([ACK, NAK])
        for attempt in range(retries):
            if attempt:
                retrans += 1
                _purge(link)
            link.write(packet)
            try:
                reply = _wait_reply(link, ack_timeout, accept, abort_on)
                if reply == ACK and n == 0 and attempt == 0 and first_block_acks > 1:
                    # the receiver's stray ACK came first: wait for the block's own
                    second = _wait_reply(link, min(ack_timeout, 1.0), bytes([ACK, NAK]), abort_on)
                    reply = NAK if second == NAK else ACK
            except _Restarted:
                raise XmodemError(
                    f"the receiver restarted during block {n + 1} (its banner came back)"
                ) from None
            if reply == ACK:
                break
            if reply == CAN:
                raise XmodemError(f"the receiver cancelled at block {n + 1} (offset {done})")
            if reply is None and not resend_on_timeout:
                raise XmodemError(f"block {n + 1} (offset {done}) got no answer")
        else:
            raise XmodemError(
                f"block {n + 1} (offset {done}) was not acknowledged after {retries} tries"
            )
        done += len(payload)
        if on_progress:
            on_progress(done, total)
    eot_acked = False
    silent = 0
    for _ in range(retries):
        link.write(bytes([EOT]))
        try:
            reply = _wait_reply(link, eot_timeout, bytes([ACK, NAK]), abort_on)
        except _Restarted:
            raise XmodemError("the receiver restarted at the end (its banner came back)") from None
        if reply == ACK:
            eot_acked = True
            break
        if reply == CAN:
            break
        if reply is None:
            # lrzsz rx on a pty (REFERENCE.md) loses its final ACK: every block
            # was acknowledged, so the data arrived. Try a little longer in case
            # the EOT itself was lost on the line.
            silent += 1
            if silent >= eot_silent_tries:
                break
    return XmodemResult(done, len(payloads), retrans, crc, eot_acked)
