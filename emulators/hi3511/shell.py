"""U-Boot 1.1.4's command interpreter (common/main.c, common/command.c).

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulators.console import Interrupted
from emulators.hi3511 import profile

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


def process_macros(text: str, getenv: Callable[[str], str | None]) -> str:
    """common/main.c process_macros, character for character."""
    out: list[str] = []
    state = 0
    prev = ""
    i = 0
    name_start = 0
    n = len(text)
    while i < n and len(out) < profile.CBSIZE:
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
    return "".join(out)[: profile.CBSIZE]


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
        if not cmd:
            return -1
        if len(cmd) >= profile.CBSIZE:
            con.puts("## Command too long!\n")
            return -1
        rc = 0
        repeatable = 1
        for token in split_commands(cmd):
            final = process_macros(token, ub.getenv)
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
        ub = self.ub
        con = ub.con
        s = ub.getenv("bootdelay")
        try:
            bootdelay = int(s, 10) if s is not None else 1
        except ValueError:
            bootdelay = 0
        bootcmd = ub.getenv("bootcmd")
        if bootdelay >= 0 and bootcmd and not self.abortboot(bootdelay):
            self.run_command(bootcmd, 0)
        while True:
            try:
                line = con.readline(profile.PROMPT)
            except Interrupted:
                con.puts("<INTERRUPT>\n")
                continue
            flag = 0
            if line:
                self.last = line
            else:
                flag |= CMD_FLAG_REPEAT
            rc = self.run_command(self.last, flag)
            if rc <= 0:
                self.last = ""

    def abortboot(self, bootdelay: int) -> bool:
        con = self.ub.con
        uart = con.uart
        con.puts(f"Hit any key to stop autoboot: {bootdelay:2d} ")
        abort = False
        if uart.input_waiting() and uart.read(1, 0):
            con.puts("\b\b\b 0")
            abort = True
        first = True
        while bootdelay > 0 and not abort:
            bootdelay -= 1
            # the whole window is offered at the first second in fast mode
            window = 1.0 if self.ub.clock.realtime or first else 0.0
            key = self.ub.clock.key_window(uart, window) if window else uart.read(1, 0)
            first = False
            if key:
                abort = True
                bootdelay = 0
            con.puts(f"\b\b\b{bootdelay:2d} ")
        con.puts("\n")
        return abort
