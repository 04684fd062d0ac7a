"""The campaign's oracles: how a run is judged against the ground truth.

They are independent of both the emulators and the engine: they read the flash
bytes and the files a run left, and nothing else. The W90P745 image table is
read by a small parser of its own (:func:`w90_images`, from REFERENCE.md's footer
facts), chip ranges come from the one board registry (:mod:`harness.boards`).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.boards import board_spec
from harness.fuzz.faults import Draw
from harness.lab.engine import EngineResult

OUTCOMES = (
    "verified",
    "clear_error",
    "silent_corruption",
    "backup_lost",
    "wrong_state",
    "unclear",
    "crash",
    "hang",
)
MUST_BE_ZERO = ("silent_corruption", "backup_lost")
# when a run shows several problems, the worst names it
SEVERITY = ("silent_corruption", "backup_lost", "wrong_state", "crash", "hang", "unclear")
BAD_OUTCOMES = frozenset(OUTCOMES[2:])


@dataclass
class Plan:
    """One operation set up for a run (see :func:`plan_for`)."""

    argv: list[str]  # the engine's arguments ("{work}" is replaced)
    rerun_argv: list[str]
    initial: bytes  # the flash at the start
    expected: bytes  # the flash after a successful run
    files: dict[str, bytes]  # put in the work directory before the run
    inputs: list[str]  # user files that must stay intact
    start: str = "prompt"  # how the lab powers the device on
    read_only: bool = False
    flash_spec: Any = None  # the scenario schema's description of ``initial`` (None: a file)
    file_specs: dict[str, Any] = field(default_factory=dict)
    # checks: outputs(work, start, final, success) -> problems with the output files;
    # ``start`` is the flash when this run began (the initial flash, or for a rerun what
    # the failed run left): what a backup made by this run must hold
    outputs: Callable[[Path, bytes, bytes, bool], list[str]] | None = None
    # coverage(work, inputs_ok) -> chip ranges whose old contents are safe in a backup
    coverage: Callable[[Path, bool], list[tuple[int, int]]] | None = None
    timeout: float = 120.0


@dataclass
class RunResult:
    """What one run did and how it was judged."""

    draw: Draw
    outcome: str
    exit: int
    message: str = ""
    flash_state: str | None = None
    hint: str | None = None
    problems: list[str] = field(default_factory=list)
    fired: bool | None = None
    duration: float = 0.0
    rerun: str | None = None  # "ok", "failed: ..." or None (not tried)
    saved: str | None = None

    def line(self) -> str:
        d = self.draw
        out = f"seed {d.seed:>6} {d.board} {d.op:<8} {d.describe():<60} {self.duration:5.1f} s"
        out += f" -> {self.outcome}"
        if self.outcome != "verified":
            out += f" (exit {self.exit}: {self.message[:90]})"
        if self.rerun:
            out += f"; rerun {self.rerun[:60]}"
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["draw"] = asdict(self.draw)
        return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_problems(path: Path, want: bytes, what: str) -> list[str]:
    if not path.is_file():
        return []
    have = path.read_bytes()
    if have == want:
        return []
    return [f"{what} {path.name} exists but holds other bytes ({_first_diff(want, have)})"]


def _first_diff(want: bytes, have: bytes) -> str:
    if len(want) != len(have):
        return f"{len(have)} bytes, expected {len(want)}"
    i = next(i for i in range(len(want)) if want[i] != have[i])
    return f"first difference at offset {i:#x}"


# -- the W90P745 image table, read from the flash bytes --------------------------------------
# REFERENCE.md, "W90P745 boot loader": a 52-byte little-endian footer per image (num,
# base, length, load_address, exec_address, name[16], image_checksum, signature
# 0xA0FFFF9F, type, checksum); checksum: the u32 words of the first 48 bytes added into
# a 64-bit sum, folded once, complemented, 32 bits kept. The oracle finds footers by
# their signature and checksum wherever they are (it assumes no placement).

W90_SIGNATURE = 0xA0FFFF9F
_W90_FOOTER = struct.Struct("<5I16s4I")


@dataclass(frozen=True)
class W90Image:
    """One image as the loader's ``ls`` lists it (addresses as the loader prints them)."""

    number: int
    name: str
    base: int
    size: int
    footer: int  # address of the footer


def w90_footer_checksum(record: bytes) -> int:
    total = sum(struct.unpack("<12I", record[:48]))
    folded = (total & 0xFFFFFFFF) + (total >> 32)
    return ~folded & 0xFFFFFFFF


def w90_images(flash: bytes, flash_base: int | None = None) -> list[W90Image]:
    """The images whose footers are intact in ``flash`` (chip bytes), in address order."""
    base_addr = board_spec("w90p745").flash_base if flash_base is None else flash_base
    sig = struct.pack("<I", W90_SIGNATURE)
    out: list[W90Image] = []
    pos = flash.find(sig)
    while pos >= 0:
        start = pos - 0x28
        record = flash[start : start + _W90_FOOTER.size]
        if start >= 0 and start % 4 == 0 and len(record) == _W90_FOOTER.size:
            num, base, length, _load, _exec, name, _ick, _sig, _type, cks = _W90_FOOTER.unpack(
                record
            )
            if cks == w90_footer_checksum(record):
                text = name.split(b"\0", 1)[0].decode("latin-1")
                out.append(W90Image(num, text, base, length, base_addr + start))
        pos = flash.find(sig, pos + 1)
    return out


def w90_image_file_name(img: W90Image) -> str:
    """The file name the engine's dump gives an image (docs/w90p745.md)."""
    return f"image{img.number}_{re.sub(r'[^A-Za-z0-9._-]', '_', img.name)}.bin"


