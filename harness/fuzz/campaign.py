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
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.device import LinkTrigger
from emulators.serial import LinkFaults
from harness import lab as labmod
from harness.fuzz.faults import BOARD_OPS, TFTP_FAULTS, WRITE_FAULTS, Draw, draw
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
from harness.lab.netfaults import TftpFaultProxy, TftpFaults, interpose


class _PowerBack:
    """Bring the power back ``delay`` seconds after the device lost it (or never)."""

    def __init__(self, device: Any, delay: float | None) -> None:
        self.device = device
        self.delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seen = False  # the power did go

    def start(self) -> _PowerBack:
        if self.delay is not None:
            self._thread = threading.Thread(target=self._run, name="power-back", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            if self.device.power_lost and not self.device.powered:
                self.seen = True
                if not self._stop.wait(self.delay):
                    self.device.power_on()
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


@contextlib.contextmanager
def armed(d: Draw, dev: labmod.LabDevice) -> Iterator[dict[str, Any]]:
    """Arm the draw's fault on ``dev`` for the duration of the engine run.

    Yields a dict that gets ``fired`` (whether the fault struck) when done."""
    f = dict(d.fault)
    kind = f.pop("kind")
    state: dict[str, Any] = {"fired": None}
    device = dev.device
    power_back = _PowerBack(device, f.get("power_back"))
    proxy: TftpFaultProxy | None = None
    trigger: LinkTrigger | None = None
    try:
        if kind == "power_loss_erase":
            dev.flash.arm_power_loss(erase_sectors=f["erase_sectors"])
            power_back.start()
        elif kind == "power_loss_program":
            dev.flash.arm_power_loss(program_bytes=f["program_bytes"])
            power_back.start()
        elif kind in ("power_cut", "watchdog", "log_lines"):
            action = {"power_cut": "power_loss", "watchdog": "reset", "log_lines": "inject"}[kind]
            trigger = LinkTrigger(
                f["direction"], f["at_byte"], action, str(f.get("text", "")).encode("latin-1")
            )
            device.arm_trigger(trigger)
            if kind == "power_cut":
                power_back.start()
        elif kind == "link_noise":
            device.uart.faults = LinkFaults(**f)
        elif kind == "link_silence":
            device.uart.faults = LinkFaults(silent_after=f["silent_after"])
        elif kind in TFTP_FAULTS:
            tf = TftpFaults()
            on_trigger = None
            if kind == "tftp_loss":
                tf = TftpFaults(
                    loss=f["loss"],
                    duplicate=f["duplicate"],
                    delay=f["delay"],
                    delay_rate=f["delay_rate"],
                )
            elif kind == "tftp_gone":
                tf = TftpFaults(gone_after=f["gone_after"])
            else:
                tf = TftpFaults(trigger_after=f["after_packets"])

                def on_trigger() -> None:  # the power goes; _PowerBack may bring it back
                    device.power_off()
                    device.power_lost = True

                power_back.start()

            proxy = interpose(dev, tf, seed=d.seed, on_trigger=on_trigger)
        yield state
    finally:
        power_back.stop()
        dev.flash.disarm()
        device.disarm_triggers()
        device.uart.faults = LinkFaults()
        if trigger is not None:
            state["fired"] = trigger.fired
        elif kind in WRITE_FAULTS:
            state["fired"] = power_back.seen or bool(device.power_lost)
        elif proxy is not None:
            st = proxy.stats
            state["fired"] = (
                st.triggered or st.gone or bool(st.dropped or st.duplicated or st.delayed)
            )
        elif kind == "link_silence":
            state["fired"] = device.uart.silent()
        elif kind == "link_noise":
            state["fired"] = True  # active for the whole run
        if proxy is not None:
            proxy.close()
            device.netmap.default = ("127.0.0.1", dev.server_port)


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
    lab_root = Path(tempfile.mkdtemp(prefix=f"camrescue-{d.name}-")) if own else Path(root)
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
    r = dev.engine(subst(plan.rerun_argv, work), timeout=limit)
    final = dev.flash_bytes()
    if r.exit != 0:
        msg = (r.json or {}).get("message") if isinstance(r.json, dict) else None
        return f"failed: exit {r.exit}: {str(msg or r.stderr[-200:]).strip()[:200]}"
    if final != plan.expected:
        return "failed: success reported but the flash differs: " + fmt_ranges(
            ranges_differ(plan.expected, final)
        )
    probs = plan.outputs(work, plan.initial, final, True) if plan.outputs else []
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
        dev = lab.start(board, flash=plan.initial, tftp_server=False, power=plan.start)
        proxy = interpose(dev, TftpFaults()) if board == "hi3511" else None
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
        if proxy is not None:
            proxy.close()
        return out
