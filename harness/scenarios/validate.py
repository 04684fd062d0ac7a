"""The checks of a loaded scenario that need more than its YAML: the code it names.

Run by the loader after the schema checks, so a scenario that would fail at
run time for a reason knowable now is refused when the file is loaded, with
the file, the line and what is valid:

* every ``{builder: NAME, ...}`` names a builder of its board, with arguments
  that exist, of the right type, with a known value where the builder module
  lists the values (``firmware: A`` or ``B``), and every required one
  (:mod:`harness.scenarios.builders`; a ``"{KEY}"`` variant value is checked for
  each value of the variant);
* every ``{file: PATH}`` without placeholders exists (relative to the
  scenario file's directory; a ``*`` must match exactly one file);
* every engine step's command line, with the options the lab adds, is one the
  engine's own argparse parser accepts (``recovery.cli.build_parser``: parsed,
  never run), unless the step expects exit 2, the engine's usage error;
* every JSON path in a step's ``expect: {json: ...}`` is well formed.

Code that cannot be imported here (a board still being written) is not
checked: the scenario then waits for it (``camrescue scenarios list``).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from harness.boards import BOARDS, Unavailable, import_attr
from harness.scenarios.builders import check_call
from harness.scenarios.jsonpath import is_path, parse_path
from harness.scenarios.model import ANY_PLACEHOLDER_RE, EngineStep, ImageSpec, Matcher, Scenario
from harness.scenarios.yamlnodes import NodeReader, Problem

EXIT_USAGE = 2  # argparse's, and the engine's (recovery/errors.py EXIT_USAGE)
# what the placeholders stand for while a command line is only parsed
_DUMMY = {
    "work": "/tmp/camrescue-work",
    "port": "/dev/ttyUSB0",
    "tftp_port": "6969",
    "tftp_bind": "127.0.0.1:6969",
    "dir": "/tmp/camrescue-dev",
    "flash_file": "/tmp/camrescue-dev/flash.bin",
}


def validate(ctx: NodeReader, root: yaml.Node, sc: Scenario) -> None:
    """Record a located problem in ``ctx`` for each thing of ``sc`` the code would refuse."""
    builder_nodes = _builder_nodes(root)
    for where, board, im in _images(sc):
        if im.kind == "builder":
            node = _take(builder_nodes, im)
            for arg, msg in check_call(board, im.builder, im.args, sc.variants):
                _problem(ctx, _arg_node(node, arg) if node else None, im.line, where, arg, msg)
        elif im.kind == "file":
            _check_file(ctx, sc, where, im)
    step_nodes = _step_nodes(root)
    for i, st in enumerate(sc.steps):
        if isinstance(st, EngineStep):
            node = step_nodes.get(st.line)
            _check_engine(ctx, sc, st, f"steps[{i}].engine", node)
            if st.json is not None:
                _check_paths(ctx, st.json, f"steps[{i}].expect.json", node, st.line)


def _problem(
    ctx: NodeReader, node: yaml.Node | None, line: int, where: str, arg: str, msg: str
) -> None:
    w = f"{where}.{arg}" if arg else where
    if node is not None:
        ctx.problem(node, w, msg)
    else:
        ctx.problems.append(Problem(ctx.file, line, 1, w, msg))


def _images(sc: Scenario) -> list[tuple[str, str, ImageSpec]]:
    out: list[tuple[str, str, ImageSpec]] = []
    single = list(sc.devices) == [sc.board]  # device: and flash: at the top
    for name, d in sc.devices.items():
        if d.flash is not None:
            out.append(("flash" if single else f"devices.{name}.flash", d.board, d.flash))
    for fname, im in sc.files.items():
        out.append((f"files.{fname}", sc.board, im))
    for i, fc in enumerate(sc.expect.flash):
        if fc.image is not None:
            out.append((f"expect.flash[{i}].equals", sc.devices[fc.device].board, fc.image))
    for fic in sc.expect.files:
        if fic.equals is not None:
            out.append((f"expect.files.{fic.path}.equals", sc.board, fic.equals))
    return out


# -- where things are in the YAML ------------------------------------------------------
def _walk(node: yaml.Node) -> list[yaml.Node]:
    """Every node once: a YAML alias shares its node, so an alias bomb is a small graph."""
    out, todo, seen = [], [node], set()
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                todo += [k, v]
        elif isinstance(n, yaml.SequenceNode):
            todo += list(n.value)
    return out


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _builder_nodes(root: yaml.Node) -> dict[tuple[int, str], list[yaml.Node]]:
    """Mapping nodes with a ``builder:`` key, by (line, builder name)."""
    out: dict[tuple[int, str], list[yaml.Node]] = {}
    for n in _walk(root):
        b = _get(n, "builder")
        if isinstance(b, yaml.ScalarNode):
            out.setdefault((n.start_mark.line + 1, str(b.value)), []).append(n)
    for nodes in out.values():
        nodes.sort(key=lambda n: n.start_mark.column)
    return out


def _take(index: dict[tuple[int, str], list[yaml.Node]], im: ImageSpec) -> yaml.Node | None:
    nodes = index.get((im.line, im.builder))
    return nodes.pop(0) if nodes else None


def _arg_node(node: yaml.Node, arg: str) -> yaml.Node:
    """The node of argument ``a.b`` (``b`` of a nested builder), or the closest one."""
    if not arg:
        return _get(node, "builder") or node
    here = node
    parts = arg.split(".")
    for i, part in enumerate(parts):
        found = None
        if isinstance(here, yaml.MappingNode):
            for k, v in here.value:
                if isinstance(k, yaml.ScalarNode) and k.value == part:
                    found = k if i == len(parts) - 1 else v
        if found is None:
            return here
        here = found
    return here


def _step_nodes(root: yaml.Node) -> dict[int, yaml.Node]:
    steps = _get(root, "steps")
    if not isinstance(steps, yaml.SequenceNode):
        return {}
    return {n.start_mark.line + 1: n for n in steps.value}


# -- files -----------------------------------------------------------------------------
def _check_file(ctx: NodeReader, sc: Scenario, where: str, im: ImageSpec) -> None:
    if not im.file or ANY_PLACEHOLDER_RE.search(im.file):
        return
    p = Path(im.file)
    if not p.is_absolute():
        p = sc.path.resolve().parent / p
    if any(ch in p.name for ch in "*?["):
        n = len(list(p.parent.glob(p.name)))
        if n != 1:
            ctx.problems.append(
                Problem(
                    ctx.file,
                    im.line,
                    1,
                    f"{where}.file",
                    f"{n} files match {str(p)!r}; a pattern must match exactly one "
                    "(paths are relative to the scenario file's directory)",
                )
            )
    elif not p.is_file():
        ctx.problems.append(
            Problem(
                ctx.file,
                im.line,
                1,
                f"{where}.file",
                f"no such file {str(p)!r} (paths are relative to the scenario file's "
                'directory; "{work}/NAME" is a file of the run)',
            )
        )


# -- engine command lines --------------------------------------------------------------
@lru_cache(maxsize=8)
def _parser(ref: str) -> Any:
    """The argparse parser of the engine ``ref`` ("module:main"), or None."""
    build = import_attr(ref.partition(":")[0] + ":build_parser")
    return build() if callable(build) else None


def _expects_usage_error(m: Matcher) -> bool:
    return m.check(EXIT_USAGE) is None and m.check(0) is not None and "not" not in m.ops


def _check_engine(
    ctx: NodeReader, sc: Scenario, st: EngineStep, where: str, step_node: yaml.Node | None
) -> None:
    if not st.argv or st.argv[0] not in BOARDS or _expects_usage_error(st.exit):
        return
    if any(a in ("-h", "--help", "--version") for a in st.argv):
        return
    spec = BOARDS[sc.devices[st.device].board]
    if not isinstance(spec.engine_cli, str):
        return
    try:
        parser = _parser(spec.engine_cli)
    except Unavailable:
        return  # the scenario waits for the engine
    if parser is None:
        return
    seen: set[str] = set()
    for run in sc.expand():
        values = {**_DUMMY, "scenario": sc.name, "device": st.device}
        values.update({k: str(v) for k, v in run.variant.items()})
        argv = [_fill(a, values) for a in st.argv]
        full = _with_auto_options(argv, spec) if st.auto_options else argv
        why = _unknown_option(parser, argv) or _parse(parser, full)
        if why is None or why in seen:
            continue
        seen.add(why)
        items = _get(step_node, "engine")
        node = _bad_item(items, st.argv, why) if items is not None else step_node
        msg = f"the engine would refuse this command line: {why}"
        msg += _option_hint(parser, argv, why)
        op = " ".join(argv[:2]) if _operation_options(parser, argv) is not None else argv[0]
        msg += f" (see camrescue {op} --help)"
        if node is not None:
            ctx.problem(node, where, msg)
        else:
            ctx.problems.append(Problem(ctx.file, st.line, 1, where, msg))


def _fill(text: str, values: dict[str, str]) -> str:
    return ANY_PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _with_auto_options(argv: list[str], spec: Any) -> list[str]:
    """What :meth:`harness.lab.devices.LabDevice.engine_argv` adds."""
    argv = list(argv)
    if "--port" not in argv:
        argv += ["--port", _DUMMY["port"]]
    op = argv[1] if len(argv) > 1 else ""
    tftp = spec.tftp and op not in spec.no_tftp_ops
    if tftp and "--tftp-bind" not in argv and "--no-server" not in argv:
        argv += ["--tftp-bind", _DUMMY["tftp_bind"]]
    if "--json" not in argv:
        argv.append("--json")
    return argv


def _parse(parser: Any, argv: list[str]) -> str | None:
    """None when ``parser`` accepts ``argv``, else its complaint (nothing is run)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit:
        lines = [x for x in err.getvalue().splitlines() if "error:" in x]
        return lines[-1].split("error:", 1)[1].strip() if lines else "a usage error"
    except Exception as e:  # recovery.cli's parser raises instead of exiting
        text = str(e)
        return text.split(": ", 1)[1] if text.startswith("camrescue") and ": " in text else text
    return None


