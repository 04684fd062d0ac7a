"""Recover an XR872 camera (board XF16) over its UART: info, dump, write, clone.

This module holds the operations and the order in which they touch the flash;
the engine reaches the XRadio boot ROM through :class:`Session`
(recovery/xr872/driver.py: the blind ``upgrade``, the 0x55 sync, the eFuse,
one SETUART, verified reads, the reboot check with the boot log's MAC lines)
and judges images and the unit's sysinfo with recovery/xr872/image.py.
``camrescue xr872 ...`` is recovery/xr872/cli.py. Their public names are
re-exported here.

A unit's own data (what makes it this unit, not the donor): its eFuse (chip
id, eFuse MAC; never written), its ``sysinfo`` (FDCM at 0xFF000: the MAC when
the firmware takes it from flash, the Wi-Fi settings), and any other bytes
outside the image chain (an app's own FDCM area, e.g. XF16Cam's at 1016 KiB).
``clone`` writes the donor's image sections and keeps all of that byte for
byte unless ``--take-donor-data``; a unit whose sysinfo is not valid FDCM gets
an erased area, which the firmware rebuilds from defaults at its next boot
(SDK ``sysinfo.c``). ``write`` of a whole-flash dump keeps this unit's
sysinfo when it differs from the dump's, unless ``--take-donor-data``.

Everything the engine writes is written atomically; it backs up before it
writes, erases only the sectors that need it (:func:`plan_write`: sectors that
match are left alone, a sector whose new content only clears bits is programmed
without an erase, a whole 64 KiB block is erased at once when all its sectors
need it), reads back what it wrote (a sector that reads back wrong is redone
twice at most), and reboots to see whether the unit boots. Errors are
``recovery.common`` errors (exit codes in ``recovery.errors.EXIT_CODES``):
ConsoleError 4 (port, no ROM, no console), ImageError 3 (refused image),
VerifyError 6, DeviceError 7 (the ROM refused a command or the line kept
corrupting data), BootError 8 (written and verified but the unit did not
boot), RefusedError 9 (a backup would be overwritten, or the boot section
changed without ``--include-bootloader``), 130 interrupted.

The boot section is judged by address (issue 17; docs/guarantees.md): the
sectors from 0 to the end of the section whose header the ROM finds at offset 0
(SDK ``image.h``; ``image.cfg`` puts boot at 0 K), in this unit's flash and in
the new image, whatever either calls its sections (:func:`boot_area`). A write
or clone that would erase or program one of those sectors with other bytes than
the unit holds is refused before anything is written, and before the backup is
taken, unless ``include_bootloader`` (``--include-bootloader``); sectors that
already hold the new bytes are skipped as always (:func:`plan_write`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recovery.errors import ImageError, RefusedError, VerifyError
from recovery.files import atomic_write_json, check_manifest, fsync_dir
from recovery.progress import Progress
from recovery.safety import Area, flash_tracker
from recovery.xr872 import brom
from recovery.xr872.driver import (
    UNTOUCHED,
    BootCheck,
    LinkInfo,
    Options,
    Session,
)
from recovery.xr872.image import (
    AWIH_MAGIC,
    BLOCK,
    FLASH_SIZE,
    IMAGE_AREA_END,
    NO_ADDR,
    SECTION_HEADER,
    SECTOR,
    SYSINFO_OFFSET,
    SYSINFO_SIZE,
    ImageCheck,
    Section,
    SysInfo,
    check_image,
    classify_chip,
    image_sectors,
    layout_problems,
    next_addr,
    parse_sections,
    parse_sysinfo,
)

SYSINFO = slice(SYSINFO_OFFSET, SYSINFO_OFFSET + SYSINFO_SIZE)

WRITE_UNIT = brom.FLASH_UNIT  # FLASH_READ/FLASH_WRITE granularity (512 bytes)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- results ---------------------------------------------------------------------------
@dataclass
class InfoResult:
    link: LinkInfo
    chip: str
    sections: list[Section]
    problems: list[str]
    sysinfo: SysInfo
    boot: BootCheck | None = None


@dataclass
class DumpResult:
    link: LinkInfo
    path: str
    manifest: str
    size: int
    sha256: str
    resumed_from: int
    seconds: float
    chip: str
    sysinfo: SysInfo
    boot: BootCheck | None = None


@dataclass
class WriteResult:
    link: LinkInfo
    image: str
    image_sha256: str
    backup: str | None
    sectors_total: int
    sectors_changed: int
    sectors_erased: int
    bytes_programmed: int
    verified: bool
    boot: BootCheck | None
    forced: bool = False
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sysinfo: str = ""  # what became of this unit's sysinfo: kept | the image's | left erased
    boot_area: list[int] = field(default_factory=list)  # [start, end) of the boot section
    boot_sectors_written: int = 0  # its sectors rewritten (only with --include-bootloader)


@dataclass
class MacReport:
    """The MAC the unit uses after the write, from its boot log, and whose it is."""

    in_use: str | None  # the boot log's "in use:" line; None: not seen
    efuse: str | None  # the boot log's "efuse:" line
    before: str | None  # the MAC in this unit's sysinfo before the write
    chipid: str | None  # the MAC the SDK default (CHIPID) derives from this chip's eFuse
    donor: str | None  # the MAC in the donor's sysinfo
    follows_donor: bool
    text: str


@dataclass
class CloneResult:
    write: WriteResult
    donor_sysinfo: SysInfo
    unit_sysinfo: SysInfo
    kept_sectors: list[int]  # this unit's own sectors (besides sysinfo) kept byte for byte
    mac: MacReport


# -- operations ------------------------------------------------------------------------
def _want_reboot(s: Session, reboot: bool | None) -> bool:
    return reboot if reboot is not None else s.entered_via == "console"


def info(
    opts: Options, *, reboot: bool | None = None, log: Callable[[str], None] | None = None
) -> InfoResult:
    """Chip, flash id and size, the image sections in flash, MAC and AP name.

    Reads only the section headers (along the chain) and the system-info sector.
    Reboots afterwards when the unit was entered from its console (``reboot``)."""
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        heads = bytearray(b"\xff" * s.flash.size)
        have: set[int] = set()
        off, hops = 0, 0
        while off != NO_ADDR and hops < 32 and off + 64 <= s.flash.size:
            for unit in range(off // WRITE_UNIT * WRITE_UNIT, off + 64, WRITE_UNIT):
                if unit not in have:
                    heads[unit : unit + WRITE_UNIT] = s.read_chunk(unit, WRITE_UNIT)
                    have.add(unit)
            magic, nxt = struct.unpack_from("<I", heads, off)[0], next_addr(heads, off)
            if magic != AWIH_MAGIC or (nxt != NO_ADDR and nxt <= off):
                break
            off, hops = nxt, hops + 1
        secs, problems = parse_sections(bytes(heads), limit=s.flash.size, check_data=False)
        chip = classify_chip(secs)
        problems += layout_problems(secs, chip)
        info_ = parse_sysinfo(s.read_chunk(SYSINFO_OFFSET, SYSINFO_SIZE))
        chk = ImageCheck(s.flash.size, secs, chip, problems)
        boot = s.reboot_and_check() if _want_reboot(s, reboot) else None
        return InfoResult(s.link(), chk.chip, secs, problems, info_, boot)


def _part_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".part"), out.with_name(out.name + ".part.json")


def _dump_into(s: Session, out: Path, resume: bool, label: str) -> tuple[bytes, int]:
    """Read the whole flash into ``out``: chunks are appended to ``out.part`` (state in
    ``out.part.json``) so an interrupted dump resumes; at the end it is fsynced and renamed."""
    assert s.flash
    size, chunk = s.flash.size, s.opts.chunk
    part, state_path = _part_paths(out)
    state = {"version": 1, "jedec_id": s.flash.jedec_hex, "size": size, "chunk": chunk}
    start = 0
    if resume and part.exists() and state_path.exists():
        try:
            old = json.loads(state_path.read_text())
        except (OSError, ValueError):
            old = {}
        if {k: old.get(k) for k in state} == state:
            start = min(part.stat().st_size // chunk * chunk, size)
            s.log(f"resuming {part} at 0x{start:x}")
        else:
            s.log(f"{part} belongs to another flash or chunk size: starting over")
    if start == 0:
        atomic_write_json(state_path, state)
        part.write_bytes(b"")
    with open(part, "r+b") as f, Progress(label, size - start, enabled=s.opts.progress) as bar:
        f.truncate(start)
        f.seek(start)

        def sink(data: bytes) -> None:
            f.write(data)
            f.flush()

        s.read_range(start, size - start, bar, sink)
        os.fsync(f.fileno())
    data = part.read_bytes()
    if len(data) != size:
        raise VerifyError(
            f"{part} holds {len(data)} bytes, expected {size}",
            flash_state="untouched (only read)",
            hint="run the same command again to resume",
        )
    os.replace(part, out)
    fsync_dir(out.parent)
    state_path.unlink(missing_ok=True)
    return data, start


def _manifest(s: Session, out: Path, data: bytes, extra: dict[str, Any]) -> Path:
    assert s.flash
    man = {
        "file": out.name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "jedec_id": s.flash.jedec_hex,
        "flash_size": s.flash.size,
        "chunk_size": s.opts.chunk,
        "date": _now(),
        "port": s.opts.port,
        "baud": s.fast_baud,
        "verify": s.opts.verify,
        "tool": "camrescue xr872",
        "efuse": asdict(s.efuse) if s.efuse else None,
        "sysinfo": asdict(parse_sysinfo(data[SYSINFO])) if len(data) >= SYSINFO.stop else None,
        **extra,
    }
    path = out.with_name(out.name + ".json")
    atomic_write_json(path, man)
    return path


def _facts_of(data: bytes) -> tuple[ImageCheck, SysInfo]:
    return check_image(data), parse_sysinfo(data[SYSINFO])


def dump(
    opts: Options,
    out: str | os.PathLike[str],
    *,
    resume: bool = True,
    reboot: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> DumpResult:
    """The whole flash to ``out`` and a manifest to ``out.json``; resumes ``out.part``."""
    out = Path(out)
    t0 = time.monotonic()
    with Session(opts, log) as s:
        s.enter()
        data, start = _dump_into(s, out, resume, "dump")
        chk, sysinfo = _facts_of(data)
        man = _manifest(s, out, data, {"chip": chk.chip, "image_valid": chk.valid})
        boot = s.reboot_and_check() if _want_reboot(s, reboot) else None
        return DumpResult(
            s.link(), str(out), str(man), len(data), hashlib.sha256(data).hexdigest(), start,
            round(time.monotonic() - t0, 3), chk.chip, sysinfo, boot,
        )  # fmt: skip


@dataclass
class WritePlan:
    erases: list[tuple[brom.Erase, int]]
    writes: list[tuple[int, bytes]]
    changed: list[int]  # sector offsets whose content changes
    erased: int  # sectors erased


def plan_write(current: bytes, target: bytes) -> WritePlan:
    """What to erase and program to turn ``current`` into ``target`` (same length,
    sector-aligned). Sectors that match are left alone; a sector whose new content only
    clears bits is programmed without an erase; the others are erased (a whole 64 KiB
    block at once when all its sectors need it) and their non-blank units programmed."""
    if len(current) != len(target) or len(current) % SECTOR:
        raise ValueError("plan_write needs sector-aligned buffers of equal length")
    need_erase: list[int] = []
    writes: list[tuple[int, bytes]] = []
    changed: list[int] = []
    blank = b"\xff" * WRITE_UNIT
    for off in range(0, len(target), SECTOR):
        cur, new = current[off : off + SECTOR], target[off : off + SECTOR]
        if cur == new:
            continue
        changed.append(off)
        c, n = int.from_bytes(cur, "big"), int.from_bytes(new, "big")
        erase = (c & n) != n
        if erase:
            need_erase.append(off)
        run = None
        for u in range(off, off + SECTOR + WRITE_UNIT, WRITE_UNIT):
            busy = u < off + SECTOR and target[u : u + WRITE_UNIT] != (
                blank if erase else current[u : u + WRITE_UNIT]
            )
            if busy and run is None:
                run = u
            elif not busy and run is not None:
                writes.append((run, target[run:u]))
                run = None
    erases: list[tuple[brom.Erase, int]] = []
    todo = set(need_erase)
    for blk in range(0, len(target) - BLOCK + 1, BLOCK):
        inside = set(range(blk, blk + BLOCK, SECTOR))
        if inside <= todo:
            erases.append((brom.Erase.BLOCK_64K, blk))
            todo -= inside
    erases += [(brom.Erase.SECTOR_4K, o) for o in sorted(todo)]
    erases.sort(key=lambda e: e[1])
    return WritePlan(erases, writes, changed, len(need_erase))


def _apply(s: Session, current: bytes, target: bytes, backup: str | None) -> WritePlan:
    """Erase, program, read back; a sector that reads back wrong is redone twice at most."""
    plan = plan_write(current, target)
    total = sum(len(d) for _, d in plan.writes) + SECTOR * plan.erased
    boot = boot_area(current, target)
    boot_changed = any(boot.intersects(o, o + SECTOR) for o in plan.changed)
    restore = (
        f"camrescue xr872 write {backup} {IGNORE_OPTION}"
        + (f" {BOOT_OPTION}" if boot_changed else "")
        if backup
        else "a backup"
    )
    tracker = flash_tracker().start()
    first = last = 0
    if plan.changed:
        # from the first erase on, an interruption leaves a mix of old and new
        first, last = min(plan.changed), max(plan.changed) + SECTOR
        tracker.plan([(first, last)]).writing(first, last)
        tracker.resume = f"{restore} --port {s.opts.port}" if backup else "the same command again"
        s.state = (
            f"partly written between 0x{first:05x} and 0x{last:05x}: it will not boot as it is"
        )
        again = (
            "the same command again with --no-backup (the backup already made stays as it is)"
            if backup
            else "the same command again"
        )
        s.restore_hint = (
            "get the unit into its boot ROM again (power-cycle it; strap PB02/PB03 if it has "
            f"no console), then write the backup back ({restore}) or run {again}"
        )
    with Progress("write", total, enabled=s.opts.progress) as bar:
        for kind, addr in plan.erases:
            s.erase(kind, addr)
            bar.advance(brom.ERASE_SIZE.get(kind, SECTOR))
        for addr, data in plan.writes:
            for o in range(0, len(data), s.opts.chunk):
                s.program(addr + o, data[o : o + s.opts.chunk])
            bar.advance(len(data))
    if plan.changed:
        tracker.written(first, last)
    with Progress("verify", len(plan.changed) * SECTOR, enabled=s.opts.progress) as bar:
        for sector in plan.changed:
            want = target[sector : sector + SECTOR]
            for attempt in range(3):
                if s.read_chunk(sector, SECTOR) == want:
                    break
                if attempt == 2:
                    raise VerifyError(
                        f"sector 0x{sector:x} does not read back what was written (3 tries)",
                        flash_state="partly written: it will not boot as it is",
                        hint=f"run the same command again; if it fails again write the backup "
                        f"back ({restore}) and check the wiring and the power supply "
                        "(a write-protected flash also ends here)",
                    )
                s.log(f"sector 0x{sector:x} read back wrong; erasing and writing it again")
                s.erase(brom.Erase.SECTOR_4K, sector)
                for u in range(0, SECTOR, WRITE_UNIT):
                    if want[u : u + WRITE_UNIT] != b"\xff" * WRITE_UNIT:
                        s.program(sector + u, want[u : u + WRITE_UNIT])
            bar.advance(SECTOR)
    s.state = "holds the new image, verified"
    if plan.changed:
        tracker.verified(first, last)
    return plan


def _backup_path(s: Session, backup: str | None, overwrite: bool = False) -> Path:
    assert s.flash
    path = Path(backup) if backup else Path(
        f"xr872-backup-{s.flash.jedec_hex}-{_dt.datetime.now():%Y%m%d-%H%M%S}.bin"
    )  # fmt: skip
    if path.exists() and not (overwrite and backup):
        raise RefusedError(
            f"the backup file {path} already exists (an existing backup is never overwritten "
            "unless you say so)",
            flash_state=UNTOUCHED,
            hint="give another --backup name, or add --force to replace it",
        )
    return path


# -- the boot section, judged by address ------------------------------------------------
BOOT_OPTION = "--include-bootloader"
IGNORE_OPTION = "--ignore-image-checks"


def boot_end(buf: bytes) -> int:
    """One past the last byte of the section whose header is at offset 0 of ``buf`` (the
    one the ROM starts), whatever its id or checksums say; 0 without an AWIH header there.
    Capped at the system-info sector."""
    if len(buf) < SECTION_HEADER.size or struct.unpack_from("<I", buf)[0] != AWIH_MAGIC:
        return 0
    return min(SECTION_HEADER.size + SECTION_HEADER.unpack_from(buf)[4], IMAGE_AREA_END)


def boot_area(*bufs: bytes) -> Area:
    """The XR872 boot section by address: sector 0 and every sector up to the end of the
    section at offset 0 in any of ``bufs`` (this unit's flash, the new image)."""
    end = max([SECTOR, *(boot_end(b) for b in bufs)])
    return Area("XR872 boot section", 0, -(-end // SECTOR) * SECTOR)


def check_boot_section(current: bytes, target: bytes, *, include_bootloader: bool) -> list[int]:
    """The sectors of the boot section whose bytes ``target`` changes; refused (nothing
    written yet) unless ``include_bootloader``. Both start at 0; ``current`` covers at
    least :func:`boot_area`, ``target`` may end sooner (what lies past it is not
    written)."""
    area = boot_area(current, target)
    changed = [
        o
        for o in range(area.start, min(area.end, len(target)), SECTOR)
        if current[o : o + SECTOR] != target[o : o + SECTOR]
    ]
    if changed and not include_bootloader:
        raise RefusedError(
            f"this would rewrite {len(changed)} sector(s) of the {area.name} "
            f"(0x{area.start:05x}..0x{area.end - 1:05x}, the boot loader the ROM starts: "
            f"sectors {', '.join(f'0x{o:05x}' for o in changed)} differ from what this unit "
            "holds), judged by address whatever the image calls its sections: refused, "
            "nothing was written",
            flash_state=UNTOUCHED,
            hint=f"if this unit's boot loader really must be replaced (an XR809 image "
            f"bricked it, a dump of a working XF16 brings it back), add {BOOT_OPTION}; "
            "the ROM itself cannot be overwritten, so a broken boot section can be written "
            "again from the boot ROM (straps PB02/PB03)",
        )
    return changed


def _precheck_boot(
    s: Session, make_target: Callable[[bytes], bytes], image: bytes, include: bool
) -> None:
    """Before the backup: read this unit's boot section (sector 0 first, then as far as
    its header and the image's say) and refuse a change to it without ``include``."""
    assert s.flash
    if include:
        return
    head = s.read_range(0, SECTOR)  # this unit's header at 0 says how far its section goes
    end = min(boot_area(head, image).end, s.flash.size)
    current = head + (s.read_range(SECTOR, end - SECTOR) if end > SECTOR else b"")
    padded = current + b"\xff" * (s.flash.size - len(current))
    check_boot_section(current, make_target(padded)[:end], include_bootloader=False)


def _read_current(
    s: Session, backup: str | None, no_backup: bool, end: int, overwrite: bool = False
) -> tuple[bytes, str | None]:
    """This unit's flash before writing: saved as a backup (with a manifest), or only the
    first ``end`` bytes read (``--no-backup``)."""
    assert s.flash
    if no_backup:
        with Progress("read", end, enabled=s.opts.progress) as bar:
            return s.read_range(0, end, bar) + b"\xff" * (s.flash.size - end), None
    path = _backup_path(s, backup, overwrite)
    current, _ = _dump_into(s, path, False, "backup")
    _manifest(s, path, current, {"kind": "backup before write"})
    s.log(f"backup of the flash saved to {path}")
    return current, str(path)


def _write_image(
    s: Session,
    image: bytes,
    current: bytes,
    backup: str | None,
    *,
    name: str,
    forced: bool,
    problems: list[str],
    include_bootloader: bool = False,
) -> WriteResult:
    """Put ``image`` at offset 0 over ``current`` (what the flash holds), verified; the
    boot section only with ``include_bootloader`` (:func:`check_boot_section`)."""
    assert s.flash
    end = -(-len(image) // SECTOR) * SECTOR
    target = bytearray(current[:end])
    target[: len(image)] = image
    boot = check_boot_section(current, bytes(target), include_bootloader=include_bootloader)
    if boot:
        s.log(f"{len(boot)} sector(s) of the boot section rewritten ({BOOT_OPTION})")
    plan = _apply(s, current[:end], bytes(target), backup)
    s.log(
        f"{len(plan.changed)} of {end // SECTOR} sectors changed, {plan.erased} erased; "
        "all read back correctly"
    )
    return WriteResult(
        s.link(), name, hashlib.sha256(image).hexdigest(), backup, end // SECTOR,
        len(plan.changed), plan.erased, sum(len(d) for _, d in plan.writes), True, None,
        forced, problems, boot_area=[0, boot_area(current, bytes(target)).end],
        boot_sectors_written=len(boot),
    )  # fmt: skip


def _load(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e}", flash_state=UNTOUCHED) from e


ODD_OPTION = "--i-know-the-backup-is-odd"


def _manifest_of(path: str | os.PathLike[str], data: bytes) -> dict[str, Any] | None:
    """The manifest camrescue wrote beside a dump or backup (``FILE.json``), checked
    against the file (:func:`recovery.files.check_manifest`: size, sha256) before the
    file is trusted; None for a file without one (an ``xr_system.img``)."""
    side = Path(str(path) + ".json")
    if not side.exists():
        return None
    try:
        man = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ImageError(
            f"{side} (the manifest of {path}) is unreadable: {e}",
            flash_state=UNTOUCHED,
            hint="use an intact copy of the dump with its manifest",
        ) from e
    if not isinstance(man, dict):
        raise ImageError(f"{side} is not a camrescue manifest", flash_state=UNTOUCHED)
    check_manifest(path, data, man, board="xr872")
    return man


def _check_unit(
    path: str | os.PathLike[str],
    man: dict[str, Any] | None,
    s: Session,
    *,
    jedec: bool,
    odd_ok: bool,
) -> None:
    """A dump's manifest against this unit: its flash size, and (``jedec``: a backup
    written back with write) the JEDEC id of the flash it was read from."""
    assert s.flash
    if man is None or odd_ok:
        return
    problems = []
    if man.get("flash_size") not in (None, s.flash.size):
        problems.append(
            f"it was read from a {man.get('flash_size')}-byte flash, this one has {s.flash.size}"
        )
    if jedec and man.get("jedec_id") not in (None, s.flash.jedec_hex):
        problems.append(
            f"it was read from a flash with JEDEC id {man.get('jedec_id')}, this unit's is "
            f"{s.flash.jedec_hex} (another unit's dump)"
        )
    if problems:
        raise ImageError(
            f"{path} is not a dump of this unit: " + "; ".join(problems),
            flash_state=UNTOUCHED,
            hint=f"write a dump of this unit; 'clone --from' takes another unit's dump; if you "
            f"are sure, add {ODD_OPTION}",
        )


def _refuse(path: str | os.PathLike[str], chk: ImageCheck) -> ImageError:
    return ImageError(
        f"{path} is not a valid XR872 image: " + "; ".join(chk.problems),
        flash_state=UNTOUCHED,
        hint=f"check that it is an XR872 (XF16) image or dump; {IGNORE_OPTION} writes it "
        "anyway (dangerous)",
    )


def _sysinfo_text(si: SysInfo) -> str:
    return f"MAC {si.mac}" if si.valid else f"not valid ({si.reason})"


def write(
    opts: Options,
    image: str | os.PathLike[str],
    *,
    ignore_image_checks: bool = False,
    backup: str | None = None,
    no_backup: bool = False,
    take_donor_data: bool = False,
    reboot: bool = True,
    log: Callable[[str], None] | None = None,
    odd_ok: bool = False,
    include_bootloader: bool = False,
    overwrite_backup: bool = False,
) -> WriteResult:
    """Write ``image`` (an xr_system.img or a whole-flash dump) at offset 0: checked
    before anything is touched, the flash backed up, only the needed sectors erased,
    everything read back, then REBOOT and report whether the firmware booted. A dump
    that reaches the sysinfo area and holds other sysinfo than this unit keeps this
    unit's, unless ``take_donor_data``. A dump or backup with camrescue's manifest
    beside it (``FILE.json``) must match it (size, sha256) before anything else, and
    be of this unit's flash (JEDEC id, size) unless ``odd_ok``. An invalid image is
    refused unless ``ignore_image_checks``; a change to the boot section, unless
    ``include_bootloader`` (checked before the backup); an existing ``backup`` file
    is replaced only with ``overwrite_backup``."""
    force = ignore_image_checks
    data = _load(image)
    man = _manifest_of(image, data)
    chk = check_image(data)
    if not chk.valid and not force:
        raise _refuse(image, chk)
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        _check_unit(image, man, s, jedec=True, odd_ok=odd_ok)
        if len(data) > s.flash.size:
            raise ImageError(
                f"{image} is {len(data)} bytes, the flash only {s.flash.size}",
                flash_state=UNTOUCHED,
            )
        end = -(-len(data) // SECTOR) * SECTOR

        def overlay(cur: bytes) -> bytes:
            return data + cur[len(data) :]

        _precheck_boot(s, overlay, data, include_bootloader)
        current, bpath = _read_current(s, backup, no_backup, end, overwrite_backup)
        warnings = []
        what = ""
        if len(data) >= SYSINFO.stop and data[SYSINFO] != current[SYSINFO]:
            mine, theirs = parse_sysinfo(current[SYSINFO]), parse_sysinfo(data[SYSINFO])
            if take_donor_data:
                what = "the image's"
                warnings.append(
                    f"wrote the image's sysinfo ({_sysinfo_text(theirs)}) over this unit's "
                    f"({_sysinfo_text(mine)}), as --take-donor-data asked"
                )
            else:
                what = "kept"
                buf = bytearray(data)
                buf[SYSINFO] = current[SYSINFO]
                data = bytes(buf)
                warnings.append(
                    f"kept this unit's own sysinfo at 0x{SYSINFO_OFFSET:x} "
                    f"({_sysinfo_text(mine)}); the image's differs ({_sysinfo_text(theirs)}) "
                    "and was not written: give --take-donor-data to write it"
                )
            s.log(warnings[-1])
        res = _write_image(
            s, data, current, bpath, name=str(image), forced=force and not chk.valid,
            problems=chk.problems, include_bootloader=include_bootloader,
        )  # fmt: skip
        res.warnings = warnings
        res.sysinfo = what
        if reboot:
            res.boot = s.reboot_and_check()
        return res


def mac_report(
    boot: BootCheck | None, unit: SysInfo, donor: SysInfo | None, s: Session, took: bool
) -> MacReport:
    """Whose MAC the unit uses now, from the ``in use:`` line of its boot log."""
    chipid = s.efuse.chipid_mac if s.efuse else None
    own = {m for m in (unit.mac, chipid, s.efuse.efuse_mac if s.efuse else None) if m}
    dmac = donor.mac if donor and donor.valid else None
    in_use = boot.mac_in_use if boot else None
    efuse = boot.mac_efuse if boot else None
    follows = bool(in_use and dmac and in_use == dmac and in_use not in own)
    if boot is None:
        text = "not rebooted: the MAC the unit will use is not known yet"
    elif in_use is None:
        text = "the boot log's MAC lines were not seen: the MAC in use is not known"
    elif follows:
        text = (
            f"the unit now uses the DONOR's MAC {in_use} (its firmware takes the MAC from "
            "sysinfo, and sysinfo came from the donor): two cameras with one MAC cannot share "
            "a network"
            + (
                "; run clone again without --take-donor-data to give it back its own"
                if took
                else ""
            )
        )
    elif in_use in own:
        text = f"the unit uses its own MAC {in_use}"
        if dmac and dmac != in_use:
            text += f" (not the donor's {dmac})"
    else:
        text = (
            f"the unit uses MAC {in_use}, neither its earlier one nor the donor's: its firmware "
            "made a new one"
        )
    if in_use and efuse:
        text += f"; eFuse MAC {efuse}"
    return MacReport(in_use, efuse, unit.mac, chipid, dmac, follows, text)


def clone(
    opts: Options,
    donor: str | os.PathLike[str],
    *,
    ignore_image_checks: bool = False,
    backup: str | None = None,
    no_backup: bool = False,
    take_donor_data: bool = False,
    reboot: bool = True,
    log: Callable[[str], None] | None = None,
    odd_ok: bool = False,
    include_bootloader: bool = False,
    overwrite_backup: bool = False,
) -> CloneResult:
    """Write a donor's whole-flash dump onto this unit, keeping this unit's own data.

    This unit is backed up first (whole flash, and its eFuse in the manifest; with
    ``no_backup`` it is read all the same, but not saved). The
    donor's image sections are written; this unit's sysinfo and every other sector
    outside both image chains are kept byte for byte unless ``take_donor_data``. A
    sysinfo that is not valid FDCM is left erased (the firmware rebuilds defaults).
    After the reboot the boot log's MAC lines say which MAC the unit uses. The options
    ``ignore_image_checks``, ``include_bootloader`` and ``overwrite_backup`` are
    those of :func:`write`."""
    force = ignore_image_checks
    data = _load(donor)
    if len(data) != FLASH_SIZE:
        raise ImageError(
            f"{donor} is {len(data)} bytes; a donor dump is the whole "
            f"{FLASH_SIZE // 1024} KiB flash ('camrescue xr872 dump' of the donor)",
            flash_state=UNTOUCHED,
        )
    man = _manifest_of(donor, data)
    chk, donor_si = _facts_of(data)
    if not chk.valid and not force:
        raise _refuse(donor, chk)
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        _check_unit(donor, man, s, jedec=False, odd_ok=odd_ok)
        if s.flash.size != len(data):
            raise ImageError(
                f"this unit's flash is {s.flash.size} bytes, the donor dump {len(data)}",
                flash_state=UNTOUCHED,
            )
        donor_secs = image_sectors(chk.sections)

        def layout(cur: bytes, kept: list[int]) -> bytes:
            """The donor's image sections over ``cur`` (all of the donor's bytes with
            ``take_donor_data``); ``kept`` gets this unit's own other sectors."""
            if take_donor_data:
                return data
            unit_secs = image_sectors(parse_sections(cur, limit=len(cur))[0])
            out = bytearray(cur)
            for off in range(0, len(data), SECTOR):
                if off in donor_secs or off in unit_secs:
                    out[off : off + SECTOR] = data[off : off + SECTOR]
                elif off != SYSINFO_OFFSET and cur[off : off + SECTOR] != data[off : off + SECTOR]:
                    kept.append(off)
            return bytes(out)

        _precheck_boot(s, lambda cur: layout(cur, []), data, include_bootloader)
        current, bpath = _read_current(s, backup, no_backup, s.flash.size, overwrite_backup)
        unit_si = parse_sysinfo(current[SYSINFO])
        warnings: list[str] = []
        if bpath is None:
            warnings.append("--no-backup: this unit's flash was read but not saved anywhere")
        kept: list[int] = []
        target = bytearray(layout(current, kept))
        if take_donor_data:
            what = "the image's"
            warnings.append(
                "--take-donor-data: the donor's sysinfo and other data outside its image are "
                "written too"
            )
        else:
            what = "kept"
            if not unit_si.valid:
                target[SYSINFO] = b"\xff" * SYSINFO_SIZE
                what = "left erased"
                warnings.append(
                    f"this unit's sysinfo is not valid FDCM ({unit_si.reason}): the area is "
                    "left erased, and the firmware rebuilds it from defaults at its next boot "
                    "(its Wi-Fi settings are gone; the MAC is what its firmware makes)"
                )
            s.log(
                f"keeping this unit's own data: sysinfo {what}, {len(kept)} other sector(s) "
                "outside the image chains"
            )
        for w in warnings:
            s.log(w)
        res = _write_image(
            s, bytes(target), current, bpath, name=str(donor), forced=force and not chk.valid,
            problems=chk.problems, include_bootloader=include_bootloader,
        )  # fmt: skip
        res.warnings = warnings
        res.sysinfo = what
        if s.read_chunk(SYSINFO_OFFSET, SYSINFO_SIZE) != bytes(target[SYSINFO]):
            raise VerifyError(
                "the sysinfo area does not hold what was written",
                flash_state="the donor's image is written",
                hint="run clone again",
            )
        if reboot:
            res.boot = s.reboot_and_check()
        report = mac_report(res.boot, unit_si, donor_si, s, take_donor_data)
        s.log(report.text)
        return CloneResult(res, donor_si, unit_si, kept, report)
