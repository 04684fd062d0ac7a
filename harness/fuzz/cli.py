"""``camrescue scenarios fuzz``: the command line of the fault campaign."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.fuzz.campaign import Campaign, format_table, run_draw
from harness.fuzz.faults import BOARD_OPS, FAULT_KINDS, PROFILES
from harness.fuzz.oracles import BAD_OUTCOMES, MUST_BE_ZERO
from harness.fuzz.saved import read_draw

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
    """Add ``fuzz`` to the parser ``harness.scenarios.cli.register_cli`` returns."""
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
