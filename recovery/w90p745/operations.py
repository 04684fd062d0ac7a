"""Recovery engine for W90P745 cameras (Winbond boot loader, ``bootloader > ``).

Written for a real camera on ``/dev/ttyUSB0`` and tested against the
emulator. Facts from seed 001, REFERENCE.md and the family's loader source
(WBLv1_1 ``shell/sh.c``, ``Xmodem/xmodem.c``, ``Src/flash.c``): console 115200
8N1 after every reset (``B`` raises it until the next); 2 MiB NOR flash at
0x7F000000, the loader in its first 64 KiB, BOOT INFO (image 0) at
0x7F010000; images at 64 KiB block addresses, each with a 52-byte footer at
the end of its last block (or of the next one) holding its checksum.

This module holds the operations (``info``, ``dump``, ``restore``):

* **Dumps** read every 256-byte page of each chosen image once with ``d``
  (bare ``d`` after the first, one page ahead) and check the image against
  its footer's ``image_checksum``; only when that fails is every page read
  again (differing pages until two reads agree); an image without a usable
  footer is read twice. The image is appended to ``<file>.part`` and a state
  file names the image, so an interrupted dump resumes at the last whole
  page. Finished images are renamed into place and listed in
  ``manifest.json`` (table entry, size, sha256, date, how it was verified),
  written atomically after each image; a directory that holds a dump of a
  different table is refused.
* **Restores** check the dump first (manifest readable, every file present
  with its size and sha256) and the plan (inside the flash, clear of the
  loader, of BOOT INFO and of images that stay), then write each image with
  ``fx`` over Xmodem-CRC in 128-byte blocks (``fx`` deletes an existing image
  N before it receives: it is answered only now), check that ``ls`` lists
  exactly the padded size sent (a resent block that the loader stored 128
  bytes further on makes it larger: delete, send again), and read the image
  back with ``d`` (``verify="full"``). A failed transfer is sent again; a
  restore that cannot finish names the missing image, the intact ones and
  the command that finishes the job. BOOT INFO is never rewritten.

The parts, one job each:

* recovery/w90p745/parsers.py: parsers of the loader's output (``d`` pages,
  ``ls -al``, the banner);
* recovery/w90p745/driver.py: the console driver (attach, echo-checked
  commands, the image table, pages, ``fx``);
* recovery/w90p745/dumpdir.py: the dump directory (file names, manifest, resume
  state, :func:`load_dump`);
* recovery/w90p745/cli.py: ``camrescue w90p745 ...`` (:func:`register_cli`).

Their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery.errors import (
    ConsoleError,
    Interrupted,
    RecoveryError,
    RefusedError,
    UsageError,
    VerifyError,
)
from recovery.files import SPACE_MARGIN, atomic_write_json, fsync_dir
from recovery.progress import Progress
from recovery.safety import Area, check_protected, flash_tracker
from recovery.transport import Port, Timeout, TransportError
from recovery.w90p745.driver import (
    FLASH_BLOCK,
    LOADER_BAUDS,
    EchoError,
    Notify,
    TransferFailed,
    W90Console,
    check_fx_entry,
    stderr_notify,
)
from recovery.w90p745.dumpdir import (
    FORMAT,
    MANIFEST,
    ODD_OPTION,
    STATE,
    DumpImage,
    file_name,
    load_dump,
    read_json,
    sha256_file,
    utc_now,
    write_manifest,
)
from recovery.w90p745.parsers import (
    FOOTER_SIZE,
    PAGE_SIZE,
    Footer,
    ImageEntry,
    footer_address,
    loader_checksum,
    parse_footer,
)
from recovery.xmodem import padded_length

FLASH_BASE = 0x7F000000
DEFAULT_FLASH_SIZE = 0x200000
LOADER_END = 0x7F010000  # the boot loader's own block; BOOT INFO starts here


# -- results -----------------------------------------------------------------------------


@dataclass
class BoardInfo:
    message: str
    attached_by: str
    loader_version: str | None
    loader_built: str | None
    memory_size: int | None
    flash_size: int | None
    config: dict[str, str]
    images: list[dict[str, Any]]


@dataclass
class DumpedImage:
    number: int
    name: str
    file: str
    size: int
    sha256: str
    resumed_at: int = 0  # bytes already on disk when this run started
    skipped: bool = False  # already complete in the directory


@dataclass
class DumpResult:
    message: str
    out_dir: str
    manifest: str
    images: list[DumpedImage]
    seconds: float
    bytes_read: int
    page_retries: int


@dataclass
class RestoredImage:
    number: int
    name: str
    size: int
    verified: bool
    loader_said: str = ""
    attempts: int = 1  # fx runs it took (a retry is also told on stderr as it happens)
    retried_because: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    message: str
    dump_dir: str
    images: list[RestoredImage]
    table_after: list[str] = field(default_factory=list)
    seconds: float = 0.0
    backup_dir: str | None = None  # the dump of the images it replaced, taken first


# -- choosing images ------------------------------------------------------------------------


def select_images(table: list[ImageEntry], names: Sequence[str] | None) -> list[ImageEntry]:
    """The entries named (by name or number) in ``names``, in table order; all when None."""
    if not names:
        return list(table)
    wanted = []
    for n in names:
        hit = [e for e in table if e.name == n or str(e.number) == n]
        if not hit:
            raise UsageError(
                f"no image {n!r} on the camera",
                hint="images: " + ", ".join(f"{e.number} ({e.name})" for e in table),
            )
        wanted += hit
    return [e for e in table if e in wanted]


# -- info ---------------------------------------------------------------------------------


def _attach(port: Port, wait: float, notify: Notify) -> W90Console:
    con = W90Console(port, notify=notify)
    try:
        con.attach(wait)
    except TransportError as e:
        raise ConsoleError(str(e), flash_state="untouched") from e
    return con


def _board_info(con: W90Console, table: list[ImageEntry]) -> BoardInfo:
    li = con.loader_info()
    lines = [
        f"Loader: W90P745 Boot Loader {li.version or '(version not seen)'}"
        + (f", built {li.built}" if li.built else ""),
    ]
    if li.memory_size is not None:
        lines.append(f"Memory: 0x{li.memory_size:X} bytes; flash: 0x{li.flash_size:X} bytes")
    elif con.attached_by == "prompt":
        lines.append(
            "Memory and flash size: not seen (the loader prints them only in its power-on "
            "banner; start camrescue first, then power the camera on, to see them)"
        )
    lines += [e.line() for e in table]
    return BoardInfo(
        message="\n".join(lines),
        attached_by=con.attached_by,
        loader_version=li.version,
        loader_built=li.built,
        memory_size=li.memory_size,
        flash_size=li.flash_size,
        config=dict(li.config),
        images=[e.to_json() for e in table],
    )


def info(port: Port, *, wait: float = 30.0, notify: Notify = stderr_notify) -> BoardInfo:
    """Attach and report the loader version, memory and flash size, and the image table."""
    con = _attach(port, wait, notify)
    return _board_info(con, con.list_images())


# -- dump -----------------------------------------------------------------------------------


def _dump_image(
    con: W90Console,
    out: Path,
    entry: ImageEntry,
    reads: int,
    bar: Progress,
    base_done: int,
) -> tuple[dict[str, Any], int]:
    """Dump one image (resuming a partial file); return its manifest record and resume offset."""
    final = out / file_name(entry)
    part = out / (final.name + ".part")
    state_path = out / STATE
    state = read_json(state_path) or {}
    start = 0
    if state.get("entry") == entry.to_json() and part.exists():
        start = (part.stat().st_size // PAGE_SIZE) * PAGE_SIZE
        start = min(start, entry.pages * PAGE_SIZE)
    state_written = False
    with part.open("r+b" if part.exists() else "wb") as f:
        f.truncate(start)
        f.seek(start)
        last_sync = time.monotonic()
        for offset in range(start, entry.pages * PAGE_SIZE, PAGE_SIZE):
            ahead = offset + PAGE_SIZE < entry.pages * PAGE_SIZE
            page = con.read_page(entry.base + offset, reads=reads, ahead=ahead)
            f.write(page[: max(0, min(PAGE_SIZE, entry.size - offset))])
            if not state_written:
                # written while the loader prints the page asked for ahead (a state file
                # is what lets a resumed run trust the .part; before it exists a new run
                # starts the image again, losing at most this first page)
                atomic_write_json(state_path, {"entry": entry.to_json(), "file": part.name})
                state_written = True
            bar.update(base_done + min(offset + PAGE_SIZE, entry.size))
            if time.monotonic() - last_sync > 1.0:
                f.flush()
                os.fsync(f.fileno())
                last_sync = time.monotonic()
        f.flush()
        os.fsync(f.fileno())
    if part.stat().st_size != entry.size:  # pragma: no cover - a logic error
        raise VerifyError(f"{part} holds {part.stat().st_size} bytes, expected {entry.size}")
    verified, footer = _check_image(con, entry, part, reads)
    digest = sha256_file(part)
    os.replace(part, final)
    fsync_dir(out)
    state_path.unlink(missing_ok=True)
    record = {
        **entry.to_json(),
        "file": final.name,
        "sha256": digest,
        "dumped": utc_now(),
        "verified": verified,
        "footer": footer.hex() if footer is not None else None,
    }
    return record, start


def _read_footer(con: W90Console, entry: ImageEntry) -> tuple[Footer, bytes] | None:
    """The image's footer as the loader wrote it (parsed, and its 52 bytes), or None
    when none is readable there."""
    at = footer_address(entry.base, entry.size)
    page_at = at & ~(PAGE_SIZE - 1)
    for reads in (1, 2):
        page = con.read_page(page_at, reads=reads)
        raw = page[at - page_at : at - page_at + FOOTER_SIZE]
        footer = parse_footer(raw)
        if footer is not None:
            return footer, bytes(raw)
    return None


def _reread(con: W90Console, entry: ImageEntry, part: Path) -> int:
    """Read every page again; a page that differs from the file is read until two
    reads agree and replaced. Returns how many pages were replaced."""
    data = bytearray(part.read_bytes())
    fixed = 0
    for offset in range(0, entry.size, PAGE_SIZE):
        n = min(PAGE_SIZE, entry.size - offset)
        page = con.read_page(entry.base + offset, reads=1)
        if page[:n] != data[offset : offset + n]:
            page = con.read_page(entry.base + offset, reads=2)
            if page[:n] != data[offset : offset + n]:
                data[offset : offset + n] = page[:n]
                fixed += 1
    if fixed:
        with part.open("r+b") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return fixed


def _check_image(
    con: W90Console, entry: ImageEntry, part: Path, reads: int
) -> tuple[str, bytes | None]:
    """Verify a dumped image against its footer's image_checksum (the loader's
    WriteImage sum); re-read only when that fails. Without a usable checksum the
    image is read a second time. Returns how the image was verified (the manifest's
    ``verified``) and the footer's 52 bytes when it belongs to this image (the
    manifest's ``footer``, which a restore checks the file against)."""
    found = _read_footer(con, entry)
    footer, raw = found if found is not None else (None, None)
    usable = (
        footer is not None
        and (footer.number, footer.base, footer.length) == (entry.number, entry.base, entry.size)
        and entry.size % 4 == 0
    )
    agreeing = f"every row confirmed by {reads} agreeing reads" if reads > 1 else ""
    if footer is None or not usable:
        if reads > 1:
            return agreeing + " (no footer checksum to check against)", None
        fixed = _reread(con, entry, part)
        return (
            f"read twice, {fixed} page(s) re-read until two reads agreed (no footer checksum)",
            None,
        )
    assert footer is not None
    if loader_checksum(part.read_bytes()) == footer.image_checksum:
        return "footer image_checksum matches" + (f"; {agreeing}" if agreeing else ""), raw
    fixed = _reread(con, entry, part)
    if loader_checksum(part.read_bytes()) == footer.image_checksum:
        return f"footer image_checksum matches after re-reading ({fixed} page(s) replaced)", raw
    con.notify(
        f"image {entry.number} ({entry.name}): the flash does not match its footer's checksum "
        "even with every page read twice alike: the image on the camera is damaged"
    )
    return (
        "read twice, pages agree, but the footer image_checksum does NOT match: "
        "the image in flash differs from what the loader wrote",
        raw,
    )


