"""The randomized fault campaign (this package): ``camrescue scenarios fuzz``.

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
between a command and its prompt, one byte corrupted (one bit flipped) or lost
on the line at a chosen byte, link noise (bit errors, drops, lost
bursts), a line that goes silent, and on the Hi3511 TFTP loss/delay/
duplicates, a server that disappears, and a power cut after N datagrams
(:mod:`harness.lab.netfaults`). Power may come back after a drawn delay (the
camera reboots while the engine waits) or stay off.

Every draw is reproducible: ``run seed = campaign seed + run index`` and a
run with ``--seed S --runs 1`` draws the same as run S of any campaign with the
same board, ``--op`` and profile. Runs that end in a bad outcome are saved as
scenario files (the :mod:`harness.scenarios` schema) under ``--save DIR``; their
first line holds the draw, and ``camrescue scenarios fuzz --replay FILE`` runs it
again exactly. docs/faults.md is the user's guide.

Modules: :mod:`~harness.fuzz.faults` (fault kinds, budgets, draws),
:mod:`~harness.fuzz.plans` (what each operation needs and must produce),
:mod:`~harness.fuzz.oracles` (judging a run from the flash bytes and files alone,
independent of emulators and engine), :mod:`~harness.fuzz.campaign` (running
draws, the rerun, the table), :mod:`~harness.fuzz.saved` (failures as scenario
files) and :mod:`~harness.fuzz.cli` (``camrescue scenarios fuzz``).
"""

from harness.fuzz.campaign import (
    COLUMNS,
    Campaign,
    armed,
    calibrate,
    format_table,
    run_draw,
    tally,
)
from harness.fuzz.cli import add_parser, fuzz_command, hook_scenarios, main
from harness.fuzz.faults import (
    BOARD_OPS,
    BUDGETS,
    FAULT_KINDS,
    LOG_LINES,
    POWER_FAULTS,
    PROFILES,
    TFTP_FAULTS,
    WRITE_FAULTS,
    Budget,
    Draw,
    applicable_faults,
    budget,
    draw,
)
from harness.fuzz.oracles import (
    BAD_OUTCOMES,
    MUST_BE_ZERO,
    OUTCOMES,
    SEVERITY,
    Plan,
    RunResult,
    judge,
    w90_images,
)
from harness.fuzz.plans import hi3511_user_backup, plan_for, w90_flash, w90_user_dump
from harness.fuzz.saved import HEADER_PREFIX, read_draw, save_failure, scenario_text

__all__ = [
    "BAD_OUTCOMES",
    "BOARD_OPS",
    "BUDGETS",
    "COLUMNS",
    "FAULT_KINDS",
    "HEADER_PREFIX",
    "LOG_LINES",
    "MUST_BE_ZERO",
    "OUTCOMES",
    "POWER_FAULTS",
    "PROFILES",
    "SEVERITY",
    "TFTP_FAULTS",
    "WRITE_FAULTS",
    "Budget",
    "Campaign",
    "Draw",
    "Plan",
    "RunResult",
    "add_parser",
    "applicable_faults",
    "armed",
    "budget",
    "calibrate",
    "draw",
    "format_table",
    "fuzz_command",
    "hi3511_user_backup",
    "hook_scenarios",
    "judge",
    "main",
    "plan_for",
    "read_draw",
    "run_draw",
    "save_failure",
    "scenario_text",
    "tally",
    "w90_flash",
    "w90_images",
    "w90_user_dump",
]
