"""The randomized fault campaign: ``camrescue scenarios fuzz``.

Each run draws, from one integer seed, an engine operation, one fault and the
moment it strikes; starts an emulated camera in a :class:`~harness.lab.Lab`;
runs the real engine (``recovery.cli.main``, in-process) with the fault armed;
then checks the engine's promise (issue 8, DESIGN.md "Nothing lost") against
the flash model's ground truth:

    either the operation reported success and the flash and every output file
    are exactly what they should be, or it stopped with a clear message (non-zero
    exit, a JSON ``message`` and ``flash_state``) and the user's backup is intact.

Outcomes of a run (:data:`OUTCOMES`):

``verified``
    exit 0, the flash equals the expected image, the output files are right.
``clear_error``
    non-zero exit, JSON with ``ok: false``, a ``message`` and a ``flash_state``
    (and, whenever the flash is no longer untouched, a ``hint`` that says what
    to run); nothing lost.
``silent_corruption`` (must be 0)
    success reported with different bytes in flash or in an output file, or an
    output file left under its final name with wrong bytes.
``backup_lost`` (must be 0)
    a user's input file (backup, image, dump) changed or vanished, or the flash
    changed where no intact copy of its old contents exists.
``wrong_state``
    the error says the flash is untouched and it is not.
``unclear``
    non-zero exit without a JSON result, a message or a flash state, or a
    touched flash and a hint that does not say what to run.
``crash``
    the engine raised (exit 1 "internal error", a traceback) or an emulator crashed.
``hang``
    the engine did not return within the run's time limit.

A run that failed with an error (clear, unclear or wrong state) is retried once
without the fault (unless ``--no-rerun``), as a user would after power-cycling
the camera; the table's ``rerun ok`` column counts the failures that the same
command (for the XR872, with a new backup name) then completed and verified:
dumps resume, writes can be retried.

Faults (:data:`FAULT_KINDS`; their timing is drawn as a fraction of a per-
operation budget of bytes, sectors or datagrams, see :data:`BUDGETS`):
power loss during erase or program (the flash model's ``arm_power_loss``),
a power cut at a chosen byte of the link (during an Xmodem transfer, a BROM
write, a command), a watchdog reset at a chosen byte, log lines injected
between a command and its prompt, link noise (bit errors, drops, lost
bursts), a line that goes silent, and on the Hi3511 TFTP loss/delay/
duplicates, a server that disappears, and a power cut after N datagrams
(:mod:`harness.netfaults`). Power may come back after a drawn delay (the
camera reboots while the engine waits) or stay off.

Every draw is reproducible: ``run seed = campaign seed + run index`` and a
run with ``--seed S --runs 1`` draws the same as run S of any campaign with the
same board, ``--op`` and profile. Runs that end in a bad outcome are saved as
scenario files (harness/scenario.py schema) under ``--save DIR``; their first
line holds the draw, and ``camrescue scenarios fuzz --replay FILE`` runs it
again exactly. docs/faults.md is the user's guide.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import math
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emulators.device import LinkTrigger
from emulators.serial import LinkFaults
from harness import lab as labmod
from harness.netfaults import TftpFaultProxy, TftpFaults, interpose

BOARD_OPS: dict[str, tuple[str, ...]] = {
    "hi3511": ("backup", "flash", "restore"),
    "w90p745": ("dump", "restore"),
    "xr872": ("dump", "write", "clone"),
}
PROFILES = ("quick", "full")
OUTCOMES = (
    "verified",
    "clear_error",
    "silent_corruption",
    "backup_lost",
    "wrong_state",
    "unclear",
    "crash",
    "hang",
)
MUST_BE_ZERO = ("silent_corruption", "backup_lost")
# when a run shows several problems, the worst names it
SEVERITY = ("silent_corruption", "backup_lost", "wrong_state", "crash", "hang", "unclear")
BAD_OUTCOMES = frozenset(OUTCOMES[2:])

# -- faults -------------------------------------------------------------------------------

FAULT_KINDS = (
    "none",
    "power_loss_erase",
    "power_loss_program",
    "power_cut",
    "watchdog",
    "log_lines",
    "link_noise",
    "link_silence",
    "tftp_loss",
    "tftp_gone",
    "tftp_power_cut",
)
WRITE_FAULTS = ("power_loss_erase", "power_loss_program")
TFTP_FAULTS = ("tftp_loss", "tftp_gone", "tftp_power_cut")
POWER_FAULTS = ("power_loss_erase", "power_loss_program", "power_cut", "tftp_power_cut")


@dataclass(frozen=True)
class Budget:
    """How much of each thing one fault-free run of an operation moves (measured with
    :func:`calibrate`, rounded): fault moments are drawn as a fraction of these."""

    host_bytes: int  # bytes the device reads from the host
    device_bytes: int  # bytes the device writes to the host
    program_bytes: int = 0  # bytes programmed into the flash
    erase_sectors: int = 0  # sectors erased
    packets: int = 0  # TFTP datagrams (both ways)


# Measured in fast mode with calibrate() (bench/bench_fuzz.py --calibrate prints them).
BUDGETS: dict[tuple[str, str, str], Budget] = {
    ("hi3511", "backup", "quick"): Budget(303, 6928, 0, 0, 61452),
    ("hi3511", "flash", "quick"): Budget(187, 3378, 713252, 104, 2789),
    ("hi3511", "restore", "quick"): Budget(206, 3386, 1048576, 8, 4099),
    ("w90p745", "dump", "quick"): Budget(849, 74447),
    ("w90p745", "restore", "quick"): Budget(17370, 75469, 16436, 2),
    ("xr872", "dump", "quick"): Budget(5446, 1052270),
    ("xr872", "write", "quick"): Budget(181535, 1357657, 172544, 57),
    ("xr872", "clone", "quick"): Budget(210809, 1399085, 201216, 66),
    ("hi3511", "flash", "full"): Budget(226, 5256, 713252, 104, 2789),
    ("hi3511", "restore", "full"): Budget(982, 10226, 15728640, 120, 61449),
    ("w90p745", "dump", "full"): Budget(46375, 4101607),
    ("w90p745", "restore", "full"): Budget(481958, 2052476, 456500, 14),
}


def budget(board: str, op: str, profile: str) -> Budget:
    b = BUDGETS.get((board, op, profile)) or BUDGETS.get((board, op, "quick"))
    if b is None:
        raise KeyError(f"no fault budget for {board} {op}")
    return b


LOG_LINES: dict[str, tuple[bytes, ...]] = {
    "hi3511": (
        b"eth0: link up, 100Mbps, full-duplex\r\n",
        b"\r\nU-Boot 1.1.4 (Apr  8 2009 - 11:41:01)\r\n",
        b"hilinux # ",
        b"## Error: watchdog timeout\r\n",
        b"Erasing sector  0 ... ok.\r\nBytes transferred = 4096 (1000 hex)\r\n",
    ),
    "w90p745": (
        b"W90P745 Boot Loader [ Version 1.1 $Revision: 1 $ ] Rebuilt on Dec 10 2009\r\n",
        b"bootloader > ",
        b"Image 8 deleted\r\n",
        b"MAC 0 link up\r\n",
    ),
    "xr872": (
        b"\r\nXRadio IoT WLAN SDK v1.2.1\r\n",
        b"OK",
        b"BROM\x02\x00\x00\x00\x00\x00\x01",
        b"[sysinfo] invalid sysinfo, use default\r\n",
    ),
}


def applicable_faults(board: str, op: str) -> list[tuple[str, float]]:
    """(kind, weight) of the faults that make sense for an operation."""
    writes = (board, op) not in (("hi3511", "backup"), ("w90p745", "dump"), ("xr872", "dump"))
    out: list[tuple[str, float]] = [
        ("none", 0.5),
        ("power_cut", 2.0),
        ("watchdog", 1.5),
        ("log_lines", 1.0),
        ("link_noise", 2.0),
        ("link_silence", 1.0),
    ]
    if writes:
        out += [("power_loss_erase", 2.0), ("power_loss_program", 3.0)]
    if board == "hi3511":
        out += [("tftp_loss", 1.5), ("tftp_gone", 1.0), ("tftp_power_cut", 1.5)]
    return out


@dataclass
class Draw:
    """Everything one run does, derived from ``seed`` (see :func:`draw`)."""

    board: str
    op: str
    seed: int
    profile: str = "quick"
    fault: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    variant: str = ""

    @property
    def name(self) -> str:
        return f"fuzz-{self.board}-{self.op}-{self.seed}"

    def describe(self) -> str:
        f = dict(self.fault)
        kind = f.pop("kind")
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in f.items())
        return f"{kind}({args})" if args else kind

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Draw:
        return cls(
            board=str(d["board"]),
            op=str(d["op"]),
            seed=int(d["seed"]),
            profile=str(d.get("profile", "quick")),
            fault=dict(d.get("fault") or {"kind": "none"}),
            variant=str(d.get("variant", "")),
        )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, str | bytes):
        return repr(v)[:40]
    return str(v)


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def draw(
    board: str,
    seed: int,
    *,
    ops: Sequence[str] | None = None,
    profile: str = "quick",
    faults: Sequence[str] | None = None,
) -> Draw:
    """The run for ``seed``: operation, variant, fault and its moment.

    The same arguments always give the same draw (one :class:`random.Random`
    seeded with a string of board and seed; nothing else is consulted).
    ``faults`` limits the fault kinds drawn from."""
    if board not in BOARD_OPS:
        raise ValueError(f"unknown board {board!r}; known: {', '.join(BOARD_OPS)}")
    choices = tuple(ops) if ops else BOARD_OPS[board]
    for op in choices:
        if op not in BOARD_OPS[board]:
            raise ValueError(
                f"{board} has no operation {op!r} (it has {', '.join(BOARD_OPS[board])})"
            )
    rng = random.Random(f"camrescue-fuzz:{board}:{seed}")
    op = choices[seed % len(choices)]
    kinds = applicable_faults(board, op)
    if faults:
        unknown = set(faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind {', '.join(sorted(unknown))}")
        kinds = [(k, w) for k, w in kinds if k in faults] or [("none", 1.0)]
    kind = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
    b = budget(board, op, profile)
    frac = rng.random()
    # power comes back after a short while in most draws; stays off in some
    back_choices = [0.05, 0.3, 1.0, None]
    back_weights = [3, 3, 2, 1] if profile == "full" else [3, 3, 2, 0]
    power_back = rng.choices(back_choices, weights=back_weights)[0]
    f: dict[str, Any] = {"kind": kind}
    if kind == "power_loss_erase":
        f.update(erase_sectors=int(frac * max(1, b.erase_sectors)), power_back=power_back)
    elif kind == "power_loss_program":
        f.update(program_bytes=int(frac * max(1, b.program_bytes)), power_back=power_back)
    elif kind in ("power_cut", "watchdog", "log_lines"):
        # at a byte the host sends (a command, an Xmodem block, a BROM frame) or one
        # the device prints (its answers, TFTP progress marks, flash data)
        direction = rng.choice(["host", "device"])
        total = b.host_bytes if direction == "host" else b.device_bytes
        f.update(direction=direction, at_byte=int(frac * total))
        if kind == "power_cut":
            f["power_back"] = power_back
        if kind == "log_lines":
            lines = LOG_LINES[board]
            f["text"] = lines[rng.randrange(len(lines))].decode("latin-1")
    elif kind == "link_noise":
        mode = rng.choice(["bits", "drops", "bursts"])
        f["directions"] = rng.choice(["both", "tx", "rx"])
        if mode == "bits":
            f["bit_error_rate"] = round(_log_uniform(rng, 1e-7, 3e-5), 9)
        elif mode == "drops":
            f["drop_rate"] = round(_log_uniform(rng, 1e-6, 3e-4), 8)
        else:
            f["burst_rate"] = round(_log_uniform(rng, 1e-7, 2e-5), 9)
            f["burst_len"] = rng.choice([8, 32, 64, 256])
    elif kind == "link_silence":
        f.update(silent_after=int(frac * b.device_bytes))
    elif kind == "tftp_loss":
        f.update(
            loss=round(rng.uniform(0.0, 0.2), 3),
            duplicate=round(rng.uniform(0.0, 0.1), 3),
            delay=round(rng.uniform(0.0, 0.02), 4),
            delay_rate=round(rng.uniform(0.0, 0.05), 3),
        )
    elif kind == "tftp_gone":
        f.update(gone_after=int(frac * max(1, b.packets)))
    elif kind == "tftp_power_cut":
        f.update(after_packets=int(frac * max(1, b.packets)), power_back=power_back)
    variant = ""
    if board == "hi3511" and op == "flash" and profile == "full":
        variant = rng.choice(["given-backup", "made-backup"])
    return Draw(board, op, seed, profile, f, variant)


# -- what each operation needs and what it must produce ---------------------------------------

MiB = 1 << 20
HI_BACKUP = (0x100000, 0x1000000)  # kernel + rootfs + settings, chip-relative
HI_REGIONS = {
    "kernel": (0x100000, 0x200000),
    "rootfs": (0x200000, 0xF00000),
    "settings": (0xF00000, 0x1000000),
}
W90_BASE = 0x7F000000
W90_BLOCK = 0x10000
XR_SYSINFO = 0xFF000

# the quick profile's small W90 image: 16 KiB in the flash's last free block
W90_CFG = {"number": 9, "name": "cfg", "base": 0x7F1F0000, "size": 0x4000}


@dataclass
class Plan:
    """One operation set up for a run (see :func:`plan_for`)."""

    argv: list[str]  # the engine's arguments ("{work}" is replaced)
    rerun_argv: list[str]
    initial: bytes  # the flash at the start
    expected: bytes  # the flash after a successful run
    files: dict[str, bytes]  # put in the work directory before the run
    inputs: list[str]  # user files that must stay intact
    start: str = "prompt"  # how the lab powers the device on
    read_only: bool = False
    flash_spec: Any = None  # the scenario schema's description of ``initial`` (None: a file)
    file_specs: dict[str, Any] = field(default_factory=dict)
    # checks: outputs(work, initial, final, success) -> problems with output files
    outputs: Callable[[Path, bytes, bytes, bool], list[str]] | None = None
    # coverage(work, inputs_ok) -> chip ranges whose old contents are safe in a backup
    coverage: Callable[[Path, bool], list[tuple[int, int]]] | None = None
    timeout: float = 120.0


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
                c = W90_CFG
                data = random.Random("camrescue-fuzz:cfg").randbytes(c["size"])
                rec = T.ImageRecord(
                    c["number"], c["name"], c["base"], 0, c["base"], c["base"], T.FLAG_ACTIVE
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


def _w90_table(flash: bytes) -> list[Any]:
    from emulators.flash import NorFlash
    from emulators.w90p745 import imagetable as T
    from emulators.w90p745 import profile as P

    with NorFlash(P.flash_geometry()) as fl:
        fl.load(0, flash)
        return T.scan(fl)


def _xr_image() -> bytes:
    def make() -> bytes:
        from harness.firmware import xr872 as X

        return X.build_image(X.xr872_sections(12))

    return _cached(("xr872", "image"), make)


def _xr_unit() -> tuple[bytes, Any]:
    spec = {"builder": "bricked_flash", "original": {"builder": "xr872_flash", "seed": 12}}
    return labmod.build_image("xr872", "bricked_flash", original=spec["original"]), spec


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_problems(path: Path, want: bytes, what: str) -> list[str]:
    if not path.is_file():
        return []
    have = path.read_bytes()
    if have == want:
        return []
    return [f"{what} {path.name} exists but holds other bytes ({_first_diff(want, have)})"]


def _first_diff(want: bytes, have: bytes) -> str:
    if len(want) != len(have):
        return f"{len(have)} bytes, expected {len(want)}"
    i = next(i for i in range(len(want)) if want[i] != have[i])
    return f"first difference at offset {i:#x}"


def plan_for(d: Draw) -> Plan:
    """Set up ``d.op`` on ``d.board``: flash, files, arguments, expectations."""
    key = (d.board, d.op)
    quick = d.profile == "quick"
    if key == ("hi3511", "backup"):
        initial = _hi_flash("A")

        def outputs(work: Path, i: bytes, f: bytes, ok: bool) -> list[str]:
            out = work / "backup.bin"
            probs = _file_problems(out, i[HI_BACKUP[0] : HI_BACKUP[1]], "the backup")
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
            return _file_problems(work / "made.bin", i[HI_BACKUP[0] : HI_BACKUP[1]], "the backup")

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
        argv = ["hi3511", "restore", "{work}/user-backup.bin"]
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
            return _w90_dump_problems(work / "dump", i, img, ok)

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
        entry = next(e for e in _w90_table(initial) if e.name == img)
        lo = entry.base - W90_BASE
        hi = entry.footer - W90_BASE + 64
        argv = ["w90p745", "restore", "{work}/userdump"]

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
            probs = _file_problems(work / "dump.bin", i, "the dump")
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
            argv = ["xr872", "write", "{work}/xr_system.img"]
            inputs = ["xr_system.img"]
            file_specs: dict[str, Any] = {}
        else:
            donor = labmod.build_image("xr872", "xr872_flash", seed=11)
            files = {"donor.bin": donor}
            expected = bytearray(donor[:XR_SYSINFO] + initial[XR_SYSINFO:])
            argv = ["xr872", "clone", "--from", "{work}/donor.bin"]
            inputs = ["donor.bin"]
            file_specs = {"donor.bin": {"builder": "xr872_flash", "seed": 11}}

        def outputs(work: Path, i: bytes, f: bytes, ok: bool) -> list[str]:
            probs: list[str] = []
            for p in sorted(work.glob("unit-before*.bin")):
                probs += _file_problems(p, i, "the backup")
            return probs

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


def _w90_dump_problems(out: Path, flash: bytes, img: str, ok: bool) -> list[str]:
    """Every finished image file in a dump directory must hold the flash's bytes."""
    probs: list[str] = []
    table = {
        f"image{e.number}_{re.sub(r'[^A-Za-z0-9._-]', '_', e.name)}.bin": e
        for e in _w90_table(flash)
    }
    if out.is_dir():
        for p in sorted(out.glob("image*.bin")):
            e = table.get(p.name)
            if e is None:
                probs.append(f"the dump holds {p.name}, which is no image on the camera")
                continue
            want = flash[e.base - W90_BASE : e.base - W90_BASE + e.size]
            probs += _file_problems(p, want, "the dumped image")
    if ok:
        man = out / "manifest.json"
        try:
            m = json.loads(man.read_text())
        except (OSError, ValueError):
            return [*probs, "success reported but the dump has no readable manifest.json"]
        if m.get("complete") is not True:
            probs.append("success reported but the manifest says the dump is not complete")
        if not any(r.get("name") == img for r in m.get("images", [])):
            probs.append(f"success reported but the manifest lists no {img} image")
        if not list(out.glob(f"image*_{img}.bin")):
            probs.append(f"success reported but the {img} image file is missing")
    return probs


