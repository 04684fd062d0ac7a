"""Scenarios: what a person writes in ``scenarios/*.yaml``, how it is checked, and how it runs.

A scenario is one YAML file: a device (board, seed, mode, link faults), its
starting flash, files for the TFTP directory, a list of steps and the
expectations at the end. docs/scenarios.md is the guide for writers; the
schema in brief::

    name: crossgrade-with-erase          # letters, digits, - _ .
    board: hi3511                        # hi3511, w90p745, xr872
    description: free text
    markers: [crossgrade]                # pytest markers (-m crossgrade)
    requires: [hi3511_engine]            # extra capabilities; the obvious ones are implied
    timeout: 120                         # seconds for the whole scenario
    device: {seed: 1, mode: fast, start: prompt, faults: {bit_error_rate: 0},
             network: {loss: 0.0}, tftp_server: true, options: {boot_pins: true}}
    flash: {builder: vendor, firmware: A}    # or {file: x.bin}, {erased: true}, erased
    files: {instar.jffs2: {builder: root_image, firmware: B}}
    steps:
      - engine: [hi3511, backup, --out, "{work}/backup.bin"]
        expect: {exit: 0, json: {ok: true}}
      - console: {line: "printenv", expect: "hilinux # ", reject: ["Unknown command"]}
      - power_cycle: {then: prompt}
      - fault: {power_loss: {program_bytes: 100000}}
      - wait: 0.5
    expect:
      flash: [{range: rootfs, equals: {builder: root_image, firmware: B}, rest_erased: true}]
      boot_log: {contains: ["VFS: Mounted root"], not_contains: ["CRC failed"]}
      typed: {not_contains: ["erase 0x34000000"]}
      transcript: {matches: ["..."]}
      files: {backup.bin: {equals_flash: backup}}

Several devices: ``devices: {donor: {board: xr872, flash: ...}, unit: {...}}``
instead of ``device``/``flash``; steps and expectations pick one with
``on: NAME`` (the first device by default).

Loading never runs anything: :func:`load_scenario` either returns a
:class:`Scenario` or raises :class:`ScenarioError` listing every problem as
``file:line:column: where: what``, with line numbers from the YAML nodes.

:func:`run_scenario` runs one in a :class:`~harness.lab.Lab` and returns a
:class:`~harness.report.ScenarioResult`: the steps with their timings, the first
failed step or every failed expectation with expected vs actual, each device's
transcript and flash map, and the directory that keeps the artifacts.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from emulators.serial import LinkFaults
from harness import lab as labmod
from harness.report import (
    DeviceRecord,
    FailureRecord,
    ScenarioResult,
    StepRecord,
    flash_map,
)

# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- data model

PLACEHOLDERS = ("work", "port", "tftp_port", "tftp_bind", "dir", "flash_file", "scenario", "device")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_ANY_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MATCH_OPS = ("min", "max", "contains", "not_contains", "matches", "one_of", "present", "not")


@dataclass
class ImageSpec:
    """Where bytes come from: a firmware builder, a file, erased bytes or inline hex."""

    kind: str  # builder | file | erased | hex | factory
    line: int = 0
    builder: str = ""
    args: dict[str, Any] = field(default_factory=dict)  # nested dicts with "builder" allowed
    file: str = ""
    offset: int = 0
    length: int | None = None
    size: int | None = None
    hex: str = ""

    def describe(self) -> str:
        if self.kind == "builder":
            args = ", ".join(f"{k}={_short(v)}" for k, v in self.args.items())
            return f"{self.builder}({args})"
        if self.kind == "file":
            part = f"[{self.offset:#x}:+{self.length:#x}]" if self.length is not None else ""
            return f"file {self.file}{part}"
        if self.kind == "hex":
            return f"hex {self.hex[:16]}{'...' if len(self.hex) > 16 else ''}"
        return self.kind


def _short(v: Any) -> str:
    if isinstance(v, dict) and "builder" in v:
        inner = ", ".join(f"{k}={_short(x)}" for k, x in v.items() if k != "builder")
        return f"{v['builder']}({inner})"
    return repr(v)


@dataclass
class DeviceSpec:
    name: str
    board: str
    line: int = 0
    seed: int = 0
    realtime: bool = False
    start: str = "prompt"  # prompt | boot | off
    faults: dict[str, Any] = field(default_factory=dict)
    network: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tftp_server: bool = True
    flash: ImageSpec | None = None


@dataclass
class Matcher:
    """A value check: equality, or ``{min, max, contains, not_contains, matches,
    one_of, present, not}`` operators."""

    ops: dict[str, Any]

    def check(self, actual: Any, present: bool = True) -> str | None:
        """None when ``actual`` satisfies every operator, else why not."""
        ops = self.ops
        if "present" in ops:
            if bool(ops["present"]) != present:
                return "is missing" if ops["present"] else "is present"
            if not present:
                return None
        if not present:
            return "is missing"
        if "eq" in ops and not _equal(ops["eq"], actual):
            return f"is {actual!r}"
        if "not" in ops and _equal(ops["not"], actual):
            return f"is {actual!r}"
        for op, test in (("min", lambda a, b: a >= b), ("max", lambda a, b: a <= b)):
            if op in ops:
                if not isinstance(actual, int | float) or isinstance(actual, bool):
                    return f"is {actual!r}, not a number"
                if not test(actual, ops[op]):
                    return f"is {actual!r}"
        if "contains" in ops:
            for want in _as_list(ops["contains"]):
                if not _contains(actual, want):
                    return f"does not contain {want!r} (it is {_clip(actual)})"
        if "not_contains" in ops:
            for bad in _as_list(ops["not_contains"]):
                if _contains(actual, bad):
                    return f"contains {bad!r} (it is {_clip(actual)})"
        if "matches" in ops and not re.search(ops["matches"], str(actual)):
            return f"does not match /{ops['matches']}/ (it is {_clip(actual)})"
        if "one_of" in ops and not any(_equal(x, actual) for x in ops["one_of"]):
            return f"is {actual!r}"
        return None

    def describe(self) -> str:
        if list(self.ops) == ["eq"]:
            return repr(self.ops["eq"])
        return ", ".join(f"{k} {v!r}" for k, v in self.ops.items())


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _contains(actual: Any, want: Any) -> bool:
    if isinstance(actual, str):
        return str(want) in actual
    if isinstance(actual, list | tuple):
        return any(_equal(x, want) for x in actual)
    if isinstance(actual, dict):
        return want in actual
    return False


def _clip(v: Any, n: int = 200) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


@dataclass
class TextCheck:
    contains: list[str] = field(default_factory=list)
    not_contains: list[str] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)
    not_matches: list[str] = field(default_factory=list)
    device: str = ""
    line: int = 0


@dataclass
class Range:
    """Chip-relative bytes ``[start, end)``; ``end`` None means "as long as the image"."""

    start: int
    end: int | None
    label: str

    def length(self, flash_size: int) -> int:
        return (self.end if self.end is not None else flash_size) - self.start


@dataclass
class FlashCheck:
    line: int
    device: str
    range: Range
    kind: str  # equals | erased | unchanged | lost_bits | sha256
    image: ImageSpec | None = None
    rest_erased: bool = False
    lost_bits: Matcher | None = None
    sha256: str = ""


@dataclass
class FileCheck:
    line: int
    path: str
    exists: bool = True
    size: Matcher | None = None
    equals: ImageSpec | None = None
    equals_flash: Range | None = None
    equals_initial_flash: Range | None = None
    device: str = ""
    sha256: str = ""


@dataclass
class Expectations:
    flash: list[FlashCheck] = field(default_factory=list)
    boot_log: list[TextCheck] = field(default_factory=list)
    typed: list[TextCheck] = field(default_factory=list)
    transcript: list[TextCheck] = field(default_factory=list)
    files: list[FileCheck] = field(default_factory=list)


@dataclass
class DuringAction:
    action: str  # power_off | power_on | power_cycle
    after: float | None = None
    when: str | None = None


@dataclass
class Step:
    kind: str  # engine | console | power_on | power_off | power_cycle | fault | wait | tftp_server
    line: int
    device: str
    title: str = ""
    # engine
    argv: list[str] = field(default_factory=list)
    exit: Matcher | None = None
    json: dict[str, Any] | None = None  # nested, leaves are Matchers
    stdout: TextCheck | None = None
    stderr: TextCheck | None = None
    auto_options: bool = True
    during: list[DuringAction] = field(default_factory=list)
    # console
    send: bytes = b""
    lines: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)
    prompt: str | None = None
    regex: bool = False
    reject: list[str] = field(default_factory=list)
    baud: int | None = None
    # power
    then: str = "boot"
    # fault
    power_loss: dict[str, int] | None = None
    link: dict[str, Any] | None = None
    network: dict[str, Any] | None = None
    # wait / tftp_server
    seconds: float = 0.0
    on: bool = True
    timeout: float = 10.0

    def summary(self) -> str:
        if self.title:
            return self.title
        if self.kind == "engine":
            return "camrescue " + " ".join(self.argv)
        if self.kind == "console":
            if self.lines:
                return "type: " + " / ".join(self.lines)
            sent = self.send.decode("latin-1")
            s = f"send {sent!r}" if sent else ""
            if self.expect:
                s += (", " if s else "") + "expect " + " or ".join(repr(e) for e in self.expect)
            return s or "console"
        if self.kind in ("power_on", "power_cycle"):
            return f"{self.kind.replace('_', ' ')}, then {self.then}"
        if self.kind == "fault":
            parts = []
            if self.power_loss:
                parts.append(
                    "power loss after "
                    + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.power_loss.items())
                )
            if self.link is not None:
                parts.append(f"link faults {self.link or 'off'}")
            if self.network is not None:
                parts.append(f"network faults {self.network}")
            return "; ".join(parts)
        if self.kind == "wait":
            return f"wait {self.seconds:g} s"
        if self.kind == "tftp_server":
            return f"lab TFTP server {'on' if self.on else 'off'}"
        return self.kind.replace("_", " ")


@dataclass
class Scenario:
    name: str
    board: str
    path: Path
    line: int = 1
    description: str = ""
    markers: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    timeout: float = 300.0
    devices: dict[str, DeviceSpec] = field(default_factory=dict)
    files: dict[str, ImageSpec] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    expect: Expectations = field(default_factory=Expectations)

    @property
    def main_device(self) -> str:
        return next(iter(self.devices))

    def requirements(self) -> list[str]:
        """Capabilities this scenario needs: its boards' emulators, the engines of
        its engine steps, the firmware builders it names, and ``requires``."""
        need: list[str] = []

        def add(cap: str) -> None:
            if cap not in need:
                need.append(cap)

        for d in self.devices.values():
            add(d.board)
        for s in self.steps:
            if s.kind == "engine":
                board = (
                    s.argv[0]
                    if s.argv and s.argv[0] in labmod.BOARDS
                    else self.devices[s.device].board
                )
                add(f"{board}_engine")
        images: list[tuple[str, ImageSpec]] = [
            (d.board, d.flash) for d in self.devices.values() if d.flash is not None
        ]
        images += [(self.board, im) for im in self.files.values()]
        for fc in self.expect.flash:
            if fc.image is not None:
                images.append((self.devices[fc.device].board, fc.image))
        for fc in self.expect.files:
            if fc.equals is not None:
                images.append((self.board, fc.equals))
        for board, im in images:
            if im.kind == "builder":
                add(f"{board}_firmware")
        for r in self.requires:
            add(r)
        return need

    def missing(self) -> list[str]:
        """Why this scenario cannot run here (empty when it can)."""
        out = []
        for cap in self.requirements():
            why = labmod.check_capability(cap)
            if why:
                out.append(f"needs {cap}: {why}")
        return out


# --------------------------------------------------------------------------- loader


class _Ctx:
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
            self.problem(node, where, f"expected {what}, got {_kind(node)}")
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
                hint = difflib.get_close_matches(key, allowed, 1)
                msg = f"unknown key {key!r}"
                msg += f" (did you mean {hint[0]!r}?)" if hint else ""
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
            self.problem(node, where, f"expected a list, got {_kind(node)}")
            return None
        return list(node.value)

    def scalar(self, node: yaml.Node, where: str, types: tuple[type, ...], what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, where, f"expected {what}, got {_kind(node)}")
            return None
        v = self.value(node)
        if bool not in types and isinstance(v, bool):
            self.problem(node, where, f"expected {what}, got {v!r}")
            return None
        if not isinstance(v, types):
            self.problem(node, where, f"expected {what}, got {_describe_value(v)}")
            return None
        return v

    def string(self, node: yaml.Node, where: str) -> str | None:
        """Text as written: ``yes``, ``on`` or ``0x55`` stay what the person typed."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, where, f"expected text, got {_kind(node)}")
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


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null":
            return "nothing (null)"
        return f"the value {node.value!r}"
    return "nothing"


