"""pytest plugin of camrescue: scenario files as test items, and lab fixtures.

Loaded through the ``pytest11`` entry point (``camrescue = "harness.scenarios.plugin"``).

Collection: every ``*.yaml``/``*.yml`` file named on the command line, or
under a directory named ``scenarios`` (relative to the rootdir), is one scenario and one test item named
after the scenario, so ``pytest scenarios/ -k crossgrade``, ``-m hi3511`` (each
item carries its board and its YAML ``markers`` as markers) and ``-n 2``
(pytest-xdist) work. A file that is not a valid scenario is a collection error
naming the file, the line and the problem, and pytest then runs nothing.

Running: a scenario whose board, engine or builders cannot be imported yet is
skipped with the reason. Each item runs in its own lab directory (its own ptys,
flash files, TFTP ports), under pytest's temporary directory or
``--scenario-artifacts DIR``; a failing scenario keeps it and says where.

Options: ``--scenario-report DIR`` (``report.html`` and ``results.json`` for
the run, written by the controller when xdist is used), ``--scenario-artifacts
DIR``, ``--scenario-engine inprocess|subprocess`` (run ``recovery.cli.main`` in
the test process, or as ``python -c`` as a user would), ``--scenario-keep
failed|always|never``, ``--scenario-shard I/N`` (run only the scenarios whose
name hashes to shard I of N: how several machines split the set without talking).
With pytest's cache on, the longest scenarios of the last run start first.

Fixtures for tests written in Python: ``lab`` (a :class:`~harness.lab.Lab` in
``tmp_path``), ``hi3511_device``, ``w90p745_device``, ``xr872_device`` (a
started device at its prompt, skipped when its emulator is not there),
``lab_tftp_server`` (a lab TFTP server on a free loopback port serving a temporary
directory), ``firmware`` (the builders: ``firmware.build("hi3511", "vendor",
firmware="A")`` or ``firmware.module("hi3511")``), and ``run_scenario_text``
(load and run YAML text, returning the result).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import lab as labmod
from harness.boards import BOARDS, board_spec, check_capability, import_attr
from harness.scenarios.executor import run_scenario
from harness.scenarios.loader import load_scenario, parse_scenario
from harness.scenarios.model import ENGINE_MODES, KEEP_CHOICES, Scenario
from harness.scenarios.report import ScenarioResult, write_html, write_json
from harness.scenarios.yamlnodes import ScenarioError

_RESULTS = pytest.StashKey[list[ScenarioResult]]()
_NAMES = pytest.StashKey[dict[str, Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("camrescue", "camrescue scenarios")
    g.addoption(
        "--scenario-report",
        metavar="DIR",
        default=None,
        help="write report.html and results.json of the scenarios to DIR",
    )
    g.addoption(
        "--scenario-artifacts",
        metavar="DIR",
        default=None,
        help="run each scenario's lab in DIR/<scenario> (kept when it fails)",
    )
    g.addoption(
        "--scenario-engine",
        choices=ENGINE_MODES,
        default="inprocess",
        help="run the engine in the test process (default) or as a subprocess",
    )
    g.addoption(
        "--scenario-keep",
        choices=KEEP_CHOICES,
        default="failed",
        help="which scenario labs to keep",
    )
    g.addoption(
        "--scenario-shard",
        metavar="I/N",
        default=None,
        help="run only shard I of N (0-based; by a hash of the scenario name)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: a declarative scenario from scenarios/*.yaml")
    for board in BOARDS:
        config.addinivalue_line("markers", f"{board}: runs on the emulated {board}")
    config.stash[_RESULTS] = []
    config.stash[_NAMES] = {}


def _is_scenario_path(path: Path, config: pytest.Config) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    # a file named on the command line is a scenario wherever it is
    given = {(config.invocation_params.dir / a.split("::")[0]).resolve() for a in config.args}
    if path.resolve() in given:
        return True
    try:
        parts = path.resolve().relative_to(config.rootpath.resolve()).parts
    except ValueError:
        parts = path.parts
    return "scenarios" in parts[:-1]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_scenario_path(file_path, parent.config):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            sc = load_scenario(self.path)
        except ScenarioError as e:
            raise self.CollectError(f"invalid scenario file:\n{e}") from None
        names = self.config.stash[_NAMES]
        other = names.setdefault(sc.name, self.path)
        if other != self.path:
            raise self.CollectError(
                f"{self.path}:{sc.line}: name {sc.name!r} is already used by {other}; "
                "scenario names must be unique"
            )
        for one in sc.expand():  # one item per variant: NAME[VALUE]
            item = ScenarioItem.from_parent(self, name=one.run_name, scenario=one)
            item.add_marker("scenario")
            for board in {d.board for d in one.devices.values()}:
                item.add_marker(board)
            for m in one.markers:
                self.config.addinivalue_line("markers", f"{m}: used by scenario files")
                item.add_marker(m)
            if self.config.pluginmanager.hasplugin("timeout"):
                item.add_marker(pytest.mark.timeout(one.timeout + 60))
            yield item


class ScenarioFailed(Exception):
    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.name)
        self.result = result


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.result: ScenarioResult | None = None
        # a scenario uses no fixtures; plugins that look at every item's fixture names
        # (labgrid's does) find none instead of failing
        self.fixturenames: list[str] = []

    def runtest(self) -> None:
        sc = self.scenario
        root = _scenario_root(self.config, sc.run_name)
        res = run_scenario(
            sc,
            root,
            engine_mode=self.config.getoption("scenario_engine"),
            keep=self.config.getoption("scenario_keep"),
        )
        self.result = res
        self.user_properties.append(("board", sc.board))
        if res.artifacts:
            self.user_properties.append(("artifacts", res.artifacts))
        if res.outcome == "skipped":
            pytest.skip(res.reason)
        if res.outcome in ("failed", "error"):
            raise ScenarioFailed(res)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.result.failure_text()
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return (
            self.path,
            self.scenario.line - 1,
            f"scenario {self.scenario.run_name} ({self.scenario.board})",
        )


def _scenario_root(config: pytest.Config, name: str) -> Path:
    base = config.getoption("scenario_artifacts")
    if base:
        root = Path(base) / name
        if root.exists():
            shutil.rmtree(root)
        return root
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        return factory.mktemp(f"sc-{name}"[:40], numbered=True) / "lab"
    return Path(tempfile.mkdtemp(prefix=f"camrescue-{name}-")) / "lab"


_DURATIONS_KEY = "camrescue/scenario-durations"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Longest scenarios first (times from the last run, when pytest's cache is on): with
    # -n the long ones start at once instead of ending a run on one busy worker.
    cache = getattr(config, "cache", None)
    known: dict[str, float] = (cache.get(_DURATIONS_KEY, {}) if cache is not None else {}) or {}
    if known:
        items.sort(key=lambda it: -known.get(it.name, 0.0) if isinstance(it, ScenarioItem) else 0.0)
    shard = config.getoption("scenario_shard")
    if not shard:
        return
    try:
        i, n = (int(x) for x in shard.split("/"))
        if not 0 <= i < n:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(
            f"--scenario-shard wants I/N with 0 <= I < N, got {shard!r}"
        ) from None
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for it in items:
        if isinstance(it, ScenarioItem):
            # by a stable hash of the name, so every machine agrees without talking
            h = int(hashlib.sha256(it.name.encode()).hexdigest(), 16)
            (keep if h % n == i else drop).append(it)
        else:
            keep.append(it)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome: Any = yield
    report = outcome.get_result()
    if isinstance(item, ScenarioItem) and call.when == "call" and item.result is not None:
        report.camrescue = item.result.to_json()  # travels to the xdist controller


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    data = getattr(report, "camrescue", None)
    if data and report.when == "call":
        config = _CONFIG.get("config")
        if config is not None and not hasattr(config, "workerinput"):
            config.stash[_RESULTS].append(ScenarioResult.from_json(data))


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return
    results = config.stash[_RESULTS]
    cache = getattr(config, "cache", None)
    if cache is not None and results:
        known = cache.get(_DURATIONS_KEY, {}) or {}
        known.update({r.name: round(r.duration, 3) for r in results if r.outcome != "skipped"})
        cache.set(_DURATIONS_KEY, known)
    out = config.getoption("scenario_report")
    if not out:
        return
    d = Path(out)
    write_json(results, d / "results.json")
    write_html(results, d / "report.html")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    out = config.getoption("scenario_report")
    if out and not hasattr(config, "workerinput"):
        terminalreporter.write_line(f"camrescue: scenario report in {Path(out) / 'report.html'}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[labmod.Lab]:
    """A lab in ``tmp_path``; every device started in it is stopped at the end."""
    with labmod.Lab(tmp_path / "lab") as the_lab:
        yield the_lab


def _device_fixture(board: str) -> Callable[..., labmod.LabDevice]:
    def fixture(lab: labmod.Lab) -> labmod.LabDevice:
        why = check_capability(board)
        if why:
            pytest.skip(why)
        return lab.start(board, name=board)

    fixture.__name__ = f"{board}_device"
    fixture.__doc__ = f"An emulated {board} in the test's lab, powered on and at its prompt."
    return pytest.fixture(name=f"{board}_device")(fixture)


hi3511_device = _device_fixture("hi3511")
w90p745_device = _device_fixture("w90p745")
xr872_device = _device_fixture("xr872")


@pytest.fixture
def lab_tftp_server(tmp_path: Path) -> Iterator[labmod.TftpServer]:
    """tftpy on a free 127.0.0.1 port serving ``tmp_path/"tftp"`` (``.root``, ``.port``)."""
    root = tmp_path / "tftp"
    root.mkdir()
    with labmod.TftpServer(root) as srv:
        yield srv


class Firmware:
    """The firmware builders of every board, for tests."""

    def module(self, board: str) -> Any:
        why = check_capability(f"{board}_firmware")
        if why:
            pytest.skip(why)
        spec = board_spec(board)
        assert spec.firmware is not None
        return import_attr(spec.firmware)

    def build(self, board: str, name: str, **kwargs: Any) -> bytes:
        self.module(board)
        return labmod.build_image(board, name, **kwargs)


@pytest.fixture
def firmware() -> Firmware:
    return Firmware()


@pytest.fixture
def run_scenario_text(tmp_path: Path) -> Callable[..., ScenarioResult]:
    """``run_scenario_text(yaml_text, keep="always")`` -> ScenarioResult (file in tmp_path)."""
    counter = [0]

    def run(text: str, **kw: Any) -> ScenarioResult:
        counter[0] += 1
        path = tmp_path / f"scenario{counter[0]}.yaml"
        path.write_text(text, encoding="utf-8")
        sc = parse_scenario(text, path)
        kw.setdefault("keep", "always")
        if sc.variants:  # the first variant (a fixture runs one scenario)
            sc = sc.expand()[0]
        return run_scenario(sc, tmp_path / f"run{counter[0]}", **kw)

    return run
