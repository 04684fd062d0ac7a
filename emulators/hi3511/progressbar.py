"""HiSilicon's text progress bar (github zhhejun/u-boot-1.1.4, common/console.c
``progressbar_init``/``progressbar_show``), used by ``erase`` and ``cp`` into flash.

Source: github zhhejun/u-boot-1.1.4 ``common/console.c``.

``init(start, end, steps)`` prints ``[  0%]#``, ``steps`` dashes and ``|``; each
``show(pos)`` whose percentage (``(pos-start)*101/(end-start)``, at most 100)
changed goes back with backspaces, prints ``[%3d%%]#`` and, when the bar's length
changed, its ``#`` marks (and dashes when it got shorter), then backs up to the
column after ``]``. The cursor column is kept between calls as the C code keeps
its static ``prgbar_print_pos``.
"""

from __future__ import annotations


class ProgressBar:
    def __init__(self) -> None:
        self.start = self.end = self.steps = 0
        self.print_pos = 0
        self.last_percent = self.last_pos = -1

    def init(self, start: int, end: int, steps: int = 20) -> str:
        if end <= start or steps < 1:
            return ""
        self.start, self.end, self.steps = start, end, steps
        self.last_percent = self.last_pos = -1
        self.print_pos = 7 + steps + 1
        return "[  0%]#" + "-" * steps + "|"

    def show(self, pos: int) -> str:
        if self.end <= self.start:
            return ""
        pos = min(max(pos, self.start), self.end)
        span = self.end - self.start
        out = []
        i = min(100, (pos - self.start) * 101 // span)
        if i != self.last_percent:
            self.last_percent = i
            out.append("\b" * self.print_pos)
            out.append(f"[{i:3d}%]#")
            self.print_pos = 7
            i = min(self.steps, (pos - self.start) * (self.steps + 1) // span)
            if i != self.last_pos:
                left = self.steps - i if i < self.last_pos else 0
                self.last_pos = i
                self.print_pos += i + left
                out.append("#" * i + "-" * left)
        if self.print_pos >= 7:
            out.append("\b" * (self.print_pos - 6))
            self.print_pos = 6
        return "".join(out)
