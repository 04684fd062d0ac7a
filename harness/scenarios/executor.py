"""Running a loaded scenario: :func:`run_scenario` sets up its devices in a
:class:`~harness.lab.devices.Lab`, runs the steps in order (:func:`run_step`),
checks the expectations and returns a :class:`~harness.scenarios.report.ScenarioResult`:
the steps with their timings, the first failed step or every failed expectation
with expected vs actual, each device's transcript and flash map, and the
directory that keeps the artifacts.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulators.serial import LinkFaults
from harness.boards import BOARDS, Unavailable
from harness.lab.console import ConsoleTimeout
from harness.lab.devices import Lab, LabDevice
from harness.lab.faults import TftpPowerCut
from harness.lab.images import build_image
from harness.lab.netfaults import TftpFaults
from harness.scenarios.context import RunContext, variant_args
from harness.scenarios.excerpts import line_at, tail
from harness.scenarios.expectations import (
    check_expectations,
    expected_flash,
    json_failures,
    text_failures,
)
from harness.scenarios.loader import load_scenario
from harness.scenarios.model import (
    ConsoleStep,
    EngineStep,
    FaultStep,
    ImageSpec,
    PowerCycleStep,
    PowerOffStep,
    PowerOnStep,
    Scenario,
    Step,
    TftpServerStep,
    WaitStep,
)
from harness.scenarios.report import (
    DeviceRecord,
    FailureRecord,
    ScenarioResult,
    StepRecord,
    flash_map,
)


class StepFailed(Exception):
    """A step did not get what it expects; ``failures`` says what and why."""

    def __init__(self, failures: list[FailureRecord]) -> None:
        super().__init__("; ".join(f.what for f in failures))
        self.failures = failures


def run_step(ctx: RunContext, st: Step, rec: StepRecord) -> None:
    """Run ``st`` on its device, filling in ``rec``; raises :class:`StepFailed`."""
    dev = ctx.lab.devices[st.device]
    if isinstance(st, EngineStep):
        _engine_step(ctx, st, rec, dev)
    elif isinstance(st, ConsoleStep):
        _console_step(ctx, st, rec, dev)
    elif isinstance(st, PowerOnStep):  # a PowerCycleStep too
        try:
            if isinstance(st, PowerCycleStep):
                dev.power_cycle(st.then, st.timeout)
            else:
                dev.power_on(st.then, st.timeout)
            con = dev.console()
            for text in st.expect:
                con.expect(ctx.subst(text, st.device), st.timeout)
        except ConsoleTimeout as e:
            raise StepFailed(
                [
                    FailureRecord(
                        f"{st.kind.replace('_', ' ')}: {e}",
                        "the text on the console",
                        tail(e.seen),
                    )
                ]
            ) from None
    elif isinstance(st, PowerOffStep):
        dev.power_off()
    elif isinstance(st, FaultStep):
        ctx.armed[rec.index] = [dev.arm(f) for f in st.faults]
        rec.detail = st.describe()  # the faults themselves; the title is the step's summary
    elif isinstance(st, WaitStep):
        time.sleep(st.seconds)
    elif isinstance(st, TftpServerStep):
        if st.on:
            dev.serve_tftp()
        else:
            dev.stop_tftp()
        dev.serve_tftp_between_steps = st.on


def _engine_step(ctx: RunContext, st: EngineStep, rec: StepRecord, dev: LabDevice) -> None:
    argv = [ctx.subst(a, st.device) for a in st.argv]
    during = _during_runner(st, dev) if st.during else None
    r = dev.engine(
        argv, timeout=st.timeout, mode=ctx.engine_mode, auto_options=st.auto_options, during=during
    )
    rec.command = " ".join(_quote(a) for a in r.argv)
    rec.exit = r.exit
    rec.stdout = tail(r.stdout, 20000)
    rec.stderr = tail(r.stderr, 20000)
    rec.json = r.json
    fails: list[FailureRecord] = []
    if r.timed_out:
        fails.append(
            FailureRecord(
                f"the engine did not finish within {st.timeout:g} s (the device was powered off to stop it)",
                f"done within {st.timeout:g} s",
                tail(r.stderr),
            )
        )
    if r.crashed:
        fails.append(FailureRecord("the engine raised an exception", "a result", tail(r.crashed)))
    if not fails:
        why = st.exit.check(r.exit)
        if why:
            msg = r.json.get("message") if isinstance(r.json, dict) else None
            actual = (
                f"exit {r.exit}"
                + (f"; message: {msg}" if msg else "")
                + (f"\nstderr: {tail(r.stderr, 800)}" if r.stderr else "")
            )
            fails.append(FailureRecord("engine exit code", st.exit.describe(), actual))
    if st.json is not None:
        if r.json is None:
            fails.append(
                FailureRecord(
                    "engine JSON result",
                    "a JSON object on stdout (--json)",
                    tail(r.stdout or "(nothing on stdout)", 800),
                )
            )
        else:
            fails += json_failures(st.json, r.json, "json")
    for label, check, text in (("stdout", st.stdout, r.stdout), ("stderr", st.stderr, r.stderr)):
        if check is not None:
            fails += text_failures(check, text, f"engine {label}")
    if fails:
        raise StepFailed(fails)


def _quote(a: str) -> str:
    return a if re.fullmatch(r"[A-Za-z0-9_./:=+,@%-]+", a) else json.dumps(a)


def _console_step(ctx: RunContext, st: ConsoleStep, rec: StepRecord, dev: LabDevice) -> None:
    con = dev.console(st.baud)
    seen: list[str] = []
    try:
        if st.lines:
            prompt = ctx.subst(st.prompt or dev.spec.prompt or "", st.device)
            for line in st.lines:
                con.mark()
                con.send((ctx.subst(line, st.device) + "\r").encode("latin-1", "replace"))
                r = con.expect(prompt, st.timeout)
                seen.append(r.before + r.match)
                _reject(st, r.before)
        else:
            if st.send:
                con.mark()
                con.send(ctx.subst(st.send.decode("latin-1"), st.device).encode("latin-1"))
            if st.expect:
                pats = [ctx.subst(p, st.device) for p in st.expect]
                r = con.expect(pats, st.timeout, regex=st.regex)
                seen.append(r.before + r.match)
                _reject(st, r.before)
    except ConsoleTimeout as e:
        rec.detail = "".join(seen) + e.seen
        raise StepFailed(
            [
                FailureRecord(
                    f"console: {e}",
                    " or ".join(
                        repr(p) for p in (st.expect or [st.prompt or dev.spec.prompt or ""])
                    ),
                    tail(e.seen),
                )
            ]
        ) from None
    except StepFailed:
        rec.detail = "".join(seen)
        raise
    rec.detail = "".join(seen)


def _reject(st: ConsoleStep, text: str) -> None:
    for bad in st.reject:
        i = text.find(bad)
        if i >= 0:
            raise StepFailed(
                [FailureRecord(f"console printed {bad!r}", f"no {bad!r}", line_at(text, i))]
            )


def _during_runner(st: EngineStep, dev: LabDevice) -> Callable[[], None]:
    """Power events while the engine runs, by time or by what the device prints."""

    def run() -> None:
        t0 = time.monotonic()
        deadline = t0 + st.timeout
        chunks = dev.transcript.chunks
        idx = len(chunks)
        window = ""
        for act in st.during:
            while time.monotonic() < deadline:
                if act.after is not None and time.monotonic() - t0 >= act.after:
                    break
                if act.when is not None:
                    n = len(chunks)
                    if n < idx:
                        idx = 0
                    new = "".join(
                        c.data.decode("latin-1") for c in chunks[idx:n] if c.direction == "dev"
                    )
                    idx = n
                    window = (window + new)[-8192:]
                    if act.when in window:
                        window = window[window.find(act.when) + len(act.when) :]
                        break
                time.sleep(0.002)
            else:
                return
            if act.action == "power_off":
                dev.power_off()
            elif act.action == "power_on":
                dev.device.power_on()
            else:
                dev.device.power_off()
                dev.device.power_on()

    return run


def run_scenario(
    sc: Scenario,
    root: str | Path,
    *,
    engine_mode: str = "inprocess",
    keep: str = "failed",
) -> ScenarioResult:
    """Run ``sc`` with its lab under ``root`` (created). ``keep``: "failed" removes
    ``root`` after a pass, "always" keeps it, "never" removes it in any case.

    A scenario with ``variants:`` runs one variant at a time: pass one of
    :meth:`Scenario.expand` (:func:`run_path` runs them all)."""
    if sc.variants and not sc.variant:
        raise ValueError(
            f"{sc.name} has variants: run each of its expand() "
            f"({', '.join(one.run_name for one in sc.expand())})"
        )
    root = Path(root).resolve()  # {work} must not depend on the current directory
    res = ScenarioResult(
        name=sc.run_name,
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
    except SetupError as e:  # an image could not be made: the scenario's own words
        res.outcome = "error"
        res.reason = str(e)
        res.failures.append(FailureRecord("the scenario could not run", "", str(e), line=e.line))
    except Exception as e:  # setup or harness error: report it, keep the evidence
        res.outcome = "error"
        res.reason = f"{type(e).__name__}: {e}"
        res.failures.append(
            FailureRecord("the scenario could not run", "", traceback.format_exc(), line=sc.line)
        )
    finally:
        _record_fired(ctx, res)
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


class SetupError(Exception):
    """An image of the scenario could not be made (a builder refused its arguments,
    a file is missing): said with the scenario's line, without a traceback."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _image(ctx: RunContext, im: ImageSpec, board: str, device: str, what: str, **kw: Any) -> bytes:
    try:
        return ctx.image(im, board, device, **kw)
    except (OSError, ValueError, TypeError, Unavailable) as e:
        raise SetupError(
            f"{ctx.scenario.path}:{im.line}: {what}: cannot make {im.describe()}: {e}", im.line
        ) from e


