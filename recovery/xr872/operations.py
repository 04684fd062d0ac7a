"""Recover an XR872 camera (board XF16) over its UART: info, dump, write, clone.

This module holds the operations and the order in which they touch the flash;
the engine reaches the XRadio boot ROM through :class:`Session`
(recovery/xr872/driver.py: console login and ``upgrade``, the 0x55 sync, the
SETUART baud ladder, verified reads, the reboot check) and judges images and
the system-info record with recovery/xr872/image.py. ``camrescue xr872 ...``
is recovery/xr872/cli.py. Their public names are re-exported here.

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
boot), RefusedError 9 (a backup would be overwritten), 130 interrupted.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery.errors import ImageError, RefusedError, VerifyError
from recovery.files import atomic_write_json, fsync_dir
from recovery.progress import Progress
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
    NO_ADDR,
    SECTOR,
    SYSINFO_OFFSET,
    SYSINFO_SIZE,
    Identity,
    ImageCheck,
    Section,
    check_image,
    classify_chip,
    layout_problems,
    next_addr,
    parse_mac,
    parse_sections,
    parse_sysinfo,
    patch_sysinfo,
)

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
    identity: Identity | None
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
    identity: Identity | None
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


@dataclass
class CloneResult:
    write: WriteResult
    donor: Identity
    unit: Identity
    written: Identity | None


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
        ident = parse_sysinfo(s.read_chunk(SYSINFO_OFFSET, SYSINFO_SIZE))
        chk = ImageCheck(s.flash.size, secs, chip, problems)
        boot = s.reboot_and_check() if _want_reboot(s, reboot) else None
        return InfoResult(s.link(), chk.chip, secs, problems, ident, boot)


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
        **extra,
    }
    path = out.with_name(out.name + ".json")
    atomic_write_json(path, man)
    return path


def _identity_facts(data: bytes) -> tuple[ImageCheck, Identity | None]:
    return check_image(data), parse_sysinfo(data[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])


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
        chk, ident = _identity_facts(data)
        man = _manifest(
            s, out, data,
            {"chip": chk.chip, "image_valid": chk.valid,
             "mac": ident.mac if ident else None, "ap_name": ident.ap_name if ident else None},
        )  # fmt: skip
        boot = s.reboot_and_check() if _want_reboot(s, reboot) else None
        return DumpResult(
            s.link(), str(out), str(man), len(data), hashlib.sha256(data).hexdigest(), start,
            round(time.monotonic() - t0, 3), chk.chip, ident, boot,
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
    restore = f"camrescue xr872 write {backup} --force" if backup else "a backup"
    if plan.changed:
        # from the first erase on, an interruption leaves a mix of old and new
        first, last = min(plan.changed), max(plan.changed) + SECTOR
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
    return plan


def _backup_path(s: Session, backup: str | None) -> Path:
    assert s.flash
    path = Path(backup) if backup else Path(
        f"xr872-backup-{s.flash.jedec_hex}-{_dt.datetime.now():%Y%m%d-%H%M%S}.bin"
    )  # fmt: skip
    if path.exists():
        raise RefusedError(
            f"the backup file {path} already exists (an existing backup is never overwritten)",
            flash_state=UNTOUCHED,
            hint="give another --backup name",
        )
    return path


def _read_current(
    s: Session, backup: str | None, no_backup: bool, end: int
) -> tuple[bytes, str | None]:
    """This unit's flash before writing: saved as a backup (with a manifest), or only the
    first ``end`` bytes read (``--no-backup``)."""
    assert s.flash
    if no_backup:
        with Progress("read", end, enabled=s.opts.progress) as bar:
            return s.read_range(0, end, bar) + b"\xff" * (s.flash.size - end), None
    path = _backup_path(s, backup)
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
) -> WriteResult:
    """Put ``image`` at offset 0 over ``current`` (what the flash holds), verified."""
    assert s.flash
    end = -(-len(image) // SECTOR) * SECTOR
    target = bytearray(current[:end])
    target[: len(image)] = image
    plan = _apply(s, current[:end], bytes(target), backup)
    s.log(
        f"{len(plan.changed)} of {end // SECTOR} sectors changed, {plan.erased} erased; "
        "all read back correctly"
    )
    return WriteResult(
        s.link(), name, hashlib.sha256(image).hexdigest(), backup, end // SECTOR,
        len(plan.changed), plan.erased, sum(len(d) for _, d in plan.writes), True, None,
        forced, problems,
    )  # fmt: skip


def _load(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e}", flash_state=UNTOUCHED) from e


def _refuse(path: str | os.PathLike[str], chk: ImageCheck) -> ImageError:
    return ImageError(
        f"{path} is not a valid XR872 image: " + "; ".join(chk.problems),
        flash_state=UNTOUCHED,
        hint="check that it is an XR872 (XF16) image or dump; --force writes it anyway",
    )


def write(
    opts: Options,
    image: str | os.PathLike[str],
    *,
    force: bool = False,
    backup: str | None = None,
    no_backup: bool = False,
    reboot: bool = True,
    log: Callable[[str], None] | None = None,
) -> WriteResult:
    """Write ``image`` (an xr_system.img or a whole-flash dump) at offset 0: checked
    before anything is touched, the flash backed up, only the needed sectors erased,
    everything read back, then REBOOT and report whether the firmware booted."""
    data = _load(image)
    chk = check_image(data)
    if not chk.valid and not force:
        raise _refuse(image, chk)
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        if len(data) > s.flash.size:
            raise ImageError(
                f"{image} is {len(data)} bytes, the flash only {s.flash.size}",
                flash_state=UNTOUCHED,
            )
        end = -(-len(data) // SECTOR) * SECTOR
        current, bpath = _read_current(s, backup, no_backup, end)
        warnings = []
        new_id = parse_sysinfo(data[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])
        old_id = parse_sysinfo(current[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])
        if new_id and new_id != old_id:
            warnings.append(
                f"the image carries the identity MAC {new_id.mac} / AP {new_id.ap_name!r}; "
                f"this unit had {old_id.mac if old_id else 'none'}: use 'clone' to keep it"
            )
            s.log(warnings[-1])
        res = _write_image(
            s, data, current, bpath, name=str(image), forced=force and not chk.valid,
            problems=chk.problems,
        )  # fmt: skip
        res.warnings = warnings
        if reboot:
            res.boot = s.reboot_and_check()
        return res


def clone(
    opts: Options,
    donor: str | os.PathLike[str],
    *,
    force: bool = False,
    backup: str | None = None,
    no_backup: bool = False,
    mac: str | None = None,
    ap_name: str | None = None,
    reboot: bool = True,
    log: Callable[[str], None] | None = None,
) -> CloneResult:
    """Write a donor's whole-flash dump but keep this unit's MAC address and AP name:
    read them from this unit's flash first (or take ``mac``/``ap_name``), patch them into
    the donor's system-info record, write, verify, reboot."""
    data = _load(donor)
    if len(data) != FLASH_SIZE:
        raise ImageError(
            f"{donor} is {len(data)} bytes; a donor dump is the whole "
            f"{FLASH_SIZE // 1024} KiB flash ('camrescue xr872 dump' of the donor)",
            flash_state=UNTOUCHED,
        )
    chk, donor_id = _identity_facts(data)
    if not chk.valid and not force:
        raise _refuse(donor, chk)
    if donor_id is None:
        raise ImageError(
            f"{donor} has no valid system-info record at 0x{SYSINFO_OFFSET:x}, so its "
            "identity cannot be replaced",
            flash_state=UNTOUCHED,
            hint="is it a dump of an XR872 (XF16) camera?",
        )
    with Session(opts, log) as s:
        s.enter()
        assert s.flash
        if s.flash.size != len(data):
            raise ImageError(
                f"this unit's flash is {s.flash.size} bytes, the donor dump {len(data)}",
                flash_state=UNTOUCHED,
            )
        current, bpath = _read_current(s, backup, no_backup, s.flash.size)
        unit_id = parse_sysinfo(current[SYSINFO_OFFSET : SYSINFO_OFFSET + SYSINFO_SIZE])
        if mac or ap_name:
            base = unit_id or Identity("", "")
            unit_id = Identity(parse_mac(mac) if mac else base.mac, ap_name or base.ap_name)
        if unit_id is None or not unit_id.mac or not unit_id.ap_name:
            raise ImageError(
                "this unit's flash holds no valid MAC/AP name, so it cannot keep its identity",
                flash_state=UNTOUCHED + (f"; backup in {bpath}" if bpath else ""),
                hint="give them with --mac and --ap-name (the MAC is often on the label)",
            )
        s.log(f"this unit: MAC {unit_id.mac}, AP {unit_id.ap_name!r}; donor: {donor_id.mac}")
        try:
            patched = patch_sysinfo(data, unit_id)
        except ValueError as e:
            raise ImageError(str(e), flash_state=UNTOUCHED) from e
        res = _write_image(
            s, patched, current, bpath, name=str(donor), forced=force and not chk.valid,
            problems=chk.problems,
        )  # fmt: skip
        written = parse_sysinfo(s.read_chunk(SYSINFO_OFFSET, SYSINFO_SIZE))
        if written != unit_id:
            raise VerifyError(
                "the system-info record does not hold this unit's identity after the write",
                flash_state="the donor's image is written",
                hint="run clone again",
            )
        if reboot:
            res.boot = s.reboot_and_check()
        return CloneResult(res, donor_id, unit_id, written)
