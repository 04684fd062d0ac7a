"""Running a loaded scenario: :func:`run_scenario` sets up its devices in a
:class:`~harness.lab.devices.Lab`, runs the steps in order (:func:`run_step`),
checks the expectations and returns a :class:`~harness.scenarios.report.ScenarioResult`:
the steps with their timings, the first failed step or every failed expectation
with expected vs actual, each device's transcript and flash map, and the
directory that keeps the artifacts.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from emulators.serial import LinkFaults
from harness.boards import BOARDS
from harness.lab.devices import Lab
from harness.lab.images import build_image
from harness.scenarios.context import RunContext
from harness.scenarios.expectations import check_expectations, expected_flash
from harness.scenarios.loader import (
    load_scenario,
)
from harness.scenarios.model import (
    ImageSpec,
    Scenario,
)
from harness.scenarios.report import (
    DeviceRecord,
    FailureRecord,
    ScenarioResult,
    StepRecord,
    flash_map,
)
from harness.scenarios.run_steps import StepFailed, run_step


def run_scenario(
    sc: Scenario,
    root: str | Path,
    *,
    engine_mode: str = "inprocess",
    keep: str = "failed",
) -> ScenarioResult:
    """Run ``sc`` with its lab under ``root`` (created). ``keep``: "failed" removes
    ``root`` after a pass, "always" keeps it, "never" removes it in any case."""
    root = Path(root).resolve()  # {work} must not depend on the current directory
    res = ScenarioResult(
        name=sc.name,
        board=sc.board,
        file=str(sc.path),
        line=sc.line,
        description=sc.description,
        markers=list(sc.markers),
    )
    t_start = time.monotonic()
    missing = sc.missing()
    if missing:
        res.outcome = "skipped"
        res.reason = "; ".join(missing)
        res.steps = [
            StepRecord(i, s.kind, s.summary(), s.line, "not run") for i, s in enumerate(sc.steps)
        ]
        return res
    root.mkdir(parents=True, exist_ok=True)
    lab = Lab(root)
    ctx = RunContext(sc, lab, engine_mode)
    res.steps = [
        StepRecord(i, s.kind, s.summary(), s.line, "not run") for i, s in enumerate(sc.steps)
    ]
    try:
        _setup(ctx, res)
        res.setup_time = time.monotonic() - t_start
        failed = False
        for i, step in enumerate(sc.steps):
            rec = res.steps[i]
            t0 = time.monotonic()
            rec.status = "running"
            try:
                run_step(ctx, step, rec)
                rec.status = "passed"
            except StepFailed as e:
                rec.status = "failed"
                for f in e.failures:
                    f.step = i
                    f.line = f.line or step.line
                res.failures += e.failures
                failed = True
            finally:
                rec.duration = time.monotonic() - t0
            if failed:
                break
            crash = _crash_failures(ctx)
            if crash:
                rec.status = "failed"
                res.failures += crash
                failed = True
                break
        if not failed:
            t0 = time.monotonic()
            res.failures += check_expectations(ctx)
            res.failures += _crash_failures(ctx)
            res.check_time = time.monotonic() - t0
        res.outcome = "failed" if res.failures else "passed"
    except Exception as e:  # setup or harness error: report it, keep the evidence
        res.outcome = "error"
        res.reason = f"{type(e).__name__}: {e}"
        res.failures.append(
            FailureRecord("the scenario could not run", "", traceback.format_exc(), line=sc.line)
        )
    finally:
        res.devices = _device_records(ctx, res)
        res.duration = time.monotonic() - t_start
        keep_it = keep == "always" or (keep == "failed" and res.outcome in ("failed", "error"))
        if keep_it:
            _save_artifacts(ctx, res)
            res.artifacts = str(root)
        try:
            lab.close()
        finally:
            if not keep_it:
                shutil.rmtree(root, ignore_errors=True)
    return res


def _setup(ctx: RunContext, res: ScenarioResult) -> None:
    sc = ctx.scenario
    network_devices = {s.device for s in sc.steps if s.kind == "fault" and s.network is not None}
    for name, d in sc.devices.items():
        flash: Any = None
        if d.flash is not None and d.flash.kind != "factory":
            flash = (
                ctx.image(d.flash, d.board, name, BOARDS[d.board].flash_size)
                if d.flash.kind != "erased"
                else "erased"
            )
        network = d.network
        if network is None and name in network_devices:
            network = {}
        ctx.lab.start(
            d.board,
            name=name,
            seed=d.seed,
            realtime=d.realtime,
            faults=LinkFaults(**d.faults) if d.faults else None,
            flash=flash,
            options=d.options,
            network=network,
            tftp_server=d.tftp_server,
            power=d.start,
        )
    for fname, im in sc.files.items():
        ctx.lab.put_file(fname, ctx.image(im, sc.board, sc.main_device))


def _crash_failures(ctx: RunContext) -> list[FailureRecord]:
    out = []
    for name, dev in ctx.lab.devices.items():
        if dev.device.crash is not None:
            out.append(
                FailureRecord(
                    f"the {dev.board} emulator ({name}) crashed: an emulator bug",
                    "no crash",
                    getattr(dev.device, "crash_text", "") or repr(dev.device.crash),
                )
            )
    return out


def _device_records(ctx: RunContext, res: ScenarioResult) -> list[DeviceRecord]:
    out = []
    for name, dev in ctx.lab.devices.items():
        try:
            have = dev.flash_bytes()
            want = expected_flash(ctx, name)
            fm = flash_map(
                have,
                want,
                list(dev.flash.stats.lost_bits),
                [
                    (dev.flash.sector_start(i), dev.flash.sector_size(i))
                    for i in range(dev.flash.sector_count)
                ],
            )
        except Exception:  # a device that never came up has no map
            fm = None
        text = dev.transcript.text()
        out.append(
            DeviceRecord(
                name=name,
                board=dev.board,
                port=dev.path,
                tftp_port=dev.server_port,
                transcript=text[-400_000:],
                transcript_truncated=len(text) > 400_000,
                tail=dev.transcript.tail(2000),
                flash_map=fm,
            )
        )
    return out


def _save_artifacts(ctx: RunContext, res: ScenarioResult) -> None:
    for name, dev in ctx.lab.devices.items():
        try:
            dev.save_transcript()
            (dev.dir / "expected.bin").write_bytes(expected_flash(ctx, name))
            (dev.dir / "initial.bin").write_bytes(dev.initial_flash)
        except Exception:  # best effort: the failure report matters more
            pass
    for rec in res.steps:
        if rec.kind == "engine" and rec.status != "not run":
            base = ctx.lab.root / f"step{rec.index:02d}-engine"
            base.with_suffix(".stdout.txt").write_text(rec.stdout or "", encoding="utf-8")
            base.with_suffix(".stderr.txt").write_text(rec.stderr or "", encoding="utf-8")
    (ctx.lab.root / "result.json").write_text(json.dumps(res.to_dict(), indent=1), encoding="utf-8")


def run_path(path: str | Path, root: str | Path, **kw: Any) -> ScenarioResult:
    """Load and run one scenario file (a convenience for scripts)."""
    return run_scenario(load_scenario(path), root, **kw)


def warm_images(sc: Scenario) -> int:
    """Build every firmware image ``sc`` names (filling the image cache) without
    starting anything; returns how many were built. Benchmarks use it so that
    they time the scenarios, not the builders."""
    n = 0

    def visit(board: str, im: ImageSpec | None) -> None:
        nonlocal n
        if im is not None and im.kind == "builder":
            build_image(board, im.builder, **im.args)
            n += 1

    for d in sc.devices.values():
        visit(d.board, d.flash)
    for im in sc.files.values():
        visit(sc.board, im)
    for fc in sc.expect.flash:
        visit(sc.devices[fc.device].board, fc.image)
    for fl in sc.expect.files:
        visit(sc.board, fl.equals)
    return n
