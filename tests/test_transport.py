"""The engine's transport over a real pty (the emulator's virtual UART on the other end)."""

from __future__ import annotations

import pytest

from emulators.serial import VirtualUart
from recovery.transport import Port, Timeout, TransportError


def test_expect_and_send_over_a_pty(tmp_path):
    with VirtualUart() as uart, Port(uart.path, transcript=tmp_path / "t.txt") as port:
        uart.write(b"Hit any key to stop autoboot:  1 ")
        assert port.expect([r"Hit any key", r"Starting kernel"], timeout=2) == 0
        port.sendline("help")
        assert uart.read_exact(5, timeout=2) == b"help\r"
    text = (tmp_path / "t.txt").read_text()
    assert "rx Hit any key" in text and "tx help\\r" in text


def test_undecodable_bytes_survive():
    with VirtualUart() as uart, Port(uart.path) as port:
        uart.write(bytes(range(256)) + b"hilinux # ")
        port.expect(r"hilinux # ", timeout=2)
        assert len(port.before) == 256


def test_timeout_says_what_was_seen():
    with VirtualUart() as uart, Port(uart.path) as port:
        uart.write(b"Uncompressing Linux")
        with pytest.raises(Timeout) as e:
            port.expect(r"hilinux # ", timeout=0.3)
        assert "Uncompressing Linux" in e.value.seen


def test_read_exact_binary():
    with VirtualUart() as uart, Port(uart.path) as port:
        uart.write(b"OK" + bytes(range(100)))
        assert port.read_exact(102, timeout=1) == b"OK" + bytes(range(100))
        assert port.read_exact(1, timeout=0.1) == b""


def test_missing_port_is_a_clear_error(tmp_path):
    with pytest.raises(TransportError, match="cannot open serial port"):
        Port(str(tmp_path / "ttyUSB9"))


def test_device_gone_is_a_clear_error():
    uart = VirtualUart()
    port = Port(uart.path)
    uart.close()
    with pytest.raises(TransportError, match="lost the serial port"):
        for _ in range(5):
            port.read_some(1, 0.2)
    port.close()
