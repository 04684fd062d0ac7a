"""Running a recovery engine command (``camrescue BOARD OP ...``) and collecting its result.

:func:`run_engine_inprocess` calls the engine CLI's ``main(argv)`` in a thread of
this process with stdout/stderr captured (fast; one engine at a time per
process); :func:`run_engine_subprocess` runs it in a new Python, as a user
would; :func:`engine_main` (from the board registry) is the board's engine CLI. Both power the device off (via ``on_timeout``) when the engine overruns.
:func:`parse_json_output` picks the ``--json`` result out of what it printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.boards import engine_main

__all__ = [
    "EngineResult",
    "engine_main",
    "parse_json_output",
    "run_engine_inprocess",
    "run_engine_subprocess",
]


@dataclass
class EngineResult:
    argv: list[str]
    exit: int
    stdout: str
    stderr: str
    json: dict[str, Any] | None
    duration: float
    timed_out: bool = False
    crashed: str = ""


def parse_json_output(stdout: str) -> dict[str, Any] | None:
    """The JSON object the engine printed with ``--json`` (the last one on stdout)."""
    text = stdout.strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else None
    dec = json.JSONDecoder()
    found = None
    for m in re.finditer(r"(?m)^\s*\{", text):
        with contextlib.suppress(ValueError):
            obj, _ = dec.raw_decode(text, m.end() - 1)
            if isinstance(obj, dict):
                found = obj
    return found


_ENGINE_LOCK = threading.Lock()


def run_engine_inprocess(
    main: Callable[[list[str]], int],
    argv: list[str],
    timeout: float,
    on_timeout: Callable[[], None] | None = None,
) -> tuple[int, str, str, bool, str]:
    """``recovery.cli.main(argv)`` in a thread with its stdout/stderr captured.

    After ``timeout`` seconds ``on_timeout`` runs (the lab powers the device off
    and, if the engine still waits, closes the line under it, as pulling the USB
    adapter would) and the engine gets a few seconds more to return."""
    out, err = io.StringIO(), io.StringIO()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["rc"] = main(list(argv))
        except SystemExit as e:  # argparse errors
            code = e.code
            box["rc"] = code if isinstance(code, int) else (0 if code is None else 2)
            if isinstance(code, str):
                err.write(code + "\n")
        except BaseException:
            import traceback

            box["rc"] = 99
            box["crash"] = traceback.format_exc()
            err.write(box["crash"])

    with _ENGINE_LOCK, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        old_stdin = sys.stdin
        sys.stdin = io.StringIO("")
        try:
            t = threading.Thread(target=target, name="engine", daemon=True)
            t.start()
            t.join(timeout)
            timed_out = t.is_alive()
            if timed_out and on_timeout is not None:
                on_timeout()
                t.join(1)
                if t.is_alive():
                    on_timeout()  # the second call pulls the line
                    t.join(5)
        finally:
            sys.stdin = old_stdin
    rc = box.get("rc", -1)
    return (
        (rc if isinstance(rc, int) else 1),
        out.getvalue(),
        err.getvalue(),
        timed_out,
        box.get("crash", ""),
    )


def run_engine_subprocess(
    cli: str,
    argv: list[str],
    timeout: float,
    on_timeout: Callable[[], None] | None = None,
) -> tuple[int, str, str, bool, str]:
    """``python -c 'from MODULE import FUNC; sys.exit(FUNC(argv))'``, as a user runs it."""
    module, _, func = cli.partition(":")
    code = f"import sys; from {module} import {func} as m; sys.exit(m(sys.argv[1:]))"
    try:
        p = subprocess.run(
            [sys.executable, "-c", code, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        if on_timeout is not None:
            on_timeout()

        def s(x: Any) -> str:
            return x.decode("utf-8", "replace") if isinstance(x, bytes) else (x or "")

        return -1, s(e.stdout), s(e.stderr), True, ""
    return p.returncode, p.stdout, p.stderr, False, ""
