"""Reading a YAML document node by node, with every problem located at file:line:column.

:class:`NodeReader` converts composed YAML nodes (``yaml.compose``) into values of
the expected shape -- mappings with allowed and required keys, lists, texts,
numbers, choices -- and records a :class:`Problem` with the node's mark instead
of stopping at the first one. :class:`ScenarioError` carries them all; its
message is one ``file:line:column: where: what`` line per problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    where: str
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ScenarioError(Exception):
    """A scenario file is not valid. ``problems`` lists each with file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int:
        return self.problems[0].line


class NodeReader:
    """Walks YAML nodes, converts them, and collects problems with their marks."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, node: yaml.Node | None, where: str, message: str) -> None:
        line = col = 1
        if node is not None and node.start_mark is not None:
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
        self.problems.append(Problem(self.file, line, col, where, message))

    def value(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    # -- shapes ----------------------------------------------------------------
    def mapping(
        self,
        node: yaml.Node,
        where: str,
        allowed: tuple[str, ...] | None,
        required: tuple[str, ...] = (),
        what: str = "a mapping",
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """``{key: (key_node, value_node)}`` or None (problem recorded)."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, f"expected {what}, got {node_kind(node)}")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                self.problem(k, where, "keys must be plain words")
                continue
            key = str(k.value)  # keys are words: "on" stays "on", not True
            if key in out:
                self.problem(k, where, f"key {key!r} appears twice")
                continue
            if allowed is not None and key not in allowed:
                msg = f"unknown key {key!r}"
                msg += did_you_mean(key, allowed)
                msg += f"; allowed: {', '.join(allowed)}"
                self.problem(k, where, msg)
                continue
            out[key] = (k, v)
        for r in required:
            if r not in out:
                self.problem(node, where, f"missing required key {r!r}")
        return out

    def seq(self, node: yaml.Node, where: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, where, f"expected a list, got {node_kind(node)}")
            return None
        return list(node.value)

    def scalar(self, node: yaml.Node, where: str, types: tuple[type, ...], what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, where, f"expected {what}, got {node_kind(node)}")
            return None
        v = self.value(node)
        if bool not in types and isinstance(v, bool):
            self.problem(node, where, f"expected {what}, got {v!r}")
            return None
        if not isinstance(v, types):
            self.problem(node, where, f"expected {what}, got {describe_value(v)}")
            return None
        return v

    def string(self, node: yaml.Node, where: str) -> str | None:
        """Text as written: ``yes``, ``on`` or ``0x55`` stay what the person typed."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, where, f"expected text, got {node_kind(node)}")
            return None
        return str(node.value)

    def integer(self, node: yaml.Node, where: str, minimum: int | None = 0) -> int | None:
        v = self.scalar(node, where, (int,), "a whole number")
        if v is not None and minimum is not None and v < minimum:
            self.problem(node, where, f"must be at least {minimum}, got {v}")
            return None
        return v

    def number(self, node: yaml.Node, where: str, minimum: float = 0.0) -> float | None:
        v = self.scalar(node, where, (int, float), "a number")
        if v is not None and v < minimum:
            self.problem(node, where, f"must be at least {minimum:g}, got {v}")
            return None
        return None if v is None else float(v)

    def boolean(self, node: yaml.Node, where: str) -> bool | None:
        return self.scalar(node, where, (bool,), "true or false")

    def strings(self, node: yaml.Node, where: str) -> list[str] | None:
        """A list of texts, or one text."""
        if isinstance(node, yaml.ScalarNode):
            s = self.string(node, where)
            return None if s is None else [s]
        items = self.seq(node, where)
        if items is None:
            return None
        out = []
        for i, n in enumerate(items):
            s = self.string(n, f"{where}[{i}]")
            if s is not None:
                out.append(s)
        return out

    def choice(self, node: yaml.Node, where: str, options: tuple[str, ...]) -> str | None:
        v = self.string(node, where)
        if v is not None and v not in options:
            self.problem(node, where, f"expected one of {', '.join(options)}, got {v!r}")
            return None
        return v


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null":
            return "nothing (null)"
        return f"the value {node.value!r}"
    return "nothing"


def describe_value(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    return f"{v!r}"


def did_you_mean(value: object, known: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``value``, or ''."""
    hint = difflib.get_close_matches(str(value), [str(k) for k in known], 1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""
