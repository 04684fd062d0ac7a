"""Issue 20: JSON expectations reach into lists (``ranges[0].crc32``, ``a.b[2].c``), a
path that is not there is a clear failure (what is there instead), and a failed
expectation shows only what differs: the keys and elements of a dict or list, the
first difference of a long text or bytes with its context.

The user-facing test runs ``camrescue scenarios run`` on the emulated Hi3511 and
reads its output; the others check :func:`json_failures` on plain values.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.scenarios.expectations import first_difference, json_failures, value_diff
from harness.scenarios.model import Matcher

CAMRESCUE = str(Path(sys.executable).parent / "camrescue")

SCENARIO = """\
name: info-json
board: hi3511
steps:
  - engine: [hi3511, info]
    expect:
      json:
        "flash.protected[0]": "0x34000000"
        "partitions[-1].offset": "0xf00000"
        "partitions[1]": {offset: "0x200000"}
        "partitions[5].name": rootfs
        partitions:
          - {name: boot, address: "0x34000000", size: 2097152, offset: "0x0"}
          - {name: rootfs, address: "0x34200000", size: 13631488, offset: "0x200000"}
          - {name: setting, address: "0x34f00000", size: 1048575, offset: "0xf00000"}
        env:
          bootargs: "mem=64M console=ttyAMA0,115200 root=1f01 rootfstype=jffs2 mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)"
"""


def test_the_run_shows_paths_and_only_the_differences(tmp_path: Path) -> None:
    (tmp_path / "info.yaml").write_text(SCENARIO)
    r = subprocess.run(
        [CAMRESCUE, "scenarios", "run", "info.yaml", "--report", "rep"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    failed = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("FAILED engine")]
    # the three paths that are there matched; the one that is not says why
    assert not any("protected" in f or "offset" in f for f in failed), failed
    assert "FAILED engine result json.partitions[5].name is missing" in failed
    assert "actual:   partitions has 3 elements, so no [5]" in out
    # the list: only the element and key that differ
    assert "FAILED engine result json.partitions differs from what is expected" in failed
    assert re.search(r"actual: +\[2\]\.size: expected 1048575, got 1048576\n", out), out
    assert "0x34200000', 'size': 13631488" not in out  # the whole list is not printed
    # the long text: where it first differs, with context
    assert "FAILED engine result json.env.bootargs differs from what is expected" in failed
    assert "first difference at character 4: expected 'mem=64M console=ttyAMA0," in out
    assert "got 'mem=72M console=ttyAMA0," in out
    assert "Traceback" not in out


RESULT = {
    "ok": False,
    "ranges": [{"start": "0x0", "crc32": "0x1"}, {"start": "0x20000", "crc32": "0x2"}],
    "a": {"b": [0, 1, {"c": "deep"}]},
    "blob": bytes(range(100)),
}


def _fails(expected: dict) -> list[tuple[str, str, str]]:
    return [(f.what, f.expected, f.actual) for f in json_failures(expected, RESULT, "json")]


def test_paths_reach_list_elements_and_nested_keys() -> None:
    assert _fails({"ranges[0].crc32": Matcher({"eq": "0x1"})}) == []
    assert _fails({"ranges[-1].start": Matcher({"eq": "0x20000"})}) == []
    assert _fails({"a.b[2].c": Matcher({"eq": "deep"})}) == []
    assert _fails({"ranges[1]": {"crc32": Matcher({"eq": "0x2"})}}) == []
    assert _fails({"a": {"b[0]": Matcher({"max": 0})}}) == []
    assert _fails({"ranges[4].crc32": Matcher({"present": False})}) == []
    [(what, _, actual)] = _fails({"ranges[0].crc32": Matcher({"eq": "0x9"})})
    assert what == "engine result json.ranges[0].crc32 is '0x1'"


def test_a_path_that_is_not_there_says_what_is() -> None:
    assert _fails({"ranges[2].crc32": Matcher({"eq": 1})}) == [
        (
            "engine result json.ranges[2].crc32 is missing",
            "1",
            "ranges has 2 elements, so no [2]",
        )
    ]
    [(_, _, actual)] = _fails({"ranges[0].crc": Matcher({"eq": 1})})
    assert actual == "ranges[0] has no key 'crc' (its keys: crc32, start)"
    [(_, _, actual)] = _fails({"a.b.c": Matcher({"eq": 1})})
    assert actual == "a.b is a list of 3, not an object"
    [(_, _, actual)] = _fails({"ok[0]": Matcher({"eq": 1})})
    assert actual == "ok is False, not a list"
    [(what, expected, actual)] = _fails({"ranges[9]": {"crc32": Matcher({"eq": 1})}})
    assert (expected, actual) == ("an object", "missing: ranges has 2 elements, so no [9]")


def test_a_failed_list_or_dict_shows_only_what_differs() -> None:
    want = [{"start": "0x0", "crc32": "0x1"}, {"start": "0x20000", "crc32": "0x3", "x": 1}]
    [(what, _, actual)] = _fails({"ranges": Matcher({"eq": want})})
    assert what == "engine result json.ranges differs from what is expected"
    assert actual.splitlines() == [
        "[1].crc32: expected '0x3', got '0x2'",
        "[1].x: missing (expected 1)",
    ]
    assert value_diff({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1], "c": 5}).splitlines() == [
        "b: 1 elements, expected 2",
        "b[1]: missing (expected 2)",
        "c: not expected (it is 5)",
    ]
    many = value_diff(list(range(100)), list(range(1, 101)))
    assert many.splitlines()[-1] == "... and 80 more differences"


def test_long_text_and_bytes_show_the_first_difference_with_context() -> None:
    a = "x" * 100 + "A" + "y" * 100
    b = "x" * 100 + "B" + "y" * 100
    assert first_difference(a, b) == (
        f"first difference at character 100: expected ...'{'x' * 20}A{'y' * 19}'..., "
        f"got ...'{'x' * 20}B{'y' * 19}'..."
    )
    blob = bytearray(RESULT["blob"])
    blob[50] = 0xEE
    [(_, _, actual)] = _fails({"blob": Matcher({"eq": bytes(blob)})})
    assert actual.startswith("first difference at byte 50: expected ...1e 1f 20")
    assert "ee" in actual and "32" in actual
    assert first_difference("abc" * 30, "abc" * 29).endswith("(length 87, expected 90)")
