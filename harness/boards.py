"""The boards the harness knows: what it needs about each, and what is installed.

Boards are described by :class:`BoardSpec` entries in :data:`BOARDS` (the three
built-in boards are registered here; tests register small boards of their own).
Emulators, engines and firmware builders are imported lazily: a board whose
pieces are not written yet is reported as *unavailable* with the reason, never
as an error (:func:`check_capability`).
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True)
class BoardSpec:
    """The facts the harness needs about a board (the emulator owns the rest).

    ``device`` is ``"module:Class"`` or the class itself. ``autoboot`` is the text
    the board prints while it waits for a key at power-on and the key that stops
    it; ``prompt`` is the console prompt that follows. ``partitions`` are named
    chip-relative byte ranges ``(start, end)`` that scenarios may use. Engine
    operations named in ``no_tftp_ops`` get no ``--tftp-bind``. ``flash_base``
    is the flash's address in the board's memory map (what its loader prints),
    ``block_size`` its erase block. ``option_aliases`` are shorter names of device
    options (scenario ``options:`` and ``variants:`` may use either).
    ``partition_aliases`` are partition names used before (issue 20: one vocabulary
    with the engine): a scenario may still use them, with a note on stderr
    (:meth:`resolve_partition`); the target is today's name, or ``start+length``
    for a range that no longer has a name. ``option_choices`` are the values a
    device option takes, where it takes only some (checked when a scenario loads;
    tests/test_scenario_validation.py pins them to the emulators' own lists).
    """

    name: str
    device: str | type
    flash_size: int
    engine: str | None = None
    firmware: str | None = None
    prompt: str | None = None
    autoboot: tuple[str, bytes] | None = None
    tftp: bool = False
    partitions: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    builder_aliases: Mapping[str, str] = field(default_factory=dict)
    no_tftp_ops: frozenset[str] = frozenset()
    baud: int = 115200
    engine_cli: str | Callable[[list[str]], int] = "recovery.cli:main"
    flash_base: int = 0
    block_size: int = 0x10000
    option_aliases: Mapping[str, str] = field(default_factory=dict)
    partition_aliases: Mapping[str, str] = field(default_factory=dict)
    option_choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def all_partitions(self) -> dict[str, tuple[int, int]]:
        return {"all": (0, self.flash_size), **self.partitions}

    def resolve_partition(self, name: str) -> str:
        """``name``, or what an old partition name stands for today (a one-line note on
        stderr says so)."""
        new = self.partition_aliases.get(name)
        if new is None:
            return name
        if "+" in new:
            print(f"note: partition '{name}' is now written {new}", file=sys.stderr)
        else:
            print(f"note: partition '{name}' is now called '{new}'", file=sys.stderr)
        return new


BOARDS: dict[str, BoardSpec] = {}


def register_board(spec: BoardSpec) -> BoardSpec:
    """Add or replace a board (tests register small boards of their own)."""
    BOARDS[spec.name] = spec
    return spec


def unregister_board(name: str) -> None:
    BOARDS.pop(name, None)


register_board(
    BoardSpec(
        name="hi3511",
        device="emulators.hi3511:Hi3511Device",
        flash_size=16 * MiB,
        engine="recovery.hi3511.cli",
        firmware="harness.firmware.hi3511",
        prompt="hilinux # ",
        autoboot=("Hit any key to stop autoboot", b" "),
        tftp=True,
        # the engine's names (recovery/hi3511/flashmap.py REGIONS), the camera's own: the
        # seed's (000) kernel command line mtdparts=...:2M(boot),13M(rootfs),1M(setting);
        # boot holds U-Boot (uboot) and the kernel uImage (kernel)
        partitions={
            "boot": (0, 0x200000),
            "uboot": (0, 0x100000),
            "kernel": (0x100000, 0x200000),
            "rootfs": (0x200000, 0xF00000),
            "setting": (0xF00000, 0x1000000),
        },
        partition_aliases={
            "bootloader": "uboot",
            "settings": "setting",
            "backup": "0x100000+0xf00000",  # what the engine's backup holds
        },
        builder_aliases={"vendor": "vendor_flash"},
        no_tftp_ops=frozenset({"info", "boot"}),
        option_aliases={"uboot": "uboot_variant"},
        option_choices={"uboot_variant": ("hisilicon", "upstream")},
    )
)
register_board(
    BoardSpec(
        name="w90p745",
        device="emulators.w90p745:W90P745Device",
        flash_size=2 * MiB,
        engine="recovery.w90p745.cli",
        firmware="harness.firmware.w90p745",
        prompt="bootloader > ",
        autoboot=("Press ESC to enter debug mode", b"\x1b"),
        flash_base=0x7F000000,
        # seed 001: loader in the first block, then the image table as the loader's
        # 'ls' names the images (the engine's --images names): BOOT INFO, linux,
        # romfs.img, webui
        partitions={
            "bootloader": (0, 0x10000),
            "BOOT INFO": (0x10000, 0x20000),
            "linux": (0x20000, 0x20000 + 0xBF700),
            "romfs.img": (0xE0000, 0xE0000 + 0x8FF80),
            "webui": (0x180000, 0x180000 + 0x6F700),
            "images": (0x20000, 0x200000),
        },
        partition_aliases={"bootinfo": "BOOT INFO", "romfs": "romfs.img"},
        builder_aliases={"vendor": "vendor_flash"},
    )
)
register_board(
    BoardSpec(
        name="xr872",
        device="emulators.xr872:XR872Device",
        flash_size=1 * MiB,
        engine="recovery.xr872.cli",
        firmware="harness.firmware.xr872",
        builder_aliases={"vendor": "vendor_flash"},
        # the last 4 KiB sector holds sysinfo (the unit's identity: MAC, SN)
        partitions={"image": (0, 0xFF000), "sysinfo": (0xFF000, 0x100000)},
        option_choices={"mac_source": ("code", "efuse", "chipid", "flash")},
    )
)


class Unavailable(Exception):
    """A board, engine, builder or tool this run needs is not there (yet)."""


def import_attr(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise Unavailable(f"cannot import {module}: {e}") from e
    if not attr:
        return mod
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise Unavailable(f"{module} has no {attr} yet") from None


def board_spec(board: str) -> BoardSpec:
    try:
        return BOARDS[board]
    except KeyError:
        raise Unavailable(f"unknown board {board!r} (known: {', '.join(sorted(BOARDS))})") from None


def device_class(board: str) -> type:
    spec = board_spec(board)
    return spec.device if isinstance(spec.device, type) else import_attr(spec.device)


COMMON_DEVICE_ARGS = frozenset(
    {"flash_path", "realtime", "seed", "link_path", "faults", "transcript", "initial_flash"}
)


def device_options(board: str) -> frozenset[str] | None:
    """The device options (keyword arguments of the board's device class beyond the
    ones the lab passes itself) a scenario may set, or None when that cannot be
    said (the class is not importable yet, or takes ``**kwargs``)."""
    try:
        cls = device_class(board)
    except Unavailable:
        return None
    names: set[str] = set()
    # follow **kwargs up the class hierarchy (a board's device passes them to the base)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        names |= {
            p.name
            for p in params
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        }
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    else:
        return None
    spec = board_spec(board)
    lab_owned = COMMON_DEVICE_ARGS | ({"tftp_server"} if spec.tftp else set())
    names -= lab_owned
    names |= {alias for alias, target in spec.option_aliases.items() if target in names}
    return frozenset(names)


def engine_main(board: str) -> Callable[[list[str]], int]:
    cli = board_spec(board).engine_cli
    return cli if callable(cli) else import_attr(cli)


def check_capability(name: str) -> str | None:
    """None when ``name`` is available, else why not.

    Names: ``<board>`` (its emulator), ``<board>_engine`` (``recovery.<board>``
    and ``recovery.cli``), ``<board>_firmware`` (``harness.firmware.<board>``),
    ``tool:NAME`` (an executable on PATH), ``module:NAME`` (an importable module).
    """
    try:
        if name.startswith("tool:"):
            tool = name[5:]
            return None if shutil.which(tool) else f"{tool} is not installed"
        if name.startswith("module:"):
            import_attr(name[7:])
            return None
        board, _, part = name.partition("_")
        spec = board_spec(board)
        if part == "":
            device_class(board)
        elif part == "engine":
            if spec.engine is not None:
                import_attr(spec.engine + ":register_cli")
            engine_main(board)
        elif part == "firmware":
            if spec.firmware is None:
                return f"board {board} has no firmware builders"
            import_attr(spec.firmware)
        else:
            return f"unknown capability {name!r}"
    except Unavailable as e:
        return str(e)
    return None


def known_capability(name: str) -> bool:
    if name.startswith(("tool:", "module:")):
        return len(name.split(":", 1)[1]) > 0
    board, _, part = name.partition("_")
    return board in BOARDS and part in ("", "engine", "firmware")