def _describe_value(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    return f"{v!r}"


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
LINK_FAULT_KEYS = tuple(f.name for f in fields(LinkFaults))
NETWORK_KEYS = tuple(f.name for f in fields(labmod.NetworkFaults))


def load_scenario(path: str | Path) -> Scenario:
    """Read and check one scenario file. Raises :class:`ScenarioError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"cannot read the file: {e}")]) from e
    return parse_scenario(text, path)


def parse_scenario(text: str, path: str | Path = "<scenario>") -> Scenario:
    path = Path(path)
    ctx = _Ctx(str(path))
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(x for x in (e.context, e.problem) if x) or str(e)
        raise ScenarioError([Problem(str(path), line, col, "", f"not valid YAML: {msg}")]) from None
    except yaml.YAMLError as e:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"not valid YAML: {e}")]) from None
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
    if ctx.problems or sc is None:
        if not ctx.problems:
            ctx.problem(nodes[0], "", "not a valid scenario")
        raise ScenarioError(sorted(ctx.problems, key=lambda p: (p.line, p.column)))
    return sc


def _scenario(ctx: _Ctx, root: yaml.Node, path: Path) -> Scenario | None:
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
        if board is not None and board not in labmod.BOARDS:
            hint = difflib.get_close_matches(board, list(labmod.BOARDS), 1)
            ctx.problem(
                m["board"][1],
                "board",
                f"unknown board {board!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; known: {', '.join(sorted(labmod.BOARDS))}",
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
            if not labmod.known_capability(cap):
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
                d.flash = _image(ctx, m["flash"][1], "flash", sc.board, allow_factory=True)
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
            im = _image(ctx, vn, f"files.{fname}", sc.board, allow_factory=False)
            if im is not None:
                sc.files[fname] = im

    steps_node = m.get("steps", (None, None))[1]
    if steps_node is not None:
        items = ctx.seq(steps_node, "steps")
        if items is not None and not items:
            ctx.problem(steps_node, "steps", "a scenario needs at least one step")
        for i, sn in enumerate(items or []):
            st = _step(ctx, sn, f"steps[{i}]", sc)
            if st is not None:
                sc.steps.append(st)
    if "expect" in m:
        sc.expect = _expectations(ctx, m["expect"][1], "expect", sc)
    return sc


def _device(
    ctx: _Ctx, node: yaml.Node | None, where: str, name: str, board: str, *, allow_flash: bool
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
        if b is not None and b not in labmod.BOARDS:
            ctx.problem(
                m["board"][1],
                f"{where}.board",
                f"unknown board {b!r}; known: {', '.join(sorted(labmod.BOARDS))}",
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
        d.faults = _fault_fields(ctx, m["faults"][1], f"{where}.faults", LINK_FAULT_KEYS) or {}
    if "network" in m:
        d.network = _fault_fields(ctx, m["network"][1], f"{where}.network", NETWORK_KEYS) or {}
    if "options" in m:
        om = ctx.mapping(m["options"][1], f"{where}.options", None)
        if om is not None:
            d.options = {k: ctx.value(v) for k, (_, v) in om.items()}
    if "tftp_server" in m:
        v = ctx.boolean(m["tftp_server"][1], f"{where}.tftp_server")
        d.tftp_server = True if v is None else v
    if "flash" in m:
        d.flash = _image(ctx, m["flash"][1], f"{where}.flash", d.board, allow_factory=True)
    return d


def _fault_fields(
    ctx: _Ctx, node: yaml.Node, where: str, allowed: tuple[str, ...]
) -> dict[str, Any] | None:
    m = ctx.mapping(node, where, allowed)
    if m is None:
        return None
    out: dict[str, Any] = {}
    for k, (_, v) in m.items():
        w = f"{where}.{k}"
        if k in ("bit_error_rate", "drop_rate", "burst_rate", "loss"):
            x = ctx.number(v, w)
            if x is not None and x > 1:
                ctx.problem(v, w, f"a rate is between 0 and 1, got {x:g}")
            elif x is not None:
                out[k] = x
        elif k == "delay":
            x = ctx.number(v, w)
            if x is not None:
                out[k] = x
        elif k == "directions":
            x = ctx.choice(v, w, ("both", "tx", "rx"))
            if x is not None:
                out[k] = x
        else:  # counts, possibly null
            if isinstance(v, yaml.ScalarNode) and v.tag == "tag:yaml.org,2002:null":
                out[k] = None
            else:
                x = ctx.integer(v, w, 0)
                if x is not None:
                    out[k] = x
    return out


IMAGE_KINDS = ("builder", "file", "erased", "hex")


def _image(
    ctx: _Ctx, node: yaml.Node, where: str, board: str, *, allow_factory: bool
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
            + f" or 'erased', got {_kind(node)}",
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


def _builder_arg(ctx: _Ctx, node: yaml.Node, where: str, board: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value]
        if "builder" in keys:
            inner = _image(ctx, node, where, board, allow_factory=False)
            if inner is None:
                return None
            return {"builder": inner.builder, **inner.args}
    return ctx.value(node)


def _range(ctx: _Ctx, node: yaml.Node, where: str, board: str, *, open_end: bool) -> Range | None:
    spec = labmod.BOARDS[board]
    parts = spec.all_partitions()
    size = spec.flash_size
    start: int | None = None
    end: int | None = None
    label = ""
    if isinstance(node, yaml.SequenceNode):
        items = [ctx.integer(n, where) for n in node.value]
        if len(items) != 2 or None in items:
            ctx.problem(node, where, "a range list is [start, end] with end not included")
            return None
        start, end = items  # type: ignore[misc]
        label = f"[{start:#x}, {end:#x})"
    elif isinstance(node, yaml.ScalarNode):
        v = ctx.value(node)
        if isinstance(v, bool) or v is None:
            ctx.problem(
                node,
                where,
                f"expected a partition name, an offset, [start, end] or 'start+length', got {_kind(node)}",
            )
            return None
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
            hint = difflib.get_close_matches(str(v), list(parts), 1)
            ctx.problem(
                node,
                where,
                f"unknown partition {v!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; {board} has: {', '.join(parts)}",
            )
            return None
    else:
        ctx.problem(node, where, f"expected a range, got {_kind(node)}")
        return None
    if start < 0 or start >= size or (end is not None and (end <= start or end > size)):
        ctx.problem(
            node, where, f"range {label} is outside the {size:#x}-byte flash of {board} or empty"
        )
        return None
    return Range(start, end, label)


def _matcher(ctx: _Ctx, node: yaml.Node, where: str) -> Matcher | None:
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value]
        if keys and all(k in _MATCH_OPS for k in keys):
            m = ctx.mapping(node, where, _MATCH_OPS) or {}
            ops: dict[str, Any] = {}
            for k, (_, v) in m.items():
                val = ctx.value(v)
                if k in ("min", "max") and (
                    not isinstance(val, int | float) or isinstance(val, bool)
                ):
                    ctx.problem(v, f"{where}.{k}", f"expected a number, got {_describe_value(val)}")
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
    ctx.problem(node, where, f"expected a value or a check like {{min: 1}}, got {_kind(node)}")
    return None


def _json_expect(ctx: _Ctx, node: yaml.Node, where: str) -> dict[str, Any] | None:
    m = ctx.mapping(node, where, None)
    if m is None:
        return None
    out: dict[str, Any] = {}
    for k, (_, v) in m.items():
        w = f"{where}.{k}"
        if isinstance(v, yaml.MappingNode):
            keys = [kk.value for kk, _ in v.value]
            if keys and all(kk in _MATCH_OPS for kk in keys):
                out[k] = _matcher(ctx, v, w)
            else:
                out[k] = _json_expect(ctx, v, w)
        else:
            out[k] = _matcher(ctx, v, w)
    return out


def _text_check(
    ctx: _Ctx, node: yaml.Node, where: str, sc: Scenario, *, allow_device: bool
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
        tc.device = _device_ref(ctx, m["on"][1], f"{where}.on", sc) or sc.main_device
    return tc


def _device_ref(ctx: _Ctx, node: yaml.Node, where: str, sc: Scenario) -> str | None:
    name = ctx.string(node, where)
    if name is not None and name not in sc.devices:
        ctx.problem(node, where, f"no device named {name!r}; devices: {', '.join(sc.devices)}")
        return None
    return name


def _placeholders_ok(ctx: _Ctx, node: yaml.Node, where: str, text: str) -> None:
    for m in _ANY_PLACEHOLDER_RE.finditer(text):
        if m.group(1) not in PLACEHOLDERS:
            ctx.problem(
                node,
                where,
                f"unknown placeholder {{{m.group(1)}}}; known: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS),
            )


def _step(ctx: _Ctx, node: yaml.Node, where: str, sc: Scenario) -> Step | None:
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
        st.device = _device_ref(ctx, m["on"][1], f"{where}.on", sc) or sc.main_device
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
                    _placeholders_ok(ctx, n, f"{w}[{i}]", s)
                    st.argv.append(s)
            if st.argv and st.argv[0] not in labmod.BOARDS:
                ctx.problem(
                    items[0],
                    f"{w}[0]",
                    f"the first argument names the board ({', '.join(sorted(labmod.BOARDS))}), got {st.argv[0]!r}",
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
                        mt = _matcher(ctx, v, ew)
                        if mt is not None:
                            st.exit = mt
                elif k == "json":
                    st.json = _json_expect(ctx, v, ew)
                else:
                    setattr(st, k, _text_check(ctx, v, ew, sc, allow_device=False))
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
            if labmod.BOARDS[board].prompt is None and "prompt" not in cm:
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
            if b is not None and b not in labmod._BAUDS:
                ctx.problem(cm["baud"][1], f"{w}.baud", f"{b} is not a standard baud rate")
            st.baud = b
    elif kind in ("power_on", "power_cycle", "power_off"):
        if not (isinstance(body, yaml.ScalarNode) and body.tag == "tag:yaml.org,2002:null"):
            allowed = () if kind == "power_off" else ("then", "expect", "timeout")
            pm = ctx.mapping(body, w, allowed)
            if pm is not None:
                if "then" in pm:
                    st.then = ctx.choice(pm["then"][1], f"{w}.then", ("prompt", "boot")) or "boot"
                    if st.then == "prompt" and labmod.BOARDS[board].autoboot is None:
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
                    st.link = _fault_fields(ctx, v, f"{w}.link", LINK_FAULT_KEYS)
            else:
                if not labmod.BOARDS[board].tftp:
                    ctx.problem(v, f"{w}.network", f"{board} has no network")
                if isinstance(v, yaml.ScalarNode) and ctx.value(v) in (False, "off", None):
                    st.network = {}
                else:
                    st.network = _fault_fields(ctx, v, f"{w}.network", NETWORK_KEYS)
    elif kind == "wait":
        if isinstance(body, yaml.MappingNode):
            wm = ctx.mapping(body, w, ("seconds",), ("seconds",))
            if wm and "seconds" in wm:
                st.seconds = ctx.number(wm["seconds"][1], f"{w}.seconds") or 0.0
        else:
            st.seconds = ctx.number(body, w) or 0.0
    elif kind == "tftp_server":
        if not labmod.BOARDS[board].tftp:
            ctx.problem(body, w, f"{board} has no network")
        v = ctx.boolean(body, w)
        st.on = True if v is None else v
    return st


def _expectations(ctx: _Ctx, node: yaml.Node, where: str, sc: Scenario) -> Expectations:
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
                tc = _text_check(
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
            fc = FileCheck(line=kn.start_mark.line + 1, path=fname, device=sc.main_device)
            _placeholders_ok(ctx, kn, fw, fname)
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
                fc.device = _device_ref(ctx, cm["on"][1], f"{fw}.on", sc) or sc.main_device
            if "exists" in cm:
                v = ctx.boolean(cm["exists"][1], f"{fw}.exists")
                fc.exists = True if v is None else v
            if "size" in cm:
                fc.size = _matcher(ctx, cm["size"][1], f"{fw}.size")
            if "equals" in cm:
                fc.equals = _image(
                    ctx, cm["equals"][1], f"{fw}.equals", sc.board, allow_factory=False
                )
            if "equals_flash" in cm:
                fc.equals_flash = _range(
                    ctx,
                    cm["equals_flash"][1],
                    f"{fw}.equals_flash",
                    sc.devices[fc.device].board,
                    open_end=False,
                )
            if "equals_initial_flash" in cm:
                fc.equals_initial_flash = _range(
                    ctx,
                    cm["equals_initial_flash"][1],
                    f"{fw}.equals_initial_flash",
                    sc.devices[fc.device].board,
                    open_end=False,
                )
            if "sha256" in cm:
                fc.sha256 = (ctx.string(cm["sha256"][1], f"{fw}.sha256") or "").lower()
            if not fc.exists and len(cm) > 1 + ("on" in cm):
                ctx.problem(vn, fw, "a file expected not to exist cannot have other checks")
            ex.files.append(fc)
    return ex


def _flash_check(ctx: _Ctx, node: yaml.Node, where: str, sc: Scenario) -> FlashCheck | None:
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
        device = _device_ref(ctx, m["on"][1], f"{where}.on", sc) or device
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
    rng = _range(
        ctx, m["range"][1], f"{where}.range", sc.devices[device].board, open_end=kind == "equals"
    )
    if rng is None:
        return None
    fc = FlashCheck(line=node.start_mark.line + 1, device=device, range=rng, kind=kind)
    v = m[kind][1]
    if kind == "equals":
        fc.image = _image(ctx, v, f"{where}.equals", sc.devices[device].board, allow_factory=False)
    elif kind in ("erased", "unchanged"):
        if ctx.boolean(v, f"{where}.{kind}") is False:
            ctx.problem(
                v, f"{where}.{kind}", f"{kind}: false is not a check; remove it or use another"
            )
    elif kind == "lost_bits":
        fc.lost_bits = _matcher(ctx, v, f"{where}.lost_bits")
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


def discover(paths: list[str | Path]) -> list[Path]:
    """Scenario files under ``paths`` (files or directories), sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file())
        elif p.suffix in (".yaml", ".yml"):
            out.append(p)
    return out


