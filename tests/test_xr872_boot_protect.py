"""Issue 17: the XR872's boot section is judged by address.

``xr872 write`` and ``xr872 clone`` refuse, before anything is erased or
programmed (and before the backup file is made), to change any sector of the
boot section: sector 0 up to the end of the section whose header sits at offset
0, in this unit's flash or in the new image, whatever either calls its sections
(recovery/xr872/operations.py ``boot_area``, ``check_boot_section``). Only
sectors whose bytes would change count: a boot section that already holds the
new bytes is skipped, and the write goes ahead without the option.

Every test runs the real command line (``recovery.cli.main``) against the
emulated XR872 over its pty. On the main of the day (c7a7390) the refusals did
not exist: each write below went through and rewrote the boot section.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from emulators.xr872 import XR872Device
from harness.firmware import xr872 as xfw
from recovery.cli import main

XR_FAST = ["--boot-wait", "0.5", "--timeout", "0.5", "--settle", "0.1"]
SECTOR = 0x1000


def run(argv: list[str]) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json", *XR_FAST])
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1, out.getvalue()
    return code, json.loads(lines[0])


def erased(dev, before: list[int]) -> list[int]:
    """The offsets of the sectors erased since ``before`` (the erase counters)."""
    now = dev.flash.stats.erase_counts
    return [i * SECTOR for i, (a, b) in enumerate(zip(before, now, strict=True)) if b > a]


def refused_by_address(code: int, r: dict, sectors: list[int]) -> None:
    assert code == 9 and r["error"] == "RefusedError", r
    assert "XR872 boot section (0x00000..0x02fff" in r["message"], r
    assert ", ".join(f"0x{o:05x}" for o in sectors) + " differ" in r["message"], r
    assert "--include-bootloader" in r["hint"], r
    assert r["flash_status"]["state"] == "untouched", r


def test_write_refuses_to_rewrite_the_boot_section_without_the_option(tmp_path):
    """The seed-12 image onto a seed-21 unit: its boot section differs in all three
    sectors. Refused (exit 9) before the backup and before any erase; with
    --include-bootloader it is written, and the result says how many boot sectors."""
    image = tmp_path / "xr_system.img"
    data = xfw.build_image(xfw.xr872_sections(12))
    image.write_bytes(data)
    backup = tmp_path / "unit-before.bin"
    with XR872Device(seed=21) as dev:
        before = dev.flash.snapshot()
        erases = list(dev.flash.stats.erase_counts)
        argv = ["xr872", "write", str(image), "--port", dev.path, "--backup", str(backup)]
        code, r = run([*argv, "--no-reboot"])
        refused_by_address(code, r, [0x0, 0x1000, 0x2000])
        assert dev.flash.snapshot() == before and erased(dev, erases) == []
        assert dev.flash.stats.bytes_programmed == 0
        assert not backup.exists() and not Path(str(backup) + ".json").exists()
        code, r = run([*argv, "--no-reboot", "--include-bootloader"])
        assert code == 0 and r["ok"], r
        # the boot area's addresses as hex strings (issue 20)
        assert r["boot_sectors_written"] == 3 and r["boot_area"] == ["0x0", "0x3000"], r
        assert dev.flash.snapshot() == data + before[len(data) :]
        assert backup.read_bytes() == before


def test_an_unchanged_boot_section_needs_no_option_and_is_not_erased(tmp_path):
    """The unit already holds the image's boot section (same build, another app):
    the write goes ahead without --include-bootloader and never erases sectors 0-2."""
    unit = xfw.xr872_flash(seed=12)
    data = xfw.build_image(xfw.xr872_sections(12, app_size=41_000))  # same boot bytes
    assert data[:0x3000] == unit[:0x3000] and data != unit[: len(data)]
    image = tmp_path / "xr_system.img"
    image.write_bytes(data)
    with XR872Device(seed=12, initial_flash=unit) as dev:
        erases = list(dev.flash.stats.erase_counts)
        code, r = run(["xr872", "write", str(image), "--port", dev.path, "--no-backup"])
        assert code == 0 and r["ok"] and r["boot"]["booted"], r
        assert r["boot_sectors_written"] == 0 and r["sectors_changed"] > 0, r
        assert dev.flash.snapshot() == data + unit[len(data) :]
        assert min(erased(dev, erases)) >= 0x3000


def test_only_the_changed_boot_sectors_count_whatever_the_image_calls_them(tmp_path):
    """Judged by address, not by name: an image whose first section is called app
    (forced with --ignore-image-checks) is refused all the same; and an image equal to
    the unit but for one sector inside the unit's boot section names that sector only."""
    unit = xfw.xr872_flash(seed=12)
    renamed = xfw.corrupt_image(xfw.build_image(xfw.xr872_sections(13)), "not_boot_first")
    one = bytearray(unit[: 0x3000 + 0x1000])
    one[0x2100:0x2200] = bytes(range(256))  # inside the boot body, at 0x2000..0x2fff
    with XR872Device(seed=12, initial_flash=unit) as dev:
        for name, data, sectors in (
            ("renamed.img", renamed, [0x0, 0x1000, 0x2000]),
            ("one-sector.img", bytes(one), [0x2000]),
        ):
            image = tmp_path / name
            image.write_bytes(data)
            argv = ["xr872", "write", str(image), "--port", dev.path, "--no-backup"]
            code, r = run([*argv, "--ignore-image-checks"])
            refused_by_address(code, r, sectors)
            assert dev.flash.snapshot() == unit and dev.flash.stats.bytes_programmed == 0


