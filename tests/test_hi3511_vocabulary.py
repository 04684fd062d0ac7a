"""Issue 20: one partition vocabulary and hex addresses in the JSON.

The Hi3511's partitions carry the names the camera gives them (its kernel command
line: ``mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)``; ``boot``
holds ``uboot`` and ``kernel``) in ``info``, ``--partition``, the JSON, the backup
manifest and scenario files; the old names (``bootloader``, ``settings``; the
harness's ``backup``, the W90P745's ``bootinfo`` and ``romfs``) still work, with a
one-line note on stderr. Addresses and offsets in JSON are hex strings; manifests
written before (integer addresses, old names) are still read.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from test_hi3511_engine import camera, run_engine

from harness.boards import board_spec
from harness.firmware import vendor_flash
from harness.scenarios import parse_scenario
from recovery.cli import main
from recovery.hi3511.flashmap import REGIONS

FLASH_A = vendor_flash("A")


@pytest.fixture(scope="module")
def backup(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vocab") / "cam.bin"
    with camera(FLASH_A) as (_dev, opts):
        code, r, _ = run_engine("hi3511", "backup", *opts, "--out", str(out))
    assert code == 0, r
    return out


def test_the_engine_the_harness_and_the_camera_use_one_set_of_names():
    parts = board_spec("hi3511").partitions
    # the engine's regions are the harness's partitions, at the same places
    for name, r in REGIONS.items():
        assert parts[name] == (r.start - 0x34000000, r.end - 0x34000000), name
    # the camera's own map (mtdparts) is there too: boot = uboot + kernel
    assert parts["boot"] == (parts["uboot"][0], parts["kernel"][1])
    assert set(parts) == {"boot", *REGIONS}


def test_info_names_the_regions_and_writes_addresses_in_hex():
    with camera(FLASH_A) as (_dev, opts):
        out, err = io.StringIO(), io.StringIO()
        argv = ["hi3511", "info", *[o for o in opts if o != "--json"]]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "  partition setting: 0x34f00000 +0x100000" in text  # the camera's mtdparts
    assert "  region uboot: 0x34000000 +0x100000" in text
    assert "  region setting: 0x34f00000 +0x100000" in text
    assert "  flash: 16 MiB at 0x34000000," in text


def test_backup_json_and_manifest_write_addresses_as_hex_strings(backup):
    manifest = json.loads(backup.with_name(backup.name + ".json").read_text())
    assert manifest["base"] == "0x34100000" and isinstance(manifest["size"], int)
    for r in manifest["ranges"]:
        assert r["address"].startswith("0x") and r["offset"].startswith("0x"), r
        assert isinstance(r["length"], int)
    assert [r["name"] for r in manifest["ranges"]] == ["kernel", "rootfs", "setting"]


def _old_style(backup: Path, tmp_path: Path) -> Path:
    """The same backup with the manifest an earlier version wrote: integer addresses,
    the range named "settings"."""
    old = tmp_path / "old.bin"
    old.write_bytes(backup.read_bytes())
    m = json.loads(backup.with_name(backup.name + ".json").read_text())
    m["image"] = old.name
    m["base"] = int(m["base"], 16)
    for r in m["ranges"]:
        r["address"], r["offset"] = int(r["address"], 16), int(r["offset"], 16)
        r["name"] = {"setting": "settings"}.get(r["name"], r["name"])
    old.with_name(old.name + ".json").write_text(json.dumps(m))
    return old


def test_an_old_manifest_and_an_old_partition_name_still_work(backup, tmp_path):
    old = _old_style(backup, tmp_path)
    damaged = bytearray(FLASH_A)
    damaged[0xF00000:0xF10000] = b"\0" * 0x10000  # the setting partition, damaged
    with camera(bytes(damaged)) as (dev, opts):
        code, r, err = run_engine(
            "hi3511", "restore", str(old), "--partition", "settings", *opts,
            "--no-backup", "--no-boot",
        )  # fmt: skip
        assert code == 0, r
        assert dev.flash.read(0, len(FLASH_A)) == FLASH_A
    assert "note: 'settings' is now called 'setting'" in err
    assert [(w["region"], w["address"]) for w in r["ranges"]] == [("setting", "0x34f00000")]
    assert r["flash_status"]["state"] == "verified"


def test_flash_partition_choices_are_the_new_names_and_old_ones_noted(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["hi3511", "flash", "x.jffs2", "--partition", "kernel", "--port", "x"])
    assert code == 2
    assert "invalid choice: 'kernel' (choose from 'rootfs', 'setting')" in err.getvalue()


SCENARIO = """\
name: old-names
board: {board}
steps: [power_cycle]
expect:
  flash:
    - {{range: {old}, unchanged: true}}
"""


@pytest.mark.parametrize(
    ("board", "old", "note", "where"),
    [
        ("hi3511", "settings", "is now called 'setting'", (0xF00000, 0x1000000)),
        ("hi3511", "bootloader", "is now called 'uboot'", (0, 0x100000)),
        ("hi3511", "backup", "is now written 0x100000+0xf00000", (0x100000, 0x1000000)),
        ("w90p745", "bootinfo", "is now called 'BOOT INFO'", (0x10000, 0x20000)),
        ("w90p745", "romfs", "is now called 'romfs.img'", (0xE0000, 0xE0000 + 0x8FF80)),
    ],
)
def test_scenarios_accept_old_partition_names_with_a_note(capsys, board, old, note, where):
    sc = parse_scenario(SCENARIO.format(board=board, old=old), Path("scenarios") / "x.yaml")
    rng = sc.expect.flash[0].range
    assert (rng.start, rng.end) == where
    assert capsys.readouterr().err == f"note: partition '{old}' {note}\n"


def test_scenarios_take_the_device_names():
    text = SCENARIO.format(board="w90p745", old='"BOOT INFO"')
    sc = parse_scenario(text, Path("scenarios") / "x.yaml")
    rng = sc.expect.flash[0].range
    assert (rng.start, rng.end) == (0x10000, 0x20000)


ADDRESS_KEYS = {"address", "offset", "base", "load", "entry", "exec_addr", "load_addr", "next_addr"}


def _addresses(obj, found: list) -> list:
    """Every value under an address key, at any depth, with the flash_status ranges."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ADDRESS_KEYS or (k in ("start", "end") and "state" in obj):
                found.append((k, v))
            else:
                _addresses(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _addresses(v, found)
    return found


@pytest.mark.parametrize("board", ["hi3511", "w90p745", "xr872"])
def test_every_board_writes_addresses_as_hex_strings(board):
    """One rule for every board's --json (issue 20): addresses and offsets are hex
    strings, sizes integers."""
    if board == "hi3511":
        with camera(FLASH_A) as (_dev, opts):
            _code, r, _ = run_engine("hi3511", "info", *opts)
    elif board == "w90p745":
        from emulators.w90p745 import W90P745Device

        with W90P745Device(seed=5) as dev:
            _code, r, _ = run_engine("w90p745", "info", "--port", dev.path, "--json")
    else:
        from emulators.xr872 import XR872Device

        fast = ["--boot-wait", "0.5", "--timeout", "0.5", "--settle", "0.1"]
        with XR872Device(seed=5) as dev:
            _code, r, _ = run_engine("xr872", "info", "--port", dev.path, "--json", *fast)
    assert r["ok"], r
    found = _addresses(r, [])
    assert len(found) >= 4, r
    for key, value in found:
        assert isinstance(value, str) and value.startswith("0x"), (key, value)
        int(value, 16)
