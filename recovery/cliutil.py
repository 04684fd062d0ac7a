"""Command-line helpers shared by the boards' CLIs: the port, baud and output
options, number parsing, and :func:`run_operation`, which runs one operation,
prints its result (text or one JSON object on stdout) and returns the exit code.

:func:`run_operation` is also where the guarantees every board shares are kept
(docs/guarantees.md): the output paths are checked before the device is touched
(:func:`recovery.files.preflight`, with the transcript and ``--force``), files are
created private (umask 077), SIGTERM ends an operation the way Ctrl-C does, the
flash state (:mod:`recovery.safety`) is reported however it ends, and the
temporary directories of killed runs are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from recovery.errors import EXIT_OK, ConsoleError, Interrupted, RecoveryError, exit_codes_epilog
from recovery.examples import examples_epilog
from recovery.files import Input, Output, preflight, remove_stale_tempdirs
from recovery.jsonout import print_json, to_jsonable
from recovery.safety import UNTOUCHED, FlashTracker, reset_tracker, set_tracker
from recovery.transport import TransportError

# -- command-line helpers -------------------------------------------------------

_SUFFIXES = {"k": 1 << 10, "m": 1 << 20}


def parse_int(text: str) -> int:
    """An integer as people write addresses and sizes: ``0x34200000``, ``13631488``, ``13M``, ``128k``."""
    t = text.strip().lower().replace("_", "")
    scale = 1
    if t and t[-1] in _SUFFIXES:
        scale = _SUFFIXES[t[-1]]
        t = t[:-1]
    try:
        value = int(t, 0) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"negative: {text!r}")
    return value


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` or ``:PORT`` (host 0.0.0.0) as a tuple."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    host = host or "0.0.0.0"
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return host, number


def add_port_options(parser: argparse.ArgumentParser, *, baud: int = 115200) -> None:
    """``--port`` (required) and ``--baud``."""
    parser.add_argument(
        "--port",
        required=True,
        help="serial port: /dev/ttyUSB0, a pty (/dev/pts/N), rfc2217://host:port, socket://host:port",
    )
    parser.add_argument(
        "--baud",
        type=baud_rate,
        default=baud,
        help=f"console speed (default {baud}, 8N1; a standard rate your adapter supports)",
    )


# The rates Linux serial drivers (and so USB-TTL adapters) accept as standard speeds.
STANDARD_BAUDS = (
    1200,
    2400,
    4800,
    9600,
    19200,
    38400,
    57600,
    115200,
    230400,
    460800,
    500000,
    576000,
    921600,
    1000000,
    1152000,
    1500000,
    2000000,
    2500000,
    3000000,
    3500000,
    4000000,
)


def baud_rate(text: str) -> int:
    """An argparse type: a standard baud rate, or a message that says which ones are."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value not in STANDARD_BAUDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a standard baud rate; these cameras use 115200 "
            f"(others: {', '.join(map(str, STANDARD_BAUDS))})"
        )
    return value