def dump(
    port: Port,
    out_dir: str | os.PathLike[str],
    *,
    images: Sequence[str] | None = None,
    reads: int = 1,
    wait: float = 30.0,
    progress: bool = True,
    notify: Notify = stderr_notify,
    baud: int | None = None,
) -> DumpResult:
    """Dump the camera's images into ``out_dir`` (resuming an interrupted dump there)."""
    if reads < 1:
        raise UsageError("reads must be at least 1")
    out = Path(out_dir)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out}: {e}", flash_state="untouched") from e
    old = read_json(out / MANIFEST)
    t0 = time.monotonic()
    con = _attach(port, wait, notify)
    results: list[DumpedImage] = []
    loader = con.loader_info()
    try:
        _raise_speed(con, baud)  # first: the image table comes faster too
        table = con.list_images()
        chosen = select_images(table, images)
        done = _done_before(out, old, table, "choose an empty directory for this camera's dump")
        try:
            _check_dump_room(out, chosen, done)
        except RecoveryError:
            if created:
                with contextlib.suppress(OSError):
                    out.rmdir()  # leave nothing behind: it was empty and ours
            raise
        total = sum(e.size for e in chosen)
        _dump_all(con, out, table, chosen, done, results, loader, reads, total, progress)
    finally:
        _lower_speed(con)
    read_bytes = sum(r.size - r.resumed_at for r in results if not r.skipped)
    complete = all(e.number in done for e in chosen)
    if results and not results[-1].skipped:
        manifest = out / MANIFEST  # _dump_all wrote it after the last image
    else:
        manifest = write_manifest(out, table, done, loader, complete)
    seconds = time.monotonic() - t0
    lines = [
        f"{r.file}: {r.size} bytes sha256 {r.sha256[:16]}... "
        f"({done[r.number].get('verified', 'verified earlier')})"
        for r in results
    ]
    return DumpResult(
        message=f"dumped {len(results)} image(s) into {out} in {seconds:.1f} s\n"
        + "\n".join(lines),
        out_dir=str(out),
        manifest=str(manifest),
        images=results,
        seconds=seconds,
        bytes_read=read_bytes,
        page_retries=con.page_retries,
    )