# --------------------------------------------------------------------------- executor


class StepFailed(Exception):
    def __init__(self, failures: list[FailureRecord]) -> None:
        super().__init__("; ".join(f.what for f in failures))
        self.failures = failures


@dataclass
class RunContext:
    scenario: Scenario
    lab: labmod.Lab
    engine_mode: str = "inprocess"
    images: dict[str, bytes] = field(default_factory=dict)

    def subst(self, text: str, device: str) -> str:
        dev = self.lab.devices[device]
        values = {
            "work": str(self.lab.work),
            "port": dev.path,
            "tftp_port": str(dev.server_port),
            "tftp_bind": dev.tftp_bind,
            "dir": str(dev.dir),
            "flash_file": str(dev.flash_path),
            "scenario": self.scenario.name,
            "device": device,
        }
        return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], text)

    def image(self, im: ImageSpec, board: str, device: str, size_hint: int | None = None) -> bytes:
        if im.kind == "builder":
            return labmod.build_image(board, im.builder, **im.args)
        if im.kind == "file":
            raw = self.subst(im.file, device)
            p = Path(raw)
            if not p.is_absolute():
                p = self.scenario.path.parent / p
            if any(ch in p.name for ch in "*?["):
                matches = sorted(p.parent.glob(p.name))
                if len(matches) != 1:
                    raise FileNotFoundError(
                        f"{p}: {len(matches)} files match, expected exactly one"
                    )
                p = matches[0]
            data = p.read_bytes()
            end = None if im.length is None else im.offset + im.length
            return data[im.offset : end]
        if im.kind == "erased":
            n = im.size or size_hint
            if n is None:
                raise ValueError("an erased file needs size:")
            return b"\xff" * n
        if im.kind == "hex":
            return bytes.fromhex(im.hex)
        raise ValueError(f"cannot make bytes from a {im.kind} image")


