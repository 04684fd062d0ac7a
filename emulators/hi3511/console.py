"""U-Boot 1.1.4's ``readline`` as the Hi3511 runs it (common/main.c), on top of
:class:`emulators.console.Console` (whose ``puts`` sends every ``\\n`` as ``\\r\\n``,
as ``serial_pl011.c``'s ``serial_putc`` does).

Sources: U-Boot 1.1.4 ``common/main.c`` and its PL011 serial driver (``serial_pl011.c``); HiSilicon's from github zhhejun/u-boot-1.1.4.

Both variants:

* Enter (``\\r`` or ``\\n``) does ``puts("\\r\\n")``, which the serial driver sends as
  ``\\r\\r\\n`` (REFERENCE.md "Captured from the real program").
* Printable input is echoed; backspace/DEL erase with ``\\b \\b``; Ctrl-U erases the
  line, Ctrl-W a word; TAB echoes spaces to the next 8-column stop; NUL is ignored;
  a full buffer (CFG_CBSIZE - 2 characters) beeps ``\\a``; Ctrl-C abandons the line
  (the caller prints what its main loop prints).
* ``ctrlc()``, which long commands call now and then, reads one waiting character
  per call (common/console.c): typing ahead during ``md`` loses characters.
* ``CONFIG_BOOT_RETRY_TIME`` (an option, see :class:`IdleTimeout`): while no input
  is waiting and the deadline has passed, readline gives up.

HiSilicon (github zhhejun/u-boot-1.1.4, common/main.c with CFG_CMDLINE_HISTORYS 8
from include/configs/hi3511v110.h): ESC starts a sequence; ``ESC [ A``/``ESC [ B``
walk an 8-line history of the lines typed at the ``hilinux # `` prompt (``\\a`` at
either end), ``ESC [ C``/``D`` beep, any other ``ESC [ x`` echoes ``^[x`` and stores
the three bytes, and ESC followed by anything but ``[`` echoes ``^`` and that byte
and stores both. CONFIG_AUTO_COMPLETE's TAB completion is not modelled (TAB
expands as upstream does).
"""

from __future__ import annotations

import time

from emulators.console import Console, Interrupted
from emulators.hi3511.profile import Variant
from emulators.serial import VirtualUart

__all__ = ["IdleTimeout", "Interrupted", "UBootConsole"]

HISTORY = 8  # CFG_CMDLINE_HISTORYS


class IdleTimeout(Exception):
    """readline returned -2: CONFIG_BOOT_RETRY_TIME passed with no input waiting."""


class UBootConsole(Console):
    def __init__(self, uart: VirtualUart, variant: Variant) -> None:
        super().__init__(uart)
        self.variant = variant
        self.cbsize = variant.cbsize
        self.history: list[str] = [""] * HISTORY
        self.hist_pos = HISTORY  # _cur_cmdline_pos, HISTORY = never used

    def ctrlc(self) -> bool:
        """common/console.c ``ctrlc()``: reads one waiting character; True if it was
        Ctrl-C (other characters are lost, one per call)."""
        if not self.uart.input_waiting():
            return False
        return self.uart.read(1, 0) == b"\x03"

    def readline(self, prompt: str, deadline: float | None = None) -> str:
        """One line; raises Interrupted (Ctrl-C) or IdleTimeout (``deadline``, monotonic)."""
        hisi = self.variant.hisilicon
        if hisi:
            if self.hist_pos == HISTORY:
                self.history = [""] * HISTORY
                self.hist_pos = 0
            else:
                self.history[self.hist_pos] = ""
        review = self.hist_pos
        shell = hisi and prompt == "hilinux # "
        self.puts(prompt)
        plen = col = len(prompt)
        buf: list[str] = []
        state = 0
        keys: list[int] = [0, 0, 0]
        while True:
            c = self._next(deadline)
            if hisi and state:
                keys[state] = c
                if state == 1:
                    if c == ord("["):
                        state = 2
                        continue
                    state = 0
                    self.raw(b"^" + bytes([c]))
                    col += 2
                    buf += [chr(keys[0]), chr(c)]
                    continue
                state = 0
                if not shell:
                    self.raw(b"\a")
                    continue
                if c == ord("A"):
                    pos = (review - 1) % HISTORY
                    if pos == self.hist_pos or not self.history[pos]:
                        self.raw(b"\a")
                        continue
                    col = self._recall(buf, col, plen, self.history[pos])
                    review = pos
                elif c == ord("B"):
                    pos = (review + 1) % HISTORY
                    if review == self.hist_pos:
                        self.raw(b"\a")
                        continue
                    col = self._recall(buf, col, plen, self.history[pos])
                    review = pos
                elif c in (ord("C"), ord("D")):
                    self.raw(b"\a")
                else:
                    self.raw(b"^[" + bytes([c]))
                    col += 3
                    buf += [chr(keys[0]), chr(keys[1]), chr(c)]
                continue
            if hisi and c == 0x1B:
                keys[0] = c
                state = 1
                continue
            if c in (0x0D, 0x0A):
                self.puts("\r\n")
                line = "".join(buf)
                if shell and line:
                    self.history[self.hist_pos] = line
                    self.hist_pos = (self.hist_pos + 1) % HISTORY
                return line
            if c == 0x00:
                continue
            if c == 0x03:
                raise Interrupted()
            if c == 0x15:  # ^U
                while col > plen:
                    self.raw(self.erase_seq)
                    col -= 1
                buf.clear()
            elif c == 0x17:  # ^W: delete until the deleted character is a blank
                gone = buf[-1] if buf else ""
                col = self._delete(buf, col, plen)
                while buf and gone != " ":
                    gone = buf[-1]
                    col = self._delete(buf, col, plen)
            elif c in (0x08, 0x7F):
                col = self._delete(buf, col, plen)
            elif len(buf) < self.cbsize - 2:
                if c == 0x09:
                    spaces = 8 - (col & 7)
                    self.raw(b" " * spaces)
                    col += spaces
                else:
                    self.raw(bytes([c]))
                    col += 1
                buf.append(chr(c))
            else:
                self.raw(self.bell)
            if shell:
                review = self.hist_pos
                self.history[self.hist_pos] = "".join(buf)

    def _next(self, deadline: float | None) -> int:
        while True:
            if deadline is None:
                c = self.getc()
            else:
                left = deadline - time.monotonic()
                if left <= 0 and not self.uart.input_waiting():
                    raise IdleTimeout()
                c = self.getc(timeout=max(left, 0.0))
            if c is not None:
                return c

    def _recall(self, buf: list[str], col: int, plen: int, line: str) -> int:
        while buf:
            col = self._delete(buf, col, plen)
        buf += list(line)
        self.raw(line.encode("latin-1"))
        return col + len(line)

    def _delete(self, buf: list[str], col: int, plen: int) -> int:
        """common/main.c delete_char: a TAB makes it retype the whole line."""
        if not buf:
            return col
        ch = buf.pop()
        if ch != "\t":
            self.raw(self.erase_seq)
            return col - 1
        while col > plen:
            self.raw(self.erase_seq)
            col -= 1
        out = bytearray()
        for c in buf:
            if c == "\t":
                out += b" " * (8 - (col & 7))
                col += 8 - (col & 7)
            else:
                out += c.encode("latin-1")
                col += 1
        self.raw(bytes(out))
        return col
