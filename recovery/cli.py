"""The engine's command line: ``camrescue <board> <operation> ...``.

``register(subparsers)`` adds every engine board to an existing argparse
subparsers object (the ``camrescue`` command of harness/cli.py uses it);
``main(argv)`` builds its own parser (``python -m recovery``). Boards:
``hi3511`` always; ``w90p745`` and ``xr872`` when their modules import.
``main`` never calls ``sys.exit`` and keeps no global state, so a harness can
call it in-process and read the exit code (and, with ``--json``, one JSON
object on stdout).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from recovery.common import EXIT_USAGE, exit_codes_epilog, print_json

BOARD_MODULES = ("recovery.hi3511", "recovery.w90p745", "recovery.xr872")


def register(subparsers: Any) -> list[str]:
    """Add the board subcommands; return the names of the boards added."""
    added = []
    for name in BOARD_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            if name == "recovery.hi3511":
                raise
            if e.name != name:  # the module is there but broken: say so, keep the others
                print(f"note: {name} unavailable: {e}", file=sys.stderr)
            continue
        hook = getattr(module, "register_cli", None)
        if hook is None:
            continue
        hook(subparsers)
        added.append(name.rsplit(".", 1)[1])
    return added


class _BadCommandLine(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error to :func:`main` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise _BadCommandLine(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="camrescue",
        description="Back up, restore and re-flash IP cameras over their serial console.",
        epilog=exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="board", metavar="BOARD", required=True)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one engine command; return its exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except _BadCommandLine as e:
        if "--json" in argv:
            operation = " ".join(a for a in argv[:2] if not a.startswith("-"))
            print_json(
                {"ok": False, "operation": operation, "message": str(e), "exit_code": EXIT_USAGE}
            )
        return EXIT_USAGE
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    func = getattr(args, "func", None)
    if func is None:
        parser.print_usage()
        return EXIT_USAGE
    return int(func(args))
