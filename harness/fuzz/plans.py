"""What each operation needs and what it must produce: :func:`plan_for` sets up a
:class:`~harness.fuzz.oracles.Plan` (the starting flash, the user's files, the
engine's arguments, the expected flash, the checks of the output files) from the
firmware builders and a clean engine run that makes the user's backup.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import lab as labmod
from harness.boards import board_spec
from harness.fuzz.faults import Draw
from harness.fuzz.oracles import Plan, file_problems, w90_dump_problems, w90_images

# -- what each operation needs and what it must produce ---------------------------------------

_HI = board_spec("hi3511").partitions
HI_BACKUP = (_HI["kernel"][0], _HI["setting"][1])  # the engine's backup, chip-relative
HI_REGIONS = {r: _HI[r] for r in ("kernel", "rootfs", "setting")}
W90_BASE = board_spec("w90p745").flash_base
W90_BLOCK = board_spec("w90p745").block_size
XR_SYSINFO = board_spec("xr872").partitions["sysinfo"][0]

# the quick profile's small W90 image: 16 KiB in the flash's last free block
W90_CFG_NUMBER, W90_CFG_NAME, W90_CFG_BASE, W90_CFG_SIZE = 9, "cfg", 0x7F1F0000, 0x4000


_ASSETS: dict[tuple[str, ...], Any] = {}
_ASSETS_LOCK = threading.Lock()


def _cached(key: tuple[str, ...], make: Callable[[], Any]) -> Any:
    with _ASSETS_LOCK:
        if key in _ASSETS:
            return _ASSETS[key]
    value = make()
    with _ASSETS_LOCK:
        _ASSETS.setdefault(key, value)
        return _ASSETS[key]


def _hi_flash(firmware: str, seed: int = 0) -> bytes:
    return labmod.build_image("hi3511", "vendor", firmware=firmware, seed=seed)


def _hi_root(firmware: str) -> bytes:
    return labmod.build_image("hi3511", "root_image", firmware=firmware)


def _engine_files(
    board: str, flash: bytes, argv: list[str], names: Sequence[str], start: str = "prompt"
) -> dict[str, bytes]:
    """Run one clean engine operation and collect the files it wrote (the user's
    backup that later runs restore or keep)."""
    with labmod.Lab() as lab:
        dev = lab.start(board, flash=flash, tftp_server=False, power=start)
        work = lab.work
        r = dev.engine([a.replace("{work}", str(work)) for a in argv], timeout=300)
        if r.exit != 0:
            raise RuntimeError(
                f"preparing the user's backup failed: {' '.join(argv)} -> exit {r.exit}: "
                f"{(r.json or {}).get('message')} {r.stderr[-500:]}"
            )
        out = {}
        for name in names:
            p = work / name
            if p.is_dir():
                for q in sorted(p.rglob("*")):
                    if q.is_file():
                        out[str(q.relative_to(work))] = q.read_bytes()
            else:
                out[name] = p.read_bytes()
        return out


def hi3511_user_backup() -> dict[str, bytes]:
    """A verified backup of a stock camera (vendor firmware A), made by the engine."""
    return _cached(
        ("hi3511", "user-backup"),
        lambda: _engine_files(
            "hi3511",
            _hi_flash("A"),
            ["hi3511", "backup", "--out", "{work}/user-backup.bin"],
            ["user-backup.bin", "user-backup.bin.json"],
        ),
    )


def w90_flash(profile: str) -> bytes:
    """The W90P745's flash: the factory images, plus (quick) a 16 KiB image 9 'cfg'."""

    def make() -> bytes:
        from emulators.flash import NorFlash
        from emulators.w90p745 import imagetable as T
        from emulators.w90p745 import profile as P

        with NorFlash(P.flash_geometry()) as fl:
            T.build_factory(fl)
            if profile == "quick":
                data = random.Random("camrescue-fuzz:cfg").randbytes(W90_CFG_SIZE)
                base = W90_CFG_BASE
                rec = T.ImageRecord(
                    W90_CFG_NUMBER, W90_CFG_NAME, base, 0, base, base, T.FLAG_ACTIVE
                )
                T.factory_load(fl, rec, data)
            return fl.snapshot()

    return _cached(("w90p745", "flash", profile), make)


def _w90_image(profile: str) -> str:
    return "cfg" if profile == "quick" else "webui"


