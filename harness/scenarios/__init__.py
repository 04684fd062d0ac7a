"""Declarative scenarios: what a person writes in ``scenarios/*.yaml``, how it is checked,
and how it runs.

Modules: :mod:`~harness.scenarios.model` (the dataclasses of a loaded scenario),
:mod:`~harness.scenarios.steps` (one typed class per step kind and its schema),
:mod:`~harness.scenarios.values` and :mod:`~harness.scenarios.expect_schema`
(schema pieces and the final ``expect:``), :mod:`~harness.scenarios.yamlnodes`
(located problems), :mod:`~harness.scenarios.loader` (:func:`load_scenario`,
:func:`discover`), :mod:`~harness.scenarios.executor` (:func:`run_scenario`,
running each step), :mod:`~harness.scenarios.expectations` (checking results),
:mod:`~harness.scenarios.report` (results, HTML/JSON), :mod:`~harness.scenarios.plugin`
(the pytest plugin) and :mod:`~harness.scenarios.cli` (``camrescue scenarios
run|list``). docs/scenarios.md is the guide for writers.
"""

from harness.scenarios.executor import run_path, run_scenario, warm_images
from harness.scenarios.loader import discover, load_scenario, parse_scenario
from harness.scenarios.model import Scenario
from harness.scenarios.yamlnodes import Problem, ScenarioError

__all__ = [
    "Problem",
    "Scenario",
    "ScenarioError",
    "discover",
    "load_scenario",
    "parse_scenario",
    "run_path",
    "run_scenario",
    "warm_images",
]
