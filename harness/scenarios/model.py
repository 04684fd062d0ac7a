"""The scenario data model: what a loaded scenario file says, as dataclasses.

:class:`Scenario` holds its devices (:class:`DeviceSpec`), files and expected
images (:class:`ImageSpec`), steps (one class per kind: :class:`EngineStep`,
:class:`ConsoleStep`, :class:`PowerOnStep`, :class:`PowerCycleStep`,
:class:`PowerOffStep`, :class:`FaultStep`, :class:`WaitStep`,
:class:`TftpServerStep`; :data:`Step` is their union) and final expectations
(:class:`Expectations`: :class:`FlashCheck`, :class:`TextCheck`,
:class:`FileCheck`). :class:`Matcher` is a value check (equality or operators such
as ``{min: 1}``) used for exit codes, JSON results, sizes and lost bits.
:mod:`harness.scenarios.loader` builds these from YAML; nothing here reads files or runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from emulators.serial import LinkFaults
from harness.boards import BOARDS, check_capability
from harness.lab.faults import Fault, LinkByteFault, PowerLoss, TftpPowerCut
from harness.scenarios.excerpts import clip

PLACEHOLDERS = ("work", "port", "tftp_port", "tftp_bind", "dir", "flash_file", "scenario", "device")
PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
ANY_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MATCH_OPS = ("min", "max", "contains", "not_contains", "matches", "one_of", "present", "not")


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
                    return f"does not contain {want!r} (it is {clip(actual)})"
        if "not_contains" in ops:
            for bad in _as_list(ops["not_contains"]):
                if _contains(actual, bad):
                    return f"contains {bad!r} (it is {clip(actual)})"
        if "matches" in ops and not re.search(ops["matches"], str(actual)):
            return f"does not match /{ops['matches']}/ (it is {clip(actual)})"
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


@dataclass(kw_only=True)
class StepBase:
    """What every step has: where it is in the file, which device it acts on, a title."""

    kind: ClassVar[str] = ""
    line: int
    device: str
    title: str = ""

    def summary(self) -> str:
        return self.title or self.describe()

    def describe(self) -> str:
        return self.kind.replace("_", " ")


@dataclass(kw_only=True)
class EngineStep(StepBase):
    """``engine: [BOARD, OP, ...]``: one engine command, with expectations and power
    events ``during`` it."""

    kind: ClassVar[str] = "engine"
    argv: list[str] = field(default_factory=list)
    exit: Matcher = field(default_factory=lambda: Matcher({"eq": 0}))
    json: dict[str, Any] | None = None  # nested, leaves are Matchers
    stdout: TextCheck | None = None
    stderr: TextCheck | None = None
    auto_options: bool = True
    during: list[DuringAction] = field(default_factory=list)
    timeout: float = 300.0

    def describe(self) -> str:
        return "camrescue " + " ".join(self.argv)


@dataclass(kw_only=True)
class ConsoleStep(StepBase):
    """``console: {...}``: type something and/or wait for text on the device's console."""

    kind: ClassVar[str] = "console"
    send: bytes = b""
    lines: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)
    prompt: str | None = None
    regex: bool = False
    reject: list[str] = field(default_factory=list)
    baud: int | None = None
    timeout: float = 10.0

    def describe(self) -> str:
        if self.lines:
            return "type: " + " / ".join(self.lines)
        sent = self.send.decode("latin-1")
        s = f"send {sent!r}" if sent else ""
        if self.expect:
            s += (", " if s else "") + "expect " + " or ".join(repr(e) for e in self.expect)
        return s or "console"


@dataclass(kw_only=True)
class PowerOnStep(StepBase):
    """``power_on: {then: prompt|boot, expect: [...]}``."""

    kind: ClassVar[str] = "power_on"
    then: str = "boot"
    expect: list[str] = field(default_factory=list)
    timeout: float = 10.0

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')}, then {self.then}"


@dataclass(kw_only=True)
class PowerCycleStep(PowerOnStep):
    """``power_cycle: {...}``: off, then as :class:`PowerOnStep`."""

    kind: ClassVar[str] = "power_cycle"


@dataclass(kw_only=True)
class PowerOffStep(StepBase):
    """``power_off``."""

    kind: ClassVar[str] = "power_off"


@dataclass(kw_only=True)
class FaultStep(StepBase):
    """``fault: {...}``: arm faults of the shared vocabulary (:mod:`harness.lab.faults`)."""

    kind: ClassVar[str] = "fault"
    faults: list[Fault] = field(default_factory=list)

    def describe(self) -> str:
        return "; ".join(describe_fault(f) for f in self.faults)


@dataclass(kw_only=True)
class WaitStep(StepBase):
    """``wait: SECONDS``."""

    kind: ClassVar[str] = "wait"
    seconds: float = 0.0

    def describe(self) -> str:
        return f"wait {self.seconds:g} s"


