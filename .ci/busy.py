"""Run a command while CPU hogs keep the machine busy: ``busy.py [--hogs N] -- CMD ...``.

The suite must not depend on the machine's speed (issue 19): ``make test-busy`` runs it
with two processes spinning beside it, as on a loaded CI runner or a laptop building
something else. The hogs are always stopped: when the command ends, when this script is
interrupted or terminated, and, should this script be killed outright, by themselves
(each checks that its parent is still there). Exits with the command's exit code.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

HOG = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(200_000):
        pass
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hogs", type=int, default=2, help="CPU-bound processes to run (default 2)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the command after --")
    hogs = [
        subprocess.Popen([sys.executable, "-c", HOG, str(os.getpid())]) for _ in range(args.hogs)
    ]

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        print(f"busy: {len(hogs)} CPU hogs running beside: {' '.join(cmd)}", flush=True)
        return subprocess.call(cmd)
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait()


if __name__ == "__main__":
    sys.exit(main())
