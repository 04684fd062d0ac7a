"""Scenario results and the HTML report of a run.

The result of one scenario (:class:`ScenarioResult`) is plain data that turns
into JSON and back, so pytest-xdist workers can hand it to the controller.
:func:`render_html` makes one self-contained page (inline CSS, no scripts, no
external files) for a whole run: a summary table, then per scenario the failed
expectations with expected vs actual, the steps with their timings and output,
each device's flash map and transcript, and where the artifacts were kept.

The flash map has one cell per sector, coloured by what the sector holds at the
end of the scenario (:func:`flash_map`):

* ``L`` red: bits that could not be set since its last erase
  (``flash.stats.lost_bits``: something was programmed over data that was not
  erased, as in seed 000's CRC errors);
* ``E`` light grey: erased (all 0xFF);
* ``X`` green: equal to the expected image (the starting flash overlaid with the
  ranges the scenario's flash checks name);
* ``D`` orange: otherwise different.

A cell whose bytes differ from the expected image also gets a dark outline, so
an erased sector where data was expected stands out.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_NAMES = {
    "L": "holds bits that could not be set",
    "E": "erased",
    "X": "equal to the expected image",
    "D": "different from the expected image",
}


@dataclass
class FailureRecord:
    what: str
    expected: str
    actual: str
    step: int | None = None
    line: int = 0


@dataclass
class StepRecord:
    index: int
    kind: str
    summary: str
    line: int
    status: str  # passed | failed | not run | running
    duration: float = 0.0
    detail: str = ""
    command: str = ""
    exit: int | None = None
    stdout: str = ""
    stderr: str = ""
    json: Any = None


@dataclass
class FlashMap:
    sectors: list[tuple[int, int]]  # (start, size)
    states: str  # one letter per sector, see STATE_NAMES
    lost: list[int]
    matches: list[bool]

    def counts(self) -> dict[str, int]:
        return {k: self.states.count(k) for k in STATE_NAMES}


@dataclass
class DeviceRecord:
    name: str
    board: str
    port: str = ""
    tftp_port: int = 0
    transcript: str = ""
    transcript_truncated: bool = False
    tail: str = ""
    flash_map: FlashMap | None = None


@dataclass
class ScenarioResult:
    name: str
    board: str
    file: str = ""
    line: int = 1
    description: str = ""
    markers: list[str] = field(default_factory=list)
    outcome: str = ""  # passed | failed | skipped | error
    reason: str = ""
    duration: float = 0.0
    setup_time: float = 0.0
    check_time: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    devices: list[DeviceRecord] = field(default_factory=list)
    artifacts: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScenarioResult:
        d = dict(d)
        d["steps"] = [StepRecord(**s) for s in d.get("steps", [])]
        d["failures"] = [FailureRecord(**f) for f in d.get("failures", [])]
        devs = []
        for dv in d.get("devices", []):
            dv = dict(dv)
            fm = dv.get("flash_map")
            if fm is not None:
                fm = dict(fm)
                fm["sectors"] = [tuple(x) for x in fm["sectors"]]
                dv["flash_map"] = FlashMap(**fm)
            devs.append(DeviceRecord(**dv))
        d["devices"] = devs
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> ScenarioResult:
        return cls.from_dict(json.loads(text))

    def failure_text(self, tail: int = 1500) -> str:
        """What a person reads in pytest's output when the scenario failed."""
        lines = [f"scenario {self.name} ({self.file}:{self.line}) {self.outcome}"]
        if self.reason and self.outcome == "error":
            lines.append(f"  {self.reason}")
        for f in self.failures:
            if f.step is not None and f.step < len(self.steps):
                st = self.steps[f.step]
                lines.append(f"  at step {f.step + 1} (line {st.line}): {st.summary}")
            elif f.line:
                lines.append(f"  expectation at line {f.line}:")
            lines.append(f"  FAILED {f.what}")
            if f.expected:
                lines.append("    expected: " + _indent(f.expected, 14))
            lines.append("    actual:   " + _indent(f.actual, 14))
        for d in self.devices:
            if d.tail:
                lines.append(f"--- last output of {d.name} ({d.board}) ---")
                lines.append(d.tail[-tail:].replace("\r\n", "\n").rstrip())
        if self.artifacts:
            lines.append(
                f"artifacts kept in {self.artifacts} "
                "(<device>/transcript.txt, flash.bin, expected.bin, initial.bin; result.json)"
            )
        return "\n".join(lines)


def _indent(text: str, n: int) -> str:
    return text.replace("\n", "\n" + " " * n)


