"""The scenario schema: valid files load, bad ones are refused with file, line and
the problem, and pytest collects scenario files as items (and runs nothing when
one is invalid)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.serial import LinkFaults
from harness.lab.faults import LinkByteFault, PowerLoss, TftpPowerCut
from harness.lab.netfaults import TftpFaults
from harness.scenarios import ScenarioError, discover, parse_scenario
from harness.scenarios.model import FaultStep
from harness.scenarios.steps import fault_to_yaml

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
BUNDLED = sorted(discover([REPO / "scenarios"]))

GOOD = """\
name: good-one
board: hi3511
description: a valid scenario used as the base of the bad ones
markers: [crossgrade]
timeout: 60
device: {seed: 1, mode: fast, start: prompt, faults: {bit_error_rate: 0}}
flash: {builder: vendor, firmware: A}
files:
  instar.jffs2: {builder: root_image, firmware: B}
steps:
  - engine: [hi3511, backup, --out, "{work}/backup.bin"]
    expect: {exit: 0, json: {ok: true, size: {min: 1}}}
  - console: {line: "printenv", expect: "hilinux # ", reject: ["Unknown command"]}
  - power_cycle: {then: prompt}
  - fault: {power_loss: {program_bytes: 100000}}
  - wait: 0.5
expect:
  flash:
    - {range: rootfs, equals: {builder: root_image, firmware: B}, rest_erased: true}
    - {range: [0x0, 0x100000], unchanged: true}
    - {range: rootfs, lost_bits: 0}
  boot_log: {contains: ["VFS: Mounted root"], not_contains: ["CRC failed"]}
  files:
    backup.bin: {equals_initial_flash: backup}
