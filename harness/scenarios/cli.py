"""``camrescue scenarios run``, ``camrescue scenarios list`` and ``camrescue scenarios builders``.

``run`` is pytest over scenario files (the plugin in harness/scenarios/plugin.py does the
work), in this process or as a subprocess, with pytest-xdist for ``-n``; it
then prints one line per scenario (scenario | board | result | time) and exits
with pytest's status: 0 when nothing failed, 1 when a scenario failed, 2 when a
scenario file is invalid (nothing ran), 5 when no scenario was selected. The
HTML report and JUnit XML go to ``--report DIR`` (default ``reports/scenarios``).

Scenario files may be anywhere: ``run`` loads every file it is given (or
finds in the directories it is given) first, refuses to start when one is
invalid (the same ``file:line:column`` messages as ``list``, exit 2), and hands
pytest the files themselves, which the plugin collects wherever they are.

``list`` loads every scenario file, reports invalid ones with file and line,
and shows what each needs that is not there yet. ``builders`` lists each
board's firmware builders with their arguments, read from the builders' own
signatures and docstrings (:mod:`harness.scenarios.builders`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from harness.boards import BOARDS, Unavailable
from harness.scenarios.builders import builders
from harness.scenarios.loader import discover, load_scenario
from harness.scenarios.model import ENGINE_MODES, KEEP_CHOICES
from harness.scenarios.report import ScenarioResult
from harness.scenarios.yamlnodes import ScenarioError

DEFAULT_REPORT = Path("reports") / "scenarios"


def bundled_scenarios() -> Path:
    """The bundled scenarios: the checkout's scenarios/ directory; in an installed
    camrescue (pip, pipx, uv) the copy in ``<prefix>/share/camrescue/scenarios``
    (pyproject.toml ``data-files``); else ./scenarios."""
    for here in (
        Path(__file__).resolve().parents[2] / "scenarios",
        Path(sys.prefix) / "share" / "camrescue" / "scenarios",
    ):
        if here.is_dir():
            return here
    return Path.cwd() / "scenarios"


def by_name(paths: list[str]) -> list[str]:
    """Each path as given, except a bare name of a bundled scenario (``hi3511-backup-verify``,
    not a file here), which becomes that bundled file."""
    out = []
    for p in paths:
        q = Path(p)
        bundled = bundled_scenarios() / f"{p}.yaml"
        out.append(str(bundled) if not q.exists() and q.name == p and bundled.is_file() else p)
    return out


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "scenarios",
        help="run or list the declarative scenarios (scenarios/*.yaml)",
        description="Run or list the declarative scenarios against the emulated cameras.",
    )
    sub = p.add_subparsers(dest="scenarios_command", metavar="{run,list,builders,fuzz}")
    sub.required = True
    r = sub.add_parser("run", help="run scenarios (pytest with the camrescue plugin)")
    r.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="scenario files, directories or bundled scenario names (default: the bundled set)",
    )
    r.add_argument(
        "-n",
        dest="workers",
        default=None,
        metavar="N",
        help="parallel worker processes (pytest-xdist); 'auto' for one per core",
    )
    r.add_argument(
        "-k",
        dest="keyword",
        default=None,
        metavar="EXPR",
        help="only scenarios whose name matches EXPR (pytest -k)",
    )
    r.add_argument(
        "-m",
        dest="markexpr",
        default=None,
        metavar="EXPR",
        help="only scenarios with these markers, e.g. 'hi3511 and not slow'",
    )
    r.add_argument(
        "--report",
        default=str(DEFAULT_REPORT),
        metavar="DIR",
        help="where report.html, results.json and junit.xml go (default: %(default)s)",
    )
    r.add_argument(
        "--artifacts",
        default=None,
        metavar="DIR",
        help="run each scenario's lab in DIR/<scenario> (default: DIR of --report/artifacts)",
    )
    r.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run only shard I of N (0-based): split the set over N machines",
    )
    r.add_argument(
        "--engine",
        choices=ENGINE_MODES,
        default="inprocess",
        help="run the engine in the test process or as a separate command",
    )
    r.add_argument(
        "--subprocess",
        action="store_true",
        help="run pytest as a subprocess instead of in this process",
    )
    r.add_argument(
        "--keep",
        choices=KEEP_CHOICES,
        default="failed",
        help="which scenario labs (flash images, transcripts) to keep",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="less pytest output")
    r.set_defaults(func=run_command)
    ls = sub.add_parser("list", help="list scenarios, their boards and what they wait for")
    ls.add_argument("paths", nargs="*", metavar="PATH")
    ls.set_defaults(func=list_command)
    b = sub.add_parser(
        "builders",
        help="list the firmware builders a scenario may name, with their arguments",
        description="The firmware builders a scenario may name ({builder: NAME, ...}), with "
        "their arguments, types, defaults and the values some take, read from the builders.",
        epilog="examples:\n"
        "  camrescue scenarios builders\n      every board's builders\n"
        "  camrescue scenarios builders hi3511\n      the Hi3511's: vendor_flash, root_image, ...\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("boards", nargs="*", metavar="BOARD", help="only these boards (default: all)")
    b.set_defaults(func=builders_command)
    return p


def pytest_args(args: argparse.Namespace, files: list[Path] | None = None) -> list[str]:
    """pytest's command line; ``files`` (the scenario files found) replace the paths."""
    paths = [str(f) for f in files] if files else args.paths or [str(bundled_scenarios())]
    report = Path(args.report)
    out = [*paths, "--scenario-report", str(report), "--junitxml", str(report / "junit.xml")]
    out += [
        "--scenario-artifacts",
        str(Path(args.artifacts) if args.artifacts else report / "artifacts"),
    ]
    out += ["--scenario-engine", args.engine, "--scenario-keep", args.keep]
    out += ["--no-header", "-q" if args.quiet else "-v"]
    # in-process, harness/ and emulators/ are imported before pytest starts
    out += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if args.workers not in (None, "0", "1"):
        # worksteal: an idle worker takes scenarios queued on a busy one
        out += ["-n", str(args.workers), "--dist", "worksteal"]
    if args.keyword:
        out += ["-k", args.keyword]
    if args.markexpr:
        out += ["-m", args.markexpr]
    if args.shard:
        out += ["--scenario-shard", args.shard]
    return out


