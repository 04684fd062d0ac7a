"""The schema of a scenario's final ``expect:`` block: ``flash``, ``boot_log``,
``typed``, ``transcript`` and ``files``.

:func:`parse_expectations` turns the node into
:class:`~harness.scenario_model.Expectations`, recording located problems.
"""

from __future__ import annotations

import re

import yaml

from harness.scenarios.model import Expectations, FileCheck, FlashCheck, Scenario
from harness.scenarios.values import (
    check_placeholders,
    parse_device_ref,
    parse_image,
    parse_matcher,
    parse_range,
    parse_text_check,
)
from harness.scenarios.yamlnodes import NodeReader


def parse_expectations(ctx: NodeReader, node: yaml.Node, where: str, sc: Scenario) -> Expectations:
    ex = Expectations()
    m = ctx.mapping(node, where, ("flash", "boot_log", "typed", "transcript", "files"))
    if m is None:
        return ex
    if "flash" in m:
        for i, fn in enumerate(ctx.seq(m["flash"][1], f"{where}.flash") or []):
            fc = _flash_check(ctx, fn, f"{where}.flash[{i}]", sc)
            if fc is not None:
                ex.flash.append(fc)
    for k in ("boot_log", "typed", "transcript"):
        if k in m:
            v = m[k][1]
            items = (
                v.value
                if isinstance(v, yaml.SequenceNode)
                and all(isinstance(x, yaml.MappingNode) for x in v.value)
                and v.value
                else [v]
            )
            for i, n in enumerate(items):
                tc = parse_text_check(
                    ctx,
                    n,
                    f"{where}.{k}" + (f"[{i}]" if len(items) > 1 else ""),
                    sc,
                    allow_device=True,
                )
                if tc is not None:
                    getattr(ex, k).append(tc)
    if "files" in m:
        fm = ctx.mapping(m["files"][1], f"{where}.files", None)
        for fname, (kn, vn) in (fm or {}).items():
            fw = f"{where}.files.{fname}"
            fic = FileCheck(line=kn.start_mark.line + 1, path=fname, device=sc.main_device)
            check_placeholders(ctx, kn, fw, fname)
            cm = ctx.mapping(
                vn,
                fw,
                (
                    "exists",
                    "size",
                    "equals",
                    "equals_flash",
                    "equals_initial_flash",
                    "on",
                    "sha256",
                ),
            )
            if cm is None:
                continue
            if "on" in cm:
                fic.device = parse_device_ref(ctx, cm["on"][1], f"{fw}.on", sc) or sc.main_device
            if "exists" in cm:
                exists = ctx.boolean(cm["exists"][1], f"{fw}.exists")
                fic.exists = True if exists is None else exists
            if "size" in cm:
                fic.size = parse_matcher(ctx, cm["size"][1], f"{fw}.size")
            if "equals" in cm:
                fic.equals = parse_image(
                    ctx, cm["equals"][1], f"{fw}.equals", sc.board, allow_factory=False
                )
            if "equals_flash" in cm:
                fic.equals_flash = parse_range(
                    ctx,
                    cm["equals_flash"][1],
                    f"{fw}.equals_flash",
                    sc.devices[fic.device].board,
                    open_end=False,
                )
            if "equals_initial_flash" in cm:
                fic.equals_initial_flash = parse_range(
                    ctx,
                    cm["equals_initial_flash"][1],
                    f"{fw}.equals_initial_flash",
                    sc.devices[fic.device].board,
                    open_end=False,
                )
            if "sha256" in cm:
                fic.sha256 = (ctx.string(cm["sha256"][1], f"{fw}.sha256") or "").lower()
            if not fic.exists and len(cm) > 1 + ("on" in cm):
                ctx.problem(vn, fw, "a file expected not to exist cannot have other checks")
            ex.files.append(fic)
    return ex


def _flash_check(ctx: NodeReader, node: yaml.Node, where: str, sc: Scenario) -> FlashCheck | None:
    m = ctx.mapping(
        node,
        where,
        ("range", "on", "equals", "rest_erased", "erased", "unchanged", "lost_bits", "sha256"),
        ("range",),
    )
    if m is None:
        return None
    device = sc.main_device
    if "on" in m:
        device = parse_device_ref(ctx, m["on"][1], f"{where}.on", sc) or device
    kinds = [k for k in ("equals", "erased", "unchanged", "lost_bits", "sha256") if k in m]
    if len(kinds) != 1:
        ctx.problem(
            node,
            where,
            "a flash check has exactly one of equals, erased, unchanged, lost_bits, sha256"
            + (f" (got {', '.join(kinds)})" if kinds else ""),
        )
        return None
    kind = kinds[0]
    if "range" not in m:
        return None
    rng = parse_range(
        ctx, m["range"][1], f"{where}.range", sc.devices[device].board, open_end=kind == "equals"
    )
    if rng is None:
        return None
    fc = FlashCheck(line=node.start_mark.line + 1, device=device, range=rng, kind=kind)
    v = m[kind][1]
    if kind == "equals":
        fc.image = parse_image(
            ctx, v, f"{where}.equals", sc.devices[device].board, allow_factory=False
        )
    elif kind in ("erased", "unchanged"):
        if ctx.boolean(v, f"{where}.{kind}") is False:
            ctx.problem(
                v, f"{where}.{kind}", f"{kind}: false is not a check; remove it or use another"
            )
    elif kind == "lost_bits":
        fc.lost_bits = parse_matcher(ctx, v, f"{where}.lost_bits")
        if fc.lost_bits is not None and "eq" in fc.lost_bits.ops:
            val = fc.lost_bits.ops["eq"]
            if not isinstance(val, int) or isinstance(val, bool) or val < 0:
                ctx.problem(
                    v,
                    f"{where}.lost_bits",
                    f"expected a count or a check like {{min: 1}}, got {val!r}",
                )
    else:
        fc.sha256 = (ctx.string(v, f"{where}.sha256") or "").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", fc.sha256):
            ctx.problem(v, f"{where}.sha256", "expected 64 hexadecimal digits")
    if "rest_erased" in m:
        if kind != "equals":
            ctx.problem(m["rest_erased"][0], f"{where}.rest_erased", "rest_erased goes with equals")
        fc.rest_erased = bool(ctx.boolean(m["rest_erased"][1], f"{where}.rest_erased"))
        if fc.rest_erased and rng.end is None:
            ctx.problem(
                m["rest_erased"][1], f"{where}.rest_erased", "rest_erased needs a range with an end"
            )
    return fc