def _check_dump_room(out: Path, chosen: list[ImageEntry], done: dict[int, dict[str, Any]]) -> None:
    """Refuse, before the long read, a dump directory that cannot hold the result: not
    writable, or less free space than the images still to read (the sizes ``ls``
    lists, less what a resumable ``.part`` already holds) and SPACE_MARGIN for the
    manifest, the state file and the file system's own blocks."""
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write the dump directory {out}: it is not writable",
            flash_state="untouched",
            hint="give --out a directory you can write",
        )
    need = 0
    for e in chosen:
        if e.number in done:
            continue
        part = out / (file_name(e) + ".part")
        held = part.stat().st_size if part.is_file() else 0
        need += max(0, e.size - held)
    if not need:
        return
    free = shutil.disk_usage(out).free
    if free < need + SPACE_MARGIN:
        raise RefusedError(
            f"not enough free space for the dump in {out}: the images to read need "
            f"{-(-need // 1024)} KiB (and {SPACE_MARGIN >> 10} KiB for the manifest and the "
            f"file system), it has {free // 1024} KiB free",
            flash_state="untouched",
            hint="free some space or give --out a directory on a disk with room; "
            "--images dumps a part (a later run into the same directory adds the rest)",
            facts={"needed": need + SPACE_MARGIN, "free": free},
        )