def _setup(ctx: RunContext, res: ScenarioResult) -> None:
    sc = ctx.scenario
    network_devices = {
        s.device
        for s in sc.steps
        if isinstance(s, FaultStep)
        and any(isinstance(f, TftpFaults | TftpPowerCut) for f in s.faults)
    }
    for name, d in sc.devices.items():
        flash: Any = None
        if d.flash is not None and d.flash.kind != "factory":
            flash = (
                _image(
                    ctx,
                    d.flash,
                    d.board,
                    name,
                    f"the flash of {name}",
                    size_hint=BOARDS[d.board].flash_size,
                )
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
            options=sc.device_options(name),
            network=network,
            tftp_server=d.tftp_server,
            power=d.start,
        )
    for fname, im in sc.files.items():
        ctx.lab.put_file(fname, _image(ctx, im, sc.board, sc.main_device, f"file {fname}"))


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


def _record_fired(ctx: RunContext, res: ScenarioResult) -> None:
    """Say in each fault step's record whether its faults struck by the end."""
    for index, armed in ctx.armed.items():
        said = {True: "fired", False: "did not fire", None: "active"}
        res.steps[index].detail += " [" + ", ".join(said[a.fired] for a in armed) + "]"


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


def run_path(path: str | Path, root: str | Path, **kw: Any) -> list[ScenarioResult]:
    """Load and run one scenario file, every variant of it (each under ``root/ID``
    when it has variants): a convenience for scripts."""
    sc = load_scenario(path)
    runs = sc.expand()
    if len(runs) == 1 and not sc.variants:
        return [run_scenario(sc, root, **kw)]
    return [run_scenario(one, Path(root) / one.variant_id, **kw) for one in runs]


def warm_images(sc: Scenario) -> int:
    """Build every firmware image ``sc`` names (filling the image cache) without
    starting anything; returns how many were built. Benchmarks use it so that
    they time the scenarios, not the builders."""
    n = 0

    def visit(board: str, im: ImageSpec | None) -> None:
        nonlocal n
        if im is not None and im.kind == "builder":
            for one in sc.expand():
                build_image(board, im.builder, **variant_args(im.args, one.variant))
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
