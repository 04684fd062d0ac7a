"""Mutation run of the flash model and the parsers (issue 21); run by ``make mutate``.

Checks out HEAD into a temporary git worktree, runs mutmut there (the files and tests
are the ``[tool.mutmut]`` section of pyproject.toml), and prints, per mutated file,
how many mutants the tests killed and which survived, with each survivor's diff.
Survivors listed in tools/mutation-equivalents.toml (an equivalent mutant: no test
can tell it from the original) are shown apart with their reason; the score is
given both raw (killed / all) and with the equivalents left out. Functions in
:data:`OUT_OF_SCOPE` are generated but not run, and reported as such. The working
tree is never touched except for the report (``--report``).

    python tools/mutate.py [--max-children N] [--only PATH ...] [--report docs/mutation.md]

Not part of CI: a full run takes a quarter of an hour on two shared cores.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tools" / "mutation-equivalents.toml"

# mutmut's exit-code meanings (mutmut/stats.py, 3.x)
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "killed",  # caught by the type check
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    None: "not checked",
}
DETECTED = {"killed", "timeout"}

# Mutants not run, by name pattern, with the reason the report gives.
OUT_OF_SCOPE = {
    "recovery.xr872.brom.xǁBromClientǁ*": "the ROM client drives a port: "
    "tests/test_xr872_engine.py covers it end to end, far too slowly to run per mutant",
    "recovery.xr872.brom.xǁLinkǁ*": "a typing Protocol: its methods have no body to mutate",
    "recovery.xr872.brom.x__name__*": "the client's message helpers",
    "recovery.xr872.brom.x__err_text__*": "the client's message helpers",
}
NOTHING = "camrescue-mutate-generate-only"


@dataclass
class Mutant:
    name: str
    path: str
    status: str
    minus: str = ""
    plus: str = ""
    diff: str = ""
    reason: str | None = None  # set when listed as equivalent

    @property
    def function(self) -> str:
        return self.name.rsplit("__mutmut_", 1)[0]


@dataclass
class FileScore:
    path: str
    mutants: list[Mutant] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # out-of-scope reason -> count

    def count(self, *statuses: str) -> int:
        return sum(1 for m in self.mutants if m.status in statuses)

    @property
    def equivalent(self) -> int:
        return sum(1 for m in self.mutants if m.reason is not None)

    @property
    def detected(self) -> int:
        return self.count(*DETECTED)

    @property
    def raw(self) -> float:
        return self.detected / len(self.mutants) if self.mutants else 1.0

    @property
    def score(self) -> float:
        n = len(self.mutants) - self.equivalent
        return self.detected / n if n else 1.0


def run(cmd: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, text=True, check=False, **kw)  # type: ignore[call-overload]


def mutmut_command() -> list[str]:
    exe = Path(sys.executable).parent / "mutmut"
    if exe.exists():
        return [str(exe)]
    if shutil.which("mutmut"):
        return ["mutmut"]
    sys.exit("mutmut is not installed: .venv/bin/pip install 'mutmut>=3.3'")


def restrict(pyproject: Path, only: list[str]) -> None:
    """Mutate only ``only`` in the worktree's copy of the configuration."""
    text = pyproject.read_text()
    listed = ", ".join(json.dumps(p) for p in only)
    new, n = re.subn(r"(?ms)^only_mutate = \[.*?\]", f"only_mutate = [{listed}]", text, count=1)
    if not n:
        sys.exit("pyproject.toml has no only_mutate in [tool.mutmut]")
    pyproject.write_text(new)


def out_of_scope(name: str) -> str | None:
    for pattern, reason in OUT_OF_SCOPE.items():
        if fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def read_results(wt: Path) -> dict[str, FileScore]:
    files: dict[str, FileScore] = {}
    for meta in sorted((wt / "mutants").rglob("*.py.meta")):
        rel = str(meta.relative_to(wt / "mutants"))[: -len(".meta")]
        data = json.loads(meta.read_text())
        score = files.setdefault(rel, FileScore(rel))
        for name, code in sorted(data.get("exit_code_by_key", {}).items(), key=_natural):
            reason = out_of_scope(name)
            if reason:
                score.skipped[reason] = score.skipped.get(reason, 0) + 1
            else:
                score.mutants.append(Mutant(name, rel, STATUS.get(code, "suspicious")))
    return files


