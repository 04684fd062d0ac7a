"""Issue 20: a scenario that would fail at run time for a reason knowable from the
file is refused when the file is loaded, by ``camrescue scenarios list`` (the file
with its error, never ``ready``) and ``camrescue scenarios run`` (the same message,
exit 2, no traceback, nothing run).

Each case is one mistake a new author makes: a misspelt builder, an argument the
builder does not have, an argument of the wrong type, a firmware that does not
exist, a missing file, a misspelt engine operation or option. The real CLI runs as
a subprocess; the engine command lines are checked against the engine's own
argparse parser (recovery.cli.build_parser), never run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.scenarios.loader import load_scenario, parse_scenario
from harness.scenarios.yamlnodes import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
CAMRESCUE = str(Path(sys.executable).parent / "camrescue")

GOOD = """\
name: my-first
board: hi3511
flash: {builder: vendor, firmware: A}
files:
  instar.jffs2: {builder: root_image, firmware: B}
steps:
  - engine: [hi3511, backup, --out, "{work}/backup.bin"]
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAMRESCUE, "scenarios", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


# (what is wrong, the text to replace in GOOD, its replacement, line, what the message says)
MISTAKES = [
    (
        "misspelt builder",
        "builder: vendor,",
        "builder: vendr,",
        3,
        ["no builder 'vendr'", "did you mean 'vendor'?", "root_image"],
    ),
    (
        "unknown argument",
        "firmware: A}",
        "firmwre: A}",
        3,
        ["no argument 'firmwre'", "did you mean 'firmware'?", "root_size: int"],
    ),
    ("wrong type", "firmware: A}", "firmware: A, seed: lots}", 3, ["seed is int, got 'lots'"]),
    ("unknown firmware", "firmware: B}", "firmware: Z}", 5, ["unknown firmware 'Z'", "A, B"]),
    (
        "misspelt engine operation",
        "hi3511, backup,",
        "hi3511, bakup,",
        7,
        ["invalid choice: 'bakup'", "'backup'", "camrescue hi3511 --help"],
    ),
    (
        "misspelt engine option",
        "--out,",
        "--output,",
        7,
        ["unrecognized arguments: --output", "did you mean --out?", "camrescue hi3511 backup"],
    ),
    (
        "missing option value",
        '--out, "{work}/backup.bin"]',
        "--out]",
        7,
        ["argument --out: expected one argument"],
    ),
    (
        "missing file",
        "{builder: root_image, firmware: B}",
        "{file: images/instar.jffs2}",
        5,
        ["no such file", "images/instar.jffs2", "relative to the scenario file's directory"],
    ),
]