def _done_before(
    out: Path, old: dict[str, Any] | None, table: list[ImageEntry], hint: str
) -> dict[int, dict[str, Any]]:
    """The images an earlier run left complete in ``out`` (a dump of this table only)."""
    done: dict[int, dict[str, Any]] = {}
    if old is None:
        return done
    if old.get("format") != FORMAT or old.get("table") != [e.to_json() for e in table]:
        raise RefusedError(
            f"{out} already holds a dump of a different image table",
            flash_state="untouched",
            hint=hint,
        )
    for rec in old.get("images", []):
        path = out / str(rec.get("file", ""))
        if path.is_file() and sha256_file(path) == rec.get("sha256"):
            done[int(rec["number"])] = rec
    return done


def _dump_all(
    con: W90Console,
    out: Path,
    table: list[ImageEntry],
    chosen: list[ImageEntry],
    done: dict[int, dict[str, Any]],
    results: list[DumpedImage],
    loader: Any,
    reads: int,
    total: int,
    progress: bool,
) -> None:
    with Progress("dump", total, enabled=progress) as bar:
        base_done = 0
        for entry in chosen:
            if entry.number in done:
                rec = done[entry.number]
                results.append(
                    DumpedImage(
                        entry.number,
                        entry.name,
                        rec["file"],
                        entry.size,
                        rec["sha256"],
                        skipped=True,
                    )
                )
            else:
                rec, start = _dump_image(con, out, entry, reads, bar, base_done)
                done[entry.number] = rec
                results.append(
                    DumpedImage(
                        entry.number,
                        entry.name,
                        rec["file"],
                        entry.size,
                        rec["sha256"],
                        resumed_at=start,
                    )
                )
                complete = all(e.number in done for e in chosen)
                write_manifest(out, table, done, loader, complete)
            base_done += entry.size
            bar.update(base_done)


