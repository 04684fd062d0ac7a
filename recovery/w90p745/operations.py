"""Recovery engine for W90P745 cameras (Winbond boot loader, ``bootloader > ``).

Written for a real camera on ``/dev/ttyUSB0`` and tested against the
emulator. Facts from seed 001 and REFERENCE.md: console 115200 8N1; 2 MiB NOR
flash at 0x7F000000, the loader in its first 64 KiB, BOOT INFO (image 0) at
0x7F010000; the loader places images in 64 KiB blocks with a 64-byte record
at the end of each image's last block.

This module holds the operations (``info``, ``dump``, ``restore``):

* **Dumps** read every 256-byte page of each chosen image with ``d``
  (:meth:`W90Console.read_page`: rows confirmed by agreeing reads). The
  image is appended to ``<file>.part`` and a state file names the image, so
  an interrupted dump resumes at the last whole page. Finished images are
  renamed into place and listed in ``manifest.json`` (table entry, size,
  sha256, date), written atomically after each image; a directory that holds
  a dump of a different table is refused.
* **Restores** check the dump first (manifest readable, every file present
  with its size and sha256) and the plan (inside the flash, clear of the
  loader and of images that stay), then write each image with ``fx`` over
  Xmodem-CRC (1K blocks while 1024 bytes remain, then 128: the loader keeps
  the received length as the image size, so a size that is a multiple of
  128 comes back exactly), then read it back with ``d`` and compare. An
  image whose number is still in use is deleted first (``fx`` refuses a
  used number); BOOT INFO is never rewritten.

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

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery.errors import ConsoleError, RecoveryError, RefusedError, UsageError, VerifyError
from recovery.files import atomic_write_json, fsync_dir
from recovery.progress import Progress
from recovery.transport import Port, TransportError
from recovery.w90p745.driver import (
    FLASH_BLOCK,
    Notify,
    W90Console,
    check_fx_entry,
    stderr_notify,
)
from recovery.w90p745.dumpdir import (
    FORMAT,
    MANIFEST,
    STATE,
    DumpImage,
    file_name,
    load_dump,
    read_json,
    sha256_file,
    utc_now,
    write_manifest,
)
from recovery.w90p745.parsers import PAGE_SIZE, ImageEntry
from recovery.xmodem import padded_length

FLASH_BASE = 0x7F000000
DEFAULT_FLASH_SIZE = 0x200000
RECORD_SIZE = 64  # an image record sits in the last 64 bytes of the image's last block
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


@dataclass
class RestoreResult:
    message: str
    dump_dir: str
    images: list[RestoredImage]
    table_after: list[str] = field(default_factory=list)
    seconds: float = 0.0


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
    atomic_write_json(state_path, {"entry": entry.to_json(), "file": part.name})
    with part.open("r+b" if part.exists() else "wb") as f:
        f.truncate(start)
        f.seek(start)
        last_sync = time.monotonic()
        for offset in range(start, entry.pages * PAGE_SIZE, PAGE_SIZE):
            page = con.read_page(entry.base + offset, reads=reads)
            f.write(page[: max(0, min(PAGE_SIZE, entry.size - offset))])
            bar.update(base_done + min(offset + PAGE_SIZE, entry.size))
            if time.monotonic() - last_sync > 1.0:
                f.flush()
                os.fsync(f.fileno())
                last_sync = time.monotonic()
        f.flush()
        os.fsync(f.fileno())
    if part.stat().st_size != entry.size:  # pragma: no cover - a logic error
        raise VerifyError(f"{part} holds {part.stat().st_size} bytes, expected {entry.size}")
    digest = sha256_file(part)
    os.replace(part, final)
    fsync_dir(out)
    state_path.unlink(missing_ok=True)
    record = {
        **entry.to_json(),
        "file": final.name,
        "sha256": digest,
        "dumped": utc_now(),
    }
    return record, start


def dump(
    port: Port,
    out_dir: str | os.PathLike[str],
    *,
    images: Sequence[str] | None = None,
    reads: int = 2,
    wait: float = 30.0,
    progress: bool = True,
    notify: Notify = stderr_notify,
) -> DumpResult:
    """Dump the camera's images into ``out_dir`` (resuming an interrupted dump there)."""
    if reads < 1:
        raise UsageError("reads must be at least 1")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out}: {e}") from e
    old = read_json(out / MANIFEST)
    t0 = time.monotonic()
    con = _attach(port, wait, notify)
    table = con.list_images()
    chosen = select_images(table, images)
    done: dict[int, dict[str, Any]] = {}
    if old is not None:
        if old.get("format") != FORMAT or old.get("table") != [e.to_json() for e in table]:
            raise RefusedError(
                f"{out} already holds a dump of a different image table",
                flash_state="untouched",
                hint="choose an empty directory for this camera's dump",
            )
        for rec in old.get("images", []):
            path = out / str(rec.get("file", ""))
            if path.is_file() and sha256_file(path) == rec.get("sha256"):
                done[int(rec["number"])] = rec
    results: list[DumpedImage] = []
    total = sum(e.size for e in chosen)
    loader = con.loader_info()
    read_bytes = 0
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
                read_bytes += entry.size - start
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
    manifest = write_manifest(out, table, done, loader, all(e.number in done for e in chosen))
    seconds = time.monotonic() - t0
    lines = [f"{r.file}: {r.size} bytes sha256 {r.sha256[:16]}..." for r in results]
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


# -- restore ----------------------------------------------------------------------------------


