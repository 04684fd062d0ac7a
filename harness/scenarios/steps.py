"""The schema of a scenario's steps: one parser per step kind, each building its own
typed class (:mod:`harness.scenarios.model`): ``engine`` (:class:`EngineStep`),
``console`` (:class:`ConsoleStep`), ``power_on``/``power_cycle`` (:class:`PowerOnStep`,
:class:`PowerCycleStep`), ``power_off``, ``fault`` (:class:`FaultStep`), ``wait`` and
``tftp_server``; ``title``/``on`` on any of them.

:func:`parse_step` reads what every step shares and hands the body to the kind's parser
(:data:`STEP_PARSERS`), recording located problems. The faults of a ``fault:`` step are
the lab's fault dataclasses (:mod:`harness.lab.faults`), the vocabulary the fault
campaign uses too; :func:`fault_to_yaml` writes one back as the schema reads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import yaml

from emulators.serial import LinkFaults
from harness.boards import BOARDS
from harness.lab.console import BAUDS
from harness.lab.faults import Fault, LinkByteFault, PowerLoss, TftpPowerCut
from harness.lab.netfaults import TftpFaults
from harness.scenarios.model import (
    ConsoleStep,
    DuringAction,
    EngineStep,
    FaultStep,
    Matcher,
    PowerCycleStep,
    PowerOffStep,
    PowerOnStep,
    Scenario,
    Step,
    TftpServerStep,
    WaitStep,
)
from harness.scenarios.values import (
    LINK_FAULT_KEYS,
    NETWORK_KEYS,
    check_placeholders,
    parse_device_ref,
    parse_fault_fields,
    parse_json_expect,
    parse_matcher,
    parse_text_check,
)
from harness.scenarios.yamlnodes import NodeReader

STEP_KINDS = (
    "engine",
    "console",
    "power_on",
    "power_off",
    "power_cycle",
    "fault",
    "wait",
    "tftp_server",
)
COMMON_STEP_KEYS = ("title", "on")
# keys beside the kind that only some kinds take
STEP_EXTRA_KEYS = {
    "expect": ("engine",),
    "during": ("engine",),
    "auto_options": ("engine",),
    "timeout": ("engine", "console", "power_on", "power_cycle"),
}
FAULT_KEYS = (
    "power_loss",
    "power_cut",
    "watchdog",
    "log_lines",
    "corrupt_byte",
    "drop_byte",
    "link",
    "network",
    "tftp_power_cut",
)


@dataclass
class StepNode:
    """One step being read: its mapping (key -> (key node, value node)), the body of
    its kind, where it is and on which board it runs."""

    ctx: NodeReader
    node: yaml.Node
    m: dict[str, tuple[yaml.Node, yaml.Node]]
    body: yaml.Node
    where: str
    sc: Scenario
    device: str
    board: str

    @property
    def w(self) -> str:
        return f"{self.where}.{next(k for k in STEP_KINDS if k in self.m)}"

    def common(self) -> dict[str, Any]:
        return {"line": self.node.start_mark.line + 1, "device": self.device, "title": self.title}

    @property
    def title(self) -> str:
        if "title" in self.m:
            return self.ctx.string(self.m["title"][1], f"{self.where}.title") or ""
        return ""

    def timeout(self, default: float) -> float:
        if "timeout" in self.m:
            t = self.ctx.number(self.m["timeout"][1], f"{self.where}.timeout", 0.001)
            if t is not None:
                return t
        return default

    def null_body(self) -> bool:
        return isinstance(self.body, yaml.ScalarNode) and self.body.tag == "tag:yaml.org,2002:null"


def parse_step(ctx: NodeReader, node: yaml.Node, where: str, sc: Scenario) -> Step | None:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode) and ctx.value(node) in (
        "power_on",
        "power_off",
        "power_cycle",
    ):
        cls = {"power_on": PowerOnStep, "power_off": PowerOffStep, "power_cycle": PowerCycleStep}
        return cls[str(ctx.value(node))](line=line, device=sc.main_device)
    m = ctx.mapping(
        node,
        where,
        STEP_KINDS + COMMON_STEP_KEYS + tuple(STEP_EXTRA_KEYS),
        what="a step (engine:, console:, power_cycle:, fault:, wait:, ...)",
    )
    if m is None:
        return None
    kinds = [k for k in STEP_KINDS if k in m]
    if len(kinds) != 1:
        ctx.problem(
            node,
            where,
            "a step has exactly one of "
            + ", ".join(STEP_KINDS)
            + (f" (got {', '.join(kinds)})" if kinds else ""),
        )
        return None
    kind = kinds[0]
    device = sc.main_device
    if "on" in m:
        device = parse_device_ref(ctx, m["on"][1], f"{where}.on", sc) or sc.main_device
    for k, kinds_ok in STEP_EXTRA_KEYS.items():
        if k in m and kind not in kinds_ok:
            hint = (
                " (put expect inside console: {...})" if k == "expect" and kind == "console" else ""
            )
            ctx.problem(m[k][0], f"{where}.{k}", f"{k!r} does not apply to a {kind} step{hint}")
    sn = StepNode(ctx, node, m, m[kind][1], where, sc, device, sc.devices[device].board)
    return STEP_PARSERS[kind](sn)


# -- engine ----------------------------------------------------------------------------------


def parse_engine(sn: StepNode) -> EngineStep:
    ctx, w, m = sn.ctx, sn.w, sn.m
    st = EngineStep(**sn.common(), timeout=sn.timeout(300.0))
    items = ctx.seq(sn.body, w)
    if items is not None:
        if not items:
            ctx.problem(
                sn.body,
                w,
                'give the engine\'s arguments, e.g. [hi3511, backup, --out, "{work}/backup.bin"]',
            )
        for i, n in enumerate(items):
            s = ctx.string(n, f"{w}[{i}]")
            if s is not None:
                check_placeholders(ctx, n, f"{w}[{i}]", s, extra=tuple(sn.sc.variants))
                st.argv.append(s)
        if st.argv and st.argv[0] not in BOARDS:
            ctx.problem(
                items[0],
                f"{w}[0]",
                f"the first argument names the board ({', '.join(sorted(BOARDS))}), got {st.argv[0]!r}",
            )
        elif st.argv and st.argv[0] != sn.board:
            ctx.problem(
                items[0],
                f"{w}[0]",
                f"this step runs on device {st.device!r}, a {sn.board}, not a {st.argv[0]}",
            )
    if "auto_options" in m:
        v = ctx.boolean(m["auto_options"][1], f"{sn.where}.auto_options")
        st.auto_options = True if v is None else v
    if "expect" in m:
        _engine_expect(sn, st, m["expect"][1])
    if "during" in m:
        st.during = _during(sn, m["during"][1])
    return st


def _engine_expect(sn: StepNode, st: EngineStep, node: yaml.Node) -> None:
    ctx = sn.ctx
    em = ctx.mapping(node, f"{sn.where}.expect", ("exit", "json", "stdout", "stderr"))
    for k, (_, v) in (em or {}).items():
        ew = f"{sn.where}.expect.{k}"
        if k == "exit":
            if isinstance(v, yaml.ScalarNode) and ctx.value(v) == "nonzero":
                st.exit = Matcher({"not": 0})
            else:
                mt = parse_matcher(ctx, v, ew)
                if mt is not None:
                    st.exit = mt
        elif k == "json":
            st.json = parse_json_expect(ctx, v, ew)
        elif k == "stdout":
            st.stdout = parse_text_check(ctx, v, ew, sn.sc, allow_device=False)
        else:
            st.stderr = parse_text_check(ctx, v, ew, sn.sc, allow_device=False)


def _during(sn: StepNode, node: yaml.Node) -> list[DuringAction]:
    ctx, out = sn.ctx, []
    for i, dn in enumerate(ctx.seq(node, f"{sn.where}.during") or []):
        dw = f"{sn.where}.during[{i}]"
        dm = ctx.mapping(dn, dw, ("after", "when", "do"), ("do",))
        if dm is None:
            continue
        act = DuringAction(action="")
        if "do" in dm:
            act.action = (
                ctx.choice(dm["do"][1], f"{dw}.do", ("power_off", "power_on", "power_cycle")) or ""
            )
        if "after" in dm:
            act.after = ctx.number(dm["after"][1], f"{dw}.after")
        if "when" in dm:
            act.when = ctx.string(dm["when"][1], f"{dw}.when")
        if ("after" in dm) == ("when" in dm):
            ctx.problem(
                dn,
                dw,
                "say when with exactly one of after: SECONDS or when: TEXT the device prints",
            )
        out.append(act)
    return out


# -- console ---------------------------------------------------------------------------------

CONSOLE_KEYS = (
    "send",
    "send_hex",
    "line",
    "lines",
    "prompt",
    "expect",
    "regex",
    "reject",
    "timeout",
    "baud",
)


def parse_console(sn: StepNode) -> ConsoleStep:
    ctx, w = sn.ctx, sn.w
    st = ConsoleStep(**sn.common(), timeout=sn.timeout(10.0))
    cm = ctx.mapping(sn.body, w, CONSOLE_KEYS)
    if cm is None:
        return st
    sends = [k for k in ("send", "send_hex", "line", "lines") if k in cm]
    if len(sends) > 1:
        ctx.problem(sn.body, w, f"use one of send, send_hex, line, lines (got {', '.join(sends)})")
    if not sends and "expect" not in cm:
        ctx.problem(
            sn.body,
            w,
            "a console step sends something (send:, line:, lines:) or waits for something (expect:)",
        )
    if "send" in cm:
        s = ctx.string(cm["send"][1], f"{w}.send")
        st.send = (s or "").encode("latin-1", "replace")
    if "send_hex" in cm:
        s = re.sub(r"\s+", "", ctx.string(cm["send_hex"][1], f"{w}.send_hex") or "")
        try:
            st.send = bytes.fromhex(s)
        except ValueError:
            ctx.problem(cm["send_hex"][1], f"{w}.send_hex", "not hexadecimal bytes (e.g. '55')")
    if "line" in cm:
        s = ctx.string(cm["line"][1], f"{w}.line")
        st.send = ((s or "") + "\r").encode("latin-1", "replace")
    if "lines" in cm:
        st.lines = ctx.strings(cm["lines"][1], f"{w}.lines") or []
        if "expect" in cm:
            ctx.problem(
                cm["expect"][0],
                f"{w}.expect",
                "with lines:, each line waits for the prompt; say which with prompt: instead of expect:",
            )
        if BOARDS[sn.board].prompt is None and "prompt" not in cm:
            ctx.problem(
                sn.body,
                w,
                f"{sn.board} has no standard prompt: say what to wait for after each line with prompt:",
            )
    if "prompt" in cm:
        st.prompt = ctx.string(cm["prompt"][1], f"{w}.prompt")
    if "expect" in cm:
        st.expect = ctx.strings(cm["expect"][1], f"{w}.expect") or []
    if "regex" in cm:
        st.regex = bool(ctx.boolean(cm["regex"][1], f"{w}.regex"))
    if st.regex:
        for i, p in enumerate(st.expect):
            try:
                re.compile(p)
            except re.error as e:
                ctx.problem(
                    cm["expect"][1], f"{w}.expect[{i}]", f"not a valid regular expression: {e}"
                )
    if "reject" in cm:
        st.reject = ctx.strings(cm["reject"][1], f"{w}.reject") or []
    if "timeout" in cm:
        st.timeout = ctx.number(cm["timeout"][1], f"{w}.timeout", 0.001) or st.timeout
    if "baud" in cm:
        b = ctx.integer(cm["baud"][1], f"{w}.baud", 1)
        if b is not None and b not in BAUDS:
            ctx.problem(cm["baud"][1], f"{w}.baud", f"{b} is not a standard baud rate")
        st.baud = b
    return st


# -- power -----------------------------------------------------------------------------------


def parse_power_on(sn: StepNode) -> PowerOnStep:
    cls = PowerCycleStep if "power_cycle" in sn.m else PowerOnStep
    st = cls(**sn.common(), timeout=sn.timeout(10.0))
    if sn.null_body():
        return st
    ctx, w = sn.ctx, sn.w
    pm = ctx.mapping(sn.body, w, ("then", "expect", "timeout"))
    if pm is None:
        return st
    if "then" in pm:
        st.then = ctx.choice(pm["then"][1], f"{w}.then", ("prompt", "boot")) or "boot"
        if st.then == "prompt" and BOARDS[sn.board].autoboot is None:
            ctx.problem(
                pm["then"][1], f"{w}.then", f"{sn.board} has no autoboot to stop; use then: boot"
            )
    if "expect" in pm:
        st.expect = ctx.strings(pm["expect"][1], f"{w}.expect") or []
    if "timeout" in pm:
        st.timeout = ctx.number(pm["timeout"][1], f"{w}.timeout", 0.001) or st.timeout
    return st


def parse_power_off(sn: StepNode) -> PowerOffStep:
    if not sn.null_body():
        sn.ctx.mapping(sn.body, sn.w, ())
    return PowerOffStep(**sn.common())


# -- fault -----------------------------------------------------------------------------------


def parse_fault(sn: StepNode) -> FaultStep:
    ctx, w = sn.ctx, sn.w
    st = FaultStep(**sn.common())
    fm = ctx.mapping(sn.body, w, FAULT_KEYS)
    if fm is not None and not fm:
        ctx.problem(sn.body, w, "name a fault: " + ", ".join(FAULT_KEYS))
    for k, (_, v) in (fm or {}).items():
        f = _fault(sn, k, v, f"{w}.{k}")
        if f is not None:
            st.faults.append(f)
    return st


_OFF = (False, "off", None)
_LINK_BYTE_KEYS = ("at_byte", "direction", "text", "power_back")


def _fault(sn: StepNode, key: str, v: yaml.Node, where: str) -> Fault | None:
    ctx = sn.ctx
    if key in ("network", "tftp_power_cut") and not BOARDS[sn.board].tftp:
        ctx.problem(v, where, f"{sn.board} has no network")
        return None
    kw: dict[str, Any] | None
    if key == "link":
        if isinstance(v, yaml.ScalarNode) and ctx.value(v) in _OFF:
            return LinkFaults()
        kw = parse_fault_fields(ctx, v, where, LINK_FAULT_KEYS)
        return None if kw is None else _build(ctx, v, where, LinkFaults, kw)
    if key == "network":
        if isinstance(v, yaml.ScalarNode) and ctx.value(v) in _OFF:
            return TftpFaults()
        kw = parse_fault_fields(ctx, v, where, NETWORK_KEYS)
        return None if kw is None else _build(ctx, v, where, TftpFaults, kw)
    if key == "power_loss":
        kw = _fields(ctx, v, where, ("program_bytes", "erase_sectors", "power_back"))
        return None if kw is None else _build(ctx, v, where, PowerLoss, kw)
    if key == "tftp_power_cut":
        kw = _fields(ctx, v, where, ("after_packets", "power_back"), required=("after_packets",))
        return None if kw is None else _build(ctx, v, where, TftpPowerCut, kw)
    allowed = ("at_byte", "direction") + {
        "power_cut": ("power_back",),
        "log_lines": ("text",),
        "watchdog": (),
        "corrupt_byte": ("xor", "after_text", "value"),
        "drop_byte": ("after_text", "value"),
    }[key]
    kw = _fields(ctx, v, where, allowed, required=("at_byte",))
    return None if kw is None else _build(ctx, v, where, LinkByteFault, {"action": key, **kw})


def _fields(
    ctx: NodeReader,
    node: yaml.Node,
    where: str,
    allowed: tuple[str, ...],
    required: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    m = ctx.mapping(node, where, allowed, required)
    if m is None:
        return None
    out: dict[str, Any] = {}
    for k, (_, v) in m.items():
        w = f"{where}.{k}"
        if k == "power_back":
            if isinstance(v, yaml.ScalarNode) and v.tag == "tag:yaml.org,2002:null":
                out[k] = None
            else:
                out[k] = ctx.number(v, w)
        elif k == "direction":
            out[k] = ctx.choice(v, w, ("host", "device"))
        elif k in ("text", "after_text"):
            out[k] = ctx.string(v, w)
        else:
            out[k] = ctx.integer(v, w, 0)
    return None if any(x is None and k != "power_back" for k, x in out.items()) else out


def _build(
    ctx: NodeReader, node: yaml.Node, where: str, cls: Callable[..., Fault], kw: dict[str, Any]
) -> Fault | None:
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        ctx.problem(node, where, str(e))
        return None


def fault_to_yaml(f: Fault) -> dict[str, Any]:
    """``f`` as the body of a ``fault:`` step (``{key: {...}}``), the inverse of the parser."""
    if isinstance(f, LinkByteFault):
        body = {k: v for k, v in asdict(f).items() if k != "action"}
        for k in ("text", "after_text", "xor", "value"):
            if body[k] in ("", None):
                del body[k]
        if f.action != "power_cut":
            del body["power_back"]
        return {f.action: body}
    key = {PowerLoss: "power_loss", TftpPowerCut: "tftp_power_cut", LinkFaults: "link"}.get(
        type(f), "network"
    )
    default = (
        f if key not in ("link", "network") else LinkFaults() if key == "link" else TftpFaults()
    )
    same_as_default = key in ("link", "network")
    body = {
        fl.name: getattr(f, fl.name)
        for fl in fields(f)
        if not same_as_default or getattr(f, fl.name) != getattr(default, fl.name)
    }
    if key == "power_loss":
        body = {k: v for k, v in body.items() if v is not None or k == "power_back"}
    return {key: body or "off"}


# -- wait, tftp_server -----------------------------------------------------------------------


def parse_wait(sn: StepNode) -> WaitStep:
    ctx, w = sn.ctx, sn.w
    st = WaitStep(**sn.common())
    if isinstance(sn.body, yaml.MappingNode):
        wm = ctx.mapping(sn.body, w, ("seconds",), ("seconds",))
        if wm and "seconds" in wm:
            st.seconds = ctx.number(wm["seconds"][1], f"{w}.seconds") or 0.0
    else:
        st.seconds = ctx.number(sn.body, w) or 0.0
    return st


def parse_tftp_server(sn: StepNode) -> TftpServerStep:
    st = TftpServerStep(**sn.common())
    if not BOARDS[sn.board].tftp:
        sn.ctx.problem(sn.body, sn.w, f"{sn.board} has no network")
    v = sn.ctx.boolean(sn.body, sn.w)
    st.on = True if v is None else v
    return st


STEP_PARSERS: dict[str, Callable[[StepNode], Step]] = {
    "engine": parse_engine,
    "console": parse_console,
    "power_on": parse_power_on,
    "power_cycle": parse_power_on,
    "power_off": parse_power_off,
    "fault": parse_fault,
    "wait": parse_wait,
    "tftp_server": parse_tftp_server,
}
