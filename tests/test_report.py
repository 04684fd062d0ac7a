"""The run report: flash-map classification, result (de)serialisation, and the
HTML page, checked by parsing it and by rendering it in headless Chromium."""

from __future__ import annotations

import html.parser
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scenarios.report import (
    DeviceRecord,
    FailureRecord,
    ScenarioResult,
    StepRecord,
    flash_map,
    render_html,
    write_html,
    write_json,
)

SECTORS = [(i * 16, 16) for i in range(6)]


def test_flash_map_classifies_each_sector():
    want = bytes(range(96))
    have = bytearray(want)
    have[0:16] = b"\xff" * 16  # erased (where data was expected)
    have[16:32] = b"\x00" * 16  # different
    have[48:64] = b"\xff" * 16  # erased
    want = bytearray(want)
    want[48:64] = b"\xff" * 16  # ... and expected so
    lost = [0, 0, 0, 0, 3, 0]  # sector 4 had bits that could not be set
    fm = flash_map(bytes(have), bytes(want), lost, SECTORS)
    assert fm.states == "EDXELX"
    assert fm.matches == [False, False, True, True, True, True]
    assert fm.counts() == {"L": 1, "E": 2, "X": 2, "D": 1}


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=96, max_size=96), st.binary(min_size=96, max_size=96))
def test_flash_map_states_follow_their_definition(have, want):
    fm = flash_map(have, want, [0] * 6, SECTORS)
    for i, (s, n) in enumerate(SECTORS):
        cells = have[s : s + n]
        if cells == b"\xff" * n:
            assert fm.states[i] == "E"
        elif cells == want[s : s + n]:
            assert fm.states[i] == "X"
        else:
            assert fm.states[i] == "D"


def sample_result(outcome: str = "failed") -> ScenarioResult:
    fm = flash_map(b"\xff" * 32 + bytes(64), b"\xff" * 32 + bytes(64), [0, 0, 0, 0, 7, 0], SECTORS)
    return ScenarioResult(
        name="crossgrade-<wrong>",
        board="hi3511",
        file="scenarios/x.yaml",
        line=1,
        description="done wrong & on purpose",
        markers=["crossgrade"],
        outcome=outcome,
        duration=1.5,
        setup_time=0.25,
        steps=[
            StepRecord(
                0,
                "engine",
                "camrescue hi3511 flash",
                9,
                "passed",
                1.0,
                command="camrescue hi3511 flash --json",
                exit=0,
                json={"ok": True},
            ),
            StepRecord(
                1, "console", "send 'bootm'", 12, "failed", 0.2, detail="<script>alert(1)</script>"
            ),
            StepRecord(2, "power_cycle", "power cycle", 14, "not run"),
        ],
        failures=[
            FailureRecord(
                "boot log contains 'CRC failed'",
                "no 'CRC failed'",
                "jffs2_scan_inode_node(): CRC failed on node at 0x00000038",
                step=1,
                line=12,
            )
        ],
        devices=[
            DeviceRecord(
                "hi3511",
                "hi3511",
                "/dev/pts/9",
                6969,
                "  0.000001  dev U-Boot <1.1.4>\\r\\n\n  0.1 host \\r\n",
                False,
                "U-Boot 1.1.4",
                fm,
            )
        ],
        artifacts="/tmp/kept/here",
    )


def test_result_round_trips_through_json():
    r = sample_result()
    back = ScenarioResult.from_json(r.to_json())
    assert back == r
    assert back.devices[0].flash_map.states == r.devices[0].flash_map.states


def test_failure_text_has_expected_actual_tail_and_artifacts():
    text = sample_result().failure_text()
    assert "at step 2 (line 12): send 'bootm'" in text
    assert "expected: no 'CRC failed'" in text
    assert "actual:   jffs2_scan_inode_node(): CRC failed on node at 0x00000038" in text
    assert "U-Boot 1.1.4" in text and "artifacts kept in /tmp/kept/here" in text


class _Checker(html.parser.HTMLParser):
    """Counts elements and checks that every non-void tag is closed in order."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.errors: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if "cell" in (a.get("class") or "").split() and "title" in a:
            self.cells.append(a)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_html_is_well_formed_escaped_and_self_contained():
    page = render_html([sample_result(), sample_result("passed")])
    c = _Checker()
    c.feed(page)
    assert c.errors == [] and c.stack == []
    assert c.scripts == 0  # the transcript's "<script>" is text, not a tag
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "crossgrade-&lt;wrong&gt;" in page
    assert "src=" not in page and 'href="http' not in page  # nothing external
    # one cell per sector per device, with what it holds in its title
    assert len(c.cells) == 2 * len(SECTORS)
    titles = [cell["title"] for cell in c.cells[: len(SECTORS)]]
    assert titles[0] == "sector 0 at 0x0 (16 bytes): erased"
    assert "7 bits could not be set" in titles[4]
    assert "1 failed" in page and "1 passed" in page


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(x for j, x in enumerate(line) if j % 4 != 3))
        prev = line
    return w, h, rows


CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)


@pytest.mark.interop
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    page = write_html([sample_result(), sample_result("passed")], tmp_path / "report.html")
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "crossgrade-&lt;wrong&gt;" in dom.stdout and 'class="cell s-L' in dom.stdout
    shot = tmp_path / "shot.png"
    r = subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=900,1400", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    w, h, rows = _png_pixels(shot.read_bytes())
    assert (w, h) == (900, 1400)
    pixels = b"".join(rows)
    colours = {pixels[i : i + 3] for i in range(0, len(pixels), 3)}
    # the flash map's colours were painted: lost bits (red), erased (grey), expected (green)
    for hex_colour in ("d62828", "e6e6e6", "3fa34d"):
        assert bytes.fromhex(hex_colour) in colours, hex_colour


@pytest.mark.parametrize("writer", [write_html, write_json], ids=["html", "json"])
def test_reports_are_replaced_atomically(tmp_path: Path, writer):
    """A reader of the old report (a browser, a CI step) keeps reading the whole old report
    while a new one is written: the new one appears under the name in one step (a new
    file renamed over the old), never as the old file truncated and rewritten."""
    path = tmp_path / "r" / ("report.html" if writer is write_html else "results.json")
    old_results = [ScenarioResult(name="old-run", board="hi3511", file="a.yaml", outcome="passed")]
    writer(old_results, path)
    old = path.read_bytes()
    with open(path, "rb") as reader:  # opened before the rewrite
        new_results = [
            ScenarioResult(name=f"new-run-{i}", board="hi3511", file="a.yaml", outcome="failed")
            for i in range(50)
        ]
        writer(new_results, path)
        assert reader.read() == old  # the old report, whole
    new = path.read_text()
    assert "new-run-49" in new and "old-run" not in new
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