# -- restore ----------------------------------------------------------------------------------


def protected_areas(current: list[ImageEntry]) -> list[Area]:
    """The areas nothing writes without ``--include-bootloader``, by address: the boot
    loader's block 0, and BOOT INFO where the camera's current table (``ls``) puts it
    (image 0 or the entry flagged BOOT INFO, with its footer's block), whatever a
    dump's manifest says of its own images."""
    areas = [Area("boot loader (block 0)", FLASH_BASE, LOADER_END)]
    for info in current:
        if info.number == 0 or info.is_boot_info:
            blocks = _blocks(info, info.size)
            areas.append(
                Area(
                    f"loader's BOOT INFO (image {info.number} at 0x{info.base:08X})",
                    min(blocks) * FLASH_BLOCK,
                    (max(blocks) + 1) * FLASH_BLOCK,
                )
            )
    return areas


def _span(entry: ImageEntry, size: int) -> tuple[int, int]:
    blocks = _blocks(entry, padded_length(size))
    return min(blocks) * FLASH_BLOCK, (max(blocks) + 1) * FLASH_BLOCK


def _plan_checks(
    todo: list[DumpImage],
    current: list[ImageEntry],
    flash_size: int,
    *,
    include_bootloader: bool = False,
) -> None:
    flash_end = FLASH_BASE + flash_size
    replaced = {d.entry.number for d in todo}
    for d in todo:
        e = d.entry
        if e.is_boot_info or e.number == 0:
            raise RefusedError(
                f"image {e.number} ({e.name}) is the loader's BOOT INFO; camrescue does not "
                "rewrite it with fx",
                flash_state="untouched",
                hint="leave it out of --images; set the configuration with the loader's SET",
            )
        check_fx_entry(e)
    # by address, from the camera's own table: block 0 and BOOT INFO
    check_protected(
        [(f"image {d.entry.number} ({d.entry.name})", *_span(d.entry, d.entry.size)) for d in todo],
        protected_areas(current),
        allowed=include_bootloader,
    )
    for d in todo:
        e = d.entry
        if e.base < FLASH_BASE or e.end > flash_end:
            raise RefusedError(
                f"image {e.number} ({e.name}) at 0x{e.base:08X}..0x{e.end:08X} is outside "
                f"the flash 0x{FLASH_BASE:08X}..0x{flash_end:08X}",
                flash_state="untouched",
            )
        for other in current:
            if other.number in replaced or (
                include_bootloader and (other.number == 0 or other.is_boot_info)
            ):
                continue
            if _blocks(e, padded_length(e.size)) & _blocks(other, other.size):
                raise RefusedError(
                    f"image {e.number} ({e.name}) would overwrite image {other.number} "
                    f"({other.name}) at 0x{other.base:08X}",
                    flash_state="untouched",
                    hint=f"delete image {other.number} first if you mean to replace it",
                )