# -- running one draw ------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one run did and how it was judged."""

    draw: Draw
    outcome: str
    exit: int
    message: str = ""
    flash_state: str | None = None
    hint: str | None = None
    problems: list[str] = field(default_factory=list)
    fired: bool | None = None
    duration: float = 0.0
    rerun: str | None = None  # "ok", "failed: ..." or None (not tried)
    saved: str | None = None

    def line(self) -> str:
        d = self.draw
        out = f"seed {d.seed:>6} {d.board} {d.op:<8} {d.describe():<60} {self.duration:5.1f} s"
        out += f" -> {self.outcome}"
        if self.outcome != "verified":
            out += f" (exit {self.exit}: {self.message[:90]})"
        if self.rerun:
            out += f"; rerun {self.rerun[:60]}"
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["draw"] = asdict(self.draw)
        return out


class _PowerBack:
    """Bring the power back ``delay`` seconds after the device lost it (or never)."""

    def __init__(self, device: Any, delay: float | None) -> None:
        self.device = device
        self.delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seen = False  # the power did go

    def start(self) -> _PowerBack:
        if self.delay is not None:
            self._thread = threading.Thread(target=self._run, name="power-back", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            if self.device.power_lost and not self.device.powered:
                self.seen = True
                if not self._stop.wait(self.delay):
                    self.device.power_on()
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


@contextlib.contextmanager
def armed(d: Draw, dev: labmod.LabDevice) -> Iterator[dict[str, Any]]:
    """Arm the draw's fault on ``dev`` for the duration of the engine run.

    Yields a dict that gets ``fired`` (whether the fault struck) when done."""
    f = dict(d.fault)
    kind = f.pop("kind")
    state: dict[str, Any] = {"fired": None}
    device = dev.device
    power_back = _PowerBack(device, f.get("power_back"))
    proxy: TftpFaultProxy | None = None
    trigger: LinkTrigger | None = None
    try:
        if kind == "power_loss_erase":
            dev.flash.arm_power_loss(erase_sectors=f["erase_sectors"])
            power_back.start()
        elif kind == "power_loss_program":
            dev.flash.arm_power_loss(program_bytes=f["program_bytes"])
            power_back.start()
        elif kind in ("power_cut", "watchdog", "log_lines"):
            action = {"power_cut": "power_loss", "watchdog": "reset", "log_lines": "inject"}[kind]
            trigger = LinkTrigger(
                f["direction"], f["at_byte"], action, str(f.get("text", "")).encode("latin-1")
            )
            device.arm_trigger(trigger)
            if kind == "power_cut":
                power_back.start()
        elif kind == "link_noise":
            device.uart.faults = LinkFaults(**f)
        elif kind == "link_silence":
            device.uart.faults = LinkFaults(silent_after=f["silent_after"])
        elif kind in TFTP_FAULTS:
            tf = TftpFaults()
            on_trigger = None
            if kind == "tftp_loss":
                tf = TftpFaults(
                    loss=f["loss"],
                    duplicate=f["duplicate"],
                    delay=f["delay"],
                    delay_rate=f["delay_rate"],
                )
            elif kind == "tftp_gone":
                tf = TftpFaults(gone_after=f["gone_after"])
            else:
                tf = TftpFaults(trigger_after=f["after_packets"])

                def on_trigger() -> None:  # the power goes; _PowerBack may bring it back
                    device.power_off()
                    device.power_lost = True

                power_back.start()

            proxy = interpose(dev, tf, seed=d.seed, on_trigger=on_trigger)
        yield state
    finally:
        power_back.stop()
        dev.flash.disarm()
        device.disarm_triggers()
        device.uart.faults = LinkFaults()
        if trigger is not None:
            state["fired"] = trigger.fired
        elif kind in WRITE_FAULTS:
            state["fired"] = power_back.seen or bool(device.power_lost)
        elif proxy is not None:
            st = proxy.stats
            state["fired"] = (
                st.triggered or st.gone or bool(st.dropped or st.duplicated or st.delayed)
            )
        elif kind == "link_silence":
            state["fired"] = device.uart.silent()
        elif kind == "link_noise":
            state["fired"] = True  # active for the whole run
        if proxy is not None:
            proxy.close()
            device.netmap.default = ("127.0.0.1", dev.server_port)


def _ranges_differ(a: bytes, b: bytes, block: int = 0x1000) -> list[tuple[int, int]]:
    """Block-granular ranges where ``a`` and ``b`` differ (merged)."""
    out: list[tuple[int, int]] = []
    if a == b:
        return out
    ma, mb = memoryview(a), memoryview(b)
    for off in range(0, max(len(a), len(b)), block):
        if ma[off : off + block] != mb[off : off + block]:
            if out and out[-1][1] == off:
                out[-1] = (out[-1][0], off + block)
            else:
                out.append((off, off + block))
    return out


def _fmt_ranges(ranges: list[tuple[int, int]], n: int = 3) -> str:
    text = ", ".join(f"{lo:#x}..{hi:#x}" for lo, hi in ranges[:n])
    return text + (f" and {len(ranges) - n} more" if len(ranges) > n else "")


def judge(
    d: Draw,
    plan: Plan,
    r: labmod.EngineResult,
    work: Path,
    hashes: dict[str, str],
    final: bytes,
    emulator_crash: str = "",
) -> RunResult:
    """Classify one engine run against the ground truth."""
    j = r.json if isinstance(r.json, dict) else None
    res = RunResult(
        d,
        "verified",
        r.exit,
        message=str((j or {}).get("message") or "").strip(),
        flash_state=(j or {}).get("flash_state"),
        hint=(j or {}).get("hint"),
        duration=r.duration,
    )
    found: dict[str, list[str]] = {k: [] for k in OUTCOMES}
    initial = plan.initial
    ok = r.exit == 0 and not r.timed_out
    # the user's files
    inputs_ok = True
    for name, h in hashes.items():
        p = work / name
        if not p.is_file():
            inputs_ok = False
            found["backup_lost"].append(f"the user's {name} is gone")
        elif _sha(p.read_bytes()) != h:
            inputs_ok = False
            found["backup_lost"].append(f"the user's {name} was changed")
    changed = _ranges_differ(initial, final)
    if changed and plan.read_only:
        found["silent_corruption"].append(
            f"a read-only operation changed the flash at {_fmt_ranges(changed)}"
        )
    elif changed:
        covered = plan.coverage(work, inputs_ok) if plan.coverage else []
        bare = [(lo, hi) for lo, hi in changed if not any(a <= lo and hi <= b for a, b in covered)]
        if bare:
            found["backup_lost"].append(
                f"the flash changed at {_fmt_ranges(bare)} and no intact backup holds "
                "what was there"
            )
    outputs = plan.outputs(work, initial, final, ok) if plan.outputs else []
    found["silent_corruption"] += outputs
    if ok:
        if final != plan.expected:
            found["silent_corruption"].append(
                "success reported but the flash differs from the expected image at "
                + _fmt_ranges(_ranges_differ(plan.expected, final))
            )
        if j is None or j.get("ok") is not True:
            found["unclear"].append("exit 0 without a JSON result that says ok")
    elif not r.timed_out:
        state = res.flash_state
        if j is None:
            found["unclear"].append("no JSON result on stdout")
        else:
            if not res.message:
                found["unclear"].append("no message")
            if not state:
                found["unclear"].append("no flash_state")
            elif not str(state).lower().startswith("untouched") and not _instructs(res.hint):
                found["unclear"].append(
                    "the flash is touched but the hint does not say what to run: " + repr(res.hint)
                )
        if state and str(state).lower().startswith("untouched") and changed:
            found["wrong_state"].append(
                f"flash_state says {state!r} but the flash changed at {_fmt_ranges(changed)}"
            )
    if r.crashed or r.exit == 1 or "Traceback (most recent call last)" in r.stderr:
        found["crash"].append("the engine crashed: " + (r.crashed or r.stderr)[-400:])
    if emulator_crash:
        found["crash"].append("the emulator crashed: " + emulator_crash[-400:])
    if r.timed_out:
        found["hang"].append(f"the engine did not return within {plan.timeout:g} s")
    for outcome in SEVERITY:
        if found[outcome]:
            res.outcome = outcome
            break
    else:
        res.outcome = "verified" if ok else "clear_error"
    res.problems = [p for k in SEVERITY for p in found[k]]
    return res


def _instructs(hint: str | None) -> bool:
    """Whether a hint tells the user what to run (the promise: "the exact command to
    resume or restore"), not only what was seen."""
    return bool(hint) and re.search(r"camrescue|\brun\b|\brerun\b|\bagain\b", hint) is not None


def _subst(argv: list[str], work: Path) -> list[str]:
    return [a.replace("{work}", str(work)) for a in argv]


def run_draw(
    d: Draw,
    root: Path | None = None,
    *,
    rerun: bool = True,
    timeout: float | None = None,
    keep: bool = False,
) -> tuple[RunResult, Path | None]:
    """Run one draw in a lab under ``root`` (a new temporary directory by default).

    Returns the result and the lab directory when it was kept (``keep``)."""
    plan = plan_for(d)
    limit = timeout if timeout is not None else plan.timeout
    plan.timeout = limit
    own = root is None
    lab_root = Path(tempfile.mkdtemp(prefix=f"camrescue-{d.name}-")) if own else Path(root)
    t0 = time.monotonic()
    try:
        with labmod.Lab(lab_root) as lab:
            work = lab.work
            for name, data in plan.files.items():
                lab.put_file(name, data)
            hashes = {n: _sha((work / n).read_bytes()) for n in plan.inputs}
            dev = lab.start(
                d.board,
                name="camera",
                seed=d.seed,
                flash=plan.initial,
                tftp_server=False,
                power=plan.start,
            )
            with armed(d, dev) as state:
                r = dev.engine(_subst(plan.argv, work), timeout=limit)
            final = dev.flash_bytes()
            res = judge(d, plan, r, work, hashes, final, dev.device.crash_text or "")
            res.fired = state["fired"]
            (lab.root / "engine.json").write_text(
                json.dumps(
                    {"argv": r.argv, "exit": r.exit, "json": r.json, "stderr": r.stderr[-20000:]},
                    indent=1,
                )
            )
            dev.save_transcript()
            if rerun and res.outcome in ("clear_error", "unclear", "wrong_state"):
                res.rerun = _rerun(d, plan, dev, work, limit)
            res.duration = time.monotonic() - t0
        if res.outcome in BAD_OUTCOMES or keep:
            return res, lab_root
        return res, None
    finally:
        if own and not keep and not ("res" in locals() and res.outcome in BAD_OUTCOMES):
            shutil.rmtree(lab_root, ignore_errors=True)


def _rerun(d: Draw, plan: Plan, dev: labmod.LabDevice, work: Path, limit: float) -> str:
    """After a clean failure: power-cycle the camera, run the command again without
    the fault, and check that it completes and verifies."""
    # a user's second command is a new process: nothing of the first one's sockets or
    # threads is left (in-process, unreachable servers are only closed by the collector)
    gc.collect()
    try:
        dev.power_off()
        dev.power_on(plan.start)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"failed: the camera did not come back ({e})"
    r = dev.engine(_subst(plan.rerun_argv, work), timeout=limit)
    final = dev.flash_bytes()
    if r.exit != 0:
        msg = (r.json or {}).get("message") if isinstance(r.json, dict) else None
        return f"failed: exit {r.exit}: {str(msg or r.stderr[-200:]).strip()[:200]}"
    if final != plan.expected:
        return "failed: success reported but the flash differs: " + _fmt_ranges(
            _ranges_differ(plan.expected, final)
        )
    probs = plan.outputs(work, plan.initial, final, True) if plan.outputs else []
    if probs:
        return "failed: " + probs[0]
    return "ok"


# -- the campaign ---------------------------------------------------------------------------


@dataclass
class Campaign:
    """``runs`` draws per board, seeds ``seed .. seed + runs - 1``."""

    boards: list[str]
    runs: int
    seed: int = 0
    ops: list[str] | None = None
    profile: str = "quick"
    faults: list[str] | None = None
    save: Path | None = Path("fuzz-failures")
    rerun: bool = True
    timeout: float | None = None
    results: list[RunResult] = field(default_factory=list)

    def draws(self) -> list[Draw]:
        out = []
        for board in self.boards:
            ops = [o for o in (self.ops or []) if o in BOARD_OPS[board]] or None
            if self.ops and ops is None:
                continue
            for i in range(self.runs):
                out.append(
                    draw(board, self.seed + i, ops=ops, profile=self.profile, faults=self.faults)
                )
        return out

    def run(self, report: Callable[[str], None] | None = None) -> list[RunResult]:
        for d in self.draws():
            try:
                res, lab_dir = run_draw(d, rerun=self.rerun, timeout=self.timeout)
            except Exception as e:  # noqa: BLE001 - one broken run must not end the campaign
                res = RunResult(d, "crash", -1, f"the harness could not run this draw: {e!r}")
                res.problems = [traceback.format_exc()[-1500:]]
                lab_dir = None
            if res.outcome in BAD_OUTCOMES and self.save is not None:
                try:
                    res.saved = str(save_failure(d, res, self.save, lab_dir))
                except Exception as e:  # noqa: BLE001 - the result line still says it all
                    res.problems.append(f"could not save the scenario file: {e!r}")
            if lab_dir is not None:
                shutil.rmtree(lab_dir, ignore_errors=True)
            self.results.append(res)
            if report is not None:
                report(res.line())
        return self.results

    @property
    def violations(self) -> list[RunResult]:
        return [r for r in self.results if r.outcome in MUST_BE_ZERO]


COLUMNS = (
    ("runs", "runs"),
    ("verified", "verified"),
    ("clear_error", "clear error"),
    ("rerun_ok", "rerun ok"),
    ("silent_corruption", "silent corruption"),
    ("backup_lost", "backup lost"),
    ("wrong_state", "wrong state"),
    ("unclear", "unclear"),
    ("crash", "crash"),
    ("hang", "hang"),
)


def tally(results: Sequence[RunResult]) -> dict[tuple[str, str], dict[str, int]]:
    """Counts per (board, operation) for the table."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for r in results:
        row = out.setdefault((r.draw.board, r.draw.op), {k: 0 for k, _ in COLUMNS})
        row["runs"] += 1
        row[r.outcome] += 1
        if r.rerun == "ok":
            row["rerun_ok"] += 1
    return out


def format_table(results: Sequence[RunResult]) -> str:
    """One table per board: a row per operation, a column per outcome."""
    counts = tally(results)
    lines: list[str] = []
    for board in BOARD_OPS:
        rows = [(op, counts[(board, op)]) for op in BOARD_OPS[board] if (board, op) in counts]
        if not rows:
            continue
        head = ["operation", *[label for _, label in COLUMNS]]
        body = [[op, *[str(c[k]) for k, _ in COLUMNS]] for op, c in rows]
        total = {k: sum(c[k] for _, c in rows) for k, _ in COLUMNS}
        body.append(["all", *[str(total[k]) for k, _ in COLUMNS]])
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        lines.append(f"{board}:")
        lines.append("  " + " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        lines.append("  " + "-+-".join("-" * w for w in widths))
        for row in body:
            lines.append("  " + " | ".join(x.rjust(w) for x, w in zip(row, widths, strict=True)))
        lines.append("")
    bad = [r for r in results if r.outcome in MUST_BE_ZERO]
    lines.append(
        f"{len(results)} runs; silent corruption {sum(r.outcome == 'silent_corruption' for r in results)}"
        f" (must be 0), backup lost {sum(r.outcome == 'backup_lost' for r in results)} (must be 0)"
        + ("" if not bad else "  <-- VIOLATED")
    )
    return "\n".join(lines)


# -- saved failures as scenario files ----------------------------------------------------------

HEADER_PREFIX = "# camrescue-fuzz: "


def _scenario_fault_steps(d: Draw) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str]:
    """(steps before the engine, the device's network faults, a note) for the schema."""
    f = dict(d.fault)
    kind = f.pop("kind")
    note = ""
    steps: list[dict[str, Any]] = []
    network = None
    if kind in WRITE_FAULTS:
        key = "erase_sectors" if kind == "power_loss_erase" else "program_bytes"
        steps.append({"fault": {"power_loss": {key: f[key]}}})
    elif kind == "link_noise":
        steps.append({"fault": {"link": f}})
    elif kind == "link_silence":
        steps.append({"fault": {"link": {"silent_after": f["silent_after"]}}})
    elif kind == "tftp_loss":
        network = {"loss": f["loss"], "delay": f["delay"] * f["delay_rate"]}
        note = "the schema has no TFTP duplicates or partial delay: approximated"
    elif kind == "tftp_gone":
        network = {"cut_after": f["gone_after"]}
    elif kind != "none":
        note = (
            f"the scenario schema cannot arm a {kind} fault at a link byte or a TFTP datagram; "
            "replay it exactly with 'camrescue scenarios fuzz --replay THIS_FILE'"
        )
    if f.get("power_back") is not None:
        note = (note + "; " if note else "") + (
            f"power comes back {f['power_back']} s after it is lost (approximated below by "
            "power_on steps during the engine run)"
        )
    return steps, network, note


def scenario_text(d: Draw, res: RunResult, files_dir: str) -> tuple[str, dict[str, bytes]]:
    """A scenario file reproducing ``d`` (as far as the schema allows) whose
    expectations are the half of the guarantee the run broke, and the files it needs
    (relative names under ``files_dir``)."""
    plan = plan_for(d)
    extra: dict[str, bytes] = {}
    fault_steps, network, note = _scenario_fault_steps(d)
    device: dict[str, Any] = {"seed": d.seed, "start": plan.start}
    if network is not None:
        device["network"] = network
    sc: dict[str, Any] = {
        "name": d.name,
        "board": d.board,
        "description": (
            f"Found by the fault campaign: {d.op} with fault {d.describe()} ended in "
            f"{res.outcome}: {'; '.join(res.problems)[:600]}"
        ),
        "markers": ["fuzz"],
        "timeout": plan.timeout + 60,
        "device": device,
    }
    if plan.flash_spec == "factory":
        pass
    elif plan.flash_spec is not None:
        sc["flash"] = plan.flash_spec
    else:
        extra["flash.bin"] = plan.initial
        sc["flash"] = {"file": f"{files_dir}/flash.bin"}
    if plan.files:
        sc["files"] = {}
        for name, data in plan.files.items():
            if name in plan.file_specs:
                sc["files"][name] = plan.file_specs[name]
            else:
                extra[name] = data
                sc["files"][name] = {"file": f"{files_dir}/{name}"}
    step: dict[str, Any] = {
        "title": f"{d.op} under {d.describe()}"[:200],
        "engine": [a.replace("{work}", "{work}") for a in plan.argv],
        "timeout": plan.timeout,
    }
    back = d.fault.get("power_back")
    if back is not None:
        # power_on is a no-op while the camera is on: a grid of them brings the power
        # back within a second of the moment the fuzz run would have
        step["during"] = [{"after": round(back + k, 3), "do": "power_on"} for k in range(20)]
    expect: dict[str, Any] = {}
    if res.outcome == "silent_corruption":
        step["expect"] = {"exit": 0, "json": {"ok": True}}
        expect["flash"] = [{"range": "all", "sha256": _sha(plan.expected)}]
    elif res.outcome == "backup_lost":
        step["expect"] = {"exit": {"present": True}}
    elif res.outcome == "wrong_state":
        step["expect"] = {
            "exit": "nonzero",
            "json": {"flash_state": {"not_contains": "untouched"}},
        }
    elif res.outcome == "unclear":
        step["expect"] = {
            "exit": "nonzero",
            "json": {"ok": False, "message": {"not": ""}, "flash_state": {"not": None}},
        }
    elif res.outcome == "crash":
        step["expect"] = {
            "exit": {"not": 1},
            "json": {"message": {"not_contains": "internal error"}},
        }
    else:
        step["expect"] = {"exit": {"present": True}}
    if plan.inputs:
        expect["files"] = {n: {"sha256": _sha(plan.files[n])} for n in plan.inputs}
    sc["steps"] = [*fault_steps, step]
    if expect:
        sc["expect"] = expect
    head = [
        HEADER_PREFIX + d.to_json(),
        f"# outcome: {res.outcome}",
        *[f"#   {p[:200]}" for p in res.problems[:6]],
        f"# found by: camrescue scenarios fuzz --board {d.board} --op {d.op} --seed {d.seed} "
        f"--runs 1 --profile {d.profile}",
        "# exact replay: camrescue scenarios fuzz --replay THIS_FILE",
    ]
    if note:
        head.append(f"# note: {note}")
    body = yaml.safe_dump(sc, sort_keys=False, width=100, default_flow_style=None)
    return "\n".join(head) + "\n" + body, extra


def save_failure(d: Draw, res: RunResult, directory: Path, lab_dir: Path | None = None) -> Path:
    """Write the scenario file (and its files, transcript and engine output)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files_dir = f"{d.name}.files"
    text, extra = scenario_text(d, res, files_dir)
    path = directory / f"{d.name}.yaml"
    fdir = directory / files_dir
    fdir.mkdir(exist_ok=True)
    for name, data in extra.items():
        target = fdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if lab_dir is not None:
        for src in (lab_dir / "camera" / "transcript.txt", lab_dir / "engine.json"):
            if src.is_file():
                shutil.copy(src, fdir / src.name)
    (fdir / "result.json").write_text(json.dumps(res.to_dict(), indent=1, default=str))
    path.write_text(text, encoding="utf-8")
    return path


def read_draw(path: str | Path) -> Draw:
    """The draw recorded in a saved scenario file's first line."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith(HEADER_PREFIX):
            return Draw.from_dict(json.loads(line[len(HEADER_PREFIX) :]))
    raise ValueError(f"{path} has no '{HEADER_PREFIX.strip()}' line: not a saved fuzz draw")


# -- calibration ------------------------------------------------------------------------------


def calibrate(board: str, op: str, profile: str = "quick") -> dict[str, int]:
    """Run ``op`` without a fault and measure what :class:`Budget` counts."""
    d = Draw(board, op, 0, profile)
    plan = plan_for(d)
    with labmod.Lab() as lab:
        for name, data in plan.files.items():
            lab.put_file(name, data)
        dev = lab.start(board, flash=plan.initial, tftp_server=False, power=plan.start)
        proxy = interpose(dev, TftpFaults()) if board == "hi3511" else None
        r0, w0 = dev.device.link_counts
        stats = dev.flash.stats
        p0, e0 = stats.bytes_programmed, stats.sectors_erased
        r = dev.engine(_subst(plan.argv, lab.work), timeout=plan.timeout)
        r1, w1 = dev.device.link_counts
        out = {
            "exit": r.exit,
            "host_bytes": r1 - r0,
            "device_bytes": w1 - w0,
            "program_bytes": stats.bytes_programmed - p0,
            "erase_sectors": stats.sectors_erased - e0,
            "packets": proxy.stats.received if proxy else 0,
            "seconds": round(r.duration, 2),
        }
        if proxy is not None:
            proxy.close()
        return out


# -- command line -----------------------------------------------------------------------------


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``fuzz`` to an argparse subparsers object (``camrescue scenarios``'s)."""
    p = sub.add_parser(
        "fuzz",
        help="randomized fault campaign: power loss, link noise, resets, TFTP faults",
        description="Run engine operations against emulated cameras with one random fault "
        "each and check that nothing is lost (docs/faults.md).",
        epilog="examples:\n"
        "  camrescue scenarios fuzz --board hi3511 --runs 20 --seed 1\n"
        "  camrescue scenarios fuzz --board all --runs 5 --op dump\n"
        "  camrescue scenarios fuzz --replay fuzz-failures/fuzz-xr872-write-7.yaml\n"
        "exit status: 0 when no run lost a backup or corrupted silently, 1 otherwise\n"
        "(2: bad arguments); --strict also fails on wrong state, unclear, crash, hang.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--board",
        action="append",
        choices=[*BOARD_OPS, "all"],
        help="board to test (repeatable; 'all' for every board)",
    )
    p.add_argument("--runs", type=int, default=10, help="runs per board (default 10)")
    p.add_argument("--seed", type=int, default=0, help="first run's seed (default 0)")
    p.add_argument("--op", action="append", metavar="OP", help="only this operation (repeatable)")
    p.add_argument(
        "--fault",
        action="append",
        choices=FAULT_KINDS,
        metavar="KIND",
        help="only draw these fault kinds (repeatable): " + ", ".join(FAULT_KINDS),
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="quick: small images, no boot after writing; full: the whole operations",
    )
    p.add_argument(
        "--save",
        default="fuzz-failures",
        metavar="DIR",
        help="where failing draws go as scenario files (default ./fuzz-failures)",
    )
    p.add_argument("--no-save", action="store_true", help="do not save failing draws")
    p.add_argument("--no-rerun", action="store_true", help="do not retry failed runs")
    p.add_argument("--timeout", type=float, help="seconds one engine run may take")
    p.add_argument("--replay", metavar="FILE", help="run the draw saved in FILE again")
    p.add_argument("--json", metavar="FILE", help="also write every run's result to FILE")
    p.add_argument("--strict", action="store_true", help="exit 1 on any bad outcome")
    p.add_argument("-q", "--quiet", action="store_true", help="only the table")
    p.set_defaults(func=fuzz_command)
    return p


def hook_scenarios(scenarios_parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``fuzz`` to the parser ``harness.runner.register_cli`` returns."""
    for action in scenarios_parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return add_parser(action)
    raise ValueError("the scenarios parser has no subcommands")


def fuzz_command(args: argparse.Namespace) -> int:
    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    if args.replay:
        try:
            d = read_draw(args.replay)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        say(f"replaying {d.name}: {d.op} with {d.describe()} ({d.profile})")
        res, lab_dir = run_draw(d, rerun=not args.no_rerun, timeout=args.timeout)
        print(res.line())
        for p in res.problems:
            print(f"  {p}")
        if lab_dir is not None:  # kept when the outcome is bad
            print(f"lab kept for inspection in {lab_dir}")
        results = [res]
    else:
        boards = args.board or []
        if not boards:
            print("error: give --board (hi3511, w90p745, xr872 or all)", file=sys.stderr)
            return 2
        if "all" in boards:
            boards = list(BOARD_OPS)
        if args.runs < 1:
            print("error: --runs must be at least 1", file=sys.stderr)
            return 2
        if args.op:
            known = {o for b in boards for o in BOARD_OPS[b]}
            bad = [o for o in args.op if o not in known]
            if bad:
                print(
                    f"error: no operation {', '.join(bad)} on {', '.join(boards)}",
                    file=sys.stderr,
                )
                return 2
        camp = Campaign(
            boards=list(dict.fromkeys(boards)),
            runs=args.runs,
            seed=args.seed,
            ops=args.op,
            profile=args.profile,
            faults=args.fault,
            save=None if args.no_save else Path(args.save),
            rerun=not args.no_rerun,
            timeout=args.timeout,
        )
        results = camp.run(say)
        say("")
        print(format_table(results))
        saved = [r.saved for r in results if r.saved]
        if saved:
            print(f"\n{len(saved)} failing draw(s) saved as scenario files in {args.save}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1))
    if any(r.outcome in MUST_BE_ZERO for r in results):
        return 1
    if args.strict and any(r.outcome in BAD_OUTCOMES for r in results):
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.fuzz --board hi3511 --runs 5`` (the same as the subcommand)."""
    parser = argparse.ArgumentParser(prog="camrescue scenarios")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_parser(sub)
    args = parser.parse_args(["fuzz", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
