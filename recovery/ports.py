"""``camrescue ports``: the serial ports on this computer, and what to do when one
does not open.

:func:`list_ports` reads pyserial's ``serial.tools.list_ports.comports()`` (the
kernel's tty devices with a driver behind them: USB adapters with their
vendor/product ids, on-board UARTs) and adds the stable names udev makes under
``/dev/serial/by-id`` (the adapter's vendor, product and serial number: the
same name whichever ``ttyUSB`` number it gets) and whether this user may open
the device.

:func:`explain_open_error` turns the exception of a failed open into the one
fix that applies, without guessing:

* permission denied (``EACCES``): the group that owns the device (``dialout`` on
  Debian/Ubuntu, ``uucp`` on Arch) and the exact ``usermod`` command;
* busy (pyserial's ``exclusive=True`` ``flock`` failed, ``EBUSY``): which
  process holds it, found by reading ``/proc/*/fd`` links (what ``fuser`` does);
* missing (``ENOENT``): the serial ports that do exist.

:func:`server_refusal` tells a network port (``rfc2217://``, ``socket://``) that is
in use by another client from one that went away: a serial server that serves one
client at a time answers a second connection with one line and closes it
(``camrescue emulate --serve``: ``camrescue: URL (BOARD) is busy: in use by PEER (one
client at a time)``, harness/lab/serve.py; ser2net, too, closes a connection to a port
in use). pyserial reports only what that did to its own protocol (``Broken pipe``
while its RFC 2217 client negotiates, ``socket disconnected``), so the line is looked
for in what the connection received and, when it is not there, by connecting once
more and reading the server's first line.

Sources: pyserial 3.5 ``serial/serialposix.py`` (``open()`` raises
``SerialException(errno, "could not open port ...: [Errno N] ...")``, and
``"Could not exclusively lock port ..."`` when ``fcntl.flock`` fails),
``serial/tools/list_ports_linux.py`` (``SysFS`` info: vid, pid, manufacturer,
product, serial_number); udev's ``60-serial.rules`` (``/dev/serial/by-id``);
proc(5) (``/proc/PID/fd``, ``/proc/PID/comm``, ``/proc/PID/cmdline``).
"""

from __future__ import annotations

import argparse
import errno as errno_mod
import grp
import os
import pwd
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BY_ID = Path("/dev/serial/by-id")

PORTS_EPILOG = """\
examples:
  camrescue ports
      list the serial ports: device, USB vendor:product, /dev/serial/by-id name
  camrescue ports --json
      the same as one JSON object
  camrescue hi3511 info --port /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K5XYZ-if00-port0
      a by-id name stays the same whichever ttyUSB number the adapter gets

An emulated camera's port (/dev/pts/N) is not listed: camrescue emulate prints it.
"""


@dataclass
class SerialPortInfo:
    device: str
    by_id: list[str] = field(default_factory=list)
    usb: str | None = None  # "0403:6001"
    manufacturer: str | None = None
    product: str | None = None
    serial_number: str | None = None
    description: str | None = None
    access: str = "ok"  # "ok" or what stops this user


def _by_id_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    try:
        entries = sorted(BY_ID.iterdir())
    except OSError:
        return names
    for entry in entries:
        try:
            target = os.path.realpath(entry)
        except OSError:
            continue
        names.setdefault(target, []).append(str(entry))
    return names


def _access(device: str) -> str:
    if os.access(device, os.R_OK | os.W_OK):
        return "ok"
    try:
        group = grp.getgrgid(os.stat(device).st_gid).gr_name
    except (OSError, KeyError):
        return "no permission"
    return f"no permission: {dialout_fix(group)}"


def list_ports() -> list[SerialPortInfo]:
    """The serial ports present, USB adapters first."""
    from serial.tools import list_ports as lp

    by_id = _by_id_names()
    found: list[SerialPortInfo] = []
    for p in lp.comports():
        real = os.path.realpath(p.device)
        found.append(
            SerialPortInfo(
                device=p.device,
                by_id=by_id.get(real, []),
                usb=f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None and p.pid is not None else None,
                manufacturer=p.manufacturer,
                product=p.product,
                serial_number=p.serial_number,
                description=None if p.description in (None, "n/a") else p.description,
                access=_access(p.device),
            )
        )
    found.sort(key=lambda i: (i.usb is None, i.device))
    return found