def _blocks(entry: ImageEntry, size: int) -> set[int]:
    """The flash blocks an image occupies: its data and its footer (WriteImage puts it
    at the end of the last block, or of the next one when fewer than 52 bytes are left)."""
    first = entry.base // FLASH_BLOCK
    last = footer_address(entry.base, size) // FLASH_BLOCK
    return set(range(first, last + 1))


def _restore_failed(
    err: Exception,
    e: ImageEntry,
    done: list[RestoredImage],
    todo: list[DumpImage],
    current: list[ImageEntry],
    dump_dir: object,
) -> RecoveryError:
    """Once ``fx`` of an image has begun, its old copy may be gone: say which images
    are intact and the command that finishes the job."""
    finished = {r.number for r in done}
    left = [d.entry for d in todo if d.entry.number not in finished]
    untouched = [c for c in current if c.number not in {x.number for x in left}]
    intact = [f"{r.number} ({r.name}, restored and verified)" for r in done] + [
        f"{c.number} ({c.name}, untouched)" for c in untouched if c.number not in finished
    ]
    later = [x for x in left if x.number != e.number]
    state = (
        f"image {e.number} ({e.name}) may be missing or partly written (fx deletes the old "
        f"image before it receives the new one); intact: {', '.join(intact) or 'none'}"
        + (
            f"; not yet restored (still as before): {', '.join(f'{x.number} ({x.name})' for x in later)}"
            if later
            else ""
        )
        + "; the boot loader block is never written"
    )
    names = ",".join(str(x.number) for x in left)
    hint = (
        f"power-cycle the camera if it does not answer, then run 'camrescue w90p745 restore "
        f"{dump_dir} --images {names}' to finish the job"
    )
    if isinstance(err, RecoveryError):
        err.flash_state = state
        err.hint = hint + (f". Detail: {err.hint}" if err.hint else "")
        err.facts = {**getattr(err, "facts", {}), "missing": e.number, "finish": names}
        return err
    return ConsoleError(str(err), flash_state=state, hint=hint)


VERIFY_MODES = ("full", "size")


