"""The longer fault campaign (harness/fuzz/): every board and operation under drawn faults,
the full operations, with the rerun after each clean failure; prints the table per board.

``python -m bench fuzz`` (part of ``make bench``). Environment knobs:

* ``CAMRESCUE_FUZZ_RUNS`` runs per board (default 6: 2 per Hi3511/XR872 operation,
  3 per W90P745 operation; about 7 minutes in all; 12 doubles the coverage);
* ``CAMRESCUE_FUZZ_SEED`` the first seed (default 1000);
* ``CAMRESCUE_FUZZ_PROFILE`` ``full`` (default: whole operations, boot after writing,
  power that may stay off) or ``quick``;
* ``CAMRESCUE_FUZZ_SAVE`` where failing draws go (default ``reports/fuzz-failures``).

``python -m bench.bench_fuzz --calibrate`` measures the fault budgets instead
(bytes on the link, bytes programmed, sectors erased, TFTP datagrams of one
fault-free run per operation) and prints them next to harness.fuzz.faults.BUDGETS.

Numbers, not pass/fail: the run times per outcome say what a fault costs a
user (the engine's timeouts), the table says what the engine guarantees.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from harness import fuzz


def calibrate(profile: str) -> None:
    print(f"fault budgets, profile {profile} (measured | in harness.fuzz.BUDGETS)")
    for board, ops in fuzz.BOARD_OPS.items():
        for op in ops:
            got = fuzz.calibrate(board, op, profile)
            have = fuzz.budget(board, op, profile)
            print(
                f"  {board:8} {op:8} exit {got['exit']} in {got['seconds']:5.1f} s: "
                f"host {got['host_bytes']}|{have.host_bytes} "
                f"device {got['device_bytes']}|{have.device_bytes} "
                f"program {got['program_bytes']}|{have.program_bytes} "
                f"erase {got['erase_sectors']}|{have.erase_sectors} "
                f"packets {got['packets']}|{have.packets}",
                flush=True,
            )


def main() -> None:
    if "--calibrate" in sys.argv[1:]:
        calibrate(os.environ.get("CAMRESCUE_FUZZ_PROFILE", "quick"))
        return
    runs = int(os.environ.get("CAMRESCUE_FUZZ_RUNS", "6"))
    seed = int(os.environ.get("CAMRESCUE_FUZZ_SEED", "1000"))
    profile = os.environ.get("CAMRESCUE_FUZZ_PROFILE", "full")
    save = Path(os.environ.get("CAMRESCUE_FUZZ_SAVE", "reports/fuzz-failures"))
    print(f"fault campaign: {runs} runs per board from seed {seed}, profile {profile}")
    t0 = time.monotonic()
    camp = fuzz.Campaign(
        boards=list(fuzz.BOARD_OPS), runs=runs, seed=seed, profile=profile, save=save
    )
    camp.run(lambda line: print(line, flush=True))
    results = camp.results
    print()
    print(fuzz.format_table(results))
    print("\nseconds per run by outcome (median / max):")
    for outcome in fuzz.OUTCOMES:
        times = [r.duration for r in results if r.outcome == outcome]
        if times:
            print(
                f"  {outcome:18} {len(times):4} runs  {statistics.median(times):6.1f}"
                f" / {max(times):6.1f}"
            )
    print("\nruns by fault kind (fired / drawn):")
    for kind in fuzz.FAULT_KINDS:
        drawn = [r for r in results if r.draw.fault["kind"] == kind]
        if drawn:
            fired = sum(1 for r in drawn if r.fired)
            bad = sum(1 for r in drawn if r.outcome in fuzz.BAD_OUTCOMES)
            print(f"  {kind:20} {fired:3} / {len(drawn):3}   bad outcomes {bad}")
    saved = [r.saved for r in results if r.saved]
    if saved:
        print(f"\n{len(saved)} failing draws saved under {save}:")
        for s in saved:
            print(f"  {s}")
    print(f"\ncampaign took {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
