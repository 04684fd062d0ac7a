"""Issue 17: every operation that writes a file (at least its ``--transcript``) offers
the common ``--force``, "replace output files that already exist", and its refusal
of an existing file names it (recovery/cliutil.py ``add_output_options``).

On the main of the day (c7a7390) ``info``, ``boot``, every W90P745 operation and
``xr872 write/clone`` (whose ``--force`` meant "write a bad image") refused an
existing transcript with no way out: the hint named no option. Each test runs the
real command line (``recovery.cli.main``) against the emulated cameras over their
ptys.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from test_hi3511_engine import camera, run_engine
from test_safety_signals import _w90_at_prompt

from emulators.xr872 import XR872Device
from harness.firmware import vendor_flash
from recovery.cli import build_parser

XR_FAST = ["--boot-wait", "0.5", "--timeout", "0.5", "--settle", "0.1"]
OLD = "the user's own notes, not a transcript\n"


def operations() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(p: argparse.ArgumentParser, path: list[str]) -> Iterator:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield " ".join(path), p
        for s in subs:
            for name, sp in s.choices.items():
                yield from walk(sp, [*path, name])

    yield from walk(build_parser(), [])


def test_every_operation_with_a_transcript_offers_the_common_force():
    seen = []
    for name, p in operations():
        opts = p._option_string_actions
        if "--transcript" not in opts:
            continue
        seen.append(name)
        assert "--force" in opts, f"{name}: --transcript but no --force"
        assert opts["--force"].dest == "force_overwrite", name
        assert "replace output files that already exist" in opts["--force"].help, name
        assert p.get_default("force_flag") == "--force", name
    assert {"hi3511 info", "hi3511 boot", "w90p745 info", "w90p745 restore", "xr872 info",
            "xr872 write", "xr872 clone"} <= set(seen)  # fmt: skip


def refused_then_replaced(argv: list[str], transcript, touched) -> dict:
    """``argv`` with an existing ``--transcript``: refused (exit 9, the hint names
    --force, nothing sent, the file intact); with --force it runs and replaces it."""
    transcript.write_text(OLD)
    code, r, _ = run_engine(*argv, "--transcript", str(transcript))
    assert code == 9 and r["error"] == "RefusedError", r
    assert "already exists" in r["message"] and "add --force to replace it" in r["hint"], r
    assert r["flash_status"]["state"] == "untouched", r
    assert transcript.read_text() == OLD and not touched()
    code, r, _ = run_engine(*argv, "--transcript", str(transcript), "--force")
    assert code == 0 and r["ok"], r
    assert transcript.read_text() != OLD and transcript.stat().st_size > 100
    return r


def _sent(dev, mark: int) -> bool:
    return any(c.direction == "host" for c in dev.transcript.chunks[mark:])


def test_hi3511_info_replaces_its_transcript_only_with_force(tmp_path):
    with camera(vendor_flash("A")) as (dev, opts):
        mark = len(dev.transcript.chunks)
        refused_then_replaced(
            ["hi3511", "info", *opts], tmp_path / "t.txt", lambda: _sent(dev, mark)
        )


def test_w90p745_info_replaces_its_transcript_only_with_force(tmp_path):
    dev = _w90_at_prompt()
    try:
        mark = len(dev.transcript.chunks)
        refused_then_replaced(
            ["w90p745", "info", "--port", dev.path, "--json"],
            tmp_path / "t.txt",
            lambda: _sent(dev, mark),
        )
    finally:
        dev.close()


@pytest.mark.parametrize("op", ["info", "write"])
def test_xr872_info_and_write_replace_their_transcript_only_with_force(tmp_path, op):
    with XR872Device(seed=5) as dev:
        before = dev.flash.snapshot()
        argv = ["xr872", "info", "--port", dev.path, "--json", *XR_FAST, "--no-reboot"]
        if op == "write":  # the unit's own flash written back: nothing to change
            (tmp_path / "own.bin").write_bytes(before)
            argv = ["xr872", "write", str(tmp_path / "own.bin"), "--port", dev.path, "--json",
                    *XR_FAST, "--no-backup", "--no-reboot"]  # fmt: skip
        mark = len(dev.transcript.chunks)
        r = refused_then_replaced(argv, tmp_path / "t.txt", lambda: _sent(dev, mark))
        assert dev.flash.snapshot() == before
        if op == "write":
            assert r["sectors_changed"] == 0, r