def restore(
    port: Port,
    dump_dir: str | os.PathLike[str],
    *,
    images: Sequence[str] | None = None,
    wait: float = 30.0,
    progress: bool = True,
    notify: Notify = stderr_notify,
    verify: str = "full",
    baud: int | None = None,
    tries: int = 5,
    include_bootloader: bool = False,
    backup_out: str | os.PathLike[str] | None = None,
    odd_ok: bool = False,
) -> RestoreResult:
    """Write a dump's images back with ``fx`` over Xmodem-128, each checked before
    the next: ``ls`` must show exactly the padded size sent (larger: the loader's
    receiver took a resent block 128 bytes later; the image is deleted and sent
    again), then (``verify="full"``) the image is read back with ``d`` and compared.
    A failed download is retried (``tries`` in all).

    ``backup_out``: a directory that first receives a dump (the format of
    :func:`dump`, restorable) of every image on the camera the restore replaces or
    overwrites, after a free-space check; None: no backup. ``include_bootloader``:
    allow images whose blocks reach block 0 or BOOT INFO (by address, from the
    camera's table). ``odd_ok``: trust images whose footer record does not vouch for
    them (the manifest's sha256 and size are checked all the same)."""
    if verify not in VERIFY_MODES:
        raise UsageError(f"--verify must be one of {', '.join(VERIFY_MODES)}")
    table, dumped = load_dump(dump_dir, odd_ok=odd_ok)
    t0 = time.monotonic()
    if images:
        chosen = {e.number for e in select_images([d.entry for d in dumped], images)}
        todo = [d for d in dumped if d.entry.number in chosen]
    else:
        todo = [d for d in dumped if not d.entry.is_boot_info]
    if not todo:
        raise UsageError("nothing to restore", hint="name the images with --images")
    con = _attach(port, wait, notify)
    current = con.list_images()
    flash_size = con.loader_info().flash_size or DEFAULT_FLASH_SIZE
    dumped_from = ((read_json(Path(dump_dir) / MANIFEST) or {}).get("loader") or {}).get(
        "flash_size"
    )
    if not odd_ok and con.loader_info().flash_size and dumped_from not in (None, flash_size):
        raise RefusedError(
            f"the dump in {dump_dir} was made from a camera with 0x{dumped_from:X} bytes of "
            f"flash, this one has 0x{flash_size:X}",
            flash_state="untouched",
            hint=f"restore a dump of this camera; if you are sure, add {ODD_OPTION}",
        )
    _plan_checks(todo, current, flash_size, include_bootloader=include_bootloader)
    done: list[RestoredImage] = []
    total = sum(len(d.data) for d in todo)
    tracker = flash_tracker().start()
    spans = {d.entry.number: _span(d.entry, len(d.data)) for d in todo}
    replaced = _replaced(todo, current)
    backup_dir = None
    if backup_out is not None and replaced:
        backup_dir = _check_backup_room(Path(backup_out), replaced)
    tracker.plan(spans.values())
    tracker.resume = (
        f"camrescue w90p745 restore {dump_dir} --port {port.url}"
        + (" --include-bootloader" if include_bootloader else "")
        + (f" {ODD_OPTION}" if odd_ok else "")
    )
    backed_up = ""
    try:
        _raise_speed(con, baud)
        if backup_dir is not None:
            backed_up = _backup_replaced(con, backup_dir, current, replaced, progress)
            tracker.resume += " --no-backup"  # taken: the next run must not replace it
        with Progress("restore", total, enabled=progress) as bar:
            base = 0
            for d in todo:
                e = d.entry
                span = spans[e.number]
                tracker.writing(*span)
                try:
                    r = _restore_one(con, d, current, verify, tries, bar, base)
                except (RecoveryError, TransportError) as err:
                    raise _restore_failed(err, e, done, todo, current, dump_dir) from err
                except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM: the same report
                    raise _restore_failed(
                        Interrupted("interrupted"), e, done, todo, current, dump_dir
                    ) from err
                (tracker.verified if verify == "full" else tracker.written)(*span)
                done.append(r)
                base += len(d.data)
        after = con.list_images()
    finally:
        _lower_speed(con)
    table_after = [e.line() for e in after]
    seconds = time.monotonic() - t0
    how = "read back and compared" if verify == "full" else "size checked only (--verify size)"
    retried = "".join(
        f"image {r.number} ({r.name}) took {r.attempts} tries: {'; '.join(r.retried_because)}\n"
        for r in done
        if r.attempts > 1
    )
    return RestoreResult(
        message=f"restored {len(done)} image(s) from {dump_dir} in {seconds:.1f} s, each {how}\n"
        + retried
        + (f"{backed_up}\n" if backed_up else "")
        + "\n".join(table_after),
        dump_dir=str(dump_dir),
        backup_dir=str(backup_dir) if backup_dir is not None else None,
        images=done,
        table_after=table_after,
        seconds=seconds,
    )


def _replaced(todo: list[DumpImage], current: list[ImageEntry]) -> list[ImageEntry]:
    """The camera's images a restore deletes or overwrites: those of the same number
    (fx deletes them) and any whose blocks the new images take."""
    numbers = {d.entry.number for d in todo}
    blocks: set[int] = set()
    for d in todo:
        blocks |= _blocks(d.entry, padded_length(len(d.data)))
    return [c for c in current if c.number in numbers or _blocks(c, c.size) & blocks]


def _check_backup_room(out: Path, replaced: list[ImageEntry]) -> Path:
    """Refuse, before anything is written, a backup directory without room for the
    images it is to hold (or one that cannot be created)."""
    need = sum(c.size for c in replaced) + (1 << 20)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(
            f"cannot create the backup directory {out}: {e}", flash_state="untouched"
        ) from e
    free = shutil.disk_usage(out).free
    if free < need:
        raise RefusedError(
            f"not enough free space for the backup of the images this restore replaces: "
            f"{need >> 10} KiB needed, {out} has {free >> 10} KiB free",
            flash_state="untouched",
            hint="free some space, give --backup-out on another disk, or --no-backup",
        )
    return out