@dataclass(kw_only=True)
class TftpServerStep(StepBase):
    """``tftp_server: on|off``: the lab's TFTP server between engine steps."""

    kind: ClassVar[str] = "tftp_server"
    on: bool = True

    def describe(self) -> str:
        return f"lab TFTP server {'on' if self.on else 'off'}"


Step = (
    EngineStep
    | ConsoleStep
    | PowerOnStep
    | PowerCycleStep
    | PowerOffStep
    | FaultStep
    | WaitStep
    | TftpServerStep
)
STEP_CLASSES: tuple[type[StepBase], ...] = (
    EngineStep,
    ConsoleStep,
    PowerOnStep,
    PowerCycleStep,
    PowerOffStep,
    FaultStep,
    WaitStep,
    TftpServerStep,
)


def describe_fault(f: Fault) -> str:
    """A fault in the words of a step summary."""
    if isinstance(f, PowerLoss):
        what = (
            f"{f.program_bytes} programmed bytes"
            if f.program_bytes is not None
            else f"{f.erase_sectors} erased sectors"
        )
        return f"power loss after {what}" + _back(f.power_back)
    if isinstance(f, LinkByteFault):
        who = "the host sends" if f.direction == "host" else "the device prints"
        names = {
            "power_cut": "power cut",
            "watchdog": "watchdog reset",
            "log_lines": "log lines",
            "corrupt_byte": "the line damages",
            "drop_byte": "the line loses",
        }
        of = f" of the 0x{f.value:02X} bytes" if f.value is not None else ""
        after = f" after {f.after_text!r}" if f.after_text else ""
        xor = f" (xor 0x{f.xor:02X})" if f.xor is not None else ""
        at = "" if f.action in ("corrupt_byte", "drop_byte") else " at"
        return f"{names[f.action]}{at} byte {f.at_byte}{of} {who}{after}{xor}" + _back(f.power_back)
    if isinstance(f, TftpPowerCut):
        return f"power cut after {f.after_packets} TFTP datagrams" + _back(f.power_back)
    changed = {k: v for k, v in vars(f).items() if v != getattr(type(f)(), k)}
    label = "link faults" if isinstance(f, LinkFaults) else "network faults"
    return f"{label} {changed or 'off'}"


def _back(power_back: float | None) -> str:
    return f", power back after {power_back:g} s" if power_back is not None else ""


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
    # variants: {device option: [values]}; the scenario runs once per combination
    variants: dict[str, list[Any]] = field(default_factory=dict)
    variant: dict[str, Any] = field(default_factory=dict)  # this run's values

    @property
    def main_device(self) -> str:
        return next(iter(self.devices))

    @property
    def variant_id(self) -> str:
        """``hisilicon`` for ``{uboot: hisilicon}``; values joined by ``-``; "" without."""
        return "-".join(str(v) for v in self.variant.values())

    @property
    def run_name(self) -> str:
        """The name of this run: ``NAME[VARIANT]`` for a variant, else ``NAME``."""
        return f"{self.name}[{self.variant_id}]" if self.variant else self.name

    def expand(self) -> list[Scenario]:
        """One scenario per combination of the variant values (itself when it has none)."""
        if not self.variants:
            return [self]
        combos: list[dict[str, Any]] = [{}]
        for key, values in self.variants.items():
            combos = [{**c, key: v} for c in combos for v in values]
        return [replace(self, variant=c) for c in combos]

    def device_options(self, name: str) -> dict[str, Any]:
        """The options device ``name`` is started with: its ``options:`` and, on the
        scenario's board, this run's variant values."""
        d = self.devices[name]
        opts = dict(d.options)
        if d.board == self.board:
            opts.update(self.variant)
        return opts

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
            if isinstance(s, EngineStep):
                board = (
                    s.argv[0] if s.argv and s.argv[0] in BOARDS else self.devices[s.device].board
                )
                add(f"{board}_engine")
        images: list[tuple[str, ImageSpec]] = [
            (d.board, d.flash) for d in self.devices.values() if d.flash is not None
        ]
        images += [(self.board, im) for im in self.files.values()]
        for flc in self.expect.flash:
            if flc.image is not None:
                images.append((self.devices[flc.device].board, flc.image))
        for fic in self.expect.files:
            if fic.equals is not None:
                images.append((self.board, fic.equals))
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
            why = check_capability(cap)
            if why:
                out.append(f"needs {cap}: {why}")
        return out


# How a run executes the engine, and which labs it keeps: the choices of both
# ``camrescue scenarios run`` (cli.py) and the pytest options (plugin.py).
ENGINE_MODES = ("inprocess", "subprocess")
KEEP_CHOICES = ("failed", "always", "never")
