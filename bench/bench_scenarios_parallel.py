"""How much faster the bundled scenarios run with pytest-xdist ``-n 2`` than in one
process. Prints both wall times and their ratio; asserts nothing.

    python bench/bench_scenarios_parallel.py [--workers N] [PATH ...]   (make bench runs it with defaults)

The firmware images the scenarios name are built once beforehand (they are
cached on disk), so both runs time the scenarios themselves: devices, engine,
TFTP, boot scans. Each run is a fresh ``python -m pytest`` process, as CI runs it.
The parallel run uses ``--dist worksteal`` and, from pytest's cache, starts the
longest scenarios first (the plugin records each scenario's time).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def run(paths: list[str], workers: int) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "pytest", *paths, "-q", "-o", "addopts="]
    cmd += ["-n", str(workers), "--dist", "worksteal"] if workers > 1 else ["-p", "no:xdist"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    took = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped)", ln)]
    return took, (lines[-1].strip("= ") if lines else f"exit {p.returncode}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("paths", nargs="*", default=[str(REPO / "scenarios")])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv if argv is not None else [])

    from harness.scenarios import ScenarioError, discover, load_scenario, warm_images

    t0 = time.perf_counter()
    built = 0
    for f in discover(args.paths):
        try:
            sc = load_scenario(f)
        except ScenarioError as e:
            print(e)
            continue
        if not sc.missing():
            built += warm_images(sc)
    print(f"images built or found in the cache: {built} ({time.perf_counter() - t0:.1f} s)")

    one, s1 = run(args.paths, 1)
    print(f"one process : {one:6.1f} s   ({s1})")
    many, s2 = run(args.paths, args.workers)
    print(f"-n {args.workers:<9}: {many:6.1f} s   ({s2})")
    print(f"speed-up one/-n{args.workers}: {one / many:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
