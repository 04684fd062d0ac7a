"""U-Boot 1.1.4's command interpreter (common/main.c, common/command.c).

Sources: U-Boot 1.1.4 ``common/main.c`` and ``common/command.c``; HiSilicon's differences from github zhhejun/u-boot-1.1.4.

* ``main_loop``: ``bootdelay``/``bootcmd`` autoboot with ``abortboot``'s exact
  countdown (``Hit any key to stop autoboot: %2d `` then ``\\b\\b\\b%2d `` per
  second; a key is consumed and prints ``\\b\\b\\b 0``), then the prompt loop:
  an empty line repeats the last command when it was repeatable (``md``
  continues at the next address); Ctrl-C prints ``<INTERRUPT>``.
* ``run_command``: ``;`` separates commands outside single quotes (``\\;``
  escapes it); ``process_macros`` expands ``$(var)``/``${var}`` and strips one
  level of quotes and backslashes; ``parse_line`` splits on blanks (at most 16
  arguments); ``find_cmd`` matches a unique prefix up to the first ``.``.
* Messages: ``Unknown command '%s' - try 'help'``, ``Usage:\\n%s\\n``,
  ``## Command too long!``, ``** Too many args (max. 16) **``.

HiSilicon's tree (github zhhejun/u-boot-1.1.4, common/main.c with CONFIG_HISILICON
and CONFIG_ZERO_BOOTDELAY_CHECK from include/configs/hi3511v110.h):

* ``abortboot``: a key already waiting when the countdown starts stops it, whatever
  the key (the ZERO_BOOTDELAY_CHECK test has no space check); during the countdown
  only a space stops it, any other key is read and ends that second early.
* ``main_loop``: ``bootdelay`` outside 0..60 becomes 2, unset is CONFIG_BOOTDELAY
  (2); the countdown runs even without ``bootcmd`` and, not stopped, hangs then.
  Ctrl-C at the prompt prints only ``\\n``; an empty line runs nothing (no repeat).
* Both trees: with CONFIG_BOOT_RETRY_TIME (the ``idle_bootcmd`` option), the prompt
  gives up after that many idle seconds: ``\\nTimed out waiting for command\\n``,
  ``bootcmd`` runs and the main loop starts again (countdown included).

Boot time: a key "already waiting" must have been sent while the board was still
starting; the board spends :data:`~emulators.hi3511.profile.BOOT_TIME` before the
countdown in real-time mode, and in fast mode, when ``bootdelay`` is 0, waits (as
``Clock.key_window`` does) for the host to read the banner and send something,
without taking the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulators.hi3511 import profile
from emulators.hi3511.console import IdleTimeout, Interrupted

if TYPE_CHECKING:
    from emulators.hi3511.uboot import UBoot

CMD_FLAG_REPEAT = 1


@dataclass(frozen=True)
class Command:
    name: str
    maxargs: int
    repeatable: bool
    func: Callable[[UBoot, list[str], int], int]
    usage: str  # the one-line text of the help listing, ending in "\n"
    help: str = ""  # the long help, printed by "help NAME"


def find_cmd(table: dict[str, Command], name: str) -> Command | None:
    length = name.find(".")
    if length < 0:
        length = len(name)
    prefix = name[:length]
    if prefix in table and len(prefix) == len(table[prefix].name):
        return table[prefix]
    found = [c for c in table.values() if c.name.startswith(prefix)]
    return found[0] if len(found) == 1 and prefix else None


def split_commands(line: str) -> list[str]:
    """Split at ``;`` outside single quotes unless escaped by a backslash."""
    out, start, inquotes = [], 0, False
    i = 0
    while i < len(line):
        c = line[i]
        prev = line[i - 1] if i else ""
        if c == "'" and prev != "\\":
            inquotes = not inquotes
        if not inquotes and c == ";" and i != start and prev != "\\":
            out.append(line[start:i])
            start = i + 1
        i += 1
    out.append(line[start:])
    return out


def process_macros(
    text: str, getenv: Callable[[str], str | None], cbsize: int = profile.CBSIZE
) -> str:
    """common/main.c process_macros, character for character."""
    out: list[str] = []
    state = 0
    prev = ""
    i = 0
    name_start = 0
    n = len(text)
    while i < n and len(out) < cbsize:
        c = text[i]
        i += 1
        if state != 3 and c == "\\" and prev != "\\":
            if i >= n:
                break
            prev = c
            c = text[i]
            i += 1
        if state == 0:
            if c == "'" and prev != "\\":
                state = 3
            elif c == "$" and prev != "\\":
                state = 1
            else:
                out.append(c)
        elif state == 1:
            if c in "({":
                state = 2
                name_start = i
            else:
                state = 0
                out.append("$")
                out.append(c)
        elif state == 2:
            if c in ")}":
                value = getenv(text[name_start : i - 1])
                if value is not None:
                    out.append(value)
                state = 0
        elif state == 3:
            if c == "'" and prev != "\\":
                state = 0
            else:
                out.append(c)
        prev = c
    return "".join(out)[:cbsize]


class Shell:
    """The interpreter half of :class:`~emulators.hi3511.uboot.UBoot`."""

    def __init__(self, ub: UBoot, table: dict[str, Command]) -> None:
        self.ub = ub
        self.table = table
        self.last = ""

    def run_command(self, cmd: str, flag: int = 0) -> int:
        """Returns 1 (repeatable), 0 (not repeatable or stopped), -1 (error)."""
        ub = self.ub
        con = ub.con
        cbsize = ub.variant.cbsize
        if not cmd:
            return -1
        if len(cmd) >= cbsize:
            con.puts("## Command too long!\n")
            return -1
        rc = 0
        repeatable = 1
        for token in split_commands(cmd):
            final = process_macros(token, ub.getenv, cbsize)
            argv = final.replace("\t", " ").split(" ")
            argv = [a for a in argv if a]
            if len(argv) > profile.MAXARGS:
                con.puts(f"** Too many args (max. {profile.MAXARGS}) **\n")
                argv = argv[: profile.MAXARGS]
            if not argv:
                rc = -1
                continue
            cmdtp = find_cmd(self.table, argv[0])
            if cmdtp is None:
                con.puts(f"Unknown command '{argv[0]}' - try 'help'\n")
                rc = -1
                continue
            if len(argv) > cmdtp.maxargs:
                con.puts(f"Usage:\n{cmdtp.usage}\n")
                rc = -1
                continue
            if cmdtp.func(ub, argv, flag) != 0:
                rc = -1
            repeatable &= int(cmdtp.repeatable)
            if ub.had_ctrlc:
                ub.had_ctrlc = False
                return 0
        return rc if rc else repeatable

    def main_loop(self) -> None:
        """Until power-off: one pass of common/main.c main_loop per (re)start of it."""
        while True:
            self._main_loop_once()

    def _bootdelay(self) -> int:
        v = self.ub.variant
        s = self.ub.getenv("bootdelay")
        bootdelay = simple_strtol(s) if s is not None else v.config_bootdelay
        if v.hisilicon and not 0 <= bootdelay <= 60:
            bootdelay = 2
        return bootdelay

    def _main_loop_once(self) -> None:
        ub = self.ub
        con = ub.con
        hisi = ub.variant.hisilicon
        bootdelay = self._bootdelay()
        bootcmd = ub.getenv("bootcmd")
        if hisi:
            if not self.abortboot(bootdelay):
                if not bootcmd:
                    ub.hang()
                self.run_command(bootcmd or "", 0)
        elif bootdelay >= 0 and bootcmd and not self.abortboot(bootdelay):
            self.run_command(bootcmd, 0)
        idle = ub.dev.idle_bootcmd
        deadline = None if idle is None else time.monotonic() + idle
        rc = 1
        while True:
            if idle is not None and rc >= 0:
                deadline = time.monotonic() + idle
            try:
                line = con.readline(profile.PROMPT, deadline)
            except Interrupted:
                con.puts("\n" if hisi else "<INTERRUPT>\n")
                continue
            except IdleTimeout:
                con.puts("\nTimed out waiting for command\n")
                self.run_command(ub.getenv("bootcmd") or "", 0)
                return
            if hisi:
                rc = self.run_command(line, 0) if line else rc
                continue
            flag = 0
            if line:
                self.last = line
            else:
                flag |= CMD_FLAG_REPEAT
            rc = self.run_command(self.last, flag)
            if rc <= 0:
                self.last = ""

    def _boot_time(self) -> None:
        """The time between power-on and the countdown: keys sent then are waiting."""
        ub = self.ub
        uart = ub.con.uart
        ub.clock.input_window(uart, profile.BOOT_TIME)

    def abortboot(self, bootdelay: int) -> bool:
        ub = self.ub
        con = ub.con
        uart = con.uart
        hisi = ub.variant.hisilicon
        if bootdelay <= 0 or ub.clock.realtime:
            # (fast mode with a countdown: a key the host sends early is taken by the
            # first second's window instead; in HiSilicon's tree only a space works there)
            self._boot_time()
        # the check follows the printf at once (the text is still in the UART's FIFO), so
        # only a key that was waiting before the line went out can count
        waiting = uart.input_waiting()
        con.puts(f"Hit any key to stop autoboot: {bootdelay:2d} ")
        abort = False
        if bootdelay >= 0 and waiting and uart.read(1, 0):
            con.puts("\b\b\b 0")
            abort = True
        offer = True
        while bootdelay > 0 and not abort:
            bootdelay -= 1
            # fast mode offers the window while keys keep coming (the first second always)
            if ub.clock.realtime or offer:
                key = ub.clock.key_window(uart, 1.0)
            else:
                key = uart.read(1, 0)
            offer = bool(key)
            if key and (key == b" " or not hisi):
                abort = True
                bootdelay = 0
            con.puts(f"\b\b\b{bootdelay:2d} ")
        con.puts("\n")
        return abort


def simple_strtol(text: str) -> int:
    """lib_generic/vsprintf.c simple_strtol with base 10: leading digits, else 0."""
    sign = -1 if text.startswith("-") else 1
    digits = ""
    for ch in text[1:] if sign < 0 else text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0