def w90_user_dump(profile: str) -> dict[str, bytes]:
    img = _w90_image(profile)
    return _cached(
        ("w90p745", "user-dump", profile),
        lambda: _engine_files(
            "w90p745",
            w90_flash(profile),
            ["w90p745", "dump", "--out", "{work}/userdump", "--images", img, "--reads", "1"],
            ["userdump"],
        ),
    )


def _xr_image() -> bytes:
    def make() -> bytes:
        from harness.firmware import xr872 as X

        return X.build_image(X.xr872_sections(12))

    return _cached(("xr872", "image"), make)


def _xr_unit() -> tuple[bytes, Any]:
    spec = {"builder": "bricked_flash", "original": {"builder": "xr872_flash", "seed": 12}}
    return labmod.build_image("xr872", "bricked_flash", original=spec["original"]), spec


def plan_for(d: Draw) -> Plan:
    """Set up ``d.op`` on ``d.board``: flash, files, arguments, expectations."""
    key = (d.board, d.op)
    quick = d.profile == "quick"
    if key == ("hi3511", "backup"):
        initial = _hi_flash("A")

        def outputs(work: Path, i: bytes, f: bytes, ok: bool) -> list[str]:
            out = work / "backup.bin"
            probs = file_problems(out, i[HI_BACKUP[0] : HI_BACKUP[1]], "the backup")
            if ok and not out.is_file():
                probs.append("success reported but backup.bin is missing")
            if ok and not (work / "backup.bin.json").is_file():
                probs.append("success reported but backup.bin.json is missing")
            return probs

        return Plan(
            ["hi3511", "backup", "--out", "{work}/backup.bin"],
            ["hi3511", "backup", "--out", "{work}/backup.bin"],
            initial,
            initial,
            {},
            [],
            read_only=True,
            flash_spec={"builder": "vendor", "firmware": "A"},
            outputs=outputs,
            timeout=90.0,
        )
    if key == ("hi3511", "flash"):
        initial = _hi_flash("A")
        image = _hi_root("B")
        expected = bytearray(initial)
        lo, hi = HI_REGIONS["rootfs"]
        expected[lo:hi] = image + b"\xff" * (hi - lo - len(image))
        files = {"instar.jffs2": image}
        specs: dict[str, Any] = {"instar.jffs2": {"builder": "root_image", "firmware": "B"}}
        tail = ["--no-boot"] if quick else ["--cat", "/etc/version"]
        if d.variant == "made-backup":
            argv = ["hi3511", "flash", "{work}/instar.jffs2", "--backup-out", "{work}/made.bin"]
            inputs = ["instar.jffs2"]
        else:
            files.update(hi3511_user_backup())
            argv = ["hi3511", "flash", "{work}/instar.jffs2", "--backup", "{work}/user-backup.bin"]
            inputs = ["instar.jffs2", "user-backup.bin", "user-backup.bin.json"]
        argv += ["--partition", "rootfs", *tail]

        def outputs(work: Path, i: bytes, f: bytes, ok: bool) -> list[str]:
            return file_problems(work / "made.bin", i[HI_BACKUP[0] : HI_BACKUP[1]], "the backup")

        def coverage(work: Path, inputs_ok: bool) -> list[tuple[int, int]]:
            if d.variant == "made-backup":
                made = work / "made.bin"
                ok = made.is_file() and made.read_bytes() == initial[HI_BACKUP[0] : HI_BACKUP[1]]
                return [HI_BACKUP] if ok else []
            return [HI_BACKUP] if inputs_ok else []

        return Plan(
            argv,
            argv,
            initial,
            bytes(expected),
            files,
            inputs,
            flash_spec={"builder": "vendor", "firmware": "A"},
            file_specs=specs,
            outputs=outputs,
            coverage=coverage,
            timeout=120.0,
        )
    if key == ("hi3511", "restore"):
        initial = _hi_flash("B", seed=1)
        files = dict(hi3511_user_backup())
        backup = files["user-backup.bin"]
        ranges = ["kernel"] if quick else list(HI_REGIONS)
        expected = bytearray(initial)
        for r in ranges:
            lo, hi = HI_REGIONS[r]
            expected[lo:hi] = backup[lo - HI_BACKUP[0] : hi - HI_BACKUP[0]]
        # the campaign keeps the starting flash itself: no engine backup in the cwd
        argv = ["hi3511", "restore", "{work}/user-backup.bin", "--no-backup"]
        if quick:
            argv += ["--partition", "kernel", "--no-boot"]

        def coverage(work: Path, inputs_ok: bool) -> list[tuple[int, int]]:
            return [HI_REGIONS[r] for r in ranges] if inputs_ok else []

        return Plan(
            argv,
            argv,
            initial,
            bytes(expected),
            files,
            ["user-backup.bin", "user-backup.bin.json"],
            flash_spec={"builder": "vendor", "firmware": "B", "seed": 1},
            coverage=coverage,
            timeout=120.0,
        )
    if key == ("w90p745", "dump"):
        initial = w90_flash(d.profile)
        img = _w90_image(d.profile)
        argv = ["w90p745", "dump", "--out", "{work}/dump", "--images", img]
        argv += ["--reads", "1"] if quick else []

        def outputs(work: Path, i: bytes, f: bytes, ok: bool) -> list[str]:
            return w90_dump_problems(work / "dump", i, img, ok)

        return Plan(
            argv,
            argv,
            initial,
            initial,
            {},
            [],
            read_only=True,
            flash_spec=None if quick else "factory",
            outputs=outputs,
            timeout=120.0,
        )
    if key == ("w90p745", "restore"):
        initial = w90_flash(d.profile)
        files = dict(w90_user_dump(d.profile))
        img = _w90_image(d.profile)
        entry = next(e for e in w90_images(initial) if e.name == img)
        lo = entry.base - W90_BASE
        hi = entry.footer - W90_BASE + 64
        argv = ["w90p745", "restore", "{work}/userdump", "--no-backup"]

        def coverage(work: Path, inputs_ok: bool) -> list[tuple[int, int]]:
            first = lo - lo % W90_BLOCK
            last = hi + (-hi % W90_BLOCK)
            return [(first, last)] if inputs_ok else []

        return Plan(
            argv,
            argv,
            initial,
            initial,
            files,
            sorted(files),
            flash_spec=None if quick else "factory",
            coverage=coverage,
            timeout=120.0,
        )
    if key == ("xr872", "dump"):
        spec = {"builder": "xr872_flash", "seed": 11}
        initial = labmod.build_image("xr872", "xr872_flash", seed=11)

        def outputs(work: Path, i: bytes, f: bytes, ok: bool) -> list[str]:
            probs = file_problems(work / "dump.bin", i, "the dump")
            if ok and not (work / "dump.bin").is_file():
                probs.append("success reported but dump.bin is missing")
            return probs

        argv = ["xr872", "dump", "--out", "{work}/dump.bin"]
        return Plan(
            argv,
            argv,
            initial,
            initial,
            {},
            [],
            start="boot",
            read_only=True,
            flash_spec=spec,
            outputs=outputs,
            timeout=90.0,
        )
    if key in (("xr872", "write"), ("xr872", "clone")):
        initial, spec = _xr_unit()
        if d.op == "write":
            image = _xr_image()
            files = {"xr_system.img": image}
            expected = bytearray(initial)
            expected[: len(image)] = image
            # the unit's boot section is the XR809 image's: the campaign replaces it
            argv = ["xr872", "write", "{work}/xr_system.img", "--include-bootloader"]
            inputs = ["xr_system.img"]
            file_specs: dict[str, Any] = {}
        else:
            donor = labmod.build_image("xr872", "xr872_flash", seed=11)
            files = {"donor.bin": donor}
            expected = bytearray(donor[:XR_SYSINFO] + initial[XR_SYSINFO:])
            argv = ["xr872", "clone", "--from", "{work}/donor.bin", "--include-bootloader"]
            inputs = ["donor.bin"]
            file_specs = {"donor.bin": {"builder": "xr872_flash", "seed": 11}}

        def outputs(work: Path, i: bytes, f: bytes, ok: bool) -> list[str]:
            # the first run's backup holds the initial flash; a rerun's, the flash it found
            start = i
            probs = file_problems(work / "unit-before.bin", initial, "the backup")
            return probs + file_problems(work / "unit-before-rerun.bin", start, "the backup")

        def coverage(work: Path, inputs_ok: bool) -> list[tuple[int, int]]:
            p = work / "unit-before.bin"
            return [(0, len(initial))] if p.is_file() and p.read_bytes() == initial else []

        return Plan(
            [*argv, "--backup", "{work}/unit-before.bin"],
            [*argv, "--backup", "{work}/unit-before-rerun.bin"],
            initial,
            bytes(expected),
            files,
            inputs,
            start="boot",
            flash_spec=spec,
            file_specs=file_specs,
            outputs=outputs,
            coverage=coverage,
            timeout=90.0,
        )
    raise ValueError(f"no plan for {d.board} {d.op}")