def _plan_checks(todo: list[DumpImage], current: list[ImageEntry], flash_size: int) -> None:
    flash_end = FLASH_BASE + flash_size
    replaced = {d.entry.number for d in todo}
    for d in todo:
        e = d.entry
        if e.is_boot_info:
            raise RefusedError(
                f"image {e.number} ({e.name}) is the loader's BOOT INFO; camrescue does not "
                "rewrite it with fx",
                flash_state="untouched",
                hint="leave it out of --images; set the configuration with the loader's SET",
            )
        check_fx_entry(e)
        if e.base < LOADER_END or e.end > flash_end:
            raise RefusedError(
                f"image {e.number} ({e.name}) at 0x{e.base:08X}..0x{e.end:08X} is outside "
                f"the image area 0x{LOADER_END:08X}..0x{flash_end:08X}",
                flash_state="untouched",
            )
        for other in current:
            if other.number in replaced:
                continue
            if _blocks(e, padded_length(e.size)) & _blocks(other, other.size):
                raise RefusedError(
                    f"image {e.number} ({e.name}) would overwrite image {other.number} "
                    f"({other.name}) at 0x{other.base:08X}",
                    flash_state="untouched",
                    hint=f"delete image {other.number} first if you mean to replace it",
                )


def _blocks(entry: ImageEntry, size: int) -> set[int]:
    """The flash blocks an image occupies: its data and, after it, its record."""
    first = entry.base // FLASH_BLOCK
    last = (entry.base + size + RECORD_SIZE - 1) // FLASH_BLOCK
    return set(range(first, last + 1))


def _interrupted_restore(
    err: Exception, e: ImageEntry, done: list[RestoredImage], dump_dir: object
) -> RecoveryError:
    """Once ``del``/``fx`` of an image has begun, its old copy may be gone: say so."""
    kept = ", ".join(f"{r.number} ({r.name})" for r in done) or "none"
    state = (
        f"image {e.number} ({e.name}) may be deleted or partly written; images restored "
        f"before it: {kept}; the boot loader block is never written"
    )
    hint = (
        f"power-cycle the camera if it does not answer, then run 'camrescue w90p745 restore "
        f"{dump_dir}' again: it deletes and rewrites the image"
    )
    if isinstance(err, RecoveryError):
        err.flash_state = state
        err.hint = hint + (f". Detail: {err.hint}" if err.hint else "")
        return err
    return ConsoleError(str(err), flash_state=state, hint=hint)


def restore(
    port: Port,
    dump_dir: str | os.PathLike[str],
    *,
    images: Sequence[str] | None = None,
    wait: float = 30.0,
    progress: bool = True,
    notify: Notify = stderr_notify,
) -> RestoreResult:
    """Write a dump's images back with ``fx`` over Xmodem, then read them back and compare."""
    table, dumped = load_dump(dump_dir)
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
    _plan_checks(todo, current, flash_size)
    done: list[RestoredImage] = []
    total = sum(len(d.data) for d in todo)
    with Progress("restore", total, enabled=progress) as bar:
        base = 0
        for d in todo:
            e = d.entry
            try:
                if any(c.number == e.number for c in current):
                    con.run(f"del {e.number}", timeout=30.0)
                size = len(d.data)
                said = con.fx(e, d.data, lambda n, _t, b=base, s=size: bar.update(b + min(n, s)))
            except (RecoveryError, TransportError) as err:
                raise _interrupted_restore(err, e, done, dump_dir) from err
            base += len(d.data)
            done.append(RestoredImage(e.number, e.name, e.size, False, said.strip()[-200:]))
    after = con.list_images()
    by_number = {e.number: e for e in after}
    with Progress("verify", total, enabled=progress) as bar:
        base = 0
        for d, r in zip(todo, done, strict=True):
            e = d.entry
            now = by_number.get(e.number)
            if now is None or (now.base, now.exec_addr, now.name) != (e.base, e.exec_addr, e.name):
                raise VerifyError(
                    f"after fx the table shows {now.line() if now else 'no image'} for image "
                    f"{e.number}, expected {e.line()}",
                    flash_state=f"image {e.number} was written but is not listed as it was",
                    hint="run the restore again; if it repeats, report it with the transcript",
                )
            _verify_image(con, d, bar, base)
            base += len(d.data)
            r.verified = True
    table_after = [e.line() for e in after]
    seconds = time.monotonic() - t0
    return RestoreResult(
        message=f"restored and verified {len(done)} image(s) from {dump_dir} in {seconds:.1f} s\n"
        + "\n".join(table_after),
        dump_dir=str(dump_dir),
        images=done,
        table_after=table_after,
        seconds=seconds,
    )


def _verify_image(con: W90Console, d: DumpImage, bar: Progress, base: int) -> None:
    e = d.entry
    for offset in range(0, e.size, PAGE_SIZE):
        want = d.data[offset : offset + PAGE_SIZE]
        page = con.read_page(
            e.base + offset, reads=2, expect=want if len(want) == PAGE_SIZE else None
        )
        if page[: len(want)] != want:
            bad = next(i for i in range(len(want)) if page[i] != want[i])
            raise VerifyError(
                f"image {e.number} ({e.name}) differs from {d.path.name} at "
                f"0x{e.base + offset + bad:08X} after writing",
                flash_state=f"image {e.number} is damaged in flash",
                hint="run the restore again; if it repeats, the flash block may be worn out",
            )
        bar.update(base + offset + len(want))
