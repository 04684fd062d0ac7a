"""Line discipline shared by the text consoles (U-Boot, W90P745 loader, XR872 shell).

Source: U-Boot 1.1.4 ``common/main.c`` (``readline``); the boards' own loaders override it.

Modelled on U-Boot 1.1.4's ``readline`` (common/main.c, without
CONFIG_CMDLINE_EDITING): echo of printable input, ``\\r`` or ``\\n`` ends the
line (echo ``\\r\\n``), backspace or DEL erases with ``\\b \\b``, Ctrl-U erases
the line, Ctrl-W the last word, Ctrl-C abandons the line, a full buffer beeps
``\\a``, TAB echoes spaces to the next 8-column stop and is stored as TAB,
NUL is ignored. Boards whose loaders differ override the class attributes.

Output goes through :meth:`Console.puts`, which turns ``\\n`` into ``\\r\\n``
as the boards' serial drivers do (U-Boot's ``serial_putc`` sends ``\\r``
before ``\\n``).
"""

from __future__ import annotations

from emulators.serial import VirtualUart


class Interrupted(Exception):
    """Ctrl-C on the line."""


class Console:
    cbsize = 256  # CFG_CBSIZE: the line holds cbsize - 2 characters
    erase_seq = b"\b \b"
    bell = b"\a"
    echo = True

    def __init__(self, uart: VirtualUart) -> None:
        self.uart = uart

    def puts(self, text: str | bytes) -> None:
        data = text.encode("latin-1") if isinstance(text, str) else text
        self.uart.write(data.replace(b"\n", b"\r\n"))

    def raw(self, data: bytes) -> None:
        self.uart.write(data)

    def getc(self, timeout: float | None = None) -> int | None:
        b = self.uart.read(1, timeout)
        return b[0] if b else None

    def ctrlc(self) -> bool:
        """U-Boot's ``ctrlc()``: consume pending input, True if a Ctrl-C was among it."""
        seen = False
        while self.uart.input_waiting():
            b = self.uart.read(1, 0)
            if not b:
                break
            if b == b"\x03":
                seen = True
        return seen

    def readline(self, prompt: str) -> str:
        """Read one line with echo and editing. Raises :class:`Interrupted` on Ctrl-C."""
        self.puts(prompt)
        buf: list[str] = []
        col = len(prompt)
        plen = len(prompt)
        while True:
            c = self.getc()
            if c is None:
                continue
            if c in (0x0D, 0x0A):
                self.raw(b"\r\n")
                return "".join(buf)
            if c == 0x00:
                continue
            if c == 0x03:
                raise Interrupted()
            if c == 0x15:  # ^U
                while buf:
                    col = self._erase(buf, col, plen)
                continue
            if c == 0x17:  # ^W
                while buf and buf[-1] == " ":
                    col = self._erase(buf, col, plen)
                while buf and buf[-1] != " ":
                    col = self._erase(buf, col, plen)
                continue
            if c in (0x08, 0x7F):
                if buf:
                    col = self._erase(buf, col, plen)
                continue
            if len(buf) < self.cbsize - 2:
                ch = chr(c)
                if ch == "\t":
                    spaces = 8 - (col & 7)
                    if self.echo:
                        self.raw(b" " * spaces)
                    col += spaces
                else:
                    if self.echo:
                        self.raw(bytes([c]))
                    col += 1
                buf.append(ch)
            else:
                self.raw(self.bell)

    def _erase(self, buf: list[str], col: int, plen: int) -> int:
        ch = buf.pop()
        if ch == "\t":
            # U-Boot redraws from the prompt to find the column again
            col = plen
            for c in buf:
                col = col + 8 - (col & 7) if c == "\t" else col + 1
            return col
        if self.echo:
            self.raw(self.erase_seq)
        return col - 1