def _backup_replaced(
    con: W90Console,
    out: Path,
    table: list[ImageEntry],
    replaced: list[ImageEntry],
    progress: bool,
) -> str:
    """Dump the images about to be replaced into ``out`` (a restorable dump directory)."""
    done = _done_before(
        out, read_json(out / MANIFEST), table, "give --backup-out an empty or new directory"
    )
    loader = con.loader_info()
    results: list[DumpedImage] = []
    total = sum(e.size for e in replaced)
    _dump_all(con, out, table, replaced, done, results, loader, 1, total, progress)
    write_manifest(out, table, done, loader, True)
    names = ", ".join(f"{e.number} ({e.name})" for e in replaced)
    return (
        f"backed up the images it replaced ({names}) into {out} first "
        f"(restore them with 'camrescue w90p745 restore {out}')"
    )


def _restore_one(
    con: W90Console,
    d: DumpImage,
    current: list[ImageEntry],
    verify: str,
    tries: int,
    bar: Progress,
    base: int,
) -> RestoredImage:
    e = d.entry
    sent = padded_length(len(d.data))
    problems: list[str] = []
    said = ""
    for attempt in range(tries):
        if problems:
            con.notify(
                f"image {e.number} ({e.name}): {problems[-1]}; sending it again "
                f"(try {attempt + 1} of {tries})"
            )
        table = con.list_images()
        exists = any(c.number == e.number for c in table)
        size = len(d.data)

        def moved(n: int, _total: int, size: int = size) -> None:
            bar.update(base + min(n, size))

        try:
            said = con.fx(e, d.data, moved, replace=exists)
        except TransferFailed as err:
            problems.append(err.message)
            continue
        now = next((c for c in con.list_images() if c.number == e.number), None)
        if now is None or (now.base, now.exec_addr, now.name) != (e.base, e.exec_addr, e.name):
            problems.append(f"after fx the table shows {now.line() if now else 'no image'}")
            continue
        if now.size != sent:
            # xmodem.c advances its write offset before it checks the CRC: a block
            # resent after a NAK lands 128 bytes later and the image grows
            problems.append(
                f"the loader stored 0x{now.size:X} bytes for 0x{sent:X} sent (a resent block "
                "was stored after the bad one)"
            )
            con.run(f"del {e.number}", timeout=30.0)
            continue
        if verify == "full":
            bad = _verify_image(con, d, bar, base)
            if bad is not None:
                problems.append(f"read back differs at 0x{bad:08X}")
                continue
        return RestoredImage(
            e.number,
            e.name,
            e.size,
            verify == "full",
            said.strip()[-200:],
            attempts=attempt + 1,
            retried_because=problems,
        )
    raise VerifyError(
        f"image {e.number} ({e.name}) could not be written and checked in {tries} tries: "
        + "; ".join(problems[-3:]),
        flash_state=f"image {e.number} may be missing or damaged",
        hint="check the line and run the restore again",
    )


def _raise_speed(con: W90Console, baud: int | None) -> None:
    """``baud``: a rate, or None for the fastest of the loader's list the port opens;
    115200 when the prompt does not answer at the new rate."""
    if baud is None:
        baud = next((r for r in LOADER_BAUDS if con.can_open(r)), 115200)
    if baud == con.port.baud:
        return
    if not con.set_speed(baud):
        con.notify(f"the prompt did not answer at {baud} baud: working at {con.port.baud}")


def _lower_speed(con: W90Console) -> None:
    """Leave the loader at 115200, where the next run looks for it."""
    if con.port.baud == 115200:
        return
    try:
        con.set_speed(115200)
    except (RecoveryError, TransportError, EchoError, Timeout):
        # the camera is gone or restarted (then it is at 115200 anyway)
        with contextlib.suppress(TransportError):
            con.port.set_baud(115200)


def _verify_image(con: W90Console, d: DumpImage, bar: Progress, base: int) -> int | None:
    """Read the image back; the first differing address, or None."""
    e = d.entry
    for offset in range(0, e.size, PAGE_SIZE):
        want = d.data[offset : offset + PAGE_SIZE]
        page = con.read_page(
            e.base + offset,
            reads=2,
            expect=want if len(want) == PAGE_SIZE else None,
            ahead=offset + PAGE_SIZE < e.size,
        )
        if page[: len(want)] != want:
            bad = next(i for i in range(len(want)) if page[i] != want[i])
            return e.base + offset + bad
        bar.update(base + offset + len(want))
    return None
