"""NOR flash model shared by the three boards.

What is modelled (sources: the seeds, REFERENCE.md, CFI/SPI NOR datasheets):

* Programming can only clear bits: the cell becomes ``old AND data``. This is
  what turns a file flashed over an unerased partition into the JFFS2 CRC
  errors of seed 000 (old 0101 0101, new 1100 1100, flash 0100 0100).
* Erase works on whole sectors and sets them to 0xFF. A range erase must start
  and end on sector boundaries.
* SPI NOR chips (``page_size`` set) program through a page buffer: bytes of one
  program command that run past the end of the page wrap to its start, and a
  later byte for the same cell replaces the earlier one (as in the Winbond and
  GigaDevice datasheets: "the addressing wraps to the beginning of the page").
* Per-sector protection: a program or erase touching a protected sector raises
  :class:`FlashProtectedError` and changes nothing.
* A *checked* program mode, as U-Boot's CFI driver does it (``flash_write_cfi``
  checks each word with ``(dest & data) != data``): it writes word by word and
  stops at the first word that would need a 0 -> 1 change, with the words
  before it already programmed, raising :class:`FlashNotErasedError`.
* Statistics: erase count per sector (wear), and per sector the number of bits
  that programs wanted at 1 but found at 0 since the sector's last erase ("you
  forgot to erase").
* Faults, deterministic for a seed: power loss during an erase leaves the
  sector partially erased (a seeded share of its 0 bits set to 1, never all
  0xFF); power loss during a program leaves only a prefix programmed. Either
  raises :class:`PowerLossError`, which the device turns into a power cut.
* Timing: erase time per sector and program time per byte from the profile,
  spent only in real-time mode.
* Persistence: the cells live in a memory-mapped file when a path is given, so
  a device keeps its flash across power cycles and restarts and the harness can
  read the file directly.
"""

from __future__ import annotations

import bisect
import mmap
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class FlashError(Exception):
    """Base class of the flash model's errors."""


class FlashAlignmentError(FlashError):
    """An erase range does not start or end on a sector boundary."""


class FlashRangeError(FlashError):
    """An access falls outside the chip."""


class FlashProtectedError(FlashError):
    """A program or erase touched a protected sector; nothing was changed."""

    def __init__(self, sector: int, offset: int) -> None:
        super().__init__(f"sector {sector} at 0x{offset:08x} is protected")
        self.sector = sector
        self.offset = offset


class FlashNotErasedError(FlashError):
    """A checked program met a word that needs a bit to go from 0 to 1.

    ``offset`` is the first word that was not written; all words before it
    were programmed.
    """

    def __init__(self, offset: int) -> None:
        super().__init__(f"flash not erased at 0x{offset:08x}")
        self.offset = offset


class PowerLossError(FlashError):
    """Power was lost in the middle of an erase or program (an injected fault)."""


