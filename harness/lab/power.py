"""Power control of an emulated camera from outside its process: what a lab's power
switch is to a real camera.

``camrescue emulate BOARD --control PATH`` listens on a Unix socket at PATH; a client
sends one line, ``on``, ``off``, ``cycle`` or ``status``, and gets one line back, the
power state once the action is done (``on`` / ``off``), or ``error: ...``. ``camrescue
power ACTION --control PATH`` is that client, the command a lab's power driver (labgrid's
``ExternalPowerDriver``) runs. Without a control socket, ``kill -HUP PID`` (``camrescue
power cycle --pid PID``) power-cycles a running ``camrescue emulate``; the signal is
handled asynchronously, so the command returns before the cycle is done.

A power cut is the device model's own (:meth:`emulators.device.Device.power_off`): the
firmware stops wherever it is, RAM is lost, the flash keeps what it holds, and the serial
port (pty, or the served TCP port) stays as an adapter plugged into a computer stays.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

ACTIONS = ("on", "off", "cycle", "status")


class Powered(Protocol):
    powered: bool

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...


class PowerSwitch:
    """Power actions on one device, one at a time (the control socket and SIGHUP share it)."""

    def __init__(self, device: Powered, *, log: Callable[[str], None] | None = None) -> None:
        self.device = device
        self.log = log or (lambda _line: None)
        self._lock = threading.Lock()

    def state(self) -> str:
        return "on" if self.device.powered else "off"

    def do(self, action: str) -> str:
        """Run ``action`` (one of :data:`ACTIONS`); return the power state after it."""
        if action not in ACTIONS:
            raise ValueError(f"unknown power action {action!r}: use one of {', '.join(ACTIONS)}")
        with self._lock:
            if action in ("off", "cycle"):
                self.device.power_off()
            if action in ("on", "cycle"):
                self.device.power_on()
            if action != "status":
                self.log(f"power {action}: {self.state()}")
            return self.state()


class ControlSocket:
    """A Unix socket at ``path`` that runs :class:`PowerSwitch` actions. Context manager."""

    def __init__(self, path: str | os.PathLike[str], switch: PowerSwitch) -> None:
        self.path = Path(path)
        self.switch = switch
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise FileExistsError(f"{self.path} exists and is not a socket")
            self.path.unlink()  # a socket left by an earlier run that was killed
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        self._sock.listen(4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="power-control", daemon=True)

    def start(self) -> ControlSocket:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                break
            with conn:
                try:
                    conn.settimeout(10)
                    line = conn.makefile("r", encoding="ascii", errors="replace").readline()
                    try:
                        reply = self.switch.do(line.strip())
                    except ValueError as e:
                        reply = f"error: {e}"
                    conn.sendall((reply + "\n").encode())
                except OSError:
                    continue

    def stop(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(5)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> ControlSocket:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def power_request(path: str | os.PathLike[str], action: str, timeout: float = 30.0) -> str:
    """Send ``action`` to the control socket at ``path``; return the state it reports.
    Raises OSError when nothing listens there, RuntimeError when the action failed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(action.encode() + b"\n")
        reply = s.makefile("r", encoding="ascii", errors="replace").readline().strip()
    if reply not in ("on", "off"):
        raise RuntimeError(reply or "the emulator closed the control socket without an answer")
    return reply


POWER_EPILOG = """\
examples:
  camrescue emulate hi3511 --serve rfc2217://127.0.0.1:5511 --control /tmp/cam.ctl &
  camrescue power off --control /tmp/cam.ctl      pull the plug (prints: off)
  camrescue power on --control /tmp/cam.ctl       plug it back in (prints: on)
  camrescue power cycle --pid PID                 kill -HUP PID: a cycle, returns at once

A lab's power driver runs these (labgrid: ExternalPowerDriver, docs/labs.md).
exit codes: 0 done, 1 the emulator reported an error, 2 bad command line (--pid
with on, off or status), 4 no emulator at --control or --pid
"""


def add_power_parser(sub: Any) -> None:
    p = sub.add_parser(
        "power",
        help="switch an emulated camera's power from outside (for a lab's power driver)",
        description="Switch the power of a running 'camrescue emulate'.",
        epilog=POWER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=ACTIONS, help="what to do; status only reports")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--control", type=Path, metavar="PATH", help="the emulator's --control socket"
    )
    where.add_argument(
        "--pid", type=int, help="the emulator's process id (cycle only: sends SIGHUP)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    p.set_defaults(func=run_power)


def run_power(args: argparse.Namespace) -> int:
    import sys

    if args.pid is not None:
        if args.action != "cycle":
            print(
                f"camrescue power: --pid can only cycle (SIGHUP); {args.action} needs the "
                "emulator's --control socket",
                file=sys.stderr,
            )
            return 2
        try:
            os.kill(args.pid, signal.SIGHUP)
        except OSError as e:
            print(f"camrescue power: no process {args.pid}: {e.strerror}", file=sys.stderr)
            return 4
        print("cycle requested")
        return 0
    try:
        state = power_request(args.control, args.action, args.timeout)
    except OSError as e:
        print(
            f"camrescue power: no emulator listening at {args.control}: {e.strerror or e} "
            "(start it with camrescue emulate BOARD --control PATH)",
            file=sys.stderr,
        )
        return 4
    except RuntimeError as e:
        print(f"camrescue power: {e}", file=sys.stderr)
        return 1
    print(state)
    return 0
