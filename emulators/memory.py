"""Sparse RAM for board models.

A 128 MB bank would cost 128 MB per device; only pages that are written are
allocated. Unwritten pages read as seeded pseudo-random bytes, the way DRAM
holds noise after power-on, so a program that reads memory it never wrote
does not get friendly zeros. Power loss (``clear``) forgets everything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

PAGE = 0x10000


@dataclass
class SparseRam:
    base: int
    size: int
    seed: int = 0
    pages: dict[int, bytearray] = field(default_factory=dict)
    boots: int = 0

    def contains(self, addr: int, length: int = 1) -> bool:
        return self.base <= addr and addr + length <= self.base + self.size

    def clear(self) -> None:
        self.pages.clear()
        self.boots += 1

    def _page(self, index: int, create: bool) -> bytearray | bytes:
        page = self.pages.get(index)
        if page is not None:
            return page
        noise = random.Random((self.seed, self.boots, index).__hash__()).randbytes(PAGE)
        if not create:
            return noise
        page = bytearray(noise)
        self.pages[index] = page
        return page

    def read(self, addr: int, length: int) -> bytes:
        off = addr - self.base
        out = bytearray()
        while length > 0:
            index, inner = divmod(off, PAGE)
            n = min(length, PAGE - inner)
            out += self._page(index, False)[inner : inner + n]
            off += n
            length -= n
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        off = addr - self.base
        pos = 0
        while pos < len(data):
            index, inner = divmod(off + pos, PAGE)
            n = min(len(data) - pos, PAGE - inner)
            page = self._page(index, True)
            page[inner : inner + n] = data[pos : pos + n]  # type: ignore[index]
            pos += n
