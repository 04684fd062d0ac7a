"""Loading a scenario file: YAML with line numbers, the top-level schema, and discovery.

:func:`load_scenario` / :func:`parse_scenario` either return a
:class:`~harness.scenario_model.Scenario` or raise
:class:`~harness.scenarios.yamlnodes.ScenarioError` listing every problem as
``file:line:column: where: what``. Loading never runs anything. The top level
(name, board, markers, requires, timeout), devices and files are checked here;
steps in :mod:`harness.scenarios.steps`, the final ``expect:`` in
:mod:`harness.scenarios.expect_schema`, and the pieces they share in
:mod:`harness.scenarios.values`; then what the file names is checked against
the code (builders and their arguments, files, engine command lines) in
:mod:`harness.scenarios.validate`. docs/scenarios.md is the guide for writers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from harness.boards import BOARDS, device_options, known_capability
from harness.scenarios.expect_schema import parse_expectations
from harness.scenarios.model import DeviceSpec, Scenario
from harness.scenarios.steps import parse_step
from harness.scenarios.validate import validate
from harness.scenarios.values import (
    LINK_FAULT_KEYS,
    NETWORK_KEYS,
    parse_fault_fields,
    parse_image,
)
from harness.scenarios.yamlnodes import NodeReader, Problem, ScenarioError, did_you_mean

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_KEYS = (
    "name",
    "board",
    "description",
    "markers",
    "requires",
    "timeout",
    "device",
    "devices",
    "flash",
    "files",
    "variants",
    "steps",
    "expect",
)
DEVICE_KEYS = (
    "board",
    "seed",
    "mode",
    "start",
    "faults",
    "network",
    "options",
    "tftp_server",
    "flash",
)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check one scenario file. Raises :class:`ScenarioError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"cannot read the file: {e}")]) from e
    return parse_scenario(text, path)


def _deepest_point(text: str) -> tuple[int, int]:
    """Line and column (1-based) where flow brackets or indentation nest deepest."""
    best, where, depth = -1, (1, 1), 0
    for lineno, line in enumerate(text.splitlines(), 1):
        indent = len(line) - len(line.lstrip(" "))
        for col, ch in enumerate(line, 1):
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            if depth + indent > best:
                best, where = depth + indent, (lineno, col)
    return where


def parse_scenario(text: str, path: str | Path = "<scenario>") -> Scenario:
    path = Path(path)
    ctx = NodeReader(str(path))
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(x for x in (e.context, e.problem) if x) or str(e)
        raise ScenarioError([Problem(str(path), line, col, "", f"not valid YAML: {msg}")]) from None
    except yaml.YAMLError as e:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"not valid YAML: {e}")]) from None
    except RecursionError:  # the YAML composer itself recurses on nesting
        line, col = _deepest_point(text)
        raise ScenarioError(
            [Problem(str(path), line, col, "", "the document is nested too deeply")]
        ) from None
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        raise ScenarioError(
            [
                Problem(
                    str(path), 1, 1, "", "the file is empty; a scenario needs name, board and steps"
                )
            ]
        )
    if len(nodes) > 1:
        ctx.problem(
            nodes[1], "", "one scenario per file: this file has more than one YAML document"
        )
    try:
        sc = _scenario(ctx, nodes[0], path)
    except RecursionError:
        ctx.problem(nodes[0], "", "the document is nested too deeply")
        sc = None
    if sc is not None:
        validate(ctx, nodes[0], sc)
    if ctx.problems or sc is None:
        if not ctx.problems:
            ctx.problem(nodes[0], "", "not a valid scenario")
        raise ScenarioError(sorted(ctx.problems, key=lambda p: (p.line, p.column)))
    return sc


def _scenario(ctx: NodeReader, root: yaml.Node, path: Path) -> Scenario | None:
    m = ctx.mapping(
        root,
        "",
        TOP_KEYS,
        ("name", "board", "steps"),
        what="a mapping (name:, board:, steps:, ...)",
    )
    if m is None:
        return None
    sc = Scenario(name="", board="", path=path, line=root.start_mark.line + 1)
    if "name" in m:
        name = ctx.string(m["name"][1], "name")
        if name is not None and not _NAME_RE.match(name):
            ctx.problem(m["name"][1], "name", "use letters, digits, '-', '_' and '.' (no spaces)")
        sc.name = name or ""
    if "board" in m:
        board = ctx.string(m["board"][1], "board")
        if board is not None and board not in BOARDS:
            ctx.problem(
                m["board"][1],
                "board",
                f"unknown board {board!r}"
                + did_you_mean(board, list(BOARDS))
                + f"; known: {', '.join(sorted(BOARDS))}",
            )
            board = None
        sc.board = board or ""
    if "description" in m:
        sc.description = ctx.string(m["description"][1], "description") or ""
    if "markers" in m:
        for i, mk in enumerate(ctx.strings(m["markers"][1], "markers") or []):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", mk):
                ctx.problem(m["markers"][1], f"markers[{i}]", f"{mk!r} is not a valid marker name")
            else:
                sc.markers.append(mk)
    if "requires" in m:
        for i, cap in enumerate(ctx.strings(m["requires"][1], "requires") or []):
            if not known_capability(cap):
                ctx.problem(
                    m["requires"][1],
                    f"requires[{i}]",
                    f"unknown capability {cap!r}; use BOARD, BOARD_engine, BOARD_firmware, "
                    "tool:NAME or module:NAME",
                )
            else:
                sc.requires.append(cap)
    if "timeout" in m:
        t = ctx.number(m["timeout"][1], "timeout", 0.001)
        if t is not None:
            sc.timeout = t
    if not sc.board:
        return None
    if "variants" in m:
        sc.variants = _variants(ctx, m["variants"][1], sc.board)

    # devices
    if "devices" in m:
        for k in ("device", "flash"):
            if k in m:
                ctx.problem(
                    m[k][0],
                    k,
                    f"use either 'devices' or '{k}', not both (put flash inside each device)",
                )
        dm = ctx.mapping(m["devices"][1], "devices", None)
        if dm is not None:
            if not dm:
                ctx.problem(m["devices"][1], "devices", "name at least one device")
            for dname, (kn, vn) in dm.items():
                if not _NAME_RE.match(dname):
                    ctx.problem(
                        kn, f"devices.{dname}", "device names use letters, digits, '-', '_', '.'"
                    )
                    continue
                d = _device(ctx, vn, f"devices.{dname}", dname, sc.board, allow_flash=True)
                if d is not None:
                    sc.devices[dname] = d
    else:
        dnode = m["device"][1] if "device" in m else None
        d = _device(ctx, dnode, "device", sc.board, sc.board, allow_flash=False)
        if d is not None:
            if "flash" in m:
                d.flash = parse_image(ctx, m["flash"][1], "flash", sc.board, allow_factory=True)
            sc.devices[d.name] = d
    if not sc.devices:
        return None

    if "files" in m:
        fm = ctx.mapping(m["files"][1], "files", None)
        for fname, (kn, vn) in (fm or {}).items():
            if fname.startswith("/") or ".." in Path(fname).parts or not fname:
                ctx.problem(
                    kn,
                    f"files.{fname}",
                    "file names are relative to the work directory (no '/' at the start, no '..')",
                )
                continue
            im = parse_image(ctx, vn, f"files.{fname}", sc.board, allow_factory=False)
            if im is not None:
                sc.files[fname] = im

    steps_node = m.get("steps", (None, None))[1]
    if steps_node is not None:
        items = ctx.seq(steps_node, "steps")
        if items is not None and not items:
            ctx.problem(steps_node, "steps", "a scenario needs at least one step")
        for i, sn in enumerate(items or []):
            st = parse_step(ctx, sn, f"steps[{i}]", sc)
            if st is not None:
                sc.steps.append(st)
    if "expect" in m:
        sc.expect = parse_expectations(ctx, m["expect"][1], "expect", sc)
    return sc


def _device(
    ctx: NodeReader, node: yaml.Node | None, where: str, name: str, board: str, *, allow_flash: bool
) -> DeviceSpec | None:
    d = DeviceSpec(name=name, board=board, line=node.start_mark.line + 1 if node is not None else 1)
    if node is None:
        return d
    keys = (
        DEVICE_KEYS if allow_flash else tuple(k for k in DEVICE_KEYS if k not in ("board", "flash"))
    )
    m = ctx.mapping(node, where, keys)
    if m is None:
        return None
    if "board" in m:
        b = ctx.string(m["board"][1], f"{where}.board")
        if b is not None and b not in BOARDS:
            ctx.problem(
                m["board"][1],
                f"{where}.board",
                f"unknown board {b!r}; known: {', '.join(sorted(BOARDS))}",
            )
        elif b is not None:
            d.board = b
    if "seed" in m:
        d.seed = ctx.integer(m["seed"][1], f"{where}.seed", None) or 0
    if "mode" in m:
        d.realtime = ctx.choice(m["mode"][1], f"{where}.mode", ("fast", "realtime")) == "realtime"
    if "start" in m:
        d.start = ctx.choice(m["start"][1], f"{where}.start", ("prompt", "boot", "off")) or "prompt"
    if "faults" in m:
        d.faults = parse_fault_fields(ctx, m["faults"][1], f"{where}.faults", LINK_FAULT_KEYS) or {}
    if "network" in m:
        d.network = parse_fault_fields(ctx, m["network"][1], f"{where}.network", NETWORK_KEYS) or {}
    if "options" in m:
        om = ctx.mapping(m["options"][1], f"{where}.options", None)
        if om is not None:
            for k, (kn, vn) in om.items():
                _check_option(ctx, kn, f"{where}.options.{k}", d.board, k)
                _check_choice(ctx, vn, f"{where}.options.{k}", d.board, k, ctx.value(vn))
            d.options = {k: ctx.value(v) for k, (_, v) in om.items()}
    if "tftp_server" in m:
        v = ctx.boolean(m["tftp_server"][1], f"{where}.tftp_server")
        d.tftp_server = True if v is None else v
    if "flash" in m:
        d.flash = parse_image(ctx, m["flash"][1], f"{where}.flash", d.board, allow_factory=True)
    return d


def _check_choice(
    ctx: NodeReader, node: yaml.Node, where: str, board: str, key: str, value: Any
) -> None:
    """A device option that takes only some values (``BoardSpec.option_choices``) must
    get one of them: a misspelt ``uboot: upstrem`` is refused when the file loads."""
    spec = BOARDS.get(board)
    if spec is None:
        return
    choices = spec.option_choices.get(spec.option_aliases.get(key, key))
    if choices is None or value in choices:
        return
    ctx.problem(
        node,
        where,
        f"{value!r} is not a value of {key}"
        + did_you_mean(str(value), list(choices))
        + f"; one of: {', '.join(choices)}",
    )


def _check_option(ctx: NodeReader, node: yaml.Node, where: str, board: str, key: str) -> None:
    """A device option must exist for the board, where the registry can say so."""
    known = device_options(board)
    if known is not None and key not in known:
        ctx.problem(
            node,
            where,
            f"{board} has no device option {key!r}"
            + did_you_mean(key, list(known))
            + f"; it has: {', '.join(sorted(known)) or 'none'}",
        )


def _variants(ctx: NodeReader, node: yaml.Node, board: str) -> dict[str, list[Any]]:
    """``variants: {OPTION: [v1, v2]}``: run the scenario once per value of a device option."""
    out: dict[str, list[Any]] = {}
    vm = ctx.mapping(node, "variants", None, what="{OPTION: [value, ...]}")
    if vm is None:
        return out
    if not vm:
        ctx.problem(node, "variants", "name a device option and its values, e.g. {uboot: [a, b]}")
    for key, (kn, vn) in vm.items():
        w = f"variants.{key}"
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            ctx.problem(kn, w, f"{key!r} is not an option name")
            continue
        _check_option(ctx, kn, w, board, key)
        items = ctx.seq(vn, w)
        if items is None:
            continue
        values = [ctx.value(n) for n in items]
        if not values:
            ctx.problem(vn, w, "give at least one value")
        for i, (n, v) in enumerate(zip(items, values, strict=True)):
            if not isinstance(v, str | int | float | bool) or v is None:
                ctx.problem(n, f"{w}[{i}]", "a variant value is a string, number or boolean")
            elif not re.match(r"^[A-Za-z0-9_.+-]+$", str(v)):
                ctx.problem(
                    n, f"{w}[{i}]", f"{v!r}: use letters, digits and - _ . + (it names a test)"
                )
            elif values.index(v) != i:
                ctx.problem(n, f"{w}[{i}]", f"{v!r} is listed twice")
            else:
                _check_choice(ctx, n, f"{w}[{i}]", board, key, v)
        out[key] = values
    return out


def discover(paths: list[str | Path]) -> list[Path]:
    """Scenario files under ``paths`` (files or directories), sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file())
        elif p.suffix in (".yaml", ".yml"):
            out.append(p)
    return out
