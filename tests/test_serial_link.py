"""The virtual UART, driven from the host side with pyserial."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.serial import LinkDown, LinkFaults, VirtualUart, resample


def open_host(uart: VirtualUart, baud: int = 115200, timeout: float = 1.0) -> serial.Serial:
    return serial.Serial(uart.path, baud, timeout=timeout)


def read_n(port: serial.Serial, n: int, timeout: float = 2.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += port.read(max(1, min(n - len(out), port.in_waiting)))
    return bytes(out)


def test_all_byte_values_both_ways():
    with VirtualUart() as uart, open_host(uart) as host:
        data = bytes(range(256)) * 4
        uart.write(data)
        assert read_n(host, len(data)) == data
        host.write(data)
        assert uart.read_exact(len(data), timeout=2) == data


def test_device_sees_host_baud():
    with VirtualUart() as uart, open_host(uart, 9600) as host:
        assert uart.host_baud() == 9600
        host.baudrate = 115200
        assert uart.host_baud() == 115200


def test_baud_mismatch_garbles_both_ways_deterministically():
    text = b"U-Boot 1.1.4 (Apr  8 2009 - 11:41:01)\r\n"
    with VirtualUart() as uart, open_host(uart, 9600, timeout=0.3) as host:
        uart.write(text)
        got = host.read(len(text))
        assert got and got != text
        assert got == resample(text, 115200, 9600)
        host.write(b"help\r")
        heard = uart.read(100, timeout=1)
        assert heard != b"help\r"


def test_resample_identity_and_known_case():
    assert resample(b"abc", 115200, 115200) == b"abc"
    # at half speed the receiver sees every other bit period: deterministic, not clean
    assert resample(b"\x55\x55", 115200, 57600) != b"\x55\x55"


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.sampled_from([9600, 19200, 38400, 57600, 230400]))
def test_resample_at_other_rates_is_deterministic_and_bounded(data, rx):
    a = resample(data, 115200, rx)
    assert a == resample(data, 115200, rx)
    # a receiver cannot decode more start bits than there are bit periods
    assert len(a) <= len(data) * 10 * max(1, rx // 115200 + 1)


def test_close_and_reopen_host_keeps_device_alive():
    with VirtualUart() as uart:
        with open_host(uart) as host:
            host.write(b"one")
            assert uart.read_exact(3, timeout=1) == b"one"
        with open_host(uart) as host:
            uart.write(b"two")
            assert read_n(host, 3) == b"two"


def test_device_close_gives_host_an_error_and_removes_the_path(tmp_path):
    link = tmp_path / "ttyCAM0"
    uart = VirtualUart(link_path=link)
    assert os.readlink(link) == uart.path
    host = open_host(uart, timeout=0.5)
    uart.close()
    assert not link.exists() and not link.is_symlink()
    with pytest.raises(serial.SerialException):
        for _ in range(5):
            host.read(1)
    host.close()


def test_interrupt_wakes_a_blocked_reader():
    with VirtualUart() as uart:
        errors = []

        def reader():
            try:
                uart.read(1)
            except LinkDown:
                errors.append("down")

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.05)
        uart.interrupt()
        t.join(2)
        assert errors == ["down"]
        uart.resume()
        with open_host(uart) as host:
            host.write(b"x")
            assert uart.read(1, timeout=1) == b"x"


def test_faults_are_seeded_and_damage_data():
    data = bytes(range(256)) * 8

    def through(seed):
        faults = LinkFaults(bit_error_rate=0.001, drop_rate=0.002, burst_rate=0.001, burst_len=16)
        with VirtualUart(faults=faults, seed=seed) as uart, open_host(uart, timeout=0.3) as host:
            uart.write(data)
            return read_n(host, len(data), timeout=0.5)

    a, b = through(1), through(1)
    assert a == b
    assert a != data and len(a) < len(data)


def test_silent_line():
    with VirtualUart(faults=LinkFaults(silent_after=5)) as uart, open_host(uart, timeout=0.2) as h:
        uart.write(b"0123456789")
        assert read_n(h, 10, timeout=0.3) == b"01234"


def test_fifo_overrun_drops_what_the_host_did_not_read():
    with VirtualUart(faults=LinkFaults(fifo=100)) as uart, open_host(uart, timeout=0.2) as host:
        uart.write(b"a" * 80)
        # the pty hands bytes to the host's side asynchronously: wait for the work to
        # arrive, not for a time (a busy machine may take longer)
        deadline = time.monotonic() + 10
        while host.in_waiting < 80 and time.monotonic() < deadline:
            time.sleep(0.001)
        uart.write(b"b" * 80)  # only 20 fit while the host has not read
        got = read_n(host, 160, timeout=0.3)
        assert got == b"a" * 80 + b"b" * 20


def test_transcript_records_both_directions(tmp_path):
    with VirtualUart() as uart, open_host(uart) as host:
        uart.write(b"hilinux # ")
        host.write(b"help\r")
        assert uart.read_exact(5, timeout=1) == b"help\r"
        text = uart.transcript.text()
        assert "dev hilinux # " in text and "host help\\r" in text
        saved = uart.transcript.save(tmp_path / "t.txt")
        assert saved.read_text() == text


@pytest.mark.realtime
def test_realtime_output_is_paced_at_the_baud():
    with VirtualUart(9600, realtime=True) as uart, open_host(uart, 9600) as host:
        data = b"x" * 480  # 0.5 s at 9600 8N1
        t0 = time.monotonic()
        uart.write(data)
        assert read_n(host, len(data), timeout=3) == data
        assert time.monotonic() - t0 >= 0.45


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
@pytest.mark.realtime
def test_realtime_answer_does_not_leave_before_its_request_arrived():
    """Real time at 9600 (1.04 ms a byte): the host reads one output, sends one byte at
    once, and the device answers the moment it has read it. The answer reaches the host
    no sooner than the request's byte and the answer's byte take on the wire, however
    short the host's turnaround (it left early, from the end of the earlier output)."""
    byte = 10 / 9600
    with VirtualUart(9600, realtime=True) as uart, open_host(uart, 9600) as host:

        def device() -> None:
            uart.write(b"0123456789")
            for _ in range(5):
                uart.write(uart.read(1, timeout=5.0))

        t = threading.Thread(target=device, daemon=True)
        t.start()
        assert read_n(host, 10) == b"0123456789"
        for i in range(5):
            sent = time.monotonic()
            host.write(b"%d" % i)
            assert read_n(host, 1) == b"%d" % i
            assert time.monotonic() - sent >= 2 * byte, (i, time.monotonic() - sent, 2 * byte)
        t.join(5)