def test_clone_refuses_the_bricked_units_boot_section_without_the_option(tmp_path):
    """The seed's story: an XR809 image bricked the unit; cloning a donor rewrites the
    unit's (XR809) boot section, which takes --include-bootloader."""
    donor = xfw.xr872_flash(seed=11)
    (tmp_path / "donor.bin").write_bytes(donor)
    unit = xfw.bricked_flash(xfw.xr872_flash(seed=12))
    backup = tmp_path / "b.bin"
    with XR872Device(seed=12, initial_flash=unit) as dev:
        argv = ["xr872", "clone", "--from", str(tmp_path / "donor.bin"), "--port", dev.path]
        code, r = run([*argv, "--backup", str(backup)])
        refused_by_address(code, r, [0x0, 0x1000, 0x2000])
        assert dev.flash.snapshot() == unit and not backup.exists()
        code, r = run([*argv, "--backup", str(backup), "--include-bootloader"])
        assert code == 0 and r["ok"] and r["write"]["boot"]["booted"], r
        assert r["write"]["boot_sectors_written"] == 3, r
        assert dev.flash.snapshot()[:0xFF000] == donor[:0xFF000]
        assert backup.read_bytes() == unit


def test_the_boot_area_is_sector_0_to_the_end_of_the_section_at_offset_0():
    """Pure: the area from the headers at 0 (whatever their id), at least sector 0,
    never into the system-info sector."""
    from recovery.xr872.operations import boot_area, boot_end

    xr872 = xfw.build_image(xfw.xr872_sections(12))  # boot 64 + 11500 bytes
    xr809 = xfw.build_image(xfw.xr809_sections(0))  # boot 64 + 10000 bytes
    assert boot_end(xr872) == 64 + 11_500 and boot_end(xr809) == 64 + 10_000
    assert boot_end(b"\xff" * 4096) == 0
    assert (boot_area(b"\xff" * 4096).start, boot_area(b"\xff" * 4096).end) == (0, SECTOR)
    assert boot_area(xr809, xr872).end == 0x3000
    huge = bytearray(xr872)
    huge[12:16] = (0x7FFFFFFF).to_bytes(4, "little")  # a data_size nobody can trust
    assert boot_area(bytes(huge)).end == 0xFF000


def test_only_changed_sectors_inside_the_target_count():
    """Pure: a short image equal to the unit's first sector changes nothing of its
    3-sector boot section (the sectors past the image are not written); one changed
    byte in sector 1 is named, and allowed with the option."""
    from recovery.errors import RefusedError
    from recovery.xr872.operations import check_boot_section

    unit = xfw.xr872_flash(seed=12)
    assert check_boot_section(unit, unit[:SECTOR], include_bootloader=False) == []
    changed = bytearray(unit[: 2 * SECTOR])
    changed[SECTOR + 5] ^= 1
    with pytest.raises(RefusedError, match="sectors 0x01000 differ"):
        check_boot_section(unit, bytes(changed), include_bootloader=False)
    assert check_boot_section(unit, bytes(changed), include_bootloader=True) == [SECTOR]