def w90_dump_problems(out: Path, flash: bytes, img: str, ok: bool) -> list[str]:
    """Every finished image file in a dump directory must hold the flash's bytes."""
    probs: list[str] = []
    flash_base = board_spec("w90p745").flash_base
    table = {w90_image_file_name(e): e for e in w90_images(flash)}
    if out.is_dir():
        for p in sorted(out.glob("image*.bin")):
            e = table.get(p.name)
            if e is None:
                probs.append(f"the dump holds {p.name}, which is no image on the camera")
                continue
            want = flash[e.base - flash_base : e.base - flash_base + e.size]
            probs += file_problems(p, want, "the dumped image")
    if ok:
        man = out / "manifest.json"
        try:
            m = json.loads(man.read_text())
        except (OSError, ValueError):
            return [*probs, "success reported but the dump has no readable manifest.json"]
        if m.get("complete") is not True:
            probs.append("success reported but the manifest says the dump is not complete")
        if not any(r.get("name") == img for r in m.get("images", [])):
            probs.append(f"success reported but the manifest lists no {img} image")
        if not list(out.glob(f"image*_{img}.bin")):
            probs.append(f"success reported but the {img} image file is missing")
    return probs


def ranges_differ(a: bytes, b: bytes, block: int = 0x1000) -> list[tuple[int, int]]:
    """Block-granular ranges where ``a`` and ``b`` differ (merged)."""
    out: list[tuple[int, int]] = []
    if a == b:
        return out
    ma, mb = memoryview(a), memoryview(b)
    for off in range(0, max(len(a), len(b)), block):
        if ma[off : off + block] != mb[off : off + block]:
            if out and out[-1][1] == off:
                out[-1] = (out[-1][0], off + block)
            else:
                out.append((off, off + block))
    return out


def fmt_ranges(ranges: list[tuple[int, int]], n: int = 3) -> str:
    text = ", ".join(f"{lo:#x}..{hi:#x}" for lo, hi in ranges[:n])
    return text + (f" and {len(ranges) - n} more" if len(ranges) > n else "")


def judge(
    d: Draw,
    plan: Plan,
    r: EngineResult,
    work: Path,
    hashes: dict[str, str],
    final: bytes,
    emulator_crash: str = "",
) -> RunResult:
    """Classify one engine run against the ground truth."""
    j = r.json if isinstance(r.json, dict) else None
    res = RunResult(
        d,
        "verified",
        r.exit,
        message=str((j or {}).get("message") or "").strip(),
        flash_state=(j or {}).get("flash_state"),
        hint=(j or {}).get("hint"),
        duration=r.duration,
    )
    found: dict[str, list[str]] = {k: [] for k in OUTCOMES}
    initial = plan.initial
    ok = r.exit == 0 and not r.timed_out
    # the user's files
    inputs_ok = True
    for name, h in hashes.items():
        p = work / name
        if not p.is_file():
            inputs_ok = False
            found["backup_lost"].append(f"the user's {name} is gone")
        elif sha(p.read_bytes()) != h:
            inputs_ok = False
            found["backup_lost"].append(f"the user's {name} was changed")
    changed = ranges_differ(initial, final)
    if changed and plan.read_only:
        found["silent_corruption"].append(
            f"a read-only operation changed the flash at {fmt_ranges(changed)}"
        )
    elif changed:
        covered = plan.coverage(work, inputs_ok) if plan.coverage else []
        bare = [(lo, hi) for lo, hi in changed if not any(a <= lo and hi <= b for a, b in covered)]
        if bare:
            found["backup_lost"].append(
                f"the flash changed at {fmt_ranges(bare)} and no intact backup holds what was there"
            )
    outputs = plan.outputs(work, initial, final, ok) if plan.outputs else []
    found["silent_corruption"] += outputs
    if ok:
        if final != plan.expected:
            found["silent_corruption"].append(
                "success reported but the flash differs from the expected image at "
                + fmt_ranges(ranges_differ(plan.expected, final))
            )
        if j is None or j.get("ok") is not True:
            found["unclear"].append("exit 0 without a JSON result that says ok")
    elif not r.timed_out:
        state = res.flash_state
        if j is None:
            found["unclear"].append("no JSON result on stdout")
        else:
            if not res.message:
                found["unclear"].append("no message")
            if not state:
                found["unclear"].append("no flash_state")
            elif not str(state).lower().startswith("untouched") and not _instructs(res.hint):
                found["unclear"].append(
                    "the flash is touched but the hint does not say what to run: " + repr(res.hint)
                )
        if state and str(state).lower().startswith("untouched") and changed:
            found["wrong_state"].append(
                f"flash_state says {state!r} but the flash changed at {fmt_ranges(changed)}"
            )
    if r.crashed or r.exit == 1 or "Traceback (most recent call last)" in r.stderr:
        found["crash"].append("the engine crashed: " + (r.crashed or r.stderr)[-400:])
    if emulator_crash:
        found["crash"].append("the emulator crashed: " + emulator_crash[-400:])
    if r.timed_out:
        found["hang"].append(f"the engine did not return within {plan.timeout:g} s")
    for outcome in SEVERITY:
        if found[outcome]:
            res.outcome = outcome
            break
    else:
        res.outcome = "verified" if ok else "clear_error"
    res.problems = [p for k in SEVERITY for p in found[k]]
    return res


def _instructs(hint: str | None) -> bool:
    """Whether a hint tells the user what to run (the promise: "the exact command to
    resume or restore"), not only what was seen."""
    if not hint:
        return False
    return re.search(r"camrescue|\brun\b|\brerun\b|\bagain\b", hint) is not None
