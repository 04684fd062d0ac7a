"""The emulated U-Boot's TFTP timer is NetSetTimeout's: one per transfer, re-armed by a
new DATA block (and, HiSilicon, every ACK of an upload) and by each timeout, never by a
packet it ignores (github zhhejun/u-boot-1.1.4 net/tftp.c TftpHandler: a repeated block
prints ``%`` and breaks before NetSetTimeout).

A server that keeps resending a block the device already has (its ACK was lost) must
not keep the device from timing out and resending that ACK: with a timer restarted by
every datagram the device stayed silent until the server gave the session up, and the
download started again (the hi3511-tftp-packet-loss scenario)."""

from __future__ import annotations

import select
import socket
import struct
import threading
from contextlib import closing

import pytest

from tests.test_emu_hi3511 import attach
from tests.test_emu_hi3511_variants import VARIANTS, dev_for

RESEND_EVERY = 0.005  # s: the server resends far faster than any device timeout
RESENDS = 400  # then it gives up: 2 s or more, 8 times the device's fast timeout


class RepeatingServer:
    """Answers the RRQ with DATA 1 (a full block) and sends DATA 1 again every
    ``RESEND_EVERY`` seconds, ignoring the first ACK 1 (as if it had been lost); the
    second ACK 1 gets the short DATA 2 that ends the transfer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.acks1 = 0
        self.resent_before_second_ack: int | None = None
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        sock = self.sock
        sock.settimeout(20)
        _pkt, peer = sock.recvfrom(2048)  # the RRQ
        block1 = struct.pack("!HH", 3, 1) + b"\x5a" * 512
        for resent in range(RESENDS):
            sock.sendto(block1, peer)
            ready, _, _ = select.select([sock], [], [], RESEND_EVERY)
            while ready:
                pkt, src = sock.recvfrom(2048)
                if src == peer and pkt == b"\0\4\0\1":
                    self.acks1 += 1
                    if self.acks1 == 2:
                        self.resent_before_second_ack = resent
                        sock.sendto(struct.pack("!HH", 3, 2) + b"end", peer)
                        return
                ready, _, _ = select.select([sock], [], [], 0)

    def close(self) -> None:
        self._t.join(25)
        self.sock.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_repeated_block_does_not_hold_off_the_devices_ack_resend(variant):
    srv = RepeatingServer()
    try:
        with closing(dev_for(variant, tftp_server=("127.0.0.1", srv.port))) as dev:
            term = attach(dev)
            out = term.cmd("tftp 0xe1000000 fw.bin", timeout=30)
            term.close()
    finally:
        srv.close()
    # the device resent ACK 1 on its own timer while DATA 1 kept coming
    assert srv.resent_before_second_ack is not None, out
    assert "Bytes transferred = 515 (203 hex)" in out
    assert "Retry count exceeded" not in out
    if variant == "hisilicon":
        assert "%T" in out  # a repeated block, then the timeout that resends the ACK
    else:
        assert "T " in out
