"""Issue 20: ``camrescue scenarios builders`` lists every firmware builder a scenario
may name, with its arguments, types, defaults and one-line description, read from the
builders' own signatures and docstrings; docs/scenarios.md names every one of them
(and runs the command in a checked sh block).
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from harness import boards
from harness.boards import BOARDS, import_attr
from harness.scenarios.builders import builders
from harness.scenarios.cli import format_builders
from harness.scenarios.loader import parse_scenario
from harness.scenarios.yamlnodes import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
CAMRESCUE = str(Path(sys.executable).parent / "camrescue")
BUILT_IN = ("hi3511", "w90p745", "xr872")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAMRESCUE, "scenarios", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_command_lists_every_builder_with_its_arguments_and_defaults() -> None:
    r = _cli("builders")
    assert r.returncode == 0, r.stderr
    for board in BUILT_IN:
        module = import_attr(BOARDS[board].firmware or "")
        head = f"{board} ({module.__name__}):"
        assert head in r.stdout
        section = r.stdout[r.stdout.index(head) :].split("\n\n")[0].splitlines()
        for name in module.BUILDERS:
            fn = inspect.unwrap(getattr(module, name))
            doc = " ".join((inspect.getdoc(fn) or "").split("\n\n")[0].split())
            line = next(ln for ln in section if re.match(rf"  {name}\b", ln))
            assert doc.replace("`", "")[:40] in line, line  # its one-line description
            at = section.index(line)
            shown = section[at + 1 : at + 1 + len(inspect.signature(fn).parameters)]
            for p, text in zip(inspect.signature(fn).parameters.values(), shown, strict=False):
                assert text.strip().startswith(f"{p.name}: "), (name, text)
                if p.default is inspect.Parameter.empty:
                    assert text.endswith("(required)"), text
                else:
                    assert text.endswith(f"= {p.default!r}"), text
    assert "vendor_flash (also: vendor)" in r.stdout
    assert "firmware: str (one of A, B) = 'A'" in r.stdout
    assert "original: image (required)" in r.stdout


def test_one_board_and_an_unknown_board() -> None:
    r = _cli("builders", "xr872")
    assert r.returncode == 0 and "xr872_flash" in r.stdout and "hi3511" not in r.stdout
    r = _cli("builders", "hi3512")
    assert r.returncode == 2
    assert "unknown board 'hi3512'" in r.stderr and "Traceback" not in r.stderr


def test_the_list_is_read_from_the_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new builder (or a new argument) shows up without anyone writing it down."""
    mod = types.ModuleType("toyfw")

    def toy_flash(colour: str, *, size: int = 0x1000, shiny: bool = False) -> bytes:
        """A toy flash of one colour.

        More words that are not the summary."""
        return b"\xff" * size

    toy_flash.__module__ = "toyfw"
    mod.toy_flash = toy_flash  # type: ignore[attr-defined]
    mod.BUILDER_CHOICES = {"colour": ("red", "blue")}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "toyfw", mod)
    spec = boards.BoardSpec(name="toyb", device="x:Y", flash_size=0x1000, firmware="toyfw")
    monkeypatch.setitem(BOARDS, "toyb", spec)
    text = format_builders(["toyb"])
    assert "  toy_flash: A toy flash of one colour." in text
    assert "      colour: str (one of red, blue) (required)" in text
    assert "      size: int = 4096" in text
    assert "      shiny: bool = False" in text
    assert "More words" not in text
    # and the loader checks a scenario against exactly that
    with pytest.raises(ScenarioError, match="unknown colour 'green'"):
        parse_scenario(
            "name: t\nboard: toyb\nflash: {builder: toy_flash, colour: green}\n"
            "steps: [{wait: 0}]\n",
            "t.yaml",
        )


def test_the_docs_name_every_builder_and_argument() -> None:
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    assert re.search(r"```sh\n(?:[^`]*\n)?camrescue scenarios builders\n", doc)
    table = doc[doc.index("## Builders") :]
    for board in BUILT_IN:
        for b in builders(board):
            row = next(
                (ln for ln in table.splitlines() if ln.startswith(f"| {board} | `{b.name}`")),
                None,
            )
            assert row is not None, f"docs/scenarios.md does not list {board} {b.name}"
            for a in b.args:
                assert f"`{a.name}`" in row, f"{board} {b.name}: {a.name} is not in the docs"
