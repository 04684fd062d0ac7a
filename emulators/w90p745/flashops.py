"""Flash writes as the loader does them (WBLv1_1 ``Src/flash.c``).

Source: the WBLv1_1 loader's ``Src/flash.c`` (``WriteImage``, ``DelImage``, ``DelBlock``, ``CorruptCheck``).

``WriteImage``: block by block, erase then program (a dot printed per block),
then the footer at the end of the last block or of the next one (erased for
it), see :mod:`emulators.w90p745.imagetable`. ``DelImage``: erase from base up
to base+length, one more block for a whole-block length, a dot per block.
Programming goes through :class:`~emulators.flash.NorFlash` word by word
(16-bit bus, ``program_checked``) and is read back.

Block 0 holds the loader and is protected at power-on (the loader's
``DelBlock`` refuses block 0 and ``CorruptCheck`` refuses images in it). A
write that would touch it anyway prints ``ERROR: Block 0x7F000000 is write
protected`` (message ours) before anything is touched; the flash model's own
protection check stays behind it as a second line.
"""

from __future__ import annotations

from collections.abc import Callable

from emulators.flash import FlashNotErasedError, FlashProtectedError, NorFlash
from emulators.w90p745 import profile as P
from emulators.w90p745.imagetable import ImageRecord, del_blocks


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


def write_image(
    flash: NorFlash,
    rec: ImageRecord,
    data: bytes,
    *,
    footer: bool = True,
    dots: Callable[[str], None] | None = None,
) -> None:
    """``WriteImage``: erase and program block by block (a dot each), then the footer
    (at the end of the last block, or of the next one, erased for it)."""
    body = bytes(data) + b"\0" * (rec.size - len(data))
    off = 0
    while off < len(body) or (off == 0 and not body):
        block = (rec.base - P.FLASH_BASE + off) // P.BLOCK_SIZE
        erase_blocks(flash, range(block, block + 1))
        chunk = body[off : off + P.BLOCK_SIZE]
        if chunk:
            program(flash, rec.base + off, chunk)
        off += P.BLOCK_SIZE
        if dots:
            dots(".")
        if not body:
            break
    if not footer:
        return
    fblock = (rec.footer - P.FLASH_BASE) // P.BLOCK_SIZE
    if fblock > (rec.base - P.FLASH_BASE + max(len(body), 1) - 1) // P.BLOCK_SIZE:
        erase_blocks(flash, range(fblock, fblock + 1))
    program(flash, rec.footer, rec.pack())


def delete_image(
    flash: NorFlash, rec: ImageRecord, dots: Callable[[str], None] | None = None
) -> None:
    """``DelImage``: erase base up to base+length (one more block for a whole-block
    length), a dot per block."""
    for block in del_blocks(rec):
        erase_blocks(flash, range(block, block + 1))
        if dots:
            dots(".")
