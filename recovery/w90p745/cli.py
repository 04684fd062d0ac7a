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
from recovery.errors import ConsoleError, UsageError
from recovery.files import Input, Output, unique_path
from recovery.jsonout import hex_fields
from recovery.transport import Port, TransportError
from recovery.w90p745.dumpdir import load_dump
from recovery.w90p745.operations import DEFAULT_FLASH_SIZE, dump, info, restore


def _open(args: argparse.Namespace) -> Port:
    """Open ``--port``; a device path that does not exist yet (an adapter being
    plugged in, an emulator being started) is waited for when ``--wait`` is given
    (without it a missing port is an error at once, as on the other boards)."""
    path = args.port
    if args.wait is not None and "://" not in path and not os.path.exists(path):
        if progress_enabled(args):
            print(f"waiting for {path} to appear ...", file=sys.stderr, flush=True)
        deadline = time.monotonic() + _wait(args)
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
    try:
        # dump and restore attach at 115200 (the loader's rate after every reset) and
        # raise it with B; info talks at --baud as it always did
        speed = 115200 if getattr(args, "op_speed", False) else args.baud
        return Port(path, speed or 115200, transcript=args.transcript)
    except TransportError as e:
        raise ConsoleError(str(e), flash_state="untouched") from e


_ADDRESSES = frozenset({"base", "exec_addr"})


def _wait(args: argparse.Namespace) -> float:
    return 30.0 if args.wait is None else float(args.wait)


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


LOADER_RATES = (1200, 2400, 4800, 9600, 14400, 19200, 28800, 38400, 57600, 115200, 230400, 460800)


def _loader_rate(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value not in LOADER_RATES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not one of the boot loader's rates ({', '.join(map(str, LOADER_RATES))})"
        )
    return value


def _common(p: argparse.ArgumentParser, *, speed: bool = False) -> None:
    add_port_options(p)
    p.set_defaults(op_speed=speed)
    for action in p._actions:
        if action.dest == "baud" and speed:
            action.default = None
            action.type = _loader_rate
            action.help = (
                "transfer speed: camrescue attaches at 115200, then switches the loader "
                "with its B command (default: the fastest of 460800 and 230400 the port "
                "opens, 115200 when the prompt does not answer there; a power cycle "
                "always brings the loader back to 115200)"
            )

    add_output_options(p)
    p.add_argument(
        "--wait",
        type=float,
        default=None,  # 30 s for the loader; a missing port is waited for only when given
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
        func=lambda a: run_operation(
            a,
            "info",
            # the image table's addresses as hex strings, as every address in the JSON
            _with_port(a, lambda port: hex_fields(info(port, wait=_wait(a)), _ADDRESSES)),
        )
    )

    p = add_operation_parser(top, "dump", help="dump images page by page with 'd' (resumable)")
    _common(p, speed=True)
    p.add_argument("--out", required=True, metavar="DIR", help="dump directory (created)")
    p.add_argument(
        "--images", metavar="NAMES", help="comma-separated image names or numbers (default: all)"
    )
    p.add_argument(
        "--reads",
        type=int,
        default=1,
        metavar="N",
        help="reads that must agree on every row (default 1: each page is read once and "
        "the image checked against its footer's checksum, pages re-read only where a check "
        "fails, images without a usable checksum read twice; 2 or more: agreeing reads "
        "everywhere)",
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
                    wait=_wait(a),
                    progress=progress_enabled(a),
                    baud=a.baud,
                ),
            ),
            outputs=[Output("--out", a.out, kind="dir")],
        )
    )

    p = add_operation_parser(
        top, "restore", help="write a dump back with fx over Xmodem, then verify"
    )
    _common(p, speed=True)
    p.add_argument("dir", metavar="DIR", help="a dump directory (with manifest.json)")
    p.add_argument(
        "--verify",
        choices=("full", "size"),
        default="full",
        help="after each image: 'full' (default) checks the size the loader lists and "
        "reads the image back with 'd' and compares it; 'size' only checks the listed size, "
        "which is weaker: it misses a flash that did not take the bytes, and a damaged "
        "block the loader kept at the right size",
    )
    p.add_argument(
        "--images",
        metavar="NAMES",
        help="comma-separated image names or numbers (default: all but BOOT INFO)",
    )
    p.add_argument(
        "--backup-out",
        metavar="DIR",
        help="directory that first receives a dump of every image on the camera this "
        "restore replaces (default: ./w90p745-backup-DATE; restorable with restore)",
    )
    p.add_argument(
        "--no-backup",
        action="store_true",
        help="do not back up the images this restore replaces",
    )
    p.add_argument(
        "--include-bootloader",
        action="store_true",
        help="allow images whose blocks reach the boot loader's block 0 or BOOT INFO "
        "(judged by address on the camera's current table; refused without it)",
    )
    p.add_argument(
        "--i-know-the-dump-is-odd",
        dest="odd_ok",
        action="store_true",
        help="restore images whose recorded loader footer does not vouch for them (no "
        "footer, another image's, a checksum that differs) or a dump of another flash "
        "size; the manifest's size and sha256 are checked all the same",
    )
    p.set_defaults(func=_run_restore)
    return top


def _default_backup_dir() -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return str(unique_path(f"w90p745-backup-{stamp}"))


def _run_restore(a: argparse.Namespace) -> int:
    if a.no_backup and a.backup_out:
        return run_operation(
            a, "restore", lambda: _usage("--backup-out and --no-backup contradict each other")
        )
    backup_out = None if a.no_backup else (a.backup_out or _default_backup_dir())

    def checked_first(run: Callable[[], Any]) -> Any:
        load_dump(a.dir, odd_ok=a.odd_ok)  # the dump is judged before the port is opened
        return run()

    return run_operation(
        a,
        "restore",
        lambda: checked_first(
            _with_port(
                a,
                lambda port: restore(
                    port,
                    a.dir,
                    images=_names(a.images),
                    wait=_wait(a),
                    progress=progress_enabled(a),
                    verify=a.verify,
                    baud=a.baud,
                    include_bootloader=a.include_bootloader,
                    backup_out=backup_out,
                    odd_ok=a.odd_ok,
                ),
            )
        ),
        outputs=[Output("--backup-out", backup_out, size=DEFAULT_FLASH_SIZE, kind="dir")],
        inputs=[Input("DIR", a.dir)],
    )


def _usage(message: str) -> Any:
    raise UsageError(message, flash_state="untouched")
