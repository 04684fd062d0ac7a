"""``camrescue w90p745 {info,dump,restore}``: options, and running the operations.

Turns the command line into the arguments of the operations in
recovery/w90p745/operations.py and runs them through :func:`recovery.cliutil.run_operation`
(one JSON object with ``--json``, else the result's message for a person; the
exit codes of ``recovery.errors.EXIT_CODES``). ``--port`` may name a device
that does not exist yet (an adapter being plugged in, an emulator being
started): it is waited for during ``--wait``. :func:`register_cli` is
re-exported by recovery/w90p745/operations.py, where recovery/cli.py looks for it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from recovery.cliutil import (
    add_board_parser,
    add_operation_parser,
    add_output_options,
    add_port_options,
    progress_enabled,
    run_operation,
)
from recovery.errors import ConsoleError
from recovery.transport import Port, TransportError
from recovery.w90p745.operations import dump, info, restore


def _open(args: argparse.Namespace) -> Port:
    """Open ``--port``; a device path that does not exist yet (an adapter being
    plugged in, an emulator being started) is waited for during ``--wait``."""
    path = args.port
    if "://" not in path and not os.path.exists(path):
        if progress_enabled(args):
            print(f"waiting for {path} to appear ...", file=sys.stderr, flush=True)
        deadline = time.monotonic() + args.wait
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
    try:
        return Port(path, args.baud, transcript=args.transcript)
    except TransportError as e:
        raise ConsoleError(str(e), flash_state="untouched") from e


def _names(value: str | None) -> list[str] | None:
    return [n for n in value.split(",") if n] if value else None


def _with_port(args: argparse.Namespace, fn: Callable[[Port], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with _open(args) as port:
            try:
                return fn(port)
            except TransportError as e:
                raise ConsoleError(str(e), hint="check the adapter and run again") from e

    return run


def _common(p: argparse.ArgumentParser) -> None:
    add_port_options(p)
    add_output_options(p)
    p.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="S",
        help="how long to wait for the boot loader (power the camera on meanwhile; default 30)",
    )


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``w90p745 {info,dump,restore}`` to an argparse subparsers object."""
    top = add_board_parser(
        subparsers,
        "w90p745",
        help="Winbond W90P745 cameras (bootloader >): info, dump, restore",
        description="Back up and restore a W90P745 camera's flash images through its boot "
        "loader's serial console. See docs/w90p745.md.",
    )

    p = add_operation_parser(top, "info", help="loader version, memory and flash size, image table")
    _common(p)
    p.set_defaults(
        func=lambda a: run_operation(a, "info", _with_port(a, lambda port: info(port, wait=a.wait)))
    )

    p = add_operation_parser(top, "dump", help="dump images page by page with 'd' (resumable)")
    _common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="dump directory (created)")
    p.add_argument(
        "--images", metavar="NAMES", help="comma-separated image names or numbers (default: all)"
    )
    p.add_argument(
        "--reads",
        type=int,
        default=2,
        metavar="N",
        help="reads that must agree on every row (default 2; 1 trusts the page "
        "checks alone: twice as fast, but a flipped bit can pass them - clean lines only)",
    )
    p.set_defaults(
        func=lambda a: run_operation(
            a,
            "dump",
            _with_port(
                a,
                lambda port: dump(
                    port,
                    a.out,
                    images=_names(a.images),
                    reads=a.reads,
                    wait=a.wait,
                    progress=progress_enabled(a),
                ),
            ),
        )
    )

    p = add_operation_parser(
        top, "restore", help="write a dump back with fx over Xmodem, then verify"
    )
    _common(p)
    p.add_argument("dir", metavar="DIR", help="a dump directory (with manifest.json)")
    p.add_argument(
        "--images",
        metavar="NAMES",
        help="comma-separated image names or numbers (default: all but BOOT INFO)",
    )
    p.set_defaults(
        func=lambda a: run_operation(
            a,
            "restore",
            _with_port(
                a,
                lambda port: restore(
                    port, a.dir, images=_names(a.images), wait=a.wait, progress=progress_enabled(a)
                ),
            ),
        )
    )
    return top
