"""``camrescue w90p745 info|dump|restore`` (recovery.w90p745.cli.register_cli)
against the emulated board: exit codes, --json, progress, transcripts."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from emulators.w90p745 import W90P745Device
from recovery.errors import EXIT_CONSOLE, EXIT_INPUT, EXIT_OK, EXIT_USAGE
from recovery.w90p745.cli import register_cli
from recovery.w90p745.operations import FLASH_BASE


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="camrescue")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_info_json(capsys):
    with W90P745Device(seed=21) as dev:
        rc = run(["w90p745", "info", "--port", dev.path, "--json", "--wait", "10"])
        assert dev.crash is None
    assert rc == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["operation"] == "info"
    assert [e["name"] for e in out["images"]] == ["BOOT INFO", "linux", "romfs.img", "webui"]
    # addresses as hex strings (issue 20), sizes as integers
    assert out["images"][1]["base"] == "0x7f020000" and out["images"][1]["exec_addr"] == "0x8000"
    assert out["images"][1]["size"] == 0xBF700


def test_dump_with_progress_and_transcript(tmp_path, capsys):
    out_dir = tmp_path / "dump"
    transcript = tmp_path / "session.txt"
    with W90P745Device(seed=22) as dev:
        argv = ["w90p745", "dump", "--port", dev.path, "--out", str(out_dir)]
        argv += ["--images", "BOOT INFO", "--transcript", str(transcript)]
        rc = run(argv)
        boot_info = dev.flash.read(0x7F010000 - FLASH_BASE, 0x48)
        assert dev.crash is None
    assert rc == EXIT_OK
    captured = capsys.readouterr()
    assert "dumped 1 image(s)" in captured.out
    assert "dump" in captured.err and "100%" in captured.err and "/s" in captured.err
    assert (out_dir / "image0_BOOT_INFO.bin").read_bytes() == boot_info
    text = transcript.read_text()
    assert "tx d 0x7F010000" in text and "isplaying memory at 0x7F010000" in text


def test_restore_json_and_bad_dir(tmp_path, capsys):
    out_dir = tmp_path / "dump"
    with W90P745Device(seed=23) as dev:
        rc = run(
            [
                "w90p745",
                "dump",
                "--port",
                dev.path,
                "--out",
                str(out_dir),
                "--json",
                "--images",
                "0",
                "--reads",
                "1",
            ]
        )
        assert rc == EXIT_OK
        capsys.readouterr()
        # nothing to restore but BOOT INFO, which restore leaves alone by default
        rc = run(["w90p745", "restore", "--port", dev.path, str(out_dir), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert rc == EXIT_USAGE and out["ok"] is False and "nothing to restore" in out["message"]
        (out_dir / "manifest.json").write_text("{")
        rc = run(["w90p745", "restore", "--port", dev.path, str(out_dir), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert rc == EXIT_INPUT and out["flash_state"] == "untouched"
        assert dev.crash is None


def test_missing_port_is_a_console_error(tmp_path, capsys):
    rc = run(["w90p745", "info", "--port", str(tmp_path / "ttyUSB9"), "--wait", "0.2"])
    assert rc == EXIT_CONSOLE
    err = capsys.readouterr().err
    assert (
        "ttyUSB9 does not exist. Serial ports present" in err or "No serial port is present" in err
    )


def test_real_processes_engine_first_then_the_emulator(tmp_path):
    """The rehearsal of docs/w90p745.md: start camrescue, then 'power on' (start
    ``camrescue emulate``); the engine waits for the port and catches the loader."""
    link = tmp_path / "ttyCAM0"
    flash = tmp_path / "cam.bin"
    out_dir = tmp_path / "dump"
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recovery",
            "w90p745",
            "dump",
            "--port",
            str(link),
            "--out",
            str(out_dir),
            "--images",
            "0",
            "--json",
            "--wait",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "emulate",
            "w90p745",
            "--flash",
            str(flash),
            "--link",
            str(link),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, err = engine.communicate(timeout=60)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    assert engine.returncode == EXIT_OK, err
    result = json.loads(out)
    assert result["ok"] and result["images"][0]["name"] == "BOOT INFO"
    blob = flash.read_bytes()
    assert (out_dir / "image0_BOOT_INFO.bin").read_bytes() == blob[0x10000 : 0x10000 + 0x48]