def _bad_item(items: yaml.Node, argv: list[str], why: str) -> yaml.Node:
    """The argument the complaint names (quoted, or a word of it), else the list."""
    if isinstance(items, yaml.SequenceNode):
        for n, a in zip(items.value, argv, strict=False):
            quoted = f"'{a}'" in why
            named = re.search(r"(^|[\s:])" + re.escape(a) + r"($|[\s,:])", why)
            if quoted or (named and (a.startswith("-") or "unrecognized" in why)):
                return n
    return items


def _operation_options(parser: Any, argv: list[str]) -> list[str] | None:
    """The long options of ``BOARD OPERATION`` (None when argv names no operation)."""
    sub = parser
    for word in argv[:2]:
        choices = _subcommands(sub)
        if choices is None or word not in choices:
            return None
        sub = choices[word]
    return sorted(
        {o for a in sub._actions for o in a.option_strings if o.startswith("--")}
        - {"--help", "--port", "--json"}
    )


def _unknown_option(parser: Any, argv: list[str]) -> str | None:
    """An option the operation does not have (not even as an abbreviation): argparse
    would first complain about a missing required one instead."""
    options = _operation_options(parser, argv)
    if options is None:
        return None
    for a in argv[2:]:
        if a == "--":
            break
        name = a.split("=", 1)[0]
        own = name in ("--port", "--json", "--help")
        if name.startswith("--") and not own and not any(o.startswith(name) for o in options):
            return f"unrecognized arguments: {a}"
    return None


