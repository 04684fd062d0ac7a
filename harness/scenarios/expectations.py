"""Checking what a scenario expects: engine JSON and text, and the final ``expect:``.

:func:`check_expectations` checks every flash range (equal to an image, erased,
unchanged, lost bits, sha256), the boot log, typed input and transcript, and the
files in the work directory, and returns one
:class:`~harness.scenarios.report.FailureRecord` per failed check with expected and
actual. :func:`json_failures` and :func:`text_failures` serve the engine steps
too; :func:`expected_flash` is the image the report's flash map compares with.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from harness.boards import Unavailable
from harness.lab.devices import LabDevice
from harness.scenarios.context import RunContext
from harness.scenarios.excerpts import clip, line_at, tail
from harness.scenarios.jsonpath import is_path, parse_path, walk
from harness.scenarios.model import FileCheck, FlashCheck, Matcher, Range, TextCheck
from harness.scenarios.report import FailureRecord


def json_failures(expected: dict[str, Any], actual: Any, where: str) -> list[FailureRecord]:
    """``actual`` against the expected JSON (nested dicts whose leaves are Matchers).
    A key with ``.`` or ``[`` is a path (``ranges[0].crc32``, :mod:`harness.scenarios.jsonpath`)."""
    out = []
    for k, want in expected.items():
        w = f"{where}.{k}"
        missing_why = ""
        if is_path(k):
            try:
                present, got, missing_why = walk(actual, parse_path(k))
            except ValueError as e:
                out.append(FailureRecord(f"engine result {w}: not a path: {e}", "", ""))
                continue
        else:
            present = isinstance(actual, dict) and k in actual
            got = actual.get(k) if present else None
            if not present:
                missing_why = (
                    f"no key {k!r} (its keys: {', '.join(sorted(map(str, actual))) or 'none'})"
                    if isinstance(actual, dict)
                    else f"{where} is not an object"
                )
        if isinstance(want, dict):
            if not present or not isinstance(got, dict):
                out.append(
                    FailureRecord(
                        f"engine result {w}",
                        "an object",
                        f"missing: {missing_why}" if not present else clip(got),
                    )
                )
            else:
                out += json_failures(want, got, w)
        elif isinstance(want, Matcher):
            why = want.check(got, present)
            if not why:
                continue
            if not present:
                out.append(
                    FailureRecord(f"engine result {w} is missing", want.describe(), missing_why)
                )
            elif "eq" in want.ops and _diffable(want.ops["eq"], got):
                out.append(
                    FailureRecord(
                        f"engine result {w} differs from what is expected",
                        clip(want.ops["eq"], 100),
                        value_diff(want.ops["eq"], got),
                    )
                )
            else:
                out.append(
                    FailureRecord(f"engine result {w} {why}", want.describe(), clip(got, 800))
                )
    return out


def _diffable(want: Any, got: Any) -> bool:
    if isinstance(want, dict | list) and isinstance(got, dict | list):
        return True
    long = 60
    if isinstance(want, str) and isinstance(got, str):
        return max(len(want), len(got)) > long
    if isinstance(want, bytes | bytearray) and isinstance(got, bytes | bytearray):
        return max(len(want), len(got)) > long // 3
    return False


DIFF_LINES = 20


def value_diff(want: Any, got: Any) -> str:
    """Only what differs: the keys or elements of a dict or list (nested ones by
    path), or the first difference of a long string or bytes with its context."""
    lines: list[str] = []
    _diff_into(lines, "", want, got)
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"... and {len(lines) - DIFF_LINES} more differences"]
    return "\n".join(lines) or "(equal)"


def _diff_into(lines: list[str], path: str, want: Any, got: Any) -> None:
    at = path or "the value"
    if isinstance(want, dict) and isinstance(got, dict):
        for k in want:
            p = f"{path}.{k}" if path else str(k)
            if k not in got:
                lines.append(f"{p}: missing (expected {clip(want[k], 80)})")
            else:
                _diff_into(lines, p, want[k], got[k])
        for k in got:
            if k not in want:
                p = f"{path}.{k}" if path else str(k)
                lines.append(f"{p}: not expected (it is {clip(got[k], 80)})")
        return
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            lines.append(f"{at}: {len(got)} elements, expected {len(want)}")
        for i in range(max(len(want), len(got))):
            p = f"{path}[{i}]"
            if i >= len(got):
                lines.append(f"{p}: missing (expected {clip(want[i], 80)})")
            elif i >= len(want):
                lines.append(f"{p}: not expected (it is {clip(got[i], 80)})")
            else:
                _diff_into(lines, p, want[i], got[i])
        return
    if _equal_json(want, got):
        return
    if _diffable(want, got):  # a long text or bytes
        diff = first_difference(want, got)
        lines.append(f"{path}: {diff}" if path else diff)
        return
    lines.append(f"{at}: expected {clip(want, 80)}, got {clip(got, 80)}")


def _equal_json(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def first_difference(want: str | bytes, got: str | bytes, context: int = 20) -> str:
    """Where two texts (or byte strings) first differ, with ``context`` characters
    (bytes) around it, and their lengths when they differ."""
    n = min(len(want), len(got))
    i = next((j for j in range(n) if want[j] != got[j]), n)
    a = max(0, i - context)

    def part(v: Any) -> str:
        piece = v[a : i + context]
        text = piece.hex(" ") if isinstance(piece, bytes | bytearray) else repr(piece)
        return ("..." if a else "") + text + ("..." if i + context < len(v) else "")

    unit = "byte" if isinstance(want, bytes | bytearray) else "character"
    out = f"first difference at {unit} {i}: expected {part(want)}, got {part(got)}"
    if len(want) != len(got):
        out += f" (length {len(got)}, expected {len(want)})"
    return out


def text_failures(tc: TextCheck, text: str, what: str) -> list[FailureRecord]:
    """``text`` against ``tc`` (contains, not_contains, matches, not_matches)."""
    out = []
    for want in tc.contains:
        if want not in text:
            out.append(
                FailureRecord(
                    f"{what} does not contain {want!r}", f"contains {want!r}", tail(text, 1500)
                )
            )
    for bad in tc.not_contains:
        i = text.find(bad)
        if i >= 0:
            out.append(FailureRecord(f"{what} contains {bad!r}", f"no {bad!r}", line_at(text, i)))
    for pat in tc.matches:
        if not re.search(pat, text, re.M):
            out.append(
                FailureRecord(
                    f"{what} does not match /{pat}/", f"a match for /{pat}/", tail(text, 1500)
                )
            )
    for pat in tc.not_matches:
        m = re.search(pat, text, re.M)
        if m:
            out.append(
                FailureRecord(
                    f"{what} matches /{pat}/", f"no match for /{pat}/", line_at(text, m.start())
                )
            )
    return out


def _range_bytes(r: Range, size: int, length_hint: int | None = None) -> tuple[int, int]:
    end = r.end if r.end is not None else min(size, r.start + (length_hint or 0))
    return r.start, end


def check_expectations(ctx: RunContext) -> list[FailureRecord]:
    """Every check of the scenario's final ``expect:``; one record per failure."""
    sc = ctx.scenario
    out: list[FailureRecord] = []
    for fc in sc.expect.flash:
        dev = ctx.lab.devices[fc.device]
        try:
            out += _flash_failures(ctx, fc, dev)
        except (OSError, ValueError, Unavailable) as e:
            out.append(
                FailureRecord(
                    f"flash {fc.range.label}: cannot build the expected image",
                    "",
                    str(e),
                    line=fc.line,
                )
            )
    for attr, label in (
        ("boot_log", "boot log"),
        ("typed", "typed input"),
        ("transcript", "transcript"),
    ):
        for tc in getattr(sc.expect, attr):
            dev = ctx.lab.devices[tc.device]
            if attr == "boot_log":
                text = dev.transcript.device_output().decode("latin-1").replace("\r\n", "\n")
            elif attr == "typed":
                text = b"".join(
                    c.data for c in list(dev.transcript.chunks) if c.direction == "host"
                ).decode("latin-1")
            else:
                text = dev.transcript.text()
            for f in text_failures(tc, text, label):
                f.line = tc.line
                out.append(f)
    for fic in sc.expect.files:
        out += _file_failures(ctx, fic)
    return out


def _flash_failures(ctx: RunContext, fc: FlashCheck, dev: LabDevice) -> list[FailureRecord]:
    flash = dev.flash
    size = flash.size
    label = f"flash {fc.range.label}" + (f" on {fc.device}" if len(ctx.lab.devices) > 1 else "")
    out: list[FailureRecord] = []
    if fc.kind == "equals":
        assert fc.image is not None
        want = ctx.image(fc.image, dev.board, fc.device, fc.range.length(size))
        start = fc.range.start
        limit = fc.range.length(size)
        if len(want) > limit:
            return [
                FailureRecord(
                    f"{label}: the expected image ({len(want)} bytes) is larger than the range",
                    f"at most {limit} bytes",
                    f"{len(want)} bytes",
                    line=fc.line,
                )
            ]
        have = flash.read(start, len(want))
        if have != want:
            out.append(
                _diff_failure(
                    f"{label} equals {fc.image.describe()}", want, have, start, flash, fc.line
                )
            )
        if fc.rest_erased and fc.range.end is not None:
            rest = flash.read(start + len(want), fc.range.end - start - len(want))
            if rest.count(0xFF) != len(rest):
                i = next(i for i, b in enumerate(rest) if b != 0xFF)
                out.append(
                    FailureRecord(
                        f"{label}: the rest of the range is not erased",
                        "0xff after the image",
                        f"0x{rest[i]:02x} at {start + len(want) + i:#x}",
                        line=fc.line,
                    )
                )
        return out
    s, e = _range_bytes(fc.range, size)
    have = flash.read(s, e - s)
    if fc.kind == "erased":
        if have.count(0xFF) != len(have):
            i = next(i for i, b in enumerate(have) if b != 0xFF)
            n = sum(1 for b in have if b != 0xFF)
            out.append(
                FailureRecord(
                    f"{label} is erased",
                    "every byte 0xff",
                    f"{n} bytes are not; the first is 0x{have[i]:02x} at {s + i:#x}",
                    line=fc.line,
                )
            )
    elif fc.kind == "unchanged":
        base = dev.initial_flash[s:e]
        if have != base:
            out.append(_diff_failure(f"{label} is unchanged", base, have, s, flash, fc.line))
    elif fc.kind == "lost_bits":
        lost = flash.stats.lost_bits
        total = sum(lost[i] for i in flash.sectors_in(s, e - s))
        assert fc.lost_bits is not None
        why = fc.lost_bits.check(total)
        if why:
            per = ", ".join(
                f"{flash.sector_start(i):#x}:{lost[i]}"
                for i in flash.sectors_in(s, e - s)
                if lost[i]
            )
            out.append(
                FailureRecord(
                    f"{label}: bits that could not be set {why}",
                    fc.lost_bits.describe(),
                    f"{total}" + (f" (per sector {per})" if per else ""),
                    line=fc.line,
                )
            )
    elif fc.kind == "sha256":
        h = hashlib.sha256(have).hexdigest()
        if h != fc.sha256:
            out.append(FailureRecord(f"{label} sha256", fc.sha256, h, line=fc.line))
    return out


def _diff_failure(
    what: str, want: bytes, have: bytes, base: int, flash: Any, line: int
) -> FailureRecord:
    n_diff = sum(1 for a, b in zip(want, have, strict=False) if a != b)
    i = (
        next(i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b)
        if n_diff
        else min(len(want), len(have))
    )
    sectors = (
        sorted(
            {
                flash.sector_of(base + j)
                for j in range(0, len(want))
                if j < len(have) and want[j] != have[j]
            }
        )
        if n_diff < 200000
        else []
    )
    where = f"first difference at {base + i:#x}: expected {want[i : i + 16].hex(' ')}, found {have[i : i + 16].hex(' ')}"
    secs = f"; {len(sectors)} sectors differ" + (
        f" (from {flash.sector_start(sectors[0]):#x} to {flash.sector_start(sectors[-1]):#x})"
        if sectors
        else ""
    )
    return FailureRecord(
        what, f"{len(want)} bytes equal", f"{n_diff} bytes differ; {where}{secs}", line=line
    )


def _file_failures(ctx: RunContext, fc: FileCheck) -> list[FailureRecord]:
    name = ctx.subst(fc.path, fc.device)
    p = Path(name)
    if not p.is_absolute():
        p = ctx.lab.work / p
    if any(ch in p.name for ch in "*?["):
        matches = sorted(p.parent.glob(p.name))
        if len(matches) == 1:
            p = matches[0]
        elif fc.exists:
            got = (
                ", ".join(x.name for x in sorted(p.parent.glob("*")))
                if p.parent.is_dir()
                else "no directory"
            )
            return [
                FailureRecord(
                    f"file {fc.path}: {len(matches)} files match", "exactly one", got, line=fc.line
                )
            ]
        else:
            return (
                []
                if not matches
                else [
                    FailureRecord(
                        f"file {fc.path} exists",
                        "no such file",
                        ", ".join(x.name for x in matches),
                        line=fc.line,
                    )
                ]
            )
    if not fc.exists:
        return (
            [
                FailureRecord(
                    f"file {fc.path} exists",
                    "no such file",
                    f"{p.stat().st_size} bytes",
                    line=fc.line,
                )
            ]
            if p.exists()
            else []
        )
    if not p.is_file():
        have = (
            ", ".join(sorted(x.name for x in p.parent.iterdir()))
            if p.parent.is_dir()
            else "(no directory)"
        )
        return [
            FailureRecord(
                f"file {fc.path} exists",
                "a file",
                f"missing; the directory holds: {have or 'nothing'}",
                line=fc.line,
            )
        ]
    data = p.read_bytes()
    out = []
    if fc.size is not None:
        why = fc.size.check(len(data))
        if why:
            out.append(
                FailureRecord(
                    f"file {fc.path} size {why}", fc.size.describe(), str(len(data)), line=fc.line
                )
            )
    dev = ctx.lab.devices[fc.device]
    if fc.equals is not None:
        want = ctx.image(fc.equals, ctx.scenario.board, fc.device, len(data))
        if want != data:
            out.append(
                _bytes_failure(f"file {fc.path} equals {fc.equals.describe()}", want, data, fc.line)
            )
    if fc.equals_flash is not None:
        s, e = _range_bytes(fc.equals_flash, dev.flash.size)
        want = dev.flash.read(s, e - s)
        if want != data:
            out.append(
                _bytes_failure(
                    f"file {fc.path} equals flash {fc.equals_flash.label}",
                    want,
                    data,
                    fc.line,
                    base=s,
                )
            )
    if fc.equals_initial_flash is not None:
        s, e = _range_bytes(fc.equals_initial_flash, dev.flash.size)
        want = dev.initial_flash[s:e]
        if want != data:
            out.append(
                _bytes_failure(
                    f"file {fc.path} equals the starting flash {fc.equals_initial_flash.label}",
                    want,
                    data,
                    fc.line,
                    base=s,
                )
            )
    if fc.sha256:
        h = hashlib.sha256(data).hexdigest()
        if h != fc.sha256:
            out.append(FailureRecord(f"file {fc.path} sha256", fc.sha256, h, line=fc.line))
    return out


def _bytes_failure(what: str, want: bytes, have: bytes, line: int, base: int = 0) -> FailureRecord:
    if len(want) != len(have):
        detail = f"{len(have)} bytes (expected {len(want)})"
    else:
        detail = ""
    n = min(len(want), len(have))
    i = next((j for j in range(n) if want[j] != have[j]), n)
    if i < n:
        detail += (
            ("; " if detail else "")
            + f"first difference at offset {i:#x}"
            + (f" (flash {base + i:#x})" if base else "")
            + f": expected {want[i : i + 16].hex(' ')}, found {have[i : i + 16].hex(' ')}"
        )
    return FailureRecord(what, f"{len(want)} bytes equal", detail, line=line)


def expected_flash(ctx: RunContext, device: str) -> bytes:
    """The flash as the scenario expects it: the starting flash overlaid with the
    ranges its flash checks name (images, erased ranges)."""
    dev = ctx.lab.devices[device]
    img = bytearray(dev.initial_flash)
    for fc in ctx.scenario.expect.flash:
        if fc.device != device:
            continue
        if fc.kind == "equals" and fc.image is not None:
            try:
                want = ctx.image(fc.image, dev.board, device, fc.range.length(len(img)))
            except Exception:
                continue
            want = want[: fc.range.length(len(img))]
            img[fc.range.start : fc.range.start + len(want)] = want
            if fc.rest_erased and fc.range.end is not None:
                img[fc.range.start + len(want) : fc.range.end] = b"\xff" * (
                    fc.range.end - fc.range.start - len(want)
                )
        elif fc.kind == "erased" and fc.range.end is not None:
            img[fc.range.start : fc.range.end] = b"\xff" * (fc.range.end - fc.range.start)
    return bytes(img)
