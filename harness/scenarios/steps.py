"""The schema of a scenario's steps: ``engine``, ``console``, ``power_on``/``off``/``cycle``,
``fault``, ``wait`` and ``tftp_server``, with ``title``/``on`` on any of them.

:func:`parse_step` turns one ``steps[i]`` node into a
:class:`~harness.scenario_model.Step`, recording located problems.
"""

from __future__ import annotations

import re

import yaml

from harness.boards import BOARDS
from harness.lab.console import BAUDS
from harness.scenarios.model import DuringAction, Matcher, Scenario, Step
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


def parse_step(ctx: NodeReader, node: yaml.Node, where: str, sc: Scenario) -> Step | None:
    if isinstance(node, yaml.ScalarNode) and ctx.value(node) in (
        "power_on",
        "power_off",
        "power_cycle",
    ):
        return Step(kind=str(ctx.value(node)), line=node.start_mark.line + 1, device=sc.main_device)
    m = ctx.mapping(
        node,
        where,
        STEP_KINDS + COMMON_STEP_KEYS + ("expect", "timeout", "during", "auto_options"),
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
    st = Step(kind=kind, line=node.start_mark.line + 1, device=sc.main_device)
    w = f"{where}.{kind}"
    if "title" in m:
        st.title = ctx.string(m["title"][1], f"{where}.title") or ""
    if "on" in m:
        st.device = parse_device_ref(ctx, m["on"][1], f"{where}.on", sc) or sc.main_device
    board = sc.devices[st.device].board
    only_for = {
        "expect": ("engine",),
        "during": ("engine",),
        "auto_options": ("engine",),
        "timeout": ("engine", "console", "power_on", "power_cycle"),
    }
    for k, kinds_ok in only_for.items():
        if k in m and kind not in kinds_ok:
            hint = (
                " (put expect inside console: {...})" if k == "expect" and kind == "console" else ""
            )
            ctx.problem(m[k][0], f"{where}.{k}", f"{k!r} does not apply to a {kind} step{hint}")
    if kind == "engine":
        st.timeout = 300.0
    if "timeout" in m:
        t = ctx.number(m["timeout"][1], f"{where}.timeout", 0.001)
        if t is not None:
            st.timeout = t
    body = m[kind][1]
    if kind == "engine":
        items = ctx.seq(body, w)
        if items is not None:
            if not items:
                ctx.problem(
                    body,
                    w,
                    'give the engine\'s arguments, e.g. [hi3511, backup, --out, "{work}/backup.bin"]',
                )
            for i, n in enumerate(items):
                s = ctx.string(n, f"{w}[{i}]")
                if s is not None:
                    check_placeholders(ctx, n, f"{w}[{i}]", s)
                    st.argv.append(s)
            if st.argv and st.argv[0] not in BOARDS:
                ctx.problem(
                    items[0],
                    f"{w}[0]",
                    f"the first argument names the board ({', '.join(sorted(BOARDS))}), got {st.argv[0]!r}",
                )
            elif st.argv and st.argv[0] != board:
                ctx.problem(
                    items[0],
                    f"{w}[0]",
                    f"this step runs on device {st.device!r}, a {board}, not a {st.argv[0]}",
                )
        if "auto_options" in m:
            v = ctx.boolean(m["auto_options"][1], f"{where}.auto_options")
            st.auto_options = True if v is None else v
        st.exit = Matcher({"eq": 0})
        if "expect" in m:
            em = ctx.mapping(
                m["expect"][1], f"{where}.expect", ("exit", "json", "stdout", "stderr")
            )
            for k, (_, v) in (em or {}).items():
                ew = f"{where}.expect.{k}"
                if k == "exit":
                    if isinstance(v, yaml.ScalarNode) and ctx.value(v) == "nonzero":
                        st.exit = Matcher({"not": 0})
                    else:
                        mt = parse_matcher(ctx, v, ew)
                        if mt is not None:
                            st.exit = mt
                elif k == "json":
                    st.json = parse_json_expect(ctx, v, ew)
                else:
                    setattr(st, k, parse_text_check(ctx, v, ew, sc, allow_device=False))
        if "during" in m:
            for i, dn in enumerate(ctx.seq(m["during"][1], f"{where}.during") or []):
                dw = f"{where}.during[{i}]"
                dm = ctx.mapping(dn, dw, ("after", "when", "do"), ("do",))
                if dm is None:
                    continue
                act = DuringAction(action="")
                if "do" in dm:
                    act.action = (
                        ctx.choice(
                            dm["do"][1], f"{dw}.do", ("power_off", "power_on", "power_cycle")
                        )
                        or ""
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
                st.during.append(act)
    elif kind == "console":
        cm = ctx.mapping(
            body,
            w,
            (
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
            ),
        )
        if cm is None:
            return st
        sends = [k for k in ("send", "send_hex", "line", "lines") if k in cm]
        if len(sends) > 1:
            ctx.problem(body, w, f"use one of send, send_hex, line, lines (got {', '.join(sends)})")
        if not sends and "expect" not in cm:
            ctx.problem(
                body,
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
            if BOARDS[board].prompt is None and "prompt" not in cm:
                ctx.problem(
                    body,
                    w,
                    f"{board} has no standard prompt: say what to wait for after each line with prompt:",
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
    elif kind in ("power_on", "power_cycle", "power_off"):
        if not (isinstance(body, yaml.ScalarNode) and body.tag == "tag:yaml.org,2002:null"):
            allowed = () if kind == "power_off" else ("then", "expect", "timeout")
            pm = ctx.mapping(body, w, allowed)
            if pm is not None:
                if "then" in pm:
                    st.then = ctx.choice(pm["then"][1], f"{w}.then", ("prompt", "boot")) or "boot"
                    if st.then == "prompt" and BOARDS[board].autoboot is None:
                        ctx.problem(
                            pm["then"][1],
                            f"{w}.then",
                            f"{board} has no autoboot to stop; use then: boot",
                        )
                if "expect" in pm:
                    st.expect = ctx.strings(pm["expect"][1], f"{w}.expect") or []
                if "timeout" in pm:
                    st.timeout = ctx.number(pm["timeout"][1], f"{w}.timeout", 0.001) or st.timeout
    elif kind == "fault":
        fm = ctx.mapping(body, w, ("power_loss", "link", "network"))
        if fm is not None and not fm:
            ctx.problem(body, w, "name a fault: power_loss, link or network")
        for k, (_, v) in (fm or {}).items():
            if k == "power_loss":
                pl = ctx.mapping(v, f"{w}.power_loss", ("program_bytes", "erase_sectors"))
                if pl is not None:
                    if len(pl) != 1:
                        ctx.problem(
                            v, f"{w}.power_loss", "give one of program_bytes: N or erase_sectors: N"
                        )
                    st.power_loss = {
                        kk: ctx.integer(vv, f"{w}.power_loss.{kk}") or 0
                        for kk, (_, vv) in pl.items()
                    }
            elif k == "link":
                if isinstance(v, yaml.ScalarNode) and ctx.value(v) in (False, "off", None):
                    st.link = {}
                else:
                    st.link = parse_fault_fields(ctx, v, f"{w}.link", LINK_FAULT_KEYS)
            else:
                if not BOARDS[board].tftp:
                    ctx.problem(v, f"{w}.network", f"{board} has no network")
                if isinstance(v, yaml.ScalarNode) and ctx.value(v) in (False, "off", None):
                    st.network = {}
                else:
                    st.network = parse_fault_fields(ctx, v, f"{w}.network", NETWORK_KEYS)
    elif kind == "wait":
        if isinstance(body, yaml.MappingNode):
            wm = ctx.mapping(body, w, ("seconds",), ("seconds",))
            if wm and "seconds" in wm:
                st.seconds = ctx.number(wm["seconds"][1], f"{w}.seconds") or 0.0
        else:
            st.seconds = ctx.number(body, w) or 0.0
    elif kind == "tftp_server":
        if not BOARDS[board].tftp:
            ctx.problem(body, w, f"{board} has no network")
        v = ctx.boolean(body, w)
        st.on = True if v is None else v
    return st
