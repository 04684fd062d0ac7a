"""The firmware builders a scenario may name, read from the builders themselves.

A board's builders are the functions its firmware module
(``harness.firmware.<board>``, :attr:`~harness.boards.BoardSpec.firmware`) lists
in ``BUILDERS`` (every public function defined there when it has no such list),
plus the board's short names (``vendor`` for ``vendor_flash``). Their arguments,
types and defaults come from their signatures, their one-line description from
their docstrings, and the values an argument may take from the module's
``BUILDER_CHOICES`` (``{"firmware": ("A", "B")}``), so
``camrescue scenarios builders`` and the checks of a scenario file cannot drift
from the code. :func:`check_call` is what the loader asks about one
``{builder: NAME, ...}``.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.boards import BOARDS, Unavailable, board_spec, import_attr
from harness.scenarios.yamlnodes import did_you_mean


@dataclass(frozen=True)
class BuilderArg:
    name: str
    type: Any  # the resolved annotation (inspect.Parameter.empty when there is none)
    required: bool
    default: Any = None
    choices: tuple[Any, ...] = ()

    def type_text(self) -> str:
        return type_text(self.type)

    def describe(self) -> str:
        out = f"{self.name}: {self.type_text()}"
        if self.choices:
            out += " (one of " + ", ".join(map(str, self.choices)) + ")"
        return out + (" (required)" if self.required else f" = {self.default!r}")


@dataclass(frozen=True)
class BuilderInfo:
    board: str
    name: str  # the function's name
    aliases: tuple[str, ...]
    summary: str
    args: tuple[BuilderArg, ...] = field(default_factory=tuple)

    def arg(self, name: str) -> BuilderArg | None:
        return next((a for a in self.args if a.name == name), None)


def firmware_module(board: str) -> Any:
    """The board's firmware module; raises :class:`Unavailable`."""
    spec = board_spec(board)
    if spec.firmware is None:
        raise Unavailable(f"board {board} has no firmware builders")
    return import_attr(spec.firmware)


def builders(board: str) -> list[BuilderInfo]:
    """Every builder of ``board``, in the module's order. Raises :class:`Unavailable`."""
    module = firmware_module(board)
    spec = BOARDS[board]
    names = getattr(module, "BUILDERS", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if inspect.isfunction(inspect.unwrap(v))
            and not n.startswith("_")
            and getattr(v, "__module__", "") == module.__name__
        ]
    choices: Mapping[str, Sequence[Any]] = getattr(module, "BUILDER_CHOICES", {})
    out = []
    for n in names:
        fn = getattr(module, n)
        aliases = tuple(a for a, target in spec.builder_aliases.items() if target == n)
        out.append(_info(board, n, fn, aliases, choices))
    return out


def _info(
    board: str,
    name: str,
    fn: Callable[..., Any],
    aliases: tuple[str, ...],
    choices: Mapping[str, Sequence[Any]],
) -> BuilderInfo:
    raw = inspect.unwrap(fn)
    try:
        hints = typing.get_type_hints(raw)
    except Exception:  # an annotation that does not resolve: show it as written
        hints = {}
    args = []
    for p in inspect.signature(raw).parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        required = p.default is inspect.Parameter.empty
        args.append(
            BuilderArg(
                p.name,
                hints.get(p.name, p.annotation),
                required,
                None if required else p.default,
                tuple(choices.get(p.name, ())),
            )
        )
    doc = inspect.getdoc(raw) or ""
    first = " ".join(doc.split("\n\n")[0].split()).replace("`", "")
    summary = re.split(r"(?<=\.)\s+(?=[A-Z(])", first, maxsplit=1)[0]
    return BuilderInfo(board, name, aliases, summary, tuple(args))


def find(board: str, name: str) -> BuilderInfo | None:
    """The builder ``name`` (or a short name of one) of ``board``; raises :class:`Unavailable`."""
    for b in builders(board):
        if name == b.name or name in b.aliases:
            return b
    return None


