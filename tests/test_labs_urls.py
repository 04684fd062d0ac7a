"""The engine over pyserial URLs: ``camrescue hi3511 info/backup``, ``w90p745 dump`` and
``xr872 dump`` through ``rfc2217://`` and ``socket://`` against emulated cameras served
by :class:`harness.lab.serve.PortServer`, checked against the emulators' flash.

The engine is asked for results (exit code, JSON fields, files), never for exact console
texts: the boards' boot loader models may change their wording.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from serial import rfc2217
from serial.serialutil import SerialBase

from emulators.device import Device
from emulators.hi3511 import Hi3511Device
from emulators.w90p745 import W90P745Device
from emulators.xr872 import XR872Device
from harness.firmware import w90p745 as w90fw
from harness.firmware.hi3511 import vendor_flash
from harness.lab.serve import PortServer
from harness.lab.tftp import free_udp_port
from recovery.cli import main

SCHEMES = ["rfc2217", "socket"]
W90_IMAGE = (9, "lab16", 0x7F180000, w90fw.rich_image(0x4000, seed=18), 0x7F180000, "a")


def run_engine(*argv: str) -> tuple[int, dict]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    lines = out.getvalue().strip().splitlines()
    assert lines, err.getvalue()
    return code, json.loads(lines[-1])


@contextlib.contextmanager
def served(dev: Device, scheme: str) -> Iterator[PortServer]:
    with PortServer(dev.path, f"{scheme}://127.0.0.1:0", baud=dev.baud, name=dev.board) as srv:
        yield srv
    assert dev.crash is None, dev.crash_text


def power_on_when_connected(dev: Device, srv: PortServer) -> threading.Thread:
    """Plug the camera in once the engine holds the port and waits (``--wait``), as a
    person does when the engine asks: the engine must catch the boot loader at power-on
    through the network port."""

    def go() -> None:
        deadline = time.monotonic() + 30
        while srv.client is None and time.monotonic() < deadline:
            time.sleep(0.01)
        dev.power_on()

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


@pytest.fixture(scope="module")
def hi3511_flash() -> bytes:
    return vendor_flash("A")


# -- Hi3511 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_hi3511_info_over_the_network(scheme, hi3511_flash):
    dev = Hi3511Device(initial_flash=hi3511_flash)
    try:
        with served(dev, scheme) as srv:
            power_on_when_connected(dev, srv)
            code, r = run_engine("hi3511", "info", "--port", srv.url, "--json", "--wait", "20")
            assert srv.connections == 1 and srv.refused == 0
    finally:
        dev.close()
    assert code == 0, r
    assert r["operation"] == "info"
    assert r["uboot_version"].startswith("U-Boot 1.1.4")
    assert r["flash"]["size"] == len(hi3511_flash)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", SCHEMES)
def test_hi3511_backup_over_the_network(scheme, hi3511_flash, tmp_path):
    udp = free_udp_port()
    dev = Hi3511Device(initial_flash=hi3511_flash, tftp_server=("127.0.0.1", udp))
    out = tmp_path / "cam.bin"
    try:
        with served(dev, scheme) as srv:
            power_on_when_connected(dev, srv)
            code, r = run_engine(
                "hi3511", "backup", "--port", srv.url, "--json", "--wait", "20",
                "--tftp-bind", f"127.0.0.1:{udp}", "--out", str(out),
            )  # fmt: skip
    finally:
        dev.close()
    assert code == 0, r
    assert out.read_bytes() == hi3511_flash[0x100000:]
    assert json.loads(Path(str(out) + ".json").read_text())["board"] == "hi3511"


# -- W90P745 --------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_w90p745_dump_over_the_network(scheme, tmp_path):
    flash = w90fw.flash_with([W90_IMAGE])
    # A raw TCP port carries no settings: the loader's B command would switch the board
    # to a rate the adapter never takes, so the dump stays at 115200 there.
    baud = ["--baud", "115200"] if scheme == "socket" else []
    dev = W90P745Device(initial_flash=flash, seed=18)
    try:
        with served(dev, scheme) as srv:
            power_on_when_connected(dev, srv)
            code, r = run_engine(
                "w90p745", "dump", "--port", srv.url, "--json", "--wait", "20",
                "--out", str(tmp_path / "d"), "--images", "0,lab16", *baud,
            )  # fmt: skip
    finally:
        dev.close()
    assert code == 0, r
    files = {i["name"]: tmp_path / "d" / i["file"] for i in r["images"]}
    assert files["lab16"].read_bytes() == W90_IMAGE[3]
    assert files["BOOT INFO"].read_bytes() == flash[0x10000 : 0x10000 + 0x48]


# -- XR872 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_xr872_dump_over_the_network(scheme, tmp_path):
    # Over RFC 2217 the engine raises the link with SETUART and the client's new baud
    # reaches the board through the server; over a raw TCP port the engine keeps the
    # link at 115200 by itself (no settings travel there).
    out = tmp_path / "xr.bin"
    with XR872Device(seed=18) as dev, served(dev, scheme) as srv:
        snap = dev.flash.snapshot()
        code, r = run_engine("xr872", "dump", "--port", srv.url, "--json", "--out", str(out))
    assert code == 0, r
    assert out.read_bytes() == snap
    if scheme == "rfc2217":
        assert r["link"]["baud"] > 115200  # the switch went through the server
    else:
        assert r["link"]["baud"] == 115200


# -- settings round trips -------------------------------------------------------------------
def test_rfc2217_settings_are_sent_once_per_change(monkeypatch, tmp_path):
    """With stock pyserial 3.5 semantics (the timeout setter of SerialBase, which re-sends
    the port settings and waits for the server's answers whenever the value changes;
    pyserial-labgrid overrides it, so it is put back here), a W90P745 dump at one baud
    configures the RFC 2217 port once, when it opens."""
    calls = []
    real = rfc2217.Serial._reconfigure_port

    def counting(self, *a, **kw):
        calls.append(self.baudrate)
        return real(self, *a, **kw)

    monkeypatch.setattr(rfc2217.Serial, "_reconfigure_port", counting)
    monkeypatch.setattr(rfc2217.Serial, "timeout", SerialBase.timeout)
    flash = w90fw.flash_with([W90_IMAGE])
    dev = W90P745Device(initial_flash=flash, seed=18)
    try:
        with served(dev, "rfc2217") as srv:
            power_on_when_connected(dev, srv)
            code, r = run_engine(
                "w90p745", "dump", "--port", srv.url, "--json", "--wait", "20",
                "--out", str(tmp_path / "d"), "--images", "0", "--baud", "115200",
            )  # fmt: skip
    finally:
        dev.close()
    assert code == 0, r
    assert calls == [115200]


# -- the server itself ----------------------------------------------------------------------
def _until(port: serial.SerialBase, text: bytes, timeout: float = 10.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, seen
        seen += port.read(4096)
    return seen


def to_prompt(dev: Hi3511Device, port: serial.SerialBase) -> None:
    """Power on with the client connected, holding the space bar down (a space every read)
    until the prompt shows: a space already waiting stops any countdown. Ctrl-C then drops
    the spaces typed at the prompt."""
    dev.power_on()
    seen = b""
    deadline = time.monotonic() + 10
    while b"hilinux # " not in seen:
        assert time.monotonic() < deadline, seen
        port.write(b" ")
        seen += port.read(4096)
    port.write(b"\x03")
    time.sleep(0.2)
    port.read(4096)


@contextlib.contextmanager
def hi3511(flash: bytes) -> Iterator[Hi3511Device]:
    dev = Hi3511Device(initial_flash=flash)
    try:
        yield dev
    finally:
        dev.close()


def test_a_second_client_is_refused_with_a_reason(hi3511_flash):
    with hi3511(hi3511_flash) as dev, served(dev, "rfc2217") as srv:
        first = serial.serial_for_url(srv.url, 115200, timeout=0.1)
        try:
            to_prompt(dev, first)
            with socket.create_connection(("127.0.0.1", srv.address.port), timeout=5) as s:
                said = s.makefile("rb").readline()
            assert b"busy" in said and b"one client at a time" in said
            with pytest.raises((serial.SerialException, OSError)):  # what the engine catches
                serial.serial_for_url(srv.url, 115200, timeout=0.1)
            # the first client is not disturbed
            first.write(b"version\r")
            assert b"U-Boot 1.1.4" in _until(first, b"U-Boot 1.1.4")
        finally:
            first.close()
        assert srv.refused == 2
        # once it has gone, the next one is served
        deadline = time.monotonic() + 5
        while srv.client is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        with serial.serial_for_url(srv.url, 115200, timeout=0.1) as again:
            again.write(b"version\r")
            _until(again, b"U-Boot 1.1.4")


def test_the_client_baud_reaches_the_device_as_on_the_pty(hi3511_flash):
    """At 57600 the Hi3511's 115200 console is garbage through the server, as through the
    pty; back at 115200 it is clean. Modem lines are accepted and read inactive."""
    with (
        hi3511(hi3511_flash) as dev,
        served(dev, "rfc2217") as srv,
        serial.serial_for_url(srv.url, 115200, timeout=0.1) as port,
    ):
        to_prompt(dev, port)
        port.baudrate = 57600
        port.write(b"version\r")
        garbled = b""
        deadline = time.monotonic() + 10
        while not garbled:
            assert time.monotonic() < deadline
            garbled += port.read(4096)
        garbled += port.read(4096)
        assert b"version" not in garbled and b"U-Boot" not in garbled
        port.write(b"\x03" * 4)
        port.baudrate = 115200
        port.rts = True
        port.dtr = True
        port.rts = False
        assert (port.cts, port.dsr, port.ri, port.cd) == (False, False, False, False)
        port.write(b"\x03version\r")
        _until(port, b"U-Boot 1.1.4")


def test_rts_cts_flow_control_holds_what_the_client_sends(hi3511_flash):
    """CTS is not wired (reads inactive), so with RTS/CTS on the adapter sends nothing;
    switched off, what was held goes out."""
    with (
        hi3511(hi3511_flash) as dev,
        served(dev, "rfc2217") as srv,
        serial.serial_for_url(srv.url, 115200, timeout=0.1) as port,
    ):
        to_prompt(dev, port)
        before = dev.link_counts[0]
        port.rtscts = True
        port.write(b"version\r")
        deadline = time.monotonic() + 10
        while srv.held < len(b"version\r"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert dev.link_counts[0] == before  # the device got nothing
        port.rtscts = False  # the held bytes go out now
        _until(port, b"U-Boot 1.1.4")
        assert srv.held == 0


def test_a_local_program_on_the_pty_makes_the_server_refuse(hi3511_flash):
    with (
        hi3511(hi3511_flash) as dev,
        served(dev, "socket") as srv,
        serial.Serial(dev.path, 115200, exclusive=True),
        socket.create_connection(("127.0.0.1", srv.address.port), timeout=5) as s,
    ):
        said = s.makefile("rb").readline()
    assert b"busy" in said and b"cannot open" in said


# -- socat in front of the pty (docs/labs.md) ------------------------------------------------
def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until_socat_holds(pid: int, dev, baud: int, timeout: float = 30) -> None:
    """Wait until process ``pid`` has the device's pty open and the pty is at ``baud``."""
    tty = os.path.realpath(dev.path)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            fds = os.listdir(f"/proc/{pid}/fd")
            held = any(_readlink(f"/proc/{pid}/fd/{fd}") == tty for fd in fds)
            if held and dev.uart.host_baud() == baud:
                return
        assert time.monotonic() < deadline, "socat never opened the pty"
        time.sleep(0.01)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@pytest.mark.interop
