"""The engine's Xmodem-CRC/1K sender (recovery/xmodem.py) against
third-party receivers over real ptys: lrzsz ``rx -c`` and the ``xmodem``
PyPI package."""

from __future__ import annotations

import contextlib
import io
import os
import random
import select
import shutil
import subprocess
import threading
import tty

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xmodem import XMODEM

from recovery.xmodem import XmodemError, blocks_for, crc16_xmodem, padded_length, send


class FdLink:
    """The master end of a pty, with the read_some/write pair the sender uses."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], 1)
            view = view[os.write(self.fd, view) :]

    def read_some(self, size: int, timeout: float | None) -> bytes:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            return os.read(self.fd, size)
        except OSError:
            return b""


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_crc16_xmodem_check_value():
    assert crc16_xmodem(b"123456789") == 0x31C3  # the catalogued check value


@given(size=st.integers(0, 5000))
def test_blocks_pad_to_128_not_1024(size):
    blocks = blocks_for(bytes(size))
    assert sum(len(b) for b in blocks) == padded_length(size)
    sizes = [len(b) for b in blocks]
    assert sizes == [1024] * (size // 1024) + [128] * (-(-(size % 1024) // 128))
    assert b"".join(blocks)[:size] == bytes(size)
    assert set(b"".join(blocks)[size:]) <= {0x1A}


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("rx") is None, reason="lrzsz rx is not installed")
@pytest.mark.parametrize(
    ("size", "use_1k"), [(1, True), (1024, False), (3 * 1024 + 200, True), (3 * 1024 + 200, False)]
)
def test_sender_against_lrzsz_rx(tmp_path, pty_pair, use_1k, size):
    master, slave = pty_pair
    data = random.Random(size).randbytes(size)
    out = tmp_path / "got.bin"
    # lrzsz refuses an absolute file name ("Security Violation"): name it relative to cwd
    proc = subprocess.Popen(
        ["rx", "-c", "-b", out.name],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        link = FdLink(master)
        result = send(
            link,
            data,
            use_1k=use_1k,
            start_timeout=10,
            ack_timeout=2,
            # rx can miss an EOT that comes while it is still busy with the last block
            # (a loaded machine: 10 of 40 runs beside three CPU hogs lost it, and rx then
            # removed the file); EOT is sent again on silence, as any sender does
            eot_timeout=1.6,
            eot_silent_tries=5,
        )
    finally:
        try:
            proc.wait(timeout=60)  # rx writes the file as it exits: a hang guard, not a speed limit
        except subprocess.TimeoutExpired:
            proc.kill()
    assert result.crc
    assert result.sent_bytes == padded_length(size)
    assert out.exists(), (result, proc.returncode, proc.stderr.read() if proc.stderr else b"")
    got = out.read_bytes()
    # rx keeps the padding (Xmodem has no length field)
    assert got == data + b"\x1a" * (padded_length(size) - size)
    assert result.blocks == len(blocks_for(data, use_1k))
    assert link.sent[-1:] == b"\x04"  # ended with EOT


def _xmodem_receiver(fd: int, sink: io.BytesIO, corrupt_every: int = 0):
    count = [0]

    def getc(size, timeout=1):
        out = bytearray()
        while len(out) < size:
            r, _, _ = select.select([fd], [], [], timeout)
            if not r:
                return None
            out += os.read(fd, size - len(out))
        if corrupt_every:
            for i in range(len(out)):
                count[0] += 1
                if count[0] % corrupt_every == 0:
                    out[i] ^= 0x10
        return bytes(out)

    def putc(data, timeout=1):
        return os.write(fd, data)

    modem = XMODEM(getc, putc, mode="xmodem1k")
    return modem.recv(sink, crc_mode=1, timeout=0.5, retry=30, quiet=True)


@pytest.mark.parametrize("corrupt_every", [0, 4001])
def test_sender_against_xmodem_package(pty_pair, corrupt_every):
    """The xmodem package receives; every 4001st byte it reads is damaged."""
    master, slave = pty_pair
    data = random.Random(7).randbytes(12 * 1024 + 384)
    sink = io.BytesIO()
    box = {}
    t = threading.Thread(
        target=lambda: box.setdefault("n", _xmodem_receiver(slave, sink, corrupt_every))
    )
    t.start()
    result = send(FdLink(master), data, start_timeout=10, ack_timeout=3)
    t.join(15)
    assert box["n"] is not None
    assert sink.getvalue()[: len(data)] == data
    assert result.eot_acked
    if corrupt_every:
        assert result.retransmissions > 0
    else:
        assert result.retransmissions == 0


def test_receiver_that_never_asks_is_a_clear_error(pty_pair):
    master, _ = pty_pair
    with pytest.raises(XmodemError, match="never asked"):
        send(FdLink(master), b"x" * 10, start_timeout=0.2)


def test_cancel_is_reported(pty_pair):
    master, slave = pty_pair

    def receiver():
        os.write(slave, b"C")
        select.select([slave], [], [], 2)
        os.read(slave, 2000)
        os.write(slave, b"\x18\x18")

    t = threading.Thread(target=receiver)
    t.start()
    with pytest.raises(XmodemError, match="cancelled at block 1"):
        send(FdLink(master), b"x" * 300, start_timeout=2, ack_timeout=2)
    t.join()


def test_nak_retransmits_then_gives_up(pty_pair):
    master, slave = pty_pair
    stop = threading.Event()

    def receiver():
        os.write(slave, b"C")
        while not stop.is_set():
            r, _, _ = select.select([slave], [], [], 0.1)
            if r:
                os.read(slave, 4096)
                os.write(slave, b"\x15")

    t = threading.Thread(target=receiver)
    t.start()
    try:
        with pytest.raises(XmodemError, match="not acknowledged after 4 tries"):
            send(FdLink(master), b"x" * 300, start_timeout=2, ack_timeout=1, retries=4)
    finally:
        stop.set()
        t.join()


@given(st.binary(max_size=300))
def test_crc16_xmodem_is_crc_hqx(data):
    import binascii

    assert crc16_xmodem(data) == binascii.crc_hqx(data, 0)


def _read_blocks(fd: int, n: int, size: int = 133) -> bytes:
    got = b""
    while len(got) < n * size:
        select.select([fd], [], [], 2)
        got += os.read(fd, 4096)
    return got


def test_stray_first_ack_keeps_the_sender_in_step(pty_pair):
    """A receiver like the W90 loader's: ACK before reading block 1, then the block's
    own ACK. With first_block_acks=2 the sender sends block 2 only after both."""
    master, slave = pty_pair
    order: list[str] = []

    def receiver():
        os.write(slave, b"C")
        _read_blocks(slave, 1)
        os.write(slave, b"\x06")  # stray
        order.append("stray")
        threading.Event().wait(0.3)
        r, _, _ = select.select([slave], [], [], 0)
        order.append("block 2 early" if r else "waited")
        os.write(slave, b"\x06")  # block 1's own
        _read_blocks(slave, 1)
        os.write(slave, b"\x06")
        select.select([slave], [], [], 2)
        os.read(slave, 10)  # EOT
        os.write(slave, b"\x06")

    t = threading.Thread(target=receiver)
    t.start()
    result = send(
        FdLink(master), b"y" * 256, use_1k=False, start_timeout=2, ack_timeout=2, first_block_acks=2
    )
    t.join()
    assert order == ["stray", "waited"]
    assert result.blocks == 2 and result.eot_acked


def test_no_resend_into_a_receiver_that_never_times_out(pty_pair):
    """resend_on_timeout=False: a block without an answer ends the transfer at once."""
    master, slave = pty_pair

    def receiver():
        os.write(slave, b"C")
        _read_blocks(slave, 1)  # and then silence

    t = threading.Thread(target=receiver)
    t.start()
    link = FdLink(master)
    with pytest.raises(XmodemError, match="block 1 .* got no answer"):
        send(
            link,
            b"z" * 128,
            use_1k=False,
            start_timeout=2,
            ack_timeout=0.3,
            resend_on_timeout=False,
        )
    t.join()
    assert len(link.sent) == 133  # sent once, never again