def test_socat_can_wrap_the_port_over_tcp():
    import socket

    with VirtualUart() as uart, open_host(uart):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        proc = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", f"FILE:{uart.path},raw,echo=0"]
        )
        try:
            for _ in range(100):
                try:
                    c = socket.create_connection(("127.0.0.1", port), timeout=0.1)
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                pytest.fail("socat did not listen")
            with c:
                c.settimeout(2)
                uart.write(b"over tcp")
                got = b""
                while len(got) < 8:
                    got += c.recv(64)
                assert got == b"over tcp"
                c.sendall(b"back")
                assert uart.read_exact(4, timeout=2) == b"back"
        finally:
            proc.terminate()
            proc.wait(5)


def test_a_custom_host_baud_is_not_taken_for_the_device_baud():
    """pyserial sets non-standard rates with BOTHER; the device must still see them."""
    text = b"hilinux # "
    with VirtualUart() as uart, open_host(uart, 123456, timeout=0.3) as host:
        assert uart.host_baud() == 123456
        uart.write(text)
        got = host.read(64)
        assert got == resample(text, 115200, 123456) and got != text


def test_a_hung_up_host_exchanges_nothing():
    with VirtualUart() as uart, open_host(uart, timeout=0.2) as host:
        host.baudrate = 0
        assert uart.host_baud() == 0
        uart.write(b"banner")
        assert host.read(16) == b""


# -- burst delivery (LinkFaults.chunk) -------------------------------------------------


def test_bursts_hold_output_until_a_piece_is_full_or_the_device_waits():
    with VirtualUart(faults=LinkFaults(chunk=64)) as uart, open_host(uart, timeout=0.2) as host:
        uart.write(b"a" * 50)
        assert host.in_waiting == 0  # held: never written to the pty
        uart.write(b"b" * 20)
        assert read_n(host, 64) == b"a" * 50 + b"b" * 14
        assert host.in_waiting == 0
        assert uart.read(1, timeout=0.01) == b""  # the device waits for the host
        assert read_n(host, 6) == b"b" * 6
        assert uart.burst_sizes == [64, 6]


def test_polling_for_input_twice_without_printing_ends_a_burst():
    with VirtualUart(faults=LinkFaults(chunk=4096)) as uart, open_host(uart) as host:
        uart.write(b"line 1\r\n")
        assert not uart.input_waiting()  # one poll between lines: output goes on
        uart.write(b"line 2\r\n")
        assert not uart.input_waiting()
        assert host.in_waiting == 0
        assert not uart.input_waiting()  # a second poll with nothing printed: idle
        assert read_n(host, 16) == b"line 1\r\nline 2\r\n"


def test_random_pieces_are_seeded_and_lose_nothing():
    data = b"".join(b"jffs2_scan_eraseblock(): line %d\r\n" % i for i in range(600))

    def through(seed):
        faults = LinkFaults(chunk=700, chunk_min=1)
        with VirtualUart(faults=faults, seed=seed) as uart, open_host(uart) as host:
            got = bytearray()
            reader = threading.Thread(target=lambda: got.extend(read_n(host, len(data), 10)))
            reader.start()
            for i in range(0, len(data), 100):
                uart.write(data[i : i + 100])
            uart.drain()
            reader.join()
            return bytes(got), list(uart.burst_sizes)

    got, sizes = through(1)
    assert got == data
    assert sum(sizes) == len(data) and all(1 <= n <= 700 for n in sizes)
    assert len(set(sizes)) > 10
    assert through(1)[1] == sizes
    assert through(2)[1] != sizes


def test_a_power_cut_still_delivers_what_was_held():
    with VirtualUart(faults=LinkFaults(chunk=4096)) as uart, open_host(uart) as host:
        uart.write(b"Uncompressing Linux")
        uart.interrupt()
        with pytest.raises(LinkDown):
            uart.read(1, timeout=1)
        assert read_n(host, 19) == b"Uncompressing Linux"


def test_burst_options_are_checked():
    with pytest.raises(ValueError, match="chunk_min needs chunk"):
        LinkFaults(chunk_min=5)
    with pytest.raises(ValueError, match="chunk_min must be"):
        LinkFaults(chunk=5, chunk_min=6)
    with pytest.raises(ValueError, match="at least 1"):
        LinkFaults(chunk=0)
