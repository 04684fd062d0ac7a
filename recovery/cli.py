"""The engine's command line: ``camrescue <board> <operation> ...``.

``register(subparsers)`` adds every engine board to an existing argparse
subparsers object (the ``camrescue`` command of harness/cli.py uses it);
``main(argv)`` builds its own parser (``python -m recovery``). Boards:
``hi3511``, ``w90p745`` and ``xr872``, each from its package's ``cli.py``.
``main`` never calls ``sys.exit`` and keeps no global state, so a harness can
call it in-process and read the exit code (and, with ``--json``, one JSON
object on stdout).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from recovery import ports
from recovery.errors import EXIT_CODES, EXIT_USAGE, exit_codes_epilog
from recovery.hi3511 import cli as hi3511_cli
from recovery.jsonout import print_json
from recovery.w90p745 import cli as w90p745_cli
from recovery.xr872 import cli as xr872_cli

BOARDS = (("hi3511", hi3511_cli), ("w90p745", w90p745_cli), ("xr872", xr872_cli))


def register(subparsers: Any) -> list[str]:
    """Add the board subcommands; return the names of the boards added."""
    for _, module in BOARDS:
        module.register_cli(subparsers)
    ports.register_cli(subparsers)  # camrescue ports (issue 20)
    return [name for name, _ in BOARDS]


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


def wants_json(argv: Sequence[str]) -> bool:
    """``--json`` (or an abbreviation argparse would accept) anywhere on the line."""
    return any(len(a) >= 4 and "--json".startswith(a) for a in argv if a.startswith("--"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one engine command; return its exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except _BadCommandLine as e:
        if wants_json(argv):
            operation = " ".join(a for a in argv[:2] if not a.startswith("-"))
            print_json(
                {
                    "ok": False,
                    "operation": operation,
                    "message": str(e),
                    "exit_code": EXIT_USAGE,
                    "error": "UsageError",
                    "flash_state": "untouched",
                    "flash_status": {"state": "untouched", "ranges": [], "resume": None},
                    "hint": f"{EXIT_CODES[EXIT_USAGE]}: see 'camrescue "
                    f"{operation or 'BOARD COMMAND'} --help'",
                }
            )
        return EXIT_USAGE
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    func = getattr(args, "func", None)
    if func is None:
        parser.print_usage()
        return EXIT_USAGE
    return int(func(args))