"""


def errors(text: str, name: str = "bad.yaml") -> list:
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(text, Path("scenarios") / name)
    return ei.value.problems


def test_the_base_document_is_valid():
    sc = parse_scenario(GOOD, "good.yaml")
    assert sc.name == "good-one" and sc.board == "hi3511"
    assert [s.kind for s in sc.steps] == ["engine", "console", "power_cycle", "fault", "wait"]
    assert sc.steps[0].argv == ["hi3511", "backup", "--out", "{work}/backup.bin"]
    assert sc.expect.flash[0].range.start == 0x200000 and sc.expect.flash[0].range.end == 0xF00000
    assert sc.requirements() == ["hi3511", "hi3511_engine", "hi3511_firmware"]


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_scenarios_are_valid(path):
    from harness.scenarios import load_scenario

    sc = load_scenario(path)
    assert sc.name == path.stem, "a bundled scenario's file is named after it"
    assert sc.description and sc.steps


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "name: x\nboard: hi3511\nsteps: [power_cycle]\nexpet: {}\n",
            4,
            "unknown key 'expet' (did you mean 'expect'?)",
        ),
        ("board: hi3511\nsteps: [power_cycle]\n", 1, "missing required key 'name'"),
        (
            "name: x\nboard: hi3512\nsteps: [power_cycle]\n",
            2,
            "unknown board 'hi3512' (did you mean 'hi3511'?)",
        ),
        (
            "name: x\nboard: hi3511\ntimeout: fast\nsteps: [power_cycle]\n",
            3,
            "timeout: expected a number, got 'fast'",
        ),
        (
            "name: x\nboard: hi3511\nsteps:\n  - wait: 1\n    console: {send: x}\n",
            4,
            "a step has exactly one of",
        ),
        (
            "name: x\nboard: hi3511\nsteps:\n  - engine: [hi3511, backup, '{wrok}/b.bin']\n",
            4,
            "unknown placeholder {wrok}",
        ),
        (
            "name: x\nboard: hi3511\nsteps: [power_cycle]\nexpect:\n  flash:\n    - {range: rootf, erased: true}\n",
            6,
            "unknown partition 'rootf' (did you mean 'rootfs'?)",
        ),
        (
            "name: x\nboard: hi3511\nsteps: [power_cycle]\nexpect:\n  flash:\n    - {range: [0, 0x2000000], erased: true}\n",
            6,
            "outside the 0x1000000-byte flash",
        ),
        ("name: x\nboard: hi3511\nname: y\nsteps: [power_cycle]\n", 3, "key 'name' appears twice"),
        (
            "name: x\nboard: hi3511\nsteps:\n  - console: {expect: 'a(', regex: true}\n",
            4,
            "not a valid regular expression",
        ),
        (
            "name: x\nboard: hi3511\nsteps:\n  - on: donor\n    power_cycle: {}\n",
            4,
            "no device named 'donor'",
        ),
        (
            "name: x\nboard: hi3511\nsteps: [power_cycle]\n---\nname: y\n",
            5,
            "one scenario per file",
        ),
        ("name: x\nboard: hi3511\nsteps: []\n", 3, "at least one step"),
        (
            "name: x\nboard: hi3511\nsteps:\n  - console: {line: ls}\n    expect: {exit: 0}\n",
            5,
            "'expect' does not apply to a console step",
        ),
        (
            "name: x\nboard: hi3511\nflash: {builder: vendor, file: a.bin}\nsteps: [power_cycle]\n",
            3,
            "exactly one of builder, file, erased, hex",
        ),
        (
            "name: x\nboard: hi3511\ndevice: {faults: {bit_error_rate: 2}}\nsteps: [power_cycle]\n",
            3,
            "a rate is between 0 and 1",
        ),
        (
            "name: x\nboard: xr872\nsteps:\n  - power_cycle: {then: prompt}\n",
            4,
            "xr872 has no autoboot to stop",
        ),
        ("name: has space\nboard: hi3511\nsteps: [power_cycle]\n", 1, "no spaces"),
        (
            "name: x\nboard: hi3511\nsteps:\n  - engine: [w90p745, dump]\n",
            4,
            "a hi3511, not a w90p745",
        ),
        (
            "name: x\nboard: hi3511\nsteps: [power_cycle]\nexpect:\n  flash:\n    - {range: 0x100, erased: true}\n",
            6,
            "needs a whole range",
        ),
        (
            "name: x\nboard: hi3511\nsteps:\n  - fault: {power_loss: {program_bytes: -5}}\n",
            4,
            "must be at least 0",
        ),
        (
            "name: x\nboard: hi3511\nrequires: [hi3511_magic]\nsteps: [power_cycle]\n",
            3,
            "unknown capability 'hi3511_magic'",
        ),
    ],
)
def test_bad_documents_name_file_line_and_problem(text, line, message):
    problems = errors(text)
    assert any(p.line == line and message in str(p) for p in problems), [str(p) for p in problems]
    for p in problems:
        assert str(p).startswith(str(Path("scenarios") / "bad.yaml") + ":")


def test_yaml_syntax_errors_point_at_the_line():
    problems = errors("name: x\nboard: hi3511\nsteps:\n  - console: {line: [unclosed\n")
    assert len(problems) == 1
    assert "not valid YAML" in problems[0].message and problems[0].line >= 4


def test_every_problem_is_reported_not_just_the_first():
    text = "name: x\nboard: hi3511\ntimeout: -1\nsteps:\n  - wait: soon\n  - fault: {}\nbogus: 1\n"
    lines = sorted(p.line for p in errors(text))
    assert lines == [3, 5, 6, 7]


def test_empty_and_non_mapping_documents():
    assert "the file is empty" in str(errors("")[0])
    assert "expected a mapping" in str(errors("- just\n- a list\n")[0])


def test_keys_are_words_not_booleans():
    sc = parse_scenario(
        "name: x\nboard: hi3511\ndevices: {on: {seed: 1}}\nsteps:\n  - on: on\n    power_off:\n",
        "x.yaml",
    )
    assert list(sc.devices) == ["on"] and sc.steps[0].device == "on"


# --------------------------------------------------------------------------- hypothesis

BASE = yaml.safe_load(GOOD)


def _paths(doc, prefix=()):
    """Every (path, value) in the document."""
    yield prefix, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


# json expectations are free-form (any key of the engine's result)
MAPPINGS = [p for p, v in _paths(BASE) if isinstance(v, dict) and "json" not in p]
# places where a number is required
NUMERIC = [
    ("timeout",),
    ("device", "seed"),
    ("steps", 4, "wait"),
    ("steps", 3, "fault", "power_loss", "program_bytes"),
]


def _set(doc, path, value):
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value


def _dump(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def _line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


FREE_FORM = {("files",), ("expect", "files")}  # mappings whose keys are names, not schema words


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from([p for p in MAPPINGS if p not in FREE_FORM]),
    key=st.from_regex(r"zz[a-z]{1,8}", fullmatch=True),
)
def test_an_unknown_key_anywhere_is_reported_at_its_line(where, key):
    doc = copy.deepcopy(BASE)
    target = doc
    for k in where:
        target = target[k]
    if "builder" in target:  # builder arguments are free-form: any name goes to the builder
        return
    target[key] = 1
    text = _dump(doc)
    problems = errors(text)
    line = _line_of(text, key + ":")
    assert any(p.line == line and f"unknown key '{key}'" in p.message for p in problems), [
        str(p) for p in problems
    ]


@settings(max_examples=60, deadline=None)
@given(
    path=st.sampled_from(NUMERIC),
    value=st.one_of(
        st.text(alphabet="abcxyz", min_size=1, max_size=6),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), min_size=1, max_size=2),
        st.booleans(),
    ),
)
def test_a_wrong_type_is_reported_at_its_line(path, value):
    doc = copy.deepcopy(BASE)
    _set(doc, path, value)
    text = _dump(doc)
    problems = errors(text)
    key = path[-1] if isinstance(path[-1], str) else path[-2]
    line = _line_of(text, f"{key}:")
    expected_lines = {line, line + 1}  # a list or mapping value starts on the next line
    assert any(p.line in expected_lines and p.where.endswith(str(key)) for p in problems), [
        str(p) for p in problems
    ]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["name", "board", "steps"]))
def test_a_missing_required_key_is_reported(key):
    doc = copy.deepcopy(BASE)
    del doc[key]
    problems = errors(_dump(doc))
    assert any(f"missing required key '{key}'" in p.message for p in problems)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
yaml_values = st.recursive(
    yaml_scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["name", "board", "steps", "console", "engine", "range", "expect", "x"]
            ),
            kids,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(yaml_values)
def test_arbitrary_documents_never_crash_the_loader(value):
    text = _dump(value) if value is not None else ""
    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError as e:
        n = max(1, len(text.splitlines()) + 1)
        for p in e.problems:
            assert p.file == "fuzz.yaml" and 1 <= p.line <= n and p.message


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text):
    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError as e:
        assert e.problems and all(p.line >= 1 and p.message for p in e.problems)


# --------------------------------------------------------------------------- pytest plugin


class _Run:
    def __init__(self, result: pytest.RunResult) -> None:
        self.returncode = int(result.ret)
        self.stdout = result.stdout.str()


def _pytest(pytester: pytest.Pytester, args: list[str]) -> _Run:
    # labgrid's plugin (when installed) cannot start twice in one process
    return _Run(pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:labgrid", *args))


def _tree(pytester: pytest.Pytester, files: dict[str, str]) -> pytest.Pytester:
    pytester.makeini("[pytest]\naddopts =\n")
    for name, text in files.items():
        p = pytester.path / "scenarios" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return pytester


ONE = "name: {name}\nboard: {board}\ndescription: d\nmarkers: [{marker}]\nsteps: [power_cycle]\n"


def test_plugin_collects_one_item_per_scenario_with_k_and_markers(pytester):
    root = _tree(
        pytester,
        {
            "a.yaml": ONE.format(name="alpha-crossgrade", board="hi3511", marker="crossgrade"),
            "sub/b.yml": ONE.format(name="beta-dump", board="w90p745", marker="backup"),
            "notes.txt": "not a scenario",
        },
    )
    r = _pytest(root, ["--collect-only", "-q", "scenarios"])
    assert r.returncode == 0, r.stdout
    assert "scenarios/a.yaml::alpha-crossgrade" in r.stdout
    assert "scenarios/sub/b.yml::beta-dump" in r.stdout
    r = _pytest(root, ["--collect-only", "-q", "scenarios", "-k", "crossgrade"])
    assert "alpha-crossgrade" in r.stdout and "beta-dump" not in r.stdout
    r = _pytest(
        root, ["--collect-only", "-q", "scenarios", "-m", "w90p745 and backup", "--strict-markers"]
    )
    assert "beta-dump" in r.stdout and "alpha-crossgrade" not in r.stdout, r.stdout


def test_plugin_runs_nothing_when_a_file_is_invalid(pytester):
    root = _tree(
        pytester,
        {
            "good.yaml": ONE.format(name="good", board="hi3511", marker="x"),
            "bad.yaml": "name: bad\nboard: hi3511\nsteps:\n  - wiat: 1\n",
        },
    )
    r = _pytest(root, ["scenarios"])
    assert r.returncode == 2, r.stdout
    assert re.search(r"scenarios/bad\.yaml:4:5: steps\[0\]: a step has exactly one of", r.stdout), (
        r.stdout
    )
    assert "1 error" in r.stdout and "passed" not in r.stdout


def test_plugin_refuses_duplicate_names(pytester):
    root = _tree(
        pytester,
        {
            "one.yaml": ONE.format(name="same", board="hi3511", marker="x"),
            "two.yaml": ONE.format(name="same", board="hi3511", marker="x"),
        },
    )
    r = _pytest(root, ["--collect-only", "-q", "scenarios"])
    assert r.returncode != 0 and "name 'same' is already used by" in r.stdout


def test_shards_split_the_set_without_overlap(pytester):
    names = [f"s{i}" for i in range(8)]
    root = _tree(
        pytester, {f"{n}.yaml": ONE.format(name=n, board="hi3511", marker="x") for n in names}
    )
    seen: list[str] = []
    for i in range(3):
        r = _pytest(root, ["--collect-only", "-q", "scenarios", "--scenario-shard", f"{i}/3"])
        seen += re.findall(r"::(s\d)", r.stdout)
    assert sorted(seen) == names


# --------------------------------------------------------------------------- faults, variants


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            "{power_loss: {erase_sectors: 3, power_back: 0.3}}",
            PowerLoss(erase_sectors=3, power_back=0.3),
        ),
        ("{power_loss: {program_bytes: 10}}", PowerLoss(program_bytes=10)),
        (
            "{power_cut: {at_byte: 120, direction: device, power_back: 1}}",
            LinkByteFault("power_cut", 120, "device", power_back=1.0),
        ),
        ("{watchdog: {at_byte: 7}}", LinkByteFault("watchdog", 7, "host")),
        (
            '{log_lines: {at_byte: 0, text: "hilinux # "}}',
            LinkByteFault("log_lines", 0, "host", text="hilinux # "),
        ),
        ("{link: {silent_after: 5000}}", LinkFaults(silent_after=5000)),
        ("{link: off}", LinkFaults()),
        (
            "{network: {duplicate: 0.1, loss: 0.05, delay: 0.01, delay_rate: 0.5}}",
            TftpFaults(loss=0.05, delay=0.01, delay_rate=0.5, duplicate=0.1),
        ),
        (
            "{network: {gone_after: 40, direction: to_server}}",
            TftpFaults(gone_after=40, direction="to_server"),
        ),
        ("{tftp_power_cut: {after_packets: 300}}", TftpPowerCut(300)),
    ],
)
def test_fault_steps_build_the_shared_fault_dataclasses(fault, expected):
    sc = parse_scenario(f"name: f\nboard: hi3511\nsteps:\n  - fault: {fault}\n", "f.yaml")
    (step,) = sc.steps
    assert isinstance(step, FaultStep) and step.faults == [expected]
    # and the writer the campaign uses gives back the same step
    again = parse_scenario(
        "name: f\nboard: hi3511\nsteps:\n  - fault: "
        + yaml.safe_dump(fault_to_yaml(expected), default_flow_style=True).strip()
        + "\n",
        "g.yaml",
    )
    assert again.steps[0].faults == [expected]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("{power_loss: {power_back: 1}}", "give one of program_bytes: N or erase_sectors: N"),
        ("{power_loss: {program_bytes: 1, power_back: -1}}", "must be at least 0"),
        ("{log_lines: {at_byte: 3}}", "log_lines needs the text"),
        ("{watchdog: {at_byte: 3, power_back: 1}}", "unknown key 'power_back'"),
        ("{power_cut: {direction: host}}", "missing required key 'at_byte'"),
        ("{power_cut: {at_byte: 1, direction: sideways}}", "expected one of"),
        ("{network: {duplicate: 2}}", "a rate is between 0 and 1"),
        ("{network: {trigger_after: 2}}", "unknown key 'trigger_after'"),
        ("{tftp_power_cut: {}}", "missing required key 'after_packets'"),
        ("{brownout: {}}", "unknown key 'brownout'"),
    ],
)
def test_bad_fault_steps_are_reported_at_their_line(fault, message):
    problems = errors(f"name: x\nboard: hi3511\nsteps:\n  - fault: {fault}\n")
    assert any(p.line == 4 and message in str(p) for p in problems), [str(p) for p in problems]


def test_network_faults_need_a_board_with_a_network():
    for fault in ("{network: {loss: 0.1}}", "{tftp_power_cut: {after_packets: 1}}"):
        problems = errors(f"name: x\nboard: w90p745\nsteps:\n  - fault: {fault}\n")
        assert any("w90p745 has no network" in str(p) for p in problems)


HI_VARIANTS = (
    "name: {name}\nboard: hi3511\nvariants: {{uboot: [hisilicon, upstream]}}\n"
    "flash: {{builder: vendor, firmware: A, uboot: '{{uboot}}'}}\n"
    "steps:\n  - console: {{line: 'version', expect: 'U-Boot'}}\n"
)


def test_variants_expand_to_one_run_per_value():
    sc = parse_scenario(HI_VARIANTS.format(name="hv"), "hv.yaml")
    assert sc.variants == {"uboot": ["hisilicon", "upstream"]}
    runs = sc.expand()
    assert [r.run_name for r in runs] == ["hv[hisilicon]", "hv[upstream]"]
    assert [r.device_options("hi3511") for r in runs] == [
        {"uboot": "hisilicon"},
        {"uboot": "upstream"},
    ]


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ("{uboot: []}", "give at least one value"),
        ("{uboot: [a, a]}", "'a' is listed twice"),
        ("{uboot: [a b]}", "use letters, digits"),
        ("{bootloader: [a]}", "hi3511 has no device option 'bootloader'"),
        ("[uboot]", "expected {OPTION: [value, ...]}"),
    ],
)
def test_bad_variants_are_reported(variants, message):
    problems = errors(f"name: x\nboard: hi3511\nvariants: {variants}\nsteps: [power_cycle]\n")
    assert any(p.line == 3 and message in str(p) for p in problems), [str(p) for p in problems]


def test_plugin_gives_each_variant_its_own_item(pytester):
    root = _tree(pytester, {"hv.yaml": HI_VARIANTS.format(name="hi-variants")})
    r = _pytest(root, ["--collect-only", "-q", "scenarios"])
    assert r.returncode == 0, r.stdout
    assert "scenarios/hv.yaml::hi-variants[hisilicon]" in r.stdout
    assert "scenarios/hv.yaml::hi-variants[upstream]" in r.stdout
    r = _pytest(root, ["--collect-only", "-q", "scenarios", "-k", "upstream"])
    assert "hi-variants[upstream]" in r.stdout and "hi-variants[hisilicon]" not in r.stdout