def in_scope_patterns(files: dict[str, FileScore]) -> list[str]:
    """One name pattern per mutated function, out-of-scope functions left out."""
    return sorted({m.function + "__mutmut_*" for f in files.values() for m in f.mutants})


def _natural(item: tuple[str, object]) -> tuple[str, int]:
    head, _, num = item[0].rpartition("__mutmut_")
    return head, int(num) if num.isdigit() else 0


# Run inside the worktree: all diffs from one process (``mutmut show`` costs a second each).
_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({n: get_diff_for_mutant(n) for n in json.load(sys.stdin)}))
"""


def fill_diffs(wt: Path, mutants: list[Mutant], mutmut: list[str]) -> None:
    names = [m.name for m in mutants]
    got = run([sys.executable, "-c", _DIFFS], wt, input=json.dumps(names), capture_output=True)
    try:
        diffs: dict[str, str] = json.loads(got.stdout)
    except json.JSONDecodeError:  # another mutmut version: ask it one mutant at a time
        diffs = {n: run([*mutmut, "show", n], wt, capture_output=True).stdout for n in names}
    for m in mutants:
        lines = [
            ln
            for ln in diffs.get(m.name, "").splitlines()
            if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++"))
        ]
        m.diff = "\n".join(lines)
        m.minus = " / ".join(ln[1:].strip() for ln in lines if ln.startswith("-"))
        m.plus = " / ".join(ln[1:].strip() for ln in lines if ln.startswith("+"))


def load_equivalents() -> list[dict[str, str]]:
    if not EQUIVALENTS.exists():
        return []
    with EQUIVALENTS.open("rb") as f:
        return list(tomllib.load(f).get("equivalent", []))


def mark_equivalents(mutants: list[Mutant], listed: list[dict[str, str]]) -> list[dict[str, str]]:
    """Give each survivor its listed reason; return the list entries that matched nothing."""
    used: set[int] = set()
    for m in mutants:
        for i, e in enumerate(listed):
            if i in used:
                continue
            same_place = m.function == e["mutant"].rsplit("__mutmut_", 1)[0]
            if same_place and m.minus == e["minus"] and m.plus == e["plus"]:
                m.reason = e["reason"]
                used.add(i)
                break
    return [e for i, e in enumerate(listed) if i not in used]


def table(files: dict[str, FileScore]) -> list[str]:
    head = "| file | mutants | killed | timeout | survived | no tests | equivalent | score | raw score |"
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in files.values():
        rows.append(
            f"| {f.path} | {len(f.mutants)} | {f.count('killed')} | {f.count('timeout')} "
            f"| {f.count('survived', 'suspicious', 'skipped', 'not checked')} "
            f"| {f.count('no tests')} | {f.equivalent} | {f.score:.1%} | {f.raw:.1%} |"
        )
    return rows


def report(files: dict[str, FileScore], stale: list[dict[str, str]], facts: dict[str, str]) -> str:
    out = [
        "# Mutation testing: the last report",
        "",
        "Written by `make mutate` (tools/mutate.py; how to run it: README.md, developer",
        "section). mutmut changes one operator, constant or argument at a time in the files",
        "below and runs the tests that reach the changed function; a mutant the tests do",
        "not notice *survives*. **score** = (killed + timeout) / (mutants - equivalent);",
        "**raw score** counts the equivalents as survivors. An equivalent mutant behaves",
        "exactly like the original for every input the code can get; each is listed below",
        "with its reason (tools/mutation-equivalents.toml), never hidden.",
        "",
        f"- Date: {facts['date']}",
        f"- Commit: {facts['commit']} (a temporary worktree of HEAD)",
        f"- mutmut {facts['mutmut']}, {facts['children']} worker(s), {facts['seconds']} s",
        f"- Tests run: {facts['tests']}",
        "",
        *table(files),
        "",
        "## Surviving mutants",
        "",
    ]
    survivors = [
        m
        for f in files.values()
        for m in f.mutants
        if m.status not in DETECTED and m.reason is None
    ]
    if not survivors:
        out.append("None: every mutant is killed or listed as equivalent.")
    for m in survivors:
        out.append(f"- `{m.name}` ({m.status}): `{m.minus}` -> `{m.plus}`")
    out += ["", "## Equivalent mutants", ""]
    for f in files.values():
        eq = [m for m in f.mutants if m.reason is not None]
        if not eq:
            continue
        out += [f"### {f.path}", ""]
        for m in eq:
            out.append(f"- `{m.name.rsplit('.', 1)[-1]}`: `{m.minus}` -> `{m.plus}`. {m.reason}")
        out.append("")
    skipped = [(f.path, reason, n) for f in files.values() for reason, n in f.skipped.items()]
    if skipped:
        out += ["## Not run", ""]
        out += [f"- {path}: {n} mutants ({reason})" for path, reason, n in skipped]
        out.append("")
    if stale:
        out += ["## Listed equivalents that matched no surviving mutant", ""]
        out += [f"- `{e['mutant']}`: `{e['minus']}` -> `{e['plus']}`" for e in stale]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-children", type=int, default=1, help="parallel mutmut workers")
    ap.add_argument("--only", nargs="+", metavar="PATH", help="mutate only these files")
    ap.add_argument("--report", type=Path, help="write the Markdown report here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary worktree")
    args = ap.parse_args(argv)
    mutmut = mutmut_command()

    commit = run(["git", "rev-parse", "--short", "HEAD"], ROOT, capture_output=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="camrescue-mutate-"))
    wt = tmp / "wt"
    started = time.monotonic()
    try:
        made = run(
            ["git", "worktree", "add", "--detach", str(wt), "HEAD"], ROOT, capture_output=True
        )
        if made.returncode:
            sys.exit(f"git worktree add failed: {made.stderr.strip()}")
        if args.only:
            restrict(wt / "pyproject.toml", args.only)
        log = tmp / "mutmut.log"
        print(f"mutating HEAD {commit} in {wt} (log: {log}) ...", flush=True)
        with log.open("w") as f:
            # 1: generate the mutants and map tests to functions (then stop: no name matches)
            run([*mutmut, "run", NOTHING], wt, stdout=f, stderr=subprocess.STDOUT)
            patterns = in_scope_patterns(read_results(wt))
            # 2: run the mutants of the in-scope functions
            rc = 1
            if patterns:
                cmd = [*mutmut, "run", "--max-children", str(args.max_children), *patterns]
                rc = run(cmd, wt, stdout=f, stderr=subprocess.STDOUT).returncode
        files = read_results(wt)
        if rc or not files:
            tail = re.sub(r"[^\n]*\r", "", log.read_text(errors="replace"))[-3000:]
            print(tail)
            print(f"mutmut run failed (exit {rc})")
            return 1
        seconds = round(time.monotonic() - started)
        survivors = [m for f in files.values() for m in f.mutants if m.status not in DETECTED]
        fill_diffs(wt, survivors, mutmut)
        modules = {f.path[: -len(".py")].replace("/", ".") + "." for f in files.values()}
        listed = [e for e in load_equivalents() if e["mutant"].startswith(tuple(modules))]
        stale = mark_equivalents(survivors, listed)
        with (wt / "pyproject.toml").open("rb") as fh:
            conf = tomllib.load(fh)["tool"]["mutmut"]
        try:
            version = importlib.metadata.version("mutmut")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        facts = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit,
            "mutmut": version,
            "children": str(args.max_children),
            "seconds": str(seconds),
            "tests": ", ".join(conf.get("pytest_add_cli_args_test_selection", [])),
        }
        text = report(files, stale, facts)
        print(text)
        if args.report:
            args.report.write_text(text)
            print(f"report written to {args.report}")
        return 0
    finally:
        if args.keep:
            print(f"worktree kept: {wt}")
        else:
            run(["git", "worktree", "remove", "--force", str(wt)], ROOT, capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
            run(["git", "worktree", "prune"], ROOT, capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