def add_board_parser(subparsers: Any, board: str, *, help: str, description: str) -> Any:
    """``camrescue BOARD``: its parser (exit codes in the epilog) and its subcommands."""
    top = subparsers.add_parser(
        board,
        help=help,
        description=description,
        epilog=examples_epilog(board) + exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_subparsers(dest=f"{board}_command", metavar="COMMAND", required=True)
    return top


def add_operation_parser(board_parser: argparse.ArgumentParser, name: str, *, help: str) -> Any:
    """``camrescue BOARD NAME``, with the exit codes in its epilog."""
    sub = next(a for a in board_parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.add_parser(
        name,
        help=help,
        epilog=examples_epilog(board_parser.prog.split()[-1], name) + exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--json``, ``--quiet``, ``--verbose``, ``--transcript FILE`` and ``--force``
    (every operation writes at least its transcript, so every one can replace it)."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with the result on stdout"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="also print each step and its time"
    )
    parser.add_argument(
        "--transcript",
        metavar="FILE",
        help="save the serial session (both directions, timestamps) to FILE",
    )
    # every operation writes a file (at least the transcript): each offers --force
    add_force_option(parser)


def progress_enabled(args: argparse.Namespace) -> bool:
    return not (getattr(args, "json", False) or getattr(args, "quiet", False))


def say(args: argparse.Namespace, text: str) -> None:
    """A status line for a person on stderr (silent with --json or --quiet)."""
    if progress_enabled(args):
        print(text, file=sys.stderr, flush=True)


def warn(text: str) -> None:
    """A warning on stderr, always shown (also with --json: stdout stays JSON)."""
    print(f"WARNING: {text}", file=sys.stderr, flush=True)


def add_force_option(parser: argparse.ArgumentParser, flag: str = "--force") -> None:
    """``--force``: replace an existing output file (refused by default);
    :func:`add_output_options` adds it to every operation."""
    parser.add_argument(
        flag,
        dest="force_overwrite",
        action="store_true",
        help="replace output files that already exist (by default an existing file, "
        "perhaps an earlier backup, is never overwritten)",
    )
    parser.set_defaults(force_flag=flag)


# Operations that only read the flash: their flash state is "untouched" however they end.
READ_ONLY = frozenset({"info", "backup", "dump"})
# Operations that report every write to recovery.safety's tracker (hi3511 flash/restore,
# w90p745 restore, xr872 write/clone): "untouched" until they say otherwise.
REPORTING = frozenset({"flash", "restore", "write", "clone"})


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager) takes the same path as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _private_files() -> Iterator[None]:
    """Everything the operation creates (backups, dumps, manifests, transcripts,
    temporary directories) is readable by its owner only."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def run_operation(
    args: argparse.Namespace,
    operation: str,
    fn: Callable[[], Any],
    *,
    render: Callable[[dict[str, Any]], str] | None = None,
    outputs: Sequence[Output] = (),
    inputs: Sequence[Input] = (),
    read_only: bool | None = None,
) -> int:
    """Run ``fn`` and report. Returns the exit code; never raises for expected failures.

    ``fn`` returns a dataclass or dict of facts with a ``message``. With
    ``args.json`` one JSON object ``{"ok", "operation", "message", "exit_code",
    "flash_status", ...facts}`` goes to stdout; otherwise ``render(facts)`` (or the
    message) goes to stdout and errors go to stderr.

    Before ``fn`` runs, ``outputs`` and ``inputs`` (and ``--transcript``) are
    checked (:func:`recovery.files.preflight`; ``--force`` allows replacing an
    existing file). ``read_only`` (default: the operation's last word is info,
    backup or dump) makes the flash state ``untouched`` whatever happens.
    """
    as_json = getattr(args, "json", False)
    if read_only is None:
        read_only = operation.split()[-1] in READ_ONLY
    tracker = FlashTracker(tracked=read_only or operation.split()[-1] in REPORTING)
    token = set_tracker(tracker)
    try:
        with _sigterm_as_interrupt(), _private_files():
            return _run(args, operation, fn, render, outputs, inputs, tracker, as_json)
    finally:
        reset_tracker(token)


def _run(
    args: argparse.Namespace,
    operation: str,
    fn: Callable[[], Any],
    render: Callable[[dict[str, Any]], str] | None,
    outputs: Sequence[Output],
    inputs: Sequence[Input],
    tracker: FlashTracker,
    as_json: bool,
) -> int:
    try:
        with contextlib.suppress(OSError):
            remove_stale_tempdirs()
        transcript = getattr(args, "transcript", None)
        preflight(
            [*outputs, Output("--transcript", transcript)],
            inputs,
            force=bool(getattr(args, "force_overwrite", False)),
            force_flag=getattr(args, "force_flag", None),
        )
        facts = to_jsonable(fn())
        tracker.finished = True
        if not isinstance(facts, dict):
            facts = {"value": facts}
        payload: dict[str, Any] = {
            "ok": True,
            "operation": operation,
            "message": facts.pop("message", f"{operation} done"),
            "exit_code": EXIT_OK,
        }
        payload.update(facts)
        if tracker.tracked:
            payload.setdefault("flash_status", tracker.as_dict())
        code = EXIT_OK
        if as_json:
            print_json(payload)
        else:
            if render and not getattr(args, "verbose", False):  # steps only with -v
                payload = {k: v for k, v in payload.items() if k != "steps"}
            print(render(payload) if render else payload["message"], flush=True)
        return code
    except KeyboardInterrupt:
        err: RecoveryError = Interrupted(
            "interrupted", hint="check the flash state with 'info' before switching off"
        )
    except RecoveryError as e:
        err = e
    except TransportError as e:  # the port went away where no driver expected it
        err = ConsoleError(
            str(e),
            flash_state="unknown: the serial link was lost during the operation",
            hint="check the adapter and its cable, then run 'info' before anything else",
        )
    except Exception as e:  # noqa: BLE001 - a bug: report it and keep main() alive
        traceback.print_exc(file=sys.stderr)
        err = RecoveryError(
            f"internal error: {type(e).__name__}: {e}",
            hint="please report this with the --transcript file",
        )
    status = _final_status(tracker, err)
    _one_fix_for_the_port(args, err)
    if isinstance(err, Interrupted) and not err.hint:  # what to do after every Ctrl-C
        err.hint = (
            "nothing was written: run the same command again when you are ready"
            if status["state"] == UNTOUCHED or (err.flash_state or "").startswith(UNTOUCHED)
            else "run 'info' to see what the flash holds before switching the camera off"
        )
    unknown = err.flash_state is None or err.flash_state.startswith("unknown")
    if unknown and status["state"] != "unknown":
        err.flash_state = UNTOUCHED if status["state"] == UNTOUCHED else tracker.describe()
    if status.get("resume") and (not err.hint or status["resume"] not in err.hint):
        err.hint = f"to finish the job run: {status['resume']}" + (
            f". {err.hint}" if err.hint else ""
        )
    payload = {
        "ok": False,
        "operation": operation,
        "message": err.message,
        "exit_code": err.exit_code,
        "error": type(err).__name__,
        "flash_state": err.flash_state,
        "flash_status": status,
        "hint": err.hint,
    }
    for key, value in to_jsonable(err.facts).items():
        payload.setdefault(key, value)
    if as_json:
        print_json(payload)
    else:
        if render and set(err.facts) - {"steps"}:
            with contextlib.suppress(Exception):
                print(render(payload), flush=True)
        print(f"error: {err.describe()}", file=sys.stderr, flush=True)
    return err.exit_code


def _one_fix_for_the_port(args: argparse.Namespace, err: RecoveryError) -> None:
    """A port that did not open gets the one fix that applies (recovery/ports.py:
    permission denied -> the group and the usermod command, busy -> the holder,
    missing -> the ports that exist) instead of the transport's list of guesses."""
    url = getattr(args, "port", None)
    text = err.message
    if not (isinstance(err, ConsoleError) and isinstance(url, str)):
        return
    if not text.startswith(("cannot open serial port", "serial port ")):
        return
    from recovery.ports import explain_open_error

    known = explain_open_error(url, err)
    if known:
        err.message = known
        err.hint = None


def _final_status(tracker: FlashTracker, err: RecoveryError) -> dict[str, Any]:
    """The flash status of a failed operation: the tracker's, or what the error says
    when the operation did not track (a refusal before anything is written)."""
    if tracker.tracked:
        return tracker.as_dict()
    if (err.flash_state or "").startswith(UNTOUCHED):
        return {"state": UNTOUCHED, "ranges": [], "resume": None}
    return {"state": "unknown", "ranges": [], "resume": None}