def flash_map(
    have: bytes, want: bytes, lost: list[int], sectors: list[tuple[int, int]]
) -> FlashMap:
    """Classify each sector of ``have`` (see the module docstring)."""
    states = []
    matches = []
    for i, (start, size) in enumerate(sectors):
        cells = have[start : start + size]
        same = cells == want[start : start + size]
        matches.append(same)
        if i < len(lost) and lost[i]:
            states.append("L")
        elif cells.count(0xFF) == len(cells):
            states.append("E")
        elif same:
            states.append("X")
        else:
            states.append("D")
    return FlashMap(list(sectors), "".join(states), list(lost[: len(sectors)]), matches)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 6px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
.passed{color:#1b7f2a;font-weight:600}.failed,.error{color:#c0392b;font-weight:600}
.skipped{color:#8a6d00;font-weight:600}.notrun{color:#888}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:12px}
.b-passed{background:#2e8b3d}.b-failed,.b-error{background:#c0392b}.b-skipped{background:#b38f00}
td pre{min-width:10em;margin:0}
pre{background:#f7f7f7;border:1px solid #ddd;padding:8px;overflow:auto;max-height:480px;
white-space:pre-wrap;word-break:break-all;font:12px/1.35 ui-monospace,monospace}
.fail{background:#fff3f2}
.map{display:grid;grid-template-columns:90px repeat(var(--cols),18px);gap:2px;align-items:center}
.map .addr{font:11px ui-monospace,monospace;color:#555}
.cell{width:18px;height:18px;border-radius:2px;box-sizing:border-box}
.s-E{background:#e6e6e6}.s-X{background:#3fa34d}.s-L{background:#d62828}.s-D{background:#f4a261}
.cell.mismatch{border:2px solid #222}
.legend span.cell{display:inline-block;vertical-align:middle;margin:0 4px 0 12px}
.bar{display:inline-block;height:10px;background:#6b8fd6;vertical-align:middle}
.t-dev{color:#222}.t-host{color:#1a5fb4}.t-note{color:#888;font-style:italic}
details>summary{cursor:pointer}
.meta{color:#555}
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _fmt_time(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _flash_html(fm: FlashMap, cols: int = 32) -> str:
    n = len(fm.sectors)
    if n <= 64:
        cols = 16
    rows = []
    for r in range(0, n, cols):
        start = fm.sectors[r][0]
        cells = [f'<div class="addr">{start:#010x}</div>']
        for i in range(r, min(n, r + cols)):
            s0, size = fm.sectors[i]
            st = fm.states[i]
            sz = f"{size // 1024} KiB" if size >= 1024 else f"{size} bytes"
            title = f"sector {i} at {s0:#x} ({sz}): {STATE_NAMES[st]}"
            if fm.lost[i]:
                title += f"; {fm.lost[i]} bits could not be set"
            cls = f"cell s-{st}"
            if not fm.matches[i]:
                cls += " mismatch"
                if st != "D":
                    title += "; differs from the expected image"
            cells.append(f'<div class="{cls}" title="{_e(title)}"></div>')
        rows.append("".join(cells))
    counts = fm.counts()
    legend = "".join(
        f'<span class="cell s-{k}"></span>{_e(v)} ({counts[k]})' for k, v in STATE_NAMES.items()
    )
    legend += '<span class="cell s-E mismatch"></span>outline: differs from the expected image'
    return (
        f'<div class="legend">{legend}</div>'
        f'<div class="map" style="--cols:{min(cols, n)}">{"".join(rows)}</div>'
    )


def _transcript_html(text: str) -> str:
    out = []
    for line in text.splitlines():
        parts = line.split(None, 2)
        d = parts[1] if len(parts) > 1 else ""
        cls = {"dev": "t-dev", "host": "t-host"}.get(d, "t-note")
        out.append(f'<span class="{cls}">{_e(line)}</span>')
    return "\n".join(out)


def _steps_html(res: ScenarioResult) -> str:
    total = max(res.duration, 1e-6)
    rows = [
        "<table><tr><th>#</th><th>line</th><th>step</th><th>result</th><th>time</th></tr>",
        f'<tr><td></td><td></td><td class="meta">set-up (build images, start devices)</td>'
        f"<td></td><td>{_fmt_time(res.setup_time)}</td></tr>",
    ]
    for s in res.steps:
        status_cls = s.status.replace(" ", "")
        width = int(120 * s.duration / total)
        detail = []
        if s.command:
            detail.append(f"<b>command</b><pre>{_e(s.command)}</pre>")
        if s.exit is not None:
            detail.append(f"<b>exit</b> {s.exit}")
        if s.json is not None:
            detail.append(f"<b>JSON result</b><pre>{_e(json.dumps(s.json, indent=1))}</pre>")
        if s.stderr:
            detail.append(f"<b>stderr</b><pre>{_e(s.stderr)}</pre>")
        if s.stdout and s.json is None:
            detail.append(f"<b>stdout</b><pre>{_e(s.stdout)}</pre>")
        if s.detail:
            label = "armed" if s.kind == "fault" else "console"
            detail.append(f"<b>{label}</b><pre>{_e(s.detail)}</pre>")
        body = _e(s.summary)
        if detail:
            body = f"<details><summary>{body}</summary>{''.join(detail)}</details>"
        rows.append(
            f'<tr class="{"fail" if s.status == "failed" else ""}"><td>{s.index + 1}</td>'
            f"<td>{s.line}</td><td>{body}</td>"
            f'<td class="{status_cls}">{_e(s.status)}</td>'
            f"<td>{_fmt_time(s.duration) if s.status != 'not run' else ''} "
            f'<span class="bar" style="width:{width}px"></span></td></tr>'
        )
    if res.check_time:
        rows.append(
            '<tr><td></td><td></td><td class="meta">final expectations</td><td></td>'
            f"<td>{_fmt_time(res.check_time)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _failures_html(res: ScenarioResult) -> str:
    if not res.failures:
        return ""
    rows = ["<table><tr><th>where</th><th>what failed</th><th>expected</th><th>actual</th></tr>"]
    for f in res.failures:
        where = f"step {f.step + 1}" if f.step is not None else ""
        if f.line:
            where += f" (line {f.line})" if where else f"line {f.line}"
        rows.append(
            f'<tr class="fail"><td>{_e(where)}</td><td>{_e(f.what)}</td>'
            f"<td><pre>{_e(f.expected)}</pre></td><td><pre>{_e(f.actual)}</pre></td></tr>"
        )
    rows.append("</table>")
    return "<h3>Failed expectations</h3>" + "".join(rows)


def _scenario_html(res: ScenarioResult) -> str:
    parts = [
        f'<h2 id="{_e(_anchor(res))}">{_e(res.name)} '
        f'<span class="badge b-{_e(res.outcome)}">{_e(res.outcome)}</span></h2>',
        f'<div class="meta">{_e(res.board)} · {_e(res.file)}:{res.line} · '
        f"{_fmt_time(res.duration)}"
        + (f" · markers: {_e(', '.join(res.markers))}" if res.markers else "")
        + "</div>",
    ]
    if res.description:
        parts.append(f"<p>{_e(res.description)}</p>")
    if res.reason:
        parts.append(
            f"<p><b>{'Skipped' if res.outcome == 'skipped' else 'Reason'}:</b> {_e(res.reason)}</p>"
        )
    parts.append(_failures_html(res))
    if res.artifacts:
        parts.append(f"<p><b>Artifacts kept in</b> <code>{_e(res.artifacts)}</code></p>")
    if res.steps:
        parts.append("<h3>Steps</h3>" + _steps_html(res))
    for d in res.devices:
        parts.append(
            f"<h3>Device {_e(d.name)} ({_e(d.board)})</h3>"
            f'<div class="meta">port {_e(d.port)}'
            + (f" · TFTP 127.0.0.1:{d.tftp_port}" if d.tftp_port else "")
            + "</div>"
        )
        if d.flash_map is not None:
            parts.append("<h4>Flash map</h4>" + _flash_html(d.flash_map))
        trunc = (
            " (the start was cut; the artifacts hold all of it)" if d.transcript_truncated else ""
        )
        parts.append(
            f"<details><summary>Transcript{_e(trunc)}</summary>"
            f"<pre>{_transcript_html(d.transcript)}</pre></details>"
        )
    return "<section>" + "".join(parts) + "</section>"


def _anchor(res: ScenarioResult) -> str:
    return "sc-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in res.name)


def render_html(results: list[ScenarioResult], title: str = "camrescue scenarios") -> str:
    """One self-contained HTML page for a run."""
    results = sorted(results, key=lambda r: ({"failed": 0, "error": 0}.get(r.outcome, 1), r.name))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    total = sum(r.duration for r in results)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no scenarios"
    rows = ["<table><tr><th>scenario</th><th>board</th><th>result</th><th>time</th></tr>"]
    for r in results:
        rows.append(
            f'<tr><td><a href="#{_e(_anchor(r))}">{_e(r.name)}</a></td><td>{_e(r.board)}</td>'
            f'<td class="{_e(r.outcome)}">{_e(r.outcome)}</td><td>{_fmt_time(r.duration)}</td></tr>'
        )
    rows.append("</table>")
    body = "".join(_scenario_html(r) for r in results)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><div class="meta">{_e(stamp)} · {_e(summary)} · '
        f"scenario time {_fmt_time(total)}</div>" + "".join(rows) + body + "</body></html>\n"
    )


def write_html(
    results: list[ScenarioResult], path: str | Path, title: str = "camrescue scenarios"
) -> Path:
    """Write the report atomically; returns its path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(render_html(results, title), encoding="utf-8")
    tmp.replace(p)
    return p


def write_json(results: list[ScenarioResult], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps([r.to_dict() for r in results]), encoding="utf-8")
    tmp.replace(p)
    return p