def describe(ports: list[SerialPortInfo]) -> str:
    if not ports:
        return (
            "no serial ports found. Plug in the USB serial adapter (then run camrescue ports "
            "again); an emulated camera's port is printed by camrescue emulate BOARD."
        )
    lines = []
    for p in ports:
        what = " ".join(x for x in (p.manufacturer, p.product) if x) or p.description or ""
        head = p.device
        if p.usb:
            head += f"  usb {p.usb}"
        if what:
            head += f"  {what}"
        if p.serial_number:
            head += f"  serial {p.serial_number}"
        lines.append(head)
        lines += [f"    {name}" for name in p.by_id]
        if p.access != "ok":
            lines.append(f"    {p.access}")
    return "\n".join(lines)


# -- why a port did not open -------------------------------------------------------


def dialout_fix(group: str = "dialout") -> str:
    user = os.environ.get("SUDO_USER") or _user()
    return (
        f"add yourself to the '{group}' group: sudo usermod -aG {group} {user} "
        "then log out and back in (or run: newgrp " + group + ")"
    )


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "$USER"


def holders(device: str) -> list[tuple[int, str]]:
    """The processes (pid, command line) that have ``device`` open, from /proc/*/fd."""
    try:
        want = os.path.realpath(device)
    except OSError:
        return []
    me = os.getpid()
    found: list[tuple[int, str]] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == want:
                    break
            except OSError:
                continue
        else:
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cmd = cmd.strip() or (proc / "comm").read_text().strip()
        except OSError:
            cmd = "?"
        found.append((int(proc.name), cmd))
    return sorted(found)


def _errno(e: BaseException) -> int | None:
    for x in _chain(e):
        code = getattr(x, "errno", None)
        if isinstance(code, int):
            return code
    return None


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def explain_open_error(url: str, e: BaseException) -> str | None:
    """The one fix for a port that did not open, or None when this is not one of
    the cases known here (the caller keeps its own message)."""
    if "://" in url:  # a network port: only a server's refusal is known here
        for x in _chain(e):
            said = str(getattr(x, "message", None) or x)
            if said.startswith(f"serial port {url} is ") and _REFUSED_MARK in said:
                return said
        return None
    text = " ".join(str(x) for x in _chain(e))
    code = _errno(e)
    if code == errno_mod.EACCES or "Permission denied" in text:
        try:
            group = grp.getgrgid(os.stat(url).st_gid).gr_name
        except (OSError, KeyError):
            group = "dialout"
        return f"permission denied on {url}: {dialout_fix(group)}."
    if "exclusively lock" in text or code == errno_mod.EBUSY:
        held = holders(url)
        if held:
            who = "; ".join(f"process {pid} ({cmd})" for pid, cmd in held[:3])
            return (
                f"serial port {url} is busy: {who} holds it. Close that program "
                f"(or: kill {held[0][0]}) and run the command again."
            )
        return (
            f"serial port {url} is busy: another program holds it. Close it "
            "(picocom: Ctrl-A Ctrl-X; screen: Ctrl-A k) and run the command again."
        )
    if code == errno_mod.ENOENT or "No such file or directory" in text:
        return f"{url} does not exist. {existing_ports_text()}"
    return None


_REFUSED_MARK = "the server refused this connection"
# a refusal line: camrescue's own server says "is busy", ser2net's "in use"
_REFUSAL = re.compile(rb"[^\r\n]*\b(?:busy|in use)\b[^\r\n]*", re.IGNORECASE)


def _network_address(url: str) -> tuple[str, int] | None:
    """HOST and PORT of an ``rfc2217://`` or ``socket://`` URL, else None."""
    m = re.fullmatch(r"(?:rfc2217|socket)://\[?([^\]/?]*?)\]?:(\d+)/?(?:\?.*)?", url)
    if m is None:
        return None
    return m.group(1) or "127.0.0.1", int(m.group(2))


def _first_line(address: tuple[str, int], timeout: float) -> bytes:
    """What the server at ``address`` sends a new connection within ``timeout`` s (up
    to its first line feed); b"" when nothing listens or it says nothing."""
    try:
        conn = socket.create_connection(address, timeout=timeout)
    except OSError:
        return b""
    got = b""
    deadline = time.monotonic() + timeout
    with conn:
        while b"\n" not in got and len(got) < 1024:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            conn.settimeout(left)
            try:
                chunk = conn.recv(1024)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return got