@pytest.mark.parametrize("speed", [None, "b115200"])
def test_socat_needs_the_baud_when_the_pty_was_left_at_another(speed, hi3511_flash):
    """A program left the pty at 9600; socat without ``b115200`` keeps that speed and the
    console is garbage, with it the console is clean (the note in docs/labs.md)."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (.ci/run installs it)")
    with hi3511(hi3511_flash) as dev:
        with serial.Serial(dev.path, 9600):
            pass  # the device still holds the pty open, so the speed stays
        port = _free_tcp_port()
        tty = f"FILE:{dev.path},raw,echo=0" + (f",{speed}" if speed else "")
        proc = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", tty],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    conn = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.1)
                    break
                except serial.SerialException:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            with conn:
                # socat opens the pty (and sets its speed) only after it accepted the
                # connection: power on once it has, or the banner leaves at the old speed
                _until_socat_holds(proc.pid, dev, 115200 if speed else 9600)
                dev.power_on()
                seen = b""
                while time.monotonic() < deadline + 10:
                    got = conn.read(4096)
                    seen += got
                    if b"U-Boot 1.1.4" in seen:
                        break
                    if not got and len(seen) > 10 and dev.link_counts[1] > 200:
                        break  # the banner went out and came through as something else
        finally:
            proc.terminate()
            proc.wait(5)
    if speed:
        assert b"U-Boot 1.1.4" in seen
    else:
        assert seen and b"U-Boot" not in seen


@pytest.mark.parametrize("board", ["hi3511", "w90p745", "xr872"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_engine_says_the_port_is_in_use_by_another_client(scheme, board, hi3511_flash):
    """A second client's engine is refused by the server: pyserial sees "Broken pipe" (its
    RFC 2217 negotiation) or a closed socket; the engine says the port is in use, by whom
    (the server's own line), and what to do, with nothing written."""
    with hi3511(hi3511_flash) as dev, served(dev, scheme) as srv:
        first = serial.serial_for_url(srv.url, 115200, timeout=0.1)
        try:
            deadline = time.monotonic() + 10
            while srv.client is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            code, r = run_engine(board, "info", "--port", srv.url, "--json")
        finally:
            first.close()
        assert srv.connections == 1 and srv.refused >= 1
    assert code == 4, r
    said = r["message"]
    assert said.startswith(f"serial port {srv.url} is in use by another client"), said
    assert "is busy: in use by 127.0.0.1:" in said  # the server's own line, quoted
    assert "Close the other client" in said and "Broken pipe" not in said
    assert r["hint"] is None  # no guess about cables beside it
    assert r["flash_status"]["state"] == "untouched"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_url_nothing_listens_at_says_to_start_the_server(scheme):
    url = f"{scheme}://127.0.0.1:{_free_tcp_port()}"
    code, r = run_engine("hi3511", "info", "--port", url, "--json")
    assert code == 4, r
    assert r["message"].startswith(f"cannot open serial port {url!r}: nothing accepts"), r
    assert "camrescue emulate BOARD --serve" in r["message"]


def test_only_a_first_line_that_says_busy_is_a_refusal():
    """The server's refusal is the first thing a connection gets; a board's console text
    that says "busy" later is not one (nothing listens at the URL, so no second look)."""
    from recovery.ports import server_refusal

    url = f"socket://127.0.0.1:{_free_tcp_port()}"
    line = b"camrescue: socket://127.0.0.1:1 (hi3511) is busy: in use by 127.0.0.1:2 (...)"
    assert server_refusal(url, line + b"\r\n") == line.decode()
    assert server_refusal(url, b"\r\n" + line) == line.decode()
    assert server_refusal(url, b"U-Boot 1.1.4\r\n" + line + b"\r\n") is None
    assert server_refusal(url, b"") is None
    assert server_refusal("/dev/ttyUSB0", line) is None
