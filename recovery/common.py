"""Shared helpers of the recovery engines: errors and exit codes, atomic files,
progress bars, JSON results and the common command-line options.

Every engine (``recovery/hi3511.py``, ``w90p745.py``, ``xr872.py``) may import
this module; its API is kept small and stable:

* :class:`RecoveryError` and its subclasses, each with a documented exit code
  (:data:`EXIT_CODES`, :func:`exit_codes_epilog`). An error's message says what
  went wrong; ``flash_state`` says what the flash holds now and ``hint`` what to
  do next. ``facts`` carries whatever the operation learnt before failing (it is
  merged into the ``--json`` result).
* :func:`atomic_writer` / :func:`atomic_write_bytes` / :func:`atomic_write_json`:
  write to a temporary file in the same directory, fsync, rename.
* :class:`Progress`: a textual bar on stderr with rate and ETA.
* :func:`add_port_options`, :func:`add_output_options`, :func:`parse_int`,
  :func:`parse_host_port`: argparse helpers (``--port --baud --json --quiet
  --transcript``).
* :func:`run_operation`: runs one operation, prints its result (text or one JSON
  object on stdout) and returns the exit code; never calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, TextIO

from recovery.transport import TransportError

# -- exit codes -----------------------------------------------------------------

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_CONSOLE = 4
EXIT_NETWORK = 5
EXIT_VERIFY = 6
EXIT_DEVICE = 7
EXIT_BOOT = 8
EXIT_REFUSED = 9
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: please report it with the transcript)",
    EXIT_USAGE: "bad command line",
    EXIT_INPUT: "bad input file (not the right format, too large, unsafe name); nothing was touched",
    EXIT_CONSOLE: "serial console problem (cannot open the port, no answer, garbage, wrong state)",
    EXIT_NETWORK: "network/TFTP problem (settings, server, file missing, transfer failed)",
    EXIT_VERIFY: "verification failed (a CRC did not match)",
    EXIT_DEVICE: "the boot loader reported an error (erase, copy, protected sectors)",
    EXIT_BOOT: "the board booted but badly (JFFS2 CRC errors, root not mounted, kernel panic)",
    EXIT_REFUSED: "refused for safety (no backup, boot loader area without confirmation)",
    EXIT_INTERRUPTED: "interrupted by the user",
}


def exit_codes_epilog() -> str:
    """The exit code table for an argparse ``epilog`` (use RawDescriptionHelpFormatter)."""
    lines = ["exit codes:"]
    lines += [f"  {code:>3}  {text}" for code, text in EXIT_CODES.items()]
    return "\n".join(lines)


# -- errors ---------------------------------------------------------------------


class RecoveryError(Exception):
    """A failure the user can act on. Subclasses fix the exit code."""

    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(
        self,
        message: str,
        *,
        flash_state: str | None = None,
        hint: str | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.flash_state = flash_state
        self.hint = hint
        self.facts: dict[str, Any] = dict(facts or {})

    def describe(self) -> str:
        """Message, flash state and what to do, as shown to a person."""
        parts = [self.message]
        if self.flash_state:
            parts.append(f"Flash: {self.flash_state}")
        if self.hint:
            parts.append(f"What to do: {self.hint}")
        return "\n".join(parts)


class UsageError(RecoveryError):
    exit_code = EXIT_USAGE


class ImageError(RecoveryError):
    """The input file is refused before anything is touched."""

    exit_code = EXIT_INPUT


class ConsoleError(RecoveryError):
    """The serial console cannot be opened, does not answer, or is in the wrong state."""

    exit_code = EXIT_CONSOLE


class NetworkError(RecoveryError):
    exit_code = EXIT_NETWORK


class VerifyError(RecoveryError):
    exit_code = EXIT_VERIFY


class DeviceError(RecoveryError):
    """The boot loader printed an error for a command."""

    exit_code = EXIT_DEVICE


class BootError(RecoveryError):
    exit_code = EXIT_BOOT


class RefusedError(RecoveryError):
    exit_code = EXIT_REFUSED


class Interrupted(RecoveryError):
    exit_code = EXIT_INTERRUPTED


# -- atomic files ---------------------------------------------------------------


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_writer(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    with atomic_writer(path, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2)
        f.write("\n")
    return Path(path)


# -- progress -------------------------------------------------------------------


def _human(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:.0f}"
    for scale, suffix in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n:.0f} B"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """A textual progress bar on stderr: label, bar, percent, amount, rate, ETA.

    ``total`` may be None (unknown: no bar or ETA). On a terminal the line is
    redrawn in place at most every ``min_interval`` seconds; on a file or pipe
    only the final line is written. ``enabled=False`` prints nothing.
    """

    WIDTH = 24

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "B",
        enabled: bool = True,
        stream: TextIO | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.done = 0
        self.t0 = time.monotonic()
        self._last_draw = 0.0
        self._closed = False
        try:
            self._tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False

    def render(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = self.done / elapsed
        unit = "" if self.unit == "B" else f" {self.unit}"
        text = f"{self.label:<18}"
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * self.WIDTH)
            text += f" [{'#' * filled}{'.' * (self.WIDTH - filled)}] {frac * 100:3.0f}%"
            text += f" {_human(self.done, self.unit)}/{_human(self.total, self.unit)}{unit}"
        else:
            text += f" {_human(self.done, self.unit)}{unit}"
        text += f" {_human(rate, self.unit)}{unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f" ETA {_clock((self.total - self.done) / rate)}"
        else:
            text += f" {_clock(elapsed)}"
        return text

    def update(self, done: int) -> None:
        self.done = done
        if not (self.enabled and self._tty) or self._closed:
            return
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval:
            self._last_draw = now
            self.stream.write("\r" + self.render() + "\x1b[K")
            self.stream.flush()

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def close(self, ok: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        line = self.render() + ("" if ok else "  FAILED")
        self.stream.write(("\r" + line + "\x1b[K\n") if self._tty else line + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(ok=exc_type is None)


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
        epilog=exit_codes_epilog(),
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
        epilog=exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--json``, ``--quiet`` and ``--transcript FILE``."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with the result on stdout"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.add_argument(
        "--transcript",
        metavar="FILE",
        help="save the serial session (both directions, timestamps) to FILE",
    )


def progress_enabled(args: argparse.Namespace) -> bool:
    return not (getattr(args, "json", False) or getattr(args, "quiet", False))


def say(args: argparse.Namespace, text: str) -> None:
    """A status line for a person on stderr (silent with --json or --quiet)."""
    if progress_enabled(args):
        print(text, file=sys.stderr, flush=True)


def warn(text: str) -> None:
    """A warning on stderr, always shown (also with --json: stdout stays JSON)."""
    print(f"WARNING: {text}", file=sys.stderr, flush=True)


# -- results --------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, enums, bytes, tuples and sets as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    return obj


def print_json(obj: Any, stream: TextIO | None = None) -> None:
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(to_jsonable(obj)) + "\n")
    out.flush()


def run_operation(
    args: argparse.Namespace,
    operation: str,
    fn: Callable[[], Any],
    *,
    render: Callable[[dict[str, Any]], str] | None = None,
) -> int:
    """Run ``fn`` and report. Returns the exit code; never raises for expected failures.

    ``fn`` returns a dataclass or dict of facts with a ``message``. With
    ``args.json`` one JSON object ``{"ok", "operation", "message", "exit_code",
    ...facts}`` goes to stdout; otherwise ``render(facts)`` (or the message) goes
    to stdout and errors go to stderr.
    """
    as_json = getattr(args, "json", False)
    try:
        facts = to_jsonable(fn())
        if not isinstance(facts, dict):
            facts = {"value": facts}
        payload: dict[str, Any] = {
            "ok": True,
            "operation": operation,
            "message": facts.pop("message", f"{operation} done"),
            "exit_code": EXIT_OK,
        }
        payload.update(facts)
        code = EXIT_OK
        if as_json:
            print_json(payload)
        else:
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
    payload = {
        "ok": False,
        "operation": operation,
        "message": err.message,
        "exit_code": err.exit_code,
        "error": type(err).__name__,
        "flash_state": err.flash_state,
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
