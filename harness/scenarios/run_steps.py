"""Running a scenario's steps against the lab's devices.

:func:`run_step` runs one :class:`~harness.scenario_model.Step` -- an engine
command (with power events ``during`` it), console input and expected output,
power, faults, a wait, the lab's TFTP server on or off -- and fills in its
:class:`~harness.report.StepRecord`. A step that does not get what it expects
raises :class:`StepFailed` with the failures.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from emulators.serial import LinkFaults
from harness.lab.console import ConsoleClient, ConsoleTimeout
from harness.lab.devices import LabDevice
from harness.lab.netfaults import TftpFaults
from harness.scenarios.context import RunContext
from harness.scenarios.excerpts import line_at, tail
from harness.scenarios.expectations import json_failures, text_failures
from harness.scenarios.model import Step
from harness.scenarios.report import FailureRecord, StepRecord


class StepFailed(Exception):
    """A step did not get what it expects; ``failures`` says what and why."""

    def __init__(self, failures: list[FailureRecord]) -> None:
        super().__init__("; ".join(f.what for f in failures))
        self.failures = failures


def run_step(ctx: RunContext, st: Step, rec: StepRecord) -> None:
    """Run ``st`` on its device, filling in ``rec``; raises :class:`StepFailed`."""
    dev = ctx.lab.devices[st.device]
    if st.kind == "engine":
        _engine_step(ctx, st, rec, dev)
    elif st.kind == "console":
        _console_step(ctx, st, rec, dev)
    elif st.kind in ("power_on", "power_cycle"):
        try:
            if st.kind == "power_cycle":
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
    elif st.kind == "power_off":
        dev.power_off()
    elif st.kind == "fault":
        if st.power_loss:
            dev.flash.arm_power_loss(**st.power_loss)
        if st.link is not None:
            dev.device.uart.faults = LinkFaults(**st.link)
        if st.network is not None:
            if dev.proxy is None:
                raise StepFailed(
                    [
                        FailureRecord(
                            "network fault on a device without a fault proxy", "a proxy", "none"
                        )
                    ]
                )
            dev.proxy.set_faults(TftpFaults(**st.network))
        rec.detail = st.summary()
    elif st.kind == "wait":
        time.sleep(st.seconds)
    elif st.kind == "tftp_server":
        if st.on:
            dev.serve_tftp()
        else:
            dev.stop_tftp()
        dev.serve_tftp_between_steps = st.on


def _engine_step(ctx: RunContext, st: Step, rec: StepRecord, dev: LabDevice) -> None:
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
    if st.exit is not None and not fails:
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


def _console_step(ctx: RunContext, st: Step, rec: StepRecord, dev: LabDevice) -> None:
    if st.baud is not None and dev._console is not None and dev._console.baud != st.baud:
        dev.release_console()
    con = dev.console() if st.baud is None else _console_at(dev, st.baud)
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
                    " or ".join(repr(p) for p in (st.expect or [st.prompt or dev.spec.prompt])),
                    tail(e.seen),
                )
            ]
        ) from None
    except StepFailed:
        rec.detail = "".join(seen)
        raise
    rec.detail = "".join(seen)


def _console_at(dev: LabDevice, baud: int) -> ConsoleClient:
    if dev._console is None:
        dev._console = ConsoleClient(dev.path, baud)
    return dev._console


def _reject(st: Step, text: str) -> None:
    for bad in st.reject:
        i = text.find(bad)
        if i >= 0:
            raise StepFailed(
                [FailureRecord(f"console printed {bad!r}", f"no {bad!r}", line_at(text, i))]
            )


def _during_runner(st: Step, dev: LabDevice) -> Callable[[], None]:
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
