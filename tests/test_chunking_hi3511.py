"""The Hi3511 engine through a link that hands the camera's output over in bursts
(``LinkFaults.chunk``: a slow host, a USB adapter's latency timer, a network bridge).

Issue 19: the kernel line ``jffs2_scan_dirent_node(): Node CRC failed ...`` lost its
first bytes when one read returned more than the old matcher's window. Whatever the
pieces, the engine must read the same thing it reads over the plain pty: the signature
skip-erase case gives the same CRC error lines (also through ``rfc2217://`` and
``socket://``, served by :class:`harness.lab.serve.PortServer`), and every console parser
(flinfo, printenv, md.b, crc32, the kernel log) gives the same result.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
from collections.abc import Iterator

import pytest
import serial
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emulators.hi3511 import Hi3511Device
from emulators.serial import LinkFaults
from harness.firmware import root_image, vendor_flash
from harness.lab.serve import PortServer
from recovery.cli import main
from recovery.hi3511.driver import UBoot
from recovery.transport import Port

BURSTS = {
    "4 KiB pieces": LinkFaults(chunk=4096),
    "pieces of 1 to 9000 bytes": LinkFaults(chunk=9000, chunk_min=1),
    "pieces of 3000 to 20000 bytes": LinkFaults(chunk=20000, chunk_min=3000),
    "pieces of 1 to 3 bytes": LinkFaults(chunk=3, chunk_min=1),
}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def camera(flash: bytes, faults: LinkFaults | None) -> Iterator[tuple[Hi3511Device, list[str]]]:
    """A camera stopped at its prompt by a terminal (read through the same link)."""
    port = _free_udp_port()
    dev = Hi3511Device(initial_flash=flash, tftp_server=("127.0.0.1", port), faults=faults)
    try:
        with serial.Serial(dev.path, 115200, timeout=0.05) as term:
            dev.power_on()
            seen = b""
            deadline = time.monotonic() + 30
            while b"Hit any key to stop autoboot" not in seen:
                assert time.monotonic() < deadline, seen
                seen += term.read(4096)
            term.write(b" ")
            while not seen.endswith(b"hilinux # "):
                assert time.monotonic() < deadline, seen
                seen += term.read(4096)
        yield dev, ["--port", dev.path, "--json", "--tftp-bind", f"127.0.0.1:{port}"]
        assert dev.crash is None, dev.crash_text
    finally:
        dev.close()


def run_engine(*argv: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(list(argv))
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def flash_a() -> bytes:
    return vendor_flash("A")


@pytest.fixture(scope="module")
def image_b(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "instar.jffs2"
    p.write_bytes(root_image("B"))
    return p


def _skip_erase(
    flash: bytes, image, faults: LinkFaults | None, scheme: str | None = None
) -> tuple[dict, list[int]]:
    with camera(flash, faults) as (dev, opts):
        argv = ["hi3511", "flash", *opts, str(image), "--no-backup", "--skip-erase"]
        if scheme is None:
            r = run_engine(*argv)
        else:
            url = f"{scheme}://127.0.0.1:0"
            with PortServer(dev.path, url, baud=dev.baud, name=dev.board) as srv:
                argv[argv.index(dev.path)] = srv.url
                r = run_engine(*argv)
        return r, list(dev.uart.burst_sizes)


@pytest.fixture(scope="module")
def plain_skip_erase(flash_a, image_b) -> dict:
    r, _ = _skip_erase(flash_a, image_b, None)
    assert r["error"] == "BootError" and r["crc_errors"] > 0, r
    return r


@pytest.mark.parametrize("name", list(BURSTS))
def test_skip_erase_gives_the_same_crc_error_lines_through_bursts(
    name, flash_a, image_b, plain_skip_erase
):
    r, sizes = _skip_erase(flash_a, image_b, BURSTS[name])
    assert len(sizes) > 10  # the output really came in pieces
    plain = plain_skip_erase["boot"]
    assert r["error"] == "BootError"
    assert r["crc_errors"] == plain_skip_erase["crc_errors"]
    for key in ("crc_error_lines", "crc_failed", "invalid_crc", "jffs2_lines", "kernel_lines"):
        assert r["boot"][key] == plain[key], key
    for line in r["boot"]["crc_error_lines"]:
        assert line.startswith("jffs2_scan_"), line


@pytest.mark.parametrize(
    ("scheme", "faults"),
    [("rfc2217", None), ("socket", None), ("rfc2217", LinkFaults(chunk=9000, chunk_min=1))],
    ids=["rfc2217", "socket", "rfc2217 with bursts"],
)
def test_skip_erase_gives_the_same_crc_error_lines_over_the_network(
    scheme, faults, flash_a, image_b, plain_skip_erase
):
    r, _ = _skip_erase(flash_a, image_b, faults, scheme)
    plain = plain_skip_erase["boot"]
    assert r["error"] == "BootError", r
    assert r["crc_errors"] == plain_skip_erase["crc_errors"]
    for key in ("crc_error_lines", "crc_failed", "invalid_crc", "jffs2_lines", "kernel_lines"):
        assert r["boot"][key] == plain[key], key


@pytest.fixture(scope="module")
def board(flash_a) -> Iterator[tuple[Hi3511Device, dict]]:
    """One camera at its prompt and what the engine reads over the plain link."""
    with camera(flash_a, None) as (dev, _):
        yield dev, _console_facts(dev)


def _console_facts(dev: Hi3511Device) -> dict:
    with Port(dev.path) as port:
        ub = UBoot(port)
        ub.attach(10)
        return {
            "flinfo": ub.read_flinfo(),
            "env": ub.printenv(),
            "md": ub.md_bytes(0x34000000, 0x600),
            "crc": ub.crc32(0x34200000, 0x20000),
            "version": ub.version(),
        }


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(largest=1, smallest=1)
@example(largest=4096, smallest=4096)
@given(
    largest=st.integers(min_value=1, max_value=12000),
    smallest=st.integers(min_value=1, max_value=12000),
)
def test_console_parsers_read_the_same_through_any_pieces(board, largest, smallest):
    dev, plain = board
    dev.uart.faults = LinkFaults(chunk=max(largest, smallest), chunk_min=min(largest, smallest))
    try:
        got = _console_facts(dev)
    finally:
        dev.uart.faults = LinkFaults()
    assert got == plain
    assert plain["md"] == dev.flash.read(0, 0x600)