def _option_hint(parser: Any, argv: list[str], why: str) -> str:
    """For an unknown option: the closest one the operation has, and all of them."""
    m = re.search(r"unrecognized arguments: (.*)", why)
    options = _operation_options(parser, argv)
    if not m or options is None:
        return ""
    bad = [w.split("=", 1)[0] for w in m.group(1).split() if w.startswith("-")]
    hint = difflib.get_close_matches(bad[0], options, 1) if bad else []
    return (f"; did you mean {hint[0]}?" if hint else "") + f"; its options: {' '.join(options)}"


def _subcommands(p: Any) -> dict[str, Any] | None:
    for a in getattr(p, "_actions", []):
        if isinstance(getattr(a, "choices", None), dict):
            return dict(a.choices)
    return None


# -- JSON paths ------------------------------------------------------------------------
def _check_paths(
    ctx: NodeReader, want: dict[str, Any], where: str, step_node: yaml.Node | None, line: int
) -> None:
    for k, v in want.items():
        if is_path(k):
            try:
                parse_path(k)
            except ValueError as e:
                key = next(
                    (
                        n
                        for n in (_walk(step_node) if step_node is not None else [])
                        if isinstance(n, yaml.ScalarNode) and n.value == k
                    ),
                    None,
                )
                _problem(ctx, key, line, where, k, str(e))
        if isinstance(v, dict):
            _check_paths(ctx, v, f"{where}.{k}", step_node, line)
