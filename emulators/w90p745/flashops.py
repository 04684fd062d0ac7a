"""Flash writes as the loader does them: erase the blocks, program, verify.

All writes go through :class:`~emulators.flash.NorFlash` with the loader's
discipline: every block the image (and its record) needs is erased first,
then the data and the record are programmed word by word (16-bit bus,
``program_checked``) and read back.

Block 0 holds the loader and is protected at power-on. A command that would
erase or program it prints ``ERROR: Block 0x7F000000 is write protected``
(message ours) before anything is touched; the flash model's own
protection check stays behind it as a second line.
"""

from __future__ import annotations

from emulators.flash import FlashNotErasedError, FlashProtectedError, NorFlash
from emulators.w90p745 import profile as P
from emulators.w90p745.imagetable import ImageRecord, blocks_of


class FlashOpError(Exception):
    """A flash command failed; the message is what the loader prints."""


def protected_message(block: int) -> str:
    return f"ERROR: Block 0x{P.FLASH_BASE + block * P.BLOCK_SIZE:08X} is write protected"


def check_writable(flash: NorFlash, blocks: range) -> None:
    for b in blocks:
        if flash.is_protected(b):
            raise FlashOpError(protected_message(b))


def erase_blocks(flash: NorFlash, blocks: range) -> None:
    check_writable(flash, blocks)
    try:
        for b in blocks:
            flash.erase_sector(b)
    except FlashProtectedError as e:  # pragma: no cover - checked above
        raise FlashOpError(protected_message(e.sector)) from e


def program(flash: NorFlash, addr: int, data: bytes) -> None:
    off = addr - P.FLASH_BASE
    try:
        flash.program_checked(off, data, width=2)
    except FlashNotErasedError as e:
        raise FlashOpError(
            f"ERROR: Flash programming failed at 0x{P.FLASH_BASE + e.offset:08X}"
        ) from e
    except FlashProtectedError as e:  # pragma: no cover - checked by callers
        raise FlashOpError(protected_message(e.sector)) from e
    back = flash.read(off, len(data))
    if back != data:
        bad = next(i for i in range(len(data)) if back[i] != data[i])
        raise FlashOpError(f"ERROR: Flash verify failed at 0x{addr + bad:08X}")


def write_image(flash: NorFlash, rec: ImageRecord, data: bytes) -> None:
    """Erase what ``rec`` (already placed) needs, program the data and the record."""
    erase_blocks(flash, blocks_of(rec))
    program(flash, rec.base, data)
    program(flash, rec.footer, rec.pack())


def delete_image(flash: NorFlash, rec: ImageRecord) -> None:
    """DEL: erase every block from the image's base to its record."""
    erase_blocks(flash, blocks_of(rec))
