"""Running draws: :func:`run_draw` runs one in a lab with its fault armed and judges
it, retrying a clean failure once without the fault (:func:`rerun`);
:class:`Campaign` runs many; :func:`format_table` is the summary;
:func:`calibrate` measures an operation's :class:`~harness.fuzz.faults.Budget`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import lab as labmod
from harness.boards import board_spec
from harness.fuzz.arming import fault_of
from harness.fuzz.faults import BOARD_OPS, Draw, draw
from harness.fuzz.oracles import (
    BAD_OUTCOMES,
    MUST_BE_ZERO,
    Plan,
    RunResult,
    fmt_ranges,
    judge,
    ranges_differ,
    sha,
)
from harness.fuzz.plans import plan_for
from harness.fuzz.saved import save_failure
from harness.lab.netfaults import TftpFaults


@contextlib.contextmanager
def armed(d: Draw, dev: labmod.LabDevice) -> Iterator[dict[str, Any]]:
    """Arm the draw's fault on ``dev`` for the duration of the engine run.

    Yields a dict that gets ``fired`` (whether the fault struck) when done."""
    state: dict[str, Any] = {"fired": None}
    fault = fault_of(d)
    a = dev.arm(fault) if fault is not None else None
    try:
        yield state
    finally:
        if a is not None:
            a.disarm()
            state["fired"] = a.fired


def _network(board: str) -> TftpFaults | None:
    """A board with a network gets the lab's fault proxy (faults off until armed)."""
    return TftpFaults() if board_spec(board).tftp else None


def subst(argv: list[str], work: Path) -> list[str]:
    return [a.replace("{work}", str(work)) for a in argv]


def run_draw(
    d: Draw,
    root: Path | None = None,
    *,
    rerun: bool = True,
    timeout: float | None = None,
    keep: bool = False,
) -> tuple[RunResult, Path | None]:
    """Run one draw in a lab under ``root`` (a new temporary directory by default).

    Returns the result and the lab directory when it was kept (``keep``)."""
    plan = plan_for(d)
    limit = timeout if timeout is not None else plan.timeout
    plan.timeout = limit
    own = root is None
    lab_root = Path(tempfile.mkdtemp(prefix=f"camrescue-{d.name}-")) if root is None else Path(root)
    t0 = time.monotonic()
    try:
        with labmod.Lab(lab_root) as lab:
            work = lab.work
            for name, data in plan.files.items():
                lab.put_file(name, data)
            hashes = {n: sha((work / n).read_bytes()) for n in plan.inputs}
            dev = lab.start(
                d.board,
                name="camera",
                seed=d.seed,
                flash=plan.initial,
                tftp_server=False,
                network=_network(d.board),
                power=plan.start,
            )
            with armed(d, dev) as state:
                r = dev.engine(subst(plan.argv, work), timeout=limit)
            final = dev.flash_bytes()
            res = judge(d, plan, r, work, hashes, final, dev.device.crash_text or "")
            res.fired = state["fired"]
            (lab.root / "engine.json").write_text(
                json.dumps(
                    {"argv": r.argv, "exit": r.exit, "json": r.json, "stderr": r.stderr[-20000:]},
                    indent=1,
                )
            )
            dev.save_transcript()
            if rerun and res.outcome in ("clear_error", "unclear", "wrong_state"):
                res.rerun = rerun_clean(d, plan, dev, work, limit)
            res.duration = time.monotonic() - t0
        if res.outcome in BAD_OUTCOMES or keep:
            return res, lab_root
        return res, None
    finally:
        if own and not keep and not ("res" in locals() and res.outcome in BAD_OUTCOMES):
            shutil.rmtree(lab_root, ignore_errors=True)


def rerun_clean(d: Draw, plan: Plan, dev: labmod.LabDevice, work: Path, limit: float) -> str:
    """After a clean failure: power-cycle the camera, run the command again without
    the fault, and check that it completes and verifies."""
    # a user's second command is a new process: nothing of the first one's sockets or
    # threads is left (in-process, unreachable servers are only closed by the collector)
    gc.collect()
    try:
        dev.power_off()
        dev.power_on(plan.start)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"failed: the camera did not come back ({e})"
    start = dev.flash_bytes()  # what the first run left: what the rerun reads and backs up
    r = dev.engine(subst(plan.rerun_argv, work), timeout=limit)
    final = dev.flash_bytes()
    if r.exit != 0:
        msg = (r.json or {}).get("message") if isinstance(r.json, dict) else None
        return f"failed: exit {r.exit}: {str(msg or r.stderr[-200:]).strip()[:200]}"
    if final != plan.expected:
        return "failed: success reported but the flash differs: " + fmt_ranges(
            ranges_differ(plan.expected, final)
        )
    probs = plan.outputs(work, start, final, True) if plan.outputs else []
    if probs:
        return "failed: " + probs[0]
    return "ok"


# -- the campaign ---------------------------------------------------------------------------


