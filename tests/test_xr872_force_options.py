"""Issue 17: ``xr872 write/clone`` give "write a bad image anyway" its own name,
``--ignore-image-checks`` (named as dangerous in ``--help``), and take the common
``--force`` of every operation: replace output files that already exist, here the
``--backup`` file and its manifest.

On the main of the day (c7a7390) ``--force`` meant "write even if the image looks
wrong", and an existing ``--backup`` could not be replaced at all. Each test runs
the real command line (``recovery.cli.main``) against the emulated XR872 over its pty.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_xr872_boot_protect import run

from emulators.xr872 import XR872Device
from harness.firmware import xr872 as xfw
from recovery.cli import build_parser


@pytest.mark.parametrize("op", ["write", "clone"])
def test_help_names_the_dangerous_overrides_and_the_common_force(op):
    sub = build_parser()._subparsers._group_actions[0].choices["xr872"]
    p = sub._subparsers._group_actions[0].choices[op]
    opts = p._option_string_actions
    assert opts["--ignore-image-checks"].help.startswith("DANGEROUS")
    assert opts["--include-bootloader"].help.startswith("DANGEROUS")
    assert "replace output files that already exist" in opts["--force"].help
    assert "--ignore-image-checks" in p.format_help()


def test_force_no_longer_writes_a_bad_image(tmp_path):
    """``--force`` replaces files; a bad image is still refused, naming the override."""
    image = tmp_path / "xr809.img"
    image.write_bytes(xfw.build_image(xfw.xr809_sections()))
    with XR872Device(seed=6) as dev:
        before = dev.flash.snapshot()
        code, r = run(["xr872", "write", str(image), "--port", dev.path, "--no-backup", "--force"])
        assert code == 3 and r["error"] == "ImageError", r
        assert "--ignore-image-checks" in r["hint"] and "--force" not in r["hint"], r
        assert dev.flash.snapshot() == before


@pytest.mark.parametrize("op", ["write", "clone"])
def test_force_replaces_an_existing_backup_and_its_manifest(tmp_path, op):
    """An existing --backup is refused (exit 9, the hint names --force); with --force
    the backup and its manifest are replaced by this unit's flash."""
    backup = tmp_path / "unit-before.bin"
    with XR872Device(seed=8) as dev:
        before = dev.flash.snapshot()
        src = tmp_path / "own.bin"
        src.write_bytes(before)  # this unit's own flash: nothing to change
        argv = (
            ["xr872", "write", str(src)]
            if op == "write"
            else ["xr872", "clone", "--from", str(src)]
        )
        argv += ["--port", dev.path, "--backup", str(backup), "--no-reboot"]
        backup.write_bytes(b"an older backup")
        Path(str(backup) + ".json").write_text("{}")
        code, r = run(argv)
        assert code == 9 and "already exists" in r["message"], r
        assert "--force" in r["hint"], r
        assert backup.read_bytes() == b"an older backup"
        code, r = run([*argv, "--force"])
        assert code == 0 and r["ok"], r
        assert backup.read_bytes() == before
        man = json.loads(Path(str(backup) + ".json").read_text())
        assert man["sha256"] == hashlib.sha256(before).hexdigest()
        assert dev.flash.snapshot() == before