def server_refusal(url: str, received: bytes = b"", *, timeout: float = 1.0) -> str | None:
    """The line with which the serial server at ``url`` refused the connection (found in
    ``received``, what the connection got before it failed, or else in the first line of
    one more connection), or None: not a network URL, or no refusal."""
    address = _network_address(url)
    if address is None:
        return None
    for said in (received, None):
        if said is None:
            said = _first_line(address, timeout)
        # a refusal is the first thing the server says: a board's console text that
        # mentions "busy" later on is not one
        first = said.lstrip(b"\r\n").split(b"\n", 1)[0]
        if _REFUSAL.fullmatch(first.rstrip(b"\r")):
            return first.decode("latin-1").strip()
    return None


def busy_server_text(url: str, line: str) -> str:
    """What to tell a person whose network port was refused with ``line``."""
    what = (
        "in use by another client"
        if re.search(r"in use by|already in use", line, re.IGNORECASE)
        else "busy"
    )
    return (
        f"serial port {url} is {what}: {_REFUSED_MARK}, saying "
        f"{line!r}. Close the other client (a terminal, labgrid, another camrescue) or "
        "wait until it has finished, then run the command again."
    )


def existing_ports_text() -> str:
    ports = list_ports()
    if not ports:
        return (
            "No serial port is present: plug in the USB serial adapter, or start an "
            "emulated camera (camrescue emulate BOARD) and use the port it prints."
        )
    names = []
    for p in ports:
        names.append(p.by_id[0] if p.by_id else p.device)
    return "Serial ports present: " + ", ".join(names) + " (details: camrescue ports)."


def wait_for_device(url: str, wait: float | None, status: Any = None) -> None:
    """One rule for every board: a device path that does not exist fails at once
    (the open then lists the ports that exist), unless the person gave ``--wait``
    (``wait`` not None): then it is waited for that long (an adapter being plugged
    in, an emulator being started). URLs are never waited for here."""
    import time

    if "://" in url or os.path.exists(url) or not wait:
        return
    if status is not None:
        status(f"waiting up to {wait:g} s for {url} to appear ...")
    deadline = time.monotonic() + wait
    while not os.path.exists(url) and time.monotonic() < deadline:
        time.sleep(0.02)


def is_real_port(url: str) -> bool:
    """A serial device of this computer (an adapter, an on-board UART), not a pty
    (an emulator, a terminal) and not a network URL (a lab's served port)."""
    if "://" in url:
        return False
    real = os.path.realpath(url)
    return not (
        real.startswith("/dev/pts/")
        or real == "/dev/ptmx"
        or real.startswith("/dev/tty")
        and real[8:].startswith("p")
    )


def confirm_typed(url: str, what: str, word: str, *, stdin: Any = None, stderr: Any = None) -> bool:
    """Ask for ``word`` typed in full before ``what`` is done to a real camera on ``url``.

    Returns True when confirmed or when ``url`` is not a real port (an emulator's
    pty: rehearsals are not asked); False when the person typed anything else or
    stdin is closed (a script: nothing to confirm with)."""
    import sys

    if not is_real_port(url):
        return True
    stdin = sys.stdin if stdin is None else stdin
    stderr = sys.stderr if stderr is None else stderr
    print(f"{what}\nType {word} to go on (anything else stops): ", end="", file=stderr, flush=True)
    answer = stdin.readline()
    return answer.strip() == word


# -- the command -----------------------------------------------------------------


def run_ports(args: argparse.Namespace) -> int:
    ports = list_ports()
    if getattr(args, "json", False):
        from recovery.jsonout import print_json

        print_json({"ok": True, "operation": "ports", "ports": [asdict(p) for p in ports]})
    else:
        print(describe(ports))
    return 0


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ports",
        help="list the serial ports (USB vendor:product, /dev/serial/by-id names)",
        description="List the serial ports present: device, USB vendor:product, "
        "manufacturer and product, /dev/serial/by-id names, and whether you may open them.",
        epilog=PORTS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run_ports)
    return p
