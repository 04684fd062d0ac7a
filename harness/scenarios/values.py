"""Schema pieces used in several places of a scenario file.

Images (``{builder: ...}``, ``{file: ...}``, ``{erased: true}``, ``{hex: ...}``),
flash ranges (partition names, ``[start, end]``, ``start+length``), value
checks (:class:`~harness.scenario_model.Matcher`), expected JSON, text checks,
link and network fault fields, device references (``on:``) and placeholders
(``{work}``...). Each reads YAML nodes with a
:class:`~harness.scenarios.yamlnodes.NodeReader` and records located problems.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import yaml

from emulators.serial import LinkFaults
from harness.boards import BOARDS
from harness.lab.netfaults import DIRECTIONS, TftpFaults
from harness.scenarios.model import (
    ANY_PLACEHOLDER_RE,
    MATCH_OPS,
    PLACEHOLDERS,
    ImageSpec,
    Matcher,
    Range,
    Scenario,
    TextCheck,
)
from harness.scenarios.yamlnodes import NodeReader, describe_value, did_you_mean, node_kind

LINK_FAULT_KEYS = tuple(f.name for f in fields(LinkFaults))
# trigger_after is armed by a tftp_power_cut fault, which says what the trigger does
NETWORK_KEYS = tuple(f.name for f in fields(TftpFaults) if f.name != "trigger_after")
_RATES = ("bit_error_rate", "drop_rate", "burst_rate", "loss", "duplicate", "delay_rate")


def parse_fault_fields(
    ctx: NodeReader, node: yaml.Node, where: str, allowed: tuple[str, ...]
) -> dict[str, Any] | None:
    m = ctx.mapping(node, where, allowed)
    if m is None:
        return None
    out: dict[str, Any] = {}
    for k, (_, v) in m.items():
        w = f"{where}.{k}"
        if k in _RATES:
            x = ctx.number(v, w)
            if x is not None and x > 1:
                ctx.problem(v, w, f"a rate is between 0 and 1, got {x:g}")
            elif x is not None:
                out[k] = x
        elif k == "delay":
            x = ctx.number(v, w)
            if x is not None:
                out[k] = x
        elif k in ("directions", "direction"):
            choice = ctx.choice(v, w, ("both", "tx", "rx") if k == "directions" else DIRECTIONS)
            if choice is not None:
                out[k] = choice
        else:  # counts, possibly null
            if isinstance(v, yaml.ScalarNode) and v.tag == "tag:yaml.org,2002:null":
                out[k] = None
            else:
                x = ctx.integer(v, w, 0)
                if x is not None:
                    out[k] = x
    return out


IMAGE_KINDS = ("builder", "file", "erased", "hex")


def parse_image(
    ctx: NodeReader, node: yaml.Node, where: str, board: str, *, allow_factory: bool
) -> ImageSpec | None:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        v = ctx.value(node)
        if v == "erased":
            return ImageSpec("erased", line)
        if v == "factory" and allow_factory:
            return ImageSpec("factory", line)
        ctx.problem(
            node,
            where,
            "expected {builder: NAME, ...}, {file: PATH}, {erased: true}, {hex: ...}"
            + (", 'factory'" if allow_factory else "")
            + f" or 'erased', got {node_kind(node)}",
        )
        return None
    m = ctx.mapping(
        node, where, None, what="an image ({builder: ...}, {file: ...}, {erased: true})"
    )
    if m is None:
        return None
    kinds = [k for k in IMAGE_KINDS if k in m]
    if len(kinds) != 1:
        ctx.problem(
            node,
            where,
            "say where the bytes come from with exactly one of builder, file, erased, hex"
            + (f" (got {', '.join(kinds)})" if kinds else ""),
        )
        return None
    kind = kinds[0]
    im = ImageSpec(kind, line)
    if kind == "builder":
        b = ctx.string(m["builder"][1], f"{where}.builder")
        if b is None:
            return None
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", b):
            ctx.problem(m["builder"][1], f"{where}.builder", f"{b!r} is not a builder name")
            return None
        im.builder = b
        for k, (kn, vn) in m.items():
            if k == "builder":
                continue
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                ctx.problem(kn, f"{where}.{k}", f"{k!r} is not a valid argument name")
                continue
            im.args[k] = _builder_arg(ctx, vn, f"{where}.{k}", board)
        return im
    allowed = {"file": ("file", "offset", "length"), "erased": ("erased", "size"), "hex": ("hex",)}[
        kind
    ]
    for k, (kn, _) in m.items():
        if k not in allowed:
            ctx.problem(
                kn,
                f"{where}.{k}",
                f"unknown key {k!r} for a {kind} image; allowed: {', '.join(allowed)}",
            )
    if kind == "file":
        im.file = ctx.string(m["file"][1], f"{where}.file") or ""
        if "offset" in m:
            im.offset = ctx.integer(m["offset"][1], f"{where}.offset") or 0
        if "length" in m:
            im.length = ctx.integer(m["length"][1], f"{where}.length")
    elif kind == "erased":
        if ctx.boolean(m["erased"][1], f"{where}.erased") is False:
            ctx.problem(
                m["erased"][1],
                f"{where}.erased",
                "erased: false says nothing; remove it or use another source",
            )
        if "size" in m:
            im.size = ctx.integer(m["size"][1], f"{where}.size", 1)
    else:
        h = ctx.string(m["hex"][1], f"{where}.hex") or ""
        h = re.sub(r"\s+", "", h)
        try:
            bytes.fromhex(h)
        except ValueError:
            ctx.problem(m["hex"][1], f"{where}.hex", "not hexadecimal bytes (e.g. 'de ad be ef')")
        im.hex = h
    return im


def _builder_arg(ctx: NodeReader, node: yaml.Node, where: str, board: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value]
        if "builder" in keys:
            inner = parse_image(ctx, node, where, board, allow_factory=False)
            if inner is None:
                return None
            return {"builder": inner.builder, **inner.args}
    return ctx.value(node)


def parse_range(
    ctx: NodeReader, node: yaml.Node, where: str, board: str, *, open_end: bool
) -> Range | None:
    spec = BOARDS[board]
    parts = spec.all_partitions()
    size = spec.flash_size
    start: int | None = None
    end: int | None = None
    label = ""
    if isinstance(node, yaml.SequenceNode):
        items = [ctx.integer(n, where) for n in node.value]
        if len(items) != 2 or items[0] is None or items[1] is None:
            ctx.problem(node, where, "a range list is [start, end] with end not included")
            return None
        start, end = items[0], items[1]
        label = f"[{start:#x}, {end:#x})"
    elif isinstance(node, yaml.ScalarNode):
        v = ctx.value(node)
        if isinstance(v, bool) or v is None:
            ctx.problem(
                node,
                where,
                f"expected a partition name, an offset, [start, end] or 'start+length', got {node_kind(node)}",
            )
            return None
        if isinstance(v, str):
            v = spec.resolve_partition(v)  # an old name: today's, with a note (issue 20)
        if isinstance(v, int):
            start, label = v, f"{v:#x}"
            if not open_end:
                ctx.problem(
                    node,
                    where,
                    "this check needs a whole range: [start, end], 'start+length' or a partition name",
                )
                return None
        elif isinstance(v, str) and "+" in v:
            a, _, b = v.partition("+")
            try:
                start, end = int(a.strip(), 0), int(a.strip(), 0) + int(b.strip(), 0)
            except ValueError:
                ctx.problem(
                    node, where, f"{v!r}: 'start+length' needs two numbers, e.g. 0x200000+0xd00000"
                )
                return None
            label = v
        elif isinstance(v, str) and v in parts:
            start, end = parts[v]
            label = v
        else:
            ctx.problem(
                node,
                where,
                f"unknown partition {v!r}"
                + did_you_mean(str(v), list(parts))
                + f"; {board} has: {', '.join(parts)}",
            )
            return None
    else:
        ctx.problem(node, where, f"expected a range, got {node_kind(node)}")
        return None
    if start is None:
        return None
    if start < 0 or start >= size or (end is not None and (end <= start or end > size)):
        ctx.problem(
            node, where, f"range {label} is outside the {size:#x}-byte flash of {board} or empty"
        )
        return None
    return Range(start, end, label)


def parse_matcher(ctx: NodeReader, node: yaml.Node, where: str) -> Matcher | None:
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value]
        if keys and all(k in MATCH_OPS for k in keys):
            m = ctx.mapping(node, where, MATCH_OPS) or {}
            ops: dict[str, Any] = {}
            for k, (_, v) in m.items():
                val = ctx.value(v)
                if k in ("min", "max") and (
                    not isinstance(val, int | float) or isinstance(val, bool)
                ):
                    ctx.problem(v, f"{where}.{k}", f"expected a number, got {describe_value(val)}")
                    continue
                if k == "matches":
                    try:
                        re.compile(str(val))
                    except re.error as e:
                        ctx.problem(v, f"{where}.matches", f"not a valid regular expression: {e}")
                        continue
                if k == "one_of" and not isinstance(val, list):
                    ctx.problem(v, f"{where}.one_of", "expected a list of values")
                    continue
                ops[k] = val
            return Matcher(ops)
    if isinstance(node, yaml.SequenceNode):
        return Matcher({"eq": ctx.value(node)})
    if isinstance(node, yaml.ScalarNode):
        return Matcher({"eq": ctx.value(node)})
    ctx.problem(node, where, f"expected a value or a check like {{min: 1}}, got {node_kind(node)}")
    return None


def parse_json_expect(ctx: NodeReader, node: yaml.Node, where: str) -> dict[str, Any] | None:
    m = ctx.mapping(node, where, None)
    if m is None:
        return None
    out: dict[str, Any] = {}
    for k, (_, v) in m.items():
        w = f"{where}.{k}"
        if isinstance(v, yaml.MappingNode):
            keys = [kk.value for kk, _ in v.value]
            if keys and all(kk in MATCH_OPS for kk in keys):
                out[k] = parse_matcher(ctx, v, w)
            else:
                out[k] = parse_json_expect(ctx, v, w)
        else:
            out[k] = parse_matcher(ctx, v, w)
    return out


def parse_text_check(
    ctx: NodeReader, node: yaml.Node, where: str, sc: Scenario, *, allow_device: bool
) -> TextCheck | None:
    keys = ("contains", "not_contains", "matches", "not_matches") + (
        ("on",) if allow_device else ()
    )
    if isinstance(node, yaml.ScalarNode | yaml.SequenceNode):
        s = ctx.strings(node, where)
        return (
            None
            if s is None
            else TextCheck(contains=s, device=sc.main_device, line=node.start_mark.line + 1)
        )
    m = ctx.mapping(node, where, keys)
    if m is None:
        return None
    tc = TextCheck(device=sc.main_device, line=node.start_mark.line + 1)
    for k in ("contains", "not_contains", "matches", "not_matches"):
        if k in m:
            vals = ctx.strings(m[k][1], f"{where}.{k}") or []
            if k.endswith("matches"):
                for i, p in enumerate(vals):
                    try:
                        re.compile(p)
                    except re.error as e:
                        ctx.problem(
                            m[k][1], f"{where}.{k}[{i}]", f"not a valid regular expression: {e}"
                        )
            setattr(tc, k, vals)
    if "on" in m:
        tc.device = parse_device_ref(ctx, m["on"][1], f"{where}.on", sc) or sc.main_device
    return tc


def parse_device_ref(ctx: NodeReader, node: yaml.Node, where: str, sc: Scenario) -> str | None:
    name = ctx.string(node, where)
    if name is not None and name not in sc.devices:
        ctx.problem(node, where, f"no device named {name!r}; devices: {', '.join(sc.devices)}")
        return None
    return name


def check_placeholders(
    ctx: NodeReader, node: yaml.Node, where: str, text: str, extra: tuple[str, ...] = ()
) -> None:
    """Every ``{name}`` in ``text`` is a placeholder (or one of ``extra``: the variant keys)."""
    known = PLACEHOLDERS + extra
    for m in ANY_PLACEHOLDER_RE.finditer(text):
        if m.group(1) not in known:
            ctx.problem(
                node,
                where,
                f"unknown placeholder {{{m.group(1)}}}; known: "
                + ", ".join("{" + p + "}" for p in known),
            )
