"""Console parsers against any split of the same byte stream into reads (issue 19).

The emulator-backed tests (tests/test_chunking_*.py) cut real device output into
pieces on the link. Here the pieces are drawn by hypothesis directly, many more of
them: the kernel log as the Hi3511 driver's ``bootm`` loop reads it (the transport's
matcher with the driver's patterns, then ``note_kernel_line``), and the XR872 BROM
frame reader over a pty whose ROM side writes its answers in arbitrary pieces, with
stray bytes before a frame.
"""

from __future__ import annotations

import random
import re
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.serial import VirtualUart
from recovery.hi3511.driver import PROMPT_RE
from recovery.hi3511.parsers import BootReport, note_kernel_line
from recovery.transport import ConsoleMatcher, Port
from recovery.xr872 import brom

# the kernel lines of the seed (000: skip-erase) and of a normal boot
SEED_LINES = [
    "jffs2_scan_dirent_node(): Node CRC failed on node at 0x0000000c: Read 0x41c0224d, "
    "calculated 0x97e7f5c5",
    "jffs2_scan_inode_node(): CRC failed on node at 0x00000038: Read 0x5a000025, "
    "calculated 0x1b754c4d",
    "jffs2_scan_eraseblock(): Node at 0x000006e0 {0x1985, 0xe002, 0x00000600) has invalid "
    "CRC 0x44005140 (calculated 0x880c48c5)",
    "Empty flash at 0x00cfff9c ends at 0x00d00000",
    "JFFS2 notice: (1) check_node_data: wrong data CRC in data node at 0x00000a10",
    "Linux version 2.6.14 (root@localhost) (gcc version 3.4.3)",
    "Kernel command line: mem=72M console=ttyAMA0,115200 root=1f01 rootfstype=jffs2",
    "x" * 5000,
    "",
]
BOOTM_PATTERNS = [re.compile(p) for p in (PROMPT_RE, r"[^\r\n]*\r?\n")]


def _pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


def _report_from_stream(pieces: list[str]) -> BootReport:
    """What the driver's bootm loop makes of the log, read in ``pieces``."""
    rep = BootReport()
    con = ConsoleMatcher()
    feed = iter(pieces)
    while True:
        con.start(BOOTM_PATTERNS)
        while (idx := con.search(BOOTM_PATTERNS)) is None:
            con.feed(next(feed))
        if idx == 0:
            return rep
        rep.kernel_lines += 1
        note_kernel_line(rep, con.match.group(0).strip())


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.sampled_from(SEED_LINES), min_size=1, max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=400_000), max_size=80),
)
def test_the_kernel_log_reads_the_same_whatever_the_reads(lines, cuts):
    text = "".join(f"{line}\r\n" for line in lines) + "VFS: Mounted root (jffs2 filesystem).\r\n"
    text += "hilinux # "  # stands for the end of the stream here
    whole = BootReport()
    for line in text.split("\r\n")[:-1]:
        whole.kernel_lines += 1
        note_kernel_line(whole, line.strip())
    assert _report_from_stream(_pieces(text, cuts)) == whole
    assert _report_from_stream([text]) == whole


def _rom(uart: VirtualUart, answers: list[bytes], cuts: list[int]) -> None:
    """A ROM that answers each request frame with the next of ``answers``, written in
    the pieces ``cuts`` gives."""
    for answer in answers:
        head = uart.read_exact(brom.HEADER_SIZE, timeout=5)
        n = brom.Header.unpack(head).payload_len
        uart.read_exact(n, timeout=5)
        for piece in _pieces_b(answer, cuts):
            uart.write(piece)


def _pieces_b(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@settings(max_examples=60, deadline=None)
@given(
    seeds=st.lists(st.integers(min_value=0, max_value=2**32), min_size=1, max_size=3),
    stray=st.sampled_from([b"", b"OK", b"\x00", b"O"]),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
)
def test_the_brom_frame_reader_reads_any_split(seeds, stray, cuts):
    """Answers to FLASH_READ (4 KiB each), the first with stray bytes before the frame,
    cut anywhere (inside the magic, the header, the payload): the same bytes come out."""
    blocks = [random.Random(s).randbytes(4096) for s in seeds]
    ack = brom.Flag.ACK | brom.Flag.CHECK
    answers = [(stray if i == 0 else b"") + brom.frame(b, ack) for i, b in enumerate(blocks)]
    with VirtualUart() as uart, Port(uart.path) as port:
        rom = threading.Thread(target=_rom, args=(uart, answers, cuts), daemon=True)
        rom.start()
        client = brom.BromClient(port, timeout=5, retries=0)
        got = [client.flash_read(4096 * i, 4096) for i in range(len(blocks))]
        rom.join(5)
    assert got == blocks
    assert client.stats.retries == 0