@dataclass(frozen=True)
class FlashGeometry:
    """Fixed facts of a chip.

    ``regions`` lists ``(count, sector_size)`` pairs from the bottom of the
    chip up, so a boot-block part is e.g. ``((8, 0x2000), (31, 0x10000))``.
    ``erase_time`` is seconds per sector erase, ``program_time`` seconds per
    byte; both are spent only in real-time mode.
    """

    regions: tuple[tuple[int, int], ...]
    page_size: int | None = None
    erase_time: float = 0.7
    program_time: float = 10e-6
    name: str = "NOR flash"

    @classmethod
    def uniform(cls, size: int, sector_size: int, **kw: object) -> FlashGeometry:
        if size % sector_size:
            raise ValueError("size must be a multiple of the sector size")
        return cls(regions=((size // sector_size, sector_size),), **kw)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return sum(count * size for count, size in self.regions)

    def sector_starts(self) -> list[int]:
        starts, pos = [], 0
        for count, size in self.regions:
            for _ in range(count):
                starts.append(pos)
                pos += size
        return starts


@dataclass
class FlashStats:
    """Wear and damage counters, per sector."""

    erase_counts: list[int]
    lost_bits: list[int]
    bytes_programmed: int = 0
    sectors_erased: int = 0

    @property
    def total_lost_bits(self) -> int:
        return sum(self.lost_bits)


@dataclass
class _PowerLossPlan:
    erase_sectors: int | None = None
    program_bytes: int | None = None


@dataclass
class NorFlash:
    """A NOR flash chip: cells, sectors, protection, faults and timing.

    Offsets are relative to the chip start; each board maps them into its own
    address space. Use as a context manager, or call :meth:`close`.
    """

    geometry: FlashGeometry
    path: str | os.PathLike[str] | None = None
    seed: int = 0
    realtime: bool = False
    stats: FlashStats = field(init=False)

    def __post_init__(self) -> None:
        size = self.geometry.size
        self._starts = self.geometry.sector_starts()
        self._protected = [False] * len(self._starts)
        self.stats = FlashStats([0] * len(self._starts), [0] * len(self._starts))
        self._lock = threading.RLock()
        self._rng = random.Random(self.seed)
        self._plan = _PowerLossPlan()
        self._file = None
        if self.path is None:
            self._mem = mmap.mmap(-1, size)
            self._mem.write(b"\xff" * size)
        else:
            p = Path(self.path)
            fresh = not p.exists()
            if not fresh and p.stat().st_size != size:
                raise FlashError(
                    f"{p}: is {p.stat().st_size} bytes, but this chip holds {size} bytes"
                )
            self._file = open(p, "r+b" if not fresh else "w+b")  # noqa: SIM115 (owned)
            if fresh:
                self._file.write(b"\xff" * size)
                self._file.flush()
            self._mem = mmap.mmap(self._file.fileno(), size)
        self.fresh = self.path is None or fresh

    # -- geometry -------------------------------------------------------
    @property
    def size(self) -> int:
        return self.geometry.size

    @property
    def sector_count(self) -> int:
        return len(self._starts)

    def sector_of(self, offset: int) -> int:
        self._check_range(offset, 1)
        return bisect.bisect_right(self._starts, offset) - 1

    def sector_start(self, index: int) -> int:
        return self._starts[index]

    def sector_size(self, index: int) -> int:
        end = self._starts[index + 1] if index + 1 < len(self._starts) else self.size
        return end - self._starts[index]

    def sectors_in(self, offset: int, length: int) -> range:
        """Indices of the sectors that the byte range touches."""
        if length <= 0:
            return range(0)
        return range(self.sector_of(offset), self.sector_of(offset + length - 1) + 1)

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashRangeError(
                f"0x{offset:x}+0x{length:x} is outside the {self.size:#x}-byte chip"
            )

    # -- access -----------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length)
        return self._mem[offset : offset + length]

    def snapshot(self) -> bytes:
        return self._mem[:]

    def load(self, offset: int, data: bytes) -> None:
        """Factory-program: overwrite cells directly, as a chip programmer does.

        Bypasses AND semantics, protection, faults and statistics; used to
        give a device its starting firmware.
        """
        self._check_range(offset, len(data))
        with self._lock:
            self._mem[offset : offset + len(data)] = data

    # -- protection -------------------------------------------------------
    def protect(self, index: int, on: bool = True) -> None:
        self._protected[index] = on

    def is_protected(self, index: int) -> bool:
        return self._protected[index]

    def _check_unprotected(self, offset: int, length: int) -> None:
        for s in self.sectors_in(offset, length):
            if self._protected[s]:
                raise FlashProtectedError(s, self._starts[s])

    # -- faults -------------------------------------------------------------
    def arm_power_loss(
        self, *, erase_sectors: int | None = None, program_bytes: int | None = None
    ) -> None:
        """Lose power after ``erase_sectors`` more whole sector erases (the next
        one is cut halfway), or after ``program_bytes`` more bytes programmed."""
        self._plan = _PowerLossPlan(erase_sectors, program_bytes)

    def disarm(self) -> None:
        self._plan = _PowerLossPlan()

    # -- erase --------------------------------------------------------------
    def erase(self, offset: int, length: int) -> int:
        """Erase the sectors covering exactly [offset, offset+length).

        Returns the number of sectors erased. Raises
        :class:`FlashAlignmentError` when the range is not sector aligned.
        """
        self._check_range(offset, length)
        if length == 0:
            return 0
        first, last = self.sector_of(offset), self.sector_of(offset + length - 1)
        if self._starts[first] != offset:
            raise FlashAlignmentError(f"0x{offset:08x} is not on a sector boundary")
        end = offset + length
        if self._starts[last] + self.sector_size(last) != end:
            raise FlashAlignmentError(f"0x{end:08x} is not on a sector boundary")
        self._check_unprotected(offset, length)
        for s in range(first, last + 1):
            self.erase_sector(s)
        return last - first + 1

    def erase_sector(self, index: int) -> None:
        if self._protected[index]:
            raise FlashProtectedError(index, self._starts[index])
        start, size = self._starts[index], self.sector_size(index)
        with self._lock:
            left = self._plan.erase_sectors
            if left is not None:
                if left == 0:
                    self._plan = _PowerLossPlan()
                    self._partial_erase(start, size)
                    raise PowerLossError(f"power lost while erasing sector {index}")
                self._plan.erase_sectors = left - 1
            self._spend(self.geometry.erase_time)
            self._mem[start : start + size] = b"\xff" * size
            self.stats.erase_counts[index] += 1
            self.stats.lost_bits[index] = 0
            self.stats.sectors_erased += 1

    def _partial_erase(self, start: int, size: int) -> None:
        # An interrupted erase leaves cells part way: model it as a seeded
        # share of the cleared bits set, so the sector reads neither as the
        # old data nor as erased. Ensure at least one 0 bit remains.
        old = int.from_bytes(self._mem[start : start + size], "little")
        share = self._rng.random() * 0.8 + 0.1
        mask = self._random_mask(size, share)
        new = old | mask
        full = (1 << (8 * size)) - 1
        if new == full:
            new &= ~1
        self._mem[start : start + size] = new.to_bytes(size, "little")

    def _random_mask(self, size: int, share: float) -> int:
        # Each byte of the mask is 0xFF with probability ``share``: erase
        # progresses cell group by cell group rather than bit by bit.
        rng = self._rng
        return int.from_bytes(
            bytes(0xFF if rng.random() < share else 0 for _ in range(size)), "little"
        )

    # -- program --------------------------------------------------------------
    def program(self, offset: int, data: bytes) -> int:
        """Raw program: cells become ``old AND data``; no erase check.

        On a chip with a page size this is one page-program command: bytes
        past the end of the page wrap to the page start. Returns the number
        of bits that were wanted at 1 but stayed 0.
        """
        if not data:
            return 0
        if self.geometry.page_size:
            return self._page_program(offset, bytes(data))
        self._check_range(offset, len(data))
        self._check_unprotected(offset, len(data))
        with self._lock:
            return self._and_in(offset, bytes(data))

    def program_checked(self, offset: int, data: bytes, width: int = 2) -> None:
        """Program word by word like U-Boot's CFI driver, stopping before the
        first word that would need a 0 -> 1 change.

        Raises :class:`FlashNotErasedError` with that word's offset; words
        before it are programmed.
        """
        if not data:
            return
        self._check_range(offset, len(data))
        self._check_unprotected(offset, len(data))
        data = bytes(data)
        with self._lock:
            old = int.from_bytes(self._mem[offset : offset + len(data)], "little")
            new = int.from_bytes(data, "little")
            bad = ~old & new
            if not bad:
                self._and_in(offset, data)
                return
            first_bad_byte = ((bad & -bad).bit_length() - 1) // 8
            # Words are counted from the start of the write, as the driver
            # walks its buffer from ``dest``.
            ok_len = first_bad_byte - (first_bad_byte % width)
            if ok_len:
                self._and_in(offset, data[:ok_len])
            raise FlashNotErasedError(offset + ok_len)

    def _page_program(self, offset: int, data: bytes) -> int:
        page = self.geometry.page_size
        assert page
        self._check_range(offset, 1)
        base = offset - offset % page
        buf = bytearray(b"\xff" * page)
        start = offset - base
        if len(data) >= page:
            # Only the last ``page`` bytes sent survive in the buffer.
            skip = len(data) - page
            data = data[skip:]
            start = (start + skip) % page
        for i, b in enumerate(data):
            buf[(start + i) % page] = b
        self._check_range(base, page)
        self._check_unprotected(base, page)
        with self._lock:
            return self._and_in(base, bytes(buf))

    def _and_in(self, offset: int, data: bytes) -> int:
        """AND ``data`` into the cells, applying stats, faults and timing."""
        n = len(data)
        plan = self._plan
        cut = plan.program_bytes is not None and plan.program_bytes < n
        if cut:
            n = plan.program_bytes  # type: ignore[assignment]
            data = data[:n]
            self._plan = _PowerLossPlan()
        elif plan.program_bytes is not None:
            plan.program_bytes -= n
        lost_total = 0
        for s in self.sectors_in(offset, n):
            lo = max(offset, self._starts[s])
            hi = min(offset + n, self._starts[s] + self.sector_size(s))
            old = int.from_bytes(self._mem[lo:hi], "little")
            new = int.from_bytes(data[lo - offset : hi - offset], "little")
            lost = (~old & new).bit_count()
            self.stats.lost_bits[s] += lost
            lost_total += lost
            self._mem[lo:hi] = (old & new).to_bytes(hi - lo, "little")
        self.stats.bytes_programmed += n
        self._spend(self.geometry.program_time * n)
        if cut:
            raise PowerLossError(f"power lost after {n} bytes of a program at 0x{offset:08x}")
        return lost_total

    # -- time and lifecycle ---------------------------------------------------
    def _spend(self, seconds: float) -> None:
        if self.realtime and seconds > 0:
            time.sleep(seconds)

    def flush(self) -> None:
        if self._file is not None:
            self._mem.flush()

    def close(self) -> None:
        if self._mem.closed:
            return
        self.flush()
        self._mem.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> NorFlash:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sector_layout(flash: NorFlash) -> Sequence[tuple[int, int]]:
    """(start, size) of every sector, for reports and flinfo-style listings."""
    return [(flash.sector_start(i), flash.sector_size(i)) for i in range(flash.sector_count)]
