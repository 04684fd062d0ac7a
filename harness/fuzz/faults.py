"""The campaign's fault kinds and draws: which faults apply to an operation, when
they strike (a fraction of a per-operation :class:`Budget`), and :func:`draw`,
which derives one run (:class:`Draw`) from an integer seed; :func:`armed` arms a
draw's fault on a lab device for the engine run.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

BOARD_OPS: dict[str, tuple[str, ...]] = {
    "hi3511": ("backup", "flash", "restore"),
    "w90p745": ("dump", "restore"),
    "xr872": ("dump", "write", "clone"),
}
PROFILES = ("quick", "full")

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
    "corrupt_byte",
    "drop_byte",
)
WRITE_FAULTS = ("power_loss_erase", "power_loss_program")
TFTP_FAULTS = ("tftp_loss", "tftp_gone", "tftp_power_cut")
POWER_FAULTS = ("power_loss_erase", "power_loss_program", "power_cut", "tftp_power_cut")
LINE_FAULTS = ("corrupt_byte", "drop_byte")  # one byte damaged or lost on the line


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
        ("corrupt_byte", 1.5),
        ("drop_byte", 1.0),
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
    elif kind in ("power_cut", "watchdog", "log_lines", *LINE_FAULTS):
        # at a byte the host sends (a command, an Xmodem block, a BROM frame) or one
        # the device prints (its answers, TFTP progress marks, flash data)
        direction = rng.choice(["host", "device"])
        total = b.host_bytes if direction == "host" else b.device_bytes
        f.update(direction=direction, at_byte=int(frac * total))
        if kind == "corrupt_byte":
            f["xor"] = 1 << rng.randrange(8)  # one bit flipped, as a line glitch does
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