@pytest.mark.parametrize(
    "old,new,line,says", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_list_and_run_refuse_the_mistake_with_its_line(
    tmp_path: Path, old: str, new: str, line: int, says: list[str]
) -> None:
    assert old in GOOD
    f = tmp_path / "mine" / "my-first.yaml"
    f.parent.mkdir()
    f.write_text(GOOD.replace(old, new, 1))
    listed = _cli("list", "mine/my-first.yaml", cwd=tmp_path)
    out = listed.stdout + listed.stderr
    assert listed.returncode == 2, out
    row = next(ln for ln in listed.stdout.splitlines() if "my-first.yaml" in ln)
    assert "ready" not in row and "INVALID" in row, out
    assert f"line {line}:" in row, row
    message = next(ln for ln in listed.stderr.splitlines() if ln.startswith("mine/my-first.yaml:"))
    assert message.startswith(f"mine/my-first.yaml:{line}:"), message
    for text in says:
        assert text in message, message

    ran = _cli("run", "mine/my-first.yaml", "--report", str(tmp_path / "rep"), cwd=tmp_path)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert message in ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr
    assert "no scenario ran" in ran.stderr
    assert not (tmp_path / "rep" / "results.json").exists()


def test_list_shows_the_bundled_set_ready_and_the_bad_file_invalid(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(GOOD.replace("firmware: B}", "firmware: Z}"))
    listed = _cli("list", str(ROOT / "scenarios"), str(tmp_path / "mine.yaml"), cwd=tmp_path)
    rows = [ln for ln in listed.stdout.splitlines() if ".yaml" in ln]
    assert len(rows) == len(list((ROOT / "scenarios").glob("*.yaml"))) + 1
    for row in rows:
        assert ("INVALID" in row) == ("mine.yaml" in row), row
    assert listed.returncode == 2
    assert "1 invalid" in listed.stdout


def test_a_variant_value_is_checked_for_each_value() -> None:
    text = GOOD.replace("firmware: A}", 'firmware: A, uboot: "{uboot}"}').replace(
        "flash:", "variants: {uboot: [hisilicon, upstream]}\nflash:"
    )
    parse_scenario(text, "x.yaml")  # both values are boot loaders vendor_flash knows
    wrong = text.replace("root_image, firmware: B", 'root_image, firmware: "{uboot}"')
    with pytest.raises(ScenarioError) as e:
        parse_scenario(wrong, "x.yaml")
    assert "unknown firmware 'hisilicon' for root_image" in str(e.value)
    assert "unknown firmware 'upstream' for root_image" in str(e.value)


def test_a_nested_builder_is_checked_with_its_path() -> None:
    text = """\
name: brick
board: xr872
devices:
  unit: {flash: {builder: bricked_flash, original: {builder: xr872_flash, sysinfo: blnk}}}
steps:
  - engine: [xr872, info]
"""
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, "x.yaml")
    assert "x.yaml:4:" in str(e.value)
    assert "devices.unit.flash.original.sysinfo: unknown sysinfo 'blnk'" in str(e.value)
    assert "did you mean 'blank'?" in str(e.value)
    with pytest.raises(ScenarioError, match="bricked_flash needs original"):
        parse_scenario(text.replace("original: {builder: xr872_flash, sysinfo: blnk}", "seed: 1"))
    with pytest.raises(ScenarioError, match="original is image, got 5"):
        parse_scenario(text.replace("{builder: xr872_flash, sysinfo: blnk}", "5"))


def test_a_step_that_expects_a_usage_error_is_not_refused() -> None:
    text = GOOD.replace(
        '  - engine: [hi3511, backup, --out, "{work}/backup.bin"]\n',
        "  - engine: [hi3511, backup, --bogus]\n    expect: {exit: 2}\n",
    )
    parse_scenario(text, "x.yaml")
    with pytest.raises(ScenarioError, match="unrecognized arguments: --bogus"):
        parse_scenario(text.replace("{exit: 2}", "{exit: nonzero}"), "x.yaml")


def test_a_malformed_json_path_is_refused() -> None:
    text = GOOD + '    expect: {json: {"ranges[0]..crc32": 1}}\n'
    with pytest.raises(ScenarioError, match=r"x.yaml:8:\d+: .*expected a key name after '.'"):
        parse_scenario(text, "x.yaml")


def test_a_file_next_to_the_scenario_is_found_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "mine"
    (d / "images").mkdir(parents=True)
    (d / "images" / "instar.jffs2").write_bytes(b"\xff" * 16)
    f = d / "s.yaml"
    f.write_text(GOOD.replace("{builder: root_image, firmware: B}", "{file: images/instar.jffs2}"))
    monkeypatch.chdir(ROOT)
    assert load_scenario(f).files["instar.jffs2"].file == "images/instar.jffs2"
    (d / "images" / "instar.jffs2").rename(d / "instar.jffs2")  # not where the file says
    with pytest.raises(ScenarioError, match=r"s.yaml:5:.*no such file '.*/mine/images/instar"):
        load_scenario(f)


def test_a_number_where_text_is_wanted_says_to_quote_it() -> None:
    text = GOOD.replace("firmware: A}", "firmware: A, bootdelay: 0}")
    with pytest.raises(
        ScenarioError, match=r'x.yaml:3:\d+: flash.bootdelay: .*got 0 \(write it in quotes: "0"\)'
    ):
        parse_scenario(text, "x.yaml")
    parse_scenario(text.replace("bootdelay: 0", 'bootdelay: "0"'), "x.yaml")


def test_a_builder_that_fails_at_run_time_says_so_without_a_traceback(tmp_path: Path) -> None:
    """What loading cannot know (a size the builder refuses) is the scenario's error
    with its line, not the harness's traceback."""
    (tmp_path / "rt.yaml").write_text(
        "name: runtime-builder\nboard: w90p745\nfiles:\n"
        "  x.bin: {builder: rich_image, size: -1}\n"
        'steps:\n  - console: {line: "ls -al", expect: "bootloader > "}\n'
    )
    ran = _cli("run", "rt.yaml", "--report", "rep", cwd=tmp_path)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 1, out
    assert "rt.yaml:4: file x.bin: cannot make rich_image(size=-1): " in out
    assert "Traceback" not in out and 'File "' not in out


@pytest.mark.parametrize(
    ("devices", "where", "message"),
    [
        (
            "variants: {uboot: [hisilicon, upstrem]}",
            ":3:",
            "'upstrem' is not a value of uboot (did you mean 'upstream'?)",
        ),
        (
            "device: {options: {uboot_variant: vendor}}",
            ":3:",
            "'vendor' is not a value of uboot_variant",
        ),
    ],
)
def test_a_device_option_value_is_checked_when_the_file_loads(devices, where, message) -> None:
    text = f"name: x\nboard: hi3511\n{devices}\nsteps: [power_cycle]\n"
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(text, "v.yaml")
    problems = [str(p) for p in ei.value.problems]
    assert any(message in p and where in p for p in problems), problems


def test_an_xr872_mac_source_is_checked_and_a_right_one_is_accepted() -> None:
    bad = "name: x\nboard: xr872\ndevice: {options: {mac_source: chipidd}}\nsteps: [power_cycle]\n"
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(bad, "m.yaml")
    assert "did you mean 'chipid'?" in str(ei.value.problems[0])
    ok = parse_scenario(bad.replace("chipidd", "flash"), "m.yaml")
    assert ok.devices["xr872"].options == {"mac_source": "flash"}


def test_the_option_choices_are_the_emulators_own() -> None:
    """The registry's lists may not drift from what the device classes accept."""
    from emulators.hi3511.profile import VARIANTS
    from emulators.xr872.board import MAC_SOURCE_NAMES
    from harness.boards import BOARDS

    assert set(BOARDS["hi3511"].option_choices["uboot_variant"]) == set(VARIANTS)
    assert set(BOARDS["xr872"].option_choices["mac_source"]) == set(MAC_SOURCE_NAMES)