def load_all(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """The scenario files under ``paths`` and, for each invalid one, its problems
    (or a word for a path that holds no scenario file)."""
    files = discover(paths)
    errors: list[str] = []
    for p in map(Path, paths):
        if not p.exists() and p.suffix not in (".yaml", ".yml"):  # a file: load_scenario says
            errors.append(f"{p}: no such file or directory, and no bundled scenario of that name")
        elif p.is_file() and p.suffix not in (".yaml", ".yml"):
            errors.append(f"{p}: not a scenario file (scenario files end in .yaml or .yml)")
    for f in files:
        try:
            load_scenario(f)
        except ScenarioError as e:
            errors.append(str(e))
    return files, errors


def run_command(args: argparse.Namespace) -> int:
    args.paths = by_name(args.paths or [])
    files, errors = load_all(args.paths or [bundled_scenarios()])
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print("no scenario ran: a scenario file is invalid (see above)", file=sys.stderr)
        return 2
    argv = pytest_args(args, files)
    report = Path(args.report)
    results_file = report / "results.json"
    if results_file.exists():
        results_file.unlink()
    if args.subprocess:
        rc = subprocess.call([sys.executable, "-m", "pytest", *argv])
    else:
        import pytest

        rc = int(pytest.main(argv))
    results: list[ScenarioResult] = []
    if results_file.exists():
        results = [ScenarioResult.from_dict(d) for d in json.loads(results_file.read_text())]
    print()
    print(format_table(results))
    if results:
        print(f"\nreport: {report / 'report.html'}   junit: {report / 'junit.xml'}")
    if rc == 2 and not results:
        print("no scenario ran: a scenario file is invalid (see above)", file=sys.stderr)
    return rc


def format_table(results: list[ScenarioResult]) -> str:
    rows = [("scenario", "board", "result", "time")]
    for r in sorted(results, key=lambda r: r.name):
        result = r.outcome
        if r.outcome == "skipped" and r.reason:
            result += f" ({_short_reason(r.reason)})"
        elif r.outcome in ("failed", "error") and r.failures:
            result += f" ({r.failures[0].what[:60]})"
        rows.append((r.name, r.board, result, f"{r.duration:.2f} s"))
    if len(rows) == 1:
        return "no scenario results"
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for j, row in enumerate(rows):
        lines.append(" | ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
        if j == 0:
            lines.append("-+-".join("-" * w for w in widths))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    lines.append("")
    lines.append(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return "\n".join(lines)


def _short_reason(reason: str) -> str:
    first = reason.split(";")[0]
    return first if len(first) <= 70 else first[:67] + "..."


def list_command(args: argparse.Namespace) -> int:
    paths: list[str | Path] = [*by_name(args.paths or [])] or [bundled_scenarios()]
    files = discover(paths)
    rows = [("scenario", "board", "file", "status")]
    bad = 0
    for p in map(Path, paths):
        if not p.exists() and p.suffix not in (".yaml", ".yml"):
            bad += 1
            print(
                f"{p}: no such file or directory, and no bundled scenario of that name",
                file=sys.stderr,
            )
            rows.append(("?", "?", str(p), "INVALID: no such file or directory"))
    for f in files:
        try:
            sc = load_scenario(f)
        except ScenarioError as e:
            bad += 1
            print(e, file=sys.stderr)
            first = e.problems[0]
            rows.append(("?", "?", str(f), f"INVALID: line {first.line}: {_short(first.message)}"))
            continue
        missing = sc.missing()
        status = "ready" if not missing else "waits: " + _short_reason("; ".join(missing))
        boards = ",".join(sorted({d.board for d in sc.devices.values()}))
        rows.append((sc.name, boards, str(f), status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for j, row in enumerate(rows):
        print(" | ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
        if j == 0:
            print("-+-".join("-" * w for w in widths))
    print(f"\n{len(files)} scenario files, {bad} invalid")
    return 2 if bad else 0


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def builders_command(args: argparse.Namespace) -> int:
    """Every board's builders: name (and short names), arguments, description."""
    boards = args.boards or sorted(BOARDS)
    unknown = [b for b in boards if b not in BOARDS]
    if unknown:
        print(
            f"error: unknown board {unknown[0]!r}; known: {', '.join(sorted(BOARDS))}",
            file=sys.stderr,
        )
        return 2
    print(format_builders(boards))
    return 0


def format_builders(boards: list[str]) -> str:
    lines: list[str] = []
    for board in boards:
        try:
            infos = builders(board)
        except Unavailable as e:
            lines += [f"{board}: no builders here ({e})", ""]
            continue
        lines.append(f"{board} ({BOARDS[board].firmware}):")
        for b in infos:
            also = f" (also: {', '.join(b.aliases)})" if b.aliases else ""
            lines.append(f"  {b.name}{also}: {b.summary}")
            for a in b.args:
                lines.append(f"      {a.describe()}")
            if not b.args:
                lines.append("      (no arguments)")
        lines.append("")
    lines.append(
        "An argument written 'image' takes another builder: {builder: NAME, ...}. "
        "Use them as {builder: NAME, ARG: VALUE, ...} (docs/scenarios.md)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.scenarios.cli scenarios run|list ...`` (the same as ``camrescue``)."""
    parser = argparse.ArgumentParser(prog="camrescue")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    register_cli(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
