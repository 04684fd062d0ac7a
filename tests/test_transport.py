"""The engine's transport over a real pty (the emulator's virtual UART on the other end)."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.serial import VirtualUart
from harness.lab.serve import PortServer
from recovery.transport import ConsoleMatcher, Port, Timeout, TransportError


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


def test_device_gone_while_writing_is_the_same_clear_error():
    """The adapter pulled while the engine types (EIO on write) reads as a read's does:
    a busy fresh-clone run met it as 'cannot write to ...: [Errno 5]'."""
    uart = VirtualUart()
    port = Port(uart.path)
    uart.close()
    with pytest.raises(TransportError, match="lost the serial port .*cannot write") as ei:
        for _ in range(50):
            port.write(b"printenv\r")
    assert "unplugged" in str(ei.value)
    port.close()


# -- matching never skips text --------------------------------------------------------

LINE = r"[^\r\n]*\r?\n"
PROMPT = r"(?:\A|\n)hilinux # "
# the pattern sets the board drivers wait on (recovery/*/driver.py)
DRIVER_SETS = [
    [PROMPT, LINE, r"Kernel panic - not syncing:[^\r\n]*"],
    [r"\.+", PROMPT],
    [
        r"(?<!hilinux )#+",
        r"(?<![A-Za-z])T ",
        r"Bytes transferred = (\d+) \(([0-9a-fA-F]+) hex\)",
        PROMPT,
    ],
    [
        r"Hit any key to stop autoboot",
        PROMPT,
        r"(?:\A|\n)(?:\[[^\]\r\n]*\] ?)?[#$] ",
        r"VFS: |login: ",
    ],
    [r"[\r\n]bootloader > ", r"W90P745 Boot Loader"],
    [r"(?i)login: ?$", r"[#$>] $"],
    [r"(?:\A|\n)[^\r\n]*# "],
    # ties: the same start for a line and a bounded pattern, in both orders
    [LINE, r"hilinux # ", r"# "],
    [r"# ", r"(?:\A|\n)[^\r\n]*# ", r"T \r?\n"],
]


def test_a_line_longer_than_a_read_window_is_matched_whole():
    """The issue-19 bug: a line pattern over a read larger than pexpect's 4096-character
    window matched from the middle of the line and swallowed its start as ``before``."""
    long = "jffs2_scan_eraseblock(): " + "x" * 9000 + " at 0x00000480"
    with VirtualUart() as uart, Port(uart.path) as port:
        uart.write(f"{long}\r\nnext line\r\nhilinux # ".encode())
        assert port.expect([PROMPT, LINE], timeout=5) == 1
        assert port.before == ""
        assert port.match.group(0) == long + "\r\n"
        assert port.expect([PROMPT, LINE], timeout=5) == 1
        assert port.match.group(0) == "next line\r\n"
        assert port.expect([PROMPT, LINE], timeout=5) == 0


def _run(matcher, pieces: list[str], sets: list[list[str]]) -> list[tuple[int, str, str]]:
    """Feed ``pieces`` one at a time; expect each pattern set in turn, as a driver does.
    Checks that the matches and befores, in order, plus what is pending, are exactly
    the text fed so far."""
    out: list[tuple[int, str, str]] = []
    fed = ""
    feed = iter(pieces)
    for patterns in sets:
        compiled = [re.compile(p) for p in patterns]
        matcher.start(compiled)
        while (idx := matcher.search(compiled)) is None:
            piece = next(feed, None)
            if piece is None:
                break
            matcher.feed(piece)
            fed += piece
        if idx is None:
            break
        out.append((idx, matcher.before, matcher.match.group(0)))
    assert "".join(b + m for _, b, m in out) + matcher.buffer == fed
    return out


class _FullSearch(ConsoleMatcher):
    """The reference: every pattern searched through the whole pending text every time;
    the earliest start wins, on a tie the pattern listed first."""

    def search(self, patterns):
        found = [(m.start(), i, m) for i, p in enumerate(patterns) if (m := p.search(self.buffer))]
        if not found:
            return None
        _, i, m = min(found, key=lambda f: f[:2])
        self.before, self.match, self.buffer = self.buffer[: m.start()], m, self.buffer[m.end() :]
        return i


_console_text = st.lists(
    st.sampled_from(
        [
            "hilinux # ",
            "\r\n",
            "\n",
            "#####",
            "...",
            "T ",
            "Bytes transferred = 4096 (1000 hex)",
            "Kernel panic - not syncing: VFS",
            "login: ",
            "[root@cam /]# ",
            "\r\nbootloader > ",
            "jffs2_scan_eraseblock(): Node CRC failed",
            "x" * 300,
            "a",
            " ",
        ]
    ),
    max_size=40,
).map("".join)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@settings(max_examples=300, deadline=None)
@given(
    text=_console_text,
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=30),
    sets=st.lists(st.sampled_from(DRIVER_SETS), min_size=1, max_size=12),
)
def test_resumed_search_finds_what_a_full_search_finds(text, cuts, sets):
    """Starting each search where a match can still begin changes no result, and the
    matches and befores together are exactly the text received, in order."""
    pieces = _split(text, cuts)
    assert _run(ConsoleMatcher(), pieces, sets) == _run(_FullSearch(), pieces, sets)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab #:.\t", max_size=200), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=10000), max_size=40),
)
def test_line_matching_does_not_depend_on_the_read_sizes(lines, cuts):
    text = "".join(line + "\r\n" for line in lines) + "hilinux # "
    sets = [[PROMPT, LINE]] * (len(lines) + 1)
    got = _run(ConsoleMatcher(), _split(text, cuts), sets)
    assert got == [(1, "", line + "\r\n") for line in lines] + [(0, "", "hilinux # ")]


def test_a_long_wait_resumes_near_the_end():
    """Waiting for a prompt through a long dump does not search the dump again on every
    read: the next search starts within one pattern's length of the end (or at the last
    line feed), which keeps the work linear."""
    con = ConsoleMatcher()
    prompt = [re.compile(PROMPT)]
    con.start(prompt)
    row = "34100000: 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff    ..3DUfw.........\r\n"
    for _ in range(2000):
        con.feed(row)
        assert con.search(prompt) is None
        assert con._resume[0] == len(con.buffer) - 1  # the last line feed
    con.feed("hilinux # ")
    assert con.search(prompt) == 0
    assert con.before == row * 1999 + row[:-1]


# -- reads over every kind of port ------------------------------------------------------
@contextlib.contextmanager
def _port_on(uart: VirtualUart, scheme: str | None) -> Iterator[Port]:
    """The engine's port on ``uart``: its pty, or the pty served as ``scheme://`` by the
    harness's serial server (what ``camrescue emulate --serve`` runs)."""
    if scheme is None:
        with Port(uart.path) as port:
            yield port
        return
    with PortServer(uart.path, f"{scheme}://127.0.0.1:0") as srv, Port(srv.url) as port:
        deadline = time.monotonic() + 10
        while srv.client is None:  # the server drops what the device sent before
            assert time.monotonic() < deadline, "the server never took the client"
            time.sleep(0.01)
        yield port


@pytest.mark.parametrize("scheme", [None, "socket", "rfc2217"])
def test_reads_take_what_has_arrived_and_lose_nothing_on_every_kind_of_port(scheme):
    """80 KB of lines read with the drivers' line and prompt patterns: every byte ends in
    exactly one match or ``before``, and a read takes what has arrived, not one byte (over
    ``socket://`` pyserial's ``in_waiting`` is 1 whatever is there: read by it, this dump
    took one read per byte)."""
    text = "".join(f"{i:05d} {'x' * (i % 70)}\r\n" for i in range(2000)) + "hilinux # "
    with VirtualUart() as uart, _port_on(uart, scheme) as port:
        # from another thread, as a device prints: a pty holds a few KiB until read
        writer = threading.Thread(target=uart.write, args=(text.encode(),), daemon=True)
        writer.start()
        got = []
        while True:
            i = port.expect([PROMPT, LINE], timeout=20)
            got.append(port.before + port.match.group(0))
            if i == 0:
                break
        reads = [e for e in port.log if e.direction == "rx"]
        writer.join(10)
    assert "".join(got) == text
    assert sum(len(e.data) for e in reads) == len(text)
    assert len(reads) <= len(text) // 16, f"{len(reads)} reads for {len(text)} bytes"