def run_scenario(
    sc: Scenario,
    root: str | Path,
    *,
    engine_mode: str = "inprocess",
    keep: str = "failed",
) -> ScenarioResult:
    """Run ``sc`` with its lab under ``root`` (created). ``keep``: "failed" removes
    ``root`` after a pass, "always" keeps it, "never" removes it in any case."""
    root = Path(root)
    res = ScenarioResult(
        name=sc.name,
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
    lab = labmod.Lab(root)
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
                _run_step(ctx, step, rec)
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
            res.failures += _check_expectations(ctx)
            res.failures += _crash_failures(ctx)
            res.check_time = time.monotonic() - t0
        res.outcome = "failed" if res.failures else "passed"
    except Exception as e:  # setup or harness error: report it, keep the evidence
        res.outcome = "error"
        res.reason = f"{type(e).__name__}: {e}"
        res.failures.append(
            FailureRecord("the scenario could not run", "", traceback.format_exc(), line=sc.line)
        )
    finally:
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


def _setup(ctx: RunContext, res: ScenarioResult) -> None:
    sc = ctx.scenario
    network_devices = {s.device for s in sc.steps if s.kind == "fault" and s.network is not None}
    for name, d in sc.devices.items():
        flash: Any = None
        if d.flash is not None and d.flash.kind != "factory":
            flash = (
                ctx.image(d.flash, d.board, name, labmod.BOARDS[d.board].flash_size)
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
            options=d.options,
            network=network,
            tftp_server=d.tftp_server,
            power=d.start,
        )
    for fname, im in sc.files.items():
        ctx.lab.put_file(fname, ctx.image(im, sc.board, sc.main_device))


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


def _run_step(ctx: RunContext, st: Step, rec: StepRecord) -> None:
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
        except labmod.ConsoleTimeout as e:
            raise StepFailed(
                [
                    FailureRecord(
                        f"{st.kind.replace('_', ' ')}: {e}",
                        "the text on the console",
                        _tail(e.seen),
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
            dev.proxy.faults = labmod.NetworkFaults(**st.network)
        rec.detail = st.summary()
    elif st.kind == "wait":
        time.sleep(st.seconds)
    elif st.kind == "tftp_server":
        if st.on:
            dev.serve_tftp()
        else:
            dev.stop_tftp()
        dev.serve_tftp_between_steps = st.on


def _tail(text: str, n: int = 1500) -> str:
    text = text if len(text) <= n else "..." + text[-n:]
    return _printable(text)


def _printable(text: str) -> str:
    """Console text for a report: line ends kept, other control bytes as \\xNN."""
    text = text.replace("\r\n", "\n").replace("\r", "")
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: f"\\x{ord(m.group(0)):02x}", text)


def _engine_step(ctx: RunContext, st: Step, rec: StepRecord, dev: labmod.LabDevice) -> None:
    argv = [ctx.subst(a, st.device) for a in st.argv]
    during = _during_runner(st, dev) if st.during else None
    r = dev.engine(
        argv, timeout=st.timeout, mode=ctx.engine_mode, auto_options=st.auto_options, during=during
    )
    rec.command = " ".join(_quote(a) for a in r.argv)
    rec.exit = r.exit
    rec.stdout = _tail(r.stdout, 20000)
    rec.stderr = _tail(r.stderr, 20000)
    rec.json = r.json
    fails: list[FailureRecord] = []
    if r.timed_out:
        fails.append(
            FailureRecord(
                f"the engine did not finish within {st.timeout:g} s (the device was powered off to stop it)",
                f"done within {st.timeout:g} s",
                _tail(r.stderr),
            )
        )
    if r.crashed:
        fails.append(FailureRecord("the engine raised an exception", "a result", _tail(r.crashed)))
    if st.exit is not None and not fails:
        why = st.exit.check(r.exit)
        if why:
            msg = r.json.get("message") if isinstance(r.json, dict) else None
            actual = (
                f"exit {r.exit}"
                + (f"; message: {msg}" if msg else "")
                + (f"\nstderr: {_tail(r.stderr, 800)}" if r.stderr else "")
            )
            fails.append(FailureRecord("engine exit code", st.exit.describe(), actual))
    if st.json is not None:
        if r.json is None:
            fails.append(
                FailureRecord(
                    "engine JSON result",
                    "a JSON object on stdout (--json)",
                    _tail(r.stdout or "(nothing on stdout)", 800),
                )
            )
        else:
            fails += _json_failures(st.json, r.json, "json")
    for label, check, text in (("stdout", st.stdout, r.stdout), ("stderr", st.stderr, r.stderr)):
        if check is not None:
            fails += _text_failures(check, text, f"engine {label}")
    if fails:
        raise StepFailed(fails)


def _quote(a: str) -> str:
    return a if re.fullmatch(r"[A-Za-z0-9_./:=+,@%-]+", a) else json.dumps(a)


def _json_failures(expected: dict[str, Any], actual: Any, where: str) -> list[FailureRecord]:
    out = []
    for k, want in expected.items():
        w = f"{where}.{k}"
        present = isinstance(actual, dict) and k in actual
        got = actual.get(k) if present else None
        if isinstance(want, dict):
            if not present or not isinstance(got, dict):
                out.append(
                    FailureRecord(
                        f"engine result {w}", "an object", "missing" if not present else _clip(got)
                    )
                )
            else:
                out += _json_failures(want, got, w)
        elif isinstance(want, Matcher):
            why = want.check(got, present)
            if why:
                out.append(
                    FailureRecord(
                        f"engine result {w} {why}",
                        want.describe(),
                        "(missing)" if not present else _clip(got, 800),
                    )
                )
    return out


def _text_failures(tc: TextCheck, text: str, what: str) -> list[FailureRecord]:
    out = []
    for want in tc.contains:
        if want not in text:
            out.append(
                FailureRecord(
                    f"{what} does not contain {want!r}", f"contains {want!r}", _tail(text, 1500)
                )
            )
    for bad in tc.not_contains:
        i = text.find(bad)
        if i >= 0:
            out.append(FailureRecord(f"{what} contains {bad!r}", f"no {bad!r}", _line_at(text, i)))
    for pat in tc.matches:
        if not re.search(pat, text, re.M):
            out.append(
                FailureRecord(
                    f"{what} does not match /{pat}/", f"a match for /{pat}/", _tail(text, 1500)
                )
            )
    for pat in tc.not_matches:
        m = re.search(pat, text, re.M)
        if m:
            out.append(
                FailureRecord(
                    f"{what} matches /{pat}/", f"no match for /{pat}/", _line_at(text, m.start())
                )
            )
    return out


def _line_at(text: str, i: int) -> str:
    a = text.rfind("\n", 0, max(0, i - 300)) + 1
    b = text.find("\n", i + 300)
    b = len(text) if b < 0 else b
    return _printable(text[a:b])


def _console_step(ctx: RunContext, st: Step, rec: StepRecord, dev: labmod.LabDevice) -> None:
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
    except labmod.ConsoleTimeout as e:
        rec.detail = "".join(seen) + e.seen
        raise StepFailed(
            [
                FailureRecord(
                    f"console: {e}",
                    " or ".join(repr(p) for p in (st.expect or [st.prompt or dev.spec.prompt])),
                    _tail(e.seen),
                )
            ]
        ) from None
    except StepFailed:
        rec.detail = "".join(seen)
        raise
    rec.detail = "".join(seen)


def _console_at(dev: labmod.LabDevice, baud: int) -> labmod.ConsoleClient:
    if dev._console is None:
        dev._console = labmod.ConsoleClient(dev.path, baud)
    return dev._console


def _reject(st: Step, text: str) -> None:
    for bad in st.reject:
        i = text.find(bad)
        if i >= 0:
            raise StepFailed(
                [FailureRecord(f"console printed {bad!r}", f"no {bad!r}", _line_at(text, i))]
            )


def _during_runner(st: Step, dev: labmod.LabDevice) -> Callable[[], None]:
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


def _range_bytes(r: Range, size: int, length_hint: int | None = None) -> tuple[int, int]:
    end = r.end if r.end is not None else min(size, r.start + (length_hint or 0))
    return r.start, end


def _check_expectations(ctx: RunContext) -> list[FailureRecord]:
    sc = ctx.scenario
    out: list[FailureRecord] = []
    for fc in sc.expect.flash:
        dev = ctx.lab.devices[fc.device]
        try:
            out += _flash_failures(ctx, fc, dev)
        except (OSError, ValueError, labmod.Unavailable) as e:
            out.append(
                FailureRecord(
                    f"flash {fc.range.label}: cannot build the expected image",
                    "",
                    str(e),
                    line=fc.line,
                )
            )
    for attr, label in (
        ("boot_log", "boot log"),
        ("typed", "typed input"),
        ("transcript", "transcript"),
    ):
        for tc in getattr(sc.expect, attr):
            dev = ctx.lab.devices[tc.device]
            if attr == "boot_log":
                text = dev.transcript.device_output().decode("latin-1").replace("\r\n", "\n")
            elif attr == "typed":
                text = b"".join(
                    c.data for c in list(dev.transcript.chunks) if c.direction == "host"
                ).decode("latin-1")
            else:
                text = dev.transcript.text()
            for f in _text_failures(tc, text, label):
                f.line = tc.line
                out.append(f)
    for fc in sc.expect.files:
        out += _file_failures(ctx, fc)
    return out


def _flash_failures(ctx: RunContext, fc: FlashCheck, dev: labmod.LabDevice) -> list[FailureRecord]:
    flash = dev.flash
    size = flash.size
    label = f"flash {fc.range.label}" + (f" on {fc.device}" if len(ctx.lab.devices) > 1 else "")
    out: list[FailureRecord] = []
    if fc.kind == "equals":
        assert fc.image is not None
        want = ctx.image(fc.image, dev.board, fc.device, fc.range.length(size))
        start = fc.range.start
        limit = fc.range.length(size)
        if len(want) > limit:
            return [
                FailureRecord(
                    f"{label}: the expected image ({len(want)} bytes) is larger than the range",
                    f"at most {limit} bytes",
                    f"{len(want)} bytes",
                    line=fc.line,
                )
            ]
        have = flash.read(start, len(want))
        if have != want:
            out.append(
                _diff_failure(
                    f"{label} equals {fc.image.describe()}", want, have, start, flash, fc.line
                )
            )
        if fc.rest_erased and fc.range.end is not None:
            rest = flash.read(start + len(want), fc.range.end - start - len(want))
            if rest.count(0xFF) != len(rest):
                i = next(i for i, b in enumerate(rest) if b != 0xFF)
                out.append(
                    FailureRecord(
                        f"{label}: the rest of the range is not erased",
                        "0xff after the image",
                        f"0x{rest[i]:02x} at {start + len(want) + i:#x}",
                        line=fc.line,
                    )
                )
        return out
    s, e = _range_bytes(fc.range, size)
    have = flash.read(s, e - s)
    if fc.kind == "erased":
        if have.count(0xFF) != len(have):
            i = next(i for i, b in enumerate(have) if b != 0xFF)
            n = sum(1 for b in have if b != 0xFF)
            out.append(
                FailureRecord(
                    f"{label} is erased",
                    "every byte 0xff",
                    f"{n} bytes are not; the first is 0x{have[i]:02x} at {s + i:#x}",
                    line=fc.line,
                )
            )
    elif fc.kind == "unchanged":
        base = dev.initial_flash[s:e]
        if have != base:
            out.append(_diff_failure(f"{label} is unchanged", base, have, s, flash, fc.line))
    elif fc.kind == "lost_bits":
        lost = flash.stats.lost_bits
        total = sum(lost[i] for i in flash.sectors_in(s, e - s))
        assert fc.lost_bits is not None
        why = fc.lost_bits.check(total)
        if why:
            per = ", ".join(
                f"{flash.sector_start(i):#x}:{lost[i]}"
                for i in flash.sectors_in(s, e - s)
                if lost[i]
            )
            out.append(
                FailureRecord(
                    f"{label}: bits that could not be set {why}",
                    fc.lost_bits.describe(),
                    f"{total}" + (f" (per sector {per})" if per else ""),
                    line=fc.line,
                )
            )
    elif fc.kind == "sha256":
        h = hashlib.sha256(have).hexdigest()
        if h != fc.sha256:
            out.append(FailureRecord(f"{label} sha256", fc.sha256, h, line=fc.line))
    return out


def _diff_failure(
    what: str, want: bytes, have: bytes, base: int, flash: Any, line: int
) -> FailureRecord:
    n_diff = sum(1 for a, b in zip(want, have, strict=False) if a != b)
    i = (
        next(i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b)
        if n_diff
        else min(len(want), len(have))
    )
    sectors = (
        sorted(
            {
                flash.sector_of(base + j)
                for j in range(0, len(want))
                if j < len(have) and want[j] != have[j]
            }
        )
        if n_diff < 200000
        else []
    )
    where = f"first difference at {base + i:#x}: expected {want[i : i + 16].hex(' ')}, found {have[i : i + 16].hex(' ')}"
    secs = f"; {len(sectors)} sectors differ" + (
        f" (from {flash.sector_start(sectors[0]):#x} to {flash.sector_start(sectors[-1]):#x})"
        if sectors
        else ""
    )
    return FailureRecord(
        what, f"{len(want)} bytes equal", f"{n_diff} bytes differ; {where}{secs}", line=line
    )


def _file_failures(ctx: RunContext, fc: FileCheck) -> list[FailureRecord]:
    name = ctx.subst(fc.path, fc.device)
    p = Path(name)
    if not p.is_absolute():
        p = ctx.lab.work / p
    if any(ch in p.name for ch in "*?["):
        matches = sorted(p.parent.glob(p.name))
        if len(matches) == 1:
            p = matches[0]
        elif fc.exists:
            got = (
                ", ".join(x.name for x in sorted(p.parent.glob("*")))
                if p.parent.is_dir()
                else "no directory"
            )
            return [
                FailureRecord(
                    f"file {fc.path}: {len(matches)} files match", "exactly one", got, line=fc.line
                )
            ]
        else:
            return (
                []
                if not matches
                else [
                    FailureRecord(
                        f"file {fc.path} exists",
                        "no such file",
                        ", ".join(x.name for x in matches),
                        line=fc.line,
                    )
                ]
            )
    if not fc.exists:
        return (
            [
                FailureRecord(
                    f"file {fc.path} exists",
                    "no such file",
                    f"{p.stat().st_size} bytes",
                    line=fc.line,
                )
            ]
            if p.exists()
            else []
        )
    if not p.is_file():
        have = (
            ", ".join(sorted(x.name for x in p.parent.iterdir()))
            if p.parent.is_dir()
            else "(no directory)"
        )
        return [
            FailureRecord(
                f"file {fc.path} exists",
                "a file",
                f"missing; the directory holds: {have or 'nothing'}",
                line=fc.line,
            )
        ]
    data = p.read_bytes()
    out = []
    if fc.size is not None:
        why = fc.size.check(len(data))
        if why:
            out.append(
                FailureRecord(
                    f"file {fc.path} size {why}", fc.size.describe(), str(len(data)), line=fc.line
                )
            )
    dev = ctx.lab.devices[fc.device]
    if fc.equals is not None:
        want = ctx.image(fc.equals, ctx.scenario.board, fc.device, len(data))
        if want != data:
            out.append(
                _bytes_failure(f"file {fc.path} equals {fc.equals.describe()}", want, data, fc.line)
            )
    if fc.equals_flash is not None:
        s, e = _range_bytes(fc.equals_flash, dev.flash.size)
        want = dev.flash.read(s, e - s)
        if want != data:
            out.append(
                _bytes_failure(
                    f"file {fc.path} equals flash {fc.equals_flash.label}",
                    want,
                    data,
                    fc.line,
                    base=s,
                )
            )
    if fc.equals_initial_flash is not None:
        s, e = _range_bytes(fc.equals_initial_flash, dev.flash.size)
        want = dev.initial_flash[s:e]
        if want != data:
            out.append(
                _bytes_failure(
                    f"file {fc.path} equals the starting flash {fc.equals_initial_flash.label}",
                    want,
                    data,
                    fc.line,
                    base=s,
                )
            )
    if fc.sha256:
        h = hashlib.sha256(data).hexdigest()
        if h != fc.sha256:
            out.append(FailureRecord(f"file {fc.path} sha256", fc.sha256, h, line=fc.line))
    return out


def _bytes_failure(what: str, want: bytes, have: bytes, line: int, base: int = 0) -> FailureRecord:
    if len(want) != len(have):
        detail = f"{len(have)} bytes (expected {len(want)})"
    else:
        detail = ""
    n = min(len(want), len(have))
    i = next((j for j in range(n) if want[j] != have[j]), n)
    if i < n:
        detail += (
            ("; " if detail else "")
            + f"first difference at offset {i:#x}"
            + (f" (flash {base + i:#x})" if base else "")
            + f": expected {want[i : i + 16].hex(' ')}, found {have[i : i + 16].hex(' ')}"
        )
    return FailureRecord(what, f"{len(want)} bytes equal", detail, line=line)


def expected_flash(ctx: RunContext, device: str) -> bytes:
    """The flash as the scenario expects it: the starting flash overlaid with the
    ranges its flash checks name (images, erased ranges)."""
    dev = ctx.lab.devices[device]
    img = bytearray(dev.initial_flash)
    for fc in ctx.scenario.expect.flash:
        if fc.device != device:
            continue
        if fc.kind == "equals" and fc.image is not None:
            try:
                want = ctx.image(fc.image, dev.board, device, fc.range.length(len(img)))
            except Exception:
                continue
            want = want[: fc.range.length(len(img))]
            img[fc.range.start : fc.range.start + len(want)] = want
            if fc.rest_erased and fc.range.end is not None:
                img[fc.range.start + len(want) : fc.range.end] = b"\xff" * (
                    fc.range.end - fc.range.start - len(want)
                )
        elif fc.kind == "erased" and fc.range.end is not None:
            img[fc.range.start : fc.range.end] = b"\xff" * (fc.range.end - fc.range.start)
    return bytes(img)


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


def run_path(path: str | Path, root: str | Path, **kw: Any) -> ScenarioResult:
    """Load and run one scenario file (a convenience for scripts)."""
    return run_scenario(load_scenario(path), root, **kw)


def warm_images(sc: Scenario) -> int:
    """Build every firmware image ``sc`` names (filling the image cache) without
    starting anything; returns how many were built. Benchmarks use it so that
    they time the scenarios, not the builders."""
    n = 0

    def visit(board: str, im: ImageSpec | None) -> None:
        nonlocal n
        if im is not None and im.kind == "builder":
            labmod.build_image(board, im.builder, **im.args)
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