@dataclass
class Campaign:
    """``runs`` draws per board, seeds ``seed .. seed + runs - 1``."""

    boards: list[str]
    runs: int
    seed: int = 0
    ops: list[str] | None = None
    profile: str = "quick"
    faults: list[str] | None = None
    save: Path | None = Path("fuzz-failures")
    rerun: bool = True
    timeout: float | None = None
    results: list[RunResult] = field(default_factory=list)

    def draws(self) -> list[Draw]:
        out = []
        for board in self.boards:
            ops = [o for o in (self.ops or []) if o in BOARD_OPS[board]] or None
            if self.ops and ops is None:
                continue
            for i in range(self.runs):
                out.append(
                    draw(board, self.seed + i, ops=ops, profile=self.profile, faults=self.faults)
                )
        return out

    def run(self, report: Callable[[str], None] | None = None) -> list[RunResult]:
        for d in self.draws():
            try:
                res, lab_dir = run_draw(d, rerun=self.rerun, timeout=self.timeout)
            except Exception as e:  # noqa: BLE001 - one broken run must not end the campaign
                res = RunResult(d, "crash", -1, f"the harness could not run this draw: {e!r}")
                res.problems = [traceback.format_exc()[-1500:]]
                lab_dir = None
            if res.outcome in BAD_OUTCOMES and self.save is not None:
                try:
                    res.saved = str(save_failure(d, res, self.save, lab_dir))
                except Exception as e:  # noqa: BLE001 - the result line still says it all
                    res.problems.append(f"could not save the scenario file: {e!r}")
            if lab_dir is not None:
                shutil.rmtree(lab_dir, ignore_errors=True)
            self.results.append(res)
            if report is not None:
                report(res.line())
        return self.results

    @property
    def violations(self) -> list[RunResult]:
        return [r for r in self.results if r.outcome in MUST_BE_ZERO]


COLUMNS = (
    ("runs", "runs"),
    ("verified", "verified"),
    ("clear_error", "clear error"),
    ("rerun_ok", "rerun ok"),
    ("silent_corruption", "silent corruption"),
    ("backup_lost", "backup lost"),
    ("wrong_state", "wrong state"),
    ("unclear", "unclear"),
    ("crash", "crash"),
    ("hang", "hang"),
)


def tally(results: Sequence[RunResult]) -> dict[tuple[str, str], dict[str, int]]:
    """Counts per (board, operation) for the table."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for r in results:
        row = out.setdefault((r.draw.board, r.draw.op), {k: 0 for k, _ in COLUMNS})
        row["runs"] += 1
        row[r.outcome] += 1
        if r.rerun == "ok":
            row["rerun_ok"] += 1
    return out


def format_table(results: Sequence[RunResult]) -> str:
    """One table per board: a row per operation, a column per outcome."""
    counts = tally(results)
    lines: list[str] = []
    for board in BOARD_OPS:
        rows = [(op, counts[(board, op)]) for op in BOARD_OPS[board] if (board, op) in counts]
        if not rows:
            continue
        head = ["operation", *[label for _, label in COLUMNS]]
        body = [[op, *[str(c[k]) for k, _ in COLUMNS]] for op, c in rows]
        total = {k: sum(c[k] for _, c in rows) for k, _ in COLUMNS}
        body.append(["all", *[str(total[k]) for k, _ in COLUMNS]])
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        lines.append(f"{board}:")
        lines.append("  " + " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        lines.append("  " + "-+-".join("-" * w for w in widths))
        for row in body:
            lines.append("  " + " | ".join(x.rjust(w) for x, w in zip(row, widths, strict=True)))
        lines.append("")
    bad = [r for r in results if r.outcome in MUST_BE_ZERO]
    lines.append(
        f"{len(results)} runs; silent corruption {sum(r.outcome == 'silent_corruption' for r in results)}"
        f" (must be 0), backup lost {sum(r.outcome == 'backup_lost' for r in results)} (must be 0)"
        + ("" if not bad else "  <-- VIOLATED")
    )
    return "\n".join(lines)


# -- calibration ------------------------------------------------------------------------------


def calibrate(board: str, op: str, profile: str = "quick") -> dict[str, int]:
    """Run ``op`` without a fault and measure what :class:`Budget` counts."""
    d = Draw(board, op, 0, profile)
    plan = plan_for(d)
    with labmod.Lab() as lab:
        for name, data in plan.files.items():
            lab.put_file(name, data)
        dev = lab.start(
            board, flash=plan.initial, tftp_server=False, network=_network(board), power=plan.start
        )
        proxy = dev.proxy
        r0, w0 = dev.device.link_counts
        stats = dev.flash.stats
        p0, e0 = stats.bytes_programmed, stats.sectors_erased
        r = dev.engine(subst(plan.argv, lab.work), timeout=plan.timeout)
        r1, w1 = dev.device.link_counts
        out = {
            "exit": r.exit,
            "host_bytes": r1 - r0,
            "device_bytes": w1 - w0,
            "program_bytes": stats.bytes_programmed - p0,
            "erase_sectors": stats.sectors_erased - e0,
            "packets": proxy.stats.received if proxy else 0,
            "seconds": round(r.duration, 2),
        }
        return out