def known_names(board: str) -> list[str]:
    out: list[str] = []
    for b in builders(board):
        out += [*b.aliases, b.name]
    return out


def type_text(tp: Any) -> str:
    """An annotation in the words of the builders' table: ``int``, ``str | None``."""
    if tp is inspect.Parameter.empty or tp is Any:
        return "any"
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if tp is bytes:
        return "image"
    if origin is not None:
        args = typing.get_args(tp)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(type_text(a) for a in args)}]" if args else base
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def accepts(tp: Any, value: Any) -> bool:
    """Whether a YAML ``value`` fits the annotation ``tp`` (an image argument takes
    a nested ``{builder: ...}``)."""
    if tp is inspect.Parameter.empty or tp is Any or isinstance(tp, str):
        return True
    if tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(a, value) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if isinstance(value, dict) and "builder" in value:
        return tp in (bytes, bytearray) or origin is None and tp is object
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp in (bytes, bytearray):
        return isinstance(value, bytes | bytearray)
    check = origin or tp
    if check in (Sequence, list, tuple, typing.Sequence):
        return isinstance(value, list | tuple)
    if check in (Mapping, dict, typing.Mapping):
        return isinstance(value, dict)
    if isinstance(check, type):
        return isinstance(value, check)
    return True


def check_call(
    board: str, name: str, args: Mapping[str, Any], variants: Mapping[str, Sequence[Any]]
) -> list[tuple[str, str]]:
    """What is wrong with ``{builder: name, **args}`` on ``board``: ``(argument, message)``
    pairs (argument "" for the builder's name; ``a.b`` inside a nested builder).
    Empty when it is right or the builders cannot be imported here (the scenario
    then waits for them). A value that is exactly ``"{KEY}"`` of a variant is
    checked for each of the variant's values."""
    try:
        info = find(board, name)
        names = known_names(board)
    except Unavailable:
        return []
    if info is None:
        return [
            (
                "",
                f"{board} has no builder {name!r}"
                + did_you_mean(name, names)
                + f"; its builders: {', '.join(names)} (camrescue scenarios builders)",
            )
        ]
    out: list[tuple[str, str]] = []
    valid = ", ".join(a.describe() for a in info.args) or "none"
    for key, value in args.items():
        arg = info.arg(key)
        if arg is None:
            out.append(
                (
                    key,
                    f"{info.name} has no argument {key!r}"
                    + did_you_mean(key, [a.name for a in info.args])
                    + f"; its arguments: {valid}",
                )
            )
            continue
        values = [value]
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            values = list(variants.get(value[1:-1], [value]))
        for v in values:
            if isinstance(v, dict) and "builder" in v:
                inner = {k: x for k, x in v.items() if k != "builder"}
                if not accepts(arg.type, v):
                    out.append((key, f"{info.name}'s {key} is {arg.type_text()}, not an image"))
                out += [
                    (f"{key}.{w}" if w else key, m)
                    for w, m in check_call(board, str(v["builder"]), inner, variants)
                ]
                continue
            if not accepts(arg.type, v):
                quote = (
                    f' (write it in quotes: "{v}")'
                    if accepts(arg.type, str(v)) and isinstance(v, int | float)
                    else ""
                )
                out.append((key, f"{info.name}'s {key} is {arg.type_text()}, got {v!r}{quote}"))
            elif arg.choices and v not in arg.choices:
                out.append(
                    (
                        key,
                        f"unknown {key} {v!r} for {info.name}"
                        + did_you_mean(str(v), [str(c) for c in arg.choices])
                        + f"; known: {', '.join(map(str, arg.choices))}",
                    )
                )
    for a in info.args:
        if a.required and a.name not in args:
            out.append(
                ("", f"{info.name} needs {a.name} ({a.type_text()}); its arguments: {valid}")
            )
    return out
