"""Failing draws saved as scenario files (the harness's scenario schema) whose
first line records the draw, so ``camrescue scenarios fuzz --replay FILE`` runs
it again exactly (:func:`save_failure`, :func:`read_draw`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from harness.fuzz.arming import fault_of
from harness.fuzz.faults import Draw
from harness.fuzz.oracles import RunResult, sha
from harness.fuzz.plans import plan_for
from harness.scenarios.steps import fault_to_yaml

# -- saved failures as scenario files ----------------------------------------------------------

HEADER_PREFIX = "# camrescue-fuzz: "


def _scenario_fault_steps(d: Draw) -> list[dict[str, Any]]:
    """The ``fault:`` step that arms exactly the draw's fault (none for kind ``none``)."""
    fault = fault_of(d)
    return [] if fault is None else [{"fault": fault_to_yaml(fault)}]


def scenario_text(d: Draw, res: RunResult, files_dir: str) -> tuple[str, dict[str, bytes]]:
    """A scenario file reproducing ``d`` (as far as the schema allows) whose
    expectations are the half of the guarantee the run broke, and the files it needs
    (relative names under ``files_dir``)."""
    plan = plan_for(d)
    extra: dict[str, bytes] = {}
    fault_steps = _scenario_fault_steps(d)
    device: dict[str, Any] = {"seed": d.seed, "start": plan.start, "tftp_server": False}
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
    expect: dict[str, Any] = {}
    if res.outcome == "silent_corruption":
        step["expect"] = {"exit": 0, "json": {"ok": True}}
        expect["flash"] = [{"range": "all", "sha256": sha(plan.expected)}]
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
        expect["files"] = {n: {"sha256": sha(plan.files[n])} for n in plan.inputs}
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
