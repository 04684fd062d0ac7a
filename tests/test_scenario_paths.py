"""Issue 20: a scenario file runs wherever it is.

``camrescue scenarios run path/to/my.yaml`` outside ``scenarios/`` runs it (it was
listed as ``ready`` and then not found), from any working directory, and a
``{file: PATH}`` inside it is relative to the scenario file's directory. The real
CLI runs as a subprocess against the emulated Hi3511.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

CAMRESCUE = str(Path(sys.executable).parent / "camrescue")

SCENARIO = """\
name: my-own-place
board: hi3511
files:
  copy.bin: {file: data/blob.bin}
steps:
  - console: {line: "version", expect: "U-Boot 1.1.4"}
expect:
  files:
    copy.bin: {equals: {file: data/blob.bin}, size: 64}
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAMRESCUE, "scenarios", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _write(tmp_path: Path) -> Path:
    d = tmp_path / "projects" / "mine"
    (d / "data").mkdir(parents=True)
    (d / "data" / "blob.bin").write_bytes(bytes(range(64)))
    f = d / "my.yaml"
    f.write_text(SCENARIO)
    return f


def test_a_file_outside_scenarios_runs_from_another_directory(tmp_path: Path) -> None:
    _write(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rel = "../projects/mine/my.yaml"
    listed = _cli("list", rel, cwd=elsewhere)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "ready" in listed.stdout
    ran = _cli("run", rel, "--report", "rep", cwd=elsewhere)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    assert "not found" not in out
    results = json.loads((elsewhere / "rep" / "results.json").read_text())
    assert [(r["name"], r["outcome"]) for r in results] == [("my-own-place", "passed")]


def test_a_directory_outside_scenarios_runs_its_files(tmp_path: Path) -> None:
    f = _write(tmp_path)
    ran = _cli("run", str(f.parent), "--report", str(tmp_path / "rep"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert re.search(r"my-own-place +\| hi3511 +\| passed", ran.stdout), ran.stdout


def test_the_relative_file_is_the_scenarios_not_the_working_directorys(tmp_path: Path) -> None:
    f = _write(tmp_path)
    # a data/blob.bin in the working directory too, with other bytes: it must not be used
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "blob.bin").write_bytes(b"\x00" * 64)
    ran = _cli("run", str(f), "--report", str(tmp_path / "rep"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_bundled_scenario_runs_by_its_name_and_a_wrong_name_is_named(tmp_path: Path) -> None:
    listed = _cli("list", "hi3511-seed-by-hand", "nosuch-scenario", cwd=tmp_path)
    assert listed.returncode == 2, listed.stdout + listed.stderr
    assert re.search(
        r"hi3511-seed-by-hand\s+\|\s+hi3511\s+\|.*scenarios/hi3511-seed-by-hand.yaml\s+\|\s+ready",
        listed.stdout,
    )
    assert (
        "nosuch-scenario: no such file or directory, and no bundled scenario of that name"
        in listed.stderr
    )
    ran = _cli("run", "hi3511-seed-by-hand", "--report", "rep", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert sorted(r["outcome"] for r in results) == ["passed", "passed"]  # both U-Boot variants
