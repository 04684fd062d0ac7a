"""A Hi3511 line that damages or loses one byte costs the engine a retry, never a wrong
command: the sync marker is typed again, a ``flinfo`` listing that does not add up is
read again (scenario ``hi3511-flash-noisy-line`` covers a damaged command). Each case
aims one link fault at one byte over the emulator's pty and runs the real engine."""

from __future__ import annotations

import pytest

from harness.scenarios import parse_scenario, run_scenario

SCENARIO = """name: noisy-{name}
board: hi3511
device: {{seed: 4, mode: fast, start: prompt}}
steps:
  - fault: {{{fault}}}
  - engine: [hi3511, info]
    expect:
      exit: 0
      json: {{ok: true, "flash.sectors": 128}}
      stderr: {{contains: "{notice}"}}
expect:
  transcript:
    contains: ["{struck}"]
"""

CASES = {
    # the first capital C the host sends is the C of the first CRSYNC marker
    "sync": (
        "corrupt_byte: {at_byte: 0, direction: host, value: 0x43, xor: 0x20}",
        "did not come back (line noise?): typing a new one (2 of 3)",
        "the host sends: corrupted 0x43 -> 0x63",
    ),
    # a digit of the first sector address lost: flinfo lists 127 of its 128 sectors
    "flinfo": (
        'drop_byte: {at_byte: 4, direction: device, after_text: "Sector Start Addresses:"}',
        "'flinfo' announced 128 sectors but listed 127 (line noise?): reading it again (2 of 3)",
        "the device prints after 'Sector Start Addresses:': dropped",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_one_damaged_byte_costs_a_retry(name, tmp_path):
    fault, notice, struck = CASES[name]
    text = SCENARIO.format(name=name, fault=fault, notice=notice, struck=struck)
    res = run_scenario(parse_scenario(text, tmp_path / "s.yaml"), tmp_path / "run", keep="never")
    assert res.outcome == "passed", res.failure_text()
    assert res.steps[0].detail.endswith("[fired]"), res.steps[0].detail
